//! The seed document's call flows (tests/data/seed-flows, figures D-1 to D-4): every one of the 43
//! messages parsed and checked against what the document says it carries, re-serialised through
//! the `Editor` and parsed again to the same values, and each transcription flaw the README lists
//! either tolerated (where RFC 3261 allows it) or reported as a typed error, never a panic.
//!
//! The expectations are one table row per file, so a reader can hold a row against the file.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_sip::headers::parse_contact_expires;
use dialtone_sip::{
    ContactExpires, Contacts, HeaderName, Message, Method, NameAddr, ParseError, Uri,
};

/// What the start line says.
#[derive(Clone, Copy)]
enum Start {
    Request(Method<'static>, &'static str),
    Response(u16),
}

/// One expected Via value: sent-by host and port, and the branch.
#[derive(Clone, Copy)]
struct V {
    host: &'static str,
    port: Option<u16>,
    branch: Option<&'static str>,
}

/// The ATA's Via: RFC 2543 style, no port, no branch.
const ATA: V = V {
    host: "192.168.3.175",
    port: None,
    branch: None,
};
const ATA_REGISTER: V = V {
    host: "192.168.2.194",
    ..ATA
};

/// The seed proxy's Via, with its RFC 2543 style branch (no magic cookie).
const fn proxy(host: &'static str, branch: &'static str) -> V {
    V {
        host,
        port: Some(5060),
        branch: Some(branch),
    }
}

/// A header the document mangled: the typed accessor must return an error naming it.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Field<T> {
    Is(T),
    Malformed,
}
use Field::{Is, Malformed};

/// A Contact's `expires` parameter.
#[derive(Clone, Copy)]
enum Exp {
    Seconds(u32),
    /// The RFC 2543 date as written, and the same instant in seconds since 1970.
    Date(&'static str, u64),
}

#[derive(Clone, Copy)]
struct Contact {
    uri: &'static str,
    expires: Option<Exp>,
}

/// Everything that matters about one seed message.
#[derive(Clone, Copy)]
struct Row {
    file: &'static str,
    /// A transcription error to undo before the values are checked (the flaw itself has its own
    /// test below).
    repair: Option<(&'static str, &'static str)>,
    start: Start,
    vias: &'static [V],
    from_tag: Option<&'static str>,
    to_tag: Field<Option<&'static str>>,
    call_id: &'static str,
    cseq: (u32, Method<'static>),
    record_routes: Field<&'static [&'static str]>,
    routes: &'static [&'static str],
    contact: Option<Contact>,
    expires: Option<u32>,
    /// Payload numbers of the SDP's `m=audio` line, `None` when there is no body.
    sdp: Option<&'static [u8]>,
}

const ATA_CONTACT_REGISTER: Option<Contact> = Some(Contact {
    uri: "sip:9301@192.168.2.194;user=phone;transport=udp",
    expires: Some(Exp::Seconds(3600)),
});
const ATA_A_CONTACT: Option<Contact> = Some(Contact {
    uri: "sip:8000@192.168.3.175;user=phone;transport=udp",
    expires: None,
});
const ATA_B_CONTACT: Option<Contact> = Some(Contact {
    uri: "sip:9000@192.168.2.194;user=phone;transport=udp",
    expires: None,
});
const OFFER: Option<&[u8]> = Some(&[0, 18, 8, 101]);
const ANSWER: Option<&[u8]> = Some(&[0, 101]);

const D1: Row = Row {
    file: "",
    repair: None,
    start: Start::Response(100),
    vias: &[ATA_REGISTER],
    from_tag: None,
    to_tag: Is(None),
    call_id: "88397253@192.168.2.194",
    cseq: (1, Method::Register),
    record_routes: Is(&[]),
    routes: &[],
    contact: None,
    expires: None,
    sdp: None,
};
const D2: Row = Row {
    call_id: "311316842@192.168.2.194",
    ..D1
};
const D3: Row = Row {
    vias: &[ATA],
    from_tag: Some("2819471139"),
    call_id: "488337201@192.168.3.175",
    cseq: (1, Method::Invite),
    ..D1
};
const D4: Row = Row {
    from_tag: Some("3515135869"),
    call_id: "557188650@192.168.3.175",
    ..D3
};

