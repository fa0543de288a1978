//! Interop: Twinkle (Debian's `twinkle` 1.10, in its console mode `twinkle -c`) and a
//! `dialtone-ata` line register through `dialtone-proxy` with `--auth all` (each answers the
//! proxy's challenge with its password) and call each other through it, in both directions,
//! Twinkle with its default codec list (speex, G.711 A-law and u-law, GSM), the ATA with PCMU
//! and PCMA. The ATA plays 1000 Hz and Twinkle 500 Hz; the call must carry RTP both ways (the
//! ATA's `dialtone_ata_rtp_packets_received_total`, Twinkle's speaker output growing), and
//! each side must hear the other's tone (Goertzel), not its own.
//!
//! Twinkle runs headless with a HOME of its own: `~/.twinkle/twinkle.cfg` (the user profile)
//! and `~/.twinkle/twinkle.sys` (system settings) from `tests/data/interop/twinkle/`, and an
//! `~/.asoundrc` that gives it ALSA devices without a sound card: its speaker writes raw
//! samples to a file, its microphone reads them from a FIFO that a thread of the test fills
//! in real time (the null device beneath has no clock, so the FIFO is what paces Twinkle's
//! RTP; from a plain file it would read 30 s in a millisecond and send one packet). Twinkle
//! takes commands on its stdin (`auto_answer -a on`, `call`, `bye`, `quit`) and reports
//! registrations and calls on stdout. When a test fails, the console's last lines and the SIP
//! responses in Twinkle's own log (`~/.twinkle/twinkle.log`) are printed.
//!
//! Twinkle binds SIP and RTP on every address, on ports from its settings: the SIP port comes
//! from `free_port` (Twinkle exits at once saying so when another process took it first, and
//! is started again on other ports), the RTP ports from an even range below the kernel's
//! ephemeral ports. Its SIP, RTP and signalling addresses are all 127.0.0.1.
//!
//! Without `twinkle` installed the tests print `skipped: twinkle not installed` locally and
//! fail in CI (`tool_available`).

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;
use dialtone_e2e::{
    ata_line_command, ata_metric, data, free_port, http_get, read_recording, start_ata,
    tool_available, wait_for_ata_metric, wait_for_line, wait_until, AtaProcess, Process, Proxy,
};
use dialtone_media::tone_amplitude;
use serde_json::Value;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA_USER: &str = "8000";
const ATA_PASSWORD: &str = "ata-8000-secret";
const TWINKLE_USER: &str = "7200";
const TWINKLE_PASSWORD: &str = "twinkle-7200-secret";
const ATA_TONE: f64 = 1000.0;
const TWINKLE_TONE: f64 = 500.0;
/// Every wait for Twinkle, the ATA or the proxy.
const WAIT: Duration = Duration::from_secs(15);
/// RTP packets (20 ms each) the ATA must have received before hanging up: 1.5 s.
const ATA_PACKETS: f64 = 75.0;
/// Audio Twinkle must have played (raw 8 kHz 16-bit) before hanging up: 1 s.
const TWINKLE_HEARD_BYTES: u64 = 8000 * 2;
/// The microphone's frames: 20 ms at 8 kHz.
const FRAME_SAMPLES: u64 = 160;

/// `template` with each `%NAME%` replaced.
fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("%{name}%"), value)
        })
}

/// How many RTP port ranges this test binary has handed out.
static RTP_RANGES: AtomicU32 = AtomicU32::new(0);

