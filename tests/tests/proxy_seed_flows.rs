//! The seed's four call flows (figures D-1 to D-4 of the Cisco ATA 186/188 document) through
//! the real proxy over UDP on loopback. Two UDP sockets play ATA A (127.0.0.2) and ATA B
//! (127.0.0.3) and send the seed's own messages from `tests/data/seed-flows/`: no Via branch,
//! `user=phone` URIs, strict-routed ACK and BYE (the proxy's URI as Request-URI, the remote
//! target in Route), rewritten only for addresses.
//!
//! Rewriting: the seed IPs become the loopback `ip:port`s. The seed's Vias have no port, so a
//! response would go to 5060 (RFC 3261 section 18.2.2); the tests add the port to the sent-by
//! rather than adding `;rport`, because an RFC 2543-era ATA knows nothing of rport (RFC 3581)
//! and the sent-by port is what such a client really relies on. With sent-by = source address,
//! the proxy adds no `received`, so the Via B sees is A's Via byte for byte.
//!
//! Where the figures show a 100 Trying to REGISTER or BYE, the proxy sends none: RFC 4320
//! section 4.1 forbids a 100 to a non-INVITE request over UDP before Timer E reaches T2, and
//! the proxy answers at once. The tests assert that the final response is the first message.
//! For the same reason the challenged INVITE of D-4 gets its 407 without the figure's 100
//! before it: RFC 3261 section 17.2.1 asks for a 100 only when the final may take longer than
//! 200 ms, and the challenge is written at once (Kamailio's `proxy_challenge` sends none
//! either). An INVITE the proxy forwards still gets its 100 at once (D-3, D-4 message 6).
//!
//! Proxy-Authorization (D-4): RFC 3261 section 22.3 lets a proxy remove the credentials of its
//! own realm and forbids removing any other realm's. The proxy removes none: B receives the
//! INVITE with A's Proxy-Authorization unchanged, as the seed's proxy did (D-4 message 7).

use std::net::SocketAddr;

use dialtone_e2e::proxy_api::registrations;
use dialtone_e2e::sip_client::{via_branch, Msg, UdpPeer};
use dialtone_e2e::sip_message::{digest_answer, nonce_of, respond_like, seed, set_header};
use dialtone_e2e::Proxy;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const AUTH: &[&str] = &[
    "--auth",
    "all",
    "--user",
    "8000:8000",
    "--user",
    "9000:9000",
    "--user",
    "9301:9301",
    "--realm",
    "CISCO",
];

/// The seed's addresses of one flow.
struct SeedHosts {
    proxy: &'static str,
    a: &'static str,
    b: &'static str,
}

const D3: SeedHosts = SeedHosts {
    proxy: "192.168.2.97",
    a: "192.168.3.175",
    b: "192.168.2.194",
};
const D4: SeedHosts = SeedHosts {
    proxy: "192.168.2.81",
    a: "192.168.3.175",
    b: "192.168.2.194",
};

fn hosts(
    seed: &SeedHosts,
    proxy: SocketAddr,
    a: SocketAddr,
    b: SocketAddr,
) -> Vec<(&'static str, SocketAddr)> {
    // D-4 message 11 names B as 192.168.3.194 (a transcription error of the document).
    vec![
        (seed.proxy, proxy),
        (seed.a, a),
        (seed.b, b),
        ("192.168.3.194", b),
    ]
}

/// Asserts that `m` carries exactly the Via values `expected`.
fn assert_vias(m: &Msg, expected: &[&str], what: &str) {
    assert_eq!(m.vias(), expected, "{what}: Via stack of {}", m.summary());
}

/// Asserts that the top Via is the proxy's (its address, a z9hG4bK branch) above `below`.
fn assert_proxy_via_on_top(m: &Msg, proxy: SocketAddr, below: &str, what: &str) -> String {
    let vias = m.vias();
    assert_eq!(vias.len(), 2, "{what}: two Vias expected in {}", m.text());
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/UDP {proxy};")),
        "{what}: top Via {:?} is not the proxy's ({proxy})",
        vias[0]
    );
    let branch = via_branch(&vias[0]).unwrap_or_default();
    assert!(
        branch.starts_with("z9hG4bK") && branch.len() > 7,
        "{what}: branch {branch:?} lacks the magic cookie"
    );
    assert_eq!(
        vias[1], below,
        "{what}: the caller's Via must follow unchanged"
    );
    branch
}

