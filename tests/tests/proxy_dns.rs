//! Next hops in other domains found through DNS (RFC 3263 section 4), against a DNS server of
//! the test's own (hickory-server, in memory, on loopback) that the proxy is pointed at with
//! `--dns`: NAPTR chooses TCP even where a UDP SRV record exists; SRV alone gives the port;
//! an explicit port in the URI asks for the address only; a target that refuses, answers 503
//! or does not answer at all gives way to the next SRV target, and one whose 503 asked for a
//! pause (Retry-After) is skipped meanwhile; a name nobody knows gets 503.

use std::net::TcpListener;

use dialtone_e2e::dns::{a, dns_server, name, srv, Data as RData, NAPTR};
use dialtone_e2e::sip_client::{accept_within, via_branch, UdpPeer};
use dialtone_e2e::sip_message::{request, respond_like};
use dialtone_e2e::Proxy;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn naptr(order: u16, services: &str, replacement: &str) -> RData {
    RData::NAPTR(NAPTR::new(
        order,
        50,
        b"s".to_vec().into_boxed_slice(),
        services.as_bytes().to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        name(replacement),
    ))
}

/// An OPTIONS from `caller` for `uri`, sent to the proxy.
fn options(caller: &UdpPeer, uri: &str, call_id: &str) -> String {
    request(
        "OPTIONS",
        uri,
        &caller.hostport(),
        "UDP",
        "8000",
        uri,
        call_id,
        1,
        &[],
        "",
    )
}

