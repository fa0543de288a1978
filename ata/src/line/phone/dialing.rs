//! Keys pressed on the line: collected against the star codes and the dial plan while there
//! is dial tone, sent as DTMF (RFC 4733) to the active call otherwise; and placing a call.

use std::time::Instant;

use super::{Action, Call, CallState, Direction, Mode, NextCall, Party, Phone};
use crate::dial_plan::Verdict;
use crate::features::{StarCode, StarVerdict};

impl Phone {
    /// A key was pressed.
    pub fn digit(&mut self, now: Instant, key: char) {
        match self.mode {
            Mode::Dialing => self.collect(now, key),
            Mode::Call => {
                let talking = self
                    .active_call()
                    .filter(|c| matches!(c.state, CallState::Connected | CallState::Conference));
                if let Some(id) = talking.map(|c| c.id) {
                    self.push(Action::SendDigit(id, key));
                }
            }
            _ => {}
        }
        self.refresh();
    }

    pub(super) fn dialing_timeout(&mut self, now: Instant) {
        if self.digit_deadline.is_none_or(|at| at > now) {
            return;
        }
        self.digit_deadline = None;
        if self.mode != Mode::Dialing || self.digits.is_empty() {
            return;
        }
        if self.features.star_codes.judge(&self.digits) == StarVerdict::Partial {
            return self.fail_dialing();
        }
        match self.plan.judge(&self.digits) {
            Verdict::Complete | Verdict::CompleteOrLonger => self.dial_collected(),
            Verdict::Partial | Verdict::Invalid => self.fail_dialing(),
        }
    }

    fn collect(&mut self, now: Instant, key: char) {
        self.digits.push(key);
        match self.features.star_codes.judge(&self.digits) {
            StarVerdict::Code(code) => {
                self.digits.clear();
                self.digit_deadline = None;
                self.apply(code);
                return;
            }
            StarVerdict::Prefix(code, rest) => {
                self.apply(code);
                self.digits = rest;
                if self.digits.is_empty() {
                    self.digit_deadline = Some(now + self.interdigit);
                    return;
                }
            }
            StarVerdict::Partial => {
                self.digit_deadline = Some(now + self.interdigit);
                return;
            }
            StarVerdict::NotACode => {}
        }
        if self.digits.ends_with('#') {
            self.digits.pop();
            let speed = single_key(&self.digits)
                .and_then(|key| self.features.speed_dial.get(&key))
                .cloned();
            match speed {
                Some(number) => self.dial(number),
                None => self.dial_collected(),
            }
            return;
        }
        match self.plan.judge(&self.digits) {
            Verdict::Complete => self.dial_collected(),
            Verdict::CompleteOrLonger | Verdict::Partial => {
                self.digit_deadline = Some(now + self.interdigit)
            }
            Verdict::Invalid => self.fail_dialing(),
        }
    }

    /// Carries out a star code. Those that only change a setting leave dial tone, which
    /// stutters if forward-all is now on: that is the subscriber's confirmation.
    fn apply(&mut self, code: StarCode) {
        let features = &mut self.features;
        match code {
            StarCode::CallReturn => match self.last_caller.clone() {
                Some(caller) if caller.number != "anonymous" => self.dial(caller.number),
                _ => self.fail_dialing(),
            },
            StarCode::Redial => match self.last_dialled.clone() {
                Some(number) => self.dial(number),
                None => self.fail_dialing(),
            },
            StarCode::ForwardAll(number) => features.forward.all = Some(number),
            StarCode::ForwardBusy(number) => features.forward.busy = Some(number),
            StarCode::ForwardNoAnswer(number) => features.forward.no_answer = Some(number),
            StarCode::CancelForwards => {
                features.forward.all = None;
                features.forward.busy = None;
                features.forward.no_answer = None;
            }
            StarCode::BlockCallerId => self.next_call.hide_id = Some(true),
            StarCode::ShowCallerId => self.next_call.hide_id = Some(false),
            StarCode::CancelCallWaiting => self.next_call.no_call_waiting = true,
            StarCode::RejectAnonymous => features.reject_anonymous = true,
            StarCode::AcceptAnonymous => features.reject_anonymous = false,
            StarCode::DndOn => features.dnd = true,
            StarCode::DndOff => features.dnd = false,
        }
    }

    fn dial_collected(&mut self) {
        if self.digits.is_empty() {
            self.digit_deadline = None;
            return;
        }
        let number = std::mem::take(&mut self.digits);
        self.dial(number);
    }

    /// Places a call to `number` from dial tone; with a call on hold it is a consultation
    /// call (a flash makes a conference of the two, on-hook transfers).
    fn dial(&mut self, number: String) {
        self.digit_deadline = None;
        self.digits.clear();
        let next = std::mem::take(&mut self.next_call);
        let consultation = self.held_call().is_some();
        let id = self.place(number.clone(), None, next);
        if let Some(call) = self.call_mut(id) {
            call.consultation = consultation;
        }
        self.last_dialled = Some(number);
    }

    /// Adds an outgoing call and asks for it; the handset goes with it.
    pub(super) fn place(
        &mut self,
        number: String,
        replaces: Option<String>,
        next: NextCall,
    ) -> u64 {
        let id = self.new_id();
        let anonymous = next.hide_id.unwrap_or(self.features.caller_id_blocked);
        self.calls.push(Call {
            id,
            direction: Direction::Outgoing,
            state: CallState::Dialing,
            remote: Party {
                number: shown_number(&number),
                name: None,
            },
            codec: None,
            ring_pattern: None,
            early_media: false,
            consultation: false,
            recall: false,
            no_call_waiting: next.no_call_waiting,
            no_answer_at: None,
        });
        self.push(Action::PlaceCall {
            call: id,
            number,
            anonymous,
            replaces,
        });
        self.active = Some(id);
        self.mode = Mode::Call;
        id
    }

    pub(super) fn fail_dialing(&mut self) {
        self.digit_deadline = None;
        self.digits.clear();
        self.mode = Mode::Reorder;
    }
}

/// What the status shows for a dialled number or a SIP URI (a transfer's target): the
/// URI's user part, as for a caller.
fn shown_number(dialled: &str) -> String {
    let Some(rest) = dialled
        .strip_prefix("sip:")
        .or_else(|| dialled.strip_prefix("sips:"))
    else {
        return dialled.to_owned();
    };
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_owned(),
        None => rest.split([';', '?']).next().unwrap_or(rest).to_owned(),
    }
}

/// The key of a one-key number (a speed dial), if `digits` is one.
fn single_key(digits: &str) -> Option<char> {
    let mut keys = digits.chars();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Some(key),
        _ => None,
    }
}
