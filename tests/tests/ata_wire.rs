//! Figures D-3 and D-4 from the ATA side: two real `dialtone-ata` processes call each other
//! through `dialtone-proxy` with digest on INVITE, and the messages the ATAs put on the wire
//! (as the proxy's message recorder saw them arrive) are checked against the seed's call flow:
//! `user=phone` URIs, the SDP offer shaped like figure D-3 (PCMU, PCMA, telephone-event 101
//! `0-15`, no G.729 since none is built in), the 407 acknowledged and the INVITE re-sent with
//! credentials, the same Call-ID and From tag and CSeq + 1 (figure D-4), then 180, 200, ACK,
//! BYE and 200.

use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{ata_line_command, http_get, start_ata, wait_for_line, wait_until, Proxy};
use dialtone_sip::{HeaderName, Message};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// The messages of one call as the proxy recorded them: (direction, text).
fn recorded(proxy: &Proxy, call_id: &str) -> Vec<(String, String)> {
    let body = http_get(proxy.http, &format!("/api/trace/{call_id}")).expect("the call's trace");
    let trace: serde_json::Value = serde_json::from_str(&body).expect("trace JSON");
    trace["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap_or("").to_string(),
                m["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[test]
fn the_ata_places_a_seed_shaped_call_and_answers_the_407_with_cseq_plus_one() {
    seed_shaped_call(true);
}

#[test]
fn without_auth_the_ata_places_the_figure_d3_call() {
    seed_shaped_call(false);
}

/// Figure D-4 with `auth`, figure D-3 without.
fn seed_shaped_call(auth: bool) {
    let flags: &[&str] = if auth {
        &[
            "--auth",
            "all",
            "--realm",
            "CISCO",
            "--user",
            "8000:8000",
            "--user",
            "9000:9000",
        ]
    } else {
        &["--auth", "none"]
    };
    let proxy = Proxy::start(PROXY, flags);
    let proxy_addr = proxy.sip.to_string();
    let a = start_ata(ATA, &["--line", "8000:8000", "--proxy", &proxy_addr]);
    let b = start_ata(
        ATA,
        &[
            "--line",
            "9000:9000",
            "--proxy",
            &proxy_addr,
            "--auto-answer",
            "0.2",
        ],
    );
    for ata in [&a, &b] {
        wait_for_line(ata.control, 1, "registered", |s| {
            s.registration == "registered"
        });
    }

    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "connected", |s| {
        s.call.as_ref().is_some_and(|c| c.connected)
    });
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE", |s| s.call.is_none());

    // Find the call among the recorded Call-IDs: the one whose first message is an INVITE.
    let mut call_id = None;
    let found = wait_until(Duration::from_secs(5), || {
        let Some(body) = http_get(proxy.http, "/api/traces") else {
            return false;
        };
        let list: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        call_id = list
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| {
                t["first_line"]
                    .as_str()
                    .is_some_and(|l| l.starts_with("INVITE "))
            })
            .and_then(|t| t["call_id"].as_str().map(str::to_string));
        call_id.is_some()
    });
    assert!(found, "no INVITE recorded by the proxy");
    let call_id = call_id.unwrap_or_default();

    // The BYE's 200 may still be on its way when B goes idle.
    let mut messages = Vec::new();
    wait_until(Duration::from_secs(5), || {
        messages = recorded(&proxy, &call_id);
        messages
            .iter()
            .any(|(d, t)| d == "in" && t.starts_with("SIP/2.0 200") && t.contains(" BYE\r\n"))
    });
    let from_atas: Vec<&String> = messages
        .iter()
        .filter(|(d, _)| d == "in")
        .map(|(_, t)| t)
        .collect();
    let lines: Vec<&str> = from_atas.iter().map(|t| first_line(t)).collect();

    // A's first INVITE: user=phone URIs and the figure D-3 offer.
    let invites: Vec<&&String> = from_atas
        .iter()
        .filter(|t| t.starts_with("INVITE "))
        .collect();
    let expected_invites = if auth { 2 } else { 1 };
    assert_eq!(
        invites.len(),
        expected_invites,
        "INVITE (then INVITE with credentials when challenged): {lines:?}"
    );
    let first = Message::parse(invites[0].as_bytes()).expect("first INVITE parses");
    let second = Message::parse(invites[expected_invites - 1].as_bytes()).expect("INVITE parses");
    let ruri = first
        .request_uri()
        .expect("Request-URI")
        .as_str()
        .to_string();
    assert!(
        ruri.starts_with("sip:9000@") && ruri.contains("user=phone"),
        "{ruri}"
    );
    for header in [first.from().expect("From"), first.to().expect("To")] {
        let uri = header.uri.as_sip().expect("a SIP URI");
        assert_eq!(uri.params.get("user"), Some(Some("phone")), "{}", uri.raw);
    }
    let offer = String::from_utf8_lossy(first.body()).to_string();
    let media = offer
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("an audio m= line");
    let payloads: Vec<&str> = media.split_whitespace().skip(3).collect();
    assert_eq!(&payloads[..2], ["0", "8"], "PCMU then PCMA: {media}");
    assert!(payloads.contains(&"101"), "{media}");
    assert!(
        !payloads.contains(&"18"),
        "no G.729 without a G.729 codec: {media}"
    );
    assert!(
        offer.contains("a=rtpmap:101 telephone-event/8000"),
        "{offer}"
    );
    assert!(offer.contains("a=fmtp:101 0-15"), "{offer}");
    assert!(first.header(HeaderName::ProxyAuthorization).is_none());

    let second_index = lines
        .iter()
        .rposition(|l| l.starts_with("INVITE "))
        .expect("the last INVITE");
    if auth {
        check_the_407_retry(&messages, &lines, &first, &second, second_index);
    }

    // B rang and answered; A acknowledged the 200, hung up with BYE, B said 200.
    let after_retry = &lines[second_index..];
    for expected in ["SIP/2.0 180", "SIP/2.0 200", "ACK ", "BYE ", "SIP/2.0 200"] {
        assert!(
            after_retry.iter().any(|l| l.starts_with(expected)),
            "{expected} missing after the INVITE: {after_retry:?}"
        );
    }
    let order = |prefix: &str| after_retry.iter().position(|l| l.starts_with(prefix));
    assert!(order("SIP/2.0 180") < order("ACK "), "{after_retry:?}");
    assert!(order("ACK ") < order("BYE "), "{after_retry:?}");
}

/// Figure D-4: the 407 was acknowledged (the ACK absorbed by the proxy), then the retry:
/// same Call-ID and From tag, CSeq + 1, with Proxy-Authorization.
fn check_the_407_retry(
    messages: &[(String, String)],
    lines: &[&str],
    first: &Message<'_>,
    second: &Message<'_>,
    second_index: usize,
) {
    let ack_index = lines
        .iter()
        .position(|l| l.starts_with("ACK "))
        .expect("an ACK");
    assert!(
        ack_index < second_index,
        "the 407's ACK comes before the retry: {lines:?}"
    );
    let sent_by_proxy: Vec<&str> = messages
        .iter()
        .filter(|(d, _)| d == "out")
        .map(|(_, t)| first_line(t))
        .collect();
    assert!(
        sent_by_proxy.iter().any(|l| l.starts_with("SIP/2.0 407")),
        "{sent_by_proxy:?}"
    );
    assert_eq!(second.call_id().ok(), first.call_id().ok());
    assert_eq!(
        second.from().ok().and_then(|f| f.tag()),
        first.from().ok().and_then(|f| f.tag())
    );
    assert_eq!(
        second.cseq().expect("CSeq").seq,
        first.cseq().expect("CSeq").seq + 1
    );
    assert!(second.header(HeaderName::ProxyAuthorization).is_some());
}
