//! One proxied request: its server transaction, its branches (each a client transaction, a
//! Timer C for INVITE, and maybe a CANCEL), and the response context of RFC 3261 section 16.7.
//!
//! Every change goes through a method here, and [`ProxyTransaction::drain`] turns what the
//! transaction machines want sent into [`Action`]s. Responses from branches are handled in
//! order of arrival: provisionals (except 100) and every 2xx are relayed at once; other finals
//! are kept until every branch has one, and the best is relayed (section 16.7 step 6).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::{HeaderName, Message, ResponseBuilder};
use dialtone_transaction::{
    ack_for_non_2xx, cancel_for, ClientInviteTransaction, ClientNonInviteTransaction, Event,
    ServerInviteState, ServerInviteTransaction, ServerNonInviteTransaction, Timer, TimerC,
    TimerCExpiry, TimerConfig, Transaction, TransactionKey, Transport,
};

use super::arming::{ArmCounter, Arming};
use super::identity::ProxyIdentity;
use super::{reply, Action, Destination};
use crate::metrics::ProxyMetrics;

/// The server side: INVITE or not.
#[derive(Debug)]
enum ServerTx {
    Invite(ServerInviteTransaction),
    NonInvite(ServerNonInviteTransaction),
}

impl ServerTx {
    /// The machine behind the common [`Transaction`] interface.
    fn machine(&mut self) -> &mut dyn Transaction {
        match self {
            ServerTx::Invite(t) => t,
            ServerTx::NonInvite(t) => t,
        }
    }
    fn machine_ref(&self) -> &dyn Transaction {
        match self {
            ServerTx::Invite(t) => t,
            ServerTx::NonInvite(t) => t,
        }
    }
    fn send_response(&mut self, now: Instant, status: u16, bytes: Bytes) -> bool {
        match self {
            ServerTx::Invite(t) => t.send_response(now, status, bytes).is_ok(),
            ServerTx::NonInvite(t) => t.send_response(now, status, bytes).is_ok(),
        }
    }
    fn retransmission(&mut self, now: Instant) {
        match self {
            ServerTx::Invite(t) => t.handle_request_retransmission(now),
            ServerTx::NonInvite(t) => t.handle_request_retransmission(now),
        }
    }
    fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
        self.machine().handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.machine().poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.machine_ref().poll_timeout()
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.machine().poll_event()
    }
    fn is_terminated(&self) -> bool {
        self.machine_ref().is_terminated()
    }
}

/// The client side of a branch.
#[derive(Debug)]
enum ClientTx {
    Invite(ClientInviteTransaction),
    NonInvite(ClientNonInviteTransaction),
}

impl ClientTx {
    /// The machine behind the common [`Transaction`] interface.
    fn machine(&mut self) -> &mut dyn Transaction {
        match self {
            ClientTx::Invite(t) => t,
            ClientTx::NonInvite(t) => t,
        }
    }
    fn machine_ref(&self) -> &dyn Transaction {
        match self {
            ClientTx::Invite(t) => t,
            ClientTx::NonInvite(t) => t,
        }
    }
    fn handle_response(&mut self, now: Instant, status: u16, bytes: Bytes) {
        let _ = match self {
            ClientTx::Invite(t) => t.handle_response(now, status, bytes),
            ClientTx::NonInvite(t) => t.handle_response(now, status, bytes),
        };
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.machine().handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.machine().poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.machine_ref().poll_timeout()
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.machine().poll_event()
    }
    fn is_terminated(&self) -> bool {
        self.machine_ref().is_terminated()
    }
}

/// One forwarded copy of the request (RFC 3261 section 16.6).
#[derive(Debug)]
struct Branch {
    key: TransactionKey,
    branch_id: String,
    destination: Destination,
    request: Bytes,
    client: ClientTx,
    timer_c: Option<TimerC>,
    provisional_seen: bool,
    final_status: Option<u16>,
    final_response: Option<Bytes>,
    /// The final was written by the proxy (408 on a timeout, 503 on a transport error), not
    /// received from the next hop.
    final_is_ours: bool,
    cancel_wanted: bool,
    /// Boxed: most branches are never cancelled, and the machine is larger than the rest of
    /// the branch.
    cancel: Option<Box<ClientNonInviteTransaction>>,
    /// The request as edited for UDP, when it goes over TCP only because of its size: sent
    /// over UDP if the TCP connection is refused or reset (RFC 3261 section 18.1.1).
    udp_fallback: Option<Bytes>,
}

/// A branch whose destination is still being resolved.
#[derive(Debug)]
pub(crate) struct PendingBranch {
    pub branch_id: String,
    pub request: Bytes,
}

/// The addresses left to try for a resolved next hop when the one tried fails (RFC 3263
/// section 4.3: "the client SHOULD try the next element").
#[derive(Debug, Default)]
struct Failover {
    next: std::collections::VecDeque<Destination>,
    attempts: u32,
}

/// Why a branch's next hop is given up for the next address DNS gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailoverCause {
    /// The transport could not send the request (RFC 3261 section 18.4).
    Unreachable,
    /// Timer B or F fired: no response at all.
    Timeout,
    /// It answered 503 (Service Unavailable).
    Unavailable,
}

