//! The store's writer thread: commits the registrar's changes in batches (group commit), tells
//! each held 200 whether its changes are on disk, and keeps what a failed commit did not save.
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::binding::BindingChange;
use super::error::StoreError;

/// A batch is committed at this many changes even while more keep coming, to bound the memory
/// and the length of one transaction.
const MAX_BATCH: usize = 10_000;

/// How soon the changes of a failed commit are tried again when no new change arrives.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long the writer remembers the sequence number it last wrote for a binding, to drop an
/// older change to it that arrives late. A worker sends a change right after numbering it
/// under the AOR's lock, in the same call, so two changes to one binding arrive at most a
/// thread's wake-up apart; ten seconds leave room for a machine stalled for seconds, and keep
/// the memory to the bindings written in the last ten seconds (a minute held a burst of
/// 100 000 REGISTERs' entries for a minute).
const REMEMBER_WRITTEN: Duration = Duration::from_secs(10);

/// What the writer commits to: the redb file ([`super::BindingStore`]), or in tests a store
/// that fails on demand.
pub trait CommitBatch: Send + 'static {
    /// Applies `changes` in order, all or nothing.
    fn commit(&mut self, changes: &[BindingChange]) -> Result<(), StoreError>;

    /// [`CommitBatch::commit`] of changes whose store keys ([`BindingChange::store_key`]) the
    /// caller has already computed, as the journal's fold does to keep the latest change per
    /// binding; a store keyed by them need not compute them again. By default they are ignored.
    fn commit_keyed(&mut self, changes: &[(String, BindingChange)]) -> Result<(), StoreError> {
        let changes: Vec<BindingChange> = changes.iter().map(|(_, c)| c.clone()).collect();
        self.commit(&changes)
    }
}

/// Told the outcome of the batch that committed everything queued before it (see
/// [`StoreWriter::after_commit`]).
pub type AfterCommit = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

enum Command {
    Changes(u64, Vec<BindingChange>),
    Flush(mpsc::SyncSender<Result<(), StoreError>>),
    AfterCommit(AfterCommit),
}

/// What the writer thread reports to everyone else.
#[derive(Debug, Default)]
struct Health {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    /// The error of the last commit, while the last commit failed.
    failing: Mutex<Option<String>>,
}

/// The sending side of the store's writer thread. Cheap to clone; [`StoreWriter::send`] never
/// blocks.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: Sender<Command>,
    health: Arc<Health>,
}

