//! Caller identity and privacy on the sans-IO core (RFC 3323, RFC 3325): an anonymous caller
//! authenticated as a known user, the identity the proxy asserts in place of the caller's,
//! and where Privacy lets it go.

use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{HeaderName, Message};

use crate::config::ProxyFlags;
use crate::proxy_core::tests::{core_with, sends, udp_from};
use crate::proxy_core::ProxyCore;

const CALLER: &str = "127.0.0.2:5062";
const CALLEE: &str = "192.0.2.50:5060";
const ANONYMOUS: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// `--auth all` for lab.example, users 8000 and 9000, 9000 registered at [`CALLEE`].
fn lab() -> ProxyCore {
    let core = core_with(ProxyFlags {
        domain: vec!["lab.example".into()],
        auth: Some("all".into()),
        user: vec!["8000:8000".into(), "9000:9000".into()],
        ..Default::default()
    });
    let register = "REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKr1\r\nMax-Forwards: 70\r\nFrom: <sip:9000@lab.example>;tag=r\r\nTo: <sip:9000@lab.example>\r\nCall-ID: id-reg\r\nCSeq: 1 REGISTER\r\nContact: <sip:9000@192.0.2.50:5060>\r\nContent-Length: 0\r\n\r\n";
    let origin = crate::registrar::Origin {
        source: CALLEE.parse().unwrap(),
        transport: dialtone_transaction::Transport::Udp,
    };
    let parsed = Message::parse(register.as_bytes()).unwrap();
    core.location
        .register(&parsed, "9000", SystemTime::now(), origin, &core.policy);
    core
}

/// An INVITE to `uri` from `from`, with `extra` header lines (each ending in CRLF).
fn invite(uri: &str, call_id: &str, cseq: u32, from: &str, extra: &str) -> String {
    format!("INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {CALLER};branch=z9hG4bK{call_id}{cseq}\r\nMax-Forwards: 70\r\nFrom: {from};tag=a\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\n{extra}Content-Length: 0\r\n\r\n")
}

/// What the core sends for `request`: (to the caller, elsewhere).
fn handle(core: &ProxyCore, request: String) -> (Vec<Bytes>, Vec<Bytes>) {
    let actions = core.handle_message(
        Instant::now(),
        SystemTime::now(),
        udp_from(CALLER),
        Bytes::from(request),
    );
    let (back, on): (Vec<_>, Vec<_>) = sends(&actions)
        .into_iter()
        .partition(|(to, _)| to.addr == CALLER.parse().unwrap());
    (
        back.into_iter().map(|(_, b)| b).collect(),
        on.into_iter().map(|(_, b)| b).collect(),
    )
}

/// The status of the last response to the caller among `replies`.
fn final_status(replies: &[Bytes]) -> Option<u16> {
    replies
        .iter()
        .filter_map(|b| Message::parse(b).ok()?.status())
        .rfind(|s| *s >= 200)
}

/// Sends `request(None)`, answers its 407 as `user` and sends `request(Some(credentials
/// line))`; returns what went elsewhere (the forwarded INVITE) and the caller's final.
fn signed(
    core: &ProxyCore,
    uri: &str,
    user: &str,
    request: impl Fn(&str) -> String,
) -> (Vec<Bytes>, Option<u16>) {
    let (replies, _) = handle(core, request(""));
    let challenge = replies
        .iter()
        .find_map(|b| {
            let m = Message::parse(b).ok()?;
            (m.status() == Some(407)).then(|| {
                m.header_value(HeaderName::ProxyAuthenticate)
                    .map(str::to_string)
            })?
        })
        .expect("a 407");
    let challenge = dialtone_digest::Challenge::parse(&challenge).unwrap();
    let credentials = dialtone_digest::answer(
        &challenge,
        &dialtone_digest::AnswerParams {
            username: user,
            password: user,
            method: "INVITE",
            uri,
            cnonce: "c",
            nc: 1,
        },
    )
    .unwrap();
    let (replies, forwarded) = handle(
        core,
        request(&format!("Proxy-Authorization: {credentials}\r\n")),
    );
    (forwarded, final_status(&replies))
}

