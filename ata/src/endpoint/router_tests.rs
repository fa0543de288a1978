//! The router's decisions, one request at a time; owners are plain names.

use super::*;

type TestRouter = Router<&'static str, &'static str, &'static str, &'static str>;
type TestRoute = Route<&'static str, &'static str, &'static str, &'static str>;

const CALL_ID: &str = "a84b4c76e66710@192.168.2.97";

fn request(method: &str, request_uri: &str, to_tag: Option<&str>, extra: &str) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} {request_uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.2.97:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:8000@192.168.2.97>;tag=1928301774\r\n\
         To: <sip:9000@192.168.2.97>{to_tag}\r\n\
         Call-ID: {CALL_ID}\r\n\
         CSeq: 1 {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn new_request(id: u64) -> Disposition<()> {
    Disposition::New { id, cancels: None }
}

fn route(router: &mut TestRouter, bytes: &[u8], disposition: Disposition<()>) -> TestRoute {
    let message = Message::parse(bytes).expect("the request parses");
    router.route(&message, disposition)
}

fn answered(route: TestRoute) -> (u64, u16, String) {
    match route {
        Route::OwnResponse(answer) => (
            answer.txn,
            answer.status,
            String::from_utf8(answer.bytes).expect("text"),
        ),
        other => panic!("expected the endpoint's own answer, got {other:?}"),
    }
}

fn to_header(response: &str) -> &str {
    response
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("a To header")
}

fn router_with_a_call_in_dialog() -> TestRouter {
    let mut router = TestRouter::new(7);
    router.route_dialog(CALL_ID.into(), "ours".into(), "call", Some(3));
    router
}

#[test]
fn a_request_in_a_known_dialog_goes_to_the_call_that_routed_it() {
    let mut router = router_with_a_call_in_dialog();
    let bye = request("BYE", "sip:9000@127.0.0.1", Some("ours"), "");
    assert_eq!(
        route(&mut router, &bye, new_request(9)),
        Route::InDialog {
            owner: "call",
            txn: Some(9)
        }
    );
}

#[test]
fn the_ack_to_a_2xx_goes_to_its_dialog_without_a_transaction() {
    let mut router = router_with_a_call_in_dialog();
    let ack = request("ACK", "sip:9000@127.0.0.1", Some("ours"), "");
    assert_eq!(
        route(&mut router, &ack, Disposition::AckForDialog),
        Route::InDialog {
            owner: "call",
            txn: None
        }
    );
}

#[test]
fn an_ack_of_no_known_dialog_is_dropped() {
    let mut router = router_with_a_call_in_dialog();
    let ack = request("ACK", "sip:9000@127.0.0.1", Some("other"), "");
    assert_eq!(
        route(&mut router, &ack, Disposition::AckForDialog),
        Route::Nothing
    );
}

#[test]
fn what_the_table_absorbed_goes_nowhere() {
    let mut router = router_with_a_call_in_dialog();
    let bye = request("BYE", "sip:9000@127.0.0.1", Some("ours"), "");
    assert_eq!(
        route(&mut router, &bye, Disposition::Absorbed),
        Route::Nothing
    );
}

#[test]
fn a_cancel_goes_to_the_call_that_owns_the_invite_it_cancels() {
    let mut router = router_with_a_call_in_dialog();
    let cancel = request("CANCEL", "sip:9000@127.0.0.1", None, "");
    let disposition = Disposition::New {
        id: 4,
        cancels: Some((3, None)),
    };
    assert_eq!(
        route(&mut router, &cancel, disposition),
        Route::Cancel {
            owner: "call",
            txn: 4
        }
    );
}

#[test]
fn a_cancel_of_no_known_invite_is_answered_481() {
    let mut router = router_with_a_call_in_dialog();
    let cancel = request("CANCEL", "sip:9000@127.0.0.1", None, "");
    let (txn, status, _) = answered(route(&mut router, &cancel, new_request(4)));
    assert_eq!((txn, status), (4, 481));
    let disposition = Disposition::New {
        id: 5,
        cancels: Some((99, None)),
    };
    let (txn, status, _) = answered(route(&mut router, &cancel, disposition));
    assert_eq!((txn, status), (5, 481));
}

#[test]
fn a_request_with_a_to_tag_of_no_known_dialog_is_answered_481_keeping_its_tag() {
    let mut router = router_with_a_call_in_dialog();
    let bye = request("BYE", "sip:9000@127.0.0.1", Some("gone"), "");
    let (txn, status, response) = answered(route(&mut router, &bye, new_request(6)));
    assert_eq!((txn, status), (6, 481));
    assert_eq!(to_header(&response), "To: <sip:9000@192.168.2.97>;tag=gone");
}

#[test]
fn a_new_invite_goes_to_the_line_whose_user_is_in_the_request_uri() {
    let mut router = TestRouter::new(7);
    router.attach_line("8000".into(), "line 1");
    router.attach_line("9000".into(), "line 2");
    let invite = request("INVITE", "sip:9000@127.0.0.1", None, "");
    assert_eq!(
        route(&mut router, &invite, new_request(1)),
        Route::NewCall {
            owner: "line 2",
            txn: 1
        }
    );
}

#[test]
fn a_new_invite_for_a_user_no_line_has_goes_to_the_first_line() {
    let mut router = TestRouter::new(7);
    router.attach_line("8000".into(), "line 1");
    router.attach_line("9000".into(), "line 2");
    let invite = request("INVITE", "sip:127.0.0.1", None, "");
    assert_eq!(
        route(&mut router, &invite, new_request(1)),
        Route::NewCall {
            owner: "line 1",
            txn: 1
        }
    );
}

#[test]
fn a_new_invite_without_any_line_is_answered_404() {
    let mut router = TestRouter::new(7);
    let invite = request("INVITE", "sip:9000@127.0.0.1", None, "");
    let (txn, status, _) = answered(route(&mut router, &invite, new_request(1)));
    assert_eq!((txn, status), (1, 404));
}

#[test]
fn an_options_outside_a_dialog_is_answered_200_with_allow_and_accept() {
    let mut router = TestRouter::new(7);
    let options = request("OPTIONS", "sip:9000@127.0.0.1", None, "");
    let (txn, status, response) = answered(route(&mut router, &options, new_request(2)));
    assert_eq!((txn, status), (2, 200));
    assert!(response.starts_with("SIP/2.0 200 OK\r\n"), "{response}");
    assert!(
        response.contains(&format!("\r\nAllow: {ALLOW}\r\n")),
        "{response}"
    );
    assert!(
        response.contains("\r\nAccept: application/sdp\r\n"),
        "{response}"
    );
    assert!(
        response.contains(&format!("\r\nServer: {USER_AGENT}\r\n")),
        "{response}"
    );
}

#[test]
fn a_check_sync_notify_is_answered_200_and_passed_on() {
    let mut router = TestRouter::new(7);
    router.attach_check_sync("resync");
    let notify = request(
        "NOTIFY",
        "sip:9000@127.0.0.1",
        None,
        "Event: check-sync;reboot=false\r\n",
    );
    match route(&mut router, &notify, new_request(8)) {
        Route::CheckSync { owner, response } => {
            assert_eq!(owner, "resync");
            assert_eq!((response.txn, response.status), (8, 200));
        }
        other => panic!("expected check-sync, got {other:?}"),
    }
}

#[test]
fn a_check_sync_notify_with_nobody_to_resync_is_answered_489() {
    let mut router = TestRouter::new(7);
    let notify = request(
        "NOTIFY",
        "sip:9000@127.0.0.1",
        None,
        "Event: check-sync\r\n",
    );
    let (_, status, _) = answered(route(&mut router, &notify, new_request(8)));
    assert_eq!(status, 489);
}

#[test]
fn a_notify_of_an_event_package_we_do_not_know_is_answered_489() {
    let mut router = TestRouter::new(7);
    router.attach_check_sync("resync");
    router.attach_mwi("9000".into(), "mwi of 9000");
    let notify = request("NOTIFY", "sip:9000@127.0.0.1", None, "Event: presence\r\n");
    let (_, status, _) = answered(route(&mut router, &notify, new_request(8)));
    assert_eq!(status, 489);
}

fn message_summary_notify(request_uri: &str) -> Vec<u8> {
    request(
        "NOTIFY",
        request_uri,
        None,
        "Event: message-summary\r\nSubscription-State: active\r\n",
    )
}

#[test]
fn an_unsolicited_message_summary_notify_is_answered_200_and_goes_to_its_users_mwi_owner() {
    let mut router = TestRouter::new(7);
    router.attach_mwi("8000".into(), "mwi of 8000");
    router.attach_mwi("9000".into(), "mwi of 9000");
    let notify = message_summary_notify("sip:9000@127.0.0.1");
    match route(&mut router, &notify, new_request(8)) {
        Route::MessageSummary { owner, response } => {
            assert_eq!(owner, "mwi of 9000");
            assert_eq!((response.txn, response.status), (8, 200));
            let text = String::from_utf8(response.bytes).expect("text");
            assert!(to_header(&text).contains(";tag="), "{text}");
        }
        other => panic!("expected a message summary, got {other:?}"),
    }
}

#[test]
fn an_unsolicited_message_summary_for_no_lines_user_goes_to_the_first_line() {
    let mut router = TestRouter::new(7);
    router.attach_mwi("8000".into(), "mwi of 8000");
    router.attach_mwi("9000".into(), "mwi of 9000");
    for uri in ["sip:7777@127.0.0.1", "sip:127.0.0.1:5060"] {
        match route(&mut router, &message_summary_notify(uri), new_request(8)) {
            Route::MessageSummary { owner, .. } => assert_eq!(owner, "mwi of 8000", "{uri}"),
            other => panic!("expected a message summary for {uri}, got {other:?}"),
        }
    }
}

#[test]
fn an_unsolicited_message_summary_without_any_mwi_owner_is_answered_489() {
    let mut router = TestRouter::new(7);
    router.attach_line("9000".into(), "line 9000");
    let notify = message_summary_notify("sip:9000@127.0.0.1");
    let (_, status, _) = answered(route(&mut router, &notify, new_request(8)));
    assert_eq!(status, 489);
}

#[test]
fn a_message_summary_notify_in_a_routed_subscription_dialog_goes_to_its_owner() {
    let mut router = TestRouter::new(7);
    router.attach_mwi("9000".into(), "mwi of 9000");
    router.route_dialog(CALL_ID.into(), "subscriber".into(), "subscription", None);
    let notify = request(
        "NOTIFY",
        "sip:9000@127.0.0.1",
        Some("subscriber"),
        "Event: message-summary\r\n",
    );
    assert_eq!(
        route(&mut router, &notify, new_request(8)),
        Route::InDialog {
            owner: "subscription",
            txn: Some(8)
        }
    );
}

#[test]
fn another_method_outside_a_dialog_is_answered_405_with_allow() {
    let mut router = TestRouter::new(7);
    let info = request("INFO", "sip:9000@127.0.0.1", None, "");
    let (_, status, response) = answered(route(&mut router, &info, new_request(8)));
    assert_eq!(status, 405);
    assert!(
        response.contains(&format!("\r\nAllow: {ALLOW}\r\n")),
        "{response}"
    );
}

#[test]
fn the_routers_own_responses_carry_a_random_to_tag_not_a_constant_one() {
    let options = request("OPTIONS", "sip:9000@127.0.0.1", None, "");
    let tag_of = |router: &mut TestRouter| {
        let (_, _, response) = answered(route(router, &options, new_request(2)));
        to_header(&response)
            .split(";tag=")
            .nth(1)
            .expect("a To tag")
            .to_owned()
    };
    let mut router = TestRouter::new(7);
    let first = tag_of(&mut router);
    let second = tag_of(&mut router);
    assert_ne!(first, "ata");
    assert!(!first.is_empty() && first.chars().all(|c| c.is_ascii_digit()));
    assert_ne!(first, second);
    assert_ne!(first, tag_of(&mut TestRouter::new(8)));
}

#[test]
fn a_forgotten_dialog_takes_neither_its_requests_nor_the_cancels_of_its_invite() {
    let mut router = router_with_a_call_in_dialog();
    router.forget_dialog(CALL_ID.into(), "ours".into());
    let bye = request("BYE", "sip:9000@127.0.0.1", Some("ours"), "");
    let (_, status, _) = answered(route(&mut router, &bye, new_request(9)));
    assert_eq!(status, 481);
    let cancel = request("CANCEL", "sip:9000@127.0.0.1", None, "");
    let disposition = Disposition::New {
        id: 4,
        cancels: Some((3, None)),
    };
    let (_, status, _) = answered(route(&mut router, &cancel, disposition));
    assert_eq!(status, 481);
}
