//! Registration of one line with the registrar (RFC 3261 section 10): the pure rules in
//! [`rules`] (what to send, when to refresh, how to back off) and the actix shell in [`actor`]
//! that feeds them responses and timeouts from the SIP endpoint and reports the state to the
//! line.
pub mod actor;
pub mod rules;
