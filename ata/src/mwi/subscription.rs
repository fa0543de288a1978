//! One line's message-summary subscription, sans-IO (RFC 6665 for SUBSCRIBE/NOTIFY, RFC 3842
//! for the package): the subscriber's half of what `registration::rules` is for REGISTER.
//!
//! The actor (`mwi::actor`) calls [`Subscription::start`], feeds every response to our
//! SUBSCRIBEs to [`Subscription::handle_response`], transaction timeouts to
//! [`Subscription::handle_failure`], NOTIFYs in our dialog to [`Subscription::handle_notify`]
//! (which returns the answer to send) and its timer to [`Subscription::handle_timeout`], always
//! with `now`; it drains [`Subscription::poll_transmit`] into the endpoint,
//! [`Subscription::poll_summary`] into the line, and routes the dialog
//! [`Subscription::dialog_key`] names to itself.
//!
//! Rules kept here:
//! - the SUBSCRIBE goes to the line's own address of record (Request-URI and To), with
//!   `Event: message-summary`, `Accept: application/simple-message-summary` and the Expires
//!   asked (RFC 3842 section 4);
//! - a 401 or 407 is answered with digest credentials for the Request-URI sent, once per
//!   nonce (RFC 3261 22.2), as the registration does (`crate::auth`);
//! - the 2xx makes the dialog (To tag, Record-Route reversed as route set, Contact as remote
//!   target, RFC 3261 12.1.2); a NOTIFY that overtakes the 2xx makes it instead (RFC 6665
//!   4.1.2.4: its From tag, its Record-Route in order, its Contact);
//! - refresh in the dialog at 80% of the granted Expires, like the registration; a NOTIFY's
//!   `Subscription-State: active;expires=N` may bring the refresh forward, never back;
//! - `Subscription-State: terminated` ends the dialog; a new subscription follows after the
//!   NOTIFY's `retry-after`, or [`RESUBSCRIBE_DELAY`] (`rejected` and `noresource` back off
//!   like a failure instead: the server said no, so it is asked rarely);
//! - a 481 to a refresh means the notifier forgot us: a new subscription at once;
//! - any other failure, or a timeout, ends the dialog and backs off 30 s, 60 s, ... up to 10
//!   minutes (or the Retry-After asked, up to an hour). A failed refresh is not retried in the
//!   old dialog, though RFC 6665 4.1.2.2 would keep it until it expires: one way back (a new
//!   subscription) is simpler and the server's NOTIFY restates the counts anyway;
//! - every new subscription after the first gets a new Call-ID and tag, so a late NOTIFY of
//!   the old dialog cannot pass for the new one (the endpoint answers it 481).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialtone_sip::{Message, Method, RequestBuilder};
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use super::notify::NotifyAnswer;
use super::notify::{
    answer, contact_of, is_message_summary, record_route_uris, SubscriptionStateHeader, BODY_TYPE,
    EVENT,
};
use super::summary::{parse_summary, MessageSummary};
use crate::auth::{answer_challenge, AuthHeader, DigestUser};
use crate::call::route::{next_hop, route_plan};
use crate::error::{AtaError, Unusable};
use crate::identity::{self, LineIdentity, USER_AGENT};

/// The Expires a subscription asks for.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// First retry delay after a failure.
pub const BACKOFF_START: Duration = Duration::from_secs(30);
/// Longest retry delay after failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// Longest wait a server's Retry-After or `retry-after` can impose.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);
/// Wait after a `terminated` NOTIFY that names no `retry-after` (RFC 6665 4.1.3 lets a
/// subscriber try again at once after `deactivated` or `timeout`; a few seconds keep a
/// restarting server from a burst).
pub const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(5);

/// Where the subscription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not subscribed and not trying (before start, after unsubscribing).
    Idle,
    /// The first SUBSCRIBE of a subscription is in flight.
    Subscribing,
    /// Subscribed until the instant given (a refresh may be in flight).
    Active {
        /// When the subscription lapses.
        until: Instant,
    },
    /// Not subscribed; a new subscription starts at `retry_at`.
    Waiting {
        /// What ended the last one: a failure status (408 for a timeout), or 200 for a
        /// `terminated` NOTIFY.
        status: u16,
        /// When we subscribe again.
        retry_at: Instant,
    },
    /// An `Expires: 0` SUBSCRIBE is in flight.
    Unsubscribing,
}

