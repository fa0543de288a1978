//! Registration of one line with the registrar (RFC 3261 section 10): the pure rules in
//! [`rules`] (what to send, when to refresh, how to back off), which proxy of the primary and
//! its backups is in use in [`failover`] (also pure), and the actix shell in [`actor`] that
//! feeds them responses and timeouts from the SIP endpoint and reports the state and the
//! proxy in use to the line.
pub mod actor;
pub mod failover;
pub mod rules;
