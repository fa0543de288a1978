//! Header field names: case-insensitive, with the compact forms of RFC 3261 section 7.3.3.
//!
//! The parser classifies each header name once, so later lookups compare a one-byte enum instead
//! of strings. Names it does not know are [`HeaderName::Other`] and pass through untouched.

/// A header field name the stack knows, or `Other` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Via,
    From,
    To,
    CallId,
    CSeq,
    MaxForwards,
    Contact,
    Expires,
    MinExpires,
    Route,
    RecordRoute,
    ContentType,
    ContentLength,
    ContentEncoding,
    Allow,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    WwwAuthenticate,
    Authorization,
    ProxyAuthenticate,
    ProxyAuthorization,
    UserAgent,
    Server,
    Event,
    SubscriptionState,
    ReferTo,
    ReferredBy,
    Date,
    Subject,
    Accept,
    Other,
}

impl HeaderName {
    /// Classifies a header name as it appeared on the wire (any case, compact or long form).
    pub fn classify(raw: &str) -> HeaderName {
        let bytes = raw.as_bytes();
        if bytes.len() == 1 {
            // RFC 3261 section 7.3.3 and RFC 3515 (r), RFC 3265 (o).
            return match bytes[0].to_ascii_lowercase() {
                b'v' => HeaderName::Via,
                b'f' => HeaderName::From,
                b't' => HeaderName::To,
                b'i' => HeaderName::CallId,
                b'm' => HeaderName::Contact,
                b'l' => HeaderName::ContentLength,
                b'c' => HeaderName::ContentType,
                b'k' => HeaderName::Supported,
                b's' => HeaderName::Subject,
                b'e' => HeaderName::ContentEncoding,
                b'o' => HeaderName::Event,
                b'r' => HeaderName::ReferTo,
                b'u' => HeaderName::Other, // Allow-Events: not used by the stack
                b'b' => HeaderName::ReferredBy,
                _ => HeaderName::Other,
            };
        }
        for (candidate, name) in LONG_NAMES {
            if candidate.len() == bytes.len() && candidate.eq_ignore_ascii_case(raw) {
                return *name;
            }
        }
        HeaderName::Other
    }

    /// The canonical long form, used when the stack writes a header.
    pub fn as_str(&self) -> &'static str {
        for (candidate, name) in LONG_NAMES {
            if name == self {
                return candidate;
            }
        }
        "X-Unknown"
    }
}

/// Long forms, most frequent first so that classification usually stops early.
const LONG_NAMES: &[(&str, HeaderName)] = &[
    ("Via", HeaderName::Via),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("Call-ID", HeaderName::CallId),
    ("CSeq", HeaderName::CSeq),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Contact", HeaderName::Contact),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Type", HeaderName::ContentType),
    ("Route", HeaderName::Route),
    ("Record-Route", HeaderName::RecordRoute),
    ("Expires", HeaderName::Expires),
    ("Min-Expires", HeaderName::MinExpires),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("Allow", HeaderName::Allow),
    ("Supported", HeaderName::Supported),
    ("Require", HeaderName::Require),
    ("Proxy-Require", HeaderName::ProxyRequire),
    ("Unsupported", HeaderName::Unsupported),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
    ("Authorization", HeaderName::Authorization),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("User-Agent", HeaderName::UserAgent),
    ("Server", HeaderName::Server),
    ("Event", HeaderName::Event),
    ("Subscription-State", HeaderName::SubscriptionState),
    ("Refer-To", HeaderName::ReferTo),
    ("Referred-By", HeaderName::ReferredBy),
    ("Date", HeaderName::Date),
    ("Subject", HeaderName::Subject),
    ("Accept", HeaderName::Accept),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_forms_map_to_their_long_names() {
        let pairs = [
            ("v", HeaderName::Via),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("r", HeaderName::ReferTo),
        ];
        for (raw, name) in pairs {
            assert_eq!(HeaderName::classify(raw), name, "{raw}");
            assert_eq!(HeaderName::classify(&raw.to_uppercase()), name, "{raw}");
        }
    }

    #[test]
    fn long_names_are_case_insensitive() {
        assert_eq!(HeaderName::classify("cALL-iD"), HeaderName::CallId);
        assert_eq!(
            HeaderName::classify("record-route"),
            HeaderName::RecordRoute
        );
        assert_eq!(HeaderName::classify("C%6Fntact"), HeaderName::Other);
        assert_eq!(HeaderName::classify("X-Custom"), HeaderName::Other);
    }

    #[test]
    fn canonical_names_classify_back_to_themselves() {
        for (raw, name) in LONG_NAMES {
            assert_eq!(HeaderName::classify(raw), *name);
            assert_eq!(name.as_str(), *raw);
        }
    }
}
