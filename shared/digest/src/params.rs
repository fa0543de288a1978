//! The auth-param lexer and writer shared by challenges and credentials.
//!
//! Both `WWW-Authenticate` and `Authorization` values are `scheme LWS auth-param *("," auth-param)`
//! (RFC 3261 section 25.1, RFC 7235 section 2.1). `challenge.rs` and `credentials.rs` give the
//! parameters meaning; this module only splits them, borrowing from the input wherever no
//! backslash escape forces a copy.
//!
//! It is deliberately lenient where real peers are sloppy (scheme and names in any case, LWS and
//! folded lines around `=` and `,`, empty list elements, unquoted values that are not strict
//! tokens) and strict where leniency could hurt (control characters, unterminated quotes).

use std::borrow::Cow;
use std::fmt;

use crate::error::DigestError;

/// One `name=value` pair, with a quoted-string value already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub name: &'a str,
    pub value: Cow<'a, str>,
}

/// Checks that `input` starts with the `Digest` scheme and returns the auth-params after it.
pub(crate) fn digest_params(input: &str) -> Result<Params<'_>, DigestError> {
    let bytes = input.as_bytes();
    let start = skip_lws(bytes, 0);
    if start == bytes.len() {
        return Err(DigestError::Empty);
    }
    let end = scan_token(bytes, start);
    if end == start {
        return Err(DigestError::Syntax {
            at: start,
            expected: "an authentication scheme",
        });
    }
    let scheme = &input[start..end];
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(DigestError::UnknownScheme {
            scheme: scheme.to_owned(),
        });
    }
    if end < bytes.len() && !is_lws(bytes[end]) {
        return Err(DigestError::Syntax {
            at: end,
            expected: "whitespace after the scheme",
        });
    }
    Ok(Params {
        input,
        pos: end,
        failed: false,
    })
}

/// Iterator over the auth-params of one challenge or credentials value.
///
/// Yields at most one error, then stops: after a syntax error the rest of the value has no
/// reliable structure.
pub(crate) struct Params<'a> {
    input: &'a str,
    pos: usize,
    failed: bool,
}

impl<'a> Iterator for Params<'a> {
    type Item = Result<Param<'a>, DigestError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_param() {
            Ok(Some(param)) => Some(Ok(param)),
            Ok(None) => None,
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

impl<'a> Params<'a> {
    fn next_param(&mut self) -> Result<Option<Param<'a>>, DigestError> {
        let bytes = self.input.as_bytes();
        // RFC 7230 section 7: recipients accept empty list elements such as `a=1,,b=2`.
        let mut pos = skip_lws(bytes, self.pos);
        while pos < bytes.len() && bytes[pos] == b',' {
            pos = skip_lws(bytes, pos + 1);
        }
        if pos == bytes.len() {
            self.pos = pos;
            return Ok(None);
        }

        let name_end = scan_token(bytes, pos);
        if name_end == pos {
            return Err(syntax(pos, "a parameter name"));
        }
        let name = &self.input[pos..name_end];

        pos = skip_lws(bytes, name_end);
        if bytes.get(pos) != Some(&b'=') {
            return Err(syntax(pos, "`=` after the parameter name"));
        }
        pos = skip_lws(bytes, pos + 1);

        let (value, after) = if bytes.get(pos) == Some(&b'"') {
            quoted_string(self.input, pos)?
        } else {
            bare_value(self.input, pos)?
        };

        pos = skip_lws(bytes, after);
        match bytes.get(pos) {
            None => {}
            Some(b',') => pos += 1,
            Some(_) => return Err(syntax(pos, "`,` between parameters")),
        }
        self.pos = pos;
        Ok(Some(Param { name, value }))
    }
}

fn syntax(at: usize, expected: &'static str) -> DigestError {
    DigestError::Syntax { at, expected }
}

