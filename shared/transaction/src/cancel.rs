//! The CANCEL of a pending INVITE (RFC 3261 section 9.1): the proxy cancels its branches with
//! it (16.10) and the ATA its own unanswered call.
//!
//! A CANCEL is its own non-INVITE transaction, yet it must match the INVITE at the next hop
//! (9.2): same Request-URI, top Via (so the same branch), From, To, Call-ID and CSeq number,
//! with CANCEL as the CSeq method, and the INVITE's Route headers. It carries no body.

use dialtone_sip::{HeaderName, Message, RequestBuilder};

/// The CANCEL of `invite`, as a builder so that a user agent can add its own headers before
/// writing it. `None` when the INVITE lacks a header the CANCEL copies.
pub fn cancel_for(invite: &Message<'_>) -> Option<RequestBuilder> {
    let uri = invite.request_uri()?.as_str();
    let mut builder = RequestBuilder::new("CANCEL", uri)
        .header("Via", invite.values(HeaderName::Via).next()?)
        .header("Max-Forwards", "70");
    for route in invite.headers_named(HeaderName::Route) {
        builder = builder.header("Route", route.value);
    }
    let cseq = invite.cseq().ok()?.seq;
    Some(
        builder
            .header("From", invite.header_value(HeaderName::From)?)
            .header("To", invite.header_value(HeaderName::To)?)
            .header("Call-ID", invite.header_value(HeaderName::CallId)?)
            .header("CSeq", &format!("{cseq} CANCEL")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_key::server_key;

    #[test]
    fn a_cancel_matches_its_invite_at_the_next_hop() {
        let invite = b"INVITE sip:9000@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061\r\nRoute: <sip:next;lr>\r\nFrom: <sip:8000@x>;tag=1\r\nTo: <sip:9000@x>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";
        let invite = Message::parse(invite).unwrap();
        let bytes = cancel_for(&invite).unwrap().build();
        let cancel = Message::parse(&bytes).unwrap();
        cancel.check_request().unwrap();
        assert_eq!(cancel.method(), Some(dialtone_sip::Method::Cancel));
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.routes().unwrap().len(), 1);
        assert_eq!(cancel.body(), b"");
        assert_eq!(
            server_key(&cancel).unwrap().cancelled_invite(),
            server_key(&invite)
        );
    }
}
