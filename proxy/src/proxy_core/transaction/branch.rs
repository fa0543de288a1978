//! The branch table of a proxied request (RFC 3261 section 16.6): one client transaction per
//! forwarded copy, with its Timer C for an INVITE, its CANCEL (sections 9.1 and 16.10) and the
//! ACK its client INVITE transaction sends for a non-2xx final (17.1.1.3); and the branch
//! waiting for DNS (RFC 3263).

use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::{
    forwarder_via, skeleton_from_head, Delta, HeaderName, Message, ResponseBuilder, Via,
};
use dialtone_transaction::{
    ack_for_non_2xx, cancel_for, ClientNonInviteTransaction, ClientTransaction, Event, TimerC,
    TransactionKey, Transport,
};

use super::failover::FailoverCause;
use super::{ProxyTransaction, TransactionEnv, TransactionEvent};
use crate::proxy_core::{reply, Action, Destination};

/// One forwarded copy of the request (RFC 3261 section 16.6).
#[derive(Debug)]
pub(super) struct Branch {
    /// Its client transaction's key.
    pub(super) key: TransactionKey,
    pub(super) destination: Destination,
    /// Keeps the forwarded request, or once `shed` only its head (see
    /// [`ProxyTransaction::branch_request`]).
    pub(super) client: ClientTransaction,
    pub(super) timer_c: Option<TimerC>,
    pub(super) provisional_seen: bool,
    /// The client transaction holds only the head of the forwarded INVITE
    /// (`Message::forwarded_head`), as a [`Delta`] against the received request's skeleton:
    /// see [`ProxyTransaction::keep_only_the_branch_head`].
    pub(super) shed: bool,
    pub(super) final_status: Option<u16>,
    /// The final was written by the proxy (408 on a timeout, 503 on a transport error), not
    /// received from the next hop.
    pub(super) final_is_ours: bool,
    pub(super) cancel_wanted: bool,
    /// What a ringing branch has none of, boxed together: every ringing INVITE holds its
    /// branch for minutes.
    later: Option<Box<Later>>,
}

/// The parts of a branch that come late or rarely (see [`Branch::later`]).
#[derive(Debug, Default)]
struct Later {
    /// The branch's final response.
    final_response: Option<Bytes>,
    /// Its CANCEL's machine: most branches are never cancelled.
    cancel: Option<ClientNonInviteTransaction>,
    /// The request as edited for UDP, when it goes over TCP only because of its size: sent
    /// over UDP if the TCP connection is refused or reset (RFC 3261 section 18.1.1).
    udp_fallback: Option<Bytes>,
}

impl Branch {
    fn later_mut(&mut self) -> &mut Later {
        self.later.get_or_insert_with(Box::default)
    }

    /// The final response this branch received (or the proxy wrote for it).
    pub(super) fn final_response(&self) -> Option<&Bytes> {
        self.later.as_ref()?.final_response.as_ref()
    }

    pub(super) fn set_final_response(&mut self, response: Bytes) {
        self.later_mut().final_response = Some(response);
    }

    /// The machine of this branch's CANCEL, once one was sent.
    pub(super) fn cancel(&self) -> Option<&ClientNonInviteTransaction> {
        self.later.as_ref()?.cancel.as_ref()
    }

    pub(super) fn cancel_mut(&mut self) -> Option<&mut ClientNonInviteTransaction> {
        self.later.as_mut()?.cancel.as_mut()
    }

    pub(super) fn set_cancel(&mut self, cancel: ClientNonInviteTransaction) {
        self.later_mut().cancel = Some(cancel);
    }

    /// Keeps the UDP form of a request sent over TCP only for its size (see [`Later`]).
    pub(super) fn set_udp_fallback(&mut self, request: Bytes) {
        self.later_mut().udp_fallback = Some(request);
    }

    pub(super) fn take_udp_fallback(&mut self) -> Option<Bytes> {
        self.later.as_mut()?.udp_fallback.take()
    }

