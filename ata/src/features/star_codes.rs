//! Star codes: which feature the digits dialled so far ask for, sans-IO.
//!
//! The defaults are the Cisco ATA's (and the North American vertical service codes): `*69`
//! call return, `*66` redial, `#72<number>#` / `#74<number>#` / `#75<number>#` forward all,
//! on busy, on no answer, `#73#` cancel every forward, `*67` / `*82` hide / show the caller ID
//! of the next call, `*70` no call waiting during the next call, `*77` / `*87` reject / accept
//! anonymous calls, `*78` / `*79` do not disturb on / off. Each is configurable in the
//! `[star_codes]` table under the snake-case name of its [`StarCode`].
//!
//! Three shapes: a code on its own (`*69`), a code that takes a number ended by `#`
//! (`#72` then the number then `#`), and a prefix that changes the call dialled after it
//! (`*67` then the number). `line::phone` asks [`StarCodes::judge`] before the dial plan.

/// What a star code does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StarCode {
    /// Call the last caller.
    CallReturn,
    /// Call the last number dialled again.
    Redial,
    /// Forward every call to this number.
    ForwardAll(String),
    /// Forward calls that find the line busy.
    ForwardBusy(String),
    /// Forward calls not answered in time.
    ForwardNoAnswer(String),
    /// Cancel every forward.
    CancelForwards,
    /// Hide the caller ID of the call dialled next (a prefix).
    BlockCallerId,
    /// Show it, where hiding is the default (a prefix).
    ShowCallerId,
    /// No call waiting during the call dialled next (a prefix).
    CancelCallWaiting,
    /// Reject anonymous calls.
    RejectAnonymous,
    /// Accept anonymous calls again.
    AcceptAnonymous,
    /// Do not disturb on.
    DndOn,
    /// Do not disturb off.
    DndOff,
}

/// A code that takes a number, as the constructor of its [`StarCode`].
type NumberCode = fn(String) -> StarCode;

/// What the digits so far are, as star codes see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StarVerdict {
    /// A whole code: act on it.
    Code(StarCode),
    /// A prefix code followed by `rest` (which the dial plan judges next).
    Prefix(StarCode, String),
    /// The start of a code: wait for more.
    Partial,
    /// Not a code: the dial plan decides.
    NotACode,
}

/// The configured codes. See the module docs for the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarCodes {
    /// `*69`.
    pub call_return: String,
    /// `*66`.
    pub redial: String,
    /// `#72`, then the number and `#`.
    pub forward_all: String,
    /// `#74`, then the number and `#`.
    pub forward_busy: String,
    /// `#75`, then the number and `#`.
    pub forward_no_answer: String,
    /// `#73#`.
    pub cancel_forwards: String,
    /// `*67`, before a number.
    pub block_caller_id: String,
    /// `*82`, before a number.
    pub show_caller_id: String,
    /// `*70`, before a number.
    pub cancel_call_waiting: String,
    /// `*77`.
    pub reject_anonymous: String,
    /// `*87`.
    pub accept_anonymous: String,
    /// `*78`.
    pub dnd_on: String,
    /// `*79`.
    pub dnd_off: String,
}

impl Default for StarCodes {
    fn default() -> Self {
        let code = |text: &str| text.to_owned();
        StarCodes {
            call_return: code("*69"),
            redial: code("*66"),
            forward_all: code("#72"),
            forward_busy: code("#74"),
            forward_no_answer: code("#75"),
            cancel_forwards: code("#73#"),
            block_caller_id: code("*67"),
            show_caller_id: code("*82"),
            cancel_call_waiting: code("*70"),
            reject_anonymous: code("*77"),
            accept_anonymous: code("*87"),
            dnd_on: code("*78"),
            dnd_off: code("*79"),
        }
    }
}

impl StarCodes {
    /// The table's keys, for the configuration's error messages.
    pub const KEYS: [&'static str; 13] = [
        "call_return",
        "redial",
        "forward_all",
        "forward_busy",
        "forward_no_answer",
        "cancel_forwards",
        "block_caller_id",
        "show_caller_id",
        "cancel_call_waiting",
        "reject_anonymous",
        "accept_anonymous",
        "dnd_on",
        "dnd_off",
    ];

    /// The code under `key` (one of [`StarCodes::KEYS`]), to configure it.
    pub fn slot(&mut self, key: &str) -> Option<&mut String> {
        Some(match key {
            "call_return" => &mut self.call_return,
            "redial" => &mut self.redial,
            "forward_all" => &mut self.forward_all,
            "forward_busy" => &mut self.forward_busy,
            "forward_no_answer" => &mut self.forward_no_answer,
            "cancel_forwards" => &mut self.cancel_forwards,
            "block_caller_id" => &mut self.block_caller_id,
            "show_caller_id" => &mut self.show_caller_id,
            "cancel_call_waiting" => &mut self.cancel_call_waiting,
            "reject_anonymous" => &mut self.reject_anonymous,
            "accept_anonymous" => &mut self.accept_anonymous,
            "dnd_on" => &mut self.dnd_on,
            "dnd_off" => &mut self.dnd_off,
            _ => return None,
        })
    }

