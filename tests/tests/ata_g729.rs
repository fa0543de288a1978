//! End-to-end G.729 (RFC 3551 section 4.5.6) through `dialtone-proxy`: two `dialtone-ata`
//! processes built with `--features g729` register and call. A offers `pcmu,g729,pcma`, so
//! its INVITE lists `0 18 8 101` as the seed's Cisco ATA does (seed flow D-3), with
//! `annexb=no`; B has `g729,pcma`, so the first offered codec both have is G.729. Both must
//! settle on `G729/8000`, and each recording must carry the other side's tone (A plays
//! 1000 Hz, B 1500 Hz) after the trip through libbcg729's encoder and decoder.
//!
//! Compiled only with the test package's `g729` feature:
//! `cargo test -p dialtone-e2e --features g729 --test ata_g729`.
#![cfg(feature = "g729")]

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::proxy_api::{calls, get_json};
use dialtone_e2e::tone::assert_hears_other_tone;
use dialtone_e2e::{
    ata_line_command, read_recording, start_ata, wait_for_ata_metric, wait_for_line, AtaProcess,
    Proxy,
};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn registered_ata(proxy: &Proxy, line: &str, codecs: &str, tone: &str, wav: &str) -> AtaProcess {
    let proxy = proxy.sip.to_string();
    let ata = start_ata(
        ATA,
        &[
            "--line",
            line,
            "--proxy",
            &proxy,
            "--register-interval",
            "300",
            "--codecs",
            codecs,
            "--audio-in",
            tone,
            "--audio-out",
            wav,
            "--auto-answer",
            "0.2",
        ],
    );
    wait_for_line(ata.control, 1, "registration", |s| {
        s.registration == "registered"
    });
    ata
}

/// The text of the first message of `call_id` the proxy received whose first line starts
/// with `start` (from its trace recorder, `/api/trace/{call_id}`).
fn received(proxy: &Proxy, call_id: &str, start: &str) -> String {
    let trace = get_json(proxy.http, &format!("/api/trace/{call_id}"));
    trace["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| {
            m["direction"] == "in"
                && m["first_line"]
                    .as_str()
                    .is_some_and(|line| line.starts_with(start))
        })
        .and_then(|m| m["text"].as_str())
        .unwrap_or_else(|| panic!("no `{start}` received for {call_id}: {trace}"))
        .to_string()
}

#[test]
fn two_atas_negotiate_g729_through_the_proxy_and_hear_each_others_tone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let proxy = Proxy::start(PROXY, &["--auth", "none"]);
    let b = registered_ata(
        &proxy,
        "9000:9000",
        "g729,pcma",
        "tone:1500",
        b_wav.to_str().expect("utf8"),
    );
    let a = registered_ata(
        &proxy,
        "8000:8000",
        "pcmu,g729,pcma",
        "tone:1000",
        a_wav.to_str().expect("utf8"),
    );

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    for (control, who) in [(a.control, "A"), (b.control, "B")] {
        let status = wait_for_line(control, 1, &format!("{who} connected"), |s| {
            s.call.as_ref().is_some_and(|c| c.connected)
        });
        let codec = status.call.and_then(|c| c.codec).unwrap_or_default();
        assert!(
            codec.eq_ignore_ascii_case("G729/8000"),
            "{who} negotiated {codec}, not G729/8000"
        );
    }
    let call_id = calls(proxy.http, "active")
        .first()
        .and_then(|c| c["call_id"].as_str().map(str::to_owned))
        .expect("the proxy knows the call");
    let offer = received(&proxy, &call_id, "INVITE ");
    assert!(
        offer.contains(" RTP/AVP 0 18 8 101\r\n") && offer.contains("a=fmtp:18 annexb=no\r\n"),
        "A's offer, as the proxy received it:\n{offer}"
    );
    let answer = received(&proxy, &call_id, "SIP/2.0 200");
    assert!(
        answer.contains(" RTP/AVP 18 8 101\r\n"),
        "B's answer, as the proxy received it:\n{answer}"
    );

    // 2 s of audio each way.
    wait_for_ata_metric(a.control, "dialtone_ata_rtp_packets_received_total", 100.0);
    wait_for_ata_metric(b.control, "dialtone_ata_rtp_packets_received_total", 100.0);
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE", |s| {
        s.state == "idle" && s.call.is_none()
    });
    wait_for_line(a.control, 1, "A idle", |s| s.state == "idle");

    assert_hears_other_tone("A", &read_recording(&a_wav), 1500.0, 1000.0);
    assert_hears_other_tone("B", &read_recording(&b_wav), 1000.0, 1500.0);
}
