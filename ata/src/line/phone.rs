//! The telephone behaviour of one line, sans-IO: what the subscriber hears and what the line
//! asks of calls, given hook changes, keypad digits and call progress.
//!
//! The line actor (`line::actor`) feeds inputs with `now` and performs the [`Action`]s: tones
//! and the ringer on the hardware, calls through call actors. Like the ATA 186: off-hook gives
//! dial tone; digits are collected against the dial plan (`dial_plan.rs`), `#` or the
//! interdigit timeout ends a number; ringback on 180; busy tone on 486 and 600, reorder on
//! other failures and on an impossible number; after the far end hangs up, reorder until the
//! handset goes on-hook. An incoming call rings only an idle, on-hook line; otherwise the
//! caller gets 486.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dialtone_media::Tone;

use crate::call::news::CallOutcome;
use crate::dial_plan::{DialPlan, Verdict};

/// What the line is doing, as the control API and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineState {
    /// On-hook, no call.
    Idle,
    /// Off-hook, dial tone, no digit yet.
    DialTone,
    /// Collecting digits.
    Dialing,
    /// Our INVITE is out, nothing heard yet.
    Calling,
    /// The far end is ringing (180).
    Ringback,
    /// Talking.
    Connected,
    /// An incoming call rings the line.
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

/// What the line actor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Play this tone to the handset, or stop (`None`).
    Tone(Option<Tone>),
    /// Start or stop the ringer.
    Ringer(bool),
    /// Call this number.
    PlaceCall(String),
    /// Answer the ringing call.
    Answer,
    /// End the current call (CANCEL, BYE or reject, whichever fits).
    HangUp,
    /// Send this key as RFC 4733 DTMF in the call.
    SendDigit(char),
}

/// One line's telephone logic.
#[derive(Debug)]
pub struct Phone {
    state: LineState,
    off_hook: bool,
    digits: String,
    plan: DialPlan,
    interdigit: Duration,
    digit_deadline: Option<Instant>,
    in_call: bool,
    actions: VecDeque<Action>,
}

