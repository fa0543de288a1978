//! The proxy core: RFC 3261 section 16 (a stateful proxy) and the dispatch of REGISTER to the
//! registrar, as a sans-IO state machine shared by every transport actor.
//!
//! A transport actor hands it a received message with `now` and the wall clock
//! ([`ProxyCore::handle_message`]), a fired timer ([`ProxyCore::handle_timer`]), a failed send
//! ([`ProxyCore::handle_transport_error`]) or a DNS answer ([`ProxyCore::handle_resolved`]),
//! and carries out the [`Action`]s it returns: datagrams and stream writes to send, timers to
//! arm, names to resolve, registrar answers to hold until the store committed. The core never
//! touches a socket, the store or a clock: the registrar's changes leave it as
//! `Action::Persist`, and the actor that runs it owns the store's writer.
//!
//! State: one [`ProxyTransaction`] per server transaction (the request we received, its
//! branches and their client transactions), in a concurrent table keyed by [`TransactionKey`]
//! so that a response arriving on any worker finds it; a second table maps each branch's
//! client key to its server key. This file holds that state, the entry points and the
//! bookkeeping after each call into a transaction (`after`); nothing else here has a
//! `ProxyCore` method.
//!
//! The way through, in the order the code reads:
//! - a request: `request.rs` (16.2 and the walk), with `new_request.rs` (its context),
//!   `validate.rs` (16.3), `route.rs` (16.4), `admission.rs` (who may be forwarded, digest),
//!   `targets.rs` (16.5), `forward.rs` (16.6), `register.rs` (REGISTER) and
//!   `ack_cancel_options.rs` (16.10, 16.11, OPTIONS), `subscribe.rs` (a `message-summary`
//!   SUBSCRIBE, answered by the notifier in `mwi/`, RFC 3842 and RFC 6665);
//! - a response: `response.rs` (matching, 16.7 step 2);
//! - the proxied request's transaction: `transaction/` (server side, branches, 16.7's best
//!   response, failover), which sees the proxy only through a [`TransactionEnv`];
//! - `reply.rs` (where responses go; the proxy's own responses), `identity.rs` (who the proxy
//!   is, which address a message leaves from), `asserted_identity.rs` (RFC 3323/3325: the
//!   identity it asserts for a caller, and where privacy lets it go).

mod ack_cancel_options;
mod admission;
mod arming;
mod asserted_identity;
pub use arming::{ArmCounter, Arming};
mod forward;
pub mod identity;
pub mod mwi;
mod new_request;
mod register;
pub mod reply;
mod request;
mod response;
pub mod route;
mod subscribe;
mod targets;
mod transaction;
mod unavailable;
mod validate;
pub use unavailable::UnavailableHops;

use dialtone_transaction::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use dashmap::DashMap;
use dialtone_sip::Message;
use dialtone_transaction::{TimerConfig, TransactionKey};

use crate::auth::Authenticator;
use crate::calls::CallTracker;
use crate::config::{AuthMode, Config};
use crate::metrics::ProxyMetrics;
use crate::registrar::{
    BindingChange, LocationService, MailboxError, MessageCounts, RegistrarPolicy,
};

pub use identity::ProxyIdentity;
use mwi::Notifier;
pub use transaction::{ProxyTransaction, TransactionEnv, TransactionEvent};

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer's address.
    pub addr: SocketAddr,
    /// Our address it arrived at.
    pub local: SocketAddr,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// A timer the core asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TimerId {
    /// A proxied request's transactions (server and branches).
    Transaction(TransactionKey),
    /// A NOTIFY of the message-waiting notifier (`mwi/`), by its client key.
    Notify(TransactionKey),
}

/// The request a held response answers, kept (a shared handle to its octets) in case the
/// commit it waits for fails and it must be answered otherwise.
#[derive(Debug, Clone)]
pub struct HeldRequest {
    pub request: Bytes,
    pub source: SocketAddr,
}

