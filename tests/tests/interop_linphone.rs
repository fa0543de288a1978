//! Interop: linphone's console client (`linphonec` 5.1, Debian's `linphone-cli`) and a
//! `dialtone-ata` line register through `dialtone-proxy` with `--auth all` (each answers the
//! proxy's challenge with its password) and call each other through it, in both directions,
//! linphone with its default codec list (opus, speex, PCMU, PCMA, G729...), the ATA with
//! PCMU and PCMA. The ATA plays 1000 Hz and linphone 700 Hz; the call must carry RTP both
//! ways (the ATA's `dialtone_ata_rtp_packets_received_total`, linphone's recording growing),
//! and each side's recording must hold the other's tone (Goertzel), not its own.
//!
//! linphonec runs headless from a temporary directory: its configuration is
//! `tests/data/interop/linphonerc` (SIP and RTP bound to 127.0.0.1, SIP on a random port that
//! linphone binds itself), HOME is a directory of its own (linphone keeps its databases under
//! `~/.local/share/linphone` and refuses to start its SIP stack when that directory is
//! missing), and it takes commands on its stdin: `soundcard use files` (no sound card: it
//! plays `play FILE` as its microphone and writes what it receives to `record FILE`),
//! `autoanswer enable`, `call`, `terminate`, `quit`. Its console output (flushed line by
//! line) says when a call connects or fails. When a test fails, the console's last lines and
//! the SIP responses in linphone's log (`-d 6`) are printed.
//!
//! linphone's INVITE with its default codecs and its credentials is about 1290 bytes, more
//! than 1300 with the proxy's Via and Record-Route: the proxy sends it over TCP (RFC 3261
//! section 18.1.1), which the ATA does not listen on, and must then send it over UDP after
//! all. A proxy that answers 503 instead fails `linphone_calls_an_ata...`, saying so.
//!
//! Without `linphonec` installed the tests print `skipped: linphonec not installed` locally
//! and fail in CI (`tool_available`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;
use dialtone_e2e::{
    ata_line_command, ata_metric, data, http_get, read_recording, start_ata, tool_available,
    wait_for_ata_metric, wait_for_line, wait_until, write_wav_8k, AtaProcess, Process, Proxy,
};
use dialtone_media::tone_amplitude;
use serde_json::Value;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA_USER: &str = "8000";
const ATA_PASSWORD: &str = "ata-8000-secret";
const LINPHONE_USER: &str = "7100";
const LINPHONE_PASSWORD: &str = "linphone-7100-secret";
const ATA_TONE: f64 = 1000.0;
const LINPHONE_TONE: f64 = 700.0;
/// Every wait for linphone, the ATA or the proxy.
const WAIT: Duration = Duration::from_secs(15);
/// RTP packets (20 ms each) the ATA must have received before hanging up: 1.5 s.
const ATA_PACKETS: f64 = 75.0;
/// Received audio linphone must have recorded before hanging up: a WAV header and 1 s.
const LINPHONE_HEARD_BYTES: u64 = 44 + 8000 * 2;

/// `template` with each `%NAME%` replaced.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("%{name}%"), value)
        })
}

/// `seconds` of a sine at `hz`, 8 kHz, a quarter of full scale.
fn tone(hz: f64, seconds: u32) -> Vec<i16> {
    (0..8000 * seconds)
        .map(|i| {
            let t = f64::from(i) / 8000.0;
            ((std::f64::consts::TAU * hz * t).sin() * 8000.0) as i16
        })
        .collect()
}

/// One linphonec with its directory and command line (its stdin).
struct Linphone {
    process: Process,
    stdin: ChildStdin,
    dir: PathBuf,
    recording: PathBuf,
}

