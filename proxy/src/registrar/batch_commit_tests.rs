use super::*;

fn remove(aor: &str) -> BindingChange {
    BindingChange::Remove {
        aor: aor.into(),
        contact: format!("sip:{aor}@10.0.0.1"),
    }
}

/// `changes` padded with `others` changes to other bindings, each numbered after them.
fn padded(mut changes: Vec<(u64, BindingChange)>, others: usize) -> Vec<(u64, BindingChange)> {
    for n in 0..others {
        changes.push((100 + n as u64, remove(&format!("other-{n}"))));
    }
    changes
}

/// Within one batch, a change older than one met earlier for its binding is left out, and a
/// newer one after an older one is kept: the same in a small batch (searched) as in a large
/// one (through a table).
#[test]
fn a_batch_keeps_no_change_older_than_one_before_it_for_the_same_binding() {
    let written = Written::default();
    for others in [0, SMALL_BATCH + 1] {
        let late = padded(vec![(5, remove("9301")), (3, remove("9301"))], others);
        let (sequences, keys, kept) = written.newest_only(late);
        assert_eq!(sequences[..1], [5], "with {others} others");
        assert_eq!(kept.len(), 1 + others, "with {others} others");
        assert_eq!(keys.len(), kept.len());

        let in_order = padded(vec![(3, remove("9301")), (5, remove("9301"))], others);
        let (sequences, _, kept) = written.newest_only(in_order);
        assert_eq!(sequences[..2], [3, 5], "with {others} others");
        assert_eq!(kept.len(), 2 + others);
    }
}

/// A change older than the one last written for its binding is left out of a later batch.
#[test]
fn a_batch_keeps_no_change_older_than_the_one_written() {
    let mut written = Written::default();
    let (sequences, keys, _) = written.newest_only(vec![(7, remove("9301"))]);
    written.note(keys, &sequences);
    for others in [0, SMALL_BATCH + 1] {
        let (sequences, _, _) = written.newest_only(padded(vec![(6, remove("9301"))], others));
        assert!(!sequences.contains(&6), "with {others} others");
        let (sequences, _, _) = written.newest_only(padded(vec![(8, remove("9301"))], others));
        assert!(sequences.contains(&8), "with {others} others");
    }
}
