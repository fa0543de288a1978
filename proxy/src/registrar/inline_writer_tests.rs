//! Tests of the inline writer: a change is in what a `kill -9` leaves by the time its 200 is
//! released, on the caller's thread; the sync thread puts it on the disk; a failed commit is
//! reported and tried again as the writer thread does.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use crate::registrar::actor::tests::binding;
use crate::registrar::journal_file::JournalSync;
use crate::registrar::store::{copy_crash_image, BindingStore, StoreWriter};
use crate::registrar::writer::testing::{next_sequence, FlakyStore};
use crate::registrar::writer::{inline, RETRY_EVERY};

fn upsert(contact: &str) -> BindingChange {
    BindingChange::Upsert(binding(contact, 1_000))
}

fn periodic_writer(dir: &std::path::Path) -> StoreWriter {
    BindingStore::open(dir)
        .unwrap()
        .start_writer(JournalSync::Periodic)
}

/// Polls `done` until it holds or `within` passes.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(5));
    }
    done()
}

#[test]
fn a_change_is_in_what_a_kill_leaves_when_its_200_is_released_on_the_callers_thread() {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let writer = periodic_writer(live.path());
    let change = upsert("sip:9301@10.0.0.1");
    writer.send(next_sequence(), vec![change.clone()]).unwrap();
    // The crash image is taken inside the callback, before any sync or close.
    let caller = thread::current().id();
    let (done, told) = mpsc::channel();
    let (from, image) = (live.path().to_owned(), crashed.path().to_owned());
    writer.after_commit(Box::new(move |result| {
        copy_crash_image(&from, &image);
        done.send((result, thread::current().id())).unwrap();
    }));
    let (result, on) = told.try_recv().expect("told before after_commit returned");
    result.unwrap();
    assert_eq!(on, caller, "told on the thread that sent the change");
    std::mem::forget(writer);
    let loaded = BindingStore::open(crashed.path())
        .unwrap()
        .load(UNIX_EPOCH)
        .unwrap();
    let BindingChange::Upsert(expected) = change else {
        unreachable!()
    };
    assert_eq!(loaded, vec![expected]);
}

#[test]
fn the_sync_thread_puts_commits_on_the_disk_within_a_period() {
    let dir = tempfile::tempdir().unwrap();
    let writer = periodic_writer(dir.path());
    writer
        .send(next_sequence(), vec![upsert("sip:9302@10.0.0.2")])
        .unwrap();
    assert!(
        eventually(SYNC_EVERY * 50, || writer.syncs() >= 1),
        "no sync within fifty periods"
    );
    let synced = writer.syncs();
    // A flush syncs what it finds unsynced at once.
    writer
        .send(next_sequence(), vec![upsert("sip:9303@10.0.0.3")])
        .unwrap();
    writer.flush().unwrap();
    assert!(writer.syncs() > synced);
}

#[test]
fn a_failed_commit_is_reported_to_the_held_response_and_saved_once_the_store_mends() {
    let broken = Arc::new(AtomicBool::new(true));
    let (saved, commits) = mpsc::channel();
    let writer = inline(FlakyStore {
        broken: Arc::clone(&broken),
        saved,
    });
    let change = upsert("sip:9304@10.0.0.4");
    writer.send(next_sequence(), vec![change.clone()]).unwrap();
    let (done, told) = mpsc::channel();
    writer.after_commit(Box::new(move |result| done.send(result).unwrap()));
    assert!(matches!(
        told.try_recv().unwrap(),
        Err(StoreError::BatchFailed(reason)) if reason.contains("No space left")
    ));
    assert!(writer.failing().is_some());

    broken.store(false, Ordering::SeqCst);
    // Nothing more is sent: the sync thread tries again after RETRY_EVERY.
    let committed = commits.recv_timeout(RETRY_EVERY * 10).unwrap();
    assert_eq!(committed, vec![change]);
    // The store saw the change before the commit that carried it cleared the failure; a
    // flush waits for that commit (it holds the writer's lock), and finds everything saved.
    writer.flush().unwrap();
    assert_eq!(writer.failing(), None);
}

#[test]
fn a_change_older_than_the_one_written_for_its_binding_is_dropped() {
    let (saved, commits) = mpsc::channel();
    let writer = inline(FlakyStore {
        broken: Arc::new(AtomicBool::new(false)),
        saved,
    });
    let mut newer = binding("sip:9305@10.0.0.5", 1_000);
    newer.cseq = 2;
    let mut older = newer.clone();
    older.cseq = 1;
    writer
        .send(2_000_002, vec![BindingChange::Upsert(newer.clone())])
        .unwrap();
    writer
        .send(2_000_001, vec![BindingChange::Upsert(older)])
        .unwrap();
    let committed: Vec<BindingChange> = commits.try_iter().flatten().collect();
    assert_eq!(committed, vec![BindingChange::Upsert(newer)]);
}

/// A store whose commits succeed and whose syncs fail while `broken` is set: the file it then
/// hands out is a socket, on which `fdatasync` fails (EINVAL).
struct UnsyncableStore {
    broken: Arc<AtomicBool>,
    file: PathBuf,
}

impl CommitBatch for UnsyncableStore {
    fn commit(&mut self, _: &[BindingChange]) -> Result<(), StoreError> {
        Ok(())
    }

    fn unsynced_file(&self) -> Option<File> {
        if self.broken.load(Ordering::SeqCst) {
            let (socket, _) = std::os::unix::net::UnixStream::pair().unwrap();
            return Some(File::from(std::os::fd::OwnedFd::from(socket)));
        }
        Some(File::open(&self.file).unwrap())
    }
}

#[test]
fn a_failing_sync_is_reported_until_a_sync_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("journal");
    std::fs::write(&file, b"records").unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let writer = inline(UnsyncableStore {
        broken: Arc::clone(&broken),
        file,
    });
    writer
        .send(next_sequence(), vec![upsert("sip:9306@10.0.0.6")])
        .unwrap();
    assert!(
        eventually(SYNC_EVERY * 50, || writer
            .failing()
            .is_some_and(|why| why.contains("syncing the registrar journal"))),
        "the failed sync is not reported: {:?}",
        writer.failing()
    );
    // A commit that succeeds meanwhile does not hide it, and its 200 is still released: the
    // change is in the page cache.
    writer
        .send(next_sequence(), vec![upsert("sip:9307@10.0.0.7")])
        .unwrap();
    assert!(writer.failing().is_some());
    let (done, told) = mpsc::channel();
    writer.after_commit(Box::new(move |result| done.send(result).unwrap()));
    told.try_recv().unwrap().unwrap();

    // Nothing new is committed: the sync thread syncs again by itself, and clears the report.
    broken.store(false, Ordering::SeqCst);
    assert!(
        eventually(SYNC_EVERY * 50, || writer.failing().is_none()),
        "still reported after a sync succeeded: {:?}",
        writer.failing()
    );
}
