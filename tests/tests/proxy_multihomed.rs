//! A multi-homed proxy: `dialtone-proxy` listens on two networks that have no route between
//! them, and every message must leave from the listen socket facing its destination, with
//! that socket's address in Via; a dialog whose INVITE crosses from one network to the other
//! gets two Record-Route entries, one per side (RFC 5658), so that ACK and BYE find their way
//! in both directions. `--advertise IP:PORT=HOST[:PORT]` writes HOST instead of the bound
//! address of one listen socket (a proxy behind NAT).
//!
//! The networks are real: three network namespaces made for each test (`dtmh-<pid>-<n>a`,
//! `..p`, `..b`) and two veth pairs,
//!
//! ```text
//!   a: 198.18.1.10/24  <-veth->  198.18.1.2/24  p  198.18.2.2/24  <-veth->  b: 198.18.2.10/24
//! ```
//!
//! with no default route anywhere and forwarding off in p, so a and b cannot reach each
//! other (checked). The proxy runs in p (`--listen udp:198.18.1.2:5060 --listen
//! udp:198.18.2.2:5060`), the phones in a and b, each started with `ip netns exec`. The test
//! process stays in the root namespace and reaches no control port: it runs the programs'
//! own `ctl` clients inside the namespaces, and reads the SIPp message logs and the proxy's
//! message trace (`ctl trace`, with the local and remote address of every message).
//!
//! - Software ATAs (8000 in a, 9000 in b) call each other both ways and hang up from each
//!   side in turn; each call must connect and end on both phones. Audio is not checked: the
//!   proxy relays no media and the two networks have no route, so RTP cannot flow.
//! - SIPp plays callee and caller both ways, with the caller and then the callee hanging up;
//!   its message log shows the INVITE, ACK and BYE as they arrived.
//! - `--advertise 198.18.2.2:5060=pbx.example.net:5070` puts that name in the b side's Via
//!   and Record-Route, and the proxy must know it as itself in the Route of ACK and BYE.
//!
//! Network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN): without them the tests
//! print `skipped: network namespaces not available` locally and fail in CI; without `sipp`
//! the SIPp tests skip the same way (`tool_available`). The guard [`Lab`] kills what it
//! started (by PID) and deletes the namespaces when dropped; a failing test keeps its logs
//! and says where.

use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dialtone_ata::line::LineStatus;
use dialtone_e2e::{tool_available, wait_until, workspace_root, Process};
use serde_json::Value;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// The proxy's admin HTTP, on p's own loopback.
const PROXY_HTTP: &str = "127.0.0.1:8060";
/// An ATA's control API, on its namespace's loopback.
const ATA_CONTROL: &str = "127.0.0.1:8070";
/// The SIP port of the phones (ATA or SIPp) in a and b.
const PHONE_PORT: u16 = 5070;

