//! The admission rules on the sans-IO core: who is challenged, what passes unchallenged.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::Message;

use crate::config::ProxyFlags;
use crate::proxy_core::tests::{answer, core_with, sends, udp_from};
use crate::proxy_core::ProxyCore;

fn auth_all() -> ProxyCore {
    core_with(ProxyFlags {
        domain: vec!["lab.example".into()],
        auth: Some("all".into()),
        user: vec!["8000:8000".into(), "9000:9000".into()],
        ..Default::default()
    })
}

/// The status of the proxy's own final answer to `request`, or `None` when it forwarded it.
fn local_final(core: &ProxyCore, request: &str) -> Option<u16> {
    let actions = core.handle_message(
        Instant::now(),
        SystemTime::now(),
        udp_from("127.0.0.2:5062"),
        Bytes::from(request.to_string()),
    );
    sends(&actions)
        .iter()
        .filter(|(to, _)| to.addr == "127.0.0.2:5062".parse().unwrap())
        .filter_map(|(_, b)| Message::parse(b).ok()?.status())
        .find(|s| *s >= 200)
}

fn in_dialog_bye(call_id: &str) -> String {
    format!("BYE sip:9000@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK{call_id}b\r\nMax-Forwards: 70\r\nRoute: <sip:127.0.0.1:5070;lr>\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
}

/// A BYE for the local user 9000 from a UA that ignores Record-Route (no Route).
fn bye_without_route(call_id: &str) -> String {
    format!("BYE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bK{call_id}n\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>;tag=b\r\nCall-ID: {call_id}\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n")
}

#[test]
fn a_to_tag_and_our_route_pass_unchallenged_only_for_a_call_the_proxy_saw_established() {
    let core = auth_all();
    // Nothing was established with this Call-ID: the dialog is made up.
    assert_eq!(local_final(&core, &in_dialog_bye("made-up")), Some(407));
    assert_eq!(local_final(&core, &bye_without_route("made-up")), Some(407));

    // A real call: the callee's 200 passes the proxy, then its BYE goes through unchallenged.
    let now = Instant::now();
    let wall = SystemTime::now();
    let callee = udp_from("192.0.2.50:5060");
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKr1\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: real-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@192.0.2.50:5060>\r\nContent-Length: 0\r\n\r\n";
    // Registered as the location service would have it, without the digest round trip.
    let origin = crate::registrar::Origin {
        source: callee.addr,
        transport: dialtone_transaction::Transport::Udp,
    };
    let parsed = Message::parse(register.as_bytes()).unwrap();
    core.location
        .register(&parsed, "9000", wall, origin, &core.policy);
    let invite_with = |credentials: &str| {
        format!("INVITE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKi{}\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>\r\nCall-ID: real\r\nCSeq: {} INVITE\r\n{credentials}Content-Length: 0\r\n\r\n", credentials.len(), if credentials.is_empty() { 1 } else { 2 })
    };
    let first = core.handle_message(
        now,
        wall,
        udp_from("127.0.0.2:5062"),
        Bytes::from(invite_with("")),
    );
    let challenge = sends(&first)
        .into_iter()
        .filter_map(|(_, b)| {
            let m = Message::parse(&b).ok()?;
            (m.status() == Some(407)).then(|| {
                m.header_value(dialtone_sip::HeaderName::ProxyAuthenticate)
                    .map(str::to_string)
            })?
        })
        .next()
        .expect("a 407");
    let challenge = dialtone_digest::Challenge::parse(&challenge).unwrap();
    let credentials = dialtone_digest::answer(
        &challenge,
        &dialtone_digest::AnswerParams {
            username: "8000",
            password: "8000",
            method: "INVITE",
            uri: "sip:9000@lab.example",
            cnonce: "c",
            nc: 1,
        },
    )
    .unwrap();
    let signed = invite_with(&format!("Proxy-Authorization: {credentials}\r\n"));
    let actions = core.handle_message(now, wall, udp_from("127.0.0.2:5062"), Bytes::from(signed));
    let (_, forwarded) = sends(&actions)
        .into_iter()
        .find(|(to, b)| to.addr == callee.addr && b.starts_with(b"INVITE"))
        .expect("the INVITE reaches the callee");
    let ok = answer(&forwarded, "200 OK", "b", &[]);
    core.handle_message(now, wall, callee, ok);
    assert_eq!(
        local_final(&core, &in_dialog_bye("real")),
        None,
        "forwarded"
    );
    // To the local user itself, the known call is enough, with or without our Route.
    assert_eq!(
        local_final(&core, &bye_without_route("real")),
        None,
        "forwarded to the binding"
    );
}

#[test]
fn an_options_for_a_registered_user_and_for_nobody_get_the_same_challenge() {
    let core = auth_all();
    for user in ["9000", "nobody"] {
        let options = format!("OPTIONS sip:{user}@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKo{user}\r\nMax-Forwards: 70\r\nFrom: <sip:x@lab.example>;tag=a\r\nTo: <sip:{user}@lab.example>\r\nCall-ID: o-{user}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(local_final(&core, &options), Some(407), "{user}");
    }
}

#[test]
fn without_auth_another_domain_is_refused_unless_relaying_is_on() {
    let request = "OPTIONS sip:bob@192.0.2.7 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKrel\r\nMax-Forwards: 70\r\nFrom: <sip:a@lab.example>;tag=a\r\nTo: <sip:bob@192.0.2.7>\r\nCall-ID: rel\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let closed = core_with(ProxyFlags {
        relay: Some(false),
        ..Default::default()
    });
    assert_eq!(local_final(&closed, request), Some(403));
    let open = core_with(ProxyFlags {
        relay: Some(true),
        ..Default::default()
    });
    assert_eq!(local_final(&open, request), None);
}

