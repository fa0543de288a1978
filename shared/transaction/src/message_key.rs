//! The transaction key of a parsed message (RFC 3261 sections 17.1.3 and 17.2.3): the one place
//! where the proxy and the ATA turn a received request or response into a [`TransactionKey`].
//!
//! Two lessons learnt from peers live here, so that both binaries have them:
//! - RFC 4475's torture messages reuse a branch and sent-by for distinct requests, so the
//!   sent-by part of a key also carries the Call-ID and CSeq number (see [`server_key`]);
//! - the seed's Cisco ATA, an RFC 2543 peer, changes its Request-URI between an INVITE and the
//!   ACK of its 407, so RFC 2543 keys compare the Request-URI's scheme, user and host only
//!   (see `normalised_uri`).

use dialtone_sip::{HeaderName, Message, Uri};

use crate::key::{has_magic_cookie, KeyFields, TransactionKey};

/// The server transaction key of a received request, or `None` when it lacks a Via, CSeq,
/// Call-ID, From or To to build one from (the caller answers 400 or drops it).
pub fn server_key(request: &Message<'_>) -> Option<TransactionKey> {
    let method = request.method()?;
    let via = request.top_via().ok()?;
    let cseq = request.cseq().ok()?;
    let call_id = request.call_id().ok()?;
    // RFC 3261 section 17.2.3 matches by branch, sent-by and method alone, trusting clients to
    // make branches unique. Some do not: RFC 4475's unkscm/novelsc, cparam01/cparam02 and
    // escnull/regescrt are distinct requests sharing branch and sent-by, and the later one was
    // taken for a retransmission and never answered. A retransmission always repeats the
    // Call-ID and CSeq number (and a CANCEL or ACK shares both with its INVITE), so adding
    // them to the sent-by part of the key never splits a real transaction.
    if let Some(branch) = via.branch().filter(|b| has_magic_cookie(b)) {
        return Some(TransactionKey::rfc3261_server_with(
            method.as_str(),
            branch,
            |key| {
                key.push_lowercase(via.host);
                if let Some(port) = via.port {
                    key.push(":");
                    key.push_number(port);
                }
                key.push(" ");
                key.push_lowercase(call_id);
                key.push(" ");
                key.push_number(cseq.seq);
            },
        ));
    }
    let sent_by = match via.port {
        Some(port) => format!("{}:{port} {call_id} {}", via.host, cseq.seq),
        None => format!("{} {call_id} {}", via.host, cseq.seq),
    };
    let fields = KeyFields {
        method: method.as_str().to_string(),
        request_uri: request
            .request_uri()
            .map(normalised_uri)
            .unwrap_or_default(),
        top_via: request
            .values(HeaderName::Via)
            .next()
            .unwrap_or("")
            .to_string(),
        via_branch: via.branch().map(str::to_string),
        via_sent_by: sent_by,
        call_id: call_id.to_string(),
        from_tag: request.from().ok()?.tag().map(str::to_string),
        to_tag: request.to().ok()?.tag().map(str::to_string),
        cseq_number: cseq.seq,
        cseq_method: cseq.method.as_str().to_string(),
    };
    Some(TransactionKey::server(&fields))
}

/// The Request-URI as compared for RFC 2543 keys: scheme, user and host only.
///
/// RFC 3261 section 17.2.3 compares the whole Request-URI, but the seed's Cisco ATA acks a 407
/// with `sip:9000@192.168.2.81:5060` after inviting `sip:9000@192.168.2.81;user=phone` (D-4
/// messages 1 and 4): the default port and the `user` parameter come and go. Comparing user and
/// host keeps that ACK with its INVITE; Call-ID, tags, CSeq and the top Via still distinguish
/// transactions.
fn normalised_uri(uri: &Uri<'_>) -> String {
    match uri.as_sip() {
        Some(sip) => format!(
            "{}:{}@{}",
            if sip.secure { "sips" } else { "sip" },
            sip.user.unwrap_or(""),
            sip.host.to_ascii_lowercase()
        ),
        None => uri.as_str().to_string(),
    }
}

/// The client transaction key a response matches (17.1.3): its top Via branch and CSeq method.
/// A request we send is keyed the same way, from the branch we put in its top Via.
pub fn client_key(message: &Message<'_>) -> Option<TransactionKey> {
    let via = message.top_via().ok()?;
    let branch = via.branch()?;
    let cseq = message.cseq().ok()?;
    Some(TransactionKey::client(branch, cseq.method.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(path: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../tests/data/seed-flows/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn seed_ata_ack_to_407_matches_its_invite_by_the_rfc2543_rules() {
        // D-4: message 1 is the INVITE, 4 the ACK to the 407 (with the proxy's To tag).
        let invite = seed("D-4-call-auth/01.sip");
        let ack = seed("D-4-call-auth/04.sip");
        let invite = Message::parse(&invite).unwrap();
        let ack = Message::parse(&ack).unwrap();
        let invite_key = server_key(&invite).unwrap();
        assert!(!invite_key.is_rfc3261());
        assert_eq!(server_key(&ack).unwrap(), invite_key);
    }

    #[test]
    fn distinct_requests_reusing_a_branch_are_distinct_transactions() {
        // RFC 4475 sections 3.3.12 and 3.3.13: same branch and sent-by, different Call-ID.
        let first = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: cparam01\r\nCSeq: 2 REGISTER\r\n\r\n";
        let second = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: cparam02\r\nCSeq: 3 REGISTER\r\n\r\n";
        let a = server_key(&Message::parse(first).unwrap()).unwrap();
        let b = server_key(&Message::parse(second).unwrap()).unwrap();
        assert!(a.is_rfc3261());
        assert_ne!(a, b);
        // A retransmission and the CANCEL of an INVITE still match.
        assert_eq!(server_key(&Message::parse(first).unwrap()).unwrap(), a);
        let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\n\r\n";
        let cancel = b"CANCEL sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKx\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 4 CANCEL\r\n\r\n";
        let invite = server_key(&Message::parse(invite).unwrap()).unwrap();
        let cancel = server_key(&Message::parse(cancel).unwrap()).unwrap();
        assert_eq!(cancel.cancelled_invite(), Some(invite));
    }

    #[test]
    fn retry_with_credentials_is_a_new_transaction() {
        let first = seed("D-4-call-auth/01.sip");
        let second = seed("D-4-call-auth/05.sip");
        let a = server_key(&Message::parse(&first).unwrap()).unwrap();
        let b = server_key(&Message::parse(&second).unwrap()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_response_finds_the_client_transaction_of_the_request_it_answers() {
        let invite = b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKAbC\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\n\r\n";
        let ringing = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 4 INVITE\r\n\r\n";
        let cancelled = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bKabc\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>;tag=2\r\nCall-ID: c\r\nCSeq: 4 CANCEL\r\n\r\n";
        let sent = client_key(&Message::parse(invite).unwrap()).unwrap();
        assert_eq!(client_key(&Message::parse(ringing).unwrap()), Some(sent));
        assert_ne!(client_key(&Message::parse(cancelled).unwrap()), Some(sent));
    }
}
