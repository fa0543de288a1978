//! Codecs as offer/answer sees them: a [`Codec`] (name, clock rate, channels, payload type,
//! fmtp), the static payload types of RFC 3551 section 6, and the codec lists an ATA offers.
//!
//! `media.rs` turns an `m=` line into codecs through this table; `offer_answer.rs` matches codecs
//! by name, clock rate and channels, never by payload number, because dynamic numbers differ
//! between peers (RFC 3264 section 6.1).

use crate::attribute::RtpMap;

/// The RFC 4733 encoding name for DTMF events.
pub const TELEPHONE_EVENT: &str = "telephone-event";

/// The payload type the seed's Cisco ATAs (and most phones) use for telephone-event.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;

/// One codec on one `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Encoding name, e.g. `PCMU`; compared without regard to case.
    pub name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels.
    pub channels: u16,
    /// RTP payload type number.
    pub payload_type: u8,
    /// `a=fmtp` parameters, verbatim.
    pub fmtp: Option<String>,
}

/// An entry of the RFC 3551 static payload table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticPayload {
    /// The payload type number.
    pub payload_type: u8,
    /// The encoding name.
    pub name: &'static str,
    /// The clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count (1 for video entries, where it means nothing).
    pub channels: u16,
}

/// RFC 3551 tables 4 and 5, the payload types a peer may use without an `a=rtpmap`.
pub const STATIC_PAYLOADS: &[StaticPayload] = &[
    sp(0, "PCMU", 8000, 1),
    sp(3, "GSM", 8000, 1),
    sp(4, "G723", 8000, 1),
    sp(5, "DVI4", 8000, 1),
    sp(6, "DVI4", 16000, 1),
    sp(7, "LPC", 8000, 1),
    sp(8, "PCMA", 8000, 1),
    // G.722 samples at 16 kHz but RFC 3551 section 4.5.2 fixes its RTP clock at 8000 Hz, an
    // error kept for compatibility; matching on 8000 is what interoperates.
    sp(9, "G722", 8000, 1),
    sp(10, "L16", 44100, 2),
    sp(11, "L16", 44100, 1),
    sp(12, "QCELP", 8000, 1),
    sp(13, "CN", 8000, 1),
    sp(14, "MPA", 90000, 1),
    sp(15, "G728", 8000, 1),
    sp(16, "DVI4", 11025, 1),
    sp(17, "DVI4", 22050, 1),
    sp(18, "G729", 8000, 1),
    sp(25, "CelB", 90000, 1),
    sp(26, "JPEG", 90000, 1),
    sp(28, "nv", 90000, 1),
    sp(31, "H261", 90000, 1),
    sp(32, "MPV", 90000, 1),
    sp(33, "MP2T", 90000, 1),
    sp(34, "H263", 90000, 1),
];

const fn sp(payload_type: u8, name: &'static str, clock_rate: u32, channels: u16) -> StaticPayload {
    StaticPayload {
        payload_type,
        name,
        clock_rate,
        channels,
    }
}

/// The static table entry for `payload_type`, if it has one.
pub fn static_payload(payload_type: u8) -> Option<&'static StaticPayload> {
    STATIC_PAYLOADS
        .iter()
        .find(|s| s.payload_type == payload_type)
}

impl StaticPayload {
    /// This entry as a codec without fmtp.
    pub fn codec(&self) -> Codec {
        Codec::new(self.name, self.clock_rate, self.channels, self.payload_type)
    }
}

impl Codec {
    /// A codec without fmtp parameters.
    pub fn new(name: impl Into<String>, clock_rate: u32, channels: u16, payload_type: u8) -> Self {
        Codec {
            name: name.into(),
            clock_rate,
            channels,
            payload_type,
            fmtp: None,
        }
    }

    /// G.711 µ-law, static payload type 0.
    pub fn pcmu() -> Self {
        Codec::new("PCMU", 8000, 1, 0)
    }

    /// G.711 A-law, static payload type 8.
    pub fn pcma() -> Self {
        Codec::new("PCMA", 8000, 1, 8)
    }

