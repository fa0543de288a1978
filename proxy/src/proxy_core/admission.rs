//! Who may have a request forwarded (RFC 3261 section 22 and the proxy's relay policy), given
//! the target it leads to after route processing (`targets.rs`): whether it lies inside a
//! dialog this proxy record-routed, and the digest check that guards everything else.
//!
//! The rules, for every method alike:
//! - The digest username must be the From's user (a user cannot call as another), except for
//!   an anonymous From (RFC 3323 section 4.1.1.3), which any known user may send: the digest
//!   check itself stays, and the proxy asserts the authenticated user (RFC 3325,
//!   `asserted_identity.rs`). REGISTER keeps its own rule (the To's user, `register.rs`).
//! - With `--auth all`, an out-of-dialog request for a user of our domains is challenged
//!   before any user or location lookup, so that the answer (status line, headers, time) is
//!   the same for users that exist and users that do not: a scanner (`svwar`) learns nothing.
//! - With auth on (`register` or `all`), nothing that arrived without valid credentials goes
//!   to a host that is not ours, whatever its Route, Request-URI or To tag say, unless it is
//!   inside a dialog this proxy record-routed and knows: a To tag, our URI on top of the
//!   route set, and a call the proxy saw established. A made-up To tag with our Route
//!   (Kamailio's default script relays those) does not make a request in-dialog. For a
//!   request to a local user the To tag and the known call suffice (it goes to a binding,
//!   not away), so that a UA that ignores Record-Route can still end its call.
//! - With `--auth none`, requests for other domains are relayed only with `--relay true`
//!   (`403 Relay forbidden` otherwise); dialogs we record-routed pass as before.
//! - OPTIONS, REGISTER and the rest addressed to the proxy itself are answered by it.

use std::hash::{DefaultHasher, Hash, Hasher};

use dialtone_sip::{HeaderName, Message};

use super::asserted_identity::is_anonymous;
use super::new_request::NewRequest;
use super::route::{has_to_tag, RoutePlan};
use super::targets::Target;
use super::ProxyCore;
use crate::auth::{AuthDecision, Claimed};
use crate::config::AuthMode;

/// How credentials the proxy accepted were used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Authorized {
    /// For the first time.
    Fresh,
    /// By the very request that used them before: its retransmission
    /// ([`AuthDecision::Replayed`]).
    Replayed,
}

/// True when `request` is inside a dialog this proxy record-routed, as far as the request
/// itself can tell: it has a To tag and reached us through our own URI at the top of its
/// route set (loose routing) or as its Request-URI (a strict router such as the seed's ATA).
pub(super) fn routed_through_us(request: &Message<'_>, plan: &RoutePlan) -> bool {
    has_to_tag(request) && (plan.own_routes > 0 || plan.new_request_uri.is_some())
}

impl NewRequest<'_, '_> {
    /// Whether the request, headed for `target`, may go on; when not, its answer (a challenge,
    /// 403) has been sent. REGISTER and requests for the proxy itself are not judged here.
    pub(super) fn admit(&mut self, plan: &RoutePlan, target: &Target) -> bool {
        let core = self.core;
        let request = self.request;
        let in_dialog = routed_through_us(request, plan);
        let needs_credentials = match (core.auth_mode, target) {
            (_, Target::Proxy) => false,
            // A local user's contact is no relay: a To tag and a call we know suffice, also
            // from a UA that ignores Record-Route and sends its BYE to `sip:user@proxy`.
            (AuthMode::All, Target::LocalUser(_)) => !in_known_dialog(core, request),
            (AuthMode::None | AuthMode::Register, Target::LocalUser(_)) => false,
            (AuthMode::None, Target::Elsewhere(_)) => {
                if !in_dialog && !core.relay {
                    self.respond(403, "Relay forbidden", &[]);
                    return false;
                }
                false
            }
            (AuthMode::Register | AuthMode::All, Target::Elsewhere(_)) => {
                !(in_dialog && knows_dialog(core, request))
            }
        };
        if !needs_credentials {
            return true;
        }
        let from = request.from().ok();
        let from_user = from.as_ref().and_then(|f| f.uri.user()).unwrap_or("");
        // An anonymous From (RFC 3323) names nobody to match: any known user's valid
        // credentials pass, and the proxy asserts that user (`asserted_identity.rs`).
        let claimed = match from {
            Some(ref from) if is_anonymous(from) => Claimed::AnyKnownUser,
            _ => Claimed::User(from_user),
        };
        self.authenticate(claimed, 407, false).is_some()
    }