impl SubscriptionState {
    /// The state's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            SubscriptionState::Idle => "idle",
            SubscriptionState::Subscribing => "subscribing",
            SubscriptionState::Active { .. } => "active",
            SubscriptionState::Waiting { .. } => "waiting",
            SubscriptionState::Unsubscribing => "unsubscribing",
        }
    }
}

/// A SUBSCRIBE to hand to the endpoint as a new client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The request.
    pub bytes: Vec<u8>,
    /// The next hop.
    pub destination: SocketAddr,
}

/// The fixed inputs of one line's subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionParams {
    /// Who subscribes: the mailbox is this line's address of record.
    pub identity: LineIdentity,
    /// The notifier's address: where out-of-dialog SUBSCRIBEs go, and in-dialog ones when
    /// the dialog's next hop is not an IP address.
    pub server: SocketAddr,
    /// The Expires asked for.
    pub expires: u32,
    /// Digest credentials.
    pub user: DigestUser,
}

/// The dialog a subscription lives in (RFC 3261 12.1).
#[derive(Debug, Clone)]
struct SubscriptionDialog {
    remote_tag: String,
    route_set: Vec<String>,
    remote_target: String,
}

/// The SUBSCRIBE in flight.
#[derive(Debug, Clone)]
struct Pending {
    cseq: u32,
    expires: u32,
    request_uri: String,
}

/// One line's subscription. See the module docs.
#[derive(Debug)]
pub struct Subscription {
    params: SubscriptionParams,
    state: SubscriptionState,
    call_id: String,
    local_tag: String,
    cseq: u32,
    dialog: Option<SubscriptionDialog>,
    pending: Option<Pending>,
    auth: Option<AuthHeader>,
    challenges_answered: u32,
    failures: u32,
    refresh_at: Option<Instant>,
    outbox: VecDeque<Transmit>,
    summaries: VecDeque<MessageSummary>,
    rng: StdRng,
}

impl Subscription {
    /// A subscription that has sent nothing yet; `seed` drives its identifiers.
    pub fn new(params: SubscriptionParams, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let call_id = identity::new_call_id(&mut rng, params.identity.local);
        let local_tag = identity::new_tag(&mut rng);
        Subscription {
            params,
            state: SubscriptionState::Idle,
            call_id,
            local_tag,
            cseq: 0,
            dialog: None,
            pending: None,
            auth: None,
            challenges_answered: 0,
            failures: 0,
            refresh_at: None,
            outbox: VecDeque::new(),
            summaries: VecDeque::new(),
            rng,
        }
    }

    /// The current state.
    pub fn state(&self) -> SubscriptionState {
        self.state
    }

    /// The dialog's Call-ID and our tag, which NOTIFYs carry in To: what the endpoint must
    /// route to us; `None` when no NOTIFY is expected.
    pub fn dialog_key(&self) -> Option<(&str, &str)> {
        match self.state {
            SubscriptionState::Idle | SubscriptionState::Waiting { .. } => None,
            _ => Some((&self.call_id, &self.local_tag)),
        }
    }

    /// Sends the first SUBSCRIBE.
    pub fn start(&mut self, now: Instant) {
        self.send_subscribe(now, self.params.expires);
    }

    /// Ends the subscription (`Expires: 0` in its dialog), as on shutdown; without a dialog
    /// there is nothing to end, and the subscription stops trying.
    pub fn unsubscribe(&mut self, now: Instant) {
        self.refresh_at = None;
        if self.dialog.is_some() && matches!(self.state, SubscriptionState::Active { .. }) {
            self.auth = None;
            self.challenges_answered = 0;
            self.send_subscribe(now, 0);
            self.state = SubscriptionState::Unsubscribing;
        } else {
            self.pending = None;
            self.state = SubscriptionState::Idle;
        }
    }

