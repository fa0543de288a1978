//! The message-waiting notifier (RFC 3842 over RFC 6665): the proxy is the lab's voicemail
//! notifier, so a SUBSCRIBE for `message-summary` to one of its users ends here instead of
//! being forwarded, and the counts set by the admin API reach the phones as NOTIFYs.
//!
//! Sans-IO, like the rest of the core: `now` is passed in, and what must happen leaves as the
//! core's [`Action`]s (sends, timers). The state, behind one lock (MWI traffic is a few
//! requests a minute; the lock is never held across anything but this module's own work):
//! - each user's counts ([`MessageCounts`], loaded from the store at start; the core emits
//!   `Action::Persist` when they change, `ProxyCore::set_message_counts`);
//! - the subscriptions ([`Subscription`], `subscription.rs`), keyed by their dialog;
//! - the NOTIFYs in flight, each a client transaction (`notify.rs`) keyed by its branch as a
//!   response finds it, and timed by `TimerId::Notify`.
//!
//! Rules: a new subscription or a refresh gets a NOTIFY at once (RFC 6665 section 4.2.1.2);
//! `Expires: 0` ends it with a last NOTIFY saying `terminated` (section 4.2.1.4 after
//! 4.1.2.3); counts set notify every live subscription of the user, and every binding
//! of the user gets an unsolicited NOTIFY too. A NOTIFY answered 481 or 408, timed out or
//! not sendable removes its subscription (section 4.2.2). A lapsed subscription is dropped
//! when the notifier next looks at the table (no NOTIFY: the subscriber let it lapse).

mod notify;
mod subscription;
pub mod summary;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::Message;
use dialtone_transaction::{TimerConfig, TransactionKey};

use super::identity::ProxyIdentity;
use super::{Action, Destination, Source};
use crate::registrar::MessageCounts;
use notify::NotifyTransaction;
pub use subscription::BadSubscribe;
use subscription::{DialogKey, Subscription};

/// The longest subscription granted, and the duration of one that asks for none (RFC 3842
/// section 3.3 suggests an hour).
pub const MAX_EXPIRES: u32 = 3600;

/// At most this many subscriptions are kept (under `--auth none` anyone may subscribe).
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

/// What the notifier needs of the proxy for one call.
#[derive(Debug, Clone, Copy)]
pub struct NotifyEnv<'a> {
    pub identity: &'a ProxyIdentity,
    pub timers: &'a TimerConfig,
}

/// The answer a SUBSCRIBE gets when it is taken: `200 OK` with these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Our To tag (the dialog's, also in a refresh's To already).
    pub to_tag: String,
    /// The granted duration in seconds (`Expires`), 0 for an unsubscription.
    pub expires: u64,
    /// Our Contact.
    pub contact: String,
}

/// Why a SUBSCRIBE is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A refresh for a dialog the notifier does not know (481).
    NoSuchSubscription,
    /// A refresh whose CSeq is lower than the last (RFC 3261 section 12.2.2: 500).
    OutOfOrder,
    /// The table is full (503).
    TooMany,
    /// The SUBSCRIBE lacks what a dialog needs (400).
    Bad(BadSubscribe),
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Notifier {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    mailboxes: HashMap<String, MessageCounts>,
    subscriptions: HashMap<DialogKey, Subscription>,
    notifies: HashMap<TransactionKey, NotifyTransaction>,
}

/// One SUBSCRIBE handed to the notifier.
#[derive(Debug, Clone, Copy)]
pub struct SubscribeRequest<'r, 'm> {
    pub request: &'r Message<'m>,
    pub source: Source,
    /// The mailbox's user.
    pub aor: &'r str,
    /// The account URI, `sip:USER@DOMAIN`.
    pub account: &'r str,
    /// Our Contact for a new dialog.
    pub contact: &'r str,
}

