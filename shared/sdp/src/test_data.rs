//! The seed's SDP bodies, cut from the recorded SIP messages, for tests across the crate.

const OFFER_MESSAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/seed-flows/D-3-call-noauth/01.sip"
));
const ANSWER_MESSAGE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/seed-flows/D-3-call-noauth/07.sip"
));

fn body(message: &'static str) -> &'static str {
    message
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .expect("seed message has a body")
}

/// The Cisco ATA's INVITE offer: PCMU, G729, PCMA, telephone-event 101.
pub(crate) fn seed_offer() -> &'static str {
    body(OFFER_MESSAGE)
}

/// The far ATA's 200 OK answer: PCMU and telephone-event 101.
pub(crate) fn seed_answer() -> &'static str {
    body(ANSWER_MESSAGE)
}
