//! The registrar and location service (RFC 3261 section 10.3).
//!
//! - [`binding`]: a binding, the changes the store applies, a contact's identity.
//! - [`rules`]: what a REGISTER does to an AOR's bindings, sans-IO, `now` passed in.
//! - [`location`]: the bindings in memory, a concurrent map that the UDP workers read on every
//!   INVITE and that applies REGISTERs under a per-AOR lock.
//! - [`mailbox`]: a user's voicemail counts (RFC 3842), kept and stored with the bindings.
//! - [`store`]: the bindings and the counts on disk (redb).
//! - [`writer`]: the thread that commits the changes to the store in batches, tells each held
//!   200 whether its changes are saved, and keeps and retries what a failed commit did not save.
//! - [`actor`]: the registrar actor, which sweeps expired bindings and owns the store writer;
//!   [`start_registrar`] wires the three together at start.

pub mod actor;
pub mod binding;
pub mod error;
pub mod location;
pub mod mailbox;
pub mod rules;
pub mod store;
pub mod writer;

pub use actor::{start_registrar, Flush, Persist, Registrar, RegistrarActor, Sweep};
pub use binding::{Binding, BindingChange};
pub use location::{Applied, LocationService};
pub use mailbox::{MailboxError, MessageCounts};
pub use rules::{process_register, Origin, RegisterOutcome, RegistrarPolicy};
pub use store::{BindingStore, StoreError, StoreWriter};
