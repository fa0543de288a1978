//! What a proxied request's transaction borrows from the proxy for one call
//! ([`TransactionEnv`]), and what it reports back for the core to do ([`TransactionEvent`]):
//! the two ends of the narrow interface between the core's shared tables and one transaction.

use std::net::SocketAddr;

use bytes::Bytes;
use dialtone_transaction::{TimerConfig, TransactionKey};

use crate::metrics::ProxyMetrics;
use crate::proxy_core::identity::ProxyIdentity;

/// What a proxied request's transaction needs of the proxy: its timer values, the To tag and
/// Server header of its own responses, who it is (for Warning values) and the metrics it
/// counts. Borrowed from the core for one call; the transaction never sees the core's tables.
#[derive(Debug, Clone, Copy)]
pub struct TransactionEnv<'a> {
    /// The transaction timers (T1 from the configuration).
    pub timers: &'a TimerConfig,
    /// The To tag of the proxy's own responses (RFC 3261 section 8.2.6.2).
    pub to_tag: &'a str,
    /// The Server header of the proxy's own responses, if any.
    pub server_header: Option<&'a str>,
    /// Who the proxy is, for the Warning values of its own 408s and 503s.
    pub identity: &'a ProxyIdentity,
    /// The counters a transaction updates.
    pub metrics: &'a ProxyMetrics,
}

/// What the core must do after a call into a transaction, beyond the [`Action`](crate::proxy_core::Action)s it returned:
/// index changes and the state other requests read (the calls table, the paused hops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent {
    /// A branch (or a branch's CANCEL) started: responses with this client key belong here.
    BranchStarted(TransactionKey),
    /// A branch was given up for another address: its key no longer belongs here.
    BranchRetired(TransactionKey),
    /// A 2xx to an INVITE passed: the call it establishes is known from now on.
    CallEstablished(Bytes),
    /// A final response to a BYE passed: the call with this Call-ID is over.
    CallEnded(String),
    /// The next hop at `addr` answered 503 with Retry-After: keep requests away meanwhile.
    HopPaused {
        /// The next hop.
        addr: SocketAddr,
        /// Its Retry-After.
        seconds: u64,
    },
}
