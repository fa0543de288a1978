//! Forwarding (RFC 3261 section 16.6): the received octets edited for each branch (our Via,
//! `received`/`rport` on the previous one, Record-Route, our own Routes removed, Max-Forwards
//! decremented, the caller's identity headers replaced by the one the proxy asserts,
//! `asserted_identity.rs`), sent over TCP when too large for UDP (section 18.1.1), and the single next
//! hop of a request that is not for one of our users: an IP address at once, a name through
//! DNS first (RFC 3263, [`Action::Resolve`]).

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use dialtone_sip::{Editor, HeaderName, Message, Method, Uri};
use dialtone_transaction::Transport;

use super::asserted_identity::{self, AssertedIdentity, Hop};
use super::identity::{branch_for, uri_target, ProxyIdentity};
use super::new_request::NewRequest;
use super::route::{self, RoutePlan};
use super::transaction::PendingBranch;
use super::{reply, Action, Destination, Source};

/// RFC 3261 section 18.1.1: over UDP, requests larger than the path MTU minus 200 octets go
/// over TCP instead (1300 for an Ethernet-sized MTU).
const UDP_SIZE_LIMIT: usize = 1300;

/// A request being forwarded: what every copy of it shares.
pub(super) struct Forwarding<'r, 'm> {
    pub identity: &'r ProxyIdentity,
    /// Where the request came from (for `received`, and the Record-Route's side).
    pub source: Source,
    pub request: &'r Message<'m>,
    pub plan: &'r RoutePlan,
    /// The identity the proxy asserts (RFC 3325), when it authenticated the caller.
    pub asserted: Option<&'r AssertedIdentity>,
    /// Whether the copies go to our users' bindings (inside the trust domain) or elsewhere.
    pub hop: Hop,
}

impl Forwarding<'_, '_> {
    /// The received request edited for forwarding to `destination` in branch `branch_id`,
    /// with `new_request_uri` when the target set gave one, and the transport it must go over
    /// (TCP when too big for UDP, section 18.1.1). When it goes over TCP only for its size,
    /// the UDP edition comes too, for the retry over UDP that section asks for when the
    /// connection is refused.
    pub fn copy_for(
        &self,
        new_request_uri: Option<&str>,
        destination: Destination,
        branch_id: &str,
    ) -> (Destination, Bytes, Option<Bytes>) {
        let bytes = self.edit(new_request_uri, destination, branch_id);
        if destination.transport == Transport::Udp && bytes.len() > UDP_SIZE_LIMIT {
            let tcp = Destination {
                transport: Transport::Tcp,
                addr: destination.addr,
            };
            let tcp_bytes = self.edit(new_request_uri, tcp, branch_id);
            return (tcp, tcp_bytes, Some(bytes));
        }
        (destination, bytes, None)
    }

    fn edit(
        &self,
        new_request_uri: Option<&str>,
        destination: Destination,
        branch_id: &str,
    ) -> Bytes {
        let (request, plan) = (self.request, self.plan);
        let transport = destination.transport;
        let outbound = self.identity.listen_toward(transport, destination.addr);
        let mut edit = request.edit();
        if let Some(uri) = new_request_uri {
            edit.set_request_uri(uri);
        }
        // RFC 3261 section 18.2.1 / RFC 3581: note where the request really came from.
        if let Some((index, header)) = request
            .headers()
            .iter()
            .enumerate()
            .find(|(_, h)| h.name == HeaderName::Via)
        {
            let top = request.top_via().ok();
            let value = top.and_then(|top| {
                reply::first_via_with_received(header.value, &top, self.source.addr)
            });
            if let Some(value) = value {
                edit.set_header_value(index, &value);
            }
        }
        edit.insert_header_first(
            "Via",
            &self.identity.via_from(transport, outbound, branch_id),
        );
        let method = request.method().unwrap_or(Method::Options);
        let in_dialog = route::has_to_tag(request);
        if !in_dialog && matches!(method, Method::Invite | Method::Subscribe | Method::Refer) {
            self.record_route(&mut edit, outbound, transport);
        }
        if plan.own_routes > 0 {
            edit.remove_first_values(HeaderName::Route, plan.own_routes);
        }
        if plan.remove_last_route {
            remove_last_route(request, &mut edit);
        }
        asserted_identity::rewrite(request, &mut edit, self.asserted, self.hop);
        edit.decrement_max_forwards();
        if transport == Transport::Tcp {
            edit.ensure_content_length();
        }
        Bytes::from(edit.finish())
    }

