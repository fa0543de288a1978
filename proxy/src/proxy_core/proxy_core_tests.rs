//! The proxy core driven through its entry points, with no socket and a simulated clock.

use super::*;
use crate::config::{FileConfig, ProxyFlags};
use std::time::Duration;

/// A core listening on udp:127.0.0.1:5070, no auth, no store (also for the transport's
/// tests).
pub(crate) fn core() -> ProxyCore {
    core_with(ProxyFlags::default())
}

pub(crate) fn core_with(flags: ProxyFlags) -> ProxyCore {
    core_with_location(flags, LocationService::new())
}

fn core_with_location(flags: ProxyFlags, location: LocationService) -> ProxyCore {
    // These tests forward to other domains without auth: the relay is open unless a test
    // says otherwise (the default, closed, has tests of its own).
    let flags = ProxyFlags {
        listen: vec!["udp:127.0.0.1:5070".into()],
        relay: flags.relay.or(Some(true)),
        ..flags
    };
    let config = Config::merge(FileConfig::default(), &flags).unwrap();
    let metrics = ProxyMetrics::new();
    let calls = CallTracker::new(metrics.clone());
    ProxyCore::new(&config, location, metrics, calls)
}

/// A UDP source at `addr`, received on the proxy's 127.0.0.1:5070.
pub(crate) fn udp_from(addr: &str) -> Source {
    Source {
        transport: Transport::Udp,
        addr: addr.parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
    }
}

/// The key, port and transport of the DNS resolution `actions` ask for.
fn resolution(actions: &[Action]) -> (TransactionKey, Option<u16>, Option<Transport>) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Resolve {
                key,
                port,
                transport,
                ..
            } => Some((*key, *port, *transport)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no resolution asked for: {actions:?}"))
}

pub(crate) fn sends(actions: &[Action]) -> Vec<(Destination, Bytes)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { to, bytes } => Some((*to, bytes.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_branch_the_transport_cannot_send_is_answered_503() {
    // RFC 3261 section 16.9: a transport error on forwarding counts as a 503 response.
    let core = core();
    let source = udp_from("127.0.0.2:5062");
    let request = b"OPTIONS sip:user@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKte1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:user@192.0.2.9>\r\nCall-ID: te1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let now = Instant::now();
    let actions = core.handle_message(now, SystemTime::now(), source, Bytes::from_static(request));
    let forwarded = sends(&actions);
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].0.addr, "192.0.2.9:5060".parse().unwrap());

    let actions = core.handle_transport_error(now, SystemTime::now(), &forwarded[0].1);
    let replies = sends(&actions);
    assert_eq!(replies.len(), 1, "{actions:?}");
    assert_eq!(replies[0].0.addr, source.addr);
    let reply = Message::parse(&replies[0].1).unwrap();
    assert_eq!(reply.status(), Some(503));
    assert_eq!(reply.vias().count(), 1);
    // Bytes that are not one of our branches are ignored.
    assert!(core
        .handle_transport_error(now, SystemTime::now(), request)
        .is_empty());
}

#[test]
fn a_retransmission_on_a_new_tcp_connection_is_answered_on_that_connection() {
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        ..Default::default()
    });
    let now = Instant::now();
    let wall = SystemTime::now();
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5063;branch=z9hG4bKrt0\r\nMax-Forwards: 70\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: rt0\r\nCSeq: 1 REGISTER\r\nContact: <sip:b@127.0.0.3:5063>\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(
        now,
        wall,
        udp_from("127.0.0.3:5063"),
        Bytes::from_static(register),
    );
    let tcp_from = |addr: &str| Source {
        transport: Transport::Tcp,
        addr: addr.parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
    };
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5062;branch=z9hG4bKrt1\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: rt1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let first = tcp_from("127.0.0.2:40001");
    let actions = core.handle_message(now, wall, first, Bytes::from_static(invite));
    let trying: Vec<_> = sends(&actions)
        .into_iter()
        .filter(|(_, b)| b.starts_with(b"SIP/2.0 100"))
        .collect();
    assert_eq!(trying.len(), 1);
    assert_eq!(trying[0].0.addr, first.addr);
    // The caller's connection broke; it reconnects and retransmits on the new one.
    let second = tcp_from("127.0.0.2:40002");
    let later = now + std::time::Duration::from_millis(600);
    let actions = core.handle_message(later, wall, second, Bytes::from_static(invite));
    let replies = sends(&actions);
    assert_eq!(replies.len(), 1, "{actions:?}");
    assert!(replies[0].1.starts_with(b"SIP/2.0 100"));
    assert_eq!(replies[0].0.transport, Transport::Tcp);
    assert_eq!(replies[0].0.addr, second.addr);
}