    /// A response to one of our SUBSCRIBEs (provisionals are ignored).
    pub fn handle_response(
        &mut self,
        now: Instant,
        response: &Message<'_>,
    ) -> Result<(), AtaError> {
        let status = response
            .status()
            .ok_or(AtaError::Unusable(Unusable::NotAResponse))?;
        let cseq = response.cseq()?.seq;
        let Some(pending) = self.pending.clone().filter(|p| p.cseq == cseq) else {
            // A late answer to an earlier SUBSCRIBE; the current one decides.
            return Ok(());
        };
        match status {
            100..=199 => return Ok(()),
            401 | 407 => return self.on_challenge(now, response, &pending),
            _ => {}
        }
        self.pending = None;
        if self.state == SubscriptionState::Unsubscribing {
            self.end();
            return Ok(());
        }
        match status {
            200..=299 => self.on_success(now, response, &pending),
            423 => match response.min_expires()? {
                Some(min) if min > pending.expires && self.challenges_answered < 8 => {
                    self.challenges_answered += 1;
                    self.params.expires = min;
                    self.send_subscribe(now, min);
                }
                _ => self.fail(now, status, Duration::ZERO),
            },
            // RFC 6665 4.1.2.2: the notifier has no such subscription (any more).
            481 if self.dialog.is_some() => {
                self.dialog = None;
                self.new_identifiers();
                self.send_subscribe(now, self.params.expires);
            }
            _ => {
                let asked = response.retry_after().ok().flatten();
                self.fail(now, status, retry_after(asked));
            }
        }
        Ok(())
    }

    /// The SUBSCRIBE transaction timed out or could not be sent (408 / 503).
    pub fn handle_failure(&mut self, now: Instant, status: u16) {
        self.pending = None;
        if self.state == SubscriptionState::Unsubscribing {
            self.end();
            return;
        }
        if self.state != SubscriptionState::Idle {
            self.fail(now, status, Duration::ZERO);
        }
    }

    /// A request the endpoint routed to our dialog (a NOTIFY; anything else is refused 405);
    /// returns the answer to send in its transaction.
    pub fn handle_notify(&mut self, now: Instant, request: &Message<'_>) -> NotifyAnswer {
        if request.method() != Some(Method::Notify) {
            // Nothing else belongs in a subscription's dialog (RFC 6665 4.1).
            return answer(request, 405, "Method Not Allowed");
        }
        if !is_message_summary(request) {
            // RFC 6665 8.2.1: not the package we subscribed to.
            return answer(request, 489, "Bad Event");
        }
        let from_tag = request.from().ok().and_then(|f| f.tag().map(str::to_owned));
        let Some(from_tag) = from_tag.filter(|_| self.dialog_key().is_some()) else {
            return answer(request, 481, "Subscription Does Not Exist");
        };
        match &mut self.dialog {
            Some(dialog) if dialog.remote_tag != from_tag => {
                // A second notifier (a forked SUBSCRIBE): one subscription is enough.
                return answer(request, 481, "Subscription Does Not Exist");
            }
            Some(dialog) => {
                // RFC 6665 4.1.2.4 (via RFC 3261 12.2): a NOTIFY refreshes the remote target.
                if let Some(target) = contact_of(request) {
                    dialog.remote_target = target;
                }
            }
            None => {
                let Some(remote_target) = contact_of(request) else {
                    return answer(request, 400, "Missing Contact");
                };
                // RFC 3261 12.1.1: the NOTIFY's sender is the UAS here; Record-Route in order.
                let route_set = record_route_uris(request);
                self.dialog = Some(SubscriptionDialog {
                    remote_tag: from_tag,
                    route_set,
                    remote_target,
                });
            }
        }
        if let Some(summary) = parse_summary(request.body()) {
            self.summaries.push_back(summary);
        }
        if let Some(state) = SubscriptionStateHeader::of(request) {
            self.on_subscription_state(now, state);
        }
        answer(request, 200, "OK")
    }

