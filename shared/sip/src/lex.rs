//! Small lexical pieces of the RFC 3261 grammar (section 25.1) shared by the header parsers:
//! tokens, linear white space (which includes folded line breaks), quoted strings, comma lists
//! and `;name=value` parameter lists.
//!
//! Everything here borrows from the input; nothing allocates.

use crate::error::ParseError;

/// `token` characters of RFC 3261 section 25.1.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// True when `s` is a non-empty token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Linear white space, including the CRLF of a folded line (RFC 3261 section 7.3.1).
pub fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims linear white space at both ends.
pub fn trim(s: &str) -> &str {
    // Byte-wise: LWS is ASCII, so both cut points fall on character boundaries (the `char`
    // pattern of `trim_matches` decoded UTF-8 at both ends of every parameter, name and value).
    let bytes = s.as_bytes();
    let Some(start) = bytes.iter().position(|&b| !is_lws(b)) else {
        // Empty, but inside `s` (as `trim_matches` gives): callers take offsets from it.
        return &s[..0];
    };
    let end = bytes
        .iter()
        .rposition(|&b| !is_lws(b))
        .map_or(start, |i| i + 1);
    &s[start..end]
}

/// Splits a header value into its comma-separated elements, ignoring commas inside quoted
/// strings and `<...>`. Elements are trimmed; empty elements are returned as `""` so that the
/// caller can reject them (RFC 4475 section 3.1.2.1).
pub fn split_commas(value: &str) -> CommaList<'_> {
    CommaList { rest: Some(value) }
}

/// Iterator returned by [`split_commas`].
pub struct CommaList<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for CommaList<'a> {
    type Item = &'a str;

    /// Jumps from one byte that matters to the next (`memchr`), as the state allows: outside
    /// quotes and angle brackets a comma, a quote or a `<`; inside a quoted string its end or
    /// an escape; inside `<...>` its end (a quote there is part of the URI). Every list header
    /// is split here, most often the Vias, whose values are long runs of bytes that matter
    /// to none of these; a loop over every byte was 4 % of the core's time for a call.
    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let bytes = rest.as_bytes();
        let mut at = 0;
        while let Some(found) = memchr::memchr3(b',', b'"', b'<', &bytes[at..]) {
            let i = at + found;
            let closed = match bytes[i] {
                b',' => {
                    self.rest = Some(&rest[i + 1..]);
                    return Some(trim(&rest[..i]));
                }
                b'"' => quoted_end(&bytes[i + 1..]),
                _ => memchr::memchr(b'>', &bytes[i + 1..]),
            };
            match closed {
                Some(end) => at = i + 1 + end + 1,
                // An unclosed quote or bracket runs to the end of the value.
                None => break,
            }
        }
        self.rest = None;
        Some(trim(rest))
    }
}

/// Where the closing quote is in `bytes`, the text after an opening quote: the first quote
/// not escaped by a backslash.
fn quoted_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let i = at + memchr::memchr2(b'"', b'\\', &bytes[at..])?;
        if bytes[i] == b'"' {
            return Some(i);
        }
        at = i + 2;
        if at > bytes.len() {
            return None;
        }
    }
}

/// Finds the end of a quoted string that starts at `s[0] == '"'`; returns the index just past the
/// closing quote.
pub fn quoted_string_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes the quotes of a quoted string (escapes are left as they are; callers that need the
/// unescaped text use [`unescape_quoted`]).
pub fn unquote(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// The text of a quoted string with `\x` escapes resolved.
pub fn unescape_quoted(s: &str) -> String {
    let inner = unquote(s);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A `;name[=value]` parameter list kept as the borrowed text after the first `;`.
///
/// Lookups are case-insensitive on the name, as RFC 3261 section 7.3.1 requires for parameter
/// names. Values keep their quotes; use [`unquote`] where the grammar allows quoted values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// Wraps the text that follows a `;` (or is empty). Validates that no parameter is empty and
    /// every name is a token.
    pub fn parse(raw: &'a str, header: &'static str) -> Result<Params<'a>, ParseError> {
        let params = Params { raw };
        for (name, value) in params.iter() {
            if !is_token(name) {
                return Err(ParseError::BadHeader {
                    name: header,
                    reason: "bad parameter",
                });
            }
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(ParseError::BadHeader {
                        name: header,
                        reason: "empty parameter value",
                    });
                }
            }
        }
        Ok(params)
    }

    /// An empty list.
    pub fn empty() -> Params<'static> {
        Params { raw: "" }
    }

    /// The raw text, without the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        trim(self.raw).is_empty()
    }

    /// Iterates `(name, value)` pairs; names and values are trimmed of LWS.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            rest: if trim(self.raw).is_empty() {
                None
            } else {
                Some(self.raw)
            },
        }
    }

    /// The value of the first parameter named `name`: `None` if absent, `Some(None)` if present
    /// without a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// True when a parameter named `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Iterator over [`Params`].
pub struct ParamIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest?;
        let end = find_unquoted(rest, b';').unwrap_or(rest.len());
        let item = &rest[..end];
        self.rest = if end < rest.len() {
            Some(&rest[end + 1..])
        } else {
            None
        };
        Some(match find_byte(item, b'=') {
            Some(eq) => (trim(&item[..eq]), Some(trim(&item[eq + 1..]))),
            None => (trim(item), None),
        })
    }
}

/// Index of the first `byte` (ASCII) in `s`: what `s.find(char)` gives, without the char
/// searcher it sets up for every call. The parsers make a dozen such calls per header, most on
/// a few bytes, and that setup was 3.5 % of the proxy's CPU at 3 000 calls a second.
pub fn find_byte(s: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    memchr::memchr(byte, s.as_bytes())
}