#[test]
fn a_copy_of_a_tcp_request_answered_while_its_branch_lives_on_gets_the_final_again() {
    // Over TCP, Timer J is zero: the server machine ends with the relayed 200, while the
    // UDP branch keeps the transaction's entry alive for Timer K (RFC 4475's and RFC 5118's
    // messages share branches, so the torture runner meets this on fresh connections).
    let core = core();
    let tcp_from = |addr: &str| Source {
        transport: Transport::Tcp,
        addr: addr.parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
    };
    let request = b"OPTIONS sip:user@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5062;branch=z9hG4bKtc1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:user@192.0.2.9>\r\nCall-ID: tc1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let now = Instant::now();
    let wall = SystemTime::now();
    let first = tcp_from("127.0.0.2:40001");
    let actions = core.handle_message(now, wall, first, Bytes::from_static(request));
    let forwarded = sends(&actions);
    assert_eq!(forwarded.len(), 1);
    let ok = answer(&forwarded[0].1, "200 OK", "t", &[]);
    let replies = sends(&core.handle_message(now, wall, udp_from("192.0.2.9:5060"), ok));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].0.addr, first.addr);
    assert!(replies[0].1.starts_with(b"SIP/2.0 200"));
    assert_eq!(
        core.active_transactions(),
        1,
        "the branch waits for Timer K"
    );

    let second = tcp_from("127.0.0.2:40002");
    let actions = core.handle_message(now, wall, second, Bytes::from_static(request));
    let again = sends(&actions);
    assert_eq!(again.len(), 1, "{actions:?}");
    assert_eq!(again[0].0.addr, second.addr);
    assert_eq!(again[0].1, replies[0].1);
}

#[test]
fn a_next_hop_that_cannot_be_reached_gives_way_to_the_next_address_dns_gave() {
    // RFC 3263 section 4.3: a transport failure moves on to the next address, in a new
    // branch; only when none is left does the caller get the 503 of RFC 3261 16.9.
    let core = core();
    let now = Instant::now();
    let source = udp_from(FAR_CALLER);
    let (first, second): (SocketAddr, SocketAddr) =
        (FIRST.parse().unwrap(), SECOND.parse().unwrap());
    let sent = sends(&to_far_example(
        &core,
        "OPTIONS",
        "fo1",
        now,
        Transport::Tcp,
        &[FIRST, SECOND],
    ));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, first);
    let to_first = sent[0].1.clone();
    let branch = |bytes: &[u8]| {
        let message = Message::parse(bytes).unwrap();
        let via = message.top_via().unwrap();
        via.branch().unwrap().to_string()
    };

    let sent = sends(&core.handle_transport_error(now, SystemTime::now(), &to_first));
    assert_eq!(sent.len(), 1, "the next address, no 503 yet: {sent:?}");
    assert_eq!(sent[0].0.addr, second);
    let to_second = sent[0].1.clone();
    assert_ne!(branch(&to_first), branch(&to_second), "a new branch");
    assert!(branch(&to_second).starts_with("z9hG4bK"));
    assert_eq!(
        core.branches
            .get(&TransactionKey::client(&branch(&to_first), "OPTIONS"))
            .map(|k| *k.value()),
        None,
        "the given-up branch left the index"
    );

    let sent = sends(&core.handle_transport_error(now, SystemTime::now(), &to_second));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, source.addr);
    assert!(sent[0].1.starts_with(b"SIP/2.0 503"), "{sent:?}");
}

/// The branch id of the top Via of `bytes`.
fn top_branch(bytes: &[u8]) -> String {
    let message = Message::parse(bytes).unwrap();
    let via = message.top_via().unwrap();
    via.branch().unwrap().to_string()
}

/// The transaction timer `actions` arm, if any.
fn armed(actions: &[Action]) -> Option<(TimerId, Instant)> {
    actions.iter().find_map(|a| match a {
        Action::Arm { id, at, .. } => Some((id.clone(), *at)),
        _ => None,
    })
}

/// The caller of the DNS tests, and the two addresses its next hop resolves to.
const FAR_CALLER: &str = "127.0.0.2:5062";
const FIRST: &str = "192.0.2.1:5060";
const SECOND: &str = "192.0.2.2:5060";

/// Sends `METHOD sip:user@far.example` (branch and Call-ID made from `id`) at `at`, lets
/// its next hop resolve to `addrs` over `transport`, and returns what that does.
fn to_far_example(
    core: &ProxyCore,
    method: &str,
    id: &str,
    at: Instant,
    transport: Transport,
    addrs: &[&str],
) -> Vec<Action> {
    let request = format!("{method} sip:user@far.example SIP/2.0\r\nVia: SIP/2.0/UDP {FAR_CALLER};branch=z9hG4bK{id}\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:user@far.example>\r\nCall-ID: {id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n");
    let actions = core.handle_message(
        at,
        SystemTime::now(),
        udp_from(FAR_CALLER),
        Bytes::from(request),
    );
    let (key, _, _) = resolution(&actions);
    let addrs: Vec<SocketAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
    core.handle_resolved(at, SystemTime::now(), &key, transport, &addrs)
}

#[test]
fn a_next_hop_that_never_answers_gives_way_to_the_next_address_when_timer_f_fires() {
    // RFC 3263 section 4.3: a timeout counts like a transport failure; the caller gets
    // the 408 only when every address has timed out.
    let core = core();
    let now = Instant::now();
    let source = udp_from(FAR_CALLER);
    let (first, second): (SocketAddr, SocketAddr) =
        (FIRST.parse().unwrap(), SECOND.parse().unwrap());
    let actions = to_far_example(
        &core,
        "OPTIONS",
        "ft1",
        now,
        Transport::Udp,
        &[FIRST, SECOND],
    );
    let sent = sends(&actions);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, first);
    let to_first = sent[0].1.clone();

    // Timer F (64 * T1 = 32 s) passes without a word from the first address.
    let (id, _) = armed(&actions).expect("a timer for the branch");
    let later = now + Duration::from_secs(33);
    let actions = core.handle_timer(later, SystemTime::now(), &id);
    let sent = sends(&actions);
    let to_second: Vec<_> = sent.iter().filter(|(to, _)| to.addr == second).collect();
    assert_eq!(
        to_second.len(),
        1,
        "the next address gets the request: {sent:?}"
    );
    assert_ne!(
        top_branch(&to_second[0].1),
        top_branch(&to_first),
        "a new branch"
    );
    assert!(
        sent.iter().all(|(to, _)| to.addr != source.addr),
        "no 408 while an address is left: {sent:?}"
    );
    assert_eq!(core.metrics().failovers.get(), 1);

    // The second address is silent too: now the caller gets the 408.
    let (id, _) = armed(&actions).expect("a timer for the new branch");
    let actions = core.handle_timer(later + Duration::from_secs(33), SystemTime::now(), &id);
    let replies: Vec<_> = sends(&actions)
        .into_iter()
        .filter(|(to, _)| to.addr == source.addr)
        .collect();
    assert_eq!(replies.len(), 1, "{actions:?}");
    assert!(replies[0].1.starts_with(b"SIP/2.0 408"), "{replies:?}");
}

