//! What both ways of writing the store share (the writer thread, [`super::writer`], and the
//! inline writer, [`super::inline_writer`]): the store they commit to, and one commit of a
//! batch, which leaves out changes older than one already written for their binding and keeps
//! what a failed commit did not save, to commit again ahead of the next batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::binding::BindingChange;
use super::error::StoreError;

/// How soon the changes of a failed commit are tried again when no new change arrives.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long the writer remembers the sequence number it last wrote for a binding, to drop an
/// older change to it that arrives late. A worker sends a change right after numbering it
/// under the AOR's lock, in the same call, so two changes to one binding arrive at most a
/// thread's wake-up apart; ten seconds leave room for a machine stalled for seconds, and keep
/// the memory to the bindings written in the last ten seconds (a minute held a burst of
/// 100 000 REGISTERs' entries for a minute).
pub(super) const REMEMBER_WRITTEN: Duration = Duration::from_secs(10);

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

    /// A handle on the file whose commits stopped at the operating system's page cache, for
    /// the inline writer to sync to the disk a moment later (see [`super::inline_writer`]);
    /// none where a commit is on the disk when it returns.
    fn unsynced_file(&self) -> Option<std::fs::File> {
        None
    }
}

/// What the writer reports to everyone else.
#[derive(Debug, Default)]
pub(super) struct Health {
    pub(super) commits: AtomicU64,
    pub(super) failed_commits: AtomicU64,
    /// How many times the inline writer synced the page cache's writes to the disk.
    pub(super) syncs: AtomicU64,
    /// The error of the last commit, while the last commit failed.
    pub(super) failing: Mutex<Option<String>>,
}

/// Commits the unsaved changes and then `changes`, in one transaction, leaving out any change
/// older than one already written or queued for its binding. On failure everything stays
/// unsaved, for the next try.
pub(super) fn commit<S: CommitBatch + ?Sized>(
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

/// Batches of at most this many changes are checked against themselves by a search of what
/// they kept so far; larger ones through a hash table.
const SMALL_BATCH: usize = 8;

/// The sequence number last written for each binding recently written (see
/// [`REMEMBER_WRITTEN`]), by a 64-bit hash of the binding's key: with 100 000 bindings
/// registered in a minute the keys themselves cost about 80 bytes a binding, the hashes a
/// quarter of that. Two bindings whose keys share a hash (odds near 10^-10 among 100 000)
/// would at worst see a late-arriving change to one of them dropped as if it were the other's.
/// Within a batch changes are told apart by the same hash, which spares two copies of every key.
#[derive(Default)]
pub(super) struct Written {
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
        // The inline writer commits one REGISTER's changes at a time: a batch that small is
        // searched as it is kept, without a table of its own.
        let small = changes.len() <= SMALL_BATCH;
        let mut newest: HashMap<u64, u64> = HashMap::new();
        let mut sequences = Vec::with_capacity(changes.len());
        let mut keys = Vec::with_capacity(changes.len());
        let mut kept = Vec::with_capacity(changes.len());
        for (sequence, change) in changes {
            let key = key_hash(&change.store_key());
            let in_batch = if small {
                keys.iter().rposition(|k| *k == key).map(|at| sequences[at])
            } else {
                newest.get(&key).copied()
            };
            let floor = in_batch.or_else(|| self.by_key.get(&key).map(|(s, _)| *s));
            if floor.is_some_and(|floor| sequence < floor) {
                tracing::debug!(
                    key = change.store_key(),
                    sequence,
                    "an older change to a binding arrived late; dropped"
                );
                continue;
            }
            if !small {
                newest.insert(key, sequence);
            }
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

    pub(super) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Forgets what was written [`REMEMBER_WRITTEN`] ago or more (looked at a few times per
    /// period, not on every call).
    pub(super) fn prune(&mut self, now: Instant) {
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
pub(super) struct Unsaved {
    latest: HashMap<String, (u64, BindingChange)>,
}

impl Unsaved {
    pub(super) fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.latest.len()
    }

    /// Keeps `changes`: per binding the one with the highest number, the last of equals.
    pub(super) fn keep(&mut self, changes: Vec<(u64, BindingChange)>) {
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
    pub(super) fn take(&mut self) -> Vec<(u64, BindingChange)> {
        self.latest.drain().map(|(_, kept)| kept).collect()
    }
}

#[cfg(test)]
#[path = "batch_commit_tests.rs"]
mod tests;
