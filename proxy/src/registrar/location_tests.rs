//! Tests of the location service: lookups, expiry with a fake clock, concurrent REGISTERs.

use std::thread;
use std::time::{Duration, UNIX_EPOCH};

use dialtone_sip::RequestBuilder;

use super::*;
use crate::registrar::store::BindingStore;
use dialtone_transaction::Transport;

const T0: u64 = 1_700_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn origin() -> Origin {
    Origin {
        source: "192.0.2.7:5060".parse().unwrap(),
        transport: Transport::Udp,
    }
}

fn register_bytes(aor: &str, call_id: &str, cseq: u32, contact: &str) -> Vec<u8> {
    RequestBuilder::new("REGISTER", "sip:lab.example")
        .header("Via", "SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1")
        .header("From", &format!("<sip:{aor}@lab.example>;tag=1"))
        .header("To", &format!("<sip:{aor}@lab.example>"))
        .header("Call-ID", call_id)
        .header("CSeq", &format!("{cseq} REGISTER"))
        .header("Contact", contact)
        .build()
}

fn register(
    location: &LocationService,
    aor: &str,
    call_id: &str,
    cseq: u32,
    contact: &str,
    now: SystemTime,
) -> RegisterOutcome {
    let raw = register_bytes(aor, call_id, cseq, contact);
    let request = Message::parse(&raw).unwrap();
    location
        .register(&request, aor, now, origin(), &RegistrarPolicy::default())
        .outcome
}

fn assert_ok(outcome: &RegisterOutcome) {
    assert!(matches!(outcome, RegisterOutcome::Ok { .. }), "{outcome:?}");
}

#[test]
fn lookup_returns_unexpired_bindings_highest_q_first() {
    let location = LocationService::new();
    assert_ok(&register(
        &location,
        "9301",
        "a",
        1,
        "<sip:9301@10.0.0.1>;q=0.1;expires=60",
        at(T0),
    ));
    assert_ok(&register(
        &location,
        "9301",
        "b",
        1,
        "<sip:9301@10.0.0.2>;q=0.9;expires=600",
        at(T0),
    ));
    assert_ok(&register(
        &location,
        "9301",
        "c",
        1,
        "<sip:9301@10.0.0.3>;expires=600",
        at(T0),
    ));
    let found: Vec<String> = location
        .lookup("9301", at(T0 + 10))
        .into_iter()
        .map(|b| b.contact)
        .collect();
    assert_eq!(
        found,
        vec![
            "sip:9301@10.0.0.3",
            "sip:9301@10.0.0.2",
            "sip:9301@10.0.0.1"
        ]
    );
    let later = location.lookup("9301", at(T0 + 60));
    assert_eq!(later.len(), 2, "the 60 s binding has lapsed for lookups");
    assert!(location.lookup("8000", at(T0)).is_empty());
}

#[test]
fn expire_removes_and_returns_only_lapsed_bindings() {
    let location = LocationService::new();
    register(
        &location,
        "9301",
        "a",
        1,
        "<sip:9301@10.0.0.1>;expires=60",
        at(T0),
    );
    register(
        &location,
        "9301",
        "b",
        1,
        "<sip:9301@10.0.0.2>;expires=600",
        at(T0),
    );
    register(
        &location,
        "8000",
        "c",
        1,
        "<sip:8000@10.0.0.3>;expires=60",
        at(T0),
    );
    assert_eq!(location.count(), 3);

    assert!(location.expire(at(T0 + 59)).is_empty());
    let mut expired: Vec<(String, String)> = location
        .expire(at(T0 + 60))
        .into_iter()
        .map(|(aor, b)| (aor, b.contact))
        .collect();
    expired.sort();
    assert_eq!(
        expired,
        vec![
            ("8000".to_owned(), "sip:8000@10.0.0.3".to_owned()),
            ("9301".to_owned(), "sip:9301@10.0.0.1".to_owned()),
        ]
    );
    assert_eq!(location.count(), 1);
    assert_eq!(location.expired_total(), 2);
    assert_eq!(location.snapshot()[0].contact, "sip:9301@10.0.0.2");
}

#[test]
fn the_sweep_walks_only_from_the_earliest_expiry_and_still_finds_every_lapsed_binding() {
    let location = LocationService::new();
    let earliest = |l: &LocationService| l.inner.earliest_expiry.load(Ordering::Relaxed);
    assert_eq!(earliest(&location), u64::MAX);
    register(
        &location,
        "9301",
        "a",
        1,
        "<sip:9301@10.0.0.1>;expires=600",
        at(T0),
    );
    assert_eq!(earliest(&location), T0 + 600);
    assert!(location.expire(at(T0 + 1)).is_empty());
    // Added after a sweep and lapsing before every other binding: still swept on time.
    register(
        &location,
        "8000",
        "b",
        1,
        "<sip:8000@10.0.0.3>;expires=60",
        at(T0 + 1),
    );
    assert_eq!(earliest(&location), T0 + 61);
    assert!(location.expire(at(T0 + 60)).is_empty());
    assert_eq!(location.expire(at(T0 + 61)).len(), 1);
    // The walk rebuilt the earliest expiry from the bindings it kept.
    assert_eq!(earliest(&location), T0 + 600);
    assert!(location.expire(at(T0 + 599)).is_empty());
    assert_eq!(location.expire(at(T0 + 600)).len(), 1);
    assert_eq!(earliest(&location), u64::MAX);
    // Bindings applied by callers that ran the rules themselves count too.
    let binding = Binding {
        aor: "9301".into(),
        contact: "sip:9301@10.0.0.9".into(),
        q: None,
        expires_at: T0 + 700,
        call_id: "c".into(),
        cseq: 1,
        source: origin().source,
        transport: Transport::Udp,
        registered_at: T0,
    };
    location.apply("9301", vec![binding]);
    assert_eq!(earliest(&location), T0 + 700);
    assert_eq!(location.expire(at(T0 + 700)).len(), 1);
}