impl Phone {
    /// An idle, on-hook phone.
    pub fn new(plan: DialPlan, interdigit: Duration) -> Self {
        Phone {
            state: LineState::Idle,
            off_hook: false,
            digits: String::new(),
            plan,
            interdigit,
            digit_deadline: None,
            in_call: false,
            actions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> LineState {
        self.state
    }

    /// Whether the handset is off-hook.
    pub fn is_off_hook(&self) -> bool {
        self.off_hook
    }

    /// The digits collected so far.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The next action.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Phone::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.digit_deadline
    }

    /// The handset was lifted.
    pub fn off_hook(&mut self, _now: Instant) {
        if self.off_hook {
            return;
        }
        self.off_hook = true;
        match self.state {
            LineState::Ringing => {
                self.actions.push_back(Action::Ringer(false));
                self.actions.push_back(Action::Answer);
                self.set(LineState::Connected, None);
            }
            _ => self.set(LineState::DialTone, Some(Tone::Dial)),
        }
    }

    /// The handset was put down.
    pub fn on_hook(&mut self, _now: Instant) {
        if !self.off_hook {
            return;
        }
        self.off_hook = false;
        if self.in_call {
            self.in_call = false;
            self.actions.push_back(Action::HangUp);
        }
        self.digits.clear();
        self.digit_deadline = None;
        self.set(LineState::Idle, None);
    }

    /// A key was pressed.
    pub fn digit(&mut self, now: Instant, key: char) {
        match self.state {
            LineState::DialTone | LineState::Dialing => {
                if key == '#' {
                    self.dial_now();
                    return;
                }
                self.digits.push(key);
                self.set(LineState::Dialing, None);
                match self.plan.judge(&self.digits) {
                    Verdict::Complete => self.dial_now(),
                    Verdict::CompleteOrLonger | Verdict::Partial => {
                        self.digit_deadline = Some(now + self.interdigit)
                    }
                    Verdict::Invalid => self.fail_dialing(),
                }
            }
            LineState::Connected => self.actions.push_back(Action::SendDigit(key)),
            _ => {}
        }
    }

    /// The interdigit timer fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.digit_deadline.is_none_or(|at| at > now) {
            return;
        }
        self.digit_deadline = None;
        if self.state != LineState::Dialing {
            return;
        }
        match self.plan.judge(&self.digits) {
            Verdict::Complete | Verdict::CompleteOrLonger => self.dial_now(),
            Verdict::Partial | Verdict::Invalid => self.fail_dialing(),
        }
    }

    /// The far end is ringing.
    pub fn call_ringing(&mut self) {
        if self.state == LineState::Calling {
            self.set(LineState::Ringback, Some(Tone::Ringback));
        }
    }

    /// The far end sends early media: its audio replaces the local ringback tone.
    pub fn call_early_media(&mut self) {
        if matches!(self.state, LineState::Calling | LineState::Ringback) {
            self.set(LineState::Ringback, None);
        }
    }

    /// The call was answered (either side).
    pub fn call_connected(&mut self) {
        if matches!(self.state, LineState::Calling | LineState::Ringback) {
            self.set(LineState::Connected, None);
        }
    }

    /// The call ended.
    pub fn call_ended(&mut self, outcome: CallOutcome) {
        self.in_call = false;
        match (self.state, outcome) {
            (LineState::Ringing, _) => {
                self.actions.push_back(Action::Ringer(false));
                self.set(LineState::Idle, None);
            }
            (_, CallOutcome::Failed(486 | 600)) if self.off_hook => {
                self.set(LineState::Busy, Some(Tone::Busy))
            }
            (_, CallOutcome::Failed(_)) if self.off_hook => {
                self.set(LineState::Reorder, Some(Tone::Reorder))
            }
            (_, CallOutcome::RemoteHangup | CallOutcome::Cancelled | CallOutcome::Transferred)
                if self.off_hook =>
            {
                self.set(LineState::Disconnected, Some(Tone::Reorder))
            }
            _ => {}
        }
    }

    /// A call arrives; returns whether the line takes it (rings) or is busy.
    pub fn incoming_call(&mut self) -> bool {
        if self.state != LineState::Idle || self.off_hook || self.in_call {
            return false;
        }
        self.in_call = true;
        self.actions.push_back(Action::Ringer(true));
        self.set(LineState::Ringing, None);
        true
    }

    fn dial_now(&mut self) {
        self.digit_deadline = None;
        if self.digits.is_empty() {
            return;
        }
        self.in_call = true;
        self.actions
            .push_back(Action::PlaceCall(std::mem::take(&mut self.digits)));
        self.set(LineState::Calling, None);
    }

    fn fail_dialing(&mut self) {
        self.digit_deadline = None;
        self.digits.clear();
        self.set(LineState::Reorder, Some(Tone::Reorder));
    }

    fn set(&mut self, state: LineState, tone: Option<Tone>) {
        self.state = state;
        self.actions.push_back(Action::Tone(tone));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(plan: &str) -> Phone {
        Phone::new(DialPlan::parse(plan).expect("plan"), Duration::from_secs(5))
    }

    fn actions(phone: &mut Phone) -> Vec<Action> {
        std::iter::from_fn(|| phone.poll_action()).collect()
    }

    #[test]
    fn off_hook_gives_dial_tone_and_the_first_digit_stops_it() {
        let now = Instant::now();
        let mut p = phone("");
        p.off_hook(now);
        assert_eq!(actions(&mut p), [Action::Tone(Some(Tone::Dial))]);
        p.digit(now, '9');
        assert_eq!(actions(&mut p), [Action::Tone(None)]);
        assert_eq!(p.state(), LineState::Dialing);
    }

    #[test]
    fn hash_sends_the_number_at_once() {
        let now = Instant::now();
        let mut p = phone("");
        p.off_hook(now);
        for key in "9000#".chars() {
            p.digit(now, key);
        }
        assert!(actions(&mut p).contains(&Action::PlaceCall("9000".into())));
        assert_eq!(p.state(), LineState::Calling);
    }

    #[test]
    fn the_interdigit_timeout_sends_a_number_the_plan_accepts() {
        let start = Instant::now();
        let mut p = phone("");
        p.off_hook(start);
        p.digit(start, '1');
        p.digit(start, '2');
        actions(&mut p);
        p.handle_timeout(start + Duration::from_secs(4));
        assert!(
            actions(&mut p).is_empty(),
            "not before 5 s after the last digit"
        );
        p.handle_timeout(start + Duration::from_secs(5));
        assert_eq!(
            actions(&mut p),
            [Action::PlaceCall("12".into()), Action::Tone(None)]
        );
    }

    #[test]
    fn a_complete_extension_dials_without_waiting() {
        let now = Instant::now();
        let mut p = phone("(xxxx|9xxxxxxx.)");
        p.off_hook(now);
        for key in "1000".chars() {
            p.digit(now, key);
        }
        assert!(actions(&mut p).contains(&Action::PlaceCall("1000".into())));
    }

    #[test]
    fn an_impossible_number_gets_reorder() {
        let now = Instant::now();
        let mut p = phone("xxxx");
        p.off_hook(now);
        p.digit(now, '*');
        assert_eq!(p.state(), LineState::Reorder);
        assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Reorder))));
    }

    #[test]
    fn early_media_silences_the_local_ringback_until_the_answer() {
        let now = Instant::now();
        let mut p = phone("xxxx");
        p.off_hook(now);
        "9000".chars().for_each(|k| p.digit(now, k));
        p.call_ringing();
        assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Ringback))));
        p.call_early_media();
        assert_eq!(p.state(), LineState::Ringback);
        assert!(actions(&mut p).contains(&Action::Tone(None)));
        p.call_connected();
        assert_eq!(p.state(), LineState::Connected);
    }

    #[test]
    fn ringback_then_busy_then_idle_on_hook() {
        let now = Instant::now();
        let mut p = phone("xxxx");
        p.off_hook(now);
        "9000".chars().for_each(|k| p.digit(now, k));
        p.call_ringing();
        assert_eq!(p.state(), LineState::Ringback);
        p.call_ended(CallOutcome::Failed(486));
        assert_eq!(p.state(), LineState::Busy);
        assert!(actions(&mut p).contains(&Action::Tone(Some(Tone::Busy))));
        p.on_hook(now);
        assert_eq!(p.state(), LineState::Idle);
        assert!(
            !actions(&mut p).contains(&Action::HangUp),
            "the call is already over"
        );
    }

    #[test]
    fn other_failures_get_reorder_and_far_end_hang_up_waits_for_on_hook() {
        let now = Instant::now();
        let mut p = phone("");
        p.off_hook(now);
        "1#".chars().for_each(|k| p.digit(now, k));
        p.call_ended(CallOutcome::Failed(404));
        assert_eq!(p.state(), LineState::Reorder);

        let mut p = phone("");
        p.off_hook(now);
        "1#".chars().for_each(|k| p.digit(now, k));
        p.call_connected();
        p.call_ended(CallOutcome::RemoteHangup);
        assert_eq!(p.state(), LineState::Disconnected);
        p.on_hook(now);
        assert_eq!(p.state(), LineState::Idle);
    }

    #[test]
    fn an_incoming_call_rings_an_idle_line_and_off_hook_answers_it() {
        let now = Instant::now();
        let mut p = phone("");
        assert!(p.incoming_call());
        assert!(actions(&mut p).contains(&Action::Ringer(true)));
        assert!(!p.incoming_call(), "a second call finds the line busy");
        p.off_hook(now);
        let done = actions(&mut p);
        assert!(done.contains(&Action::Ringer(false)));
        assert!(done.contains(&Action::Answer));
        assert_eq!(p.state(), LineState::Connected);
        p.digit(now, '5');
        assert_eq!(actions(&mut p), [Action::SendDigit('5')]);
        p.on_hook(now);
        assert!(actions(&mut p).contains(&Action::HangUp));
    }

    #[test]
    fn an_off_hook_line_is_busy_for_incoming_calls() {
        let mut p = phone("");
        p.off_hook(Instant::now());
        assert!(!p.incoming_call());
    }
}
