//! `a=` lines: the raw [`Attribute`] kept in order, and typed readings of the ones an ATA acts on
//! (`rtpmap`, `fmtp`, `ptime`, `maxptime`, the direction attributes, `rtcp`).
//!
//! Attributes stay raw in the description so unknown ones print back unchanged; the typed forms
//! here are read on demand by `media.rs` and `session.rs`.

use std::fmt;
use std::str::FromStr;

use crate::connection::Connection;
use crate::error::SdpError;

/// One `a=` line: a property (`a=<name>`) or a value attribute (`a=<name>:<value>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name, everything before the first `:`.
    pub name: String,
    /// The value after the first `:`, `None` for a property attribute.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute such as `a=sendonly`.
    pub fn property(name: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// A value attribute such as `a=ptime:20`.
    pub fn value(name: impl Into<String>, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// The direction this attribute sets, if it is one of the four direction properties.
    pub fn direction(&self) -> Option<Direction> {
        if self.value.is_some() {
            return None;
        }
        Direction::from_name(&self.name)
    }
}

/// The last direction attribute in `attributes`; a later one overrides an earlier.
pub(crate) fn direction_of(attributes: &[Attribute]) -> Option<Direction> {
    attributes.iter().rev().find_map(Attribute::direction)
}

/// The value of the first attribute called `name`, compared case-sensitively as RFC 8866 names are.
pub(crate) fn value_of<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.value.as_deref())
}

/// Media direction from the describing side's point of view (RFC 3264 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `a=sendrecv`, the default.
    SendRecv,
    /// `a=sendonly`: the describer sends and will not receive (how a hold is offered).
    SendOnly,
    /// `a=recvonly`: the describer receives and will not send.
    RecvOnly,
    /// `a=inactive`: neither.
    Inactive,
}

impl Direction {
    /// Builds a direction from whether the describer sends and receives.
    pub fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the describer sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describer receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The same stream seen from the other end: `sendonly` becomes `recvonly` and back
    /// (RFC 3264 section 6.1).
    pub fn reversed(self) -> Self {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow: sending only if both send, receiving only if both receive.
    pub fn intersect(self, other: Direction) -> Self {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name, e.g. `sendonly`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type number.
    pub payload_type: u8,
    /// Encoding name as written, e.g. `PCMU`, `telephone-event`.
    pub encoding_name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// For audio, the channel count; absent means one (RFC 8866 section 6.6).
    pub channels: Option<u16>,
}

impl FromStr for RtpMap {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<Self, SdpError> {
        let bad = |reason: &str| SdpError::BadAttribute {
            name: "rtpmap",
            reason: reason.to_owned(),
        };
        let (pt, encoding) = value
            .split_once(' ')
            .ok_or_else(|| bad("expected `<payload type> <encoding>`"))?;
        let payload_type = parse_payload_type(pt).ok_or_else(|| bad("bad payload type"))?;
        let mut parts = encoding.trim().split('/');
        let encoding_name = parts.next().unwrap_or_default();
        if encoding_name.is_empty() {
            return Err(bad("empty encoding name"));
        }
        let clock_rate = parts
            .next()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| bad("bad clock rate"))?;
        let channels = match parts.next() {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| bad("bad channel count"))?),
        };
        if parts.next().is_some() {
            return Err(bad("too many `/` fields"));
        }
        Ok(RtpMap {
            payload_type,
            encoding_name: encoding_name.to_owned(),
            clock_rate,
            channels,
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding_name, self.clock_rate
        )?;
        if let Some(channels) = self.channels {
            write!(f, "/{channels}")?;
        }
        Ok(())
    }
}

/// `a=fmtp:<format> <format specific parameters>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fmtp {
    /// The format (payload type number for RTP) the parameters apply to.
    pub format: String,
    /// The parameters, verbatim (e.g. `0-15` for telephone-event).
    pub parameters: String,
}

impl Fmtp {
    /// The format as an RTP payload type, if it is one.
    pub fn payload_type(&self) -> Option<u8> {
        parse_payload_type(&self.format)
    }
}

