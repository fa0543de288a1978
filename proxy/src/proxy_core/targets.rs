//! The target set (RFC 3261 section 16.5): where a request leads once route processing is done
//! ([`target`]: the proxy itself, a user of ours, or elsewhere), and for a user of ours, every
//! binding the location service holds, each a branch (parallel forking).

use std::net::{IpAddr, SocketAddr};

use dialtone_sip::{Message, SipUri, Uri};
use dialtone_transaction::Transport;

use super::asserted_identity::Hop;
use super::forward::{add_branch, refuse_own_address, Forwarding};
use super::identity::{branch_for, uri_target, ProxyIdentity};
use super::new_request::NewRequest;
use super::route::{has_to_tag, RoutePlan};
use super::Destination;
use crate::registrar::Binding;

/// Where a request leads once route processing (section 16.4) is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// The proxy itself: a URI of ours without a user part.
    Proxy,
    /// A user of a domain we serve (unescaped): the location service decides (section 16.5).
    LocalUser(String),
    /// Anywhere else: the next Route, or a Request-URI outside our domains (a phone's contact
    /// inside a dialog, another domain).
    Elsewhere(String),
}

/// The target of `request` (whose Request-URI is `uri`) after route processing.
///
/// A URI naming one of our domains with a user part goes to the location service whether
/// or not the request has a To tag (section 16.5): a UA that ignores Record-Route sends
/// its BYE to `sip:user@proxy`, which the proxy used to send to itself. Inside a dialog
/// the port must be ours too: in a lab whose domain is 127.0.0.1, `sip:9000@127.0.0.1:5064`
/// is a phone's contact, not our AOR.
pub(super) fn target(
    identity: &ProxyIdentity,
    request: &Message<'_>,
    uri: &SipUri<'_>,
    plan: &RoutePlan,
) -> Target {
    if let Some(next_hop) = &plan.next_hop_route {
        return Target::Elsewhere(next_hop.clone());
    }
    let in_dialog = has_to_tag(request);
    let rewritten;
    let sip = match &plan.new_request_uri {
        Some(text) => {
            rewritten = Uri::parse(text).ok();
            match rewritten.as_ref().and_then(|u| u.as_sip()) {
                Some(sip) => *sip,
                None => return Target::Elsewhere(text.clone()),
            }
        }
        None => *uri,
    };
    let ours = if in_dialog {
        identity.is_this_proxy(&sip)
    } else {
        identity.is_local_domain(sip.host) || identity.is_this_proxy(&sip)
    };
    match (ours, sip.user_unescaped()) {
        (true, None) => Target::Proxy,
        (true, Some(user)) => Target::LocalUser(user.into_owned()),
        (false, _) => Target::Elsewhere(
            plan.new_request_uri
                .clone()
                .or_else(|| request.request_uri().map(|u| u.as_str().to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// Section 16.5 for a local user: every registered contact is a target (parallel forking).
pub(super) fn fork_to_bindings(new: &mut NewRequest<'_, '_>, plan: &RoutePlan, user: &str) {
    let core = new.core;
    let bindings = core.location.lookup(user, new.wall);
    if bindings.is_empty() {
        if core.auth.is_known_user(user) {
            return new.respond(480, "Temporarily Unavailable", &[]);
        }
        return new.respond(404, "Not Found", &[]);
    }
    let (targets, looped) = binding_targets(&core.identity, &bindings);
    if targets.is_empty() && looped {
        return refuse_own_address(new);
    }
    let asserted = new.asserted_identity();
    let forwarding = Forwarding {
        identity: &core.identity,
        source: new.source,
        request: new.request,
        plan,
        asserted: asserted.as_ref(),
        // Our users' phones are inside the trust domain: they keep the asserted identity
        // even under Privacy (RFC 3325 section 7; see `asserted_identity.rs`).
        hop: Hop::Binding,
    };
    for (index, (contact, destination)) in targets.iter().enumerate() {
        let branch_id = branch_for(new.request, index);
        let (destination, bytes, udp_fallback) =
            forwarding.copy_for(Some(contact), *destination, &branch_id);
        add_branch(new, destination, &branch_id, bytes, udp_fallback);
    }
    if new.tx.final_sent() {
        return;
    }
    if targets.is_empty() {
        new.respond(480, "Temporarily Unavailable", &[]);
    }
}

/// Where each of a user's bindings is reached, and the Request-URI it gets: over TCP, the
/// connection its REGISTER came on; over UDP, its contact's address when it gives one,
/// else the REGISTER's source. Contacts that do not parse, and any that lead back to this
/// proxy (a contact naming our own address, or one of our domains with a user, would have
/// it send requests to itself), are left out. A contact's escaped `?headers` (RFC 4475
/// regescrt registers `?Route=...`) stay in the binding but never reach the Request-URI,
/// where RFC 3261 section 19.1.1 (table 1) forbids them: honoured, a `Route` there would
/// let anyone who can register send the proxy's requests wherever they like.
/// The flag says whether any was left out for that reason.
pub(super) fn binding_targets<'b>(
    identity: &ProxyIdentity,
    bindings: &'b [Binding],
) -> (Vec<(&'b str, Destination)>, bool) {
    let mut targets = Vec::with_capacity(bindings.len());
    let mut looped = false;
    for binding in bindings {
        let Ok(contact) = Uri::parse(&binding.contact) else {
            continue;
        };
        let destination = match binding.transport {
            Transport::Tcp => Destination {
                transport: Transport::Tcp,
                addr: binding.source,
            },
            Transport::Udp => match uri_target(&contact)
                .and_then(|(host, port, t)| Some((host.parse::<IpAddr>().ok()?, port, t)))
            {
                Some((ip, port, transport)) => Destination {
                    transport,
                    addr: SocketAddr::new(ip, port),
                },
                None => Destination {
                    transport: Transport::Udp,
                    addr: binding.source,
                },
            },
        };
        let names_us = contact.as_sip().is_some_and(|sip| {
            sip.user.is_some() && sip.maddr().is_none() && identity.is_this_proxy(sip)
        });
        if names_us || identity.is_own_address(destination.addr) {
            tracing::debug!(contact = %binding.contact, "a binding leads back to this proxy; skipped");
            looped = true;
            continue;
        }
        let request_uri = match contact.as_sip().and_then(|sip| sip.headers) {
            Some(headers) => &binding.contact[..binding.contact.len() - headers.len() - 1],
            None => binding.contact.as_str(),
        };
        targets.push((request_uri, destination));
    }
    (targets, looped)
}
