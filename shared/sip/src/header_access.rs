//! Typed access to the header fields the stack needs, parsed on demand from a [`Message`].
//!
//! Single-instance headers (From, To, Call-ID, CSeq, Max-Forwards) report a duplicate as an
//! error (RFC 4475 section 3.3.8). [`Message::check_request`] and [`Message::check_response`]
//! run the checks a server or proxy makes before acting (RFC 3261 sections 8.2 and 16.3).

use crate::error::{bad, ParseError};
use crate::header_name::HeaderName;
use crate::headers::{parse_contact_expires, parse_delta_seconds, CSeq, Contacts};
use crate::lex;
use crate::message::Message;
use crate::method::Method;
use crate::name_addr::NameAddr;
use crate::via::Via;

impl<'a> Message<'a> {
    fn single(&self, name: HeaderName, label: &'static str) -> Result<&'a str, ParseError> {
        let mut found = self.headers_named(name);
        let first = found
            .next()
            .ok_or(ParseError::MissingHeader { name: label })?;
        if found.next().is_some() {
            return Err(ParseError::DuplicateHeader { name: label });
        }
        Ok(first.value)
    }

    fn optional_single(
        &self,
        name: HeaderName,
        label: &'static str,
    ) -> Result<Option<&'a str>, ParseError> {
        match self.single(name, label) {
            Ok(v) => Ok(Some(v)),
            Err(ParseError::MissingHeader { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every Via value, top first.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        self.values(HeaderName::Via).map(Via::parse)
    }

    /// Every Via value but the top one, which [`Message::top_via`] parses and keeps: skipped
    /// before parsing, not after.
    pub fn vias_below_top(&self) -> impl Iterator<Item = Result<Via<'a>, ParseError>> + '_ {
        self.values(HeaderName::Via).skip(1).map(Via::parse)
    }

    /// The top Via value.
    pub fn top_via(&self) -> Result<Via<'a>, ParseError> {
        self.top_via
            .get_or_init(|| {
                self.vias()
                    .next()
                    .unwrap_or(Err(ParseError::MissingHeader { name: "Via" }))
            })
            .clone()
    }

    /// The From header.
    pub fn from(&self) -> Result<NameAddr<'a>, ParseError> {
        self.from
            .get_or_init(|| NameAddr::parse(self.single(HeaderName::From, "From")?, "From"))
            .clone()
    }

    /// The To header.
    pub fn to(&self) -> Result<NameAddr<'a>, ParseError> {
        self.to
            .get_or_init(|| NameAddr::parse(self.single(HeaderName::To, "To")?, "To"))
            .clone()
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Result<&'a str, ParseError> {
        let value = self.single(HeaderName::CallId, "Call-ID")?;
        if value.is_empty() || value.bytes().any(lex::is_lws) {
            return Err(bad("Call-ID", "empty or contains white space"));
        }
        Ok(value)
    }

