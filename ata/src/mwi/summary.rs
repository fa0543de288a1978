//! The body of a message-summary NOTIFY (RFC 3842 section 5, `application/simple-message-summary`),
//! read into the two counts a telephone shows, pure.
//!
//! Both ways a summary arrives use it: a NOTIFY in our subscription's dialog
//! ([`super::subscription`]) and the unsolicited NOTIFY the endpoint's router answers itself
//! (`endpoint::router`), which the actor hands here with its body.
//!
//! What is kept from the body: `Messages-Waiting: yes|no` (required by the RFC) and the
//! `Voice-Message: NEW/OLD (URGENT_NEW/URGENT_OLD)` summary line; header names in any case,
//! the urgent counts optional. Peers differ: some voicemail servers send only
//! `Messages-Waiting` (then `yes` counts as one new message, so that stutter dial tone plays),
//! and a `no` wins over a stale `Voice-Message` new count (the telephone must stop stuttering
//! when the server says nothing waits). Other lines (`Message-Account`, fax and text
//! classes, RFC 822-style message headers after a blank line) are ignored.

/// The counts a message-summary body gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageSummary {
    /// New voice messages (or 1 when only `Messages-Waiting: yes` was said).
    pub new: u32,
    /// Old voice messages.
    pub old: u32,
}

/// Reads `body`; `None` when it has no `Messages-Waiting` line (an empty NOTIFY, as a
/// notifier may send while a subscription is pending, says nothing about messages).
pub fn parse_summary(body: &[u8]) -> Option<MessageSummary> {
    let text = std::str::from_utf8(body).ok()?;
    let mut waiting = None;
    let mut voice = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            // The message headers that may follow the summary (RFC 3842 5.2) are not ours.
            if waiting.is_some() {
                break;
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("Messages-Waiting") {
            waiting = match value.to_ascii_lowercase().as_str() {
                "yes" => Some(true),
                "no" => Some(false),
                _ => None,
            };
        } else if name.eq_ignore_ascii_case("Voice-Message") {
            voice = parse_counts(value);
        }
    }
    let waiting = waiting?;
    let (new, old) = voice.unwrap_or((0, 0));
    Some(match (waiting, new) {
        (true, 0) => MessageSummary { new: 1, old },
        (true, _) => MessageSummary { new, old },
        (false, _) => MessageSummary { new: 0, old },
    })
}

/// `NEW/OLD` with an optional `(URGENT_NEW/URGENT_OLD)` after it, whose urgent messages are
/// already among NEW and OLD (RFC 3842 5.2), so they are read past, not added.
fn parse_counts(value: &str) -> Option<(u32, u32)> {
    let counts = value.split('(').next()?.trim();
    let (new, old) = counts.split_once('/')?;
    Some((new.trim().parse().ok()?, old.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(new: u32, old: u32) -> Option<MessageSummary> {
        Some(MessageSummary { new, old })
    }

    #[test]
    fn reads_the_rfc_3842_example_and_variants_one_body_per_row() {
        for (body, want) in [
            // RFC 3842 section 5.3's example.
            (
                "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
                 Voice-Message: 2/8 (0/2)\r\n",
                summary(2, 8),
            ),
            (
                "Messages-Waiting: no\r\nVoice-Message: 0/3 (0/0)\r\n",
                summary(0, 3),
            ),
            // Names in any case, no urgent counts, spaces, bare newlines.
            (
                "messages-waiting:YES\nvoice-message:  4 / 1\n",
                summary(4, 1),
            ),
            // Only Messages-Waiting: yes is one new message, no is none.
            ("Messages-Waiting: yes\r\n", summary(1, 0)),
            ("Messages-Waiting: no\r\n", summary(0, 0)),
            // Waiting, but only fax: still one for the stutter tone.
            (
                "Messages-Waiting: yes\r\nFax-Message: 1/0\r\nVoice-Message: 0/2\r\n",
                summary(1, 2),
            ),
            // `no` wins over a new count.
            (
                "Messages-Waiting: no\r\nVoice-Message: 2/0\r\n",
                summary(0, 0),
            ),
            // An unreadable count is as if absent.
            (
                "Messages-Waiting: yes\r\nVoice-Message: many\r\n",
                summary(1, 0),
            ),
            // Message headers after the blank line are not the summary.
            (
                "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n\r\nVoice-Message: 9/9\r\n",
                summary(1, 0),
            ),
            ("", None),
            ("Voice-Message: 1/0\r\n", None),
            ("Messages-Waiting: maybe\r\n", None),
        ] {
            assert_eq!(parse_summary(body.as_bytes()), want, "{body:?}");
        }
    }

    #[test]
    fn a_body_that_is_not_text_says_nothing() {
        assert_eq!(parse_summary(&[0xff, 0xfe, b'\n']), None);
    }
}
