//! `Authorization` / `Proxy-Authorization` credential values: parsing what a client sent (for
//! `verify.rs`) and writing what a client sends (for `client.rs`).
//!
//! RFC 3261 section 22.4 and RFC 7616 section 3.4. Both the RFC 2069 form (no `qop`, as the
//! seed's Cisco ATA sends) and the `qop=auth` form with `cnonce` and `nc` are accepted.

use std::borrow::Cow;
use std::fmt;

use crate::algorithm::{Algorithm, Qop};
use crate::challenge::set_once;
use crate::error::DigestError;
use crate::params::{digest_params, Quoted};

/// Parsed or to-be-sent digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The user name, part of HA1 and the key for looking up the user's secret.
    pub username: Cow<'a, str>,
    /// The realm the client answered for.
    pub realm: Cow<'a, str>,
    /// The server nonce the client answered.
    pub nonce: Cow<'a, str>,
    /// The digest-uri: what the client hashed, not necessarily today's Request-URI (a proxy
    /// may have rewritten that), so checking the two against each other is the caller's policy.
    pub uri: Cow<'a, str>,
    /// The client's response digest, in hex.
    pub response: Cow<'a, str>,
    /// `algorithm` as sent; `None` means MD5.
    pub algorithm: Option<Algorithm>,
    /// The client nonce; present whenever `qop` is.
    pub cnonce: Option<Cow<'a, str>>,
    /// The server's opaque, echoed.
    pub opaque: Option<Cow<'a, str>>,
    /// `qop`; `None` is the RFC 2069 form.
    pub qop: Option<Qop>,
    /// The nonce count `nc`; present whenever `qop` is.
    pub nc: Option<u32>,
}

impl<'a> Credentials<'a> {
    /// Parses a credentials header value such as
    /// `Digest username="9301", realm="CISCO", nonce="3bd5e334", uri="sip:192.168.2.81", response=".."`.
    pub fn parse(value: &'a str) -> Result<Self, DigestError> {
        let mut fields = Fields::default();
        for param in digest_params(value)? {
            fields.take(param?)?;
        }
        fields.finish()
    }

    /// The algorithm used: the one named, else MD5.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or_default()
    }

    /// Copies any borrowed values so the credentials can outlive the header they came from.
    pub fn into_owned(self) -> Credentials<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Credentials {
            username: own(self.username),
            realm: own(self.realm),
            nonce: own(self.nonce),
            uri: own(self.uri),
            response: own(self.response),
            algorithm: self.algorithm,
            cnonce: self.cnonce.map(own),
            opaque: self.opaque.map(own),
            qop: self.qop,
            nc: self.nc,
        }
    }
}

/// The parameters seen so far while parsing.
#[derive(Default)]
struct Fields<'a> {
    username: Option<Cow<'a, str>>,
    realm: Option<Cow<'a, str>>,
    nonce: Option<Cow<'a, str>>,
    uri: Option<Cow<'a, str>>,
    response: Option<Cow<'a, str>>,
    algorithm: Option<Algorithm>,
    cnonce: Option<Cow<'a, str>>,
    opaque: Option<Cow<'a, str>>,
    qop: Option<Qop>,
    nc: Option<u32>,
}

impl<'a> Fields<'a> {
    fn take(&mut self, param: crate::params::Param<'a>) -> Result<(), DigestError> {
        let name = param.name;
        let value = param.value;
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        if is("username") {
            set_once(&mut self.username, "username", value)
        } else if is("realm") {
            set_once(&mut self.realm, "realm", value)
        } else if is("nonce") {
            set_once(&mut self.nonce, "nonce", value)
        } else if is("uri") {
            set_once(&mut self.uri, "uri", value)
        } else if is("response") {
            set_once(&mut self.response, "response", value)
        } else if is("algorithm") {
            set_once(&mut self.algorithm, "algorithm", Algorithm::parse(&value)?)
        } else if is("cnonce") {
            set_once(&mut self.cnonce, "cnonce", value)
        } else if is("opaque") {
            set_once(&mut self.opaque, "opaque", value)
        } else if is("qop") {
            set_once(&mut self.qop, "qop", Qop::parse(&value)?)
        } else if is("nc") {
            set_once(&mut self.nc, "nc", parse_nc(&value)?)
        } else {
            // RFC 7616 section 3.4: unknown parameters are ignored.
            Ok(())
        }
    }

