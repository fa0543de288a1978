//! Everything the end-to-end tests in `tests/tests/` share. A file there holds tests only; a
//! helper two test files need lives here, in the module of its concern, and is named by its
//! path (`dialtone_e2e::sip_client::UdpPeer`).
//!
//! Here at the root, what nearly every test uses: free loopback ports, processes that are
//! stopped (by PID) when the test ends, the proxy and the ATA started on loopback, the ATA's
//! control API, waiting for readiness by polling an event instead of sleeping, the seed and
//! torture test data, WAV recordings, and the rule for interop tools: a missing tool skips
//! the test locally (saying so) and fails it in CI. The modules:
//!
//! - [`sip_client`]: UDP and TCP SIP peers for tests that check each message the proxy sends;
//! - [`sip_message`]: the message text they send (seed messages, requests, responses, digest);
//! - [`sip_phone`]: a phone on a UDP socket that runs whole flows (register, call, hang up);
//! - [`proxy_api`]: the proxy's admin HTTP API as JSON (bindings, calls, traces);
//! - [`redis`]: a real redis-server for the Redis location store's tests;
//! - [`softphone`]: console softphones (linphone, Twinkle) and an ATA behind the proxy;
//! - [`tone`]: the tones a call's sides play, and the check that each heard the other's;
//! - [`recording`]: an ATA's earpiece recording read during the call, one phase at a time;
//! - [`ata_line`]: an ATA with one line that plays a tone and records, driven as a person would;
//! - [`kamailio`]: Debian's Kamailio started on a free port as the SIP server of interop tests;
//! - [`dns`]: a DNS server of the test's own (SRV, NAPTR, A), for `--dns` of proxy and ATA.

pub mod ata_line;
pub mod dns;
pub mod kamailio;
pub mod proxy_api;
pub mod recording;
pub mod redis;
pub mod sip_client;
pub mod sip_message;
pub mod sip_phone;
pub mod softphone;
pub mod tone;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A file of the test data (`tests/data/...`).
pub fn data(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(path)
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound then released; racy in theory, the
/// kernel hands out ephemeral ports round-robin so reuse within a test run is unlikely).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let Ok(tcp) = TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = tcp.local_addr() else { continue };
        if UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free loopback port");
}

/// How many processes this test binary has started (names their log files).
static PROCESS_STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A child process killed (by its PID) and reaped when dropped. Its log is deleted then too,
/// unless the test is failing (the log is kept to read).
pub struct Process {
    pub child: Child,
    pub name: String,
    log: Option<PathBuf>,
}

impl Process {
    /// Starts `program` with `args`, stdout and stderr to files under the temp dir.
    pub fn start(program: &str, args: &[String], name: &str) -> Process {
        // Unique per start: the tests of one binary run in parallel threads of one process.
        let n = PROCESS_STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!(
            "dialtone-e2e-{name}-{}-{n}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Process {
            child,
            name: name.to_string(),
            log: Some(log),
        }
    }

