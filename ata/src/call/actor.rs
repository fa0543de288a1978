//! The call actor: the actix shell around one [`Dialog`] and one [`Negotiator`] (the call's
//! offer/answer), and the owner of the call's [`MediaActor`]. Created by the line actor for
//! every call, outgoing ([`CallActor::outgoing`]) or incoming ([`CallActor::incoming`]);
//! talks to the endpoint for SIP and to its line by messages only ([`CallNews`], to the
//! `LineInbox` in its [`CallContext`]); stops when the dialog terminates. What the line asks
//! of it ([`HangUp`], [`Answer`], [`Hold`], [`Resume`], [`Key`], [`SendFlash`], [`Transfer`],
//! [`AttendedTransfer`], [`Forward`], [`ReferNotify`]) is defined here and handled in
//! `actor/commands.rs`; how an incoming call is first answered is its [`Reception`].
//!
//! Incoming INVITEs without an offer (offer in the ACK) are answered 488 here: the ATA 186
//! and every peer of the lab send their offer in the INVITE.

mod commands;
mod lookup;
mod observe;
mod start;

use std::net::IpAddr;
use std::time::Instant;

use actix::prelude::*;
use dialtone_media::{AudioCodec, Pcma, Pcmu};
use dialtone_sdp::{Codec, NegotiatedAudio};
use dialtone_sip::Message;
use rand::Rng;
use tracing::{debug, info, warn};

pub use super::context::CallContext;
use crate::call::dialog::{CallEvent, Dialog, DialogIds, Output};
use crate::call::negotiator::Negotiator;
use crate::call::news::{CallNews, CallOutcome, News};
use crate::endpoint::{
    ClientEvent, DialogRequest, NewCall, RouteDialog, SendRequest, SendResponse, SendStateless,
    TransactionUpdate,
};
use crate::error::AtaError;
use crate::media::actor::{bind_port_pair, MediaActor, StartMedia, UpdateMedia};
use crate::media::session::{MediaSession, SessionParams};

/// Hang up (CANCEL, BYE or decline, as fits).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HangUp;

/// Answer the ringing call.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Answer;

/// Put the call on hold (re-INVITE with `a=sendonly`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Hold;

/// Take the call off hold.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume;

/// Send hook flash to the far end (RFC 4733 event 16, or SIP INFO).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendFlash {
    /// As SIP INFO rather than as an RFC 4733 event.
    pub as_info: bool,
}

/// Transferor, attended: REFER this call's peer to the peer of `replaced`, replacing it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttendedTransfer(pub DialogIds);

/// Redirect this ringing call (302 with a Diversion header).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Forward {
    /// A number or SIP URI.
    pub target: String,
    /// The RFC 5806 reason.
    pub reason: &'static str,
}

/// Send a DTMF key.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Key(pub char);

/// Transferor: blind-transfer this call to a number or SIP URI (REFER).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Transfer(pub String);

/// Transferee: how the call we were referred to goes, for the transferor's NOTIFY.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReferNotify {
    /// The referred call's status (180, 200, 486...).
    pub status: u16,
    /// Its reason phrase.
    pub reason: &'static str,
}

/// How an incoming call is answered when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reception {
    /// 180 Ringing, then as the subscriber does.
    Ring,
    /// Refused with this status (486, 433...).
    Reject(u16),
    /// Redirected at once (302).
    Forward {
        /// A number or SIP URI.
        target: String,
        /// The RFC 5806 reason.
        reason: &'static str,
    },
    /// Answered at once (an INVITE with Replaces of a call we talk in).
    AnswerNow,
}

/// What an outgoing call is asked to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialled {
    /// A number (in our domain) or a SIP URI.
    pub number: String,
    /// Hide our identity (RFC 3323).
    pub anonymous: bool,
    /// A `Replaces` header value (RFC 3891).
    pub replaces: Option<String>,
}

enum Start {
    Outgoing(Dialled),
    Incoming { call: NewCall, reception: Reception },
}

/// The actor.
pub struct CallActor {
    id: u64,
    context: CallContext,
    start: Option<Start>,
    dialog: Option<Dialog>,
    media: Option<Addr<MediaActor>>,
    sdp: Negotiator,
    connected: bool,
    /// Media started on a 183 with SDP (early media), before the 2xx.
    early_media: Option<String>,
    incoming: bool,
    final_status: Option<u16>,
    outcome: Option<&'static str>,
    timer: Option<SpawnHandle>,
    /// When the first INVITE of an outgoing call went (the observer's setup time).
    invite_sent: Option<Instant>,
}

