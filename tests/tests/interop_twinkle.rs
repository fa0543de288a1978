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
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::softphone::{render, Console, Softphone, SoftphoneLab, ATA_USER, WAIT};
use dialtone_e2e::tone::sine_sample;
use dialtone_e2e::{ata_line_command, data, free_port, tool_available, wait_for_line, wait_until};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const TWINKLE_USER: &str = "7200";
const TWINKLE_PASSWORD: &str = "twinkle-7200-secret";
const TWINKLE_TONE: f64 = 500.0;
/// Audio Twinkle must have played (raw 8 kHz 16-bit) before hanging up: 1 s.
const TWINKLE_HEARD_BYTES: u64 = 8000 * 2;
/// The microphone's frames: 20 ms at 8 kHz.
const FRAME_SAMPLES: u64 = 160;

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
                            .flat_map(|i| sine_sample(hz, i).to_le_bytes())
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

/// One Twinkle with its HOME and command line (its stdin). Dropped in field order: the
/// microphone goes after Twinkle has quit and let go of the FIFO.
struct Twinkle {
    console: Console,
    speaker: PathBuf,
    _microphone: Microphone,
}

impl Softphone for Twinkle {
    const NAME: &'static str = "twinkle";
    const USER: &'static str = TWINKLE_USER;
    const PASSWORD: &'static str = TWINKLE_PASSWORD;
    const TONE: f64 = TWINKLE_TONE;

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

    fn console(&self) -> &Console {
        &self.console
    }

    /// Twinkle's speaker output grows (it writes it as the call goes).
    fn wait_for_heard_audio(&self) {
        let played = wait_until(WAIT, || self.played_bytes() >= TWINKLE_HEARD_BYTES);
        assert!(
            played,
            "twinkle played {} bytes of the call",
            self.played_bytes()
        );
    }

    /// What Twinkle played: raw 16-bit little-endian samples at 8 kHz (G.711's rate).
    fn received_audio(&self) -> Vec<i16> {
        std::fs::read(&self.speaker)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect()
    }
}

impl Twinkle {
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
        let mut command = Command::new("twinkle");
        command.args(["-c", "-f", "twinkle"]).env("HOME", home);
        let console = Console::start(
            "twinkle",
            command,
            home,
            "twinkle.out",
            ".twinkle/twinkle.log",
            |line| line.trim().is_empty(),
        );
        let mut twinkle = Twinkle {
            console,
            speaker,
            _microphone: microphone,
        };
        let mut exited = false;
        let settled = wait_until(WAIT, || {
            exited = twinkle.console.exited();
            let output = twinkle.console.output();
            exited || output.contains("registration succeeded") || output.contains("failed")
        });
        let output = twinkle.console.output();
        if exited || output.contains("Failed to create") {
            return Err(output);
        }
        assert!(
            settled && output.contains("registration succeeded"),
            "twinkle did not register:\n{}",
            twinkle.console.tail()
        );
        twinkle.console.command("auto_answer -a on");
        twinkle.console.wait_for_output("Auto answer enabled");
        Ok(twinkle)
    }

    /// Bytes Twinkle has played to its speaker.
    fn played_bytes(&self) -> u64 {
        std::fs::metadata(&self.speaker).map_or(0, |m| m.len())
    }
}

/// The proxy, the ATA and Twinkle (7200), both registered after answering the proxy's
/// challenge.
fn start_lab() -> SoftphoneLab<Twinkle> {
    SoftphoneLab::start(PROXY, ATA)
}

#[test]
fn an_ata_calls_twinkle_through_the_proxy_with_two_way_audio() {
    if !tool_available("twinkle") || !tool_available("mkfifo") {
        return;
    }
    let lab = start_lab();
    ata_line_command(
        lab.ata.control,
        1,
        CtlCommand::Dial(format!("{TWINKLE_USER}#")),
    );
    let status = wait_for_line(lab.ata.control, 1, "twinkle answered the ATA", |s| {
        s.state == "connected"
    });
    lab.assert_connected(&status, "outgoing");
    lab.phone.console.wait_for_output("call established");
    lab.wait_for_media_both_ways();
    ata_line_command(lab.ata.control, 1, CtlCommand::OnHook);
    lab.phone.console.wait_for_output("far end ended call");
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
    let mut lab = start_lab();
    lab.phone
        .console
        .command(&format!("call sip:{ATA_USER}@{}", lab.proxy.sip.ip()));
    // Until the ATA answers, a failed call shows on Twinkle's console at once.
    let mut status = None;
    let mut failed = false;
    let settled = wait_until(WAIT, || {
        failed = lab.phone.console.output().contains("call failed");
        let now = lab.ata_status();
        // The line shows "connected" when it answers; the codec follows once the call
        // reports its media started.
        let connected =
            now.state == "connected" && now.call.as_ref().is_some_and(|c| c.codec.is_some());
        status = Some(now);
        connected || failed
    });
    assert!(
        settled && !failed,
        "twinkle's call to the ATA failed{}: twinkle received {:?}, the ATA is {status:?}",
        if failed { "" } else { " to connect in time" },
        lab.phone.console.responses_received(),
    );
    let status = status.unwrap_or_else(|| unreachable!());
    lab.assert_connected(&status, "incoming");
    lab.phone.console.wait_for_output("far end answered call");
    lab.wait_for_media_both_ways();
    lab.phone.console.command("bye");
    wait_for_line(
        lab.ata.control,
        1,
        "the ATA idle after twinkle's BYE",
        |s| s.state == "idle" && s.call.is_none(),
    );
    lab.phone.console.wait_for_output("call ended");
    lab.assert_two_way_audio();
}
