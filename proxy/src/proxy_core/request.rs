//! A received request, in the order RFC 3261 section 16 reads: a request the parser refused
//! is answered statelessly; an ACK, a retransmission and a CANCEL go their own ways
//! (`ack_cancel_options.rs`, the transaction that exists); a new request gets its server
//! transaction and a [`NewRequest`] (`new_request.rs`), which takes it through validation (16.3,
//! `validate.rs`), route information (16.4, `route.rs`), admission (`admission.rs`), the
//! target set (16.5, `targets.rs`) and forwarding (16.6, `forward.rs`), or to the registrar
//! (`register.rs`), or, for a `message-summary` SUBSCRIBE to a user, to the notifier
//! (`subscribe.rs`, `mwi/`).

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dialtone_sip::{Message, Method, ParseError};

use super::new_request::NewRequest;
use super::targets::Target;
use super::transaction::ProxyTransaction;
use super::{ack_cancel_options, forward, register, reply, route, subscribe, targets, validate};
use super::{Action, ProxyCore, Source};

/// Sections 16.3 to 16.6 for a new request.
fn process(new: &mut NewRequest<'_, '_>) {
    let Some(uri) = validate::validate(new) else {
        return;
    };
    let plan = match route::plan(&new.core.identity, new.request) {
        Ok(plan) => plan,
        Err(reason) => return new.respond(400, reason, &[]),
    };
    let method = new.request.method().unwrap_or(Method::Options);
    let target = targets::target(&new.core.identity, new.request, &uri, &plan);
    if method == Method::Register && matches!(target, Target::Proxy | Target::LocalUser(_)) {
        return register::register(new);
    }
    if method == Method::Subscribe && subscribe::is_for_the_proxy(new, &target) {
        return subscribe::subscribe(new, &plan, &target);
    }
    match target {
        Target::Proxy if method == Method::Options => ack_cancel_options::answer_options(new),
        // Addressed to the proxy itself, which only answers OPTIONS and REGISTER
        // (RFC 3261 section 8.2.1: 405 with the methods it allows).
        Target::Proxy => new.respond(
            405,
            "Method Not Allowed",
            &[("Allow", "OPTIONS, REGISTER".to_string())],
        ),
        Target::LocalUser(ref user) => {
            if new.admit(&plan, &target) {
                new.trying_before_forwarding();
                targets::fork_to_bindings(new, &plan, user);
            }
        }
        Target::Elsewhere(ref next_hop) => {
            if new.admit(&plan, &target) {
                new.trying_before_forwarding();
                forward::forward_single(new, &plan, next_hop);
            }
        }
    }
}

/// Handles a parsed request (RFC 3261 section 16, from 16.2 on).
pub(super) fn receive(
    core: &ProxyCore,
    now: Instant,
    wall: SystemTime,
    source: Source,
    raw: &Bytes,
    request: &Message<'_>,
    actions: &mut Vec<Action>,
) {
    let Some(method) = request.method() else {
        return;
    };
    core.metrics.request_received(&method).inc();
    if let Err(error) = request.check_request() {
        core.metrics
            .parse_errors
            .with_label_values(&[error.kind()])
            .inc();
        if method != Method::Ack {
            let (status, reason) = match error {
                // RFC 4475 section 3.1.2.18: an unknown method with a mismatched CSeq is
                // best answered 501 at a proxy.
                ParseError::CSeqMethodMismatch if matches!(method, Method::Extension(_)) => {
                    (501, "Not Implemented".to_string())
                }
                _ => (error.status_code(), error.reason_phrase()),
            };
            core.reply_stateless(source, request, status, &reason, actions);
        }
        return;
    }
    let Some(key) = dialtone_transaction::server_key(request) else {
        return;
    };
    let raw = raw.slice_ref(request.as_bytes());
    if method == Method::Ack {
        return ack_cancel_options::on_ack(core, now, wall, source, request, &key, actions);
    }
    let via = request.top_via().ok();
    let reply_to = reply::reply_destination(&source, via.as_ref());
    if let Some(entry) = core.servers.get(&key).map(|e| e.value().clone()) {
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        tx.on_retransmission(now, &core.transaction_env(), reply_to, actions);
        core.after(now, wall, &key, &mut tx, actions);
        return;
    }
    if method == Method::Cancel {
        let cancel = ack_cancel_options::Cancel {
            source,
            request,
            key: &key,
            raw,
            reply_to,
        };
        return ack_cancel_options::on_cancel(core, now, wall, cancel, actions);
    }
    let mut tx = ProxyTransaction::new(
        now,
        &core.timers,
        raw,
        method.as_str(),
        reply_to,
        source.addr,
    );
    let mut new = NewRequest {
        core,
        now,
        wall,
        source,
        request,
        key: &key,
        tx: &mut tx,
        actions,
        authenticated: None,
    };
    process(&mut new);
    if tx.answered_statelessly() {
        return;
    }
    tx.keep_only_the_skeleton(request);
    let entry = Arc::new(Mutex::new(tx));
    if !core.insert_new(&key, &entry) {
        return;
    }
    let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
    core.after(now, wall, &key, &mut tx, actions);
}
