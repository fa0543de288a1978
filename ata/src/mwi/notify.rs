//! What the headers of a message-summary NOTIFY say, and the answer to one, pure: the event
//! package (RFC 3842 section 4), `Subscription-State` (RFC 6665 section 8.2.3), the dialog's
//! remote target and route set, and the response for its server transaction.
//!
//! [`super::subscription`] reads NOTIFYs (and the 2xx to its SUBSCRIBE) through these; the
//! body is [`super::summary`]'s.

use dialtone_sip::{Contacts, Message, ResponseBuilder};

use crate::endpoint::router::event_package;
use crate::identity::USER_AGENT;

/// The event package.
pub const EVENT: &str = "message-summary";
/// Its body type, which our SUBSCRIBE accepts.
pub const BODY_TYPE: &str = "application/simple-message-summary";

/// The answer to a NOTIFY, for its server transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyAnswer {
    /// The status.
    pub status: u16,
    /// The response.
    pub bytes: Vec<u8>,
}

/// What a `Subscription-State` header says (RFC 6665 8.2.3): `active` and `pending` alike,
/// or `terminated` with its reason and `retry-after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionStateHeader {
    /// The subscription is over.
    pub terminated: bool,
    /// `reason`, lower case.
    pub reason: Option<String>,
    /// `expires`: seconds left.
    pub expires: Option<u32>,
    /// `retry-after`: seconds before subscribing again.
    pub retry_after: Option<u32>,
}

impl SubscriptionStateHeader {
    /// Reads the header value; unknown parameters are ignored, unreadable numbers absent.
    pub fn parse(value: &str) -> Self {
        let mut parts = value.split(';').map(str::trim);
        let mut header = SubscriptionStateHeader {
            terminated: parts
                .next()
                .is_some_and(|s| s.eq_ignore_ascii_case("terminated")),
            ..Self::default()
        };
        for part in parts {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "reason" => header.reason = Some(value.to_ascii_lowercase()),
                "expires" => header.expires = value.parse().ok(),
                "retry-after" => header.retry_after = value.parse().ok(),
                _ => {}
            }
        }
        header
    }

    /// The request's `Subscription-State`, if it has one.
    pub fn of(message: &Message<'_>) -> Option<Self> {
        message
            .header_value_by_name("Subscription-State")
            .map(Self::parse)
    }
}

/// `Event: message-summary` (parameters such as `;id=` allowed).
pub fn is_message_summary(message: &Message<'_>) -> bool {
    event_package(message).is_some_and(|e| e.eq_ignore_ascii_case(EVENT))
}

/// The first Contact's URI: the dialog's remote target (RFC 3261 12.1).
pub fn contact_of(message: &Message<'_>) -> Option<String> {
    match message.contacts() {
        Ok(Contacts::List(list)) => list.first().map(|c| c.uri.as_str().to_owned()),
        _ => None,
    }
}

/// The Record-Route URIs in the order the message lists them (unreadable ones: none).
pub fn record_route_uris(message: &Message<'_>) -> Vec<String> {
    message
        .record_routes()
        .unwrap_or_default()
        .iter()
        .map(|r| r.uri.as_str().to_owned())
        .collect()
}

/// The response to `request` with `status`.
pub fn answer(request: &Message<'_>, status: u16, reason: &str) -> NotifyAnswer {
    NotifyAnswer {
        status,
        bytes: ResponseBuilder::for_request(request, status, reason)
            .header("Server", USER_AGENT)
            .build(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_state_values_read_one_per_row() {
        let header =
            |terminated, reason: Option<&str>, expires, retry_after| SubscriptionStateHeader {
                terminated,
                reason: reason.map(str::to_owned),
                expires,
                retry_after,
            };
        for (value, want) in [
            ("active;expires=3600", header(false, None, Some(3600), None)),
            ("pending", header(false, None, None, None)),
            (
                "Terminated ; Reason=Timeout",
                header(true, Some("timeout"), None, None),
            ),
            (
                "terminated;reason=probation;retry-after=30",
                header(true, Some("probation"), None, Some(30)),
            ),
            ("active;expires=soon;x=1", header(false, None, None, None)),
        ] {
            assert_eq!(SubscriptionStateHeader::parse(value), want, "{value}");
        }
    }
}