/// Reads a quoted-string starting at the opening quote; returns the unescaped content and the
/// offset just past the closing quote.
fn quoted_string(input: &str, open: usize) -> Result<(Cow<'_, str>, usize), DigestError> {
    let bytes = input.as_bytes();
    let start = open + 1;
    let mut pos = start;
    let mut escaped = false;
    loop {
        match bytes.get(pos) {
            None => return Err(syntax(pos, "a closing `\"`")),
            Some(b'"') => break,
            Some(b'\\') => {
                // RFC 3261 section 25.1 quoted-pair: a backslash and one ASCII character; control
                // characters stay refused even escaped, since they could not be written back.
                match bytes.get(pos + 1) {
                    Some(&next) if next.is_ascii() && !is_forbidden_control(next) => {
                        escaped = true;
                        pos += 2;
                    }
                    _ => return Err(syntax(pos + 1, "a printable ASCII character after `\\`")),
                }
            }
            Some(&b) if is_forbidden_control(b) => {
                return Err(syntax(pos, "no control characters in a quoted string"))
            }
            Some(_) => pos += 1,
        }
    }
    // `start` and `pos` sit next to ASCII quotes, so both are char boundaries.
    let raw = &input[start..pos];
    let value = if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    };
    Ok((value, pos + 1))
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
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

/// Reads an unquoted value. Strictly this is a token, but peers put `/`, `:` and `@` in
/// unquoted `uri` or `algorithm` values, so anything visible short of `,` and `"` is taken.
fn bare_value(input: &str, start: usize) -> Result<(Cow<'_, str>, usize), DigestError> {
    let bytes = input.as_bytes();
    let mut pos = start;
    while let Some(&b) = bytes.get(pos) {
        if b == b',' || b == b'"' || is_lws(b) {
            break;
        }
        if !b.is_ascii_graphic() {
            return Err(syntax(
                pos,
                "a visible ASCII character in an unquoted value",
            ));
        }
        pos += 1;
    }
    if pos == start {
        return Err(syntax(start, "a parameter value"));
    }
    Ok((Cow::Borrowed(&input[start..pos]), pos))
}