/// D-1 message 1 for `ata` and `user` (the seed's 9301 renamed), exactly as in the seed.
fn d1_register(proxy: &Proxy, ata: &UdpPeer, user: &str) -> String {
    seed(
        "D-1-register-noauth/01.sip",
        &[("192.168.2.97", proxy.sip), ("192.168.2.194", ata.addr())],
    )
    .replace("9301", user)
}

/// D-1 message 1 sent by `ata` for `user`, with the document's transcription error
/// (`User-Agent;` for `User-Agent:`) corrected, answered 200.
fn register_d1(proxy: &Proxy, ata: &mut UdpPeer, user: &str) -> Msg {
    let register = d1_register(proxy, ata, user).replace("User-Agent; ", "User-Agent: ");
    ata.send(register.as_bytes());
    // The figure's message 2 (100 Trying) is not sent: RFC 4320 section 4.1.
    let ok = ata.expect_status(200, "D-1 message 3: 200 OK to REGISTER");
    assert_vias(&ok, &[&format!("SIP/2.0/UDP {}", ata.addr())], "D-1 200");
    assert_eq!(ok.cseq(), (1, "REGISTER".to_string()));
    ok
}

/// The D-2 exchange for `user` (password = user name): REGISTER, 407, REGISTER with
/// credentials computed from the proxy's nonce, 200.
fn register_d2(proxy: &Proxy, ata: &mut UdpPeer, user: &str) -> Msg {
    let hosts = [("192.168.2.81", proxy.sip), ("192.168.2.194", ata.addr())];
    let first = seed("D-2-register-auth/01.sip", &hosts).replace("9301", user);
    ata.send(first.as_bytes());
    let challenge = ata.expect_status(407, "D-2 message 3: 407 to REGISTER");
    assert_vias(
        &challenge,
        &[&format!("SIP/2.0/UDP {}", ata.addr())],
        "D-2 407",
    );
    assert_eq!(challenge.cseq(), (1, "REGISTER".to_string()));
    let value = challenge
        .header("proxy-authenticate")
        .expect("407 carries Proxy-Authenticate");
    assert!(value.contains("realm=\"CISCO\""), "{value}");
    assert!(!nonce_of(&challenge).is_empty(), "{value}");

    let second = seed("D-2-register-auth/04.sip", &hosts).replace("9301", user);
    // The seed's digest uri, rewritten like the rest of the message.
    let uri = format!("sip:{}", proxy.sip);
    assert!(second.contains(&format!("uri=\"{uri}\"")), "{second}");
    let credentials = digest_answer(&challenge, user, user, "REGISTER", &uri);
    let second = set_header(&second, "Proxy-Authorization", &credentials);
    ata.send(second.as_bytes());
    let ok = ata.expect_status(200, "D-2 message 6: 200 OK to REGISTER with credentials");
    assert_vias(&ok, &[&format!("SIP/2.0/UDP {}", ata.addr())], "D-2 200");
    assert_eq!(ok.cseq(), (2, "REGISTER".to_string()));
    ok
}

fn binding_of(proxy: &Proxy, aor: &str) -> Option<serde_json::Value> {
    registrations(proxy.http)
        .as_array()?
        .iter()
        .find(|b| b["aor"] == aor)
        .cloned()
}

#[test]
fn d1_register_without_auth_gets_200_and_a_binding() {
    let proxy = Proxy::start(PROXY, &[]);
    let mut ata = UdpPeer::bind("127.0.0.3", proxy.sip);
    // The seed's message as it stands has a header line without a colon (`User-Agent; ...`):
    // the proxy refuses it with a 400 whose reason names the fault, as the seed README asks,
    // stores nothing, and keeps serving.
    ata.send(d1_register(&proxy, &ata, "9301").as_bytes());
    let refused = ata.expect_status(400, "D-1 message 1 as transcribed");
    assert!(
        refused.first_line().to_ascii_lowercase().contains("header"),
        "the reason names the fault: {}",
        refused.first_line()
    );
    assert_vias(&refused, &[&format!("SIP/2.0/UDP {}", ata.addr())], "400");
    assert!(binding_of(&proxy, "9301").is_none());
    let ok = register_d1(&proxy, &mut ata, "9301");
    let contact = ok.header("contact").expect("200 lists the binding");
    let expected = format!("sip:9301@{};user=phone;transport=udp", ata.addr());
    assert!(contact.contains(&expected), "{contact}");
    assert!(contact.contains("expires=3600"), "{contact}");
    let binding = binding_of(&proxy, "9301").expect("binding for 9301");
    assert_eq!(binding["contact"], expected.as_str());
    ata.expect_nothing("after the 200 to REGISTER");
}

