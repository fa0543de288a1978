//! The server side: issuing challenges and deciding what a client's credentials are worth.
//!
//! [`verify_response`] is the bare RFC 7616 section 3.4.1 check (recompute, compare in constant
//! time) and works with any nonce, such as the seed's. [`Verifier`] adds the server's policy:
//! its realm, its stateless nonces (`nonce.rs`), and nonce-count replay (`replay.rs`), and
//! reports an [`Outcome`] the proxy maps to a SIP response.

use subtle::ConstantTimeEq;

use crate::algorithm::{ha1, Algorithm, QopOptions};
use crate::challenge::Challenge;
use crate::credentials::Credentials;
use crate::error::DigestError;
use crate::nonce::{NonceSecret, NonceStatus};
use crate::replay::{NonceCountTracker, Refused};
use crate::response::ResponseInput;

/// What the server knows about the user named in the credentials.
///
/// # Unknown users
///
/// Answering an unknown user faster than a known one tells an attacker which user names exist.
/// So for a user the store does not have, pass [`Secret::Unknown`] naming the kind of secret the
/// store holds: verification then hashes exactly as much as for a real user, against a dummy
/// secret, and reports [`Outcome::UnknownUser`] whatever the comparison said. Map
/// `UnknownUser` and `BadResponse` to the same SIP response, or the outcome itself gives the
/// user names away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret<'s> {
    /// The user's password.
    Password(&'s str),
    /// The stored HA1 `H(username:realm:password)` in hex (see [`ha1`](crate::ha1)), so a users
    /// file need not hold passwords. It only verifies credentials of the same hash family and
    /// realm; anything else (wrong length, not hex) verifies as a bad response.
    Ha1(&'s str),
    /// The user does not exist; see the type's documentation.
    Unknown(SecretKind),
}

/// Which kind of [`Secret`] a users store holds, so an unknown user costs the same as a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// The store holds passwords.
    Password,
    /// The store holds HA1 values.
    Ha1,
}

/// Checks the `response` in `credentials` for a request with `method`, against `secret`.
///
/// No realm, nonce or replay policy: the nonce is taken as it stands. The comparison is
/// constant-time and accepts the response in either case of hex. Returns `Ok(false)` for
/// [`Secret::Unknown`] after doing the same work as for a known user. `Err` means the
/// credentials ask for something this crate cannot compute (`auth-int`, `-sess` without qop).
pub fn verify_response(
    credentials: &Credentials<'_>,
    method: &str,
    secret: Secret<'_>,
) -> Result<bool, DigestError> {
    let input = ResponseInput::from_credentials(credentials, method)?;
    let algorithm = input.algorithm;
    let (base_ha1, usable) = base_ha1(algorithm, credentials, secret);
    let expected = input.response_hex(&base_ha1)?;
    let matches = hex_eq_constant_time(&expected, &credentials.response);
    Ok(matches & usable)
}

/// The base HA1 for `secret`, and whether a match against it may count.
fn base_ha1(
    algorithm: Algorithm,
    credentials: &Credentials<'_>,
    secret: Secret<'_>,
) -> (String, bool) {
    let from_password = |password: &str| {
        ha1(
            algorithm,
            &credentials.username,
            &credentials.realm,
            password,
        )
    };
    let dummy_ha1 = || "0".repeat(algorithm.hex_len());
    match secret {
        Secret::Password(password) => (from_password(password), true),
        Secret::Ha1(stored) => {
            let well_formed = stored.len() == algorithm.hex_len()
                && stored.bytes().all(|b| b.is_ascii_hexdigit());
            if well_formed {
                (stored.to_ascii_lowercase(), true)
            } else {
                (dummy_ha1(), false)
            }
        }
        Secret::Unknown(SecretKind::Password) => (from_password(""), false),
        Secret::Unknown(SecretKind::Ha1) => (dummy_ha1(), false),
    }
}

