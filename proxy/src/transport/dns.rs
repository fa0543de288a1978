//! Next-hop resolution for domains (RFC 3263 section 4): SRV `_sip._udp` / `_sip._tcp` records
//! first when no port is given, then A/AAAA. NAPTR is not consulted: the transport comes from
//! the URI (`transport=` parameter) or defaults to UDP, which RFC 3263 section 4.1 allows.

use std::net::SocketAddr;

use hickory_resolver::TokioResolver;

use crate::config::TransportKind;

/// A shared resolver built from the system configuration.
pub struct SipResolver {
    inner: Option<TokioResolver>,
}

impl std::fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SipResolver")
    }
}

impl SipResolver {
    /// Reads `/etc/resolv.conf`; without it, names cannot be resolved (IP literals still work).
    pub fn from_system() -> SipResolver {
        let inner = TokioResolver::builder_tokio()
            .ok()
            .and_then(|b| b.build().ok());
        if inner.is_none() {
            tracing::warn!("no DNS resolver configuration; domain next hops will get 503");
        }
        SipResolver { inner }
    }

    /// The addresses for `host`, best first. `port` is the URI's port or the default 5060;
    /// SRV is asked only when the URI had no explicit port (the caller passes 5060 then).
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        transport: TransportKind,
    ) -> Vec<SocketAddr> {
        let Some(resolver) = &self.inner else {
            return Vec::new();
        };
        if port == 5060 {
            let service = match transport {
                TransportKind::Udp => format!("_sip._udp.{host}."),
                TransportKind::Tcp => format!("_sip._tcp.{host}."),
            };
            if let Ok(srv) = resolver.srv_lookup(service).await {
                let mut records: Vec<_> = srv
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        hickory_resolver::proto::rr::RData::SRV(r) => Some((
                            r.priority,
                            u16::MAX - r.weight,
                            r.target.to_string(),
                            r.port,
                        )),
                        _ => None,
                    })
                    .collect();
                records.sort();
                let mut out = Vec::new();
                for (_, _, target, port) in records {
                    if let Ok(ips) = resolver.lookup_ip(target).await {
                        out.extend(ips.iter().map(|ip| SocketAddr::new(ip, port)));
                    }
                }
                if !out.is_empty() {
                    return out;
                }
            }
        }
        match resolver.lookup_ip(host).await {
            Ok(ips) => ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            Err(_) => Vec::new(),
        }
    }
}
