//! The device's configuration: one typed [`Config`], built once at start from the TOML file
//! (`--config FILE`, read into [`FileConfig`]) with the command-line flags ([`Overrides`], filled
//! by `main.rs`) laid on top, then validated. Every error names the key it came from, using
//! the TOML key names (which are also the flag names, `_` for `-`).
//!
//! Everything else (`app.rs` and the actors) receives the finished [`Config`] and never reads
//! the environment or the file again.
//!
//! ```toml
//! proxy = "127.0.0.1:5060"          # IP or domain, optional port
//! bind = "127.0.0.1:0"              # SIP UDP socket (and TCP listener); port 0 picks a free one
//! transport = "udp"                 # or "tcp": requests over TCP, listening on the bind port
//! rtp_ports = "16384-16482"
//! register_interval = 3600          # seconds; 0 = do not register
//! codecs = "pcmu,pcma"              # opus too when built with --features opus
//! dial_plan = "(xxxx|9xxxxxxx.)"    # see dial_plan.rs; empty = digits then # or timeout
//! interdigit_timeout = 5            # seconds
//! control = "127.0.0.1:8070"
//! line_backend = "virtual"          # or "usb" with --features usb-handset
//! auto_answer = 0                   # seconds of ringing before answering; 0 = never
//!
//! [[line]]
//! user = "8000"
//! password = "8000"
//! display_name = "Lab phone"       # optional
//! auth_user = "8000"               # optional, defaults to user
//! audio_in = "tone:1000"           # WAV file, tone:HZ or silence
//! audio_out = "/tmp/8000.wav"      # optional recording of what the handset hears;
//!                                  # {user} is replaced by the line's user
//! usb_audio_device = "USB Phone"   # line_backend = "usb": the ALSA card whose cpal name
//!                                  # contains this (any case); absent = the default card
//! usb_hid_device = "/dev/hidraw3"  # line_backend = "usb": hook and keypad, /dev/hidraw* or
//!                                  # /dev/input/event*; absent = the first hidraw device
//!                                  # whose report descriptor has a Hook Switch (usage page
//!                                  # 0x0B), see line/usb/detect.rs
//!
//! [[line]]                         # a bank of lines for a load test: users 2000 to 2099,
//! user = "2000"                    # all with this table's password and audio
//! count = 100
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::dial_plan::DialPlan;
use crate::error::AtaError;
use crate::identity::SipTransport;

/// Where the proxy is: a host (IP literal or DNS name) and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    /// IP literal or domain name.
    pub host: String,
    /// The port, when given; otherwise SRV decides, or 5060.
    pub port: Option<u16>,
}

/// What a line reads as its handset microphone on the virtual backend.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioIn {
    /// Nothing: zero samples.
    Silence,
    /// A continuous sine at this frequency (Hz).
    Tone(f64),
    /// A WAV file, looped.
    File(PathBuf),
}

/// Which hardware a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineBackend {
    /// Driven by the control API, audio from and to files.
    Virtual,
    /// A USB handset (feature `usb-handset`).
    Usb,
}

/// The codecs a device may offer, besides telephone-event which is always offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus (feature `opus`).
    Opus,
}

/// One line (one FXS port of the real ATA).
#[derive(Debug, Clone, PartialEq)]
pub struct LineConfig {
    /// The SIP user (the phone number).
    pub user: String,
    /// The digest password.
    pub password: String,
    /// The From display name.
    pub display_name: Option<String>,
    /// The digest user name, when it differs from `user`.
    pub auth_user: Option<String>,
    /// The microphone (virtual backend).
    pub audio_in: AudioIn,
    /// Where to record what the handset hears (virtual backend).
    pub audio_out: Option<PathBuf>,
    /// USB backend: the sound card whose name contains this text (any case); `None` = the
    /// host's default devices.
    pub usb_audio_device: Option<String>,
    /// USB backend: the handset's `/dev/hidraw*` or `/dev/input/event*`; `None` = detect.
    pub usb_hid_device: Option<PathBuf>,
}

impl LineConfig {
    /// The digest user name.
    pub fn auth_user(&self) -> &str {
        self.auth_user.as_deref().unwrap_or(&self.user)
    }
}

