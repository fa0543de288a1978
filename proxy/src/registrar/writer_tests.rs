//! Tests of the writer thread: a stopped writer, and commits that fail and are tried again.

use super::testing::{broken_writer, next_sequence};
use super::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// A writer whose thread is gone.
fn stopped_writer() -> StoreWriter {
    let (tx, rx) = mpsc::channel();
    drop(rx);
    StoreWriter {
        route: Route::Thread(tx),
        health: Arc::new(Health::default()),
    }
}

#[test]
fn flush_reports_a_stopped_writer_instead_of_hanging() {
    let writer = stopped_writer();
    assert!(matches!(writer.flush(), Err(StoreError::WriterStopped)));
    assert!(matches!(
        writer.send(next_sequence(), vec![remove("a", "sip:a@b")]),
        Err(StoreError::WriterStopped)
    ));
}

#[test]
fn after_commit_on_a_stopped_writer_is_told_at_once() {
    let writer = stopped_writer();
    let (done, told) = mpsc::channel();
    writer.after_commit(Box::new(move |result| done.send(result).unwrap()));
    assert!(matches!(
        told.try_recv(),
        Ok(Err(StoreError::WriterStopped))
    ));
}

fn remove(aor: &str, contact: &str) -> BindingChange {
    BindingChange::Remove {
        aor: aor.into(),
        contact: contact.into(),
    }
}

/// What `after_commit` is told once everything sent before is through a commit.
fn outcome_of_next_commit(writer: &StoreWriter) -> Result<(), StoreError> {
    let (done, told) = mpsc::channel();
    writer.after_commit(Box::new(move |result| done.send(result).unwrap()));
    told.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn a_failed_commit_is_reported_to_the_held_response_and_its_changes_go_with_the_next_batch() {
    let (writer, broken, commits) = broken_writer();
    writer
        .send(next_sequence(), vec![remove("9301", "sip:9301@a")])
        .unwrap();
    assert!(matches!(
        outcome_of_next_commit(&writer),
        Err(StoreError::BatchFailed(reason)) if reason.contains("No space left")
    ));
    // At least one: on a loaded machine the writer's retry (every second) may have failed too.
    assert!(writer.failed_commits() >= 1);
    assert!(writer.failing().unwrap().contains("No space left"));
    assert!(matches!(writer.flush(), Err(StoreError::BatchFailed(_))));

    broken.store(false, Ordering::SeqCst);
    writer
        .send(next_sequence(), vec![remove("9302", "sip:9302@b")])
        .unwrap();
    outcome_of_next_commit(&writer).unwrap();
    let committed = commits.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        committed,
        vec![remove("9301", "sip:9301@a"), remove("9302", "sip:9302@b")],
        "the unsaved change is committed first, then the new batch"
    );
    assert_eq!(writer.failing(), None);
    writer.flush().unwrap();
}

#[test]
fn unsaved_changes_are_committed_again_when_nothing_else_comes() {
    let (writer, broken, commits) = broken_writer();
    writer
        .send(next_sequence(), vec![remove("9301", "sip:9301@a")])
        .unwrap();
    assert!(outcome_of_next_commit(&writer).is_err());
    broken.store(false, Ordering::SeqCst);
    // Nothing more is sent: the writer retries on its own (after RETRY_EVERY).
    let committed = commits.recv_timeout(RETRY_EVERY * 10).unwrap();
    assert_eq!(committed, vec![remove("9301", "sip:9301@a")]);
    // A flush waits for the writer to be done with that commit, and finds everything saved.
    writer.flush().unwrap();
    assert_eq!(writer.failing(), None);
    assert_eq!(writer.commits(), 1);
}

#[test]
fn of_several_unsaved_changes_to_one_binding_only_the_last_is_kept_and_a_newer_one_follows_it() {
    let (writer, broken, commits) = broken_writer();
    let first = remove("9301", "sip:9301@a");
    let mut later = first.clone();
    if let BindingChange::Remove { contact, .. } = &mut later {
        // The same binding: contact identity ignores the case of the scheme.
        *contact = "SIP:9301@a".into();
    }
    assert_eq!(first.store_key(), later.store_key());
    writer
        .send(next_sequence(), vec![first.clone(), later.clone()])
        .unwrap();
    assert!(outcome_of_next_commit(&writer).is_err());
    writer.send(next_sequence(), vec![first.clone()]).unwrap();
    assert!(outcome_of_next_commit(&writer).is_err());

    broken.store(false, Ordering::SeqCst);
    writer.send(next_sequence(), vec![later.clone()]).unwrap();
    outcome_of_next_commit(&writer).unwrap();
    let committed = commits.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        committed,
        vec![first, later],
        "one kept change for the binding (the last that failed), then the new one"
    );
}

#[test]
fn a_change_older_than_the_one_written_for_its_binding_is_dropped_whatever_order_they_arrive_in() {
    let (writer, broken, commits) = broken_writer();
    broken.store(false, Ordering::SeqCst);
    let upsert = |seq: u64| {
        let mut binding = crate::registrar::actor::tests::binding("sip:9301@10.0.0.1", 1_000);
        binding.cseq = seq as u32;
        (seq, BindingChange::Upsert(binding))
    };
    // Two workers answered two REGISTERs of one AOR; the later one's send came first.
    let (newer_seq, newer) = upsert(1_000_002);
    let (older_seq, older) = upsert(1_000_001);
    writer.send(newer_seq, vec![newer.clone()]).unwrap();
    outcome_of_next_commit(&writer).unwrap();
    writer.send(older_seq, vec![older.clone()]).unwrap();
    outcome_of_next_commit(&writer).unwrap();
    let committed: Vec<BindingChange> = commits.try_iter().flatten().collect();
    assert_eq!(
        committed,
        vec![newer.clone()],
        "the late, older change is not written"
    );

    // The same inside one batch: the writer is held up, and both arrive before its commit.
    let gate = Arc::new(std::sync::Barrier::new(2));
    let held = Arc::clone(&gate);
    writer.after_commit(Box::new(move |_| {
        held.wait();
    }));
    writer.send(1_000_004, vec![upsert(1_000_004).1]).unwrap();
    writer.send(1_000_003, vec![upsert(1_000_003).1]).unwrap();
    gate.wait();
    outcome_of_next_commit(&writer).unwrap();
    let committed: Vec<BindingChange> = commits.try_iter().flatten().collect();
    assert_eq!(committed, vec![upsert(1_000_004).1]);
}
