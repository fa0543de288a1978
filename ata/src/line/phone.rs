//! The telephone behaviour of one line, sans-IO: what the subscriber hears and what the line
//! asks of its calls, given hook changes, hook flash, keypad digits, arriving calls and call
//! progress, with `now` for the timers.
//!
//! The line actor (`line::actor`) feeds inputs and performs the [`Action`]s: tones and the
//! ringer on the hardware, calls through one call actor per call. A line has several calls
//! at once (a Cisco ATA's FXS port does): the one the handset talks to (`active`), one on
//! hold, one waiting, two in a three-way conference. Like the ATA 186:
//!
//! - off-hook gives dial tone (stutter dial tone while messages wait or every call is
//!   forwarded); digits are judged by the star codes (`features::star_codes`), then by the dial
//!   plan (`dial_plan.rs`); `#` or the interdigit timeout ends a number; a speed-dial key then
//!   `#` dials its number;
//! - ringback on 180, silence for early media; busy tone on 486 and 600, reorder on other
//!   failures and on an impossible number; after the far end hangs up, reorder until on-hook;
//! - an incoming call rings an idle line; while talking, a second call waits (call-waiting tone
//!   over the call) unless call waiting is off, and is forwarded on busy or refused 486
//!   otherwise; do not disturb, anonymous call rejection and forward-all act before it rings;
//!   an unanswered call is forwarded after `no_answer_seconds`;
//! - hook flash, in `phone/flash.rs`: answer the waiting call and hold the current one, swap
//!   between them, or hold and give dial tone for a consultation call, which a second flash
//!   joins into a conference and a third drops again;
//! - on-hook ends the active call; a consultation call and the held call are then joined by an
//!   attended transfer; a call left on hold or waiting rings the line again (recall).
//!
//! The rest is split by input: `phone/dialing.rs` (keys, star codes, placing calls),
//! `phone/incoming.rs` (an arriving call: ring, wait, forward or refuse; Replaces),
//! `phone/flash.rs` (hook flash and the conference), `phone/progress.rs` (what the calls
//! report). The [`Features`] it starts with come from the configuration; star codes change
//! them for the line's life.

mod dialing;
mod flash;
mod incoming;
mod progress;
mod tones;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dialtone_media::Tone;

use crate::dial_plan::DialPlan;
use crate::features::{Features, FlashMode};

pub use incoming::{Caller, Disposition};

/// A call's number on its line.
pub type CallId = u64;

/// What the line is doing, as the control API and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// On-hook, no call ringing.
    Idle,
    /// Off-hook, dial tone, no digit yet.
    DialTone,
    /// Collecting digits.
    Dialing,
    /// Our INVITE is out, nothing heard yet.
    Calling,
    /// The far end is ringing (180).
    Ringback,
    /// Talking (to one party, or to two in a conference).
    Connected,
    /// A call rings the line.
    Ringing,
    /// Busy tone after 486/600.
    Busy,
    /// Reorder tone after a failure or an impossible number.
    Reorder,
    /// The far end hung up; waiting for on-hook.
    Disconnected,
}

impl LineState {
    /// Every state name.
    pub const NAMES: [&'static str; 10] = [
        "idle",
        "dialtone",
        "dialing",
        "calling",
        "ringback",
        "connected",
        "ringing",
        "busy",
        "reorder",
        "disconnected",
    ];

    /// This state's name.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// Who placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The far end called us.
    Incoming,
    /// We called.
    Outgoing,
}

/// Where one call of the line stands, as the control API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Outgoing, nothing heard from the far end yet.
    Dialing,
    /// Ringing: the far end (outgoing), or this line (incoming, or a recall).
    Ringing,
    /// Incoming while another call talks: call waiting.
    Waiting,
    /// Talking.
    Connected,
    /// On hold (by us).
    Held,
    /// In the line's three-way conference.
    Conference,
    /// Being ended; gone once its call actor stops.
    Ending,
}

