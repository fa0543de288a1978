//! The line actor: one per line, the only actor that touches the handset. It runs the line's
//! [`Phone`] (pure) and turns its actions into handset changes and call actors, one per call
//! (a line has several at once: held, waiting, in a conference); it hands each call the
//! line's recipients ([`LineInbox`]) for the call's news and its media's earpiece frames and
//! keys. Every 20 ms it moves audio as the phone's [`AudioRoute`] says: the handset with one
//! call, or a three-way conference mixed here (each far end hears the handset and the
//! other, `dialtone_media::ConferenceMixer`). The control API drives it with [`Control`] and
//! [`GetStatus`]; the message-waiting subscription reports with `MessagesWaiting`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;
use dialtone_media::{ConferenceMixer, FRAME_DURATION, FRAME_SAMPLES};
use tracing::{info, warn};

use super::handset::{Handset, HandsetEvent};
use super::phone::{Action, AudioRoute, CallId, CallState, Phone};
use super::status::{calls_of, direction_name, features_of, tone_name, CallStatus, LineStatus};
use crate::call::actor::{
    Answer, AttendedTransfer, CallActor, CallContext, Dialled, Forward, HangUp, Hold, Key, Resume,
    SendFlash, Transfer,
};
use crate::call::dialog::DialogIds;
use crate::call::news::{CallNews, LineInbox};
use crate::endpoint::{AttachLine, NewCall};
use crate::features::FlashMode;
use crate::media::actor::{EarpieceFrame, MediaListener, MicrophoneFrame, RemoteDigit};
use crate::metrics::Metrics;

mod news;
use crate::registration::actor::{RegistrationActor, RegistrationChanged};

/// What the control API can do to a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Lift the handset.
    OffHook,
    /// Put it down.
    OnHook,
    /// Press keys (lifting the handset first if needed).
    Dial(String),
    /// Hook flash.
    Flash,
    /// Answer a ringing call (off-hook).
    Answer,
    /// Blind-transfer the connected call to a number or SIP URI.
    Transfer(String),
    /// Attended transfer: join the held call and the consultation call.
    TransferAttended,
}

/// Run a [`Command`]; answers the status after it.
#[derive(Message)]
#[rtype(result = "Result<LineStatus, String>")]
pub struct Control(pub Command);

/// Ask for the line's status.
#[derive(Message)]
#[rtype(result = "LineStatus")]
pub struct GetStatus;

/// The line's registration, started after the line: told when a call's proxy does not
/// answer its INVITE.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachRegistration(pub Addr<RegistrationActor>);

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

/// Frames of a conference party's audio held for the mixer (the media actors' and the line's
/// 20 ms timers drift apart; 100 ms absorbs it).
const MAX_HEARD_FRAMES: usize = 5;

