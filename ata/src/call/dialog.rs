//! One call's SIP dialog, as a UAC or a UAS, sans-IO (RFC 3261 sections 12 to 15).
//!
//! The call actor (`call::actor`) owns one [`Dialog`]. It feeds in responses to our client
//! transactions ([`Dialog::handle_response`]), requests the endpoint routed to this dialog
//! ([`Dialog::handle_request`]), transaction failures, the user's actions (hang up, ring,
//! answer, reject) and its timer, always with `now`; and it drains [`Dialog::poll_output`]:
//! requests for new client transactions, stateless sends (ACK to a 2xx), responses for server
//! transactions the endpoint holds, and [`CallEvent`]s. SDP bodies pass through as bytes: the
//! actor does offer/answer with `dialtone-sdp`.
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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialtone_sip::{Message, Method, NameAddr, RequestBuilder, ResponseBuilder};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::route::{next_hop, route_plan};
use crate::auth::{answer_challenge, AuthHeader, DigestUser};
use crate::error::{AtaError, Unusable};
use crate::identity::{self, LineIdentity, ALLOW, USER_AGENT};

/// The endpoint's handle for a server transaction we must answer in.
pub type TxnId = u64;

/// T1 and T2 for our 2xx retransmissions (RFC 3261 13.3.1.4 and 17.1.1.1).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);

/// How many digest challenges one INVITE may meet before the call fails.
const MAX_CHALLENGES: u32 = 2;

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
    /// Seed for tags and branches.
    pub seed: u64,
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
}

#[derive(Debug, Clone)]
struct SentInvite {
    request_uri: String,
    via: String,
    to: String,
    cseq: u32,
    destination: SocketAddr,
    routes: Vec<String>,
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

/// One call's dialog. See the module docs.
#[derive(Debug)]
pub struct Dialog {
    phase: Phase,
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
    pending_ok: Option<PendingOk>,
    reinvite_txn: Option<(TxnId, Vec<u8>)>,
    reinvite_cseq: Option<u32>,
    refer_cseq: Option<u32>,
    outputs: VecDeque<Output>,
    rng: StdRng,
}

impl Dialog {
    /// Starts an outgoing call: builds and queues the INVITE.
    pub fn outgoing(call: OutgoingCall) -> Dialog {
        let mut rng = StdRng::seed_from_u64(call.seed);
        let call_id = identity::new_call_id(&mut rng, call.identity.local);
        let local_tag = identity::new_tag(&mut rng);
        let local_header = format!("{};tag={local_tag}", call.identity.from_value());
        let remote_header = format!("<{}>", call.target);
        let mut dialog = Dialog {
            phase: Phase::Inviting,
            call_id,
            local_tag,
            local_header,
            remote_header,
            remote_tag: None,
            local_cseq: 0,
            remote_cseq: None,
            remote_target: call.target.clone(),
            route_set: Vec::new(),
            fallback: call.destination,
            user: call.user,
            invite: None,
            challenges: 0,
            cancel_pending: false,
            bye_pending: false,
            invite_txn: None,
            invite_request: Vec::new(),
            pending_ok: None,
            reinvite_txn: None,
            reinvite_cseq: None,
            refer_cseq: None,
            outputs: VecDeque::new(),
            rng,
            identity: call.identity,
        };
        dialog.send_invite(call.target, call.destination, call.offer, None);
        dialog
    }

