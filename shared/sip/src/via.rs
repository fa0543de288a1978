//! One `Via` value (RFC 3261 section 20.42, RFC 3581 for `rport`).
//!
//! The branch is what keys transactions (section 17); peers from the RFC 2543 era, such as the
//! Cisco ATA of the seed document, send no branch at all, which is why [`Via::branch`] is an
//! `Option` and [`Via::has_rfc3261_branch`] exists.

use std::net::IpAddr;

use crate::error::ParseError;
use crate::lex::{self, Params};
use crate::uri::{parse_host_ip, split_host_port};

/// The RFC 3261 magic cookie that starts every compliant branch (section 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` in practice.
    pub protocol_name: &'a str,
    /// `2.0` in practice.
    pub protocol_version: &'a str,
    /// `UDP`, `TCP`, `TLS`, `SCTP`, ... as written.
    pub transport: &'a str,
    /// The sent-by host.
    pub host: &'a str,
    /// The sent-by port, if given.
    pub port: Option<u16>,
    /// via-params.
    pub params: Params<'a>,
}

fn bad(reason: &'static str) -> ParseError {
    ParseError::BadHeader {
        name: "Via",
        reason,
    }
}

impl<'a> Via<'a> {
    /// Parses one value, already split from its comma list.
    pub fn parse(value: &'a str) -> Result<Via<'a>, ParseError> {
        let value = lex::trim(value);
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        let first = lex::find_byte(value, b'/').ok_or(bad("no sent-protocol"))?;
        let protocol_name = lex::trim(&value[..first]);
        let rest = &value[first + 1..];
        let second = lex::find_byte(rest, b'/').ok_or(bad("no sent-protocol"))?;
        let protocol_version = lex::trim(&rest[..second]);
        let rest = rest[second + 1..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        let transport_end = rest
            .find(|c: char| c.is_ascii_whitespace())
            .ok_or(bad("no sent-by"))?;
        let transport = &rest[..transport_end];
        if !lex::is_token(protocol_name) || !lex::is_token(protocol_version) {
            return Err(bad("bad sent-protocol"));
        }
        if !lex::is_token(transport) {
            return Err(bad("bad transport"));
        }
        let rest = lex::trim(&rest[transport_end..]);
        let (sent_by, params) = match lex::find_byte(rest, b';') {
            Some(s) => (lex::trim(&rest[..s]), &rest[s + 1..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(sent_by).map_err(|_| bad("bad sent-by"))?;
        let params = Params::parse(params, "Via")?;
        let via = Via {
            protocol_name,
            protocol_version,
            transport,
            host,
            port,
            params,
        };
        via.check_params()?;
        Ok(via)
    }

    fn check_params(&self) -> Result<(), ParseError> {
        // One walk over the parameters (this runs for every message); as with `Params::get`,
        // only the first occurrence of each name is checked.
        let (mut ttl, mut rport, mut received, mut branch) = (false, false, false, false);
        for (name, value) in self.params.iter() {
            let first = |seen: &mut bool| !std::mem::replace(seen, true);
            if name.eq_ignore_ascii_case("ttl") && first(&mut ttl) {
                if value.is_none_or(|t| t.parse::<u8>().is_err()) {
                    return Err(bad("bad ttl"));
                }
            } else if name.eq_ignore_ascii_case("rport") && first(&mut rport) {
                if let Some(v) = value {
                    v.parse::<u16>().map_err(|_| bad("bad rport"))?;
                }
            } else if name.eq_ignore_ascii_case("received") && first(&mut received) {
                if value.is_none_or(|r| parse_host_ip(r).is_none()) {
                    return Err(bad("bad received"));
                }
            } else if name.eq_ignore_ascii_case("branch")
                && first(&mut branch)
                && !value.is_some_and(lex::is_token)
            {
                return Err(bad("bad branch"));
            }
        }
        Ok(())
    }

    /// The branch parameter, if any.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// True when the branch starts with the magic cookie and has something after it, so the
    /// RFC 3261 section 17.2.3 matching rules apply. `branch=z9hG4bK` alone (RFC 4475 section
    /// 3.2.1) does not qualify.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter as an address.
    pub fn received(&self) -> Option<IpAddr> {
        self.params
            .get("received")
            .flatten()
            .and_then(parse_host_ip)
    }

    /// `rport`: `None` when absent, `Some(None)` when present without a value (a request asking
    /// for it, RFC 3581 section 3), `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| t.parse().ok())
    }

    /// The sent-by port, or the transport's default (5061 for TLS, else 5060).
    pub fn port_or_default(&self) -> u16 {
        self.port
            .unwrap_or(if self.transport.eq_ignore_ascii_case("TLS") {
                5061
            } else {
                5060
            })
    }

    /// True for a reliable transport (no retransmissions, RFC 3261 section 17).
    pub fn is_reliable(&self) -> bool {
        !self.transport.eq_ignore_ascii_case("UDP")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ata_via_has_no_branch_and_default_port() {
        let v = Via::parse("SIP/2.0/UDP 192.168.3.175").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.168.3.175");
        assert_eq!(v.port, None);
        assert_eq!(v.branch(), None);
        assert!(!v.has_rfc3261_branch());
        assert_eq!(v.port_or_default(), 5060);
    }

    #[test]
    fn seed_proxy_via_has_a_2543_branch() {
        let v =
            Via::parse("SIP/2.0/UDP 192.168.2.97:5060;branch=140fed6e-f61cbd1a-52f223b1-9beb149a-")
                .unwrap();
        assert_eq!(v.branch(), Some("140fed6e-f61cbd1a-52f223b1-9beb149a-"));
        assert!(!v.has_rfc3261_branch());
        assert_eq!(v.port, Some(5060));
    }

    #[test]
    fn rfc3581_and_rfc3261_params_are_typed() {
        let v = Via::parse(
            "SIP / 2.0 / TCP [2001:db8::9:1]:5070 ;branch=z9hG4bKas;rport=5071;received=[2001:db8::9:255];maddr=239.1.1.1;ttl=16",
        )
        .unwrap();
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(Some(5071)));
        assert_eq!(v.received(), Some("2001:db8::9:255".parse().unwrap()));
        assert_eq!(v.maddr(), Some("239.1.1.1"));
        assert_eq!(v.ttl(), Some(16));
        assert!(v.is_reliable());
        let v = Via::parse("SIP/2.0/UDP h;rport;received=2001:db8::9:255").unwrap();
        assert_eq!(v.rport(), Some(None));
        assert!(v.received().is_some());
    }

    #[test]
    fn bare_magic_cookie_is_not_an_rfc3261_branch() {
        let v = Via::parse("SIP/2.0/UDP h;branch=z9hG4bK").unwrap();
        assert!(!v.has_rfc3261_branch());
    }

    #[test]
    fn malformed_vias_are_errors() {
        for raw in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP h;ttl=300",
            "SIP/2.0/UDP h;received=nothost",
            "SIP/2.0/UDP h;ttl",
            "SIP/2.0/UDP h;rport=x",
            "SIP/2.0/UDP h;received",
            "SIP/2.0/UDP h;branch",
            "SIP/2.0/UDP h;branch=\"z9hG4bKa\"",
            "SIP/2.0/UDP h:99999",
        ] {
            assert!(Via::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn only_the_first_of_a_repeated_parameter_is_checked() {
        // As `Params::get` reads them: the later duplicate is never looked at.
        let via = Via::parse("SIP/2.0/UDP h;branch=z9hG4bKa;branch=\"x\";ttl=1;ttl=300").unwrap();
        assert_eq!(via.branch(), Some("z9hG4bKa"));
    }
}