#[test]
fn a_503_sends_the_invite_to_the_next_address_and_a_503_from_every_address_goes_up_as_500() {
    // RFC 3261 section 21.5.4: a 503 asks for an alternate server. Section 16.7 step 6:
    // a 503 chosen as the best response goes upstream as 500, since it is the next hop
    // that is out of service, not this proxy.
    let core = core();
    let now = Instant::now();
    let wall = SystemTime::now();
    let caller = udp_from(FAR_CALLER);
    let (first, second): (SocketAddr, SocketAddr) =
        (FIRST.parse().unwrap(), SECOND.parse().unwrap());
    let sent = sends(&to_far_example(
        &core,
        "INVITE",
        "fu1",
        now,
        Transport::Udp,
        &[FIRST, SECOND],
    ));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, first);
    let to_first = sent[0].1.clone();
    let from = |addr: SocketAddr| Source {
        transport: Transport::Udp,
        addr,
        local: caller.local,
    };
    let unavailable = answer(&to_first, "503 Service Unavailable", "u1", &[]);

    let sent = sends(&core.handle_message(now, wall, from(first), unavailable.clone()));
    let at = |addr: SocketAddr, method: &str| -> Vec<Bytes> {
        sent.iter()
            .filter(|(to, b)| to.addr == addr && b.starts_with(method.as_bytes()))
            .map(|(_, b)| b.clone())
            .collect()
    };
    assert_eq!(
        at(first, "ACK").len(),
        1,
        "the 503 is acknowledged: {sent:?}"
    );
    let to_second = at(second, "INVITE");
    assert_eq!(
        to_second.len(),
        1,
        "the next address gets the INVITE: {sent:?}"
    );
    assert_ne!(
        top_branch(&to_second[0]),
        top_branch(&to_first),
        "a new branch"
    );
    assert!(
        sent.iter().all(|(to, _)| to.addr != caller.addr),
        "nothing upstream yet: {sent:?}"
    );

    // The first address repeats its 503 (our ACK was lost): absorbed and acknowledged
    // again by the branch that stayed for it.
    let sent = sends(&core.handle_message(now, wall, from(first), unavailable));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].1.starts_with(b"ACK") && sent[0].0.addr == first);

    let unavailable = answer(&to_second[0], "503 Service Unavailable", "u2", &[]);
    let sent = sends(&core.handle_message(now, wall, from(second), unavailable));
    let upstream: Vec<_> = sent
        .iter()
        .filter(|(to, _)| to.addr == caller.addr)
        .collect();
    assert_eq!(upstream.len(), 1, "{sent:?}");
    let reply = Message::parse(&upstream[0].1).unwrap();
    assert_eq!(reply.status(), Some(500));
    assert_eq!(reply.vias().count(), 1, "our Via removed");
    assert_eq!(reply.top_via().unwrap().branch(), Some("z9hG4bKfu1"));
}

#[test]
fn a_503_with_retry_after_keeps_new_requests_away_from_that_address_until_it_passes() {
    // RFC 3261 section 21.5.4: no other requests to that server for the Retry-After.
    let core = core();
    let now = Instant::now();
    let wall = SystemTime::now();
    let caller = udp_from(FAR_CALLER);
    let (first, second): (SocketAddr, SocketAddr) =
        (FIRST.parse().unwrap(), SECOND.parse().unwrap());
    // Sends OPTIONS number `n` at `at`, resolves it to `addrs`, returns what is sent.
    let options_to = |n: u32, at: Instant, addrs: &[&str]| {
        sends(&to_far_example(
            &core,
            "OPTIONS",
            &format!("ra{n}"),
            at,
            Transport::Udp,
            addrs,
        ))
    };
    let sent = options_to(1, now, &[FIRST, SECOND]);
    assert_eq!(sent[0].0.addr, first);
    let unavailable = answer(
        &sent[0].1,
        "503 Service Unavailable",
        "u",
        &["Retry-After: 60 (maintenance)"],
    );
    let from_first = Source {
        transport: Transport::Udp,
        addr: first,
        local: caller.local,
    };
    let sent = sends(&core.handle_message(now, wall, from_first, unavailable));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, second, "failover to the second address");

    let sent = options_to(2, now + Duration::from_secs(1), &[FIRST, SECOND]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, second, "the paused address is skipped");

    let sent = options_to(3, now + Duration::from_secs(1), &[FIRST]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0.addr, caller.addr, "nothing left to try");
    let reply = Message::parse(&sent[0].1).unwrap();
    assert_eq!(reply.status(), Some(503));
    assert_eq!(reply.header_value_by_name("Retry-After"), Some("59"));

    let sent = options_to(4, now + Duration::from_secs(61), &[FIRST, SECOND]);
    assert_eq!(sent[0].0.addr, first, "the pause is over");
}

