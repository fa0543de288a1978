//! The two requests the transaction layer derives from an INVITE it sent, the same way for the
//! proxy's branches and the ATA's calls:
//!
//! - the ACK a client INVITE transaction sends for a 300-699 final (RFC 3261 section
//!   17.1.1.3). It belongs to the transaction, not to the dialog: same Request-URI, top Via (so
//!   the same branch), From, Call-ID, CSeq number and Route as the INVITE, with the To of the
//!   response, which carries the answering side's tag. The ACK of a 2xx is a new request of
//!   the dialog (13.2.2.4) and is not built here;
//! - the CANCEL of a pending INVITE (section 9.1), with which the proxy cancels its branches
//!   (16.10) and the ATA its own unanswered call. A CANCEL is its own non-INVITE transaction,
//!   yet it must match the INVITE at the next hop (9.2): the same fields as the ACK above,
//!   with the INVITE's own To, CANCEL as the CSeq method, and no body.
//!
//! Both come back as builders, so that a user agent can add its own headers (User-Agent, say)
//! before writing them.

use dialtone_sip::{HeaderName, Message, RequestBuilder};

/// The ACK for `response`, a 300-699 final to `invite`. `None` when either message lacks a
/// header the ACK copies.
pub fn ack_for_non_2xx(invite: &Message<'_>, response: &Message<'_>) -> Option<RequestBuilder> {
    same_transaction_as(invite, "ACK", response.header_value(HeaderName::To)?)
}

/// The CANCEL of `invite`. `None` when the INVITE lacks a header the CANCEL copies.
pub fn cancel_for(invite: &Message<'_>) -> Option<RequestBuilder> {
    same_transaction_as(invite, "CANCEL", invite.header_value(HeaderName::To)?)
}

/// A `method` request that matches `invite`'s transaction: its Request-URI, top Via, Route,
/// From, Call-ID and CSeq number, with `to` as To.
fn same_transaction_as(invite: &Message<'_>, method: &str, to: &str) -> Option<RequestBuilder> {
    let uri = invite.request_uri()?.as_str();
    let mut builder = RequestBuilder::new(method, uri)
        .header("Via", invite.values(HeaderName::Via).next()?)
        .header("Max-Forwards", "70");
    for route in invite.headers_named(HeaderName::Route) {
        builder = builder.header("Route", route.value);
    }
    let cseq = invite.cseq().ok()?.seq;
    Some(
        builder
            .header("From", invite.header_value(HeaderName::From)?)
            .header("To", to)
            .header("Call-ID", invite.header_value(HeaderName::CallId)?)
            .header("CSeq", &format!("{cseq} {method}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message_key::server_key;

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
