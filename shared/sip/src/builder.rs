//! Building new messages: responses to a received request (RFC 3261 section 8.2.6) and requests
//! from scratch (section 8.1.1). Content-Length is always written.

use std::fmt::Write as _;

use crate::header_name::HeaderName;
use crate::message::Message;

/// Builds a response that copies Via, From, To, Call-ID and CSeq from the request (RFC 3261
/// section 8.2.6.2), adding a To tag when one is given and the request's To had none.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    head: String,
    body: Vec<u8>,
}

impl ResponseBuilder {
    /// Starts a response to `request` with `code` and `reason`.
    pub fn for_request(request: &Message<'_>, code: u16, reason: &str) -> ResponseBuilder {
        let mut head = String::with_capacity(512);
        let _ = write!(head, "SIP/2.0 {code} {reason}\r\n");
        for header in request.headers() {
            match header.name {
                HeaderName::Via
                | HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq => {
                    let _ = write!(head, "{}: {}\r\n", header.name.as_str(), header.value);
                }
                _ => {}
            }
        }
        ResponseBuilder {
            head,
            body: Vec::new(),
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
        }
        self
    }

    /// Adds `;tag=...` to the To header when it has no tag (a UAS or a proxy answering itself,
    /// RFC 3261 section 8.2.6.2). Does nothing when the To already has one.
    pub fn to_tag(mut self, tag: &str) -> Self {
        let Some(start) = self.head.find("\r\nTo: ") else {
            return self;
        };
        let line_start = start + 2;
        let line_end = self.head[line_start..]
            .find("\r\n")
            .map(|e| e + line_start)
            .unwrap_or(self.head.len());
        let value = &self.head[line_start + 4..line_end];
        let has_tag = crate::NameAddr::parse(value, "To")
            .map(|na| na.tag().is_some())
            .unwrap_or(true);
        if !has_tag {
            self.head.insert_str(line_end, &format!(";tag={tag}"));
        }
        self
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.head, "{name}: {value}\r\n");
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        let _ = write!(self.head, "Content-Type: {content_type}\r\n");
        self.body = body.to_vec();
        self
    }

    /// Writes the response.
    pub fn build(self) -> Vec<u8> {
        finish(self.head, &self.body)
    }
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
        let _ = write!(self.head, "{name}: {value}\r\n");
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        let _ = write!(self.head, "Content-Type: {content_type}\r\n");
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
