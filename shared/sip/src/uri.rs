//! URIs of RFC 3261 section 19.1 (`sip:` and `sips:`), RFC 3966 (`tel:`), and any other scheme
//! kept opaque so that a server can answer `416 Unsupported URI Scheme` (RFC 4475 section 3.3.2).
//!
//! A parsed URI borrows from the message. The user part stays escaped as received; comparisons
//! that need the unescaped form call [`SipUri::user_unescaped`] (RFC 4475 section 3.1.1.4: an
//! escaped NUL must not shorten the user name).

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ParseError;
use crate::lex::{self, Params};

/// A URI as found in a Request-URI or inside a name-addr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other absolute URI; only its scheme is looked at.
    Other { scheme: &'a str, raw: &'a str },
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    /// True for `sips:`.
    pub secure: bool,
    /// The user part, escaped as received.
    pub user: Option<&'a str>,
    /// The password part (deprecated by RFC 3261, still parsed).
    pub password: Option<&'a str>,
    /// The host as written; IPv6 references keep their brackets.
    pub host: &'a str,
    /// The port, when given.
    pub port: Option<u16>,
    /// uri-parameters (`transport`, `user`, `maddr`, `lr`, ...).
    pub params: Params<'a>,
    /// The `?header=value&...` part, without the `?`.
    pub headers: Option<&'a str>,
    /// The whole URI as written.
    pub raw: &'a str,
}

/// A `tel:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    /// The telephone number (global `+...` or local).
    pub number: &'a str,
    /// Parameters after the number.
    pub params: Params<'a>,
    /// The whole URI as written.
    pub raw: &'a str,
}

fn bad(reason: &'static str) -> ParseError {
    ParseError::BadUri { reason }
}

impl<'a> Uri<'a> {
    /// Parses a URI. Leading and trailing LWS are not allowed: callers trim where the grammar
    /// allows it.
    pub fn parse(raw: &'a str) -> Result<Uri<'a>, ParseError> {
        let colon = lex::find_byte(raw, b':').ok_or(bad("no scheme"))?;
        let scheme = &raw[..colon];
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(bad("bad scheme"));
        }
        if raw
            .bytes()
            .any(|b| lex::is_lws(b) || b == b'<' || b == b'>')
        {
            return Err(bad("white space or angle bracket inside URI"));
        }
        let rest = &raw[colon + 1..];
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(raw, rest, false).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(raw, rest, true).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_after_scheme(raw, rest).map(Uri::Tel)
        } else {
            Ok(Uri::Other { scheme, raw })
        }
    }

    /// The URI as written.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.raw,
            Uri::Tel(u) => u.raw,
            Uri::Other { raw, .. } => raw,
        }
    }

    /// The SIP URI inside, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&'a str> {
        match self {
            Uri::Sip(u) => u.user,
            Uri::Tel(t) => Some(t.number),
            Uri::Other { .. } => None,
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'a> SipUri<'a> {
    fn parse_after_scheme(
        raw: &'a str,
        rest: &'a str,
        secure: bool,
    ) -> Result<SipUri<'a>, ParseError> {
        // The user part may itself hold ';' (RFC 4475 section 3.1.1.9) and '?' (user-unreserved,
        // section 3.1.1.2's intmeth), so the '@' decides where it ends, not the first ';' or
        // '?'. An '@' before the first '?' wins; failing that, the grammar allows '@' nowhere
        // but after the userinfo, so the first '@' after the '?' ends it.
        let at = match lex::find_byte(rest, b'?') {
            Some(q) => lex::rfind_byte(&rest[..q], b'@').or_else(|| lex::find_byte(rest, b'@')),
            None => lex::rfind_byte(rest, b'@'),
        };
        let (userinfo, after_userinfo) = match at {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostport_params, headers) = match lex::find_byte(after_userinfo, b'?') {
            Some(q) => (&after_userinfo[..q], Some(&after_userinfo[q + 1..])),
            None => (after_userinfo, None),
        };
        let (user, password) = match userinfo {
            Some(info) => {
                let (user, password) = match lex::find_byte(info, b':') {
                    Some(c) => (&info[..c], Some(&info[c + 1..])),
                    None => (info, None),
                };
                if user.is_empty() {
                    return Err(bad("empty user part"));
                }
                (Some(user), password)
            }
            None => (None, None),
        };
        let (hostport, params) = match lex::find_byte(hostport_params, b';') {
            Some(s) => (&hostport_params[..s], &hostport_params[s + 1..]),
            None => (hostport_params, ""),
        };
        let (host, port) = split_host_port(hostport)?;
        let params = Params::parse(params, "URI").map_err(|_| bad("bad uri-parameter"))?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
            raw,
        })
    }

    /// The user part with `%XX` escapes resolved (bytes that are not UTF-8 are replaced).
    pub fn user_unescaped(&self) -> Option<Cow<'a, str>> {
        self.user
            .map(|u| percent_encoding::percent_decode_str(u).decode_utf8_lossy())
    }

    /// The host as an IP address, when it is one (brackets of an IPv6 reference removed).
    pub fn host_ip(&self) -> Option<IpAddr> {
        parse_host_ip(self.host)
    }

    /// The `transport` parameter, lowercased comparisons left to the caller.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// True when the URI carries `lr` (a loose router, RFC 3261 section 19.1.1).
    pub fn is_loose_router(&self) -> bool {
        self.params.contains("lr")
    }

    /// The port to use: the explicit one or the scheme default (5060, or 5061 for sips).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }
}