#[test]
fn a_transaction_entered_by_another_worker_first_is_kept() {
    // Two copies of one request handled at once on two workers: the second to finish must
    // not replace the first's transaction (whose branches the index points to).
    let core = core();
    let now = Instant::now();
    let request = Bytes::from_static(b"OPTIONS sip:user@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKdup1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:user@192.0.2.9>\r\nCall-ID: dup1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let source = udp_from("127.0.0.2:5062");
    let reply_to = Destination {
        transport: Transport::Udp,
        addr: source.addr,
    };
    let key = dialtone_transaction::server_key(&Message::parse(&request).unwrap()).unwrap();
    let copy = || {
        let tx = ProxyTransaction::new(
            now,
            &core.timers,
            request.clone(),
            "OPTIONS",
            reply_to,
            source.addr,
        );
        Arc::new(Mutex::new(tx))
    };
    let (first, second) = (copy(), copy());
    assert!(core.insert_new(&key, &first));
    assert!(!core.insert_new(&key, &second));
    let held = core.servers.get(&key).map(|e| e.value().clone()).unwrap();
    assert!(Arc::ptr_eq(&held, &first));
}

#[test]
fn a_bye_answered_481_ends_the_call_in_the_calls_table() {
    // RFC 3261 section 15.1.1: a 481 to a BYE ends the dialog as surely as a 200 does.
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        ..Default::default()
    });
    let (now, wall) = (Instant::now(), SystemTime::now());
    let caller = udp_from("127.0.0.2:5062");
    let callee = udp_from("127.0.0.3:5063");
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5063;branch=z9hG4bKcb1\r\nMax-Forwards: 70\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: cb1\r\nCSeq: 1 REGISTER\r\nContact: <sip:b@127.0.0.3:5063>\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(now, wall, callee, Bytes::from_static(register));
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKcb2\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: cb2\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.2:5062>\r\nContent-Length: 0\r\n\r\n";
    let actions = core.handle_message(now, wall, caller, Bytes::from_static(invite));
    let (_, forwarded) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"INVITE"))
        .unwrap();
    let ok = answer(
        &forwarded,
        "200 OK",
        "b",
        &["Contact: <sip:b@127.0.0.3:5063>"],
    );
    core.handle_message(now, wall, callee, ok);
    assert_eq!(
        core.calls().snapshot().0.len(),
        1,
        "the 200 established the call"
    );
    assert_eq!(core.metrics().calls_active.get(), 1);

    let bye = b"BYE sip:b@127.0.0.3:5063 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKcb3\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\nCall-ID: cb2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    let actions = core.handle_message(now, wall, caller, Bytes::from_static(bye));
    let (to, forwarded) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"BYE"))
        .unwrap();
    assert_eq!(to.addr, callee.addr);
    let gone = answer(&forwarded, "481 Call/Transaction Does Not Exist", "b", &[]);
    let actions = core.handle_message(now, wall, callee, gone);
    let upstream = sends(&actions);
    assert_eq!(upstream.len(), 1);
    assert_eq!(Message::parse(&upstream[0].1).unwrap().status(), Some(481));

    let (active, recent) = core.calls().snapshot();
    assert!(active.is_empty(), "{active:?}");
    assert_eq!(recent.len(), 1);
    assert_eq!(core.metrics().calls_active.get(), 0);
}

#[test]
fn with_a_record_route_host_a_node_that_never_saw_the_call_loose_routes_its_bye() {
    // Issue 21 item 4: node A record-routes the cluster's name; node B, which saw nothing of
    // the call, takes a Route naming it as its own and sends the BYE on to the Request-URI.
    let cluster = || ProxyFlags {
        domain: vec!["example.com".into()],
        record_route_host: Some("lab-proxies.test".into()),
        ..Default::default()
    };
    let (node_a, node_b) = (core_with(cluster()), core_with(cluster()));
    let (now, wall) = (Instant::now(), SystemTime::now());
    let caller = udp_from("127.0.0.2:5062");
    let callee = udp_from("127.0.0.3:5063");
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5063;branch=z9hG4bKrr1\r\nMax-Forwards: 70\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: rr1\r\nCSeq: 1 REGISTER\r\nContact: <sip:b@127.0.0.3:5063>\r\nContent-Length: 0\r\n\r\n";
    node_a.handle_message(now, wall, callee, Bytes::from_static(register));
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKrr2\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: rr2\r\nCSeq: 1 INVITE\r\nContact: <sip:a@127.0.0.2:5062>\r\nContent-Length: 0\r\n\r\n";
    let actions = node_a.handle_message(now, wall, caller, Bytes::from_static(invite));
    let (_, forwarded) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"INVITE"))
        .expect("node A forwards the INVITE");
    let forwarded = Message::parse(&forwarded).unwrap();
    let record_routes: Vec<&str> = forwarded
        .values(dialtone_sip::HeaderName::RecordRoute)
        .collect();
    assert_eq!(record_routes, ["<sip:lab-proxies.test;lr>"]);

    let bye = b"BYE sip:b@127.0.0.3:5063 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKrr3\r\nMax-Forwards: 70\r\nRoute: <sip:lab-proxies.test;lr>\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\nCall-ID: rr2\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    let actions = node_b.handle_message(now, wall, caller, Bytes::from_static(bye));
    let (to, relayed) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"BYE"))
        .unwrap_or_else(|| panic!("node B relays the BYE: {actions:?}"));
    assert_eq!(to.addr, callee.addr);
    let relayed = Message::parse(&relayed).unwrap();
    assert_eq!(
        relayed.values(dialtone_sip::HeaderName::Route).count(),
        0,
        "our Route popped"
    );
}

