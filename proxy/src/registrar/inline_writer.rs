//! The inline writer: commits a REGISTER's changes on the thread that answered it, into the
//! journal's pages in the operating system's page cache, and a thread of its own syncs those
//! pages to the disk every [`SYNC_EVERY`]. It is what `journal-sync = "periodic"` (the
//! default) runs; `"each"` runs the writer thread instead ([`super::writer`]).
//!
//! Why: the 200 to a REGISTER promises that a crash or `kill -9` of the proxy loses nothing
//! it acknowledged, and a write in the page cache keeps that promise (the kernel owns those
//! pages, not the process). Waiting for the disk as well survives a power cut too, but on the
//! bench's machine it cost more CPU than all the rest of a REGISTER at 1000 a second: a
//! thread hand-off to the writer and back, and a synchronous write, for each REGISTER that
//! arrives alone. Handing the change over without the synchronous write still cost the two
//! wake-ups (measured: no cheaper than waiting for the disk). Here a REGISTER costs one
//! `pwrite` under a lock, and a power cut loses at most the last [`SYNC_EVERY`] of changes.
//!
//! The rest is the writer thread's: the same commit ([`super::batch_commit::commit`]) keeps
//! the newest change per binding and what a failed commit did not save, tried again with the
//! next commit or after [`RETRY_EVERY`]; a held 200 is told whether everything sent before it
//! is saved.

use std::fs::File;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::batch_commit::{commit, CommitBatch, Health, Unsaved, Written, RETRY_EVERY};
use super::binding::BindingChange;
use super::error::StoreError;

/// How often the page cache's writes are synced to the disk: what a power cut can lose. One
/// sync costs about a REGISTER's CPU, so ten a second are nothing at any rate.
pub const SYNC_EVERY: Duration = Duration::from_millis(100);

/// The store and what the commits remember, behind one lock.
pub struct InlineWriter {
    state: Mutex<State>,
    health: Arc<Health>,
}

struct State {
    store: Box<dyn CommitBatch>,
    unsaved: Unsaved,
    written: Written,
    /// When the unsaved changes were last tried (every commit tries them first).
    last_try: Instant,
    /// The number of commits when the last sync began.
    synced_commits: u64,
    /// Why the last sync failed, while it did: reported as the store's failure, and the next
    /// tick syncs again even if nothing new was committed.
    sync_error: Option<String>,
}

impl std::fmt::Debug for InlineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineWriter").finish_non_exhaustive()
    }
}

impl InlineWriter {
    /// Takes `store` and starts the thread that syncs its commits; the thread ends soon after
    /// the writer is dropped.
    pub(super) fn start(store: Box<dyn CommitBatch>, health: Arc<Health>) -> Arc<InlineWriter> {
        let writer = Arc::new(InlineWriter {
            state: Mutex::new(State {
                store,
                unsaved: Unsaved::default(),
                written: Written::default(),
                last_try: Instant::now(),
                synced_commits: 0,
                sync_error: None,
            }),
            health,
        });
        let watched = Arc::downgrade(&writer);
        let spawned = thread::Builder::new()
            .name("registrar-sync".into())
            .spawn(move || sync_periodically(&watched));
        if let Err(error) = spawned {
            tracing::error!(%error,
                "cannot start the registrar journal's sync thread: changes reach the disk only when the kernel writes them back");
        }
        writer
    }

    /// Commits `changes` (with the unsaved ones ahead of them) before returning. A failure is
    /// kept in the health and the unsaved changes, as the writer thread keeps it.
    pub(super) fn commit(&self, sequence: u64, changes: Vec<BindingChange>) {
        let mut state = self.lock();
        let changes = changes.into_iter().map(|c| (sequence, c)).collect();
        state.commit(changes, &self.health);
    }

    /// Whether everything committed so far is saved: what a held 200 is told.
    pub(super) fn outcome(&self) -> Result<(), StoreError> {
        if self.lock().unsaved.is_empty() {
            return Ok(());
        }
        let failing = lock_failing(&self.health).clone();
        Err(StoreError::BatchFailed(failing.unwrap_or_default()))
    }