    /// Accepts an incoming INVITE as a new dialog and answers 100 Trying. Fails when the
    /// INVITE lacks what a dialog needs (the caller then answers 400).
    pub fn incoming(call: IncomingCall) -> Result<Dialog, AtaError> {
        let mut rng = StdRng::seed_from_u64(call.seed);
        let message = Message::parse(&call.request)?;
        let from = message.from()?;
        let remote_tag = from
            .tag()
            .ok_or(AtaError::Unusable(Unusable::InviteWithoutFromTag))?
            .to_owned();
        let to_value = message
            .header_value_by_name("To")
            .ok_or(AtaError::Unusable(Unusable::InviteWithoutTo))?;
        let contact = match message.contacts()? {
            dialtone_sip::Contacts::List(list) => {
                list.first()
                    .map(|c| c.uri.as_str().to_owned())
                    .ok_or(AtaError::Unusable(Unusable::InviteWithoutContact))?
            }
            dialtone_sip::Contacts::Wildcard => {
                return Err(AtaError::Unusable(Unusable::InviteWithWildcardContact))
            }
        };
        // RFC 3261 12.1.1: the UAS's route set is the Record-Route list in order.
        let route_set = message
            .record_routes()?
            .iter()
            .map(|r| r.uri.as_str().to_owned())
            .collect();
        let local_tag = identity::new_tag(&mut rng);
        let mut dialog = Dialog {
            phase: Phase::Offered,
            call_id: message.call_id()?.to_owned(),
            local_header: format!("{to_value};tag={local_tag}"),
            local_tag,
            remote_header: message
                .header_value_by_name("From")
                .unwrap_or_default()
                .to_owned(),
            remote_tag: Some(remote_tag),
            local_cseq: 0,
            remote_cseq: Some(message.cseq()?.seq),
            remote_target: contact,
            route_set,
            fallback: call.source,
            user: DigestUser {
                username: String::new(),
                password: String::new(),
            },
            invite: None,
            challenges: 0,
            cancel_pending: false,
            bye_pending: false,
            invite_txn: Some(call.txn),
            invite_request: call.request,
            pending_ok: None,
            reinvite_txn: None,
            reinvite_cseq: None,
            refer_cseq: None,
            outputs: VecDeque::new(),
            rng,
            identity: call.identity,
        };
        dialog.respond_invite(100, "Trying", None, false);
        Ok(dialog)
    }

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

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Dialog::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending_ok.as_ref().map(|p| p.next.min(p.give_up))
    }

    /// UAS: alert the caller (180 Ringing).
    pub fn ring(&mut self) {
        if self.phase == Phase::Offered {
            self.respond_invite(180, "Ringing", None, true);
            self.phase = Phase::Ringing;
        }
    }

    /// UAS: answer with our SDP (200 OK), and retransmit it until the ACK.
    pub fn accept(&mut self, now: Instant, sdp: Vec<u8>) {
        if !matches!(self.phase, Phase::Offered | Phase::Ringing) {
            return;
        }
        let Some(txn) = self.invite_txn else {
            return;
        };
        let bytes = self.build_invite_response(200, "OK", Some(&sdp), true);
        self.outputs.push_back(Output::Response {
            txn,
            status: 200,
            bytes: bytes.clone(),
        });
        self.pending_ok = Some(PendingOk {
            txn,
            bytes,
            interval: T1,
            next: now + T1,
            give_up: now + T1 * 64,
        });
        self.phase = Phase::Accepted;
    }

    /// UAS: refuse the call (486 busy, 488 no codec, 603 declined...).
    pub fn reject(&mut self, status: u16, reason: &str) {
        if !matches!(self.phase, Phase::Offered | Phase::Ringing) {
            return;
        }
        self.respond_invite(status, reason, None, true);
        self.terminate();
    }

    /// The user hangs up: CANCEL, BYE or nothing, depending on the phase.
    pub fn hang_up(&mut self) {
        match self.phase {
            // RFC 3261 9.1: no CANCEL before a provisional; send it when one comes.
            Phase::Inviting => self.cancel_pending = true,
            Phase::Proceeding => self.send_cancel(),
            Phase::Offered | Phase::Ringing => {
                self.respond_invite(603, "Decline", None, true);
                self.terminate();
            }
            // RFC 3261 15: the callee may not send BYE before the ACK arrives.
            Phase::Accepted => self.bye_pending = true,
            Phase::Confirmed => self.send_bye(),
            Phase::Ending | Phase::Terminated => {}
        }
    }