impl FromStr for Fmtp {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<Self, SdpError> {
        // Some peers send `a=fmtp:101` with nothing after it; that is an empty parameter list,
        // not an error worth failing a call over.
        let (format, parameters) = value.split_once(' ').unwrap_or((value, ""));
        if format.is_empty() {
            return Err(SdpError::BadAttribute {
                name: "fmtp",
                reason: "empty format".to_owned(),
            });
        }
        Ok(Fmtp {
            format: format.to_owned(),
            parameters: parameters.trim().to_owned(),
        })
    }
}

impl fmt::Display for Fmtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.parameters)
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <connection-address>]` (RFC 3605).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port, when it is not the RTP port plus one.
    pub port: u16,
    /// Where RTCP goes, when it is not the media connection address.
    pub connection: Option<Connection>,
}

impl FromStr for Rtcp {
    type Err = SdpError;

    fn from_str(value: &str) -> Result<Self, SdpError> {
        let bad = |reason: &str| SdpError::BadAttribute {
            name: "rtcp",
            reason: reason.to_owned(),
        };
        let fields: Vec<&str> = value.split_ascii_whitespace().collect();
        let port = fields
            .first()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| bad("bad port"))?;
        let connection = match fields.as_slice() {
            [_] => None,
            [_, net_type, addr_type, address] => Some(Connection {
                net_type: (*net_type).to_owned(),
                addr_type: (*addr_type).to_owned(),
                address: (*address).to_owned(),
            }),
            _ => return Err(bad("expected a port and optionally three address fields")),
        };
        Ok(Rtcp { port, connection })
    }
}

/// A payload type number: 0..=127, the range RTP's seven bits allow (RFC 3550 section 5.1).
pub(crate) fn parse_payload_type(text: &str) -> Option<u8> {
    text.parse::<u8>().ok().filter(|pt| *pt <= 127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmap_reads_name_rate_and_channels() {
        let map: RtpMap = "111 opus/48000/2".parse().unwrap();
        assert_eq!(map.payload_type, 111);
        assert_eq!(map.encoding_name, "opus");
        assert_eq!(map.clock_rate, 48000);
        assert_eq!(map.channels, Some(2));
        assert_eq!(map.to_string(), "111 opus/48000/2");
    }

    #[test]
    fn rtpmap_without_channels_leaves_them_unset() {
        let map: RtpMap = "101 telephone-event/8000".parse().unwrap();
        assert_eq!(map.channels, None);
    }

    #[test]
    fn rtpmap_rejects_payload_types_outside_seven_bits() {
        assert!("128 PCMU/8000".parse::<RtpMap>().is_err());
        assert!("x PCMU/8000".parse::<RtpMap>().is_err());
        assert!("0 PCMU".parse::<RtpMap>().is_err());
        assert!("0 PCMU/8000/1/2".parse::<RtpMap>().is_err());
    }

    #[test]
    fn fmtp_splits_format_from_parameters() {
        let fmtp: Fmtp = "101 0-15".parse().unwrap();
        assert_eq!(fmtp.payload_type(), Some(101));
        assert_eq!(fmtp.parameters, "0-15");
    }

    #[test]
    fn rtcp_reads_port_and_optional_address() {
        let plain: Rtcp = "53020".parse().unwrap();
        assert_eq!(plain.port, 53020);
        assert_eq!(plain.connection, None);
        let full: Rtcp = "53020 IN IP4 126.16.64.4".parse().unwrap();
        assert_eq!(full.connection.unwrap().address, "126.16.64.4");
        assert!("53020 IN IP4".parse::<Rtcp>().is_err());
    }

    #[test]
    fn direction_reverses_and_intersects() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(
            Direction::SendRecv.intersect(Direction::SendOnly),
            Direction::SendOnly
        );
        assert_eq!(
            Direction::SendOnly.intersect(Direction::RecvOnly),
            Direction::Inactive
        );
    }

    #[test]
    fn later_direction_attribute_wins() {
        let attributes = vec![
            Attribute::property("sendrecv"),
            Attribute::value("ptime", "20"),
            Attribute::property("inactive"),
        ];
        assert_eq!(direction_of(&attributes), Some(Direction::Inactive));
    }

    #[test]
    fn direction_name_with_a_value_is_not_a_direction() {
        assert_eq!(Attribute::value("sendonly", "x").direction(), None);
    }
}
