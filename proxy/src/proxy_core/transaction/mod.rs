//! One proxied request: its server transaction (`server.rs`), its branches, each a client
//! transaction with a Timer C for INVITE and maybe a CANCEL (`branch.rs`), the response
//! context of RFC 3261 section 16.7 (`best.rs`) and the retries on another address
//! (`failover.rs`). It sees the proxy only through a [`TransactionEnv`] and reports back
//! through [`TransactionEvent`]s (`env.rs`).
//!
//! Every change goes through a method here, and [`ProxyTransaction::drain`] turns what the
//! transaction machines want sent into [`Action`]s. Responses from branches are handled in
//! order of arrival: provisionals (except 100) and every 2xx are relayed at once; other finals
//! are kept until every branch has one, and the best is relayed (section 16.7 step 6).

mod best;
mod branch;
mod env;
mod failover;
mod server;

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use dialtone_transaction::{ServerTransaction, TimerCExpiry, TimerConfig, TransactionKey};
use smallvec::SmallVec;
use thin_vec::ThinVec;

use super::arming::{ArmCounter, Arming};
use super::{Action, Destination};
pub(crate) use best::relayed_as_received;
use branch::Branch;
pub(crate) use branch::PendingBranch;
pub use env::{TransactionEnv, TransactionEvent};
use failover::Failover;

/// Where a request came from, kept against where its responses go: the same IP address
/// nearly always (RFC 3261 section 18.2.2 answers a UDP request at its source address, and a
/// TCP one on its connection), so a port (16 bytes with the tag, not a 32-byte address) is
/// enough for the minutes a ringing INVITE lives.
#[derive(Debug)]
enum Source {
    /// The IP address of `reply_to`, at this port.
    Port(u16),
    /// Another address (a Via's `maddr`, say).
    Elsewhere(Box<SocketAddr>),
}

impl Source {
    fn new(source: SocketAddr, reply_to: SocketAddr) -> Source {
        // Compared whole: an IPv6 source's scope id must come back too.
        if SocketAddr::new(reply_to.ip(), source.port()) == source {
            Source::Port(source.port())
        } else {
            Source::Elsewhere(Box::new(source))
        }
    }

    fn addr(&self, reply_to: SocketAddr) -> SocketAddr {
        match self {
            Source::Port(port) => SocketAddr::new(reply_to.ip(), *port),
            Source::Elsewhere(addr) => **addr,
        }
    }
}

/// The parts of a transaction that only some requests have (see `ProxyTransaction::later`).
#[derive(Debug, Default)]
struct Later {
    /// A branch waiting for DNS: only when the next hop is a name (boxed: large).
    pending: Option<Box<PendingBranch>>,
    /// The other addresses DNS gave for the next hop, if any (boxed: nearly every request
    /// has none).
    failover: Option<Box<Failover>>,
    /// The final response of a non-INVITE request, for a copy of the request that arrives
    /// after its server transaction ended while a branch keeps this entry alive (over TCP,
    /// Timer J is zero, so the machine is gone at once and would answer nothing).
    final_response: Option<Bytes>,
}

