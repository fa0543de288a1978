//! Tests of the dialog core with a fake clock and no sockets.

use super::*;
use crate::identity::ALLOW;

fn identity(user: &str, port: u16) -> LineIdentity {
    LineIdentity {
        user: user.into(),
        display_name: None,
        domain: "192.168.2.97".into(),
        local: SocketAddr::from(([127, 0, 0, 1], port)),
        transport: dialtone_transaction::Transport::Udp,
    }
}

fn outgoing() -> Dialog {
    Dialog::outgoing(OutgoingCall {
        identity: identity("8000", 5062),
        target: "sip:9000@192.168.2.97;user=phone".into(),
        destination: "127.0.0.1:5060".parse().expect("addr"),
        user: DigestUser {
            username: "8000".into(),
            password: "8000".into(),
        },
        offer: b"v=0\r\n".to_vec(),
        anonymous: false,
        replaces: None,
        seed: 42,
        t1: std::time::Duration::from_millis(500),
    })
}

fn drain(dialog: &mut Dialog) -> Vec<Output> {
    std::iter::from_fn(|| dialog.poll_output()).collect()
}

fn only_request(outputs: &[Output]) -> (Vec<u8>, SocketAddr) {
    let requests: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Request { bytes, destination } | Output::Stateless { bytes, destination } => {
                Some((bytes.clone(), *destination))
            }
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 1, "{outputs:?}");
    requests[0].clone()
}

fn header(bytes: &[u8], name: &str) -> String {
    Message::parse(bytes)
        .expect("parses")
        .header_value_by_name(name)
        .map(str::to_owned)
        .unwrap_or_default()
}

fn headers(bytes: &[u8], name: &str) -> Vec<String> {
    let message = Message::parse(bytes).expect("parses");
    message
        .headers()
        .iter()
        .filter(|h| h.raw_name.eq_ignore_ascii_case(name))
        .map(|h| h.value.to_owned())
        .collect()
}

fn request_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A response to `request`, as the far end or a proxy would write it.
fn response(
    request: &[u8],
    status: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &str,
) -> Vec<u8> {
    let message = Message::parse(request).expect("request parses");
    let mut text = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "Call-ID", "CSeq"] {
        let value = message.header_value_by_name(name).expect("present");
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    let to = message.header_value_by_name("To").expect("To");
    match to_tag {
        Some(tag) => text.push_str(&format!("To: {to};tag={tag}\r\n")),
        None => text.push_str(&format!("To: {to}\r\n")),
    }
    text.push_str(extra);
    if body.is_empty() {
        text.push_str("Content-Length: 0\r\n\r\n");
    } else {
        text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    text.into_bytes()
}

fn feed(dialog: &mut Dialog, bytes: &[u8]) {
    let message = Message::parse(bytes).expect("response parses");
    dialog.handle_response(&message).expect("handled");
}

fn events(outputs: &[Output]) -> Vec<CallEvent> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_outgoing_invite_uses_user_phone_uris_and_carries_the_offer() {
    let mut dialog = outgoing();
    let (invite, destination) = only_request(&drain(&mut dialog));
    assert_eq!(
        request_line(&invite),
        "INVITE sip:9000@192.168.2.97;user=phone SIP/2.0"
    );
    assert_eq!(destination, "127.0.0.1:5060".parse().expect("addr"));
    assert!(header(&invite, "From").starts_with("<sip:8000@192.168.2.97;user=phone>;tag="));
    assert_eq!(header(&invite, "To"), "<sip:9000@192.168.2.97;user=phone>");
    assert_eq!(header(&invite, "CSeq"), "1 INVITE");
    assert_eq!(header(&invite, "Content-Type"), "application/sdp");
    assert!(invite.ends_with(b"v=0\r\n"));
}

#[test]
fn a_407_is_answered_by_a_new_invite_with_same_call_id_and_from_tag_and_cseq_plus_one() {
    let mut dialog = outgoing();
    let (first, _) = only_request(&drain(&mut dialog));
    let challenge = response(
        &first,
        "407 Proxy Authentication Required",
        Some("600eaf7-7c3a549a"),
        "Proxy-Authenticate: DIGEST realm=\"CISCO\", nonce=\"3bd76584\"\r\n",
        "",
    );
    feed(&mut dialog, &challenge);
    let outputs = drain(&mut dialog);
    assert!(events(&outputs).is_empty(), "no failure: {outputs:?}");
    let (second, _) = only_request(&outputs);
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&second, "From"), header(&first, "From"));
    assert_eq!(header(&second, "To"), header(&first, "To"), "no To tag");
    assert_eq!(header(&second, "CSeq"), "2 INVITE");
    assert_ne!(header(&second, "Via"), header(&first, "Via"), "new branch");
    let credentials = header(&second, "Proxy-Authorization");
    assert!(credentials.contains("username=\"8000\""), "{credentials}");
    assert!(credentials.contains("nonce=\"3bd76584\""), "{credentials}");
}