    /// The CSeq header.
    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        self.cseq.get_or_init(|| self.parse_cseq()).clone()
    }

    fn parse_cseq(&self) -> Result<CSeq<'a>, ParseError> {
        let value = self.single(HeaderName::CSeq, "CSeq")?;
        let mut parts = value.split_ascii_whitespace();
        let seq = parts
            .next()
            .and_then(parse_delta_seconds)
            .ok_or(bad("CSeq", "bad sequence number"))?;
        let method = parts.next().ok_or(bad("CSeq", "no method"))?;
        if parts.next().is_some() || !lex::is_token(method) {
            return Err(bad("CSeq", "bad method"));
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }

    /// Max-Forwards (0 to 255), `None` when absent (RFC 2543 peers omit it).
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.optional_single(HeaderName::MaxForwards, "Max-Forwards")? {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .and_then(|n| u8::try_from(n).ok())
                .map(Some)
                .ok_or(bad("Max-Forwards", "not a number from 0 to 255")),
        }
    }

    /// The Expires header in seconds, `None` when absent.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        match self.optional_single(HeaderName::Expires, "Expires")? {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .map(Some)
                .ok_or(bad("Expires", "not delta-seconds")),
        }
    }

    /// Min-Expires in seconds, `None` when absent.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        match self.optional_single(HeaderName::MinExpires, "Min-Expires")? {
            None => Ok(None),
            Some(v) => parse_delta_seconds(v)
                .map(Some)
                .ok_or(bad("Min-Expires", "not delta-seconds")),
        }
    }

    /// Retry-After in seconds (RFC 3261 section 20.33: delta-seconds, then an optional
    /// comment and parameters, which are not needed to know when to try again); `None` when
    /// absent.
    pub fn retry_after(&self) -> Result<Option<u32>, ParseError> {
        let Some(value) = self.header_value_by_name("Retry-After") else {
            return Ok(None);
        };
        let value = value.trim();
        let digits = value
            .find(|c: char| !c.is_ascii_digit())
            .map_or(value, |end| &value[..end]);
        parse_delta_seconds(digits)
            .map(Some)
            .ok_or(bad("Retry-After", "not delta-seconds"))
    }

    /// The Contact header(s): `*` or a list. An absent Contact is an empty list. Parsed once
    /// and lent: a registrar asks for them at each of its steps.
    pub fn contacts(&self) -> Result<&Contacts<'a>, ParseError> {
        self.contacts
            .get_or_init(|| self.parse_contacts())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn parse_contacts(&self) -> Result<Contacts<'a>, ParseError> {
        let mut list = Vec::new();
        let mut wildcard = false;
        for value in self.values(HeaderName::Contact) {
            if value == "*" {
                wildcard = true;
                continue;
            }
            let contact = NameAddr::parse(value, "Contact")?;
            if let Some(expires) = contact.params.get("expires") {
                parse_contact_expires(expires.ok_or(bad("Contact", "bad expires"))?)?;
            }
            if let Some(q) = contact.params.get("q") {
                parse_q(q.unwrap_or(""))?;
            }
            list.push(contact);
        }
        match (wildcard, list.is_empty()) {
            (true, true) => Ok(Contacts::Wildcard),
            (true, false) => Err(bad("Contact", "* mixed with contacts")),
            (false, _) => Ok(Contacts::List(list)),
        }
    }

    /// Route values, top first.
    pub fn routes(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.values(HeaderName::Route)
            .map(|v| NameAddr::parse(v, "Route"))
            .collect()
    }

    /// The first Route value, if any.
    pub fn top_route(&self) -> Result<Option<NameAddr<'a>>, ParseError> {
        self.values(HeaderName::Route)
            .next()
            .map(|v| NameAddr::parse(v, "Route"))
            .transpose()
    }

    /// Record-Route values, top first.
    pub fn record_routes(&self) -> Result<Vec<NameAddr<'a>>, ParseError> {
        self.values(HeaderName::RecordRoute)
            .map(|v| NameAddr::parse(v, "Record-Route"))
            .collect()
    }

    /// The Content-Type value (media type with parameters), if present.
    pub fn content_type(&self) -> Option<&'a str> {
        self.header_value(HeaderName::ContentType)
    }

    /// Tokens of a token-list header (Allow, Supported, Require, Proxy-Require, Unsupported).
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.values(name).filter(|t| !t.is_empty())
    }

    /// Checks what RFC 3261 sections 8.2 and 16.3 need before a request is acted on: the
    /// mandatory headers are present once and well formed, and the CSeq method matches.
    pub fn check_request(&self) -> Result<(), ParseError> {
        let method = self.method().ok_or(bad_start())?;
        // The top Via is parsed once, and kept: the proxy asks for it again.
        self.top_via()?;
        for via in self.vias_below_top() {
            via?;
        }
        self.check_common()?;
        if self.cseq()?.method != method {
            return Err(ParseError::CSeqMethodMismatch);
        }
        self.max_forwards()?;
        self.expires()?;
        self.contacts()?;
        for route in self.values(HeaderName::Route) {
            NameAddr::parse(route, "Route")?;
        }
        Ok(())
    }

    /// Checks a response before it is matched to a transaction or relayed.
    pub fn check_response(&self) -> Result<(), ParseError> {
        self.top_via()?;
        self.check_common()?;
        Ok(())
    }

    fn check_common(&self) -> Result<(), ParseError> {
        // Missing headers first, so that RFC 4475 section 3.3.1 gets "Missing Call-ID".
        self.call_id()?;
        self.from()?;
        self.to()?;
        self.cseq()?;
        Ok(())
    }
}

fn bad_start() -> ParseError {
    ParseError::BadStartLine {
        reason: "not a request",
    }
}

fn parse_q(q: &str) -> Result<(), ParseError> {
    let ok = match q.split_once('.') {
        None => q == "0" || q == "1",
        Some((int, frac)) => {
            (int == "0" || int == "1")
                && frac.len() <= 3
                && frac.bytes().all(|b| b.is_ascii_digit())
                && (int == "0" || frac.bytes().all(|b| b == b'0'))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad("Contact", "bad q"))
    }
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn response_with(extra: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 500 Server Internal Error\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn retry_after_is_its_delta_seconds_whatever_comment_or_parameters_follow() {
        for (line, want) in [
            ("", None),
            ("Retry-After: 5\r\n", Some(5)),
            ("Retry-After: 18000;duration=3600\r\n", Some(18000)),
            ("retry-after:  120 (I'm in a meeting)\r\n", Some(120)),
        ] {
            let bytes = response_with(line);
            let message = Message::parse(&bytes).unwrap();
            assert_eq!(message.retry_after(), Ok(want), "{line:?}");
        }
        for line in ["Retry-After: soon\r\n", "Retry-After: 99999999999\r\n"] {
            let bytes = response_with(line);
            let message = Message::parse(&bytes).unwrap();
            assert!(message.retry_after().is_err(), "{line:?}");
        }
    }

    fn request_with(vias: &str, extra: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{vias}From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n\
             Call-ID: c\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_request_is_refused_for_a_bad_via_below_the_top_or_a_bad_route() {
        let good = "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n";
        let bytes = request_with(good, "Route: <sip:p1;lr>, <sip:p2;lr>\r\n");
        assert_eq!(Message::parse(&bytes).unwrap().check_request(), Ok(()));
        for (vias, extra, header) in [
            (format!("{good}Via: SIP/2.0/UDP\r\n"), "", "Via"),
            (
                "Via: SIP/2.0/UDP 10.0.0.1, SIP/2.0\r\n".to_string(),
                "",
                "Via",
            ),
            (
                good.to_string(),
                "Route: <sip:p1;lr>, <sip:p2;lr\r\n",
                "Route",
            ),
        ] {
            let bytes = request_with(&vias, extra);
            let error = Message::parse(&bytes).unwrap().check_request().unwrap_err();
            assert!(
                matches!(error, crate::ParseError::BadHeader { name, .. } if name == header),
                "{vias:?} {extra:?}: {error:?}"
            );
        }
        let bytes = request_with("Via: SIP/2.0 10.0.0.1\r\n", "");
        let message = Message::parse(&bytes).unwrap();
        assert!(message.check_request().is_err(), "a bad top Via");
        assert!(message.top_via().is_err(), "the top Via's error, kept");
    }
}
