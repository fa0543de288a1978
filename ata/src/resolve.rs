//! Finding SIP servers by name (RFC 3263 sections 4.2 and 4.3): an IP literal is used as is;
//! a domain is looked up with hickory-resolver, SRV first under the name for the ATA's SIP
//! transport, `_sip._udp.DOMAIN.` or `_sip._tcp.DOMAIN.` (`dialtone_locate::srv_name`), its
//! targets in the order RFC 2782 gives (lowest priority first, a weighted random choice within
//! one, `dialtone_locate::srv_order`, which the proxy uses too), then A/AAAA on the domain
//! itself with port 5060. Every address found is returned, best first: the caller tries the
//! next one when a request to one times out or is answered 503 (section 4.3).
//!
//! Two users: `app.rs` at start, for the proxies (`proxy`, `mwi_server`), and the call actor
//! when a dialog's next hop is a host name (a cluster's `Record-Route`). The servers asked are
//! the system's (`/etc/resolv.conf`) unless the config's `dns` names others.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dialtone_locate::{fqdn, srv_name, srv_order, SrvRecord};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::ProxyAddress;
use crate::error::AtaError;
use dialtone_transaction::Transport;

/// The SIP default port (RFC 3261 19.1.2).
pub const SIP_PORT: u16 = 5060;

/// A resolver for SIP server names; cheap to clone (one resolver and its cache, shared).
#[derive(Clone)]
pub struct Locator {
    inner: Arc<Result<TokioResolver, String>>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Locator")
    }
}

impl Locator {
    /// Asks `servers` (UDP, TCP when an answer is truncated), or the system's when empty.
    pub fn new(servers: &[SocketAddr]) -> Locator {
        let built = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| e.to_string())
                .and_then(|b| b.build().map_err(|e| e.to_string()))
        } else {
            let name_servers = servers
                .iter()
                .map(|server| {
                    let mut config = NameServerConfig::udp_and_tcp(server.ip());
                    for connection in &mut config.connections {
                        connection.port = server.port();
                    }
                    config
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            )
            .build()
            .map_err(|e| e.to_string())
        };
        Locator {
            inner: Arc::new(built),
        }
    }

    /// Every address of `proxy` for requests sent over `transport`, best first; an error
    /// when there is none.
    pub async fn resolve_proxy(
        &self,
        proxy: &ProxyAddress,
        transport: Transport,
    ) -> Result<Vec<SocketAddr>, AtaError> {
        let targets = self.targets(&proxy.host, proxy.port, transport).await;
        match targets {
            Ok(targets) if !targets.is_empty() => Ok(targets),
            Ok(_) => Err(AtaError::Resolve {
                host: proxy.host.clone(),
                reason: "no SRV, A or AAAA record".into(),
            }),
            Err(reason) => Err(AtaError::Resolve {
                host: proxy.host.clone(),
                reason,
            }),
        }
    }

    /// Every address of `host` (with `port` if the URI gave one), best first: SRV only when
    /// no port was given (section 4.2), then A/AAAA. Empty when nothing resolves.
    pub async fn targets(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Transport,
    ) -> Result<Vec<SocketAddr>, String> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port.unwrap_or(SIP_PORT))]);
        }
        let resolver = self.inner.as_ref().as_ref().map_err(Clone::clone)?;
        let mut out = Vec::new();
        if port.is_none() {
            if let Ok(lookup) = resolver.srv_lookup(srv_name(host, transport)).await {
                let records: Vec<SrvRecord> = lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => Some(SrvRecord {
                            priority: srv.priority,
                            weight: srv.weight,
                            port: srv.port,
                            target: srv.target.to_utf8(),
                        }),
                        _ => None,
                    })
                    .collect();
                for record in srv_order(records, &mut rand::thread_rng()) {
                    if let Ok(ips) = resolver.lookup_ip(record.target.as_str()).await {
                        out.extend(ips.iter().map(|ip| SocketAddr::new(ip, record.port)));
                    }
                }
            }
        }
        if out.is_empty() {
            match resolver.lookup_ip(fqdn(host)).await {
                Ok(ips) => out.extend(
                    ips.iter()
                        .map(|ip| SocketAddr::new(ip, port.unwrap_or(SIP_PORT))),
                ),
                Err(e) => return Err(e.to_string()),
            }
        }
        let mut seen = Vec::with_capacity(out.len());
        out.retain(|addr| {
            let first = !seen.contains(addr);
            seen.push(*addr);
            first
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn an_ip_literal_needs_no_lookup() {
        let proxy = ProxyAddress {
            host: "127.0.0.1".into(),
            port: None,
        };
        assert_eq!(
            Locator::new(&[])
                .resolve_proxy(&proxy, Transport::Tcp)
                .await
                .expect("literal"),
            ["127.0.0.1:5060".parse().expect("addr")]
        );
    }
}