#[test]
fn a_request_whose_next_hop_does_not_resolve_gets_a_503_and_leaves_nothing_behind() {
    let core = core();
    let request = b"OPTIONS sip:user@nowhere.invalid SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKnx1\r\nMax-Forwards: 70\r\nFrom: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:user@nowhere.invalid>\r\nCall-ID: nx1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let now = Instant::now();
    let source = udp_from("127.0.0.2:5062");
    let actions = core.handle_message(now, SystemTime::now(), source, Bytes::from_static(request));
    let (key, port, transport) = resolution(&actions);
    // The URI gave neither, so RFC 3263 may pick both.
    assert_eq!((port, transport), (None, None));
    let actions = core.handle_resolved(now, SystemTime::now(), &key, Transport::Udp, &[]);
    let replies = sends(&actions);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].1.starts_with(b"SIP/2.0 503"));
    // Timer J (32 s over UDP) keeps the 503 for retransmissions, then everything goes.
    let timer = actions.iter().find_map(|a| match a {
        Action::Arm { id, at, .. } => Some((id.clone(), *at)),
        _ => None,
    });
    let (id, at) = timer.expect("Timer J armed");
    core.handle_timer(at, SystemTime::now(), &id);
    assert_eq!(core.active_transactions(), 0);
}

#[test]
fn a_register_keeps_no_transaction_and_its_retransmission_gets_the_same_200() {
    // RFC 3261 section 8.2.7: the registrar answers statelessly, so nothing is held for
    // Timer J; the repeat is recognised by its Call-ID and CSeq (registrar rules).
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        ..Default::default()
    });
    let source = udp_from("127.0.0.2:5062");
    let request = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKsl1\r\nMax-Forwards: 70\r\nFrom: <sip:j@example.com>;tag=1\r\nTo: <sip:j@example.com>\r\nCall-ID: sl1\r\nCSeq: 7 REGISTER\r\nContact: <sip:j@127.0.0.2:5062>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n";
    let now = Instant::now();
    for attempt in 0..2 {
        let actions =
            core.handle_message(now, SystemTime::now(), source, Bytes::from_static(request));
        let replies = sends(&actions);
        assert_eq!(replies.len(), 1, "attempt {attempt}");
        let reply = Message::parse(&replies[0].1).unwrap();
        assert_eq!(reply.status(), Some(200), "attempt {attempt}");
        assert_eq!(reply.values(dialtone_sip::HeaderName::Contact).count(), 1);
        assert_eq!(core.active_transactions(), 0, "attempt {attempt}");
    }
    assert_eq!(core.location().lookup("j", SystemTime::now()).len(), 1);
    // An INVITE answered locally (404) keeps its transaction for the ACK and Timer G.
    let invite = b"INVITE sip:nobody@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKsl2\r\nMax-Forwards: 70\r\nFrom: <sip:j@example.com>;tag=1\r\nTo: <sip:nobody@example.com>\r\nCall-ID: sl2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(now, SystemTime::now(), source, Bytes::from_static(invite));
    assert_eq!(core.active_transactions(), 1);
}

