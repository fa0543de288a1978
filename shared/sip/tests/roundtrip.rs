//! Property tests: well-formed messages generated from a model, printed, parsed, and read back to
//! the model's values; arbitrary and mutated bytes never panic the parser or its accessors; and
//! the TCP framer cuts a stream of generated messages, delivered in random chunks, back into
//! exactly those messages.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use dialtone_sip::{Contacts, Frame, HeaderName, Message, Method, StreamFramer};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

// ---- The model ----

#[derive(Debug, Clone)]
struct SipUri {
    user: Option<String>,
    host: String,
    port: Option<u16>,
    params: Vec<(String, Option<String>)>,
}

impl SipUri {
    fn print(&self) -> String {
        let mut s = String::from("sip:");
        if let Some(user) = &self.user {
            let _ = write!(s, "{user}@");
        }
        s.push_str(&self.host);
        if let Some(port) = self.port {
            let _ = write!(s, ":{port}");
        }
        for (name, value) in &self.params {
            match value {
                Some(v) => {
                    let _ = write!(s, ";{name}={v}");
                }
                None => {
                    let _ = write!(s, ";{name}");
                }
            }
        }
        s
    }
}

#[derive(Debug, Clone)]
struct NameAddr {
    display: Option<String>,
    uri: SipUri,
    /// Written `<uri>` (always when the URI has parameters, which would otherwise be the
    /// header's, RFC 3261 section 20.10).
    bracketed: bool,
    tag: Option<String>,
}

impl NameAddr {
    fn print(&self) -> String {
        let mut s = String::new();
        let bracketed = self.bracketed || self.display.is_some() || !self.uri.params.is_empty();
        if let Some(d) = &self.display {
            let _ = write!(s, "\"{d}\" ");
        }
        if bracketed {
            let _ = write!(s, "<{}>", self.uri.print());
        } else {
            s.push_str(&self.uri.print());
        }
        if let Some(tag) = &self.tag {
            let _ = write!(s, ";tag={tag}");
        }
        s
    }
}

#[derive(Debug, Clone)]
struct Via {
    transport: &'static str,
    host: String,
    port: Option<u16>,
    branch: Option<String>,
    received: Option<Ipv4Addr>,
    rport: Option<Option<u16>>,
}

impl Via {
    fn print(&self) -> String {
        let mut s = format!("SIP/2.0/{} {}", self.transport, self.host);
        if let Some(port) = self.port {
            let _ = write!(s, ":{port}");
        }
        if let Some(branch) = &self.branch {
            let _ = write!(s, ";branch={branch}");
        }
        if let Some(received) = self.received {
            let _ = write!(s, ";received={received}");
        }
        match self.rport {
            None => {}
            Some(None) => s.push_str(";rport"),
            Some(Some(p)) => {
                let _ = write!(s, ";rport={p}");
            }
        }
        s
    }
}

#[derive(Debug, Clone)]
struct Contact {
    addr: NameAddr,
    expires: Option<u32>,
}

#[derive(Debug, Clone)]
enum Start {
    Request { method: String, uri: SipUri },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone)]
struct Model {
    start: Start,
    vias: Vec<Via>,
    /// How many Via values share each Via line (several lines equal one comma list).
    via_grouping: Vec<usize>,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: u32,
    /// The CSeq method of a response (a request's is its method).
    response_cseq_method: String,
    max_forwards: Option<u8>,
    contacts: Vec<Contact>,
    unknown: Vec<(String, String)>,
    /// Spelling of header names: long, lower case, upper case or compact.
    name_style: usize,
    body: Vec<u8>,
}

fn spell(name: &'static str, compact: Option<&'static str>, style: usize) -> String {
    match style % 4 {
        0 => name.to_string(),
        1 => name.to_ascii_lowercase(),
        2 => name.to_ascii_uppercase(),
        _ => compact.unwrap_or(name).to_string(),
    }
}

impl Model {
    fn method(&self) -> &str {
        match &self.start {
            Start::Request { method, .. } => method,
            Start::Response { .. } => &self.response_cseq_method,
        }
    }

