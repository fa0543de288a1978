//! Hook flash, as a Cisco ATA's `flash_mode = "local"` does it (and sent to the far end
//! otherwise), and the three-way conference it builds:
//!
//! - talking, a call waiting: hold the current call, answer the waiting one;
//! - talking, a call on hold that was not dialled from it: swap the two;
//! - talking to a consultation call (dialled while the other was held): join all three in
//!   a conference, mixed by the line; before the consultation call answers, drop it instead;
//! - talking, nothing else: hold the call and give dial tone for a consultation call;
//! - in a conference: drop the party added last;
//! - dial tone, busy or reorder with a call on hold: back to the held call (or answer the
//!   waiting one).

use super::{Action, CallState, Mode, Phone};

impl Phone {
    /// Hook flash. The error says why it did nothing.
    pub fn flash(&mut self) -> Result<(), &'static str> {
        if !self.off_hook {
            return Err("flash needs the handset off-hook");
        }
        if !self.flash_is_local() {
            let talking = self
                .active_call()
                .filter(|c| matches!(c.state, CallState::Connected | CallState::Conference));
            let id = talking
                .map(|c| c.id)
                .ok_or("flash needs a connected call")?;
            self.push(Action::SendFlash(id));
            return Ok(());
        }
        let result = if self.conference {
            self.drop_last_party();
            Ok(())
        } else if self.mode == Mode::Call {
            self.flash_in_call()
        } else {
            self.flash_back()
        };
        self.refresh();
        result
    }

    fn flash_in_call(&mut self) -> Result<(), &'static str> {
        let active = self.active_call().ok_or("flash needs a connected call")?;
        let (id, state, consultation) = (active.id, active.state, active.consultation);
        let held = self.held_call();
        match state {
            CallState::Connected => {
                if let Some(waiting) = self.waiting_call() {
                    self.hold(id);
                    self.push(Action::Answer(waiting));
                    self.set_state(waiting, CallState::Connected);
                    if let Some(call) = self.call_mut(waiting) {
                        call.no_answer_at = None;
                    }
                    self.active = Some(waiting);
                } else if let (Some(held), true) = (held, consultation) {
                    self.push(Action::Resume(held));
                    self.set_state(held, CallState::Conference);
                    self.set_state(id, CallState::Conference);
                    self.conference = true;
                    self.active = Some(held);
                } else if let Some(held) = held {
                    self.hold(id);
                    self.resume(held);
                } else {
                    self.hold(id);
                    self.active = None;
                    self.mode = Mode::Dialing;
                    self.digits.clear();
                }
                Ok(())
            }
            CallState::Dialing | CallState::Ringing if held.is_some() => {
                self.end(id);
                if let Some(held) = held {
                    self.resume(held);
                }
                Ok(())
            }
            _ => Err("flash needs a connected call"),
        }
    }

    /// Dial tone, busy or reorder while a call is held or waiting: back to it.
    fn flash_back(&mut self) -> Result<(), &'static str> {
        self.digits.clear();
        self.digit_deadline = None;
        if let Some(held) = self.held_call() {
            self.resume(held);
            return Ok(());
        }
        let waiting = self
            .calls
            .iter()
            .find(|c| matches!(c.state, CallState::Waiting | CallState::Ringing))
            .filter(|c| c.direction == super::Direction::Incoming)
            .map(|c| c.id);
        if let Some(waiting) = waiting {
            self.push(Action::Answer(waiting));
            self.set_state(waiting, CallState::Connected);
            self.active = Some(waiting);
            self.mode = Mode::Call;
            return Ok(());
        }
        Err("flash needs a connected call")
    }

    /// The third flash: the party added last leaves; the first stays connected.
    fn drop_last_party(&mut self) {
        self.conference = false;
        let parties: Vec<_> = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Conference)
            .map(|c| c.id)
            .collect();
        if let [first, .., last] = parties[..] {
            self.end(last);
            self.set_state(first, CallState::Connected);
            self.active = Some(first);
        }
    }

    /// Hanging up a conference: both calls end, or the two far ends are joined by an
    /// attended transfer (`conference_hangup = "transfer"`).
    pub(super) fn hang_up_conference(&mut self) {
        self.conference = false;
        let parties: Vec<_> = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Conference)
            .map(|c| c.id)
            .collect();
        match (parties.as_slice(), self.features.conference_hangup) {
            (&[first, second], crate::features::ConferenceHangup::Transfer) => {
                self.transfer(first, second)
            }
            _ => parties.into_iter().for_each(|id| self.end(id)),
        }
    }

    fn hold(&mut self, id: u64) {
        self.push(Action::Hold(id));
        self.set_state(id, CallState::Held);
    }

    fn resume(&mut self, id: u64) {
        self.push(Action::Resume(id));
        self.set_state(id, CallState::Connected);
        self.active = Some(id);
        self.mode = Mode::Call;
    }
}