#[test]
fn with_a_store_the_200_to_a_register_waits_for_the_commit_and_a_423_does_not() {
    let location = LocationService::with_bindings(Vec::new(), true);
    let core = core_with_location(ProxyFlags::default(), location);
    let register = |expires: u32| {
        Bytes::from(format!("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKst{expires}\r\nMax-Forwards: 70\r\nFrom: <sip:j@127.0.0.1>;tag=1\r\nTo: <sip:j@127.0.0.1>\r\nCall-ID: st1\r\nCSeq: {expires} REGISTER\r\nContact: <sip:j@127.0.0.2:5062>\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n"))
    };
    let source = udp_from("127.0.0.2:5062");
    let actions = core.handle_message(Instant::now(), SystemTime::now(), source, register(600));
    assert!(sends(&actions).is_empty());
    let held: Vec<&Bytes> = actions
        .iter()
        .filter_map(|a| match a {
            Action::SendWhenStored { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(held.len(), 1);
    let ok = Message::parse(held[0]).unwrap();
    assert_eq!(ok.status(), Some(200));
    // What goes instead if the commit fails: a 500 that asks for a retry, to the same
    // transaction and with the same To tag as the 200.
    let Some(Action::SendWhenStored { request, .. }) = actions
        .iter()
        .find(|a| matches!(a, Action::SendWhenStored { .. }))
    else {
        unreachable!()
    };
    let not_stored = core.not_stored_response(request).unwrap();
    let not_stored = Message::parse(&not_stored).unwrap();
    assert_eq!(not_stored.status(), Some(500));
    assert_eq!(not_stored.header_value_by_name("Retry-After"), Some("5"));
    assert_eq!(not_stored.top_via().unwrap().branch(), Some("z9hG4bKst600"));
    assert_eq!(
        not_stored.to().unwrap().tag(),
        ok.to().unwrap().tag(),
        "one answer to one request"
    );
    assert!(not_stored.header_value_by_name("Contact").is_none());
    // A refusal changes nothing that must be on disk first.
    let actions = core.handle_message(Instant::now(), SystemTime::now(), source, register(5));
    let replies = sends(&actions);
    assert_eq!(replies.len(), 1);
    assert_eq!(Message::parse(&replies[0].1).unwrap().status(), Some(423));
}

/// A response from the callee to a request the proxy forwarded.
pub(crate) fn answer(forwarded: &[u8], status: &str, to_tag: &str, extra: &[&str]) -> Bytes {
    let request = Message::parse(forwarded).unwrap();
    let mut out = format!("SIP/2.0 {status}\r\n");
    for h in request.headers() {
        use dialtone_sip::HeaderName as H;
        if matches!(h.name, H::Via | H::From | H::CallId | H::CSeq) {
            out.push_str(&format!("{}: {}\r\n", h.raw_name, h.value));
        }
    }
    out.push_str(&format!(
        "To: {};tag={to_tag}\r\n",
        request.header_value(dialtone_sip::HeaderName::To).unwrap()
    ));
    for line in extra {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Bytes::from(out)
}

#[test]
fn a_407_from_several_forks_carries_every_challenge() {
    // RFC 3261 section 16.7 step 7: the client can answer both realms in one retry.
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        ..Default::default()
    });
    let caller = udp_from("127.0.0.2:5062");
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5063;branch=z9hG4bKfr1\r\nMax-Forwards: 70\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: fr1\r\nCSeq: 1 REGISTER\r\nContact: <sip:b@127.0.0.3:5063>, <sip:b@127.0.0.4:5064>\r\nContent-Length: 0\r\n\r\n";
    let now = Instant::now();
    let wall = SystemTime::now();
    core.handle_message(now, wall, caller, Bytes::from_static(register));
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKfr2\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: fr2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let actions = core.handle_message(now, wall, caller, Bytes::from_static(invite));
    let forks: Vec<_> = sends(&actions)
        .into_iter()
        .filter(|(_, b)| b.starts_with(b"INVITE"))
        .collect();
    assert_eq!(forks.len(), 2);
    let mut upstream = Vec::new();
    for (i, (to, forwarded)) in forks.iter().enumerate() {
        let challenge = format!("Proxy-Authenticate: Digest realm=\"r{i}\", nonce=\"n{i}\"");
        let response = answer(
            forwarded,
            "407 Proxy Authentication Required",
            &format!("t{i}"),
            &[&challenge],
        );
        let callee = Source {
            transport: Transport::Udp,
            addr: to.addr,
            local: caller.local,
        };
        let actions = core.handle_message(now, wall, callee, response);
        upstream.extend(
            sends(&actions)
                .into_iter()
                .filter(|(to, _)| to.addr == caller.addr),
        );
    }
    let finals: Vec<_> = upstream
        .iter()
        .map(|(_, b)| Message::parse(b).unwrap())
        .filter(|m| m.status() == Some(407))
        .collect();
    assert_eq!(finals.len(), 1, "one final upstream");
    let realms: Vec<&str> = finals[0]
        .headers_named(dialtone_sip::HeaderName::ProxyAuthenticate)
        .map(|h| h.value)
        .collect();
    assert_eq!(realms.len(), 2, "{realms:?}");
    assert!(
        realms[0].contains("r0") && realms[1].contains("r1")
            || realms[0].contains("r1") && realms[1].contains("r0")
    );
}

#[test]
fn a_retransmitted_register_with_qop_gets_its_200_but_a_new_one_reusing_the_count_is_challenged() {
    // The proxy keeps no transaction for REGISTER: a retransmission meets the nonce-count
    // tracker again, and must still be answered like the first copy.
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        auth: Some("register".into()),
        challenge: Some(401),
        qop: Some(true),
        user: vec!["alice:secret".into()],
        ..Default::default()
    });
    let source = udp_from("127.0.0.2:5062");
    let register = |cseq: u32, contact: &str, authorization: &str| {
        format!("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKq{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: qop-rtx\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\n{authorization}Expires: 600\r\nContent-Length: 0\r\n\r\n")
    };
    let answer = |text: String| {
        let actions =
            core.handle_message(Instant::now(), SystemTime::now(), source, Bytes::from(text));
        let replies = sends(&actions);
        assert_eq!(replies.len(), 1);
        replies[0].1.clone()
    };
    let first = answer(register(1, "sip:alice@127.0.0.2:5062", ""));
    let first = Message::parse(&first).unwrap();
    assert_eq!(first.status(), Some(401));
    let challenge_value = first
        .header_value(dialtone_sip::HeaderName::WwwAuthenticate)
        .unwrap();
    let challenge = dialtone_digest::Challenge::parse(challenge_value).unwrap();
    let credentials = dialtone_digest::answer(
        &challenge,
        &dialtone_digest::AnswerParams {
            username: "alice",
            password: "secret",
            method: "REGISTER",
            uri: "sip:example.com",
            cnonce: "c0ffee",
            nc: 1,
        },
    )
    .unwrap();
    assert!(credentials.to_string().contains("nc=00000001"));
    let authorization = format!("Authorization: {credentials}\r\n");

    let signed = register(2, "sip:alice@127.0.0.2:5062", &authorization);
    let ok = answer(signed.clone());
    assert_eq!(Message::parse(&ok).unwrap().status(), Some(200));
    let again = answer(signed);
    let again = Message::parse(&again).unwrap();
    assert_eq!(again.status(), Some(200), "the retransmission's answer");
    assert!(again
        .header_value(dialtone_sip::HeaderName::Contact)
        .is_some_and(|c| c.contains("sip:alice@127.0.0.2:5062")));

    // The same count on a request that would change something is a replay.
    let replay = answer(register(3, "sip:mallory@127.0.0.9:5062", &authorization));
    let replay = Message::parse(&replay).unwrap();
    assert_eq!(replay.status(), Some(401));
    // A fresh challenge, not `stale=true`: the nonce has not expired, it was used.
    assert!(replay
        .header_value(dialtone_sip::HeaderName::WwwAuthenticate)
        .is_some_and(|v| !v.contains("stale=true")));
    let bound = core.location().lookup("alice", SystemTime::now());
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].contact, "sip:alice@127.0.0.2:5062");
    assert_eq!(bound[0].cseq, 2);
}