#[test]
fn d2_register_is_challenged_with_407_and_accepted_with_the_digest() {
    let proxy = Proxy::start(PROXY, AUTH);
    let mut ata = UdpPeer::bind("127.0.0.3", proxy.sip);
    assert!(binding_of(&proxy, "9301").is_none());
    let ok = register_d2(&proxy, &mut ata, "9301");
    let contact = ok.header("contact").expect("200 lists the binding");
    assert!(
        contact.contains(&format!("sip:9301@{}", ata.addr())),
        "{contact}"
    );
    assert!(binding_of(&proxy, "9301").is_some());
    ata.expect_nothing("after the 200 to REGISTER");
}

/// Message numbers of one call in a seed folder (D-3, or D-4 after the challenge).
struct CallSteps {
    dir: &'static str,
    invite: u8,
    b_trying: u8,
    b_ringing: u8,
    b_ok: u8,
    ack: u8,
    bye: u8,
    b_bye_ok: u8,
    b_tag: &'static str,
    invite_cseq: u32,
    bye_cseq: u32,
}

fn file(dir: &str, n: u8) -> String {
    format!("{dir}/{n:02}.sip")
}

/// The call from `invite` on: INVITE, 100, INVITE at B, B's 100 (absorbed), 180, 200,
/// strict-routed ACK, strict-routed BYE, 200. `invite_text` is the INVITE as A sends it.
fn call(
    proxy: &Proxy,
    a: &mut UdpPeer,
    b: &mut UdpPeer,
    steps: &CallSteps,
    hosts: &[(&str, SocketAddr)],
    invite_text: &str,
    check_invite_at_b: &dyn Fn(&Msg),
) {
    let a_via = format!("SIP/2.0/UDP {}", a.addr());
    let b_contact = format!("sip:9000@{};user=phone;transport=udp", b.addr());
    let what = |n: u8| format!("{} message {n}", steps.dir);

    a.send(invite_text.as_bytes());
    let trying = a.expect_status(100, &what(steps.invite + 1));
    assert_vias(&trying, &[&a_via], &what(steps.invite + 1));
    assert_eq!(trying.cseq(), (steps.invite_cseq, "INVITE".into()));
    assert_eq!(trying.tag("to"), None, "the proxy's 100 has no To tag");

    // B receives the INVITE: Request-URI = its registered contact, the proxy's Via on top of
    // A's, Record-Route with lr.
    let invite = b.expect_request("INVITE", &what(steps.invite + 2));
    assert_eq!(invite.request_uri().as_deref(), Some(b_contact.as_str()));
    let invite_branch = assert_proxy_via_on_top(&invite, proxy.sip, &a_via, "INVITE at B");
    let rr = invite
        .header("record-route")
        .expect("Record-Route on the INVITE");
    assert!(
        rr.contains(&proxy.sip.to_string()) && rr.contains(";lr"),
        "{rr}"
    );
    assert_eq!(invite.cseq(), (steps.invite_cseq, "INVITE".into()));
    assert_eq!(invite.tag("to"), None);
    assert_eq!(
        invite.body(),
        Msg {
            raw: invite_text.as_bytes().to_vec(),
            from: a.addr()
        }
        .body()
    );
    check_invite_at_b(&invite);

    // B: 100 (the proxy absorbs it), 180, 200 -- built from the INVITE like the seed's.
    let b_trying = respond_like(
        &seed(&file(steps.dir, steps.b_trying), hosts),
        &invite,
        Some(steps.b_tag),
    );
    b.send(b_trying.as_bytes());
    let ringing = respond_like(
        &seed(&file(steps.dir, steps.b_ringing), hosts),
        &invite,
        Some(steps.b_tag),
    );
    b.send(ringing.as_bytes());
    let ringing_at_a = a.expect_status(180, &what(steps.b_ringing + 1));
    assert_vias(&ringing_at_a, &[&a_via], "180 at A");
    assert_eq!(ringing_at_a.tag("to").as_deref(), Some(steps.b_tag));
    assert_eq!(ringing_at_a.header("record-route"), Some(rr.clone()));

    let ok = respond_like(
        &seed(&file(steps.dir, steps.b_ok), hosts),
        &invite,
        Some(steps.b_tag),
    );
    b.send(ok.as_bytes());
    let ok_at_a = a.expect_status(200, &what(steps.b_ok + 1));
    assert_vias(&ok_at_a, &[&a_via], "200 at A");
    assert_eq!(ok_at_a.tag("to").as_deref(), Some(steps.b_tag));
    assert_eq!(ok_at_a.header("record-route"), Some(rr.clone()));
    assert_eq!(ok_at_a.cseq(), (steps.invite_cseq, "INVITE".into()));
    assert!(ok_at_a
        .header("contact")
        .unwrap_or_default()
        .contains(&b_contact));
    let b_sdp = Msg {
        raw: ok.as_bytes().to_vec(),
        from: b.addr(),
    }
    .body();
    assert!(!b_sdp.is_empty());
    assert_eq!(ok_at_a.body(), b_sdp, "B's SDP reaches A unchanged");

    // The strict-routed ACK: the proxy's URI as Request-URI, B's contact in Route. B receives
    // it with its contact as Request-URI and no Route left (RFC 3261 section 16.4).
    let ack = seed(&file(steps.dir, steps.ack), hosts);
    assert!(ack.contains(&format!("Route: <{b_contact}>")), "{ack}");
    a.send(ack.as_bytes());
    let ack_at_b = b.expect_request("ACK", &what(steps.ack + 1));
    assert_eq!(ack_at_b.request_uri().as_deref(), Some(b_contact.as_str()));
    assert!(ack_at_b.headers("route").is_empty(), "{}", ack_at_b.text());
    assert_proxy_via_on_top(&ack_at_b, proxy.sip, &a_via, "ACK at B");
    assert_eq!(ack_at_b.cseq(), (steps.invite_cseq, "ACK".into()));
    assert_eq!(ack_at_b.tag("to").as_deref(), Some(steps.b_tag));

    // The strict-routed BYE, answered by B; the 200 reaches A (the figure's 100 is not sent).
    let bye = seed(&file(steps.dir, steps.bye), hosts);
    a.send(bye.as_bytes());
    let bye_at_b = b.expect_request("BYE", &what(steps.bye + 2));
    assert_eq!(bye_at_b.request_uri().as_deref(), Some(b_contact.as_str()));
    assert!(bye_at_b.headers("route").is_empty(), "{}", bye_at_b.text());
    let bye_branch = assert_proxy_via_on_top(&bye_at_b, proxy.sip, &a_via, "BYE at B");
    assert_ne!(bye_branch, invite_branch, "the BYE is a new transaction");
    assert_eq!(bye_at_b.cseq(), (steps.bye_cseq, "BYE".into()));
    let bye_ok = respond_like(
        &seed(&file(steps.dir, steps.b_bye_ok), hosts),
        &bye_at_b,
        None,
    );
    b.send(bye_ok.as_bytes());
    let bye_ok_at_a = a.expect_status(200, &what(steps.b_bye_ok + 1));
    assert_vias(&bye_ok_at_a, &[&a_via], "200 to BYE at A");
    assert_eq!(bye_ok_at_a.cseq(), (steps.bye_cseq, "BYE".into()));

    a.expect_nothing("A after the call");
    b.expect_nothing("B after the call");

    // The proxy saw the call begin with the 200 to the INVITE and end with the 200 to the BYE.
    let call_id = bye_at_b.header("call-id").expect("Call-ID");
    let calls: serde_json::Value = serde_json::from_str(
        &dialtone_e2e::http_get(proxy.http, "/api/calls").expect("/api/calls"),
    )
    .expect("calls JSON");
    assert_eq!(calls["active"].as_array().map(Vec::len), Some(0), "{calls}");
    assert!(
        calls["recent"]
            .as_array()
            .is_some_and(|r| r.iter().any(|c| c["call_id"] == call_id.as_str())),
        "{calls}"
    );
    let metrics = dialtone_e2e::http_get(proxy.http, "/metrics").expect("/metrics");
    assert!(
        metrics.contains("dialtone_proxy_calls_completed_total 1"),
        "calls completed not counted"
    );
    assert!(metrics.contains("dialtone_proxy_calls_active 0"));
}