    fn finish(self) -> Result<Credentials<'a>, DigestError> {
        let credentials = Credentials {
            username: self.username.ok_or(DigestError::MissingParam("username"))?,
            realm: self.realm.ok_or(DigestError::MissingParam("realm"))?,
            nonce: self.nonce.ok_or(DigestError::MissingParam("nonce"))?,
            uri: self.uri.ok_or(DigestError::MissingParam("uri"))?,
            response: self.response.ok_or(DigestError::MissingParam("response"))?,
            algorithm: self.algorithm,
            cnonce: self.cnonce,
            opaque: self.opaque,
            qop: self.qop,
            nc: self.nc,
        };
        // RFC 7616 section 3.4: with qop, cnonce and nc MUST be sent; without them the
        // response cannot be recomputed.
        if credentials.qop.is_some() {
            if credentials.cnonce.is_none() {
                return Err(DigestError::MissingParam("cnonce"));
            }
            if credentials.nc.is_none() {
                return Err(DigestError::MissingParam("nc"));
            }
        }
        Ok(credentials)
    }
}

/// `nc` is exactly 8 lowercase hex digits (RFC 7616 section 3.4 `8LHEX`). The response hashes the
/// text as sent, and verification rewrites it from the number, so any other spelling would
/// only turn into a puzzling bad response later; better to name it here.
fn parse_nc(value: &str) -> Result<u32, DigestError> {
    let bad = DigestError::BadParam {
        name: "nc",
        reason: "expected 8 lowercase hex digits",
    };
    let well_formed = value.len() == 8
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return Err(bad);
    }
    u32::from_str_radix(value, 16).map_err(|_| bad)
}