#[test]
fn credentials_of_an_unknown_scheme_get_a_digest_challenge() {
    // RFC 4475 section 3.3.7 (regaut01): not a 400.
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        auth: Some("register".into()),
        challenge: Some(401),
        ..Default::default()
    });
    let source = udp_from("127.0.0.2:5062");
    let request = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKra1\r\nMax-Forwards: 70\r\nFrom: <sip:j@example.com>;tag=1\r\nTo: <sip:j@example.com>\r\nCall-ID: ra1\r\nCSeq: 9338 REGISTER\r\nAuthorization: NoOneKnowsThisScheme opaque-data=here\r\nContent-Length: 0\r\n\r\n";
    let actions = core.handle_message(
        Instant::now(),
        SystemTime::now(),
        source,
        Bytes::from_static(request),
    );
    let replies = sends(&actions);
    let reply = Message::parse(&replies[0].1).unwrap();
    assert_eq!(reply.status(), Some(401));
    assert!(reply
        .header_value(dialtone_sip::HeaderName::WwwAuthenticate)
        .is_some_and(|v| v.starts_with("Digest")));
}

#[test]
fn with_a_store_a_register_hands_its_changes_over_before_its_held_200_and_a_repeat_writes_them_again(
) {
    let location = LocationService::with_bindings(Vec::new(), true);
    let core = core_with_location(ProxyFlags::default(), location);
    let register = Bytes::from_static(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKpe1\r\nMax-Forwards: 70\r\nFrom: <sip:k@127.0.0.1>;tag=1\r\nTo: <sip:k@127.0.0.1>\r\nCall-ID: pe1\r\nCSeq: 1 REGISTER\r\nContact: <sip:k@127.0.0.2:5062>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n");
    let source = udp_from("127.0.0.2:5062");
    let persisted = |actions: &[Action]| -> (usize, u64, Vec<crate::registrar::BindingChange>) {
        let at = actions
            .iter()
            .position(|a| matches!(a, Action::Persist { .. }))
            .unwrap_or_else(|| panic!("no Persist in {actions:?}"));
        let held = actions
            .iter()
            .position(|a| matches!(a, Action::SendWhenStored { .. }))
            .unwrap_or_else(|| panic!("no held 200 in {actions:?}"));
        assert!(
            at < held,
            "the changes go to the writer before the 200 waits for it"
        );
        match &actions[at] {
            Action::Persist { sequence, changes } => (at, *sequence, changes.clone()),
            _ => unreachable!(),
        }
    };
    let now = Instant::now();
    let first = core.handle_message(now, SystemTime::now(), source, register.clone());
    let (_, first_sequence, changes) = persisted(&first);
    assert!(
        matches!(&changes[..], [crate::registrar::BindingChange::Upsert(b)] if b.contact == "sip:k@127.0.0.2:5062")
    );
    // The retransmission changes nothing, yet writes the binding again, under a later number:
    // its 200 must not go before the first one's change is on disk, whichever worker sends.
    let again = core.handle_message(now, SystemTime::now(), source, register);
    let (_, again_sequence, rewritten) = persisted(&again);
    assert_eq!(rewritten, changes);
    assert!(again_sequence > first_sequence);
}

/// A core for `example.com` with `b` registered at 127.0.0.3:5063, and `invite` (to `b`,
/// sent from 127.0.0.2:5062) passed through it: the core, the callee and the INVITE as
/// forwarded to the callee.
pub(crate) fn forward_to_registered_b(
    now: Instant,
    wall: SystemTime,
    invite: &'static [u8],
) -> (ProxyCore, Source, Bytes) {
    let core = core_with(ProxyFlags {
        domain: vec!["example.com".into()],
        ..Default::default()
    });
    let callee = udp_from("127.0.0.3:5063");
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.3:5063;branch=z9hG4bKrb0\r\nMax-Forwards: 70\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: rb0\r\nCSeq: 1 REGISTER\r\nContact: <sip:b@127.0.0.3:5063>\r\nContent-Length: 0\r\n\r\n";
    core.handle_message(now, wall, callee, Bytes::from_static(register));
    let actions = core.handle_message(
        now,
        wall,
        udp_from("127.0.0.2:5062"),
        Bytes::from_static(invite),
    );
    let (_, forwarded) = sends(&actions)
        .into_iter()
        .find(|(to, _)| to.addr == callee.addr)
        .expect("forwarded to the callee");
    (core, callee, forwarded)
}

#[test]
fn timer_c_after_a_180_cancels_the_branch_with_what_its_skeleton_kept() {
    // RFC 3261 section 16.8: Timer C firing on a branch that had a provisional cancels it. By
    // then the branch keeps only the head of its forwarded INVITE (`Message::forwarded_head`)
    // and rebuilds the skeleton from the received INVITE's, and the CANCEL must still copy
    // the Request-URI, the top Via, From, To, Call-ID and CSeq number (section 9.1).
    let now = Instant::now();
    let wall = SystemTime::now();
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKtc1\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: tc1\r\nCSeq: 4 INVITE\r\nContact: <sip:a@127.0.0.2:5062>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
    let (core, callee, forwarded) = forward_to_registered_b(now, wall, invite);
    let forwarded = Message::parse(&forwarded).unwrap();
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: {}\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\nCall-ID: tc1\r\nCSeq: 4 INVITE\r\nContent-Length: 0\r\n\r\n",
        forwarded.values(dialtone_sip::HeaderName::Via).collect::<Vec<_>>().join(", ")
    );
    let actions = core.handle_message(now, wall, callee, Bytes::from(ringing));
    let timer_c = actions
        .iter()
        .filter_map(|a| match a {
            Action::Arm { id, at, .. } => Some((id.clone(), *at)),
            _ => None,
        })
        .last()
        .expect("Timer C armed");
    assert!(timer_c.1 >= now + Duration::from_secs(180), "{timer_c:?}");
    let actions = core.handle_timer(timer_c.1, wall, &timer_c.0);
    let (to, cancel) = sends(&actions)
        .into_iter()
        .find(|(_, b)| b.starts_with(b"CANCEL "))
        .expect("a CANCEL");
    assert_eq!(to.addr, callee.addr);
    let cancel = Message::parse(&cancel).unwrap();
    cancel.check_request().unwrap();
    assert_eq!(
        cancel.request_uri().unwrap().as_str(),
        forwarded.request_uri().unwrap().as_str()
    );
    let vias: Vec<&str> = cancel.values(dialtone_sip::HeaderName::Via).collect();
    assert_eq!(
        vias,
        vec![forwarded
            .values(dialtone_sip::HeaderName::Via)
            .next()
            .unwrap()]
    );
    for name in [
        dialtone_sip::HeaderName::From,
        dialtone_sip::HeaderName::To,
        dialtone_sip::HeaderName::CallId,
    ] {
        assert_eq!(
            cancel.header_value(name),
            forwarded.header_value(name),
            "{name:?}"
        );
    }
    assert_eq!(cancel.cseq().unwrap().seq, 4);
}

