//! The bindings on disk, so that a restarted proxy still knows where its users are without
//! waiting up to an hour for every ATA to re-register.
//!
//! redb (embedded, crash-safe, pure Rust) keeps one table from `aor contact-identity` (see
//! [`super::rules::store_key`]) to the JSON of the [`Binding`]. Memory ([`super::location`]) is
//! the truth while the proxy runs; the store is written behind it by one OS thread
//! ([`BindingStore::spawn_writer`]) that commits everything queued in one write transaction, so
//! a burst of 10 000 REGISTERs a second costs a few fsyncs, not 10 000. The price: RFC 3261
//! section 10.3 step 7 wants a REGISTER to fail with 500 when the database commit fails, and a
//! write-behind store cannot tell the REGISTER in time. A failed batch is logged and reported to
//! the next [`StoreWriter::flush`]; the bindings stay in memory, and after a crash the client's
//! next refresh repairs what was lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread;
use std::time::SystemTime;

use redb::{Database, ReadableTable, TableDefinition};
use thiserror::Error;

use super::rules::{Binding, BindingChange};

/// The file inside the data directory.
pub const FILE_NAME: &str = "registrations.redb";

const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");

/// A batch is committed at this many changes even while more keep coming, to bound the memory
/// and the length of one transaction.
const MAX_BATCH: usize = 10_000;

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
    #[error("registrar store writer has stopped")]
    WriterStopped,
    #[error("registrar store: a batch of bindings was not saved: {0}")]
    BatchFailed(String),
}

/// The open database file.
pub struct BindingStore {
    db: Database,
}

impl std::fmt::Debug for BindingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingStore").finish_non_exhaustive()
    }
}

