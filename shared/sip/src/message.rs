//! A SIP message parsed by borrowing from the received buffer (RFC 3261 section 7).
//!
//! Parsing does one pass over the header section: it finds each header line, classifies its name
//! and records where its value lies. Values are parsed only when asked for (see `headers.rs`), so
//! a proxy that only reads Via, Max-Forwards, Route and the Request-URI pays for nothing else.
//! The header index is the only allocation (one `Vec`, sized once).
//!
//! What is checked at parse time is what framing and the start line need: the size cap, the header
//! count cap, UTF-8 in the header section, the start line, header line syntax (with folding), and
//! Content-Length. What a server checks before acting on a request is in [`Message::check_request`].

use crate::error::ParseError;
use crate::header_name::HeaderName;
use crate::lex;
use crate::method::Method;
use crate::uri::Uri;

/// Messages larger than this are refused (513 Message Too Large, RFC 3261 section 21.5.11).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// More header lines than this are refused; a defence against header floods.
pub const MAX_HEADERS: usize = 256;

/// The request line or status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD Request-URI SIP/2.0`
    Request { method: Method<'a>, uri: Uri<'a> },
    /// `SIP/2.0 code reason`
    Response { code: u16, reason: &'a str },
}

/// One header line: its classified name and where it lies in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The classified name.
    pub name: HeaderName,
    /// The name as written.
    pub raw_name: &'a str,
    /// The value, trimmed; a folded value keeps its inner CRLF, which the value parsers treat as
    /// white space (RFC 3261 section 7.3.1).
    pub value: &'a str,
    pub(crate) line_start: u32,
    pub(crate) line_end: u32,
    pub(crate) value_start: u32,
    pub(crate) value_end: u32,
}

/// A parsed SIP message borrowing from its buffer.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) start: StartLine<'a>,
    pub(crate) uri_span: (u32, u32),
    pub(crate) headers: Vec<Header<'a>>,
    pub(crate) headers_end: u32,
    pub(crate) body_start: u32,
    pub(crate) content_length: Option<usize>,
    /// The top Via, parsed on first use: a proxy asks for it several times per message (the
    /// transaction key, where to reply, loop detection, forwarding), and checking its
    /// parameters each time was a tenth of the proxy's work per call.
    pub(crate) top_via: std::cell::OnceCell<Result<crate::Via<'a>, ParseError>>,
    /// From, To and CSeq, parsed on first use for the same reason: validation, the transaction
    /// key, the registrar and the reply each ask for them.
    pub(crate) from: std::cell::OnceCell<Result<crate::NameAddr<'a>, ParseError>>,
    pub(crate) to: std::cell::OnceCell<Result<crate::NameAddr<'a>, ParseError>>,
    pub(crate) cseq: std::cell::OnceCell<Result<crate::CSeq<'a>, ParseError>>,
    /// The Contact list, parsed on first use: a REGISTER's validation checks it and the
    /// registrar then applies it; parsing it twice was 2 % of the proxy's CPU at 20 000/s.
    pub(crate) contacts: std::cell::OnceCell<Result<crate::Contacts<'a>, ParseError>>,
}