/// RFC 3261 section 25.1 token characters.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn scan_token(bytes: &[u8], start: usize) -> usize {
    let mut pos = start;
    while pos < bytes.len() && is_token_byte(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// Whitespace including CR and LF, so a value whose folded lines were not unfolded still parses.
fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_lws(bytes: &[u8], start: usize) -> usize {
    let mut pos = start;
    while pos < bytes.len() && is_lws(bytes[pos]) {
        pos += 1;
    }
    pos
}

/// Control characters other than tab: they never belong in a header field value.
fn is_forbidden_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Fails with [`DigestError::ControlCharacter`] if `value` could not be written into a header.
pub(crate) fn check_printable(name: &'static str, value: &str) -> Result<(), DigestError> {
    if value.bytes().any(is_forbidden_control) {
        return Err(DigestError::ControlCharacter(name));
    }
    Ok(())
}

/// Writes `value` as a quoted-string, escaping `"` and `\`.
///
/// Control characters are dropped rather than written: a CR or LF here would let a value
/// smuggle in a header of its own. Builders check their inputs with [`check_printable`] first,
/// so dropping only ever happens to values a caller put into the structs by hand.
pub(crate) struct Quoted<'v>(pub &'v str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        let mut rest = self.0;
        while let Some(i) = rest.find(|c: char| matches!(c, '"' | '\\') || is_control_char(c)) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or('\0');
            if c == '"' || c == '\\' {
                write!(f, "\\{c}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)?;
        f.write_str("\"")
    }
}

fn is_control_char(c: char) -> bool {
    c.is_ascii() && is_forbidden_control(c as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(input: &str) -> Result<Vec<(String, String)>, DigestError> {
        digest_params(input)?
            .map(|p| p.map(|p| (p.name.to_owned(), p.value.into_owned())))
            .collect()
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn splits_quoted_and_unquoted_parameters() {
        let got = params(r#"Digest realm="CISCO", nonce="3bd5e334", algorithm=MD5"#).unwrap();
        assert_eq!(
            got,
            vec![
                pair("realm", "CISCO"),
                pair("nonce", "3bd5e334"),
                pair("algorithm", "MD5")
            ]
        );
    }

    #[test]
    fn accepts_the_scheme_in_any_case_and_lws_around_separators() {
        let got = params("DIGEST   realm = \"a\" ,\r\n\tnonce=\"b\"  ").unwrap();
        assert_eq!(got, vec![pair("realm", "a"), pair("nonce", "b")]);
    }

    #[test]
    fn skips_empty_list_elements() {
        let got = params("Digest ,realm=\"a\",, ,nonce=b,").unwrap();
        assert_eq!(got, vec![pair("realm", "a"), pair("nonce", "b")]);
    }

    #[test]
    fn unescapes_quoted_pairs_and_borrows_when_there_are_none() {
        let mut it = digest_params(r#"Digest a="x\"y\\z", b="plain""#).unwrap();
        let a = it.next().unwrap().unwrap();
        assert_eq!(a.value, r#"x"y\z"#);
        assert!(matches!(a.value, Cow::Owned(_)));
        let b = it.next().unwrap().unwrap();
        assert!(matches!(b.value, Cow::Borrowed("plain")));
    }

    #[test]
    fn keeps_non_ascii_text_inside_quotes() {
        let got = params("Digest username=\"J\u{f6}rg \u{1f600}\"").unwrap();
        assert_eq!(got, vec![pair("username", "J\u{f6}rg \u{1f600}")]);
    }

    #[test]
    fn refuses_other_schemes() {
        assert_eq!(
            params("Basic dXNlcjpwYXNz"),
            Err(DigestError::UnknownScheme {
                scheme: "Basic".into()
            })
        );
    }

    #[test]
    fn refuses_an_empty_value() {
        assert_eq!(params("  \t "), Err(DigestError::Empty));
    }

    #[test]
    fn reports_where_an_unterminated_quote_ends() {
        assert_eq!(
            params(r#"Digest realm="abc"#),
            Err(DigestError::Syntax {
                at: 17,
                expected: "a closing `\"`"
            })
        );
    }

    #[test]
    fn refuses_a_missing_equals_sign() {
        assert!(matches!(
            params(r#"Digest realm "abc""#),
            Err(DigestError::Syntax { at: 13, .. })
        ));
    }

    #[test]
    fn refuses_a_second_challenge_in_the_same_value() {
        // One value, one challenge: SIP sends each challenge in its own header field.
        assert!(matches!(
            params(r#"Digest realm="a", Digest realm="b""#),
            Err(DigestError::Syntax { .. })
        ));
    }

    #[test]
    fn refuses_control_characters_inside_quotes() {
        assert!(matches!(
            params("Digest realm=\"a\r\nInjected: 1\""),
            Err(DigestError::Syntax { .. })
        ));
    }

    #[test]
    fn refuses_escaped_control_characters() {
        assert_eq!(
            params("Digest realm=\"a\\\u{1}\""),
            Err(DigestError::Syntax {
                at: 16,
                expected: "a printable ASCII character after `\\`"
            })
        );
    }

    #[test]
    fn refuses_a_scheme_glued_to_its_first_parameter() {
        assert!(matches!(
            params("Digest,realm=\"a\""),
            Err(DigestError::Syntax { at: 6, .. })
        ));
    }

    #[test]
    fn quoting_escapes_quotes_and_backslashes_and_drops_line_breaks() {
        assert_eq!(Quoted(r#"a"b\c"#).to_string(), r#""a\"b\\c""#);
        assert_eq!(Quoted("x\r\ny").to_string(), "\"xy\"");
        assert_eq!(Quoted("J\u{f6}rg").to_string(), "\"J\u{f6}rg\"");
    }
}