/// Something the core wants done.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send bytes.
    Send { to: Destination, bytes: Bytes },
    /// Hand a REGISTER's changes to the registrar store's writer, with the sequence number
    /// the location service gave them under the AOR's lock (the writer keeps the highest per
    /// binding, whatever order the workers' sends arrive in).
    Persist {
        sequence: u64,
        changes: Vec<BindingChange>,
    },
    /// Send bytes once the registrar store has committed everything queued to it so far (the
    /// `Persist` before this action included): a registrar's 200 promises that the binding
    /// survives a crash (issue 4: "even after `kill -9`"). If that commit fails, send
    /// [`ProxyCore::not_stored_response`] to `request` instead.
    SendWhenStored {
        to: Destination,
        bytes: Bytes,
        request: HeldRequest,
    },
    /// Call [`ProxyCore::handle_timer`] with `id` at `at`, unless `arming` is no longer
    /// current by then (the transaction armed again or ended).
    Arm {
        id: TimerId,
        at: Instant,
        arming: Arming,
    },
    /// Resolve `host` (RFC 3263) and call [`ProxyCore::handle_resolved`] with the result.
    Resolve {
        key: TransactionKey,
        host: String,
        /// The URI's port, if it gave one (RFC 3263 section 4.2: then no SRV).
        port: Option<u16>,
        /// The URI's transport, if it named one (then no NAPTR).
        transport: Option<Transport>,
    },
}

/// The shared state and policy of the proxy core.
pub struct ProxyCore {
    pub(crate) identity: ProxyIdentity,
    pub(crate) auth_mode: AuthMode,
    pub(crate) register_challenge: u16,
    pub(crate) auth: Authenticator,
    pub(crate) location: LocationService,
    pub(crate) policy: RegistrarPolicy,
    pub(crate) timers: TimerConfig,
    pub(crate) metrics: ProxyMetrics,
    pub(crate) calls: CallTracker,
    /// Server transactions, keyed by their RFC 3261 or RFC 2543 key.
    pub(crate) servers: DashMap<TransactionKey, Arc<Mutex<ProxyTransaction>>>,
    /// Client branch key → the server transaction it belongs to.
    pub(crate) branches: DashMap<TransactionKey, TransactionKey>,
    /// A random To tag for the proxy's own responses (RFC 3261 section 8.2.6.2).
    pub(crate) to_tag: String,
    /// Next hops that answered 503 with Retry-After, skipped until it has passed.
    pub(crate) unavailable: UnavailableHops,
    /// With `--auth none`: whether requests for other domains are relayed (`--relay`).
    pub(crate) relay: bool,
    /// The Server header of the proxy's own responses (`--server-header`); `None`: none.
    pub(crate) server_header: Option<String>,
    /// The message-waiting notifier: voicemail counts, subscriptions, NOTIFYs in flight.
    pub(crate) mwi: Notifier,
}

impl std::fmt::Debug for ProxyCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyCore")
            .field("identity", &self.identity)
            .field("servers", &self.servers.len())
            .finish()
    }
}

impl ProxyCore {
    /// Builds the core from the configuration and the registrar's location service.
    pub fn new(
        config: &Config,
        location: LocationService,
        metrics: ProxyMetrics,
        calls: CallTracker,
    ) -> ProxyCore {
        let timers = TimerConfig {
            t1: std::time::Duration::from_millis(config.t1_ms),
            ..TimerConfig::default()
        };
        ProxyCore {
            identity: ProxyIdentity::new(&config.listen, &config.domains)
                .with_advertised(&config.advertise)
                .with_record_route_host(config.record_route_host.as_deref()),
            auth_mode: config.auth,
            register_challenge: config.register_challenge,
            auth: Authenticator::new(&config.realm, &config.users, config.qop),
            location,
            policy: RegistrarPolicy {
                min_expires: config.min_expires,
                max_expires: config.max_expires,
                ..RegistrarPolicy::default()
            },
            timers,
            metrics,
            calls,
            servers: crate::tables::sharded(),
            branches: crate::tables::sharded(),
            to_tag: format!("{:08x}", rand::random::<u32>()),
            unavailable: UnavailableHops::default(),
            relay: config.relay,
            server_header: (!config.server_header.is_empty()).then(|| config.server_header.clone()),
            mwi: Notifier::default(),
        }
    }

