//! What a call tells an observer that measures calls (the load generator, `load/`), beside
//! what it tells its line: when an outgoing call was answered and how long after its INVITE,
//! the final counters of its media, and how it ended. Defined here, beside its sender, and
//! received as a `Recipient`, so that `call` never imports the module that watches it.
//!
//! A device without an observer (every device but the load generator's) sends none of it and
//! pays nothing for it.

use std::time::Duration;

use actix::prelude::*;

use crate::media::session::MediaCounters;

/// One fact about one call, keyed by the SIP Call-ID (the same on both ends of a call, through
/// a proxy or directly, so the two legs of a call can be put together).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct CallObserved {
    /// The line's user.
    pub line: String,
    /// The SIP Call-ID.
    pub call_id: String,
    /// What happened.
    pub event: Observed,
}

/// What happened to the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// An outgoing call got its 2xx: `setup` after the first INVITE was sent (digest retries
    /// included).
    Answered {
        /// INVITE sent to 2xx received.
        setup: Duration,
    },
    /// The media stopped; what it received and sent.
    Media(MediaCounters),
    /// The call actor stopped.
    Ended {
        /// Whether the call came in.
        incoming: bool,
        /// As the `dialtone_ata_calls_total` metric names it: answered, busy, failed, ...
        outcome: &'static str,
        /// The final failure status, if one was received or sent.
        status: Option<u16>,
    },
}
