//! End-to-end SIP over TCP (RFC 3261 section 18.3): two ATAs with `--transport tcp` register
//! with `dialtone-proxy` over TCP (the proxy records the bindings as TCP), and A calls B
//! through it; the call connects, RTP flows both ways, and the BYE ends it on both sides.

use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{
    ata_line_command, ata_metric, http_get, start_ata, wait_for_line, wait_until, AtaProcess, Proxy,
};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn tcp_ata(proxy: &Proxy, line: &str, tone: &str) -> AtaProcess {
    let proxy = proxy.sip.to_string();
    start_ata(
        ATA,
        &[
            "--line",
            line,
            "--proxy",
            &proxy,
            "--transport",
            "tcp",
            "--register-interval",
            "300",
            "--audio-in",
            tone,
            "--auto-answer",
            "0.2",
        ],
    )
}

#[test]
fn two_atas_register_and_call_each_other_over_tcp() {
    let proxy = Proxy::start(
        PROXY,
        &[
            "--auth",
            "all",
            "--user",
            "8000:8000",
            "--user",
            "9000:9000",
        ],
    );
    let a = tcp_ata(&proxy, "8000:8000", "tone:1000");
    let b = tcp_ata(&proxy, "9000:9000", "tone:1500");
    for ata in [&a, &b] {
        wait_for_line(ata.control, 1, "registration over TCP", |s| {
            s.registration == "registered"
        });
    }
    let registrations = http_get(proxy.http, "/api/registrations").expect("registrations");
    let bindings: serde_json::Value = serde_json::from_str(&registrations).expect("JSON");
    let transports: Vec<&str> = bindings
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|b| b["transport"].as_str())
        .collect();
    assert_eq!(transports, ["tcp", "tcp"], "{registrations}");

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "A connected over TCP", |s| {
        s.call.as_ref().is_some_and(|c| c.connected)
    });
    wait_for_line(b.control, 1, "B connected over TCP", |s| {
        s.state == "connected"
    });
    let flowing = wait_until(Duration::from_secs(10), || {
        ata_metric(a.control, "dialtone_ata_rtp_packets_received_total") >= 50.0
            && ata_metric(b.control, "dialtone_ata_rtp_packets_received_total") >= 50.0
    });
    assert!(flowing, "RTP flows both ways");
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE over TCP", |s| {
        s.state == "idle" && s.call.is_none()
    });
}
