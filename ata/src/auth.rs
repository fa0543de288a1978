//! Answering a digest challenge (RFC 3261 22.2 and 22.3) for the registration and call cores:
//! read `WWW-Authenticate` from a 401 or `Proxy-Authenticate` from a 407, and write the
//! matching `Authorization` or `Proxy-Authorization` value with `dialtone-digest`'s client.
//!
//! The seed's proxy challenges even REGISTER with 407 (table D-4); both codes are handled alike.

use dialtone_digest::{answer, AnswerParams, Challenge};
use dialtone_sip::{HeaderName, Message};

use crate::error::{AtaError, Unusable};

/// The user's secret for one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestUser {
    /// The digest user name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// A credentials header ready to add to the retried request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Authorization` or `Proxy-Authorization`.
    pub name: &'static str,
    /// The value.
    pub value: String,
    /// The challenge's nonce, to notice a repeated challenge (wrong password).
    pub nonce: String,
    /// Whether the server said the previous nonce was merely stale (RFC 2617 3.2.1).
    pub stale: bool,
}

/// Builds the credentials that answer `response` (a 401 or 407) for `method` and `uri`.
pub fn answer_challenge(
    response: &Message<'_>,
    user: &DigestUser,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> Result<AuthHeader, AtaError> {
    let (challenge_header, name) = match response.status() {
        Some(401) => (HeaderName::WwwAuthenticate, "Authorization"),
        Some(407) => (HeaderName::ProxyAuthenticate, "Proxy-Authorization"),
        _ => return Err(AtaError::Unusable(Unusable::NotAChallenge)),
    };
    // Several challenges may come (one per realm or algorithm); take the first we can answer.
    // Whole header values: a challenge's own commas separate its parameters, not challenges.
    let mut last_error = AtaError::Unusable(Unusable::NoChallengeHeader);
    for value in response.headers_named(challenge_header).map(|h| h.value) {
        let challenge = match Challenge::parse(value) {
            Ok(c) => c,
            Err(e) => {
                last_error = e.into();
                continue;
            }
        };
        let params = AnswerParams {
            username: &user.username,
            password: &user.password,
            method,
            uri,
            cnonce,
            nc: 1,
        };
        match answer(&challenge, &params) {
            Ok(credentials) => {
                return Ok(AuthHeader {
                    name,
                    value: credentials.to_string(),
                    nonce: challenge.nonce.to_string(),
                    stale: challenge.stale,
                })
            }
            Err(e) => last_error = e.into(),
        }
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_invite_challenge_gets_the_seed_response() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/seed-flows/D-4-call-auth/03.sip"
        ))
        .expect("seed file");
        let response = Message::parse(&raw).expect("parses");
        let user = DigestUser {
            username: "8000".into(),
            password: "8000".into(),
        };
        let header = answer_challenge(&response, &user, "INVITE", "sip:9000@192.168.2.81", "c")
            .expect("answerable");
        assert_eq!(header.name, "Proxy-Authorization");
        assert!(
            header
                .value
                .contains("response=\"6e91de67ad976997ffac76f0398ef224\""),
            "{}",
            header.value
        );
    }
}
