//! A user's voicemail counts, which the proxy keeps as the lab's message-waiting notifier
//! (RFC 3842): how many voice messages are new and how many old. They live beside the
//! bindings because they belong to the same user and must survive a restart the same way:
//! the store keeps them in a table of their own (`store.rs`), written through the same
//! writer as a [`super::BindingChange::Mailbox`].
//!
//! The text form `NEW/OLD` (`2/1`; `2` alone means `2/0`) is what `dialtone-proxy ctl mwi`
//! and the admin API (`POST /api/mwi/USER`) take, as RFC 3842's `Voice-Message: 2/1` writes
//! them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A mailbox's voice-message counts (RFC 3842 section 5: `Voice-Message: NEW/OLD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageCounts {
    /// Messages not yet heard.
    pub new: u32,
    /// Messages heard and kept.
    pub old: u32,
}

/// Why counts could not be set or read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MailboxError {
    /// No such user: not configured, and not registered either.
    #[error("unknown user {0}: not a configured user of this proxy, and not registered")]
    UnknownUser(String),
    /// The counts' text is not `NEW` or `NEW/OLD`.
    #[error("malformed counts {text:?}: {reason} (expected NEW or NEW/OLD, e.g. 2/1)")]
    BadCounts { text: String, reason: &'static str },
}

impl MessageCounts {
    /// Parses `NEW/OLD` or `NEW` (old then 0), white space around each number allowed.
    pub fn parse(text: &str) -> Result<MessageCounts, MailboxError> {
        let bad = |reason| MailboxError::BadCounts {
            text: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("no counts"));
        }
        let (new, old) = match trimmed.split_once('/') {
            Some((new, old)) => (new, Some(old)),
            None => (trimmed, None),
        };
        let number = |part: &str, which| {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(which));
            }
            part.parse::<u32>().map_err(|_| bad("a count is too large"))
        };
        Ok(MessageCounts {
            new: number(new, "NEW is not a whole number")?,
            old: match old {
                Some(old) => number(old, "OLD is not a whole number")?,
                None => 0,
            },
        })
    }

    /// True when a message waits (RFC 3842 section 5: `Messages-Waiting: yes` when any
    /// message is new).
    pub fn waiting(&self) -> bool {
        self.new > 0
    }
}

impl std::fmt::Display for MessageCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.new, self.old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_as_new_slash_old_and_old_defaults_to_zero() {
        assert_eq!(
            MessageCounts::parse("2/1"),
            Ok(MessageCounts { new: 2, old: 1 })
        );
        assert_eq!(
            MessageCounts::parse(" 3 "),
            Ok(MessageCounts { new: 3, old: 0 })
        );
        assert_eq!(MessageCounts::parse("0/0").unwrap().to_string(), "0/0");
    }

    #[test]
    fn malformed_counts_name_the_problem() {
        for (text, reason) in [
            ("", "no counts"),
            ("x/1", "NEW is not a whole number"),
            ("1/-2", "OLD is not a whole number"),
            ("2/", "OLD is not a whole number"),
            ("99999999999", "a count is too large"),
        ] {
            assert_eq!(
                MessageCounts::parse(text),
                Err(MailboxError::BadCounts {
                    text: text.into(),
                    reason
                }),
                "{text}"
            );
        }
    }
}