#[test]
fn d3_call_without_auth_follows_figure_d3_with_strict_routed_ack_and_bye() {
    let proxy = Proxy::start(PROXY, &[]);
    let mut a = UdpPeer::bind("127.0.0.2", proxy.sip);
    let mut b = UdpPeer::bind("127.0.0.3", proxy.sip);
    // ATA B (192.168.2.194 in both D-1 and D-3) registers as 9000 with D-1's message.
    register_d1(&proxy, &mut b, "9000");
    let hosts = hosts(&D3, proxy.sip, a.addr(), b.addr());
    let invite = seed("D-3-call-noauth/01.sip", &hosts);
    let steps = CallSteps {
        dir: "D-3-call-noauth",
        invite: 1,
        b_trying: 4,
        b_ringing: 5,
        b_ok: 7,
        ack: 9,
        bye: 11,
        b_bye_ok: 14,
        b_tag: "909616993",
        invite_cseq: 1,
        bye_cseq: 2,
    };
    call(&proxy, &mut a, &mut b, &steps, &hosts, &invite, &|_| {});
}

#[test]
fn d4_call_with_auth_is_challenged_acked_and_retried_with_credentials() {
    let proxy = Proxy::start(PROXY, AUTH);
    let mut a = UdpPeer::bind("127.0.0.2", proxy.sip);
    let mut b = UdpPeer::bind("127.0.0.3", proxy.sip);
    register_d2(&proxy, &mut b, "9000");
    let hosts = hosts(&D4, proxy.sip, a.addr(), b.addr());
    let a_via = format!("SIP/2.0/UDP {}", a.addr());

    // Messages 1-4: INVITE, 407, ACK (absorbed by the proxy); the figure's message 2, a 100
    // before the challenge, is not sent (see the module's comment).
    a.send(seed("D-4-call-auth/01.sip", &hosts).as_bytes());
    let challenge = a.expect_status(407, "D-4 message 3, the first the proxy sends");
    assert_vias(&challenge, &[&a_via], "D-4 407");
    assert_eq!(challenge.cseq(), (1, "INVITE".into()));
    let proxy_tag = challenge.tag("to").expect("the 407 has a To tag");
    let value = challenge
        .header("proxy-authenticate")
        .expect("Proxy-Authenticate");
    assert!(value.contains("realm=\"CISCO\""), "{value}");
    let ack = seed("D-4-call-auth/04.sip", &hosts).replace("600eaf7-7c3a549a", &proxy_tag);
    a.send(ack.as_bytes());

    // Message 5: the INVITE again, CSeq 2, with credentials for the proxy's real nonce.
    let invite = seed("D-4-call-auth/05.sip", &hosts);
    let uri = format!("sip:9000@{}", proxy.sip);
    assert!(invite.contains(&format!("uri=\"{uri}\"")), "{invite}");
    let credentials = digest_answer(&challenge, "8000", "8000", "INVITE", &uri);
    let invite = set_header(&invite, "Proxy-Authorization", &credentials);
    let steps = CallSteps {
        dir: "D-4-call-auth",
        invite: 5,
        b_trying: 8,
        b_ringing: 9,
        b_ok: 11,
        ack: 13,
        bye: 15,
        b_bye_ok: 18,
        b_tag: "100585329",
        invite_cseq: 2,
        bye_cseq: 3,
    };
    // B's first message is the INVITE with CSeq 2 (checked in `call`): it never sees the
    // challenged INVITE nor the ACK of the 407. The credentials reach it unchanged.
    let check = |m: &Msg| {
        assert_eq!(
            m.headers("proxy-authorization"),
            vec![credentials.clone()],
            "the proxy forwards A's credentials unchanged (RFC 3261 section 22.3)"
        );
    };
    call(&proxy, &mut a, &mut b, &steps, &hosts, &invite, &check);
}