    /// Starts the notifier with the voicemail counts the store held.
    pub fn with_mailboxes(mut self, mailboxes: Vec<(String, MessageCounts)>) -> Self {
        self.mwi = Notifier::with_mailboxes(mailboxes);
        self
    }

    /// Signs nonces with the cluster's key as node `node`, so that every node verifies every
    /// node's challenges and none issues another's nonces (see `auth.rs`).
    pub fn with_nonce_key(mut self, key: [u8; 32], node: u8) -> Self {
        self.auth = self.auth.rekeyed(key, node);
        self
    }

    /// The authenticator, for the cluster link that shares its state.
    pub fn authenticator(&self) -> &Authenticator {
        &self.auth
    }

    /// Lets the core choose among several listen addresses of a transport by the kernel's
    /// routes (see `identity.rs`).
    pub fn with_routes(mut self, routes: Arc<dyn identity::SourceAddress>) -> Self {
        self.identity = self.identity.with_routes(routes);
        self
    }

    /// What a transaction may use of the core for one call (see [`TransactionEnv`]).
    pub(crate) fn transaction_env(&self) -> TransactionEnv<'_> {
        TransactionEnv {
            timers: &self.timers,
            to_tag: &self.to_tag,
            server_header: self.server_header.as_deref(),
            identity: &self.identity,
            metrics: &self.metrics,
        }
    }

    /// Who the proxy is: its addresses, and which one a message leaves from.
    pub fn identity(&self) -> &ProxyIdentity {
        &self.identity
    }

    /// The metrics this core updates.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// The location service (registrations).
    pub fn location(&self) -> &LocationService {
        &self.location
    }

    /// The calls table.
    pub fn calls(&self) -> &CallTracker {
        &self.calls
    }

    /// Server transactions held now.
    pub fn active_transactions(&self) -> usize {
        self.servers.len()
    }

    /// Handles one received message (a datagram, or one framed stream message).
    pub fn handle_message(
        &self,
        now: Instant,
        wall: SystemTime,
        source: Source,
        bytes: Bytes,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        match Message::parse(&bytes) {
            Ok(message) if message.is_request() => {
                request::receive(self, now, wall, source, &bytes, &message, &mut actions)
            }
            Ok(message) => response::receive(self, now, wall, &bytes, &message, &mut actions),
            Err(dialtone_sip::ParseError::Empty) => {}
            Err(error) => validate::on_unparseable(self, source, &bytes, &error, &mut actions),
        }
        actions
    }

    /// Handles a timer armed by an earlier [`Action::Arm`].
    pub fn handle_timer(&self, now: Instant, wall: SystemTime, id: &TimerId) -> Vec<Action> {
        let mut actions = Vec::new();
        let key = match id {
            TimerId::Transaction(key) => key,
            TimerId::Notify(key) => {
                self.mwi.handle_timeout(now, key, &mut actions);
                return actions;
            }
        };
        let Some(entry) = self.servers.get(key).map(|e| e.value().clone()) else {
            return actions;
        };
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        tx.handle_timeout(now, &self.transaction_env(), &mut actions);
        self.after(now, wall, key, &mut tx, &mut actions);
        actions
    }

    /// The transport could not send `bytes` (a request we forwarded): RFC 3261 section 16.9
    /// says to behave as if the branch had received a 503. Anything else is ignored.
    pub fn handle_transport_error(
        &self,
        now: Instant,
        wall: SystemTime,
        bytes: &[u8],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Ok(message) = Message::parse(bytes) else {
            return actions;
        };
        if !message.is_request() {
            return actions;
        }
        let Some(client_key) = dialtone_transaction::client_key(&message) else {
            return actions;
        };
        let Some(server_key) = self.branches.get(&client_key).map(|k| *k.value()) else {
            self.mwi.on_transport_error(now, &client_key, &mut actions);
            return actions;
        };
        let Some(entry) = self.servers.get(&server_key).map(|e| e.value().clone()) else {
            return actions;
        };
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        tx.on_branch_transport_error(now, &self.transaction_env(), &client_key, &mut actions);
        self.after(now, wall, &server_key, &mut tx, &mut actions);
        actions
    }

    /// Continues a request whose next hop needed DNS (RFC 3263): `addrs` are the resolved
    /// addresses in preference order, empty when resolution failed.
    pub fn handle_resolved(
        &self,
        now: Instant,
        wall: SystemTime,
        key: &TransactionKey,
        transport: Transport,
        addrs: &[SocketAddr],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(entry) = self.servers.get(key).map(|e| e.value().clone()) else {
            return actions;
        };
        let mut tx = entry.lock().unwrap_or_else(|p| p.into_inner());
        // Addresses that asked for a pause (503 with Retry-After) are left out while it lasts.
        let mut shortest_pause: Option<std::time::Duration> = None;
        let mut only_ourselves = !addrs.is_empty();
        let usable: Vec<Destination> = addrs
            .iter()
            .filter(|addr| !self.identity.is_own_address(**addr))
            .inspect(|_| only_ourselves = false)
            .filter(|addr| match self.unavailable.remaining(addr, now) {
                Some(pause) => {
                    shortest_pause = Some(shortest_pause.map_or(pause, |p| p.min(pause)));
                    false
                }
                None => true,
            })
            .map(|addr| Destination {
                transport,
                addr: *addr,
            })
            .collect();
        match usable.split_first() {
            Some((first, rest)) => {
                tx.set_alternates(rest);
                tx.start_pending_branch(now, &self.transaction_env(), *first, &mut actions);
            }
            None if only_ourselves => {
                tx.abandon_pending();
                // The name leads back to this proxy: a loop, not an unavailable hop.
                tx.respond_locally(
                    now,
                    &self.transaction_env(),
                    482,
                    "Loop Detected",
                    &[forward::next_hop_is_us_warning(&self.identity)],
                    &mut actions,
                );
            }
            None => {
                tx.abandon_pending();
                // Every address is paused: the caller may try again once the first pause ends.
                let why = if addrs.is_empty() {
                    "the next hop's name did not resolve"
                } else {
                    "every address of the next hop asked for a pause"
                };
                let mut extra: Vec<(&str, String)> = vec![("Warning", self.identity.warning(why))];
                extra.extend(
                    shortest_pause
                        .map(|pause| ("Retry-After", pause.as_secs_f64().ceil().to_string())),
                );
                tx.respond_locally(
                    now,
                    &self.transaction_env(),
                    503,
                    "Service Unavailable",
                    &extra,
                    &mut actions,
                );
            }
        }
        self.after(now, wall, key, &mut tx, &mut actions);
        actions
    }

    /// Bookkeeping after any change to a proxied request: timers, branch index, removal.
    fn after(
        &self,
        now: Instant,
        wall: SystemTime,
        key: &TransactionKey,
        tx: &mut ProxyTransaction,
        actions: &mut Vec<Action>,
    ) {
        for event in tx.take_events() {
            match event {
                TransactionEvent::BranchStarted(branch_key) => {
                    self.branches.insert(branch_key, *key);
                }
                TransactionEvent::BranchRetired(branch_key) => {
                    self.branches.remove(&branch_key);
                }
                TransactionEvent::CallEstablished(response) => {
                    self.calls.established(&response, wall)
                }
                TransactionEvent::CallEnded(call_id) => self.calls.ended(&call_id, wall),
                TransactionEvent::HopPaused { addr, seconds } => {
                    self.unavailable.pause(addr, seconds, now)
                }
            }
        }
        if let Some((at, arming)) = tx.next_timeout_to_arm() {
            actions.push(Action::Arm {
                id: TimerId::Transaction(*key),
                at,
                arming,
            });
        }
        if tx.is_finished() {
            tx.close_timers();
            for branch_key in tx.branch_keys() {
                self.branches.remove(&branch_key);
            }
            // Counted as it changes: `DashMap::len` read-locks every shard, and was a thirtieth
            // of the CPU of a relayed call when it ran on every insert and removal.
            if self.servers.remove(key).is_some() {
                self.metrics.transactions_active.dec();
            }
        }
    }

    /// Enters a new server transaction in the table; false when a copy of the same request,
    /// handled at the same moment on another worker (UDP datagrams are spread over them),
    /// entered it first. That one is then the transaction, and what this copy sent is what a
    /// retransmission would have caused: the same branch id downstream, another 100 Trying.
    /// Overwriting it instead would orphan the first transaction's branches.
    fn insert_new(&self, key: &TransactionKey, entry: &Arc<Mutex<ProxyTransaction>>) -> bool {
        match self.servers.entry(*key) {
            dashmap::mapref::entry::Entry::Occupied(_) => false,
            dashmap::mapref::entry::Entry::Vacant(vacant) => {
                vacant.insert(entry.clone());
                self.metrics.transactions_active.inc();
                true
            }
        }
    }

    /// Answers a request that gets no transaction (one the parser's checks refused, a CANCEL
    /// that matches nothing) where its Via says, and counts it.
    fn reply_stateless(
        &self,
        source: Source,
        request: &Message<'_>,
        status: u16,
        reason: &str,
        actions: &mut Vec<Action>,
    ) {
        let via = request.top_via().ok();
        let to = reply::reply_destination(&source, via.as_ref());
        let bytes = reply::local_response(
            request,
            source.addr,
            status,
            reason,
            &[],
            &self.to_tag,
            self.server_header.as_deref(),
        );
        self.metrics.response_sent(status).inc();
        actions.push(Action::Send { to, bytes });
    }

    /// True when `user` has a mailbox: a configured user, or one registered now (a lab
    /// without `--user` has only registered users).
    pub fn is_mailbox(&self, user: &str, wall: SystemTime) -> bool {
        self.auth.is_known_user(user) || !self.location.lookup(user, wall).is_empty()
    }

    /// `user`'s voicemail counts.
    pub fn message_counts(
        &self,
        user: &str,
        wall: SystemTime,
    ) -> Result<MessageCounts, MailboxError> {
        if !self.is_mailbox(user, wall) {
            return Err(MailboxError::UnknownUser(user.to_string()));
        }
        Ok(self.mwi.counts(user))
    }

    /// Sets `user`'s voicemail counts (the admin API, `ctl mwi`): they are persisted
    /// (`Action::Persist`, first), then every subscription of the user is notified in its
    /// dialog and every binding gets an unsolicited NOTIFY (`mwi/`).
    pub fn set_message_counts(
        &self,
        now: Instant,
        wall: SystemTime,
        user: &str,
        counts: MessageCounts,
    ) -> Result<Vec<Action>, MailboxError> {
        if !self.is_mailbox(user, wall) {
            return Err(MailboxError::UnknownUser(user.to_string()));
        }
        let mut actions = vec![Action::Persist {
            sequence: self.location.next_sequence(),
            changes: vec![BindingChange::Mailbox {
                aor: user.to_string(),
                counts,
            }],
        }];
        let bindings = self.location.lookup(user, wall);
        let (targets, _) = targets::binding_targets(&self.identity, &bindings);
        let env = mwi::NotifyEnv {
            identity: &self.identity,
            timers: &self.timers,
        };
        self.mwi
            .set_counts(now, env, user, counts, &targets, &mut actions);
        Ok(actions)
    }

    /// Counts another node of the cluster set (and stored, and told the user's phones): this
    /// node only notifies the subscriptions it holds itself.
    pub fn apply_remote_message_counts(
        &self,
        now: Instant,
        user: &str,
        counts: MessageCounts,
    ) -> Vec<Action> {
        let env = mwi::NotifyEnv {
            identity: &self.identity,
            timers: &self.timers,
        };
        let mut actions = Vec::new();
        self.mwi
            .set_counts(now, env, user, counts, &[], &mut actions);
        actions
    }

    /// The answer to a REGISTER whose held 200 cannot go because the store failed to save
    /// its changes (see [`Action::SendWhenStored`] and `register.rs`).
    pub fn not_stored_response(&self, held: &HeldRequest) -> Option<Bytes> {
        register::not_stored_response(self, held)
    }
}

#[cfg(test)]
#[path = "proxy_core_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "relay_tests.rs"]
mod relay_tests;
