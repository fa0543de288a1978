//! `WWW-Authenticate` / `Proxy-Authenticate` challenge values: parsing what a server sent
//! (the client side, `client.rs`) and writing what a server sends (`Verifier::challenge`).
//!
//! RFC 3261 section 22.4 and RFC 7616 section 3.3. The lexing is in `params.rs`; this module
//! gives the parameters their meaning and checks that `realm` and `nonce` are there.

use std::borrow::Cow;
use std::fmt;

use crate::algorithm::{Algorithm, QopOptions};
use crate::error::DigestError;
use crate::params::{digest_params, Quoted};

/// A parsed or to-be-sent digest challenge.
///
/// Values borrow from the parsed header where they could be taken as they stand. Parameters this
/// crate does not know (`domain`, `charset`, `userhash`, extensions) are skipped when parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The protection space, shown to users and part of HA1.
    pub realm: Cow<'a, str>,
    /// The server's nonce.
    pub nonce: Cow<'a, str>,
    /// Data the client must echo unchanged.
    pub opaque: Option<Cow<'a, str>>,
    /// `algorithm` as sent; `None` means MD5 and is kept apart so the seed's bare
    /// `Digest realm=.., nonce=..` form is written back exactly.
    pub algorithm: Option<Algorithm>,
    /// The `qop` list; `None` when the challenge has none (the RFC 2069 form).
    pub qop: Option<QopOptions>,
    /// `stale=true`: the previous credentials were right, only the nonce had expired.
    pub stale: bool,
}

impl<'a> Challenge<'a> {
    /// Parses a challenge header value such as `Digest realm="CISCO", nonce="3bd5e334"`.
    ///
    /// One value holds one challenge; SIP sends each challenge in its own header field.
    pub fn parse(value: &'a str) -> Result<Self, DigestError> {
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut stale = None;

        for param in digest_params(value)? {
            let param = param?;
            let name = param.name;
            if name.eq_ignore_ascii_case("realm") {
                set_once(&mut realm, "realm", param.value)?;
            } else if name.eq_ignore_ascii_case("nonce") {
                set_once(&mut nonce, "nonce", param.value)?;
            } else if name.eq_ignore_ascii_case("opaque") {
                set_once(&mut opaque, "opaque", param.value)?;
            } else if name.eq_ignore_ascii_case("algorithm") {
                set_once(&mut algorithm, "algorithm", Algorithm::parse(&param.value)?)?;
            } else if name.eq_ignore_ascii_case("qop") {
                set_once(&mut qop, "qop", QopOptions::parse_list(&param.value))?;
            } else if name.eq_ignore_ascii_case("stale") {
                // RFC 7616 section 3.3: TRUE in any case means stale, anything else does not.
                set_once(
                    &mut stale,
                    "stale",
                    param.value.eq_ignore_ascii_case("true"),
                )?;
            }
        }

        Ok(Challenge {
            realm: realm.ok_or(DigestError::MissingParam("realm"))?,
            nonce: nonce.ok_or(DigestError::MissingParam("nonce"))?,
            opaque,
            algorithm,
            qop,
            stale: stale.unwrap_or(false),
        })
    }

    /// The algorithm to use: the one named, else MD5.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm.unwrap_or_default()
    }

    /// Copies any borrowed values so the challenge can outlive the header it came from.
    pub fn into_owned(self) -> Challenge<'static> {
        Challenge {
            realm: Cow::Owned(self.realm.into_owned()),
            nonce: Cow::Owned(self.nonce.into_owned()),
            opaque: self.opaque.map(|o| Cow::Owned(o.into_owned())),
            algorithm: self.algorithm,
            qop: self.qop,
            stale: self.stale,
        }
    }
}

/// Stores a parameter's value, refusing a second occurrence.
pub(crate) fn set_once<T>(
    slot: &mut Option<T>,
    name: &'static str,
    value: T,
) -> Result<(), DigestError> {
    if slot.is_some() {
        return Err(DigestError::DuplicateParam(name));
    }
    *slot = Some(value);
    Ok(())
}