impl<'a> Message<'a> {
    /// Parses one message from a datagram or a framed stream message.
    ///
    /// Leading CRLFs are skipped (RFC 3261 section 7.5). Octets after the body that
    /// Content-Length announces are ignored (section 18.3, RFC 4475 section 3.1.1.8). Without
    /// Content-Length the body runs to the end of the buffer, which is right for UDP.
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>, ParseError> {
        let skip = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let bytes = &input[skip..];
        if bytes.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge { size: bytes.len() });
        }
        let mut lines = Lines { bytes, pos: 0 };
        let (_, first_end) = lines.next_line().ok_or(ParseError::Incomplete)?;
        // A first quick pass over the line ends finds where the header section ends and how
        // many lines it has: the header section is then checked as UTF-8 once, and the header
        // index is the one allocation, sized so that it never grows.
        let section = lines.scan_header_section()?;
        let head =
            std::str::from_utf8(&bytes[..section.head_end]).map_err(|e| ParseError::NotUtf8 {
                offset: skip + e.valid_up_to(),
            })?;
        let mut headers: Vec<Header<'a>> = Vec::with_capacity(section.lines.min(MAX_HEADERS));
        // Where the value of the last header starts before trimming; a folded line extends it.
        let mut raw_value_start = 0usize;
        while lines.pos < section.head_end {
            let Some((line_start, line_end, content_end)) = lines.next_line_span() else {
                break;
            };
            // Line starts follow a '\n' and content ends sit on a '\r' or '\n': both are
            // character boundaries of `head`.
            let line = &head[line_start..content_end];
            if line.starts_with([' ', '\t']) {
                // A folded continuation of the previous header (RFC 3261 section 7.3.1): the
                // value now runs to the end of this line.
                let last = headers
                    .last_mut()
                    .ok_or(ParseError::BadHeaderLine { line: 2 })?;
                set_value(last, &head[raw_value_start..content_end], raw_value_start);
                last.line_end = line_end as u32;
                continue;
            }
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let bad_line = || ParseError::BadHeaderLine {
                line: headers.len() + 2,
            };
            let colon = memchr::memchr(b':', line.as_bytes()).ok_or_else(bad_line)?;
            let raw_name = line[..colon].trim_end_matches([' ', '\t']);
            if !lex::is_token(raw_name) {
                return Err(bad_line());
            }
            raw_value_start = line_start + colon + 1;
            let mut header = Header {
                name: HeaderName::classify(raw_name),
                raw_name,
                value: "",
                line_start: line_start as u32,
                line_end: line_end as u32,
                value_start: 0,
                value_end: 0,
            };
            set_value(&mut header, &line[colon + 1..], raw_value_start);
            headers.push(header);
        }

        let first = &head[..first_end];
        let (start, uri_span) = parse_start_line(first)?;
        let mut message = Message {
            bytes,
            start,
            uri_span: (uri_span.0 as u32, uri_span.1 as u32),
            headers,
            headers_end: section.head_end as u32,
            body_start: section.body_start as u32,
            content_length: None,
            top_via: std::cell::OnceCell::new(),
            from: std::cell::OnceCell::new(),
            to: std::cell::OnceCell::new(),
            cseq: std::cell::OnceCell::new(),
            contacts: std::cell::OnceCell::new(),
        };
        message.frame_body()?;
        Ok(message)
    }

    fn frame_body(&mut self) -> Result<(), ParseError> {
        let mut length: Option<usize> = None;
        for header in self
            .headers
            .iter()
            .filter(|h| h.name == HeaderName::ContentLength)
        {
            let value = header.value;
            if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::BadContentLength {
                    reason: "not a number",
                });
            }
            let n: usize = value.parse().map_err(|_| ParseError::BadContentLength {
                reason: "not a number",
            })?;
            match length {
                Some(previous) if previous != n => {
                    return Err(ParseError::BadContentLength {
                        reason: "conflicting values",
                    })
                }
                _ => length = Some(n),
            }
        }
        let available = self.bytes.len() - self.body_start as usize;
        match length {
            Some(n) if n > available => Err(ParseError::BadContentLength {
                reason: "larger than the message",
            }),
            Some(n) => {
                self.bytes = &self.bytes[..self.body_start as usize + n];
                self.content_length = Some(n);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The message's octets, from the start line to the end of the body.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The start line.
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.start
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI, or `None` for a response.
    pub fn request_uri(&self) -> Option<&Uri<'a>> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase, or `None` for a request.
    pub fn reason(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// All header lines in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The first header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&Header<'a>> {
        self.headers.iter().find(|h| h.name == name)
    }

    /// The value of the first header line with this name.
    pub fn header_value(&self, name: HeaderName) -> Option<&'a str> {
        self.header(name).map(|h| h.value)
    }

    /// Every header line with this name, in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &Header<'a>> + '_ {
        self.headers.iter().filter(move |h| h.name == name)
    }

    /// The value of the first header whose name matches `raw` case-insensitively (for headers
    /// the stack does not classify).
    pub fn header_value_by_name(&self, raw: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.raw_name.eq_ignore_ascii_case(raw))
            .map(|h| h.value)
    }

    /// Every comma-separated value of every header line with this name, in order (RFC 3261
    /// section 7.3.1: several lines are equivalent to one comma list).
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.headers_named(name)
            .flat_map(|h| lex::split_commas(h.value))
    }

    /// The body (empty when there is none).
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[self.body_start as usize..]
    }

    /// The Content-Length value, if the header was present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// The octets of the header section, start line included, up to (not including) the empty line.
    pub fn head(&self) -> &'a [u8] {
        &self.bytes[..self.headers_end as usize]
    }
}