#[test]
fn a_ringing_branch_acks_a_503_and_answers_500_from_the_head_it_kept() {
    // After its 180 a branch keeps only the head of its forwarded INVITE (start line, the
    // proxy's Via, Route) and rebuilds the rest from the received INVITE. The ACK of a later
    // 503 must still copy the forwarded Request-URI and top Via (RFC 3261 section 17.1.1.3),
    // and the 500 sent upstream instead of the 503 (section 16.7 step 6) the Vias as
    // forwarded: the caller's with the `received` and `rport` the proxy gave it.
    let now = Instant::now();
    let wall = SystemTime::now();
    let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKhd1;rport\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKup\r\nMax-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>\r\nCall-ID: hd1\r\nCSeq: 4 INVITE\r\nContact: <sip:a@127.0.0.2:5062>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
    let caller = udp_from("127.0.0.2:5062");
    let (core, callee, forwarded) = forward_to_registered_b(now, wall, invite);
    let forwarded = Message::parse(&forwarded).unwrap();
    let forwarded_vias: Vec<&str> = forwarded.values(dialtone_sip::HeaderName::Via).collect();
    assert!(
        forwarded_vias[1].contains("received=127.0.0.2")
            && forwarded_vias[1].contains("rport=5062"),
        "{forwarded_vias:?}"
    );
    let response = |status: &str| {
        format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: <sip:a@example.com>;tag=a\r\nTo: <sip:b@example.com>;tag=b\r\nCall-ID: hd1\r\nCSeq: 4 INVITE\r\nContent-Length: 0\r\n\r\n",
            forwarded_vias.join(", ")
        )
    };
    core.handle_message(now, wall, callee, Bytes::from(response("180 Ringing")));
    let actions = core.handle_message(
        now,
        wall,
        callee,
        Bytes::from(response("503 Service Unavailable")),
    );
    let sent = sends(&actions);
    let (to, ack) = sent
        .iter()
        .find(|(_, b)| b.starts_with(b"ACK "))
        .expect("the 503 acknowledged");
    assert_eq!(to.addr, callee.addr);
    let ack = Message::parse(ack).unwrap();
    ack.check_request().unwrap();
    assert_eq!(
        ack.request_uri().unwrap().as_str(),
        forwarded.request_uri().unwrap().as_str()
    );
    assert_eq!(
        ack.values(dialtone_sip::HeaderName::Via)
            .collect::<Vec<_>>(),
        vec![forwarded_vias[0]]
    );
    assert_eq!(
        ack.header_value(dialtone_sip::HeaderName::To),
        Some("<sip:b@example.com>;tag=b")
    );
    let (to, upstream) = sent
        .iter()
        .find(|(_, b)| b.starts_with(b"SIP/2.0 500"))
        .expect("a 500 upstream instead of the 503");
    assert_eq!(to.addr, caller.addr);
    let upstream = Message::parse(upstream).unwrap();
    assert_eq!(
        upstream
            .values(dialtone_sip::HeaderName::Via)
            .collect::<Vec<_>>(),
        forwarded_vias[1..]
    );
    for name in [
        dialtone_sip::HeaderName::From,
        dialtone_sip::HeaderName::CallId,
        dialtone_sip::HeaderName::CSeq,
    ] {
        assert_eq!(
            upstream.header_value(name),
            forwarded.header_value(name),
            "{name:?}"
        );
    }
}
