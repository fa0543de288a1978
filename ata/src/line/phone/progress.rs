//! What the calls report to the line (ringing, early media, answered, ended, gone) and what
//! the subscriber hears of it; and the transferee's side of a transfer (RFC 3515), where the
//! far end asks us to call someone else.

use super::{CallId, CallState, Direction, Mode, NextCall, Phone};
use crate::call::news::CallOutcome;

impl Phone {
    /// The far end of our call is ringing.
    pub fn call_ringing(&mut self, id: CallId) {
        if let Some(call) = self.call_mut(id) {
            if call.direction == Direction::Outgoing && call.state == CallState::Dialing {
                call.state = CallState::Ringing;
            }
        }
        self.refresh();
    }

    /// The far end sends early media: its audio replaces the local ringback tone.
    pub fn call_early_media(&mut self, id: CallId, codec: String) {
        if let Some(call) = self.call_mut(id) {
            if matches!(call.state, CallState::Dialing | CallState::Ringing) {
                call.state = CallState::Ringing;
                call.early_media = true;
                call.codec = Some(codec);
            }
        }
        self.refresh();
    }

    /// Media flows in the call (our call was answered, or we answered).
    pub fn call_connected(&mut self, id: CallId, codec: String) {
        if let Some(call) = self.call_mut(id) {
            call.codec = Some(codec);
            if call.direction == Direction::Outgoing
                && matches!(call.state, CallState::Dialing | CallState::Ringing)
            {
                call.state = CallState::Connected;
            }
        }
        self.refresh();
    }

    /// The call ended; `outcome` says how the subscriber hears it if it was the active call.
    pub fn call_ended(&mut self, id: CallId, outcome: CallOutcome) {
        let Some(was) = self.call(id).map(|c| c.state) else {
            return;
        };
        self.set_state(id, CallState::Ending);
        if was == CallState::Conference {
            // The other party stays, as a plain call.
            self.conference = false;
            let other = self
                .calls
                .iter()
                .find(|c| c.state == CallState::Conference)
                .map(|c| c.id);
            if let Some(other) = other {
                self.set_state(other, CallState::Connected);
                self.active = Some(other);
            }
        } else if self.active == Some(id) && was != CallState::Ending {
            self.active = None;
            if self.off_hook && self.mode == Mode::Call {
                self.mode = match outcome {
                    CallOutcome::Failed(486 | 600) => Mode::Busy,
                    CallOutcome::Failed(_) => Mode::Reorder,
                    _ => Mode::Disconnected,
                };
            }
        }
        self.refresh();
    }

    /// The call's actor stopped: the call is gone from the line. One that vanished without
    /// saying how (it could not start) ends as a failure, so the phone does not believe it
    /// is still in it.
    pub fn call_gone(&mut self, id: CallId) {
        if self.call(id).is_some_and(|c| c.state != CallState::Ending) {
            self.call_ended(id, CallOutcome::Failed(500));
        }
        self.calls.retain(|c| c.id != id);
        if self.active == Some(id) {
            self.active = None;
        }
        self.refresh();
    }

    /// Transferee: the far end of `old` asked us (REFER) to call `target`, replacing the
    /// dialog `replaces` names if it is an attended transfer. The new call takes the
    /// handset; `old` stays up until the transferor hangs it up.
    pub fn referred(&mut self, old: CallId, target: String, replaces: Option<String>) -> CallId {
        self.set_state(old, CallState::Ending);
        let id = self.place(target, replaces, NextCall::default());
        self.refresh();
        id
    }
}