/// Routes 127.0.2.0/24 from 127.0.2.1, everything else from 127.0.1.1.
#[derive(Debug)]
struct TwoNetworks;
impl crate::proxy_core::identity::SourceAddress for TwoNetworks {
    fn source_for(&self, destination: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let second =
            matches!(destination, std::net::IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 2]);
        Some(
            if second {
                [127, 0, 2, 1]
            } else {
                [127, 0, 1, 1]
            }
            .into(),
        )
    }
}

#[test]
fn a_call_that_changes_networks_gets_a_record_route_per_side_the_callees_on_top() {
    use crate::config::{Config, FileConfig};
    let flags = ProxyFlags {
        listen: vec!["udp:127.0.1.1:5060".into(), "udp:127.0.2.1:5060".into()],
        domain: vec!["lab.example".into()],
        ..Default::default()
    };
    let config = Config::merge(FileConfig::default(), &flags).unwrap();
    let metrics = crate::metrics::ProxyMetrics::new();
    let calls = crate::calls::CallTracker::new(metrics.clone());
    let core = ProxyCore::new(
        &config,
        crate::registrar::LocationService::new(),
        metrics,
        calls,
    )
    .with_routes(std::sync::Arc::new(TwoNetworks));
    let wall = SystemTime::now();
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.2.10:5060;branch=z9hG4bKmh1\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: mh-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@127.0.2.10:5060>\r\nContent-Length: 0\r\n\r\n";
    let on_b = crate::proxy_core::Source {
        transport: dialtone_transaction::Transport::Udp,
        addr: "127.0.2.10:5060".parse().unwrap(),
        local: "127.0.2.1:5060".parse().unwrap(),
    };
    core.handle_message(
        Instant::now(),
        wall,
        on_b,
        Bytes::from_static(register.as_bytes()),
    );
    let invite = "INVITE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.1.10:5060;branch=z9hG4bKmh2\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>\r\nCall-ID: mh-call\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let on_a = crate::proxy_core::Source {
        transport: dialtone_transaction::Transport::Udp,
        addr: "127.0.1.10:5060".parse().unwrap(),
        local: "127.0.1.1:5060".parse().unwrap(),
    };
    let actions = core.handle_message(
        Instant::now(),
        wall,
        on_a,
        Bytes::from_static(invite.as_bytes()),
    );
    let (_, forwarded) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"INVITE"))
        .expect("forwarded");
    let forwarded = Message::parse(&forwarded).unwrap();
    assert!(forwarded
        .header_value(dialtone_sip::HeaderName::Via)
        .is_some_and(|v| v.starts_with("SIP/2.0/UDP 127.0.2.1:5060;")));
    let record_routes: Vec<&str> = forwarded
        .values(dialtone_sip::HeaderName::RecordRoute)
        .collect();
    assert_eq!(
        record_routes,
        ["<sip:127.0.2.1:5060;lr>", "<sip:127.0.1.1:5060;lr>"]
    );
}