/// The validated configuration of one device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Outbound proxy and registrar; `None` = only direct calls to IP addresses.
    pub proxy: Option<ProxyAddress>,
    /// The lines, at least one.
    pub lines: Vec<LineConfig>,
    /// The SIP socket.
    pub bind: SocketAddr,
    /// What our requests travel on; with TCP we also listen on `bind`'s port.
    pub transport: SipTransport,
    /// RTP port range, inclusive.
    pub rtp_ports: (u16, u16),
    /// The Expires we ask for; zero disables registration.
    pub register_interval: u32,
    /// Offered codecs, in preference order.
    pub codecs: Vec<CodecName>,
    /// How dialled digits become a call.
    pub dial_plan: DialPlan,
    /// Silence after the last digit before the number is taken as complete.
    pub interdigit_timeout: Duration,
    /// The HTTP control API.
    pub control: SocketAddr,
    /// The line hardware.
    pub line_backend: LineBackend,
    /// Ringing time before answering by itself; `None` = never.
    pub auto_answer: Option<Duration>,
}

/// The TOML file, as written; every field optional so flags can fill the rest.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::proxy`].
    pub proxy: Option<String>,
    /// See [`Config::bind`].
    pub bind: Option<String>,
    /// `udp` or `tcp`.
    pub transport: Option<String>,
    /// `FROM-TO`.
    pub rtp_ports: Option<String>,
    /// Seconds.
    pub register_interval: Option<u32>,
    /// `pcmu,pcma[,opus]`.
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
    /// `[[line]]` tables.
    #[serde(default)]
    pub line: Vec<FileLine>,
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

/// The most lines one device may have: enough for a load test, and a bound on a typo.
pub const MAX_LINES: usize = 1000;

/// The command-line flags, as text; `None` leaves the file's value (or the default).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--proxy`.
    pub proxy: Option<String>,
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

/// Defaults, as documented in the README and `--help`.
pub const DEFAULT_BIND: &str = "127.0.0.1:0";
/// RTP ports: the ATA 186's own default range start, 50 pairs.
pub const DEFAULT_RTP_PORTS: (u16, u16) = (16384, 16482);
/// Registration Expires asked for.
pub const DEFAULT_REGISTER_INTERVAL: u32 = 3600;
/// Control API address.
pub const DEFAULT_CONTROL: &str = "127.0.0.1:8070";
/// Seconds of silence that end a number (the ATA 186 default is 10; 5 is kinder in a lab).
pub const DEFAULT_INTERDIGIT_TIMEOUT: f64 = 5.0;

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