/// Line iteration that accepts CRLF and, liberally, bare LF (RFC 3261 section 7.5 asks for CRLF;
/// RFC 4566 parsers and some tools send LF).
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Lines<'_> {
    /// Returns (line end including terminator, content end) of the next line.
    fn next_line(&mut self) -> Option<(usize, usize)> {
        self.next_line_span()
            .map(|(_, end, content)| (end, content))
    }

    /// Returns (start, end including terminator, content end).
    fn next_line_span(&mut self) -> Option<(usize, usize, usize)> {
        let start = self.pos;
        let nl = memchr::memchr(b'\n', &self.bytes[start..])? + start;
        let content_end = if nl > start && self.bytes[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        self.pos = nl + 1;
        Some((start, nl + 1, content_end))
    }

    /// Finds the end of the header section from here, without moving.
    fn scan_header_section(&self) -> Result<HeaderSection, ParseError> {
        let mut ahead = Lines {
            bytes: self.bytes,
            pos: self.pos,
        };
        let mut lines = 0;
        loop {
            match ahead.next_line_span() {
                Some((start, end, content_end)) if content_end == start => {
                    return Ok(HeaderSection {
                        lines,
                        head_end: start,
                        body_start: end,
                    });
                }
                Some(_) => lines += 1,
                // The datagram ended right after a header line without the empty line (RFC
                // 4475's baddn.dat, RFC 5118's section 4.10 files): the datagram's end bounds
                // the message, so read it as a header section with no body rather than hide
                // the message's real fault behind "incomplete". A datagram cut short on a line
                // boundary still fails when it announced a Content-Length.
                None if ahead.pos == self.bytes.len() => {
                    return Ok(HeaderSection {
                        lines,
                        head_end: ahead.pos,
                        body_start: ahead.pos,
                    });
                }
                None => return Err(ParseError::Incomplete),
            }
        }
    }
}

/// Where the header section ends, from [`Lines::scan_header_section`].
struct HeaderSection {
    /// Lines after the start line, continuation lines included.
    lines: usize,
    /// Offset of the empty line (or of the end of the datagram).
    head_end: usize,
    /// Offset just past the empty line.
    body_start: usize,
}

/// Sets a header's value from its untrimmed text, which starts at `raw_start` in the message.
fn set_value<'a>(header: &mut Header<'a>, raw_value: &'a str, raw_start: usize) {
    let value = lex::trim(raw_value);
    // The offset of `value` inside `raw_value`. (It used to be computed with `str::trim_start`,
    // which also strips Unicode and form-feed white space that `lex::trim` keeps: the recorded
    // span then ran past the value, into the line end, and an Editor splice there broke the line.)
    let value_start = raw_start + (value.as_ptr() as usize - raw_value.as_ptr() as usize);
    header.value = value;
    header.value_start = value_start as u32;
    header.value_end = (value_start + value.len()) as u32;
}

fn bad_start(reason: &'static str) -> ParseError {
    ParseError::BadStartLine { reason }
}

/// Parses the start line; returns it and the span of the Request-URI (0,0 for a response).
fn parse_start_line(line: &str) -> Result<(StartLine<'_>, (usize, usize)), ParseError> {
    if line.starts_with("SIP/") {
        return parse_status_line(line).map(|s| (s, (0, 0)));
    }
    // Liberal about several SP between elements and trailing SP (RFC 4475 sections 3.1.2.9 and
    // 3.1.2.10); any further element means white space inside the Request-URI (3.1.2.8).
    let mut parts = line
        .split(' ')
        .filter(|p| !p.is_empty())
        .map(|p| (p.as_ptr() as usize - line.as_ptr() as usize, p));
    let (_, method) = parts.next().ok_or(bad_start("empty"))?;
    let (uri_at, uri) = parts.next().ok_or(bad_start("no Request-URI"))?;
    let (_, version) = parts.next().ok_or(bad_start("no SIP version"))?;
    if parts.next().is_some() {
        return Err(ParseError::BadRequestUri {
            reason: "white space inside",
        });
    }
    if !lex::is_token(method) {
        return Err(bad_start("method is not a token"));
    }
    check_version(version)?;
    if uri.starts_with('<') {
        return Err(ParseError::BadRequestUri {
            reason: "enclosed in <>",
        });
    }
    let parsed = Uri::parse(uri).map_err(|e| match e {
        ParseError::BadUri { reason } => ParseError::BadRequestUri { reason },
        other => other,
    })?;
    if parsed.as_sip().is_some_and(|u| u.headers.is_some()) {
        // RFC 3261 section 19.1.1's table allows no headers component in a Request-URI, and
        // RFC 4475 section 3.1.2.11 (escruri) expects 400: an element that forwarded it might
        // turn `?Route=` into a real Route.
        return Err(ParseError::BadRequestUri {
            reason: "headers in Request-URI",
        });
    }
    Ok((
        StartLine::Request {
            method: Method::from_token(method),
            uri: parsed,
        },
        (uri_at, uri_at + uri.len()),
    ))
}

