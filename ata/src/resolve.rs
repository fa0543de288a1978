//! Finding the proxy: an IP literal is used as is; a domain is looked up with hickory-resolver,
//! SRV first (RFC 3263 section 4.2) under the name for the ATA's SIP transport,
//! `_sip._udp.DOMAIN.` or `_sip._tcp.DOMAIN.` (`dialtone_locate::srv_name`), its targets tried
//! in the order RFC 2782 gives (lowest priority first, a weighted random choice within one,
//! `dialtone_locate::srv_order`, which the proxy uses too), then A/AAAA on the domain itself
//! with port 5060. Done once at start by `app.rs`.

use std::net::{IpAddr, SocketAddr};

use dialtone_locate::{srv_name, srv_order, SrvRecord};
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::ProxyAddress;
use crate::error::AtaError;
use dialtone_transaction::Transport;

/// The SIP default port (RFC 3261 19.1.2).
pub const SIP_PORT: u16 = 5060;

/// Resolves `proxy` to one socket address for requests sent over `transport`.
pub async fn resolve_proxy(
    proxy: &ProxyAddress,
    transport: Transport,
) -> Result<SocketAddr, AtaError> {
    if let Ok(ip) = proxy.host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, proxy.port.unwrap_or(SIP_PORT)));
    }
    let fail = |reason: String| AtaError::Resolve {
        host: proxy.host.clone(),
        reason,
    };
    let resolver = TokioResolver::builder_tokio()
        .map_err(|e| fail(e.to_string()))?
        .build()
        .map_err(|e| fail(e.to_string()))?;
    // RFC 3263 4.2: SRV only when no port was given.
    if proxy.port.is_none() {
        if let Ok(lookup) = resolver.srv_lookup(srv_name(&proxy.host, transport)).await {
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
                    if let Some(ip) = ips.iter().next() {
                        return Ok(SocketAddr::new(ip, record.port));
                    }
                }
            }
        }
    }
    let ips = resolver
        .lookup_ip(proxy.host.as_str())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ip = ips
        .iter()
        .next()
        .ok_or_else(|| fail("no A or AAAA record".into()))?;
    Ok(SocketAddr::new(ip, proxy.port.unwrap_or(SIP_PORT)))
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
            resolve_proxy(&proxy, Transport::Tcp)
                .await
                .expect("literal"),
            "127.0.0.1:5060".parse().expect("addr")
        );
    }
}
