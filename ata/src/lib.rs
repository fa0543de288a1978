//! `dialtone-ata`: a software Cisco ATA 186 for telephony labs. One process is one device
//! with one or more lines; see `ARCHITECTURE.md` for who sends what to whom.
//!
//! Pure cores (no sockets, no clock): [`config`], [`dial_plan`], [`registration::rules`],
//! [`mwi::subscription`] (with [`mwi::notify`] and [`mwi::summary`]), [`call::dialog`],
//! [`call::negotiator`] (offer/answer), [`line::phone`], [`media::session`],
//! [`endpoint::table`], [`endpoint::router`] (what an arriving request is).
//! Actix actors around them: [`endpoint`] (SIP socket and transactions),
//! [`registration::actor`], [`mwi::actor`] (message waiting), [`line::actor`] (the hardware
//! line), [`call::actor`], [`media::actor`], [`resync`] (check-sync). Edges: [`control`]
//! (HTTP API, metrics, health), [`ctl`] (its client), [`app`] (start and stop), [`cli`] (the
//! flags), [`load`] (the load generator, `dialtone-ata load`: the lines driven as a person
//! would, the calls observed through `call::observer`).
//!
//! The actors' modules import each other one way only: line → call → media and endpoint;
//! registration → endpoint; mwi → endpoint (and the pure `call::route`); resync →
//! registration and endpoint; line → registration and mwi. A message that travels up (to a
//! line, to a call) is defined beside its sender and received as an `actix::Recipient`:
//! `call::news::CallNews`, `media::actor::EarpieceFrame` and `RemoteDigit`,
//! `registration::actor::RegistrationChanged`, `mwi::actor::MessagesWaiting`,
//! `endpoint::CheckSync`, `endpoint::UnsolicitedSummary`, `endpoint::NewCall`,
//! `endpoint::DialogRequest`, `endpoint::TransactionUpdate`. Only [`app`] names every actor,
//! to wire them.

pub mod app;
pub mod auth;
pub mod call;
pub mod cli;
pub mod config;
pub mod control;
pub mod ctl;
pub mod datagram;
pub mod dial_plan;
pub mod endpoint;
pub mod error;
pub mod features;
pub mod identity;
pub mod line;
pub mod load;
pub mod media;
pub mod metrics;
pub mod mwi;
pub mod registration;
pub mod resolve;
pub mod resync;

pub use error::AtaError;
