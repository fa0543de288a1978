//! The registrar and location service (RFC 3261 section 10.3).
//!
//! - [`binding`]: a binding, the changes the store applies, a contact's identity.
//! - [`rules`]: what a REGISTER does to an AOR's bindings, sans-IO, `now` passed in.
//! - [`location`]: the bindings in memory, a concurrent map that the UDP workers read on every
//!   INVITE and that applies REGISTERs under a per-AOR lock; [`packed`]: an AOR's bindings
//!   encoded in one allocation, as the map holds them.
//! - [`mailbox`]: a user's voicemail counts (RFC 3842), kept and stored with the bindings.
//! - [`store`]: the bindings and the counts on disk (redb), for a proxy alone, behind a
//!   journal: [`journal`] (the format, pure), [`journal_file`] (one file), [`journaled_store`]
//!   (two files taking turns, folded into redb on a thread of their own).
//! - [`choice`]: which store `--location` chose (redb, Redis, or memory only).
//! - [`redis_layout`]: the keys, values and writes of the Redis store, and the message nodes
//!   announce commits with; pure. [`redis_store`]: the connection and the writer's commits to
//!   Redis. [`redis_sync`]: every node follows the others' commits into its memory.
//! - [`writer`]: the store's writer, which commits the changes, tells each held 200 whether
//!   its changes are saved, and keeps and retries what a failed commit did not save: a thread
//!   that commits in batches, each on the disk before its 200s (`journal-sync = "each"`), or
//!   [`inline_writer`], which commits on the worker's thread into the page cache and syncs to
//!   the disk every 100 ms (`"periodic"`, the default). [`batch_commit`]: the commit both share.
//! - [`actor`]: the registrar actor, which sweeps expired bindings and owns the store writer;
//!   [`start_registrar`] wires the three together at start.

pub mod actor;
mod batch_commit;
pub mod binding;
pub mod choice;
mod direct_append;
pub mod error;
mod inline_writer;
pub mod journal;
pub mod journal_file;
pub mod journaled_store;
pub mod location;
pub mod mailbox;
pub mod packed;
pub mod redis_layout;
pub mod redis_store;
pub mod redis_sync;
pub mod rules;
pub mod store;
pub mod stored_form;
pub mod writer;

pub use actor::{start_registrar, Flush, Persist, Registrar, RegistrarActor, Sweep};
pub use binding::{Binding, BindingChange};
pub use choice::{LocationChoice, RedisTarget};
pub use location::{to_persist, Applied, LocationService};
pub use mailbox::{MailboxError, MessageCounts};
pub use redis_sync::LinkStatus;
pub use rules::{process_register, Origin, RegisterOutcome, RegistrarPolicy};
pub use store::{BindingStore, StoreError, StoreWriter};