    /// The branch parameter of this branch's Via. It is not kept as a string of its own (a
    /// ringing INVITE holds its branch for minutes), and the key is a digest: it is read from
    /// the request the client transaction keeps, where the proxy's Via is the first header
    /// line (`forward.rs` puts it there). Only asked of a branch that keeps its whole request:
    /// the failovers that need it come before a provisional or while other addresses are
    /// left, and a branch is cut to its head after a provisional only when none are.
    pub(super) fn branch_id(&self) -> String {
        debug_assert!(!self.shed, "a branch cut to its head has no Via to read");
        forwarder_via(self.client.request())
            .and_then(|value| Via::parse(value).ok())
            .and_then(|via| via.branch().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The key of this branch's CANCEL (RFC 3261 section 9.1: the branch of the INVITE).
    pub(super) fn cancel_key(&self) -> TransactionKey {
        self.key
            .with_method("CANCEL")
            .unwrap_or_else(|| TransactionKey::client(&self.branch_id(), "CANCEL"))
    }
}

/// A branch whose destination is still being resolved.
#[derive(Debug)]
pub(crate) struct PendingBranch {
    pub branch_id: String,
    pub request: Bytes,
}

impl ProxyTransaction {
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
        // Exact growth past the inline one: a forked request's spare room would be held for
        // the whole transaction.
        self.branches.reserve_exact(1);
        self.branches.push(branch);
        self.drain(now, env, actions);
    }

    /// A branch with its client transaction started (its request waiting in the machine to be
    /// sent by the next `drain`), its key noted for the core's index.
    pub(super) fn new_branch(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        destination: Destination,
        branch_id: &str,
        request: Bytes,
    ) -> Branch {
        let key = TransactionKey::client(branch_id, self.method());
        let transport = destination.transport;
        let client = ClientTransaction::new(now, env.timers, transport, request, self.is_invite);
        let timer_c = self.is_invite.then(|| TimerC::new(now, env.timers.timer_c));
        self.events.push(TransactionEvent::BranchStarted(key));
        Branch {
            key,
            destination,
            client,
            timer_c,
            provisional_seen: false,
            shed: false,
            final_status: None,
            final_is_ours: false,
            cancel_wanted: false,
            later: None,
        }
    }

    /// Once a branch's INVITE had a provisional response it is never sent again (RFC 3261
    /// section 17.1.1.2). What its CANCEL, the ACK of a failure and the proxy's own 408 on
    /// Timer C copy is its skeleton (`Message::skeleton`), and most of that skeleton (the
    /// received Vias, From, To, Call-ID, CSeq) is the received INVITE's, which the server
    /// transaction keeps anyway: the branch keeps only the rest, its head (start line, the
    /// proxy's Via, Route), and [`Self::branch_request`] puts the skeleton back together when
    /// it is needed. A ringing branch lives for minutes; a whole copy of its INVITE, then a
    /// skeleton of its own, were most of what a ringing call held. Even the head starts as
    /// the received request does ("INVITE sip:", "Via: SIP/2.0/UDP " and often the host), so
    /// it is kept as a [`Delta`] against that request's skeleton, in the client transaction's
    /// place for its request (which it never sends again).
    ///
    /// Not while DNS gave other addresses to fail over to: a 503 after a 180 sends the whole
    /// INVITE again, to the next address.
    pub(super) fn keep_only_the_branch_head(&mut self, index: usize) {
        if self
            .later
            .as_ref()
            .and_then(|l| l.failover.as_ref())
            .is_some_and(|f| !f.next.is_empty())
        {
            return;
        }
        let reference = self.server.request();
        let branch = &mut self.branches[index];
        let ClientTransaction::Invite(client) = &mut branch.client else {
            return;
        };
        let Some(head) = Message::parse(client.request())
            .ok()
            .and_then(|request| request.forwarded_head())
        else {
            return;
        };
        let delta = Delta::new(&head, reference);
        debug_assert_eq!(delta.restore(reference).as_deref(), Some(&head[..]));
        if client
            .replace_request(Bytes::from(delta.into_encoded()))
            .is_ok()
        {
            branch.shed = true;
        }
    }

    /// The request as forwarded on branch `index`: the client transaction's copy, or once
    /// the branch keeps only its head, the skeleton of that copy rebuilt from the head and
    /// the received request, whose first Via is given the `received` and `rport` that
    /// forwarding gave it (`forward.rs`).
    pub(super) fn branch_request(&self, index: usize) -> Bytes {
        let branch = &self.branches[index];
        let kept = branch.client.request();
        if !branch.shed {
            return kept.clone();
        }
        // The received request is the reference of the head's delta, and is not replaced
        // after the branch is cut (it became its skeleton before anything was forwarded).
        let Some(head) = Delta::restore_encoded(kept, self.request()) else {
            debug_assert!(false, "a branch head that does not restore");
            return Bytes::new();
        };
        let Ok(received) = Message::parse(self.request()) else {
            return Bytes::from(head);
        };
        let source = self.source();
        Bytes::from(skeleton_from_head(&head, &received, |top| {
            reply::via_header_with_received(top, source)
        }))
    }

    /// Keeps a branch whose destination is being resolved.
    pub(crate) fn set_pending(&mut self, pending: PendingBranch) {
        self.later_mut().pending = Some(Box::new(pending));
    }

    /// The pending branch's next hop could not be resolved: nothing will be sent, and the
    /// transaction may end (a pending branch kept it, and its server key, for ever).
    pub(crate) fn abandon_pending(&mut self) {
        if let Some(later) = &mut self.later {
            later.pending = None;
        }
    }

    /// The resolved destination of the pending branch is known: send it.
    pub(crate) fn start_pending_branch(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        destination: Destination,
        actions: &mut Vec<Action>,
    ) {
        if let Some(pending) = self.later.as_mut().and_then(|l| l.pending.take()) {
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
                if branch.cancel().is_some() && &branch.cancel_key() == key {
                    if let Some(cancel) = branch.cancel_mut() {
                        let _ = cancel.handle_response(now, status, bytes.clone());
                    }
                }
            }
            self.drain(now, env, actions);
            return;
        };
        let _ = branch.client.handle_response(now, status, bytes);
        self.drain(now, env, actions);
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

    pub(super) fn cancel_branch(&mut self, now: Instant, env: &TransactionEnv<'_>, index: usize) {
        let branch = &mut self.branches[index];
        if branch.final_status.is_some()
            || branch.cancel().is_some()
            || branch.client.is_terminated()
        {
            return;
        }
        if !branch.provisional_seen {
            // RFC 3261 section 9.1: no CANCEL before a provisional response.
            branch.cancel_wanted = true;
            return;
        }
        let Some(cancel) = build_cancel(&self.branch_request(index)) else {
            return;
        };
        let branch = &mut self.branches[index];
        let transport = branch.destination.transport;
        branch.set_cancel(ClientNonInviteTransaction::new(
            now, env.timers, transport, cancel,
        ));
        self.events
            .push(TransactionEvent::BranchStarted(branch.cancel_key()));
    }

    pub(super) fn on_branch_event(
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
                let ack = self.branches[index]
                    .final_response()
                    .and_then(|response| build_ack(&self.branch_request(index), response));
                let branch = &mut self.branches[index];
                if let (Some(ack), ClientTransaction::Invite(client)) = (ack, &mut branch.client) {
                    let _ = client.send_ack(now, ack);
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

    /// A branch ended without a response from its target: a synthetic final (408 for a
    /// timeout, 503 for a transport error, RFC 3261 section 16.7 step 2 and 16.8).
    pub(super) fn branch_failed(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        index: usize,
        status: u16,
    ) {
        if self.branches[index].final_status.is_some() {
            return;
        }
        let forwarded = self.branch_request(index);
        let Ok(request) = Message::parse(&forwarded) else {
            return;
        };
        let branch = &mut self.branches[index];
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
        branch.set_final_response(Bytes::from(synthetic));
        branch.final_is_ours = true;
        if let Some(tc) = &mut branch.timer_c {
            tc.stop();
        }
        self.maybe_send_best(now, env);
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
            self.branches[index].client.handle_transport_error(now);
        }
        self.drain(now, env, actions);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
