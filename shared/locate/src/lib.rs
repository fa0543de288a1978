//! Locating SIP servers (RFC 3263), the part that needs no network: which SRV names a
//! domain's NAPTR records point to, the SRV name for a transport, and the order in which to
//! try SRV targets (RFC 2782). The proxy and the ATA do their DNS queries with
//! hickory-resolver and hand the records here, so both order their targets the same way.
#![forbid(unsafe_code)]

use dialtone_transaction::Transport;

/// One NAPTR record, as far as SIP cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower orders are tried first, whatever their preference.
    pub order: u16,
    /// Among equal orders, lower preferences first.
    pub preference: u16,
    /// `S` for a record whose replacement is an SRV name (the only kind SIP uses here).
    pub flags: String,
    /// `SIP+D2U` (UDP) or `SIP+D2T` (TCP); others are skipped.
    pub services: String,
    /// The SRV name to query next.
    pub replacement: String,
}

/// The SRV names to try, with their transports, from a domain's NAPTR records (RFC 3263
/// section 4.1): terminal `S` records for SIP over UDP or TCP, by order then preference.
pub fn naptr_choices(records: &[NaptrRecord]) -> Vec<(Transport, String)> {
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
                Transport::Tcp
            } else {
                Transport::Udp
            };
            (transport, r.replacement.clone())
        })
        .collect()
}

/// `host` as an absolute name, so that the resolver's search domains are not tried: a SIP URI's
/// host is always fully qualified.
pub fn fqdn(host: &str) -> String {
    if host.ends_with('.') {
        host.to_string()
    } else {
        format!("{host}.")
    }
}

/// The SRV name to ask for `host` when the next hop is reached over `transport` (RFC 3263
/// section 4.2): the transport's service label before the domain, written fully qualified so
/// the resolver's search list is not appended. A trailing dot on `host` is not doubled.
pub fn srv_name(host: &str, transport: Transport) -> String {
    format!(
        "_sip._{}.{}.",
        transport.as_str(),
        host.trim_end_matches('.')
    )
}

/// One SRV record, as far as SIP cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower priorities are tried first; a higher one only when every lower one failed.
    pub priority: u16,
    /// The share of the load among records of one priority.
    pub weight: u16,
    /// The port to send to at the target.
    pub port: u16,
    /// The host name to look up (A/AAAA).
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
                (Transport::Tcp, "_sip._tcp.example.com.".to_string()),
                (Transport::Udp, "_sip._udp.example.com.".to_string()),
            ]
        );
        assert!(naptr_choices(&[]).is_empty());
    }

    #[test]
    fn the_srv_name_follows_the_transport() {
        assert_eq!(
            srv_name("example.com", Transport::Udp),
            "_sip._udp.example.com."
        );
        assert_eq!(
            srv_name("example.com", Transport::Tcp),
            "_sip._tcp.example.com."
        );
    }

    #[test]
    fn a_fully_qualified_host_keeps_one_trailing_dot() {
        assert_eq!(
            srv_name("example.com.", Transport::Tcp),
            "_sip._tcp.example.com."
        );
        assert_eq!(fqdn("example.com."), "example.com.");
        assert_eq!(fqdn("example.com"), "example.com.");
    }
}
