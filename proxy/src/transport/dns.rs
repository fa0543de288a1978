//! Next-hop resolution for domains (RFC 3263 section 4).
//!
//! - A URI with an explicit port: A/AAAA only, over its transport or UDP (section 4.2).
//! - A URI with a `transport` but no port: SRV for that transport, else A/AAAA on 5060.
//! - Neither: NAPTR records choose the transport and the SRV name (`SIP+D2U` → UDP,
//!   `SIP+D2T` → TCP, in order and preference); without them SRV `_sip._udp` then
//!   `_sip._tcp`; without those A/AAAA on UDP 5060 (section 4.1).
//!
//! The servers asked are the system's (`/etc/resolv.conf`) unless `--dns` names others.

use std::net::SocketAddr;

use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::proto::rr::RecordType;
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

/// One NAPTR record, as far as SIP cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    pub order: u16,
    pub preference: u16,
    pub flags: String,
    pub services: String,
    pub replacement: String,
}

/// The SRV names to try, with their transports, from a domain's NAPTR records (RFC 3263
/// section 4.1): terminal `S` records for SIP over UDP or TCP, by order then preference.
pub fn naptr_choices(records: &[NaptrRecord]) -> Vec<(TransportKind, String)> {
    let mut usable: Vec<&NaptrRecord> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| {
            r.services.eq_ignore_ascii_case("SIP+D2U") || r.services.eq_ignore_ascii_case("SIP+D2T")
        })
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    usable
        .into_iter()
        .map(|r| {
            let transport = if r.services.eq_ignore_ascii_case("SIP+D2T") {
                TransportKind::Tcp
            } else {
                TransportKind::Udp
            };
            (transport, r.replacement.clone())
        })
        .collect()
}

/// `host` as an absolute name, so that the resolver's search domains are not tried: a SIP URI's
/// host is always fully qualified.
fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    }
}

/// One SRV record, as far as SIP cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The order in which to try `records` (RFC 2782, which RFC 3263 section 4.4 follows): lowest
/// priority first; within a priority, a weighted random order, so that targets share the load
/// in proportion to their weights. A record of weight 0 is picked only when the random draw
/// is 0 (it comes first in the running sum), so it mostly comes after the others.
pub fn srv_order(mut records: Vec<SrvRecord>, rng: &mut impl rand::Rng) -> Vec<SrvRecord> {
    records.sort_by_key(|r| r.priority);
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, after) = rest.split_at(same);
        let mut group: Vec<&SrvRecord> = group.iter().collect();
        // Zero weights first in the running sum (RFC 2782).
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = rng.gen_range(0..=total);
            let mut running = 0;
            let chosen = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(group.len() - 1);
            ordered.push(group.remove(chosen).clone());
        }
        rest = after;
    }
    ordered
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
        transport: Option<TransportKind>,
    ) -> (TransportKind, Vec<SocketAddr>) {
        let fallback = transport.unwrap_or(TransportKind::Udp);
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
                None => vec![TransportKind::Udp, TransportKind::Tcp],
            };
            for t in candidates {
                let service = match t {
                    TransportKind::Udp => format!("_sip._udp.{}", fqdn(host)),
                    TransportKind::Tcp => format!("_sip._tcp.{}", fqdn(host)),
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

    async fn naptr(&self, host: &str) -> Vec<(TransportKind, String)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(order: u16, pref: u16, flags: &str, services: &str, to: &str) -> NaptrRecord {
        NaptrRecord {
            order,
            preference: pref,
            flags: flags.into(),
            services: services.into(),
            replacement: to.into(),
        }
    }

    fn srv(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn srv_records_go_by_priority_then_share_the_load_by_weight() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3263);
        let records = vec![
            srv(20, 0, "backup."),
            srv(10, 90, "big."),
            srv(10, 10, "small."),
            srv(10, 0, "zero."),
        ];
        let mut first = std::collections::HashMap::new();
        for _ in 0..10_000 {
            let order: Vec<String> = srv_order(records.clone(), &mut rng)
                .into_iter()
                .map(|r| r.target)
                .collect();
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], "backup.", "a lower priority always comes first");
            *first.entry(order[0].clone()).or_insert(0) += 1;
        }
        // 90:10 between the weighted ones; weight 0 only on a draw of exactly 0 (1 in 101).
        let big = first["big."];
        let small = first["small."];
        assert!((8_700..=9_200).contains(&big), "{first:?}");
        assert!((800..=1_200).contains(&small), "{first:?}");
        assert!(first.get("zero.").copied().unwrap_or(0) < 300, "{first:?}");
        assert!(srv_order(Vec::new(), &mut rng).is_empty());
        // All weights 0: every one is still tried.
        let zeros = vec![srv(1, 0, "a."), srv(1, 0, "b.")];
        assert_eq!(srv_order(zeros, &mut rng).len(), 2);
    }

    #[test]
    fn naptr_picks_sip_records_by_order_then_preference() {
        // RFC 3263 section 4.1's example, plus records SIP does not use.
        let records = [
            record(90, 50, "s", "SIP+D2T", "_sip._tcp.example.com."),
            record(100, 50, "s", "SIP+D2U", "_sip._udp.example.com."),
            record(50, 50, "s", "SIPS+D2T", "_sips._tcp.example.com."),
            record(10, 10, "u", "E2U+sip", "!^.*$!sip:x@y!"),
        ];
        assert_eq!(
            naptr_choices(&records),
            vec![
                (TransportKind::Tcp, "_sip._tcp.example.com.".to_string()),
                (TransportKind::Udp, "_sip._udp.example.com.".to_string()),
            ]
        );
        assert!(naptr_choices(&[]).is_empty());
    }
}
