//! The feature keys of the configuration file (`call_waiting`, `forward_*`, `flash_mode`,
//! `[star_codes]`, `[speed_dial]`...) into [`Features`], each error naming its key.

use super::file::FileConfig;
use crate::error::AtaError;
use crate::features::{ConferenceHangup, Features, FlashMode, DEFAULT_NO_ANSWER_SECONDS};

/// The line features `file` configures, over the Cisco ATA's defaults.
pub(super) fn build_features(file: &FileConfig) -> Result<Features, AtaError> {
    let defaults = Features::default();
    let mut features = Features {
        call_waiting: file.call_waiting.unwrap_or(defaults.call_waiting),
        caller_id_blocked: file.caller_id_blocked.unwrap_or(false),
        reject_anonymous: file.reject_anonymous.unwrap_or(false),
        dnd: file.dnd.unwrap_or(false),
        no_answer_seconds: file.no_answer_seconds.unwrap_or(DEFAULT_NO_ANSWER_SECONDS),
        ..defaults
    };
    if features.no_answer_seconds == 0 {
        return Err(AtaError::config("no_answer_seconds", "must be above zero"));
    }
    features.forward.all = number("forward_all", file.forward_all.as_deref())?;
    features.forward.busy = number("forward_busy", file.forward_busy.as_deref())?;
    features.forward.no_answer = number("forward_no_answer", file.forward_no_answer.as_deref())?;
    if let Some(mode) = &file.flash_mode {
        features.flash_mode = match FlashMode::parse(mode) {
            Some(mode) => mode,
            None => {
                return Err(AtaError::config(
                    "flash_mode",
                    format!("`{mode}` is not one of `local`, `rfc4733`, `info`"),
                ))
            }
        };
    }
    if let Some(hangup) = &file.conference_hangup {
        features.conference_hangup = match hangup.as_str() {
            "end" => ConferenceHangup::End,
            "transfer" => ConferenceHangup::Transfer,
            other => {
                return Err(AtaError::config(
                    "conference_hangup",
                    format!("`{other}` is neither `end` nor `transfer`"),
                ))
            }
        };
    }
    for (key, code) in file.star_codes.iter().flatten() {
        let valid = !code.is_empty() && code.chars().all(|c| "0123456789*#".contains(c));
        if !valid && !code.is_empty() {
            return Err(AtaError::config(
                "star_codes",
                format!("{key} = `{code}`: a code is made of 0-9, * and #"),
            ));
        }
        let slot = features.star_codes.slot(key).ok_or_else(|| {
            AtaError::config(
                "star_codes",
                format!(
                    "`{key}` is not a star code; the names are {}",
                    crate::features::StarCodes::KEYS.join(", ")
                ),
            )
        })?;
        *slot = code.clone();
    }
    for (key, target) in file.speed_dial.iter().flatten() {
        let mut keys = key.chars();
        let key_char = match (keys.next(), keys.next()) {
            (Some(k), None) if k.is_ascii_digit() => k,
            _ => {
                return Err(AtaError::config(
                    "speed_dial",
                    format!("`{key}`: a speed dial is one key, 0 to 9"),
                ))
            }
        };
        let target = number("speed_dial", Some(target))?
            .ok_or_else(|| AtaError::config("speed_dial", format!("`{key}` has no number")))?;
        features.speed_dial.insert(key_char, target);
    }
    Ok(features)
}

/// A forward or speed-dial target: digits, or a SIP URI; empty means none.
fn number(key: &'static str, text: Option<&str>) -> Result<Option<String>, AtaError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let uri = text.starts_with("sip:") || text.starts_with("sips:");
    if uri
        || text
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '+')
    {
        Ok(Some(text.to_owned()))
    } else {
        Err(AtaError::config(
            key,
            format!("`{text}` is neither a number nor a sip: URI"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str) -> Result<Features, AtaError> {
        build_features(&FileConfig::parse(text).expect("TOML"))
    }

    #[test]
    fn the_defaults_are_the_cisco_atas() {
        let f = features("").expect("valid");
        assert!(f.call_waiting);
        assert_eq!(f.no_answer_seconds, 20);
        assert_eq!(f.star_codes.call_return, "*69");
        assert_eq!(f.flash_mode, FlashMode::Local);
    }

    #[test]
    fn every_key_is_read_and_tables_change_codes_and_speed_dials() {
        let f = features(
            "call_waiting = false\nforward_busy = \"7000\"\nno_answer_seconds = 12\n\
             flash_mode = \"rfc4733\"\nconference_hangup = \"transfer\"\n\
             [star_codes]\ndnd_on = \"*55\"\n[speed_dial]\n2 = \"9000\"\n",
        )
        .expect("valid");
        assert!(!f.call_waiting);
        assert_eq!(f.forward.busy.as_deref(), Some("7000"));
        assert_eq!(f.no_answer_seconds, 12);
        assert_eq!(f.flash_mode, FlashMode::Rfc4733);
        assert_eq!(f.conference_hangup, ConferenceHangup::Transfer);
        assert_eq!(f.star_codes.dnd_on, "*55");
        assert_eq!(f.speed_dial.get(&'2').map(String::as_str), Some("9000"));
    }

    #[test]
    fn errors_name_their_key() {
        for (text, key) in [
            ("flash_mode = \"loud\"", "flash_mode"),
            ("conference_hangup = \"drop\"", "conference_hangup"),
            ("forward_all = \"bob\"", "forward_all"),
            ("no_answer_seconds = 0", "no_answer_seconds"),
            ("[star_codes]\nnope = \"*1\"", "star_codes"),
            ("[star_codes]\ndnd_on = \"*a\"", "star_codes"),
            ("[speed_dial]\n12 = \"9000\"", "speed_dial"),
        ] {
            match features(text) {
                Err(AtaError::Config { key: named, .. }) => assert_eq!(named, key, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
