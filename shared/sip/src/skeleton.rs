//! A request cut down to what its transaction still needs once it will not be sent again: the
//! start line and the Via, Route, From, To, Call-ID and CSeq lines, as received, without a
//! body. From it a proxy still builds its own responses (RFC 3261 section 8.2.6 copies Via,
//! From, To, Call-ID and CSeq), the CANCEL of an INVITE (section 9.1: Request-URI, top Via,
//! Route, From, To, Call-ID, CSeq number) and the ACK of a non-2xx final (17.1.1.3, the same).
//!
//! A ringing INVITE lives for minutes (Timer C) and its body, Contact and the rest are spent
//! once it is forwarded: a proxy keeping the whole INVITE, twice (as received and as
//! forwarded), held most of its memory per call in copies nothing reads again.

use crate::header_name::HeaderName;
use crate::message::{Header, Message};

/// How every skeleton ends: no body.
const END: &[u8] = b"Content-Length: 0\r\n\r\n";

impl Message<'_> {
    /// The skeleton of this message (see the module documentation): it parses as a message
    /// with the same start line, Vias, Route set, From, To, Call-ID and CSeq, and
    /// `Content-Length: 0`.
    pub fn skeleton(&self) -> Vec<u8> {
        let kept = |name: HeaderName| {
            matches!(
                name,
                HeaderName::Via
                    | HeaderName::Route
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            )
        };
        let start_end = self
            .headers
            .first()
            .map_or(self.headers_end, |h| h.line_start) as usize;
        let lines = || {
            self.headers
                .iter()
                .filter(move |h| kept(h.name))
                .map(|h| &self.bytes[h.line_start as usize..h.line_end as usize])
        };
        let len = start_end + lines().map(<[u8]>::len).sum::<usize>() + END.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.bytes[..start_end]);
        for line in lines() {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(END);
        out
    }

    /// What the skeleton of a forwarded copy holds that the received request's does not: its
    /// start line (the new Request-URI), its first header line, which must be the forwarder's
    /// own Via and written on one line, and its Route lines. The rest of that skeleton (the
    /// received Vias, From, To, Call-ID, CSeq) is the received request's, so a proxy keeping
    /// the received skeleton keeps only this per branch; [`skeleton_from_head`] puts the two
    /// back together. `None` when the first header is not a Via.
    pub fn forwarded_head(&self) -> Option<Vec<u8>> {
        let (via, rest) = self.headers.split_first()?;
        if via.name != HeaderName::Via {
            return None;
        }
        let line = |h: &Header<'_>| &self.bytes[h.line_start as usize..h.line_end as usize];
        let start_line = &self.bytes[..via.line_start as usize];
        let routes = rest.iter().filter(|h| h.name == HeaderName::Route);
        let len = start_line.len()
            + line(via).len()
            + routes.clone().map(|h| line(h).len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(start_line);
        out.extend_from_slice(line(via));
        for route in routes {
            out.extend_from_slice(line(route));
        }
        Some(out)
    }
}

