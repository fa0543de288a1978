//! What a line reports of itself to the control API (`GET /lines`, and the answer to every
//! command): [`LineStatus`] with its current [`CallStatus`], every call of the line
//! ([`CallEntry`]) and its features' state. Plain data, serialisable both ways, so that `ctl`
//! reads what `control` writes; [`features_of`] and [`calls_of`] read them from the phone.

use dialtone_media::Tone;
use serde::{Deserialize, Serialize};

use super::phone::{Direction, Phone};

/// A line's state, as the control API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// The proxy the line uses now, `IP:PORT` (the primary, or a backup after a failover).
    #[serde(default)]
    pub proxy: Option<String>,
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
    /// Every call of the line, in order of arrival; an ended call is not among them.
    #[serde(default)]
    pub calls: Vec<CallEntry>,
    /// Message waiting (RFC 3842).
    #[serde(default)]
    pub mwi: MwiStatus,
    /// Call forward targets.
    #[serde(default)]
    pub forward: ForwardStatus,
    /// Do not disturb.
    #[serde(default)]
    pub dnd: bool,
    /// Call waiting on.
    #[serde(default)]
    pub call_waiting: bool,
    /// Our calls hide the caller ID by default.
    #[serde(default)]
    pub caller_id_blocked: bool,
    /// The distinctive ring of the call ringing or waiting (`Bellcore-dr2`...).
    #[serde(default)]
    pub ring_pattern: Option<String>,
    /// Who called last.
    #[serde(default)]
    pub last_caller: Option<Remote>,
}

/// One call of the line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CallEntry {
    /// The line-local call id.
    pub id: String,
    /// `incoming` or `outgoing`.
    pub direction: String,
    /// `dialing`, `ringing`, `waiting`, `connected`, `held`, `conference` or `ending`.
    pub state: String,
    /// The other party.
    pub remote: Remote,
    /// The negotiated codec once media flows.
    pub codec: Option<String>,
}

/// A caller or callee.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Remote {
    /// The number (`anonymous` when hidden).
    pub number: String,
    /// The display name.
    pub name: Option<String>,
}

/// Message-waiting state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MwiStatus {
    /// New messages wait.
    pub waiting: bool,
    /// New messages.
    pub new: u32,
    /// Old messages.
    pub old: u32,
}

/// Call forward targets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ForwardStatus {
    /// Every call.
    pub all: Option<String>,
    /// When busy.
    pub busy: Option<String>,
    /// When not answered in time.
    pub no_answer: Option<String>,
    /// That time.
    pub no_answer_seconds: u32,
}

/// Fills `status`'s feature fields (everything but the hardware's and the calls') from the
/// phone.
pub fn features_of(phone: &Phone, status: &mut LineStatus) {
    let features = phone.features();
    let messages = phone.messages();
    status.mwi = MwiStatus {
        waiting: messages.new > 0,
        new: messages.new,
        old: messages.old,
    };
    status.forward = ForwardStatus {
        all: features.forward.all.clone(),
        busy: features.forward.busy.clone(),
        no_answer: features.forward.no_answer.clone(),
        no_answer_seconds: features.no_answer_seconds,
    };
    status.dnd = features.dnd;
    status.call_waiting = features.call_waiting;
    status.caller_id_blocked = features.caller_id_blocked;
    status.ring_pattern = phone.ring_pattern().map(str::to_owned);
    status.last_caller = phone.last_caller().map(|p| Remote {
        number: p.number.clone(),
        name: p.name.clone(),
    });
}

/// The phone's calls as the control API lists them.
pub fn calls_of(phone: &Phone) -> Vec<CallEntry> {
    phone
        .calls()
        .iter()
        .map(|c| CallEntry {
            id: c.id.to_string(),
            direction: direction_name(c.direction).to_owned(),
            state: c.state.name().to_owned(),
            remote: Remote {
                number: c.remote.number.clone(),
                name: c.remote.name.clone(),
            },
            codec: c.codec.clone(),
        })
        .collect()
}

/// `incoming` or `outgoing`.
pub fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Incoming => "incoming",
        Direction::Outgoing => "outgoing",
    }
}

/// The current call, as the control API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
        Tone::StutterDial => "stutter-dial".into(),
        Tone::CallWaiting => "call-waiting".into(),
        Tone::Ringback => "ringback".into(),
        Tone::Busy => "busy".into(),
        Tone::Reorder => "reorder".into(),
        Tone::OffHookWarning => "offhook-warning".into(),
        Tone::Dtmf(d) => format!("dtmf {}", d.as_char()),
    }
}
