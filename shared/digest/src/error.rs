//! The crate's one error type: everything that can be wrong with a challenge or credentials
//! header value, or with the inputs a caller hands to the builders.
//!
//! Parse errors name the parameter or the byte offset at fault, so the proxy can log something
//! useful and answer 400 (RFC 3261 section 21.4.1) without guessing.

use thiserror::Error;

/// What is wrong with a digest header value or with the inputs to a builder.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DigestError {
    /// The header value was empty or only whitespace.
    #[error("empty authentication header value")]
    Empty,

    /// The value names a scheme other than `Digest` (for example `Basic`).
    #[error("unknown authentication scheme `{scheme}`, expected `Digest`")]
    UnknownScheme {
        /// The scheme token as it appeared.
        scheme: String,
    },

    /// The auth-param list is not well formed.
    #[error("syntax error at byte {at}: expected {expected}")]
    Syntax {
        /// Byte offset into the header value.
        at: usize,
        /// What the lexer expected to find there.
        expected: &'static str,
    },

    /// A parameter that the RFC requires is absent.
    #[error("missing `{0}` parameter")]
    MissingParam(&'static str),

    /// A parameter appeared twice; RFC 7616 section 3.4 allows each at most once.
    #[error("`{0}` parameter appears more than once")]
    DuplicateParam(&'static str),

    /// A parameter is present but its value is not acceptable.
    #[error("bad `{name}` parameter: {reason}")]
    BadParam {
        /// The parameter's name.
        name: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },

    /// The `algorithm` is not one this crate implements (MD5, SHA-256 and their `-sess` forms).
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),

    /// The `qop` is not one this crate implements (only `auth`).
    #[error("unsupported qop `{0}`")]
    UnsupportedQop(String),

    /// A value handed to a builder holds a control character, which cannot appear in a header.
    #[error("`{0}` contains a control character")]
    ControlCharacter(&'static str),

    /// The nonce secret key is too short to make forged nonces infeasible.
    #[error("nonce secret key must be at least {min} bytes, got {got}")]
    WeakNonceKey {
        /// The minimum accepted length.
        min: usize,
        /// The length given.
        got: usize,
    },
}
