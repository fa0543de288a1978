//! The response context of a proxied request (RFC 3261 section 16.7): what each branch's
//! response does (relayed at once, kept, a reason to cancel the other branches or to try
//! another address), and, once every branch has a final, the best response upstream.

use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::{HeaderName, Message, ResponseBuilder};

use super::failover::FailoverCause;
use super::{ProxyTransaction, TransactionEnv, TransactionEvent};

impl ProxyTransaction {
    pub(super) fn on_response(
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
        if (100..200).contains(&status) && !branch.provisional_seen {
            branch.provisional_seen = true;
            self.keep_only_the_branch_head(index);
        }
        let branch = &mut self.branches[index];
        match status {
            100 => {
                if branch.cancel_wanted {
                    self.cancel_branch(now, env, index);
                }
            }
            101..=199 => {
                if branch.cancel_wanted {
                    self.cancel_branch(now, env, index);
                }
                if !self.final_sent {
                    self.relay_without_our_via(now, env, status, response);
                }
            }
            200..=299 => {
                branch.final_status = Some(status);
                // Every 2xx to an INVITE goes upstream (RFC 3261 section 16.7 step 5).
                if !self.final_sent || self.is_invite {
                    self.relay_without_our_via(now, env, status, response.clone());
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
                branch.set_final_response(response);
                // RFC 3261 section 21.5.4: a 503 sends the request to an alternate server,
                // and its Retry-After keeps other requests away from this one meanwhile.
                if status == 503 {
                    if let Some(seconds) = branch.final_response().and_then(|r| retry_after(r)) {
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
    pub(super) fn note_call_ended(&mut self) {
        if self.method() != "BYE" {
            return;
        }
        if let Ok(call_id) = Message::parse(self.request()).and_then(|r| r.call_id()) {
            self.events
                .push(TransactionEvent::CallEnded(call_id.to_string()));
        }
    }

    /// When every branch has a final and none went upstream, relays the best one (RFC 3261
    /// section 16.7 step 6: a 6xx over anything; otherwise the lowest class, preferring the
    /// responses a client can act on).
    pub(super) fn maybe_send_best(&mut self, now: Instant, env: &TransactionEnv<'_>) {
        if self.final_sent || self.has_pending() {
            return;
        }
        if self.branches.iter().any(|b| b.final_status.is_none()) {
            return;
        }
        let best = self
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.final_status.is_some())
            .min_by_key(|(_, b)| b.final_status.map(rank));
        let Some((index, best)) = best else { return };
        let (Some(status), Some(response)) = (best.final_status, best.final_response().cloned())
        else {
            return;
        };
        if status == 503 && !best.final_is_ours {
            // RFC 3261 section 16.7 step 6: a 503 from the next hop says that hop is out of
            // service, not this proxy; passed on, it would send the caller to another proxy.
            if let Some(response) = server_error_for(&self.branch_request(index), env.to_tag) {
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
    pub(super) fn with_every_challenge(&self, best: &Bytes) -> Option<Bytes> {
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
            let (Some(401 | 407), Some(other)) = (branch.final_status, branch.final_response())
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
    pub(super) fn relay(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        response: &Bytes,
    ) {
        let Ok(message) = Message::parse(response) else {
            return;
        };
        let edited = Bytes::from(message.edit().remove_top_via().finish());
        self.relay_without_our_via(now, env, status, edited);
    }

    /// Sends upstream a response whose top Via, ours, is already removed: a provisional or a
    /// 2xx, which `response.rs` strips where it parsed the response (see
    /// [`relayed_as_received`]).
    fn relay_without_our_via(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        edited: Bytes,
    ) {
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
}

/// Whether a branch's response with this status goes upstream as it arrives (a provisional
/// other than 100, or a 2xx: RFC 3261 section 16.7 step 5), rather than waiting to be chosen
/// as the best. The branch's client transaction is then given it without our Via, taken off
/// where the response was parsed on arrival: relaying it parsed it a second time, a quarter of
/// the proxy's parses for a call (uprobes on `Message::parse`).
pub(crate) fn relayed_as_received(status: u16) -> bool {
    (101..300).contains(&status)
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
    crate::proxy_core::unavailable::retry_after_seconds(
        response.header_value_by_name("Retry-After")?,
    )
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
