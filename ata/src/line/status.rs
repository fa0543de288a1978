//! What a line reports of itself to the control API (`GET /lines`, and the answer to every
//! command): [`LineStatus`] with its current [`CallStatus`]. Plain data, serialisable both
//! ways, so that `ctl` reads what `control` writes.

use dialtone_media::Tone;
use serde::Serialize;

/// A line's state, as the control API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct LineStatus {
    /// The line number, from 1.
    pub line: usize,
    /// The SIP user.
    pub user: String,
    /// The telephone state (`idle`, `dialtone`, `ringing`, `connected`...).
    pub state: String,
    /// `on` or `off`.
    pub hook: String,
    /// The registration state (`registered`, `failed`, `disabled`...).
    pub registration: String,
    /// Whether the ringer rings.
    pub ringing: bool,
    /// The tone in the earpiece.
    pub tone: Option<String>,
    /// Digits collected so far.
    pub digits: String,
    /// The current call.
    pub call: Option<CallStatus>,
    /// DTMF keys received in calls since start.
    pub received_digits: String,
    /// How the last call ended (`answered`, `busy`, `failed 404`...).
    pub last_outcome: Option<String>,
}

/// The current call, as the control API shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct CallStatus {
    /// The line-local call id.
    pub id: u64,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// The number dialled, or the caller.
    pub party: String,
    /// Whether media flows.
    pub connected: bool,
    /// The negotiated codec once media flows, as in SDP `a=rtpmap` (`PCMU/8000`,
    /// `opus/48000/2`).
    #[serde(default)]
    pub codec: Option<String>,
}

/// A tone as the status names it.
pub fn tone_name(tone: Tone) -> String {
    match tone {
        Tone::Dial => "dial".into(),
        Tone::Ringback => "ringback".into(),
        Tone::Busy => "busy".into(),
        Tone::Reorder => "reorder".into(),
        Tone::OffHookWarning => "offhook-warning".into(),
        Tone::Dtmf(d) => format!("dtmf {}", d.as_char()),
    }
}
