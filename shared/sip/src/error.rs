//! The one error type of the message layer.
//!
//! A parse error says *what* is wrong and *where*, so that a server can answer `400` with a reason
//! phrase naming the fault (RFC 3261 section 21.4.1 lets the reason phrase carry it), e.g.
//! `400 Bad CSeq`. [`ParseError::status_code`] picks the response code the RFC asks for when it is
//! not 400 (505 for an unknown SIP version, 513 for an oversized message).

use thiserror::Error;

/// Why a message or one of its header values could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The buffer held nothing but CRLFs (a keep-alive) or nothing at all.
    #[error("empty message")]
    Empty,
    /// More than [`crate::MAX_MESSAGE_SIZE`] octets.
    #[error("message too large ({size} octets)")]
    TooLarge { size: usize },
    /// More header lines than [`crate::MAX_HEADERS`].
    #[error("too many header fields")]
    TooManyHeaders,
    /// The header section did not end with an empty line.
    #[error("header section not terminated")]
    Incomplete,
    /// The header section is not valid UTF-8.
    #[error("header section is not UTF-8 (at octet {offset})")]
    NotUtf8 { offset: usize },
    /// The request line or status line is malformed.
    #[error("bad start line: {reason}")]
    BadStartLine { reason: &'static str },
    /// The Request-URI is malformed.
    #[error("bad Request-URI: {reason}")]
    BadRequestUri { reason: &'static str },
    /// The SIP version is not `SIP/2.0` (answer 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The status code is not three digits between 100 and 699.
    #[error("bad status code")]
    BadStatusCode,
    /// A header line has no colon, or its name is not a token.
    #[error("malformed header line {line}")]
    BadHeaderLine { line: usize },
    /// A header field's value does not follow its grammar.
    #[error("bad {name} header: {reason}")]
    BadHeader {
        name: &'static str,
        reason: &'static str,
    },
    /// A header that must appear exactly once appears several times (RFC 4475 section 3.3.8).
    #[error("duplicate {name} header")]
    DuplicateHeader { name: &'static str },
    /// A header that the message needs is absent.
    #[error("missing {name} header")]
    MissingHeader { name: &'static str },
    /// The CSeq method differs from the request method (RFC 3261 section 8.1.1.5).
    #[error("CSeq method does not match the request method")]
    CSeqMethodMismatch,
    /// Content-Length is missing where framing needs it, negative, not a number, repeated with
    /// different values, or larger than the octets that arrived.
    #[error("bad Content-Length: {reason}")]
    BadContentLength { reason: &'static str },
    /// A URI inside a header value is malformed.
    #[error("bad URI: {reason}")]
    BadUri { reason: &'static str },
}

impl ParseError {
    /// The response status code a server should answer with.
    pub fn status_code(&self) -> u16 {
        match self {
            ParseError::UnsupportedVersion => 505,
            ParseError::TooLarge { .. } => 513,
            _ => 400,
        }
    }

    /// A short reason phrase that names the fault, for the status line (`400 Bad CSeq`).
    pub fn reason_phrase(&self) -> String {
        match self {
            ParseError::Empty => "Empty Message".into(),
            ParseError::TooLarge { .. } => "Message Too Large".into(),
            ParseError::TooManyHeaders => "Too Many Headers".into(),
            ParseError::Incomplete => "Incomplete Header Section".into(),
            ParseError::NotUtf8 { .. } => "Bad Encoding".into(),
            ParseError::BadStartLine { .. } => "Bad Request Line".into(),
            ParseError::BadRequestUri { .. } => "Bad Request-URI".into(),
            ParseError::UnsupportedVersion => "Version Not Supported".into(),
            ParseError::BadStatusCode => "Bad Status Code".into(),
            ParseError::BadHeaderLine { .. } => "Malformed Header Line".into(),
            ParseError::BadHeader { name, .. } => format!("Bad {name}"),
            ParseError::DuplicateHeader { name } => format!("Duplicate {name}"),
            ParseError::MissingHeader { name } => format!("Missing {name}"),
            ParseError::CSeqMethodMismatch => "CSeq Method Mismatch".into(),
            ParseError::BadContentLength { .. } => "Bad Content-Length".into(),
            ParseError::BadUri { .. } => "Bad URI".into(),
        }
    }

    /// A short machine-friendly name of the error kind, for bounded metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            ParseError::Empty => "empty",
            ParseError::TooLarge { .. } => "too_large",
            ParseError::TooManyHeaders => "too_many_headers",
            ParseError::Incomplete => "incomplete",
            ParseError::NotUtf8 { .. } => "not_utf8",
            ParseError::BadStartLine { .. } => "bad_start_line",
            ParseError::BadRequestUri { .. } => "bad_request_uri",
            ParseError::UnsupportedVersion => "unsupported_version",
            ParseError::BadStatusCode => "bad_status_code",
            ParseError::BadHeaderLine { .. } => "bad_header_line",
            ParseError::BadHeader { .. } => "bad_header",
            ParseError::DuplicateHeader { .. } => "duplicate_header",
            ParseError::MissingHeader { .. } => "missing_header",
            ParseError::CSeqMethodMismatch => "cseq_mismatch",
            ParseError::BadContentLength { .. } => "bad_content_length",
            ParseError::BadUri { .. } => "bad_uri",
        }
    }

    /// All kind labels, so metrics can create every series at zero on start.
    pub const KINDS: &'static [&'static str] = &[
        "empty",
        "too_large",
        "too_many_headers",
        "incomplete",
        "not_utf8",
        "bad_start_line",
        "bad_request_uri",
        "unsupported_version",
        "bad_status_code",
        "bad_header_line",
        "bad_header",
        "duplicate_header",
        "missing_header",
        "cseq_mismatch",
        "bad_content_length",
        "bad_uri",
    ];
}

/// Shorthand used by the typed header parsers.
pub(crate) fn bad(name: &'static str, reason: &'static str) -> ParseError {
    ParseError::BadHeader { name, reason }
}
