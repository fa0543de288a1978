//! Who the proxy is: its listen addresses and domains, and the Via, Record-Route and branch it
//! puts on what it forwards.
//!
//! On a host with several networks the proxy listens on an address in each, and a message
//! must leave from the one the kernel would use to reach its destination, with that address
//! in its Via (a callee on the second network cannot answer to the first). Which address that
//! is only the kernel's routing table knows: the identity asks a [`SourceAddress`] (the
//! transport's cached route lookup) and only when more than one listen address of a transport
//! could serve. When a dialog's first request arrives on one address and leaves on another,
//! it gets two Record-Routes, one per side (RFC 5658), so that later requests from either end
//! reach the proxy on their own network. `--advertise` writes another host (a NAT's public
//! address) in place of a bound one.
//!
//! The branch (RFC 3261 section 16.6 step 8) is `z9hG4bK`, a hash of the request's identifying
//! fields *without* any Via (so that a request coming back with the same fields is recognised
//! as a loop, section 16.3 step 4), a hash of the received top Via (so that distinct requests
//! differ), and the fork index. It is a pure function of the received request, so a
//! retransmission or the CANCEL of an INVITE gets the same branch.

use dialtone_transaction::Transport;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dialtone_sip::{HeaderName, Message, SipUri, Uri};

use crate::config::Listen;

/// Which local address the kernel would send from to reach a destination (a route lookup).
pub trait SourceAddress: Send + Sync + std::fmt::Debug {
    /// The source address for `destination`, `None` when there is no route.
    fn source_for(&self, destination: IpAddr) -> Option<IpAddr>;
}

/// The proxy's own addresses and names.
#[derive(Debug, Clone)]
pub struct ProxyIdentity {
    /// Listen addresses.
    pub listen: Vec<Listen>,
    /// Domains served (lowercase).
    pub domains: Vec<String>,
    /// `host[:port]` written instead of a listen address (`--advertise`).
    advertised: Vec<(SocketAddr, String)>,
    /// Each listen address written as `ip:port`, once: every forwarded request names one in
    /// its Via and, for an INVITE, its Record-Route (formatting it each time was a fifth of
    /// the allocations of an INVITE and its 180).
    formatted: Vec<(SocketAddr, String)>,
    /// The route lookup, when a transport has several listen addresses to choose from.
    routes: Option<Arc<dyn SourceAddress>>,
    /// The cluster's name written in Record-Route (`--record-route-host`), lower case.
    record_route_host: Option<String>,
}

impl ProxyIdentity {
    /// Builds the identity from the configuration.
    pub fn new(listen: &[Listen], domains: &[String]) -> Self {
        ProxyIdentity {
            listen: listen.to_vec(),
            domains: domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            advertised: Vec::new(),
            formatted: listen.iter().map(|l| (l.addr, fmt_addr(l.addr))).collect(),
            routes: None,
            record_route_host: None,
        }
    }

    /// Writes `name` in Record-Route instead of a listen address, and takes a Route or
    /// Request-URI naming it as ours (`--record-route-host`): a name that resolves to every
    /// node, so that the rest of a dialog can pass through any node that is up.
    pub fn with_record_route_host(mut self, name: Option<&str>) -> Self {
        self.record_route_host = name.map(str::to_ascii_lowercase);
        self
    }

    /// Writes `host[:port]` for each listen address given (`--advertise`).
    pub fn with_advertised(mut self, advertised: &[(SocketAddr, String)]) -> Self {
        self.advertised = advertised.to_vec();
        self
    }

    /// Chooses among several listen addresses of a transport with `routes`.
    pub fn with_routes(mut self, routes: Arc<dyn SourceAddress>) -> Self {
        self.routes = Some(routes);
        self
    }

    /// True when messages over `transport` may leave from more than one address, so that the
    /// route lookup is needed (never with the usual single address).
    pub fn is_multihomed(&self, transport: Transport) -> bool {
        let mut addrs = self.listen.iter().filter(|l| l.transport == transport);
        let first = addrs.next();
        addrs.any(|l| Some(l.addr.ip()) != first.map(|f| f.addr.ip()))
    }

