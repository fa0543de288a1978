//! The store's writer: commits the registrar's changes, tells each held 200 whether its
//! changes are saved, and keeps what a failed commit did not save. Its thread, here, commits
//! in batches (group commit) and each batch is on the disk when it is done; the inline writer
//! ([`super::inline_writer`]) commits on the caller's thread into the page cache instead.
//!
//! A commit can fail (disk full, an I/O error). Memory keeps the bindings either way, so calls
//! still find them; what must not happen is that the file silently misses them, so that a
//! restart loses a registration or brings back one that was removed. The changes of a failed
//! batch are therefore kept, one latest change per binding, and committed again ahead of the
//! next batch, or after [`RETRY_EVERY`] when nothing else comes. While commits fail, the
//! REGISTERs waiting for them are told so (their 200 becomes a 500 with Retry-After, RFC 3261
//! section 10.3 step 7), and [`StoreWriter::failing`] says why, for `/readyz` and `/metrics`.
//!
//! Changes come from several threads (every worker that answered a REGISTER, the registrar's
//! sweep), each with the sequence number the location service gave it under the AOR's lock.
//! Two changes to one binding can therefore arrive in the other order than memory applied
//! them; every change writes its binding's whole state, so the writer keeps, per binding, the
//! one with the highest number and drops an older one that arrives late.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::thread;
use std::time::Instant;

use super::batch_commit::{commit, Health, Unsaved, Written, REMEMBER_WRITTEN};
pub use super::batch_commit::{CommitBatch, RETRY_EVERY};
use super::binding::BindingChange;
use super::error::StoreError;
use super::inline_writer::InlineWriter;

/// A batch is committed at this many changes even while more keep coming, to bound the memory
/// and the length of one transaction.
const MAX_BATCH: usize = 10_000;

/// Told the outcome of the batch that committed everything queued before it (see
/// [`StoreWriter::after_commit`]).
pub type AfterCommit = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Command {
    Changes(u64, Vec<BindingChange>),
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    AfterCommit(AfterCommit),
}

/// The sending side of the store's writer: its thread, or the inline writer
/// ([`super::inline_writer`]) that commits on the caller's thread. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    route: Route,
    health: Arc<Health>,
}

#[derive(Debug, Clone)]
enum Route {
    Thread(Sender<Command>),
    Inline(Arc<InlineWriter>),
}

impl StoreWriter {
    /// Hands changes to the writer, with the sequence number the location service gave them
    /// (see the module documentation): queued for the thread's next batch (this never blocks),
    /// or committed at once by the inline writer (a write into the page cache, under a lock).
    /// Fails only when the writer thread has stopped.
    pub fn send(&self, sequence: u64, changes: Vec<BindingChange>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        match &self.route {
            Route::Thread(tx) => tx
                .send(Command::Changes(sequence, changes))
                .map_err(|_| StoreError::WriterStopped),
            Route::Inline(inline) => {
                inline.commit(sequence, changes);
                Ok(())
            }
        }
    }

    /// Blocks until everything sent before has been through a commit (and, inline, synced to
    /// the disk); an error says that some changes are still unsaved (the commit failed, and
    /// its changes are kept for the next try). For shutdown and tests.
    pub fn flush(&self) -> Result<(), StoreError> {
        match &self.route {
            Route::Thread(tx) => {
                let (reply, done) = mpsc::sync_channel(1);
                tx.send(Command::Flush(reply))
                    .map_err(|_| StoreError::WriterStopped)?;
                done.recv().map_err(|_| StoreError::WriterStopped)?
            }
            Route::Inline(inline) => inline.flush(),
        }
    }

    /// Calls `then` once everything sent before it is committed (or its batch failed): a
    /// registrar answers 200 only when the binding would survive a `kill -9`. The thread
    /// calls it after the batch it waited for like any change does, so it costs no extra
    /// commit; the inline writer has committed already, and calls it at once, on the caller's
    /// thread. When the writer thread has stopped, `then` is called at once with
    /// [`StoreError::WriterStopped`].
    pub fn after_commit(&self, then: AfterCommit) {
        match &self.route {
            Route::Thread(tx) => {
                if let Err(mpsc::SendError(Command::AfterCommit(then))) =
                    tx.send(Command::AfterCommit(then))
                {
                    then(Err(StoreError::WriterStopped));
                }
            }
            Route::Inline(inline) => then(inline.outcome()),
        }
    }

    /// How many write transactions the writer has committed.
    pub fn commits(&self) -> u64 {
        self.health.commits.load(Ordering::Relaxed)
    }

    /// How many write transactions have failed since start.
    pub fn failed_commits(&self) -> u64 {
        self.health.failed_commits.load(Ordering::Relaxed)
    }

    /// How many times the inline writer synced its commits to the disk (none for the thread,
    /// whose commits are on the disk when they return).
    pub fn syncs(&self) -> u64 {
        self.health.syncs.load(Ordering::Relaxed)
    }

