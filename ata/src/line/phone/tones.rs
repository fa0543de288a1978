//! What the handset should play, from the phone's state: the tone (dial, stutter dial
//! while messages wait or forward-all is on, ringback, busy, reorder, the call-waiting tone
//! over a call) and the ringer while a call rings the on-hook line. Only changes become
//! actions.

use dialtone_media::Tone;

use super::{Action, CallState, Direction, Mode, Phone};

impl Phone {
    /// Tells the hardware what it should play now, if that changed: the tone of the state,
    /// and the ringer while a call rings an on-hook line.
    pub(super) fn refresh(&mut self) {
        let tone = self.desired_tone();
        if tone != self.tone {
            self.tone = tone;
            self.push(Action::Tone(tone));
        }
        let ringer = !self.off_hook && self.alerting().is_some();
        if ringer != self.ringer {
            self.ringer = ringer;
            self.push(Action::Ringer(ringer));
        }
    }

    fn desired_tone(&self) -> Option<Tone> {
        if !self.off_hook {
            return None;
        }
        match self.mode {
            Mode::Idle => None,
            Mode::Dialing if !self.digits.is_empty() => None,
            Mode::Dialing if self.features.forward.all.is_some() || self.messages.new > 0 => {
                Some(Tone::StutterDial)
            }
            Mode::Dialing => Some(Tone::Dial),
            Mode::Busy => Some(Tone::Busy),
            Mode::Reorder | Mode::Disconnected => Some(Tone::Reorder),
            Mode::Call => match self.active_call() {
                Some(c)
                    if c.direction == Direction::Outgoing
                        && c.state == CallState::Ringing
                        && !c.early_media =>
                {
                    Some(Tone::Ringback)
                }
                Some(c)
                    if matches!(c.state, CallState::Connected | CallState::Conference)
                        && self.waiting_call().is_some() =>
                {
                    Some(Tone::CallWaiting)
                }
                _ => None,
            },
        }
    }
}
