//! The proxy tried as an attacker would try it, through the real binary on loopback: relaying
//! through a preloaded Route or a made-up dialog, user enumeration by any method, replayed
//! credentials, requests the proxy would send to itself, and what its responses give away.
//! Each test failed on 40f54d4 (before these rules) and passes now.

use std::time::{Duration, Instant};

use dialtone_e2e::proxy_api::registrations;
use dialtone_e2e::sip_client::{Msg, UdpPeer, WAIT};
use dialtone_e2e::sip_message::{digest_answer, nonce_of, request, respond_like, set_header};
use dialtone_e2e::Proxy;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

/// A request from `peer` (UDP) with a fresh branch `branch`.
#[allow(clippy::too_many_arguments)]
fn udp_request(
    peer: &UdpPeer,
    method: &str,
    uri: &str,
    from_user: &str,
    to: &str,
    call_id: &str,
    cseq: u32,
    extra: &[String],
) -> String {
    request(
        method,
        uri,
        &peer.hostport(),
        "UDP",
        from_user,
        to,
        call_id,
        cseq,
        extra,
        "",
    )
}

/// The text with its top Via's branch replaced: the same request in a new transaction.
fn with_new_branch(text: &str, branch: &str) -> String {
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.strip_prefix("Via: ") {
            Some(via) => {
                let sent_by = via.split(";branch=").next().unwrap();
                format!("Via: {sent_by};branch={branch}")
            }
            None => line.to_string(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", lines.join("\r\n"))
}

/// The final response `peer` gets to `text` (provisionals skipped).
fn final_to(peer: &mut UdpPeer, text: &str) -> Msg {
    peer.send(text.as_bytes());
    loop {
        let m = peer.expect("a response");
        if m.status().is_some_and(|s| s >= 200) {
            return m;
        }
    }
}

/// Registers `user` at `contact` (a Contact value) from `peer`, without auth, and checks the 200.
fn register_contact(proxy: &Proxy, peer: &mut UdpPeer, user: &str, contact: &str, call_id: &str) {
    let register = udp_request(
        peer,
        "REGISTER",
        &format!("sip:{}", proxy.sip),
        user,
        &format!("sip:{user}@{}", proxy.sip.ip()),
        call_id,
        1,
        &[format!("Contact: {contact}"), "Expires: 600".into()],
    );
    assert_eq!(final_to(peer, &register).status(), Some(200));
}

/// Registers `user` (password = user name) from `peer` through a 407, as figure D-2 does.
fn register_with_auth(proxy: &Proxy, peer: &mut UdpPeer, user: &str, call_id: &str) -> String {
    let uri = "sip:lab.example";
    let contact = format!("Contact: <sip:{user}@{}>", peer.hostport());
    let first = udp_request(
        peer,
        "REGISTER",
        uri,
        user,
        &format!("sip:{user}@lab.example"),
        call_id,
        1,
        &[contact.clone(), "Expires: 600".into()],
    );
    let challenge = final_to(peer, &first);
    assert_eq!(challenge.status(), Some(407), "{}", challenge.text());
    let credentials = digest_answer(&challenge, user, user, "REGISTER", uri);
    let signed = udp_request(
        peer,
        "REGISTER",
        uri,
        user,
        &format!("sip:{user}@lab.example"),
        call_id,
        2,
        &[
            contact,
            "Expires: 600".into(),
            format!("Proxy-Authorization: {credentials}"),
        ],
    );
    let ok = final_to(peer, &signed);
    assert_eq!(ok.status(), Some(200), "{}", ok.text());
    let _ = proxy;
    signed
}

fn auth_proxy(extra: &[&str]) -> Proxy {
    let mut args = vec![
        "--auth",
        "all",
        "--domain",
        "lab.example",
        "--realm",
        "lab.example",
        "--user",
        "9000:9000",
        "--user",
        "8000:8000",
        "--memory-only",
    ];
    args.extend_from_slice(extra);
    Proxy::start(PROXY, &args)
}

#[test]
fn an_unauthenticated_invite_with_a_preloaded_route_to_another_host_is_challenged() {
    let proxy = auth_proxy(&[]);
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let mut relay_target = UdpPeer::bind("127.0.0.3", proxy.sip);
    let to = "sip:+15551234567@relay-target.example.net";
    // A Route to a name (the proxy used to look it up and relay) and to an address.
    for (n, route) in [
        "<sip:relay-target.example.net;lr>".to_string(),
        format!("<sip:{};lr>", relay_target.hostport()),
    ]
    .iter()
    .enumerate()
    {
        let invite = udp_request(
            &caller,
            "INVITE",
            to,
            "8000",
            to,
            &format!("relay-{n}"),
            1,
            &[format!("Route: {route}")],
        );
        let answer = final_to(&mut caller, &invite);
        assert_eq!(answer.status(), Some(407), "{route}: {}", answer.summary());
        relay_target.expect_nothing("the relay target");
    }
}

#[test]
fn a_made_up_to_tag_with_our_route_does_not_make_a_request_in_dialog() {
    let proxy = auth_proxy(&[]);
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let mut target = UdpPeer::bind("127.0.0.3", proxy.sip);
    let our_route = format!("Route: <sip:{};lr>", proxy.sip);
    for method in ["INVITE", "BYE", "MESSAGE", "OPTIONS"] {
        let call_id = format!("forged-{method}");
        let text = udp_request(
            &caller,
            method,
            &format!("sip:+15551234567@{}", target.hostport()),
            "8000",
            "sip:+15551234567@relay-target.example.net",
            &call_id,
            1,
            std::slice::from_ref(&our_route),
        );
        let text = set_header(
            &text,
            "To",
            "<sip:+15551234567@relay-target.example.net>;tag=made-up",
        );
        let answer = final_to(&mut caller, &text);
        assert_eq!(answer.status(), Some(407), "{method}: {}", answer.summary());
        target.expect_nothing(method);
        // The ACK, which cannot be challenged, is dropped.
        let ack = set_header(
            &udp_request(
                &caller,
                "ACK",
                &format!("sip:+15551234567@{}", target.hostport()),
                "8000",
                "sip:+15551234567@relay-target.example.net",
                &call_id,
                1,
                std::slice::from_ref(&our_route),
            ),
            "To",
            "<sip:+15551234567@relay-target.example.net>;tag=made-up",
        );
        caller.send(ack.as_bytes());
        target.expect_nothing("a forged ACK");
    }
}

#[test]
fn without_auth_other_domains_are_relayed_only_when_asked_for() {
    for (relay, forwarded) in [(None, false), (Some("true"), true)] {
        let mut args = vec!["--memory-only"];
        if let Some(value) = relay {
            args.extend(["--relay", value]);
        }
        let proxy = Proxy::start(PROXY, &args);
        let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
        let mut elsewhere = UdpPeer::bind("127.0.0.3", proxy.sip);
        let uri = format!("sip:bob@{}", elsewhere.hostport());
        let invite = udp_request(&caller, "OPTIONS", &uri, "8000", &uri, "relay-none", 1, &[]);
        caller.send(invite.as_bytes());
        if forwarded {
            elsewhere.expect_request("OPTIONS", "the relayed OPTIONS");
        } else {
            let answer = caller.expect("the answer");
            assert_eq!(answer.status(), Some(403), "{}", answer.summary());
            assert!(answer.first_line().contains("Relay forbidden"));
            elsewhere.expect_nothing("a relay that is off");
        }
    }
}

/// What a challenge says, with what differs per challenge (nonce, tags, branch) left out.
fn challenge_shape(m: &Msg) -> Vec<String> {
    let text = m.text();
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n")
        .filter(|line| {
            let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            !matches!(name.as_str(), "via" | "from" | "to" | "call-id" | "cseq")
        })
        .map(|line| {
            if line.to_ascii_lowercase().starts_with("proxy-authenticate") {
                let nonce = nonce_of(m);
                line.replace(&nonce, "NONCE")
            } else {
                line.to_string()
            }
        })
        .collect()
}

#[test]
fn every_method_for_a_local_user_is_challenged_alike_whether_the_user_exists_or_not() {
    let proxy = auth_proxy(&[]);
    let mut phone = UdpPeer::bind("127.0.0.1", proxy.sip);
    register_with_auth(&proxy, &mut phone, "9000", "enum-reg");
    let mut scanner = UdpPeer::bind("127.0.0.1", proxy.sip);
    let methods = [
        "OPTIONS",
        "MESSAGE",
        "SUBSCRIBE",
        "NOTIFY",
        "INFO",
        "REFER",
        "PUBLISH",
        "UPDATE",
        "INVITE",
        "FROBNICATE",
    ];
    for method in methods {
        let mut shapes = Vec::new();
        for user in ["9000", "u12345"] {
            let uri = format!("sip:{user}@lab.example");
            let text = udp_request(
                &scanner,
                method,
                &uri,
                "100",
                &uri,
                &format!("enum-{method}-{user}"),
                1,
                &[],
            );
            let answer = final_to(&mut scanner, &text);
            assert_eq!(
                answer.status(),
                Some(407),
                "{method} for {user}: {}",
                answer.summary()
            );
            shapes.push(challenge_shape(&answer));
        }
        assert_eq!(shapes[0], shapes[1], "{method}: the answers differ");
        phone.expect_nothing(method);
    }
    // The proxy itself still answers OPTIONS.
    let uri = "sip:lab.example";
    let options = udp_request(&scanner, "OPTIONS", uri, "100", uri, "enum-self", 1, &[]);
    assert_eq!(final_to(&mut scanner, &options).status(), Some(200));
}

/// The median of `samples`.
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn an_existing_user_and_a_missing_one_are_challenged_in_the_same_time() {
    let proxy = auth_proxy(&[]);
    let mut phone = UdpPeer::bind("127.0.0.1", proxy.sip);
    register_with_auth(&proxy, &mut phone, "9000", "timing-reg");
    let mut scanner = UdpPeer::bind("127.0.0.1", proxy.sip);
    let mut times = [Vec::new(), Vec::new()];
    // Interleaved, so that the machine's load falls on both alike.
    for n in 0..200 {
        for (i, user) in ["9000", "u12345"].iter().enumerate() {
            let uri = format!("sip:{user}@lab.example");
            let text = udp_request(
                &scanner,
                "OPTIONS",
                &uri,
                "100",
                &uri,
                &format!("timing-{n}-{user}"),
                1,
                &[],
            );
            let started = Instant::now();
            let answer = final_to(&mut scanner, &text);
            times[i].push(started.elapsed());
            assert_eq!(answer.status(), Some(407));
        }
    }
    let [existing, missing] = times;
    let (existing, missing) = (median(existing), median(missing));
    let gap = existing.abs_diff(missing);
    assert!(
        gap < Duration::from_millis(1),
        "medians {existing:?} and {missing:?} differ by {gap:?}"
    );
}

#[test]
fn a_captured_register_sent_again_in_a_new_transaction_is_challenged_and_changes_nothing() {
    let proxy = auth_proxy(&[]);
    let mut phone = UdpPeer::bind("127.0.0.1", proxy.sip);
    let signed = register_with_auth(&proxy, &mut phone, "9000", "replay-reg");
    // The retransmission of that very request (same branch) gets its 200 again (byte for
    // byte the same answer, hence the raw receive).
    phone.send(signed.as_bytes());
    let again = phone.recv_raw(WAIT).expect("the 200 again");
    assert_eq!(again.status(), Some(200), "{}", again.summary());
    // The attacker sends the captured credentials in a new transaction, with its own contact.
    let mut attacker = UdpPeer::bind("127.0.0.3", proxy.sip);
    let stolen = with_new_branch(&signed, "z9hG4bKreplayed1");
    let stolen = stolen.replace(&phone.hostport(), &attacker.hostport());
    let answer = final_to(&mut attacker, &stolen);
    assert_eq!(answer.status(), Some(407), "{}", answer.summary());
    let challenge = answer.header("proxy-authenticate").unwrap_or_default();
    assert!(!challenge.contains("stale"), "{challenge}");
    // Even unchanged, from the phone's own address, it is a second use of the nonce.
    let replayed = with_new_branch(&signed, "z9hG4bKreplayed2");
    let answer = final_to(&mut phone, &replayed);
    assert_eq!(answer.status(), Some(407), "{}", answer.summary());
    let bindings = registrations(proxy.http);
    let contacts: Vec<&str> = bindings
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["aor"] == "9000")
        .filter_map(|b| b["contact"].as_str())
        .collect();
    assert_eq!(
        contacts,
        [format!("sip:9000@{}", phone.hostport())],
        "{bindings}"
    );
}

#[test]
fn a_captured_invite_sent_again_in_a_new_transaction_is_challenged() {
    let proxy = auth_proxy(&[]);
    let mut callee = UdpPeer::bind("127.0.0.1", proxy.sip);
    register_with_auth(&proxy, &mut callee, "9000", "replay-inv-reg");
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let uri = "sip:9000@lab.example";
    let first = udp_request(&caller, "INVITE", uri, "8000", uri, "replay-inv", 1, &[]);
    let challenge = final_to(&mut caller, &first);
    assert_eq!(challenge.status(), Some(407));
    let credentials = digest_answer(&challenge, "8000", "8000", "INVITE", uri);
    let signed = udp_request(
        &caller,
        "INVITE",
        uri,
        "8000",
        uri,
        "replay-inv",
        2,
        &[format!("Proxy-Authorization: {credentials}")],
    );
    caller.send(signed.as_bytes());
    callee.expect_request("INVITE", "the authenticated INVITE");
    let replay = with_new_branch(&signed, "z9hG4bKinvreplay").replace("replay-inv", "replay-inv2");
    let answer = final_to(&mut caller, &replay);
    assert_eq!(answer.status(), Some(407), "{}", answer.summary());
    callee.expect_nothing("the replayed INVITE");
}

#[test]
fn a_bye_for_a_local_user_without_route_goes_to_its_binding_and_may_be_sent_again() {
    // A UA that ignores Record-Route (SIPp's built-in uac) sends `BYE sip:service@proxy`.
    let proxy = Proxy::start(PROXY, &["--memory-only"]);
    let mut callee = UdpPeer::bind("127.0.0.1", proxy.sip);
    let contact = format!("<sip:service@{}>", callee.hostport());
    register_contact(&proxy, &mut callee, "service", &contact, "loop-reg");
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let uri = format!("sip:service@{}", proxy.sip);
    let bye = set_header(
        &udp_request(&caller, "BYE", &uri, "sipp", &uri, "loop-bye", 2, &[]),
        "To",
        &format!("<{uri}>;tag=callee-tag"),
    );
    // Twice: the second with the same CSeq in a new transaction, as a UAC that gave up on the
    // first under loss does (RFC 3261 section 16.3 step 4: only our own Via makes a loop).
    for (n, text) in [bye.clone(), with_new_branch(&bye, "z9hG4bKbyeagain")]
        .iter()
        .enumerate()
    {
        caller.send(text.as_bytes());
        let at_callee = callee.expect_request("BYE", &format!("BYE {n} at the callee"));
        assert_eq!(
            at_callee.request_uri(),
            Some(format!("sip:service@{}", callee.hostport()))
        );
        callee.send(respond_like("SIP/2.0 200 OK\r\n\r\n", &at_callee, None).as_bytes());
        let ok = caller.expect("the 200 to the BYE");
        assert_eq!(ok.status(), Some(200), "BYE {n}: {}", ok.summary());
    }
}

#[test]
fn the_server_header_names_no_version_and_can_be_changed_or_removed() {
    for (flag, expected) in [
        (None, Some("dialtone-proxy")),
        (Some("lab proxy"), Some("lab proxy")),
        (Some(""), None),
    ] {
        let mut args = vec!["--memory-only"];
        if let Some(value) = flag {
            args.extend(["--server-header", value]);
        }
        let proxy = Proxy::start(PROXY, &args);
        let mut client = UdpPeer::bind("127.0.0.1", proxy.sip);
        let uri = format!("sip:{}", proxy.sip);
        let options = udp_request(&client, "OPTIONS", &uri, "a", &uri, "server-hdr", 1, &[]);
        let answer = final_to(&mut client, &options);
        assert_eq!(answer.status(), Some(200));
        assert_eq!(answer.header("server").as_deref(), expected, "{flag:?}");
    }
}

#[test]
fn a_request_too_large_for_udp_reaches_a_udp_only_phone_when_tcp_is_refused() {
    let proxy = Proxy::start(PROXY, &["--memory-only"]);
    let mut callee = UdpPeer::bind("127.0.0.1", proxy.sip);
    let contact = format!("<sip:9000@{};transport=udp>", callee.hostport());
    register_contact(&proxy, &mut callee, "9000", &contact, "big-reg");
    let caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let uri = format!("sip:9000@{}", proxy.sip);
    // A 1280-octet INVITE, as linphone's with its default codecs: over 1300 once forwarded.
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7078 RTP/AVP 0\r\n{}",
        "a=x-padding:0123456789012345678901234567890123456789\r\n".repeat(20)
    );
    let invite = request(
        "INVITE",
        &uri,
        &caller.hostport(),
        "UDP",
        "8000",
        &uri,
        "big-invite",
        1,
        &["Content-Type: application/sdp".into()],
        &sdp,
    );
    assert!(invite.len() > 1250, "{}", invite.len());
    caller.send(invite.as_bytes());
    let at_callee = callee.expect_request("INVITE", "the large INVITE over UDP");
    assert!(at_callee.raw.len() > 1300);
    assert!(
        at_callee.vias()[0].starts_with("SIP/2.0/UDP"),
        "{}",
        at_callee.vias()[0]
    );
    let metrics = dialtone_e2e::http_get(proxy.http, "/metrics").unwrap_or_default();
    assert!(
        metrics.contains("dialtone_proxy_udp_fallbacks_total 1"),
        "the fallback is counted"
    );
}