impl CallState {
    /// The state's name in the control API.
    pub fn name(self) -> &'static str {
        match self {
            CallState::Dialing => "dialing",
            CallState::Ringing => "ringing",
            CallState::Waiting => "waiting",
            CallState::Connected => "connected",
            CallState::Held => "held",
            CallState::Conference => "conference",
            CallState::Ending => "ending",
        }
    }
}

/// A caller or callee as the subscriber sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// The number (a SIP URI's user part, or `anonymous`).
    pub number: String,
    /// The display name, if any.
    pub name: Option<String>,
}

/// One call of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Its number on the line.
    pub id: CallId,
    /// Who placed it.
    pub direction: Direction,
    /// Where it stands.
    pub state: CallState,
    /// The other party.
    pub remote: Party,
    /// The negotiated codec, once media flows.
    pub codec: Option<String>,
    /// The ring cadence the caller asked for (`Alert-Info`), e.g. `Bellcore-dr2`.
    pub ring_pattern: Option<String>,
    early_media: bool,
    /// Placed while another call was held: a flash joins the two, on-hook transfers.
    consultation: bool,
    /// Rings again after on-hook (it was held): off-hook resumes instead of answering.
    recall: bool,
    /// Dialled after `*70`: no call waiting during it.
    no_call_waiting: bool,
    no_answer_at: Option<Instant>,
}

/// What the line actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play this tone to the handset, or stop (`None`).
    Tone(Option<Tone>),
    /// Start or stop the ringer.
    Ringer(bool),
    /// Place a call to `number`.
    PlaceCall {
        /// The new call.
        call: CallId,
        /// What was dialled (or a SIP URI, for a transfer).
        number: String,
        /// Hide our identity (RFC 3323 `Privacy: id`, anonymous From).
        anonymous: bool,
        /// A `Replaces` header value for the INVITE (RFC 3891; an attended transfer).
        replaces: Option<String>,
    },
    /// Answer this ringing call.
    Answer(CallId),
    /// End this call (CANCEL, BYE or reject, whichever fits).
    HangUp(CallId),
    /// Put the call on hold (re-INVITE `a=sendonly`).
    Hold(CallId),
    /// Take it off hold.
    Resume(CallId),
    /// Redirect the ringing call (302 with the target in Contact and a Diversion header).
    Forward {
        /// The call.
        call: CallId,
        /// Where to.
        target: String,
        /// The RFC 5806 reason (`unconditional`, `user-busy`, `no-answer`).
        reason: &'static str,
    },
    /// Send this key as RFC 4733 DTMF in the call.
    SendDigit(CallId, char),
    /// Send hook flash to the far end (`flash_mode` rfc4733 or info).
    SendFlash(CallId),
    /// Attended transfer: ask `call`'s far end to call `target`'s far end, replacing our
    /// dialog with it (REFER with Replaces, RFC 5589 section 7).
    AttendedTransfer {
        /// The call that gets the REFER (the transferee).
        call: CallId,
        /// The call whose far end it calls (the transfer target).
        target: CallId,
    },
}

/// Where the handset's audio goes and comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioRoute {
    /// Nowhere: tones only.
    Silent,
    /// One call.
    Call(CallId),
    /// Two calls, mixed: each far end hears the handset and the other.
    Conference(CallId, CallId),
}

/// The counts of a message-waiting indication (RFC 3842 `Voice-Message: NEW/OLD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// New messages.
    pub new: u32,
    /// Old messages.
    pub old: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On-hook.
    Idle,
    /// Off-hook, dial tone or digits.
    Dialing,
    /// The handset is with the active call.
    Call,
    Busy,
    Reorder,
    Disconnected,
}

/// What `*67`, `*82` and `*70` set for the next call only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct NextCall {
    hide_id: Option<bool>,
    no_call_waiting: bool,
}

/// One line's telephone logic. See the module docs.
#[derive(Debug)]
pub struct Phone {
    off_hook: bool,
    mode: Mode,
    calls: Vec<Call>,
    active: Option<CallId>,
    conference: bool,
    digits: String,
    plan: DialPlan,
    interdigit: Duration,
    digit_deadline: Option<Instant>,
    features: Features,
    next_call: NextCall,
    last_caller: Option<Party>,
    last_dialled: Option<String>,
    messages: MessageCounts,
    tone: Option<Tone>,
    ringer: bool,
    next_id: CallId,
    actions: VecDeque<Action>,
}