/// `request` with its top Via's branch parameter `old` replaced by `new`: the first occurrence
/// of `branch=old`, which is our own Via's (the proxy's branch ids are unique hashes).
fn with_branch(request: &Bytes, old: &str, new: &str) -> Option<Bytes> {
    let needle = format!("branch={old}");
    let at = request
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())?;
    let mut out = Vec::with_capacity(request.len() + new.len());
    out.extend_from_slice(&request[..at]);
    out.extend_from_slice(b"branch=");
    out.extend_from_slice(new.as_bytes());
    out.extend_from_slice(&request[at + needle.len()..]);
    Some(Bytes::from(out))
}

/// Everything the proxy holds for one received request.
#[derive(Debug)]
pub struct ProxyTransaction {
    server: ServerTx,
    reply_to: Destination,
    /// Where the request came from: the `received`/`rport` of the Via in local responses.
    source: SocketAddr,
    request: Bytes,
    /// The request's method (its CSeq method too: `check_request` refuses a mismatch), which
    /// names the branches' client transactions.
    method: String,
    is_invite: bool,
    started: Instant,
    branches: Vec<Branch>,
    pending: Option<PendingBranch>,
    final_sent: bool,
    /// The final response of a non-INVITE request, for a copy of the request that arrives
    /// after its server transaction ended while a branch keeps this entry alive (over TCP,
    /// Timer J is zero, so the machine is gone at once and would answer nothing).
    final_response: Option<Bytes>,
    cancelled: bool,
    /// What the core must do once this call returns (see [`TransactionEvent`]).
    events: Vec<TransactionEvent>,
    /// The other addresses DNS gave for the next hop, if any (boxed: nearly every request
    /// has none, and the transaction lives 32 s).
    failover: Option<Box<Failover>>,
    armed: Option<Instant>,
    /// Tells the timer queue which arming is current (see `arming.rs`).
    arm_counter: ArmCounter,
}

/// What a proxied request's transaction needs of the proxy: its timer values, the To tag and
/// Server header of its own responses, who it is (for Warning values) and the metrics it
/// counts. Borrowed from the core for one call; the transaction never sees the core's tables.
#[derive(Debug, Clone, Copy)]
pub struct TransactionEnv<'a> {
    pub timers: &'a TimerConfig,
    pub to_tag: &'a str,
    pub server_header: Option<&'a str>,
    pub identity: &'a ProxyIdentity,
    pub metrics: &'a ProxyMetrics,
}

/// What the core must do after a call into a transaction, beyond the [`Action`]s it returned:
/// index changes and the state other requests read (the calls table, the paused hops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A branch (or a branch's CANCEL) started: responses with this client key belong here.
    BranchStarted(TransactionKey),
    /// A branch was given up for another address: its key no longer belongs here.
    BranchRetired(TransactionKey),
    /// A 2xx to an INVITE passed: the call it establishes is known from now on.
    CallEstablished(Bytes),
    /// A final response to a BYE passed: the call with this Call-ID is over.
    CallEnded(String),
    /// The next hop at `addr` answered 503 with Retry-After: keep requests away meanwhile.
    HopPaused { addr: SocketAddr, seconds: u64 },
}

impl ProxyTransaction {
    /// A new server transaction for a received `request`.
    pub(crate) fn new(
        now: Instant,
        timers: &TimerConfig,
        request: Bytes,
        method: &str,
        reply_to: Destination,
        source: SocketAddr,
    ) -> ProxyTransaction {
        let is_invite = method == "INVITE";
        let transport = reply_to.transport;
        let server = if is_invite {
            ServerTx::Invite(ServerInviteTransaction::new(
                now,
                timers,
                transport,
                request.clone(),
            ))
        } else {
            ServerTx::NonInvite(ServerNonInviteTransaction::new(
                now,
                timers,
                transport,
                request.clone(),
            ))
        };
        ProxyTransaction {
            server,
            reply_to,
            source,
            request,
            method: method.to_string(),
            is_invite,
            started: now,
            branches: Vec::new(),
            pending: None,
            final_sent: false,
            final_response: None,
            cancelled: false,
            events: Vec::new(),
            failover: None,
            armed: None,
            arm_counter: ArmCounter::default(),
        }
    }

    /// True when a final response has gone upstream.
    pub(crate) fn final_sent(&self) -> bool {
        self.final_sent
    }

    /// True for a non-INVITE request the proxy answered itself with a final response and
    /// forwarded nowhere. Such a request needs no transaction kept (RFC 3261 section 8.2.7, a
    /// stateless UAS): a retransmission is answered by working out the response again, which
    /// gives the same answer (the registrar treats a repeated Call-ID and CSeq as the same
    /// request). This is what keeps a registrar at tens of thousands of REGISTERs per second
    /// from holding every one of them for Timer J's 32 s.
    pub(crate) fn answered_statelessly(&self) -> bool {
        !self.is_invite && self.final_sent && self.branches.is_empty() && self.pending.is_none()
    }

    /// Sends a response the proxy writes itself (100 Trying, or a final), parsing the stored
    /// request again; a caller that holds the parsed request uses [`Self::respond_to`].
    pub(crate) fn respond_locally(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        actions: &mut Vec<Action>,
    ) {
        // A clone of the `Bytes` handle, not of the message, so that `self` stays free to mutate.
        let raw = self.request.clone();
        let Ok(request) = Message::parse(&raw) else {
            return;
        };
        self.respond_to(&request, now, env, status, reason, extra, actions);
    }

