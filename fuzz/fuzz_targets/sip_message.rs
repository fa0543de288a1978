//! Fuzzes the SIP message layer the way the proxy uses it on every datagram: parse, read every
//! typed header, run the server checks, and for a message that parses, make the forwarding edits
//! (RFC 3261 sections 16.6 and 16.7) and parse the result again.
//!
//! Nothing here may panic, and an edited message must still parse: a proxy that can read a
//! request must be able to read what it forwards. The only allowed exceptions are the size and
//! header-count caps, which two added header lines can legitimately cross.

#![no_main]

use dialtone_sip::headers::parse_contact_expires;
use dialtone_sip::{
    Contacts, HeaderName, Message, ParseError, StreamFramer, MAX_HEADERS, MAX_MESSAGE_SIZE,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::parse(data) {
        read_everything(&message);
        forward_and_reparse(&message);
    }
    // The stream framer sees the same octets as a TCP stream.
    let mut framer = StreamFramer::new();
    framer.push(data);
    while let Ok(Some(_)) = framer.next_frame() {}
});

/// Calls every accessor, so that a value parser that panics on some header is found.
fn read_everything(message: &Message<'_>) {
    let _ = (message.method(), message.status(), message.reason());
    if let Some(uri) = message.request_uri() {
        let _ = (uri.as_str(), uri.user(), uri.to_string());
        if let Some(sip) = uri.as_sip() {
            let _ = (sip.user_unescaped(), sip.host_ip(), sip.port_or_default());
            let _ = (sip.transport(), sip.maddr(), sip.is_loose_router());
        }
    }
    for via in message.vias().flatten() {
        let _ = (
            via.branch(),
            via.has_rfc3261_branch(),
            via.received(),
            via.rport(),
        );
        let _ = (
            via.maddr(),
            via.ttl(),
            via.port_or_default(),
            via.is_reliable(),
        );
    }
    let _ = message.top_via();
    for name_addr in [message.from(), message.to()].into_iter().flatten() {
        let _ = (
            name_addr.tag(),
            name_addr.uri.user(),
            name_addr.params.iter().count(),
        );
    }
    let _ = (message.call_id(), message.cseq(), message.max_forwards());
    let _ = (
        message.expires(),
        message.min_expires(),
        message.retry_after(),
        message.content_type(),
    );
    if let Ok(Contacts::List(list)) = message.contacts() {
        for contact in list {
            if let Some(Some(expires)) = contact.params.get("expires") {
                let _ = parse_contact_expires(expires);
            }
        }
    }
    let _ = (
        message.routes(),
        message.top_route(),
        message.record_routes(),
    );
    for name in [
        HeaderName::Require,
        HeaderName::ProxyRequire,
        HeaderName::Supported,
        HeaderName::Allow,
        HeaderName::Unsupported,
    ] {
        let _ = message.tokens(name).count();
    }
    let _ = message.header_value_by_name("X-Unknown");
    let _ = (message.body(), message.head(), message.content_length());
    let _ = (message.check_request(), message.check_response());
    if let Err(error) = message.check_request() {
        let _ = (error.status_code(), error.reason_phrase(), error.kind());
    }
}

/// Forwarding edits, then a second parse that must succeed.
fn forward_and_reparse(message: &Message<'_>) {
    let mut editor = message.edit();
    if message.is_request() {
        editor
            .insert_header_first("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz")
            .insert_header_first("Record-Route", "<sip:192.0.2.1:5060;lr>")
            .decrement_max_forwards()
            .remove_first_value(HeaderName::Route)
            .set_request_uri("sip:fuzz@192.0.2.2:5062")
            .ensure_content_length();
    } else {
        editor.remove_top_via().ensure_content_length();
    }
    let out = editor.finish();
    match Message::parse(&out) {
        Ok(again) => {
            assert_eq!(again.is_request(), message.is_request());
            assert_eq!(again.body(), message.body());
            read_everything(&again);
        }
        // Two more header lines can cross the caps; that is a limit, not a fault.
        Err(ParseError::TooManyHeaders) if message.headers().len() + 3 > MAX_HEADERS => {}
        Err(ParseError::TooLarge { .. }) if out.len() > MAX_MESSAGE_SIZE => {}
        Err(error) => panic!(
            "the edited message no longer parses: {error:?}\n{}",
            String::from_utf8_lossy(&out)
        ),
    }
}