    fn print(&self) -> Vec<u8> {
        let style = self.name_style;
        let mut s = match &self.start {
            Start::Request { method, uri } => format!("{method} {} SIP/2.0\r\n", uri.print()),
            Start::Response { code, reason } => format!("SIP/2.0 {code} {reason}\r\n"),
        };
        let mut vias = self.vias.iter();
        for &n in &self.via_grouping {
            let line: Vec<String> = vias.by_ref().take(n).map(Via::print).collect();
            if !line.is_empty() {
                let _ = write!(
                    s,
                    "{}: {}\r\n",
                    spell("Via", Some("v"), style),
                    line.join(", ")
                );
            }
        }
        for via in vias {
            let _ = write!(s, "{}: {}\r\n", spell("Via", Some("v"), style), via.print());
        }
        if let Some(mf) = self.max_forwards {
            let _ = write!(s, "{}: {mf}\r\n", spell("Max-Forwards", None, style));
        }
        let _ = write!(
            s,
            "{}: {}\r\n",
            spell("From", Some("f"), style),
            self.from.print()
        );
        let _ = write!(
            s,
            "{}: {}\r\n",
            spell("To", Some("t"), style),
            self.to.print()
        );
        let _ = write!(
            s,
            "{}: {}\r\n",
            spell("Call-ID", Some("i"), style),
            self.call_id
        );
        let _ = write!(
            s,
            "{}: {} {}\r\n",
            spell("CSeq", None, style),
            self.cseq,
            self.method()
        );
        for contact in &self.contacts {
            let mut value = contact.addr.print();
            if let Some(e) = contact.expires {
                let _ = write!(value, ";expires={e}");
            }
            let _ = write!(s, "{}: {value}\r\n", spell("Contact", Some("m"), style));
        }
        for (name, value) in &self.unknown {
            let _ = write!(s, "{name}: {value}\r\n");
        }
        let _ = write!(
            s,
            "{}: {}\r\n\r\n",
            spell("Content-Length", Some("l"), style),
            self.body.len()
        );
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

// ---- Strategies ----

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,11}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}(\\.[a-z][a-z0-9]{0,8}){0,3}",
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
        any::<[u8; 16]>().prop_map(|o| format!("[{}]", Ipv6Addr::from(o))),
    ]
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        option::of("[a-zA-Z0-9_.!~*'()+-]{1,12}"),
        host(),
        option::of(1u16..),
        vec(
            ("[a-z][a-z0-9-]{0,7}", option::of("[a-zA-Z0-9.-]{1,10}")),
            0..3,
        ),
    )
        .prop_map(|(user, host, port, params)| SipUri {
            user,
            host,
            port,
            params,
        })
}

fn name_addr(tag: impl Strategy<Value = Option<String>>) -> impl Strategy<Value = NameAddr> {
    (
        option::of("[a-zA-Z0-9 ,;:<>@]{0,16}"),
        sip_uri(),
        any::<bool>(),
        tag,
    )
        .prop_map(|(display, uri, bracketed, tag)| NameAddr {
            display,
            uri,
            bracketed,
            tag,
        })
}

fn via() -> impl Strategy<Value = Via> {
    (
        select(&["UDP", "TCP", "TLS", "SCTP", "WS"][..]),
        host(),
        option::of(1u16..),
        option::of("z9hG4bK[a-zA-Z0-9.-]{1,16}"),
        option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
        option::of(option::of(any::<u16>())),
    )
        .prop_map(|(transport, host, port, branch, received, rport)| Via {
            transport,
            host,
            port,
            branch,
            received,
            rport,
        })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "INVITE",
                "ACK",
                "BYE",
                "CANCEL",
                "OPTIONS",
                "REGISTER",
                "SUBSCRIBE",
                "NOTIFY",
                "REFER",
                "INFO"
            ][..]
        )
        .prop_map(String::from),
        "[A-Z][A-Z0-9_-]{0,10}",
    ]
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        (method(), sip_uri()).prop_map(|(method, uri)| Start::Request { method, uri }),
        (100u16..700, "([A-Za-z][A-Za-z ]{0,20})?")
            .prop_map(|(code, reason)| Start::Response { code, reason }),
    ]
}

