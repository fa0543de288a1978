//! SIP digest authentication (RFC 3261 section 22, RFC 2617, RFC 7616, RFC 8760) as a pure,
//! sans-IO library: no sockets, no clock, no randomness of its own. Time and the client's
//! cnonce are passed in, so every path is tested in memory.
//!
//! The proxy and registrar use the server side; the ATA uses the client side.
//!
//! - `params.rs` lexes the `Digest name=value, ...` list that both directions share.
//! - `challenge.rs` and `credentials.rs` parse and write the header values:
//!   [`Challenge`] for `WWW-Authenticate` / `Proxy-Authenticate`, [`Credentials`] for
//!   `Authorization` / `Proxy-Authorization`.
//! - `algorithm.rs` and `response.rs` hold the hashing: [`Algorithm`], [`ha1`], and the
//!   response of RFC 7616 section 3.4.1.
//! - `verify.rs` is the server: [`verify_response`] for the bare check, [`Verifier`] for
//!   realm, nonce and replay policy, reporting an [`Outcome`].
//! - `nonce.rs` makes stateless, expiring nonces ([`NonceSecret`]); `replay.rs` refuses
//!   repeated nonce counts and second uses of a one-time nonce ([`NonceCountTracker`]).
//! - `client.rs` answers a challenge ([`answer`]).
//!
//! ```
//! use dialtone_digest::{answer, AnswerParams, Credentials, NonceSecret, Outcome, Secret,
//!                       Verifier, VerifyRequest};
//!
//! // Server: challenge (the 407), with a key the caller drew from its random source.
//! let verifier = Verifier::new("dialtone", NonceSecret::new(&[7u8; 32], 300)?);
//! let now = 1_700_000_000;
//! let header = verifier.challenge(now, false, &[]).to_string();
//!
//! // Client: answer it.
//! let challenge = dialtone_digest::Challenge::parse(&header)?;
//! let params = AnswerParams {
//!     username: "alice", password: "secret", method: "INVITE",
//!     uri: "sip:bob@example.net", cnonce: "f00dcafe", nc: 1,
//! };
//! let authorization = answer(&challenge, &params)?.to_string();
//!
//! // Server: verify the retried request.
//! let credentials = Credentials::parse(&authorization)?;
//! let outcome = verifier.verify(
//!     &VerifyRequest {
//!         credentials: &credentials,
//!         method: "INVITE",
//!         secret: Secret::Password("secret"),
//!         now_unix_secs: now + 1,
//!         nonce_binding: &[],
//!         request_fingerprint: 0,
//!     },
//!     None,
//! );
//! assert_eq!(outcome, Outcome::Ok);
//! # Ok::<(), dialtone_digest::DigestError>(())
//! ```
#![forbid(unsafe_code)]

mod algorithm;
mod challenge;
mod client;
mod credentials;
mod error;
mod nonce;
mod params;
mod replay;
mod response;
mod verify;

/// Hash algorithms, qop values, and the HA1 a users file may store instead of a password.
pub use algorithm::{ha1, Algorithm, Qop, QopOptions};
/// The `WWW-Authenticate` / `Proxy-Authenticate` value.
pub use challenge::Challenge;
/// Answering a challenge as a client.
pub use client::{answer, AnswerParams};
/// The `Authorization` / `Proxy-Authorization` value.
pub use credentials::Credentials;
/// The crate's error type.
pub use error::DigestError;
/// Stateless, expiring server nonces.
pub use nonce::{NonceSecret, NonceStatus};
/// Nonce-count replay protection.
pub use replay::{NonceCountTracker, Refused};
/// Server-side verification.
pub use verify::{verify_response, Outcome, Secret, SecretKind, Verifier, VerifyRequest};