    /// Sends a re-INVITE with `sdp` (hold or resume, RFC 3264 section 8).
    pub fn reinvite(&mut self, sdp: Vec<u8>) {
        if self.phase != Phase::Confirmed || self.reinvite_cseq.is_some() {
            return;
        }
        self.local_cseq += 1;
        self.reinvite_cseq = Some(self.local_cseq);
        let contact = format!("<{}>", self.identity.contact_uri());
        let (builder, destination) = self.in_dialog_request("INVITE", self.local_cseq);
        let bytes = builder
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .body("application/sdp", &sdp)
            .build();
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    /// Answers the re-INVITE announced by [`CallEvent::Reoffer`].
    pub fn answer_reinvite(&mut self, now: Instant, sdp: Option<Vec<u8>>, status: u16) {
        let Some((txn, request)) = self.reinvite_txn.take() else {
            return;
        };
        let Ok(message) = Message::parse(&request) else {
            return;
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Not Acceptable Here"
        };
        let mut builder = ResponseBuilder::for_request(&message, status, reason)
            .header("Contact", &format!("<{}>", self.identity.contact_uri()))
            .header("Server", USER_AGENT);
        if let Some(sdp) = &sdp {
            builder = builder.body("application/sdp", sdp);
        }
        let bytes = builder.build();
        self.outputs.push_back(Output::Response {
            txn,
            status,
            bytes: bytes.clone(),
        });
        if status == 200 {
            self.pending_ok = Some(PendingOk {
                txn,
                bytes,
                interval: T1,
                next: now + T1,
                give_up: now + T1 * 64,
            });
        }
    }

    /// Transferor: asks the peer to call `target` (REFER, RFC 3515 section 2.4.1).
    pub fn refer(&mut self, target: &str) {
        if self.phase != Phase::Confirmed || self.refer_cseq.is_some() {
            return;
        }
        self.local_cseq += 1;
        self.refer_cseq = Some(self.local_cseq);
        let contact = format!("<{}>", self.identity.contact_uri());
        let referred_by = format!("<{}>", self.identity.aor());
        let (builder, destination) = self.in_dialog_request("REFER", self.local_cseq);
        let bytes = builder
            .header("Refer-To", &format!("<{target}>"))
            .header("Referred-By", &referred_by)
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .build();
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    /// Transferee: reports the referred call's progress to the transferor in a NOTIFY
    /// (RFC 3515 section 2.4.4); a `status` of 200 or more is the final one and ends the
    /// implicit subscription.
    pub fn notify_refer(&mut self, status: u16, reason: &str) {
        if !matches!(self.phase, Phase::Confirmed | Phase::Ending) {
            return;
        }
        self.local_cseq += 1;
        let state = if status >= 200 {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let contact = format!("<{}>", self.identity.contact_uri());
        let (builder, destination) = self.in_dialog_request("NOTIFY", self.local_cseq);
        let bytes = builder
            .header("Event", "refer")
            .header("Subscription-State", state)
            .header("Contact", &contact)
            .body(
                "message/sipfrag;version=2.0",
                format!("SIP/2.0 {status} {reason}\r\n").as_bytes(),
            )
            .build();
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    pub fn handle_response(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
        let status = response
            .status()
            .ok_or(AtaError::Unusable(Unusable::NotAResponse))?;
        let cseq = response.cseq()?;
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

    /// A request the endpoint routed to this dialog. `txn` is its server transaction, `None`
    /// for an ACK to our 2xx (which has none).
    pub fn handle_request(
        &mut self,
        txn: Option<TxnId>,
        request: &Message<'_>,
        bytes: &[u8],
    ) -> Result<(), AtaError> {
        let method = request
            .method()
            .ok_or(AtaError::Unusable(Unusable::NotARequest))?;
        let cseq = request.cseq()?;
        if method == Method::Ack {
            if self.pending_ok.take().is_some() && self.phase == Phase::Accepted {
                self.phase = Phase::Confirmed;
                self.event(CallEvent::Confirmed);
                if self.bye_pending {
                    self.send_bye();
                }
            }
            return Ok(());
        }
        let Some(txn) = txn else {
            return Err(AtaError::Unusable(Unusable::NoServerTransaction));
        };
        if method == Method::Cancel {
            self.respond(txn, request, 200, "OK", None);
            if matches!(self.phase, Phase::Offered | Phase::Ringing) {
                self.respond_invite(487, "Request Terminated", None, true);
                self.event(CallEvent::Cancelled);
                self.terminate();
            }
            return Ok(());
        }
        // RFC 3261 12.2.2: a CSeq lower than the last one is out of order.
        if self.remote_cseq.is_some_and(|last| cseq.seq < last) {
            self.respond(txn, request, 500, "Server Internal Error", None);
            return Ok(());
        }
        self.remote_cseq = Some(cseq.seq);
        match method {
            Method::Bye => {
                self.respond(txn, request, 200, "OK", None);
                if self.phase != Phase::Terminated {
                    self.event(CallEvent::RemoteHangup);
                    self.terminate();
                }
            }
            Method::Invite if self.phase == Phase::Confirmed => {
                if self.reinvite_txn.is_some() || self.reinvite_cseq.is_some() {
                    // RFC 3261 14.2: an offer crossing ours, or a second one pending.
                    self.respond(txn, request, 491, "Request Pending", None);
                } else {
                    self.reinvite_txn = Some((txn, bytes.to_vec()));
                    self.event(CallEvent::Reoffer {
                        sdp: sdp_body(request),
                    });
                }
            }
            Method::Invite => self.respond(txn, request, 491, "Request Pending", None),
            Method::Options => self.respond(txn, request, 200, "OK", None),
            Method::Refer => self.on_refer(txn, request),
            Method::Notify => self.on_notify(txn, request),
            Method::Info => self.respond(txn, request, 200, "OK", None),
            _ => self.respond(txn, request, 501, "Not Implemented", None),
        }
        Ok(())
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

    /// RFC 3515 section 2.4.2: accept with 202 and report the referred call by NOTIFY.
    fn on_refer(&mut self, txn: TxnId, request: &Message<'_>) {
        if self.phase != Phase::Confirmed {
            self.respond(txn, request, 481, "Call/Transaction Does Not Exist", None);
            return;
        }
        let target = request
            .header_value_by_name("Refer-To")
            .map(refer_target)
            .filter(|t| t.starts_with("sip:") || t.starts_with("sips:"));
        let Some(target) = target else {
            // Section 2.4.1: exactly one Refer-To, and we can only call SIP URIs.
            self.respond(txn, request, 400, "Bad Refer-To", None);
            return;
        };
        self.respond(txn, request, 202, "Accepted", None);
        self.event(CallEvent::Referred { target });
    }

    /// A NOTIFY in the dialog: for our REFER (`Event: refer`), its sipfrag says how the
    /// transferee's call goes; anything else is acknowledged and ignored.
    fn on_notify(&mut self, txn: TxnId, request: &Message<'_>) {
        self.respond(txn, request, 200, "OK", None);
        let event = request.header_value_by_name("Event").unwrap_or_default();
        let is_refer = event
            .split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        let status = sipfrag_status(request.body());
        if let (true, Some(status)) = (is_refer, status) {
            let terminated = request
                .header_value_by_name("Subscription-State")
                .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
            self.event(CallEvent::ReferProgress { status, terminated });
        }
    }

    fn on_invite_response(
        &mut self,
        status: u16,
        seq: u32,
        response: &Message<'_>,
    ) -> Result<(), AtaError> {
        let current = self.invite.as_ref().map(|i| i.cseq);
        if Some(seq) != current {
            return Ok(());
        }
        match status {
            100 => {
                if self.phase == Phase::Inviting {
                    self.phase = Phase::Proceeding;
                }
                if self.cancel_pending {
                    self.send_cancel();
                }
            }
            101..=199 => {
                if self.phase == Phase::Inviting {
                    self.phase = Phase::Proceeding;
                }
                if self.cancel_pending {
                    self.send_cancel();
                } else if self.phase == Phase::Proceeding {
                    self.event(CallEvent::Progress {
                        status,
                        sdp: sdp_body(response),
                    });
                }
            }
            200..=299 => self.on_invite_success(response)?,
            401 | 407 if self.phase != Phase::Ending && !self.cancel_pending => {
                self.on_invite_challenge(response)?
            }
            _ => {
                if !matches!(self.phase, Phase::Confirmed | Phase::Terminated) {
                    if self.phase != Phase::Ending && !self.cancel_pending {
                        self.event(CallEvent::Failed { status });
                    }
                    self.terminate();
                }
            }
        }
        Ok(())
    }

    fn on_invite_success(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
        let to = response.to()?;
        let tag = remote_tag_of(&to);
        if matches!(
            self.phase,
            Phase::Confirmed | Phase::Ending | Phase::Terminated
        ) {
            // A retransmitted 2xx: our ACK was lost (13.2.2.4). A 2xx from another fork
            // would need its own dialog; we keep only the first.
            if tag.as_deref() == self.remote_tag.as_deref() {
                self.send_ack();
            }
            return Ok(());
        }
        self.remote_tag = tag;
        self.remote_header = response
            .header_value_by_name("To")
            .unwrap_or_default()
            .to_owned();
        if let Ok(dialtone_sip::Contacts::List(list)) = response.contacts() {
            if let Some(contact) = list.first() {
                self.remote_target = contact.uri.as_str().to_owned();
            }
        }
        // RFC 3261 12.1.2: the UAC's route set is the Record-Route list reversed.
        self.route_set = response
            .record_routes()?
            .iter()
            .rev()
            .map(|r| r.uri.as_str().to_owned())
            .collect();
        self.phase = Phase::Confirmed;
        self.send_ack();
        if self.cancel_pending {
            // Our CANCEL lost the race with the 200 (9.1): end the call properly.
            self.send_bye();
        } else {
            self.event(CallEvent::Answered {
                sdp: sdp_body(response),
            });
        }
        Ok(())
    }

    fn on_invite_challenge(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
        let status = response.status().unwrap_or(401);
        let Some(invite) = self.invite.clone() else {
            return Ok(());
        };
        let cnonce = identity::new_cnonce(&mut self.rng);
        let answer = answer_challenge(response, &self.user, "INVITE", &invite.request_uri, &cnonce);
        let header = match answer {
            Ok(h) if self.challenges < MAX_CHALLENGES => h,
            Ok(_) => {
                self.event(CallEvent::Failed { status });
                self.terminate();
                return Ok(());
            }
            Err(e) => {
                self.event(CallEvent::Failed { status });
                self.terminate();
                return Err(e);
            }
        };
        self.challenges += 1;
        self.send_invite(
            invite.request_uri,
            invite.destination,
            invite.body,
            Some(header),
        );
        Ok(())
    }

    fn on_reinvite_response(
        &mut self,
        status: u16,
        response: &Message<'_>,
    ) -> Result<(), AtaError> {
        if status < 200 {
            return Ok(());
        }
        let seq = self.reinvite_cseq.take().unwrap_or(self.local_cseq);
        if (200..300).contains(&status) {
            let (builder, destination) = self.in_dialog_request_with_cseq("ACK", seq, "ACK");
            self.outputs.push_back(Output::Stateless {
                bytes: builder.build(),
                destination,
            });
            self.event(CallEvent::ReofferAnswered {
                sdp: sdp_body(response),
            });
        }
        Ok(())
    }

    fn send_invite(
        &mut self,
        request_uri: String,
        destination: SocketAddr,
        body: Vec<u8>,
        auth: Option<AuthHeader>,
    ) {
        // RFC 3261 22.2 and seed D-4: the retried INVITE keeps Call-ID and From tag, CSeq + 1.
        self.local_cseq += 1;
        let branch = identity::new_branch(&mut self.rng);
        let via = self.identity.via(&branch);
        let to = self.remote_header.clone();
        let mut builder = RequestBuilder::new("INVITE", &request_uri)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &self.local_header)
            .header("To", &to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} INVITE", self.local_cseq))
            .header("Contact", &format!("<{}>", self.identity.contact_uri()))
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        if let Some(auth) = &auth {
            builder = builder.header(auth.name, &auth.value);
        }
        let bytes = builder.body("application/sdp", &body).build();
        self.invite = Some(SentInvite {
            request_uri,
            via,
            to,
            cseq: self.local_cseq,
            destination,
            routes: Vec::new(),
            body,
            auth,
        });
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    fn send_cancel(&mut self) {
        self.cancel_pending = false;
        let Some(invite) = &self.invite else {
            return;
        };
        // RFC 3261 9.1: same Request-URI, Call-ID, To, From, CSeq number and top Via.
        let mut builder = RequestBuilder::new("CANCEL", &invite.request_uri)
            .header("Via", &invite.via)
            .header("Max-Forwards", "70")
            .header("From", &self.local_header)
            .header("To", &invite.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} CANCEL", invite.cseq))
            .header("User-Agent", USER_AGENT);
        for route in &invite.routes {
            builder = builder.header("Route", &format!("<{route}>"));
        }
        let destination = invite.destination;
        self.outputs.push_back(Output::Request {
            bytes: builder.build(),
            destination,
        });
        self.phase = Phase::Ending;
    }

    fn send_ack(&mut self) {
        let Some(invite) = &self.invite else {
            return;
        };
        let (seq, auth) = (invite.cseq, invite.auth.clone());
        let (mut builder, destination) = self.in_dialog_request_with_cseq("ACK", seq, "ACK");
        // RFC 3261 22.1: the ACK to a 2xx carries the INVITE's credentials.
        if let Some(auth) = auth {
            builder = builder.header(auth.name, &auth.value);
        }
        self.outputs.push_back(Output::Stateless {
            bytes: builder.build(),
            destination,
        });
    }

    fn send_bye(&mut self) {
        self.bye_pending = false;
        self.local_cseq += 1;
        let (builder, destination) = self.in_dialog_request("BYE", self.local_cseq);
        self.outputs.push_back(Output::Request {
            bytes: builder.build(),
            destination,
        });
        self.phase = Phase::Ending;
    }

    fn in_dialog_request(&mut self, method: &str, seq: u32) -> (RequestBuilder, SocketAddr) {
        self.in_dialog_request_with_cseq(method, seq, method)
    }

    /// Builds an in-dialog request with the route set (RFC 3261 12.2.1.1). Every request
    /// inside the dialog, the ACK to a 2xx included, is addressed here, so that none is
    /// routed by a rule of its own.
    fn in_dialog_request_with_cseq(
        &mut self,
        method: &str,
        seq: u32,
        cseq_method: &str,
    ) -> (RequestBuilder, SocketAddr) {
        let plan = route_plan(&self.route_set, &self.remote_target);
        let destination = next_hop(&plan.next_hop).unwrap_or(self.fallback);
        let branch = identity::new_branch(&mut self.rng);
        let mut builder = RequestBuilder::new(method, &plan.request_uri)
            .header("Via", &self.identity.via(&branch))
            .header("Max-Forwards", "70");
        for route in &plan.routes {
            builder = builder.header("Route", &format!("<{route}>"));
        }
        let builder = builder
            .header("From", &self.local_party_header())
            .header("To", &self.remote_party_header())
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{seq} {cseq_method}"))
            .header("User-Agent", USER_AGENT);
        (builder, destination)
    }

    fn local_party_header(&self) -> String {
        self.local_header.clone()
    }

    fn remote_party_header(&self) -> String {
        self.remote_header.clone()
    }

    fn respond_invite(&mut self, status: u16, reason: &str, body: Option<&[u8]>, tag: bool) {
        let Some(txn) = self.invite_txn else {
            return;
        };
        let bytes = self.build_invite_response(status, reason, body, tag);
        self.outputs
            .push_back(Output::Response { txn, status, bytes });
    }

    fn build_invite_response(
        &self,
        status: u16,
        reason: &str,
        body: Option<&[u8]>,
        tag: bool,
    ) -> Vec<u8> {
        let Ok(request) = Message::parse(&self.invite_request) else {
            return Vec::new();
        };
        let mut builder = ResponseBuilder::for_request(&request, status, reason);
        if tag {
            builder = builder.to_tag(&self.local_tag);
        }
        // RFC 3261 12.1.1: a dialog-creating response copies the Record-Route.
        if (101..300).contains(&status) {
            for value in request.values(dialtone_sip::HeaderName::RecordRoute) {
                builder = builder.header("Record-Route", value);
            }
            builder = builder.header("Contact", &format!("<{}>", self.identity.contact_uri()));
        }
        if status == 200 {
            builder = builder.header("Allow", ALLOW);
        }
        builder = builder.header("Server", USER_AGENT);
        if let Some(body) = body {
            builder = builder.body("application/sdp", body);
        }
        builder.build()
    }

    fn respond(
        &mut self,
        txn: TxnId,
        request: &Message<'_>,
        status: u16,
        reason: &str,
        body: Option<&[u8]>,
    ) {
        let mut builder = ResponseBuilder::for_request(request, status, reason)
            .to_tag(&self.local_tag)
            .header("Server", USER_AGENT);
        if status == 200 && request.method() == Some(Method::Options) {
            builder = builder
                .header("Allow", ALLOW)
                .header("Accept", "application/sdp");
        }
        if let Some(body) = body {
            builder = builder.body("application/sdp", body);
        }
        self.outputs.push_back(Output::Response {
            txn,
            status,
            bytes: builder.build(),
        });
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

/// The To tag of a response. The seed's ATA (D-3 message 8) writes it inside the angle
/// brackets, where it parses as a URI parameter; we accept it there too.
fn remote_tag_of(to: &NameAddr<'_>) -> Option<String> {
    to.tag()
        .or_else(|| to.uri.as_sip().and_then(|u| u.params.get("tag").flatten()))
        .map(str::to_owned)
}

/// The URI of a Refer-To value (`<sip:...>` or a bare URI), without its header parameters
/// (`?Replaces=...` is for attended transfer, which we do not do).
fn refer_target(value: &str) -> String {
    let value = value.trim();
    let uri = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value),
    };
    uri.split('?').next().unwrap_or(uri).trim().to_owned()
}

/// The status code of a `message/sipfrag` body's status line (`SIP/2.0 200 OK`).
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    parts.next()?.parse().ok()
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