fn unknown_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    vec("[!-~&&[^:]][ -~]{0,30}", 0..12).prop_map(|values| {
        values
            .into_iter()
            .enumerate()
            // Numbered names keep them unique; values are trimmed as the parser trims them.
            .map(|(i, v)| (format!("X-Prop-{i}"), v.trim().to_string()))
            .collect()
    })
}

fn model() -> impl Strategy<Value = Model> {
    (
        (
            start(),
            vec(via(), 1..6),
            vec(0usize..4, 0..4),
            name_addr(option::of(token()).prop_map(|t| t.or_else(|| Some("f1".into())))),
            name_addr(option::of(token())),
        ),
        (
            "[a-zA-Z0-9.!%*_+`'~-]{1,20}(@[a-z0-9.]{1,12})?",
            any::<u32>(),
            method(),
            option::of(any::<u8>()),
            vec((name_addr(Just(None)), option::of(any::<u32>())), 0..3),
            unknown_headers(),
            0usize..4,
            vec(any::<u8>(), 0..200),
        ),
    )
        .prop_map(
            |(
                (start, vias, via_grouping, from, to),
                (
                    call_id,
                    cseq,
                    response_cseq_method,
                    max_forwards,
                    contacts,
                    unknown,
                    name_style,
                    body,
                ),
            )| Model {
                start,
                vias,
                via_grouping,
                from,
                to,
                call_id,
                cseq,
                response_cseq_method,
                max_forwards,
                contacts: contacts
                    .into_iter()
                    .map(|(addr, expires)| Contact { addr, expires })
                    .collect(),
                unknown,
                name_style,
                body,
            },
        )
}

// ---- Checking a parsed message against its model ----

fn assert_matches_model(m: &Message<'_>, model: &Model) {
    match &model.start {
        Start::Request { method, uri } => {
            assert_eq!(m.method(), Some(Method::from_token(method)));
            let got = m
                .request_uri()
                .and_then(|u| u.as_sip())
                .expect("a SIP Request-URI");
            assert_uri(got, uri);
            assert_eq!(m.check_request(), Ok(()));
        }
        Start::Response { code, reason } => {
            assert_eq!(m.status(), Some(*code));
            assert_eq!(m.reason(), Some(reason.as_str()));
            assert_eq!(m.check_response(), Ok(()));
        }
    }
    let vias: Vec<_> = m.vias().collect::<Result<_, _>>().expect("Vias parse");
    assert_eq!(vias.len(), model.vias.len());
    for (got, want) in vias.iter().zip(&model.vias) {
        assert_eq!(got.transport, want.transport);
        assert_eq!(got.host, want.host);
        assert_eq!(got.port, want.port);
        assert_eq!(got.branch(), want.branch.as_deref());
        assert_eq!(got.received(), want.received.map(Into::into));
        assert_eq!(got.rport(), want.rport);
    }
    let from = m.from().expect("From parses");
    assert_name_addr(&from, &model.from);
    let to = m.to().expect("To parses");
    assert_name_addr(&to, &model.to);
    assert_eq!(m.call_id(), Ok(model.call_id.as_str()));
    let cseq = m.cseq().expect("CSeq parses");
    assert_eq!(cseq.seq, model.cseq);
    assert_eq!(cseq.method, Method::from_token(model.method()));
    assert_eq!(m.max_forwards(), Ok(model.max_forwards));
    let Contacts::List(contacts) = m.contacts().expect("Contacts parse") else {
        panic!("no wildcard was generated");
    };
    assert_eq!(contacts.len(), model.contacts.len());
    for (got, want) in contacts.iter().zip(&model.contacts) {
        assert_name_addr(got, &want.addr);
        let expires = want.expires.map(|e| e.to_string());
        assert_eq!(got.params.get("expires").flatten(), expires.as_deref());
    }
    for (name, value) in &model.unknown {
        assert_eq!(m.header_value_by_name(name), Some(value.as_str()));
    }
    assert_eq!(m.body(), model.body.as_slice());
    assert_eq!(m.content_length(), Some(model.body.len()));
}

