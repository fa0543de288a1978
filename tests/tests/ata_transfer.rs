//! End-to-end blind transfer (RFC 3515, RFC 5589 section 6) through `dialtone-proxy`: A (8000)
//! calls B (9000), then transfers B to C (7000) with the control API's `transfer`. B answers
//! the REFER 202, calls C, and reports with NOTIFYs; on the final `SIP/2.0 200 OK` sipfrag A
//! hangs up. B and C must end up connected with audio flowing, and A done with outcome
//! `transferred`.

use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{
    ata_line_command, ata_metric, start_ata, wait_for_ata_metric, wait_for_line, wait_until,
    AtaProcess, Proxy,
};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn registered_ata(proxy: &Proxy, line: &str, tone: &str) -> AtaProcess {
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
            "--audio-in",
            tone,
            "--auto-answer",
            "0.2",
        ],
    );
    wait_for_line(ata.control, 1, "registration", |s| {
        s.registration == "registered"
    });
    ata
}

#[test]
fn a_transfers_its_call_with_b_to_c_and_b_and_c_talk() {
    let proxy = Proxy::start(PROXY, &["--auth", "none"]);
    let a = registered_ata(&proxy, "8000:8000", "tone:1000");
    let b = registered_ata(&proxy, "9000:9000", "tone:1500");
    let c = registered_ata(&proxy, "7000:7000", "tone:2000");

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "A connected to B", |s| {
        s.call.as_ref().is_some_and(|c| c.connected)
    });
    wait_for_line(b.control, 1, "B connected to A", |s| s.state == "connected");

    let status = ata_line_command(a.control, 1, CtlCommand::Transfer("7000".into()));
    assert_eq!(status.state, "connected", "the REFER is on its way");

    let c_status = wait_for_line(c.control, 1, "C answered B's call", |s| {
        s.call.as_ref().is_some_and(|c| c.connected)
    });
    let c_call = c_status.call.expect("a call");
    assert_eq!(c_call.direction, "incoming");
    assert!(
        c_call.party.contains("9000"),
        "C is called by B: {c_call:?}"
    );
    let b_status = wait_for_line(b.control, 1, "B connected to C", |s| {
        s.call
            .as_ref()
            .is_some_and(|c| c.connected && c.party.contains("7000"))
    });
    assert_eq!(b_status.state, "connected");
    let a_status = wait_for_line(a.control, 1, "A released after the final NOTIFY", |s| {
        s.call.is_none()
    });
    assert_eq!(a_status.last_outcome.as_deref(), Some("transferred"));
    // Counted when A's call actor stops, after its BYE's transaction, which can be a moment
    // after the line shows no call (seen once in CI).
    wait_for_ata_metric(
        a.control,
        "dialtone_ata_calls_total{direction=\"outgoing\",line=\"8000\",outcome=\"transferred\"}",
        1.0,
    );

    // B and C exchange RTP after the transfer.
    let flows = wait_until(Duration::from_secs(10), || {
        ata_metric(c.control, "dialtone_ata_rtp_packets_received_total") >= 50.0
    });
    assert!(flows, "C receives B's audio");
    // B is still in its call with C after A's BYE ended the old one.
    let b_after = ata_line_command(b.control, 1, CtlCommand::Status);
    assert!(
        b_after
            .call
            .as_ref()
            .is_some_and(|c| c.connected && c.party.contains("7000")),
        "{b_after:?}"
    );
    ata_line_command(b.control, 1, CtlCommand::OnHook);
    wait_for_line(c.control, 1, "C idle after B hangs up", |s| {
        s.state == "idle" && s.call.is_none()
    });
}