/// An even port in 30000-32759 with it and the next five free for UDP on every address (lines
/// 1 and 2 of Twinkle take RTP and RTCP from there): below the kernel's ephemeral ports, where
/// `free_port` finds the proxy's, above the 20000-30000 that baresip and linphone use here.
fn rtp_port() -> u16 {
    let first = std::process::id() % 460;
    for _ in 0..460 {
        let n = (first + RTP_RANGES.fetch_add(1, Ordering::Relaxed)) % 460;
        let port = 30000 + 6 * n as u16;
        let free = (port..port + 6).all(|p| UdpSocket::bind(("0.0.0.0", p)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free RTP ports in 30000-32759");
}

/// Twinkle's microphone: a FIFO that a thread fills with the tone in real time, from each
/// time Twinkle opens it (a call starts) until Twinkle closes it (the call ends).
struct Microphone {
    fifo: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Microphone {
    fn start(fifo: PathBuf, hz: f64) -> Microphone {
        let made = Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made, "mkfifo {}", fifo.display());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (fifo, stop) = (fifo.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut sample: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Blocks until Twinkle opens its microphone (or the drop below does).
                    let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&fifo) else {
                        return;
                    };
                    let start = Instant::now();
                    let mut frames: u32 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let frame: Vec<u8> = (sample..sample + FRAME_SAMPLES)
                            .flat_map(|i| {
                                let t = i as f64 / 8000.0;
                                (((std::f64::consts::TAU * hz * t).sin() * 8000.0) as i16)
                                    .to_le_bytes()
                            })
                            .collect();
                        // Twinkle closed the microphone: the call ended.
                        if pipe.write_all(&frame).is_err() {
                            break;
                        }
                        sample += FRAME_SAMPLES;
                        frames += 1;
                        // The audio clock: frame n is due at n x 20 ms.
                        let due = start + Duration::from_millis(20) * frames;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
            })
        };
        Microphone {
            fifo,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Microphone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Opening for reading and writing never blocks, and releases a writer blocked in open.
        let unblock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.fifo);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(unblock);
    }
}

/// One Twinkle with its HOME and command line (its stdin).
struct Twinkle {
    process: Process,
    stdin: ChildStdin,
    home: PathBuf,
    speaker: PathBuf,
    _microphone: Microphone,
}

impl Twinkle {
    /// Starts Twinkle as 7200 registering with `proxy`, answering calls by itself; returns
    /// once it is registered. Starts again on other ports when its SIP port was taken.
    fn start(root: &Path, proxy: SocketAddr) -> Twinkle {
        let mut last = String::new();
        for attempt in 0..5 {
            match Self::try_start(&root.join(format!("twinkle-{attempt}")), proxy) {
                Ok(twinkle) => return twinkle,
                Err(output) => last = output,
            }
        }
        panic!("twinkle did not start in five tries:\n{last}");
    }

