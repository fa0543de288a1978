//! One call: the pure dialog state machine in [`dialog`], the actix shell in [`actor`].
pub mod dialog;
