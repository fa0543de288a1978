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
use crate::message::Message;

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
        const END: &[u8] = b"Content-Length: 0\r\n\r\n";
        let len = start_end + lines().map(<[u8]>::len).sum::<usize>() + END.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&self.bytes[..start_end]);
        for line in lines() {
            out.extend_from_slice(line);
        }
        out.extend_from_slice(END);
        out
    }
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
}
