//! The crate's one error type: what a caller asked that a transaction cannot do.
//!
//! Network input that merely does not fit the current state (a late response, a stray ACK) is
//! not an error: RFC 3261 section 17 absorbs it silently, and so do the machines. Errors are
//! for impossible values and for TU actions the state machine forbids.

/// Why a transaction refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A status code outside 100-699 (RFC 3261 section 21 defines only classes 1 to 6).
    #[error("status code {0} is not a SIP response status (100-699)")]
    InvalidStatus(u16),
    /// The TU asked for something the machine's current state does not allow, such as a second
    /// final response (RFC 3261 17.2.1) or an ACK outside the Completed state.
    #[error("{machine}: {action} is not allowed in the {state} state")]
    WrongState {
        /// Which machine, e.g. "server INVITE transaction".
        machine: &'static str,
        /// What was asked, e.g. "send a 486 response".
        action: &'static str,
        /// The state it was in, e.g. "Completed".
        state: &'static str,
    },
    /// A timer setting that would break the machines, named by its field in [`crate::TimerConfig`].
    #[error("timer setting {field} is invalid: {reason}")]
    InvalidConfig {
        /// The field, e.g. "t1".
        field: &'static str,
        /// Why, e.g. "must be greater than zero".
        reason: &'static str,
    },
}