    /// The listen address a message over `transport` to `destination` leaves from: the one
    /// with the address the kernel would use to reach it, else the first of that transport.
    pub fn listen_toward(&self, transport: Transport, destination: SocketAddr) -> SocketAddr {
        if self.is_multihomed(transport) {
            if let Some(source) = self
                .routes
                .as_ref()
                .and_then(|r| r.source_for(destination.ip()))
            {
                let candidates = self.listen.iter().filter(|l| l.transport == transport);
                let mut chosen = None;
                for l in candidates {
                    if l.addr.ip() == source {
                        chosen = Some(l.addr);
                        break;
                    }
                    if l.addr.ip().is_unspecified() && chosen.is_none() {
                        chosen = Some(l.addr);
                    }
                }
                if let Some(addr) = chosen {
                    return addr;
                }
            }
        }
        self.local_addr(transport)
    }

    /// The listen address a message over `transport` arrived at `local`, when it is one of
    /// ours; else the first of that transport.
    pub fn listen_at(&self, transport: Transport, local: SocketAddr) -> SocketAddr {
        self.listen
            .iter()
            .find(|l| l.transport == transport && l.addr == local)
            .or_else(|| {
                self.listen.iter().find(|l| {
                    l.transport == transport
                        && l.addr.port() == local.port()
                        && l.addr.ip().is_unspecified()
                })
            })
            .map(|l| l.addr)
            .unwrap_or_else(|| self.local_addr(transport))
    }

