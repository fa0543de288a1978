//! The ACK a client INVITE transaction sends for a 300-699 final (RFC 3261 section 17.1.1.3).
//!
//! It belongs to the transaction, not to the dialog: same Request-URI, top Via (so the same
//! branch), From, Call-ID, CSeq number and Route as the INVITE, with the To of the response
//! (which carries the answering side's tag). The ACK of a 2xx is a new request of the dialog
//! (13.2.2.4) and is not built here.

use dialtone_sip::{HeaderName, Message, RequestBuilder};

/// The ACK for `response`, a 300-699 final to `invite`, as a builder so that a user agent can
/// add its own headers (User-Agent, say) before writing it. `None` when either message lacks a
/// header the ACK copies.
pub fn ack_for_non_2xx(invite: &Message<'_>, response: &Message<'_>) -> Option<RequestBuilder> {
    let uri = invite.request_uri()?.as_str();
    let mut builder = RequestBuilder::new("ACK", uri)
        .header("Via", invite.values(HeaderName::Via).next()?)
        .header("Max-Forwards", "70");
    for route in invite.headers_named(HeaderName::Route) {
        builder = builder.header("Route", route.value);
    }
    let cseq = invite.cseq().ok()?.seq;
    Some(
        builder
            .header("From", invite.header_value(HeaderName::From)?)
            .header("To", response.header_value(HeaderName::To)?)
            .header("Call-ID", invite.header_value(HeaderName::CallId)?)
            .header("CSeq", &format!("{cseq} ACK")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ack_of_a_failure_keeps_the_invites_branch_and_routes_and_takes_the_responses_to() {
        let invite = b"INVITE sip:9000@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.0,SIP/2.0/UDP 127.0.0.1:5061\r\nRoute: <sip:next;lr>\r\nRoute: <sip:after;lr>\r\nFrom: <sip:8000@x>;tag=1\r\nTo: <sip:9000@x>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let response = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.0\r\nFrom: <sip:8000@x>;tag=1\r\nTo: <sip:9000@x>;tag=b\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\n\r\n";
        let (invite, response) = (
            Message::parse(invite).unwrap(),
            Message::parse(response).unwrap(),
        );
        let ack = ack_for_non_2xx(&invite, &response).unwrap().build();
        let a = Message::parse(&ack).unwrap();
        a.check_request().unwrap();
        assert_eq!(a.method(), Some(dialtone_sip::Method::Ack));
        assert_eq!(a.request_uri().unwrap().as_str(), "sip:9000@127.0.0.1:5062");
        assert_eq!(a.vias().count(), 1);
        assert_eq!(a.top_via().unwrap().branch(), Some("z9hG4bKabc.0"));
        assert_eq!(a.to().unwrap().tag(), Some("b"));
        assert_eq!(a.cseq().unwrap().seq, 7);
        assert_eq!(a.routes().unwrap().len(), 2);
    }
}