fn assert_uri(got: &dialtone_sip::SipUri<'_>, want: &SipUri) {
    assert_eq!(got.user, want.user.as_deref());
    assert_eq!(got.host, want.host);
    assert_eq!(got.port, want.port);
    let params: Vec<_> = got.params.iter().collect();
    let want_params: Vec<_> = want
        .params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_deref()))
        .collect();
    assert_eq!(params, want_params);
    assert_eq!(got.raw, want.print());
}

fn assert_name_addr(got: &dialtone_sip::NameAddr<'_>, want: &NameAddr) {
    let uri = got.uri.as_sip().expect("a SIP URI");
    assert_uri(uri, &want.uri);
    assert_eq!(got.tag(), want.tag.as_deref());
    let display = want.display.as_ref().map(|d| format!("\"{d}\""));
    assert_eq!(got.display_name, display.as_deref());
}

fn chunked(stream: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut at = 0;
    let mut sizes = sizes.iter().cycle();
    while at < stream.len() {
        let n = (*sizes.next().unwrap_or(&1)).max(1).min(stream.len() - at);
        chunks.push(stream[at..at + n].to_vec());
        at += n;
    }
    chunks
}

/// Every accessor, for the no-panic properties.
fn read_everything(m: &Message<'_>) {
    let _ = (
        m.top_via(),
        m.vias().count(),
        m.from(),
        m.to(),
        m.call_id(),
        m.cseq(),
    );
    let _ = (m.max_forwards(), m.expires(), m.min_expires(), m.contacts());
    let _ = m.retry_after();
    let _ = (m.routes(), m.record_routes(), m.content_type(), m.body());
    let _ = m.tokens(HeaderName::ProxyRequire).count();
    let _ = (m.check_request(), m.check_response());
    let out = m
        .edit()
        .insert_header_first("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp")
        .decrement_max_forwards()
        .remove_top_via()
        .finish();
    let _ = Message::parse(&out);
}

proptest! {
    // No regression files: integration tests have no lib.rs for proptest to sit them beside;
    // a failure prints its minimal case instead.
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn printed_messages_parse_back_to_their_values(model in model()) {
        let bytes = model.print();
        let m = Message::parse(&bytes).map_err(|e| {
            TestCaseError::fail(format!("{e:?} in\n{}", String::from_utf8_lossy(&bytes)))
        })?;
        assert_matches_model(&m, &model);
        // And once more through the Editor: with no edits, and with a Via added and removed.
        let same = m.edit().finish();
        prop_assert_eq!(&same, &bytes);
        let with_via = m
            .edit()
            .insert_header_first("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKprop")
            .finish();
        let forwarded = Message::parse(&with_via).expect("parses with our Via");
        prop_assert_eq!(forwarded.vias().count(), model.vias.len() + 1);
        let back = forwarded.edit().remove_top_via().finish();
        assert_matches_model(&Message::parse(&back).expect("parses again"), &model);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = Message::parse(&bytes) {
            read_everything(&m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        model in model(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = model.print();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(m) = Message::parse(&bytes) {
            read_everything(&m);
        }
    }

    #[test]
    fn the_framer_cuts_a_chunked_stream_into_the_same_messages(
        models in vec(model(), 1..5),
        keepalives in vec(any::<bool>(), 5),
        sizes in vec(1usize..300, 1..16),
    ) {
        let messages: Vec<Vec<u8>> = models.iter().map(Model::print).collect();
        let mut stream = Vec::new();
        for (message, keepalive) in messages.iter().zip(&keepalives) {
            if *keepalive {
                // A CRLF keep-alive between messages (RFC 5626 section 3.5.1) is skipped.
                stream.extend_from_slice(b"\r\n\r\n");
            }
            stream.extend_from_slice(message);
        }
        let mut framer = StreamFramer::new();
        let mut out = Vec::new();
        for chunk in chunked(&stream, &sizes) {
            framer.push(&chunk);
            while let Some(frame) = framer.next_frame().expect("a well-formed stream") {
                if let Frame::Message(bytes) = frame {
                    out.push(bytes.to_vec());
                }
            }
        }
        prop_assert_eq!(out, messages);
        prop_assert_eq!(framer.pending(), 0);
    }
}