    /// Checks credentials; on anything but success the response is sent and `None` returned.
    /// Credentials that this very request used before (its retransmission) pass only with
    /// `admit_replay` (and say so), for a stateless registrar that must answer it again; a
    /// second use by any other request is a replay and is challenged afresh.
    pub(super) fn authenticate(
        &mut self,
        claimed: Claimed<'_>,
        challenge_code: u16,
        admit_replay: bool,
    ) -> Option<Authorized> {
        let core = self.core;
        let request = self.request;
        let credentials_header = if challenge_code == 401 {
            HeaderName::Authorization
        } else {
            HeaderName::ProxyAuthorization
        };
        // Credentials of a scheme other than Digest are not ours to judge: RFC 4475 section
        // 3.3.7 expects a registrar to answer them with a fresh Digest challenge, not a 400.
        let values: Vec<&str> = request
            .headers_named(credentials_header)
            .map(|h| h.value)
            .filter(|v| {
                v.split_whitespace()
                    .next()
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("digest"))
            })
            .collect();
        let method = request.method().map(|m| m.as_str()).unwrap_or("");
        let fingerprint = transaction_fingerprint(request);
        let source = self.source.addr.ip();
        let failure = |label: &str| core.metrics.auth_failures.with_label_values(&[label]).inc();
        match core
            .auth
            .check(&values, method, claimed, source, self.wall, fingerprint)
        {
            AuthDecision::Authenticated { user } => {
                self.authenticated = Some(user);
                return Some(Authorized::Fresh);
            }
            AuthDecision::Replayed { user } if admit_replay => {
                self.authenticated = Some(user);
                return Some(Authorized::Replayed);
            }
            AuthDecision::Replayed { .. } => self.challenge(challenge_code, false),
            AuthDecision::Challenge { stale } => self.challenge(challenge_code, stale),
            AuthDecision::Failed => {
                failure("bad_credentials");
                self.challenge(challenge_code, false);
            }
            AuthDecision::WrongUser => {
                failure("wrong_user");
                self.respond(403, "Forbidden", &[]);
            }
            AuthDecision::Throttled => {
                failure("throttled");
                core.metrics.throttled_sources.inc();
                self.respond(403, "Forbidden (Too Many Failures)", &[]);
            }
            AuthDecision::Malformed => {
                failure("malformed");
                self.respond(400, "Bad Credentials", &[]);
            }
        }
        None
    }

    /// Sends a 401 or 407 (`challenge_code`) with a fresh challenge.
    pub(super) fn challenge(&mut self, challenge_code: u16, stale: bool) {
        let (header, reason) = if challenge_code == 401 {
            ("WWW-Authenticate", "Unauthorized")
        } else {
            ("Proxy-Authenticate", "Proxy Authentication Required")
        };
        self.core.metrics.auth_challenges.inc();
        let value = self.core.auth.challenge(self.wall, stale);
        self.respond(challenge_code, reason, &[(header, value)]);
    }
}

/// True when the request has a To tag and belongs to a call the proxy saw established.
fn in_known_dialog(core: &ProxyCore, request: &Message<'_>) -> bool {
    has_to_tag(request) && knows_dialog(core, request)
}

/// True when the request's Call-ID is a call the proxy saw established (a 2xx to its
/// INVITE passed here) and has not seen end: only then is a To tag with our Route a dialog
/// of ours rather than a forgery.
fn knows_dialog(core: &ProxyCore, request: &Message<'_>) -> bool {
    request
        .call_id()
        .is_ok_and(|call_id| core.calls.is_active(call_id))
}

/// An ACK, forwarded statelessly, may go to `target` (it cannot be challenged: an ACK is
/// never answered, so one that may not pass is dropped).
pub(super) fn admits_ack(
    core: &ProxyCore,
    request: &Message<'_>,
    plan: &RoutePlan,
    target: &Target,
) -> bool {
    let in_dialog = routed_through_us(request, plan);
    match (core.auth_mode, target) {
        (_, Target::Proxy) => false,
        (AuthMode::None | AuthMode::Register, Target::LocalUser(_)) => true,
        (AuthMode::All, Target::LocalUser(_)) => in_known_dialog(core, request),
        (AuthMode::None, Target::Elsewhere(_)) => in_dialog || core.relay,
        (_, _) => in_dialog && knows_dialog(core, request),
    }
}

/// What identifies a request's transaction for the used-nonce table: its top Via (branch and
/// sent-by), Call-ID and CSeq. A retransmission repeats all of them; a replay in a new
/// transaction, or any other request, does not.
fn transaction_fingerprint(request: &Message<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    request.values(HeaderName::Via).next().hash(&mut h);
    request.call_id().ok().hash(&mut h);
    if let Ok(cseq) = request.cseq() {
        cseq.seq.hash(&mut h);
        cseq.method.as_str().hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
