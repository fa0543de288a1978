//! The notifier driven through the core's entry points (no socket, simulated clock): what a
//! SUBSCRIBE gets, what setting counts sends, and what becomes of a NOTIFY on the wire.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{HeaderName, Message};

use crate::config::ProxyFlags;
use crate::proxy_core::tests::{answer, core_with, sends, udp_from};
use crate::proxy_core::{Action, ProxyCore, TimerId};
use crate::registrar::{BindingChange, MessageCounts};

const PHONE: &str = "192.0.2.50:5060";

/// lab.example, users 8000 and 9000, with `auth`.
fn lab(auth: &str) -> ProxyCore {
    core_with(ProxyFlags {
        domain: vec!["lab.example".into()],
        auth: Some(auth.into()),
        user: vec!["8000:8000".into(), "9000:9000".into()],
        ..Default::default()
    })
}

/// A SUBSCRIBE from 9000's phone; `to_tag` makes it a refresh, `expires` its Expires.
fn subscribe(call_id: &str, cseq: u32, to_tag: Option<&str>, expires: Option<u32>) -> Bytes {
    let to_tag = to_tag.map_or(String::new(), |t| format!(";tag={t}"));
    let expires = expires.map_or(String::new(), |e| format!("Expires: {e}\r\n"));
    let uri = if to_tag.is_empty() {
        "sip:9000@lab.example"
    } else {
        "sip:9000@127.0.0.1:5070"
    };
    Bytes::from(format!("SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE};branch=z9hG4bK{call_id}{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=phone\r\nTo: <sip:9000@lab.example>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:9000@{PHONE}>\r\nEvent: message-summary\r\nAccept: application/simple-message-summary\r\n{expires}Content-Length: 0\r\n\r\n"))
}

fn from_phone(core: &ProxyCore, now: Instant, bytes: Bytes) -> Vec<Action> {
    core.handle_message(now, SystemTime::now(), udp_from(PHONE), bytes)
}

/// The responses and the NOTIFYs among `actions`, each parsed.
fn split(actions: &[Action]) -> (Vec<Bytes>, Vec<Bytes>) {
    sends(actions)
        .into_iter()
        .map(|(_, b)| b)
        .partition(|b| b.starts_with(b"SIP/2.0"))
}

fn header<'a>(message: &'a Message<'_>, name: &str) -> &'a str {
    message
        .header_value_by_name(name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn body(bytes: &[u8]) -> String {
    String::from_utf8_lossy(Message::parse(bytes).unwrap().body()).into_owned()
}

/// Subscribes (call `id`) and returns the 200's To tag, checking the 200 and first NOTIFY.
fn subscribed(core: &ProxyCore, now: Instant, id: &str) -> String {
    let (responses, notifies) = split(&from_phone(core, now, subscribe(id, 1, None, None)));
    assert_eq!(responses.len(), 1, "{responses:?}");
    let ok = Message::parse(&responses[0]).unwrap();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(header(&ok, "Expires"), "3600", "the default grant");
    assert!(header(&ok, "Contact").contains("sip:9000@127.0.0.1:5070"));
    let to_tag = ok.to().unwrap().tag().expect("a To tag").to_string();
    assert_eq!(notifies.len(), 1, "a NOTIFY at once");
    to_tag
}

#[test]
fn a_subscribe_gets_a_200_and_at_once_a_notify_with_the_summary() {
    let core = lab("none");
    let now = Instant::now();
    let actions = from_phone(&core, now, subscribe("s1", 1, None, Some(7200)));
    let (responses, notifies) = split(&actions);
    let ok = Message::parse(&responses[0]).unwrap();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(header(&ok, "Expires"), "3600", "capped at an hour");
    let to_tag = ok.to().unwrap().tag().unwrap();
    assert_ne!(to_tag, core.to_tag, "a tag of its own per dialog");

    let (to, bytes) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"NOTIFY"))
        .unwrap();
    assert_eq!(to.addr, PHONE.parse().unwrap());
    assert_eq!(bytes, notifies[0]);
    let notify = Message::parse(&bytes).unwrap();
    assert_eq!(
        notify.request_uri().unwrap().as_str(),
        "sip:9000@192.0.2.50:5060"
    );
    assert_eq!(notify.call_id().unwrap(), "s1");
    assert_eq!(notify.from().unwrap().tag(), Some(to_tag));
    assert_eq!(notify.to().unwrap().tag(), Some("phone"));
    assert_eq!(notify.cseq().unwrap().seq, 1);
    assert_eq!(header(&notify, "Event"), "message-summary");
    assert_eq!(header(&notify, "Subscription-State"), "active;expires=3600");
    assert_eq!(
        header(&notify, "Content-Type"),
        "application/simple-message-summary"
    );
    assert!(notify
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .starts_with("z9hG4bK"));
    assert_eq!(
        body(&bytes),
        "Messages-Waiting: no\r\nMessage-Account: sip:9000@lab.example\r\nVoice-Message: 0/0 (0/0)\r\n"
    );
    assert_eq!(core.mwi.subscription_count(), 1);

    // The same SUBSCRIBE again (its 200 was lost): the same answer, no second subscription.
    let (again, notifies) = split(&from_phone(
        &core,
        now,
        subscribe("s1", 1, None, Some(7200)),
    ));
    let again = Message::parse(&again[0]).unwrap();
    assert_eq!(again.to().unwrap().tag(), Some(to_tag));
    assert!(notifies.is_empty());
    assert_eq!(core.mwi.subscription_count(), 1);
}

