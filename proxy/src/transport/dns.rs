//! Next-hop resolution for domains (RFC 3263 section 4). Without an explicit port or transport:
//! NAPTR records choose the transport and the SRV name (`SIP+D2U` → UDP, `SIP+D2T` → TCP, in
//! order and preference), else SRV `_sip._udp` then `_sip._tcp`, else A/AAAA on port 5060.
//! With an explicit port only A/AAAA is asked (section 4.2).

use std::net::SocketAddr;

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

    /// The transport and addresses for `host`, best first. `port` is the URI's port or 5060
    /// when it had none; `transport` is the URI's (UDP when it named none).
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        transport: TransportKind,
    ) -> (TransportKind, Vec<SocketAddr>) {
        let Some(resolver) = &self.inner else {
            return (transport, Vec::new());
        };
        if port == 5060 {
            if transport == TransportKind::Udp {
                for (choice, srv_name) in self.naptr(host).await {
                    let addrs = self.srv(&srv_name).await;
                    if !addrs.is_empty() {
                        return (choice, addrs);
                    }
                }
            }
            let mut candidates = vec![transport];
            if transport == TransportKind::Udp {
                candidates.push(TransportKind::Tcp);
            }
            for t in candidates {
                let service = match t {
                    TransportKind::Udp => format!("_sip._udp.{host}."),
                    TransportKind::Tcp => format!("_sip._tcp.{host}."),
                };
                let addrs = self.srv(&service).await;
                if !addrs.is_empty() {
                    return (t, addrs);
                }
            }
        }
        match resolver.lookup_ip(host).await {
            Ok(ips) => (
                transport,
                ips.iter().map(|ip| SocketAddr::new(ip, port)).collect(),
            ),
            Err(_) => (transport, Vec::new()),
        }
    }

    async fn naptr(&self, host: &str) -> Vec<(TransportKind, String)> {
        let Some(resolver) = &self.inner else {
            return Vec::new();
        };
        let Ok(lookup) = resolver.lookup(format!("{host}."), RecordType::NAPTR).await else {
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
        let mut records: Vec<_> = srv
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(r) => Some((
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