    /// What URIs and Vias name `addr` by: its advertised host, else `ip:port` (borrowed for
    /// a listen address, formatted for another, such as the address a wildcard listener
    /// sends from).
    pub fn host_of(&self, addr: SocketAddr) -> Cow<'_, str> {
        self.advertised
            .iter()
            .chain(&self.formatted)
            .find(|(a, _)| *a == addr)
            .map(|(_, host)| Cow::Borrowed(host.as_str()))
            .unwrap_or_else(|| Cow::Owned(fmt_addr(addr)))
    }

    /// The local address used for `transport` (the first listen address of that kind, else the
    /// first of any kind).
    pub fn local_addr(&self, transport: Transport) -> SocketAddr {
        self.listen
            .iter()
            .find(|l| l.transport == transport)
            .or(self.listen.first())
            .map(|l| l.addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5060)))
    }

    /// True when `host[:port]` names this proxy: one of its listen addresses (port absent means
    /// 5060), or one of its domain names without a port or with a port it listens on.
    ///
    /// The port matters even for a host that is also a domain. A lab whose domain is
    /// `127.0.0.1` has its phones on 127.0.0.1 too, at other ports: a request for
    /// `sip:9000@127.0.0.1:5064` inside a dialog is for the phone, and taking it for this
    /// proxy's own URI made it look strictly routed (section 16.4), so its Request-URI became
    /// our Record-Route URI and the proxy sent it to itself until Max-Forwards ran out.
    pub fn is_local_host(&self, host: &str, port: Option<u16>) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if self.is_advertised(bare, port) || self.is_record_route_host(bare, port) {
            return true;
        }
        // Parsed, not our addresses printed as text: no allocation per request, and equal
        // IPv6 spellings (`::1`, `0:0::1`) match.
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let port = port.unwrap_or(5060);
            return self
                .listen
                .iter()
                .any(|l| l.addr.port() == port && l.addr.ip() == ip);
        }
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(bare))
            && port.is_none_or(|port| self.listen.iter().any(|l| l.addr.port() == port))
    }

    /// The domain the proxy names its users in (the `DOMAIN` of `sip:USER@DOMAIN` in what it
    /// asserts and notifies): the first `--domain`, else the host of its first listen address.
    pub fn primary_domain(&self) -> String {
        match self.domains.first() {
            Some(domain) => domain.clone(),
            None => self.host_of(self.local_addr(Transport::Udp)).into_owned(),
        }
    }

    /// True when `addr` is one of our listen addresses: a request sent there would come back
    /// to this proxy. (A wildcard listen address counts for the loopback addresses at its
    /// port; which other addresses it covers only the kernel knows.)
    pub fn is_own_address(&self, addr: SocketAddr) -> bool {
        self.listen.iter().any(|l| {
            l.addr.port() == addr.port()
                && (l.addr.ip() == addr.ip()
                    || l.addr.ip().is_unspecified() && addr.ip().is_loopback())
        })
    }

    /// True when `host[:port]` is the cluster's Record-Route name: without a port (each node's
    /// comes from SRV), or with one of ours.
    fn is_record_route_host(&self, host: &str, port: Option<u16>) -> bool {
        self.record_route_host.as_deref().is_some_and(|name| {
            name.eq_ignore_ascii_case(host.trim_end_matches('.'))
                && port.is_none_or(|port| self.listen.iter().any(|l| l.addr.port() == port))
        })
    }

    /// True when `host[:port]` is one of the advertised names of our listen addresses.
    fn is_advertised(&self, host: &str, port: Option<u16>) -> bool {
        self.advertised.iter().any(|(_, advertised)| {
            let (a_host, a_port) = split_host_port(advertised);
            a_host.eq_ignore_ascii_case(host) && a_port.unwrap_or(5060) == port.unwrap_or(5060)
        })
    }

    /// True when a domain-level URI host belongs to us, whatever its port (a request for
    /// `sip:9000@127.0.0.1` is ours when we listen on 127.0.0.1 on any port).
    pub fn is_local_domain(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(bare))
            || bare
                .parse::<IpAddr>()
                .is_ok_and(|ip| self.listen.iter().any(|l| l.addr.ip() == ip))
    }

    /// True when a SIP URI points at this proxy (host and port).
    pub fn is_this_proxy(&self, uri: &SipUri<'_>) -> bool {
        let host = uri.maddr().unwrap_or(uri.host);
        self.is_local_host(host, uri.port)
    }

    /// Our Record-Route value (RFC 3261 section 16.6 step 4), with `lr`, for the listen
    /// address `addr` of `transport`.
    /// With `--record-route-host`, the cluster's name instead of the address.
    pub fn record_route_of(&self, transport: Transport, addr: SocketAddr) -> String {
        let host = match &self.record_route_host {
            Some(name) => Cow::Borrowed(name.as_str()),
            None => self.host_of(addr),
        };
        let params = match transport {
            Transport::Udp => ";lr>",
            Transport::Tcp => ";transport=tcp;lr>",
        };
        let mut value = String::with_capacity("<sip:".len() + host.len() + params.len());
        value.push_str("<sip:");
        value.push_str(&host);
        value.push_str(params);
        value
    }

    /// Our Record-Route value for the first listen address of `transport`.
    pub fn record_route(&self, transport: Transport) -> String {
        self.record_route_of(transport, self.local_addr(transport))
    }

    /// Our Via value for a request sent over `transport` from listen address `addr`.
    pub fn via_from(&self, transport: Transport, addr: SocketAddr, branch: &str) -> String {
        let host = self.host_of(addr);
        let token = transport.via_token();
        let mut via = String::with_capacity(24 + token.len() + host.len() + branch.len());
        via.push_str("SIP/2.0/");
        via.push_str(token);
        via.push(' ');
        via.push_str(&host);
        via.push_str(";branch=");
        via.push_str(branch);
        via
    }

    /// Our Via value for a request sent over `transport` with `branch` from the first listen
    /// address of that transport.
    pub fn via(&self, transport: Transport, branch: &str) -> String {
        self.via_from(transport, self.local_addr(transport), branch)
    }

    /// A Warning header value of the proxy's own (RFC 3261 section 20.43): code 399, this
    /// proxy's host as warn-agent, and `text` saying why.
    pub fn warning(&self, text: &str) -> String {
        format!(
            "399 {} \"{text}\"",
            fmt_addr(self.local_addr(Transport::Udp))
        )
    }

    /// True when a Via's sent-by is ours.
    pub fn is_our_via(&self, host: &str, port: Option<u16>) -> bool {
        self.is_local_host(host, port)
    }
}

/// `host[:port]` split; brackets of an IPv6 host kept off.
fn split_host_port(text: &str) -> (&str, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (text, None),
    }
}

/// `ip:port`, with brackets for IPv6.
pub fn fmt_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// The loop-detection part of a branch: a hash of the fields that identify the request,
/// without Via (RFC 3261 section 16.6 step 8).
pub fn loop_hash(request: &Message<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(uri) = request.request_uri() {
        uri.as_str().hash(&mut h);
    }
    request.call_id().unwrap_or("").hash(&mut h);
    request
        .from()
        .ok()
        .and_then(|f| f.tag())
        .unwrap_or("")
        .hash(&mut h);
    request
        .to()
        .ok()
        .and_then(|t| t.tag())
        .unwrap_or("")
        .hash(&mut h);
    request.cseq().map(|c| c.seq).unwrap_or(0).hash(&mut h);
    for token in request.tokens(HeaderName::ProxyRequire) {
        token.hash(&mut h);
    }
    if let Some(auth) = request.header_value(HeaderName::ProxyAuthorization) {
        auth.hash(&mut h);
    }
    h.finish()
}

