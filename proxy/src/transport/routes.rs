//! The kernel's route lookup, for a proxy with listen addresses on several networks: which
//! local address would a packet to this destination leave from? Asked by connecting an
//! unbound UDP socket (no packet is sent, RFC 768 has no handshake) and reading the address the
//! kernel gave it, as `ip route get` would answer. Cached per destination for a while, since
//! every forwarded message asks and routes rarely change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::proxy_core::identity::SourceAddress;

/// How long an answer is used before the kernel is asked again (a route may change).
const CACHE_FOR: Duration = Duration::from_secs(30);

/// At most this many destinations are remembered; past it the cache starts again.
const CACHE_LIMIT: usize = 4096;

/// Route lookups through the kernel, cached.
#[derive(Debug, Default)]
pub struct KernelRoutes {
    cache: DashMap<IpAddr, (Option<IpAddr>, Instant)>,
}

impl KernelRoutes {
    fn ask_kernel(destination: IpAddr) -> Option<IpAddr> {
        let any: IpAddr = match destination {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
        socket.connect(SocketAddr::new(destination, 9)).ok()?;
        socket.local_addr().ok().map(|a| a.ip())
    }
}

impl SourceAddress for KernelRoutes {
    fn source_for(&self, destination: IpAddr) -> Option<IpAddr> {
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&destination) {
            let (source, at) = *entry;
            if now.duration_since(at) < CACHE_FOR {
                return source;
            }
        }
        let source = Self::ask_kernel(destination);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(destination, (source, now));
        source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_reaches_a_loopback_address_from_loopback() {
        let routes = KernelRoutes::default();
        let source = routes.source_for("127.0.0.7".parse().unwrap());
        assert!(source.is_some_and(|ip| ip.is_loopback()), "{source:?}");
        // The second answer comes from the cache, and is the same.
        assert_eq!(routes.source_for("127.0.0.7".parse().unwrap()), source);
    }
}