const D3_RR: Field<&[&str]> = Is(&["sip:9000@192.168.2.97:5060;user=phone;maddr=192.168.2.97"]);
const D4_RR: Field<&[&str]> = Is(&["sip:9000@192.168.2.81:5060;user=phone;maddr=192.168.2.81"]);
const D3_INVITE_VIAS: &[V] = &[
    proxy("192.168.2.97", "140fed6e-f61cbd1a-52f223b1-9beb149a-1"),
    ATA,
];
const D3_BYE_VIAS: &[V] = &[
    proxy("192.168.2.97", "b499b4be-d7995db7-980cd8af-e5ba35f5-1"),
    ATA,
];
const D4_INVITE_VIAS: &[V] = &[
    proxy("192.168.2.81", "c0b3510a-819f9d1a-ea43c345-9604747f-1"),
    ATA,
];
const D4_BYE_VIAS: &[V] = &[
    proxy("192.168.2.81", "424f3898-9ef87cec-82179ac3-50eeb1d3-1"),
    ATA,
];
const B_ROUTE: &[&str] = &["sip:9000@192.168.2.194:5060;user=phone;transport=udp"];

const REGISTER_D1: Start = Start::Request(Method::Register, "sip:192.168.2.97");
const REGISTER_D2: Start = Start::Request(Method::Register, "sip:192.168.2.81");

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // D-1: REGISTER without authentication.
    Row { file: "D-1-register-noauth/01.sip", repair: Some(("User-Agent;", "User-Agent:")), start: REGISTER_D1, contact: ATA_CONTACT_REGISTER, ..D1 },
    Row { file: "D-1-register-noauth/02.sip", ..D1 },
    Row { file: "D-1-register-noauth/03.sip", start: Start::Response(200), expires: Some(3600),
          contact: Some(Contact { expires: Some(Exp::Date("Tue, 23 Oct 2001 14:24:57 GMT", 1_003_847_097)), ..ATA_CONTACT_REGISTER.unwrap() }), ..D1 },
    // D-2: REGISTER challenged with 407, then sent again with credentials.
    Row { file: "D-2-register-auth/01.sip", start: REGISTER_D2, contact: ATA_CONTACT_REGISTER, ..D2 },
    Row { file: "D-2-register-auth/02.sip", ..D2 },
    Row { file: "D-2-register-auth/03.sip", start: Start::Response(407), ..D2 },
    Row { file: "D-2-register-auth/04.sip", start: REGISTER_D2, cseq: (2, Method::Register), contact: ATA_CONTACT_REGISTER, ..D2 },
    Row { file: "D-2-register-auth/05.sip", cseq: (2, Method::Register), ..D2 },
    Row { file: "D-2-register-auth/06.sip", start: Start::Response(200), cseq: (2, Method::Register), expires: Some(3600),
          contact: Some(Contact { expires: Some(Exp::Date("tue, 23 Oct 2001 22:37:56 GMT", 1_003_876_676)), ..ATA_CONTACT_REGISTER.unwrap() }), ..D2 },
    // D-3: a call through the proxy without authentication.
    Row { file: "D-3-call-noauth/01.sip", start: Start::Request(Method::Invite, "sip:9000@192.168.2.97;user=phone"), contact: ATA_A_CONTACT, expires: Some(300), sdp: OFFER, ..D3 },
    Row { file: "D-3-call-noauth/02.sip", ..D3 },
    Row { file: "D-3-call-noauth/03.sip", start: Start::Request(Method::Invite, "sip:9000@192.168.2.194;user=phone"), vias: D3_INVITE_VIAS, record_routes: D3_RR, contact: ATA_A_CONTACT, expires: Some(300), sdp: OFFER, ..D3 },
    Row { file: "D-3-call-noauth/04.sip", vias: D3_INVITE_VIAS, record_routes: D3_RR, to_tag: Is(Some("909616993")), ..D3 },
    Row { file: "D-3-call-noauth/05.sip", start: Start::Response(180), vias: D3_INVITE_VIAS, record_routes: D3_RR, to_tag: Is(Some("909616993")), ..D3 },
    Row { file: "D-3-call-noauth/06.sip", start: Start::Response(180), record_routes: D3_RR, to_tag: Is(Some("909616993")), ..D3 },
    Row { file: "D-3-call-noauth/07.sip", start: Start::Response(200), vias: D3_INVITE_VIAS, record_routes: D3_RR, to_tag: Is(Some("909616993")), contact: ATA_B_CONTACT, sdp: ANSWER, ..D3 },
    // The To tag stands inside the brackets here: a URI parameter, so the To has no tag.
    Row { file: "D-3-call-noauth/08.sip", start: Start::Response(200), record_routes: D3_RR, to_tag: Is(None), contact: ATA_B_CONTACT, sdp: ANSWER, ..D3 },
    Row { file: "D-3-call-noauth/09.sip", start: Start::Request(Method::Ack, "sip:9000@192.168.2.97;user=phone"), routes: B_ROUTE, to_tag: Is(Some("909616993")), cseq: (1, Method::Ack), ..D3 },
    Row { file: "D-3-call-noauth/10.sip", start: Start::Request(Method::Ack, "sip:9000@192.168.2.194;user=phone"), to_tag: Is(Some("909616993")), cseq: (1, Method::Ack),
          vias: &[proxy("192.168.2.97", "140fed6e-f61cbd1a-52f223b1-9beb149a-"), ATA], ..D3 },
    Row { file: "D-3-call-noauth/11.sip", start: Start::Request(Method::Bye, "sip:9000@192.168.2.97;user=phone"), routes: B_ROUTE, to_tag: Is(Some("909616993")), cseq: (2, Method::Bye), ..D3 },
    Row { file: "D-3-call-noauth/12.sip", to_tag: Is(Some("909616993")), cseq: (2, Method::Bye), ..D3 },
    Row { file: "D-3-call-noauth/13.sip", start: Start::Request(Method::Bye, "sip:9000@192.168.2.194;user=phone"), vias: D3_BYE_VIAS, to_tag: Is(Some("909616993")), cseq: (2, Method::Bye), ..D3 },
    Row { file: "D-3-call-noauth/14.sip", start: Start::Response(200), vias: D3_BYE_VIAS, to_tag: Is(Some("909616993")), cseq: (2, Method::Bye), ..D3 },
    Row { file: "D-3-call-noauth/15.sip", start: Start::Response(200), to_tag: Is(Some("909616993")), cseq: (2, Method::Bye), ..D3 },
    // D-4: the same call, first challenged with 407, then sent again with credentials.
    Row { file: "D-4-call-auth/01.sip", start: Start::Request(Method::Invite, "sip:9000@192.168.2.81;user=phone"), contact: ATA_A_CONTACT, expires: Some(300), sdp: OFFER, ..D4 },
    Row { file: "D-4-call-auth/02.sip", ..D4 },
    Row { file: "D-4-call-auth/03.sip", start: Start::Response(407), to_tag: Is(Some("600eaf7-7c3a549a")), ..D4 },
    Row { file: "D-4-call-auth/04.sip", start: Start::Request(Method::Ack, "sip:9000@192.168.2.81:5060"), to_tag: Is(Some("600eaf7-7c3a549a")), cseq: (1, Method::Ack), ..D4 },
    Row { file: "D-4-call-auth/05.sip", start: Start::Request(Method::Invite, "sip:9000@192.168.2.81;user=phone"), cseq: (2, Method::Invite), contact: ATA_A_CONTACT, expires: Some(300), sdp: OFFER, ..D4 },
    Row { file: "D-4-call-auth/06.sip", cseq: (2, Method::Invite), ..D4 },
    // Record-Route lacks its closing '>'.
    Row { file: "D-4-call-auth/07.sip", start: Start::Request(Method::Invite, "sip:9000@192.168.2.194;user=phone"), vias: D4_INVITE_VIAS, record_routes: Malformed, cseq: (2, Method::Invite), contact: ATA_A_CONTACT, expires: Some(300), sdp: OFFER, ..D4 },
    Row { file: "D-4-call-auth/08.sip", vias: D4_INVITE_VIAS, record_routes: D4_RR, to_tag: Is(Some("100585329")), cseq: (2, Method::Invite), ..D4 },
    Row { file: "D-4-call-auth/09.sip", start: Start::Response(180), vias: D4_INVITE_VIAS, record_routes: D4_RR, to_tag: Is(Some("100585329")), cseq: (2, Method::Invite), ..D4 },
    Row { file: "D-4-call-auth/10.sip", start: Start::Response(180), record_routes: D4_RR, to_tag: Is(Some("100585329")), cseq: (2, Method::Invite), ..D4 },
    Row { file: "D-4-call-auth/11.sip", start: Start::Response(200), vias: D4_INVITE_VIAS, record_routes: D4_RR, to_tag: Is(Some("100585329")), cseq: (2, Method::Invite), sdp: ANSWER,
          contact: Some(Contact { uri: "sip:9000@192.168.3.194;user=phone;transport=udp", expires: None }), ..D4 },
    // Record-Route and To both lack their closing '>'.
    Row { file: "D-4-call-auth/12.sip", start: Start::Response(200), record_routes: Malformed, to_tag: Malformed, cseq: (2, Method::Invite), contact: ATA_B_CONTACT, sdp: ANSWER, ..D4 },
    Row { file: "D-4-call-auth/13.sip", start: Start::Request(Method::Ack, "sip:9000@192.168.2.81;user=phone"), routes: B_ROUTE, to_tag: Is(Some("100585329")), cseq: (2, Method::Ack), ..D4 },
    Row { file: "D-4-call-auth/14.sip", start: Start::Request(Method::Ack, "sip:9000@192.168.2.194;user=phone"), vias: D4_INVITE_VIAS, to_tag: Is(Some("100585329")), cseq: (2, Method::Ack), ..D4 },
    Row { file: "D-4-call-auth/15.sip", start: Start::Request(Method::Bye, "sip:9000@192.168.2.81;user=phone"), routes: B_ROUTE, to_tag: Is(Some("100585329")), cseq: (3, Method::Bye), ..D4 },
    // The Via host reads 19.168.3.175: a different host, still a well-formed one.
    Row { file: "D-4-call-auth/16.sip", vias: &[V { host: "19.168.3.175", ..ATA }], to_tag: Is(Some("100585329")), cseq: (3, Method::Bye), ..D4 },
    Row { file: "D-4-call-auth/17.sip", start: Start::Request(Method::Bye, "sip:9000@192.168.2.194;user=phone"), vias: D4_BYE_VIAS, to_tag: Is(Some("100585329")), cseq: (3, Method::Bye), ..D4 },
    Row { file: "D-4-call-auth/18.sip", start: Start::Response(200), vias: D4_BYE_VIAS, to_tag: Is(Some("100585329")), cseq: (3, Method::Bye), ..D4 },
    Row { file: "D-4-call-auth/19.sip", start: Start::Response(200), to_tag: Is(Some("100585329")), cseq: (3, Method::Bye), ..D4 },
];