/// The branch for fork `index` of `request`.
pub fn branch_for(request: &Message<'_>, index: usize) -> String {
    let mut h = DefaultHasher::new();
    if let Some(top) = request.values(HeaderName::Via).next() {
        top.hash(&mut h);
    }
    // Sized for the usual index below 10; `write!` into a `format!`-sized string grew it twice.
    let mut branch = String::with_capacity(dialtone_sip::MAGIC_COOKIE.len() + 16 + 1 + 8 + 2);
    let _ = write!(
        branch,
        "{}{:016x}.{:08x}.{index}",
        dialtone_sip::MAGIC_COOKIE,
        loop_hash(request),
        h.finish() as u32
    );
    branch
}

/// True when the request already passed through us with the same identifying fields: a loop
/// (RFC 3261 section 16.3 step 4), to be answered with 482.
pub fn is_loop(identity: &ProxyIdentity, request: &Message<'_>) -> bool {
    // The hash covers several headers; most requests carry no Via of ours and never need it.
    let mut prefix = None;
    // The top Via as validation parsed and kept it, then the others.
    let top = request.top_via().ok();
    top.into_iter()
        .chain(request.vias_below_top().flatten())
        .any(|via| {
            identity.is_our_via(via.host, via.port)
                && via.branch().is_some_and(|b| {
                    let prefix = prefix.get_or_insert_with(|| {
                        format!("{}{:016x}.", dialtone_sip::MAGIC_COOKIE, loop_hash(request))
                    });
                    b.starts_with(prefix.as_str())
                })
        })
}

