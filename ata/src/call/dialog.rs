//! One call's SIP dialog, as a UAC or a UAS, sans-IO (RFC 3261 sections 12 to 15).
//!
//! The call actor (`call::actor`) owns one [`Dialog`]. It feeds in responses to our client
//! transactions ([`Dialog::handle_response`]), requests the endpoint routed to this dialog
//! ([`Dialog::handle_request`]), transaction failures, the user's actions (hang up, ring,
//! answer, reject) and its timer, with `now` where a timer hangs on the input (our 2xx is
//! retransmitted until the ACK); and it drains [`Dialog::poll_output`]: requests for new
//! client transactions, stateless sends (ACK to a 2xx), responses for server transactions the
//! endpoint holds, and [`CallEvent`]s. SDP bodies pass through as bytes: the actor's
//! `Negotiator` does offer/answer.
//!
//! Transactions themselves (retransmission of requests, Timer B, the ACK to a non-2xx final)
//! are the endpoint's, not this module's. What stays here is what RFC 3261 gives the TU:
//! digest retry (22.2: ACKed 407, then a new INVITE with the same Call-ID and From tag and
//! CSeq + 1, as seed figure D-4 shows), the ACK to a 2xx along the route set (13.2.2.4),
//! CANCEL only after a provisional (9.1), 2xx retransmission until the ACK (13.3.1.4), and
//! in-dialog requests with loose or strict routing (12.2.1.1, in [`super::route`]). The seed's
//! proxy writes a `Record-Route` without `lr`, so ACK and BYE then carry the proxy's URI as
//! Request-URI, its `maddr` kept, and our peer's Contact as the last Route (seed D-3 messages
//! 9 and 11, where the seed's ATA drops the `maddr`).
//!
//! Blind transfer (RFC 3515, RFC 5589 section 6): as transferor, [`Dialog::refer`] sends
//! REFER and the peer's NOTIFYs (`message/sipfrag` status lines) come out as
//! [`CallEvent::ReferProgress`]; as transferee, a REFER is answered 202 and announced as
//! [`CallEvent::Referred`], and the actor reports the new call's progress with
//! [`Dialog::notify_refer`]. The implicit subscription lives inside the INVITE dialog and
//! ends with the final NOTIFY (`Subscription-State: terminated`).
//!
//! This file holds the dialog's state, its outputs and its timer; the rest is split by
//! concern: `dialog/create.rs` (the INVITE sent or received, its responses, CANCEL, the ACK
//! to a 2xx, both route sets, ring/accept/reject), `dialog/in_dialog.rs` (the peer's requests
//! inside the dialog, ours addressed along the route set, BYE), `dialog/reinvite.rs` (hold and
//! resume), `dialog/refer.rs` (blind transfer) and `dialog/failover.rs` (a host name as next
//! hop: its lookup, and a request sent again to the next address, RFC 3263 section 4.3).

mod create;
mod failover;
mod in_dialog;
mod refer;
mod reinvite;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialtone_sip::{Message, Method};
use rand::rngs::StdRng;

use super::hops::NextHops;
use crate::auth::{AuthHeader, DigestUser};
use crate::error::{AtaError, Unusable};
use crate::identity::LineIdentity;
use failover::InFlight;

/// The endpoint's handle for a server transaction we must answer in.
pub type TxnId = u64;

/// T2 for our 2xx retransmissions (RFC 3261 13.3.1.4 and 17.1.1.1); their T1 is the line's
/// (`--t1-ms`, [`OutgoingCall::t1`]).
const T2: Duration = Duration::from_secs(4);

/// How many digest challenges one INVITE may meet before the call fails.
const MAX_CHALLENGES: u32 = 2;

/// How many redirects (3xx) a call follows before it fails: enough for a forward of a
/// forward, few enough that two lines forwarding to each other stop.
const MAX_REDIRECTS: u32 = 3;

/// Where the call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// UAC: INVITE sent, nothing heard yet.
    Inviting,
    /// UAC: a provisional came; CANCEL is possible.
    Proceeding,
    /// UAS: INVITE received, 100 sent.
    Offered,
    /// UAS: 180 sent.
    Ringing,
    /// UAS: 200 sent, waiting for the ACK.
    Accepted,
    /// The dialog is confirmed: media flows.
    Confirmed,
    /// We sent BYE or CANCEL and wait for its end.
    Ending,
    /// Over.
    Terminated,
}

