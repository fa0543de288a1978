//! The `response` computation of RFC 7616 section 3.4.1 (RFC 2617 section 3.2.2.1), shared by
//! the client (`client.rs`, which sends it) and the server (`verify.rs`, which recomputes it).
//!
//! Both forms are here: `H(HA1:nonce:nc:cnonce:qop:HA2)` with `qop=auth`, and the RFC 2069
//! form `H(HA1:nonce:HA2)` that the seed's Cisco ATA uses.

use crate::algorithm::{Algorithm, Qop};
use crate::credentials::Credentials;
use crate::error::DigestError;

/// The values the `qop` form adds to the hash.
pub(crate) struct QopFields<'a> {
    pub qop: Qop,
    pub nc: u32,
    pub cnonce: &'a str,
}

/// Everything the response depends on besides the secret.
pub(crate) struct ResponseInput<'a> {
    pub algorithm: Algorithm,
    pub nonce: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
    /// `None` selects the RFC 2069 form.
    pub qop: Option<QopFields<'a>>,
}

impl<'a> ResponseInput<'a> {
    /// The inputs as credentials carry them, for recomputing a client's response.
    pub fn from_credentials(
        credentials: &'a Credentials<'_>,
        method: &'a str,
    ) -> Result<Self, DigestError> {
        let qop = match credentials.qop {
            None => None,
            Some(qop) => Some(QopFields {
                qop,
                nc: credentials.nc.ok_or(DigestError::MissingParam("nc"))?,
                cnonce: credentials
                    .cnonce
                    .as_deref()
                    .ok_or(DigestError::MissingParam("cnonce"))?,
            }),
        };
        Ok(ResponseInput {
            algorithm: credentials.algorithm(),
            nonce: &credentials.nonce,
            method,
            uri: &credentials.uri,
            qop,
        })
    }

    /// The response in lowercase hex, given the base HA1 (`H(user:realm:password)`) in lowercase hex.
    pub fn response_hex(&self, base_ha1: &str) -> Result<String, DigestError> {
        let algorithm = self.algorithm;
        let ha1 = self.session_ha1(base_ha1)?;
        let ha2 = algorithm.hash_hex(&[self.method.as_bytes(), self.uri.as_bytes()]);
        Ok(match &self.qop {
            None => algorithm.hash_hex(&[ha1.as_bytes(), self.nonce.as_bytes(), ha2.as_bytes()]),
            Some(fields) => {
                if fields.qop != Qop::Auth {
                    // auth-int would need the body hashed in; no SIP peer of ours asks for it.
                    return Err(DigestError::UnsupportedQop(fields.qop.as_str().to_owned()));
                }
                let nc = format!("{:08x}", fields.nc);
                algorithm.hash_hex(&[
                    ha1.as_bytes(),
                    self.nonce.as_bytes(),
                    nc.as_bytes(),
                    fields.cnonce.as_bytes(),
                    fields.qop.as_str().as_bytes(),
                    ha2.as_bytes(),
                ])
            }
        })
    }

    /// RFC 7616 section 3.4.2: the `-sess` variants rehash HA1 with the nonce and cnonce.
    fn session_ha1(&self, base_ha1: &str) -> Result<String, DigestError> {
        if !self.algorithm.is_session() {
            return Ok(base_ha1.to_owned());
        }
        // RFC 2617 section 3.2.2: cnonce is only sent with qop, so a -sess answer needs qop.
        let fields = self.qop.as_ref().ok_or(DigestError::BadParam {
            name: "algorithm",
            reason: "a -sess algorithm needs qop and cnonce",
        })?;
        Ok(self.algorithm.hash_hex(&[
            base_ha1.as_bytes(),
            self.nonce.as_bytes(),
            fields.cnonce.as_bytes(),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::ha1;

    #[test]
    fn computes_the_rfc_2617_section_3_5_response() {
        let input = ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            method: "GET",
            uri: "/dir/index.html",
            qop: Some(QopFields {
                qop: Qop::Auth,
                nc: 1,
                cnonce: "0a4f113b",
            }),
        };
        let base = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(
            input.response_hex(&base).unwrap(),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn computes_the_rfc_2069_form_without_qop() {
        // The seed's REGISTER (D-2-register-auth/04.sip), user 9301 with password 9301.
        let input = ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "3bd5e334",
            method: "REGISTER",
            uri: "sip:192.168.2.81",
            qop: None,
        };
        let base = ha1(Algorithm::Md5, "9301", "CISCO", "9301");
        assert_eq!(
            input.response_hex(&base).unwrap(),
            "87ac0afeb08222af706f9e8b5c566ce2"
        );
    }

    #[test]
    fn session_variants_change_the_response() {
        let mut input = ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "n",
            method: "INVITE",
            uri: "sip:a@b",
            qop: Some(QopFields {
                qop: Qop::Auth,
                nc: 1,
                cnonce: "c",
            }),
        };
        let base = ha1(Algorithm::Md5, "u", "r", "p");
        let plain = input.response_hex(&base).unwrap();
        input.algorithm = Algorithm::Md5Sess;
        let session = input.response_hex(&base).unwrap();
        assert_ne!(plain, session);
        assert_eq!(session.len(), 32);
    }

    #[test]
    fn a_session_variant_without_qop_is_refused() {
        let input = ResponseInput {
            algorithm: Algorithm::Sha256Sess,
            nonce: "n",
            method: "INVITE",
            uri: "sip:a@b",
            qop: None,
        };
        assert!(matches!(
            input.response_hex("00"),
            Err(DigestError::BadParam {
                name: "algorithm",
                ..
            })
        ));
    }

    #[test]
    fn auth_int_is_refused_by_name() {
        let input = ResponseInput {
            algorithm: Algorithm::Md5,
            nonce: "n",
            method: "INVITE",
            uri: "sip:a@b",
            qop: Some(QopFields {
                qop: Qop::AuthInt,
                nc: 1,
                cnonce: "c",
            }),
        };
        assert_eq!(
            input.response_hex("00"),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
    }
}
