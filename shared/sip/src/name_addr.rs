//! `name-addr` and `addr-spec` with header parameters (RFC 3261 section 20.10 and 25.1): the
//! shape of From, To, Contact, Route, Record-Route, Refer-To.
//!
//! When the URI is not enclosed in `<>`, every `;param` after it belongs to the header, not the
//! URI (RFC 3261 section 20.10, RFC 4475 section 3.3.12); and such a URI may not carry `?headers`
//! (RFC 4475 section 3.1.2.13).

use crate::error::ParseError;
use crate::lex::{self, Params};
use crate::uri::Uri;

/// A display name, a URI and header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written (quoted strings keep their quotes).
    pub display_name: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
    /// True when the URI was written inside `<>`.
    pub bracketed: bool,
}

impl<'a> NameAddr<'a> {
    /// Parses one element (already split from any comma list). `header` names the header in
    /// errors.
    pub fn parse(value: &'a str, header: &'static str) -> Result<NameAddr<'a>, ParseError> {
        let bad = |reason| ParseError::BadHeader {
            name: header,
            reason,
        };
        let value = lex::trim(value);
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        let (display_name, after_display) = if value.starts_with('"') {
            let end = lex::quoted_string_end(value).ok_or(bad("unterminated quoted string"))?;
            let rest = lex::trim(&value[end..]);
            if !rest.starts_with('<') {
                return Err(bad("display name without <URI>"));
            }
            (Some(&value[..end]), rest)
        } else if let Some(lt) = lex::find_unquoted(value, b'<') {
            let name = lex::trim(&value[..lt]);
            if !name.is_empty()
                && !name
                    .split(|c: char| c.is_ascii() && lex::is_lws(c as u8))
                    .all(|w| w.is_empty() || lex::is_token(w))
            {
                return Err(bad("display name is not a token or quoted string"));
            }
            (
                if name.is_empty() { None } else { Some(name) },
                &value[lt..],
            )
        } else {
            return Self::parse_addr_spec(value, header);
        };
        // after_display starts with '<'.
        let close = lex::find_byte(after_display, b'>').ok_or(bad("missing >"))?;
        let uri_text = &after_display[1..close];
        if uri_text.is_empty() || uri_text != lex::trim(uri_text) {
            return Err(bad("white space inside <>"));
        }
        let uri = Uri::parse(uri_text).map_err(|_| bad("bad URI"))?;
        let rest = lex::trim(&after_display[close + 1..]);
        let params = match rest.strip_prefix(';') {
            Some(p) => Params::parse(p, header)?,
            None if rest.is_empty() => Params::empty(),
            None => return Err(bad("text after >")),
        };
        Ok(NameAddr {
            display_name,
            uri,
            params,
            bracketed: true,
        })
    }

    fn parse_addr_spec(value: &'a str, header: &'static str) -> Result<NameAddr<'a>, ParseError> {
        let bad = |reason| ParseError::BadHeader {
            name: header,
            reason,
        };
        let (uri_text, params) = match lex::find_byte(value, b';') {
            Some(s) => (lex::trim(&value[..s]), Some(&value[s + 1..])),
            None => (value, None),
        };
        if uri_text.contains('?') {
            return Err(bad("URI with headers must be enclosed in <>"));
        }
        let uri = Uri::parse(uri_text).map_err(|_| bad("bad URI"))?;
        let params = match params {
            Some(p) => Params::parse(p, header)?,
            None => Params::empty(),
        };
        Ok(NameAddr {
            display_name: None,
            uri,
            params,
            bracketed: false,
        })
    }

    /// The `tag` parameter (From and To, RFC 3261 section 19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_from_has_uri_and_tag() {
        let na =
            NameAddr::parse("<sip:8000@192.168.2.97;user=phone>;tag=2819471139", "From").unwrap();
        assert_eq!(na.tag(), Some("2819471139"));
        assert_eq!(na.uri.user(), Some("8000"));
        assert!(na.display_name.is_none());
    }

    #[test]
    fn seed_to_tag_inside_brackets_is_a_uri_parameter_not_a_tag() {
        // D-3 message 8: the document put the tag inside the angle brackets.
        let na = NameAddr::parse("<sip:9000@192.168.2.97;user=phone;tag=909616993>", "To").unwrap();
        assert_eq!(na.tag(), None);
        assert_eq!(
            na.uri.as_sip().unwrap().params.get("tag"),
            Some(Some("909616993"))
        );
    }

    #[test]
    fn missing_closing_bracket_is_an_error_naming_the_header() {
        let err =
            NameAddr::parse("<sip:9000@192.168.2.81;user=phone;tag=100585329", "To").unwrap_err();
        assert_eq!(
            err,
            ParseError::BadHeader {
                name: "To",
                reason: "missing >"
            }
        );
    }

    #[test]
    fn addr_spec_params_belong_to_the_header() {
        let na = NameAddr::parse("sip:user@example.com;unknownparam", "Contact").unwrap();
        assert!(na.params.contains("unknownparam"));
        assert!(na.uri.as_sip().unwrap().params.is_empty());
        let na = NameAddr::parse("<sip:user@example.com;unknownparam>", "Contact").unwrap();
        assert!(!na.params.contains("unknownparam"));
    }

    #[test]
    fn display_names_quoted_or_token() {
        let na =
            NameAddr::parse(r#""Bell, Alexander" <sip:a.g.bell@example.com>"#, "From").unwrap();
        assert_eq!(na.display_name, Some(r#""Bell, Alexander""#));
        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=1", "From").unwrap();
        assert_eq!(na.display_name, Some("caller"));
    }

    #[test]
    fn torture_name_addr_faults_are_rejected() {
        for bad in [
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "Bell, Alexander <sip:a.g.bell@example.com>",
            r#""Watson, Thomas" < sip:t.watson@example.org >"#,
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b>garbage",
            "",
        ] {
            assert!(NameAddr::parse(bad, "To").is_err(), "{bad}");
        }
    }
}
