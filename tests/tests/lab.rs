//! The lab command end to end: `dialtone-lab` with a lab file on free loopback ports starts the
//! proxy (auth on) and two ATAs, every line registers, a call placed through an ATA's control
//! API reaches the other line and shows on the proxy's admin API, and SIGTERM stops everything
//! with the ATAs unregistered first.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dialtone_e2e::{free_port, http_get, wait_until};

const LAB: &str = env!("CARGO_BIN_EXE_e2e-dialtone-lab");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn post(addr: std::net::SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.starts_with("HTTP/1.1 200") || text.starts_with("HTTP/1.0 200")
}

#[test]
fn the_lab_starts_registers_carries_a_call_and_stops_cleanly() {
    let sip = free_port();
    let http = free_port();
    let (a_sip, a_ctl, b_sip, b_ctl) = (free_port(), free_port(), free_port(), free_port());
    let rtp_a = 21000 + (sip % 1000) * 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let lab_file = dir.path().join("lab.toml");
    std::fs::write(
        &lab_file,
        format!(
            r#"
[proxy]
listen = ["udp:127.0.0.1:{sip}", "tcp:127.0.0.1:{sip}"]
http = "127.0.0.1:{http}"
domain = "127.0.0.1"
realm = "dialtone"
auth = "all"
users = ["8000:8000", "9000:9000"]

[[ata]]
name = "ata-8000"
bind = "127.0.0.1:{a_sip}"
control = "127.0.0.1:{a_ctl}"
rtp_ports = "{rtp_a}-{a_end}"
lines = ["8000:8000"]
audio_in = "tone:440"

[[ata]]
name = "ata-9000"
bind = "127.0.0.1:{b_sip}"
control = "127.0.0.1:{b_ctl}"
rtp_ports = "{b_start}-{b_end}"
lines = ["9000:9000"]
audio_in = "tone:1000"
auto_answer = 0.2
"#,
            a_end = rtp_a + 8,
            b_start = rtp_a + 10,
            b_end = rtp_a + 18,
        ),
    )
    .expect("lab file");

    let stderr_log = dir.path().join("lab.stderr");
    let stderr = std::fs::File::create(&stderr_log).expect("stderr log");
    let mut lab = RunningLab::start(&lab_file, Stdio::from(stderr));
    let stderr_text = || std::fs::read_to_string(&stderr_log).unwrap_or_default();

    // The summary says every line registered and how to place the call.
    let mut registered = false;
    let mut call_hint = None;
    while let Some(line) = lab.next_line(Duration::from_secs(40)) {
        if line.contains("registered: 8000, 9000") {
            registered = true;
        }
        if line.contains("ctl --control") && line.contains("dial 9000") {
            call_hint = Some(line.clone());
        }
        if line.contains("Ctrl-C stops the lab") {
            break;
        }
    }
    assert!(
        registered,
        "the lab did not report both lines registered: {:?} {}",
        lab.output,
        stderr_text()
    );
    assert!(
        call_hint.is_some_and(|h| h.contains(&format!("127.0.0.1:{a_ctl}"))),
        "no call command printed"
    );

    // Place the call as the printed command would (the control API), and see it at the proxy.
    let proxy_http = format!("127.0.0.1:{http}").parse().expect("addr");
    let a_control = format!("127.0.0.1:{a_ctl}").parse().expect("addr");
    assert!(
        post(a_control, "/lines/1/dial?digits=9000%23"),
        "dial refused"
    );
    let connected = wait_until(Duration::from_secs(15), || {
        http_get(proxy_http, "/api/calls").is_some_and(|calls| {
            serde_json::from_str::<serde_json::Value>(&calls).is_ok_and(|v| {
                v["active"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|c| c["to"].as_str().is_some_and(|t| t.contains("9000")))
                })
            })
        })
    });
    assert!(connected, "the call did not show as active at the proxy");
    assert!(post(a_control, "/lines/1/onhook"), "hang-up refused");

    // The hang-up ends the call at the proxy, and the dialog's ACK and BYE went to the callee's
    // port. With the domain 127.0.0.1, the proxy once took `sip:9000@127.0.0.1:<callee port>`
    // for its own URI, read the ACK as strictly routed and sent it to itself until
    // Max-Forwards ran out, while the callee went on retransmitting its 200.
    let calls_now = || {
        http_get(proxy_http, "/api/calls")
            .and_then(|calls| serde_json::from_str::<serde_json::Value>(&calls).ok())
    };
    let ended = wait_until(Duration::from_secs(15), || {
        calls_now().is_some_and(|v| {
            v["active"].as_array().is_some_and(|a| a.is_empty())
                && v["recent"].as_array().is_some_and(|r| r.len() == 1)
        })
    });
    assert!(
        ended,
        "the call did not end at the proxy: {:?}",
        calls_now()
    );
    let call_id = calls_now()
        .and_then(|v| v["recent"][0]["call_id"].as_str().map(str::to_string))
        .expect("the ended call's Call-ID");
    let trace: serde_json::Value = http_get(proxy_http, &format!("/api/trace/{call_id}"))
        .and_then(|t| serde_json::from_str(&t).ok())
        .expect("the call's trace");
    let sent: Vec<(String, String)> = trace["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["direction"] == "out")
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (text("remote"), text("first_line"))
        })
        .collect();
    let callee = format!("127.0.0.1:{b_sip}");
    for method in ["ACK", "BYE"] {
        assert!(
            sent.iter()
                .any(|(to, line)| *to == callee && line.starts_with(method)),
            "no {method} sent to the callee: {sent:?}"
        );
    }
    let own = format!("127.0.0.1:{sip}");
    assert!(
        !sent.iter().any(|(to, _)| *to == own),
        "the proxy sent part of the call to itself: {sent:?}"
    );

    // SIGTERM: the ATAs stop first and unregister, then the proxy.
    let (stopped, status, output) = lab.stop();
    let left = output.iter().find_map(|line| {
        line.strip_prefix("registrations left after the ATAs stopped: ")
            .and_then(|n| n.trim().parse::<usize>().ok())
    });
    assert!(stopped, "no orderly stop: {output:?}");
    assert_eq!(left, Some(0), "the ATAs did not unregister: {output:?}");
    assert!(status.success(), "lab exit status {status}");
}