#[test]
fn a_503_the_proxy_makes_itself_says_why() {
    let proxy = Proxy::start(PROXY, &["--memory-only"]);
    let mut callee = UdpPeer::bind("127.0.0.1", proxy.sip);
    // A contact over TCP where nothing listens: the connection is refused.
    let contact = format!("<sip:9000@{};transport=tcp>", callee.hostport());
    register_contact(&proxy, &mut callee, "9000", &contact, "w503-reg");
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let uri = format!("sip:9000@{}", proxy.sip);
    let options = udp_request(&caller, "OPTIONS", &uri, "8000", &uri, "w503", 1, &[]);
    let answer = final_to(&mut caller, &options);
    assert_eq!(answer.status(), Some(503), "{}", answer.summary());
    let warning = answer.header("warning").unwrap_or_default();
    assert!(
        warning.starts_with("399 ") && warning.contains(&callee.hostport()),
        "{}",
        answer.text()
    );
}

#[test]
fn escaped_headers_in_a_contact_do_not_steer_the_proxy_and_a_contact_naming_it_is_a_loop() {
    let proxy = Proxy::start(PROXY, &["--memory-only", "--domain", "lab.example"]);
    let mut phone = UdpPeer::bind("127.0.0.3", proxy.sip);
    let mut elsewhere = UdpPeer::bind("127.0.0.4", proxy.sip);
    let escaped = format!(
        "sip:esc@{}?Route=%3Csip:{}%3Bl%3E",
        phone.hostport(),
        elsewhere.hostport()
    );
    for (user, contact) in [
        ("esc", escaped.clone()),
        (
            "loop",
            "sip:loop@lab.example?Route=%3Csip:lab.example%3E".into(),
        ),
    ] {
        let register = udp_request(
            &phone,
            "REGISTER",
            "sip:lab.example",
            user,
            &format!("sip:{user}@lab.example"),
            &format!("esc-reg-{user}"),
            1,
            &[format!("Contact: <{contact}>"), "Expires: 600".into()],
        );
        assert_eq!(final_to(&mut phone, &register).status(), Some(200));
    }
    let mut caller = UdpPeer::bind("127.0.0.1", proxy.sip);
    let options = udp_request(
        &caller,
        "OPTIONS",
        "sip:esc@lab.example",
        "a",
        "sip:esc@lab.example",
        "esc-1",
        1,
        &[],
    );
    caller.send(options.as_bytes());
    let at_phone = phone.expect_request("OPTIONS", "OPTIONS at the phone");
    assert_eq!(
        at_phone.request_uri(),
        Some(format!("sip:esc@{}", phone.hostport()))
    );
    assert!(at_phone.headers("route").is_empty(), "{}", at_phone.text());
    elsewhere.expect_nothing("the host named in the escaped Route");
    // A contact that names our own domain would bring the request back to us.
    let options = udp_request(
        &caller,
        "OPTIONS",
        "sip:loop@lab.example",
        "a",
        "sip:loop@lab.example",
        "esc-2",
        1,
        &[],
    );
    let answer = loop {
        let m = final_to(&mut caller, &options);
        if m.header("call-id").as_deref() == Some("esc-2") {
            break m;
        }
    };
    assert_eq!(answer.status(), Some(482), "{}", answer.summary());
    phone.expect_nothing("the registering phone");
}
