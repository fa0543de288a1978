//! Tests of the binding store: restart, crash images, expiry on load, batched writes.

use crate::registrar::writer::testing::next_sequence;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::*;
use dialtone_transaction::Transport;

const T0: u64 = 1_700_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn binding(aor: &str, contact: &str, expires_in: u64) -> Binding {
    Binding {
        aor: aor.to_owned(),
        contact: contact.to_owned(),
        q: None,
        expires_at: T0 + expires_in,
        call_id: format!("{aor}-call"),
        cseq: 1,
        source: "192.0.2.7:5060".parse().unwrap(),
        transport: Transport::Udp,
        registered_at: T0,
    }
}

fn sorted(mut bindings: Vec<Binding>) -> Vec<Binding> {
    bindings.sort_by_key(|b| b.store_key());
    bindings
}

#[test]
fn bindings_committed_before_a_kill_are_found_with_their_remaining_expiry() {
    let live = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(live.path()).unwrap().spawn_writer();
    let written = vec![
        binding("9301", "sip:9301@192.168.2.194;user=phone", 3600),
        binding("9301", "sip:9301@10.0.0.9:5062", 600),
        binding("8000", "sip:8000@192.168.2.97", 3600),
    ];
    writer
        .send(
            next_sequence(),
            written.iter().cloned().map(BindingChange::Upsert).collect(),
        )
        .unwrap();
    writer.flush().unwrap();

    // The crash image: the file as it is on disk while the writer still has it open, no Drop
    // run, no clean close. redb must repair it on open.
    let crashed = tempfile::tempdir().unwrap();
    copy_crash_image(live.path(), crashed.path());
    std::mem::forget(writer);

    let reopened = BindingStore::open(crashed.path()).unwrap();
    let loaded = sorted(reopened.load(at(T0 + 100)).unwrap());
    assert_eq!(loaded, sorted(written));
    let remaining: Vec<u32> = loaded.iter().map(|b| b.remaining(at(T0 + 100))).collect();
    assert_eq!(remaining, vec![3500, 500, 3500]);
}

#[test]
fn bindings_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let one = binding("9301", "sip:9301@10.0.0.1", 3600);
    {
        let store = BindingStore::open(dir.path()).unwrap();
        store.apply(&[BindingChange::Upsert(one.clone())]).unwrap();
    }
    let store = BindingStore::open(dir.path()).unwrap();
    assert_eq!(store.load(at(T0)).unwrap(), vec![one]);
}

#[test]
fn expired_bindings_are_not_loaded_and_are_deleted_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = BindingStore::open(dir.path()).unwrap();
    let short = binding("9301", "sip:9301@10.0.0.1", 60);
    let long = binding("9301", "sip:9301@10.0.0.2", 3600);
    store
        .apply(&[
            BindingChange::Upsert(short.clone()),
            BindingChange::Upsert(long.clone()),
        ])
        .unwrap();
    assert_eq!(store.load(at(T0 + 60)).unwrap(), vec![long.clone()]);
    // Loading "earlier" again shows the lapsed binding is gone from disk, not just filtered.
    assert_eq!(store.load(at(T0)).unwrap(), vec![long]);
}

#[test]
fn a_replacement_with_an_equivalent_contact_overwrites_and_a_removal_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(dir.path()).unwrap().spawn_writer();
    let first = binding("9301", "sip:9301@PC33.example.com", 3600);
    let mut second = binding("9301", "sip:9301@pc33.EXAMPLE.com", 7200);
    second.cseq = 2;
    let other = binding("9301", "sip:9301@10.0.0.3", 3600);
    writer
        .send(
            next_sequence(),
            vec![
                BindingChange::Upsert(first),
                BindingChange::Upsert(other.clone()),
            ],
        )
        .unwrap();
    writer
        .send(next_sequence(), vec![BindingChange::Upsert(second.clone())])
        .unwrap();
    writer
        .send(
            next_sequence(),
            vec![BindingChange::Remove {
                aor: "9301".into(),
                contact: "sip:9301@10.0.0.3".into(),
            }],
        )
        .unwrap();
    writer.flush().unwrap();
    drop(writer);
    // The writer thread closes the file once every sender is gone; wait for it to let go.
    let store = reopen(dir.path());
    assert_eq!(store.load(at(T0)).unwrap(), vec![second]);
}

/// Opens a store whose previous writer thread may still be closing the file.
fn reopen(dir: &Path) -> BindingStore {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match BindingStore::open(dir) {
            Ok(store) => return store,
            Err(error) if Instant::now() > deadline => panic!("store not released: {error}"),
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[test]
fn twenty_thousand_upserts_through_the_writer_all_land_in_few_commits() {
    let dir = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(dir.path()).unwrap().spawn_writer();
    for n in 0..20_000u32 {
        let aor = format!("user{}", n % 500);
        let contact = format!("sip:{aor}@10.{}.{}.1:5060", n / 256 % 256, n % 256);
        writer
            .send(
                next_sequence(),
                vec![BindingChange::Upsert(binding(&aor, &contact, 3600))],
            )
            .unwrap();
    }
    writer.flush().unwrap();
    // Batching is the point of the writer; one commit per upsert would mean it is broken.
    assert!(writer.commits() < 20_000, "{} commits", writer.commits());
    drop(writer);
    let store = reopen(dir.path());
    assert_eq!(store.load(at(T0)).unwrap().len(), 20_000);
}

#[test]
fn after_commit_runs_once_the_changes_queued_before_it_are_on_disk() {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(live.path()).unwrap().spawn_writer();
    let written = binding("9301", "sip:9301@192.168.2.194;user=phone", 3600);
    writer
        .send(
            next_sequence(),
            vec![BindingChange::Upsert(written.clone())],
        )
        .unwrap();
    // The crash image is taken inside the callback, before any flush or close: what a
    // `kill -9` right after the registrar's 200 would leave.
    let (done, told) = mpsc::channel();
    let (from, image) = (live.path().to_owned(), crashed.path().to_owned());
    writer.after_commit(Box::new(move |result| {
        copy_crash_image(&from, &image);
        done.send(result).unwrap();
    }));
    told.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    std::mem::forget(writer);
    let loaded = BindingStore::open(crashed.path())
        .unwrap()
        .load(at(T0))
        .unwrap();
    assert_eq!(loaded, vec![written]);
}

#[test]
fn a_key_of_the_earlier_layout_is_moved_to_the_current_one_on_load() {
    // Keys once kept every uri-parameter (`;lr` here); `contact_identity` now keeps only the
    // ones RFC 3261 section 19.1.4 never ignores.
    let dir = tempfile::tempdir().unwrap();
    let stored = binding("8000", "sip:8000@192.0.2.7:5062;lr", 3600);
    let old_key = "8000 sip:8000:@192.0.2.7:5062;lr?";
    assert_ne!(old_key, stored.store_key());
    {
        let store = BindingStore::open(dir.path()).unwrap();
        let txn = store.db().unwrap().begin_write().unwrap();
        {
            let mut table = txn.open_table(BINDINGS).unwrap();
            let value = serde_json::to_vec(&stored).unwrap();
            table.insert(old_key, value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let store = BindingStore::open(dir.path()).unwrap();
    assert_eq!(store.load(at(T0)).unwrap(), vec![stored.clone()]);
    let txn = store.db().unwrap().begin_read().unwrap();
    let table = txn.open_table(BINDINGS).unwrap();
    assert!(table.get(old_key).unwrap().is_none(), "the old key is gone");
    assert!(table.get(stored.store_key().as_str()).unwrap().is_some());
}