/// What the call actor hears from the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// UAC: a provisional above 100 (180 ringing, 183 with early media).
    Progress {
        /// The status.
        status: u16,
        /// Its SDP, if any.
        sdp: Option<Vec<u8>>,
    },
    /// UAC: the 2xx came and was ACKed.
    Answered {
        /// The answer SDP.
        sdp: Option<Vec<u8>>,
    },
    /// UAS: the ACK to our 2xx came.
    Confirmed,
    /// UAC: the call failed with this final status (408 for no answer at all).
    Failed {
        /// The status.
        status: u16,
    },
    /// UAS: the caller cancelled before we answered.
    Cancelled,
    /// The far end hung up (BYE).
    RemoteHangup,
    /// An in-dialog offer (re-INVITE) waits for [`Dialog::answer_reinvite`].
    Reoffer {
        /// The offer, if the re-INVITE carried one.
        sdp: Option<Vec<u8>>,
    },
    /// Our re-INVITE was answered.
    ReofferAnswered {
        /// The answer.
        sdp: Option<Vec<u8>>,
    },
    /// Transferee: the peer asked us (202 sent) to call `target` (a Refer-To URI).
    Referred {
        /// The URI to call.
        target: String,
        /// The Refer-To's `Replaces` header (an attended transfer, RFC 3891), unescaped.
        replaces: Option<String>,
    },
    /// Transferor: our REFER was refused (a final status other than 2xx).
    ReferRefused {
        /// The status.
        status: u16,
    },
    /// Transferor: a NOTIFY told how the transferee's call goes (`message/sipfrag`).
    ReferProgress {
        /// The status line's code.
        status: u16,
        /// Whether this NOTIFY ended the subscription (its final report).
        terminated: bool,
    },
    /// The dialog is over; always the last event.
    Terminated,
}

/// What the call actor must do for the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start a client transaction with this request.
    Request {
        /// The request.
        bytes: Vec<u8>,
        /// The next hop.
        destination: SocketAddr,
    },
    /// Send outside any transaction (the ACK to a 2xx, RFC 3261 17.1.1.3).
    Stateless {
        /// The message.
        bytes: Vec<u8>,
        /// The next hop.
        destination: SocketAddr,
    },
    /// Send a response in a server transaction the endpoint holds.
    Response {
        /// The transaction.
        txn: TxnId,
        /// The status.
        status: u16,
        /// The response.
        bytes: Vec<u8>,
    },
    /// Tell the call actor.
    Event(CallEvent),
}

/// An outgoing call's inputs.
#[derive(Debug, Clone)]
pub struct OutgoingCall {
    /// The calling line.
    pub identity: LineIdentity,
    /// Request-URI and To of the INVITE.
    pub target: String,
    /// The first hop (the outbound proxy, or the callee itself).
    pub destination: SocketAddr,
    /// Credentials for 401/407.
    pub user: DigestUser,
    /// The SDP offer.
    pub offer: Vec<u8>,
    /// Hide our identity: an anonymous From and `Privacy: id` (RFC 3323, RFC 3325).
    pub anonymous: bool,
    /// A `Replaces` value (RFC 3891): this call takes the place of that dialog.
    pub replaces: Option<String>,
    /// Seed for tags and branches.
    pub seed: u64,
    /// RFC 3261 T1 (`--t1-ms`): our 2xx is resent at T1, 2 T1 ... and the call ended after
    /// 64 T1 without an ACK (13.3.1.4), on the same clock as the transactions'.
    pub t1: Duration,
}

/// The identifiers of a dialog, for a `Replaces` header naming it (RFC 3891 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogIds {
    /// The Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// The peer's address-of-record URI (To of our call, From of theirs).
    pub remote_uri: String,
}

/// An incoming call's inputs.
#[derive(Debug, Clone)]
pub struct IncomingCall {
    /// The called line.
    pub identity: LineIdentity,
    /// The INVITE's server transaction.
    pub txn: TxnId,
    /// The INVITE.
    pub request: Vec<u8>,
    /// Where it came from (next hop for in-dialog requests when the Contact is not an IP).
    pub source: SocketAddr,
    /// Seed for tags and branches.
    pub seed: u64,
    /// RFC 3261 T1 (`--t1-ms`): our 2xx is resent at T1, 2 T1 ... and the call ended after
    /// 64 T1 without an ACK (13.3.1.4), on the same clock as the transactions'.
    pub t1: Duration,
}

#[derive(Debug, Clone)]
struct SentInvite {
    /// The INVITE as sent, from which its CANCEL is built (RFC 3261 9.1).
    request: Vec<u8>,
    request_uri: String,
    cseq: u32,
    destination: SocketAddr,
    body: Vec<u8>,
    auth: Option<AuthHeader>,
}