impl StoreWriter {
    /// Queues changes for the next batch, with the sequence number the location service gave
    /// them (see the module documentation). Fails only when the writer thread has stopped.
    pub fn send(&self, sequence: u64, changes: Vec<BindingChange>) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Command::Changes(sequence, changes))
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Blocks until everything sent before has been through a commit; an error says that some
    /// changes are still unsaved (the commit failed, and its changes are kept for the next
    /// try). For shutdown and tests.
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
        self.health.commits.load(Ordering::Relaxed)
    }

    /// How many write transactions have failed since start.
    pub fn failed_commits(&self) -> u64 {
        self.health.failed_commits.load(Ordering::Relaxed)
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
    StoreWriter { tx, health }
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

/// Commits the unsaved changes and then `changes`, in one transaction, leaving out any change
/// older than one already written or queued for its binding. On failure everything stays
/// unsaved, for the next try.
fn commit<S: CommitBatch>(
    store: &mut S,
    unsaved: &mut Unsaved,
    written: &mut Written,
    changes: Vec<(u64, BindingChange)>,
    health: &Health,
) -> Result<(), String> {
    if changes.is_empty() && unsaved.is_empty() {
        return Ok(());
    }
    // Nearly always nothing is unsaved, and the batch is committed as it came.
    let all = if unsaved.is_empty() {
        changes
    } else {
        let mut all = unsaved.take();
        all.extend(changes);
        all
    };
    let (sequences, keys, all) = written.newest_only(all);
    let result = store.commit(&all);
    match &result {
        Ok(()) => written.note(keys, &sequences),
        Err(_) => unsaved.keep(sequences.into_iter().zip(all).collect()),
    }
    let mut failing = health
        .failing
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    match result {
        Ok(()) => {
            health.commits.fetch_add(1, Ordering::Relaxed);
            if failing.take().is_some() {
                tracing::warn!("registrar store: commits succeed again, every change is saved");
            }
            Ok(())
        }
        Err(error) => {
            health.failed_commits.fetch_add(1, Ordering::Relaxed);
            let message = error.to_string();
            // Logged when commits start failing and when the reason changes, not once a
            // second for as long as the disk stays full.
            if failing.as_deref() != Some(message.as_str()) {
                tracing::error!(%error, unsaved = unsaved.len(),
                    "registrar store: commit failed; the changes are kept in memory and tried again");
            }
            *failing = Some(message.clone());
            Err(message)
        }
    }
}

/// The sequence number last written for each binding recently written (see
/// [`REMEMBER_WRITTEN`]), by a 64-bit hash of the binding's key: with 100 000 bindings
/// registered in a minute the keys themselves cost about 80 bytes a binding, the hashes a
/// quarter of that. Two bindings whose keys share a hash (odds near 10^-10 among 100 000)
/// would at worst see a late-arriving change to one of them dropped as if it were the other's.
/// Within a batch changes are told apart by the same hash, which spares two copies of every key.
#[derive(Default)]
struct Written {
    by_key: HashMap<u64, (u64, Instant)>,
    last_pruned: Option<Instant>,
}

impl Written {
    /// `changes` in order, without those older than the newest change to the same binding
    /// written before or met earlier in the list; with each kept change's number and key hash.
    fn newest_only(
        &self,
        changes: Vec<(u64, BindingChange)>,
    ) -> (Vec<u64>, Vec<u64>, Vec<BindingChange>) {
        let mut newest: HashMap<u64, u64> = HashMap::new();
        let mut sequences = Vec::with_capacity(changes.len());
        let mut keys = Vec::with_capacity(changes.len());
        let mut kept = Vec::with_capacity(changes.len());
        for (sequence, change) in changes {
            let key = key_hash(&change.store_key());
            let floor = newest
                .get(&key)
                .copied()
                .or_else(|| self.by_key.get(&key).map(|(s, _)| *s));
            if floor.is_some_and(|floor| sequence < floor) {
                tracing::debug!(
                    key = change.store_key(),
                    sequence,
                    "an older change to a binding arrived late; dropped"
                );
                continue;
            }
            newest.insert(key, sequence);
            sequences.push(sequence);
            keys.push(key);
            kept.push(change);
        }
        (sequences, keys, kept)
    }

    /// Notes what a commit wrote (by key hash), and forgets what was written long ago.
    fn note(&mut self, keys: Vec<u64>, sequences: &[u64]) {
        let now = Instant::now();
        for (key, sequence) in keys.into_iter().zip(sequences) {
            let entry = self.by_key.entry(key).or_insert((*sequence, now));
            *entry = (entry.0.max(*sequence), now);
        }
        self.prune(now);
    }

    fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Forgets what was written [`REMEMBER_WRITTEN`] ago or more (looked at a few times per
    /// period, not on every call).
    fn prune(&mut self, now: Instant) {
        if self
            .last_pruned
            .is_none_or(|at| now.duration_since(at) >= REMEMBER_WRITTEN / 5)
        {
            self.by_key
                .retain(|_, (_, at)| now.duration_since(*at) < REMEMBER_WRITTEN);
            // Its table does not shrink by itself: after a burst it would keep the burst's size.
            if self.by_key.len() * 4 < self.by_key.capacity() {
                self.by_key.shrink_to_fit();
            }
            self.last_pruned = Some(now);
        }
    }
}

/// The hash [`Written`] keeps of a binding's key (fixed keys: the same in every run).
fn key_hash(key: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key)
}

/// Changes a commit could not save: the latest change per binding (a later change to the same
/// binding makes an earlier one moot), so that a disk that stays full costs memory in
/// proportion to the bindings, not to the REGISTERs.
#[derive(Default)]
struct Unsaved {
    latest: HashMap<String, (u64, BindingChange)>,
}

impl Unsaved {
    fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    fn len(&self) -> usize {
        self.latest.len()
    }

    /// Keeps `changes`: per binding the one with the highest number, the last of equals.
    fn keep(&mut self, changes: Vec<(u64, BindingChange)>) {
        for (sequence, change) in changes {
            match self.latest.entry(change.store_key()) {
                std::collections::hash_map::Entry::Occupied(mut kept) => {
                    if sequence >= kept.get().0 {
                        kept.insert((sequence, change));
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert((sequence, change));
                }
            }
        }
    }

    /// The kept changes, to commit ahead of a new batch. Each binding has one, so their order
    /// among themselves does not matter.
    fn take(&mut self) -> Vec<(u64, BindingChange)> {
        self.latest.drain().map(|(_, kept)| kept).collect()
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
    use std::sync::atomic::AtomicBool;

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
