//! The line actor: one per line, the only actor that touches the handset. It runs the line's
//! [`Phone`] (pure) and turns its actions into handset changes and call actors, one per call;
//! it hands each call the line's recipients ([`LineInbox`]) for the call's news and its
//! media's earpiece frames and keys. The control API drives it with [`Control`] and
//! [`GetStatus`].

use std::time::{Duration, Instant};

use actix::prelude::*;
use dialtone_media::FRAME_DURATION;
use tracing::{info, warn};

use super::handset::{Handset, HandsetEvent};
use super::phone::{Action, LineState, Phone};
use super::status::{tone_name, CallStatus, LineStatus};
use crate::call::actor::{
    Answer, CallActor, CallContext, Flash, HangUp, Key, ReferNotify, Transfer,
};
use crate::call::news::{CallNews, CallOutcome, LineInbox, News};
use crate::endpoint::{AttachLine, NewCall};
use crate::media::actor::{EarpieceFrame, MediaListener, MicrophoneFrame, RemoteDigit};
use crate::metrics::Metrics;
use crate::registration::actor::RegistrationChanged;

/// What the control API can do to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Lift the handset.
    OffHook,
    /// Put it down.
    OnHook,
    /// Press keys (lifting the handset first if needed).
    Dial(String),
    /// Hook flash: hold or resume the call.
    Flash,
    /// Answer a ringing call (off-hook).
    Answer,
    /// Blind-transfer the connected call to a number or SIP URI.
    Transfer(String),
}

/// Run a [`Command`]; answers the status after it.
#[derive(Message)]
#[rtype(result = "Result<LineStatus, String>")]
pub struct Control(pub Command);

/// Ask for the line's status.
#[derive(Message)]
#[rtype(result = "LineStatus")]
pub struct GetStatus;

/// What a line is built from.
pub struct LineSetup {
    /// The line number, from 1.
    pub index: usize,
    /// The telephone logic.
    pub phone: Phone,
    /// The hardware.
    pub handset: Box<dyn Handset>,
    /// Ring this long, then answer.
    pub auto_answer: Option<Duration>,
    /// Metrics.
    pub metrics: Metrics,
    /// Everything calls need except the line's own recipients (added at start).
    pub call_context: Box<dyn Fn(LineInbox) -> CallContext + Send>,
    /// Whether this line registers.
    pub registers: bool,
}

struct CurrentCall {
    id: u64,
    actor: Addr<CallActor>,
    direction: &'static str,
    party: String,
    media: Option<Recipient<MicrophoneFrame>>,
    codec: Option<String>,
}

/// The actor.
pub struct LineActor {
    index: usize,
    user: String,
    phone: Phone,
    handset: Box<dyn Handset>,
    auto_answer: Option<Duration>,
    metrics: Metrics,
    make_context: Box<dyn Fn(LineInbox) -> CallContext + Send>,
    context: Option<CallContext>,
    call: Option<CurrentCall>,
    next_call: u64,
    registration: &'static str,
    /// Transferee: the call that referred us, told of the current call's progress.
    referred_by: Option<Addr<CallActor>>,
    received_digits: String,
    last_outcome: Option<String>,
    timer: Option<SpawnHandle>,
}

impl LineActor {
    /// A line for `user`.
    pub fn new(user: String, setup: LineSetup) -> Self {
        LineActor {
            index: setup.index,
            user,
            phone: setup.phone,
            handset: setup.handset,
            auto_answer: setup.auto_answer,
            metrics: setup.metrics,
            make_context: setup.call_context,
            context: None,
            call: None,
            next_call: 1,
            referred_by: None,
            registration: if setup.registers {
                "unregistered"
            } else {
                "disabled"
            },
            received_digits: String::new(),
            last_outcome: None,
            timer: None,
        }
    }

    fn status(&self) -> LineStatus {
        LineStatus {
            line: self.index,
            user: self.user.clone(),
            state: self.phone.state().name().to_owned(),
            hook: if self.phone.is_off_hook() {
                "off"
            } else {
                "on"
            }
            .to_owned(),
            registration: self.registration.to_owned(),
            ringing: self.handset.is_ringing(),
            tone: self.handset.tone().map(tone_name),
            digits: self.phone.digits().to_owned(),
            call: self.call.as_ref().map(|c| CallStatus {
                id: c.id,
                direction: c.direction.to_owned(),
                party: c.party.clone(),
                connected: c.media.is_some(),
                codec: c.codec.clone(),
            }),
            received_digits: self.received_digits.clone(),
            last_outcome: self.last_outcome.clone(),
        }
    }

