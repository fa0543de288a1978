//! Every torture message of RFC 4475 and RFC 5118 (`tests/data/torture`, the wire copies for
//! RFC 5118) sent over UDP to the proxy, judged against the `dialtone_bar` column of
//! `expected.tsv`, with a well-formed OPTIONS after each to prove that the proxy still serves.
//!
//! Like `/work/shared/torture/run.sh`, the messages go out byte for byte: the proxy answers a
//! UDP request at the source address and the top Via's sent-by port (RFC 3261 section 18.2.2;
//! none of these messages asks for rport), so the test sends from port 5060 of a loopback
//! address of its own (127.0.a.b, derived from the PID, so parallel runs do not collide) and
//! also listens there on every other port a top Via names (5050, 5070, 6050, 19823).
//!
//! The proxy runs with `--domain example.com` and, unlike the manual runner, with
//! `--auth all --challenge 401`: requests for other domains are then challenged instead of
//! relayed, so nothing leaves the machine (the bar accepts 401/407 wherever a request would
//! otherwise be processed).

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dialtone_e2e::sip_client::Msg;
use dialtone_e2e::Proxy;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
/// How long to wait for a final response to a torture message.
const WINDOW: Duration = Duration::from_millis(1000);

struct Row {
    file: String,
    bar: String,
}

fn plan() -> Vec<Row> {
    let text = std::fs::read_to_string(dialtone_e2e::data("torture/expected.tsv")).unwrap();
    let mut lines = text.lines();
    let columns: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let file_col = columns.iter().position(|c| *c == "file").unwrap();
    let bar_col = columns.iter().position(|c| *c == "dialtone_bar").unwrap();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split('\t').collect();
            Row {
                file: cells[file_col].to_string(),
                bar: cells[bar_col].to_string(),
            }
        })
        .collect()
}

/// Header values named `name` (or its compact form) in the head of `raw`, like the runner.
fn header_values(raw: &[u8], name: &str) -> Vec<String> {
    let compact: HashMap<&str, &str> = [("i", "call-id"), ("v", "via")].into_iter().collect();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    head.split("\r\n")
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim().to_ascii_lowercase();
            let n = compact.get(n.as_str()).map_or(n.clone(), |s| s.to_string());
            (n == name).then(|| v.trim().to_string())
        })
        .collect()
}

/// The port of the top Via's sent-by (5060 when absent), as the runner computes it.
fn top_via_port(raw: &[u8]) -> u16 {
    let Some(via) = header_values(raw, "via").into_iter().next() else {
        return 5060;
    };
    let sent_by = via
        .split_whitespace()
        .last()
        .unwrap_or("")
        .split([';', ','])
        .next()
        .unwrap_or("")
        .to_string();
    let port = if let Some(rest) = sent_by.strip_prefix('[') {
        rest.split_once("]:").map(|(_, p)| p.to_string())
    } else {
        sent_by.rsplit_once(':').map(|(_, p)| p.to_string())
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(5060)
}

/// `token` against an outcome (`none`, `prov` or a status code), as the runner judges.
fn matches(token: &str, outcome: &str) -> bool {
    match token {
        "*" => true,
        "none" | "closed" | "prov" => outcome == token,
        t if t.len() == 3 && t.ends_with("xx") => {
            outcome.len() == 3 && outcome.as_bytes()[0] == t.as_bytes()[0]
        }
        t => outcome == t,
    }
}

fn judge(bar: &str, outcome: &str) -> bool {
    let tokens: Vec<&str> = bar
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let (negative, positive): (Vec<&str>, Vec<&str>) =
        tokens.iter().partition(|t| t.starts_with('!'));
    if negative.iter().any(|t| matches(&t[1..], outcome)) {
        return false;
    }
    positive.is_empty() || positive.iter().any(|t| matches(t, outcome))
}

/// The sockets the responses can come to: port 5060 (which also sends) and every top Via port.
struct Listener {
    ip: String,
    sockets: Vec<UdpSocket>,
}

impl Listener {
    fn bind(ports: &BTreeSet<u16>) -> Listener {
        let pid = std::process::id();
        for attempt in 0..50u32 {
            let n = pid.wrapping_add(attempt * 7919);
            let ip = format!("127.0.{}.{}", (n >> 8) % 254 + 1, n % 254 + 1);
            let sockets: Result<Vec<UdpSocket>, _> = ports
                .iter()
                .map(|p| UdpSocket::bind(format!("{ip}:{p}")))
                .collect();
            if let Ok(sockets) = sockets {
                for s in &sockets {
                    s.set_nonblocking(true).unwrap();
                }
                return Listener { ip, sockets };
            }
        }
        panic!("no loopback address with the Via ports {ports:?} free");
    }

    fn main(&self) -> &UdpSocket {
        self.sockets
            .iter()
            .find(|s| s.local_addr().unwrap().port() == 5060)
            .unwrap()
    }

    /// Responses until `deadline`, or until `done` says the collected ones suffice.
    fn collect(&self, deadline: Instant, mut done: impl FnMut(&[Msg]) -> bool) -> Vec<Msg> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < deadline {
            let mut any = false;
            for s in &self.sockets {
                while let Ok((n, from)) = s.recv_from(&mut buf) {
                    any = true;
                    got.push(Msg {
                        raw: buf[..n].to_vec(),
                        from,
                    });
                }
            }
            if done(&got) {
                return got;
            }
            if !any {
                // Nothing pending: a short blocking wait on the main socket, not a fixed sleep.
                let main = self.main();
                main.set_nonblocking(false).unwrap();
                main.set_read_timeout(Some(Duration::from_millis(5)))
                    .unwrap();
                let mut peek = [0u8; 1];
                let _ = main.peek_from(&mut peek);
                main.set_nonblocking(true).unwrap();
            }
        }
        got
    }
}

