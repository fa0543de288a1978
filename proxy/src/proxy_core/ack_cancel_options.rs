//! The requests that take no new branch of their own: ACK (absorbed by the INVITE transaction
//! it acknowledges, else forwarded statelessly, RFC 3261 section 16.11), CANCEL (answered at
//! once, then sent down every pending branch, 16.10) and OPTIONS to the proxy itself (answered
//! with what it allows, 11.2).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{Message, Uri};
use dialtone_transaction::TransactionKey;

use super::admission::admits_ack;
use super::asserted_identity::Hop;
use super::forward::Forwarding;
use super::identity::{branch_for, uri_target};
use super::new_request::NewRequest;
use super::targets::Target;
use super::transaction::ProxyTransaction;
use super::{route, targets, Action, Destination, ProxyCore, Source};

/// What the proxy allows and says so in OPTIONS answers and 405s.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, NOTIFY, REFER, INFO, UPDATE, MESSAGE, SUBSCRIBE, PRACK";

/// OPTIONS to the proxy itself: what it allows and accepts.
pub(super) fn answer_options(new: &mut NewRequest<'_, '_>) {
    new.respond(
        200,
        "OK",
        &[
            ("Allow", ALLOW.to_string()),
            ("Accept", "application/sdp".to_string()),
        ],
    );
}

/// ACK: absorbed when it acknowledges our own non-2xx final; otherwise (the ACK of a 2xx,
/// an end-to-end request) forwarded statelessly along its route (RFC 3261 section 16.11).
pub(super) fn on_ack(
    core: &ProxyCore,
    now: Instant,
    wall: SystemTime,
    source: Source,
    request: &Message<'_>,
    key: &TransactionKey,
    actions: &mut Vec<Action>,
) {
    if let Some(entry) = core.servers.get(key).map(|e| e.value().clone()) {
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        let absorbed = tx.on_ack(now, &core.transaction_env(), actions);
        core.after(now, wall, key, &mut tx, actions);
        if absorbed {
            return;
        }
    } else if is_for_our_own_response(core, request) {
        // The ACK of a challenge the proxy sent statelessly (`answered_statelessly`): no
        // transaction waits for it, and it belongs to nobody downstream.
        return;
    }
    forward_stateless(core, wall, source, request, actions);
}

/// True when the ACK's To tag is the one the proxy puts on its own responses: it acknowledges
/// a final the proxy wrote (RFC 3261 section 8.2.6.2), never a callee's, whose tag is its own.
fn is_for_our_own_response(core: &ProxyCore, request: &Message<'_>) -> bool {
    request
        .to()
        .ok()
        .and_then(|to| to.tag())
        .is_some_and(|tag| tag == core.to_tag)
}

fn forward_stateless(
    core: &ProxyCore,
    wall: SystemTime,
    source: Source,
    request: &Message<'_>,
    actions: &mut Vec<Action>,
) {
    if request.max_forwards().ok().flatten() == Some(0) {
        return;
    }
    let Ok(plan) = route::plan(&core.identity, request) else {
        return;
    };
    let Some(uri) = request.request_uri().and_then(|u| u.as_sip()).copied() else {
        return;
    };
    let target = targets::target(&core.identity, request, &uri, &plan);
    if !admits_ack(core, request, &plan, &target) {
        tracing::debug!(?target, "an ACK that may not pass the proxy was dropped");
        return;
    }
    let next_hops = match target {
        Target::Proxy => return,
        Target::LocalUser(user) => {
            let bindings = core.location.lookup(&user, wall);
            let (targets, _) = targets::binding_targets(&core.identity, &bindings);
            targets
                .into_iter()
                .map(|(uri, destination)| (uri.to_string(), destination))
                .collect()
        }
        Target::Elsewhere(next_hop) => {
            let Ok(next) = Uri::parse(&next_hop) else {
                return;
            };
            let Some((host, port, transport)) = uri_target(&next) else {
                return;
            };
            let Ok(ip) = host.parse::<IpAddr>() else {
                tracing::debug!(%host, "stateless forward to a name is not supported; dropped");
                return;
            };
            let addr = SocketAddr::new(ip, port);
            if core.identity.is_own_address(addr) {
                return;
            }
            let new_uri = plan.new_request_uri.clone().unwrap_or_default();
            vec![(new_uri, Destination { transport, addr })]
        }
    };
    let forwarding = Forwarding {
        identity: &core.identity,
        source,
        request,
        plan: &plan,
        // An ACK is never authenticated: no identity is asserted, the caller's is removed.
        asserted: None,
        hop: Hop::Foreign,
    };
    let branch_id = branch_for(request, 0);
    for (new_uri, destination) in next_hops {
        let new_uri = (!new_uri.is_empty()).then_some(new_uri.as_str());
        let (to, bytes, _) = forwarding.copy_for(new_uri, destination, &branch_id);
        actions.push(Action::Send { to, bytes });
    }
}

/// A received CANCEL, before it has a transaction.
pub(super) struct Cancel<'r, 'm> {
    pub source: Source,
    pub request: &'r Message<'m>,
    pub key: &'r TransactionKey,
    pub raw: Bytes,
    /// Where its responses go (section 18.2.2).
    pub reply_to: Destination,
}

/// CANCEL (RFC 3261 section 16.10): 200 to the CANCEL at once, then CANCEL every pending
/// branch; the 487s come back through the branches.
pub(super) fn on_cancel(
    core: &ProxyCore,
    now: Instant,
    wall: SystemTime,
    cancel: Cancel<'_, '_>,
    actions: &mut Vec<Action>,
) {
    let Cancel {
        source,
        request,
        key,
        raw,
        reply_to,
    } = cancel;
    let invite = key
        .cancelled_invite()
        .and_then(|k| core.servers.get(&k).map(|e| (k, e.value().clone())));
    let Some((invite_key, invite_entry)) = invite else {
        let reason = "Call/Transaction Does Not Exist";
        return core.reply_stateless(source, request, 481, reason, actions);
    };
    let env = core.transaction_env();
    let mut cancel_tx =
        ProxyTransaction::new(now, &core.timers, raw, "CANCEL", reply_to, source.addr);
    cancel_tx.respond_to(request, now, &env, 200, "OK", &[], actions);
    let entry = Arc::new(Mutex::new(cancel_tx));
    if !core.insert_new(key, &entry) {
        return;
    }
    {
        let mut cancel_tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        core.after(now, wall, key, &mut cancel_tx, actions);
    }
    let mut invite_tx = invite_entry.lock().unwrap_or_else(|p| p.into_inner());
    if !invite_tx.final_sent() {
        invite_tx.cancel(now, &env, actions);
    }
    core.after(now, wall, &invite_key, &mut invite_tx, actions);
}