#[test]
fn a_refresh_in_the_dialog_renews_it_and_notifies_again() {
    let core = lab("none");
    let now = Instant::now();
    let tag = subscribed(&core, now, "s2");
    let later = now + Duration::from_secs(100);
    let (responses, notifies) = split(&from_phone(
        &core,
        later,
        subscribe("s2", 2, Some(&tag), Some(600)),
    ));
    let ok = Message::parse(&responses[0]).unwrap();
    assert_eq!(ok.status(), Some(200));
    assert_eq!(header(&ok, "Expires"), "600");
    let notify = Message::parse(&notifies[0]).unwrap();
    assert_eq!(notify.cseq().unwrap().seq, 2, "CSeq grows in the dialog");
    assert_eq!(header(&notify, "Subscription-State"), "active;expires=600");

    // A refresh for a dialog nobody made is 481.
    let (responses, _) = split(&from_phone(
        &core,
        later,
        subscribe("s2", 3, Some("nope"), Some(600)),
    ));
    assert_eq!(Message::parse(&responses[0]).unwrap().status(), Some(481));
}

#[test]
fn expires_zero_unsubscribes_with_a_last_notify_saying_terminated() {
    let core = lab("none");
    let now = Instant::now();
    let tag = subscribed(&core, now, "s3");
    let (responses, notifies) = split(&from_phone(
        &core,
        now,
        subscribe("s3", 2, Some(&tag), Some(0)),
    ));
    let ok = Message::parse(&responses[0]).unwrap();
    assert_eq!(header(&ok, "Expires"), "0");
    let notify = Message::parse(&notifies[0]).unwrap();
    assert!(header(&notify, "Subscription-State").starts_with("terminated"));
    assert_eq!(core.mwi.subscription_count(), 0);
}

#[test]
fn counts_set_are_persisted_then_notified_to_subscriptions_and_bindings() {
    let core = lab("none");
    let now = Instant::now();
    let wall = SystemTime::now();
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.60:5060;branch=z9hG4bKreg\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@192.0.2.60:5060>\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(
        now,
        wall,
        udp_from("192.0.2.60:5060"),
        Bytes::from_static(register.as_bytes()),
    );
    subscribed(&core, now, "s4");

    let counts = MessageCounts { new: 2, old: 1 };
    let actions = core.set_message_counts(now, wall, "9000", counts).unwrap();
    assert!(
        matches!(&actions[0], Action::Persist { changes, .. }
            if changes == &[BindingChange::Mailbox { aor: "9000".into(), counts }]),
        "persisted first: {actions:?}"
    );
    let notifies = sends(&actions);
    assert_eq!(notifies.len(), 2, "{notifies:?}");
    let (in_dialog, unsolicited): (Vec<_>, Vec<_>) = notifies
        .iter()
        .partition(|(to, _)| to.addr == PHONE.parse().unwrap());
    let expected = "Messages-Waiting: yes\r\nMessage-Account: sip:9000@lab.example\r\nVoice-Message: 2/1 (0/0)\r\n";
    let notify = Message::parse(&in_dialog[0].1).unwrap();
    assert_eq!(notify.call_id().unwrap(), "s4");
    assert_eq!(notify.cseq().unwrap().seq, 2);
    assert_eq!(body(&in_dialog[0].1), expected);

    assert_eq!(unsolicited[0].0.addr, "192.0.2.60:5060".parse().unwrap());
    let notify = Message::parse(&unsolicited[0].1).unwrap();
    assert_eq!(
        notify.request_uri().unwrap().as_str(),
        "sip:9000@192.0.2.60:5060"
    );
    assert!(notify.to().unwrap().tag().is_none(), "out of any dialog");
    assert_eq!(header(&notify, "Subscription-State"), "active");
    assert_eq!(header(&notify, "Event"), "message-summary");
    assert_eq!(body(&unsolicited[0].1), expected);
    assert_eq!(core.mwi.counts("9000"), counts);
    assert_eq!(core.message_counts("9000", wall), Ok(counts));
}

#[test]
fn counts_for_an_unknown_user_are_refused() {
    let core = lab("none");
    let error = core
        .set_message_counts(
            Instant::now(),
            SystemTime::now(),
            "nobody",
            MessageCounts::default(),
        )
        .unwrap_err();
    assert_eq!(
        error,
        crate::registrar::MailboxError::UnknownUser("nobody".into())
    );
}

#[test]
fn a_481_to_a_notify_ends_the_subscription() {
    let core = lab("none");
    let now = Instant::now();
    subscribed(&core, now, "s5");
    let actions = core
        .set_message_counts(
            now,
            SystemTime::now(),
            "9000",
            MessageCounts { new: 1, old: 0 },
        )
        .unwrap();
    let (_, notify) = sends(&actions).remove(0);
    let gone = answer(&notify, "481 Subscription Does Not Exist", "phone", &[]);
    from_phone(&core, now, gone);
    assert_eq!(core.mwi.subscription_count(), 0);
}

