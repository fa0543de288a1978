//! The lines a session and its media sections share: `c=` (RFC 4566 section 5.7, where the
//! packets go), `b=` (section 5.8) and lines of a type SDP does not define. Their own module
//! because attributes (`a=rtcp`, RFC 3605, names a connection), media sections and the
//! session all use them, and they use none of those: the arrows run one way.

use std::net::IpAddr;

/// A `c=` line: `<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type, `IN` in practice.
    pub net_type: String,
    /// Address type, `IP4` or `IP6`.
    pub addr_type: String,
    /// The address as written, including any multicast `/ttl/count` suffix.
    pub address: String,
}

impl Connection {
    /// An `IN IP4`/`IN IP6` connection for a unicast address.
    pub fn from_ip(address: IpAddr) -> Self {
        let addr_type = match address {
            IpAddr::V4(_) => "IP4",
            IpAddr::V6(_) => "IP6",
        };
        Connection {
            net_type: "IN".to_owned(),
            addr_type: addr_type.to_owned(),
            address: address.to_string(),
        }
    }

    /// The address as an IP address, without any multicast `/ttl/count` suffix; `None` for a
    /// host name.
    pub fn ip(&self) -> Option<IpAddr> {
        let bare = self.address.split('/').next().unwrap_or_default();
        bare.parse().ok()
    }

    /// Whether this is the RFC 2543 hold address (`0.0.0.0`, or `::` from IPv6 peers copying
    /// the habit), which RFC 3264 section 8.4 still asks answerers to recognise.
    pub fn is_hold_address(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

/// A `b=<bwtype>:<bandwidth>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// Bandwidth type, e.g. `AS`, `CT`, `TIAS`.
    pub bw_type: String,
    /// The value, in the unit the type defines (kbit/s for `AS` and `CT`).
    pub bandwidth: u64,
}

/// A line whose type letter SDP does not define; kept so it can be written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLine {
    /// The type letter.
    pub kind: char,
    /// Everything after `=`.
    pub value: String,
}