impl Notifier {
    /// A notifier that starts with the counts the store held.
    pub fn with_mailboxes(mailboxes: Vec<(String, MessageCounts)>) -> Notifier {
        Notifier {
            state: Mutex::new(State {
                mailboxes: mailboxes.into_iter().collect(),
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `aor`'s counts (none set: 0/0).
    pub fn counts(&self, aor: &str) -> MessageCounts {
        self.state().mailboxes.get(aor).copied().unwrap_or_default()
    }

    /// Live subscriptions (for the metrics and tests).
    pub fn subscription_count(&self) -> usize {
        self.state().subscriptions.len()
    }

    /// NOTIFY transactions in flight.
    pub fn notifies_in_flight(&self) -> usize {
        self.state().notifies.len()
    }

    /// Takes a SUBSCRIBE for `message-summary`: a new subscription, a refresh, or an
    /// unsubscription (`requested` 0). On success the caller answers 200 with the
    /// [`Subscribed`] values first, then carries out `notifies` (the NOTIFY it made).
    pub fn subscribe(
        &self,
        now: Instant,
        env: NotifyEnv<'_>,
        subscribe: SubscribeRequest<'_, '_>,
        requested: Option<u32>,
        notifies: &mut Vec<Action>,
    ) -> Result<Subscribed, Refusal> {
        let request = subscribe.request;
        let mut state = self.state();
        state.subscriptions.retain(|_, s| s.expires_at > now);
        let expires_at = now + subscription::granted(requested);
        let cseq = request.cseq().map(|c| c.seq).unwrap_or(0);
        let key = match find_dialog(&state, request) {
            Found::Dialog(key) => {
                let subscription = state
                    .subscriptions
                    .get_mut(&key)
                    .ok_or(Refusal::NoSuchSubscription)?;
                if cseq < subscription.subscribe_cseq {
                    return Err(Refusal::OutOfOrder);
                }
                if cseq == subscription.subscribe_cseq {
                    // The same SUBSCRIBE again (the proxy keeps no transaction for it): the
                    // same answer, and no second NOTIFY.
                    return Ok(Subscribed {
                        to_tag: key.our_tag.clone(),
                        expires: subscription.remaining(now),
                        contact: subscription.contact.clone(),
                    });
                }
                subscription.refresh(request, subscribe.source, expires_at);
                key
            }
            Found::Unknown => return Err(Refusal::NoSuchSubscription),
            Found::New => {
                if state.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    return Err(Refusal::TooMany);
                }
                let our_tag = format!("{:016x}", rand::random::<u64>());
                let (key, subscription) = Subscription::create(
                    request,
                    subscribe.source,
                    subscribe.aor,
                    &our_tag,
                    subscribe.contact.to_string(),
                    expires_at,
                )
                .map_err(Refusal::Bad)?;
                state.subscriptions.insert(key.clone(), subscription);
                key
            }
        };
        let counts = state
            .mailboxes
            .get(subscribe.aor)
            .copied()
            .unwrap_or_default();
        let body = summary::body(subscribe.account, counts);
        let ending = requested == Some(0);
        let Some(subscription) = state.subscriptions.get_mut(&key) else {
            return Err(Refusal::NoSuchSubscription);
        };
        let answer = Subscribed {
            to_tag: key.our_tag.clone(),
            expires: if ending {
                0
            } else {
                subscription.remaining(now)
            },
            contact: subscription.contact.clone(),
        };
        let subscription_state = if ending {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={}", answer.expires)
        };
        let branch = notify::new_branch();
        let bytes = subscription.notify(env.identity, &branch, &subscription_state, &body);
        let destination = subscription.destination;
        let owner = if ending {
            state.subscriptions.remove(&key);
            None
        } else {
            Some(key)
        };
        start_notify(
            &mut state,
            now,
            env,
            &branch,
            destination,
            bytes,
            owner,
            notifies,
        );
        Ok(answer)
    }

    /// Sets `aor`'s counts and notifies: every live subscription of `aor` in its dialog, and
    /// every binding in `bindings` (request URI, destination) out of dialog.
    pub fn set_counts(
        &self,
        now: Instant,
        env: NotifyEnv<'_>,
        aor: &str,
        counts: MessageCounts,
        bindings: &[(&str, Destination)],
        actions: &mut Vec<Action>,
    ) {
        let domain = env.identity.primary_domain();
        let account = account(aor, &domain);
        let mut state = self.state();
        state.mailboxes.insert(aor.to_string(), counts);
        state.subscriptions.retain(|_, s| s.expires_at > now);
        let body = summary::body(&account, counts);
        let mut dialogs: Vec<(DialogKey, String, Destination, Bytes)> = Vec::new();
        for (key, subscription) in state.subscriptions.iter_mut() {
            if subscription.aor != aor {
                continue;
            }
            let branch = notify::new_branch();
            let active = format!("active;expires={}", subscription.remaining(now));
            let bytes = subscription.notify(env.identity, &branch, &active, &body);
            dialogs.push((key.clone(), branch, subscription.destination, bytes));
        }
        for (key, branch, destination, bytes) in dialogs {
            start_notify(
                &mut state,
                now,
                env,
                &branch,
                destination,
                bytes,
                Some(key),
                actions,
            );
        }
        for (request_uri, destination) in bindings {
            let branch = notify::new_branch();
            let bytes = notify::unsolicited(
                env.identity,
                request_uri,
                *destination,
                &branch,
                aor,
                &domain,
                &body,
            );
            start_notify(
                &mut state,
                now,
                env,
                &branch,
                *destination,
                bytes,
                None,
                actions,
            );
        }
    }

    /// A `TimerId::Notify` fired.
    pub fn handle_timeout(&self, now: Instant, key: &TransactionKey, actions: &mut Vec<Action>) {
        self.with_notify(key, actions, |tx| tx.handle_timeout(now));
    }

    /// A response whose client key is `key`; false when it is not one of our NOTIFYs.
    pub fn on_response(
        &self,
        now: Instant,
        key: &TransactionKey,
        status: u16,
        bytes: Bytes,
        actions: &mut Vec<Action>,
    ) -> bool {
        self.with_notify(key, actions, |tx| tx.handle_response(now, status, bytes))
    }

    /// The transport could not send the NOTIFY keyed `key`; false when it is not ours.
    pub fn on_transport_error(
        &self,
        now: Instant,
        key: &TransactionKey,
        actions: &mut Vec<Action>,
    ) -> bool {
        self.with_notify(key, actions, |tx| tx.handle_transport_error(now))
    }

    /// Feeds the NOTIFY keyed `key` with `input`, then does what its machine asks.
    fn with_notify(
        &self,
        key: &TransactionKey,
        actions: &mut Vec<Action>,
        input: impl FnOnce(&mut NotifyTransaction),
    ) -> bool {
        let mut state = self.state();
        let Some(tx) = state.notifies.get_mut(key) else {
            return false;
        };
        input(tx);
        let drained = tx.drain(key, actions);
        let owner = tx.subscription.clone();
        settle(&mut state, key, owner, drained);
        true
    }
}

/// The account a mailbox's NOTIFYs name (RFC 3842 section 5, `Message-Account`).
pub fn account(aor: &str, domain: &str) -> String {
    format!("sip:{aor}@{domain}")
}

/// Where a SUBSCRIBE belongs.
enum Found {
    /// A dialog we know (a refresh, or a copy of the SUBSCRIBE that made it).
    Dialog(DialogKey),
    /// A To tag naming no dialog of ours.
    Unknown,
    /// No To tag and no dialog made by it yet.
    New,
}

/// Finds the dialog of `request`: by both tags, or, without a To tag, the dialog this very
/// SUBSCRIBE (same Call-ID, From tag and CSeq) made earlier, whose 200 got lost.
fn find_dialog(state: &State, request: &Message<'_>) -> Found {
    let call_id = request.call_id().unwrap_or("");
    let subscriber_tag = request.from().ok().and_then(|f| f.tag()).unwrap_or("");
    let cseq = request.cseq().map(|c| c.seq).ok();
    match request.to().ok().and_then(|t| t.tag()) {
        Some(our_tag) => {
            let key = DialogKey {
                call_id: call_id.to_string(),
                subscriber_tag: subscriber_tag.to_string(),
                our_tag: our_tag.to_string(),
            };
            if state.subscriptions.contains_key(&key) {
                Found::Dialog(key)
            } else {
                Found::Unknown
            }
        }
        None => state
            .subscriptions
            .iter()
            .find(|(key, s)| {
                key.call_id == call_id
                    && key.subscriber_tag == subscriber_tag
                    && Some(s.subscribe_cseq) == cseq
            })
            .map_or(Found::New, |(key, _)| Found::Dialog(key.clone())),
    }
}

/// Starts a NOTIFY transaction and sends its request.
#[allow(clippy::too_many_arguments)]
fn start_notify(
    state: &mut State,
    now: Instant,
    env: NotifyEnv<'_>,
    branch: &str,
    destination: Destination,
    bytes: Bytes,
    owner: Option<DialogKey>,
    actions: &mut Vec<Action>,
) {
    let key = TransactionKey::client(branch, "NOTIFY");
    let mut tx = NotifyTransaction::start(now, env.timers, destination, bytes, owner.clone());
    let drained = tx.drain(&key, actions);
    state.notifies.insert(key, tx);
    settle(state, &key, owner, drained);
}

/// After a NOTIFY's machine ran: its subscriber may be gone, its transaction may be over.
fn settle(
    state: &mut State,
    key: &TransactionKey,
    owner: Option<DialogKey>,
    drained: notify::Drained,
) {
    if drained.subscriber_gone {
        if let Some(owner) = owner {
            if state.subscriptions.remove(&owner).is_some() {
                tracing::debug!(
                    call_id = owner.call_id,
                    "a subscriber is gone; subscription removed"
                );
            }
        }
    }
    if drained.terminated {
        state.notifies.remove(key);
    }
}

#[cfg(test)]
#[path = "mwi_tests.rs"]
mod tests;