impl Linphone {
    /// Starts linphonec as 7100 in `root/linphone`, registering with `proxy`, playing its tone,
    /// recording what it receives, answering calls by itself.
    fn start(root: &Path, proxy: SocketAddr) -> Linphone {
        let dir = root.join("linphone");
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".local/share/linphone")).expect("linphone home");
        let microphone = dir.join("microphone.wav");
        // 30 s, longer than any call here.
        write_wav_8k(&microphone, &tone(LINPHONE_TONE, 30));
        let recording = dir.join("received.wav");
        let template = std::fs::read_to_string(data("interop/linphonerc")).expect("linphonerc");
        let proxy_text = proxy.to_string();
        let domain = proxy.ip().to_string();
        let config = render(
            &template,
            &[
                ("PROXY", &proxy_text),
                ("USER", LINPHONE_USER),
                ("DOMAIN", &domain),
                ("PASSWORD", LINPHONE_PASSWORD),
            ],
        );
        let rc = dir.join("linphonerc");
        std::fs::write(&rc, config).expect("linphonerc");
        let out = std::fs::File::create(dir.join("linphonec.out")).expect("linphonec output");
        let mut child = Command::new("linphonec")
            .arg("-c")
            .arg(&rc)
            .args(["-d", "6", "-l"])
            .arg(dir.join("linphone.log"))
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out.try_clone().expect("linphonec output")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("linphonec starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut linphone = Linphone {
            process: Process::adopt(child, "linphonec"),
            stdin,
            dir,
            recording,
        };
        linphone.command("soundcard use files");
        linphone.command(&format!("play {}", microphone.display()));
        linphone.command(&format!("record {}", linphone.recording.display()));
        linphone.command("autoanswer enable");
        linphone.wait_for_output("Auto answer enabled");
        linphone
    }

    /// A console command; linphonec runs it when its newline arrives.
    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("linphonec takes {command:?}: {e}"));
    }

    /// What linphonec printed on its console.
    fn output(&self) -> String {
        std::fs::read_to_string(self.dir.join("linphonec.out")).unwrap_or_default()
    }

    fn wait_for_output(&self, text: &str) {
        let seen = wait_until(WAIT, || self.output().contains(text));
        assert!(seen, "linphonec never printed {text:?}");
    }

    /// The recording's size on disk (linphone writes it as the call goes).
    fn recorded_bytes(&self) -> u64 {
        std::fs::metadata(&self.recording).map_or(0, |m| m.len())
    }

    /// What linphone received, once the call has ended and linphone has written the WAV
    /// header (zeros until then). Its data chunk claims 44 bytes more than the file holds
    /// (linphone 5.1 counts its header in it), so reading stops where the samples do.
    fn received_audio(&self) -> Vec<i16> {
        let mut samples = Vec::new();
        let complete = wait_until(WAIT, || {
            samples = hound::WavReader::open(&self.recording)
                .ok()
                .map(|reader| {
                    let spec = reader.spec();
                    assert_eq!(
                        (spec.sample_rate, spec.channels),
                        (8000, 1),
                        "linphone's recording of a G.711 call"
                    );
                    reader.into_samples::<i16>().map_while(Result::ok).collect()
                })
                .unwrap_or_default();
            samples.len() >= 8000
        });
        assert!(complete, "linphone closed no recording");
        samples
    }

    /// The status lines of the SIP responses linphone received, from its log.
    fn responses_received(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("linphone.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("SIP/2.0 "))
            .map(str::to_string)
            .collect()
    }

    fn tail(&self) -> String {
        let output = self.output();
        let lines: Vec<&str> = output
            .lines()
            .filter(|l| !l.contains("suitable soundcard"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Linphone {
    fn drop(&mut self) {
        // `quit` unregisters first; the process is killed (by PID) if it lingers.
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let exited = wait_until(Duration::from_secs(5), || {
            matches!(self.process.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            self.process.terminate();
        }
    }
}

/// Dropped in field order: linphone and the ATA stop (and unregister) before the proxy.
struct Lab {
    linphone: Linphone,
    ata: AtaProcess,
    proxy: Proxy,
    ata_recording: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// The proxy (`--auth all`), the ATA (8000, answering after 0.2 s) and linphone (7100),
    /// both registered after answering the proxy's challenge.
    fn start() -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let ata_line = format!("{ATA_USER}:{ATA_PASSWORD}");
        let linphone_user = format!("{LINPHONE_USER}:{LINPHONE_PASSWORD}");
        let proxy = Proxy::start(
            PROXY,
            &[
                "--auth",
                "all",
                "--user",
                &ata_line,
                "--user",
                &linphone_user,
            ],
        );
        let ata_recording = dir.path().join("ata.wav");
        let ata = start_ata(
            ATA,
            &[
                "--line",
                &ata_line,
                "--proxy",
                &proxy.sip.to_string(),
                "--register-interval",
                "300",
                "--audio-in",
                &format!("tone:{ATA_TONE}"),
                "--audio-out",
                ata_recording.to_str().expect("utf8"),
                "--auto-answer",
                "0.2",
            ],
        );
        let linphone = Linphone::start(dir.path(), proxy.sip);
        let lab = Lab {
            linphone,
            ata,
            proxy,
            ata_recording,
            _dir: dir,
        };
        wait_for_line(lab.ata.control, 1, "the ATA registered", |s| {
            s.registration == "registered"
        });
        for user in [ATA_USER, LINPHONE_USER] {
            let mut binding = None;
            let registered = wait_until(WAIT, || {
                binding = lab.binding(user);
                binding.is_some()
            });
            assert!(
                registered,
                "{user} is not registered: {:?}",
                http_get(lab.proxy.http, "/api/registrations")
            );
            let binding = binding.unwrap_or_else(|| unreachable!());
            let call_id = binding["call_id"].as_str().expect("a Call-ID");
            let trace = lab.trace(call_id);
            assert!(
                trace
                    .iter()
                    .any(|l| l.starts_with("out SIP/2.0 401") || l.starts_with("out SIP/2.0 407")),
                "{user}'s REGISTER was not challenged: {trace:?}"
            );
        }
        lab
    }

    fn api(&self, path: &str) -> Value {
        let body = http_get(self.proxy.http, path).unwrap_or_else(|| panic!("GET {path}"));
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn binding(&self, user: &str) -> Option<Value> {
        self.api("/api/registrations")
            .as_array()?
            .iter()
            .find(|b| b["aor"] == user)
            .cloned()
    }

    /// The messages of `call_id` the proxy recorded, as first lines with their direction.
    fn trace(&self, call_id: &str) -> Vec<String> {
        self.api(&format!("/api/trace/{call_id}"))["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .map(|m| {
                        let field = |key: &str| m[key].as_str().unwrap_or_default().to_string();
                        format!("{} {}", field("direction"), field("first_line"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn ata_status(&self) -> LineStatus {
        ata_line_command(self.ata.control, 1, CtlCommand::Status)
    }

    /// Media flows both ways: the ATA counts linphone's RTP packets, and linphone's recording
    /// of the ATA grows.
    fn wait_for_media_both_ways(&self) {
        wait_for_ata_metric(
            self.ata.control,
            "dialtone_ata_rtp_packets_received_total",
            ATA_PACKETS,
        );
        let recorded = wait_until(WAIT, || {
            self.linphone.recorded_bytes() >= LINPHONE_HEARD_BYTES
        });
        assert!(
            recorded,
            "linphone recorded {} bytes of the call",
            self.linphone.recorded_bytes()
        );
    }

    /// The ATA connected with a G.711 codec (its only ones here), in `direction`.
    fn assert_connected(&self, status: &LineStatus, direction: &str) {
        let call = status.call.as_ref().expect("a call");
        assert_eq!(call.direction, direction, "{status:?}");
        assert!(
            matches!(call.codec.as_deref(), Some("PCMU/8000" | "PCMA/8000")),
            "the ATA and linphone should agree on G.711: {status:?}"
        );
    }

    /// Each side heard the other's tone, and not its own.
    fn assert_two_way_audio(&self) {
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
        let linphone_heard = self.linphone.received_audio();
        for (who, samples, heard, own) in [
            ("the ATA", &ata_heard, LINPHONE_TONE, ATA_TONE),
            ("linphone", &linphone_heard, ATA_TONE, LINPHONE_TONE),
        ] {
            let (other, itself) = (
                tone_amplitude(samples, heard, 8000),
                tone_amplitude(samples, own, 8000),
            );
            assert!(
                other > 1000.0 && other > 5.0 * itself.max(1.0),
                "{who} should hear {heard} Hz (amplitude {other:.0}) over its own {own} Hz \
                 ({itself:.0}) in {} samples",
                samples.len()
            );
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
            eprintln!(
                "--- ATA: {:?}",
                dialtone_ata::ctl::run(self.ata.control, 1, &CtlCommand::Status, false)
            );
            eprintln!(
                "--- ATA RTP packets received: {}",
                ata_metric(self.ata.control, "dialtone_ata_rtp_packets_received_total")
            );
            eprintln!(
                "--- linphone ({}): responses received {:?}\n{}",
                self.linphone.dir.display(),
                self.linphone.responses_received(),
                self.linphone.tail()
            );
        }
    }
}

#[test]
fn an_ata_calls_linphone_through_the_proxy_with_two_way_audio() {
    if !tool_available("linphonec") {
        return;
    }
    let lab = Lab::start();
    ata_line_command(
        lab.ata.control,
        1,
        CtlCommand::Dial(format!("{LINPHONE_USER}#")),
    );
    let status = wait_for_line(lab.ata.control, 1, "linphone answered the ATA", |s| {
        s.state == "connected"
    });
    lab.assert_connected(&status, "outgoing");
    lab.linphone.wait_for_output("Media streams established");
    lab.wait_for_media_both_ways();
    ata_line_command(lab.ata.control, 1, CtlCommand::OnHook);
    lab.linphone.wait_for_output("ended");
    wait_for_line(lab.ata.control, 1, "the ATA idle after hanging up", |s| {
        s.state == "idle" && s.call.is_none()
    });
    lab.assert_two_way_audio();
}

#[test]
fn linphone_calls_an_ata_through_the_proxy_with_two_way_audio() {
    if !tool_available("linphonec") {
        return;
    }
    let mut lab = Lab::start();
    lab.linphone
        .command(&format!("call sip:{ATA_USER}@{}", lab.proxy.sip));
    // Until the ATA answers, a failed call shows on linphone's console at once.
    let mut status = None;
    let mut failed = false;
    let settled = wait_until(WAIT, || {
        failed = lab.linphone.output().contains(" error.");
        let now = lab.ata_status();
        let connected = now.state == "connected";
        status = Some(now);
        connected || failed
    });
    let responses = lab.linphone.responses_received();
    let hint = if responses.iter().any(|r| r.starts_with("SIP/2.0 503")) {
        " (a 503 from the proxy here: it sent the INVITE, over 1300 bytes, over TCP to an \
         ATA that listens on UDP only, and did not go back to UDP when the connection was \
         refused)"
    } else {
        ""
    };
    assert!(
        settled && !failed,
        "linphone's call to the ATA failed{}{hint}: linphone received {responses:?}, the ATA \
         is {status:?}",
        if failed { "" } else { " to connect in time" },
    );
    let status = status.unwrap_or_else(|| unreachable!());
    lab.assert_connected(&status, "incoming");
    lab.linphone.wait_for_output("Media streams established");
    lab.wait_for_media_both_ways();
    lab.linphone.command("terminate");
    wait_for_line(
        lab.ata.control,
        1,
        "the ATA idle after linphone's BYE",
        |s| s.state == "idle" && s.call.is_none(),
    );
    lab.linphone.wait_for_output("ended");
    lab.assert_two_way_audio();
}
