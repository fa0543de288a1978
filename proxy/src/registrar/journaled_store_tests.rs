//! Tests of the journal in front of the store: what was appended is replayed after a crash
//! whether or not its fold ran, folds happen when a file fills, a failed fold is retried and
//! loses nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::SystemTime;

use super::*;
use crate::registrar::binding::{unix_seconds, Binding};
use crate::registrar::store::BindingStore;
use crate::registrar::writer::testing::FlakyStore;
use dialtone_transaction::Transport;

/// One time for every binding of a test (two calls of `SystemTime::now` may fall in two
/// seconds).
fn test_start() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| unix_seconds(SystemTime::now()))
}

fn binding(aor: &str, cseq: u32) -> Binding {
    let now = test_start();
    Binding {
        aor: aor.to_owned(),
        contact: format!("sip:{aor}@192.0.2.7:5060"),
        q: None,
        expires_at: now + 3600,
        call_id: format!("{aor}-call"),
        cseq,
        source: "192.0.2.7:5060".parse().unwrap(),
        transport: Transport::Udp,
        registered_at: now,
    }
}

fn upserts(from: u32, to: u32, cseq: u32) -> Vec<BindingChange> {
    (from..to)
        .map(|n| BindingChange::Upsert(binding(&format!("user{n}"), cseq)))
        .collect()
}

/// A copy of the data directory as it is now on disk: what a `kill -9` would leave.
fn crash_image(dir: &Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    crate::registrar::store::copy_crash_image(dir, image.path());
    image
}

fn loaded(dir: &Path) -> Vec<Binding> {
    let mut bindings = BindingStore::open(dir)
        .unwrap()
        .load(SystemTime::now())
        .unwrap();
    bindings.sort_by_key(|b| b.aor.clone());
    bindings
}

fn journaled(dir: &Path, capacity: usize) -> JournaledStore<BindingStore> {
    BindingStore::open_with_journal_size(dir, capacity)
        .unwrap()
        .journaled()
}

#[test]
fn appended_changes_survive_a_crash_before_any_fold() {
    let live = tempfile::tempdir().unwrap();
    let mut store = journaled(live.path(), JOURNAL_BYTES);
    store.commit(&upserts(0, 3, 1)[..]).unwrap();
    store
        .commit(&[BindingChange::Upsert(binding("user1", 2))])
        .unwrap();
    store
        .commit(&[BindingChange::Remove {
            aor: "user2".into(),
            contact: "sip:user2@192.0.2.7:5060".into(),
        }])
        .unwrap();
    let image = crash_image(live.path());
    let found = loaded(image.path());
    assert_eq!(found, vec![binding("user0", 1), binding("user1", 2)]);
    // Replayed into redb on open: opening again without the journal finds them too.
    for name in FILE_NAMES {
        std::fs::remove_file(image.path().join(name)).unwrap();
    }
    assert_eq!(loaded(image.path()).len(), 2);
}

#[test]
fn a_full_file_is_folded_into_the_store_and_its_successor_takes_the_appends() {
    let live = tempfile::tempdir().unwrap();
    // Room for a few dozen records per file: 300 changes switch files several times.
    let mut store = journaled(live.path(), 8 * 1024);
    for n in 0..300 {
        store.commit(&upserts(n, n + 1, 1)[..]).unwrap();
    }
    // The newest change of a binding wins over the folded one.
    store.commit(&upserts(0, 1, 9)[..]).unwrap();
    let image = crash_image(live.path());
    let found = loaded(image.path());
    assert_eq!(found.len(), 300);
    assert_eq!(found.iter().find(|b| b.aor == "user0").unwrap().cseq, 9);
    drop(store);
    // The files were folded, not only kept: redb alone holds the earliest changes.
    let image = crash_image(live.path());
    for name in FILE_NAMES {
        std::fs::remove_file(image.path().join(name)).unwrap();
    }
    let in_redb = loaded(image.path());
    assert!(in_redb.len() > 200, "{} folded", in_redb.len());
}

#[test]
fn a_batch_larger_than_a_file_is_spread_over_several() {
    let live = tempfile::tempdir().unwrap();
    let mut store = journaled(live.path(), 8 * 1024);
    store.commit(&upserts(0, 500, 1)[..]).unwrap();
    drop(store);
    assert_eq!(loaded(crash_image(live.path()).path()).len(), 500);
}

