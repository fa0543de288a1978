//! Creating the dialog and its route set (RFC 3261 12.1): the INVITE we send and what its
//! responses do (provisional, 2xx with the UAC's route set, digest retry, failure), the
//! CANCEL and the ACK to a 2xx; an INVITE we receive (the UAS's route set) and how the
//! subscriber answers it (ring, accept, reject), and hanging up before the dialog is
//! confirmed.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use dialtone_sip::{Message, NameAddr, RequestBuilder, ResponseBuilder};
use dialtone_transaction::cancel_for;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{
    sdp_body, CallEvent, Dialog, IncomingCall, OutgoingCall, Output, PendingOk, Phase, SentInvite,
    MAX_CHALLENGES, MAX_REDIRECTS,
};
use crate::auth::{answer_challenge, AuthHeader, DigestUser};
use crate::error::{AtaError, Unusable};
use crate::identity::{self, ALLOW, USER_AGENT};

impl Dialog {
    /// Starts an outgoing call: builds and queues the INVITE.
    pub fn outgoing(call: OutgoingCall) -> Dialog {
        let mut rng = StdRng::seed_from_u64(call.seed);
        let call_id = identity::new_call_id(&mut rng, call.identity.local);
        let local_tag = identity::new_tag(&mut rng);
        // RFC 3323 section 4.1.1.3: an anonymous From; RFC 3325 section 9.1: who we are,
        // for the proxy to assert, in P-Preferred-Identity.
        let from = if call.anonymous {
            ANONYMOUS_FROM.to_owned()
        } else {
            call.identity.from_value()
        };
        let local_header = format!("{from};tag={local_tag}");
        let remote_header = format!("<{}>", call.target);
        let mut invite_headers = Vec::new();
        if call.anonymous {
            invite_headers.push(("Privacy", "id".to_owned()));
            invite_headers.push(("P-Preferred-Identity", format!("<{}>", call.identity.aor())));
        }
        if let Some(replaces) = call.replaces {
            // RFC 3891 section 6.1: the UA includes Replaces and requires its support.
            invite_headers.push(("Replaces", replaces));
            invite_headers.push(("Require", "replaces".to_owned()));
        }
        let mut dialog = Dialog {
            phase: Phase::Inviting,
            t1: call.t1,
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
            invite_headers,
            redirects: 0,
            pending_ok: None,
            reinvite_txn: None,
            reinvite_cseq: None,
            refer_cseq: None,
            hops: Default::default(),
            in_flight: Vec::new(),
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
            t1: call.t1,
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
            invite_headers: Vec::new(),
            redirects: 0,
            pending_ok: None,
            reinvite_txn: None,
            reinvite_cseq: None,
            refer_cseq: None,
            hops: Default::default(),
            in_flight: Vec::new(),
            outputs: VecDeque::new(),
            rng,
            identity: call.identity,
        };
        dialog.respond_invite(100, "Trying", None, false);
        Ok(dialog)
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
        self.pending_ok = Some(PendingOk::new(txn, bytes, now, self.t1));
        self.phase = Phase::Accepted;
    }

