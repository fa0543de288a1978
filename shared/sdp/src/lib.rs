//! `dialtone-sdp`: the Session Description Protocol (RFC 4566, RFC 8866) and the offer/answer
//! model (RFC 3264), as a pure library for Dialtone's ATAs.
//!
//! No sockets, no clocks: text goes in, typed values come out, and back. The modules, in the
//! order a call uses them:
//!
//! - `parse` reads a body into a [`SessionDescription`] (lenient on line ends and unknown lines,
//!   strict on malformed values, every error naming its line);
//! - `session`, `media` and `attribute` are the typed description and its lookups
//!   (rtpmap, fmtp, ptime, direction, rtcp);
//! - `write` prints it back with CRLF line ends, so `parse(&sdp.to_string()) == Ok(sdp)`;
//! - `codec` names codecs and the RFC 3551 static payload types;
//! - `offer_answer` builds offers, answers offers and reads answers, for one audio stream;
//! - `reoffer` does version increments, hold and resume.
//!
//! The ATA's call actor owns the exchange: it builds or answers, sends the text in a SIP body,
//! and feeds the peer's body back in. An unreadable body is [`SdpError`] (400), an offer with no
//! common codec is [`NegotiationError::NoCommonCodec`] (488).
#![forbid(unsafe_code)]

mod attribute;
mod codec;
mod connection;
mod error;
mod media;
mod offer_answer;
mod parse;
mod reoffer;
mod session;
mod write;

#[cfg(test)]
mod test_data;

pub use attribute::{Attribute, Direction, Fmtp, Rtcp, RtpMap};
pub use codec::{
    static_payload, Codec, StaticPayload, DEFAULT_TELEPHONE_EVENT_PT, STATIC_PAYLOADS,
    TELEPHONE_EVENT,
};
pub use error::{NegotiationError, SdpError};
pub use media::MediaDescription;
pub use offer_answer::{
    build_offer, negotiate_answer, process_answer, Answer, LocalSession, NegotiatedAudio,
};
pub use parse::{parse, parse_bytes, MAX_SDP_LEN};
pub use reoffer::{hold_offer, increment_version, is_hold, reoffer, resume_offer};
pub use session::{
    Bandwidth, Connection, Origin, Repeat, SessionDescription, TimeUnit, TimeZone, Timing,
    TypedTime, UnknownLine,
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    /// The body of `fuzz/fuzz_targets/sdp.rs`, kept identical so `cargo test` proves it compiles
    /// and holds on the seeds even where the fuzz crate cannot be built.
    fn fuzz_one(data: &[u8]) {
        let Ok(sdp) = parse_bytes(data) else {
            return;
        };
        let printed = sdp.to_string();
        // LF input printed with CRLF can outgrow the cap it was read under; only then may the
        // round trip fail.
        if printed.len() <= MAX_SDP_LEN {
            assert_eq!(parse(&printed).as_ref(), Ok(&sdp), "{printed:?}");
        }
        let local = LocalSession::new("fuzz", 1, IpAddr::V4(Ipv4Addr::LOCALHOST), 4000);
        let codecs = [Codec::pcmu(), Codec::pcma(), Codec::telephone_event(101)];
        if let Ok(answer) = negotiate_answer(&sdp, &codecs, &local) {
            let answer_text = answer.description.to_string();
            assert_eq!(parse(&answer_text).as_ref(), Ok(&answer.description));
            let seen = process_answer(&sdp, &answer.description);
            let seen = seen.expect("the offerer can read our answer");
            assert_eq!(seen.media_index, answer.audio.media_index);
            assert_eq!(seen.codec, answer.audio.codec);
            assert_eq!(seen.telephone_event, answer.audio.telephone_event);
        }
    }

    #[test]
    fn fuzz_body_holds_on_the_seed_bodies() {
        fuzz_one(test_data::seed_offer().as_bytes());
        fuzz_one(test_data::seed_answer().as_bytes());
        fuzz_one(test_data::seed_offer().replace("\r\n", "\n").as_bytes());
        fuzz_one(b"");
        fuzz_one(b"v=0\n");
    }

    proptest! {
        #[test]
        fn fuzz_body_holds_on_mutated_seed_lines(
            lines in prop::collection::vec(
                prop::sample::select(test_data::seed_offer().lines().collect::<Vec<_>>()), 0..12),
            extra in "[a-z]=[ -~]{0,12}",
        ) {
            let mut text = String::from("v=0\r\n");
            for line in lines {
                text.push_str(line);
                text.push_str("\r\n");
            }
            text.push_str(&extra);
            fuzz_one(text.as_bytes());
        }
    }
}