/// A running `dialtone-lab` (binaries named explicitly, so that it cannot fall back to other
/// builds of its own), its standard output read line by line; stopped when dropped.
struct RunningLab {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    output: Vec<String>,
    guard: StopOnDrop,
}

impl RunningLab {
    fn start(lab_file: &std::path::Path, stderr: Stdio) -> RunningLab {
        let mut child = Command::new(LAB)
            .args(["--lab", lab_file.to_str().unwrap_or_default()])
            .args(["--proxy-bin", PROXY, "--ata-bin", ATA, "--no-build"])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start dialtone-lab");
        let guard = StopOnDrop(Some(child.id()));
        let (tx, lines) = mpsc::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        RunningLab {
            child,
            lines,
            output: Vec::new(),
            guard,
        }
    }

    /// The next line the lab prints, within `timeout`.
    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.output.push(line.clone());
        Some(line)
    }

    /// SIGTERM, then the lines up to `lab stopped` (30 s at most): whether it said so, its exit
    /// status, and everything it printed.
    fn stop(mut self) -> (bool, std::process::ExitStatus, Vec<String>) {
        send_sigterm(self.child.id());
        let mut stopped = false;
        while let Some(line) = self.next_line(Duration::from_secs(30)) {
            if line.contains("lab stopped") {
                stopped = true;
                break;
            }
        }
        let status = self.child.wait().expect("lab exit");
        self.guard.0 = None; // reaped: its PID is no longer ours to signal
        (stopped, status, std::mem::take(&mut self.output))
    }
}

/// Sends SIGTERM to the lab when dropped, unless it was reaped already.
struct StopOnDrop(Option<u32>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            send_sigterm(pid);
        }
    }
}

