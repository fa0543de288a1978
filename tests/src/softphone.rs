//! Interop with console softphones (linphone's `linphonec`, Twinkle's `twinkle -c`): a
//! [`Console`] starts one and drives it through its stdin, reading what it prints; a
//! [`SoftphoneLab`] puts it and a `dialtone-ata` line behind `dialtone-proxy` with
//! `--auth all`, both registered after answering the proxy's challenge, so that a test can
//! call one from the other and check the call carried each side's tone to the other.
//!
//! What differs between softphones (their settings, how they record what they hear) stays in
//! their test file, behind the [`Softphone`] trait; the ATA's side and the proxy's are here
//! ([`start_tone_ata`] also serves the baresip test, whose console is a UDP socket).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;

use crate::tone::assert_hears_other_tone;
use crate::{
    ata_line_command, ata_metric, http_get, proxy_api, read_recording, start_ata,
    wait_for_ata_metric, wait_for_line, wait_until, AtaProcess, Process, Proxy,
};

/// The ATA's line: its user, its password at the proxy, and the tone it plays.
pub const ATA_USER: &str = "8000";
pub const ATA_PASSWORD: &str = "ata-8000-secret";
pub const ATA_TONE: f64 = 1000.0;
/// Every wait for the softphone, the ATA or the proxy.
pub const WAIT: Duration = Duration::from_secs(15);
/// RTP packets (20 ms each) the ATA must have received before hanging up: 1.5 s.
const ATA_PACKETS: f64 = 75.0;

/// `template` with each `%NAME%` replaced.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("%{name}%"), value)
        })
}

/// Starts the ATA `program` with one `line` (`user:password`) registering with the proxy at
/// `proxy` every 300 s, playing [`ATA_TONE`], recording what it hears to `recording`, and
/// answering calls after 0.2 s.
pub fn start_tone_ata(
    program: &str,
    line: &str,
    proxy: SocketAddr,
    recording: &Path,
) -> AtaProcess {
    start_ata(
        program,
        &[
            "--line",
            line,
            "--proxy",
            &proxy.to_string(),
            "--register-interval",
            "300",
            "--audio-in",
            &format!("tone:{ATA_TONE}"),
            "--audio-out",
            recording.to_str().expect("utf8"),
            "--auto-answer",
            "0.2",
        ],
    )
}

/// A softphone process driven through its console: commands go to its stdin, and what it
/// prints (stdout and stderr) goes to a file in its directory. When dropped it is told to
/// `quit` (it unregisters first), and killed (by its PID) if it lingers.
pub struct Console {
    process: Process,
    stdin: ChildStdin,
    program: &'static str,
    /// The softphone's directory (its settings, output and log).
    pub dir: PathBuf,
    output: PathBuf,
    log: PathBuf,
    noise: fn(&str) -> bool,
}

impl Console {
    /// Starts `command` (the softphone `program` with its arguments and environment), its
    /// output to `dir/output`; `log` (under `dir`) is where it logs the SIP it receives, and
    /// `noise` the console lines a failure report leaves out.
    pub fn start(
        program: &'static str,
        mut command: Command,
        dir: &Path,
        output: &str,
        log: &str,
        noise: fn(&str) -> bool,
    ) -> Console {
        let output = dir.join(output);
        let out =
            std::fs::File::create(&output).unwrap_or_else(|e| panic!("{program} output: {e}"));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::from(
                out.try_clone()
                    .unwrap_or_else(|e| panic!("{program} output: {e}")),
            ))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        Console {
            process: Process::adopt(child, program),
            stdin,
            program,
            dir: dir.to_owned(),
            output,
            log: dir.join(log),
            noise,
        }
    }

    /// A console command; the softphone runs it when its newline arrives.
    pub fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("{} takes {command:?}: {e}", self.program));
    }

    /// What the softphone printed on its console.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits (up to [`WAIT`]) for `text` on the console; panics when it does not come.
    pub fn wait_for_output(&self, text: &str) {
        let seen = wait_until(WAIT, || self.output().contains(text));
        assert!(seen, "{} never printed {text:?}", self.program);
    }

    /// True once the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.process.child.try_wait(), Ok(Some(_)))
    }

    /// The status lines of the SIP responses the softphone received, from its log.
    pub fn responses_received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("SIP/2.0 "))
            .map(str::to_string)
            .collect()
    }

    /// The console's last 30 lines but noise, for a failure report.
    pub fn tail(&self) -> String {
        let output = self.output();
        let lines: Vec<&str> = output.lines().filter(|l| !(self.noise)(l)).collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let exited = wait_until(Duration::from_secs(5), || self.exited());
        if !exited {
            self.process.terminate();
        }
    }
}

/// A softphone a [`SoftphoneLab`] can call and be called by.
pub trait Softphone {
    /// Its name in failure messages ("linphone").
    const NAME: &'static str;
    /// Its user and password at the proxy, and the tone it plays.
    const USER: &'static str;
    const PASSWORD: &'static str;
    const TONE: f64;