/// Writes the header value. Values are quoted except `algorithm`, `qop` and `nc`, which RFC 7616
/// section 3.4 gives as tokens; the RFC 2069 form is written when `qop` is `None`.
impl fmt::Display for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
        )?;
        if let Some(algorithm) = self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={nc:08x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEED_REGISTER: &str = r#"Digest username="9301", realm="CISCO", nonce="3bd5e334", uri="sip:192.168.2.81", response="87ac0afeb08222af706f9e8b5c566ce2""#;

    #[test]
    fn parses_the_seed_atas_rfc_2069_credentials() {
        let c = Credentials::parse(SEED_REGISTER).unwrap();
        assert_eq!(c.username, "9301");
        assert_eq!(c.realm, "CISCO");
        assert_eq!(c.nonce, "3bd5e334");
        assert_eq!(c.uri, "sip:192.168.2.81");
        assert_eq!(c.response, "87ac0afeb08222af706f9e8b5c566ce2");
        assert_eq!(c.algorithm(), Algorithm::Md5);
        assert_eq!((c.qop, c.cnonce, c.nc), (None, None, None));
    }

    #[test]
    fn writes_the_seed_credentials_back_byte_for_byte() {
        assert_eq!(
            Credentials::parse(SEED_REGISTER).unwrap().to_string(),
            SEED_REGISTER
        );
    }

    #[test]
    fn parses_qop_credentials_with_unquoted_tokens_and_odd_spacing() {
        let c = Credentials::parse(
            "digest USERNAME = \"Mufasa\" , realm=\"r\",nonce=\"n\", uri=\"/x\", response=\"abc\",\r\n qop=auth, nc=0000000a, cnonce=\"c\", algorithm=sha-256, opaque=\"o\"",
        )
        .unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(c.nc, Some(10));
        assert_eq!(c.cnonce.as_deref(), Some("c"));
        assert_eq!(c.algorithm, Some(Algorithm::Sha256));
        assert_eq!(c.opaque.as_deref(), Some("o"));
    }

    #[test]
    fn accepts_a_quoted_qop_as_some_clients_send_it() {
        let c = Credentials::parse(
            r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop="auth", nc=00000001, cnonce="c""#,
        )
        .unwrap();
        assert_eq!(c.qop, Some(Qop::Auth));
    }

    #[test]
    fn names_each_missing_required_parameter() {
        let full = [
            ("username", r#"username="u""#),
            ("realm", r#"realm="r""#),
            ("nonce", r#"nonce="n""#),
            ("uri", r#"uri="/""#),
            ("response", r#"response="x""#),
        ];
        for (missing, _) in full {
            let rest: Vec<&str> = full
                .iter()
                .filter(|(name, _)| *name != missing)
                .map(|(_, text)| *text)
                .collect();
            let value = format!("Digest {}", rest.join(", "));
            assert_eq!(
                Credentials::parse(&value),
                Err(DigestError::MissingParam(missing)),
                "{value}"
            );
        }
    }

    #[test]
    fn qop_without_cnonce_or_nc_is_refused() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth"#;
        assert_eq!(
            Credentials::parse(&format!("{base}, nc=00000001")),
            Err(DigestError::MissingParam("cnonce"))
        );
        assert_eq!(
            Credentials::parse(&format!("{base}, cnonce=\"c\"")),
            Err(DigestError::MissingParam("nc"))
        );
    }

    #[test]
    fn refuses_a_badly_written_nonce_count() {
        for nc in ["1", "000000001", "0000000A", "0000000g", "\"00000001x\""] {
            let value = format!(
                r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth, cnonce="c", nc={nc}"#
            );
            assert!(
                matches!(
                    Credentials::parse(&value),
                    Err(DigestError::BadParam { name: "nc", .. })
                ),
                "{nc}"
            );
        }
    }

    #[test]
    fn refuses_an_unknown_qop() {
        let value = r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", qop=auth-conf, cnonce="c", nc=00000001"#;
        assert_eq!(
            Credentials::parse(value),
            Err(DigestError::UnsupportedQop("auth-conf".into()))
        );
    }

    #[test]
    fn refuses_a_basic_authorization() {
        assert!(matches!(
            Credentials::parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            Err(DigestError::UnknownScheme { .. })
        ));
    }

    #[test]
    fn refuses_a_repeated_response() {
        let value =
            r#"Digest username="u", realm="r", nonce="n", uri="/", response="x", Response="y""#;
        assert_eq!(
            Credentials::parse(value),
            Err(DigestError::DuplicateParam("response"))
        );
    }

    /// Text that can sit in a quoted-string: anything but control characters.
    fn quotable() -> impl Strategy<Value = String> {
        "[^\\p{Cc}]{0,24}"
    }

    fn credentials() -> impl Strategy<Value = Credentials<'static>> {
        let qop_part = proptest::option::of((quotable(), any::<u32>()));
        (
            (quotable(), quotable(), quotable(), quotable(), quotable()),
            proptest::option::of(prop_oneof![
                Just(Algorithm::Md5),
                Just(Algorithm::Md5Sess),
                Just(Algorithm::Sha256),
                Just(Algorithm::Sha256Sess),
            ]),
            proptest::option::of(quotable()),
            qop_part,
        )
            .prop_map(
                |((username, realm, nonce, uri, response), algorithm, opaque, qop)| Credentials {
                    username: username.into(),
                    realm: realm.into(),
                    nonce: nonce.into(),
                    uri: uri.into(),
                    response: response.into(),
                    algorithm,
                    cnonce: qop.as_ref().map(|(c, _)| c.clone().into()),
                    opaque: opaque.map(Into::into),
                    qop: qop.as_ref().map(|_| Qop::Auth),
                    nc: qop.map(|(_, nc)| nc),
                },
            )
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Credentials::parse(&text);
        }

        #[test]
        fn parsing_digest_shaped_text_never_panics(
            text in "[Dd]igest [a-z=\", \\\\\t\r\n0-9\u{e9}]{0,80}"
        ) {
            let _ = Credentials::parse(&text);
        }

        #[test]
        fn written_credentials_parse_back_to_the_same_values(c in credentials()) {
            let text = c.to_string();
            prop_assert_eq!(Credentials::parse(&text).unwrap(), c);
        }
    }
}