    /// Where the request came from (its responses go by its Via, section 18.2.2).
    pub(crate) fn source(&self) -> SocketAddr {
        self.source
    }

    /// The request's octets (a shared handle, not a copy).
    pub(crate) fn request(&self) -> &Bytes {
        &self.request
    }

    /// Sends a response the proxy writes itself to `request`, which must be this transaction's
    /// request, already parsed: parsing it a second time (and its Via, From and To again) was a
    /// sixth of what a REGISTER cost the core.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn respond_to(
        &mut self,
        request: &Message<'_>,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        actions: &mut Vec<Action>,
    ) {
        debug_assert_eq!(request.as_bytes(), &self.request[..]);
        let bytes = reply::local_response(
            request,
            self.source,
            status,
            reason,
            extra,
            env.to_tag,
            env.server_header,
        );
        if status >= 200 {
            if self.final_sent {
                return;
            }
            self.final_sent = true;
            env.metrics
                .transaction_duration
                .observe(now.duration_since(self.started).as_secs_f64());
        }
        env.metrics.response_sent(status).inc();
        self.send_upstream(now, status, bytes);
        self.drain(now, env, actions);
    }

    /// A retransmission of the request arrived, to be answered at `reply_to`: the server
    /// transaction answers it, there and from now on. A client that lost its TCP connection
    /// sends the retransmission on a new one and listens there; the response used to go to the
    /// closed connection and was lost (RFC 3261 section 18.2.2 only says to answer on the
    /// connection of the original request "if that connection is still open"). When the
    /// server machine already ended (a non-INVITE over TCP whose branch lives on), the kept
    /// final response answers instead.
    pub(crate) fn on_retransmission(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        reply_to: Destination,
        actions: &mut Vec<Action>,
    ) {
        self.reply_to = reply_to;
        let before = actions.len();
        if self.server.is_terminated() {
            if let Some(bytes) = &self.final_response {
                actions.push(Action::Send {
                    to: reply_to,
                    bytes: bytes.clone(),
                });
            }
        } else {
            self.server.retransmission(now);
            self.drain(now, env, actions);
        }
        env.metrics
            .retransmissions
            .inc_by((actions.len() - before) as u64);
    }

    /// An ACK matched the INVITE server transaction. Returns true when it was the ACK of our
    /// non-2xx final and so absorbed (RFC 3261 section 17.2.1); false when the caller must
    /// forward it (the ACK of a 2xx, which belongs to the dialog).
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        actions: &mut Vec<Action>,
    ) -> bool {
        match &mut self.server {
            ServerTx::Invite(t)
                if matches!(
                    t.state(),
                    ServerInviteState::Completed | ServerInviteState::Confirmed
                ) =>
            {
                t.handle_ack(now);
                self.drain(now, env, actions);
                true
            }
            _ => false,
        }
    }

    /// Adds a branch toward `destination` carrying `request` (already edited for forwarding,
    /// our Via with `branch_id` on top) and sends it.
    pub(crate) fn add_branch(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        destination: Destination,
        branch_id: &str,
        request: Bytes,
        actions: &mut Vec<Action>,
    ) {
        let branch = self.new_branch(now, env, destination, branch_id, request);
        // Exact growth: a Vec's first push reserves room for four branches, and nearly every
        // request has one; the spare room would be held for the whole transaction.
        self.branches.reserve_exact(1);
        self.branches.push(branch);
        self.drain(now, env, actions);
    }

    /// A branch with its client transaction started (its request waiting in the machine to be
    /// sent by the next `drain`), its key noted for the core's index.
    fn new_branch(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        destination: Destination,
        branch_id: &str,
        request: Bytes,
    ) -> Branch {
        let key = TransactionKey::client(branch_id, &self.method);
        let transport = destination.transport;
        let client = if self.is_invite {
            ClientTx::Invite(ClientInviteTransaction::new(
                now,
                env.timers,
                transport,
                request.clone(),
            ))
        } else {
            ClientTx::NonInvite(ClientNonInviteTransaction::new(
                now,
                env.timers,
                transport,
                request.clone(),
            ))
        };
        let timer_c = self.is_invite.then(|| TimerC::new(now, env.timers.timer_c));
        self.events
            .push(TransactionEvent::BranchStarted(key.clone()));
        Branch {
            key,
            branch_id: branch_id.to_string(),
            destination,
            request,
            client,
            timer_c,
            provisional_seen: false,
            final_status: None,
            final_response: None,
            final_is_ours: false,
            cancel_wanted: false,
            cancel: None,
            udp_fallback: None,
        }
    }

    /// Notes that branch `branch_id` goes over TCP only because `udp_request` (its request as
    /// edited for UDP) is too large for UDP: if the connection fails, `udp_request` is sent.
    pub(crate) fn set_udp_fallback(&mut self, branch_id: &str, udp_request: Bytes) {
        if let Some(branch) = self.branches.iter_mut().find(|b| b.branch_id == branch_id) {
            branch.udp_fallback = Some(udp_request);
        }
    }

    /// RFC 3261 section 18.1.1: "If an element sends a request over TCP because of these
    /// message size constraints, and that request would have otherwise been sent over UDP, if
    /// the attempt to establish the connection generates either an ICMP Protocol Not Supported,
    /// or results in a TCP reset, the element SHOULD retry the request, using UDP." A phone
    /// whose Contact says `transport=udp` may have no TCP listener at all (the Dialtone ATA
    /// has none): linphone's INVITE with its default codecs passes 1300 octets with our Via
    /// and Record-Route. The retry is a new branch over UDP in place of the failed one.
    fn fall_back_to_udp(&mut self, now: Instant, env: &TransactionEnv<'_>, index: usize) -> bool {
        let branch = &mut self.branches[index];
        if branch.provisional_seen || branch.final_status.is_some() || self.final_sent {
            return false;
        }
        let Some(udp_request) = branch.udp_fallback.take() else {
            return false;
        };
        let branch_id = format!("{}.udp", branch.branch_id);
        let Some(request) = with_branch(&udp_request, &branch.branch_id, &branch_id) else {
            return false;
        };
        let destination = Destination {
            transport: Transport::Udp,
            addr: branch.destination.addr,
        };
        tracing::info!(
            to = %destination.addr,
            octets = request.len(),
            "TCP refused for a request too large for UDP; retrying over UDP (RFC 3261 18.1.1)"
        );
        env.metrics.udp_fallbacks.inc();
        let replacement = self.new_branch(now, env, destination, &branch_id, request);
        let failed = std::mem::replace(&mut self.branches[index], replacement);
        self.events
            .push(TransactionEvent::BranchRetired(failed.key));
        true
    }

    /// Keeps a branch whose destination is being resolved.
    pub(crate) fn set_pending(&mut self, pending: PendingBranch) {
        self.pending = Some(pending);
    }

    /// The pending branch's next hop could not be resolved: nothing will be sent, and the
    /// transaction may end (a pending branch kept it, and its server key, for ever).
    pub(crate) fn abandon_pending(&mut self) {
        self.pending = None;
    }

    /// The resolved destination of the pending branch is known: send it.
    pub(crate) fn start_pending_branch(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        destination: Destination,
        actions: &mut Vec<Action>,
    ) {
        if let Some(pending) = self.pending.take() {
            if self.cancelled {
                self.respond_locally(now, env, 487, "Request Terminated", &[], actions);
                return;
            }
            let request = match destination.transport {
                // DNS (NAPTR, or SRV for TCP) chose TCP for a request prepared for UDP: our Via
                // must name the transport it really goes over (RFC 3261 section 18.1.1), and a
                // stream needs Content-Length.
                Transport::Tcp => retarget_via_to_tcp(&pending.request).unwrap_or(pending.request),
                Transport::Udp => pending.request,
            };
            self.add_branch(now, env, destination, &pending.branch_id, request, actions);
        }
    }

    /// A response for branch `key` arrived.
    pub(crate) fn on_branch_response(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        key: &TransactionKey,
        status: u16,
        bytes: Bytes,
        actions: &mut Vec<Action>,
    ) {
        let Some(branch) = self.branches.iter_mut().find(|b| &b.key == key) else {
            // The response to one of our CANCELs: its transaction absorbs it.
            for branch in &mut self.branches {
                if let Some(cancel) = &mut branch.cancel {
                    if &TransactionKey::client(&branch.branch_id, "CANCEL") == key {
                        let _ = cancel.handle_response(now, status, bytes.clone());
                    }
                }
            }
            self.drain(now, env, actions);
            return;
        };
        branch.client.handle_response(now, status, bytes);
        self.drain(now, env, actions);
    }

    /// The transport failed to send branch `key`'s request. When DNS gave other addresses
    /// for it and nothing has come back on it, the request goes to the next one, in a new
    /// branch (RFC 3263 section 4.3); otherwise its client transaction reports a transport
    /// error, which the branch turns into a 503 (RFC 3261 section 16.9).
    pub(crate) fn on_branch_transport_error(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        key: &TransactionKey,
        actions: &mut Vec<Action>,
    ) {
        let Some(index) = self.branches.iter().position(|b| &b.key == key) else {
            return;
        };
        if !self.fall_back_to_udp(now, env, index)
            && !self.fail_over(now, env, index, FailoverCause::Unreachable)
        {
            let branch = &mut self.branches[index];
            match &mut branch.client {
                ClientTx::Invite(t) => t.handle_transport_error(now),
                ClientTx::NonInvite(t) => t.handle_transport_error(now),
            }
        }
        self.drain(now, env, actions);
    }

    /// Sends the request of branch `index`, which failed for `cause`, to the next address DNS
    /// gave for its next hop, in a new branch whose id is the old one with a count appended
    /// (RFC 3263 section 4.3 asks for a new transaction). False when there is no address left,
    /// the request was cancelled or answered upstream, or (unless it answered 503) the branch
    /// has heard anything. The new branch's request is sent by the next `drain`.
    ///
    /// An unreachable or silent branch is replaced in place and its key retired: its client
    /// transaction is over. A branch that answered 503 stays, so that its transaction still absorbs (and,
    /// for an INVITE, acknowledges) retransmissions of that 503, and the 503 still counts in
    /// the choice of the best response if every other address fails too.
    fn fail_over(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        index: usize,
        cause: FailoverCause,
    ) -> bool {
        let branch = &self.branches[index];
        let heard = branch.provisional_seen || branch.final_status.is_some();
        if self.cancelled || self.final_sent || (cause != FailoverCause::Unavailable && heard) {
            return false;
        }
        let Some(failover) = self.failover.as_deref_mut() else {
            return false;
        };
        let Some(next) = failover.next.pop_front() else {
            return false;
        };
        failover.attempts += 1;
        let branch_id = format!("{}.{}", branch.branch_id, failover.attempts);
        let Some(request) = with_branch(&branch.request, &branch.branch_id, &branch_id) else {
            return false;
        };
        env.metrics.failovers.inc();
        let replacement = self.new_branch(now, env, next, &branch_id, request);
        match cause {
            FailoverCause::Unavailable => {
                self.branches.reserve_exact(1);
                self.branches.push(replacement);
            }
            FailoverCause::Unreachable | FailoverCause::Timeout => {
                let failed = std::mem::replace(&mut self.branches[index], replacement);
                self.events
                    .push(TransactionEvent::BranchRetired(failed.key));
            }
        }
        true
    }

    /// The addresses after the first that DNS gave for the next hop, for [`Self::fail_over`].
    pub(crate) fn set_alternates(&mut self, rest: &[Destination]) {
        if !rest.is_empty() {
            self.failover = Some(Box::new(Failover {
                next: rest.iter().copied().collect(),
                ..Failover::default()
            }));
        }
    }

    /// A CANCEL for this INVITE arrived (RFC 3261 section 16.10).
    pub(crate) fn cancel(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        actions: &mut Vec<Action>,
    ) {
        self.cancelled = true;
        if self.branches.is_empty() {
            self.respond_locally(now, env, 487, "Request Terminated", &[], actions);
            return;
        }
        for index in 0..self.branches.len() {
            self.cancel_branch(now, env, index);
        }
        self.drain(now, env, actions);
    }

    fn cancel_branch(&mut self, now: Instant, env: &TransactionEnv<'_>, index: usize) {
        let branch = &mut self.branches[index];
        if branch.final_status.is_some() || branch.cancel.is_some() || branch.client.is_terminated()
        {
            return;
        }
        if !branch.provisional_seen {
            // RFC 3261 section 9.1: no CANCEL before a provisional response.
            branch.cancel_wanted = true;
            return;
        }
        let Some(cancel) = build_cancel(&branch.request) else {
            return;
        };
        let transport = branch.destination.transport;
        branch.cancel = Some(Box::new(ClientNonInviteTransaction::new(
            now, env.timers, transport, cancel,
        )));
        self.events
            .push(TransactionEvent::BranchStarted(TransactionKey::client(
                &branch.branch_id,
                "CANCEL",
            )));
    }

    /// Timers fired (or may have): feed every machine `now`.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        actions: &mut Vec<Action>,
    ) {
        self.armed = None;
        self.server.handle_timeout(now);
        let mut expired_c = Vec::new();
        for (index, branch) in self.branches.iter_mut().enumerate() {
            branch.client.handle_timeout(now);
            if let Some(cancel) = &mut branch.cancel {
                cancel.handle_timeout(now);
            }
            if let Some(tc) = &mut branch.timer_c {
                if let Some(expiry) = tc.handle_timeout(now) {
                    expired_c.push((index, expiry));
                }
            }
        }
        for (index, expiry) in expired_c {
            match expiry {
                TimerCExpiry::Cancel => self.cancel_branch(now, env, index),
                TimerCExpiry::RequestTimeout => self.branch_failed(now, env, index, 408),
            }
        }
        let before = actions.len();
        self.drain(now, env, actions);
        let retransmitted = actions
            .iter()
            .skip(before)
            .filter(|a| matches!(a, Action::Send { .. }))
            .count();
        env.metrics.retransmissions.inc_by(retransmitted as u64);
    }

    /// A branch ended without a response from its target: a synthetic final (408 for a
    /// timeout, 503 for a transport error, RFC 3261 section 16.7 step 2 and 16.8).
    fn branch_failed(&mut self, now: Instant, env: &TransactionEnv<'_>, index: usize, status: u16) {
        let branch = &mut self.branches[index];
        if branch.final_status.is_some() {
            return;
        }
        let Ok(request) = Message::parse(&branch.request) else {
            return;
        };
        let (reason, why) = if status == 408 {
            ("Request Timeout", "no answer from")
        } else {
            ("Service Unavailable", "could not send to")
        };
        // Every 503 the proxy makes says why (RFC 3261 section 20.43), and so does its 408.
        let warning = env.identity.warning(&format!(
            "{why} {} over {}",
            branch.destination.addr,
            branch.destination.transport.via_token()
        ));
        let synthetic = ResponseBuilder::for_request(&request, status, reason)
            .to_tag(env.to_tag)
            .header("Warning", &warning)
            .build();
        branch.final_status = Some(status);
        branch.final_response = Some(Bytes::from(synthetic));
        branch.final_is_ours = true;
        if let Some(tc) = &mut branch.timer_c {
            tc.stop();
        }
        self.maybe_send_best(now, env);
    }

    /// Turns what the machines want into actions, handling branch events as they come.
    fn drain(&mut self, now: Instant, env: &TransactionEnv<'_>, actions: &mut Vec<Action>) {
        loop {
            let mut progressed = false;
            for index in 0..self.branches.len() {
                while let Some(bytes) = self.branches[index].client.poll_transmit() {
                    actions.push(Action::Send {
                        to: self.branches[index].destination,
                        bytes,
                    });
                }
                let destination = self.branches[index].destination;
                if let Some(cancel) = &mut self.branches[index].cancel {
                    while let Some(bytes) = cancel.poll_transmit() {
                        actions.push(Action::Send {
                            to: destination,
                            bytes,
                        });
                    }
                    while cancel.poll_event().is_some() {}
                }
                while let Some(event) = self.branches[index].client.poll_event() {
                    progressed = true;
                    self.on_branch_event(now, env, index, event);
                }
            }
            while let Some(bytes) = self.server.poll_transmit() {
                actions.push(Action::Send {
                    to: self.reply_to,
                    bytes,
                });
            }
            while self.server.poll_event().is_some() {}
            if !progressed {
                break;
            }
        }
    }

    fn on_branch_event(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        index: usize,
        event: Event,
    ) {
        match event {
            Event::Response { status, response } => {
                self.on_response(now, env, index, status, response)
            }
            Event::NeedsAck { .. } => {
                let branch = &mut self.branches[index];
                if let (Some(response), ClientTx::Invite(client)) =
                    (&branch.final_response, &mut branch.client)
                {
                    if let Some(ack) = build_ack(&branch.request, response) {
                        let _ = client.send_ack(now, ack);
                    }
                }
            }
            Event::Timeout { .. } => {
                // Timer B or F: nothing came back (RFC 3263 section 4.3 treats a timeout like
                // a transport failure).
                if !self.fail_over(now, env, index, FailoverCause::Timeout) {
                    self.branch_failed(now, env, index, 408);
                }
            }
            Event::TransportError => self.branch_failed(now, env, index, 503),
            Event::AckForTu | Event::Terminated => {}
        }
    }

    fn on_response(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        index: usize,
        status: u16,
        response: Bytes,
    ) {
        let branch = &mut self.branches[index];
        if let Some(tc) = &mut branch.timer_c {
            let _ = tc.handle_response(now, status);
        }
        match status {
            100 => {
                branch.provisional_seen = true;
                if branch.cancel_wanted {
                    self.cancel_branch(now, env, index);
                }
            }
            101..=199 => {
                branch.provisional_seen = true;
                if branch.cancel_wanted {
                    self.cancel_branch(now, env, index);
                }
                if !self.final_sent {
                    self.relay(now, env, status, &response);
                }
            }
            200..=299 => {
                branch.final_status = Some(status);
                // Every 2xx to an INVITE goes upstream (RFC 3261 section 16.7 step 5).
                if !self.final_sent || self.is_invite {
                    self.relay(now, env, status, &response);
                }
                if self.is_invite {
                    self.events
                        .push(TransactionEvent::CallEstablished(response.clone()));
                    for other in 0..self.branches.len() {
                        if other != index {
                            self.cancel_branch(now, env, other);
                        }
                    }
                }
            }
            _ => {
                branch.final_status = Some(status);
                branch.final_response = Some(response);
                // RFC 3261 section 21.5.4: a 503 sends the request to an alternate server,
                // and its Retry-After keeps other requests away from this one meanwhile.
                if status == 503 {
                    if let Some(seconds) = branch.final_response.as_deref().and_then(retry_after) {
                        self.events.push(TransactionEvent::HopPaused {
                            addr: branch.destination.addr,
                            seconds,
                        });
                    }
                    if self.fail_over(now, env, index, FailoverCause::Unavailable) {
                        return;
                    }
                }
                if status >= 600 && self.is_invite {
                    for other in 0..self.branches.len() {
                        if other != index {
                            self.cancel_branch(now, env, other);
                        }
                    }
                }
                self.maybe_send_best(now, env);
            }
        }
    }

    /// The final response to a BYE ends the call it belongs to (for the calls table and its
    /// metrics), whatever its status: RFC 3261 section 15.1.1 has the caller consider the
    /// session over once it sends the BYE, and the dialog over on a 481 or 408 (what a BYE to
    /// a callee that lost the call, or went away, gets). Ending calls only on a 2xx left those
    /// in the table for good.
    ///
    /// The request is parsed again only for a BYE: every other non-INVITE final passes here too.
    fn note_call_ended(&mut self) {
        if self.method != "BYE" {
            return;
        }
        if let Ok(call_id) = Message::parse(&self.request).and_then(|r| r.call_id()) {
            self.events
                .push(TransactionEvent::CallEnded(call_id.to_string()));
        }
    }

    /// When every branch has a final and none went upstream, relays the best one (RFC 3261
    /// section 16.7 step 6: a 6xx over anything; otherwise the lowest class, preferring the
    /// responses a client can act on).
    fn maybe_send_best(&mut self, now: Instant, env: &TransactionEnv<'_>) {
        if self.final_sent || self.pending.is_some() {
            return;
        }
        if self.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        let best = self
            .branches
            .iter()
            .filter(|b| b.final_status.is_some())
            .min_by_key(|b| b.final_status.map(rank));
        let Some(best) = best else { return };
        let (Some(status), Some(response)) = (best.final_status, best.final_response.clone())
        else {
            return;
        };
        if status == 503 && !best.final_is_ours {
            // RFC 3261 section 16.7 step 6: a 503 from the next hop says that hop is out of
            // service, not this proxy; passed on, it would send the caller to another proxy.
            if let Some(response) = server_error_for(&best.request, env.to_tag) {
                self.relay(now, env, 500, &response);
                return;
            }
        }
        let response = if matches!(status, 401 | 407) {
            self.with_every_challenge(&response).unwrap_or(response)
        } else {
            response
        };
        self.relay(now, env, status, &response);
    }

    /// RFC 3261 section 16.7 step 7: a 401 or 407 chosen as the best response goes upstream
    /// with the challenges of every branch that answered 401 or 407, so that the client can
    /// answer them all in one retry. `None` when there is nothing to add.
    fn with_every_challenge(&self, best: &Bytes) -> Option<Bytes> {
        const CHALLENGES: [(HeaderName, &str); 2] = [
            (HeaderName::WwwAuthenticate, "WWW-Authenticate"),
            (HeaderName::ProxyAuthenticate, "Proxy-Authenticate"),
        ];
        let message = Message::parse(best).ok()?;
        let mut seen: Vec<String> = message
            .headers()
            .iter()
            .filter(|h| CHALLENGES.iter().any(|(name, _)| *name == h.name))
            .map(|h| h.value.to_string())
            .collect();
        let mut edit = message.edit();
        let mut added = false;
        for branch in &self.branches {
            let (Some(401 | 407), Some(other)) = (branch.final_status, &branch.final_response)
            else {
                continue;
            };
            let Ok(other) = Message::parse(other) else {
                continue;
            };
            for header in other.headers() {
                let Some((_, name)) = CHALLENGES.iter().find(|(name, _)| *name == header.name)
                else {
                    continue;
                };
                if !seen.iter().any(|v| v == header.value) {
                    seen.push(header.value.to_string());
                    edit.append_header(name, header.value);
                    added = true;
                }
            }
        }
        added.then(|| Bytes::from(edit.finish()))
    }

    /// Sends a branch's response upstream without our Via (RFC 3261 section 16.7 step 3).
    fn relay(&mut self, now: Instant, env: &TransactionEnv<'_>, status: u16, response: &Bytes) {
        let Ok(message) = Message::parse(response) else {
            return;
        };
        let edited = Bytes::from(message.edit().remove_top_via().finish());
        if status >= 200 && !self.final_sent {
            self.final_sent = true;
            env.metrics
                .transaction_duration
                .observe(now.duration_since(self.started).as_secs_f64());
            if !self.is_invite {
                self.note_call_ended();
            }
        }
        env.metrics.response_relayed(status).inc();
        self.send_upstream(now, status, edited);
    }

    /// Hands a response to the server transaction, keeping a non-INVITE final for later copies
    /// of the request (see `final_response`).
    fn send_upstream(&mut self, now: Instant, status: u16, bytes: Bytes) {
        if status >= 200 && !self.is_invite && self.final_response.is_none() {
            self.final_response = Some(bytes.clone());
        }
        self.server.send_response(now, status, bytes);
    }

    /// What the core must do for this transaction since the last call, in the order it arose.
    pub(crate) fn take_events(&mut self) -> Vec<TransactionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Every branch key, for removal from the index.
    pub(crate) fn branch_keys(&self) -> Vec<TransactionKey> {
        let mut keys: Vec<_> = self.branches.iter().map(|b| b.key.clone()).collect();
        keys.extend(
            self.branches
                .iter()
                .filter(|b| b.cancel.is_some())
                .map(|b| TransactionKey::client(&b.branch_id, "CANCEL")),
        );
        keys
    }

    /// The earliest timer, when it differs from the one already armed, with the arming that
    /// supersedes the earlier ones.
    pub(crate) fn next_timeout_to_arm(&mut self) -> Option<(Instant, Arming)> {
        let mut earliest = self.server.poll_timeout();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e: Instant| e.min(t)));
            }
        };
        for b in &self.branches {
            consider(b.client.poll_timeout());
            consider(b.cancel.as_ref().and_then(|c| c.poll_timeout()));
            consider(b.timer_c.as_ref().and_then(|c| c.poll_timeout()));
        }
        if earliest.is_some() && earliest != self.armed {
            self.armed = earliest;
            return earliest.map(|at| (at, self.arm_counter.arm()));
        }
        None
    }

    /// The transaction ended: its armed timers need not fire.
    pub(crate) fn close_timers(&self) {
        self.arm_counter.close();
    }

    /// True when nothing is left to do: the server transaction and every branch ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.server.is_terminated()
            && self.pending.is_none()
            && self.branches.iter().all(|b| {
                b.client.is_terminated() && b.cancel.as_ref().is_none_or(|c| c.is_terminated())
            })
    }
}