fn call_id(m: &Msg) -> Option<String> {
    header_values(&m.raw, "call-id").into_iter().next()
}

/// A well-formed OPTIONS to the proxy; true when it answers 200 (retried like Timer E).
fn alive(listener: &Listener, proxy: SocketAddr, n: usize) -> bool {
    for attempt in 0..3 {
        let call_id = format!("torture-live-{n}-{attempt}@{}", listener.ip);
        let options = format!(
            "OPTIONS sip:{proxy} SIP/2.0\r\nVia: SIP/2.0/UDP {}:5060;branch=z9hG4bK-live-{n}-{attempt};rport\r\nMax-Forwards: 70\r\nTo: <sip:{proxy}>\r\nFrom: <sip:torture@{}>;tag=live{n}\r\nCall-ID: {call_id}\r\nCSeq: {} OPTIONS\r\nContent-Length: 0\r\n\r\n",
            listener.ip,
            listener.ip,
            n + 1
        );
        listener.main().send_to(options.as_bytes(), proxy).unwrap();
        let deadline = Instant::now() + Duration::from_millis(500 << attempt);
        let got = listener.collect(deadline, |got| {
            got.iter()
                .any(|m| call_id_is(m, &call_id) && m.status() == Some(200))
        });
        if got
            .iter()
            .any(|m| call_id_is(m, &call_id) && m.status() == Some(200))
        {
            return true;
        }
    }
    false
}

fn call_id_is(m: &Msg, want: &str) -> bool {
    call_id(m).as_deref() == Some(want)
}

#[test]
fn every_torture_message_gets_an_answer_within_the_bar_and_the_proxy_keeps_serving() {
    let proxy = Proxy::start(
        PROXY,
        &[
            "--domain",
            "example.com",
            "--auth",
            "all",
            "--challenge",
            "401",
        ],
    );
    let rows = plan();
    assert!(
        rows.len() >= 62,
        "expected.tsv lists {} messages",
        rows.len()
    );
    let messages: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| std::fs::read(dialtone_e2e::data(&format!("torture/{}", r.file))).unwrap())
        .collect();
    let mut ports: BTreeSet<u16> = messages.iter().map(|m| top_via_port(m)).collect();
    ports.insert(5060);
    let listener = Listener::bind(&ports);
    assert!(alive(&listener, proxy.sip, 0), "the proxy answers OPTIONS");

    let mut known_call_ids = BTreeSet::new();
    let mut failures = Vec::new();
    for (n, (row, message)) in rows.iter().zip(&messages).enumerate() {
        let want = header_values(message, "call-id").into_iter().next();
        let belongs = |m: &Msg, known: &BTreeSet<String>| match (&want, call_id(m)) {
            (Some(want), got) => got.as_deref() == Some(want.as_str()),
            (None, got) => {
                let got = got.unwrap_or_default();
                !known.contains(&got) && !got.starts_with("torture-live-")
            }
        };
        listener.main().send_to(message, proxy.sip).unwrap();
        let got = listener.collect(Instant::now() + WINDOW, |got| {
            got.iter()
                .any(|m| belongs(m, &known_call_ids) && m.status().is_some_and(|s| s >= 200))
        });
        let mine: Vec<&Msg> = got
            .iter()
            .filter(|m| belongs(m, &known_call_ids) && m.status().is_some())
            .collect();
        known_call_ids.extend(header_values(message, "call-id"));
        let outcome = match mine.iter().find(|m| m.status().is_some_and(|s| s >= 200)) {
            Some(m) => m.status().unwrap_or(0).to_string(),
            None if !mine.is_empty() => "prov".to_string(),
            None => "none".to_string(),
        };
        if !judge(&row.bar, &outcome) {
            let reason = mine.first().map(|m| m.first_line()).unwrap_or_default();
            failures.push(format!(
                "{}: got {outcome} ({reason}), bar {}",
                row.file, row.bar
            ));
        }
        if !alive(&listener, proxy.sip, n + 1) {
            failures.push(format!("{}: the proxy stopped answering OPTIONS", row.file));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} torture messages outside the bar:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn the_judge_reads_the_bar_like_the_runner() {
    assert!(judge("*,!400,!500,!none", "404"));
    assert!(!judge("*,!400,!500,!none", "none"));
    assert!(!judge("*,!400,!500,!none", "400"));
    assert!(judge("200,401", "401"));
    assert!(!judge("200,401", "407"));
    assert!(judge("none", "none"));
    assert!(judge("*,!400,!500,!2xx,!none", "407"));
    assert!(!judge("*,!400,!500,!2xx,!none", "202"));
    assert_eq!(
        top_via_port(b"INVITE sip:a SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=x\r\n\r\n"),
        5070
    );
    assert_eq!(
        top_via_port(b"INVITE sip:a SIP/2.0\r\nv: SIP/2.0/UDP [2001:db8::9:1];branch=x\r\n\r\n"),
        5060
    );
}