    /// Performs the phone's actions, then re-arms its timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(action) = self.phone.poll_action() {
            match action {
                Action::Tone(tone) => self.handset.set_tone(tone),
                Action::Ringer(on) => self.handset.set_ringer(on),
                Action::PlaceCall(number) => self.place_call(number),
                Action::Answer => {
                    if let Some(call) = &self.call {
                        call.actor.do_send(Answer);
                    }
                }
                Action::HangUp => {
                    if let Some(call) = self.call.as_mut() {
                        call.actor.do_send(HangUp);
                        call.media = None;
                    }
                    self.handset.clear_received();
                    let _ = self.handset.flush();
                }
                Action::SendDigit(key) => {
                    if let Some(call) = &self.call {
                        call.actor.do_send(Key(key));
                    }
                }
            }
        }
        self.metrics
            .set_line_state(&self.user, self.phone.state().name());
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.phone.poll_timeout() {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |actor, ctx| {
                actor.timer = None;
                actor.phone.handle_timeout(Instant::now());
                actor.pump(ctx);
            }));
        }
    }

    fn place_call(&mut self, number: String) {
        let Some(context) = self.context.clone() else {
            return;
        };
        let id = self.take_call_id();
        info!(line = %self.user, %number, "calling");
        let actor = CallActor::outgoing(id, context, number.clone()).start();
        self.call = Some(CurrentCall {
            id,
            actor,
            direction: "outgoing",
            party: number,
            media: None,
            codec: None,
        });
    }

    /// Transferee (RFC 3515): the current call asked us to call `target`. The new call
    /// becomes the line's call; the old one stays up until the transferor hangs it up, and
    /// hears how the new one goes. The subscriber stays connected throughout, as on a
    /// real ATA.
    fn follow_referral(&mut self, target: String) {
        let (Some(context), Some(old)) = (self.context.clone(), self.call.take()) else {
            return;
        };
        let id = self.take_call_id();
        info!(line = %self.user, %target, "transferred: calling");
        let actor = CallActor::outgoing(id, context, target.clone()).start();
        old.actor.do_send(ReferNotify {
            status: 100,
            reason: "Trying",
        });
        self.referred_by = Some(old.actor);
        self.handset.clear_received();
        self.call = Some(CurrentCall {
            id,
            actor,
            direction: "outgoing",
            party: target,
            media: None,
            codec: None,
        });
    }

    fn take_call_id(&mut self) -> u64 {
        let id = self.next_call;
        self.next_call += 1;
        id
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.handset.poll_event() {
            let now = Instant::now();
            match event {
                HandsetEvent::OffHook => self.phone.off_hook(now),
                HandsetEvent::OnHook => self.phone.on_hook(now),
                HandsetEvent::Key(key) => self.phone.digit(now, key),
                HandsetEvent::Flash => {
                    // As the control API's flash; outside a connected call it does nothing.
                    if let (Some(call), LineState::Connected) = (&self.call, self.phone.state()) {
                        call.actor.do_send(Flash);
                    }
                }
            }
            self.pump(ctx);
        }
        if let Some(media) = self.call.as_ref().and_then(|c| c.media.as_ref()) {
            media.do_send(MicrophoneFrame(self.handset.microphone_frame()));
        }
        if let Err(e) = self.handset.earpiece_tick(self.phone.is_off_hook()) {
            warn!(line = %self.user, error = %e, "earpiece failed");
        }
    }

    fn run(&mut self, ctx: &mut Context<Self>, command: Command) -> Result<(), String> {
        let now = Instant::now();
        match command {
            Command::OffHook | Command::Answer => self.phone.off_hook(now),
            Command::OnHook => self.phone.on_hook(now),
            Command::Dial(keys) => {
                if let Some(bad) = keys.chars().find(|c| !"0123456789*#ABCD".contains(*c)) {
                    return Err(format!("`{bad}` is not a telephone key"));
                }
                if !self.phone.is_off_hook() {
                    self.phone.off_hook(now);
                }
                for key in keys.chars() {
                    self.phone.digit(now, key);
                }
            }
            Command::Transfer(target) => match (&self.call, self.phone.state()) {
                (Some(call), LineState::Connected) if call.media.is_some() => {
                    call.actor.do_send(Transfer(target))
                }
                _ => return Err("transfer needs a connected call".into()),
            },
            Command::Flash => match (&self.call, self.phone.state()) {
                (Some(call), LineState::Connected) => call.actor.do_send(Flash),
                _ => return Err("flash needs a connected call".into()),
            },
        }
        self.pump(ctx);
        Ok(())
    }
}

impl Actor for LineActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let context = (self.make_context)(LineInbox {
            news: me.clone().recipient(),
            media: MediaListener {
                earpiece: me.clone().recipient(),
                digits: me.recipient(),
            },
        });
        context.endpoint.do_send(AttachLine {
            user: self.user.clone(),
            owner: ctx.address().recipient(),
        });
        self.context = Some(context);
        self.metrics
            .set_line_state(&self.user, self.phone.state().name());
        ctx.run_interval(FRAME_DURATION, |actor, ctx| actor.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let _ = self.handset.flush();
    }
}