/// Index of the last `byte` (ASCII) in `s`, as [`find_byte`] for `s.rfind(char)`.
pub fn rfind_byte(s: &str, byte: u8) -> Option<usize> {
    debug_assert!(byte.is_ascii());
    memchr::memrchr(byte, s.as_bytes())
}

/// Index of the first `needle` outside quoted strings (never a quote itself), jumping from
/// one quote or `needle` to the next as [`CommaList`] does: every parameter of every header
/// is found here.
pub fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    debug_assert!(needle != b'"' && needle != b'\\');
    let bytes = s.as_bytes();
    let mut at = 0;
    loop {
        let i = at + memchr::memchr2(needle, b'"', &bytes[at..])?;
        if bytes[i] == needle {
            return Some(i);
        }
        at = i + 1 + quoted_end(&bytes[i + 1..])? + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_searches_agree_with_str_find_and_rfind() {
        for text in ["", "sip:a@b;x=1", "a@b@c", "Zoë;@ü:€", "[::1]:5060", ";;"] {
            for byte in [b';', b'@', b':', b'?', b'x'] {
                let char = byte as char;
                assert_eq!(find_byte(text, byte), text.find(char), "{text:?} {char}");
                assert_eq!(rfind_byte(text, byte), text.rfind(char), "{text:?} {char}");
            }
        }
    }

    #[test]
    fn comma_lists_ignore_commas_in_quotes_and_angle_brackets() {
        let items: Vec<_> = split_commas(r#""Bell, A" <sip:a@b;x=1,2>;q=1 , <sip:c@d>"#).collect();
        assert_eq!(items, vec![r#""Bell, A" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>"]);
    }

    #[test]
    fn trim_cuts_only_linear_white_space_and_stays_inside_its_input() {
        assert_eq!(trim(" \t a b\r\n"), "a b");
        // Not LWS in SIP: a non-breaking space and a form feed are kept.
        assert_eq!(trim("\u{a0}x\u{c}"), "\u{a0}x\u{c}");
        let blank = " \t ";
        let trimmed = trim(blank);
        assert!(trimmed.is_empty());
        // Callers compute offsets from the result (message.rs `set_value`).
        assert_eq!(trimmed.as_ptr(), blank.as_ptr());
    }

    /// The rules of [`split_commas`], a byte at a time: what its jumps must agree with.
    fn split_commas_bytewise(value: &str) -> Vec<&str> {
        let (mut items, mut start) = (Vec::new(), 0);
        let (mut in_quotes, mut in_angle) = (false, false);
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' if !in_angle => in_quotes = !in_quotes,
                b'<' if !in_quotes => in_angle = true,
                b'>' if !in_quotes => in_angle = false,
                b',' if !in_quotes && !in_angle => {
                    items.push(trim(&value[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
            i += 1;
        }
        items.push(trim(&value[start..]));
        items
    }

    /// Every string of `alphabet`'s characters up to `max_len` long.
    fn every_value(alphabet: &[char], max_len: u32) -> impl Iterator<Item = String> + '_ {
        (0..=max_len).flat_map(move |len| {
            (0..alphabet.len().pow(len)).map(move |mut n| {
                let mut value = String::new();
                for _ in 0..len {
                    value.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                value
            })
        })
    }

    #[test]
    fn comma_lists_split_as_a_byte_at_a_time_would_on_every_short_value() {
        let alphabet = ['a', ',', '"', '\\', '<', '>', ' '];
        let mut checked = 0;
        for value in every_value(&alphabet, 6) {
            let items: Vec<_> = split_commas(&value).collect();
            assert_eq!(items, split_commas_bytewise(&value), "{value:?}");
            checked += 1;
        }
        assert!(checked > 100_000);
    }

    /// The rules of [`find_unquoted`], a byte at a time.
    fn find_unquoted_bytewise(value: &str, needle: u8) -> Option<usize> {
        let bytes = value.as_bytes();
        let (mut in_quotes, mut i) = (false, 0);
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b if b == needle && !in_quotes => return Some(i),
                _ => {}
            }
            i += 1;
        }
        None
    }

    #[test]
    fn unquoted_bytes_are_found_as_a_byte_at_a_time_would_on_every_short_value() {
        for value in every_value(&['a', ';', '"', '\\', '<', '='], 7) {
            for needle in [b';', b'<'] {
                assert_eq!(
                    find_unquoted(&value, needle),
                    find_unquoted_bytewise(&value, needle),
                    "{value:?} {}",
                    needle as char
                );
            }
        }
    }

    #[test]
    fn empty_list_elements_are_reported() {
        let items: Vec<_> = split_commas("a,,b,").collect();
        assert_eq!(items, vec!["a", "", "b", ""]);
    }

    #[test]
    fn params_are_found_case_insensitively() {
        let p = Params::parse("Branch=z9hG4bK1;rport;received=1.2.3.4", "Via").unwrap();
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("maddr"), None);
    }

    #[test]
    fn empty_params_are_rejected() {
        assert!(Params::parse(";", "Via").is_err());
        assert!(Params::parse("a=", "Via").is_err());
        assert!(Params::parse("a;;b", "Via").is_err());
    }

    #[test]
    fn quoted_params_may_hold_semicolons() {
        let p = Params::parse(r#"a="x;y";b=2"#, "X").unwrap();
        assert_eq!(p.get("a"), Some(Some(r#""x;y""#)));
        assert_eq!(p.get("b"), Some(Some("2")));
    }

    #[test]
    fn quoted_strings_end_after_escaped_quotes() {
        assert_eq!(quoted_string_end(r#""a\"b" rest"#), Some(6));
        assert_eq!(quoted_string_end(r#""open"#), None);
        assert_eq!(unescape_quoted(r#""a\"b""#), "a\"b");
    }
}