impl Phone {
    /// An idle, on-hook phone with the default features.
    pub fn new(plan: DialPlan, interdigit: Duration) -> Self {
        Self::with_features(plan, interdigit, Features::default())
    }

    /// An idle, on-hook phone with these features.
    pub fn with_features(plan: DialPlan, interdigit: Duration, features: Features) -> Self {
        Phone {
            off_hook: false,
            mode: Mode::Idle,
            calls: Vec::new(),
            active: None,
            conference: false,
            digits: String::new(),
            plan,
            interdigit,
            digit_deadline: None,
            features,
            next_call: NextCall::default(),
            last_caller: None,
            last_dialled: None,
            messages: MessageCounts::default(),
            tone: None,
            ringer: false,
            next_id: 1,
            actions: VecDeque::new(),
        }
    }

    /// The line's state.
    pub fn state(&self) -> LineState {
        if !self.off_hook {
            return if self.alerting().is_some() {
                LineState::Ringing
            } else {
                LineState::Idle
            };
        }
        match self.mode {
            Mode::Idle => LineState::Idle,
            Mode::Dialing if self.digits.is_empty() => LineState::DialTone,
            Mode::Dialing => LineState::Dialing,
            Mode::Busy => LineState::Busy,
            Mode::Reorder => LineState::Reorder,
            Mode::Disconnected => LineState::Disconnected,
            Mode::Call => match self.active_call().map(|c| (c.direction, c.state)) {
                Some((_, CallState::Dialing)) => LineState::Calling,
                Some((Direction::Outgoing, CallState::Ringing)) => LineState::Ringback,
                Some((_, CallState::Ending)) | None => LineState::Disconnected,
                Some(_) => LineState::Connected,
            },
        }
    }

    /// Whether the handset is off-hook.
    pub fn is_off_hook(&self) -> bool {
        self.off_hook
    }

    /// The digits collected so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The line's calls, in order of arrival.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// The call the handset talks to.
    pub fn active(&self) -> Option<CallId> {
        self.active
    }

    /// The features as they are now (star codes change them).
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Who called last.
    pub fn last_caller(&self) -> Option<&Party> {
        self.last_caller.as_ref()
    }

    /// The message-waiting counts.
    pub fn messages(&self) -> MessageCounts {
        self.messages
    }

    /// The ring cadence of the call ringing or waiting, if it asked for one.
    pub fn ring_pattern(&self) -> Option<&str> {
        self.calls
            .iter()
            .filter(|c| c.direction == Direction::Incoming || c.recall)
            .find(|c| matches!(c.state, CallState::Ringing | CallState::Waiting))
            .and_then(|c| c.ring_pattern.as_deref())
    }

    /// Where the handset's audio goes now.
    pub fn audio_route(&self) -> AudioRoute {
        if self.mode != Mode::Call {
            return AudioRoute::Silent;
        }
        if self.conference {
            let mut parties = self
                .calls
                .iter()
                .filter(|c| c.state == CallState::Conference);
            if let (Some(a), Some(b)) = (parties.next(), parties.next()) {
                return AudioRoute::Conference(a.id, b.id);
            }
        }
        match self.active_call() {
            Some(c) if c.state == CallState::Connected => AudioRoute::Call(c.id),
            Some(c) if c.state == CallState::Ringing && c.early_media => AudioRoute::Call(c.id),
            _ => AudioRoute::Silent,
        }
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Phone::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.calls
            .iter()
            .filter_map(|c| c.no_answer_at)
            .chain(self.digit_deadline)
            .min()
    }