impl Handler<NewCall> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: NewCall, ctx: &mut Context<Self>) {
        let Some(context) = self.context.clone() else {
            return;
        };
        let takes = self.call.is_none() && self.phone.incoming_call();
        let id = self.take_call_id();
        let party = dialtone_sip::Message::parse(&msg.bytes)
            .ok()
            .and_then(|m| m.from().ok().map(|f| f.uri.as_str().to_owned()))
            .unwrap_or_default();
        let actor = CallActor::incoming(id, context, msg, !takes).start();
        if takes {
            info!(line = %self.user, %party, "incoming call");
            self.call = Some(CurrentCall {
                id,
                actor,
                direction: "incoming",
                party,
                media: None,
                codec: None,
            });
            if let Some(delay) = self.auto_answer {
                ctx.run_later(delay, move |actor, ctx| {
                    let same_call = actor.call.as_ref().is_some_and(|c| c.id == id);
                    if same_call && actor.phone.state() == LineState::Ringing {
                        actor.phone.off_hook(Instant::now());
                        actor.pump(ctx);
                    }
                });
            }
        }
        self.pump(ctx);
    }
}

impl Handler<CallNews> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: CallNews, ctx: &mut Context<Self>) {
        let Some(call) = self.call.as_mut().filter(|c| c.id == msg.call) else {
            return;
        };
        match msg.news {
            News::Ringing => {
                if let Some(old) = &self.referred_by {
                    old.do_send(ReferNotify {
                        status: 180,
                        reason: "Ringing",
                    });
                }
                self.phone.call_ringing()
            }
            News::EarlyMedia { media, codec } => {
                call.media = Some(media);
                call.codec = Some(codec);
                self.phone.call_early_media();
            }
            News::Connected { media, codec } => {
                call.media = Some(media);
                call.codec = Some(codec);
                self.last_outcome = Some("answered".into());
                if let Some(old) = self.referred_by.take() {
                    old.do_send(ReferNotify {
                        status: 200,
                        reason: "OK",
                    });
                }
                self.phone.call_connected();
            }
            News::Ended(outcome) => {
                call.media = None;
                let auto_answered = call.direction == "incoming" && self.auto_answer.is_some();
                self.handset.clear_received();
                let _ = self.handset.flush();
                if let Some(old) = self.referred_by.take() {
                    let status = match outcome {
                        CallOutcome::Failed(status) => status,
                        _ => 487,
                    };
                    old.do_send(ReferNotify {
                        status,
                        reason: "Failed",
                    });
                }
                self.last_outcome = Some(match outcome {
                    CallOutcome::Failed(status) => format!("failed {status}"),
                    CallOutcome::RemoteHangup => "remote hangup".into(),
                    CallOutcome::Cancelled => "cancelled".into(),
                    CallOutcome::Transferred => "transferred".into(),
                });
                self.phone.call_ended(outcome);
                // A virtual line that answers by itself also hangs up by itself, so an
                // unattended lab callee is ready for the next call.
                if auto_answered {
                    self.phone.on_hook(Instant::now());
                }
            }
            News::Referred { target } => self.follow_referral(target),
            News::TransferFailed { status } => {
                self.last_outcome = Some(format!("transfer failed {status}"));
            }
            News::Gone => {
                self.call = None;
                // A call that vanished without saying how (it could not start) must not
                // leave the phone believing it is still in one.
                if matches!(
                    self.phone.state(),
                    LineState::Calling
                        | LineState::Ringback
                        | LineState::Ringing
                        | LineState::Connected
                ) {
                    self.phone.call_ended(CallOutcome::Failed(500));
                }
            }
        }
        self.pump(ctx);
    }
}

impl Handler<EarpieceFrame> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: EarpieceFrame, _ctx: &mut Context<Self>) {
        let current = self
            .call
            .as_ref()
            .is_some_and(|c| c.id == msg.call && c.media.is_some());
        if current {
            self.handset.queue_received(msg.samples);
        }
    }
}

impl Handler<RemoteDigit> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteDigit, _ctx: &mut Context<Self>) {
        if self.call.as_ref().is_some_and(|c| c.id == msg.call) {
            info!(line = %self.user, key = %msg.key, "DTMF received");
            self.received_digits.push(msg.key);
        }
    }
}

impl Handler<RegistrationChanged> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, _ctx: &mut Context<Self>) {
        self.registration = msg.0;
    }
}

impl Handler<Control> for LineActor {
    type Result = Result<LineStatus, String>;

    fn handle(&mut self, msg: Control, ctx: &mut Context<Self>) -> Self::Result {
        self.run(ctx, msg.0)?;
        Ok(self.status())
    }
}

impl Handler<GetStatus> for LineActor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}