impl CallActor {
    /// A call through the proxy.
    pub fn outgoing(id: u64, context: CallContext, dialled: Dialled) -> Self {
        Self::new(id, context, Start::Outgoing(dialled), false)
    }

    /// A call arriving in `call`, first answered as `reception` says.
    pub fn incoming(id: u64, context: CallContext, call: NewCall, reception: Reception) -> Self {
        Self::new(id, context, Start::Incoming { call, reception }, true)
    }

    fn new(id: u64, context: CallContext, start: Start, incoming: bool) -> Self {
        let sdp = Negotiator::new(
            context.sdp_codecs(),
            context.identity.user.clone(),
            context.identity.local.ip(),
        );
        CallActor {
            id,
            context,
            start: Some(start),
            dialog: None,
            media: None,
            sdp,
            connected: false,
            early_media: None,
            incoming,
            final_status: None,
            outcome: None,
            timer: None,
            invite_sent: None,
        }
    }

    fn news(&self, news: News) {
        self.context.line.news.do_send(CallNews {
            call: self.id,
            news,
        });
    }

    fn open_media(&mut self) -> Result<(), AtaError> {
        let ip: IpAddr = self.context.identity.local.ip();
        let (from, to) = self.context.rtp_ports;
        let sockets = bind_port_pair(ip, from, to)?;
        self.sdp.set_port(MediaActor::local_port(&sockets.0));
        let actor = MediaActor::new(
            self.id,
            self.context.line_name.clone(),
            self.context.line.media.clone(),
            self.context.metrics.clone(),
            sockets,
        )?;
        self.media = Some(actor.start());
        Ok(())
    }

    /// Starts media for the negotiated audio. Early media (a 183 with SDP) flows to the
    /// earpiece while the far end rings, instead of the local ringback tone (RFC 3960
    /// section 3: the UAC plays the early media it receives); the call is connected later by
    /// its 2xx.
    fn start_media(&mut self, audio: &NegotiatedAudio) {
        self.start_media_as(audio, false);
    }

    fn start_media_as(&mut self, audio: &NegotiatedAudio, early: bool) {
        let Some(media) = &self.media else {
            return;
        };
        let Some((encoder, decoder)) = codec_pair(&audio.codec) else {
            warn!(codec = %audio.codec.name, "negotiated codec has no implementation");
            return;
        };
        let params = SessionParams {
            encoder,
            decoder,
            telephone_event: audio.telephone_event,
            remote: audio.remote_rtp(),
            send: audio.direction.sends(),
            seed: rand::thread_rng().gen(),
            cname: format!(
                "{}@{}",
                self.context.identity.user,
                self.context.identity.local.ip()
            ),
            impairment: MediaSession::g711_impairment(),
        };
        media.do_send(StartMedia(params));
        let codec = &audio.codec;
        let codec = if codec.channels > 1 {
            format!("{}/{}/{}", codec.name, codec.clock_rate, codec.channels)
        } else {
            format!("{}/{}", codec.name, codec.clock_rate)
        };
        let media = media.clone().recipient();
        if early {
            self.early_media = Some(codec.clone());
            self.news(News::EarlyMedia { media, codec });
        } else {
            self.connected = true;
            let dialog = self.dialog.as_ref().and_then(Dialog::ids);
            self.news(News::Connected {
                media,
                codec,
                dialog,
            });
        }
    }

    /// A 183 with an SDP answer: start the early media it describes.
    fn on_early_media(&mut self, sdp: &[u8]) {
        if self.early_media.is_some() || self.connected {
            return;
        }
        match self.sdp.process_answer(Some(sdp)).ok() {
            Some(audio) => self.start_media_as(&audio, true),
            None => warn!(
                call = self.id,
                "unusable early-media SDP in a 183; ringback instead"
            ),
        }
    }

