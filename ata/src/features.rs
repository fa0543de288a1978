//! The subscriber features of a line, as configured ([`Features`]): call waiting, call
//! forward, caller ID blocking, anonymous call rejection, do not disturb, what hook flash does
//! and what hanging up a conference does, the star codes and the speed dials.
//!
//! Plain data with the Cisco ATA's defaults, read by `config` (from the TOML keys of the same
//! names) and by `line::phone`, which keeps the line's live copy (star codes change it). A
//! leaf module, so that both can use it without an arrow between them. How dialled digits are
//! matched against the star codes is in [`star_codes`].

pub mod star_codes;

use std::collections::BTreeMap;

pub use star_codes::{StarCode, StarCodes, StarVerdict};

/// Where calls are forwarded (RFC 5806 reasons `unconditional`, `user-busy`, `no-answer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Forwards {
    /// Every call, before it rings.
    pub all: Option<String>,
    /// Calls that find the line busy.
    pub busy: Option<String>,
    /// Calls not answered within `no_answer_seconds`.
    pub no_answer: Option<String>,
}

/// What hook flash does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashMode {
    /// The ATA's own features: hold, call waiting, three-way calling, transfer.
    Local,
    /// Sent to the far end as RFC 4733 event 16 (for a PBX's features).
    Rfc4733,
    /// Sent to the far end as a SIP INFO (`application/hook-flash`).
    Info,
}

impl FlashMode {
    /// Parses `local`, `rfc4733` or `info`.
    pub fn parse(text: &str) -> Option<FlashMode> {
        match text {
            "local" => Some(FlashMode::Local),
            "rfc4733" => Some(FlashMode::Rfc4733),
            "info" => Some(FlashMode::Info),
            _ => None,
        }
    }
}

/// What hanging up a three-way conference does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConferenceHangup {
    /// Ends both calls.
    End,
    /// Joins the two far ends by an attended transfer.
    Transfer,
}

/// A line's configured features. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// A second call while talking rings through as a waiting call.
    pub call_waiting: bool,
    /// Our calls go out anonymous unless `*82` is dialled first.
    pub caller_id_blocked: bool,
    /// Anonymous callers get 433.
    pub reject_anonymous: bool,
    /// Every incoming call gets 486.
    pub dnd: bool,
    /// Call forward targets.
    pub forward: Forwards,
    /// Ringing time before forward on no answer.
    pub no_answer_seconds: u32,
    /// Hook flash.
    pub flash_mode: FlashMode,
    /// Hanging up a conference.
    pub conference_hangup: ConferenceHangup,
    /// The star codes.
    pub star_codes: StarCodes,
    /// One key, then `#`, dials the number.
    pub speed_dial: BTreeMap<char, String>,
}

/// Seconds of ringing before a call is forwarded on no answer (the usual ATA default).
pub const DEFAULT_NO_ANSWER_SECONDS: u32 = 20;

impl Default for Features {
    fn default() -> Self {
        Features {
            call_waiting: true,
            caller_id_blocked: false,
            reject_anonymous: false,
            dnd: false,
            forward: Forwards::default(),
            no_answer_seconds: DEFAULT_NO_ANSWER_SECONDS,
            flash_mode: FlashMode::Local,
            conference_hangup: ConferenceHangup::End,
            star_codes: StarCodes::default(),
            speed_dial: BTreeMap::new(),
        }
    }
}