fn seed_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/seed-flows")
        .join(file)
}

fn read_seed(file: &str) -> Vec<u8> {
    std::fs::read(seed_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The file's bytes with the row's repair applied.
fn row_bytes(row: &Row) -> Vec<u8> {
    let raw = read_seed(row.file);
    match row.repair {
        None => raw,
        Some((from, to)) => {
            let text = String::from_utf8(raw).expect("seed files are UTF-8");
            assert!(text.contains(from), "{}: repair target missing", row.file);
            text.replacen(from, to, 1).into_bytes()
        }
    }
}

/// Payload numbers on the body's `m=audio` line.
fn audio_payloads(body: &str) -> Vec<u8> {
    let line = body
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("an m=audio line");
    // m=audio <port> RTP/AVP <fmt> ...
    line.split(' ')
        .skip(3)
        .map(|p| p.parse().expect("numeric payload type"))
        .collect()
}

/// Asserts every value of `row` on a parsed message. `what` says which copy is being checked.
fn assert_row(row: &Row, m: &Message<'_>, what: &str) {
    let ctx = format!("{} ({what})", row.file);
    match row.start {
        Start::Request(method, uri) => {
            assert_eq!(m.method(), Some(method), "{ctx}: method");
            assert_eq!(m.request_uri().map(|u| u.as_str()), Some(uri), "{ctx}");
            assert!(matches!(m.request_uri(), Some(Uri::Sip(_))), "{ctx}");
        }
        Start::Response(code) => assert_eq!(m.status(), Some(code), "{ctx}: status"),
    }

    let vias: Vec<_> = m.vias().map(|v| v.expect("Via parses")).collect();
    assert_eq!(vias.len(), row.vias.len(), "{ctx}: Via count");
    for (got, want) in vias.iter().zip(row.vias) {
        assert_eq!(got.host, want.host, "{ctx}: Via host");
        assert_eq!(got.port, want.port, "{ctx}: Via port");
        assert_eq!(got.branch(), want.branch, "{ctx}: Via branch");
        assert_eq!(got.transport, "UDP", "{ctx}");
        // Neither the ATA nor the seed proxy speaks RFC 3261 branches.
        assert!(!got.has_rfc3261_branch(), "{ctx}");
    }

    assert_eq!(m.from().expect("From parses").tag(), row.from_tag, "{ctx}");
    match row.to_tag {
        Is(tag) => assert_eq!(m.to().expect("To parses").tag(), tag, "{ctx}: To tag"),
        Malformed => assert!(
            matches!(m.to(), Err(ParseError::BadHeader { name: "To", .. })),
            "{ctx}: {:?}",
            m.to()
        ),
    }
    assert_eq!(m.call_id(), Ok(row.call_id), "{ctx}");
    let cseq = m.cseq().expect("CSeq parses");
    assert_eq!((cseq.seq, cseq.method), row.cseq, "{ctx}: CSeq");

    match row.record_routes {
        Is(uris) => {
            let got: Vec<_> = m
                .record_routes()
                .expect("Record-Route parses")
                .iter()
                .map(|r| r.uri.as_str())
                .collect();
            assert_eq!(got, uris, "{ctx}: Record-Route");
        }
        Malformed => assert!(
            matches!(
                m.record_routes(),
                Err(ParseError::BadHeader {
                    name: "Record-Route",
                    ..
                })
            ),
            "{ctx}"
        ),
    }
    let routes: Vec<_> = m
        .routes()
        .expect("Route parses")
        .iter()
        .map(|r| r.uri.as_str())
        .collect();
    assert_eq!(routes, row.routes, "{ctx}: Route");

    let Contacts::List(contacts) = m.contacts().expect("Contact parses") else {
        panic!("{ctx}: unexpected Contact: *");
    };
    match row.contact {
        None => assert!(contacts.is_empty(), "{ctx}: no Contact expected"),
        Some(want) => {
            assert_eq!(contacts.len(), 1, "{ctx}");
            assert_eq!(contacts[0].uri.as_str(), want.uri, "{ctx}: Contact URI");
            let expires = contacts[0]
                .params
                .get("expires")
                .map(|v| v.expect("a value"));
            match want.expires {
                None => assert_eq!(expires, None, "{ctx}"),
                Some(Exp::Seconds(s)) => {
                    assert_eq!(expires, Some(s.to_string().as_str()), "{ctx}");
                    assert_eq!(
                        parse_contact_expires(expires.unwrap_or_default()),
                        Ok(ContactExpires::Seconds(s)),
                        "{ctx}"
                    );
                }
                Some(Exp::Date(text, epoch)) => {
                    assert_eq!(expires, Some(format!("\"{text}\"").as_str()), "{ctx}");
                    let at = UNIX_EPOCH + Duration::from_secs(epoch);
                    assert_eq!(
                        parse_contact_expires(expires.unwrap_or_default()),
                        Ok(ContactExpires::Date(at)),
                        "{ctx}"
                    );
                }
            }
        }
    }
    assert_eq!(m.expires(), Ok(row.expires), "{ctx}: Expires");

    // Content-Length matches the body exactly, and nothing follows it.
    assert_eq!(m.content_length(), Some(m.body().len()), "{ctx}");
    match row.sdp {
        None => {
            assert!(m.body().is_empty(), "{ctx}: no body expected");
            assert_eq!(m.content_type(), None, "{ctx}");
        }
        Some(payloads) => {
            assert_eq!(m.content_type(), Some("application/sdp"), "{ctx}");
            let body = std::str::from_utf8(m.body()).expect("SDP is text");
            assert!(body.starts_with("v=0\r\n"), "{ctx}");
            assert_eq!(audio_payloads(body), payloads, "{ctx}: m= payloads");
            for pt in payloads {
                assert!(
                    body.contains(&format!("a=rtpmap:{pt} ")),
                    "{ctx}: rtpmap for {pt}"
                );
            }
        }
    }

    // The checks a server runs before acting: every message passes but the one whose To is cut.
    let check = if m.is_request() {
        m.check_request()
    } else {
        m.check_response()
    };
    match row.to_tag {
        Is(_) => assert_eq!(check, Ok(()), "{ctx}"),
        Malformed => assert!(check.is_err(), "{ctx}"),
    }
}

#[test]
fn the_table_covers_all_43_seed_messages() {
    let mut on_disk = 0;
    for figure in [
        "D-1-register-noauth",
        "D-2-register-auth",
        "D-3-call-noauth",
        "D-4-call-auth",
    ] {
        for entry in std::fs::read_dir(seed_path(figure)).expect("seed folder") {
            let name = entry.expect("entry").file_name();
            let file = format!("{figure}/{}", name.to_string_lossy());
            assert!(ROWS.iter().any(|r| r.file == file), "{file} has no row");
            on_disk += 1;
        }
    }
    assert_eq!(on_disk, 43);
    assert_eq!(ROWS.len(), 43);
}

#[test]
fn every_seed_message_parses_to_the_documented_values() {
    for row in ROWS {
        let raw = row_bytes(row);
        let m = Message::parse(&raw).unwrap_or_else(|e| panic!("{}: {e:?}", row.file));
        // The whole file is the message: Content-Length ends it exactly.
        assert_eq!(m.as_bytes().len(), raw.len(), "{}", row.file);
        assert_row(row, &m, "as received");
    }
}

#[test]
fn an_editor_without_edits_writes_the_same_octets_back() {
    for row in ROWS {
        let raw = row_bytes(row);
        let m = Message::parse(&raw).expect("parses");
        let out = m.edit().finish();
        assert_eq!(out, raw, "{}", row.file);
        let again = Message::parse(&out).expect("parses again");
        assert_row(row, &again, "rewritten");
    }
}

#[test]
fn a_via_added_then_removed_leaves_the_message_as_it_was() {
    const OURS: &str = "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-dialtone-1";
    for row in ROWS {
        let raw = row_bytes(row);
        let m = Message::parse(&raw).expect("parses");
        let with_ours = m.edit().insert_header_first("Via", OURS).finish();
        let forwarded = Message::parse(&with_ours).expect("parses with our Via");
        let top = forwarded.top_via().expect("top Via");
        assert_eq!(top.host, "127.0.0.1", "{}", row.file);
        assert!(top.has_rfc3261_branch(), "{}", row.file);
        assert_eq!(forwarded.vias().count(), row.vias.len() + 1, "{}", row.file);

        let back = forwarded.edit().remove_top_via().finish();
        assert_eq!(back, raw, "{}", row.file);
        assert_row(
            row,
            &Message::parse(&back).expect("parses"),
            "Via added and removed",
        );
    }
}

#[test]
fn forwarding_edits_keep_the_seed_invites_values() {
    // A proxy's full set of request edits on every seed request; what it did not touch reads
    // back unchanged.
    for row in ROWS
        .iter()
        .filter(|r| matches!(r.start, Start::Request(..)))
    {
        let raw = row_bytes(row);
        let m = Message::parse(&raw).expect("parses");
        let out = m
            .edit()
            .insert_header_first("Via", "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx")
            .insert_header_first("Record-Route", "<sip:10.0.0.1:5060;lr>")
            .decrement_max_forwards()
            .finish();
        let f = Message::parse(&out).expect("forwarded message parses");
        // The ATA sends no Max-Forwards (RFC 2543); the proxy adds 70 (RFC 3261 section 16.6).
        assert_eq!(m.max_forwards(), Ok(None), "{}", row.file);
        assert_eq!(f.max_forwards(), Ok(Some(70)), "{}", row.file);
        assert_eq!(f.vias().count(), row.vias.len() + 1, "{}", row.file);
        assert_eq!(f.call_id(), Ok(row.call_id), "{}", row.file);
        assert_eq!(f.body(), m.body(), "{}", row.file);
        // Only our Record-Route is read: D-4 message 7 carries a broken one of its own below.
        let ours = f.values(HeaderName::RecordRoute).next().map(|v| {
            NameAddr::parse(v, "Record-Route").map(|r| r.uri.as_sip().map(|u| u.is_loose_router()))
        });
        assert_eq!(ours, Some(Ok(Some(true))), "{}", row.file);
    }
}

// ---- The document's flaws, one test each ----

#[test]
fn d1_01_user_agent_with_a_semicolon_is_a_malformed_header_line() {
    let raw = read_seed("D-1-register-noauth/01.sip");
    let err = Message::parse(&raw).unwrap_err();
    // Line 8 of the message: the start line is line 1, `User-Agent;` the seventh header.
    assert_eq!(err, ParseError::BadHeaderLine { line: 8 });
    assert_eq!(err.status_code(), 400);
    assert_eq!(err.reason_phrase(), "Malformed Header Line");
}

#[test]
fn d1_01_with_the_colon_restored_parses_fully() {
    let raw = String::from_utf8(read_seed("D-1-register-noauth/01.sip")).expect("UTF-8");
    let fixed = raw.replacen("User-Agent;", "User-Agent:", 1);
    let m = Message::parse(fixed.as_bytes()).expect("parses once corrected");
    m.check_request().expect("a well-formed REGISTER");
    assert_eq!(
        m.header_value(HeaderName::UserAgent),
        Some("Cisco ATA v2.10 ata186 (0705a)")
    );
    assert_eq!(m.headers().len(), 8);
    // The table row checks every other value of this message.
    assert!(ROWS[0].repair.is_some());
}

#[test]
fn d3_08_to_tag_inside_the_brackets_is_a_uri_parameter_and_the_to_has_no_tag() {
    let raw = read_seed("D-3-call-noauth/08.sip");
    let m = Message::parse(&raw).expect("parses");
    let to = m.to().expect("To parses");
    assert_eq!(to.tag(), None);
    let uri = to.uri.as_sip().expect("a SIP URI");
    assert_eq!(uri.params.get("tag"), Some(Some("909616993")));
    assert_eq!(uri.params.get("user"), Some(Some("phone")));
    // RFC 3261 allows this form, so the response passes the checks.
    assert_eq!(m.check_response(), Ok(()));
}

#[test]
fn d4_12_to_without_closing_bracket_is_a_bad_to_header() {
    let raw = read_seed("D-4-call-auth/12.sip");
    let m = Message::parse(&raw).expect("the message itself frames and parses");
    let expected = ParseError::BadHeader {
        name: "To",
        reason: "missing >",
    };
    assert_eq!(m.to(), Err(expected.clone()));
    assert_eq!(m.check_response(), Err(expected.clone()));
    assert_eq!(expected.reason_phrase(), "Bad To");
    // Everything else of the message is still readable.
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.call_id(), Ok("557188650@192.168.3.175"));
    assert_eq!(m.top_via().map(|v| v.host), Ok("192.168.3.175"));
    assert_eq!(m.content_length(), Some(199));
}

#[test]
fn record_route_without_closing_bracket_is_an_error_from_record_routes() {
    for file in ["D-4-call-auth/07.sip", "D-4-call-auth/12.sip"] {
        let raw = read_seed(file);
        let m = Message::parse(&raw).expect("parses");
        assert_eq!(
            m.record_routes(),
            Err(ParseError::BadHeader {
                name: "Record-Route",
                reason: "missing >"
            }),
            "{file}"
        );
    }
    // The INVITE itself still passes a server's checks: Record-Route is read only by whoever
    // builds a route set from it.
    let raw = read_seed("D-4-call-auth/07.sip");
    assert_eq!(
        Message::parse(&raw).expect("parses").check_request(),
        Ok(())
    );
}

#[test]
fn d3_10_branch_ending_in_a_dash_is_an_ordinary_token() {
    let raw = read_seed("D-3-call-noauth/10.sip");
    let m = Message::parse(&raw).expect("parses");
    let via = m.top_via().expect("Via parses");
    assert_eq!(via.branch(), Some("140fed6e-f61cbd1a-52f223b1-9beb149a-"));
    assert!(!via.has_rfc3261_branch());
    assert_eq!(m.check_request(), Ok(()));
}

#[test]
fn d4_16_via_host_19_168_3_175_is_a_valid_if_wrong_address() {
    let raw = read_seed("D-4-call-auth/16.sip");
    let m = Message::parse(&raw).expect("parses");
    let via = m.top_via().expect("Via parses");
    assert_eq!(via.host, "19.168.3.175");
    assert_eq!(
        dialtone_sip::uri::parse_host_ip(via.host),
        Some("19.168.3.175".parse().expect("an address"))
    );
    assert_eq!(m.check_response(), Ok(()));
}

#[test]
fn d4_11_and_12_contact_host_change_is_tolerated() {
    let hosts: Vec<String> = ["D-4-call-auth/11.sip", "D-4-call-auth/12.sip"]
        .iter()
        .map(|file| {
            let raw = read_seed(file);
            let m = Message::parse(&raw).expect("parses");
            let Ok(Contacts::List(list)) = m.contacts() else {
                panic!("{file}: Contact does not parse");
            };
            list[0].uri.as_sip().expect("SIP URI").host.to_string()
        })
        .collect();
    assert_eq!(hosts, ["192.168.3.194", "192.168.2.194"]);
}

#[test]
fn rfc_2543_contact_dates_count_down_from_now() {
    let raw = read_seed("D-1-register-noauth/03.sip");
    let m = Message::parse(&raw).expect("parses");
    let Ok(Contacts::List(list)) = m.contacts() else {
        panic!("Contact does not parse");
    };
    let expires = parse_contact_expires(list[0].params.get("expires").flatten().unwrap_or(""))
        .expect("a date");
    let an_hour_before = UNIX_EPOCH + Duration::from_secs(1_003_847_097 - 3600);
    assert_eq!(expires.seconds_from(an_hour_before), 3600);
    assert_eq!(expires.seconds_from(SystemTime::now()), 0);
}