/// Ranking for best-response selection: lower is better.
fn rank(status: u16) -> u32 {
    match status {
        600..=699 => 0,
        200..=299 => 1,
        300..=399 => 2,
        401 | 407 | 415 | 420 | 484 => 3,
        400..=499 if status != 408 => 4,
        500..=599 if status != 503 => 5,
        503 => 6,
        408 => 7,
        _ => 8,
    }
}

/// The delta-seconds of a response's Retry-After, if it has a valid one.
fn retry_after(response: &[u8]) -> Option<u64> {
    let response = Message::parse(response).ok()?;
    super::unavailable::retry_after_seconds(response.header_value_by_name("Retry-After")?)
}

/// A 500 (Server Internal Error) for a branch's `request`, as if its next hop had sent it
/// (our Via on top, for `relay` to remove).
fn server_error_for(request: &[u8], to_tag: &str) -> Option<Bytes> {
    let request = Message::parse(request).ok()?;
    let response = ResponseBuilder::for_request(&request, 500, "Server Internal Error")
        .to_tag(to_tag)
        .build();
    Some(Bytes::from(response))
}

/// The request with its top Via's transport set to TCP and Content-Length ensured.
fn retarget_via_to_tcp(request: &[u8]) -> Option<Bytes> {
    let message = Message::parse(request).ok()?;
    let (index, header) = message
        .headers()
        .iter()
        .enumerate()
        .find(|(_, h)| h.name == HeaderName::Via)?;
    let mut values = dialtone_sip::lex::split_commas(header.value);
    let first = values.next()?;
    let rest: Vec<&str> = values.collect();
    let slash = first.rfind('/')?;
    let after = &first[slash + 1..];
    let space = after.find(|c: char| c.is_ascii_whitespace())?;
    let retargeted = format!("{}TCP{}", &first[..=slash], &after[space..]);
    let value = if rest.is_empty() {
        retargeted
    } else {
        format!("{retargeted}, {}", rest.join(", "))
    };
    let mut edit = message.edit();
    edit.set_header_value(index, &value).ensure_content_length();
    Some(Bytes::from(edit.finish()))
}