    /// The timer from [`Subscription::poll_timeout`] fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.poll_timeout() {
            Some(at) if at <= now => {}
            _ => return,
        }
        match self.state {
            SubscriptionState::Active { .. } => {
                self.refresh_at = None;
                self.send_subscribe(now, self.params.expires);
            }
            SubscriptionState::Waiting { .. } => {
                self.new_identifiers();
                self.send_subscribe(now, self.params.expires);
            }
            _ => {}
        }
    }

    /// The next SUBSCRIBE to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next message summary a NOTIFY brought.
    pub fn poll_summary(&mut self) -> Option<MessageSummary> {
        self.summaries.pop_front()
    }

    /// When [`Subscription::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SubscriptionState::Waiting { retry_at, .. } => Some(retry_at),
            SubscriptionState::Active { .. } if self.pending.is_none() => self.refresh_at,
            _ => None,
        }
    }

    fn on_success(&mut self, now: Instant, response: &Message<'_>, pending: &Pending) {
        if self.dialog.is_none() {
            let Some(remote_tag) = response.to().ok().and_then(|t| t.tag().map(str::to_owned))
            else {
                // No To tag, no dialog to refresh or to receive NOTIFYs in.
                return self.fail(now, 200, Duration::ZERO);
            };
            // RFC 3261 12.1.2: the UAC's route set is the Record-Route list reversed.
            let mut route_set = record_route_uris(response);
            route_set.reverse();
            self.dialog = Some(SubscriptionDialog {
                remote_tag,
                route_set,
                remote_target: contact_of(response).unwrap_or_else(|| pending.request_uri.clone()),
            });
        }
        // RFC 6665 4.1.2.1: the 2xx says how long; the notifier may only shorten it.
        let granted = response
            .expires()
            .ok()
            .flatten()
            .unwrap_or(pending.expires)
            .min(pending.expires);
        if granted == 0 {
            // Accepted but not kept: a terminated NOTIFY follows; do not count on it.
            return self.fail(now, 200, Duration::ZERO);
        }
        let lifetime = Duration::from_secs(u64::from(granted));
        self.failures = 0;
        self.challenges_answered = 0;
        self.auth = None;
        self.state = SubscriptionState::Active {
            until: now + lifetime,
        };
        self.refresh_at = Some(now + lifetime.mul_f64(0.8));
    }

    fn on_subscription_state(&mut self, now: Instant, state: SubscriptionStateHeader) {
        if state.terminated {
            self.dialog = None;
            self.pending = None;
            self.refresh_at = None;
            if self.state == SubscriptionState::Unsubscribing {
                return self.end();
            }
            let refused = matches!(state.reason.as_deref(), Some("rejected" | "noresource"));
            match state.retry_after {
                Some(seconds) => self.wait(now, 200, retry_after(Some(seconds))),
                None if refused => self.fail(now, 200, Duration::ZERO),
                None => self.wait(now, 200, RESUBSCRIBE_DELAY),
            }
            return;
        }
        if let (SubscriptionState::Active { .. }, Some(seconds)) = (self.state, state.expires) {
            let sooner = now + Duration::from_secs(u64::from(seconds)).mul_f64(0.8);
            if self.refresh_at.is_none_or(|at| sooner < at) {
                self.refresh_at = Some(sooner);
            }
        }
    }

    fn on_challenge(
        &mut self,
        now: Instant,
        response: &Message<'_>,
        pending: &Pending,
    ) -> Result<(), AtaError> {
        let status = response.status().unwrap_or(401);
        let cnonce = identity::new_cnonce(&mut self.rng);
        let header = match answer_challenge(
            response,
            &self.params.user,
            "SUBSCRIBE",
            &pending.request_uri,
            &cnonce,
        ) {
            Ok(h) => h,
            Err(e) => {
                self.pending = None;
                self.give_up(now, status);
                return Err(e);
            }
        };
        let repeated = self.auth.as_ref().is_some_and(|a| a.nonce == header.nonce);
        // RFC 3261 22.2: a challenge repeated after our credentials means they were refused,
        // unless the server only found the nonce stale.
        if (repeated && !header.stale) || self.challenges_answered >= 3 {
            self.pending = None;
            self.give_up(now, status);
            return Ok(());
        }
        self.challenges_answered += 1;
        self.auth = Some(header);
        let unsubscribing = self.state == SubscriptionState::Unsubscribing;
        self.send_subscribe(now, pending.expires);
        if unsubscribing {
            self.state = SubscriptionState::Unsubscribing;
        }
        Ok(())
    }

    /// A failure that ends what is in flight: an unsubscription is over, anything else backs
    /// off.
    fn give_up(&mut self, now: Instant, status: u16) {
        if self.state == SubscriptionState::Unsubscribing {
            self.end();
        } else {
            self.fail(now, status, Duration::ZERO);
        }
    }

    /// Ends the dialog and tries again after the back-off or `at_least`, whichever is later.
    fn fail(&mut self, now: Instant, status: u16, at_least: Duration) {
        let delay = BACKOFF_START
            .saturating_mul(1u32 << self.failures.min(10))
            .min(BACKOFF_MAX)
            .max(at_least);
        self.failures += 1;
        self.wait(now, status, delay);
    }

    fn wait(&mut self, now: Instant, status: u16, delay: Duration) {
        self.dialog = None;
        self.auth = None;
        self.challenges_answered = 0;
        self.refresh_at = None;
        self.state = SubscriptionState::Waiting {
            status,
            retry_at: now + delay,
        };
    }

    fn end(&mut self) {
        self.dialog = None;
        self.pending = None;
        self.refresh_at = None;
        self.state = SubscriptionState::Idle;
    }

    fn new_identifiers(&mut self) {
        self.call_id = identity::new_call_id(&mut self.rng, self.params.identity.local);
        self.local_tag = identity::new_tag(&mut self.rng);
    }

    /// Sends a SUBSCRIBE: in the dialog when there is one, else a new subscription to the
    /// line's own address of record.
    fn send_subscribe(&mut self, _now: Instant, expires: u32) {
        self.cseq += 1;
        let id = &self.params.identity;
        let aor = id.aor();
        let (request_uri, routes, destination, to) = match &self.dialog {
            Some(dialog) => {
                let plan = route_plan(&dialog.route_set, &dialog.remote_target);
                let destination = next_hop(&plan.next_hop).unwrap_or(self.params.server);
                let to = format!("{};tag={}", id.from_value(), dialog.remote_tag);
                (plan.request_uri, plan.routes, destination, to)
            }
            None => (aor, Vec::new(), self.params.server, id.from_value()),
        };
        let branch = identity::new_branch(&mut self.rng);
        let mut builder = RequestBuilder::new("SUBSCRIBE", &request_uri)
            .header("Via", &id.via(&branch))
            .header("Max-Forwards", "70");
        for route in &routes {
            builder = builder.header("Route", &format!("<{route}>"));
        }
        builder = builder
            .header(
                "From",
                &format!("{};tag={}", id.from_value(), self.local_tag),
            )
            .header("To", &to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} SUBSCRIBE", self.cseq))
            .header("Contact", &format!("<{}>", id.contact_uri()))
            .header("Event", EVENT)
            .header("Accept", BODY_TYPE)
            .header("Expires", &expires.to_string())
            .header("User-Agent", USER_AGENT);
        if let Some(auth) = &self.auth {
            builder = builder.header(auth.name, &auth.value);
        }
        self.outbox.push_back(Transmit {
            bytes: builder.build(),
            destination,
        });
        self.pending = Some(Pending {
            cseq: self.cseq,
            expires,
            request_uri,
        });
        if self.dialog.is_none() {
            self.state = SubscriptionState::Subscribing;
        }
    }
}

/// A server's asked wait, capped; zero when it asked nothing.
fn retry_after(seconds: Option<u32>) -> Duration {
    seconds
        .map(|s| Duration::from_secs(u64::from(s)).min(RETRY_AFTER_MAX))
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "subscription_tests.rs"]
mod tests;