    /// UAS: redirect the call (302, RFC 3261 21.3.3) to `target` in Contact, with a
    /// `Diversion` header saying who diverted it and why (RFC 5806: `unconditional`,
    /// `user-busy`, `no-answer`).
    pub fn redirect(&mut self, target: &str, reason: &str) {
        if !matches!(self.phase, Phase::Offered | Phase::Ringing) {
            return;
        }
        let Some(txn) = self.invite_txn else {
            return;
        };
        let Ok(request) = Message::parse(&self.invite_request) else {
            return;
        };
        let diversion = format!("<{}>;reason={reason};counter=1", self.identity.aor());
        let bytes = ResponseBuilder::for_request(&request, 302, "Moved Temporarily")
            .to_tag(&self.local_tag)
            .header("Contact", &format!("<{target}>"))
            .header("Diversion", &diversion)
            .header("Server", USER_AGENT)
            .build();
        self.outputs.push_back(Output::Response {
            txn,
            status: 302,
            bytes,
        });
        self.terminate();
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

    pub(super) fn on_invite_response(
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
            300..=399 if self.phase != Phase::Ending && !self.cancel_pending => {
                self.on_invite_redirect(status, response)
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

    pub(super) fn on_invite_success(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
        let to = response.to()?;
        let tag = remote_tag_of(&to);
        // A UAC learns the remote tag from its first 2xx: ending without one, we sent a
        // CANCEL, and this 200 crossed it (9.1). The call is up at the callee, who resends
        // the 200 until it is acknowledged: it gets its ACK and a BYE, not silence.
        let crossed_our_cancel = self.phase == Phase::Ending && self.remote_tag.is_none();
        if !crossed_our_cancel
            && matches!(
                self.phase,
                Phase::Confirmed | Phase::Ending | Phase::Terminated
            )
        {
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
        if self.cancel_pending || crossed_our_cancel {
            // Our CANCEL lost the race with the 200 (9.1), or the user hung up before a
            // provisional let us send one: end the call properly.
            self.send_bye();
        } else {
            self.event(CallEvent::Answered {
                sdp: sdp_body(response),
            });
        }
        Ok(())
    }

    /// RFC 3261 8.1.3.4: a redirect's Contact is the new target; the new INVITE keeps
    /// Call-ID, From and To with CSeq + 1 and carries the Diversion headers the redirect had
    /// (RFC 5806 section 4), so the new callee sees who forwarded the call and why.
    fn on_invite_redirect(&mut self, status: u16, response: &Message<'_>) {
        let contact = match response.contacts() {
            Ok(dialtone_sip::Contacts::List(list)) => list
                .first()
                .map(|c| c.uri.as_str().to_owned())
                .filter(|uri| uri.starts_with("sip:") || uri.starts_with("sips:")),
            _ => None,
        };
        let (Some(contact), Some(invite)) = (contact, self.invite.clone()) else {
            self.event(CallEvent::Failed { status });
            self.terminate();
            return;
        };
        if self.redirects >= MAX_REDIRECTS {
            self.event(CallEvent::Failed { status });
            self.terminate();
            return;
        }
        self.redirects += 1;
        self.challenges = 0;
        let diversions = response
            .headers()
            .iter()
            .filter(|h| h.raw_name.eq_ignore_ascii_case("Diversion"));
        for header in diversions {
            self.invite_headers
                .push(("Diversion", header.value.trim().to_owned()));
        }
        self.remote_target = contact.clone();
        self.send_invite(contact, invite.destination, invite.body, None);
    }

    pub(super) fn on_invite_challenge(&mut self, response: &Message<'_>) -> Result<(), AtaError> {
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

    pub(super) fn send_invite(
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
        let mut builder = RequestBuilder::new("INVITE", &request_uri)
            .header("Via", &via)
            .header("Max-Forwards", "70")
            .header("From", &self.local_header)
            .header("To", &self.remote_header)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} INVITE", self.local_cseq))
            .header("Contact", &format!("<{}>", self.identity.contact_uri()))
            .header("Allow", ALLOW)
            .header("User-Agent", USER_AGENT);
        for (name, value) in &self.invite_headers {
            builder = builder.header(name, value);
        }
        if let Some(auth) = &auth {
            builder = builder.header(auth.name, &auth.value);
        }
        let bytes = builder.body("application/sdp", &body).build();
        self.invite = Some(SentInvite {
            request: bytes.clone(),
            request_uri,
            cseq: self.local_cseq,
            destination,
            body,
            auth,
        });
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    pub(super) fn send_cancel(&mut self) {
        self.cancel_pending = false;
        let Some(invite) = &self.invite else {
            return;
        };
        // RFC 3261 9.1: same Request-URI, Call-ID, To, From, CSeq number, top Via and Route.
        let cancel = Message::parse(&invite.request)
            .ok()
            .and_then(|sent| cancel_for(&sent));
        if let Some(builder) = cancel {
            self.outputs.push_back(Output::Request {
                bytes: builder.header("User-Agent", USER_AGENT).build(),
                destination: invite.destination,
            });
        }
        self.phase = Phase::Ending;
    }

    pub(super) fn send_ack(&mut self) {
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

    pub(super) fn respond_invite(
        &mut self,
        status: u16,
        reason: &str,
        body: Option<&[u8]>,
        tag: bool,
    ) {
        let Some(txn) = self.invite_txn else {
            return;
        };
        let bytes = self.build_invite_response(status, reason, body, tag);
        self.outputs
            .push_back(Output::Response { txn, status, bytes });
    }

    pub(super) fn build_invite_response(
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
}

/// The From of a call that hides its caller (RFC 3323 section 4.1.1.3).
pub const ANONYMOUS_FROM: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// The To tag of a response. The seed's ATA (D-3 message 8) writes it inside the angle
/// brackets, where it parses as a URI parameter; we accept it there too.
pub(super) fn remote_tag_of(to: &NameAddr<'_>) -> Option<String> {
    to.tag()
        .or_else(|| to.uri.as_sip().and_then(|u| u.params.get("tag").flatten()))
        .map(str::to_owned)
}
