//! One configuration value from its text to its type (a proxy address, a socket address, a
//! port range, a codec list, a microphone, a USB device, seconds), each error naming its key;
//! and the types that only such a value makes ([`ProxyAddress`], [`AudioIn`], [`CodecName`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::AtaError;

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

/// The codecs a device may offer, besides telephone-event which is always offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodecName {
    /// G.711 mu-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus (feature `opus`).
    Opus,
    /// G.729 Annex A (feature `g729`).
    G729,
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

/// A DNS server: `IP` (port 53) or `IP:PORT`, IPv6 with a port in brackets.
pub(super) fn parse_dns_server(text: &str) -> Result<SocketAddr, AtaError> {
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    text.parse()
        .map_err(|_| AtaError::config("dns", format!("`{text}` is not IP or IP:PORT")))
}

pub(super) fn parse_socket(key: &'static str, text: &str) -> Result<SocketAddr, AtaError> {
    text.parse()
        .map_err(|_| AtaError::config(key, format!("`{text}` is not IP:PORT")))
}

pub(super) fn parse_port_range(text: &str) -> Result<(u16, u16), AtaError> {
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

pub(super) fn parse_codecs(text: &str) -> Result<Vec<CodecName>, AtaError> {
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
            "g729" if cfg!(feature = "g729") => CodecName::G729,
            "g729" => {
                return Err(AtaError::config(
                    "codecs",
                    "g729 needs dialtone-ata built with the `g729` feature",
                ))
            }
            other => {
                return Err(AtaError::config(
                    "codecs",
                    format!("`{other}` is not one of pcmu, pcma, opus, g729"),
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
pub(super) fn parse_usb_audio_device(text: &str) -> Result<String, AtaError> {
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
pub(super) fn parse_usb_hid_device(text: &str) -> Result<PathBuf, AtaError> {
    if text.starts_with("/dev/hidraw") || text.starts_with("/dev/input/event") {
        return Ok(PathBuf::from(text));
    }
    Err(AtaError::config(
        "usb_hid_device",
        format!("`{text}` is neither /dev/hidrawN nor /dev/input/eventN"),
    ))
}

pub(super) fn seconds(key: &'static str, value: f64) -> Result<Duration, AtaError> {
    if !value.is_finite() || !(0.0..=86_400.0).contains(&value) {
        return Err(AtaError::config(
            key,
            format!("{value} is not 0 to 86400 seconds"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}