/// One call actor of the line.
struct CallHandle {
    actor: Addr<CallActor>,
    media: Option<Recipient<MicrophoneFrame>>,
    dialog: Option<DialogIds>,
    heard: VecDeque<Vec<i16>>,
    auto_answered: bool,
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
    calls: HashMap<CallId, CallHandle>,
    registration: &'static str,
    registrar: Option<Addr<RegistrationActor>>,
    /// Transferee: the call we were referred to, and the call that referred us, told of its
    /// progress.
    referred_by: Option<(CallId, Addr<CallActor>)>,
    /// Transferor of an attended transfer: the call that got the REFER, and the target call.
    transfers: HashMap<CallId, CallId>,
    mixer: ConferenceMixer,
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
            calls: HashMap::new(),
            referred_by: None,
            transfers: HashMap::new(),
            mixer: ConferenceMixer::new(),
            registration: if setup.registers {
                "unregistered"
            } else {
                "disabled"
            },
            registrar: None,
            received_digits: String::new(),
            last_outcome: None,
            timer: None,
        }
    }

    fn status(&self) -> LineStatus {
        let active = self
            .phone
            .active()
            .and_then(|id| self.phone.calls().iter().find(|c| c.id == id))
            .filter(|c| c.state != CallState::Ending);
        let mut status = LineStatus {
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
            proxy: self
                .context
                .as_ref()
                .and_then(|c| c.proxy)
                .map(|p| p.to_string()),
            ringing: self.handset.is_ringing(),
            tone: self.handset.tone().map(tone_name),
            digits: self.phone.digits().to_owned(),
            call: active.map(|c| CallStatus {
                id: c.id,
                direction: direction_name(c.direction).to_owned(),
                party: c.remote.number.clone(),
                connected: self.calls.get(&c.id).is_some_and(|h| h.media.is_some()),
                codec: c.codec.clone(),
            }),
            received_digits: self.received_digits.clone(),
            last_outcome: self.last_outcome.clone(),
            calls: calls_of(&self.phone),
            mwi: Default::default(),
            forward: Default::default(),
            dnd: false,
            call_waiting: false,
            caller_id_blocked: false,
            ring_pattern: None,
            last_caller: None,
        };
        features_of(&self.phone, &mut status);
        status
    }

    /// Performs the phone's actions, then re-arms its timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(action) = self.phone.poll_action() {
            self.perform(action);
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

    /// Sends `message` to call `id`'s actor, if the call is still there.
    fn tell<M>(&self, id: CallId, message: M)
    where
        M: Message<Result = ()> + Send + 'static,
        CallActor: Handler<M>,
    {
        if let Some(handle) = self.calls.get(&id) {
            handle.actor.do_send(message);
        }
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Tone(tone) => self.handset.set_tone(tone),
            Action::Ringer(on) => {
                let pattern = self.phone.ring_pattern();
                let cadence = match pattern {
                    Some(_) => super::caller_id::ring_cadence(pattern),
                    None => &[],
                };
                self.handset.set_ring_cadence(cadence);
                self.handset.set_ringer(on);
            }
            Action::PlaceCall {
                call,
                number,
                anonymous,
                replaces,
            } => self.place_call(
                call,
                Dialled {
                    number,
                    anonymous,
                    replaces,
                },
            ),
            Action::Answer(id) => self.tell(id, Answer),
            Action::HangUp(id) => {
                if let Some(handle) = self.calls.get_mut(&id) {
                    handle.actor.do_send(HangUp);
                    handle.media = None;
                }
                self.handset.clear_received();
                let _ = self.handset.flush();
            }
            Action::Hold(id) => self.tell(id, Hold),
            Action::Resume(id) => {
                self.handset.clear_received();
                self.tell(id, Resume);
            }
            Action::Forward {
                call,
                target,
                reason,
            } => {
                info!(line = %self.user, %target, reason, "forwarding an unanswered call");
                self.tell(call, Forward { target, reason });
            }
            Action::SendDigit(id, key) => self.tell(id, Key(key)),
            Action::SendFlash(id) => {
                let as_info = self.phone.features().flash_mode == FlashMode::Info;
                self.tell(id, SendFlash { as_info });
            }
            Action::AttendedTransfer { call, target } => {
                let ids = self.calls.get(&target).and_then(|h| h.dialog.clone());
                match ids.filter(|_| self.calls.contains_key(&call)) {
                    Some(ids) => {
                        info!(line = %self.user, "attended transfer");
                        self.tell(call, AttendedTransfer(ids));
                        self.transfers.insert(call, target);
                    }
                    None => {
                        warn!(line = %self.user, "attended transfer without a dialog; hanging up");
                        self.hang_up_both(call, target);
                    }
                }
            }
        }
    }

    fn hang_up_both(&mut self, a: CallId, b: CallId) {
        self.tell(a, HangUp);
        self.tell(b, HangUp);
    }

    fn place_call(&mut self, id: CallId, dialled: Dialled) {
        let Some(context) = self.context.clone() else {
            return;
        };
        info!(line = %self.user, number = %dialled.number, anonymous = dialled.anonymous, "calling");
        let actor = CallActor::outgoing(id, context, dialled).start();
        self.calls.insert(id, handle(actor));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        while let Some(event) = self.handset.poll_event() {
            let now = Instant::now();
            match event {
                HandsetEvent::OffHook => self.phone.off_hook(now),
                HandsetEvent::OnHook => self.phone.on_hook(now),
                HandsetEvent::Key(key) => self.phone.digit(now, key),
                // Outside a call it does nothing, as the control API's flash.
                HandsetEvent::Flash => {
                    let _ = self.phone.flash();
                }
            }
            self.pump(ctx);
        }
        match self.phone.audio_route() {
            AudioRoute::Silent => {}
            AudioRoute::Call(id) => {
                if let Some(media) = self.calls.get(&id).and_then(|h| h.media.as_ref()) {
                    media.do_send(MicrophoneFrame(self.handset.microphone_frame()));
                }
            }
            AudioRoute::Conference(a, b) => self.mix_conference(a, b),
        }
        if let Err(e) = self.handset.earpiece_tick(self.phone.is_off_hook()) {
            warn!(line = %self.user, error = %e, "earpiece failed");
        }
    }

    /// One 20 ms of a three-way conference: the handset hears both far ends, each far end
    /// hears the handset and the other.
    fn mix_conference(&mut self, a: CallId, b: CallId) {
        let microphone = self.handset.microphone_frame();
        let silence = vec![0; FRAME_SAMPLES];
        let mut heard = |id: CallId| {
            self.calls
                .get_mut(&id)
                .and_then(|h| h.heard.pop_front())
                .unwrap_or_else(|| silence.clone())
        };
        let (from_a, from_b) = (heard(a), heard(b));
        let mixed = self.mixer.mix(&[&microphone, &from_a, &from_b]).to_vec();
        let [to_handset, to_a, to_b] = <[Vec<i16>; 3]>::try_from(mixed).unwrap_or_default();
        self.handset.queue_received(to_handset);
        for (id, frame) in [(a, to_a), (b, to_b)] {
            if let Some(media) = self.calls.get(&id).and_then(|h| h.media.as_ref()) {
                media.do_send(MicrophoneFrame(frame));
            }
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
            Command::Transfer(target) => {
                let talking = self.phone.audio_route();
                match talking {
                    AudioRoute::Call(id)
                        if self.calls.get(&id).is_some_and(|h| h.media.is_some()) =>
                    {
                        self.calls[&id].actor.do_send(Transfer(target))
                    }
                    _ => return Err("transfer needs a connected call".into()),
                }
            }
            Command::TransferAttended => self.phone.transfer_attended()?,
            Command::Flash => self.phone.flash()?,
        }
        self.pump(ctx);
        Ok(())
    }
}

