//! End-to-end Opus (RFC 7587): two `dialtone-ata` processes built with `--features opus` call
//! each other directly (A's `--proxy` is B's SIP socket) offering `opus,pcmu`; the SDP must
//! settle on `opus/48000/2`, and each recording must carry the other side's tone (A plays
//! 1000 Hz, B 1500 Hz) after the trip through the Opus encoder and decoder.
//!
//! Compiled only with the test package's `opus` feature:
//! `cargo test -p dialtone-e2e --features opus --test ata_opus`.
#![cfg(feature = "opus")]

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{
    ata_line_command, read_recording, start_ata, wait_for_ata_metric, wait_for_line,
};
use dialtone_media::tone_amplitude;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

#[test]
fn two_atas_negotiate_opus_and_hear_each_others_tone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let b = start_ata(
        ATA,
        &[
            "--line",
            "9000:secret",
            "--register-interval",
            "0",
            "--codecs",
            "opus,pcmu",
            "--audio-in",
            "tone:1500",
            "--audio-out",
            b_wav.to_str().expect("utf8"),
            "--auto-answer",
            "0.2",
        ],
    );
    let b_sip = b.sip.to_string();
    let a = start_ata(
        ATA,
        &[
            "--line",
            "8000:secret",
            "--register-interval",
            "0",
            "--proxy",
            &b_sip,
            "--codecs",
            "opus,pcmu",
            "--audio-in",
            "tone:1000",
            "--audio-out",
            a_wav.to_str().expect("utf8"),
        ],
    );

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    for (control, who) in [(a.control, "A"), (b.control, "B")] {
        let status = wait_for_line(control, 1, &format!("{who} connected"), |s| {
            s.call.as_ref().is_some_and(|c| c.connected)
        });
        let codec = status.call.and_then(|c| c.codec).unwrap_or_default();
        assert!(
            codec.eq_ignore_ascii_case("opus/48000/2"),
            "{who} negotiated {codec}, not opus/48000/2"
        );
    }
    // 2 s of audio each way.
    wait_for_ata_metric(a.control, "dialtone_ata_rtp_packets_received_total", 100.0);
    wait_for_ata_metric(b.control, "dialtone_ata_rtp_packets_received_total", 100.0);
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE", |s| {
        s.state == "idle" && s.call.is_none()
    });
    wait_for_line(a.control, 1, "A idle", |s| s.state == "idle");

    let level = |samples: &[i16], hz: f64| tone_amplitude(samples, hz, 8000);
    let heard_by_b = read_recording(&b_wav);
    let heard_by_a = read_recording(&a_wav);
    let (b_at_1000, b_at_1500) = (level(&heard_by_b, 1000.0), level(&heard_by_b, 1500.0));
    let (a_at_1500, a_at_1000) = (level(&heard_by_a, 1500.0), level(&heard_by_a, 1000.0));
    assert!(
        b_at_1000 > 5.0 * b_at_1500,
        "B should hear A's 1000 Hz through Opus: {b_at_1000} vs 1500 Hz {b_at_1500}"
    );
    assert!(
        a_at_1500 > 5.0 * a_at_1000,
        "A should hear B's 1500 Hz through Opus: {a_at_1500} vs 1000 Hz {a_at_1000}"
    );
}