#[test]
fn a_challenged_invite_keeps_no_transaction_and_the_ack_of_its_challenge_goes_nowhere() {
    // RFC 3261 section 8.2.7: the challenge is sent statelessly, as for a REGISTER; a lost
    // one is recovered by the caller's retransmission, which is challenged again.
    let core = auth_all();
    let caller = udp_from("127.0.0.2:5062");
    let invite = "INVITE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKch1\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>\r\nCall-ID: challenged\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    for attempt in 0..2 {
        assert_eq!(local_final(&core, invite), Some(407), "attempt {attempt}");
        assert_eq!(core.active_transactions(), 0, "attempt {attempt}");
    }
    let actions = core.handle_message(
        Instant::now(),
        SystemTime::now(),
        caller,
        Bytes::from(invite.to_string()),
    );
    // The challenge follows at once, so no 100 Trying goes before it (section 17.2.1).
    let sent = sends(&actions);
    assert_eq!(sent.len(), 1, "the challenge alone: {sent:?}");
    let challenge = sent
        .into_iter()
        .find(|(_, b)| b.starts_with(b"SIP/2.0 407"))
        .expect("a 407");
    let challenge = Message::parse(&challenge.1).unwrap();
    let to = challenge
        .header_value(dialtone_sip::HeaderName::To)
        .unwrap();
    let ack = format!("ACK sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKch1\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: {to}\r\nCall-ID: challenged\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n");
    let actions = core.handle_message(Instant::now(), SystemTime::now(), caller, Bytes::from(ack));
    assert!(sends(&actions).is_empty(), "{actions:?}");
    assert_eq!(core.active_transactions(), 0);
}

#[test]
fn an_ack_with_the_proxys_own_to_tag_is_not_forwarded_even_to_a_registered_user() {
    // It acknowledges a final the proxy wrote (a challenge answered statelessly, or a local
    // 404 whose transaction already ended): nobody downstream has that transaction.
    let core = core_with(ProxyFlags {
        domain: vec!["lab.example".into()],
        ..Default::default()
    });
    let wall = SystemTime::now();
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKr9\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: own-tag-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@192.0.2.50:5060>\r\nContent-Length: 0\r\n\r\n";
    let origin = crate::registrar::Origin {
        source: "192.0.2.50:5060".parse().unwrap(),
        transport: dialtone_transaction::Transport::Udp,
    };
    let parsed = Message::parse(register.as_bytes()).unwrap();
    core.location
        .register(&parsed, "9000", wall, origin, &core.policy);
    let ack = |tag: &str| {
        format!("ACK sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKown1\r\nMax-Forwards: 70\r\nFrom: <sip:8000@lab.example>;tag=a\r\nTo: <sip:9000@lab.example>;tag={tag}\r\nCall-ID: own-tag\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
    };
    let caller = udp_from("127.0.0.2:5062");
    let ours = core.handle_message(Instant::now(), wall, caller, Bytes::from(ack(&core.to_tag)));
    assert!(sends(&ours).is_empty(), "{ours:?}");
    // The ACK of a callee's 2xx (its own tag) still goes to the callee.
    let callees = core.handle_message(Instant::now(), wall, caller, Bytes::from(ack("callee")));
    assert_eq!(sends(&callees).len(), 1, "{callees:?}");
}