    /// Takes charge of a child the test started itself (its output is the test's business).
    pub fn adopt(child: Child, name: &str) -> Process {
        Process {
            child,
            name: name.to_string(),
            log: None,
        }
    }

    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process has written to stdout and stderr so far (empty for an adopted one).
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|log| std::fs::read_to_string(log).ok())
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit (up to 10 s, then SIGKILL).
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL, as a crash would.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // A killed e2e-dialtone-proxy cannot remove the data directory it made for itself
        // (src/bin/e2e-dialtone-proxy.rs): half a megabyte per proxy, per test run.
        let own_data =
            std::env::temp_dir().join(format!("dialtone-e2e-proxy-data-{}", self.child.id()));
        let _ = std::fs::remove_dir_all(own_data);
        if let (Some(log), false) = (&self.log, std::thread::panicking()) {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// GET `path` from `addr`; `None` unless the status is 200.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

/// GET `path` from `addr`: the status and the body, whatever the status (`/readyz`'s 503
/// says why).
pub fn http_get_status(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A running dialtone-proxy on free loopback ports.
pub struct Proxy {
    pub process: Process,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub args: Vec<String>,
}

impl Proxy {
    /// Starts the proxy with UDP and TCP on one free port, the admin HTTP on another, plus
    /// `extra` flags; returns once `/readyz` answers. A port is free when chosen but another
    /// test may take it before the proxy binds it; then the proxy exits saying so, and it is
    /// started again on other ports (up to five times).
    pub fn start(program: &str, extra: &[&str]) -> Proxy {
        let mut last_failure = String::new();
        for _ in 0..5 {
            let sip = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
            match Self::try_start(program, sip, http, Self::args_for(sip, http, extra)) {
                Ok(proxy) => return proxy,
                Err(failure) if failure.contains("in use") => last_failure = failure,
                Err(failure) => panic!("dialtone-proxy did not start: {failure}"),
            }
        }
        panic!("dialtone-proxy found no free ports in five tries: {last_failure}");
    }

    /// The flags [`Proxy::start`] gives: UDP and TCP on `sip`, the admin HTTP on `http`, two
    /// workers, then `extra`. For a test that must know the ports before the proxy starts
    /// (to write them in DNS) and passes them to [`Proxy::start_with_args`].
    pub fn args_for(sip: SocketAddr, http: SocketAddr, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--listen".to_string(),
            format!("udp:{sip}"),
            "--listen".to_string(),
            format!("tcp:{sip}"),
            "--http".to_string(),
            http.to_string(),
            "--workers".to_string(),
            "2".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Starts `count` proxies on ports chosen before any starts, for a test that must write
    /// them somewhere first (SRV records naming every node): `setup` gets their SIP
    /// addresses and returns each proxy's extra flags. When a port was taken meanwhile (by
    /// another test), the proxies started are stopped and it all begins again on other
    /// ports, five times at most.
    pub fn start_several(
        program: &str,
        count: usize,
        setup: impl Fn(&[SocketAddr]) -> Vec<Vec<String>>,
    ) -> Vec<Proxy> {
        let mut last_failure = String::new();
        'attempt: for _ in 0..5 {
            let ports: Vec<(SocketAddr, SocketAddr)> = (0..count)
                .map(|_| {
                    let port = || SocketAddr::from(([127, 0, 0, 1], free_port()));
                    (port(), port())
                })
                .collect();
            let sips: Vec<SocketAddr> = ports.iter().map(|(sip, _)| *sip).collect();
            let extras = setup(&sips);
            let mut started = Vec::new();
            for ((sip, http), extra) in ports.into_iter().zip(extras) {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                match Self::try_start(program, sip, http, Self::args_for(sip, http, &extra)) {
                    Ok(proxy) => started.push(proxy),
                    Err(failure) if failure.contains("in use") => {
                        last_failure = failure;
                        continue 'attempt;
                    }
                    Err(failure) => panic!("dialtone-proxy did not start: {failure}"),
                }
            }
            return started;
        }
        panic!("dialtone-proxy found no free ports in five tries: {last_failure}");
    }

    /// A new process on this proxy's addresses and flags (after it was killed): what a node
    /// that comes back looks like to its phones.
    pub fn restart(program: &str, dead: &Proxy) -> Proxy {
        Self::start_with_args(program, dead.sip, dead.http, dead.args.clone())
    }

    /// Starts (or restarts) with exactly `args`.
    pub fn start_with_args(
        program: &str,
        sip: SocketAddr,
        http: SocketAddr,
        args: Vec<String>,
    ) -> Proxy {
        Self::try_start(program, sip, http, args)
            .unwrap_or_else(|failure| panic!("dialtone-proxy did not start: {failure}"))
    }

    /// Starts and waits for `/readyz`; when the process exits first (or 15 s pass), the error
    /// is what it logged.
    fn try_start(
        program: &str,
        sip: SocketAddr,
        http: SocketAddr,
        args: Vec<String>,
    ) -> Result<Proxy, String> {
        let mut process = Process::start(program, &args, "proxy");
        let mut exited = false;
        let ready = wait_until(Duration::from_secs(15), || {
            exited = matches!(process.child.try_wait(), Ok(Some(_)));
            exited || http_get(http, "/readyz").is_some()
        });
        if ready && !exited {
            return Ok(Proxy {
                process,
                sip,
                http,
                args,
            });
        }
        let log = process.log_text();
        Err(format!(
            "{} on {http}: {}",
            if exited { "exited" } else { "not ready" },
            log.lines().last().unwrap_or("(no output)")
        ))
    }
}

/// True when `tool` is on the PATH. When it is not: in CI (`CI` set) the test fails, since
/// `.ci/run` installs every tool; locally it prints "skipped: TOOL not installed".
pub fn tool_available(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is not installed, but CI must install it (.ci/run)");
        }
        eprintln!("skipped: {tool} not installed");
    }
    found
}

