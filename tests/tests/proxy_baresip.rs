//! Interop: two baresip user agents call each other through `dialtone-proxy` on loopback.
//! 7000 answers by itself (`answermode=auto`), 7001 dials `sip:7000@PROXY` and hangs up.
//! The proxy must register both, relay the INVITE so that both sides log `Call established`,
//! list the call (From 7001, To 7000) under `/api/calls`, and relay the BYE so that both log
//! `terminated` and the call moves to the ended ones (`recent`). Media flows directly between
//! the two (the proxy only record-routes): each baresip plays its own tone from a WAV file and
//! must hear the other's (Goertzel), not its own. With `--auth all` the same call runs after
//! baresip has answered the proxy's challenges to its REGISTER and its INVITE.
//!
//! baresip (Debian's 1.0) runs headless from a temporary config directory: no sound card
//! (`aufile` is the microphone; the `sndfile` filter dumps what is decoded to `*-dec.wav`,
//! since 1.0's `aufile` has no player), RTP on 127.0.0.1 (`net_interface`), commands on its
//! stdin (`stdio`, which works from a pipe after warning that it has no terminal), and SIP on
//! a port the kernel picks. No baresip port comes from `free_port`: a parallel test can take
//! such a port before baresip binds it, and baresip only logs a console that failed to listen
//! and runs on, so commands meant for it reached the other test's baresip.
//!
//! Without `baresip` installed the tests print `skipped: baresip not installed` locally and
//! fail in CI (`tool_available`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use dialtone_e2e::proxy_api::{self, assert_register_challenged};
use dialtone_e2e::tone::{assert_hears_other_tone, sine};
use dialtone_e2e::{
    http_get, read_recording, tool_available, wait_until, write_wav_8k, Process, Proxy,
};
use serde_json::Value;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
/// What the caller (7001) plays.
const CALLER_TONE: f64 = 1000.0;
/// What the callee (7000) plays.
const CALLEE_TONE: f64 = 600.0;
/// Every wait for baresip or the proxy.
const WAIT: Duration = Duration::from_secs(15);
/// Decoded audio each side must have dumped before the caller hangs up: one second.
const HEARD_BYTES: u64 = 44 + 8000 * 2;

/// One baresip with its config directory and command line (its stdin).
struct Baresip {
    process: Process,
    stdin: ChildStdin,
    user: &'static str,
    dir: PathBuf,
}

impl Baresip {
    /// Starts baresip as `user@PROXY` in `root/user`, registering with `proxy`, playing `tone`.
    fn start(root: &Path, proxy: SocketAddr, user: &'static str, account: &str, tone: f64) -> Self {
        let dir = root.join(user);
        std::fs::create_dir(&dir).expect("baresip dir");
        let microphone = dir.join("in.wav");
        // 30 s: aufile ends the call when its file ends, long after these tests hang up.
        write_wav_8k(&microphone, &sine(tone, 30));
        // RTP below the kernel's ephemeral range (32768 and up), where `free_port` finds the
        // proxy's ports, and above the ATA's default 16384-16482.
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:0\n\
             net_interface 127.0.0.1\n\
             rtp_ports 20000-30000\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\n\
             module aufile.so\n\
             module sndfile.so\n\
             module stdio.so\n\
             module_app account.so\n\
             module_app menu.so\n\
             snd_path {dir}\n\
             audio_source aufile,{mic}\n\
             audio_player aufile,{dir}/unused.wav\n\
             audio_alert aufile,{dir}/unused.wav\n",
            dir = dir.display(),
            mic = microphone.display(),
        );
        std::fs::write(dir.join("config"), config).expect("baresip config");
        std::fs::write(
            dir.join("accounts"),
            format!("<sip:{user}@{proxy}>;regint=600{account}\n"),
        )
        .expect("baresip accounts");
        let log = std::fs::File::create(dir.join("baresip.log")).expect("baresip log");
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone().expect("baresip log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("baresip starts");
        let stdin = child.stdin.take().expect("piped stdin");
        Baresip {
            process: Process::adopt(child, &format!("baresip {user}")),
            stdin,
            user,
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// Waits for `text` in baresip's output.
    fn wait_for_log(&self, text: &str) {
        let seen = wait_until(WAIT, || self.log().contains(text));
        assert!(seen, "baresip {} never printed {text:?}", self.user);
    }

    /// A menu command; `stdio` runs it when its newline arrives.
    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("baresip {} takes {command:?}: {e}", self.user));
    }

    /// The `sndfile` filter's dump of the decoded (received) audio, once it exists.
    fn received_path(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
    }

    /// Waits until at least `bytes` of received audio are on disk.
    fn wait_for_received_bytes(&self, bytes: u64) {
        let heard = wait_until(WAIT, || {
            self.received_path()
                .and_then(|p| std::fs::metadata(p).ok())
                .is_some_and(|m| m.len() >= bytes)
        });
        assert!(heard, "baresip {} dumped no received audio", self.user);
    }

    /// The received audio, once the call has ended and libsndfile has written the WAV header
    /// (until then the header may count no samples).
    fn received_audio(&self) -> Vec<i16> {
        let mut samples = Vec::new();
        let complete = wait_until(WAIT, || {
            samples = self
                .received_path()
                .filter(|p| hound::WavReader::open(p).is_ok_and(|r| r.len() >= 8000))
                .map(|p| read_recording(&p))
                .unwrap_or_default();
            !samples.is_empty()
        });
        assert!(complete, "baresip {} closed no recording", self.user);
        samples
    }

