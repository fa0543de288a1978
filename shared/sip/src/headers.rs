//! The typed values of the header fields the stack reads (CSeq, Contact, expiry, dates) and
//! their parsers. `Message`'s accessors that return them are in `header_access.rs`.

use std::time::{Duration, SystemTime};

use crate::error::{bad, ParseError};
use crate::lex;
use crate::method::Method;
use crate::name_addr::NameAddr;

/// The CSeq header (RFC 3261 section 20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (32 bits, section 8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

/// A Contact header's content (RFC 3261 section 20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts<'a> {
    /// `Contact: *`, only valid in a REGISTER with `Expires: 0` (section 10.2.2).
    Wildcard,
    /// A list of contacts.
    List(Vec<NameAddr<'a>>),
}

/// A contact's `expires` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactExpires {
    /// Delta seconds (RFC 3261).
    Seconds(u32),
    /// An absolute date, the RFC 2543 form the seed's proxy sends
    /// (`expires="Tue, 23 Oct 2001 14:24:57 GMT"`).
    Date(SystemTime),
}

impl ContactExpires {
    /// Seconds left from `now`; a date in the past gives 0.
    pub fn seconds_from(&self, now: SystemTime) -> u32 {
        match self {
            ContactExpires::Seconds(s) => *s,
            ContactExpires::Date(at) => at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .as_secs()
                .min(u32::MAX as u64) as u32,
        }
    }
}

/// Parses a contact's `expires` parameter value: delta seconds or a quoted HTTP date.
pub fn parse_contact_expires(value: &str) -> Result<ContactExpires, ParseError> {
    let value = lex::trim(value);
    if value.starts_with('"') {
        let text = lex::unquote(value);
        return parse_http_date(text)
            .map(ContactExpires::Date)
            .ok_or(bad("Contact", "bad expires date"));
    }
    parse_delta_seconds(value)
        .map(ContactExpires::Seconds)
        .ok_or(bad("Contact", "bad expires"))
}

/// Parses an RFC 1123 date, forgiving the letter case of day and month names (the seed writes
/// `tue, 23 Oct 2001 22:37:56 GMT`).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut normalised = String::with_capacity(text.len());
    let mut start_of_word = true;
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            normalised.push(if start_of_word {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            });
            start_of_word = false;
        } else {
            normalised.push(c);
            start_of_word = true;
        }
    }
    let normalised = normalised.replace("Gmt", "GMT");
    httpdate::parse_http_date(&normalised).ok()
}

pub(crate) fn parse_delta_seconds(value: &str) -> Option<u32> {
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}
