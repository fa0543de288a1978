//! RTP packets (RFC 3550 section 5.1): a zero-copy parsed view, a builder, and
//! the [`RtpSender`] that stamps sequence numbers, timestamps and the SSRC.
//!
//! The media actor parses each received datagram with [`RtpPacket::parse`] and
//! hands the view to the jitter buffer (or to the DTMF receiver when the payload
//! type is telephone-event). On the sending side it asks [`RtpSender`] for the
//! bytes of each 20 ms frame. Nothing here touches a socket or a clock.

use rand::{Rng, SeedableRng};

use crate::dtmf::DtmfPacket;
use crate::error::MediaError;

/// Length of the fixed RTP header.
pub const RTP_HEADER_LEN: usize = 12;
/// RFC 3550 allows at most 15 contributing sources (the CC field is 4 bits).
pub const MAX_CSRCS: usize = 15;

/// A header extension (RFC 3550 section 5.3.1) as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpExtensionRef<'a> {
    /// The profile-defined 16 bits (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension body, a whole number of 32-bit words.
    pub data: &'a [u8],
}

/// A parsed RTP packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// M bit: for audio, the first packet of a talkspurt.
    pub marker: bool,
    /// 7-bit payload type.
    pub payload_type: u8,
    /// 16-bit sequence number; wraps.
    pub sequence: u16,
    /// Sampling instant of the first octet, in the payload's clock.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    csrc_bytes: &'a [u8],
    /// Header extension, when the X bit was set.
    pub extension: Option<RtpExtensionRef<'a>>,
    /// The payload with any padding removed.
    pub payload: &'a [u8],
    /// Padding octets that followed the payload (0 when P was clear).
    pub padding: u8,
}

impl<'a> RtpPacket<'a> {
    /// Parses one RTP datagram without copying.
    ///
    /// Every length is checked before it is used, so arbitrary bytes from the
    /// network give an error, never a panic.
    pub fn parse(buf: &'a [u8]) -> Result<Self, MediaError> {
        let truncated = |needed| MediaError::Truncated {
            what: "RTP packet",
            len: buf.len(),
            needed,
        };
        let fixed = buf.get(..RTP_HEADER_LEN).ok_or(truncated(RTP_HEADER_LEN))?;
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(MediaError::BadVersion {
                what: "RTP",
                version,
            });
        }
        let has_padding = fixed[0] & 0x20 != 0;
        let has_extension = fixed[0] & 0x10 != 0;
        let csrc_count = usize::from(fixed[0] & 0x0f);
        let mut offset = RTP_HEADER_LEN + 4 * csrc_count;
        let csrc_bytes = buf.get(RTP_HEADER_LEN..offset).ok_or(truncated(offset))?;

        let extension = if has_extension {
            let head = buf.get(offset..offset + 4).ok_or(truncated(offset + 4))?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let end = offset + 4 + 4 * words;
            let data = buf.get(offset + 4..end).ok_or(truncated(end))?;
            offset = end;
            Some(RtpExtensionRef { profile, data })
        } else {
            None
        };

        let mut end = buf.len();
        let mut padding = 0u8;
        if has_padding {
            // RFC 3550 5.1: the last octet counts the padding, itself included.
            padding = buf[end - 1];
            let pad = usize::from(padding);
            if pad == 0 || pad > end - offset {
                return Err(MediaError::BadPadding {
                    what: "RTP",
                    padding: pad,
                    len: buf.len(),
                });
            }
            end -= pad;
        }

        Ok(RtpPacket {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7f,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            csrc_bytes,
            extension,
            payload: &buf[offset..end],
            padding,
        })
    }

    /// The contributing sources, in wire order.
    pub fn csrcs(&self) -> impl Iterator<Item = u32> + 'a {
        self.csrc_bytes
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// An owned copy of the header, e.g. to rebuild or compare the packet.
    pub fn header(&self) -> RtpHeader {
        RtpHeader {
            marker: self.marker,
            payload_type: self.payload_type,
            sequence: self.sequence,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            csrcs: self.csrcs().collect(),
            extension: self.extension.map(|e| RtpExtension {
                profile: e.profile,
                data: e.data.to_vec(),
            }),
        }
    }
}

