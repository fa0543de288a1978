//! The subscription machine on a fake clock: every SUBSCRIBE it writes, every answer it
//! gets, every NOTIFY it reads.

use super::*;

const NOTIFIER: &str = "127.0.0.1:5070";

fn params() -> SubscriptionParams {
    SubscriptionParams {
        identity: LineIdentity {
            user: "9301".into(),
            display_name: None,
            domain: "192.168.2.81".into(),
            local: "127.0.0.1:5060".parse().expect("addr"),
            transport: dialtone_transaction::Transport::Udp,
        },
        server: NOTIFIER.parse().expect("addr"),
        expires: DEFAULT_EXPIRES,
        user: DigestUser {
            username: "9301".into(),
            password: "9301".into(),
        },
    }
}

fn started(seed: u64, now: Instant) -> (Subscription, Vec<u8>) {
    let mut sub = Subscription::new(params(), seed);
    sub.start(now);
    let first = sub.poll_transmit().expect("a SUBSCRIBE").bytes;
    (sub, first)
}

/// Answers `request` as a notifier would: its transaction headers, a To tag when `to_tag`
/// and the request has none, and `extra` lines.
fn respond(request: &[u8], status: &str, to_tag: Option<&str>, extra: &str) -> Vec<u8> {
    let request = Message::parse(request).expect("our SUBSCRIBE parses");
    let mut text = format!("SIP/2.0 {status}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let value = request.header_value_by_name(name).expect("header present");
        text.push_str(&format!("{name}: {value}"));
        if let (Some(tag), "To", false) = (to_tag, name, value.contains(";tag=")) {
            text.push_str(&format!(";tag={tag}"));
        }
        text.push_str("\r\n");
    }
    text.push_str(extra);
    text.push_str("Content-Length: 0\r\n\r\n");
    text.into_bytes()
}

fn feed(sub: &mut Subscription, now: Instant, bytes: &[u8]) {
    let message = Message::parse(bytes).expect("response parses");
    sub.handle_response(now, &message).expect("handled");
}

