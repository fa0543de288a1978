//! The registrar's one error type: what went wrong opening, reading or writing the store, or
//! talking to its writer thread. Its own module, so that the writer (`writer.rs`) and the redb
//! store (`store.rs`, which the writer commits to through `CommitBatch`) both use it and the
//! arrow between them runs one way, store to writer. The Redis store (`redis_store.rs`) fails
//! with [`StoreError::Redis`].

use std::path::PathBuf;

use thiserror::Error;

/// Why the store could not be opened, read or written.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create the registrar data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the registrar store {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    // Boxed: redb's errors are large, and every Result of this module would carry their size.
    #[error("registrar store: {0}")]
    Database(Box<redb::Error>),
    #[error("cannot encode a binding for the registrar store: {0}")]
    Encode(#[from] serde_json::Error),
    /// A registrar journal file could not be created, read or written
    /// (`journaled_store.rs`).
    #[error("registrar journal {path}: {source}")]
    Journal {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registrar store writer has stopped")]
    WriterStopped,
    #[error("registrar store: a batch of bindings was not saved: {0}")]
    BatchFailed(String),
    #[error("registrar store is closed after a failed commit, and reopening it failed")]
    Closed,
    /// The Redis location store did not take a batch, or could not be read.
    #[error("location store {target}: {reason}")]
    Redis { target: String, reason: String },
}