/// Every P-Asserted-Identity value of the INVITE among `sent`.
fn asserted(sent: &[Bytes]) -> Vec<String> {
    let invite = sent
        .iter()
        .find(|b| b.starts_with(b"INVITE"))
        .expect("an INVITE went on");
    let message = Message::parse(invite).unwrap();
    message
        .headers()
        .iter()
        .filter(|h| h.raw_name.eq_ignore_ascii_case("P-Asserted-Identity"))
        .map(|h| h.value.to_string())
        .collect()
}

#[test]
fn an_anonymous_caller_with_a_known_users_credentials_is_forwarded_asserted_as_that_user() {
    let core = lab();
    let uri = "sip:9000@lab.example";
    let (forwarded, status) = signed(&core, uri, "8000", |credentials| {
        invite(
            uri,
            "anon1",
            1 + !credentials.is_empty() as u32,
            ANONYMOUS,
            credentials,
        )
    });
    assert_eq!(status, None, "not refused");
    assert_eq!(asserted(&forwarded), ["<sip:8000@lab.example>"]);
    // The From stays anonymous: only the trust domain learns who called.
    let invite = Message::parse(&forwarded[0]).unwrap();
    assert!(invite
        .header_value(HeaderName::From)
        .unwrap()
        .contains("anonymous.invalid"));
}

#[test]
fn an_anonymous_caller_without_credentials_is_challenged() {
    let core = lab();
    let (replies, forwarded) = handle(
        &core,
        invite("sip:9000@lab.example", "anon2", 1, ANONYMOUS, ""),
    );
    assert_eq!(final_status(&replies), Some(407));
    assert!(forwarded.is_empty());
}

#[test]
fn a_named_caller_still_cannot_sign_with_another_users_credentials() {
    let core = lab();
    let uri = "sip:9000@lab.example";
    let (forwarded, status) = signed(&core, uri, "9000", |credentials| {
        let from = "<sip:8000@lab.example>";
        invite(
            uri,
            "spoof",
            1 + !credentials.is_empty() as u32,
            from,
            credentials,
        )
    });
    assert_eq!(status, Some(403));
    assert!(forwarded.is_empty());
}

#[test]
fn an_identity_the_caller_asserts_itself_is_replaced_by_the_proxys() {
    let core = lab();
    let uri = "sip:9000@lab.example";
    let spoofed = "P-Asserted-Identity: \"Boss\" <sip:1000@lab.example>\r\nP-Preferred-Identity: <sip:1000@lab.example>\r\n";
    let (forwarded, status) = signed(&core, uri, "8000", |credentials| {
        let from = "\"Alice\" <sip:8000@lab.example>";
        let extra = format!("{spoofed}{credentials}");
        invite(uri, "pai", 1 + !credentials.is_empty() as u32, from, &extra)
    });
    assert_eq!(status, None);
    assert_eq!(asserted(&forwarded), ["\"Alice\" <sip:8000@lab.example>"]);
    let invite = Message::parse(&forwarded[0]).unwrap();
    assert!(invite
        .header_value_by_name("P-Preferred-Identity")
        .is_none());
}

#[test]
fn privacy_id_keeps_the_asserted_identity_towards_a_binding_and_strips_it_towards_a_foreign_host() {
    let core = lab();
    let privacy = |credentials: &str| format!("Privacy: id\r\n{credentials}");
    let to_binding = "sip:9000@lab.example";
    let (forwarded, _) = signed(&core, to_binding, "8000", |credentials| {
        let n = 1 + !credentials.is_empty() as u32;
        invite(to_binding, "priv1", n, ANONYMOUS, &privacy(credentials))
    });
    assert_eq!(asserted(&forwarded), ["<sip:8000@lab.example>"]);

    let foreign = "sip:bob@192.0.2.7";
    let (forwarded, _) = signed(&core, foreign, "8000", |credentials| {
        let n = 1 + !credentials.is_empty() as u32;
        invite(foreign, "priv2", n, ANONYMOUS, &privacy(credentials))
    });
    assert!(
        asserted(&forwarded).is_empty(),
        "stripped towards 192.0.2.7"
    );

    // Without Privacy, the foreign host gets it too (RFC 3325 leaves that to the trust
    // domain's policy; ours asserts who called).
    let (forwarded, _) = signed(&core, foreign, "8000", |credentials| {
        let n = 1 + !credentials.is_empty() as u32;
        invite(foreign, "priv3", n, ANONYMOUS, credentials)
    });
    assert_eq!(asserted(&forwarded), ["<sip:8000@lab.example>"]);
}