#[test]
fn removing_the_last_binding_forgets_the_aor() {
    let location = LocationService::new();
    register(&location, "9301", "a", 1, "<sip:9301@10.0.0.1>", at(T0));
    register(
        &location,
        "9301",
        "a",
        2,
        "<sip:9301@10.0.0.1>;expires=0",
        at(T0),
    );
    assert_eq!(location.count(), 0);
    assert!(location.inner.bindings.get("9301").is_none());
}

#[test]
fn rejected_register_leaves_the_bindings_alone() {
    let location = LocationService::new();
    register(&location, "9301", "a", 5, "<sip:9301@10.0.0.1>", at(T0));
    let before = location.snapshot();
    let late = register(
        &location,
        "9301",
        "a",
        4,
        "<sip:9301@10.0.0.1>;expires=0",
        at(T0),
    );
    assert!(matches!(late, RegisterOutcome::Reject { status: 500, .. }));
    assert_eq!(location.snapshot(), before);
}

#[test]
fn concurrent_registers_for_one_aor_lose_no_binding() {
    let location = LocationService::new();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let location = location.clone();
            thread::spawn(move || {
                for n in 0..100 {
                    let contact = format!("<sip:9301@10.0.{t}.{n}>");
                    let outcome =
                        register(&location, "9301", &format!("{t}-{n}"), 1, &contact, at(T0));
                    assert_ok(&outcome);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(location.lookup("9301", at(T0)).len(), 800);
}

#[test]
fn the_store_ends_with_what_memory_holds_after_concurrent_replacements() {
    let dir = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(dir.path()).unwrap().spawn_writer();
    let location = LocationService::with_bindings(Vec::new(), true);
    // Every thread keeps replacing the same two contacts under its own Call-ID: the store's
    // last write for each key must be memory's last write, although each thread hands its
    // changes to the writer after the AOR's lock is released, as a worker does, so that they
    // arrive in any order.
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (location, writer) = (location.clone(), writer.clone());
            thread::spawn(move || {
                for n in 1..=200 {
                    let contact = format!("<sip:9301@10.0.0.{}>", n % 2);
                    let call_id = format!("thread-{t}");
                    let raw = register_bytes("9301", &call_id, n, &contact);
                    let request = Message::parse(&raw).unwrap();
                    let policy = RegistrarPolicy::default();
                    let applied = location.register(&request, "9301", at(T0), origin(), &policy);
                    let (sequence, changes) = applied.into_persist().unwrap();
                    writer.send(sequence, changes).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    writer.flush().unwrap();
    let mut in_memory = location.snapshot();
    drop(location);
    drop(writer);
    let store = reopen(dir.path());
    let mut on_disk = store.load(at(T0)).unwrap();
    in_memory.sort_by_key(|b| b.store_key());
    on_disk.sort_by_key(|b| b.store_key());
    assert_eq!(in_memory.len(), 2);
    assert_eq!(on_disk, in_memory);
}

#[test]
fn expiry_removals_reach_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let writer = BindingStore::open(dir.path()).unwrap().spawn_writer();
    let location = LocationService::with_bindings(Vec::new(), true);
    for (call_id, contact) in [
        ("a", "<sip:9301@10.0.0.1>;expires=60"),
        ("b", "<sip:9301@10.0.0.2>;expires=600"),
    ] {
        let raw = register_bytes("9301", call_id, 1, contact);
        let request = Message::parse(&raw).unwrap();
        let policy = RegistrarPolicy::default();
        let applied = location.register(&request, "9301", at(T0), origin(), &policy);
        let (sequence, changes) = applied.into_persist().unwrap();
        writer.send(sequence, changes).unwrap();
    }
    // What the registrar actor's sweep does (see `actor.rs`).
    let (sequence, expired) = location.expire_in_order(at(T0 + 60));
    assert_eq!(expired.len(), 1);
    let removals = expired
        .into_iter()
        .map(|(aor, b)| BindingChange::Remove {
            aor,
            contact: b.contact,
        })
        .collect();
    writer.send(sequence, removals).unwrap();
    writer.flush().unwrap();
    drop(location);
    drop(writer);
    // Loaded at T0, when both were alive: only the sweep's Remove can explain one missing.
    let loaded = reopen(dir.path()).load(at(T0)).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].contact, "sip:9301@10.0.0.2");
}

#[test]
fn bindings_loaded_at_start_are_found_by_aor_in_q_order() {
    let mk = |contact: &str, q| Binding {
        aor: "9301".into(),
        contact: contact.into(),
        q,
        expires_at: T0 + 100,
        call_id: "x".into(),
        cseq: 1,
        source: origin().source,
        transport: Transport::Tcp,
        registered_at: T0,
    };
    let location = LocationService::with_bindings(
        vec![mk("sip:low@h", Some(100)), mk("sip:high@h", Some(900))],
        false,
    );
    let found = location.lookup("9301", at(T0));
    assert_eq!(found[0].contact, "sip:high@h");
    location.apply("9301", Vec::new());
    assert_eq!(location.count(), 0);
}

/// Opens a store whose writer thread may still be closing the file.
fn reopen(dir: &std::path::Path) -> BindingStore {
    for _ in 0..500 {
        if let Ok(store) = BindingStore::open(dir) {
            return store;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("store not released");
}