    /// A timer fired: the interdigit timeout, or a call's no-answer forward.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.dialing_timeout(now);
        self.no_answer_timeout(now);
        self.refresh();
    }

    /// The handset was lifted: answer the ringing call (or resume a recalled one), else dial
    /// tone.
    pub fn off_hook(&mut self, _now: Instant) {
        if self.off_hook {
            return;
        }
        self.off_hook = true;
        match self.alerting().map(|c| (c.id, c.recall)) {
            Some((id, recall)) => {
                self.push(if recall {
                    Action::Resume(id)
                } else {
                    Action::Answer(id)
                });
                self.set_state(id, CallState::Connected);
                if let Some(call) = self.call_mut(id) {
                    call.recall = false;
                    call.no_answer_at = None;
                }
                self.active = Some(id);
                self.mode = Mode::Call;
            }
            None => self.mode = Mode::Dialing,
        }
        self.refresh();
    }

    /// The handset was put down: the active call ends (a consultation call is transferred
    /// to the held one, a conference ends or is transferred as configured); a call left on
    /// hold or waiting rings the line again.
    pub fn on_hook(&mut self, _now: Instant) {
        if !self.off_hook {
            return;
        }
        self.off_hook = false;
        self.digits.clear();
        self.digit_deadline = None;
        self.next_call = NextCall::default();
        if self.conference {
            self.hang_up_conference();
        } else if let Some(active) = self.active_call().filter(|c| c.state != CallState::Ending) {
            let (id, consultation, talking) = (
                active.id,
                active.consultation,
                active.state == CallState::Connected,
            );
            match self.held_call() {
                Some(held) if consultation && talking => self.transfer(held, id),
                _ => self.end(id),
            }
        }
        self.active = None;
        self.mode = Mode::Idle;
        for call in &mut self.calls {
            match call.state {
                CallState::Held => {
                    call.state = CallState::Ringing;
                    call.recall = true;
                }
                CallState::Waiting => call.state = CallState::Ringing,
                _ => {}
            }
        }
        self.refresh();
    }

    /// `ctl transfer --attended`: joins the held call and the consultation call, as on-hook
    /// would, while the handset stays up.
    pub fn transfer_attended(&mut self) -> Result<(), &'static str> {
        let active = self
            .active_call()
            .filter(|c| c.consultation && c.state == CallState::Connected)
            .map(|c| c.id);
        match (active, self.held_call()) {
            (Some(target), Some(held)) => {
                self.transfer(held, target);
                self.active = None;
                self.mode = Mode::Disconnected;
                self.refresh();
                Ok(())
            }
            _ => Err("an attended transfer needs a held call and a connected consultation call"),
        }
    }

    /// The message-waiting counts changed.
    pub fn set_messages(&mut self, counts: MessageCounts) {
        self.messages = counts;
        self.refresh();
    }

    fn transfer(&mut self, call: CallId, target: CallId) {
        self.push(Action::AttendedTransfer { call, target });
        self.set_state(call, CallState::Ending);
        self.set_state(target, CallState::Ending);
    }

    fn end(&mut self, id: CallId) {
        self.push(Action::HangUp(id));
        self.set_state(id, CallState::Ending);
    }

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn call(&self, id: CallId) -> Option<&Call> {
        self.calls.iter().find(|c| c.id == id)
    }

    fn call_mut(&mut self, id: CallId) -> Option<&mut Call> {
        self.calls.iter_mut().find(|c| c.id == id)
    }

    fn set_state(&mut self, id: CallId, state: CallState) {
        if let Some(call) = self.call_mut(id) {
            call.state = state;
        }
    }

    fn active_call(&self) -> Option<&Call> {
        self.active.and_then(|id| self.call(id))
    }

    fn held_call(&self) -> Option<CallId> {
        self.calls
            .iter()
            .find(|c| c.state == CallState::Held)
            .map(|c| c.id)
    }

    fn waiting_call(&self) -> Option<CallId> {
        self.calls
            .iter()
            .find(|c| c.state == CallState::Waiting)
            .map(|c| c.id)
    }

    /// The call that rings the line (an incoming call or a recall), if the handset is down.
    fn alerting(&self) -> Option<&Call> {
        self.calls.iter().find(|c| {
            c.state == CallState::Ringing && (c.direction == Direction::Incoming || c.recall)
        })
    }

    fn new_id(&mut self) -> CallId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn flash_is_local(&self) -> bool {
        self.features.flash_mode == FlashMode::Local
    }
}

#[cfg(test)]
#[path = "phone_tests.rs"]
mod tests;
