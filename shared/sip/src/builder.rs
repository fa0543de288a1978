//! Building new messages: responses to a received request (RFC 3261 section 8.2.6) and requests
//! from scratch (section 8.1.1). Content-Length is always written.

use std::fmt::Write as _;

use crate::header_name::HeaderName;
use crate::message::Message;

/// Builds a response that copies Via, From, To, Call-ID and CSeq from the request (RFC 3261
/// section 8.2.6.2), adding a To tag when one is given and the request's To had none.
///
/// The head is written once, with `push_str` rather than `write!`, and the builder remembers
/// where the To value ends and whether it has a tag: [`Self::to_tag`] then inserts in place
/// instead of finding and parsing the To line again (the proxy writes one of these for every
/// REGISTER it answers).
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    head: String,
    body: Vec<u8>,
    /// Where the copied To value ends in `head` (before its CRLF), when the request had a To.
    to_value_end: Option<usize>,
    /// Whether the request's To already carries a tag (or could not be parsed, in which case
    /// no tag is added either).
    to_has_tag: bool,
}

impl ResponseBuilder {
    /// Starts a response to `request` with `code` and `reason`.
    pub fn for_request(request: &Message<'_>, code: u16, reason: &str) -> ResponseBuilder {
        let mut head = String::with_capacity(512);
        head.push_str("SIP/2.0 ");
        let _ = write!(head, "{code}");
        head.push(' ');
        head.push_str(reason);
        head.push_str("\r\n");
        let mut to_value_end = None;
        for header in request.headers() {
            match header.name {
                HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq => {
                    head.push_str(header.name.as_str());
                    head.push_str(": ");
                    head.push_str(header.value);
                    if header.name == HeaderName::To && to_value_end.is_none() {
                        to_value_end = Some(head.len());
                    }
                    head.push_str("\r\n");
                }
                _ => {}
            }
        }
        let to_has_tag = request.to().map(|to| to.tag().is_some()).unwrap_or(true);
        ResponseBuilder {
            head,
            body: Vec::new(),
            to_value_end,
            to_has_tag,
        }
    }

    /// Replaces the first occurrence of the top Via value `old` (as the request had it) with
    /// `new`: a server fills in `received` and `rport` (RFC 3261 section 18.2.1, RFC 3581
    /// section 4) in the Via it returns.
    pub fn top_via(mut self, old: &str, new: &str) -> Self {
        let Some(start) = self.head.find("\r\nVia: ") else {
            return self;
        };
        let value_start = start + "\r\nVia: ".len();
        if let Some(at) = self.head[value_start..].find(old) {
            let at = value_start + at;
            self.head.replace_range(at..at + old.len(), new);
            if let Some(end) = self.to_value_end.as_mut().filter(|end| **end > at) {
                *end = *end + new.len() - old.len();
            }
        }
        self
    }

    /// Adds `;tag=...` to the To header when it has no tag (a UAS or a proxy answering itself,
    /// RFC 3261 section 8.2.6.2). Does nothing when the To already has one.
    pub fn to_tag(mut self, tag: &str) -> Self {
        if let (Some(end), false) = (self.to_value_end, self.to_has_tag) {
            let mut insert = String::with_capacity(tag.len() + 5);
            insert.push_str(";tag=");
            insert.push_str(tag);
            self.head.insert_str(end, &insert);
            self.to_has_tag = true;
        }
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        push_header(&mut self.head, name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        push_header(&mut self.head, "Content-Type", content_type);
        self.body = body.to_vec();
        self
    }

    /// Writes the response.
    pub fn build(self) -> Vec<u8> {
        finish(self.head, &self.body)
    }
}

/// Appends `name: value` and its CRLF.
fn push_header(head: &mut String, name: &str, value: &str) {
    head.reserve(name.len() + value.len() + 4);
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
}

/// Builds a request header by header.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    head: String,
    body: Vec<u8>,
}

