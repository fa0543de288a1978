//! The client side: answering a 401/407 challenge with credentials (RFC 3261 section 22.2 and
//! 22.3, RFC 7616 section 3.4).
//!
//! Pure like the rest of the crate: the caller supplies the cnonce (its randomness) and the
//! nonce count it keeps per nonce, and gets back [`Credentials`] whose `Display` is the header
//! value. `qop=auth` is used whenever the challenge offers it, the RFC 2069 form otherwise.

use std::borrow::Cow;

use crate::algorithm::{ha1, Qop};
use crate::challenge::Challenge;
use crate::credentials::Credentials;
use crate::error::DigestError;
use crate::params::check_printable;
use crate::response::{QopFields, ResponseInput};

/// What the client brings to a challenge.
#[derive(Debug, Clone, Copy)]
pub struct AnswerParams<'a> {
    /// The user name.
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
    /// The request's method; for ACK and CANCEL, `INVITE` (RFC 3261 section 22.1).
    pub method: &'a str,
    /// The digest-uri, normally the Request-URI.
    pub uri: &'a str,
    /// A fresh random client nonce, used only with qop; keep it free of `"` for old servers.
    pub cnonce: &'a str,
    /// How many requests this client has sent with this nonce, this one included; from 1.
    pub nc: u32,
}

/// Answers `challenge`; `.to_string()` on the result is the `Authorization` or
/// `Proxy-Authorization` header value.
///
/// The algorithm is echoed as the challenge gave it (absent stays absent, which old servers
/// expect), as is `opaque`.
pub fn answer<'a>(
    challenge: &'a Challenge<'_>,
    params: &AnswerParams<'a>,
) -> Result<Credentials<'a>, DigestError> {
    check_printable("username", params.username)?;
    check_printable("uri", params.uri)?;
    check_printable("method", params.method)?;

    let qop = choose_qop(challenge)?;
    let qop_fields = match qop {
        None => None,
        Some(qop) => {
            check_printable("cnonce", params.cnonce)?;
            if params.cnonce.is_empty() {
                return Err(DigestError::BadParam {
                    name: "cnonce",
                    reason: "must not be empty when qop is used",
                });
            }
            if params.nc == 0 {
                return Err(DigestError::BadParam {
                    name: "nc",
                    reason: "counts from 1",
                });
            }
            Some(QopFields {
                qop,
                nc: params.nc,
                cnonce: params.cnonce,
            })
        }
    };

    let algorithm = challenge.algorithm();
    let input = ResponseInput {
        algorithm,
        nonce: &challenge.nonce,
        method: params.method,
        uri: params.uri,
        qop: qop_fields,
    };
    let base_ha1 = ha1(
        algorithm,
        params.username,
        &challenge.realm,
        params.password,
    );
    let response = input.response_hex(&base_ha1)?;

    Ok(Credentials {
        username: Cow::Borrowed(params.username),
        realm: Cow::Borrowed(&challenge.realm),
        nonce: Cow::Borrowed(&challenge.nonce),
        uri: Cow::Borrowed(params.uri),
        response: Cow::Owned(response),
        algorithm: challenge.algorithm,
        cnonce: qop.map(|_| Cow::Borrowed(params.cnonce)),
        opaque: challenge.opaque.as_deref().map(Cow::Borrowed),
        qop,
        nc: qop.map(|_| params.nc),
    })
}

/// `auth` if offered; nothing if no qop was offered; an error if only qops we lack were.
fn choose_qop(challenge: &Challenge<'_>) -> Result<Option<Qop>, DigestError> {
    match challenge.qop {
        None => Ok(None),
        Some(options) if options.auth => Ok(Some(Qop::Auth)),
        Some(options) => Err(DigestError::UnsupportedQop(options.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Algorithm, QopOptions};

    fn params() -> AnswerParams<'static> {
        AnswerParams {
            username: "9301",
            password: "9301",
            method: "REGISTER",
            uri: "sip:192.168.2.81",
            cnonce: "c0ffee",
            nc: 1,
        }
    }

    #[test]
    fn answers_the_seed_challenge_exactly_as_the_cisco_ata_did() {
        // D-2-register-auth: 03.sip challenged, 04.sip is the ATA's answer.
        let challenge = Challenge::parse(r#"DIGEST realm="CISCO", nonce="3bd5e334""#).unwrap();
        let credentials = answer(&challenge, &params()).unwrap();
        assert_eq!(
            credentials.to_string(),
            r#"Digest username="9301", realm="CISCO", nonce="3bd5e334", uri="sip:192.168.2.81", response="87ac0afeb08222af706f9e8b5c566ce2""#
        );
    }

    #[test]
    fn uses_qop_auth_when_offered_and_echoes_algorithm_and_opaque() {
        let challenge = Challenge::parse(
            r#"Digest realm="r", nonce="n", opaque="o", algorithm=SHA-256, qop="auth-int,auth""#,
        )
        .unwrap();
        let credentials = answer(&challenge, &params()).unwrap();
        assert_eq!(credentials.qop, Some(Qop::Auth));
        assert_eq!(credentials.nc, Some(1));
        assert_eq!(credentials.cnonce.as_deref(), Some("c0ffee"));
        assert_eq!(credentials.opaque.as_deref(), Some("o"));
        assert_eq!(credentials.algorithm, Some(Algorithm::Sha256));
        assert_eq!(credentials.response.len(), 64);
    }

    #[test]
    fn refuses_a_challenge_offering_only_auth_int() {
        let mut challenge = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        challenge.qop = Some(QopOptions {
            auth: false,
            auth_int: true,
        });
        assert_eq!(
            answer(&challenge, &params()),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
    }

    #[test]
    fn refuses_header_breaking_input() {
        let challenge = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let bad = AnswerParams {
            uri: "sip:a\r\nVia: evil",
            ..params()
        };
        assert_eq!(
            answer(&challenge, &bad),
            Err(DigestError::ControlCharacter("uri"))
        );
    }

    #[test]
    fn refuses_an_empty_cnonce_or_zero_count_with_qop() {
        let challenge = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth""#).unwrap();
        let no_cnonce = AnswerParams {
            cnonce: "",
            ..params()
        };
        assert!(matches!(
            answer(&challenge, &no_cnonce),
            Err(DigestError::BadParam { name: "cnonce", .. })
        ));
        let zero = AnswerParams { nc: 0, ..params() };
        assert!(matches!(
            answer(&challenge, &zero),
            Err(DigestError::BadParam { name: "nc", .. })
        ));
    }

    #[test]
    fn ignores_cnonce_and_nc_without_qop() {
        let challenge = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let odd = AnswerParams {
            cnonce: "",
            nc: 0,
            ..params()
        };
        let credentials = answer(&challenge, &odd).unwrap();
        assert_eq!((credentials.cnonce, credentials.nc), (None, None));
    }
}
