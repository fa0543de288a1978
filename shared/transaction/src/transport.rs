//! The transport a hop uses (RFC 3261 section 18): the one type every Dialtone crate names it
//! with — the proxy's listen addresses, the registrar's bindings, the ATA's identity and the
//! transaction machines' timers.
//!
//! Only UDP and TCP exist in Dialtone today. Adding TLS means one more variant here, and the
//! compiler then lists every place that must learn it.

use std::fmt;
use std::str::FromStr;

/// UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum Transport {
    /// Datagrams: the transaction layer retransmits, and lingers to absorb retransmissions.
    #[default]
    Udp,
    /// One stream per peer, framed by Content-Length (18.3): no retransmission timers, and
    /// Timers D, I, J and K are zero (RFC 3261 table 4).
    Tcp,
}

impl Transport {
    /// Whether the transport is reliable, which is what the transaction timers depend on
    /// (RFC 3261 17.1.1.2, 17.1.2.2, 17.2.1, 17.2.2).
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }

    /// The Via transport token (RFC 3261 20.42): `UDP`, `TCP`.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// The lowercase name, as in a `transport=` URI parameter (19.1.1) or a config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport name that is neither UDP nor TCP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown transport `{0}` (udp or tcp)")]
pub struct UnknownTransport(pub String);

impl FromStr for Transport {
    type Err = UnknownTransport;

    /// Reads a Via token or a URI parameter value; case does not matter (RFC 3261 7.3.1).
    fn from_str(s: &str) -> Result<Self, UnknownTransport> {
        if s.eq_ignore_ascii_case("udp") {
            Ok(Transport::Udp)
        } else if s.eq_ignore_ascii_case("tcp") {
            Ok(Transport::Tcp)
        } else {
            Err(UnknownTransport(s.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_reads_its_via_token_and_its_uri_parameter_in_any_case() {
        assert_eq!("UDP".parse(), Ok(Transport::Udp));
        assert_eq!("tcp".parse(), Ok(Transport::Tcp));
        assert_eq!("Tcp".parse(), Ok(Transport::Tcp));
        assert_eq!(
            "sctp".parse::<Transport>(),
            Err(UnknownTransport("sctp".into()))
        );
        assert_eq!(Transport::Tcp.via_token(), "TCP");
        assert_eq!(Transport::Udp.as_str(), "udp");
        assert!(Transport::Tcp.is_reliable() && !Transport::Udp.is_reliable());
    }
}
