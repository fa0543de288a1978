//! Which arming of a transaction's timer is the current one.
//!
//! The core keeps one deadline per transaction and asks for a timer ([`super::Action::Arm`])
//! whenever its earliest deadline changes: an INVITE's Timer A (500 ms) is superseded by
//! Timer C as soon as the 180 comes. The superseded entry used to stay in the timer queue and
//! wake the workers to fire for nothing (two per call, for the INVITE and the BYE), and every
//! entry of a transaction that had ended still went through a lookup when it fired. Each
//! arming now carries a generation; the transaction moves its counter on with every arming
//! and closes it when it ends, so the queue drops stale entries with one atomic load.
//!
//! (A map from timer id to its latest deadline did the same job, but hashing transaction keys
//! under the queue's lock at 7500 calls/s cost the workers enough to overflow their sockets.)
//!
//! A transaction's counter is a slot in one process-wide table of 32-bit counters, not an
//! allocation of its own: a ringing INVITE holds its counter for minutes, and an `Arc` of one
//! was a 32-byte heap block per INVITE, plus 8 bytes in each timer entry for the pointer. A
//! slot is reused once its transaction is gone; its count goes on from where it was, so no
//! arming of the old owner can match one of the new (until the count wraps, after 2^32
//! armings of one slot).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// The counters of one segment of the table (64 KiB, allocated when first needed).
const SEGMENT: usize = 1 << 14;
/// The most segments: 2^26 counters, more live transactions than the memory could hold.
const SEGMENTS: usize = 1 << 12;
/// A slot no counter has: the table was full. Its armings are always current (the core
/// ignores early and stale fires anyway: its machines compare `now` with their deadlines).
const NO_SLOT: u32 = u32::MAX;

struct Table {
    segments: [OnceLock<Box<[AtomicU32]>>; SEGMENTS],
    free: Mutex<FreeSlots>,
}

/// The slots a new counter may take.
#[derive(Default)]
struct FreeSlots {
    /// Given back by counters that were dropped.
    given_back: Vec<u32>,
    /// The first slot never used.
    never_used: u32,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| Table {
        segments: [const { OnceLock::new() }; SEGMENTS],
        free: Mutex::default(),
    })
}

impl Table {
    fn counter(&self, slot: u32) -> Option<&AtomicU32> {
        let slot = slot as usize;
        let segment = self.segments.get(slot / SEGMENT)?.get()?;
        segment.get(slot % SEGMENT)
    }

    fn take(&self) -> u32 {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = free.given_back.pop() {
            return slot;
        }
        let slot = free.never_used;
        if slot as usize >= SEGMENT * SEGMENTS {
            return NO_SLOT;
        }
        free.never_used += 1;
        self.segments[slot as usize / SEGMENT]
            .get_or_init(|| (0..SEGMENT).map(|_| AtomicU32::new(0)).collect());
        slot
    }

    fn give_back(&self, slot: u32) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.given_back.push(slot);
    }
}

/// The counter a transaction moves on with each arming.
#[derive(Debug)]
pub struct ArmCounter {
    slot: u32,
}

/// One arming: current until the transaction arms again or ends.
#[derive(Debug, Clone, Copy)]
pub struct Arming {
    slot: u32,
    this: u32,
}

impl Default for ArmCounter {
    fn default() -> Self {
        ArmCounter {
            slot: table().take(),
        }
    }
}

impl ArmCounter {
    /// A new arming, which supersedes every earlier one.
    pub fn arm(&self) -> Arming {
        let this = table()
            .counter(self.slot)
            .map_or(0, |c| c.fetch_add(1, Ordering::Relaxed).wrapping_add(1));
        Arming {
            slot: self.slot,
            this,
        }
    }

    /// The transaction ended: none of its armings is current any more.
    pub fn close(&self) {
        if let Some(counter) = table().counter(self.slot) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for ArmCounter {
    fn drop(&mut self) {
        if self.slot != NO_SLOT {
            self.close();
            table().give_back(self.slot);
        }
    }
}

impl Arming {
    /// False once the transaction armed again or ended.
    pub fn is_current(&self) -> bool {
        table()
            .counter(self.slot)
            .is_none_or(|c| c.load(Ordering::Relaxed) == self.this)
    }

    /// An arming that nothing supersedes, for the timer queue's tests (its counter is never
    /// given back).
    #[cfg(test)]
    pub fn standalone() -> Arming {
        let counter = ArmCounter::default();
        let arming = counter.arm();
        std::mem::forget(counter);
        arming
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_latest_arming_is_current_and_none_after_close() {
        let counter = ArmCounter::default();
        let first = counter.arm();
        assert!(first.is_current());
        let second = counter.arm();
        assert!(!first.is_current());
        assert!(second.is_current());
        counter.close();
        assert!(!second.is_current());
    }

    #[test]
    fn a_slot_given_back_serves_the_next_counter_without_reviving_old_armings() {
        let first = ArmCounter::default();
        let slot = first.slot;
        let old = first.arm();
        drop(first);
        let mut others = Vec::new();
        let reused = loop {
            let counter = ArmCounter::default();
            if counter.slot == slot {
                break counter;
            }
            // Another test's slot came back first: keep it out of the way.
            others.push(counter);
        };
        let new = reused.arm();
        assert!(new.is_current());
        assert!(!old.is_current(), "{old:?} against {new:?}");
        assert_eq!(std::mem::size_of::<Arming>(), 8);
    }
}
