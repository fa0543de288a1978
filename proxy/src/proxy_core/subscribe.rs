//! SUBSCRIBE at the proxy (RFC 6665): which ones it answers itself, and the answer.
//!
//! Only `Event: message-summary` to one of our users is terminated here (the proxy is the
//! voicemail notifier, `mwi/`); every other package to a user (`dialog`, `presence`, ...) is
//! for the user's phones and is forwarded to the bindings as before. A SUBSCRIBE addressed to
//! the proxy itself (a URI of ours without a user) names no mailbox: `message-summary` gets
//! 404, any other package 489 Bad Event with `Allow-Events: message-summary` (section 8.2.2).
//!
//! Who may subscribe: under `--auth all` the SUBSCRIBE is challenged like any request for a
//! local user (`admission.rs`), and the digest user must be the mailbox's own user (403
//! otherwise): message counts are the user's business, and the anonymous-From rule, which
//! lets any known user sign, must not open other users' mailboxes. Under `--auth register`
//! or `none` requests for local users are not challenged, and neither is this one. A user is
//! a mailbox when it is configured (`--user`) or registered now.

use super::mwi::{self, summary, NotifyEnv, Refusal, SubscribeRequest};
use super::new_request::NewRequest;
use super::route::RoutePlan;
use super::targets::Target;
use super::TransactionEnv;
use crate::config::AuthMode;
use crate::proxy_core::identity::ProxyIdentity;
use crate::proxy_core::Source;
use dialtone_transaction::Transport;

/// True when the proxy answers this SUBSCRIBE itself rather than forwarding it.
pub(super) fn is_for_the_proxy(new: &NewRequest<'_, '_>, target: &Target) -> bool {
    match target {
        Target::Proxy => true,
        Target::LocalUser(_) => summary::is_message_summary(new.request),
        Target::Elsewhere(_) => false,
    }
}

/// Answers a SUBSCRIBE that [`is_for_the_proxy`].
pub(super) fn subscribe(new: &mut NewRequest<'_, '_>, plan: &RoutePlan, target: &Target) {
    let Target::LocalUser(aor) = target else {
        if summary::is_message_summary(new.request) {
            return new.respond(404, "Not Found (subscribe to a user's address)", &[]);
        }
        return new.respond(489, "Bad Event", &[allow_events()]);
    };
    if !new.admit(plan, target) {
        return;
    }
    let core = new.core;
    if core.auth_mode == AuthMode::All && new.authenticated.as_deref() != Some(aor.as_str()) {
        return new.respond(403, "Forbidden (not this mailbox's user)", &[]);
    }
    if !core.is_mailbox(aor, new.wall) {
        return new.respond(404, "Not Found", &[]);
    }
    let requested = match new.request.expires() {
        Ok(requested) => requested,
        Err(_) => return new.respond(400, "Bad Expires", &[]),
    };
    let domain = core.identity.primary_domain();
    let account = mwi::account(aor, &domain);
    let contact = our_contact(&core.identity, new.source, aor);
    let env = NotifyEnv {
        identity: &core.identity,
        timers: &core.timers,
    };
    let subscribe = SubscribeRequest {
        request: new.request,
        source: new.source,
        aor,
        account: &account,
        contact: &contact,
    };
    let mut notifies = Vec::new();
    match core
        .mwi
        .subscribe(new.now, env, subscribe, requested, &mut notifies)
    {
        Ok(subscribed) => {
            let env = TransactionEnv {
                to_tag: &subscribed.to_tag,
                ..core.transaction_env()
            };
            let extra = [
                ("Expires", subscribed.expires.to_string()),
                ("Contact", subscribed.contact.clone()),
                allow_events(),
            ];
            new.tx
                .respond_to(new.request, new.now, &env, 200, "OK", &extra, new.actions);
            // The NOTIFY follows its 200 (RFC 6665 section 4.2.1.2: at once).
            new.actions.extend(notifies);
        }
        Err(Refusal::NoSuchSubscription) => new.respond(481, "Subscription Does Not Exist", &[]),
        Err(Refusal::OutOfOrder) => new.respond(500, "CSeq Out of Order", &[]),
        Err(Refusal::TooMany) => new.respond(
            503,
            "Service Unavailable (too many subscriptions)",
            &[("Retry-After", "60".to_string())],
        ),
        Err(Refusal::Bad(_)) => new.respond(400, "Bad Request (no Contact or tags)", &[]),
    }
}

/// `Allow-Events: message-summary`: the one package the proxy notifies.
fn allow_events() -> (&'static str, String) {
    ("Allow-Events", summary::EVENT.to_string())
}

/// Our Contact in a subscription dialog: the user at the address the SUBSCRIBE reached, so
/// that a refresh sent to it comes back here and names the mailbox (`targets.rs` takes
/// `sip:USER@<our address>` inside a dialog as that local user).
fn our_contact(identity: &ProxyIdentity, source: Source, aor: &str) -> String {
    let local = identity.listen_at(source.transport, source.local);
    let host = identity.host_of(local);
    match source.transport {
        Transport::Udp => format!("<sip:{aor}@{host}>"),
        Transport::Tcp => format!("<sip:{aor}@{host};transport=tcp>"),
    }
}
