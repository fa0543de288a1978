//! # dialtone-proxy: a stateful SIP proxy/registrar
//!
//! An actix actor system around a sans-IO core. See `ARCHITECTURE.md` at the workspace root for
//! the actors, the state each owns, the messages between them, and one INVITE traced through.
//!
//! - [`config`]: flags and TOML, validated once.
//! - [`proxy_core`]: RFC 3261 section 16 and the transaction table (no sockets, no clock).
//! - [`registrar`]: section 10.3 rules, the location service, the persistent store, its actor.
//! - [`auth`]: digest challenges, verification and throttling.
//! - [`transport`]: the UDP and TCP actors that own the sockets and timers.
//! - [`http`]: `/metrics`, `/livez`, `/readyz` and the JSON admin API; [`web`]: the admin page.
//! - [`trace`]: the message recorder behind `ctl trace` and the ladders; [`hep`]: HEPv3 export.
//! - [`server`]: wires it all together and runs until SIGTERM or Ctrl-C; [`error`]: the
//!   crate's one error type, whose kinds are the config's and the store's.

pub mod allocator;
pub mod auth;
pub mod auth_events;
pub mod calls;
pub mod cli;
pub mod cluster_link;
pub mod config;
pub mod ctl;
pub mod error;
pub mod hep;
pub mod http;
pub mod metrics;
pub mod proxy_core;
pub mod registrar;
pub mod server;
pub mod tables;
pub mod trace;
pub mod transport;
pub mod views;
pub mod web;
pub mod worker_cpus;