/// A NOTIFY from the notifier in the dialog of `subscribe`, From tag `notifier_tag`.
fn notify(subscribe: &[u8], notifier_tag: &str, cseq: u32, state: &str, body: &str) -> Vec<u8> {
    let subscribe = Message::parse(subscribe).expect("parses");
    let call_id = subscribe.call_id().expect("Call-ID");
    let our_tag = subscribe
        .from()
        .expect("From")
        .tag()
        .expect("our tag")
        .to_owned();
    format!(
        "NOTIFY sip:9301@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP {NOTIFIER};branch=z9hG4bKn{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:9301@192.168.2.81>;tag={notifier_tag}\r\n\
         To: <sip:9301@192.168.2.81>;tag={our_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Contact: <sip:9301@{NOTIFIER}>\r\n\
         Event: message-summary\r\n\
         Subscription-State: {state}\r\n\
         Content-Type: application/simple-message-summary\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn deliver(sub: &mut Subscription, now: Instant, bytes: &[u8]) -> NotifyAnswer {
    let message = Message::parse(bytes).expect("NOTIFY parses");
    sub.handle_notify(now, &message)
}

fn header(bytes: &[u8], name: &str) -> String {
    Message::parse(bytes)
        .expect("parses")
        .header_value_by_name(name)
        .map(str::to_owned)
        .unwrap_or_default()
}

fn request_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// A subscription the notifier accepted with To tag `nt`, `Expires: 100`, a Record-Route and
/// its Contact; returns it with its first SUBSCRIBE.
fn active(seed: u64, now: Instant) -> (Subscription, Vec<u8>) {
    let (mut sub, first) = started(seed, now);
    let extra = "Record-Route: <sip:10.0.0.1;lr>\r\nRecord-Route: <sip:10.0.0.2;lr>\r\n\
                 Contact: <sip:mailbox@10.0.0.9:5080>\r\nExpires: 100\r\n";
    feed(&mut sub, now, &respond(&first, "200 OK", Some("nt"), extra));
    (sub, first)
}

#[test]
fn the_first_subscribe_asks_the_lines_own_address_for_message_summary() {
    let now = Instant::now();
    let (sub, first) = started(1, now);
    assert_eq!(
        request_line(&first),
        "SUBSCRIBE sip:9301@192.168.2.81;user=phone SIP/2.0"
    );
    assert_eq!(header(&first, "To"), "<sip:9301@192.168.2.81;user=phone>");
    assert!(header(&first, "From").contains(";tag="));
    assert_eq!(header(&first, "Event"), "message-summary");
    assert_eq!(
        header(&first, "Accept"),
        "application/simple-message-summary"
    );
    assert_eq!(header(&first, "Expires"), "3600");
    assert_eq!(header(&first, "CSeq"), "1 SUBSCRIBE");
    assert_eq!(
        header(&first, "Contact"),
        "<sip:9301@127.0.0.1:5060;user=phone;transport=udp>"
    );
    assert_eq!(sub.state(), SubscriptionState::Subscribing);
    let (call_id, tag) = sub.dialog_key().expect("NOTIFYs expected already");
    assert_eq!(call_id, header(&first, "Call-ID"));
    assert!(header(&first, "From").ends_with(&format!(";tag={tag}")));
}

#[test]
fn a_407_is_answered_with_proxy_authorization_in_the_next_cseq() {
    let now = Instant::now();
    let (mut sub, first) = started(2, now);
    let challenge = "Proxy-Authenticate: Digest realm=\"lab\", nonce=\"n1\"\r\n";
    feed(
        &mut sub,
        now,
        &respond(
            &first,
            "407 Proxy Authentication Required",
            Some("x"),
            challenge,
        ),
    );
    let second = sub.poll_transmit().expect("the SUBSCRIBE again").bytes;
    assert_eq!(header(&second, "CSeq"), "2 SUBSCRIBE");
    assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&second, "From"), header(&first, "From"));
    assert_eq!(
        header(&second, "To"),
        header(&first, "To"),
        "no tag from a 407"
    );
    let credentials = header(&second, "Proxy-Authorization");
    assert!(credentials.contains("username=\"9301\""), "{credentials}");
    assert!(
        credentials.contains("uri=\"sip:9301@192.168.2.81;user=phone\""),
        "{credentials}"
    );
    // The same nonce again: the password is wrong; back off.
    feed(
        &mut sub,
        now,
        &respond(
            &second,
            "407 Proxy Authentication Required",
            Some("x"),
            challenge,
        ),
    );
    assert!(sub.poll_transmit().is_none());
    assert_eq!(
        sub.state(),
        SubscriptionState::Waiting {
            status: 407,
            retry_at: now + BACKOFF_START
        }
    );
}

#[test]
fn a_200_makes_the_dialog_and_refreshes_in_it_at_eighty_percent() {
    let now = Instant::now();
    let (mut sub, first) = active(3, now);
    assert_eq!(
        sub.state(),
        SubscriptionState::Active {
            until: now + Duration::from_secs(100)
        }
    );
    assert_eq!(sub.poll_timeout(), Some(now + Duration::from_secs(80)));
    sub.handle_timeout(now + Duration::from_secs(79));
    assert!(sub.poll_transmit().is_none(), "not yet at 79 s");
    sub.handle_timeout(now + Duration::from_secs(80));
    let refresh = sub.poll_transmit().expect("a refresh at 80 s");
    // RFC 3261 12.2.1.1 with the route set reversed from the 2xx's Record-Route.
    assert_eq!(
        request_line(&refresh.bytes),
        "SUBSCRIBE sip:mailbox@10.0.0.9:5080 SIP/2.0"
    );
    let text = String::from_utf8_lossy(&refresh.bytes).into_owned();
    let routes: Vec<&str> = text.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(
        routes,
        ["Route: <sip:10.0.0.2;lr>", "Route: <sip:10.0.0.1;lr>"]
    );
    assert_eq!(refresh.destination, "10.0.0.2:5060".parse().expect("addr"));
    assert_eq!(header(&refresh.bytes, "Call-ID"), header(&first, "Call-ID"));
    assert_eq!(header(&refresh.bytes, "From"), header(&first, "From"));
    assert!(header(&refresh.bytes, "To").ends_with(";tag=nt"));
    assert_eq!(header(&refresh.bytes, "CSeq"), "2 SUBSCRIBE");
    assert_eq!(header(&refresh.bytes, "Expires"), "3600");
    // A grant above what was asked is held to what was asked (RFC 6665 4.2.1.1).
    let later = now + Duration::from_secs(80);
    feed(
        &mut sub,
        later,
        &respond(&refresh.bytes, "200 OK", None, "Expires: 5000\r\n"),
    );
    assert_eq!(sub.poll_timeout(), Some(later + Duration::from_secs(2880)));
}

