//! The store's writer commits to this: each batch of changes is appended to a journal file and
//! synced (one synchronous write of a block or two), and the journal is folded into the store behind it
//! (redb) thousands of changes at a time, on a thread of its own.
//!
//! Two journal files take turns. Changes go to the active one; when it is full, the other one
//! becomes active (started over under a new, higher generation) and the full one's changes are
//! committed to the store by a fold thread. The full file is reused only after its fold has
//! committed, so every acknowledged change is always in the store or in a journal file. On
//! start ([`Journal::open`]) both files are replayed, the older generation first, into the
//! store, and both start over.
//!
//! Why: see [`super::journal`]. A REGISTER's 200 waits for its journal append only; the fold's
//! commit, which would stall it for tens of milliseconds, happens beside it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::binding::BindingChange;
use super::error::StoreError;
use super::journal::{self, RECORD_OVERHEAD};
use super::journal_file::{JournalFile, JournalSync};
use super::stored_form;
use super::writer::CommitBatch;

/// The size of each journal file. At 1000 REGISTERs a second (about 100 bytes of record each,
/// 87 for a short binding in its stored form) one fills in about ten seconds, so a fold commits
/// ten thousand changes at once; small
/// enough that two files are nothing on disk, and that a file size limit of a couple of MiB
/// (the full-disk test) still lets the proxy start.
pub const JOURNAL_BYTES: usize = 1 << 20;

/// The two files, inside the data directory.
pub const FILE_NAMES: [&str; 2] = ["registrations.journal-a", "registrations.journal-b"];

/// The two journal files and which one takes appends.
#[derive(Debug)]
pub struct Journal {
    files: [JournalFile; 2],
    active: usize,
    sync: JournalSync,
}

impl Journal {
    /// Opens (or creates) both files in `dir`, `capacity` bytes each, and returns the changes
    /// they hold, the older generation's first. A record that does not decode ends nothing:
    /// it is skipped with a warning, like an undecodable binding in redb.
    pub fn open(dir: &Path, capacity: usize) -> Result<(Journal, Vec<BindingChange>), StoreError> {
        let open = |name: &str| {
            let path = dir.join(name);
            JournalFile::open(&path, capacity).map_err(|source| journal_error(&path, source))
        };
        let mut replayed = [open(FILE_NAMES[0])?, open(FILE_NAMES[1])?];
        replayed.sort_by_key(|r| r.file.generation());
        let changes = decode(replayed.iter().flat_map(|r| &r.records).map(Vec::as_slice));
        let [older, newer] = replayed;
        let journal = Journal {
            files: [older.file, newer.file],
            active: 1,
            sync: JournalSync::EachAppend,
        };
        Ok((journal, changes))
    }

    /// Starts both files over, once what they held is in the store.
    pub fn reset_all(&mut self) -> Result<(), StoreError> {
        for n in [1 - self.active, self.active] {
            let generation = self.next_generation();
            let file = &mut self.files[n];
            file.reset(generation)
                .map_err(|source| journal_error(file.path(), source))?;
        }
        Ok(())
    }

    /// Sets when appends reach the disk, for both files.
    pub fn set_sync(&mut self, sync: JournalSync) {
        for file in &mut self.files {
            file.set_sync(sync);
        }
        self.sync = sync;
    }

    fn active(&self) -> &JournalFile {
        &self.files[self.active]
    }

    fn next_generation(&self) -> u64 {
        self.files
            .iter()
            .map(JournalFile::generation)
            .max()
            .unwrap_or(0)
            + 1
    }
}

/// The other file's state: clean (started over, or never written), being folded, or holding
/// changes whose fold failed. The changes themselves are read back from the file by whoever
/// folds it, so the writer holds none of them in memory.
enum Other {
    Clean,
    Folding(JoinHandle<Result<(), StoreError>>),
    Unfolded,
}

/// A [`CommitBatch`] that journals each batch and folds the journal into `store` (redb).
pub struct JournaledStore<S: CommitBatch> {
    journal: Journal,
    store: Arc<Mutex<S>>,
    other: Other,
    /// The records of the batch being appended, reused.
    records: Vec<u8>,
    /// One change's stored form, reused.
    payload: Vec<u8>,
}

