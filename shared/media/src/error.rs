//! The one error type of `dialtone-media`.
//!
//! Every parser in this crate (RTP, RTCP, RFC 4733 telephone-events) and every
//! codec reports through [`MediaError`], so the ATA's media actor has a single
//! type to log and count. Variants say what was wrong and where, never just
//! "invalid".

use thiserror::Error;

/// Everything that can go wrong in `dialtone-media`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MediaError {
    /// The buffer ended before a field the format requires.
    #[error("{what} truncated: {len} bytes, need at least {needed}")]
    Truncated {
        /// Which structure was being read, e.g. "RTP header".
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes the structure needs.
        needed: usize,
    },
    /// RTP and RTCP are version 2 (RFC 3550 section 5.1); anything else is not ours.
    #[error("{what} has version {version}, expected 2")]
    BadVersion {
        /// "RTP" or "RTCP".
        what: &'static str,
        /// The version bits found.
        version: u8,
    },
    /// The padding count (last octet when P is set) is zero or longer than the packet.
    #[error("{what} padding of {padding} bytes does not fit a {len}-byte packet")]
    BadPadding {
        /// "RTP" or "RTCP".
        what: &'static str,
        /// The padding count found in the last octet.
        padding: usize,
        /// Length of the packet.
        len: usize,
    },
    /// An RTCP length field points past the end of the compound packet.
    #[error("RTCP packet type {packet_type} claims {claimed} bytes, only {available} remain")]
    BadRtcpLength {
        /// The packet type of the offending sub-packet.
        packet_type: u8,
        /// Bytes its length field claims.
        claimed: usize,
        /// Bytes left in the datagram.
        available: usize,
    },
    /// A value cannot be put on the wire, e.g. more than 15 CSRCs or 31 report blocks.
    #[error("cannot build {what}: {reason}")]
    Unbuildable {
        /// What was being built.
        what: &'static str,
        /// Why it does not fit.
        reason: &'static str,
    },
    /// A codec was handed a frame of the wrong length.
    #[error("{codec} expects {expected} samples per frame, got {got}")]
    FrameSize {
        /// The codec's SDP name.
        codec: &'static str,
        /// Samples it accepts.
        expected: usize,
        /// Samples it was given.
        got: usize,
    },
    /// The codec library refused to encode or decode.
    #[error("{codec} codec error: {detail}")]
    Codec {
        /// The codec's SDP name.
        codec: &'static str,
        /// The library's description.
        detail: String,
    },
}