#[test]
fn notify_bodies_in_the_dialog_are_answered_200_and_read_into_summaries() {
    let now = Instant::now();
    let (mut sub, first) = active(4, now);
    let bodies = [
        ("Messages-Waiting: no\r\nVoice-Message: 0/0 (0/0)\r\n", Some((0, 0))),
        ("Messages-Waiting: yes\r\nMessage-Account: sip:9301@lab\r\nVoice-Message: 2/1 (1/0)\r\n", Some((2, 1))),
        ("Messages-Waiting: yes\r\n", Some((1, 0))),
        ("", None),
    ];
    for (cseq, (body, want)) in (1..).zip(bodies) {
        let answer = deliver(
            &mut sub,
            now,
            &notify(&first, "nt", cseq, "active;expires=100", body),
        );
        assert_eq!(answer.status, 200, "{body:?}");
        assert!(answer.bytes.starts_with(b"SIP/2.0 200 OK\r\n"));
        let got = sub.poll_summary().map(|s| (s.new, s.old));
        assert_eq!(got, want, "{body:?}");
    }
    assert!(sub.poll_summary().is_none());
}

#[test]
fn a_notify_that_overtakes_the_200_makes_the_dialog_and_counts() {
    let now = Instant::now();
    let (mut sub, first) = started(5, now);
    let body = "Messages-Waiting: yes\r\nVoice-Message: 3/0\r\n";
    let answer = deliver(
        &mut sub,
        now,
        &notify(&first, "nt", 1, "active;expires=60", body),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(sub.poll_summary(), Some(MessageSummary { new: 3, old: 0 }));
    feed(
        &mut sub,
        now,
        &respond(&first, "200 OK", Some("nt"), "Expires: 60\r\n"),
    );
    assert!(matches!(sub.state(), SubscriptionState::Active { .. }));
    // A second notifier (a fork) is not another subscription.
    let forked = deliver(&mut sub, now, &notify(&first, "other", 1, "active", body));
    assert_eq!(forked.status, 481);
}

#[test]
fn a_notify_of_another_package_or_another_method_is_refused() {
    let now = Instant::now();
    let (mut sub, first) = active(6, now);
    let text = String::from_utf8(notify(&first, "nt", 1, "active", "")).expect("text");
    let presence = text.replace("Event: message-summary", "Event: presence");
    assert_eq!(deliver(&mut sub, now, presence.as_bytes()).status, 489);
    let info = text
        .replacen("NOTIFY sip", "INFO sip", 1)
        .replace("1 NOTIFY", "1 INFO");
    assert_eq!(deliver(&mut sub, now, info.as_bytes()).status, 405);
}

#[test]
fn an_earlier_expiry_in_subscription_state_brings_the_refresh_forward() {
    let now = Instant::now();
    let (mut sub, first) = active(7, now);
    deliver(
        &mut sub,
        now,
        &notify(&first, "nt", 1, "active;expires=50", ""),
    );
    assert_eq!(sub.poll_timeout(), Some(now + Duration::from_secs(40)));
    deliver(
        &mut sub,
        now,
        &notify(&first, "nt", 2, "active;expires=3000", ""),
    );
    assert_eq!(sub.poll_timeout(), Some(now + Duration::from_secs(40)));
}

#[test]
fn a_terminated_notify_ends_the_dialog_and_subscribes_again_later_in_a_new_one() {
    let now = Instant::now();
    let (mut sub, first) = active(8, now);
    let body = "Messages-Waiting: no\r\n";
    let answer = deliver(
        &mut sub,
        now,
        &notify(&first, "nt", 1, "terminated;reason=deactivated", body),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(sub.poll_summary(), Some(MessageSummary { new: 0, old: 0 }));
    assert_eq!(sub.dialog_key(), None, "the old dialog is no longer routed");
    assert_eq!(sub.poll_timeout(), Some(now + RESUBSCRIBE_DELAY));
    sub.handle_timeout(now + RESUBSCRIBE_DELAY);
    let again = sub.poll_transmit().expect("a new SUBSCRIBE").bytes;
    assert_eq!(request_line(&again), request_line(&first));
    assert_ne!(header(&again, "Call-ID"), header(&first, "Call-ID"));
    assert_ne!(header(&again, "From"), header(&first, "From"));
    assert!(!header(&again, "To").contains(";tag="));
    assert_eq!(sub.state(), SubscriptionState::Subscribing);
}

#[test]
fn a_terminated_notify_with_retry_after_or_a_refusal_waits_longer() {
    let now = Instant::now();
    for (state, wait) in [
        ("terminated;reason=probation;retry-after=120", 120),
        ("terminated;retry-after=99999", 3600),
        ("terminated;reason=rejected", 30),
        ("terminated;reason=timeout", 5),
    ] {
        let (mut sub, first) = active(9, now);
        deliver(&mut sub, now, &notify(&first, "nt", 1, state, ""));
        assert_eq!(
            sub.poll_timeout(),
            Some(now + Duration::from_secs(wait)),
            "{state}"
        );
    }
}

#[test]
fn failures_back_off_from_thirty_seconds_doubling_up_to_ten_minutes() {
    let mut now = Instant::now();
    let (mut sub, first) = started(10, now);
    feed(
        &mut sub,
        now,
        &respond(&first, "489 Bad Event", Some("x"), ""),
    );
    let mut delays = vec![(sub.poll_timeout().expect("a retry") - now).as_secs()];
    for _ in 0..6 {
        now = sub.poll_timeout().expect("a retry");
        sub.handle_timeout(now);
        assert!(sub.poll_transmit().is_some());
        sub.handle_failure(now, 408);
        delays.push((sub.poll_timeout().expect("a retry") - now).as_secs());
    }
    assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600]);
}

