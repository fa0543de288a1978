//! A call arriving on the line: whether it rings, waits, is forwarded or refused, in the
//! order a Cisco ATA applies its features (do not disturb, anonymous call rejection,
//! forward-all, then the line's own state: idle rings, talking waits if call waiting allows,
//! otherwise forward on busy or 486); the no-answer forward of a ringing call; and an INVITE
//! with `Replaces` (RFC 3891), which takes the place of a call of ours at once.

use std::time::{Duration, Instant};

use super::{Action, Call, CallId, CallState, Direction, Mode, Party, Phone};

/// Who is calling, as the line actor read it from the INVITE (`line::caller_id`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The number and name to show.
    pub party: Party,
    /// The caller hid its identity (RFC 3323 `Privacy: id`, or an anonymous From).
    pub anonymous: bool,
    /// The ring cadence asked for in `Alert-Info`, if it names one we have.
    pub ring_pattern: Option<String>,
}

/// What becomes of an arriving call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// It rings the line (180).
    Ring,
    /// It waits behind the active call (180, call-waiting tone).
    Wait,
    /// It is refused with this status (486 busy or do not disturb, 433 anonymous).
    Reject(u16),
    /// It is redirected (302) at once.
    Forward {
        /// Where to.
        target: String,
        /// The RFC 5806 reason.
        reason: &'static str,
    },
}

impl Phone {
    /// A call arrives; returns its id and what becomes of it.
    pub fn incoming_call(&mut self, now: Instant, caller: Caller) -> (CallId, Disposition) {
        let id = self.new_id();
        let disposition = self.dispose(&caller);
        if !caller.anonymous {
            self.last_caller = Some(caller.party.clone());
        }
        let state = match disposition {
            Disposition::Ring => CallState::Ringing,
            Disposition::Wait => CallState::Waiting,
            _ => return (id, disposition),
        };
        let no_answer_at = self
            .features
            .forward
            .no_answer
            .is_some()
            .then(|| now + Duration::from_secs(u64::from(self.features.no_answer_seconds)));
        self.calls.push(Call {
            id,
            direction: Direction::Incoming,
            state,
            remote: caller.party,
            codec: None,
            ring_pattern: caller.ring_pattern,
            early_media: false,
            consultation: false,
            recall: false,
            no_call_waiting: false,
            no_answer_at,
        });
        self.refresh();
        (id, disposition)
    }

    /// An INVITE with `Replaces` naming our call `old`: the new call takes its place,
    /// answered at once, and `old` is hung up. `None` when `old` is not a call that talks
    /// (the caller then gets 481).
    pub fn replace_call(&mut self, old: CallId, caller: Caller) -> Option<CallId> {
        let state = self.call(old).map(|c| c.state).filter(|s| {
            matches!(
                s,
                CallState::Connected | CallState::Held | CallState::Conference
            )
        })?;
        let id = self.new_id();
        self.calls.push(Call {
            id,
            direction: Direction::Incoming,
            state,
            remote: caller.party,
            codec: None,
            ring_pattern: None,
            early_media: false,
            consultation: false,
            recall: false,
            no_call_waiting: false,
            no_answer_at: None,
        });
        self.push(Action::Answer(id));
        self.end(old);
        if self.active == Some(old) {
            self.active = Some(id);
        }
        self.refresh();
        Some(id)
    }

    fn dispose(&self, caller: &Caller) -> Disposition {
        let features = &self.features;
        if features.dnd {
            return Disposition::Reject(486);
        }
        if caller.anonymous && features.reject_anonymous {
            // RFC 5079: 433 Anonymity Disallowed.
            return Disposition::Reject(433);
        }
        if let Some(target) = &features.forward.all {
            return Disposition::Forward {
                target: target.clone(),
                reason: "unconditional",
            };
        }
        let live = self.calls.iter().any(|c| c.state != CallState::Ending);
        if !self.off_hook && !live {
            return Disposition::Ring;
        }
        if self.may_wait() {
            return Disposition::Wait;
        }
        match &features.forward.busy {
            Some(target) => Disposition::Forward {
                target: target.clone(),
                reason: "user-busy",
            },
            None => Disposition::Reject(486),
        }
    }

    /// Call waiting: one call talking (not a conference, not dialled after `*70`), nothing
    /// else ringing or waiting, and call waiting on.
    fn may_wait(&self) -> bool {
        let talking = self.active_call().is_some_and(|c| {
            c.state == CallState::Connected && !c.no_call_waiting && self.mode == Mode::Call
        });
        let others = self
            .calls
            .iter()
            .filter(|c| c.state != CallState::Ending)
            .count();
        self.features.call_waiting && talking && !self.conference && others == 1
    }

    /// Forwards the ringing or waiting calls whose no-answer time is up.
    pub(super) fn no_answer_timeout(&mut self, now: Instant) {
        let target = self.features.forward.no_answer.clone();
        let mut due = Vec::new();
        for call in &mut self.calls {
            if call.no_answer_at.is_some_and(|at| at <= now) {
                call.no_answer_at = None;
                // Still unanswered, and the forward was not cancelled meanwhile (`#73#`).
                if matches!(call.state, CallState::Ringing | CallState::Waiting) {
                    if let Some(target) = &target {
                        call.state = CallState::Ending;
                        due.push((call.id, target.clone()));
                    }
                }
            }
        }
        for (id, target) in due {
            self.push(Action::Forward {
                call: id,
                target,
                reason: "no-answer",
            });
        }
    }
}