impl Config {
    /// Lays `flags` over `file`, fills defaults and validates.
    pub fn build(file: FileConfig, flags: Overrides) -> Result<Config, AtaError> {
        let lines = merge_lines(file.line, &flags)?;
        let proxy = flags
            .proxy
            .or(file.proxy)
            .filter(|p| !p.is_empty())
            .map(|p| parse_proxy(&p))
            .transpose()?;
        let bind = parse_socket(
            "bind",
            flags.bind.or(file.bind).as_deref().unwrap_or(DEFAULT_BIND),
        )?;
        let transport = match flags
            .transport
            .or(file.transport)
            .as_deref()
            .unwrap_or("udp")
            .to_ascii_lowercase()
            .as_str()
        {
            "udp" => SipTransport::Udp,
            "tcp" => SipTransport::Tcp,
            other => {
                return Err(AtaError::config(
                    "transport",
                    format!("`{other}` is neither `udp` nor `tcp`"),
                ))
            }
        };
        let rtp_ports = match flags.rtp_ports.or(file.rtp_ports) {
            Some(text) => parse_port_range(&text)?,
            None => DEFAULT_RTP_PORTS,
        };
        let register_interval = flags
            .register_interval
            .or(file.register_interval)
            .unwrap_or(DEFAULT_REGISTER_INTERVAL);
        let codecs = parse_codecs(
            flags
                .codecs
                .or(file.codecs)
                .as_deref()
                .unwrap_or("pcmu,pcma"),
        )?;
        let dial_plan = DialPlan::parse(&flags.dial_plan.or(file.dial_plan).unwrap_or_default())
            .map_err(|reason| AtaError::config("dial_plan", reason))?;
        let interdigit_timeout = seconds(
            "interdigit_timeout",
            flags
                .interdigit_timeout
                .or(file.interdigit_timeout)
                .unwrap_or(DEFAULT_INTERDIGIT_TIMEOUT),
        )?;
        if interdigit_timeout.is_zero() {
            return Err(AtaError::config("interdigit_timeout", "must be above zero"));
        }
        let control = parse_socket(
            "control",
            flags
                .control
                .or(file.control)
                .as_deref()
                .unwrap_or(DEFAULT_CONTROL),
        )?;
        let line_backend = match flags
            .line_backend
            .or(file.line_backend)
            .as_deref()
            .unwrap_or("virtual")
        {
            "virtual" => LineBackend::Virtual,
            "usb" if cfg!(feature = "usb-handset") => LineBackend::Usb,
            "usb" => {
                return Err(AtaError::config(
                    "line_backend",
                    "`usb` needs a build with --features usb-handset",
                ))
            }
            other => {
                return Err(AtaError::config(
                    "line_backend",
                    format!("`{other}` is neither `virtual` nor `usb`"),
                ))
            }
        };
        let auto_answer = seconds(
            "auto_answer",
            flags.auto_answer.or(file.auto_answer).unwrap_or(0.0),
        )?;
        Ok(Config {
            proxy,
            lines,
            bind,
            transport,
            rtp_ports,
            register_interval,
            codecs,
            dial_plan,
            interdigit_timeout,
            control,
            line_backend,
            auto_answer: (!auto_answer.is_zero()).then_some(auto_answer),
        })
    }
}

fn merge_lines(file_lines: Vec<FileLine>, flags: &Overrides) -> Result<Vec<LineConfig>, AtaError> {
    let mut lines = Vec::new();
    for file_line in file_lines {
        let audio_in = parse_audio_in(file_line.audio_in.as_deref().unwrap_or("silence"))?;
        let usb_audio_device = file_line
            .usb_audio_device
            .as_deref()
            .map(parse_usb_audio_device)
            .transpose()?;
        let usb_hid_device = file_line
            .usb_hid_device
            .as_deref()
            .map(parse_usb_hid_device)
            .transpose()?;
        for user in line_users(&file_line)? {
            lines.push(LineConfig {
                audio_out: file_line
                    .audio_out
                    .as_ref()
                    .map(|path| PathBuf::from(path.replace("{user}", &user))),
                user,
                password: file_line.password.clone(),
                display_name: file_line.display_name.clone(),
                auth_user: file_line.auth_user.clone(),
                audio_in: audio_in.clone(),
                usb_audio_device: usb_audio_device.clone(),
                usb_hid_device: usb_hid_device.clone(),
            });
        }
    }
    for (index, text) in flags.lines.iter().enumerate() {
        let (user, password) = text.split_once(':').unwrap_or((text.as_str(), ""));
        if user.is_empty() {
            return Err(AtaError::config("line", format!("`{text}` has no user")));
        }
        match lines.get_mut(index) {
            Some(line) => {
                line.user = user.to_owned();
                line.password = password.to_owned();
            }
            None => lines.push(LineConfig {
                user: user.to_owned(),
                password: password.to_owned(),
                display_name: None,
                auth_user: None,
                audio_in: AudioIn::Silence,
                audio_out: None,
                usb_audio_device: None,
                usb_hid_device: None,
            }),
        }
    }
    if lines.len() > MAX_LINES {
        return Err(AtaError::config(
            "line",
            format!("{} lines; at most {MAX_LINES}", lines.len()),
        ));
    }
    if lines.is_empty() {
        return Err(AtaError::config(
            "line",
            "at least one line is needed (--line USER:PASSWORD or [[line]])",
        ));
    }
    for line in &mut lines {
        if line.user.is_empty() || !line.user.bytes().all(is_user_byte) {
            return Err(AtaError::config(
                "line",
                format!("user `{}` is not a plain SIP user part", line.user),
            ));
        }
        if let Some(text) = &flags.audio_in {
            line.audio_in = parse_audio_in(text)?;
        }
        if let Some(text) = &flags.audio_out {
            line.audio_out = Some(PathBuf::from(text.replace("{user}", &line.user)));
        }
        if let Some(text) = &flags.usb_audio_device {
            line.usb_audio_device = Some(parse_usb_audio_device(text)?);
        }
        if let Some(text) = &flags.usb_hid_device {
            line.usb_hid_device = Some(parse_usb_hid_device(text)?);
        }
    }
    Ok(lines)
}

