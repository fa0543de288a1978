//! One `m=` section: the media line, its own `i=`, `c=`, `b=`, `k=` and `a=` lines, and typed
//! lookups over its attributes (rtpmap, fmtp, ptime, direction, rtcp, and the codecs they add up to).
//!
//! Lookups read the raw attributes each time rather than caching, so an attribute edited in place
//! is never out of step with what the lookups report.

use crate::attribute::{
    direction_of, parse_payload_type, value_of, Attribute, Direction, Fmtp, Rtcp, RtpMap,
};
use crate::codec::{static_payload, Codec};
use crate::connection::{Bandwidth, Connection, UnknownLine};

/// An `m=` line and the lines that belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type: `audio`, `video`, `application`, ...
    pub media: String,
    /// Transport port; 0 marks a rejected or disabled stream (RFC 3264 section 6).
    pub port: u16,
    /// The `/<number of ports>` suffix, if present.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub proto: String,
    /// The format list; RTP payload type numbers for RTP protocols.
    pub formats: Vec<String>,
    /// `i=`: media title.
    pub information: Option<String>,
    /// Media-level `c=` lines (several only for multicast).
    pub connections: Vec<Connection>,
    /// Media-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `k=`: obsolete, kept to be written back.
    pub key: Option<String>,
    /// Media-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Lines with an undefined type letter, kept to be written back.
    pub unknown_lines: Vec<UnknownLine>,
}

impl MediaDescription {
    /// A media section with just its `m=` line.
    pub fn new(
        media: impl Into<String>,
        port: u16,
        proto: impl Into<String>,
        formats: Vec<String>,
    ) -> Self {
        MediaDescription {
            media: media.into(),
            port,
            port_count: None,
            proto: proto.into(),
            formats,
            information: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
            unknown_lines: Vec::new(),
        }
    }

    /// Whether this is an `m=audio` section.
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// Whether the transport is plain RTP/AVP, the only profile the ATAs speak (no SRTP, no AVPF).
    pub fn is_rtp_avp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// The formats that are RTP payload type numbers, in m-line order.
    pub fn payload_types(&self) -> impl Iterator<Item = u8> + '_ {
        self.formats.iter().filter_map(|f| parse_payload_type(f))
    }

    /// The media-level direction attribute, if any (see
    /// [`crate::SessionDescription::media_direction`] for the effective one).
    pub fn direction(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// Replaces any direction attributes with `direction`, written explicitly.
    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes.retain(|a| a.direction().is_none());
        self.attributes
            .push(Attribute::property(direction.as_str()));
    }

    /// Every well-formed `a=rtpmap`, in order; malformed ones are skipped because they only
    /// make that one format unusable, not the whole call.
    pub fn rtpmaps(&self) -> impl Iterator<Item = RtpMap> + '_ {
        self.values("rtpmap").filter_map(|v| v.parse().ok())
    }

    /// The `a=rtpmap` for payload type `payload_type`.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.rtpmaps().find(|m| m.payload_type == payload_type)
    }

    /// Every well-formed `a=fmtp`, in order.
    pub fn fmtps(&self) -> impl Iterator<Item = Fmtp> + '_ {
        self.values("fmtp").filter_map(|v| v.parse().ok())
    }

    /// The `a=fmtp` parameters for payload type `payload_type`.
    pub fn fmtp(&self, payload_type: u8) -> Option<Fmtp> {
        self.fmtps()
            .find(|f| f.payload_type() == Some(payload_type))
    }

    /// `a=ptime` in milliseconds. Decimal values (`20.0`, seen from some gateways) are rounded
    /// down to whole milliseconds.
    pub fn ptime(&self) -> Option<u32> {
        value_of(&self.attributes, "ptime").and_then(parse_millis)
    }

    /// `a=maxptime` in milliseconds.
    pub fn maxptime(&self) -> Option<u32> {
        value_of(&self.attributes, "maxptime").and_then(parse_millis)
    }

    /// `a=rtcp` (RFC 3605), if present and well formed.
    pub fn rtcp(&self) -> Option<Rtcp> {
        value_of(&self.attributes, "rtcp").and_then(|v| v.parse().ok())
    }

    /// The codecs this section offers, in m-line order: each payload type resolved through its
    /// `a=rtpmap`, else the static table of RFC 3551. Payload types neither describes are
    /// skipped, since nothing can be sent with them.
    pub fn codecs(&self) -> Vec<Codec> {
        self.payload_types()
            .filter_map(|pt| {
                let mut codec = match self.rtpmap(pt) {
                    Some(map) => Codec::from_rtpmap(&map),
                    None => static_payload(pt)?.codec(),
                };
                codec.fmtp = self.fmtp(pt).map(|f| f.parameters);
                Some(codec)
            })
            .collect()
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
    }
}

fn parse_millis(text: &str) -> Option<u32> {
    let whole = text.trim().split('.').next().unwrap_or_default();
    whole.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_like_audio() -> MediaDescription {
        let mut m = MediaDescription::new(
            "audio",
            10000,
            "RTP/AVP",
            ["0", "18", "8", "101"].map(String::from).to_vec(),
        );
        m.attributes = vec![
            Attribute::value("rtpmap", "0 PCMU/8000/1"),
            Attribute::value("rtpmap", "18 G729/8000/1"),
            Attribute::value("rtpmap", "101 telephone-event/8000"),
            Attribute::value("fmtp", "101 0-15"),
            Attribute::value("ptime", "20.0"),
        ];
        m
    }

    #[test]
    fn codecs_fall_back_to_static_table_without_rtpmap() {
        let names: Vec<String> = seed_like_audio()
            .codecs()
            .into_iter()
            .map(|c| format!("{}/{}", c.name, c.payload_type))
            .collect();
        assert_eq!(
            names,
            ["PCMU/0", "G729/18", "PCMA/8", "telephone-event/101"]
        );
    }

    #[test]
    fn codecs_carry_their_fmtp() {
        let codecs = seed_like_audio().codecs();
        assert_eq!(codecs[3].fmtp.as_deref(), Some("0-15"));
        assert_eq!(codecs[0].fmtp, None);
    }

    #[test]
    fn unknown_dynamic_payload_without_rtpmap_is_skipped() {
        let m = MediaDescription::new("audio", 1, "RTP/AVP", vec!["96".into(), "0".into()]);
        assert_eq!(m.codecs().len(), 1);
    }

    #[test]
    fn decimal_ptime_is_read_as_whole_milliseconds() {
        assert_eq!(seed_like_audio().ptime(), Some(20));
        assert_eq!(seed_like_audio().maxptime(), None);
    }

    #[test]
    fn set_direction_replaces_the_old_one() {
        let mut m = seed_like_audio();
        m.set_direction(Direction::SendOnly);
        m.set_direction(Direction::Inactive);
        let directions: Vec<_> = m
            .attributes
            .iter()
            .filter_map(Attribute::direction)
            .collect();
        assert_eq!(directions, [Direction::Inactive]);
    }
}
