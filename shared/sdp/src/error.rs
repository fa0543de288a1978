//! The crate's errors: [`SdpError`] for text that is not a session description we can read, and
//! [`NegotiationError`] for an offer/answer exchange that cannot produce a call.
//!
//! They are kept apart because the edge turns them into different things: an unreadable body is a
//! `400 Bad Request`, a readable offer with nothing in common is a `488 Not Acceptable Here`
//! (RFC 3261 section 13.3.1.1, RFC 3264 section 6).

use thiserror::Error;

/// Why a session description (or one of its typed attribute values) could not be read.
///
/// Line numbers count from 1 within the SDP body, so a message can point at the exact line a
/// peer got wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SdpError {
    /// The body is bigger than [`crate::MAX_SDP_LEN`]; refused before any parsing.
    #[error("session description is {len} bytes, more than the {max} byte limit")]
    TooLarge {
        /// Length of the input in bytes.
        len: usize,
        /// The limit it went over.
        max: usize,
    },
    /// The body has no lines at all.
    #[error("session description is empty")]
    Empty,
    /// A line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 {
        /// 1-based line number.
        line: usize,
    },
    /// A line could not be read; `kind` is its type letter (the character before `=`).
    #[error("line {line} ({kind}=): {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line's type letter, or its first character when it has no valid type.
        kind: char,
        /// What is wrong with it.
        reason: String,
    },
    /// A line the description must have is absent.
    #[error("missing required {kind}= line")]
    Missing {
        /// The absent line's type letter.
        kind: char,
    },
    /// The value of a known attribute (`rtpmap`, `fmtp`, `rtcp`, ...) is malformed.
    #[error("bad a={name} value: {reason}")]
    BadAttribute {
        /// The attribute's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why an offer or answer could not be made or used (RFC 3264).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NegotiationError {
    /// No audio stream has a codec both sides support: answer `488 Not Acceptable Here`.
    #[error("no common audio codec")]
    NoCommonCodec,
    /// An audio stream we would accept has no `c=` line at media or session level.
    #[error("media line {media_index} has no connection address")]
    MissingConnection {
        /// 0-based index of the `m=` line.
        media_index: usize,
    },
    /// The answer does not have one `m=` line per offered `m=` line (RFC 3264 section 6).
    #[error("answer has {answered} media lines but the offer had {offered}")]
    MediaCountMismatch {
        /// `m=` lines in the offer.
        offered: usize,
        /// `m=` lines in the answer.
        answered: usize,
    },
    /// A local codec list uses one payload type number for two codecs.
    #[error("payload type {payload_type} is used by more than one local codec")]
    DuplicatePayloadType {
        /// The repeated payload type.
        payload_type: u8,
    },
    /// A local codec list has no audio codec (telephone-event alone carries no voice).
    #[error("no local audio codec to offer")]
    NoLocalCodec,
    /// The session has no audio `m=` line to put on hold or resume.
    #[error("no audio media line")]
    NoAudio,
    /// The `o=` session version cannot be incremented any further.
    #[error("session version would overflow")]
    VersionOverflow,
}