impl<S: CommitBatch> JournaledStore<S> {
    /// Journals into `journal` (empty: replayed and reset) in front of `store`.
    pub fn new(journal: Journal, store: S) -> JournaledStore<S> {
        JournaledStore {
            journal,
            store: Arc::new(Mutex::new(store)),
            other: Other::Clean,
            records: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// Sets when appends reach the disk (see [`JournalSync`]).
    pub fn set_sync(&mut self, sync: JournalSync) {
        self.journal.set_sync(sync);
    }

    /// Appends the records gathered so far.
    fn append(&mut self) -> Result<(), StoreError> {
        if self.records.is_empty() {
            return Ok(());
        }
        let file = &mut self.journal.files[self.journal.active];
        let appended = file.append(&mut self.records);
        self.records.clear();
        appended.map_err(|source| journal_error(file.path(), source))
    }

    /// Makes the other file the active one: waits for its fold (or folds it here if the last
    /// one failed), starts it over, and sends the full file's changes to a fold thread.
    fn switch(&mut self) -> Result<(), StoreError> {
        let next = 1 - self.journal.active;
        // A finished fold leaves the file clean or unfolded; an unfolded one stays so.
        self.other = match std::mem::replace(&mut self.other, Other::Clean) {
            Other::Folding(fold) => match fold.join() {
                Ok(Ok(())) => Other::Clean,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "registrar journal fold failed; trying again");
                    Other::Unfolded
                }
                Err(_) => Other::Unfolded,
            },
            other => other,
        };
        if let Other::Unfolded = self.other {
            let file = &self.journal.files[next];
            fold(&self.store, file.path(), file.generation())?;
            self.other = Other::Clean;
        }
        let full = &self.journal.files[self.journal.active];
        let (path, full_generation) = (full.path().to_owned(), full.generation());
        let generation = self.journal.next_generation();
        let file = &mut self.journal.files[next];
        file.reset(generation)
            .map_err(|source| journal_error(file.path(), source))?;
        self.journal.active = next;
        let store = Arc::clone(&self.store);
        let folding = thread::Builder::new()
            .name("registrar-fold".into())
            .spawn(move || {
                yield_to_the_workers();
                fold(&store, &path, full_generation)
            });
        self.other = match folding {
            Ok(folding) => Other::Folding(folding),
            Err(error) => {
                tracing::warn!(%error, "cannot start the registrar journal's fold thread");
                Other::Unfolded
            }
        };
        Ok(())
    }
}

impl<S: CommitBatch> CommitBatch for JournaledStore<S> {
    /// Appends the batch, switching files as often as it needs (a burst's batch may fill
    /// several); on an error the changes appended before it are kept, and appended again with
    /// the retry (each writes its binding's whole state, so twice is the same as once).
    fn commit(&mut self, changes: &[BindingChange]) -> Result<(), StoreError> {
        self.records.clear();
        for change in changes {
            self.payload.clear();
            stored_form::encode_into(change, &mut self.payload);
            let length = RECORD_OVERHEAD + self.payload.len();
            if !self.journal.active().fits(self.records.len() + length) {
                self.append()?;
                if !self.journal.active().fits(length) {
                    self.switch()?;
                }
                if !self.journal.active().fits(length) {
                    return Err(journal_error(
                        self.journal.active().path(),
                        std::io::Error::other("a change larger than the journal"),
                    ));
                }
            }
            journal::push_record(
                &mut self.records,
                self.journal.active().generation(),
                &self.payload,
            );
        }
        self.append()
    }

    /// The active file, when its appends stop in the page cache. A file switched away from is
    /// synced by its fold before the fold reads it.
    fn unsynced_file(&self) -> Option<std::fs::File> {
        if self.journal.sync == JournalSync::EachAppend {
            return None;
        }
        let file = self.journal.active();
        file.handle()
            .inspect_err(|error| {
                tracing::warn!(%error, path = %file.path().display(), "cannot sync the registrar journal");
            })
            .ok()
    }
}