impl RequestBuilder {
    /// Starts `METHOD uri SIP/2.0`.
    pub fn new(method: &str, uri: &str) -> RequestBuilder {
        let mut head = String::with_capacity(512);
        let _ = write!(head, "{method} {uri} SIP/2.0\r\n");
        RequestBuilder {
            head,
            body: Vec::new(),
        }
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        push_header(&mut self.head, name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        push_header(&mut self.head, "Content-Type", content_type);
        self.body = body.to_vec();
        self
    }

    /// Writes the request.
    pub fn build(self) -> Vec<u8> {
        finish(self.head, &self.body)
    }
}

fn finish(mut head: String, body: &[u8]) -> Vec<u8> {
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_copies_the_transaction_headers_and_adds_a_to_tag() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/seed-flows/D-3-call-noauth/01.sip"
        ))
        .unwrap();
        let invite = Message::parse(&raw).unwrap();
        let out = ResponseBuilder::for_request(&invite, 486, "Busy Here")
            .to_tag("abc")
            .header("Server", "dialtone")
            .build();
        let resp = Message::parse(&out).unwrap();
        assert_eq!(resp.status(), Some(486));
        assert_eq!(resp.reason(), Some("Busy Here"));
        assert_eq!(resp.to().unwrap().tag(), Some("abc"));
        assert_eq!(resp.from().unwrap().tag(), Some("2819471139"));
        assert_eq!(resp.call_id().unwrap(), "488337201@192.168.3.175");
        assert_eq!(resp.cseq().unwrap().seq, 1);
        assert_eq!(resp.top_via().unwrap().host, "192.168.3.175");
        assert_eq!(resp.content_length(), Some(0));
        resp.check_response().unwrap();
    }

    #[test]
    fn existing_to_tag_is_kept() {
        let raw = b"BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:x@y>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n";
        let bye = Message::parse(raw).unwrap();
        let out = ResponseBuilder::for_request(&bye, 200, "OK")
            .to_tag("zzz")
            .build();
        let resp = Message::parse(&out).unwrap();
        assert_eq!(resp.to().unwrap().tag(), Some("2"));
    }

    /// The To tag lands at the end of the To value wherever To sits, also after a longer or
    /// shorter top Via was put in before it.
    #[test]
    fn to_tag_is_inserted_at_the_to_value_after_the_via_was_filled_in() {
        for (raw, new_via) in [
            (
                "REGISTER sip:b SIP/2.0\r\nVia: SIP/2.0/UDP h;rport\r\nFrom: <sip:x@b>;tag=1\r\nTo: <sip:x@b>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n",
                "SIP/2.0/UDP h;rport=5062;received=127.0.0.2",
            ),
            (
                "REGISTER sip:b SIP/2.0\r\nTo: <sip:x@b>\r\nVia: SIP/2.0/UDP h;rport;branch=z9hG4bKlong\r\nFrom: <sip:x@b>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n",
                "SIP/2.0/UDP h",
            ),
        ] {
            let request = Message::parse(raw.as_bytes()).unwrap();
            let old = request.values(HeaderName::Via).next().unwrap();
            let out = ResponseBuilder::for_request(&request, 200, "OK")
                .top_via(old, new_via)
                .to_tag("t1")
                .to_tag("ignored")
                .build();
            let response = Message::parse(&out).unwrap();
            assert_eq!(response.to().unwrap().tag(), Some("t1"), "{raw}");
            assert_eq!(response.values(HeaderName::Via).next(), Some(new_via));
            assert_eq!(response.to().unwrap().uri.as_str(), "sip:x@b");
            response.check_response().unwrap();
        }
    }

    #[test]
    fn request_builder_writes_content_length_for_the_body() {
        let out = RequestBuilder::new("INVITE", "sip:9000@127.0.0.1")
            .header("Via", "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1")
            .header("From", "<sip:8000@127.0.0.1>;tag=a")
            .header("To", "<sip:9000@127.0.0.1>")
            .header("Call-ID", "c1")
            .header("CSeq", "1 INVITE")
            .body("application/sdp", b"v=0\r\n")
            .build();
        let m = Message::parse(&out).unwrap();
        m.check_request().unwrap();
        assert_eq!(m.body(), b"v=0\r\n");
        assert_eq!(m.content_type(), Some("application/sdp"));
    }
}