    /// The error of the last commit, when it failed: some changes are then in memory only
    /// (they are being committed again).
    pub fn failing(&self) -> Option<String> {
        self.health
            .failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts the inline writer over `store`, whose commits leave their writes in the page cache
/// ([`CommitBatch::unsynced_file`]): see [`super::inline_writer`].
pub fn inline<S: CommitBatch>(store: S) -> StoreWriter {
    let health = Arc::new(Health::default());
    let inline = InlineWriter::start(Box::new(store), Arc::clone(&health));
    StoreWriter {
        route: Route::Inline(inline),
        health,
    }
}

/// Starts the writer thread over `store`. The thread ends when every [`StoreWriter`] clone is
/// dropped, after committing what is queued.
pub fn spawn<S: CommitBatch>(store: S) -> StoreWriter {
    let (tx, rx) = mpsc::channel();
    let health = Arc::new(Health::default());
    let reported = Arc::clone(&health);
    // A thread, not a tokio task: redb blocks on fsync, and the actors' arbiters must not.
    let spawned = thread::Builder::new()
        .name("registrar-store".into())
        .spawn(move || write_batches(store, rx, &reported));
    if let Err(error) = spawned {
        // The receiver was moved into the closure and dropped with it: every send now
        // reports WriterStopped, which is what callers see of this.
        tracing::error!(%error, "cannot start the registrar store writer");
    }
    StoreWriter {
        route: Route::Thread(tx),
        health,
    }
}

/// The writer thread: wait for a change (or, with unsaved changes, for the retry time), gather
/// a batch, commit it with the unsaved changes ahead of it, answer the callbacks and flushes
/// that came with it, repeat until every sender is gone.
fn write_batches<S: CommitBatch>(mut store: S, rx: Receiver<Command>, health: &Health) {
    let mut unsaved = Unsaved::default();
    let mut written = Written::default();
    loop {
        let first = if !unsaved.is_empty() {
            rx.recv_timeout(RETRY_EVERY)
        } else if !written.is_empty() {
            // Wakes to forget what was written long enough ago, even if nothing more comes.
            rx.recv_timeout(REMEMBER_WRITTEN / 5)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        written.prune(Instant::now());
        let batch = match first {
            Ok(command) => Batch::gather(command, &rx),
            Err(RecvTimeoutError::Timeout) => Batch::default(),
            Err(RecvTimeoutError::Disconnected) if unsaved.is_empty() => break,
            Err(RecvTimeoutError::Disconnected) => Batch {
                closed: true,
                ..Batch::default()
            },
        };
        let outcome = commit(
            &mut store,
            &mut unsaved,
            &mut written,
            batch.changes,
            health,
        );
        for then in batch.after_commit {
            then(outcome.clone().map_err(StoreError::BatchFailed));
        }
        for reply in batch.flushes {
            let _ = reply.send(outcome.clone().map_err(StoreError::BatchFailed));
        }
        if batch.closed {
            if !unsaved.is_empty() {
                tracing::error!(
                    changes = unsaved.len(),
                    "registrar store: stopping with changes that could not be saved"
                );
            }
            break;
        }
    }
}

/// What the writer commits at once.
#[derive(Default)]
struct Batch {
    changes: Vec<(u64, BindingChange)>,
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
            Command::Changes(sequence, changes) => self
                .changes
                .extend(changes.into_iter().map(|change| (sequence, change))),
            Command::Flush(reply) => self.flushes.push(reply),
            Command::AfterCommit(then) => self.after_commit.push(then),
        }
    }
}

/// A store that fails on demand, for tests of what a failing disk does to the proxy.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    /// Commits fail while `broken` is set (a full disk); every saved commit goes to `saved`.
    pub(crate) struct FlakyStore {
        pub(crate) broken: Arc<AtomicBool>,
        pub(crate) saved: Sender<Vec<BindingChange>>,
    }

    impl CommitBatch for FlakyStore {
        fn commit(&mut self, changes: &[BindingChange]) -> Result<(), StoreError> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(StoreError::BatchFailed("No space left on device".into()));
            }
            let _ = self.saved.send(changes.to_vec());
            Ok(())
        }
    }

    /// Increasing sequence numbers for changes a test sends in order.
    pub(crate) fn next_sequence() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::SeqCst)
    }

    /// A writer over a broken [`FlakyStore`]; the flag mends it, the receiver sees its commits.
    pub(crate) fn broken_writer() -> (StoreWriter, Arc<AtomicBool>, Receiver<Vec<BindingChange>>) {
        let broken = Arc::new(AtomicBool::new(true));
        let (saved, commits) = mpsc::channel();
        let writer = spawn(FlakyStore {
            broken: Arc::clone(&broken),
            saved,
        });
        (writer, broken, commits)
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