fn send_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// The cluster lab (`deploy/lab-cluster.toml`'s shape on free ports): the lab starts its own
/// redis-server, two proxies sharing it and two ATAs, one on each node with the other as
/// backup; each node lists both phones, a call from the phone of node A reaches the phone of
/// node B, and the lab stops Redis last.
#[test]
fn the_cluster_lab_starts_redis_two_proxies_sharing_it_and_their_atas() {
    if !dialtone_e2e::tool_available("redis-server") {
        return;
    }
    let redis_port = free_port();
    let (sip_a, http_a, sip_b, http_b) = (free_port(), free_port(), free_port(), free_port());
    let (a_sip, a_ctl, b_sip, b_ctl) = (free_port(), free_port(), free_port(), free_port());
    let rtp = 23000 + (sip_a % 1000) * 10;
    let dir = tempfile::tempdir().expect("tempdir");
    let lab_file = dir.path().join("lab-cluster.toml");
    let redis_dir = dir.path().join("redis");
    std::fs::write(
        &lab_file,
        format!(
            r#"
[redis]
port = {redis_port}
dir = "{redis_dir}"

[[proxy]]
name = "node-a"
listen = ["udp:127.0.0.1:{sip_a}"]
http = "127.0.0.1:{http_a}"
domain = "127.0.0.1"
auth = "all"
users = ["8000:8000", "9000:9000"]

[[proxy]]
name = "node-b"
listen = ["udp:127.0.0.1:{sip_b}"]
http = "127.0.0.1:{http_b}"
domain = "127.0.0.1"
auth = "all"
users = ["8000:8000", "9000:9000"]

[[ata]]
name = "ata-8000"
bind = "127.0.0.1:{a_sip}"
control = "127.0.0.1:{a_ctl}"
rtp_ports = "{rtp}-{a_end}"
lines = ["8000:8000"]
audio_in = "tone:440"
dial_plan = "xxxx"
proxies = ["node-a", "node-b"]

[[ata]]
name = "ata-9000"
bind = "127.0.0.1:{b_sip}"
control = "127.0.0.1:{b_ctl}"
rtp_ports = "{b_start}-{b_end}"
lines = ["9000:9000"]
audio_in = "tone:1000"
auto_answer = 0.2
proxies = ["node-b", "node-a"]
"#,
            redis_dir = redis_dir.display(),
            a_end = rtp + 8,
            b_start = rtp + 10,
            b_end = rtp + 18,
        ),
    )
    .expect("lab file");
    let mut lab = RunningLab::start(&lab_file, Stdio::null());
    let mut registered = false;
    while let Some(line) = lab.next_line(Duration::from_secs(40)) {
        registered |= line.contains("registered: 8000, 9000");
        if line.contains("Ctrl-C stops the lab") {
            break;
        }
    }
    assert!(registered, "the lab did not report both lines registered");

    // Each phone registered at its own node; both nodes know both through Redis.
    for http in [http_a, http_b] {
        let http = format!("127.0.0.1:{http}").parse().expect("addr");
        let both = wait_until(Duration::from_secs(5), || {
            ["8000", "9000"]
                .iter()
                .all(|user| dialtone_e2e::proxy_api::binding(http, user).is_some())
        });
        assert!(both, "node {http} does not list both phones");
    }
    let a_control = format!("127.0.0.1:{a_ctl}").parse().expect("addr");
    assert!(post(a_control, "/lines/1/dial?digits=9000"), "dial refused");
    let b_control = format!("127.0.0.1:{b_ctl}").parse().expect("addr");
    let answered = wait_until(Duration::from_secs(10), || {
        dialtone_e2e::ata_line_command(b_control, 1, dialtone_ata::ctl::CtlCommand::Status).state
            == "connected"
    });
    let node_a: std::net::SocketAddr = format!("127.0.0.1:{http_a}").parse().expect("addr");
    assert!(
        answered,
        "9000 did not answer; 8000: {:?}; node A's traces: {:?}",
        dialtone_e2e::ata_line_command(a_control, 1, dialtone_ata::ctl::CtlCommand::Status),
        http_get(node_a, "/api/traces")
    );
    assert!(post(a_control, "/lines/1/onhook"), "hang-up refused");

    let (stopped, status, output) = lab.stop();
    assert!(
        stopped && status.success(),
        "no orderly stop ({status}): {output:?}"
    );
    let redis_gone = std::net::TcpStream::connect(("127.0.0.1", redis_port)).is_err();
    assert!(redis_gone, "the lab left its redis-server running");
}
