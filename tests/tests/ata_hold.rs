//! End-to-end hold and resume (RFC 3264 section 8.4) with re-INVITEs: A and B talk directly;
//! a hook flash on A sends a re-INVITE with `a=sendonly`, B answers `recvonly` and stops
//! sending, so A stops receiving RTP while B still hears A; a second flash sends
//! `a=sendrecv` and B's audio comes back.

use std::net::SocketAddr;
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{ata_line_command, ata_metric, start_ata, wait_for_line, wait_until};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const RECEIVED: &str = "dialtone_ata_rtp_packets_received_total";

/// Packets each of `controls` received over the same `window` (the metric is updated once a
/// second, so the window starts after one update has passed).
fn received_during<const N: usize>(controls: [SocketAddr; N], window: Duration) -> [f64; N] {
    std::thread::sleep(Duration::from_millis(1100));
    let before = controls.map(|c| ata_metric(c, RECEIVED));
    std::thread::sleep(window);
    let after = controls.map(|c| ata_metric(c, RECEIVED));
    std::array::from_fn(|i| after[i] - before[i])
}

#[test]
fn a_flash_holds_the_call_with_a_sendonly_reinvite_and_a_second_flash_resumes_it() {
    let b = start_ata(
        ATA,
        &[
            "--line",
            "9000:x",
            "--register-interval",
            "0",
            "--audio-in",
            "tone:1500",
            "--auto-answer",
            "0.2",
        ],
    );
    let b_sip = b.sip.to_string();
    let a = start_ata(
        ATA,
        &[
            "--line",
            "8000:x",
            "--register-interval",
            "0",
            "--proxy",
            &b_sip,
            "--audio-in",
            "tone:1000",
        ],
    );
    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "A connected", |s| {
        s.call.as_ref().is_some_and(|c| c.connected)
    });
    let flowing = wait_until(Duration::from_secs(5), || {
        ata_metric(a.control, RECEIVED) >= 50.0
    });
    assert!(flowing, "A hears B before the hold");

    ata_line_command(a.control, 1, CtlCommand::Flash);
    let window = Duration::from_secs(2);
    let [a_on_hold, b_on_hold] = received_during([a.control, b.control], window);
    assert!(
        a_on_hold < 5.0,
        "B stops sending to A on hold: A received {a_on_hold} packets in {window:?}"
    );
    assert!(
        b_on_hold > 50.0,
        "A (sendonly) still sends to B: B received {b_on_hold} packets in {window:?}"
    );

    ata_line_command(a.control, 1, CtlCommand::Flash);
    let [a_resumed] = received_during([a.control], window);
    assert!(
        a_resumed > 50.0,
        "B sends again after resume: A received {a_resumed} packets in {window:?}"
    );
    let status = ata_line_command(a.control, 1, CtlCommand::Status);
    assert_eq!(status.state, "connected");
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle", |s| s.state == "idle");
}