    /// Starts it in a directory under `root`, registering with the proxy at `proxy`,
    /// playing [`Self::TONE`], answering calls by itself.
    fn start(root: &Path, proxy: SocketAddr) -> Self;

    fn console(&self) -> &Console;

    /// Waits until it has received a second of the call's audio; panics when it does not.
    fn wait_for_heard_audio(&self);

    /// What it received, once the call has ended.
    fn received_audio(&self) -> Vec<i16>;
}

/// Dropped in field order: the softphone and the ATA stop (and unregister) before the proxy.
pub struct SoftphoneLab<P: Softphone> {
    pub phone: P,
    pub ata: AtaProcess,
    pub proxy: Proxy,
    ata_recording: PathBuf,
    _dir: tempfile::TempDir,
}

impl<P: Softphone> SoftphoneLab<P> {
    /// The proxy (`proxy_program`, `--auth all`), the ATA (`ata_program`, [`ATA_USER`],
    /// answering after 0.2 s) and the softphone, both registered after answering the proxy's
    /// challenge.
    pub fn start(proxy_program: &str, ata_program: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ata_line = format!("{ATA_USER}:{ATA_PASSWORD}");
        let phone_user = format!("{}:{}", P::USER, P::PASSWORD);
        let proxy = Proxy::start(
            proxy_program,
            &["--auth", "all", "--user", &ata_line, "--user", &phone_user],
        );
        let ata_recording = dir.path().join("ata.wav");
        let ata = start_tone_ata(ata_program, &ata_line, proxy.sip, &ata_recording);
        let phone = P::start(dir.path(), proxy.sip);
        let lab = SoftphoneLab {
            phone,
            ata,
            proxy,
            ata_recording,
            _dir: dir,
        };
        wait_for_line(lab.ata.control, 1, "the ATA registered", |s| {
            s.registration == "registered"
        });
        for user in [ATA_USER, P::USER] {
            let mut binding = None;
            let registered = wait_until(WAIT, || {
                binding = proxy_api::binding(lab.proxy.http, user);
                binding.is_some()
            });
            assert!(
                registered,
                "{user} is not registered: {:?}",
                http_get(lab.proxy.http, "/api/registrations")
            );
            let binding = binding.unwrap_or_else(|| unreachable!());
            let call_id = binding["call_id"].as_str().expect("a Call-ID");
            proxy_api::assert_register_challenged(lab.proxy.http, user, call_id);
        }
        lab
    }

    /// The ATA's line 1.
    pub fn ata_status(&self) -> LineStatus {
        ata_line_command(self.ata.control, 1, CtlCommand::Status)
    }

    /// Media flows both ways: the ATA counts the softphone's RTP packets, and the softphone
    /// hears the ATA.
    pub fn wait_for_media_both_ways(&self) {
        wait_for_ata_metric(
            self.ata.control,
            "dialtone_ata_rtp_packets_received_total",
            ATA_PACKETS,
        );
        self.phone.wait_for_heard_audio();
    }

    /// The ATA connected with a G.711 codec (its only ones here), in `direction`.
    pub fn assert_connected(&self, status: &LineStatus, direction: &str) {
        let call = status.call.as_ref().expect("a call");
        assert_eq!(call.direction, direction, "{status:?}");
        assert!(
            matches!(call.codec.as_deref(), Some("PCMU/8000" | "PCMA/8000")),
            "the ATA and {} should agree on G.711: {status:?}",
            P::NAME
        );
    }

    /// Each side heard the other's tone, and not its own.
    pub fn assert_two_way_audio(&self) {
        let mut ata_heard = Vec::new();
        let closed = wait_until(WAIT, || {
            ata_heard = hound::WavReader::open(&self.ata_recording)
                .ok()
                .filter(|r| r.len() >= 8000)
                .map(|_| read_recording(&self.ata_recording))
                .unwrap_or_default();
            !ata_heard.is_empty()
        });
        assert!(closed, "the ATA wrote no recording");
        let phone_heard = self.phone.received_audio();
        assert_hears_other_tone("the ATA", &ata_heard, P::TONE, ATA_TONE);
        assert_hears_other_tone(P::NAME, &phone_heard, ATA_TONE, P::TONE);
    }
}

impl<P: Softphone> Drop for SoftphoneLab<P> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- /api/calls: {:?}",
                http_get(self.proxy.http, "/api/calls")
            );
            eprintln!(
                "--- ATA: {:?}",
                dialtone_ata::ctl::run(self.ata.control, 1, &CtlCommand::Status, false)
            );
            eprintln!(
                "--- ATA RTP packets received: {}",
                ata_metric(self.ata.control, "dialtone_ata_rtp_packets_received_total")
            );
            let console = self.phone.console();
            eprintln!(
                "--- {} ({}): responses received {:?}\n{}",
                P::NAME,
                console.dir.display(),
                console.responses_received(),
                console.tail()
            );
        }
    }
}