impl<S: CommitBatch> Drop for JournaledStore<S> {
    /// Lets a running fold finish, so that the process does not end in the middle of it (it
    /// would be safe: redb commits are atomic and the journal still holds the changes, but the
    /// next start would fold them again).
    fn drop(&mut self) {
        if let Other::Folding(fold) = std::mem::replace(&mut self.other, Other::Clean) {
            let _ = fold.join();
        }
    }
}

/// Commits the changes of the journal file at `path` (its records of `generation`) to `store`,
/// the latest per binding.
fn fold<S: CommitBatch>(store: &Mutex<S>, path: &Path, generation: u64) -> Result<(), StoreError> {
    // Appends that stopped in the page cache (`JournalSync::Periodic`) reach the disk now,
    // not only once the fold's redb commit does (a fold can take a second); a file synced at
    // each append has nothing to write.
    std::fs::File::open(path)
        .and_then(|file| file.sync_data())
        .map_err(|source| journal_error(path, source))?;
    let file =
        JournalFile::read_back(path, generation).map_err(|source| journal_error(path, source))?;
    let changes = latest_per_binding(decode(file.records()));
    lock(store).commit_keyed(&changes)
}

/// The last of `changes` (in journal order) to each binding, with its store key, in key order.
/// In key order, consecutive changes land in the same B-tree leaf; in a hash map's order each
/// walked a random path, and with redb's small cache (`store.rs`) many paths were read back
/// from the file. Sorting also finds the changes to one binding, without hashing the keys and
/// a table to hold them (a tenth of the fold's CPU at 20 000 REGISTERs/s).
fn latest_per_binding(changes: Vec<BindingChange>) -> Vec<(String, BindingChange)> {
    let mut keyed: Vec<(String, usize, BindingChange)> = changes
        .into_iter()
        .enumerate()
        .map(|(at, change)| (change.store_key(), at, change))
        .collect();
    // The newest change to a binding first among its changes, and the rest dropped.
    keyed.sort_unstable_by(|(a, a_at, _), (b, b_at, _)| a.cmp(b).then(b_at.cmp(a_at)));
    keyed.dedup_by(|(later, ..), (kept, ..)| later == kept);
    keyed
        .into_iter()
        .map(|(key, _, change)| (key, change))
        .collect()
}

/// How much lower than the workers' the fold thread's priority is (a nice value): a weight
/// about a tenth of theirs, so that it takes spare CPU first and a worker's share otherwise.
const FOLD_NICENESS: libc::c_int = 10;

/// Lowers the calling thread's priority (Linux gives each thread its own nice value) below
/// the UDP workers'. A fold is 25 to 40 ms of CPU every third of a second at 40 000
/// REGISTERs/s; at the workers' priority it took its turns in the middle of theirs, and the
/// bench's probe REGISTERs waited behind it (probe p99 6.7 to 7.9 ms against 4.3 to 6.7 ms
/// niced, three alternating pairs). It cannot starve: were it to fall a whole file behind,
/// the next switch waits for it, and the workers with it.
fn yield_to_the_workers() {
    // SAFETY: `setpriority` takes plain integers; `who` 0 is the calling thread.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, FOLD_NICENESS) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "fold thread priority unchanged");
    }
}

/// The changes of journal records; one that does not decode is skipped with a warning, like
/// an undecodable binding in redb.
fn decode<'a>(records: impl IntoIterator<Item = &'a [u8]>) -> Vec<BindingChange> {
    let mut changes = Vec::new();
    for record in records {
        match stored_form::decode::<BindingChange>(record) {
            Ok(change) => changes.push(change),
            Err(error) => tracing::warn!(%error, "undecodable registrar journal record"),
        }
    }
    changes
}

fn lock<S>(store: &Mutex<S>) -> std::sync::MutexGuard<'_, S> {
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

fn journal_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Journal {
        path: PathBuf::from(path),
        source,
    }
}

#[cfg(test)]
#[path = "journaled_store_tests.rs"]
mod tests;
