//! One call: the pure dialog state machine in [`dialog`], how its in-dialog requests are
//! addressed from the route set in [`route`], the actix shell (with offer/answer and the
//! call's media) in [`actor`], and what it tells its line in [`news`].
pub mod actor;
pub mod dialog;
pub mod news;
pub mod route;