/// One side of the lab: a (198.18.1.0/24) or b (198.18.2.0/24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    /// The phone's address on this side.
    fn phone_ip(self) -> &'static str {
        match self {
            Side::A => "198.18.1.10",
            Side::B => "198.18.2.10",
        }
    }

    /// The proxy's listen address on this side.
    fn proxy(self) -> &'static str {
        match self {
            Side::A => "198.18.1.2:5060",
            Side::B => "198.18.2.2:5060",
        }
    }

    /// The user registered on this side.
    fn user(self) -> &'static str {
        match self {
            Side::A => "8000",
            Side::B => "9000",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Labs made by this test binary (its tests run in parallel threads): names them.
static LABS: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS`; the error is its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Deletes `dtmh-PID-..` namespaces left by test processes that no longer run (killed before
/// their guards could clean up).
fn delete_stale_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("dtmh-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// The three namespaces, the processes started in them, and a directory for their logs.
struct Lab {
    a: String,
    p: String,
    b: String,
    created: Vec<String>,
    processes: Vec<(Process, String)>,
    dir: Option<tempfile::TempDir>,
}

/// A process started by [`Lab::start`]: its index in the lab.
#[derive(Debug, Clone, Copy)]
struct Started(usize);

impl Lab {
    /// Makes the namespaces and links; `None` (the test is skipped) when network namespaces
    /// cannot be made here, which fails the test in CI.
    fn create() -> Option<Lab> {
        delete_stale_namespaces();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let base = format!("dtmh-{}-{n}", std::process::id());
        let mut lab = Lab {
            a: format!("{base}a"),
            p: format!("{base}p"),
            b: format!("{base}b"),
            created: Vec::new(),
            processes: Vec::new(),
            dir: Some(tempfile::tempdir().expect("temp dir")),
        };
        if let Err(e) = ip(&["netns", "add", &lab.a]) {
            if std::env::var_os("CI").is_some() {
                panic!("network namespaces are needed in CI: {e}");
            }
            eprintln!("skipped: network namespaces not available ({e})");
            return None;
        }
        lab.created.push(lab.a.clone());
        let (a, p, b) = (lab.a.clone(), lab.p.clone(), lab.b.clone());
        for ns in [&p, &b] {
            ip(&["netns", "add", ns]).expect("a second namespace");
            lab.created.push(ns.clone());
        }
        // Each end is made inside its namespace, so the names only need to be unique there.
        let steps: Vec<Vec<&str>> = vec![
            vec![
                "link", "add", "eth-p", "netns", &a, "type", "veth", "peer", "name", "eth-a",
                "netns", &p,
            ],
            vec![
                "link", "add", "eth-p", "netns", &b, "type", "veth", "peer", "name", "eth-b",
                "netns", &p,
            ],
            vec!["-n", &a, "addr", "add", "198.18.1.10/24", "dev", "eth-p"],
            vec!["-n", &p, "addr", "add", "198.18.1.2/24", "dev", "eth-a"],
            vec!["-n", &p, "addr", "add", "198.18.2.2/24", "dev", "eth-b"],
            vec!["-n", &b, "addr", "add", "198.18.2.10/24", "dev", "eth-p"],
            vec!["-n", &a, "link", "set", "eth-p", "up"],
            vec!["-n", &p, "link", "set", "eth-a", "up"],
            vec!["-n", &p, "link", "set", "eth-b", "up"],
            vec!["-n", &b, "link", "set", "eth-p", "up"],
            vec!["-n", &a, "link", "set", "lo", "up"],
            vec!["-n", &p, "link", "set", "lo", "up"],
            vec!["-n", &b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            ip(&step).unwrap_or_else(|e| panic!("setting up the lab: {e}"));
        }
        let forwarding = lab.exec(&p, "sh", &["-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
        assert!(forwarding.status.success(), "forwarding off in p");
        // The premise: a and b have no way to each other but through the proxy.
        for (ns, far) in [(&a, "198.18.2.10"), (&b, "198.18.1.10")] {
            assert!(
                ip(&["-n", ns, "route", "get", far]).is_err(),
                "{ns} must have no route to {far}"
            );
        }
        Some(lab)
    }

    fn namespace(&self, side: Side) -> &str {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the lab's directory").path()
    }

    /// Runs `program ARGS` in namespace `ns` to its end (the programs run here bound
    /// themselves: ctl clients time out after 5 s).
    fn exec(&self, ns: &str, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("ip netns exec {ns} {program}: {e}"))
    }

    /// Starts `program ARGS` in namespace `ns` (`ip netns exec` execs it, so the PID is the
    /// program's), output to `NAME.out` in the lab's directory.
    fn start(&mut self, ns: &str, name: &str, program: &str, args: &[&str]) -> Started {
        let out = std::fs::File::create(self.dir().join(format!("{name}.out"))).expect("log");
        let err = out.try_clone().expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {ns}: {e}"));
        self.processes
            .push((Process::adopt(child, name), name.to_string()));
        Started(self.processes.len() - 1)
    }

    /// The exit status, if the process has ended.
    fn exited(&mut self, process: Started) -> Option<ExitStatus> {
        self.processes[process.0].0.child.try_wait().ok().flatten()
    }

    /// Waits (bounded) for the process's end; kills it and panics when it runs too long.
    fn wait(&mut self, process: Started, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited(process) {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.processes[process.0].0.kill_hard();
        let name = self.processes[process.0].1.clone();
        panic!(
            "{name} did not finish in {timeout:?}:\n{}",
            self.file(&format!("{name}.out"))
        );
    }

    /// A file of the lab's directory, or "" when absent.
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir().join(name)).unwrap_or_default()
    }

    /// Whether the process holds a UDP socket on `port`, read from its own namespace's
    /// `/proc/PID/net/udp` (the test cannot probe the port from the root namespace).
    fn binds_udp(&self, process: Started, port: u16) -> bool {
        let pid = self.processes[process.0].0.pid();
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
        let suffix = format!(":{port:04X}");
        table.lines().skip(1).any(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|local| local.ends_with(&suffix))
        })
    }

    /// Starts the proxy in p on both networks with `extra` flags; returns once its admin API
    /// answers `ctl registrations`, or panics with its log if it exits first.
    fn start_proxy(&mut self, extra: &[&str]) -> Started {
        let mut args = vec![
            "--listen",
            "udp:198.18.1.2:5060",
            "--listen",
            "udp:198.18.2.2:5060",
            "--http",
            PROXY_HTTP,
            "--memory-only",
            "--auth",
            "none",
            "--domain",
            "lab.test",
            "--workers",
            "2",
        ];
        args.extend_from_slice(extra);
        let p = self.p.clone();
        let proxy = self.start(&p, "proxy", PROXY, &args);
        let ready = wait_until(Duration::from_secs(15), || {
            self.exited(proxy).is_some() || self.proxy_ctl(&["registrations"]).is_ok()
        });
        if let Some(status) = self.exited(proxy) {
            panic!(
                "the proxy ({args:?}) exited with {status}:\n{}",
                self.file("proxy.out")
            );
        }
        assert!(
            ready,
            "the proxy never answered:\n{}",
            self.file("proxy.out")
        );
        proxy
    }

    /// `dialtone-proxy ctl --json ARGS` in p: the JSON, or stderr.
    fn proxy_ctl(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = vec!["ctl", "--http", PROXY_HTTP, "--json"];
        all.extend_from_slice(args);
        let output = self.exec(&self.p, PROXY, &all);
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("ctl {args:?}: {e}"))
    }

    /// The proxy's message trace of one Call-ID: (direction, local, remote, first line,
    /// text) per message.
    fn proxy_trace(&self, call_id: &str) -> Vec<ProxyMessage> {
        let trace = self
            .proxy_ctl(&["trace", call_id])
            .unwrap_or_else(|e| panic!("ctl trace {call_id}: {e}"));
        trace["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| ProxyMessage {
                sent: m["direction"] == "out",
                local: m["local"].as_str().unwrap_or("").to_string(),
                remote: m["remote"].as_str().unwrap_or("").to_string(),
                first_line: m["first_line"].as_str().unwrap_or("").to_string(),
                text: m["text"].as_str().unwrap_or("").to_string(),
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Each Process kills its child by PID and reaps it.
        self.processes.clear();
        for ns in &self.created {
            let _ = ip(&["netns", "del", ns]);
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("proxy_multihomed: logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// One message of the proxy's trace.
#[derive(Debug)]
struct ProxyMessage {
    sent: bool,
    local: String,
    remote: String,
    first_line: String,
    text: String,
}

impl ProxyMessage {
    fn remote_ip(&self) -> &str {
        self.remote.rsplit_once(':').map_or("", |(ip, _)| ip)
    }

    fn is(&self, method_or_status: &str) -> bool {
        self.first_line.starts_with(method_or_status)
            || self
                .first_line
                .strip_prefix("SIP/2.0 ")
                .is_some_and(|s| s.starts_with(method_or_status))
    }

    fn cseq_method(&self) -> String {
        header_values(&self.text, &["cseq"])
            .first()
            .and_then(|v| v.split_whitespace().nth(1))
            .unwrap_or("")
            .to_string()
    }
}

// ---- SIP text -------------------------------------------------------------------------

/// The values of the headers named `names` (any case; compact forms are listed by the
/// caller), in order, comma-separated values split (outside <> and quotes).
fn header_values(message: &str, names: &[&str]) -> Vec<String> {
    let mut values = Vec::new();
    for line in message.lines().skip(1) {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name.trim())) {
            continue;
        }
        let (mut depth, mut quoted, mut start) = (0i32, false, 0);
        for (i, c) in value.char_indices() {
            match c {
                '"' => quoted = !quoted,
                '<' if !quoted => depth += 1,
                '>' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    values.push(value[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        values.push(value[start..].trim().to_string());
    }
    values
}

/// `host:port`, with the default port 5060 written out.
fn with_port(hostport: &str) -> String {
    if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5060")
    }
}

/// The sent-by of the topmost Via.
fn top_via(message: &str) -> String {
    header_values(message, &["via", "v"])
        .first()
        .and_then(|via| via.split_whitespace().nth(1))
        .map(|sent_by| with_port(sent_by.split(';').next().unwrap_or("")))
        .unwrap_or_default()
}

/// The host:port of each Record-Route (or Route) entry, top first.
fn route_hosts(message: &str, header: &str) -> Vec<String> {
    header_values(message, &[header])
        .iter()
        .map(|entry| {
            let uri = entry
                .split_once('<')
                .and_then(|(_, rest)| rest.split_once('>'))
                .map_or(entry.as_str(), |(uri, _)| uri);
            let uri = uri.strip_prefix("sip:").unwrap_or(uri);
            let hostport = uri.rsplit_once('@').map_or(uri, |(_, h)| h);
            with_port(hostport.split(';').next().unwrap_or(""))
        })
        .collect()
}

/// The first three octets: the /24 an IPv4 address is on.
fn network(ip_port: &str) -> &str {
    ip_port.rsplit_once('.').map_or("", |(net, _)| net)
}

// ---- SIPp -----------------------------------------------------------------------------

fn scenario(name: &str) -> String {
    workspace_root()
        .join("tests/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// One message of a SIPp `-trace_msg` log.
#[derive(Debug)]
struct SippMessage {
    received: bool,
    text: String,
}

impl SippMessage {
    fn starts(&self, first: &str) -> bool {
        self.text.starts_with(first)
    }
}

/// Reads a SIPp message log: entries start with a line of dashes and a timestamp, then
/// "UDP message received [N] bytes :" or "UDP message sent (N bytes):", a blank line and
/// the message.
fn sipp_messages(path: &Path) -> Vec<SippMessage> {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let mut messages = Vec::new();
    let mut entries = log.split("-----------------------------------------------");
    entries.next();
    for entry in entries {
        let mut lines = entry.lines().map(|l| l.trim_end_matches('\r')).skip(1);
        let Some(kind) = lines.next() else { continue };
        let text: Vec<&str> = lines.skip_while(|l| l.is_empty()).collect();
        messages.push(SippMessage {
            received: kind.contains("received"),
            text: text.join("\r\n"),
        });
    }
    messages
}

/// The first message received whose first line starts with `first`, or a panic showing the
/// whole log.
fn received<'m>(messages: &'m [SippMessage], first: &str, log: &Path) -> &'m SippMessage {
    messages
        .iter()
        .find(|m| m.received && m.starts(first))
        .unwrap_or_else(|| {
            panic!(
                "no {first} received in {}:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
}

impl Lab {
    /// Starts SIPp in `side`'s namespace on the phone's address and [`PHONE_PORT`], talking to
    /// the proxy's address on that side, with its message log as `NAME.msg`.
    fn start_sipp(&mut self, side: Side, name: &str, xml: &str, extra: &[&str]) -> Started {
        let dir = self.dir().to_path_buf();
        let (messages, errors) = (
            dir.join(format!("{name}.msg")),
            dir.join(format!("{name}.err")),
        );
        let port = PHONE_PORT.to_string();
        let xml = scenario(xml);
        let mut args = vec![
            side.proxy(),
            "-sf",
            &xml,
            "-i",
            side.phone_ip(),
            "-p",
            &port,
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-recv_timeout",
            "5000",
            "-trace_msg",
            "-message_file",
            messages.to_str().expect("utf8"),
            "-trace_err",
            "-error_file",
            errors.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        let ns = self.namespace(side).to_string();
        self.start(&ns, name, "sipp", &args)
    }

    /// Waits for a SIPp run and asserts it succeeded (exit 0: every call completed).
    fn sipp_succeeds(&mut self, sipp: Started, name: &str) {
        let status = self.wait(sipp, Duration::from_secs(25));
        self.sipp_ok(name, status);
    }

    /// Asserts that SIPp run `name` ended with `status` 0, or shows its logs.
    fn sipp_ok(&self, name: &str, status: ExitStatus) {
        assert!(
            status.success(),
            "sipp {name} exited with {status}:\n--- output\n{}\n--- errors\n{}\n--- messages\n{}\n--- proxy\n{}",
            self.file(&format!("{name}.out")),
            self.file(&format!("{name}.err")),
            self.file(&format!("{name}.msg")),
            self.file("proxy.out"),
        );
    }

    /// Registers `side`'s user with the proxy from the phone's SIPp address (REGISTER through
    /// the proxy's address on that side).
    fn sipp_register(&mut self, side: Side) {
        let name = format!("register-{}", side.user());
        let sipp = self.start_sipp(
            side,
            &name,
            "multihomed_register.xml",
            &["-key", "user", side.user()],
        );
        self.sipp_succeeds(sipp, &name);
    }

    /// Starts a SIPp callee scenario for `side`'s user and waits until it listens.
    fn sipp_callee(&mut self, side: Side, name: &str, xml: &str) -> Started {
        let uas = self.start_sipp(side, name, xml, &["-s", side.user()]);
        let listening = wait_until(Duration::from_secs(10), || {
            self.exited(uas).is_some() || self.binds_udp(uas, PHONE_PORT)
        });
        assert!(
            listening && self.exited(uas).is_none(),
            "sipp {name} did not listen:\n{}",
            self.file(&format!("{name}.out"))
        );
        uas
    }

    /// SIPp on `caller`'s side calls the user registered on the other side twice through the
    /// proxy: the caller hangs up the first call, the callee the second. Every call must
    /// complete (both SIPp exit 0). `caller_face` and `callee_face` are the host:port the
    /// proxy must write on each side (its listen address, or what `--advertise` names).
    /// Checks on each message as the far phone received it: the proxy's Via facing it, the
    /// two Record-Route entries of a dialog that changed networks (the callee's side on
    /// top), and no Route left (both entries were the proxy's).
    fn sipp_calls(&mut self, caller: Side, caller_face: &str, callee_face: &str) {
        let callee = caller.other();
        self.sipp_register(callee);
        let call_args = ["-s", callee.user(), "-key", "caller", caller.user()];
        let tag = format!("{}-to-{}", caller.user(), callee.user());
        let expected_rr = vec![callee_face.to_string(), caller_face.to_string()];

        // 1. The caller hangs up: INVITE, ACK and BYE from caller to callee.
        let (uas_name, uac_name) = (format!("{tag}-uas-1"), format!("{tag}-uac-1"));
        let uas = self.sipp_callee(callee, &uas_name, "multihomed_uas_wait.xml");
        let uac = self.start_sipp(caller, &uac_name, "multihomed_uac_bye.xml", &call_args);
        let uac_status = self.wait(uac, Duration::from_secs(25));
        let uas_status = self.wait(uas, Duration::from_secs(25));
        // The INVITE as the callee got it first: it tells why a call failed.
        let log = self.dir().join(format!("{uas_name}.msg"));
        let at_callee = sipp_messages(&log);
        let invite = received(&at_callee, "INVITE ", &log);
        assert_eq!(
            top_via(&invite.text),
            callee_face,
            "the INVITE must reach the callee with the Via of the proxy's {callee:?} side:\n{}",
            invite.text
        );
        assert_eq!(
            route_hosts(&invite.text, "record-route"),
            expected_rr,
            "an INVITE that crossed networks needs one Record-Route per side, the callee's \
             side on top (RFC 5658):\n{}",
            invite.text
        );
        self.sipp_ok(&uac_name, uac_status);
        self.sipp_ok(&uas_name, uas_status);
        for method in ["ACK ", "BYE "] {
            let request = received(&at_callee, method, &log);
            assert_eq!(
                top_via(&request.text),
                callee_face,
                "the {method}must leave from the proxy's {callee:?} side:\n{}",
                request.text
            );
            assert_eq!(
                route_hosts(&request.text, "route"),
                Vec::<String>::new(),
                "the proxy must remove both of its Route entries from the {method}:\n{}",
                request.text
            );
        }
        let log = self.dir().join(format!("{uac_name}.msg"));
        let at_caller = sipp_messages(&log);
        let ok = received(&at_caller, "SIP/2.0 200", &log);
        assert_eq!(
            route_hosts(&ok.text, "record-route"),
            expected_rr,
            "the caller must see both Record-Route entries in the 200:\n{}",
            ok.text
        );

        // 2. The callee hangs up: its BYE follows the route set in Record-Route order.
        let (uas_name, uac_name) = (format!("{tag}-uas-2"), format!("{tag}-uac-2"));
        let uas = self.sipp_callee(callee, &uas_name, "multihomed_uas_bye.xml");
        let uac = self.start_sipp(caller, &uac_name, "multihomed_uac_wait.xml", &call_args);
        self.sipp_succeeds(uac, &uac_name);
        self.sipp_succeeds(uas, &uas_name);
        let log = self.dir().join(format!("{uac_name}.msg"));
        let at_caller = sipp_messages(&log);
        let bye = received(&at_caller, "BYE ", &log);
        assert_eq!(
            top_via(&bye.text),
            caller_face,
            "the callee's BYE must reach the caller from the proxy's {caller:?} side:\n{}",
            bye.text
        );
        assert_eq!(
            route_hosts(&bye.text, "route"),
            Vec::<String>::new(),
            "the proxy must remove both of its Route entries from the callee's BYE:\n{}",
            bye.text
        );
        let log = self.dir().join(format!("{uas_name}.msg"));
        let at_callee = sipp_messages(&log);
        let ack = received(&at_callee, "ACK ", &log);
        assert_eq!(top_via(&ack.text), callee_face, "{}", ack.text);
        let ok = received(&at_callee, "SIP/2.0 200", &log);
        assert_eq!(
            top_via(&ok.text),
            self.phone_addr(callee),
            "the 200 to the callee's BYE must come back to it:\n{}",
            ok.text
        );
    }

    /// The phone's own SIP address on `side`.
    fn phone_addr(&self, side: Side) -> String {
        format!("{}:{PHONE_PORT}", side.phone_ip())
    }
}

// ---- ATAs -----------------------------------------------------------------------------

impl Lab {
    /// Starts a software ATA for `side`'s user, bound to the phone's address, registered
    /// through the proxy's address on that side, answering calls after 0.2 s.
    fn start_ata(&mut self, side: Side) -> Started {
        let line = format!("{}:unused", side.user());
        let bind = format!("{}:{PHONE_PORT}", side.phone_ip());
        let tone = match side {
            Side::A => "tone:1000",
            Side::B => "tone:1500",
        };
        let args = [
            "--line",
            &line,
            "--proxy",
            side.proxy(),
            "--bind",
            &bind,
            "--control",
            ATA_CONTROL,
            "--register-interval",
            "300",
            "--audio-in",
            tone,
            "--auto-answer",
            "0.2",
        ];
        let ns = self.namespace(side).to_string();
        let name = format!("ata-{}", side.user());
        let ata = self.start(&ns, &name, ATA, &args);
        let registered = wait_until(Duration::from_secs(15), || {
            self.exited(ata).is_some()
                || self
                    .ata_status(side)
                    .is_ok_and(|s| s.registration == "registered")
        });
        assert!(
            registered && self.exited(ata).is_none(),
            "ATA {} did not register through {}: {:?}\n{}",
            side.user(),
            side.proxy(),
            self.ata_status(side),
            self.file(&format!("{name}.out"))
        );
        ata
    }

    /// `dialtone-ata ctl --json ARGS` on `side`'s ATA: its line status.
    fn ata_ctl(&self, side: Side, args: &[&str]) -> Result<LineStatus, String> {
        let mut all = vec!["ctl", "--control", ATA_CONTROL, "--json"];
        all.extend_from_slice(args);
        let output = self.exec(self.namespace(side), ATA, &all);
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("ctl {args:?}: {e}"))
    }

    fn ata_status(&self, side: Side) -> Result<LineStatus, String> {
        self.ata_ctl(side, &["status"])
    }

    fn ata_command(&self, side: Side, args: &[&str]) {
        self.ata_ctl(side, args)
            .unwrap_or_else(|e| panic!("ATA {} ctl {args:?}: {e}", side.user()));
    }

    /// Polls `side`'s line status (every 100 ms, 10 s at most) until `done` holds; panics
    /// naming `what`, the last status and the logs otherwise.
    fn wait_ata(&self, side: Side, what: &str, done: impl Fn(&LineStatus) -> bool) -> LineStatus {
        let mut last = None;
        for _ in 0..100 {
            match self.ata_status(side) {
                Ok(status) if done(&status) => return status,
                other => last = Some(other),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; last status of ATA {}: {last:?}\n--- ATA 8000\n{}\n--- ATA 9000\n{}\n--- proxy\n{}",
            side.user(),
            tail(&self.file("ata-8000.out")),
            tail(&self.file("ata-9000.out")),
            tail(&self.file("proxy.out")),
        );
    }

    /// One ATA call from `caller` to the other side, hung up by `hangs_up`: both phones
    /// connected, then both back to idle with no call, and the other side saw the far end
    /// hang up (the BYE arrived).
    fn ata_call(&self, caller: Side, hangs_up: Side) {
        let callee = caller.other();
        let what = format!(
            "call {} -> {} hung up by {}",
            caller.user(),
            callee.user(),
            hangs_up.user()
        );
        self.ata_command(caller, &["dial", &format!("{}#", callee.user())]);
        self.wait_ata(caller, &format!("{what}: the caller connected"), |s| {
            s.state == "connected" && s.call.as_ref().is_some_and(|c| c.connected)
        });
        self.wait_ata(callee, &format!("{what}: the callee connected"), |s| {
            s.state == "connected"
                && s.call
                    .as_ref()
                    .is_some_and(|c| c.connected && c.direction == "incoming")
        });
        self.ata_command(hangs_up, &["onhook"]);
        let other = hangs_up.other();
        let idle = |s: &LineStatus| s.state == "idle" && s.call.is_none();
        self.wait_ata(hangs_up, &format!("{what}: idle after hanging up"), idle);
        let told = self.wait_ata(
            other,
            &format!("{what}: the BYE reached the far end"),
            |s| s.call.is_none() && matches!(s.state.as_str(), "idle" | "disconnected"),
        );
        assert_eq!(
            told.last_outcome.as_deref(),
            Some("remote hangup"),
            "{what}: {told:?}"
        );
        if told.hook == "off" {
            // The caller's handset, left off-hook, hears reorder until it is put down.
            self.ata_command(other, &["onhook"]);
        }
        self.wait_ata(other, &format!("{what}: idle at the end"), idle);
    }
}

/// The last 40 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The proxy's trace of one ATA call, checked against the rule: every message it sent left
/// from the listen address on the destination's network, the INVITE reached the callee
/// with that Via and the two Record-Route entries (the callee's side on top), and the ACK,
/// the BYE and the BYE's 200 each came in on one side and went out on the other.
fn check_ata_trace(call_id: &str, trace: &[ProxyMessage], caller: Side, hangs_up: Side) {
    let callee = caller.other();
    let ladder = || {
        trace
            .iter()
            .map(|m| {
                format!(
                    "{} {} {} {}",
                    if m.sent { "out" } else { "in " },
                    m.local,
                    m.remote,
                    m.first_line
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for m in trace.iter().filter(|m| m.sent) {
        assert_eq!(
            network(&m.local),
            network(&m.remote),
            "call {call_id}: `{}` left from {} for {}, a socket on another network:\n{}",
            m.first_line,
            m.local,
            m.remote,
            ladder()
        );
    }
    let invite = trace
        .iter()
        .find(|m| m.sent && m.is("INVITE") && m.remote_ip() == callee.phone_ip())
        .unwrap_or_else(|| panic!("call {call_id}: no INVITE to the callee:\n{}", ladder()));
    assert_eq!(top_via(&invite.text), callee.proxy(), "{}", invite.text);
    assert_eq!(
        route_hosts(&invite.text, "record-route"),
        vec![callee.proxy().to_string(), caller.proxy().to_string()],
        "call {call_id}: the INVITE to the callee needs one Record-Route per side, the \
         callee's on top:\n{}",
        invite.text
    );
    let passed = |what: &str, from: Side, request: bool| {
        let relayed = |sent: bool, side: Side| {
            trace.iter().any(|m| {
                m.sent == sent
                    && m.remote_ip() == side.phone_ip()
                    && if request {
                        m.is(what)
                    } else {
                        m.is("200") && m.cseq_method() == what
                    }
            })
        };
        assert!(
            relayed(false, from) && relayed(true, from.other()),
            "call {call_id}: the {}{what} from {} should pass the proxy to {}:\n{}",
            if request { "" } else { "200 to " },
            from.user(),
            from.other().user(),
            ladder()
        );
    };
    passed("ACK", caller, true);
    passed("BYE", hangs_up, true);
    passed("BYE", hangs_up.other(), false);
}

// ---- the tests ------------------------------------------------------------------------

#[test]
fn atas_on_two_networks_call_each_other_both_ways_and_hang_up_from_each_side() {
    let Some(mut lab) = Lab::create() else {
        return;
    };
    lab.start_proxy(&[]);
    lab.start_ata(Side::A);
    lab.start_ata(Side::B);
    let list = lab.proxy_ctl(&["registrations"]).expect("registrations");
    for (user, source) in [("8000", "198.18.1.10:5070"), ("9000", "198.18.2.10:5070")] {
        assert!(
            list.as_array()
                .into_iter()
                .flatten()
                .any(|r| r["aor"] == user && r["source"] == source),
            "{user} registered from {source}: {list}"
        );
    }

    let calls = [
        (Side::A, Side::A),
        (Side::A, Side::B),
        (Side::B, Side::B),
        (Side::B, Side::A),
    ];
    for (caller, hangs_up) in calls {
        lab.ata_call(caller, hangs_up);
    }

    let table = lab.proxy_ctl(&["calls"]).expect("ctl calls");
    assert_eq!(
        table["active"].as_array().map(Vec::len),
        Some(0),
        "no call left active in the proxy: {table}"
    );
    let recent: Vec<&Value> = table["recent"].as_array().into_iter().flatten().collect();
    assert_eq!(recent.len(), calls.len(), "the calls table: {table}");
    // Which call is which, from the trace (started_at counts seconds): who sent the INVITE
    // and who the BYE.
    let mut seen = Vec::new();
    for call in recent {
        let call_id = call["call_id"].as_str().expect("a Call-ID");
        let trace = lab.proxy_trace(call_id);
        let sender = |method: &str| {
            let from = trace
                .iter()
                .find(|m| !m.sent && m.is(method))
                .map(|m| m.remote_ip().to_string());
            match from.as_deref() {
                Some(ip) if ip == Side::A.phone_ip() => Side::A,
                Some(ip) if ip == Side::B.phone_ip() => Side::B,
                _ => panic!("call {call_id}: no {method} from a phone: {trace:#?}"),
            }
        };
        let (caller, hangs_up) = (sender("INVITE"), sender("BYE"));
        check_ata_trace(call_id, &trace, caller, hangs_up);
        seen.push((caller.user(), hangs_up.user()));
    }
    let mut expected: Vec<_> = calls.iter().map(|(c, h)| (c.user(), h.user())).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected, "(caller, hung up by) of each call");
}

#[test]
fn sipp_calls_from_network_a_to_b_follow_both_record_routes() {
    if !tool_available("sipp") {
        return;
    }
    let Some(mut lab) = Lab::create() else {
        return;
    };
    lab.start_proxy(&[]);
    lab.sipp_calls(Side::A, Side::A.proxy(), Side::B.proxy());
}

#[test]
fn sipp_calls_from_network_b_to_a_follow_both_record_routes() {
    if !tool_available("sipp") {
        return;
    }
    let Some(mut lab) = Lab::create() else {
        return;
    };
    lab.start_proxy(&[]);
    lab.sipp_calls(Side::B, Side::B.proxy(), Side::A.proxy());
}

#[test]
fn an_advertised_host_is_written_on_its_side_and_known_in_routes() {
    if !tool_available("sipp") {
        return;
    }
    let Some(mut lab) = Lab::create() else {
        return;
    };
    lab.start_proxy(&["--advertise", "198.18.2.2:5060=pbx.example.net:5070"]);
    // b's phones see pbx.example.net:5070; a's still see the bound 198.18.1.2:5060.
    lab.sipp_calls(Side::A, Side::A.proxy(), "pbx.example.net:5070");
    lab.sipp_calls(Side::B, "pbx.example.net:5070", Side::A.proxy());
}