#[test]
fn a_failure_with_retry_after_waits_at_least_that_long() {
    let now = Instant::now();
    let (mut sub, first) = started(11, now);
    let answer = respond(
        &first,
        "503 Service Unavailable",
        Some("x"),
        "Retry-After: 90\r\n",
    );
    feed(&mut sub, now, &answer);
    assert_eq!(sub.poll_timeout(), Some(now + Duration::from_secs(90)));
}

#[test]
fn a_481_to_a_refresh_subscribes_again_at_once_outside_the_dialog() {
    let now = Instant::now();
    let (mut sub, first) = active(12, now);
    let later = now + Duration::from_secs(80);
    sub.handle_timeout(later);
    let refresh = sub.poll_transmit().expect("refresh").bytes;
    feed(
        &mut sub,
        later,
        &respond(&refresh, "481 Subscription Does Not Exist", None, ""),
    );
    let again = sub.poll_transmit().expect("a new subscription").bytes;
    assert_eq!(request_line(&again), request_line(&first));
    assert!(!header(&again, "To").contains(";tag="));
    assert_ne!(header(&again, "Call-ID"), header(&first, "Call-ID"));
}

#[test]
fn unsubscribing_sends_expires_zero_in_the_dialog_and_ends_idle() {
    let now = Instant::now();
    let (mut sub, _first) = active(13, now);
    sub.unsubscribe(now);
    let bye = sub.poll_transmit().expect("an Expires: 0 SUBSCRIBE").bytes;
    assert_eq!(header(&bye, "Expires"), "0");
    assert!(header(&bye, "To").ends_with(";tag=nt"));
    assert_eq!(sub.state(), SubscriptionState::Unsubscribing);
    feed(
        &mut sub,
        now,
        &respond(&bye, "200 OK", None, "Expires: 0\r\n"),
    );
    assert_eq!(sub.state(), SubscriptionState::Idle);
    assert_eq!(sub.poll_timeout(), None);
    assert_eq!(sub.dialog_key(), None);
}

#[test]
fn unsubscribing_without_a_dialog_just_stops_trying() {
    let now = Instant::now();
    let (mut sub, first) = started(14, now);
    feed(
        &mut sub,
        now,
        &respond(&first, "500 Server Error", Some("x"), ""),
    );
    sub.unsubscribe(now);
    assert!(sub.poll_transmit().is_none());
    assert_eq!(sub.state(), SubscriptionState::Idle);
    assert_eq!(sub.poll_timeout(), None);
}
