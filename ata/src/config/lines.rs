//! One line's configuration ([`LineConfig`]), and the device's lines from the `[[line]]`
//! tables and the `--line` flags: a table with
//! `count = N` is a bank of N lines numbered from its `user`; flags replace the file's lines by
//! position and add the rest; the per-line flags (`--audio-in`...) apply to every line.

use std::path::PathBuf;

use super::file::{FileLine, Overrides};
use super::values::{parse_audio_in, parse_usb_audio_device, parse_usb_hid_device, AudioIn};
use crate::error::AtaError;

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

/// The most lines one device may have: enough for a load test, and a bound on a typo.
pub const MAX_LINES: usize = 1000;

pub(super) fn merge_lines(
    file_lines: Vec<FileLine>,
    flags: &Overrides,
) -> Result<Vec<LineConfig>, AtaError> {
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
pub(super) fn line_users(line: &FileLine) -> Result<Vec<String>, AtaError> {
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

pub(super) fn is_user_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/#".contains(&b)
}
