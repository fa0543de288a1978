//! How a request inside a dialog is addressed (RFC 3261 section 12.2.1.1), pure.
//!
//! [`Dialog`](super::dialog::Dialog) builds every in-dialog request (the ACK to a 2xx, BYE,
//! re-INVITE, REFER, NOTIFY) through one function, and that function takes its Request-URI,
//! its Route headers and its next hop from [`route_plan`]: the ACK and the BYE of one call
//! cannot be addressed by two different rules.
//!
//! Loose routing (the first route has `lr`) keeps the remote target as Request-URI and the
//! whole route set as Route. Strict routing (RFC 2543 proxies, such as the seed's, whose
//! `Record-Route` has `maddr` and no `lr`) moves the first route into the Request-URI and
//! appends the remote target as the last Route.

use std::net::SocketAddr;

use dialtone_sip::Uri;

/// How an in-dialog request is addressed (RFC 3261 12.2.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// The Request-URI.
    pub request_uri: String,
    /// The Route values, in order.
    pub routes: Vec<String>,
    /// The URI whose address is the next hop.
    pub next_hop: String,
}

/// Loose routing when the first route has `lr` (or there is no route); strict routing
/// (RFC 2543, the seed's proxy) otherwise: the first route becomes the Request-URI and the
/// remote target goes last in Route (RFC 3261 12.2.1.1).
pub fn route_plan(route_set: &[String], remote_target: &str) -> RoutePlan {
    let Some(first) = route_set.first() else {
        return RoutePlan {
            request_uri: remote_target.to_owned(),
            routes: Vec::new(),
            next_hop: remote_target.to_owned(),
        };
    };
    let loose = Uri::parse(first)
        .ok()
        .and_then(|u| u.as_sip().map(|s| s.is_loose_router()))
        .unwrap_or(true);
    if loose {
        RoutePlan {
            request_uri: remote_target.to_owned(),
            routes: route_set.to_vec(),
            next_hop: first.clone(),
        }
    } else {
        let mut routes: Vec<String> = route_set[1..].to_vec();
        routes.push(remote_target.to_owned());
        RoutePlan {
            request_uri: request_uri_from_route(first),
            routes,
            next_hop: first.clone(),
        }
    }
}

/// A strict router's URI made a Request-URI. RFC 3261 12.2.1.1 strips "any parameters that
/// are not allowed in a Request-URI", and table 1 of section 19.1.1 forbids there only the
/// `method` parameter and the `?headers`. Everything else stays as the router wrote it:
/// `maddr` above all, which the router reads back from the Request-URI it receives
/// (section 16.4), and `user`, `transport`, `ttl`. The seed's ATA drops `maddr` and the port
/// (D-3 messages 9 and 11); that is its own habit, not the RFC's rule.
fn request_uri_from_route(route: &str) -> String {
    let Ok(Uri::Sip(sip)) = Uri::parse(route) else {
        return route.to_owned();
    };
    if sip.headers.is_none() && !sip.params.contains("method") {
        return route.to_owned();
    }
    // The parser's `headers` and `params` are the URI's tail, in that order from the end.
    let without_headers = match sip.headers {
        Some(headers) => &route[..route.len() - headers.len() - 1],
        None => route,
    };
    let params = sip.params.as_str();
    let mut uri = without_headers[..without_headers.len() - params.len()]
        .trim_end_matches(';')
        .to_owned();
    for (name, value) in sip.params.iter() {
        if name.eq_ignore_ascii_case("method") {
            continue;
        }
        uri.push(';');
        uri.push_str(name);
        if let Some(value) = value {
            uri.push('=');
            uri.push_str(value);
        }
    }
    uri
}

/// The host name (lower case) and port of a SIP URI whose address is not an IP literal: a
/// name to resolve (RFC 3263) before the URI can be a next hop. `None` when [`next_hop`]
/// gives the address itself.
pub fn next_hop_name(uri: &str) -> Option<(String, Option<u16>)> {
    let parsed = Uri::parse(uri).ok()?;
    let sip = parsed.as_sip()?;
    let host = sip.maddr().unwrap_or(sip.host);
    if dialtone_sip::uri::parse_host_ip(host).is_some() || host.is_empty() {
        return None;
    }
    Some((host.trim_end_matches('.').to_ascii_lowercase(), sip.port))
}