/// The skeleton of a forwarded copy (as [`Message::skeleton`] of it would give, the headers
/// grouped by name) from its head ([`Message::forwarded_head`]) and the request as received,
/// whole or its skeleton. `top_via` is given the value of the received request's first Via
/// header and returns it as the forwarder rewrote it (RFC 3261 section 18.2.1 `received`, RFC
/// 3581 `rport`), or `None` when it was forwarded unchanged.
pub fn skeleton_from_head(
    head: &[u8],
    received: &Message<'_>,
    top_via: impl FnOnce(&str) -> Option<String>,
) -> Vec<u8> {
    let via_start = head_line_end(head, 0);
    let routes_start = head_line_end(head, via_start);
    let line = |h: &Header<'_>| &received.bytes[h.line_start as usize..h.line_end as usize];
    let mut out = Vec::with_capacity(head.len() + received.headers_end as usize);
    out.extend_from_slice(&head[..routes_start]);
    let mut vias = received
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::Via);
    if let Some(first) = vias.next() {
        match top_via(first.value) {
            Some(value) => {
                out.extend_from_slice(b"Via: ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            None => out.extend_from_slice(line(first)),
        }
    }
    for via in vias {
        out.extend_from_slice(line(via));
    }
    out.extend_from_slice(&head[routes_start..]);
    for header in &received.headers {
        if matches!(
            header.name,
            HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
        ) {
            out.extend_from_slice(line(header));
        }
    }
    out.extend_from_slice(END);
    out
}

/// The value of the forwarder's Via in a forwarded copy, whole or its head
/// ([`Message::forwarded_head`]): its first header line. `None` when that line is no Via.
pub fn forwarder_via(head: &[u8]) -> Option<&str> {
    let via_start = head_line_end(head, 0);
    let line = &head[via_start..head_line_end(head, via_start)];
    let (name, value) = std::str::from_utf8(line).ok()?.split_once(':')?;
    (HeaderName::classify(name.trim()) == HeaderName::Via).then(|| value.trim())
}

/// Where the line of `head` that starts at `from` ends, with its CRLF. A head is the start
/// line, then the forwarder's Via (one line), then Route lines.
fn head_line_end(head: &[u8], from: usize) -> usize {
    head[from..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(head.len(), |i| from + i + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:9000@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp.1\r\nRecord-Route: <sip:127.0.0.1:5070;lr>\r\nv: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport=5062;received=192.0.2.9\r\nMax-Forwards: 69\r\nRoute: <sip:edge.example;lr>\r\nFrom: \"Alice\" <sip:8000@lab.example>;tag=a1\r\nTo: <sip:9000@lab.example>\r\nCall-ID: sk1@192.0.2.9\r\nCSeq: 41 INVITE\r\nContact: <sip:8000@192.0.2.9:5062>\r\nAllow: INVITE, ACK, CANCEL, BYE\r\nContent-Type: application/sdp\r\nContent-Length: 27\r\n\r\nv=0\r\no=- 1 1 IN IP4 192.0.2.9\r\n";

    #[test]
    fn keeps_what_a_response_cancel_and_ack_copy_and_nothing_else() {
        let invite = Message::parse(INVITE).unwrap();
        let bytes = invite.skeleton();
        assert_eq!(bytes.len(), bytes.capacity(), "written at its size");
        let skeleton = Message::parse(&bytes).unwrap();
        skeleton.check_request().unwrap();
        assert_eq!(
            skeleton.request_uri().unwrap().as_str(),
            "sip:9000@192.0.2.50:5060"
        );
        let vias: Vec<&str> = skeleton.values(HeaderName::Via).collect();
        assert_eq!(vias, invite.values(HeaderName::Via).collect::<Vec<_>>());
        assert_eq!(vias.len(), 2, "the compact form is kept too");
        assert_eq!(
            skeleton.header_value(HeaderName::Route),
            Some("<sip:edge.example;lr>")
        );
        for name in [
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            assert_eq!(
                skeleton.header_value(name),
                invite.header_value(name),
                "{name:?}"
            );
        }
        for gone in [
            HeaderName::RecordRoute,
            HeaderName::Contact,
            HeaderName::MaxForwards,
            HeaderName::ContentType,
        ] {
            assert_eq!(skeleton.header_value(gone), None, "{gone:?}");
        }
        assert_eq!(skeleton.body(), b"");
        assert_eq!(skeleton.header_value(HeaderName::ContentLength), Some("0"));
        assert!(bytes.len() < INVITE.len() / 2 + 100);
    }

    /// `INVITE` as it arrived, before the forwarder above rewrote it: another Request-URI, no
    /// Via of the forwarder's, `rport` asked and not filled, its own Route and Max-Forwards.
    const RECEIVED: &[u8] = b"INVITE sip:9000@lab.example SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKup\r\nMax-Forwards: 70\r\nRoute: <sip:127.0.0.1:5070;lr>, <sip:edge.example;lr>\r\nFrom: \"Alice\" <sip:8000@lab.example>;tag=a1\r\nTo: <sip:9000@lab.example>\r\nCall-ID: sk1@192.0.2.9\r\nCSeq: 41 INVITE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_forwarded_skeleton_is_rebuilt_from_its_head_and_the_received_request() {
        const FORWARDED: &[u8] = b"INVITE sip:9000@192.0.2.50:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp.1\r\nRecord-Route: <sip:127.0.0.1:5070;lr>\r\nv: SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport=5062;received=192.0.2.9\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKup\r\nMax-Forwards: 69\r\nRoute: <sip:edge.example;lr>\r\nFrom: \"Alice\" <sip:8000@lab.example>;tag=a1\r\nTo: <sip:9000@lab.example>\r\nCall-ID: sk1@192.0.2.9\r\nCSeq: 41 INVITE\r\nContent-Length: 0\r\n\r\n";
        let forwarded = Message::parse(FORWARDED).unwrap();
        let head = forwarded.forwarded_head().unwrap();
        assert!(
            head.len() < forwarded.skeleton().len() / 2,
            "{}",
            head.len()
        );
        let received = Message::parse(RECEIVED).unwrap();
        let mut asked = None;
        let bytes = skeleton_from_head(&head, &received, |top| {
            asked = Some(top.to_string());
            Some("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport=5062;received=192.0.2.9".into())
        });
        assert_eq!(
            asked.as_deref(),
            Some("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport")
        );
        let expected = forwarded.skeleton();
        let expected = Message::parse(&expected).unwrap();
        let rebuilt = Message::parse(&bytes).unwrap();
        rebuilt.check_request().unwrap();
        assert_eq!(
            rebuilt.request_uri().unwrap().as_str(),
            expected.request_uri().unwrap().as_str()
        );
        for name in [
            HeaderName::Via,
            HeaderName::Route,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
            HeaderName::ContentLength,
            HeaderName::MaxForwards,
        ] {
            assert_eq!(
                rebuilt.values(name).collect::<Vec<_>>(),
                expected.values(name).collect::<Vec<_>>(),
                "{name:?}"
            );
        }
        assert_eq!(rebuilt.headers().len(), expected.headers().len());
    }

    #[test]
    fn an_unchanged_top_via_is_copied_as_received() {
        let forwarded = Message::parse(INVITE).unwrap();
        let head = forwarded.forwarded_head().unwrap();
        let received = Message::parse(RECEIVED).unwrap();
        let bytes = skeleton_from_head(&head, &received, |_| None);
        let rebuilt = Message::parse(&bytes).unwrap();
        let vias: Vec<&str> = rebuilt.values(HeaderName::Via).collect();
        assert_eq!(
            vias,
            [
                "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp.1",
                "SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport",
                "SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKup",
            ]
        );
    }

    #[test]
    fn a_copy_whose_first_header_is_not_a_via_has_no_head() {
        let received = Message::parse(RECEIVED).unwrap();
        assert!(
            received.forwarded_head().is_some(),
            "a Via first, whatever its spelling"
        );
        let no_via = Message::parse(b"INVITE sip:b SIP/2.0\r\nMax-Forwards: 70\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n").unwrap();
        assert_eq!(no_via.forwarded_head(), None);
        assert_eq!(forwarder_via(no_via.as_bytes()), None);
    }

    #[test]
    fn the_forwarders_via_is_read_from_a_head_or_a_whole_copy() {
        let forwarded = Message::parse(INVITE).unwrap();
        let head = forwarded.forwarded_head().unwrap();
        let via = "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp.1";
        assert_eq!(forwarder_via(&head), Some(via));
        assert_eq!(forwarder_via(INVITE), Some(via));
        assert_eq!(
            forwarder_via(RECEIVED),
            Some("SIP/2.0/UDP 192.0.2.9:5062;branch=z9hG4bKc1;rport"),
            "compact form"
        );
    }
}
