//! The typed session description: one struct per SDP line type (RFC 8866 section 5), and the
//! session-level view that media-level lookups fall back to.
//!
//! `parse.rs` fills these structs from text and `write.rs` prints them back; the media section
//! lives in `media.rs` and attribute values are interpreted in `attribute.rs`. Fields are public
//! so a builder can fill them directly; every field keeps what was on the wire, so nothing a
//! peer sent is lost when the description is printed again.

use std::net::IpAddr;

use crate::attribute::{Attribute, Direction};
pub use crate::connection::{Bandwidth, Connection, UnknownLine};
use crate::media::MediaDescription;

/// A whole session description: the session-level lines followed by the media sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `v=`: the protocol version, 0 for every SDP in use.
    pub version: u32,
    /// `o=`: who made the description and which version of it this is.
    pub origin: Origin,
    /// `s=`: the session name, kept verbatim (RFC 3264 suggests `-` or a single space).
    pub session_name: String,
    /// `i=`: session information.
    pub information: Option<String>,
    /// `u=`: a URI with more about the session.
    pub uri: Option<String>,
    /// `e=` lines, in order.
    pub emails: Vec<String>,
    /// `p=` lines, in order.
    pub phones: Vec<String>,
    /// Session-level `c=`, used by media sections that have none of their own.
    pub connection: Option<Connection>,
    /// Session-level `b=` lines.
    pub bandwidths: Vec<Bandwidth>,
    /// `t=` lines, each with the `r=` lines that follow it.
    pub timings: Vec<Timing>,
    /// `z=` adjustments, in order.
    pub time_zones: Vec<TimeZone>,
    /// `k=`: obsolete in RFC 8866 but still read and written back.
    pub key: Option<String>,
    /// Session-level `a=` lines, in order.
    pub attributes: Vec<Attribute>,
    /// Session-level lines with a type letter SDP does not define, kept to be written back.
    pub unknown_lines: Vec<UnknownLine>,
    /// The `m=` sections, in order.
    pub media: Vec<MediaDescription>,
}

/// The `o=` line: `<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when there is none.
    pub username: String,
    /// Session id. Kept as text: it only ever identifies, and some peers' ids do not fit a u64.
    pub session_id: String,
    /// Session version; must grow with every changed offer (RFC 3264 section 8).
    pub session_version: u64,
    /// Network type, `IN` in practice.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// The originator's address or host name.
    pub address: String,
}

/// A `t=<start> <stop>` line with the `r=` lines that repeat it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds), 0 for an unbounded session.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for an unbounded session.
    pub stop: u64,
    /// `r=` lines belonging to this `t=`.
    pub repeats: Vec<Repeat>,
}

/// An `r=<repeat interval> <active duration> <offsets from start-time>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeat {
    /// How often the session repeats.
    pub interval: TypedTime,
    /// How long each repetition lasts.
    pub active_duration: TypedTime,
    /// Offsets of each repetition from the start time.
    pub offsets: Vec<TypedTime>,
}

/// One `z=` pair: from `adjustment_time` on, times are shifted by `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZone {
    /// When the adjustment starts (NTP seconds).
    pub adjustment_time: u64,
    /// The shift, often negative.
    pub offset: TypedTime,
}

/// A time with an optional unit letter (`d`, `h`, `m`, `s`), as `r=` and `z=` write them.
///
/// The unit is kept rather than folded into seconds so the line prints back as the peer wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypedTime {
    /// The number before the unit.
    pub value: i64,
    /// The unit letter, `None` for plain seconds.
    pub unit: Option<TimeUnit>,
}

/// The unit letters of RFC 8866 section 5.10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// `d`: 86400 seconds.
    Days,
    /// `h`: 3600 seconds.
    Hours,
    /// `m`: 60 seconds.
    Minutes,
    /// `s`: seconds, written explicitly.
    Seconds,
}

impl SessionDescription {
    /// A minimal description (`v=0`, the given `o=` and `s=`), ready to have lines added.
    pub fn new(origin: Origin, session_name: impl Into<String>) -> Self {
        SessionDescription {
            version: 0,
            origin,
            session_name: session_name.into(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timings: Vec::new(),
            time_zones: Vec::new(),
            key: None,
            attributes: Vec::new(),
            unknown_lines: Vec::new(),
            media: Vec::new(),
        }
    }

    /// The session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        crate::attribute::direction_of(&self.attributes)
    }

