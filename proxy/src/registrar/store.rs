//! The bindings on disk, so that a restarted proxy still knows where its users are without
//! waiting up to an hour for every ATA to re-register.
//!
//! redb (embedded, crash-safe, pure Rust) keeps one table from `aor contact-identity` (see
//! [`super::binding::store_key`]) to the [`Binding`] (in its [`super::stored_form`]), and one
//! from the AOR to its voicemail counts ([`MessageCounts`]). Memory ([`super::location`]) is
//! the truth while the proxy runs; the store is written behind it ([`BindingStore::start_writer`])
//! either by the worker that answered the REGISTER, into the journal's page cache with a sync
//! every 100 ms (the default), or by one OS thread that appends everything queued to a journal
//! in one synchronous write, so a burst of 10 000 REGISTERs a second costs a few syncs, not
//! 10 000, and a REGISTER arriving alone costs one small append rather than a redb commit; the journal
//! is folded into redb thousands of changes at a time ([`super::journaled_store`]), and
//! replayed into it when the store opens. The 200 to a REGISTER waits for the append that holds
//! its changes; when that fails the REGISTER gets a 500 instead (RFC 3261 section 10.3 step 7)
//! and the writer keeps the changes to commit again ([`super::writer`]).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use redb::{Database, ReadableTable, TableDefinition};

use super::binding::{Binding, BindingChange};
pub use super::error::StoreError;
use super::journal_file::JournalSync;
use super::journaled_store::{Journal, JournaledStore, JOURNAL_BYTES};
use super::mailbox::MessageCounts;
use super::stored_form;
use super::writer::CommitBatch;
pub use super::writer::{AfterCommit, StoreWriter};

/// The file inside the data directory.
pub const FILE_NAME: &str = "registrations.redb";

const BINDINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("bindings");

/// The voicemail counts, from the AOR to its [`MessageCounts`].
const MAILBOXES: TableDefinition<&str, &[u8]> = TableDefinition::new("mailboxes");

/// The open database file.
pub struct BindingStore {
    /// `None` between a failed commit and the reopening before the next (see `commit`).
    db: Option<Database>,
    path: PathBuf,
    /// The journal in front of the file, empty once opened; the writer takes it.
    journal: Option<Journal>,
}

impl std::fmt::Debug for BindingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingStore").finish_non_exhaustive()
    }
}

impl BindingStore {
    /// Opens `dir/registrations.redb` and its journal, creating the directory and the files
    /// when missing, and folds what the journal holds into the file. A file left by a killed
    /// process is repaired by redb on open.
    pub fn open(dir: &Path) -> Result<BindingStore, StoreError> {
        BindingStore::open_with_journal_size(dir, JOURNAL_BYTES)
    }

    /// [`BindingStore::open`] with journal files of `capacity` bytes (tests fill them soon).
    pub(crate) fn open_with_journal_size(
        dir: &Path,
        capacity: usize,
    ) -> Result<BindingStore, StoreError> {
        let mut store = BindingStore::open_file_only(dir)?;
        let (mut journal, replayed) = Journal::open(dir, capacity)?;
        if !replayed.is_empty() {
            tracing::info!(changes = replayed.len(), "registrar journal replayed");
            store.apply(&replayed)?;
        }
        journal.reset_all()?;
        store.journal = Some(journal);
        Ok(store)
    }