    /// Section 16.6 step 4: our Record-Route. A request that arrived on one of our addresses
    /// and leaves from another (two networks) gets one per side, the one facing the callee on
    /// top (RFC 5658 section 4): the callee's later requests then reach us on its network, and
    /// the caller's, which use the route set in reverse, on the caller's.
    fn record_route(&self, edit: &mut Editor<'_, '_>, outbound: SocketAddr, transport: Transport) {
        let source = self.source;
        let inbound = self.identity.listen_at(source.transport, source.local);
        let inbound_route = self.identity.record_route_of(source.transport, inbound);
        // With `--record-route-host` both sides may be the cluster's one name: written once.
        if self.identity.host_of(inbound) != self.identity.host_of(outbound) {
            let outbound_route = self.identity.record_route_of(transport, outbound);
            if inbound_route != outbound_route {
                // Lines inserted at the top come out in the order they are inserted.
                edit.insert_header_first("Record-Route", &outbound_route);
            }
        }
        edit.insert_header_first("Record-Route", &inbound_route);
    }
}

/// Forwards to one URI: a Route's next hop, or the Request-URI.
pub(super) fn forward_single(new: &mut NewRequest<'_, '_>, plan: &RoutePlan, next_hop: &str) {
    let Ok(uri) = Uri::parse(next_hop) else {
        return new.respond(400, "Bad Route", &[]);
    };
    let Some((host, port, transport)) = uri_target(&uri) else {
        return new.respond(416, "Unsupported URI Scheme", &[]);
    };
    let asserted = new.asserted_identity();
    let forwarding = Forwarding {
        identity: &new.core.identity,
        source: new.source,
        request: new.request,
        plan,
        asserted: asserted.as_ref(),
        hop: Hop::Foreign,
    };
    let new_request_uri = plan.new_request_uri.as_deref();
    let branch_id = branch_for(new.request, 0);
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let destination = Destination {
                transport,
                addr: SocketAddr::new(ip, port),
            };
            if new.core.identity.is_own_address(destination.addr) {
                return refuse_own_address(new);
            }
            let (destination, bytes, udp_fallback) =
                forwarding.copy_for(new_request_uri, destination, &branch_id);
            add_branch(new, destination, &branch_id, bytes, udp_fallback);
        }
        Err(_) => {
            let placeholder = Destination {
                transport,
                addr: SocketAddr::from(([0, 0, 0, 0], port)),
            };
            let (_, bytes, _) = forwarding.copy_for(new_request_uri, placeholder, &branch_id);
            new.tx.set_pending(PendingBranch {
                branch_id,
                request: bytes,
            });
            // RFC 3263 section 4 looks at what the URI gave, not at the defaults.
            let sip = uri.as_sip();
            new.actions.push(Action::Resolve {
                key: *new.key,
                host,
                port: sip.and_then(|s| s.port),
                transport: sip.and_then(|s| s.transport()).map(|_| transport),
            });
        }
    }
}

/// Starts a branch toward `destination` with its forwarded copy, and its UDP edition when it
/// goes over TCP only for its size.
pub(super) fn add_branch(
    new: &mut NewRequest<'_, '_>,
    destination: Destination,
    branch_id: &str,
    bytes: Bytes,
    udp_fallback: Option<Bytes>,
) {
    new.tx.add_branch(
        new.now,
        &new.core.transaction_env(),
        destination,
        branch_id,
        bytes,
        new.actions,
    );
    if let Some(udp) = udp_fallback {
        new.tx.set_udp_fallback(branch_id, udp);
    }
}

/// A next hop that is this proxy's own address: sending there would only bring the
/// request back (and answer it 482 one hop later), so it is refused at once.
pub(super) fn refuse_own_address(new: &mut NewRequest<'_, '_>) {
    tracing::debug!("a request whose next hop is this proxy itself was refused");
    let warning = next_hop_is_us_warning(&new.core.identity);
    new.respond(482, "Loop Detected", &[warning]);
}

/// The Warning of a 482 for a request whose next hop is this proxy.
pub(super) fn next_hop_is_us_warning(identity: &ProxyIdentity) -> (&'static str, String) {
    ("Warning", identity.warning("the next hop is this proxy"))
}

/// Removes the last Route value (strict routing, RFC 3261 section 16.4).
fn remove_last_route(request: &Message<'_>, edit: &mut Editor<'_, '_>) {
    let Some((index, header)) = request
        .headers()
        .iter()
        .enumerate()
        .rev()
        .find(|(_, h)| h.name == HeaderName::Route)
    else {
        return;
    };
    let values: Vec<&str> = dialtone_sip::lex::split_commas(header.value).collect();
    if values.len() <= 1 {
        edit.remove_header(index);
    } else {
        edit.set_header_value(index, &values[..values.len() - 1].join(", "));
    }
}