#[test]
fn a_failed_fold_is_retried_and_nothing_is_lost_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), 8 * 1024).unwrap();
    journal.reset_all().unwrap();
    let broken = Arc::new(AtomicBool::new(true));
    let (saved, folds) = mpsc::channel();
    let flaky = FlakyStore {
        broken: Arc::clone(&broken),
        saved,
    };
    let mut store = JournaledStore::new(journal, flaky);
    let mut committed = 0;
    // Appends go on while the first fold fails, until both files are full.
    let refused = loop {
        match store.commit(&upserts(committed, committed + 1, 1)[..]) {
            Ok(()) => committed += 1,
            Err(error) => break error,
        }
        assert!(committed < 1000, "the journal never filled");
    };
    assert!(refused.to_string().contains("No space left"), "{refused}");
    assert!(folds.try_recv().is_err(), "nothing was folded");
    // Mended: the retry folds the failed file first, then goes on.
    broken.store(false, Ordering::SeqCst);
    store
        .commit(&upserts(committed, committed + 1, 1)[..])
        .unwrap();
    drop(store);
    let folded: Vec<BindingChange> = folds.try_iter().flatten().collect();
    assert!(folded.len() > 10, "{} folded", folded.len());
    // Everything appended is in the store or still in the journal.
    let (_, replayed) = Journal::open(dir.path(), 8 * 1024).unwrap();
    let mut aors: Vec<String> = folded
        .iter()
        .chain(&replayed)
        .map(|c| c.store_key())
        .collect();
    aors.sort();
    aors.dedup();
    assert_eq!(
        aors.len() as u32,
        committed + 1,
        "{} folded, {} replayed",
        folded.len(),
        replayed.len()
    );
}

#[test]
fn a_journal_holding_json_records_of_an_earlier_version_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    drop(journaled(dir.path(), JOURNAL_BYTES));
    let path = dir.path().join(FILE_NAMES[0]);
    let mut file = JournalFile::open(&path, JOURNAL_BYTES).unwrap().file;
    let old = binding("7001", 1);
    let new = binding("7002", 1);
    let mut records = Vec::new();
    let json = serde_json::to_vec(&BindingChange::Upsert(old.clone())).unwrap();
    journal::push_record(&mut records, file.generation(), &json);
    let stored = stored_form::encode(&BindingChange::Upsert(new.clone()));
    journal::push_record(&mut records, file.generation(), &stored);
    file.append(&mut records).unwrap();
    drop(file);
    assert_eq!(loaded(dir.path()), vec![old, new]);
}

/// A store that reports the name and nice value of each thread that commits to it.
struct PriorityProbe(mpsc::Sender<(Option<String>, libc::c_int)>);

impl CommitBatch for PriorityProbe {
    fn commit(&mut self, _: &[BindingChange]) -> Result<(), StoreError> {
        // SAFETY: plain integers; `who` 0 is the calling thread.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let name = thread::current().name().map(str::to_owned);
        let _ = self.0.send((name, nice));
        Ok(())
    }
}

#[test]
fn the_fold_runs_below_the_workers_priority_and_leaves_theirs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = Journal::open(dir.path(), 4096).unwrap();
    let (sender, folds) = mpsc::channel();
    let mut store = JournaledStore::new(journal, PriorityProbe(sender));
    // SAFETY: as above.
    let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    // Enough changes to fill the first file, so that it is switched away from and folded.
    for n in 0..100 {
        store.commit(&upserts(n, n + 1, 1)).unwrap();
    }
    drop(store); // waits for the fold
    let (name, nice) = folds.try_recv().expect("a fold committed");
    assert_eq!(name.as_deref(), Some("registrar-fold"));
    // Nice values stop at 19.
    assert_eq!(nice, (ours + FOLD_NICENESS).min(19));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }, ours);
}

#[test]
fn a_fold_writes_the_last_change_to_each_binding_in_key_order() {
    let change = |aor: &str, cseq: u32| BindingChange::Upsert(binding(aor, cseq));
    let journal_order = vec![
        change("user2", 1),
        change("user1", 1),
        change("user2", 2),
        BindingChange::remove(&binding("user1", 1)),
        change("user2", 3),
        change("user3", 1),
    ];
    let folded = latest_per_binding(journal_order.clone());
    let expected: Vec<(String, BindingChange)> = [3, 4, 5]
        .map(|at| (journal_order[at].store_key(), journal_order[at].clone()))
        .into_iter()
        .collect();
    let mut in_key_order = expected.clone();
    in_key_order.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(folded, in_key_order);
}