/// The host and port a URI leads to (maddr wins, RFC 3261 section 16.5), and the transport it
/// asks for.
pub fn uri_target(uri: &Uri<'_>) -> Option<(String, u16, Transport)> {
    let sip = uri.as_sip()?;
    let host = sip.maddr().unwrap_or(sip.host);
    let transport = match sip.transport() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    Some((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        sip.port_or_default(),
        transport,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ProxyIdentity {
        ProxyIdentity::new(
            &["udp:127.0.0.1:5070".parse().unwrap()],
            &["Lab.Example".into()],
        )
    }

    #[test]
    fn the_record_route_host_is_written_in_record_route_and_taken_as_ours() {
        let plain = identity();
        let addr: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        assert!(!plain.is_local_host("lab-proxies.test", None));
        let id = identity().with_record_route_host(Some("Lab-Proxies.test"));
        assert_eq!(
            id.record_route_of(Transport::Udp, addr),
            "<sip:lab-proxies.test;lr>"
        );
        assert_eq!(
            id.record_route_of(Transport::Tcp, addr),
            "<sip:lab-proxies.test;transport=tcp;lr>"
        );
        assert!(id.is_local_host("lab-proxies.test", None));
        assert!(id.is_local_host("LAB-PROXIES.TEST.", Some(5070)));
        assert!(!id.is_local_host("lab-proxies.test", Some(9999)));
        let route = Uri::parse("sip:lab-proxies.test;lr").unwrap();
        assert!(id.is_this_proxy(route.as_sip().unwrap()));
        assert!(!plain.is_this_proxy(route.as_sip().unwrap()));
    }

    #[test]
    fn local_hosts_are_listen_addresses_and_domains() {
        let id = identity();
        assert!(id.is_local_host("127.0.0.1", Some(5070)));
        assert!(!id.is_local_host("127.0.0.1", None));
        assert!(id.is_local_host("lab.example", None));
        assert!(id.is_local_host("LAB.example", Some(5070)));
        assert!(!id.is_local_host("lab.example", Some(9999)));
        assert!(id.is_local_domain("127.0.0.1"));
        assert!(!id.is_local_domain("example.net"));
        assert!(!id.is_local_domain("127.0.0.2"));
    }

    #[test]
    fn an_address_given_as_a_domain_is_still_ours_only_at_our_ports() {
        // The lab's domain is 127.0.0.1, where its phones listen too.
        let id = ProxyIdentity::new(
            &["udp:127.0.0.1:5060".parse().unwrap()],
            &["127.0.0.1".into()],
        );
        assert!(id.is_local_host("127.0.0.1", Some(5060)));
        assert!(id.is_local_host("127.0.0.1", None));
        assert!(!id.is_local_host("127.0.0.1", Some(5064)));
        assert!(id.is_local_domain("127.0.0.1"));
    }

    #[test]
    fn ipv6_hosts_match_however_they_are_spelled() {
        let id = ProxyIdentity::new(&["udp:[::1]:5070".parse().unwrap()], &[]);
        assert!(id.is_local_domain("[::1]"));
        assert!(id.is_local_domain("[0:0::1]"));
        assert!(id.is_local_host("[0:0:0:0:0:0:0:1]", Some(5070)));
        assert!(!id.is_local_host("[::1]", Some(5071)));
        assert!(!id.is_local_domain("[::2]"));
    }

    /// Routes 198.18.2.0/24 from 198.18.2.2, everything else from 198.18.1.2.
    #[derive(Debug)]
    struct TwoNetworks;
    impl SourceAddress for TwoNetworks {
        fn source_for(&self, destination: IpAddr) -> Option<IpAddr> {
            let second = matches!(destination, IpAddr::V4(v4) if v4.octets()[..3] == [198, 18, 2]);
            Some(
                if second {
                    [198, 18, 2, 2]
                } else {
                    [198, 18, 1, 2]
                }
                .into(),
            )
        }
    }

    #[test]
    fn a_message_leaves_from_the_address_that_reaches_its_destination() {
        let id = ProxyIdentity::new(
            &[
                "udp:198.18.1.2:5060".parse().unwrap(),
                "udp:198.18.2.2:5060".parse().unwrap(),
            ],
            &[],
        )
        .with_routes(Arc::new(TwoNetworks));
        assert!(id.is_multihomed(Transport::Udp));
        let toward = |ip: &str| id.listen_toward(Transport::Udp, ip.parse().unwrap());
        assert_eq!(
            toward("198.18.2.10:5060"),
            "198.18.2.2:5060".parse().unwrap()
        );
        assert_eq!(
            toward("198.18.1.10:5060"),
            "198.18.1.2:5060".parse().unwrap()
        );
        let via = id.via_from(Transport::Udp, toward("198.18.2.10:5060"), "z9hG4bKa");
        assert_eq!(via, "SIP/2.0/UDP 198.18.2.2:5060;branch=z9hG4bKa");
        assert_eq!(
            id.listen_at(Transport::Udp, "198.18.2.2:5060".parse().unwrap()),
            "198.18.2.2:5060".parse().unwrap()
        );
    }

    #[test]
    fn an_advertised_host_is_written_for_its_address_and_counts_as_ours() {
        let addr: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        let id = ProxyIdentity::new(&["udp:10.0.0.2:5060".parse().unwrap()], &[])
            .with_advertised(&[(addr, "pbx.example.net:5070".into())]);
        assert_eq!(
            id.record_route_of(Transport::Udp, addr),
            "<sip:pbx.example.net:5070;lr>"
        );
        assert_eq!(
            id.via(Transport::Udp, "z9hG4bKb"),
            "SIP/2.0/UDP pbx.example.net:5070;branch=z9hG4bKb"
        );
        assert!(id.is_local_host("pbx.example.net", Some(5070)));
        assert!(!id.is_local_host("pbx.example.net", None));
        // A single address needs no route lookup.
        assert!(!id.is_multihomed(Transport::Udp));
    }

    #[test]
    fn branches_are_stable_distinct_per_fork_and_detect_loops() {
        let raw = b"INVITE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:8000@lab.example>;tag=1\r\nTo: <sip:9000@lab.example>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(branch_for(&m, 0), branch_for(&m, 0));
        assert_ne!(branch_for(&m, 0), branch_for(&m, 1));
        assert!(branch_for(&m, 0).starts_with("z9hG4bK"));
        let id = identity();
        assert!(!is_loop(&id, &m));
        let looped = m
            .edit()
            .insert_header_first("Via", &id.via(Transport::Udp, &branch_for(&m, 0)))
            .finish();
        let looped = Message::parse(&looped).unwrap();
        assert!(is_loop(&id, &looped));
        // Back through another proxy: our Via is then below the top one.
        let via_us = id.via(Transport::Udp, &branch_for(&m, 0));
        let looped = m
            .edit()
            .insert_header_first(
                "Via",
                &format!("SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp, {via_us}"),
            )
            .finish();
        let looped = Message::parse(&looped).unwrap();
        assert!(is_loop(&id, &looped));
    }
}
