//! SIP request methods (RFC 3261 section 7.1 and the extension RFCs).
//!
//! Methods are case-sensitive tokens: `IN%56ITE` or `invite` are extension methods, not INVITE
//! (RFC 4475 section 3.1.1.2).

use std::fmt;

/// A request method; unknown tokens are kept as [`Method::Extension`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    /// Any other token.
    Extension(&'a str),
}

impl<'a> Method<'a> {
    /// Maps a token to a method without allocating.
    pub fn from_token(token: &'a str) -> Method<'a> {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            other => Method::Extension(other),
        }
    }

    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension(token) => token,
        }
    }

    /// A bounded label for metrics: known methods by name, everything else as `other`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Method::Extension(_) => "other",
            known => known.as_static_str(),
        }
    }

    fn as_static_str(&self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension(_) => "other",
        }
    }

    /// The position of [`Method::metric_label`] in [`Method::METRIC_LABELS`]: a metrics
    /// registry can keep one counter per label in that order and index it, instead of looking
    /// the label up for every request.
    pub fn metric_index(&self) -> usize {
        match self {
            Method::Invite => 0,
            Method::Ack => 1,
            Method::Bye => 2,
            Method::Cancel => 3,
            Method::Options => 4,
            Method::Register => 5,
            Method::Prack => 6,
            Method::Subscribe => 7,
            Method::Notify => 8,
            Method::Publish => 9,
            Method::Info => 10,
            Method::Refer => 11,
            Method::Message => 12,
            Method::Update => 13,
            Method::Extension(_) => 14,
        }
    }

    /// Every label [`Method::metric_label`] can return.
    pub const METRIC_LABELS: &'static [&'static str] = &[
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
        "other",
    ];
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_index_points_at_the_metric_label() {
        let mut seen = Vec::new();
        for label in Method::METRIC_LABELS {
            let method = Method::from_token(label);
            assert_eq!(
                Method::METRIC_LABELS[method.metric_index()],
                method.metric_label()
            );
            seen.push(method.metric_index());
        }
        assert_eq!(seen, (0..Method::METRIC_LABELS.len()).collect::<Vec<_>>());
        let other = Method::from_token("FOO");
        assert_eq!(Method::METRIC_LABELS[other.metric_index()], "other");
    }
}