/// Everything the proxy holds for one received request.
#[derive(Debug)]
pub struct ProxyTransaction {
    server: ServerTransaction,
    reply_to: Destination,
    /// Where the request came from: the `received`/`rport` of the Via in local responses.
    source: Source,
    is_invite: bool,
    started: Instant,
    /// Nearly every request has one branch: kept inline, it costs no allocation of its own
    /// (and no allocator header) for the minutes a ringing INVITE lives.
    branches: SmallVec<[Branch; 1]>,
    final_sent: bool,
    cancelled: bool,
    /// The proxy answered this request itself with a challenge (401 or 407).
    challenged: bool,
    /// What the core must do once this call returns (see [`TransactionEvent`]). A `ThinVec`:
    /// empty between calls, where a `Vec` would still take 24 bytes of every ringing INVITE.
    events: ThinVec<TransactionEvent>,
    /// What a ringing INVITE has none of, boxed together: it lives for minutes.
    later: Option<Box<Later>>,
    armed: Option<Instant>,
    /// Tells the timer queue which arming is current (see `arming.rs`).
    arm_counter: ArmCounter,
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
        let server = ServerTransaction::new(now, timers, transport, request, is_invite);
        ProxyTransaction {
            server,
            reply_to,
            source: Source::new(source, reply_to.addr),
            is_invite,
            started: now,
            branches: SmallVec::new(),
            final_sent: false,
            cancelled: false,
            challenged: false,
            events: ThinVec::new(),
            later: None,
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
    ///
    /// An INVITE the proxy challenged (401, 407) is answered statelessly too, as Kamailio's
    /// `sl` does: its client retransmits the INVITE if the challenge is lost (and gets a fresh
    /// one), and the ACK of the challenge carries the proxy's own To tag, by which
    /// `ack_cancel_options.rs` drops it (RFC 3261 section 8.2.7: a stateless UAS ignores ACK).
    /// Every authenticated call starts with one; kept for the ACK and Timer H, each held a
    /// transaction, its timers and three more datagrams' worth of work, and a flood of INVITEs
    /// without credentials held one per INVITE for 32 s.
    pub(crate) fn answered_statelessly(&self) -> bool {
        (!self.is_invite || self.challenged)
            && self.final_sent
            && self.branches.is_empty()
            && !self.has_pending()
    }

    fn later_mut(&mut self) -> &mut Later {
        self.later.get_or_insert_with(Box::default)
    }

    /// Whether a branch waits for DNS.
    fn has_pending(&self) -> bool {
        self.later.as_ref().is_some_and(|l| l.pending.is_some())
    }

    /// Sends the responses to `reply_to` from now on (a copy of the request came by another
    /// way); where the request came from stays what it was.
    pub(super) fn set_reply_to(&mut self, reply_to: Destination) {
        let source = self.source();
        self.reply_to = reply_to;
        self.source = Source::new(source, reply_to.addr);
    }

    /// Where the request came from (its responses go by its Via, section 18.2.2).
    pub(crate) fn source(&self) -> SocketAddr {
        self.source.addr(self.reply_to.addr)
    }

    /// The request's octets (a shared handle, not a copy): the server transaction's, the one
    /// copy kept.
    pub(crate) fn request(&self) -> &Bytes {
        self.server.request()
    }

    /// The request's method (its CSeq method too: `check_request` refuses a mismatch), which
    /// names the branches' client transactions: the request line's first token, read back
    /// rather than kept in a string of its own.
    pub(crate) fn method(&self) -> &str {
        let request = self.request();
        let end = request.iter().position(|&b| b == b' ').unwrap_or(0);
        std::str::from_utf8(&request[..end]).unwrap_or("")
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
            if let Some(cancel) = branch.cancel_mut() {
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
                if let Some(cancel) = self.branches[index].cancel_mut() {
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

    /// What the core must do for this transaction since the last call, in the order it arose.
    pub(crate) fn take_events(&mut self) -> ThinVec<TransactionEvent> {
        std::mem::take(&mut self.events)
    }

    /// Every branch key, for removal from the index.
    pub(crate) fn branch_keys(&self) -> Vec<TransactionKey> {
        let mut keys: Vec<_> = self.branches.iter().map(|b| b.key).collect();
        keys.extend(
            self.branches
                .iter()
                .filter(|b| b.cancel().is_some())
                .map(|b| b.cancel_key()),
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
            consider(b.cancel().and_then(|c| c.poll_timeout()));
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
            && !self.has_pending()
            && self
                .branches
                .iter()
                .all(|b| b.client.is_terminated() && b.cancel().is_none_or(|c| c.is_terminated()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_transaction::Transport;

    #[test]
    fn a_source_comes_back_whole_from_what_is_kept_of_it() {
        let reply_to: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let same_host: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let kept = Source::new(same_host, reply_to);
        assert!(matches!(kept, Source::Port(40000)));
        assert_eq!(kept.addr(reply_to), same_host);
        let other: SocketAddr = "198.51.100.7:5060".parse().unwrap();
        assert_eq!(Source::new(other, reply_to).addr(reply_to), other);
        let scoped: SocketAddr = "[fe80::1%2]:5060".parse().unwrap();
        let unscoped: SocketAddr = "[fe80::1]:5060".parse().unwrap();
        assert_eq!(Source::new(scoped, unscoped).addr(unscoped), scoped);
    }

    #[test]
    fn a_copy_from_elsewhere_moves_the_replies_and_not_the_source() {
        let first: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let request = Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n\r\n");
        let mut tx = ProxyTransaction::new(
            Instant::now(),
            &TimerConfig::default(),
            request,
            "OPTIONS",
            Destination {
                transport: Transport::Udp,
                addr: first,
            },
            first,
        );
        tx.set_reply_to(Destination {
            transport: Transport::Udp,
            addr: "203.0.113.9:5060".parse().unwrap(),
        });
        assert_eq!(tx.source(), first);
    }
}
