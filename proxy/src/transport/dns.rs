//! Next-hop resolution for domains (RFC 3263 section 4).
//!
//! - A URI with an explicit port: A/AAAA only, over its transport or UDP (section 4.2).
//! - A URI with a `transport` but no port: SRV for that transport, else A/AAAA on 5060.
//! - Neither: NAPTR records choose the transport and the SRV name (`SIP+D2U` → UDP,
//!   `SIP+D2T` → TCP, in order and preference); without them SRV `_sip._udp` then
//!   `_sip._tcp`; without those A/AAAA on UDP 5060 (section 4.1).
//!
//! The records are ordered by `dialtone-locate`, which the ATA uses too; this file only asks.
//! The servers asked are the system's (`/etc/resolv.conf`) unless `--dns` names others.

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;

use dialtone_locate::{fqdn, naptr_choices, srv_order, NaptrRecord, SrvRecord};
use dialtone_transaction::Transport;

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
        Self::new(&[])
    }

    /// Asks `servers` (UDP, TCP when an answer is truncated), or the system's when empty.
    pub fn new(servers: &[SocketAddr]) -> SipResolver {
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio().ok()
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
            Some(TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(name_servers),
                TokioRuntimeProvider::default(),
            ))
        };
        let inner = builder.and_then(|b| b.build().ok());
        if inner.is_none() {
            tracing::warn!("no DNS resolver configuration; domain next hops will get 503");
        }
        SipResolver { inner }
    }

    /// The transport and addresses for `host`, best first (see the module's rules). `port`
    /// and `transport` are the URI's, `None` when it gave none.
    pub async fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Option<Transport>,
    ) -> (Transport, Vec<SocketAddr>) {
        let fallback = transport.unwrap_or(Transport::Udp);
        let Some(resolver) = &self.inner else {
            return (fallback, Vec::new());
        };
        if port.is_none() {
            if transport.is_none() {
                for (choice, srv_name) in self.naptr(host).await {
                    let addrs = self.srv(&srv_name).await;
                    if !addrs.is_empty() {
                        return (choice, addrs);
                    }
                }
            }
            let candidates = match transport {
                Some(t) => vec![t],
                None => vec![Transport::Udp, Transport::Tcp],
            };
            for t in candidates {
                let service = match t {
                    Transport::Udp => format!("_sip._udp.{}", fqdn(host)),
                    Transport::Tcp => format!("_sip._tcp.{}", fqdn(host)),
                };
                let addrs = self.srv(&service).await;
                if !addrs.is_empty() {
                    return (t, addrs);
                }
            }
        }
        let port = port.unwrap_or(5060);
        match resolver.lookup_ip(fqdn(host)).await {
            Ok(ips) => (
                fallback,
                ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            ),
            Err(_) => (fallback, Vec::new()),
        }
    }

    async fn naptr(&self, host: &str) -> Vec<(Transport, String)> {
        let Some(resolver) = &self.inner else {
            return Vec::new();
        };
        let Ok(lookup) = resolver.lookup(fqdn(host), RecordType::NAPTR).await else {
            return Vec::new();
        };
        let records: Vec<NaptrRecord> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::NAPTR(n) => Some(NaptrRecord {
                    order: n.order,
                    preference: n.preference,
                    flags: String::from_utf8_lossy(&n.flags).into_owned(),
                    services: String::from_utf8_lossy(&n.services).into_owned(),
                    replacement: n.replacement.to_string(),
                }),
                _ => None,
            })
            .collect();
        naptr_choices(&records)
    }

    async fn srv(&self, name: &str) -> Vec<SocketAddr> {
        let Some(resolver) = &self.inner else {
            return Vec::new();
        };
        let Ok(srv) = resolver.srv_lookup(name.to_string()).await else {
            return Vec::new();
        };
        let records: Vec<SrvRecord> = srv
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(r) => Some(SrvRecord {
                    priority: r.priority,
                    weight: r.weight,
                    port: r.port,
                    target: r.target.to_string(),
                }),
                _ => None,
            })
            .collect();
        let mut out = Vec::new();
        for record in srv_order(records, &mut rand::thread_rng()) {
            if let Ok(ips) = resolver.lookup_ip(record.target).await {
                out.extend(ips.iter().map(|ip| SocketAddr::new(ip, record.port)));
            }
        }
        out
    }
}