/// An owned header extension for building packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// The profile-defined 16 bits.
    pub profile: u16,
    /// The body; its length must be a multiple of 4 (RFC 3550 5.3.1 counts words).
    pub data: Vec<u8>,
}

/// An owned RTP header, the input of [`RtpHeader::build`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RtpHeader {
    /// M bit.
    pub marker: bool,
    /// 7-bit payload type; values above 127 are refused by `build`.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Up to 15 contributing sources.
    pub csrcs: Vec<u32>,
    /// Optional header extension.
    pub extension: Option<RtpExtension>,
}

impl RtpHeader {
    /// Writes header, `payload` and `padding` octets of padding (0 for none)
    /// onto the end of `out`.
    pub fn write(&self, payload: &[u8], padding: u8, out: &mut Vec<u8>) -> Result<(), MediaError> {
        let unbuildable = |reason| MediaError::Unbuildable {
            what: "RTP packet",
            reason,
        };
        if self.payload_type > 0x7f {
            return Err(unbuildable("payload type is 7 bits"));
        }
        if self.csrcs.len() > MAX_CSRCS {
            return Err(unbuildable("more than 15 CSRCs"));
        }
        if let Some(ext) = &self.extension {
            if ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX) {
                return Err(unbuildable(
                    "extension must be a whole number of words, at most 65535",
                ));
            }
        }
        // csrcs.len() <= 15 was checked above, so the cast keeps every bit.
        let mut first = 0x80 | self.csrcs.len() as u8;
        if padding > 0 {
            first |= 0x20;
        }
        if self.extension.is_some() {
            first |= 0x10;
        }
        out.push(first);
        out.push(u8::from(self.marker) << 7 | self.payload_type);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in &self.csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            // Length was checked to fit 16 bits above.
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(&ext.data);
        }
        out.extend_from_slice(payload);
        if padding > 0 {
            out.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
            out.push(padding);
        }
        Ok(())
    }

    /// Builds a whole packet into a new buffer.
    pub fn build(&self, payload: &[u8], padding: u8) -> Result<Vec<u8>, MediaError> {
        let mut out = Vec::with_capacity(RTP_HEADER_LEN + 4 * self.csrcs.len() + payload.len());
        self.write(payload, padding, &mut out)?;
        Ok(out)
    }
}

/// Stamps outgoing RTP packets for one media stream.
///
/// Sequence number, timestamp and SSRC start at random values (RFC 3550 5.1
/// asks for random starts so that plaintext attacks on SRTP are harder and
/// streams are told apart). The RNG is the caller's, so tests seed it.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    next_timestamp: u32,
    samples_per_frame: u32,
    talkspurt_start: bool,
    packets_sent: u32,
    octets_sent: u32,
}