impl BindingStore {
    /// Opens `dir/registrations.redb`, creating the directory and the file when missing. A file
    /// left by a killed process is repaired by redb on open.
    pub fn open(dir: &Path) -> Result<BindingStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path,
            source: Box::new(source),
        })?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(BINDINGS).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(BindingStore { db })
    }

    /// Every binding still alive at `now`. Bindings that lapsed while the proxy was down are
    /// deleted from the file, since no sweep will ever see them in memory. A value that does not
    /// decode (a file from a different version) is skipped with a warning rather than keeping
    /// the proxy from starting; its user re-registers.
    pub fn load(&self, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        let mut alive = Vec::new();
        let mut dead = Vec::new();
        {
            let txn = self.db.begin_read().map_err(db_err)?;
            let table = txn.open_table(BINDINGS).map_err(db_err)?;
            for entry in table.iter().map_err(db_err)? {
                let (key, value) = entry.map_err(db_err)?;
                match serde_json::from_slice::<Binding>(value.value()) {
                    Ok(binding) if !binding.is_expired(now) => alive.push(binding),
                    Ok(_) => dead.push(key.value().to_owned()),
                    Err(error) => {
                        tracing::warn!(key = key.value(), %error, "undecodable stored binding");
                        dead.push(key.value().to_owned());
                    }
                }
            }
        }
        if !dead.is_empty() {
            let txn = self.db.begin_write().map_err(db_err)?;
            {
                let mut table = txn.open_table(BINDINGS).map_err(db_err)?;
                for key in &dead {
                    table.remove(key.as_str()).map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
        }
        Ok(alive)
    }

    /// Applies `changes` in order, in one write transaction (one fsync).
    pub fn apply(&self, changes: &[BindingChange]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(BINDINGS).map_err(db_err)?;
            for change in changes {
                let key = change.store_key();
                match change {
                    BindingChange::Upsert(binding) => {
                        let value = serde_json::to_vec(binding)?;
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(db_err)?;
                    }
                    BindingChange::Remove { .. } => {
                        table.remove(key.as_str()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Moves the store to its own OS thread, which commits queued changes in batches. The thread
    /// ends when every [`StoreWriter`] clone is dropped, after committing what is queued.
    pub fn spawn_writer(self) -> StoreWriter {
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        // A thread, not a tokio task: redb blocks on fsync, and the actors' arbiters must not.
        let spawned = thread::Builder::new()
            .name("registrar-store".into())
            .spawn(move || write_batches(self, rx, &counter));
        if let Err(error) = spawned {
            // The receiver was moved into the closure and dropped with it: every send now
            // reports WriterStopped, which is what callers see of this.
            tracing::error!(%error, "cannot start the registrar store writer");
        }
        StoreWriter { tx, commits }
    }
}

/// Maps each of redb's error types into [`StoreError::Database`].
fn db_err<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(Box::new(error.into()))
}

/// Told the outcome of the batch that committed everything queued before it (see
/// [`StoreWriter::after_commit`]).
pub type AfterCommit = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Command {
    Changes(Vec<BindingChange>),
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    AfterCommit(AfterCommit),
}

/// The sending side of the store's writer thread. Cheap to clone; [`StoreWriter::send`] never
/// blocks.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: Sender<Command>,
    commits: Arc<AtomicU64>,
}

impl StoreWriter {
    /// Queues changes for the next batch. Fails only when the writer thread has stopped.
    pub fn send(&self, changes: Vec<BindingChange>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Command::Changes(changes))
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Blocks until everything sent before is committed; reports a batch that failed since the
    /// last flush. For shutdown and tests.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.tx
            .send(Command::Flush(reply))
            .map_err(|_| StoreError::WriterStopped)?;
        done.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Calls `then` on the writer thread once everything queued before it is committed (or its
    /// batch failed): a registrar answers 200 only when the binding would survive a `kill -9`.
    /// It waits for the batch like any change does, so it costs no extra commit. When the
    /// writer has stopped, `then` is called at once with [`StoreError::WriterStopped`].
    pub fn after_commit(&self, then: AfterCommit) {
        if let Err(mpsc::SendError(Command::AfterCommit(then))) =
            self.tx.send(Command::AfterCommit(then))
        {
            then(Err(StoreError::WriterStopped));
        }
    }

    /// How many write transactions the writer has committed.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// The writer thread: wait for a change, gather a batch, commit it in one transaction, answer
/// the flushes that arrived meanwhile, repeat until every sender is gone.
fn write_batches(store: BindingStore, rx: Receiver<Command>, commits: &AtomicU64) {
    let mut failure: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let batch = Batch::gather(first, &rx);
        let mut outcome = Ok(());
        if !batch.changes.is_empty() {
            match store.apply(&batch.changes) {
                Ok(()) => {
                    commits.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(%error, changes = batch.changes.len(), "registrar store batch lost");
                    failure = Some(error.to_string());
                    outcome = Err(error.to_string());
                }
            }
        }
        for then in batch.after_commit {
            then(outcome.clone().map_err(StoreError::BatchFailed));
        }
        for reply in batch.flushes {
            let result = match failure.take() {
                Some(message) => Err(StoreError::BatchFailed(message)),
                None => Ok(()),
            };
            let _ = reply.send(result);
        }
        if batch.closed {
            break;
        }
    }
}

/// What the writer commits at once.
#[derive(Default)]
struct Batch {
    changes: Vec<BindingChange>,
    flushes: Vec<mpsc::SyncSender<Result<(), StoreError>>>,
    after_commit: Vec<AfterCommit>,
    /// Every sender is gone: commit and stop.
    closed: bool,
}

impl Batch {
    /// Takes the first command and whatever is already queued behind it (group commit): an idle
    /// writer commits a lone change at once, and a busy one gathers, during each commit, the
    /// changes of the next. The channel is FIFO, so a flush's batch holds everything sent
    /// before it.
    fn gather(first: Command, rx: &Receiver<Command>) -> Batch {
        let mut batch = Batch::default();
        batch.add(first);
        while batch.changes.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(command) => batch.add(command),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    batch.closed = true;
                    break;
                }
            }
        }
        batch
    }

    fn add(&mut self, command: Command) {
        match command {
            Command::Changes(changes) => self.changes.extend(changes),
            Command::Flush(reply) => self.flushes.push(reply),
            Command::AfterCommit(then) => self.after_commit.push(then),
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
