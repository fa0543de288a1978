//! Finding the proxy: an IP literal is used as is; a domain is looked up with hickory-resolver,
//! SRV first (RFC 3263 section 4.2, lowest priority then highest weight) under the name for
//! the ATA's SIP transport, `_sip._udp.DOMAIN.` or `_sip._tcp.DOMAIN.` (see [`srv_name`]),
//! then A/AAAA on the domain itself with port 5060. Done once at start by `app.rs`.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;

use crate::config::ProxyAddress;
use crate::error::AtaError;
use crate::identity::SipTransport;

/// The SIP default port (RFC 3261 19.1.2).
pub const SIP_PORT: u16 = 5060;

/// The SRV name to ask for `host` when the ATA speaks `transport` (RFC 3263 4.2): the
/// transport's service label before the domain, written fully qualified so the resolver's
/// search list is not appended. A trailing dot on `host` is not doubled.
pub fn srv_name(host: &str, transport: SipTransport) -> String {
    format!(
        "_sip._{}.{}.",
        transport.param(),
        host.trim_end_matches('.')
    )
}

/// Resolves `proxy` to one socket address for requests sent over `transport`.
pub async fn resolve_proxy(
    proxy: &ProxyAddress,
    transport: SipTransport,
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
            let mut targets: Vec<_> = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) => Some((
                        srv.priority,
                        u16::MAX - srv.weight,
                        srv.port,
                        srv.target.to_utf8(),
                    )),
                    _ => None,
                })
                .collect();
            targets.sort();
            for (_, _, port, target) in targets {
                if let Ok(ips) = resolver.lookup_ip(target.as_str()).await {
                    if let Some(ip) = ips.iter().next() {
                        return Ok(SocketAddr::new(ip, port));
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
            resolve_proxy(&proxy, SipTransport::Tcp)
                .await
                .expect("literal"),
            "127.0.0.1:5060".parse().expect("addr")
        );
    }

    #[test]
    fn the_srv_name_follows_the_transport() {
        assert_eq!(
            srv_name("example.com", SipTransport::Udp),
            "_sip._udp.example.com."
        );
        assert_eq!(
            srv_name("example.com", SipTransport::Tcp),
            "_sip._tcp.example.com."
        );
    }

    #[test]
    fn a_fully_qualified_host_keeps_one_trailing_dot() {
        assert_eq!(
            srv_name("example.com.", SipTransport::Tcp),
            "_sip._tcp.example.com."
        );
    }
}
