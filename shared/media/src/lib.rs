//! `dialtone-media`: the media pieces of the Dialtone ATA, all sans-IO.
//!
//! Nothing here opens a socket or reads a clock; the ATA's media actor owns the
//! UDP sockets, the audio device and the 20 ms timer, and passes packets,
//! samples and `Instant`s in. A call's audio path through this crate:
//!
//! * send: handset PCM (or a [`ToneGenerator`]) → [`AudioCodec::encode`] →
//!   [`RtpSender::audio_frame`]; key presses → [`DtmfSender`] →
//!   [`RtpSender::event_frame`].
//! * receive: datagram → [`RtpPacket::parse`] → [`ReceiveStats::on_packet`] and
//!   [`JitterBuffer::push`] (or [`DtmfReceiver::on_packet`] for telephone-events)
//!   → every 20 ms [`JitterBuffer::pop_frame`] → handset.
//! * report: [`ReceiveStats::report_block`] → [`rtcp::report_compound`]; quality
//!   from [`mos::estimate_mos`].
//!
//! Modules: `rtp`, `rtcp`, `stats` (RFC 3550 appendix A), `mos` (E-model),
//! `g711`, `codec` (+ `opus_codec` with the `opus` feature, `g729_codec` with
//! the `g729` feature), `tone`,
//! `goertzel`, `dtmf` (RFC 4733), `jitter`, `mixer` (three-way calling),
//! `error`.
#![forbid(unsafe_code)]

pub mod codec;
pub mod dtmf;
pub mod error;
pub mod g711;
#[cfg(feature = "g729")]
pub mod g729_codec;
pub mod goertzel;
pub mod jitter;
pub mod mixer;
pub mod mos;
#[cfg(feature = "opus")]
pub mod opus_codec;
pub mod rtcp;
pub mod rtp;
pub mod stats;
pub mod tone;

/// The codec interface and G.711 codecs; 8 kHz PCM in, payload bytes out.
pub use codec::{
    g711_for_payload_type, AudioCodec, Pcma, Pcmu, FRAME_DURATION, FRAME_SAMPLES, PCM_SAMPLE_RATE,
};
/// DTMF keys and RFC 4733 telephone-event sending and receiving.
pub use dtmf::{DtmfDigit, DtmfPacket, DtmfReceiver, DtmfSender, TelephoneEvent, FLASH_EVENT};
/// The crate's single error type.
pub use error::MediaError;
/// G.729 through libbcg729 (feature `g729`).
#[cfg(feature = "g729")]
pub use g729_codec::G729Codec;
/// Tone detection by Goertzel filter, and in-band DTMF detection.
pub use goertzel::{tone_amplitude, DtmfDetector};
/// The receive jitter buffer with packet-loss concealment.
pub use jitter::{FrameKind, JitterBuffer, JitterConfig, JitterStats, PlayoutFrame};
/// The three-way-calling mixer: each party hears every other party, not itself.
pub use mixer::{mix_for_each, ConferenceMixer};
/// Call-quality estimate (simplified ITU-T G.107 E-model).
pub use mos::{estimate_mos, QualityInputs};
/// Opus through libopus (feature `opus`).
#[cfg(feature = "opus")]
pub use opus_codec::OpusCodec;
/// RTCP packets, compound building and parsing.
pub use rtcp::{ReportBlock, RtcpPacket, SdesChunk, SenderInfo};
/// RTP packet parsing and building, and the stamping sender.
pub use rtp::{RtpHeader, RtpPacket, RtpSender};
/// RFC 3550 receive statistics.
pub use stats::ReceiveStats;
/// Call-progress and DTMF tone generation.
pub use tone::{Tone, ToneGenerator};