impl RtpSender {
    /// A sender for `payload_type` whose RTP clock advances `samples_per_frame`
    /// per 20 ms frame (160 for G.711 at 8 kHz, 960 for Opus at 48 kHz).
    pub fn new<R: Rng + ?Sized>(payload_type: u8, samples_per_frame: u32, rng: &mut R) -> Self {
        RtpSender {
            ssrc: rng.gen(),
            payload_type: payload_type & 0x7f,
            next_sequence: rng.gen(),
            next_timestamp: rng.gen(),
            samples_per_frame,
            talkspurt_start: true,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// Like [`RtpSender::new`] with a ChaCha RNG from `seed`, for deterministic tests.
    pub fn with_seed(payload_type: u8, samples_per_frame: u32, seed: u64) -> Self {
        Self::new(
            payload_type,
            samples_per_frame,
            &mut rand::rngs::StdRng::seed_from_u64(seed),
        )
    }

    /// This stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// Timestamp the next audio frame will carry; also the start timestamp of
    /// a DTMF event that begins now (RFC 4733 2.5.1.2).
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Packets sent so far, for the RTCP sender report.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Payload octets sent so far, for the RTCP sender report.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// Builds the packet for one 20 ms frame of encoded audio and advances the
    /// clock. The first frame after silence carries the marker bit (RFC 3551 4.1).
    pub fn audio_frame(&mut self, payload: &[u8]) -> Vec<u8> {
        let marker = std::mem::replace(&mut self.talkspurt_start, false);
        let packet = self.stamp(self.payload_type, marker, self.next_timestamp, payload);
        self.next_timestamp = self.next_timestamp.wrapping_add(self.samples_per_frame);
        packet
    }

    /// Records a 20 ms frame that was not sent (silence suppression): the clock
    /// moves on and the next audio frame starts a new talkspurt.
    pub fn silent_frame(&mut self) {
        self.next_timestamp = self.next_timestamp.wrapping_add(self.samples_per_frame);
        self.talkspurt_start = true;
    }

    /// Builds one RFC 4733 telephone-event packet in this stream's sequence
    /// space, sent in place of a 20 ms audio frame, so the audio clock moves on
    /// by one frame while the event keeps its own start timestamp.
    pub fn event_frame(&mut self, event_payload_type: u8, event: &DtmfPacket) -> Vec<u8> {
        let packet = self.stamp(
            event_payload_type & 0x7f,
            event.marker,
            event.timestamp,
            &event.payload,
        );
        self.next_timestamp = self.next_timestamp.wrapping_add(self.samples_per_frame);
        packet
    }

    fn stamp(&mut self, payload_type: u8, marker: bool, timestamp: u32, payload: &[u8]) -> Vec<u8> {
        let header = RtpHeader {
            marker,
            payload_type,
            sequence: self.next_sequence,
            timestamp,
            ssrc: self.ssrc,
            csrcs: Vec::new(),
            extension: None,
        };
        let mut out = Vec::with_capacity(RTP_HEADER_LEN + payload.len());
        // No CSRCs, no extension and a 7-bit payload type: writing cannot fail.
        if header.write(payload, 0, &mut out).is_err() {
            out.clear();
        }
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload.len() as u32);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 0xfffe,
            timestamp: 0xdead_beef,
            ssrc: 0x1234_5678,
            csrcs: vec![1, 2, 3],
            extension: Some(RtpExtension {
                profile: 0xbede,
                data: vec![0x10, 0xaa, 0, 0],
            }),
        }
    }

    #[test]
    fn a_minimal_pcmu_packet_parses_field_by_field() {
        let bytes = [
            0x80, 0x80, 0x00, 0x07, 0x00, 0x00, 0x01, 0x40, 0xca, 0xfe, 0xba, 0xbe, 0xff, 0xff,
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.sequence, 7);
        assert_eq!(p.timestamp, 320);
        assert_eq!(p.ssrc, 0xcafe_babe);
        assert_eq!(p.payload, &[0xff, 0xff]);
        assert_eq!(p.csrcs().count(), 0);
        assert_eq!(p.extension, None);
    }

    #[test]
    fn csrcs_extension_and_padding_survive_a_round_trip() {
        let header = sample_header();
        let bytes = header.build(b"hello", 3).unwrap();
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p.header(), header);
        assert_eq!(p.payload, b"hello");
        assert_eq!(p.padding, 3);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn version_one_is_refused() {
        let mut bytes = sample_header().build(b"x", 0).unwrap();
        bytes[0] = (bytes[0] & 0x3f) | 0x40;
        assert_eq!(
            RtpPacket::parse(&bytes),
            Err(MediaError::BadVersion {
                what: "RTP",
                version: 1
            })
        );
    }