/// Compares lowercase-hex `expected` with the client's `given` in time that depends only on
/// the lengths, which are public (they follow from the algorithm).
fn hex_eq_constant_time(expected: &str, given: &str) -> bool {
    const MAX: usize = 64;
    let given = given.as_bytes();
    if given.len() != expected.len() || given.len() > MAX {
        return false;
    }
    let mut lowered = [0u8; MAX];
    for (out, b) in lowered.iter_mut().zip(given) {
        *out = b.to_ascii_lowercase();
    }
    expected.as_bytes().ct_eq(&lowered[..given.len()]).into()
}

/// The verdict on a request's credentials, for the proxy or registrar to turn into a response.
///
/// | outcome | SIP answer |
/// |---|---|
/// | `Ok` | carry on |
/// | `Stale` | 401/407 with a new challenge and `stale=true` |
/// | `Replay` | 401/407 with a new challenge (`stale=true` only when `forgotten`) |
/// | `BadNonce`, `WrongRealm` | 401/407 with a new challenge |
/// | `BadResponse`, `UnknownUser` | the same for both: 403, or 401/407 again |
/// | `Malformed` | 400 |
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The credentials are right, the nonce fresh and the count new.
    Ok,
    /// The response was right but the nonce has expired: the client knows the password and only
    /// needs a new nonce (RFC 7616 section 3.3 `stale`).
    Stale,
    /// The nonce was not issued by this server (forged, tampered, or from before a key change).
    BadNonce,
    /// The response does not match: wrong password, or a tampered request.
    BadResponse,
    /// The credentials are for another realm.
    WrongRealm,
    /// No such user; see [`Secret::Unknown`].
    UnknownUser,
    /// The nonce count was not higher than one already accepted for this nonce (for an answer
    /// without qop: the nonce was used once already).
    Replay {
        /// The request that used the count, again (same fingerprint): a retransmission.
        same_request: bool,
        /// The table of used nonces was full and no longer knows this one: it may never have
        /// been used, so the client deserves `stale=true`.
        forgotten: bool,
    },
    /// The credentials ask for something that cannot be computed.
    Malformed(DigestError),
}

impl Outcome {
    /// Whether the request is authenticated.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// `Some(stale)` when the right answer is a fresh challenge, with its `stale` flag;
    /// `None` for success and for failures answered without one.
    pub fn rechallenge(&self) -> Option<bool> {
        match self {
            Outcome::Stale => Some(true),
            Outcome::Replay { forgotten, .. } => Some(*forgotten),
            Outcome::BadNonce | Outcome::WrongRealm => Some(false),
            Outcome::Ok | Outcome::BadResponse | Outcome::UnknownUser | Outcome::Malformed(_) => {
                None
            }
        }
    }
}

/// One request's credentials and what the server knows about them.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'r> {
    /// The credentials from the `Authorization` or `Proxy-Authorization` header.
    pub credentials: &'r Credentials<'r>,
    /// The request's method (`REGISTER`, `INVITE`, ...); for ACK and CANCEL, RFC 3261 section
    /// 22.1 has the client use `INVITE`'s credentials, so pass what the client hashed.
    pub method: &'r str,
    /// The user's secret, or [`Secret::Unknown`].
    pub secret: Secret<'r>,
    /// The current time, seconds since the Unix epoch.
    pub now_unix_secs: u64,
    /// The same binding bytes the challenge's nonce was issued with (`&[]` for none).
    pub nonce_binding: &'r [u8],
    /// What identifies this request's transaction (a hash of its top Via, Call-ID and CSeq):
    /// the tracker remembers it with each count it accepts, so that the retransmission of the
    /// request that used a count can be told from a replay (see [`Outcome::Replay`]).
    pub request_fingerprint: u64,
}

/// A server's digest policy: its realm, nonce key, and what its challenges offer.
#[derive(Debug, Clone)]
pub struct Verifier {
    realm: String,
    nonces: NonceSecret,
    algorithm: Option<Algorithm>,
    offer_qop: bool,
}

