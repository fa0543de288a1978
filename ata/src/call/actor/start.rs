//! How a call starts: an outgoing call opens its media and sends its INVITE; an incoming one
//! becomes a dialog and is first answered as its [`Reception`] says (ring, refuse, redirect,
//! or answer at once for an INVITE with Replaces), with 400 for an INVITE a dialog cannot be
//! made of and 488 for an offer we cannot answer.

use std::net::SocketAddr;

use actix::prelude::*;
use dialtone_sip::{Message, Method, ResponseBuilder};
use rand::Rng;
use tracing::info;

use super::{CallActor, Dialled, Reception};
use crate::call::dialog::{Dialog, IncomingCall, OutgoingCall, Phase};
use crate::call::negotiator::Negotiator;
use crate::endpoint::{ClientEvent, NewCall, RouteDialog, SendResponse};
use crate::error::AtaError;

impl CallActor {
    pub(super) fn begin_outgoing(
        &mut self,
        ctx: &mut Context<Self>,
        dialled: Dialled,
    ) -> Result<(), AtaError> {
        let proxy = self.context.proxy.ok_or(AtaError::NoProxy)?;
        self.open_media()?;
        let session_id: u64 = rand::thread_rng().gen_range(1..1_000_000_000);
        let offer = self.sdp.offer(session_id)?;
        let target = self.target_uri(&dialled.number);
        let dialog = Dialog::outgoing(OutgoingCall {
            identity: self.context.identity.clone(),
            target,
            destination: proxy,
            user: self.context.user.clone(),
            offer,
            anonymous: dialled.anonymous,
            replaces: dialled.replaces,
            seed: rand::thread_rng().gen(),
            t1: self.context.t1,
        });
        self.route(ctx, &dialog, None);
        self.dialog = Some(dialog);
        self.invite_sent = Some(std::time::Instant::now());
        Ok(())
    }

    /// Whether `event`, about our outgoing INVITE, says that the proxy it went to is not
    /// answering: the transaction failed before any response (Timer B or a send error; a
    /// provisional would have moved the dialog on from `Inviting`), or the proxy answered 503
    /// (one from further on becomes 500 at a proxy, RFC 3261 section 16.7 step 6). The
    /// proxy and the status, for the line.
    pub(super) fn proxy_unanswered(&self, event: &ClientEvent) -> Option<(SocketAddr, u16)> {
        let proxy = self.context.proxy.filter(|_| !self.incoming)?;
        let phase = self.dialog.as_ref()?.phase();
        let status = match event {
            ClientEvent::Failed { method, status } if method == "INVITE" => {
                (phase == Phase::Inviting).then_some(*status)?
            }
            ClientEvent::Response { status: 503, bytes } => {
                let response = Message::parse(bytes).ok()?;
                let invite = response.cseq().ok()?.method == Method::Invite;
                (invite && matches!(phase, Phase::Inviting | Phase::Proceeding)).then_some(503)?
            }
            _ => return None,
        };
        Some((proxy, status))
    }

    /// A dialled number as a SIP URI in our domain; a `sip:` URI (a REFER's target) as is.
    pub(super) fn target_uri(&self, number: &str) -> String {
        if number.starts_with("sip:") || number.starts_with("sips:") {
            number.to_owned()
        } else {
            format!("sip:{number}@{};user=phone", self.context.identity.domain)
        }
    }

    pub(super) fn begin_incoming(
        &mut self,
        ctx: &mut Context<Self>,
        call: NewCall,
        reception: Reception,
    ) -> Result<(), AtaError> {
        let mut dialog = match Dialog::incoming(IncomingCall {
            identity: self.context.identity.clone(),
            txn: call.txn,
            request: call.bytes.to_vec(),
            source: call.source,
            seed: rand::thread_rng().gen(),
            t1: self.context.t1,
        }) {
            Ok(d) => d,
            Err(e) => {
                self.respond_bad_request(&call, &e);
                return Err(e);
            }
        };
        self.route(ctx, &dialog, Some(call.txn));
        let answer_now = reception == Reception::AnswerNow;
        match reception {
            Reception::Reject(status) => dialog.reject(status, reason_phrase(status)),
            Reception::Forward { target, reason } => {
                dialog.redirect(&self.target_uri(&target), reason)
            }
            // A call answered at once (it replaces one of ours, RFC 3891) does not ring first.
            Reception::Ring | Reception::AnswerNow => match self.prepare_answer(&call) {
                Ok(()) if answer_now => {}
                Ok(()) => dialog.ring(),
                Err(e) => {
                    info!(error = %e, "incoming offer refused with 488");
                    dialog.reject(488, "Not Acceptable Here");
                }
            },
        }
        self.dialog = Some(dialog);
        if answer_now {
            self.answer();
        }
        Ok(())
    }

    /// Reads the INVITE's offer, opens the media and prepares the answer the subscriber
    /// will send by answering.
    fn prepare_answer(&mut self, call: &NewCall) -> Result<(), AtaError> {
        let message = Message::parse(&call.bytes)?;
        let offer = Negotiator::read_offer(message.body())?;
        self.open_media()?;
        let session_id: u64 = rand::thread_rng().gen_range(1..1_000_000_000);
        self.sdp.prepare_answer(&offer, session_id)
    }

    fn respond_bad_request(&self, call: &NewCall, error: &AtaError) {
        let Ok(request) = Message::parse(&call.bytes) else {
            return;
        };
        let reason = format!("Bad Request ({error})").replace(['\r', '\n'], " ");
        let bytes = ResponseBuilder::for_request(&request, 400, &reason).build();
        self.context.endpoint.do_send(SendResponse {
            txn: call.txn,
            status: 400,
            bytes,
        });
    }

    pub(super) fn route(&self, ctx: &mut Context<Self>, dialog: &Dialog, txn: Option<u64>) {
        self.context.endpoint.do_send(RouteDialog {
            call_id: dialog.call_id().to_owned(),
            local_tag: dialog.local_tag().to_owned(),
            owner: Some(ctx.address().recipient()),
            txn,
        });
    }
}

/// The reason phrase of a status we refuse calls with.
fn reason_phrase(status: u16) -> &'static str {
    match status {
        433 => "Anonymity Disallowed",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        603 => "Decline",
        _ => "Not Acceptable Here",
    }
}
