//! The configuration as written, before it is checked: the TOML file ([`FileConfig`], one
//! [`FileLine`] per `[[line]]` table) and the command-line flags ([`Overrides`]), all text and
//! all optional. `Config::build` (in `config.rs`) lays one over the other and validates.

use serde::Deserialize;

use crate::error::AtaError;

/// The TOML file, as written; every field optional so flags can fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See `Config::proxies`: one `HOST[:PORT]`, or a list (primary first, then backups).
    pub proxy: Option<OneOrMany>,
    /// DNS servers, `IP[:PORT]`: one or a list.
    pub dns: Option<OneOrMany>,
    /// RFC 3261 T1 in milliseconds.
    pub t1_ms: Option<u64>,
    /// Seconds between OPTIONS probes of the primary proxy while on a backup.
    pub proxy_fallback_interval: Option<f64>,
    /// See `Config::bind`.
    pub bind: Option<String>,
    /// `udp` or `tcp`.
    pub transport: Option<String>,
    /// `FROM-TO`.
    pub rtp_ports: Option<String>,
    /// Seconds.
    pub register_interval: Option<u32>,
    /// `pcmu,pcma[,opus][,g729]`.
    pub codecs: Option<String>,
    /// Pattern text.
    pub dial_plan: Option<String>,
    /// Seconds.
    pub interdigit_timeout: Option<f64>,
    /// `IP:PORT`.
    pub control: Option<String>,
    /// `virtual` or `usb`.
    pub line_backend: Option<String>,
    /// Seconds.
    pub auto_answer: Option<f64>,
    /// Call waiting on (default) or off.
    pub call_waiting: Option<bool>,
    /// Hide the caller ID of every call unless `*82` is dialled.
    pub caller_id_blocked: Option<bool>,
    /// Refuse anonymous calls (433).
    pub reject_anonymous: Option<bool>,
    /// Do not disturb.
    pub dnd: Option<bool>,
    /// Forward every call to this number.
    pub forward_all: Option<String>,
    /// Forward calls that find the line busy.
    pub forward_busy: Option<String>,
    /// Forward calls not answered within `no_answer_seconds`.
    pub forward_no_answer: Option<String>,
    /// Seconds.
    pub no_answer_seconds: Option<u32>,
    /// `local`, `rfc4733` or `info`.
    pub flash_mode: Option<String>,
    /// `end` or `transfer`.
    pub conference_hangup: Option<String>,
    /// Where to subscribe to message-summary (`HOST[:PORT]`); default: the proxy; `none`:
    /// do not subscribe.
    pub mwi_server: Option<String>,
    /// Star codes by feature name (see `features::star_codes`).
    pub star_codes: Option<std::collections::BTreeMap<String, String>>,
    /// One key to a number.
    pub speed_dial: Option<std::collections::BTreeMap<String, String>>,
    /// `[[line]]` tables.
    #[serde(default)]
    pub line: Vec<FileLine>,
}

/// A key written as one string or as a list of them (`proxy`, `dns`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `key = "value"`.
    One(String),
    /// `key = ["first", "second"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

/// One `[[line]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLine {
    /// SIP user.
    pub user: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Digest user.
    pub auth_user: Option<String>,
    /// `FILE.wav`, `tone:HZ` or `silence`.
    pub audio_in: Option<String>,
    /// `FILE.wav`; `{user}` is replaced by the line's user.
    pub audio_out: Option<String>,
    /// USB backend: part of the sound card's name.
    pub usb_audio_device: Option<String>,
    /// USB backend: `/dev/hidraw*` or `/dev/input/event*`.
    pub usb_hid_device: Option<String>,
    /// This many lines from this table, the users counting up from `user` (which must then be
    /// a number); 1 when absent.
    pub count: Option<u32>,
}

/// The command-line flags, as text; `None` leaves the file's value (or the default).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--proxy`, repeatable: primary first, then backups; replaces the file's list.
    pub proxy: Vec<String>,
    /// `--dns`, repeatable; replaces the file's list.
    pub dns: Vec<String>,
    /// `--t1-ms`.
    pub t1_ms: Option<u64>,
    /// `--proxy-fallback-interval`.
    pub proxy_fallback_interval: Option<f64>,
    /// `--line USER:PASSWORD`, repeatable; replaces the file's lines by position, adds the rest.
    pub lines: Vec<String>,
    /// `--bind`.
    pub bind: Option<String>,
    /// `--transport`.
    pub transport: Option<String>,
    /// `--rtp-ports`.
    pub rtp_ports: Option<String>,
    /// `--register-interval`.
    pub register_interval: Option<u32>,
    /// `--codecs`.
    pub codecs: Option<String>,
    /// `--dial-plan`.
    pub dial_plan: Option<String>,
    /// `--interdigit-timeout`.
    pub interdigit_timeout: Option<f64>,
    /// `--control`.
    pub control: Option<String>,
    /// `--line-backend`.
    pub line_backend: Option<String>,
    /// `--audio-in`, applied to every line.
    pub audio_in: Option<String>,
    /// `--audio-out`, applied to every line (with `{user}` replaced by the line's user).
    pub audio_out: Option<String>,
    /// `--auto-answer`.
    pub auto_answer: Option<f64>,
    /// `--usb-audio-device`, applied to every line.
    pub usb_audio_device: Option<String>,
    /// `--usb-hid-device`, applied to every line.
    pub usb_hid_device: Option<String>,
}

impl FileConfig {
    /// Reads and parses a TOML file.
    pub fn load(path: &std::path::Path) -> Result<FileConfig, AtaError> {
        let text = std::fs::read_to_string(path).map_err(|e| AtaError::ConfigFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text).map_err(|e| match e {
            AtaError::ConfigFile { reason, .. } => AtaError::ConfigFile {
                path: path.display().to_string(),
                reason,
            },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<FileConfig, AtaError> {
        toml::from_str(text).map_err(|e| AtaError::ConfigFile {
            path: "<text>".into(),
            reason: e.to_string(),
        })
    }
}