/// The users of one `[[line]]` table: `user`, or `count` of them counting up from it.
fn line_users(line: &FileLine) -> Result<Vec<String>, AtaError> {
    let count = line.count.unwrap_or(1);
    if count <= 1 {
        return Ok(vec![line.user.clone()]);
    }
    if count as usize > MAX_LINES {
        return Err(AtaError::config(
            "count",
            format!("{count} lines; at most {MAX_LINES}"),
        ));
    }
    let first: u64 = line.user.parse().map_err(|_| {
        AtaError::config(
            "count",
            format!("user `{}` must be a number to count from", line.user),
        )
    })?;
    // Keep the width, so "0100" counts 0100, 0101, ...
    let width = line.user.len();
    Ok((0..u64::from(count))
        .map(|i| format!("{:0width$}", first + i))
        .collect())
}

fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/#".contains(&b)
}

/// Parses `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 literal.
pub fn parse_proxy(text: &str) -> Result<ProxyAddress, AtaError> {
    let bad = |reason: &str| AtaError::config("proxy", format!("`{text}`: {reason}"));
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(ProxyAddress {
            host: addr.ip().to_string(),
            port: Some(addr.port()),
        });
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(ProxyAddress {
            host: ip.to_string(),
            port: None,
        });
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (
            host,
            Some(port.parse::<u16>().map_err(|_| bad("bad port"))?),
        ),
        None => (text, None),
    };
    let valid_host = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !valid_host {
        return Err(bad("not a host name or IP address"));
    }
    Ok(ProxyAddress {
        host: host.to_owned(),
        port,
    })
}

fn parse_socket(key: &'static str, text: &str) -> Result<SocketAddr, AtaError> {
    text.parse()
        .map_err(|_| AtaError::config(key, format!("`{text}` is not IP:PORT")))
}

fn parse_port_range(text: &str) -> Result<(u16, u16), AtaError> {
    let bad = || AtaError::config("rtp_ports", format!("`{text}` is not FROM-TO"));
    let (from, to) = text.split_once('-').ok_or_else(bad)?;
    let from: u16 = from.trim().parse().map_err(|_| bad())?;
    let to: u16 = to.trim().parse().map_err(|_| bad())?;
    // RTP takes an even port and RTCP the next one (RFC 3550 section 11).
    if from == 0 || to <= from {
        return Err(AtaError::config(
            "rtp_ports",
            format!("`{text}` must hold at least one pair of ports above 0"),
        ));
    }
    Ok((from, to))
}

fn parse_codecs(text: &str) -> Result<Vec<CodecName>, AtaError> {
    let mut codecs = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let codec = match name.to_ascii_lowercase().as_str() {
            "pcmu" => CodecName::Pcmu,
            "pcma" => CodecName::Pcma,
            "opus" if cfg!(feature = "opus") => CodecName::Opus,
            "opus" => {
                return Err(AtaError::config(
                    "codecs",
                    "opus needs a build with --features opus",
                ))
            }
            other => {
                return Err(AtaError::config(
                    "codecs",
                    format!("`{other}` is not one of pcmu, pcma, opus"),
                ))
            }
        };
        if !codecs.contains(&codec) {
            codecs.push(codec);
        }
    }
    if !codecs
        .iter()
        .any(|c| matches!(c, CodecName::Pcmu | CodecName::Pcma))
    {
        return Err(AtaError::config(
            "codecs",
            "must include pcmu or pcma, which every peer understands",
        ));
    }
    Ok(codecs)
}