    /// The direction that applies to `media`: its own attribute, else the session's, else
    /// `sendrecv` (RFC 3264 section 5.1).
    pub fn media_direction(&self, media: &MediaDescription) -> Direction {
        media
            .direction()
            .or_else(|| self.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// The direction `media` really has: [`Self::media_direction`], except that an RFC 2543
    /// hold address (`c=0.0.0.0`) means the describer receives nothing whatever the attributes
    /// say (RFC 3264 section 8.4).
    pub fn stream_direction(&self, media: &MediaDescription) -> Direction {
        let direction = self.media_direction(media);
        let held = self
            .media_connection(media)
            .is_some_and(Connection::is_hold_address);
        if held {
            Direction::from_flags(direction.sends(), false)
        } else {
            direction
        }
    }

    /// The connection that applies to `media`: its first own `c=`, else the session's.
    pub fn media_connection<'a>(&'a self, media: &'a MediaDescription) -> Option<&'a Connection> {
        media.connections.first().or(self.connection.as_ref())
    }

    /// The first `m=audio` section with a non-zero port, with its index.
    pub fn first_active_audio(&self) -> Option<(usize, &MediaDescription)> {
        self.media
            .iter()
            .enumerate()
            .find(|(_, m)| m.is_audio() && m.port != 0)
    }
}

impl Origin {
    /// An `IN` origin for `address`, with the address type taken from the address family.
    pub fn new(
        username: impl Into<String>,
        session_id: u64,
        session_version: u64,
        address: IpAddr,
    ) -> Self {
        let connection = Connection::from_ip(address);
        Origin {
            username: username.into(),
            session_id: session_id.to_string(),
            session_version,
            net_type: connection.net_type,
            addr_type: connection.addr_type,
            address: connection.address,
        }
    }
}

impl TypedTime {
    /// Plain seconds, written without a unit.
    pub fn seconds(value: i64) -> Self {
        TypedTime { value, unit: None }
    }

    /// The time in seconds, saturating rather than overflowing on absurd values.
    pub fn as_seconds(&self) -> i64 {
        let factor = match self.unit {
            None | Some(TimeUnit::Seconds) => 1,
            Some(TimeUnit::Minutes) => 60,
            Some(TimeUnit::Hours) => 3600,
            Some(TimeUnit::Days) => 86_400,
        };
        self.value.saturating_mul(factor)
    }
}

impl TimeUnit {
    /// The unit for a letter, if it is one.
    pub fn from_letter(letter: char) -> Option<Self> {
        match letter {
            'd' => Some(TimeUnit::Days),
            'h' => Some(TimeUnit::Hours),
            'm' => Some(TimeUnit::Minutes),
            's' => Some(TimeUnit::Seconds),
            _ => None,
        }
    }

    /// The unit's letter.
    pub fn letter(self) -> char {
        match self {
            TimeUnit::Days => 'd',
            TimeUnit::Hours => 'h',
            TimeUnit::Minutes => 'm',
            TimeUnit::Seconds => 's',
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ip_ignores_multicast_suffix() {
        let c = Connection {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: "224.2.1.1/127/3".into(),
        };
        assert_eq!(c.ip(), Some("224.2.1.1".parse().unwrap()));
    }

    #[test]
    fn host_name_connection_has_no_ip() {
        let c = Connection {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: "media.example.com".into(),
        };
        assert_eq!(c.ip(), None);
        assert!(!c.is_hold_address());
    }

    #[test]
    fn zero_address_is_rfc2543_hold() {
        assert!(Connection::from_ip("0.0.0.0".parse().unwrap()).is_hold_address());
        assert!(!Connection::from_ip("192.168.3.175".parse().unwrap()).is_hold_address());
    }

    #[test]
    fn typed_time_converts_units_to_seconds() {
        let week = TypedTime {
            value: 7,
            unit: Some(TimeUnit::Days),
        };
        assert_eq!(week.as_seconds(), 604_800);
        let back = TypedTime {
            value: -1,
            unit: Some(TimeUnit::Hours),
        };
        assert_eq!(back.as_seconds(), -3600);
    }
}