/// Writes the header value, e.g. `Digest realm="CISCO", nonce="..", algorithm=MD5, qop="auth"`.
impl fmt::Display for Challenge<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest realm={}, nonce={}",
            Quoted(&self.realm),
            Quoted(&self.nonce)
        )?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        if let Some(algorithm) = self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if let Some(qop) = self.qop {
            write!(f, ", qop=\"{qop}\"")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_seed_proxys_bare_challenge() {
        // tests/data/seed-flows/D-2-register-auth/03.sip: upper-case scheme, no algorithm, no qop.
        let c = Challenge::parse(r#"DIGEST realm="CISCO", nonce="3bd5e334""#).unwrap();
        assert_eq!(c.realm, "CISCO");
        assert_eq!(c.nonce, "3bd5e334");
        assert_eq!(c.algorithm, None);
        assert_eq!(c.algorithm(), Algorithm::Md5);
        assert_eq!(c.qop, None);
        assert!(!c.stale);
    }

    #[test]
    fn parses_a_full_rfc_7616_challenge() {
        let c = Challenge::parse(
            r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", stale=TRUE"#,
        )
        .unwrap();
        assert_eq!(c.algorithm, Some(Algorithm::Sha256));
        assert_eq!(
            c.qop,
            Some(QopOptions {
                auth: true,
                auth_int: true
            })
        );
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert!(c.stale);
    }

    #[test]
    fn borrows_values_from_the_header() {
        let c = Challenge::parse(r#"Digest realm="CISCO", nonce="abc""#).unwrap();
        assert!(matches!(c.realm, Cow::Borrowed(_)));
        assert!(matches!(c.nonce, Cow::Borrowed(_)));
    }

    #[test]
    fn names_the_missing_nonce() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="CISCO""#),
            Err(DigestError::MissingParam("nonce"))
        );
    }

    #[test]
    fn names_the_missing_realm() {
        assert_eq!(
            Challenge::parse(r#"Digest nonce="x""#),
            Err(DigestError::MissingParam("realm"))
        );
    }

    #[test]
    fn refuses_a_repeated_nonce() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="a", nonce="x", NONCE="y""#),
            Err(DigestError::DuplicateParam("nonce"))
        );
    }

    #[test]
    fn refuses_an_unknown_algorithm_by_name() {
        assert_eq!(
            Challenge::parse(r#"Digest realm="a", nonce="x", algorithm=SHA-512-256"#),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
    }

    #[test]
    fn stale_other_than_true_means_not_stale() {
        let c = Challenge::parse(r#"Digest realm="a", nonce="x", stale=false"#).unwrap();
        assert!(!c.stale);
    }

    #[test]
    fn writes_what_it_parses() {
        let c = Challenge {
            realm: "dialtone".into(),
            nonce: "n\"1".into(),
            opaque: Some("op".into()),
            algorithm: Some(Algorithm::Sha256),
            qop: Some(QopOptions::AUTH),
            stale: true,
        };
        let text = c.to_string();
        assert_eq!(
            text,
            r#"Digest realm="dialtone", nonce="n\"1", opaque="op", stale=true, algorithm=SHA-256, qop="auth""#
        );
        assert_eq!(Challenge::parse(&text).unwrap(), c);
    }

    #[test]
    fn writes_the_bare_rfc_2069_form_when_nothing_else_is_set() {
        let c = Challenge::parse(r#"DIGEST realm="CISCO", nonce="3bd5e334""#).unwrap();
        assert_eq!(c.to_string(), r#"Digest realm="CISCO", nonce="3bd5e334""#);
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = Challenge::parse(&text);
        }

        #[test]
        fn written_challenges_parse_back_to_the_same_values(
            realm in "[^\\p{Cc}]{0,24}",
            nonce in "[^\\p{Cc}]{0,24}",
            opaque in proptest::option::of("[^\\p{Cc}]{0,24}"),
            qop in proptest::option::of((any::<bool>(), any::<bool>())),
            stale in any::<bool>(),
        ) {
            let challenge = Challenge {
                realm: realm.into(),
                nonce: nonce.into(),
                opaque: opaque.map(Into::into),
                algorithm: Some(Algorithm::Sha256Sess),
                qop: qop.map(|(auth, auth_int)| QopOptions { auth, auth_int }),
                stale,
            };
            let text = challenge.to_string();
            prop_assert_eq!(Challenge::parse(&text).unwrap(), challenge);
        }
    }
}
