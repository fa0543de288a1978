//! [`NewRequest`]: one new request on its way through RFC 3261 sections 16.3 to 16.6 with
//! its server transaction, the context every step of `request.rs`, `validate.rs`,
//! `admission.rs`, `targets.rs`, `forward.rs` and `register.rs` works on.

use std::time::{Instant, SystemTime};

use dialtone_sip::{Message, Method};
use dialtone_transaction::TransactionKey;

use super::asserted_identity::AssertedIdentity;
use super::route::has_to_tag;
use super::transaction::ProxyTransaction;
use super::{Action, ProxyCore, Source};

/// One new request on its way through sections 16.3 to 16.6, with its server transaction: what
/// every step needs (repro's request context), so that no step takes eight arguments.
pub(super) struct NewRequest<'r, 'm> {
    pub core: &'r ProxyCore,
    pub now: Instant,
    /// The wall clock, for bindings' expiry, nonces and the Date header.
    pub wall: SystemTime,
    pub source: Source,
    pub request: &'r Message<'m>,
    pub key: &'r TransactionKey,
    pub tx: &'r mut ProxyTransaction,
    pub actions: &'r mut Vec<Action>,
    /// The digest user whose credentials this request carried and the proxy accepted
    /// (`admission.rs`), whose identity it asserts when forwarding (`asserted_identity.rs`).
    pub authenticated: Option<String>,
}

impl NewRequest<'_, '_> {
    /// The identity the proxy asserts on this request's forwarded copies (RFC 3325): the
    /// authenticated user's, for an out-of-dialog request only (inside a dialog the callee
    /// knows its peer already, and the request was not authenticated as a new call).
    pub fn asserted_identity(&self) -> Option<AssertedIdentity> {
        let user = self.authenticated.as_deref()?;
        if has_to_tag(self.request) {
            return None;
        }
        let domain = self.core.identity.primary_domain();
        Some(AssertedIdentity::for_request(self.request, user, &domain))
    }

    /// RFC 3261 section 16.2: an INVITE the proxy admitted and is about to forward gets a
    /// 100 Trying at once, so the caller stops retransmitting while the callee rings. One the
    /// proxy answers itself (a challenge, a refusal, a malformed request) gets none: its final
    /// follows at once, which section 17.2.1 allows, and a 100 before each challenge was a
    /// datagram and a wake-up of the caller per authenticated call that Kamailio never sends.
    pub fn trying_before_forwarding(&mut self) {
        if self.request.method() == Some(Method::Invite) {
            self.respond(100, "Trying", &[]);
        }
    }

    /// Answers the request with a response the proxy writes itself.
    pub fn respond(&mut self, status: u16, reason: &str, extra: &[(&str, String)]) {
        self.tx.respond_to(
            self.request,
            self.now,
            &self.core.transaction_env(),
            status,
            reason,
            extra,
            self.actions,
        );
    }
}