    #[test]
    fn a_csrc_list_longer_than_the_packet_is_truncated() {
        let mut bytes = RtpHeader::default().build(&[], 0).unwrap();
        bytes[0] |= 0x0f;
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(MediaError::Truncated { needed: 72, .. })
        ));
    }

    #[test]
    fn zero_padding_count_is_refused() {
        let mut bytes = RtpHeader::default().build(&[1, 2, 0], 0).unwrap();
        bytes[0] |= 0x20;
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(MediaError::BadPadding { .. })
        ));
    }

    #[test]
    fn padding_reaching_into_the_header_is_refused() {
        let mut bytes = RtpHeader::default().build(&[1, 2, 200], 0).unwrap();
        bytes[0] |= 0x20;
        assert!(matches!(
            RtpPacket::parse(&bytes),
            Err(MediaError::BadPadding { padding: 200, .. })
        ));
    }

    #[test]
    fn building_refuses_sixteen_csrcs_and_an_eight_bit_payload_type() {
        let mut h = RtpHeader {
            csrcs: vec![0; 16],
            ..RtpHeader::default()
        };
        assert!(h.build(&[], 0).is_err());
        h.csrcs.clear();
        h.payload_type = 200;
        assert!(h.build(&[], 0).is_err());
    }

    #[test]
    fn sender_steps_sequence_by_one_and_timestamp_by_160_per_frame() {
        let mut s = RtpSender::with_seed(0, 160, 42);
        let first = s.audio_frame(&[0xff; 160]);
        let second = s.audio_frame(&[0xff; 160]);
        let a = RtpPacket::parse(&first).unwrap();
        let b = RtpPacket::parse(&second).unwrap();
        assert_eq!(b.sequence, a.sequence.wrapping_add(1));
        assert_eq!(b.timestamp, a.timestamp.wrapping_add(160));
        assert_eq!(a.ssrc, s.ssrc());
        assert_eq!(b.ssrc, s.ssrc());
        assert_eq!(s.packets_sent(), 2);
        assert_eq!(s.octets_sent(), 320);
    }

    #[test]
    fn same_seed_gives_same_start_and_different_seeds_differ() {
        let a = RtpSender::with_seed(0, 160, 1);
        let b = RtpSender::with_seed(0, 160, 1);
        let c = RtpSender::with_seed(0, 160, 2);
        assert_eq!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp()),
            (b.ssrc(), b.next_sequence(), b.next_timestamp())
        );
        assert_ne!(
            (a.ssrc(), a.next_sequence(), a.next_timestamp()),
            (c.ssrc(), c.next_sequence(), c.next_timestamp())
        );
    }

    #[test]
    fn marker_is_set_on_the_first_frame_of_each_talkspurt_only() {
        let mut s = RtpSender::with_seed(0, 160, 7);
        let marks: Vec<bool> = (0..3)
            .map(|_| RtpPacket::parse(&s.audio_frame(&[0])).unwrap().marker)
            .collect();
        assert_eq!(marks, [true, false, false]);
        let before = s.next_timestamp();
        s.silent_frame();
        s.silent_frame();
        let resumed = s.audio_frame(&[0]);
        let p = RtpPacket::parse(&resumed).unwrap();
        assert!(p.marker);
        assert_eq!(p.timestamp, before.wrapping_add(320));
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RtpPacket::parse(&bytes);
        }

        #[test]
        fn build_then_parse_gives_back_the_same_packet(
            marker: bool,
            payload_type in 0u8..128,
            sequence: u16,
            timestamp: u32,
            ssrc: u32,
            csrcs in proptest::collection::vec(any::<u32>(), 0..=15),
            ext in proptest::option::of((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..4).prop_map(|w| w.repeat(4)))),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            padding in 0u8..=255,
        ) {
            let header = RtpHeader {
                marker, payload_type, sequence, timestamp, ssrc, csrcs,
                extension: ext.map(|(profile, data)| RtpExtension { profile, data }),
            };
            let bytes = header.build(&payload, padding).unwrap();
            let parsed = RtpPacket::parse(&bytes).unwrap();
            prop_assert_eq!(parsed.header(), header);
            prop_assert_eq!(parsed.payload, &payload[..]);
            prop_assert_eq!(parsed.padding, padding);
        }
    }
}
