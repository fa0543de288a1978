//! The message-summary event package (RFC 3842): its name, its body type, and the body the
//! proxy sends, `application/simple-message-summary` (section 5).

use dialtone_sip::{HeaderName, Message};

use crate::registrar::MessageCounts;

/// The event package the proxy terminates (RFC 3842 section 3.1).
pub const EVENT: &str = "message-summary";

/// The body's media type (RFC 3842 section 3.4).
pub const CONTENT_TYPE: &str = "application/simple-message-summary";

/// The event package a SUBSCRIBE or NOTIFY names: the Event header's token without its
/// parameters (`message-summary;id=1` is `message-summary`), `None` without an Event header.
pub fn event_package<'a>(request: &Message<'a>) -> Option<&'a str> {
    let value = request.header_value(HeaderName::Event)?;
    Some(value.split(';').next().unwrap_or("").trim())
}

/// True when `request` names the message-summary package (package names compare
/// case-insensitively, RFC 6665 section 8.2.1 uses tokens).
pub fn is_message_summary(request: &Message<'_>) -> bool {
    event_package(request).is_some_and(|p| p.eq_ignore_ascii_case(EVENT))
}

/// The body of a NOTIFY for `account` (`sip:USER@DOMAIN`): whether messages wait, the
/// account, and the voice counts with no urgent ones (RFC 3842 section 5, whose example this
/// follows line by line).
pub fn body(account: &str, counts: MessageCounts) -> String {
    let waiting = if counts.waiting() { "yes" } else { "no" };
    format!(
        "Messages-Waiting: {waiting}\r\nMessage-Account: {account}\r\nVoice-Message: {}/{} (0/0)\r\n",
        counts.new, counts.old
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_follows_rfc_3842_section_5() {
        let counts = MessageCounts { new: 2, old: 1 };
        assert_eq!(
            body("sip:9000@lab.example", counts),
            "Messages-Waiting: yes\r\nMessage-Account: sip:9000@lab.example\r\nVoice-Message: 2/1 (0/0)\r\n"
        );
        let none = body("sip:9000@lab.example", MessageCounts { new: 0, old: 4 });
        assert!(none.starts_with("Messages-Waiting: no\r\n"));
    }

    #[test]
    fn the_package_is_the_event_token_without_parameters() {
        let raw = b"SUBSCRIBE sip:9000@lab.example SIP/2.0\r\nEvent: Message-Summary;id=3\r\nContent-Length: 0\r\n\r\n";
        let message = Message::parse(raw).unwrap();
        assert_eq!(event_package(&message), Some("Message-Summary"));
        assert!(is_message_summary(&message));
    }
}