    /// Performs the dialog's outputs and re-arms its timer. Handling an event may queue more
    /// outputs (a BYE after a transfer), so it drains until the dialog has nothing left.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        loop {
            let events = self.drain_outputs(ctx);
            if events.is_empty() {
                break;
            }
            for event in events {
                self.on_event(ctx, event);
            }
        }
        self.look_up_next_hop(ctx);
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.dialog.as_ref().and_then(|d| d.poll_timeout()) {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |actor, ctx| {
                actor.timer = None;
                if let Some(dialog) = actor.dialog.as_mut() {
                    dialog.handle_timeout(Instant::now());
                }
                actor.pump(ctx);
            }));
        }
    }

    /// Sends what the dialog asks to send; returns its events.
    fn drain_outputs(&mut self, ctx: &mut Context<Self>) -> Vec<CallEvent> {
        let mut events = Vec::new();
        if let Some(dialog) = self.dialog.as_mut() {
            while let Some(output) = dialog.poll_output() {
                match output {
                    Output::Request { bytes, destination } => {
                        self.context.endpoint.do_send(SendRequest {
                            bytes,
                            destination,
                            owner: ctx.address().recipient(),
                        })
                    }
                    Output::Stateless { bytes, destination } => self
                        .context
                        .endpoint
                        .do_send(SendStateless { bytes, destination }),
                    Output::Response { txn, status, bytes } => {
                        if status >= 300 {
                            self.final_status = Some(status);
                        }
                        self.context
                            .endpoint
                            .do_send(SendResponse { txn, status, bytes })
                    }
                    Output::Event(event) => events.push(event),
                }
            }
        }
        events
    }

    fn on_event(&mut self, ctx: &mut Context<Self>, event: CallEvent) {
        debug!(call = self.id, ?event, "call event");
        match event {
            CallEvent::Progress { status, sdp } => match (status, sdp) {
                (183, Some(sdp)) => self.on_early_media(&sdp),
                (180 | 183, _) => self.news(News::Ringing),
                _ => {}
            },
            CallEvent::Answered { sdp } => {
                self.observe_answered();
                self.on_answered(sdp)
            }
            CallEvent::Confirmed => {}
            CallEvent::Failed { status } => {
                self.final_status = Some(status);
                self.news(News::Ended(CallOutcome::Failed(status)));
            }
            CallEvent::Cancelled => {
                self.outcome = Some("cancelled");
                self.news(News::Ended(CallOutcome::Cancelled));
            }
            CallEvent::RemoteHangup => self.news(News::Ended(CallOutcome::RemoteHangup)),
            CallEvent::Reoffer { sdp } => self.on_reoffer(sdp),
            CallEvent::Referred { target, replaces } => {
                info!(call = self.id, %target, "referred: calling the transfer target");
                self.news(News::Referred { target, replaces });
            }
            CallEvent::ReferRefused { status } => {
                info!(call = self.id, status, "transfer refused");
                self.news(News::TransferFailed { status });
            }
            CallEvent::ReferProgress { status, terminated } => {
                self.on_refer_progress(status, terminated)
            }
            CallEvent::ReofferAnswered { sdp } => self.on_reoffer_answered(sdp),
            CallEvent::Terminated => ctx.stop(),
        }
    }

    /// Transferor: once the transferee's call is answered (a 2xx sipfrag), our part is over
    /// (RFC 5589 section 6.1: the transferor hangs up); a failure leaves the call as it was.
    fn on_refer_progress(&mut self, status: u16, terminated: bool) {
        debug!(call = self.id, status, terminated, "transfer progress");
        if (200..300).contains(&status) {
            self.outcome = Some("transferred");
            self.news(News::Ended(CallOutcome::Transferred));
            self.stop_media();
            if let Some(dialog) = self.dialog.as_mut() {
                dialog.hang_up();
            }
        } else if status >= 300 || terminated {
            self.news(News::TransferFailed { status });
        }
    }

    fn on_answered(&mut self, sdp: Option<Vec<u8>>) {
        // Media already flows since the 183; the 2xx only connects the call (its SDP repeats
        // the answer, RFC 3264 section 8 does not let it change without a new offer).
        if let (Some(codec), Some(media)) = (self.early_media.clone(), &self.media) {
            self.connected = true;
            let media = media.clone().recipient();
            let dialog = self.dialog.as_ref().and_then(Dialog::ids);
            self.news(News::Connected {
                media,
                codec,
                dialog,
            });
            return;
        }
        match self.sdp.process_answer(sdp.as_deref()) {
            Ok(audio) => self.start_media(&audio),
            Err(e) => {
                warn!(error = %e, "unusable answer; hanging up");
                self.news(News::Ended(CallOutcome::Failed(488)));
                if let Some(dialog) = self.dialog.as_mut() {
                    dialog.hang_up();
                }
            }
        }
    }

    fn on_reoffer(&mut self, sdp: Option<Vec<u8>>) {
        let now = Instant::now();
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        match self.sdp.answer_reoffer(sdp.as_deref()) {
            Ok((answer, audio)) => {
                if let Some(media) = &self.media {
                    media.do_send(UpdateMedia {
                        remote: audio.remote_rtp(),
                        send: audio.direction.sends(),
                    });
                }
                dialog.answer_reinvite(now, Some(answer), 200);
            }
            Err(e) => {
                info!(error = %e, "re-INVITE refused");
                dialog.answer_reinvite(now, None, 488);
            }
        }
    }

    fn on_reoffer_answered(&mut self, sdp: Option<Vec<u8>>) {
        let audio = self.sdp.process_answer(sdp.as_deref());
        if let (Ok(audio), Some(media)) = (audio, &self.media) {
            media.do_send(UpdateMedia {
                remote: audio.remote_rtp(),
                send: audio.direction.sends(),
            });
        }
    }

    fn outcome(&self) -> &'static str {
        if let Some(outcome) = self.outcome {
            return outcome;
        }
        if self.connected {
            return "answered";
        }
        match self.final_status {
            Some(486 | 600) => "busy",
            Some(408 | 480 | 487) => "unanswered",
            Some(488 | 603 | 403) => "rejected",
            Some(_) => "failed",
            None => "cancelled",
        }
    }
}