/// The socket address a SIP URI names: `maddr` if present, else the host, which must be an
/// IP literal (a host name is resolved by the call actor, see `call::hops`; until then, and
/// for a name that does not resolve, a dialog falls back to the proxy it was set up through).
pub fn next_hop(uri: &str) -> Option<SocketAddr> {
    let parsed = Uri::parse(uri).ok()?;
    let sip = parsed.as_sip()?;
    let ip = match sip.maddr() {
        Some(maddr) => dialtone_sip::uri::parse_host_ip(maddr)?,
        None => sip.host_ip()?,
    };
    Some(SocketAddr::new(ip, sip.port_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_PROXY: &str = "sip:9000@192.168.2.97:5060;user=phone;maddr=192.168.2.97";
    const CALLEE: &str = "sip:9000@192.168.2.194:5060;user=phone;transport=udp";

    #[test]
    fn a_strict_routers_uri_becomes_the_request_uri_with_its_maddr() {
        let plan = route_plan(&[SEED_PROXY.to_owned()], CALLEE);
        assert_eq!(plan.request_uri, SEED_PROXY);
        assert_eq!(plan.routes, [CALLEE]);
        assert_eq!(plan.next_hop, SEED_PROXY);
    }

    #[test]
    fn a_strict_route_keeps_every_parameter_a_request_uri_allows() {
        let route = "sip:p.example.com:5070;transport=udp;user=ip;ttl=15;maddr=239.1.2.3;x=y";
        let plan = route_plan(&[route.to_owned()], CALLEE);
        assert_eq!(plan.request_uri, route);
    }

    #[test]
    fn a_strict_route_loses_its_method_parameter_and_headers_in_the_request_uri() {
        let route =
            "sip:9000@192.168.2.97:5060;method=INVITE;user=phone;maddr=192.168.2.97?Subject=x";
        let plan = route_plan(&[route.to_owned()], CALLEE);
        assert_eq!(plan.request_uri, SEED_PROXY);
        assert_eq!(plan.next_hop, route);
    }

    #[test]
    fn a_strict_route_whose_only_parameter_is_method_ends_at_its_host() {
        let plan = route_plan(&["sip:p.example.com;METHOD=BYE".to_owned()], CALLEE);
        assert_eq!(plan.request_uri, "sip:p.example.com");
    }

    #[test]
    fn the_routes_after_a_strict_router_come_before_the_remote_target() {
        let set = [SEED_PROXY.to_owned(), "sip:second.example.com".to_owned()];
        let plan = route_plan(&set, CALLEE);
        assert_eq!(plan.routes, ["sip:second.example.com", CALLEE]);
    }

    #[test]
    fn a_loose_router_leaves_the_remote_target_as_request_uri_and_the_route_set_whole() {
        let set = ["sip:127.0.0.9:5090;lr".to_owned()];
        let plan = route_plan(&set, CALLEE);
        assert_eq!(plan.request_uri, CALLEE);
        assert_eq!(plan.routes, set);
        assert_eq!(plan.next_hop, set[0]);
    }

    #[test]
    fn without_a_route_set_the_request_goes_to_the_remote_target() {
        let plan = route_plan(&[], CALLEE);
        assert_eq!(plan.request_uri, CALLEE);
        assert!(plan.routes.is_empty());
        assert_eq!(next_hop(&plan.next_hop), "192.168.2.194:5060".parse().ok());
    }

    #[test]
    fn a_host_name_is_a_name_to_resolve_and_an_ip_is_not() {
        assert_eq!(
            next_hop_name("sip:Lab-Proxies.test;lr"),
            Some(("lab-proxies.test".into(), None))
        );
        assert_eq!(
            next_hop_name("sip:9000@proxy.example.com:5070"),
            Some(("proxy.example.com".into(), Some(5070)))
        );
        assert_eq!(next_hop_name("sip:127.0.0.9:5090;lr"), None);
        assert_eq!(next_hop_name(SEED_PROXY), None, "its maddr is an IP");
        assert_eq!(next_hop_name("sip:[::1]:5060;lr"), None);
    }

    #[test]
    fn the_next_hop_is_the_maddr_when_there_is_one() {
        let uri = "sip:9000@proxy.example.com:5070;maddr=127.0.0.9";
        assert_eq!(next_hop(uri), "127.0.0.9:5070".parse().ok());
    }
}
