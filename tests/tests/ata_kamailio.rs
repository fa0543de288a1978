//! Interop: two `dialtone-ata` processes register with Debian's Kamailio (a minimal
//! registrar and loose-routing proxy, `tests/kamailio/ata-lab.cfg`) and A calls B through it;
//! each recording must carry the other side's tone (A plays 1000 Hz, B 1500 Hz), measured
//! with Goertzel. Kamailio is started and stopped by [`dialtone_e2e::kamailio::Kamailio`].
//!
//! Without `kamailio` installed the test prints `skipped: kamailio not installed` locally and
//! fails in CI (`tool_available`).

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::kamailio::{self, Kamailio};
use dialtone_e2e::{
    ata_line_command, read_recording, start_ata, tool_available, wait_for_ata_metric, wait_for_line,
};
use dialtone_media::tone_amplitude;

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

#[test]
fn two_atas_register_with_kamailio_and_call_each_other_with_two_way_audio() {
    if !tool_available(kamailio::PROGRAM) {
        return;
    }
    let kamailio = Kamailio::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let proxy = kamailio.sip.to_string();
    let ata = |line: &str, tone: &str, wav: &std::path::Path, more: &[&str]| {
        let mut args = vec![
            "--line",
            line,
            "--proxy",
            &proxy,
            "--register-interval",
            "300",
            "--audio-in",
            tone,
            "--audio-out",
            wav.to_str().expect("utf8"),
        ];
        args.extend_from_slice(more);
        start_ata(ATA, &args)
    };
    let b = ata("9000:9000", "tone:1500", &b_wav, &["--auto-answer", "0.2"]);
    let a = ata("8000:8000", "tone:1000", &a_wav, &[]);
    for control in [a.control, b.control] {
        wait_for_line(control, 1, "registration with Kamailio", |s| {
            s.registration == "registered"
        });
    }

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "A connected through Kamailio", |s| {
        s.state == "connected"
    });
    let b_status = wait_for_line(b.control, 1, "B connected through Kamailio", |s| {
        s.state == "connected"
    });
    assert_eq!(b_status.call.expect("a call").direction, "incoming");
    // 1.5 s of audio each way.
    wait_for_ata_metric(a.control, "dialtone_ata_rtp_packets_received_total", 75.0);
    wait_for_ata_metric(b.control, "dialtone_ata_rtp_packets_received_total", 75.0);

    // BYE follows Kamailio's Record-Route.
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(a.control, 1, "A idle", |s| {
        s.state == "idle" && s.call.is_none()
    });
    wait_for_line(b.control, 1, "B idle after the BYE through Kamailio", |s| {
        s.state == "idle" && s.call.is_none()
    });

    let level = |samples: &[i16], hz: f64| tone_amplitude(samples, hz, 8000);
    let heard_by_b = read_recording(&b_wav);
    let heard_by_a = read_recording(&a_wav);
    let (b_at_1000, b_at_1500) = (level(&heard_by_b, 1000.0), level(&heard_by_b, 1500.0));
    let (a_at_1500, a_at_1000) = (level(&heard_by_a, 1500.0), level(&heard_by_a, 1000.0));
    assert!(
        b_at_1000 > 5.0 * b_at_1500,
        "B should hear A's 1000 Hz: {b_at_1000} vs 1500 Hz {b_at_1500}"
    );
    assert!(
        a_at_1500 > 5.0 * a_at_1000,
        "A should hear B's 1500 Hz: {a_at_1500} vs 1000 Hz {a_at_1000}"
    );
}
