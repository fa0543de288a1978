//! One call: the pure dialog state machine in [`dialog`], how its in-dialog requests are
//! addressed from the route set in [`route`], the addresses of a next hop that is a host name
//! in [`hops`], its offer/answer in [`negotiator`] (all four pure),
//! the actix shell that owns the call's media in [`actor`] (with what the line asks of it in
//! `actor/commands.rs`), what every call of a line shares in [`context`], and what a call
//! tells its line in [`news`], and what it tells an observer that measures it in
//! [`observer`].
pub mod actor;
pub mod context;
pub mod dialog;
pub mod hops;
pub mod negotiator;
pub mod news;
pub mod observer;
pub mod route;