fn handle(actor: Addr<CallActor>) -> CallHandle {
    CallHandle {
        actor,
        media: None,
        dialog: None,
        heard: VecDeque::new(),
        auto_answered: false,
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
        if let Some(context) = self.context.clone() {
            self.incoming(ctx, msg, context);
        }
    }
}

impl Handler<CallNews> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: CallNews, ctx: &mut Context<Self>) {
        if !self.calls.contains_key(&msg.call) {
            return;
        }
        self.on_news(msg.call, msg.news);
        self.pump(ctx);
    }
}

impl Handler<EarpieceFrame> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: EarpieceFrame, _ctx: &mut Context<Self>) {
        match self.phone.audio_route() {
            AudioRoute::Call(id)
                if id == msg.call && self.calls.get(&id).is_some_and(|h| h.media.is_some()) =>
            {
                self.handset.queue_received(msg.samples);
            }
            AudioRoute::Conference(a, b) if msg.call == a || msg.call == b => {
                if let Some(handle) = self.calls.get_mut(&msg.call) {
                    if handle.heard.len() >= MAX_HEARD_FRAMES {
                        handle.heard.pop_front();
                    }
                    handle.heard.push_back(msg.samples);
                }
            }
            _ => {}
        }
    }
}

impl Handler<RemoteDigit> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteDigit, _ctx: &mut Context<Self>) {
        if self.calls.contains_key(&msg.call) {
            info!(line = %self.user, key = %msg.key, "DTMF received");
            self.received_digits.push(msg.key);
        }
    }
}

impl Handler<RegistrationChanged> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: RegistrationChanged, _ctx: &mut Context<Self>) {
        self.registration = msg.state;
        // New calls go to the proxy the line is registered with (issue 21 item 5).
        if let Some(context) = self.context.as_mut() {
            context.proxy = Some(msg.proxy);
        }
    }
}

impl Handler<AttachRegistration> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: AttachRegistration, _ctx: &mut Context<Self>) {
        self.registrar = Some(msg.0);
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

impl Handler<crate::mwi::actor::MessagesWaiting> for LineActor {
    type Result = ();

    fn handle(&mut self, msg: crate::mwi::actor::MessagesWaiting, ctx: &mut Context<Self>) {
        let counts = super::phone::MessageCounts {
            new: msg.new,
            old: msg.old,
        };
        self.phone.set_messages(counts);
        self.pump(ctx);
    }
}