/// A `dialtone-ata` process started by [`start_ata`]: its SIP and control addresses as it
/// printed them; killed (by its PID) and reaped when dropped.
pub struct AtaProcess {
    pub child: Child,
    pub sip: SocketAddr,
    pub control: SocketAddr,
}

impl AtaProcess {
    /// The process's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for AtaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the ATA `program` with `args` and `--control 127.0.0.1:0`, and waits (20 s at
/// most) for the `sip udp:` and `control http://` lines it prints once bound. Its stderr
/// goes to `dialtone-e2e-ata-<pid>.log` in the temp dir.
pub fn start_ata(program: &str, args: &[&str]) -> AtaProcess {
    use std::io::BufRead;
    let log = std::env::temp_dir().join(format!("dialtone-e2e-ata-{}.log", std::process::id()));
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let mut child = Command::new(program)
        .args(args)
        .args(["--control", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut sip, mut control) = (None, None);
    while sip.is_none() || control.is_none() {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the ATA did not print its addresses (args {args:?})");
        };
        if let Some(addr) = line.strip_prefix("sip udp:") {
            sip = addr.parse().ok();
        }
        if let Some(addr) = line.strip_prefix("control http://") {
            control = addr.parse().ok();
        }
    }
    AtaProcess {
        child,
        sip: sip.unwrap_or_else(|| unreachable!()),
        control: control.unwrap_or_else(|| unreachable!()),
    }
}

/// Runs `command` on line `line` of the ATA at `control` and returns the line's status.
pub fn ata_line_command(
    control: SocketAddr,
    line: usize,
    command: dialtone_ata::ctl::CtlCommand,
) -> dialtone_ata::line::LineStatus {
    let json = dialtone_ata::ctl::run(control, line, &command, true)
        .unwrap_or_else(|e| panic!("the control API at {control} answers: {e}"));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("a line status: {e}: {json}"))
}

/// Polls line `line`'s status every 100 ms (10 s at most) until `done` holds; panics naming
/// `what` and the last status otherwise.
pub fn wait_for_line(
    control: SocketAddr,
    line: usize,
    what: &str,
    done: impl Fn(&dialtone_ata::line::LineStatus) -> bool,
) -> dialtone_ata::line::LineStatus {
    let mut last = None;
    for _ in 0..100 {
        let status = ata_line_command(control, line, dialtone_ata::ctl::CtlCommand::Status);
        if done(&status) {
            return status;
        }
        last = Some(status);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}; last status {last:?}");
}

/// The sum of every sample of the metric whose line starts with `name` (with or without
/// labels) on the ATA's `/metrics`; 0 when absent.
pub fn ata_metric(control: SocketAddr, name: &str) -> f64 {
    http_get(control, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (10 s at most) until [`ata_metric`] reaches `at_least`.
pub fn wait_for_ata_metric(control: SocketAddr, name: &str, at_least: f64) {
    let reached = wait_until(Duration::from_secs(10), || {
        ata_metric(control, name) >= at_least
    });
    assert!(
        reached,
        "{name} never reached {at_least} (now {})",
        ata_metric(control, name)
    );
}

/// The samples of an ATA recording, checked to be 8 kHz mono.
pub fn read_recording(path: &std::path::Path) -> Vec<i16> {
    let reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("a valid WAV recording at {}: {e}", path.display()));
    assert_eq!(reader.spec().sample_rate, 8000, "{}", path.display());
    assert_eq!(reader.spec().channels, 1, "{}", path.display());
    reader
        .into_samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect()
}

/// Writes 8 kHz mono 16-bit `samples` to `path`.
pub fn write_wav_8k(path: &std::path::Path, samples: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create WAV");
    for &sample in samples {
        writer.write_sample(sample).expect("write sample");
    }
    writer.finalize().expect("finalize WAV");
}