    /// What `digits` (the keys pressed since dial tone, `#` included) ask for.
    pub fn judge(&self, digits: &str) -> StarVerdict {
        let whole = [
            (&self.call_return, StarCode::CallReturn),
            (&self.redial, StarCode::Redial),
            (&self.cancel_forwards, StarCode::CancelForwards),
            (&self.reject_anonymous, StarCode::RejectAnonymous),
            (&self.accept_anonymous, StarCode::AcceptAnonymous),
            (&self.dnd_on, StarCode::DndOn),
            (&self.dnd_off, StarCode::DndOff),
        ];
        let with_number: [(&String, NumberCode); 3] = [
            (&self.forward_all, StarCode::ForwardAll),
            (&self.forward_busy, StarCode::ForwardBusy),
            (&self.forward_no_answer, StarCode::ForwardNoAnswer),
        ];
        let prefixes = [
            (&self.block_caller_id, StarCode::BlockCallerId),
            (&self.show_caller_id, StarCode::ShowCallerId),
            (&self.cancel_call_waiting, StarCode::CancelCallWaiting),
        ];
        let mut partial = false;
        for (code, feature) in whole {
            if code.is_empty() {
                continue;
            }
            if digits == code.as_str() {
                return StarVerdict::Code(feature);
            }
            partial |= code.starts_with(digits);
        }
        for (code, feature) in with_number {
            if code.is_empty() {
                continue;
            }
            if let Some(rest) = digits.strip_prefix(code.as_str()) {
                match rest.strip_suffix('#') {
                    Some(number) if !number.is_empty() && !number.contains('#') => {
                        return StarVerdict::Code(feature(number.to_owned()))
                    }
                    _ if !rest.contains('#') => return StarVerdict::Partial,
                    _ => {}
                }
            }
            partial |= code.starts_with(digits);
        }
        for (code, feature) in prefixes {
            if code.is_empty() {
                continue;
            }
            if let Some(rest) = digits.strip_prefix(code.as_str()) {
                return StarVerdict::Prefix(feature, rest.to_owned());
            }
            partial |= code.starts_with(digits);
        }
        if partial && !digits.is_empty() {
            StarVerdict::Partial
        } else {
            StarVerdict::NotACode
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_codes_are_recognised_and_their_starts_wait() {
        let codes = StarCodes::default();
        assert_eq!(codes.judge("*69"), StarVerdict::Code(StarCode::CallReturn));
        assert_eq!(codes.judge("*78"), StarVerdict::Code(StarCode::DndOn));
        assert_eq!(
            codes.judge("#73#"),
            StarVerdict::Code(StarCode::CancelForwards)
        );
        assert_eq!(codes.judge("*"), StarVerdict::Partial);
        assert_eq!(codes.judge("*7"), StarVerdict::Partial);
        assert_eq!(codes.judge("#7"), StarVerdict::Partial);
    }

    #[test]
    fn forward_codes_take_a_number_ended_by_hash() {
        let codes = StarCodes::default();
        assert_eq!(codes.judge("#72"), StarVerdict::Partial);
        assert_eq!(codes.judge("#72900"), StarVerdict::Partial);
        assert_eq!(
            codes.judge("#729000#"),
            StarVerdict::Code(StarCode::ForwardAll("9000".into()))
        );
        assert_eq!(
            codes.judge("#757000#"),
            StarVerdict::Code(StarCode::ForwardNoAnswer("7000".into()))
        );
        assert_eq!(codes.judge("#72#"), StarVerdict::NotACode, "no number");
    }

    #[test]
    fn prefix_codes_leave_the_number_after_them() {
        let codes = StarCodes::default();
        assert_eq!(
            codes.judge("*679000"),
            StarVerdict::Prefix(StarCode::BlockCallerId, "9000".into())
        );
        assert_eq!(
            codes.judge("*70"),
            StarVerdict::Prefix(StarCode::CancelCallWaiting, String::new())
        );
    }

    #[test]
    fn numbers_are_not_codes_and_codes_can_be_changed_or_disabled() {
        let mut codes = StarCodes::default();
        assert_eq!(codes.judge("9000"), StarVerdict::NotACode);
        assert_eq!(codes.judge(""), StarVerdict::NotACode);
        *codes.slot("dnd_on").expect("key") = "*55".into();
        *codes.slot("call_return").expect("key") = String::new();
        assert_eq!(codes.judge("*55"), StarVerdict::Code(StarCode::DndOn));
        assert_eq!(codes.judge("*78"), StarVerdict::NotACode);
        assert_eq!(codes.judge("*69"), StarVerdict::NotACode);
        assert!(codes.slot("no_such_code").is_none());
    }
}