    /// Tries the unsaved changes again and syncs everything committed to the disk.
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        let file = {
            let mut state = self.lock();
            if !state.unsaved.is_empty() {
                state.commit(Vec::new(), &self.health);
            }
            state.unsynced_file(&self.health)
        };
        if let Some(file) = file {
            let synced = sync(&file, &self.health);
            let failed = synced.as_ref().err().map(ToString::to_string);
            self.lock().after_sync(synced, &self.health);
            if let Some(error) = failed {
                return Err(StoreError::BatchFailed(error));
            }
        }
        self.outcome()
    }

    /// One period's work: forget old sequence numbers, try unsaved changes again after
    /// [`RETRY_EVERY`], and sync what was committed since the last sync. The sync runs
    /// outside the lock, so that REGISTERs are not held up by the disk.
    fn tick(&self) {
        let file = {
            let mut state = self.lock();
            let now = Instant::now();
            state.written.prune(now);
            if !state.unsaved.is_empty() && now.duration_since(state.last_try) >= RETRY_EVERY {
                state.commit(Vec::new(), &self.health);
            }
            state.unsynced_file(&self.health)
        };
        if let Some(file) = file {
            let synced = sync(&file, &self.health);
            self.lock().after_sync(synced, &self.health);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn commit(&mut self, changes: Vec<(u64, BindingChange)>, health: &Health) {
        self.last_try = Instant::now();
        let _ = commit(
            self.store.as_mut(),
            &mut self.unsaved,
            &mut self.written,
            changes,
            health,
        );
        // A commit that succeeds clears the failure it reports; a failing sync still stands.
        if let Some(error) = &self.sync_error {
            lock_failing(health).get_or_insert_with(|| error.clone());
        }
    }

    /// Notes how a sync went. A failure is reported like a failed commit (`failing`, which
    /// `/readyz` and `/metrics` show) until a sync succeeds: after an I/O error the kernel may
    /// have given up on pages it could not write, so what was committed before it may not be
    /// on the disk, and an operator should know. REGISTERs still get their 200: their changes
    /// are in the page cache, which is what a 200 promises (`kill -9` does not lose them).
    fn after_sync(&mut self, synced: std::io::Result<()>, health: &Health) {
        let mut failing = lock_failing(health);
        match synced {
            Ok(()) => {
                if self.sync_error.take().is_some() {
                    tracing::warn!("registrar journal: syncs to the disk succeed again");
                    if self.unsaved.is_empty() {
                        *failing = None;
                    }
                }
            }
            Err(error) => {
                let message = format!("syncing the registrar journal to the disk failed: {error}");
                if self.sync_error.is_none() {
                    tracing::error!(%error,
                        "registrar journal: syncing to the disk failed; a power cut could lose registrations");
                }
                *failing = Some(message.clone());
                self.sync_error = Some(message);
            }
        }
    }

    /// The file to sync when something was committed since the last sync began, or the last
    /// sync failed.
    fn unsynced_file(&mut self, health: &Health) -> Option<File> {
        let commits = health.commits.load(Ordering::Relaxed);
        if commits == self.synced_commits && self.sync_error.is_none() {
            return None;
        }
        self.synced_commits = commits;
        self.store.unsynced_file()
    }
}

impl Drop for InlineWriter {
    /// The last writer is gone (the proxy stops): one more try of the unsaved changes, and a
    /// last sync.
    fn drop(&mut self) {
        let file = {
            let mut state = self.lock();
            if !state.unsaved.is_empty() {
                state.commit(Vec::new(), &self.health);
            }
            state.unsynced_file(&self.health)
        };
        if let Some(Err(error)) = file.map(|file| sync(&file, &self.health)) {
            tracing::error!(%error, "registrar journal: the last sync to the disk failed");
        }
        let state = self.lock();
        if !state.unsaved.is_empty() {
            tracing::error!(
                changes = state.unsaved.len(),
                "registrar store: stopping with changes that could not be saved"
            );
        }
    }
}

fn lock_failing(health: &Health) -> MutexGuard<'_, Option<String>> {
    health
        .failing
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn sync(file: &File, health: &Health) -> std::io::Result<()> {
    file.sync_data()?;
    health.syncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The sync thread: a tick every [`SYNC_EVERY`] while the writer lives.
fn sync_periodically(writer: &Weak<InlineWriter>) {
    loop {
        thread::sleep(SYNC_EVERY);
        let Some(writer) = writer.upgrade() else {
            return;
        };
        writer.tick();
    }
}

#[cfg(test)]
#[path = "inline_writer_tests.rs"]
mod tests;
