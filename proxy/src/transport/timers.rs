//! The proxy's timer queue: every timer the core asks for (`Action::Arm`) goes into one shared
//! heap, and each UDP worker (and the TCP listener of a TCP-only proxy) pops the due ones on a
//! tick armed for the earliest of them (`FiresTimers` in `mod.rs`).
//!
//! Why not `ctx.run_later` per timer: an actix context polls every future it holds each time the
//! actor wakes, so thousands of pending transaction timers made every received datagram cost
//! a walk over all of them (measured: 80 % of the proxy's CPU under a 200 calls/s load went to
//! polling sleeps). A heap costs O(log n) per timer and nothing per datagram. The tick bounds
//! timer precision to [`TICK`], far below T1 (500 ms); with nothing armed, the actors sleep
//! [`IDLE_TICK`] between looks instead of waking every [`TICK`].

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::core::TimerId;

/// The finest timer precision: due timers are looked for at most this often.
pub const TICK: Duration = Duration::from_millis(5);

/// The longest a timer-firing actor sleeps without looking at the queue. Timers armed by
/// actors that do not fire timers (TCP connections) wait at most this long to be noticed.
pub const IDLE_TICK: Duration = Duration::from_millis(100);

#[derive(Debug)]
struct Entry {
    at: Instant,
    seq: u64,
    id: TimerId,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed, so that the BinaryHeap (a max-heap) pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

/// A shared min-heap of (instant, timer).
#[derive(Debug, Default)]
pub struct TimerQueue {
    heap: Mutex<BinaryHeap<Entry>>,
    seq: AtomicU64,
}

impl TimerQueue {
    /// Arms `id` at `at`. Arming the same id twice fires it twice; the core ignores early or
    /// repeated fires (its machines compare `now` with their own deadlines).
    pub fn push(&self, at: Instant, id: TimerId) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        self.heap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Entry { at, seq, id });
    }

    /// Removes and returns up to `limit` timers due at `now`, earliest first.
    pub fn pop_due(&self, now: Instant, limit: usize) -> Vec<TimerId> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while due.len() < limit {
            match heap.peek() {
                Some(entry) if entry.at <= now => {
                    if let Some(entry) = heap.pop() {
                        due.push(entry.id);
                    }
                }
                _ => break,
            }
        }
        due
    }

    /// When the earliest armed timer is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .peek()
            .map(|entry| entry.at)
    }

    /// Timers armed and not yet fired.
    pub fn len(&self) -> usize {
        self.heap.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_transaction::TransactionKey;

    fn id(n: &str) -> TimerId {
        TimerId::Transaction(TransactionKey::client(n, "INVITE"))
    }

    #[test]
    fn due_timers_come_out_earliest_first_and_later_ones_stay() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        q.push(t0 + Duration::from_millis(30), id("c"));
        q.push(t0 + Duration::from_millis(10), id("a"));
        q.push(t0 + Duration::from_millis(20), id("b"));
        assert!(q.pop_due(t0, 10).is_empty());
        assert_eq!(
            q.pop_due(t0 + Duration::from_millis(20), 10),
            vec![id("a"), id("b")]
        );
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1), 10), vec![id("c")]);
        assert!(q.is_empty());
    }

    #[test]
    fn pop_due_respects_the_limit() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        for i in 0..5 {
            q.push(t0, id(&i.to_string()));
        }
        assert_eq!(q.pop_due(t0, 2).len(), 2);
        assert_eq!(q.len(), 3);
    }
}