    /// Opens the redb file alone.
    fn open_file_only(dir: &Path) -> Result<BindingStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = open_file(&path)?;
        let txn = db.begin_write().map_err(db_err)?;
        txn.open_table(BINDINGS).map_err(db_err)?;
        txn.open_table(MAILBOXES).map_err(db_err)?;
        txn.commit().map_err(db_err)?;
        Ok(BindingStore {
            db: Some(db),
            path,
            journal: None,
        })
    }

    fn db(&self) -> Result<&Database, StoreError> {
        self.db.as_ref().ok_or(StoreError::Closed)
    }

    /// Every binding still alive at `now`. Bindings that lapsed while the proxy was down are
    /// deleted from the file, since no sweep will ever see them in memory. A value that does not
    /// decode (a file from a different version) is skipped with a warning rather than keeping
    /// the proxy from starting; its user re-registers.
    pub fn load(&self, now: SystemTime) -> Result<Vec<Binding>, StoreError> {
        let mut alive = Vec::new();
        let mut dead = Vec::new();
        let mut moved = Vec::new();
        {
            let txn = self.db()?.begin_read().map_err(db_err)?;
            let table = txn.open_table(BINDINGS).map_err(db_err)?;
            for entry in table.iter().map_err(db_err)? {
                let (key, value) = entry.map_err(db_err)?;
                match stored_form::decode::<Binding>(value.value()) {
                    Ok(binding) if !binding.is_expired(now) => {
                        // A key of an earlier layout (see `contact_identity`) is moved to the
                        // current one, or a later removal would miss it.
                        if key.value() != binding.store_key() {
                            moved.push((key.value().to_owned(), binding.clone()));
                        }
                        alive.push(binding);
                    }
                    Ok(_) => dead.push(key.value().to_owned()),
                    Err(error) => {
                        tracing::warn!(key = key.value(), %error, "undecodable stored binding");
                        dead.push(key.value().to_owned());
                    }
                }
            }
        }
        // Written oldest first, so that of two old keys that now name one binding the one
        // registered last is what the file keeps, as memory does below.
        moved.sort_by_key(|(_, b)| (b.registered_at, b.cseq));
        if !dead.is_empty() || !moved.is_empty() {
            let txn = self.db()?.begin_write().map_err(db_err)?;
            {
                let mut table = txn.open_table(BINDINGS).map_err(db_err)?;
                for key in &dead {
                    table.remove(key.as_str()).map_err(db_err)?;
                }
                for (old_key, binding) in &moved {
                    table.remove(old_key.as_str()).map_err(db_err)?;
                    let value = stored_form::encode(binding);
                    table
                        .insert(binding.store_key().as_str(), value.as_slice())
                        .map_err(db_err)?;
                }
            }
            txn.commit().map_err(db_err)?;
        }
        // Two old keys may now name one binding: keep the one registered last.
        alive.sort_by(|a, b| {
            (a.store_key(), a.registered_at, a.cseq).cmp(&(b.store_key(), b.registered_at, b.cseq))
        });
        alive.dedup_by(|later, earlier| {
            let same = later.store_key() == earlier.store_key();
            if same {
                std::mem::swap(later, earlier);
            }
            same
        });
        Ok(alive)
    }

    /// Every mailbox's counts. One that does not decode is skipped with a warning, like a
    /// binding (its counts are set again by whoever sets them).
    pub fn load_mailboxes(&self) -> Result<Vec<(String, MessageCounts)>, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let table = txn.open_table(MAILBOXES).map_err(db_err)?;
        let mut mailboxes = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            match stored_form::decode::<MessageCounts>(value.value()) {
                Ok(counts) => mailboxes.push((key.value().to_owned(), counts)),
                Err(error) => tracing::warn!(key = key.value(), %error, "undecodable mailbox"),
            }
        }
        Ok(mailboxes)
    }

    /// Applies `changes` in order, in one write transaction (one fsync).
    pub fn apply(&self, changes: &[BindingChange]) -> Result<(), StoreError> {
        self.apply_keyed(changes.iter().map(|change| (change.store_key(), change)))
    }

    /// [`BindingStore::apply`] with each change's store key already computed.
    fn apply_keyed<'a, K: AsRef<str>>(
        &self,
        changes: impl IntoIterator<Item = (K, &'a BindingChange)>,
    ) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(BINDINGS).map_err(db_err)?;
            let mut mailboxes = txn.open_table(MAILBOXES).map_err(db_err)?;
            let mut value = Vec::new();
            for (key, change) in changes {
                value.clear();
                match change {
                    BindingChange::Mailbox { aor, counts } => {
                        stored_form::encode_into(counts, &mut value);
                        mailboxes
                            .insert(aor.as_str(), value.as_slice())
                            .map_err(db_err)?;
                    }
                    BindingChange::Upsert(binding) => {
                        stored_form::encode_into(binding, &mut value);
                        table
                            .insert(key.as_ref(), value.as_slice())
                            .map_err(db_err)?;
                    }
                    BindingChange::Remove { .. } => {
                        table.remove(key.as_ref()).map_err(db_err)?;
                    }
                }
            }
        }
        txn.commit().map_err(db_err)?;
        Ok(())
    }

    /// Moves the store to its own OS thread, which commits queued changes in batches to the
    /// journal (see [`super::writer`], [`super::journaled_store`]). The thread ends when every
    /// [`StoreWriter`] clone is dropped, after committing what is queued.
    pub fn spawn_writer(self) -> StoreWriter {
        self.start_writer(JournalSync::EachAppend)
    }

    /// The store's writer for `sync`: the writer thread, whose every batch is on the disk
    /// before its 200s, or the inline writer, which commits into the page cache on the caller's
    /// thread and syncs to the disk a moment later (see [`super::inline_writer`]).
    pub fn start_writer(self, sync: JournalSync) -> StoreWriter {
        let mut journaled = self.journaled();
        journaled.set_sync(sync);
        match sync {
            JournalSync::EachAppend => super::writer::spawn(journaled),
            JournalSync::Periodic => super::writer::inline(journaled),
        }
    }

    /// The store behind its journal, as the writer commits to it.
    pub(crate) fn journaled(mut self) -> JournaledStore<BindingStore> {
        let journal = self
            .journal
            .take()
            .expect("a store is opened with its journal and journaled once");
        JournaledStore::new(journal, self)
    }
}

