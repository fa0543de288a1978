//! Route information processing (RFC 3261 section 16.4) and the next hop it leads to.
//!
//! Pure: from a request and the proxy's identity, it decides whether the Request-URI must be
//! replaced (a strict-routing client such as the seed's Cisco ATA, which sends ACK and BYE with
//! the proxy's Record-Route URI as Request-URI and the remote target as the last Route, D-3
//! messages 9 and 11), whether our own Route entry must be removed (loose routing), and which
//! URI the request goes to next.

use dialtone_sip::{Message, NameAddr, Uri};

use super::identity::ProxyIdentity;

/// What section 16.4 decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// The new Request-URI, when the client routed strictly.
    pub new_request_uri: Option<String>,
    /// Remove the last Route value (it became the Request-URI).
    pub remove_last_route: bool,
    /// How many Route values at the top are ours, to remove: one, or two when we wrote a
    /// Record-Route per interface for a request that changed networks (RFC 5658).
    pub own_routes: usize,
    /// The URI of the next Route value left, if any: the next hop.
    pub next_hop_route: Option<String>,
}

/// True when the request's To has a tag: it claims to belong to a dialog (RFC 3261 section
/// 12.2), which only our own Route makes believable (see `admission.rs`).
pub fn has_to_tag(request: &Message<'_>) -> bool {
    request.to().ok().and_then(|t| t.tag()).is_some()
}

/// Plans route processing for `request`.
pub fn plan(identity: &ProxyIdentity, request: &Message<'_>) -> Result<RoutePlan, &'static str> {
    let routes: Vec<NameAddr<'_>> = request.routes().map_err(|_| "Bad Route")?;
    let in_dialog = has_to_tag(request);
    let mut plan = RoutePlan {
        new_request_uri: None,
        remove_last_route: false,
        own_routes: 0,
        next_hop_route: None,
    };
    let mut remaining: &[NameAddr<'_>] = &routes;
    let ruri_is_us = request
        .request_uri()
        .and_then(|u| u.as_sip())
        .is_some_and(|sip| identity.is_this_proxy(sip) && (in_dialog || sip.user.is_none()));
    if ruri_is_us && !remaining.is_empty() {
        let last = &remaining[remaining.len() - 1];
        plan.new_request_uri = Some(last.uri.as_str().to_string());
        plan.remove_last_route = true;
        remaining = &remaining[..remaining.len() - 1];
    }
    while let Some(first) = remaining.first() {
        if !is_ours(identity, &first.uri) {
            break;
        }
        plan.own_routes += 1;
        remaining = &remaining[1..];
    }
    plan.next_hop_route = remaining.first().map(|r| r.uri.as_str().to_string());
    Ok(plan)
}

fn is_ours(identity: &ProxyIdentity, uri: &Uri<'_>) -> bool {
    uri.as_sip()
        .is_some_and(|sip| sip.user.is_none() && identity.is_this_proxy(sip))
        || uri.as_sip().is_some_and(|sip| {
            sip.user.is_some() && identity.is_this_proxy(sip) && sip.params.contains("lr")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ProxyIdentity {
        ProxyIdentity::new(&["udp:127.0.0.1:5070".parse().unwrap()], &[])
    }

    fn plan_of(raw: &str) -> RoutePlan {
        let m = Message::parse(raw.as_bytes()).unwrap();
        plan(&identity(), &m).unwrap()
    }

    #[test]
    fn strict_routed_ack_from_the_seed_ata_gets_the_remote_target_back() {
        let p = plan_of("ACK sip:9000@127.0.0.1:5070;user=phone SIP/2.0\r\nRoute: <sip:9000@127.0.0.1:5062;user=phone;transport=udp>\r\nVia: SIP/2.0/UDP 127.0.0.1:5061\r\nFrom: <sip:8000@127.0.0.1;user=phone>;tag=1\r\nTo: <sip:9000@127.0.0.1;user=phone>;tag=2\r\nCall-ID: c\r\nCSeq: 1 ACK\r\n\r\n");
        assert_eq!(
            p.new_request_uri.as_deref(),
            Some("sip:9000@127.0.0.1:5062;user=phone;transport=udp")
        );
        assert!(p.remove_last_route);
        assert_eq!(p.next_hop_route, None);
    }

    #[test]
    fn an_in_dialog_request_to_a_phone_on_the_proxys_own_address_is_loose_routed() {
        // The lab: domain 127.0.0.1, the phones on 127.0.0.1 at their own ports. This ACK is
        // for the phone at 5064, not a strictly routed request to us.
        let lab = ProxyIdentity::new(
            &["udp:127.0.0.1:5060".parse().unwrap()],
            &["127.0.0.1".into()],
        );
        let m = Message::parse(b"ACK sip:9000@127.0.0.1:5064;user=phone;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\nMax-Forwards: 70\r\nRoute: <sip:127.0.0.1:5060;lr>\r\nFrom: <sip:8000@127.0.0.1;user=phone>;tag=1\r\nTo: <sip:9000@127.0.0.1;user=phone>;tag=2\r\nCall-ID: c\r\nCSeq: 2 ACK\r\n\r\n").unwrap();
        let p = plan(&lab, &m).unwrap();
        assert_eq!(p.new_request_uri, None);
        assert!(!p.remove_last_route);
        assert_eq!(p.own_routes, 1);
        assert_eq!(p.next_hop_route, None);
    }

    #[test]
    fn loose_route_to_us_is_removed_and_the_next_one_followed() {
        let p = plan_of("BYE sip:9000@127.0.0.1:5062 SIP/2.0\r\nRoute: <sip:127.0.0.1:5070;lr>, <sip:10.0.0.9;lr>\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n");
        assert_eq!(p.new_request_uri, None);
        assert_eq!(p.own_routes, 1);
        assert_eq!(p.next_hop_route.as_deref(), Some("sip:10.0.0.9;lr"));
    }

    #[test]
    fn both_record_routes_of_a_request_that_changed_networks_are_removed() {
        // RFC 5658: one Record-Route per interface, so the route set holds us twice.
        let two = ProxyIdentity::new(
            &[
                "udp:198.18.1.2:5060".parse().unwrap(),
                "udp:198.18.2.2:5060".parse().unwrap(),
            ],
            &[],
        );
        let m = Message::parse(b"BYE sip:8000@198.18.1.10:5060 SIP/2.0\r\nRoute: <sip:198.18.2.2:5060;lr>, <sip:198.18.1.2:5060;lr>\r\nVia: SIP/2.0/UDP 198.18.2.10;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\r\n").unwrap();
        let p = plan(&two, &m).unwrap();
        assert_eq!(p.own_routes, 2);
        assert_eq!(p.next_hop_route, None);
    }

    #[test]
    fn initial_request_to_a_local_user_is_not_strict_routing() {
        let p = plan_of("INVITE sip:9000@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n");
        assert_eq!(
            p,
            RoutePlan {
                new_request_uri: None,
                remove_last_route: false,
                own_routes: 0,
                next_hop_route: None
            }
        );
    }
}