#[test]
fn a_second_challenge_after_credentials_fails_the_call() {
    let mut dialog = outgoing();
    let challenge_header = "Proxy-Authenticate: Digest realm=\"lab\", nonce=\"n\"\r\n";
    for _ in 0..MAX_CHALLENGES {
        let (invite, _) = only_request(&drain(&mut dialog));
        feed(
            &mut dialog,
            &response(&invite, "407 Proxy Auth", Some("t"), challenge_header, ""),
        );
    }
    let (invite, _) = only_request(&drain(&mut dialog));
    feed(
        &mut dialog,
        &response(&invite, "407 Proxy Auth", Some("t"), challenge_header, ""),
    );
    let outputs = drain(&mut dialog);
    assert_eq!(
        events(&outputs),
        [CallEvent::Failed { status: 407 }, CallEvent::Terminated]
    );
}

#[test]
fn the_ack_to_a_2xx_follows_a_strict_route_through_the_seed_proxy() {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    let ok = response(
        &invite,
        "200 OK",
        Some("909616993"),
        "Record-Route: <sip:9000@127.0.0.9:5060;user=phone;maddr=127.0.0.9>\r\n\
         Contact: <sip:9000@127.0.0.3:5070;user=phone;transport=udp>\r\n",
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    let outputs = drain(&mut dialog);
    assert_eq!(
        events(&outputs),
        [CallEvent::Answered {
            sdp: Some(b"v=0\r\n".to_vec())
        }]
    );
    let (ack, destination) = only_request(&outputs);
    // Seed D-3 message 9: the proxy's URI as Request-URI, our peer in Route; its `maddr`
    // stays, which the seed's ATA drops (RFC 3261 12.2.1.1, 19.1.1 table 1).
    assert_eq!(
        request_line(&ack),
        "ACK sip:9000@127.0.0.9:5060;user=phone;maddr=127.0.0.9 SIP/2.0"
    );
    assert_eq!(
        headers(&ack, "Route"),
        ["<sip:9000@127.0.0.3:5070;user=phone;transport=udp>"]
    );
    assert_eq!(destination, "127.0.0.9:5060".parse().expect("addr"));
    assert_eq!(header(&ack, "CSeq"), "1 ACK");
    assert!(header(&ack, "To").ends_with(";tag=909616993"));

    dialog.hang_up();
    let (bye, destination) = only_request(&drain(&mut dialog));
    assert_eq!(
        request_line(&bye),
        "BYE sip:9000@127.0.0.9:5060;user=phone;maddr=127.0.0.9 SIP/2.0"
    );
    assert_eq!(destination, "127.0.0.9:5060".parse().expect("addr"));
    assert_eq!(header(&bye, "CSeq"), "2 BYE");
}

/// The seed proxy's Record-Route (D-3 message 7) with a loopback `maddr`.
const STRICT_ROUTE: &str = "sip:9000@127.0.0.9:5060;user=phone;maddr=127.0.0.9";

/// An outgoing call answered through the strict router [`STRICT_ROUTE`]; the ACK it sent.
fn answered_through_a_strict_router() -> (Dialog, Vec<u8>, Vec<u8>) {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    let ok = response(
        &invite,
        "200 OK",
        Some("909616993"),
        &format!(
            "Record-Route: <{STRICT_ROUTE}>\r\n\
             Contact: <sip:9000@127.0.0.3:5070;user=phone>\r\n"
        ),
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    let (ack, _) = only_request(&drain(&mut dialog));
    (dialog, ack, ok)
}

#[test]
fn an_ack_through_a_strict_router_keeps_the_maddr_of_its_request_uri() {
    let (mut dialog, ack, ok) = answered_through_a_strict_router();
    assert_eq!(request_line(&ack), format!("ACK {STRICT_ROUTE} SIP/2.0"));
    // A retransmitted 2xx is ACKed again, addressed the same way (13.2.2.4).
    feed(&mut dialog, &ok);
    let (again, _) = only_request(&drain(&mut dialog));
    assert_eq!(request_line(&again), request_line(&ack));
}

#[test]
fn a_bye_through_a_strict_router_has_the_request_uri_and_route_of_the_ack() {
    let (mut dialog, ack, _) = answered_through_a_strict_router();
    dialog.hang_up();
    let (bye, destination) = only_request(&drain(&mut dialog));
    assert_eq!(request_line(&bye), format!("BYE {STRICT_ROUTE} SIP/2.0"));
    assert_eq!(headers(&bye, "Route"), headers(&ack, "Route"));
    assert_eq!(
        headers(&bye, "Route"),
        ["<sip:9000@127.0.0.3:5070;user=phone>"]
    );
    assert_eq!(destination, "127.0.0.9:5060".parse().expect("addr"));
}

#[test]
fn the_ack_to_a_reinvites_2xx_through_a_strict_router_keeps_the_maddr_too() {
    let (mut dialog, _, _) = answered_through_a_strict_router();
    dialog.reinvite(b"v=0\r\n".to_vec());
    let (reinvite, _) = only_request(&drain(&mut dialog));
    assert_eq!(
        request_line(&reinvite),
        format!("INVITE {STRICT_ROUTE} SIP/2.0")
    );
    feed(
        &mut dialog,
        &response(&reinvite, "200 OK", Some("909616993"), "", "v=0\r\n"),
    );
    let (ack, _) = only_request(&drain(&mut dialog));
    assert_eq!(request_line(&ack), format!("ACK {STRICT_ROUTE} SIP/2.0"));
}

#[test]
fn the_ack_to_a_2xx_follows_a_loose_route_with_the_contact_as_request_uri() {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    let ok = response(
        &invite,
        "200 OK",
        Some("b"),
        "Record-Route: <sip:127.0.0.9:5090;lr>\r\n\
         Contact: <sip:9000@127.0.0.3:5070>\r\n",
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    let (ack, destination) = only_request(&drain(&mut dialog));
    assert_eq!(request_line(&ack), "ACK sip:9000@127.0.0.3:5070 SIP/2.0");
    assert_eq!(headers(&ack, "Route"), ["<sip:127.0.0.9:5090;lr>"]);
    assert_eq!(destination, "127.0.0.9:5090".parse().expect("addr"));
}

#[test]
fn a_to_tag_inside_the_angle_brackets_still_identifies_the_dialog() {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    // Seed D-3 message 8 writes `To: <sip:...;user=phone;tag=909616993>`.
    let text = String::from_utf8(response(
        &invite,
        "200 OK",
        None,
        "Contact: <sip:9000@127.0.0.3:5070>\r\n",
        "v=0\r\n",
    ))
    .expect("utf8")
    .replace("user=phone>\r\n", "user=phone;tag=909616993>\r\n");
    feed(&mut dialog, text.as_bytes());
    let outputs = drain(&mut dialog);
    assert!(matches!(events(&outputs)[..], [CallEvent::Answered { .. }]));
    // A retransmitted 200 from the same peer is ACKed again, not taken as a new dialog.
    feed(&mut dialog, text.as_bytes());
    let outputs = drain(&mut dialog);
    assert!(events(&outputs).is_empty());
    let _ = only_request(&outputs);
}

#[test]
fn hanging_up_before_any_provisional_waits_to_cancel_until_one_comes() {
    let mut dialog = outgoing();
    let (invite, destination) = only_request(&drain(&mut dialog));
    dialog.hang_up();
    assert!(drain(&mut dialog).is_empty(), "RFC 3261 9.1: not yet");
    feed(
        &mut dialog,
        &response(&invite, "180 Ringing", Some("r"), "", ""),
    );
    let (cancel, cancel_destination) = only_request(&drain(&mut dialog));
    assert_eq!(
        request_line(&cancel),
        "CANCEL sip:9000@192.168.2.97;user=phone SIP/2.0"
    );
    assert_eq!(header(&cancel, "Via"), header(&invite, "Via"));
    assert_eq!(header(&cancel, "CSeq"), "1 CANCEL");
    assert_eq!(header(&cancel, "To"), header(&invite, "To"));
    assert_eq!(cancel_destination, destination);
    feed(
        &mut dialog,
        &response(&invite, "487 Request Terminated", Some("r"), "", ""),
    );
    assert_eq!(events(&drain(&mut dialog)), [CallEvent::Terminated]);
}

#[test]
fn a_200_that_crosses_our_cancel_is_acknowledged_and_the_call_ended_with_a_bye() {
    // RFC 3261 9.1 and 15: a CANCEL sent while ringing may cross the callee's 200; the call
    // is then up at the callee, and the caller must ACK it and end it with a BYE. (Taken for
    // a retransmission of a 2xx we had already acknowledged, it was dropped: the callee stayed
    // connected, resending its 200.)
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    feed(
        &mut dialog,
        &response(&invite, "180 Ringing", Some("r"), "", ""),
    );
    drain(&mut dialog);
    dialog.hang_up();
    let (cancel, _) = only_request(&drain(&mut dialog));
    assert!(request_line(&cancel).starts_with("CANCEL "));
    let ok = response(
        &invite,
        "200 OK",
        Some("r"),
        "Contact: <sip:9000@127.0.0.3:5070>\r\n",
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    let outputs = drain(&mut dialog);
    let sent: Vec<String> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Request { bytes, .. } | Output::Stateless { bytes, .. } => {
                Some(request_line(bytes))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [
            "ACK sip:9000@127.0.0.3:5070 SIP/2.0",
            "BYE sip:9000@127.0.0.3:5070 SIP/2.0"
        ],
        "{outputs:?}"
    );
    assert!(
        !events(&outputs)
            .iter()
            .any(|e| matches!(e, CallEvent::Answered { .. })),
        "the user hung up: no answer to report"
    );
}

#[test]
fn busy_and_timeouts_fail_the_call_with_their_status() {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    feed(
        &mut dialog,
        &response(&invite, "486 Busy Here", Some("x"), "", ""),
    );
    assert_eq!(
        events(&drain(&mut dialog)),
        [CallEvent::Failed { status: 486 }, CallEvent::Terminated]
    );

    let mut dialog = outgoing();
    drain(&mut dialog);
    dialog.handle_transaction_failure("INVITE", 408);
    assert_eq!(
        events(&drain(&mut dialog)),
        [CallEvent::Failed { status: 408 }, CallEvent::Terminated]
    );
}

fn seed_invite() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/seed-flows/D-3-call-noauth/03.sip"
    ))
    .expect("seed INVITE")
}

fn incoming() -> Dialog {
    incoming_with_t1(std::time::Duration::from_millis(500))
}

fn incoming_with_t1(t1: std::time::Duration) -> Dialog {
    Dialog::incoming(IncomingCall {
        identity: identity("9000", 5070),
        txn: 7,
        request: seed_invite(),
        source: "127.0.0.9:5060".parse().expect("addr"),
        seed: 9,
        t1,
    })
    .expect("the seed INVITE makes a dialog")
}

fn responses(outputs: &[Output]) -> Vec<(TxnId, u16, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Response { txn, status, bytes } => Some((*txn, *status, bytes.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_incoming_call_is_answered_100_then_180_then_200_with_the_answer() {
    let now = Instant::now();
    let mut dialog = incoming();
    let trying = responses(&drain(&mut dialog));
    assert_eq!(trying.len(), 1);
    assert_eq!((trying[0].0, trying[0].1), (7, 100));

    dialog.ring();
    let ringing = responses(&drain(&mut dialog));
    assert_eq!(ringing[0].1, 180);
    let to = header(&ringing[0].2, "To");
    assert!(
        to.ends_with(&format!(";tag={}", dialog.local_tag())),
        "{to}"
    );
    assert_eq!(
        headers(&ringing[0].2, "Record-Route"),
        ["<sip:9000@192.168.2.97:5060;user=phone;maddr=192.168.2.97>"]
    );

    dialog.accept(now, b"v=0\r\n".to_vec());
    let ok = responses(&drain(&mut dialog));
    assert_eq!(ok[0].1, 200);
    assert!(ok[0].2.ends_with(b"v=0\r\n"));
    assert_eq!(dialog.phase(), Phase::Accepted);
}

#[test]
fn the_200_is_retransmitted_at_doubling_intervals_until_the_ack() {
    let start = Instant::now();
    let mut dialog = incoming();
    dialog.accept(start, b"v=0\r\n".to_vec());
    drain(&mut dialog);
    let mut sent_at = Vec::new();
    for _ in 0..5 {
        let now = dialog.poll_timeout().expect("armed");
        dialog.handle_timeout(now);
        if !responses(&drain(&mut dialog)).is_empty() {
            sent_at.push((now - start).as_millis());
        }
    }
    assert_eq!(sent_at, [500, 1500, 3500, 7500, 11500]);

    let ack = "ACK sip:9000@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.3.175\r\n\
               From: <sip:8000@192.168.2.97;user=phone>;tag=2819471139\r\n\
               To: <sip:9000@192.168.2.97;user=phone>;tag=x\r\n\
               Call-ID: 488337201@192.168.3.175\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n";
    let message = Message::parse(ack.as_bytes()).expect("ACK parses");
    dialog
        .handle_request(None, &message, ack.as_bytes())
        .expect("handled");
    assert_eq!(events(&drain(&mut dialog)), [CallEvent::Confirmed]);
    assert_eq!(dialog.poll_timeout(), None);
}

#[test]
fn the_200_keeps_the_lines_t1_and_without_an_ack_the_call_ends_after_64_t1() {
    // `--t1-ms 50` (a lab's fast timers) holds for our 2xx too: resent at 50, 150, 350 ms
    // ... and after 64 T1 (3.2 s) without an ACK the call is ended with a BYE (RFC 3261
    // 13.3.1.4), not left connected for the default's 32 s.
    let start = Instant::now();
    let mut dialog = incoming_with_t1(std::time::Duration::from_millis(50));
    dialog.accept(start, b"v=0\r\n".to_vec());
    drain(&mut dialog);
    let mut resent_at = Vec::new();
    let mut bye_at = None;
    while let Some(now) = dialog.poll_timeout() {
        dialog.handle_timeout(now);
        let outputs = drain(&mut dialog);
        if !responses(&outputs).is_empty() {
            resent_at.push((now - start).as_millis());
        }
        let bye = outputs
            .iter()
            .any(|o| matches!(o, Output::Request { bytes, .. } if bytes.starts_with(b"BYE ")));
        if bye {
            bye_at = Some((now - start).as_millis());
            break;
        }
    }
    assert_eq!(resent_at[..4], [50, 150, 350, 750]);
    assert_eq!(bye_at, Some(3200));
}

#[test]
fn a_cancel_before_answer_gets_200_and_the_invite_gets_487() {
    let mut dialog = incoming();
    dialog.ring();
    drain(&mut dialog);
    let cancel = String::from_utf8(seed_invite())
        .expect("utf8")
        .replacen("INVITE sip", "CANCEL sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    let message = Message::parse(cancel.as_bytes()).expect("CANCEL parses");
    dialog
        .handle_request(Some(8), &message, cancel.as_bytes())
        .expect("handled");
    let outputs = drain(&mut dialog);
    let sent: Vec<_> = responses(&outputs)
        .into_iter()
        .map(|(txn, status, _)| (txn, status))
        .collect();
    assert_eq!(sent, [(8, 200), (7, 487)]);
    assert_eq!(
        events(&outputs),
        [CallEvent::Cancelled, CallEvent::Terminated]
    );
}

#[test]
fn a_bye_from_the_caller_is_answered_and_reported() {
    let now = Instant::now();
    let mut dialog = incoming();
    dialog.accept(now, b"v=0\r\n".to_vec());
    drain(&mut dialog);
    let bye = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/seed-flows/D-3-call-noauth/13.sip"
    ))
    .expect("seed BYE");
    let message = Message::parse(&bye).expect("BYE parses");
    dialog
        .handle_request(Some(9), &message, &bye)
        .expect("handled");
    let outputs = drain(&mut dialog);
    assert_eq!(responses(&outputs)[0].1, 200);
    assert_eq!(
        events(&outputs),
        [CallEvent::RemoteHangup, CallEvent::Terminated]
    );
}

#[test]
fn the_callee_hanging_up_sends_bye_to_the_callers_contact_through_the_strict_route() {
    let now = Instant::now();
    let mut dialog = incoming();
    dialog.accept(now, b"v=0\r\n".to_vec());
    dialog.hang_up();
    assert!(only_requests_none(&drain(&mut dialog)), "waits for the ACK");
    let ack = String::from_utf8(seed_invite())
        .expect("utf8")
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    let message = Message::parse(ack.as_bytes()).expect("ACK parses");
    dialog
        .handle_request(None, &message, ack.as_bytes())
        .expect("handled");
    let (bye, destination) = only_request(&drain(&mut dialog));
    // UAS route set is the Record-Route in order; it is strict, so the proxy is the target.
    assert!(request_line(&bye)
        .starts_with("BYE sip:9000@192.168.2.97:5060;user=phone;maddr=192.168.2.97 "));
    assert_eq!(
        headers(&bye, "Route"),
        ["<sip:8000@192.168.3.175;user=phone;transport=udp>"]
    );
    assert_eq!(destination, "192.168.2.97:5060".parse().expect("addr"));
    assert!(header(&bye, "From").contains(&format!("tag={}", dialog.local_tag())));
    assert!(header(&bye, "To").ends_with("tag=2819471139"));
}

fn only_requests_none(outputs: &[Output]) -> bool {
    !outputs
        .iter()
        .any(|o| matches!(o, Output::Request { .. } | Output::Stateless { .. }))
}

#[test]
fn options_inside_a_dialog_is_answered_with_allow() {
    let mut dialog = incoming();
    drain(&mut dialog);
    let options = String::from_utf8(seed_invite())
        .expect("utf8")
        .replacen("INVITE sip", "OPTIONS sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 2 OPTIONS");
    let message = Message::parse(options.as_bytes()).expect("parses");
    dialog
        .handle_request(Some(3), &message, options.as_bytes())
        .expect("handled");
    let sent = responses(&drain(&mut dialog));
    assert_eq!(sent[0].1, 200);
    assert_eq!(header(&sent[0].2, "Allow"), ALLOW);
}

/// An outgoing dialog confirmed by a 200 through a loose-routing proxy.
fn confirmed_outgoing() -> Dialog {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    let ok = response(
        &invite,
        "200 OK",
        Some("b"),
        "Record-Route: <sip:127.0.0.9:5090;lr>\r\n\
         Contact: <sip:9000@127.0.0.3:5070>\r\n",
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    drain(&mut dialog);
    dialog
}

/// An incoming dialog whose 200 was ACKed.
fn confirmed_incoming(now: Instant) -> Dialog {
    let mut dialog = incoming();
    dialog.accept(now, b"v=0\r\n".to_vec());
    let ack = String::from_utf8(seed_invite())
        .expect("utf8")
        .replacen("INVITE sip", "ACK sip", 1)
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK");
    let message = Message::parse(ack.as_bytes()).expect("ACK parses");
    dialog
        .handle_request(None, &message, ack.as_bytes())
        .expect("handled");
    drain(&mut dialog);
    dialog
}

/// The seed INVITE turned into an in-dialog `method` with CSeq 2 and `extra` headers.
fn in_dialog_from_seed(method: &str, extra: &str) -> Vec<u8> {
    String::from_utf8(seed_invite())
        .expect("utf8")
        .replacen("INVITE sip", &format!("{method} sip"), 1)
        .replace(
            "CSeq: 1 INVITE\r\n",
            &format!("CSeq: 2 {method}\r\n{extra}"),
        )
        .into_bytes()
}

#[test]
fn a_refer_is_accepted_with_202_and_its_target_reported_without_header_parameters() {
    let now = Instant::now();
    let mut dialog = confirmed_incoming(now);
    let refer = in_dialog_from_seed(
        "REFER",
        "Refer-To: <sip:7000@192.168.2.97;user=phone?X-Note=1>\r\n",
    );
    let message = Message::parse(&refer).expect("REFER parses");
    dialog
        .handle_request(Some(11), &message, &refer)
        .expect("handled");
    let outputs = drain(&mut dialog);
    assert_eq!(responses(&outputs)[0].1, 202);
    assert_eq!(
        events(&outputs),
        [CallEvent::Referred {
            target: "sip:7000@192.168.2.97;user=phone".into(),
            replaces: None,
        }]
    );
}

#[test]
fn a_refer_with_replaces_reports_it_unescaped_and_ours_escapes_the_dialog_it_names() {
    let now = Instant::now();
    let mut dialog = confirmed_incoming(now);
    let refer = in_dialog_from_seed(
        "REFER",
        "Refer-To: <sip:7000@lab?Replaces=abc%40host%3Bto-tag%3D7%3Bfrom-tag%3D8>\r\n",
    );
    let message = Message::parse(&refer).expect("REFER parses");
    dialog
        .handle_request(Some(11), &message, &refer)
        .expect("handled");
    let outputs = drain(&mut dialog);
    assert_eq!(
        events(&outputs),
        [CallEvent::Referred {
            target: "sip:7000@lab".into(),
            replaces: Some("abc@host;to-tag=7;from-tag=8".into()),
        }]
    );

    dialog.refer_replacing(&super::DialogIds {
        call_id: "abc@host".into(),
        local_tag: "8".into(),
        remote_tag: "7".into(),
        remote_uri: "sip:7000@lab".into(),
    });
    let sent = drain(&mut dialog);
    let Some(Output::Request { bytes, .. }) = sent.first() else {
        panic!("a REFER: {sent:?}");
    };
    let text = String::from_utf8_lossy(bytes);
    assert!(
        text.contains("Refer-To: <sip:7000@lab?Replaces=abc%40host%3Bto-tag%3D7%3Bfrom-tag%3D8>"),
        "{text}"
    );
}

#[test]
fn an_anonymous_call_hides_the_from_asks_for_privacy_and_carries_its_replaces() {
    let mut dialog = Dialog::outgoing(OutgoingCall {
        identity: identity("8000", 5062),
        target: "sip:9000@192.168.2.97;user=phone".into(),
        destination: "127.0.0.1:5060".parse().expect("addr"),
        user: DigestUser {
            username: "8000".into(),
            password: "8000".into(),
        },
        offer: b"v=0\r\n".to_vec(),
        anonymous: true,
        replaces: Some("x@y;to-tag=1;from-tag=2".into()),
        seed: 42,
        t1: std::time::Duration::from_millis(500),
    });
    let sent = drain(&mut dialog);
    let Some(Output::Request { bytes, .. }) = sent.first() else {
        panic!("an INVITE: {sent:?}");
    };
    let text = String::from_utf8_lossy(bytes).into_owned();
    assert!(
        text.contains("From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "{text}"
    );
    assert!(text.contains("Privacy: id\r\n"), "{text}");
    assert!(
        text.contains("Replaces: x@y;to-tag=1;from-tag=2\r\n"),
        "{text}"
    );
    let from = text
        .lines()
        .find(|l| l.starts_with("From:"))
        .unwrap_or_default();
    assert!(
        !from.contains("8000"),
        "no trace of the caller in From: {text}"
    );
    assert!(
        text.contains("P-Preferred-Identity: <sip:8000@"),
        "who we are, for the proxy to assert: {text}"
    );
}

#[test]
fn a_redirect_is_a_302_with_the_target_in_contact_and_a_diversion() {
    let mut dialog = incoming();
    drain(&mut dialog);
    dialog.redirect("sip:9000@lab", "no-answer");
    let outputs = drain(&mut dialog);
    let (_, status, bytes) = responses(&outputs)[0].clone();
    assert_eq!(status, 302);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("Contact: <sip:9000@lab>\r\n"), "{text}");
    assert!(text.contains("Diversion: <sip:"), "{text}");
    assert!(text.contains(";reason=no-answer;counter=1"), "{text}");
    assert!(events(&outputs).contains(&CallEvent::Terminated));
}

#[test]
fn a_refer_without_refer_to_is_refused_with_400() {
    let now = Instant::now();
    let mut dialog = confirmed_incoming(now);
    let refer = in_dialog_from_seed("REFER", "");
    let message = Message::parse(&refer).expect("REFER parses");
    dialog
        .handle_request(Some(11), &message, &refer)
        .expect("handled");
    let outputs = drain(&mut dialog);
    assert_eq!(responses(&outputs)[0].1, 400);
    assert!(events(&outputs).is_empty());
}

#[test]
fn the_transferee_notifies_progress_as_sipfrag_and_the_final_notify_ends_the_subscription() {
    let now = Instant::now();
    let mut dialog = confirmed_incoming(now);
    dialog.notify_refer(100, "Trying");
    let (trying, _) = only_request(&drain(&mut dialog));
    assert!(request_line(&trying).starts_with("NOTIFY "));
    assert_eq!(header(&trying, "Event"), "refer");
    assert!(header(&trying, "Subscription-State").starts_with("active"));
    assert_eq!(
        header(&trying, "Content-Type"),
        "message/sipfrag;version=2.0"
    );
    assert!(String::from_utf8_lossy(&trying).ends_with("\r\n\r\nSIP/2.0 100 Trying\r\n"));
    dialog.notify_refer(200, "OK");
    let (ok, _) = only_request(&drain(&mut dialog));
    assert!(header(&ok, "Subscription-State").starts_with("terminated"));
    let cseq = |bytes: &[u8]| {
        Message::parse(bytes)
            .expect("parses")
            .cseq()
            .expect("CSeq")
            .seq
    };
    assert_eq!(cseq(&ok), cseq(&trying) + 1);
}

#[test]
fn the_transferor_sends_refer_and_reports_the_notified_progress() {
    let mut dialog = confirmed_outgoing();
    dialog.refer("sip:7000@192.168.2.97;user=phone");
    let (refer, destination) = only_request(&drain(&mut dialog));
    assert_eq!(
        request_line(&refer),
        "REFER sip:9000@127.0.0.3:5070 SIP/2.0"
    );
    assert_eq!(
        header(&refer, "Refer-To"),
        "<sip:7000@192.168.2.97;user=phone>"
    );
    assert_eq!(destination, "127.0.0.9:5090".parse().expect("addr"));
    feed(
        &mut dialog,
        &response(&refer, "202 Accepted", Some("b"), "", ""),
    );
    assert!(events(&drain(&mut dialog)).is_empty());
    let notify = |state: &str, frag: &str| {
        let text = String::from_utf8(refer.clone())
            .expect("utf8")
            .replacen("REFER sip", "NOTIFY sip", 1)
            .replace(" REFER\r\n", " NOTIFY\r\n")
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!(
                    "Event: refer\r\nSubscription-State: {state}\r\n\
                     Content-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
                    frag.len()
                ),
            );
        text.into_bytes()
    };
    for (cseq, (state, frag, expected)) in [
        ("active", "SIP/2.0 180 Ringing\r\n", (180, false)),
        (
            "terminated;reason=noresource",
            "SIP/2.0 200 OK\r\n",
            (200, true),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = notify(state, frag);
        let bytes = String::from_utf8(bytes)
            .expect("utf8")
            .replacen("CSeq: ", &format!("CSeq: 1{cseq}"), 1)
            .into_bytes();
        let message = Message::parse(&bytes).expect("NOTIFY parses");
        dialog
            .handle_request(Some(20 + cseq as u64), &message, &bytes)
            .expect("handled");
        let outputs = drain(&mut dialog);
        assert_eq!(responses(&outputs)[0].1, 200);
        assert_eq!(
            events(&outputs),
            [CallEvent::ReferProgress {
                status: expected.0,
                terminated: expected.1
            }]
        );
    }
}

#[test]
fn a_refused_refer_is_reported() {
    let mut dialog = confirmed_outgoing();
    dialog.refer("sip:7000@192.168.2.97");
    let (refer, _) = only_request(&drain(&mut dialog));
    feed(
        &mut dialog,
        &response(&refer, "603 Declined", Some("b"), "", ""),
    );
    assert_eq!(
        events(&drain(&mut dialog)),
        [CallEvent::ReferRefused { status: 603 }]
    );
}

#[test]
fn a_redirect_is_followed_to_its_contact_with_its_diversion_and_the_same_dialog_identifiers() {
    let mut dialog = outgoing();
    let sent = drain(&mut dialog);
    let Some(Output::Request { bytes, .. }) = sent.first() else {
        panic!("an INVITE: {sent:?}");
    };
    let invite = String::from_utf8_lossy(bytes).into_owned();
    let moved = response(
        invite.as_bytes(),
        "302 Moved Temporarily",
        Some("r1"),
        "Contact: <sip:7000@192.168.2.97;user=phone>\r\n\
         Diversion: <sip:9000@192.168.2.97>;reason=unconditional;counter=1\r\n",
        "",
    );
    feed(&mut dialog, &moved);
    let sent = drain(&mut dialog);
    assert!(events(&sent).is_empty(), "not a failure: {sent:?}");
    let Some(Output::Request { bytes, .. }) = sent.first() else {
        panic!("a new INVITE: {sent:?}");
    };
    let retry = String::from_utf8_lossy(bytes);
    assert!(
        retry.starts_with("INVITE sip:7000@192.168.2.97;user=phone SIP/2.0"),
        "{retry}"
    );
    assert!(retry.contains("CSeq: 2 INVITE"), "{retry}");
    assert!(
        retry.contains("Diversion: <sip:9000@192.168.2.97>;reason=unconditional;counter=1\r\n"),
        "{retry}"
    );
    let call_id = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("Call-ID:"))
            .map(str::to_owned)
    };
    assert_eq!(call_id(&retry), call_id(&invite));
}

#[test]
fn hook_flash_for_the_far_end_is_an_info_along_the_route_set() {
    let mut dialog = confirmed_outgoing();
    dialog.info_flash();
    let (request, destination) = only_request(&drain(&mut dialog));
    let text = String::from_utf8_lossy(&request);
    assert!(
        text.starts_with("INFO sip:9000@127.0.0.3:5070 SIP/2.0"),
        "{text}"
    );
    assert!(text.contains("Route: <sip:127.0.0.9:5090;lr>"), "{text}");
    assert!(
        text.contains("Content-Type: application/hook-flash"),
        "{text}"
    );
    assert!(text.ends_with("signal=hf\r\n"), "{text}");
    assert_eq!(destination.to_string(), "127.0.0.9:5090");
}

/// An outgoing call answered through a cluster that record-routes `lab-proxies.test`, whose
/// name resolved to `nodes`; the ACK is drained.
fn answered_through_a_cluster(nodes: &[SocketAddr]) -> Dialog {
    let mut dialog = outgoing();
    let (invite, _) = only_request(&drain(&mut dialog));
    assert_eq!(
        dialog.take_hop_lookup(),
        None,
        "no route set before the answer"
    );
    let ok = response(
        &invite,
        "200 OK",
        Some("b"),
        "Record-Route: <sip:lab-proxies.test;lr>\r\n\
         Contact: <sip:9000@127.0.0.3:5070>\r\n",
        "v=0\r\n",
    );
    feed(&mut dialog, &ok);
    let (_, ack_to) = only_request(&drain(&mut dialog));
    assert_eq!(
        ack_to,
        "127.0.0.1:5060".parse().expect("addr"),
        "before the name resolves, the proxy the call went through"
    );
    let lookup = dialog
        .take_hop_lookup()
        .expect("the route's name to resolve");
    assert_eq!(lookup.host, "lab-proxies.test");
    assert_eq!(dialog.take_hop_lookup(), None, "asked once");
    dialog.hop_resolved("lab-proxies.test", nodes.to_vec());
    dialog
}

#[test]
fn a_bye_whose_node_times_out_goes_to_the_next_address_of_the_route_name() {
    let nodes: [SocketAddr; 2] = [
        "127.0.0.1:5071".parse().expect("addr"),
        "127.0.0.1:5072".parse().expect("addr"),
    ];
    let mut dialog = answered_through_a_cluster(&nodes);
    dialog.hang_up();
    let (bye, to) = only_request(&drain(&mut dialog));
    assert_eq!(to, nodes[0]);
    assert_eq!(headers(&bye, "Route"), ["<sip:lab-proxies.test;lr>"]);
    dialog.handle_transaction_failure("BYE", 408);
    let outputs = drain(&mut dialog);
    assert!(events(&outputs).is_empty(), "the call is not over yet");
    let (again, to) = only_request(&outputs);
    assert_eq!(to, nodes[1]);
    assert_eq!(header(&again, "CSeq"), header(&bye, "CSeq"));
    assert_ne!(header(&again, "Via"), header(&bye, "Via"), "a new branch");
    assert_eq!(request_line(&again), request_line(&bye));
    feed(&mut dialog, &response(&again, "200 OK", Some("b"), "", ""));
    assert_eq!(events(&drain(&mut dialog)), [CallEvent::Terminated]);
}

#[test]
fn a_503_sends_the_request_to_the_next_address_and_later_requests_stay_there() {
    let nodes: [SocketAddr; 2] = [
        "127.0.0.1:5071".parse().expect("addr"),
        "127.0.0.1:5072".parse().expect("addr"),
    ];
    let mut dialog = answered_through_a_cluster(&nodes);
    dialog.info_flash();
    let (info, to) = only_request(&drain(&mut dialog));
    assert_eq!(to, nodes[0]);
    feed(
        &mut dialog,
        &response(&info, "503 Service Unavailable", Some("b"), "", ""),
    );
    let (_, to) = only_request(&drain(&mut dialog));
    assert_eq!(to, nodes[1]);
    dialog.hang_up();
    let (_, to) = only_request(&drain(&mut dialog));
    assert_eq!(to, nodes[1], "the node that answered is kept");
    // Each request tries every address once; when all failed, the failure stands.
    dialog.handle_transaction_failure("BYE", 408);
    let (_, to) = only_request(&drain(&mut dialog));
    assert_eq!(to, nodes[0]);
    dialog.handle_transaction_failure("BYE", 408);
    assert_eq!(events(&drain(&mut dialog)), [CallEvent::Terminated]);
}