    fn try_start(home: &Path, proxy: SocketAddr) -> Result<Twinkle, String> {
        let config = home.join(".twinkle");
        std::fs::create_dir_all(&config).expect("twinkle home");
        let speaker = home.join("speaker.raw");
        let microphone = Microphone::start(home.join("microphone.fifo"), TWINKLE_TONE);
        let template = |name: &str| {
            std::fs::read_to_string(data(&format!("interop/twinkle/{name}")))
                .unwrap_or_else(|e| panic!("tests/data/interop/twinkle/{name}: {e}"))
        };
        let (proxy_text, domain) = (proxy.to_string(), proxy.ip().to_string());
        let (sip_port, rtp_port) = (free_port().to_string(), rtp_port().to_string());
        let files = [
            (config.join("twinkle.cfg"), template("twinkle.cfg")),
            (config.join("twinkle.sys"), template("twinkle.sys")),
            (home.join(".asoundrc"), template("asoundrc")),
        ];
        let values = [
            ("USER", TWINKLE_USER),
            ("PASSWORD", TWINKLE_PASSWORD),
            ("DOMAIN", domain.as_str()),
            ("PROXY", proxy_text.as_str()),
            ("SIP_PORT", sip_port.as_str()),
            ("RTP_PORT", rtp_port.as_str()),
            ("SPEAKER", speaker.to_str().expect("utf8")),
            ("MICROPHONE", microphone.fifo.to_str().expect("utf8")),
        ];
        for (path, text) in files {
            std::fs::write(&path, render(&text, &values)).expect("twinkle settings");
        }
        let out = std::fs::File::create(home.join("twinkle.out")).expect("twinkle output");
        let mut child = Command::new("twinkle")
            .args(["-c", "-f", "twinkle"])
            .env("HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(out.try_clone().expect("twinkle output")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("twinkle starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut twinkle = Twinkle {
            process: Process::adopt(child, "twinkle"),
            stdin,
            home: home.to_owned(),
            speaker,
            _microphone: microphone,
        };
        let mut exited = false;
        let settled = wait_until(WAIT, || {
            exited = matches!(twinkle.process.child.try_wait(), Ok(Some(_)));
            let output = twinkle.output();
            exited || output.contains("registration succeeded") || output.contains("failed")
        });
        let output = twinkle.output();
        if exited || output.contains("Failed to create") {
            return Err(output);
        }
        assert!(
            settled && output.contains("registration succeeded"),
            "twinkle did not register:\n{}",
            twinkle.tail()
        );
        twinkle.command("auto_answer -a on");
        twinkle.wait_for_output("Auto answer enabled");
        Ok(twinkle)
    }

    /// A console command; Twinkle runs it when its newline arrives.
    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("twinkle takes {command:?}: {e}"));
    }

    /// What Twinkle printed on its console.
    fn output(&self) -> String {
        std::fs::read_to_string(self.home.join("twinkle.out")).unwrap_or_default()
    }

    fn wait_for_output(&self, text: &str) {
        let seen = wait_until(WAIT, || self.output().contains(text));
        assert!(seen, "twinkle never printed {text:?}");
    }

    /// Bytes Twinkle has played to its speaker (it writes them as the call goes).
    fn played_bytes(&self) -> u64 {
        std::fs::metadata(&self.speaker).map_or(0, |m| m.len())
    }

    /// What Twinkle played: raw 16-bit little-endian samples at 8 kHz (G.711's rate).
    fn received_audio(&self) -> Vec<i16> {
        std::fs::read(&self.speaker)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }

    /// The status lines of the SIP responses Twinkle received, from its log.
    fn responses_received(&self) -> Vec<String> {
        std::fs::read_to_string(self.home.join(".twinkle/twinkle.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("SIP/2.0 "))
            .map(str::to_string)
            .collect()
    }

    fn tail(&self) -> String {
        let output = self.output();
        let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Twinkle {
    fn drop(&mut self) {
        // `quit` unregisters first; the process is killed (by PID) if it lingers. The
        // microphone (a field) goes after, once Twinkle has let go of the FIFO.
        let _ = writeln!(self.stdin, "quit").and_then(|()| self.stdin.flush());
        let exited = wait_until(Duration::from_secs(5), || {
            matches!(self.process.child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            self.process.terminate();
        }
    }
}

/// Dropped in field order: Twinkle and the ATA stop (and unregister) before the proxy.
struct Lab {
    twinkle: Twinkle,
    ata: AtaProcess,
    proxy: Proxy,
    ata_recording: PathBuf,
    _dir: tempfile::TempDir,
}

impl Lab {
    /// The proxy (`--auth all`), the ATA (8000, answering after 0.2 s) and Twinkle (7200),
    /// both registered after answering the proxy's challenge.
    fn start() -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let ata_line = format!("{ATA_USER}:{ATA_PASSWORD}");
        let twinkle_user = format!("{TWINKLE_USER}:{TWINKLE_PASSWORD}");
        let proxy = Proxy::start(
            PROXY,
            &[
                "--auth",
                "all",
                "--user",
                &ata_line,
                "--user",
                &twinkle_user,
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
        let twinkle = Twinkle::start(dir.path(), proxy.sip);
        let lab = Lab {
            twinkle,
            ata,
            proxy,
            ata_recording,
            _dir: dir,
        };
        wait_for_line(lab.ata.control, 1, "the ATA registered", |s| {
            s.registration == "registered"
        });
        for user in [ATA_USER, TWINKLE_USER] {
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

    /// Media flows both ways: the ATA counts Twinkle's RTP packets, and Twinkle's speaker
    /// output grows.
    fn wait_for_media_both_ways(&self) {
        wait_for_ata_metric(
            self.ata.control,
            "dialtone_ata_rtp_packets_received_total",
            ATA_PACKETS,
        );
        let played = wait_until(WAIT, || self.twinkle.played_bytes() >= TWINKLE_HEARD_BYTES);
        assert!(
            played,
            "twinkle played {} bytes of the call",
            self.twinkle.played_bytes()
        );
    }

    /// The ATA connected with a G.711 codec (its only ones here), in `direction`.
    fn assert_connected(&self, status: &LineStatus, direction: &str) {
        let call = status.call.as_ref().expect("a call");
        assert_eq!(call.direction, direction, "{status:?}");
        assert!(
            matches!(call.codec.as_deref(), Some("PCMU/8000" | "PCMA/8000")),
            "the ATA and twinkle should agree on G.711: {status:?}"
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
        let twinkle_heard = self.twinkle.received_audio();
        for (who, samples, heard, own) in [
            ("the ATA", &ata_heard, TWINKLE_TONE, ATA_TONE),
            ("twinkle", &twinkle_heard, ATA_TONE, TWINKLE_TONE),
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
                "--- twinkle ({}): responses received {:?}\n{}",
                self.twinkle.home.display(),
                self.twinkle.responses_received(),
                self.twinkle.tail()
            );
        }
    }
}

#[test]
fn an_ata_calls_twinkle_through_the_proxy_with_two_way_audio() {
    if !tool_available("twinkle") || !tool_available("mkfifo") {
        return;
    }
    let lab = Lab::start();
    ata_line_command(
        lab.ata.control,
        1,
        CtlCommand::Dial(format!("{TWINKLE_USER}#")),
    );
    let status = wait_for_line(lab.ata.control, 1, "twinkle answered the ATA", |s| {
        s.state == "connected"
    });
    lab.assert_connected(&status, "outgoing");
    lab.twinkle.wait_for_output("call established");
    lab.wait_for_media_both_ways();
    ata_line_command(lab.ata.control, 1, CtlCommand::OnHook);
    lab.twinkle.wait_for_output("far end ended call");
    wait_for_line(lab.ata.control, 1, "the ATA idle after hanging up", |s| {
        s.state == "idle" && s.call.is_none()
    });
    lab.assert_two_way_audio();
}

#[test]
fn twinkle_calls_an_ata_through_the_proxy_with_two_way_audio() {
    if !tool_available("twinkle") || !tool_available("mkfifo") {
        return;
    }
    let mut lab = Lab::start();
    lab.twinkle
        .command(&format!("call sip:{ATA_USER}@{}", lab.proxy.sip.ip()));
    // Until the ATA answers, a failed call shows on Twinkle's console at once.
    let mut status = None;
    let mut failed = false;
    let settled = wait_until(WAIT, || {
        failed = lab.twinkle.output().contains("call failed");
        let now = lab.ata_status();
        let connected = now.state == "connected";
        status = Some(now);
        connected || failed
    });
    assert!(
        settled && !failed,
        "twinkle's call to the ATA failed{}: twinkle received {:?}, the ATA is {status:?}",
        if failed { "" } else { " to connect in time" },
        lab.twinkle.responses_received(),
    );
    let status = status.unwrap_or_else(|| unreachable!());
    lab.assert_connected(&status, "incoming");
    lab.twinkle.wait_for_output("far end answered call");
    lab.wait_for_media_both_ways();
    lab.twinkle.command("bye");
    wait_for_line(
        lab.ata.control,
        1,
        "the ATA idle after twinkle's BYE",
        |s| s.state == "idle" && s.call.is_none(),
    );
    lab.twinkle.wait_for_output("call ended");
    lab.assert_two_way_audio();
}
