//! The crate's one error type, [`AtaError`]: configuration mistakes (naming the key), SIP
//! messages we cannot use, digest and SDP failures, and I/O at the actor edges.
//!
//! The pure cores (`registration::rules`, `call::dialog`, `dial_plan`, `line::phone`) return it
//! from their fallible inputs; the actors log it and carry on, and only `main.rs` turns it into
//! a message and an exit status (`cli.rs`).

use thiserror::Error;

/// Everything that can go wrong inside the ATA library.
#[derive(Debug, Error)]
pub enum AtaError {
    /// A configuration value is unusable; `key` is the TOML key or flag it came from.
    #[error("config key `{key}`: {reason}")]
    Config {
        /// The key, as written in the config file (flags use the same names).
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// The reader's or parser's message.
        reason: String,
    },
    /// A received SIP message lacks something we need or has it malformed.
    #[error("SIP message unusable: {0}")]
    Sip(#[from] dialtone_sip::ParseError),
    /// A received message is well formed but not what the state machine can act on.
    #[error("unexpected SIP message: {0}")]
    Unusable(Unusable),
    /// A call was dialled on a line that has no proxy to send it to.
    #[error("no proxy configured to send the call to")]
    NoProxy,
    /// Answering a digest challenge failed.
    #[error("digest: {0}")]
    Digest(#[from] dialtone_digest::DigestError),
    /// A body was not readable SDP.
    #[error("SDP: {0}")]
    Sdp(#[from] dialtone_sdp::SdpError),
    /// Offer/answer failed (488 when it is ours to answer).
    #[error("SDP negotiation: {0}")]
    Negotiation(#[from] dialtone_sdp::NegotiationError),
    /// A media-layer failure (RTP, codec, WAV).
    #[error("media: {0}")]
    Media(#[from] dialtone_media::MediaError),
    /// A transaction machine refused an input.
    #[error("transaction: {0}")]
    Transaction(#[from] dialtone_transaction::Error),
    /// The proxy host did not resolve to an address.
    #[error("cannot resolve proxy `{host}`: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// An audio file could not be read or written.
    #[error("audio file {path}: {reason}")]
    AudioFile {
        /// The file.
        path: String,
        /// The reason.
        reason: String,
    },
    /// No free RTP port pair was left in the configured range.
    #[error("no free RTP port pair in {from}-{to}")]
    NoRtpPort {
        /// First port of the range.
        from: u16,
        /// Last port of the range.
        to: u16,
    },
    /// The control API answered with an error, or could not be reached (`ctl`).
    #[error("control API: {0}")]
    Control(String),
    /// Socket and file I/O.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What made a SIP message unusable ([`AtaError::Unusable`]): a kind, not free text, so
/// that callers and tests can tell the cases apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// A request was expected.
    NotARequest,
    /// A response was expected.
    NotAResponse,
    /// A request we built carries no Via branch (we always write one).
    NoBranch,
    /// The endpoint holds no server transaction with this id.
    NoSuchServerTransaction,
    /// A request other than the ACK to a 2xx came without its server transaction.
    NoServerTransaction,
    /// Digest: the response is neither 401 nor 407.
    NotAChallenge,
    /// Digest: a 401 or 407 without WWW- or Proxy-Authenticate.
    NoChallengeHeader,
    /// An INVITE without a From tag cannot make a dialog (RFC 3261 12.1.1).
    InviteWithoutFromTag,
    /// An INVITE without To.
    InviteWithoutTo,
    /// An INVITE without Contact: no remote target.
    InviteWithoutContact,
    /// An INVITE with `Contact: *`.
    InviteWithWildcardContact,
    /// An INVITE without an SDP offer (the ATA does not offer in the 2xx).
    InviteWithoutOffer,
    /// A 2xx to our INVITE without the SDP answer.
    AnswerWithoutSdp,
    /// A re-INVITE without an offer.
    ReinviteWithoutOffer,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unusable::NotARequest => "not a request",
            Unusable::NotAResponse => "not a response",
            Unusable::NoBranch => "our request has no branch",
            Unusable::NoSuchServerTransaction => "no such server transaction",
            Unusable::NoServerTransaction => "request without a transaction",
            Unusable::NotAChallenge => "not a 401 or 407",
            Unusable::NoChallengeHeader => "challenge without an authenticate header",
            Unusable::InviteWithoutFromTag => "INVITE without From tag",
            Unusable::InviteWithoutTo => "INVITE without To",
            Unusable::InviteWithoutContact => "INVITE without Contact",
            Unusable::InviteWithWildcardContact => "INVITE with Contact: *",
            Unusable::InviteWithoutOffer => "INVITE without an SDP offer",
            Unusable::AnswerWithoutSdp => "2xx without an SDP answer",
            Unusable::ReinviteWithoutOffer => "re-INVITE without offer",
        })
    }
}

impl AtaError {
    /// A [`AtaError::Config`] for `key`.
    pub fn config(key: &'static str, reason: impl Into<String>) -> Self {
        AtaError::Config {
            key,
            reason: reason.into(),
        }
    }
}