#[derive(Debug, Clone)]
struct PendingOk {
    txn: TxnId,
    bytes: Vec<u8>,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

impl PendingOk {
    /// Our 2xx `bytes` in `txn`, sent at `now`: resent from `t1` on until the ACK comes.
    fn new(txn: TxnId, bytes: Vec<u8>, now: Instant, t1: Duration) -> PendingOk {
        PendingOk {
            txn,
            bytes,
            interval: t1,
            next: now + t1,
            give_up: now + t1 * 64,
        }
    }
}

/// One call's dialog. See the module docs.
#[derive(Debug)]
pub struct Dialog {
    phase: Phase,
    /// RFC 3261 T1 for our 2xx retransmissions ([`OutgoingCall::t1`]).
    t1: Duration,
    identity: LineIdentity,
    call_id: String,
    local_tag: String,
    /// Our From (UAC) or To (UAS) value, tag included.
    local_header: String,
    /// The peer's To (UAC) or From (UAS) value, tag included once known.
    remote_header: String,
    remote_tag: Option<String>,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    route_set: Vec<String>,
    fallback: SocketAddr,
    user: DigestUser,
    invite: Option<SentInvite>,
    challenges: u32,
    cancel_pending: bool,
    bye_pending: bool,
    invite_txn: Option<TxnId>,
    invite_request: Vec<u8>,
    /// Headers our INVITE carries beyond the usual ones (Privacy, Replaces...), kept for its
    /// digest retry.
    invite_headers: Vec<(&'static str, String)>,
    redirects: u32,
    pending_ok: Option<PendingOk>,
    reinvite_txn: Option<(TxnId, Vec<u8>)>,
    reinvite_cseq: Option<u32>,
    refer_cseq: Option<u32>,
    /// The addresses of the next hop's host name, once resolved.
    hops: NextHops,
    /// Our in-dialog requests awaiting a final response, to send again elsewhere.
    in_flight: Vec<InFlight>,
    outputs: VecDeque<Output>,
    rng: StdRng,
}

impl Dialog {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our tag, which the endpoint uses to route in-dialog requests here.
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The peer's URI (From of an incoming call, To of an outgoing one), for display.
    pub fn remote_party(&self) -> &str {
        &self.remote_header
    }

    /// The dialog's identifiers, once the peer's tag is known.
    pub fn ids(&self) -> Option<DialogIds> {
        let header = self.remote_header.as_str();
        let remote_uri = match (header.find('<'), header.find('>')) {
            (Some(start), Some(end)) if start < end => &header[start + 1..end],
            _ => header.split(';').next().unwrap_or(header),
        };
        Some(DialogIds {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
            remote_tag: self.remote_tag.clone()?,
            remote_uri: remote_uri.trim().to_owned(),
        })
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Dialog::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_ok.as_ref().map(|p| p.next.min(p.give_up))
    }

    /// A response to one of our client transactions: the INVITE's (or a re-INVITE's), the
    /// BYE's, the REFER's.
    pub fn handle_response(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
        let status = response
            .status()
            .ok_or(AtaError::Unusable(Unusable::NotAResponse))?;
        let cseq = response.cseq()?;
        if status >= 200 && self.settle_in_flight(cseq.method.as_str(), cseq.seq, status) {
            return Ok(());
        }
        match cseq.method {
            Method::Invite if Some(cseq.seq) == self.reinvite_cseq => {
                self.on_reinvite_response(status, response)
            }
            Method::Invite => self.on_invite_response(status, cseq.seq, response),
            Method::Bye if status >= 200 => {
                self.terminate();
                Ok(())
            }
            Method::Refer if Some(cseq.seq) == self.refer_cseq && status >= 200 => {
                self.refer_cseq = None;
                if status >= 300 {
                    self.event(CallEvent::ReferRefused { status });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Our client transaction for `method` ended without a final response (Timer B or F:
    /// `status` 408; transport error: 503).
    pub fn handle_transaction_failure(&mut self, method: &str, status: u16) {
        if self.retry_elsewhere(method, None) {
            return;
        }
        match (method, self.phase) {
            ("INVITE", Phase::Inviting | Phase::Proceeding) => {
                self.event(CallEvent::Failed { status });
                self.terminate();
            }
            ("INVITE", Phase::Ending) => self.terminate(),
            ("INVITE", _) => self.reinvite_cseq = None,
            ("BYE", _) => self.terminate(),
            ("REFER", _) => {
                self.refer_cseq = None;
                self.event(CallEvent::ReferRefused { status });
            }
            _ => {}
        }
    }

    /// Fires the 2xx retransmission timer (RFC 3261 13.3.1.4): resend at T1, 2 T1 ... up to
    /// T2; after 64 T1 without an ACK, end the call with a BYE.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(pending) = self.pending_ok.as_mut() else {
            return;
        };
        if now >= pending.give_up {
            self.pending_ok = None;
            if self.phase == Phase::Accepted {
                self.phase = Phase::Confirmed;
                self.event(CallEvent::RemoteHangup);
                self.send_bye();
            }
            return;
        }
        if now >= pending.next {
            pending.interval = (pending.interval * 2).min(T2);
            pending.next = now + pending.interval;
            let resend = Output::Response {
                txn: pending.txn,
                status: 200,
                bytes: pending.bytes.clone(),
            };
            self.outputs.push_back(resend);
        }
    }

    fn event(&mut self, event: CallEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn terminate(&mut self) {
        if self.phase != Phase::Terminated {
            self.phase = Phase::Terminated;
            self.pending_ok = None;
            self.event(CallEvent::Terminated);
        }
    }
}

fn sdp_body(message: &Message<'_>) -> Option<Vec<u8>> {
    let body = message.body();
    let is_sdp = message
        .content_type()
        .is_none_or(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    (!body.is_empty() && is_sdp).then(|| body.to_vec())
}

#[cfg(test)]
#[path = "dialog_tests.rs"]
mod tests;