impl Verifier {
    /// A verifier for `realm` whose challenges name no algorithm (so MD5) and offer `qop="auth"`.
    ///
    /// Credentials in the RFC 2069 form (no qop) are still accepted, because the seed's Cisco ATA
    /// answers that way; a caller wanting replay protection for everyone can refuse
    /// credentials whose `qop` is `None`.
    pub fn new(realm: impl Into<String>, nonces: NonceSecret) -> Self {
        Verifier {
            realm: realm.into(),
            nonces,
            algorithm: None,
            offer_qop: true,
        }
    }

    /// Names `algorithm` in challenges (RFC 8760: SHA-256 for SIP). Credentials are verified
    /// with whatever supported algorithm they name.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// Whether challenges offer `qop="auth"`.
    pub fn with_qop(mut self, offer: bool) -> Self {
        self.offer_qop = offer;
        self
    }

    /// The realm this verifier speaks for.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The nonce key and lifetime.
    pub fn nonces(&self) -> &NonceSecret {
        &self.nonces
    }

    /// A new challenge for a 401/407, with a nonce stamped `now_unix_secs` and bound to `binding`.
    pub fn challenge(&self, now_unix_secs: u64, stale: bool, binding: &[u8]) -> Challenge<'static> {
        Challenge {
            realm: self.realm.clone().into(),
            nonce: self
                .nonces
                .issue(now_unix_secs, &self.realm, binding)
                .into(),
            opaque: None,
            algorithm: self.algorithm,
            qop: self.offer_qop.then_some(QopOptions::AUTH),
            stale,
        }
    }

    /// Decides what `request` is worth. With a `tracker`, answers are also checked for replay
    /// (a qop answer's count must grow; an answer without qop is accepted once per nonce); the
    /// tracker only learns counts from credentials whose response was right.
    pub fn verify(
        &self,
        request: &VerifyRequest<'_>,
        tracker: Option<&mut NonceCountTracker>,
    ) -> Outcome {
        let credentials = request.credentials;
        if credentials.realm != self.realm {
            return Outcome::WrongRealm;
        }
        let now = request.now_unix_secs;
        let (issued_at, stale) =
            match self
                .nonces
                .check(&credentials.nonce, now, &self.realm, request.nonce_binding)
            {
                NonceStatus::Fresh { issued_at } => (issued_at, false),
                NonceStatus::Stale { issued_at } => (issued_at, true),
                NonceStatus::Invalid => return Outcome::BadNonce,
            };
        let matches = match verify_response(credentials, request.method, request.secret) {
            Ok(matches) => matches,
            Err(err) => return Outcome::Malformed(err),
        };
        if matches!(request.secret, Secret::Unknown(_)) {
            return Outcome::UnknownUser;
        }
        if !matches {
            return Outcome::BadResponse;
        }
        // Only now, with the password proven, is `stale` worth telling (RFC 7616 section 3.3).
        if stale {
            return Outcome::Stale;
        }
        let Some(tracker) = tracker else {
            return Outcome::Ok;
        };
        // Without qop there is no count: the one use a one-time nonce allows counts as nc=1.
        let nc = match (credentials.qop, credentials.nc) {
            (Some(_), Some(nc)) => nc,
            (Some(_), None) => 0,
            (None, _) => 1,
        };
        let fingerprint = request.request_fingerprint;
        match tracker.accept(&credentials.nonce, issued_at, nc, fingerprint, now) {
            Ok(()) => Outcome::Ok,
            Err(Refused::Reused { same_request }) => Outcome::Replay {
                same_request,
                forgotten: false,
            },
            Err(Refused::Forgotten) => Outcome::Replay {
                same_request: false,
                forgotten: true,
            },
            Err(Refused::Zero) => Outcome::Replay {
                same_request: false,
                forgotten: false,
            },
        }
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
