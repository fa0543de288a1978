//! The addresses of a dialog's next hop when it is a host name, pure (RFC 3263 section 4.3,
//! issue 21 item 4).
//!
//! A cluster of proxies record-routes one name that resolves to every node
//! (`--record-route-host`), so that ACK, BYE and re-INVITEs can pass through any node that is
//! up. The [`Dialog`](super::dialog::Dialog) asks for the name once its route set is known
//! ([`NextHops::lookup_for`]); the call actor resolves it without blocking (SRV, then A, in
//! RFC 2782 order: `crate::resolve`) and hands the addresses back
//! ([`NextHops::resolved`]). Requests then go to the preferred address; one that times out
//! or is answered 503 is sent again to the next address not yet tried
//! ([`NextHops::next_untried`]), which becomes the preferred one for the rest of the dialog.

use std::net::SocketAddr;

use super::route::next_hop_name;

/// A host name the call actor should resolve for its dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopLookup {
    /// The name, lower case.
    pub host: String,
    /// The URI's port: with one, A/AAAA only (RFC 3263 section 4.2).
    pub port: Option<u16>,
}

/// What is known of the next hop's name.
#[derive(Debug, Clone, Default)]
pub struct NextHops {
    host: Option<String>,
    targets: Vec<SocketAddr>,
    preferred: Option<SocketAddr>,
}

impl NextHops {
    /// The lookup `uri`, the next hop, needs: a host name not asked for before. An IP address
    /// needs none.
    pub fn lookup_for(&mut self, uri: &str) -> Option<HopLookup> {
        let (host, port) = next_hop_name(uri)?;
        if self.host.as_deref() == Some(host.as_str()) {
            return None;
        }
        *self = NextHops {
            host: Some(host.clone()),
            ..NextHops::default()
        };
        Some(HopLookup { host, port })
    }

    /// The addresses of `host`, best first (empty when it did not resolve).
    pub fn resolved(&mut self, host: &str, targets: Vec<SocketAddr>) {
        if self.host.as_deref() == Some(host) {
            self.targets = targets;
        }
    }

    /// Where a request whose next hop is `uri` goes: the preferred address of its name, once
    /// resolved.
    pub fn destination_for(&self, uri: &str) -> Option<SocketAddr> {
        let (host, _) = next_hop_name(uri)?;
        if self.host.as_deref() != Some(host.as_str()) {
            return None;
        }
        self.preferred.or_else(|| self.targets.first().copied())
    }

    /// The first address, in order, that is not in `tried`.
    pub fn next_untried(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        self.targets.iter().find(|t| !tried.contains(t)).copied()
    }

    /// Later requests go to `addr` (the last one answered).
    pub fn prefer(&mut self, addr: SocketAddr) {
        self.preferred = Some(addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "sip:lab-proxies.test;lr";

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_name_is_looked_up_once_and_its_first_address_is_the_destination() {
        let mut hops = NextHops::default();
        assert_eq!(hops.lookup_for("sip:127.0.0.1:5060;lr"), None);
        let lookup = hops.lookup_for(CLUSTER).expect("a name to resolve");
        assert_eq!(lookup.host, "lab-proxies.test");
        assert_eq!(hops.lookup_for(CLUSTER), None, "asked already");
        assert_eq!(hops.destination_for(CLUSTER), None, "not resolved yet");
        hops.resolved("lab-proxies.test", vec![addr(1), addr(2)]);
        assert_eq!(hops.destination_for(CLUSTER), Some(addr(1)));
        assert_eq!(hops.destination_for("sip:other.test;lr"), None);
    }

    #[test]
    fn after_a_failure_the_next_untried_address_is_used_and_kept() {
        let mut hops = NextHops::default();
        hops.lookup_for(CLUSTER);
        hops.resolved("lab-proxies.test", vec![addr(1), addr(2)]);
        assert_eq!(hops.next_untried(&[addr(1)]), Some(addr(2)));
        assert_eq!(hops.next_untried(&[addr(9)]), Some(addr(1)));
        assert_eq!(hops.next_untried(&[addr(1), addr(2)]), None);
        hops.prefer(addr(2));
        assert_eq!(hops.destination_for(CLUSTER), Some(addr(2)));
    }
}