impl CommitBatch for BindingStore {
    /// After a failed commit the database is closed and opened again: redb refuses every
    /// transaction on a handle that met an I/O error ("Previous I/O error occurred. Please
    /// close and re-open the database"), so without this a disk that was full once would fail
    /// every later commit, even once space is freed. The file itself is consistent (redb
    /// commits are copy-on-write), and opening repairs what needs it.
    fn commit(&mut self, changes: &[BindingChange]) -> Result<(), StoreError> {
        self.reopened_for(|store| store.apply(changes))
    }

    /// The journal's fold computed the keys already (to keep the latest change per binding).
    fn commit_keyed(&mut self, changes: &[(String, BindingChange)]) -> Result<(), StoreError> {
        self.reopened_for(|store| store.apply_keyed(changes.iter().map(|(k, c)| (k, c))))
    }
}

impl BindingStore {
    /// Runs `apply` on the database, opened again first if the last commit failed, and closed
    /// if this one fails (see [`CommitBatch::commit`] above).
    fn reopened_for(
        &mut self,
        apply: impl FnOnce(&BindingStore) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.db.is_none() {
            // redb allows one handle per file: the old one was dropped when the commit failed.
            self.db = Some(open_file(&self.path)?);
        }
        let result = apply(self);
        if result.is_err() {
            self.db = None;
        }
        result
    }
}

/// redb's page cache. The file is read once, at start; afterwards it only takes the journal's
/// folds, so a large cache would hold pages nobody reads again (redb's default, up to 1 GiB,
/// grew with the bindings: with the writer's hashed keys, 656 -> 455 bytes per binding).
const REDB_CACHE_BYTES: usize = 4 << 20;

fn open_file(path: &Path) -> Result<Database, StoreError> {
    redb::Builder::new()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source: Box::new(source),
        })
}

/// Maps each of redb's error types into [`StoreError::Database`].
fn db_err<E: Into<redb::Error>>(error: E) -> StoreError {
    StoreError::Database(Box::new(error.into()))
}

/// Copies every file of the data directory `live` into `image` as it is on disk now: what a
/// `kill -9` would leave (the redb file and the journal).
#[cfg(test)]
pub(crate) fn copy_crash_image(live: &Path, image: &Path) {
    for entry in std::fs::read_dir(live).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), image.join(entry.file_name())).unwrap();
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