fn codec_pair(codec: &Codec) -> Option<(Box<dyn AudioCodec>, Box<dyn AudioCodec>)> {
    match codec.name.to_ascii_uppercase().as_str() {
        "PCMU" => Some((Box::new(Pcmu), Box::new(Pcmu))),
        "PCMA" => Some((Box::new(Pcma), Box::new(Pcma))),
        #[cfg(feature = "opus")]
        "OPUS" => {
            let encoder = dialtone_media::OpusCodec::new(codec.payload_type).ok()?;
            let decoder = dialtone_media::OpusCodec::new(codec.payload_type).ok()?;
            Some((Box::new(encoder), Box::new(decoder)))
        }
        #[cfg(feature = "g729")]
        "G729" => {
            let encoder = dialtone_media::G729Codec::new().ok()?;
            let decoder = dialtone_media::G729Codec::new().ok()?;
            Some((Box::new(encoder), Box::new(decoder)))
        }
        _ => None,
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let result = match self.start.take() {
            Some(Start::Outgoing(dialled)) => self.begin_outgoing(ctx, dialled),
            Some(Start::Incoming { call, reception }) => self.begin_incoming(ctx, call, reception),
            None => Ok(()),
        };
        if let Err(e) = result {
            warn!(call = self.id, error = %e, "call could not start");
            self.final_status = Some(503);
            self.news(News::Ended(CallOutcome::Failed(503)));
            ctx.stop();
            return;
        }
        self.pump(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.stop_media();
        self.observe_end();
        if let Some(dialog) = &self.dialog {
            self.context.endpoint.do_send(RouteDialog {
                call_id: dialog.call_id().to_owned(),
                local_tag: dialog.local_tag().to_owned(),
                owner: None,
                txn: None,
            });
        }
        let direction = if self.incoming {
            "incoming"
        } else {
            "outgoing"
        };
        self.context
            .metrics
            .count_call(&self.context.line_name, direction, self.outcome());
        self.news(News::Gone);
    }
}

impl Handler<TransactionUpdate> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: TransactionUpdate, ctx: &mut Context<Self>) {
        if let Some((proxy, status)) = self.proxy_unanswered(&msg.0) {
            self.news(News::ProxyUnanswered { proxy, status });
        }
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        match msg.0 {
            ClientEvent::Response { bytes, .. } => match Message::parse(&bytes) {
                Ok(response) => {
                    if let Err(e) = dialog.handle_response(&response) {
                        warn!(call = self.id, error = %e, "response unusable");
                    }
                }
                Err(e) => debug!(error = %e, "unparsable response"),
            },
            ClientEvent::Failed { method, status } => {
                dialog.handle_transaction_failure(&method, status)
            }
        }
        self.pump(ctx);
    }
}

impl Handler<DialogRequest> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: DialogRequest, ctx: &mut Context<Self>) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        match Message::parse(&msg.bytes) {
            Ok(request) => {
                if let Err(e) = dialog.handle_request(msg.txn, &request, &msg.bytes) {
                    debug!(call = self.id, error = %e, "request unusable");
                }
            }
            Err(e) => debug!(error = %e, "unparsable request"),
        }
        self.pump(ctx);
    }
}