impl<'a> TelUri<'a> {
    fn parse_after_scheme(raw: &'a str, rest: &'a str) -> Result<TelUri<'a>, ParseError> {
        let (number, params) = match lex::find_byte(rest, b';') {
            Some(s) => (&rest[..s], &rest[s + 1..]),
            None => (rest, ""),
        };
        if number.is_empty()
            || !number
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(&b))
        {
            return Err(bad("bad telephone number"));
        }
        let params = Params::parse(params, "URI").map_err(|_| bad("bad tel parameter"))?;
        Ok(TelUri {
            number,
            params,
            raw,
        })
    }
}

/// Splits `host[:port]`, validating both. IPv6 references must be bracketed (RFC 5118
/// section 4.2); inside the brackets both the RFC 3261 ABNF's three-colon form and the correct
/// two-colon form are tolerated (RFC 5118 section 4.10).
pub fn split_host_port(hostport: &str) -> Result<(&str, Option<u16>), ParseError> {
    if hostport.starts_with('[') {
        let close = hostport
            .find(']')
            .ok_or(bad("unterminated IPv6 reference"))?;
        let host = &hostport[..=close];
        let inner = &host[1..close];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad("bad IPv6 reference"));
        }
        let after = &hostport[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => return Err(bad("garbage after IPv6 reference")),
        };
        return Ok((host, port));
    }
    let (host, port) = match lex::rfind_byte(hostport, b':') {
        Some(c) => (&hostport[..c], Some(parse_port(&hostport[c + 1..])?)),
        None => (hostport, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(bad("bad host"));
    }
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, ParseError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("bad port"));
    }
    p.parse::<u16>().map_err(|_| bad("port out of range"))
}

/// Parses a host as an IP address; IPv6 may be bracketed or bare (Via `received` may be either,
/// RFC 5118 section 4.5).
pub fn parse_host_ip(host: &str) -> Option<IpAddr> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(v4) = inner.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(raw: &str) -> SipUri<'_> {
        match Uri::parse(raw).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn seed_request_uri_has_user_host_and_user_phone() {
        let u = sip("sip:9000@192.168.2.97;user=phone");
        assert_eq!(u.user, Some("9000"));
        assert_eq!(u.host, "192.168.2.97");
        assert_eq!(u.port, None);
        assert_eq!(u.params.get("user"), Some(Some("phone")));
        assert_eq!(u.host_ip(), Some("192.168.2.97".parse().unwrap()));
    }

    #[test]
    fn record_route_uri_keeps_maddr_and_port() {
        let u = sip("sip:9000@192.168.2.97:5060;user=phone;maddr=192.168.2.97");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.maddr(), Some("192.168.2.97"));
        assert!(!u.is_loose_router());
    }

    #[test]
    fn user_part_may_contain_semicolons() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert!(u.params.is_empty());
    }

    #[test]
    fn user_part_may_contain_a_question_mark() {
        // RFC 4475 section 3.1.1.2 (intmeth): '?' is user-unreserved, so the '@' after it ends
        // the userinfo; the URI has no headers component.
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, "example.com");
        assert_eq!(u.headers, None);
        // An '@' before the '?' still ends the userinfo, even if a header value holds another.
        let u = sip("sip:bob@biloxi.example.com?Replaces=a@b");
        assert_eq!(u.user, Some("bob"));
        assert_eq!(u.host, "biloxi.example.com");
        assert_eq!(u.headers, Some("Replaces=a@b"));
        let u = sip("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
        assert_eq!(u.user, None);
        assert_eq!(u.headers, Some("to=alice%40atlanta.com"));
    }

    #[test]
    fn escaped_null_does_not_shorten_the_user() {
        let u = sip("sip:null-%00-null@example.com");
        assert_eq!(u.user_unescaped().unwrap(), "null-\0-null");
    }

    #[test]
    fn sips_password_and_headers_are_parsed() {
        let u = sip("sips:alice:secret@atlanta.com:5061;transport=tcp?subject=x&priority=urgent");
        assert!(u.secure);
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.transport(), Some("tcp"));
        assert_eq!(u.headers, Some("subject=x&priority=urgent"));
        assert_eq!(u.port_or_default(), 5061);
    }

    #[test]
    fn ipv6_references_need_brackets() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.port, Some(5070));
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        let three = sip("sip:[2001:db8:::192.0.2.1]");
        assert_eq!(three.host, "[2001:db8:::192.0.2.1]");
    }

    #[test]
    fn tel_and_unknown_schemes_are_recognised() {
        match Uri::parse("tel:+1-201-555-0123;phone-context=x").unwrap() {
            Uri::Tel(t) => assert_eq!(t.number, "+1-201-555-0123"),
            other => panic!("{other:?}"),
        }
        match Uri::parse("soap.beep://192.0.2.103:3002").unwrap() {
            Uri::Other { scheme, .. } => assert_eq!(scheme, "soap.beep"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_uris_are_errors() {
        for raw in [
            "nocolon",
            "sip:",
            "sip:@host",
            "sip:host:99999",
            "sip:host:",
            "sip:ho st",
            "<sip:a@b>",
            "sip:a@b;;lr",
            "sip:[::1",
        ] {
            assert!(Uri::parse(raw).is_err(), "{raw} should be rejected");
        }
    }
}
