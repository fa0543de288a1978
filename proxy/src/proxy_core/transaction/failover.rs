//! When a branch's next hop fails: the next address DNS gave (RFC 3263 section 4.3), or the
//! same address over UDP for a request that went over TCP only for its size (RFC 3261
//! section 18.1.1); each retry is a new branch whose id extends the failed one's.

use std::time::Instant;

use bytes::Bytes;
use dialtone_transaction::{TransactionKey, Transport};

use super::{ProxyTransaction, TransactionEnv, TransactionEvent};
use crate::proxy_core::Destination;

/// The addresses left to try for a resolved next hop when the one tried fails (RFC 3263
/// section 4.3: "the client SHOULD try the next element").
#[derive(Debug, Default)]
pub(super) struct Failover {
    pub(super) next: std::collections::VecDeque<Destination>,
    pub(super) attempts: u32,
}

/// Why a branch's next hop is given up for the next address DNS gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailoverCause {
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

impl ProxyTransaction {
    /// Notes that branch `branch_id` goes over TCP only because `udp_request` (its request as
    /// edited for UDP) is too large for UDP: if the connection fails, `udp_request` is sent.
    pub(crate) fn set_udp_fallback(&mut self, branch_id: &str, udp_request: Bytes) {
        let key = TransactionKey::client(branch_id, self.method());
        if let Some(branch) = self.branches.iter_mut().find(|b| b.key == key) {
            branch.set_udp_fallback(udp_request);
        }
    }

    /// RFC 3261 section 18.1.1: "If an element sends a request over TCP because of these
    /// message size constraints, and that request would have otherwise been sent over UDP, if
    /// the attempt to establish the connection generates either an ICMP Protocol Not Supported,
    /// or results in a TCP reset, the element SHOULD retry the request, using UDP." A phone
    /// whose Contact says `transport=udp` may have no TCP listener at all (the Dialtone ATA
    /// has none): linphone's INVITE with its default codecs passes 1300 octets with our Via
    /// and Record-Route. The retry is a new branch over UDP in place of the failed one.
    pub(super) fn fall_back_to_udp(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        index: usize,
    ) -> bool {
        let branch = &mut self.branches[index];
        if branch.provisional_seen || branch.final_status.is_some() || self.final_sent {
            return false;
        }
        let Some(udp_request) = branch.take_udp_fallback() else {
            return false;
        };
        let failed_id = branch.branch_id();
        let branch_id = format!("{failed_id}.udp");
        let Some(request) = with_branch(&udp_request, &failed_id, &branch_id) else {
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
    pub(super) fn fail_over(
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
        let Some(failover) = self.later.as_mut().and_then(|l| l.failover.as_deref_mut()) else {
            return false;
        };
        let Some(next) = failover.next.pop_front() else {
            return false;
        };
        failover.attempts += 1;
        let failed_id = branch.branch_id();
        let branch_id = format!("{failed_id}.{}", failover.attempts);
        let Some(request) = with_branch(&self.branch_request(index), &failed_id, &branch_id) else {
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
            self.later_mut().failover = Some(Box::new(Failover {
                next: rest.iter().copied().collect(),
                ..Failover::default()
            }));
        }
    }
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
}