/// Parses `silence`, `tone:HZ` or a WAV path.
pub fn parse_audio_in(text: &str) -> Result<AudioIn, AtaError> {
    if text == "silence" {
        return Ok(AudioIn::Silence);
    }
    if let Some(hz) = text.strip_prefix("tone:") {
        let hz: f64 = hz
            .parse()
            .map_err(|_| AtaError::config("audio_in", format!("`{text}`: bad frequency")))?;
        // The 8 kHz clock carries nothing at or above 4 kHz (Nyquist).
        if !(20.0..4000.0).contains(&hz) {
            return Err(AtaError::config(
                "audio_in",
                format!("`{text}`: frequency must be 20 to 3999 Hz"),
            ));
        }
        return Ok(AudioIn::Tone(hz));
    }
    if text.to_ascii_lowercase().ends_with(".wav") {
        return Ok(AudioIn::File(PathBuf::from(text)));
    }
    Err(AtaError::config(
        "audio_in",
        format!("`{text}` is not FILE.wav, tone:HZ or silence"),
    ))
}

/// A sound card name fragment: any text but blank (which would match every card).
fn parse_usb_audio_device(text: &str) -> Result<String, AtaError> {
    let name = text.trim();
    if name.is_empty() {
        return Err(AtaError::config(
            "usb_audio_device",
            "empty; leave the key out to use the default sound card",
        ));
    }
    Ok(name.to_owned())
}

/// A handset HID path: hidraw (raw reports, hook switch included) or an evdev node (keys
/// the kernel mapped; most kernels do not map the hook switch).
fn parse_usb_hid_device(text: &str) -> Result<PathBuf, AtaError> {
    if text.starts_with("/dev/hidraw") || text.starts_with("/dev/input/event") {
        return Ok(PathBuf::from(text));
    }
    Err(AtaError::config(
        "usb_hid_device",
        format!("`{text}` is neither /dev/hidrawN nor /dev/input/eventN"),
    ))
}

