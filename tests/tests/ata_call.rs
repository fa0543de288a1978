//! End-to-end: two real `dialtone-ata` processes on loopback call each other, directly (A's
//! `--proxy` is B's SIP socket, registration off) or registered through the real
//! `dialtone-proxy` with digest on REGISTER and INVITE, driven through the control API; the
//! audio each recorded proves two-way media: A's microphone plays 1000 Hz, B's 1500 Hz, and
//! each recording must have its energy at the other's frequency.
//!
//! The ATA binary is built in this package as `e2e-dialtone-ata` (same code as
//! `dialtone-ata`, see `tests/src/bin`), because cargo gives `CARGO_BIN_EXE_*` only for the
//! binaries of the test's own package. Every process is started with ports 0 and reports
//! them on stdout; every wait polls the control API with a bounded number of tries.

use std::path::PathBuf;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;
use dialtone_e2e::{
    ata_line_command, ata_metric, read_recording, wait_for_ata_metric, wait_for_line, AtaProcess,
};
use dialtone_media::tone_amplitude;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

type Ata = AtaProcess;

fn start_ata(args: &[&str]) -> Ata {
    start_ata_with(args, &["--register-interval", "0"])
}

fn start_ata_with(args: &[&str], more: &[&str]) -> Ata {
    let all: Vec<&str> = args.iter().chain(more).copied().collect();
    dialtone_e2e::start_ata(ATA, &all)
}

fn command(ata: &Ata, command: CtlCommand) -> LineStatus {
    ata_line_command(ata.control, 1, command)
}

fn wait_for(ata: &Ata, what: &str, done: impl Fn(&LineStatus) -> bool) -> LineStatus {
    wait_for_line(ata.control, 1, what, done)
}

fn metric(ata: &Ata, name: &str) -> f64 {
    ata_metric(ata.control, name)
}

fn wait_for_metric(ata: &Ata, name: &str, at_least: f64) {
    wait_for_ata_metric(ata.control, name, at_least)
}