#[test]
fn next_hops_in_other_domains_follow_naptr_srv_and_a_records() {
    // The callees: a TCP one for the NAPTR domain, UDP ones for the others, and UDP decoys
    // where a wrong reading of RFC 3263 would send the request.
    let tcp_callee = TcpListener::bind("127.0.0.3:0").unwrap();
    let tcp_port = tcp_callee.local_addr().unwrap().port();
    // For failover: a port nothing listens on (bound, then closed), and the backup behind it.
    let refused_port = TcpListener::bind("127.0.0.8:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backup_callee = TcpListener::bind("127.0.0.9:0").unwrap();
    let backup_port = backup_callee.local_addr().unwrap().port();
    let mut srv_callee = UdpPeer::bind("127.0.0.4", "127.0.0.1:9".parse().unwrap());
    let mut a_callee = UdpPeer::bind("127.0.0.6", "127.0.0.1:9".parse().unwrap());
    let mut decoy = UdpPeer::bind("127.0.0.5", "127.0.0.1:9".parse().unwrap());
    let decoy_port = decoy.addr().port();
    let dns = dns_server(vec![
        (
            "naptr.test.",
            vec![
                (
                    "naptr.test.".into(),
                    naptr(10, "SIP+D2T", "_sip._tcp.naptr.test."),
                ),
                (
                    "_sip._tcp.naptr.test.".into(),
                    srv(tcp_port, "b.naptr.test."),
                ),
                ("b.naptr.test.".into(), a("127.0.0.3")),
                // Without NAPTR, UDP would be tried first and reach the decoy.
                (
                    "_sip._udp.naptr.test.".into(),
                    srv(decoy_port, "decoy.naptr.test."),
                ),
                ("decoy.naptr.test.".into(), a("127.0.0.5")),
            ],
        ),
        (
            "srv.test.",
            vec![
                (
                    "_sip._udp.srv.test.".into(),
                    srv(srv_callee.addr().port(), "c.srv.test."),
                ),
                ("c.srv.test.".into(), a("127.0.0.4")),
            ],
        ),
        (
            "failover.test.",
            vec![
                // The preferred target refuses the connection; the backup must get the request.
                (
                    "_sip._tcp.failover.test.".into(),
                    dialtone_e2e::dns::srv_with(10, 10, refused_port, "dead.failover.test."),
                ),
                (
                    "_sip._tcp.failover.test.".into(),
                    dialtone_e2e::dns::srv_with(20, 10, backup_port, "live.failover.test."),
                ),
                ("dead.failover.test.".into(), a("127.0.0.8")),
                ("live.failover.test.".into(), a("127.0.0.9")),
            ],
        ),
        (
            "port.test.",
            vec![
                ("port.test.".into(), a("127.0.0.6")),
                // An explicit port means A only (section 4.2): this SRV must not be used.
                (
                    "_sip._udp.port.test.".into(),
                    srv(decoy_port, "decoy.port.test."),
                ),
                ("decoy.port.test.".into(), a("127.0.0.5")),
            ],
        ),
    ]);
    let dns_flag = dns.to_string();
    let proxy = Proxy::start(PROXY, &["--dns", &dns_flag, "--relay", "true"]);
    let mut caller = UdpPeer::bind("127.0.0.2", proxy.sip);

    // NAPTR: SIP+D2T → the TCP SRV → b.naptr.test → 127.0.0.3 over TCP.
    caller.send(options(&caller, "sip:9000@naptr.test", "dns-naptr").as_bytes());
    let mut b = accept_within(
        tcp_callee,
        "the proxy connects to the TCP callee that NAPTR and SRV name",
    );
    let forwarded = b.expect_request("OPTIONS", "OPTIONS at the TCP callee");
    assert_eq!(
        forwarded.request_uri().as_deref(),
        Some("sip:9000@naptr.test")
    );
    assert!(
        forwarded.vias()[0].starts_with("SIP/2.0/TCP "),
        "our Via names the transport DNS chose: {}",
        forwarded.text()
    );
    b.send(respond_like("SIP/2.0 200 OK\r\n\r\n", &forwarded, Some("b")).as_bytes());
    caller.expect_status(200, "200 from the TCP callee");

    // SRV only: _sip._udp.srv.test → c.srv.test:port over UDP.
    caller.send(options(&caller, "sip:9000@srv.test", "dns-srv").as_bytes());
    let forwarded = srv_callee.expect_request("OPTIONS", "OPTIONS at the SRV target");
    srv_callee.send_to(
        respond_like("SIP/2.0 200 OK\r\n\r\n", &forwarded, Some("c")).as_bytes(),
        proxy.sip,
    );
    caller.expect_status(200, "200 from the SRV target");

    // An explicit port: the A record, at that port.
    let uri = format!("sip:9000@port.test:{}", a_callee.addr().port());
    caller.send(options(&caller, &uri, "dns-port").as_bytes());
    let forwarded = a_callee.expect_request("OPTIONS", "OPTIONS at the A record's address");
    a_callee.send_to(
        respond_like("SIP/2.0 200 OK\r\n\r\n", &forwarded, Some("d")).as_bytes(),
        proxy.sip,
    );
    caller.expect_status(200, "200 from the A record's address");

    // SRV failover (RFC 3263 section 4.3): the first target refuses, the next one is tried.
    caller.send(
        options(
            &caller,
            "sip:9000@failover.test;transport=tcp",
            "dns-failover",
        )
        .as_bytes(),
    );
    let mut backup = accept_within(backup_callee, "the proxy moves on to the backup SRV target");
    let forwarded = backup.expect_request("OPTIONS", "OPTIONS at the backup target");
    backup.send(respond_like("SIP/2.0 200 OK\r\n\r\n", &forwarded, Some("e")).as_bytes());
    caller.expect_status(200, "200 from the backup target, not a 503");

    // A name the server does not know: 503 (RFC 3263 section 4.3, RFC 3261 section 16.9).
    caller.send(options(&caller, "sip:9000@nobody.test", "dns-none").as_bytes());
    caller.expect_status(503, "503 for a name that does not resolve");

    decoy.expect_nothing("the decoy SRV targets");
}

#[test]
fn udp_next_hops_that_answer_503_or_nothing_give_way_to_the_next_srv_target_and_a_retry_after_is_honoured(
) {
    // RFC 3261 section 21.5.4 (a 503 asks for an alternate server, and its Retry-After for a
    // pause in new requests) and RFC 3263 section 4.3
    // (a timeout is a failure like a refused connection). T1 is 10 ms so that Timer F, 64 * T1,
    // passes in 640 ms.
    let mut busy = UdpPeer::bind("127.0.0.10", "127.0.0.1:9".parse().unwrap());
    let mut after_busy = UdpPeer::bind("127.0.0.11", "127.0.0.1:9".parse().unwrap());
    let mut silent = UdpPeer::bind("127.0.0.12", "127.0.0.1:9".parse().unwrap());
    let mut after_silent = UdpPeer::bind("127.0.0.13", "127.0.0.1:9".parse().unwrap());
    let target = |priority: u16, peer: &UdpPeer, host: &str| {
        dialtone_e2e::dns::srv_with(priority, 10, peer.addr().port(), host)
    };
    let dns = dns_server(vec![
        (
            "busy.test.",
            vec![
                (
                    "_sip._udp.busy.test.".into(),
                    target(10, &busy, "a.busy.test."),
                ),
                (
                    "_sip._udp.busy.test.".into(),
                    target(20, &after_busy, "b.busy.test."),
                ),
                ("a.busy.test.".into(), a("127.0.0.10")),
                ("b.busy.test.".into(), a("127.0.0.11")),
            ],
        ),
        (
            "silent.test.",
            vec![
                (
                    "_sip._udp.silent.test.".into(),
                    target(10, &silent, "a.silent.test."),
                ),
                (
                    "_sip._udp.silent.test.".into(),
                    target(20, &after_silent, "b.silent.test."),
                ),
                ("a.silent.test.".into(), a("127.0.0.12")),
                ("b.silent.test.".into(), a("127.0.0.13")),
            ],
        ),
    ]);
    let dns_flag = dns.to_string();
    let proxy = Proxy::start(
        PROXY,
        &["--dns", &dns_flag, "--t1-ms", "10", "--relay", "true"],
    );
    let mut caller = UdpPeer::bind("127.0.0.2", proxy.sip);

    // The preferred target answers 503: the backup gets the request in a new branch.
    caller.send(options(&caller, "sip:9000@busy.test", "dns-busy").as_bytes());
    let first = busy.expect_request("OPTIONS", "OPTIONS at the preferred target");
    busy.send_to(
        respond_like(
            "SIP/2.0 503 Service Unavailable\r\nRetry-After: 300\r\n\r\n",
            &first,
            Some("f"),
        )
        .as_bytes(),
        proxy.sip,
    );
    let second = after_busy.expect_request("OPTIONS", "OPTIONS at the backup after a 503");
    assert_ne!(
        via_branch(&second.vias()[0]),
        via_branch(&first.vias()[0]),
        "a new transaction for the backup"
    );
    after_busy.send_to(
        respond_like("SIP/2.0 200 OK\r\n\r\n", &second, Some("g")).as_bytes(),
        proxy.sip,
    );
    caller.expect_status(200, "the backup's 200, not the 503");

    // For the next 300 s (its Retry-After), new requests skip the target that answered 503.
    caller.send(options(&caller, "sip:9000@busy.test", "dns-busy-again").as_bytes());
    let again = after_busy.expect_request("OPTIONS", "OPTIONS straight at the backup");
    after_busy.send_to(
        respond_like("SIP/2.0 200 OK\r\n\r\n", &again, Some("g2")).as_bytes(),
        proxy.sip,
    );
    caller.expect_status(200, "the backup's 200");
    busy.expect_nothing("the target that asked for a pause");

    // The preferred target never answers: once Timer F fires, the backup gets the request.
    caller.send(options(&caller, "sip:9000@silent.test", "dns-silent").as_bytes());
    let first = silent.expect_request("OPTIONS", "OPTIONS at the silent target");
    let second = after_silent.expect_request("OPTIONS", "OPTIONS at the backup after Timer F");
    assert_ne!(
        via_branch(&second.vias()[0]),
        via_branch(&first.vias()[0]),
        "a new transaction for the backup"
    );
    after_silent.send_to(
        respond_like("SIP/2.0 200 OK\r\n\r\n", &second, Some("h")).as_bytes(),
        proxy.sip,
    );
    caller.expect_status(200, "the backup's 200, not a 408");

    let metrics = dialtone_e2e::http_get(proxy.http, "/metrics").expect("/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.trim() == "dialtone_proxy_failovers_total 2"),
        "both failovers counted"
    );
}