fn seconds(key: &'static str, value: f64) -> Result<Duration, AtaError> {
    if !value.is_finite() || !(0.0..=86_400.0).contains(&value) {
        return Err(AtaError::config(
            key,
            format!("{value} is not 0 to 86400 seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_with_line() -> Overrides {
        Overrides {
            lines: vec!["8000:secret".into()],
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_fill_everything_the_flags_leave_out() {
        let config = Config::build(FileConfig::default(), flags_with_line()).expect("valid");
        assert_eq!(config.bind, "127.0.0.1:0".parse().expect("addr"));
        assert_eq!(config.rtp_ports, (16384, 16482));
        assert_eq!(config.register_interval, 3600);
        assert_eq!(config.codecs, [CodecName::Pcmu, CodecName::Pcma]);
        assert_eq!(config.control, "127.0.0.1:8070".parse().expect("addr"));
        assert_eq!(config.interdigit_timeout, Duration::from_secs(5));
        assert_eq!(config.lines[0].user, "8000");
        assert_eq!(config.lines[0].password, "secret");
        assert_eq!(config.auto_answer, None);
        assert!(config.proxy.is_none());
    }

    #[test]
    fn flags_override_the_file_but_keep_its_line_details() {
        let file = FileConfig::parse(
            "proxy = \"sip.example.net\"\nregister_interval = 600\n\
             [[line]]\nuser = \"1\"\npassword = \"x\"\ndisplay_name = \"Lab\"\n\
             audio_in = \"tone:1000\"\n",
        )
        .expect("toml");
        let flags = Overrides {
            proxy: Some("127.0.0.1:5070".into()),
            lines: vec!["8000:8000".into()],
            ..Overrides::default()
        };
        let config = Config::build(file, flags).expect("valid");
        assert_eq!(
            config.proxy,
            Some(ProxyAddress {
                host: "127.0.0.1".into(),
                port: Some(5070)
            })
        );
        assert_eq!(config.register_interval, 600);
        assert_eq!(config.lines[0].user, "8000");
        assert_eq!(config.lines[0].display_name.as_deref(), Some("Lab"));
        assert_eq!(config.lines[0].audio_in, AudioIn::Tone(1000.0));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: [(Overrides, &str); 5] = [
            (
                Overrides {
                    rtp_ports: Some("9-3".into()),
                    ..flags_with_line()
                },
                "rtp_ports",
            ),
            (
                Overrides {
                    codecs: Some("g729".into()),
                    ..flags_with_line()
                },
                "codecs",
            ),
            (
                Overrides {
                    bind: Some("localhost".into()),
                    ..flags_with_line()
                },
                "bind",
            ),
            (
                Overrides {
                    audio_in: Some("tone:9000".into()),
                    ..flags_with_line()
                },
                "audio_in",
            ),
            (Overrides::default(), "line"),
        ];
        for (flags, key) in cases {
            let error = Config::build(FileConfig::default(), flags).expect_err("invalid");
            assert!(
                error.to_string().contains(&format!("`{key}`")),
                "{error} should name {key}"
            );
        }
    }

    #[test]
    fn a_line_table_with_a_count_makes_that_many_numbered_lines() {
        let file = FileConfig::parse(
            "[[line]]\nuser = \"2000\"\npassword = \"pw\"\ncount = 100\n\
             audio_out = \"/tmp/{user}.wav\"\n[[line]]\nuser = \"alice\"\n",
        )
        .expect("toml");
        let config = Config::build(file, Overrides::default()).expect("valid");
        assert_eq!(config.lines.len(), 101);
        assert_eq!(config.lines[0].user, "2000");
        assert_eq!(config.lines[99].user, "2099");
        assert_eq!(config.lines[99].password, "pw");
        assert_eq!(
            config.lines[99].audio_out.as_deref(),
            Some(std::path::Path::new("/tmp/2099.wav"))
        );
        assert_eq!(config.lines[100].user, "alice");
        let bad = FileConfig::parse("[[line]]\nuser = \"bob\"\ncount = 2\n").expect("toml");
        let error = Config::build(bad, Overrides::default()).expect_err("not a number");
        assert!(error.to_string().contains("`count`"), "{error}");
    }

    #[test]
    fn usb_device_keys_come_from_the_line_table_and_flags_win() {
        let file = FileConfig::parse(
            "[[line]]\nuser = \"1\"\nusb_audio_device = \"Yealink\"\n\
             usb_hid_device = \"/dev/hidraw2\"\n[[line]]\nuser = \"2\"\n",
        )
        .expect("toml");
        let config = Config::build(file, Overrides::default()).expect("valid");
        assert_eq!(config.lines[0].usb_audio_device.as_deref(), Some("Yealink"));
        assert_eq!(
            config.lines[0].usb_hid_device.as_deref(),
            Some(std::path::Path::new("/dev/hidraw2"))
        );
        assert_eq!(config.lines[1].usb_hid_device, None);
        let flags = Overrides {
            lines: vec!["8000".into()],
            usb_hid_device: Some("/dev/input/event7".into()),
            ..Overrides::default()
        };
        let config = Config::build(FileConfig::default(), flags).expect("valid");
        assert_eq!(
            config.lines[0].usb_hid_device.as_deref(),
            Some(std::path::Path::new("/dev/input/event7"))
        );
    }

    #[test]
    fn bad_usb_device_values_name_their_key() {
        for (flags, key) in [
            (
                Overrides {
                    usb_hid_device: Some("/dev/sda".into()),
                    ..flags_with_line()
                },
                "usb_hid_device",
            ),
            (
                Overrides {
                    usb_audio_device: Some("  ".into()),
                    ..flags_with_line()
                },
                "usb_audio_device",
            ),
        ] {
            let error = Config::build(FileConfig::default(), flags).expect_err("invalid");
            assert!(error.to_string().contains(&format!("`{key}`")), "{error}");
        }
    }

    #[test]
    fn unknown_file_keys_are_refused_with_their_name() {
        let error = FileConfig::parse("prxy = \"x\"").expect_err("unknown key");
        assert!(error.to_string().contains("prxy"), "{error}");
    }

    #[test]
    fn proxy_accepts_names_ips_and_ports() {
        assert_eq!(
            parse_proxy("proxy.lab:5080").expect("valid"),
            ProxyAddress {
                host: "proxy.lab".into(),
                port: Some(5080)
            }
        );
        assert_eq!(parse_proxy("10.0.0.1").expect("valid").port, None);
        assert_eq!(parse_proxy("[::1]:5060").expect("valid").host, "::1");
        assert!(parse_proxy("bad host").is_err());
    }
}
