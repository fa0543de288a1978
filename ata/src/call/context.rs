//! What every call of a line shares ([`CallContext`]): the line's identity and credentials,
//! the endpoint, the proxy in use (the line updates it when the registration fails over), the
//! resolver for host names in a dialog's route, the codecs to offer, the RTP ports, the
//! metrics, the line's recipients, and the observer that measures calls (the load
//! generator's; usually none). The line builds one per call; the call actor only reads it.

use std::net::SocketAddr;
use std::time::Duration;

use actix::prelude::*;
use dialtone_sdp::Codec;

use crate::auth::DigestUser;
use crate::call::news::LineInbox;
use crate::call::observer::CallObserved;
use crate::config::CodecName;
use crate::endpoint::Endpoint;
use crate::identity::LineIdentity;
use crate::metrics::Metrics;
use crate::resolve::Locator;

/// The dynamic payload type we offer Opus on.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The payload type of telephone-event in our offers, as the seed's ATA uses.
pub const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 101;

/// What every call of a line shares.
#[derive(Clone)]
pub struct CallContext {
    /// The line's SIP identity.
    pub identity: LineIdentity,
    /// Its digest credentials.
    pub user: DigestUser,
    /// The SIP endpoint.
    pub endpoint: Addr<Endpoint>,
    /// The outbound proxy the line uses now, if any.
    pub proxy: Option<SocketAddr>,
    /// Resolves a dialog's next hop when it is a host name (RFC 3263).
    pub locator: Locator,
    /// Codecs to offer, in order.
    pub codecs: Vec<CodecName>,
    /// RTP port range.
    pub rtp_ports: (u16, u16),
    /// Metrics.
    pub metrics: Metrics,
    /// The line's metric label (its user).
    pub line_name: String,
    /// The line, as recipients.
    pub line: LineInbox,
    /// Who measures the calls (`load/`), if anyone.
    pub observer: Option<Recipient<CallObserved>>,
    /// RFC 3261 T1 (`--t1-ms`), for the dialogs' own 2xx retransmissions.
    pub t1: Duration,
}

impl CallContext {
    /// The SDP codec list: configured voice codecs, then telephone-event (seed figure D-3:
    /// `pcmu,g729,pcma` offers `0 18 8 101` as the seed's ATA does).
    pub fn sdp_codecs(&self) -> Vec<Codec> {
        let mut codecs: Vec<Codec> = self
            .codecs
            .iter()
            .map(|c| match c {
                CodecName::Pcmu => Codec::pcmu(),
                CodecName::Pcma => Codec::pcma(),
                CodecName::Opus => Codec::opus(OPUS_PAYLOAD_TYPE),
                CodecName::G729 => Codec::g729(),
            })
            .collect();
        codecs.push(Codec::telephone_event(TELEPHONE_EVENT_PAYLOAD_TYPE));
        codecs
    }
}