fn check_version(version: &str) -> Result<(), ParseError> {
    // Compared as bytes: octet 4 need not be a character boundary (`SIP` followed by a
    // multi-byte character made `version[..4]` panic).
    let sip_prefix = version.len() > 4 && version.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/");
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if sip_prefix {
        Err(ParseError::UnsupportedVersion)
    } else {
        Err(bad_start("bad SIP version"))
    }
}

fn parse_status_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    let (version, rest) = line.split_once(' ').ok_or(bad_start("no status code"))?;
    check_version(version)?;
    let rest = rest.trim_start_matches(' ');
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, reason),
        None => (rest, ""),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadStatusCode);
    }
    let code: u16 = code.parse().map_err(|_| ParseError::BadStatusCode)?;
    if !(100..=699).contains(&code) {
        return Err(ParseError::BadStatusCode);
    }
    Ok(StartLine::Response { code, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multibyte_character_in_the_version_is_an_error_not_a_panic() {
        // Octet 4 of "SIPé/2.0" falls inside the 'é'; slicing the text there used to panic.
        let raw = "INVITE sip:a@b SIPé/2.0\r\nCall-ID: x\r\n\r\n";
        assert_eq!(
            Message::parse(raw.as_bytes()).unwrap_err(),
            ParseError::BadStartLine {
                reason: "bad SIP version"
            }
        );
        let raw = "SIPé/2.0 200 OK\r\n\r\n";
        assert!(Message::parse(raw.as_bytes()).is_err());
    }

    #[test]
    fn value_span_matches_the_value_when_it_starts_with_non_lws_white_space() {
        // A form feed is white space to `str::trim_start` but not LWS: the recorded span used to
        // start one octet late and end inside the line terminator.
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nMax-Forwards: \x0c7\r\nCall-ID: x\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        let h = m.header(HeaderName::MaxForwards).unwrap();
        assert_eq!(h.value, "\x0c7");
        assert_eq!(
            &raw[h.value_start as usize..h.value_end as usize],
            h.value.as_bytes()
        );
        let out = m.edit().decrement_max_forwards().finish();
        let again = Message::parse(&out).unwrap();
        assert_eq!(again.header_value(HeaderName::CallId), Some("x"));
        assert_eq!(again.headers().len(), 2);
    }

    #[test]
    fn folded_value_spans_every_continuation_line() {
        let raw =
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject:\r\n  first\r\n\tsecond \r\nCall-ID: x\r\n\r\n";
        let m = Message::parse(raw).unwrap();
        let h = m.header(HeaderName::Subject).unwrap();
        assert_eq!(h.value, "first\r\n\tsecond");
        assert_eq!(
            &raw[h.value_start as usize..h.value_end as usize],
            h.value.as_bytes()
        );
    }

    #[test]
    fn request_uri_with_headers_is_refused() {
        let raw = b"INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\r\n\r\n";
        assert_eq!(
            Message::parse(raw).unwrap_err(),
            ParseError::BadRequestUri {
                reason: "headers in Request-URI"
            }
        );
    }

    #[test]
    fn datagram_ending_after_a_header_line_closes_the_header_section() {
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n";
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.header_value(HeaderName::CallId), Some("x"));
        assert!(m.body().is_empty());
        // Cut short before a body it announced, it still fails.
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nl: 5\r\n";
        assert!(matches!(
            Message::parse(raw),
            Err(ParseError::BadContentLength { .. })
        ));
        // Cut inside a line, it is incomplete.
        let raw = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x";
        assert_eq!(Message::parse(raw).unwrap_err(), ParseError::Incomplete);
    }

    #[test]
    fn header_index_has_room_for_every_header_from_the_start() {
        let mut raw = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..40 {
            raw.push_str(&format!("X-H{i}: v\r\nX-F{i}: a\r\n b\r\n"));
        }
        raw.push_str("\r\n");
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.headers().len(), 80);
        // Continuation lines are counted too, so the estimate never falls short.
        assert!(m.headers.capacity() >= 80);
    }
}