fn recording(path: &std::path::Path) -> Vec<i16> {
    read_recording(path)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dialtone-e2e-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn two_atas_call_each_other_and_hear_each_others_tone() {
    let dir = temp_dir("ata-call");
    let (a_wav, b_wav) = (dir.join("a.wav"), dir.join("b.wav"));
    let b = start_ata(&[
        "--line",
        "9000:secret",
        "--audio-in",
        "tone:1500",
        "--audio-out",
        b_wav.to_str().expect("utf8"),
        "--auto-answer",
        "0.2",
    ]);
    let a = start_ata(&[
        "--line",
        "8000:secret",
        "--proxy",
        &b.sip.to_string(),
        "--audio-in",
        "tone:1000",
        "--audio-out",
        a_wav.to_str().expect("utf8"),
    ]);

    command(&a, CtlCommand::Dial("9000#".into()));
    wait_for(&a, "A connected", |s| s.state == "connected");
    let b_status = wait_for(&b, "B connected", |s| s.state == "connected");
    assert_eq!(b_status.call.expect("a call").direction, "incoming");

    // 1.5 s of audio each way (75 packets of 20 ms), counted by the receivers.
    wait_for_metric(&a, "dialtone_ata_rtp_packets_received_total", 75.0);
    wait_for_metric(&b, "dialtone_ata_rtp_packets_received_total", 75.0);

    // A key pressed during the call reaches B as RFC 4733 DTMF.
    command(&a, CtlCommand::Dial("5".into()));
    wait_for(&b, "B to receive DTMF 5", |s| {
        s.received_digits.contains('5')
    });

    command(&a, CtlCommand::OnHook);
    wait_for(&a, "A idle", |s| s.state == "idle" && s.call.is_none());
    wait_for(&b, "B idle after the far end hung up", |s| {
        s.state == "idle" && s.call.is_none()
    });
    assert!(
        metric(
            &a,
            "dialtone_ata_calls_total{direction=\"outgoing\",line=\"8000\",outcome=\"answered\"}"
        ) >= 1.0
    );

    let heard_by_b = recording(&b_wav);
    let heard_by_a = recording(&a_wav);
    let level = |samples: &[i16], hz: f64| tone_amplitude(samples, hz, 8000);
    let (b_at_a, b_at_b) = (level(&heard_by_b, 1000.0), level(&heard_by_b, 1500.0));
    let (a_at_b, a_at_a) = (level(&heard_by_a, 1500.0), level(&heard_by_a, 1000.0));
    assert!(
        b_at_a > 5.0 * b_at_b,
        "B should hear A's 1000 Hz: {b_at_a} vs its own 1500 Hz {b_at_b}"
    );
    assert!(
        a_at_b > 5.0 * a_at_a,
        "A should hear B's 1500 Hz: {a_at_b} vs its own 1000 Hz {a_at_a}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn calling_an_off_hook_ata_gets_busy_tone() {
    let b = start_ata(&["--line", "9000:secret"]);
    let a = start_ata(&["--line", "8000:secret", "--proxy", &b.sip.to_string()]);
    command(&b, CtlCommand::OffHook);
    command(&a, CtlCommand::Dial("9000#".into()));
    let status = wait_for(&a, "A busy", |s| s.state == "busy");
    assert_eq!(status.tone.as_deref(), Some("busy"));
    assert_eq!(status.last_outcome.as_deref(), Some("failed 486"));
    wait_for(&a, "the busy call counted", |_| {
        metric(
            &a,
            "dialtone_ata_calls_total{direction=\"outgoing\",line=\"8000\",outcome=\"busy\"}",
        ) >= 1.0
    });
}

#[test]
fn hanging_up_while_the_callee_rings_cancels_the_call() {
    let b = start_ata(&["--line", "9000:secret"]);
    let a = start_ata(&["--line", "8000:secret", "--proxy", &b.sip.to_string()]);
    command(&a, CtlCommand::Dial("9000#".into()));
    let ringing = wait_for(&b, "B ringing", |s| s.state == "ringing");
    assert!(ringing.ringing);
    wait_for(&a, "A hears ringback", |s| {
        s.tone.as_deref() == Some("ringback")
    });
    command(&a, CtlCommand::OnHook);
    let b_status = wait_for(&b, "B idle after CANCEL", |s| {
        s.state == "idle" && !s.ringing
    });
    assert_eq!(b_status.last_outcome.as_deref(), Some("cancelled"));
}

struct Proxy(std::process::Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free a moment ago (the proxy prints no address, so it needs one given).
fn free_port(udp: bool) -> u16 {
    if udp {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.local_addr().expect("addr").port()
    } else {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }
}

#[test]
fn two_atas_register_with_digest_and_call_through_the_proxy() {
    let sip = format!("127.0.0.1:{}", free_port(true));
    let http = format!("127.0.0.1:{}", free_port(false));
    let _proxy = Proxy(
        std::process::Command::new(env!("CARGO_BIN_EXE_e2e-dialtone-proxy"))
            .args(["--listen", &format!("udp:{sip}"), "--http", &http])
            .args(["--domain", "lab", "--auth", "all"])
            .args(["--user", "8000:pw8000", "--user", "9000:pw9000"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the proxy starts"),
    );
    let start_registered = |line: &str, tone: &str| {
        // The ATA retries a failed REGISTER after 5 s, so it copes with a proxy still starting.
        let args = [
            "--line",
            line,
            "--proxy",
            &sip,
            "--audio-in",
            tone,
            "--auto-answer",
            "0.2",
        ];
        start_ata_with(&args, &["--register-interval", "300"])
    };
    let b = start_registered("9000:pw9000", "tone:1500");
    let a = start_registered("8000:pw8000", "tone:1000");
    for ata in [&a, &b] {
        wait_for(ata, "registration", |s| s.registration == "registered");
    }
    command(&a, CtlCommand::Dial("9000#".into()));
    wait_for(&a, "A connected through the proxy", |s| {
        s.state == "connected"
    });
    wait_for(&b, "B connected through the proxy", |s| {
        s.state == "connected"
    });
    wait_for_metric(&a, "dialtone_ata_rtp_packets_received_total", 25.0);
    wait_for_metric(&b, "dialtone_ata_rtp_packets_received_total", 25.0);
    command(&a, CtlCommand::OnHook);
    wait_for(&b, "B idle after BYE through the proxy", |s| {
        s.state == "idle" && s.call.is_none()
    });
}