    /// G.729, static payload type 18, with `annexb=no`: RFC 4856 section 2.1.9 has a G.729
    /// stream use Annex B (VAD, SID frames and comfort noise) unless `annexb=no` says
    /// otherwise, and we neither send nor generate comfort noise. A peer that omits it (the
    /// seed's ATA writes only `a=rtpmap:18 G729/8000/1`) still matches: fmtp takes no part in
    /// [`Codec::same_codec`].
    pub fn g729() -> Self {
        Codec {
            fmtp: Some("annexb=no".to_owned()),
            ..Codec::new("G729", 8000, 1, 18)
        }
    }

    /// G.722, static payload type 9 (RTP clock 8000, see [`STATIC_PAYLOADS`]).
    pub fn g722() -> Self {
        Codec::new("G722", 8000, 1, 9)
    }

    /// GSM 06.10, static payload type 3.
    pub fn gsm() -> Self {
        Codec::new("GSM", 8000, 1, 3)
    }

    /// Opus on a dynamic payload type; RFC 7587 section 7 requires `opus/48000/2` whatever is
    /// actually sent.
    pub fn opus(payload_type: u8) -> Self {
        Codec::new("opus", 48000, 2, payload_type)
    }

    /// RFC 4733 telephone-event at 8000 Hz for DTMF digits 0-9, `*`, `#` and A-D (`0-15`).
    pub fn telephone_event(payload_type: u8) -> Self {
        Codec {
            fmtp: Some("0-15".to_owned()),
            ..Codec::new(TELEPHONE_EVENT, 8000, 1, payload_type)
        }
    }

    /// A codec from an `a=rtpmap`; a missing channel count means one.
    pub fn from_rtpmap(map: &RtpMap) -> Self {
        Codec::new(
            map.encoding_name.clone(),
            map.clock_rate,
            map.channels.unwrap_or(1),
            map.payload_type,
        )
    }

    /// The `a=rtpmap` describing this codec. The channel count is written for audio codecs, as
    /// the seed's Cisco ATAs do, except for telephone-event, which RFC 4733 writes without it.
    pub fn rtpmap(&self) -> RtpMap {
        RtpMap {
            payload_type: self.payload_type,
            encoding_name: self.name.clone(),
            clock_rate: self.clock_rate,
            channels: (!self.is_telephone_event()).then_some(self.channels),
        }
    }

    /// Whether this is RFC 4733 telephone-event rather than a voice codec.
    pub fn is_telephone_event(&self) -> bool {
        self.name.eq_ignore_ascii_case(TELEPHONE_EVENT)
    }

    /// Whether `other` is the same codec: same name (any case), clock rate and channels. Payload
    /// numbers and fmtp are not compared, because peers number dynamic codecs as they like.
    pub fn same_codec(&self, other: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&other.name)
            && self.clock_rate == other.clock_rate
            && self.channels == other.channels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_knows_the_common_voice_codecs() {
        assert_eq!(static_payload(0).map(|s| s.name), Some("PCMU"));
        assert_eq!(static_payload(8).map(|s| s.name), Some("PCMA"));
        assert_eq!(static_payload(18).map(|s| s.name), Some("G729"));
        assert_eq!(static_payload(9).map(|s| s.clock_rate), Some(8000));
        assert_eq!(static_payload(3).map(|s| s.name), Some("GSM"));
        assert_eq!(static_payload(96), None);
    }

    #[test]
    fn same_codec_ignores_case_and_payload_number() {
        assert!(Codec::new("pcmu", 8000, 1, 99).same_codec(&Codec::pcmu()));
        assert!(!Codec::opus(111).same_codec(&Codec::new("opus", 48000, 1, 111)));
    }

    #[test]
    fn g729_refuses_annex_b_and_still_matches_a_peer_without_fmtp() {
        assert_eq!(Codec::g729().rtpmap().to_string(), "18 G729/8000/1");
        assert_eq!(Codec::g729().fmtp.as_deref(), Some("annexb=no"));
        assert!(static_payload(18)
            .unwrap()
            .codec()
            .same_codec(&Codec::g729()));
    }

    #[test]
    fn telephone_event_rtpmap_has_no_channel_count() {
        assert_eq!(
            Codec::telephone_event(101).rtpmap().to_string(),
            "101 telephone-event/8000"
        );
        assert_eq!(Codec::pcmu().rtpmap().to_string(), "0 PCMU/8000/1");
    }
}
