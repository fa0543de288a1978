//! One call: the pure dialog state machine in [`dialog`], the actix shell (with offer/answer
//! and the call's media) in [`actor`].
pub mod actor;
pub mod dialog;