    /// The last lines of the log, for a failure report.
    fn tail(&self) -> String {
        // The status line is rewritten with `\r`; keep only its latest state.
        let log = self.log();
        let lines: Vec<&str> = log
            .lines()
            .map(|l| l.rsplit('\r').next().unwrap_or(l))
            .collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.process.terminate();
    }
}

/// Dropped in field order: the baresips stop (and unregister) before the proxy does.
struct Lab {
    callee: Baresip,
    caller: Baresip,
    proxy: Proxy,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// The proxy with `flags`, then 7000 (auto-answering) and 7001, both registered.
    fn start(flags: &[&str], authenticate: bool) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let proxy = Proxy::start(PROXY, flags);
        let password = |user: &str| {
            if authenticate {
                format!(";auth_pass={user}")
            } else {
                String::new()
            }
        };
        let callee = Baresip::start(
            dir.path(),
            proxy.sip,
            "7000",
            &format!("{};answermode=auto", password("7000")),
            CALLEE_TONE,
        );
        let caller = Baresip::start(
            dir.path(),
            proxy.sip,
            "7001",
            &password("7001"),
            CALLER_TONE,
        );
        let lab = Lab {
            callee,
            caller,
            proxy,
            _dir: dir,
        };
        for baresip in [&lab.callee, &lab.caller] {
            let registered = wait_until(WAIT, || lab.binding(baresip).is_some());
            assert!(
                registered,
                "{} is not registered: {:?}",
                baresip.user,
                http_get(lab.proxy.http, "/api/registrations")
            );
        }
        lab
    }

    /// `baresip`'s binding in `/api/registrations`.
    fn binding(&self, baresip: &Baresip) -> Option<Value> {
        proxy_api::binding(self.proxy.http, baresip.user)
    }

    /// The calls in `/api/calls` under `key` ("active" or "recent").
    fn calls(&self, key: &str) -> Vec<Value> {
        proxy_api::calls(self.proxy.http, key)
    }

    /// 7001 calls 7000, both sides hear each other for a second, 7001 hangs up, and the proxy
    /// moves the call from `active` to `recent`. Returns the call as listed while it was up.
    fn call_and_hang_up(&mut self) -> Value {
        let (from, to) = (
            format!("sip:7001@{}", self.proxy.sip),
            format!("sip:7000@{}", self.proxy.sip),
        );
        self.caller.command(&format!("/dial {to}"));
        self.callee.wait_for_log("Call established");
        self.caller.wait_for_log("Call established");
        let mut call = None;
        let listed = wait_until(WAIT, || {
            call = self.calls("active").into_iter().next();
            call.is_some()
        });
        assert!(listed, "the proxy lists no active call");
        let call = call.unwrap_or_else(|| unreachable!());
        assert_eq!(call["from"], from.as_str(), "{call}");
        assert_eq!(call["to"], to.as_str(), "{call}");
        assert_eq!(call["ended_at"], Value::Null, "{call}");

        self.callee.wait_for_received_bytes(HEARD_BYTES);
        self.caller.wait_for_received_bytes(HEARD_BYTES);
        self.caller.command("/hangup");
        self.caller.wait_for_log("terminated");
        self.callee.wait_for_log("terminated");
        let ended = wait_until(WAIT, || {
            self.calls("active").is_empty()
                && self.calls("recent").iter().any(|c| {
                    c["call_id"] == call["call_id"]
                        && matches!(
                            (call["started_at"].as_u64(), c["ended_at"].as_u64()),
                            (Some(start), Some(end)) if end >= start
                        )
                })
        });
        assert!(
            ended,
            "the proxy does not list the call as ended after the BYE"
        );
        call
    }

    /// Each side heard the other's tone, and not its own.
    fn assert_two_way_audio(&self) {
        for (listener, heard, own) in [
            (&self.callee, CALLER_TONE, CALLEE_TONE),
            (&self.caller, CALLEE_TONE, CALLER_TONE),
        ] {
            let samples = listener.received_audio();
            assert_hears_other_tone(listener.user, &samples, heard, own);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- /api/calls: {:?}",
                http_get(self.proxy.http, "/api/calls")
            );
            for baresip in [&self.callee, &self.caller] {
                eprintln!(
                    "--- baresip {} ({}), last lines:\n{}",
                    baresip.user,
                    baresip.dir.display(),
                    baresip.tail()
                );
            }
        }
    }
}

#[test]
fn two_baresips_call_each_other_through_the_proxy_with_two_way_audio() {
    if !tool_available("baresip") {
        return;
    }
    let mut lab = Lab::start(&["--auth", "none"], false);
    lab.call_and_hang_up();
    lab.assert_two_way_audio();
}

#[test]
fn two_baresips_answer_the_proxys_challenges_and_call_each_other() {
    if !tool_available("baresip") {
        return;
    }
    let mut lab = Lab::start(
        &[
            "--auth",
            "all",
            "--user",
            "7000:7000",
            "--user",
            "7001:7001",
        ],
        true,
    );
    for baresip in [&lab.callee, &lab.caller] {
        let binding = lab.binding(baresip).expect("registered");
        let call_id = binding["call_id"].as_str().expect("a Call-ID");
        assert_register_challenged(lab.proxy.http, baresip.user, call_id);
    }
    let call = lab.call_and_hang_up();
    let call_id = call["call_id"].as_str().expect("a Call-ID");
    let trace = proxy_api::trace(lab.proxy.http, call_id);
    let invites = trace.iter().filter(|l| l.starts_with("in INVITE")).count();
    assert!(
        trace.iter().any(|l| l.starts_with("out SIP/2.0 407")) && invites == 2,
        "the INVITE should be challenged once, then sent again with credentials: {trace:?}"
    );
    lab.assert_two_way_audio();
}