#[test]
fn a_notify_is_retransmitted_at_timer_e_and_its_timeout_ends_the_subscription() {
    let core = lab("none");
    let now = Instant::now();
    let actions = from_phone(&core, now, subscribe("s6", 1, None, None));
    let notify = split(&actions).1.remove(0);
    let (mut id, mut at) = actions
        .iter()
        .find_map(|a| match a {
            Action::Arm { id, at, .. } => Some((id.clone(), *at)),
            _ => None,
        })
        .expect("Timer E armed");
    assert!(matches!(id, TimerId::Notify(_)));
    assert_eq!(at, now + Duration::from_millis(500), "T1");
    let mut copies = 0;
    let mut intervals = Vec::new();
    let mut last = now;
    while core.mwi.subscription_count() == 1 {
        let actions = core.handle_timer(at, SystemTime::now(), &id);
        for (_, bytes) in sends(&actions) {
            assert_eq!(bytes, notify, "the same NOTIFY again");
            copies += 1;
            intervals.push(at.duration_since(last).as_millis());
            last = at;
        }
        match actions.iter().find_map(|a| match a {
            Action::Arm { id, at, .. } => Some((id.clone(), *at)),
            _ => None,
        }) {
            Some(next) => (id, at) = next,
            None => break,
        }
    }
    // Timer E doubles up to T2 (4 s); Timer F gives up at 64*T1 = 32 s.
    assert_eq!(&intervals[..4], &[500, 1000, 2000, 4000]);
    assert!(copies >= 9, "{copies} retransmissions");
    assert_eq!(core.mwi.subscription_count(), 0, "Timer F removed it");
    assert_eq!(core.mwi.notifies_in_flight(), 0);
}

#[test]
fn a_subscribe_for_another_package_goes_to_the_users_phone_and_to_the_proxy_gets_489() {
    let core = lab("none");
    let now = Instant::now();
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.60:5060;branch=z9hG4bKreg2\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: reg2\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@192.0.2.60:5060>\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(
        now,
        SystemTime::now(),
        udp_from("192.0.2.60:5060"),
        Bytes::from_static(register.as_bytes()),
    );
    let dialog = String::from_utf8(subscribe("d1", 1, None, None).to_vec())
        .unwrap()
        .replace("Event: message-summary", "Event: dialog");
    let actions = from_phone(&core, now, Bytes::from(dialog.clone()));
    assert!(
        sends(&actions)
            .iter()
            .any(|(to, b)| to.addr == "192.0.2.60:5060".parse().unwrap()
                && b.starts_with(b"SUBSCRIBE")),
        "forwarded to the binding: {actions:?}"
    );
    let to_proxy = dialog
        .replace(
            "SUBSCRIBE sip:9000@lab.example",
            "SUBSCRIBE sip:lab.example",
        )
        .replace("d11", "d21");
    let (responses, _) = split(&from_phone(&core, now, Bytes::from(to_proxy)));
    let refused = Message::parse(&responses[0]).unwrap();
    assert_eq!(refused.status(), Some(489));
    assert_eq!(header(&refused, "Allow-Events"), "message-summary");
}

#[test]
fn with_auth_all_only_the_mailboxs_user_may_subscribe() {
    let core = lab("all");
    let now = Instant::now();
    // Each attempt answers a fresh challenge (an answer without qop is good once).
    let attempt = |user: &str, cseq: u32| {
        let (responses, notifies) =
            split(&from_phone(&core, now, subscribe("a1", cseq, None, None)));
        let challenge = Message::parse(&responses[0]).unwrap();
        assert_eq!(challenge.status(), Some(407));
        assert!(notifies.is_empty());
        let challenge = dialtone_digest::Challenge::parse(
            challenge
                .header_value(HeaderName::ProxyAuthenticate)
                .unwrap(),
        )
        .unwrap();
        let credentials = dialtone_digest::answer(
            &challenge,
            &dialtone_digest::AnswerParams {
                username: user,
                password: user,
                method: "SUBSCRIBE",
                uri: "sip:9000@lab.example",
                cnonce: "c",
                nc: 1,
            },
        )
        .unwrap();
        let text = String::from_utf8(subscribe("a1", cseq + 1, None, None).to_vec()).unwrap();
        let text = text.replace(
            "Event:",
            &format!("Proxy-Authorization: {credentials}\r\nEvent:"),
        );
        let signed = text.replace("From: <sip:9000@", &format!("From: <sip:{user}@"));
        split(&from_phone(&core, now, Bytes::from(signed)))
    };
    let (responses, _) = attempt("8000", 1);
    assert_eq!(Message::parse(&responses[0]).unwrap().status(), Some(403));
    let (responses, notifies) = attempt("9000", 3);
    assert_eq!(Message::parse(&responses[0]).unwrap().status(), Some(200));
    assert_eq!(notifies.len(), 1);
}