/// The ACK for a non-2xx final on a branch (RFC 3261 section 17.1.1.3), from the branch's
/// INVITE and the response as they are kept, as bytes.
pub(crate) fn build_ack(invite: &[u8], response: &[u8]) -> Option<Bytes> {
    let (invite, response) = (Message::parse(invite).ok()?, Message::parse(response).ok()?);
    Some(Bytes::from(ack_for_non_2xx(&invite, &response)?.build()))
}

/// The CANCEL for a branch (RFC 3261 section 9.1), from the branch's INVITE as it is kept.
pub(crate) fn build_cancel(invite: &[u8]) -> Option<Bytes> {
    Some(Bytes::from(
        cancel_for(&Message::parse(invite).ok()?)?.build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_branch_replaces_only_our_via_branch() {
        let request = Bytes::from_static(b"OPTIONS sip:u@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp1x\r\n\r\n");
        let out = with_branch(&request, "z9hG4bKp1", "z9hG4bKp1.1").unwrap();
        assert_eq!(
            out,
            Bytes::from_static(b"OPTIONS sip:u@x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bKp1.1\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKp1x\r\n\r\n")
        );
        assert_eq!(with_branch(&request, "z9hG4bKnone", "z9hG4bKq"), None);
    }

    #[test]
    fn best_response_prefers_6xx_then_lowest_class_then_actionable_4xx() {
        let mut statuses = [503, 486, 408, 302];
        statuses.sort_by_key(|s| rank(*s));
        assert_eq!(statuses[0], 302);
        assert!(rank(603) < rank(200));
        assert!(rank(407) < rank(404));
        assert!(rank(404) < rank(500));
        assert!(rank(500) < rank(408));
    }

    #[test]
    fn a_request_resolved_to_tcp_names_tcp_in_its_via() {
        let udp = b"INVITE sip:a@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@example.net>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n";
        let tcp = retarget_via_to_tcp(udp).unwrap();
        let m = Message::parse(&tcp).unwrap();
        let vias: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
        assert_eq!(vias, vec!["TCP", "UDP"]);
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bKx.0"));
        assert_eq!(m.content_length(), Some(0));
    }

    #[test]
    fn cancel_and_ack_copy_the_branch_identity() {
        let invite = b"INVITE sip:9000@127.0.0.1:5062 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061\r\nRoute: <sip:next;lr>\r\nFrom: <sip:8000@x>;tag=1\r\nTo: <sip:9000@x>\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let cancel = build_cancel(invite).unwrap();
        let c = Message::parse(&cancel).unwrap();
        assert_eq!(c.method(), Some(dialtone_sip::Method::Cancel));
        assert_eq!(c.vias().count(), 1);
        assert_eq!(c.top_via().unwrap().branch(), Some("z9hG4bKabc.0"));
        assert_eq!(c.cseq().unwrap().seq, 7);
        assert_eq!(c.routes().unwrap().len(), 1);
        let response = b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc.0\r\nFrom: <sip:8000@x>;tag=1\r\nTo: <sip:9000@x>;tag=b\r\nCall-ID: c\r\nCSeq: 7 INVITE\r\n\r\n";
        let ack = build_ack(invite, response).unwrap();
        let a = Message::parse(&ack).unwrap();
        assert_eq!(a.to().unwrap().tag(), Some("b"));
        assert_eq!(a.cseq().unwrap().method, dialtone_sip::Method::Ack);
        a.check_request().unwrap();
    }
}
