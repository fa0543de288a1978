//! The proxy's timer queue: every timer the core asks for (`Action::Arm`) goes into one shared
//! queue, and each UDP worker (and the TCP listener of a TCP-only proxy) pops the due ones on a
//! tick armed for the earliest of them (`FiresTimers` in `mod.rs`).
//!
//! Why not `ctx.run_later` per timer: an actix context polls every future it holds each time the
//! actor wakes, so thousands of pending transaction timers made every received datagram cost
//! a walk over all of them (measured: 80 % of the proxy's CPU under a 200 calls/s load went to
//! polling sleeps). A heap costs O(log n) per timer and nothing per datagram. The tick bounds
//! timer precision to [`TICK`], far below T1 (500 ms); with nothing armed, the actors sleep
//! [`IDLE_TICK`] between looks instead of waking every [`TICK`].
//!
//! Two heaps, because most timers need no precision: a timer armed [`PRECISE_HORIZON`] or more
//! ahead (Timers J, K, L, M keeping a forwarded request's transactions for up to 32 s, Timers
//! B, F, H, D, I, Timer C, the later retransmissions) is "lazy" and may fire up to
//! [`LAZY_SLACK`] late. With one heap, a steady call load kept a timer due every few
//! milliseconds (each call leaves an INVITE and a BYE transaction to retire), so each worker
//! woke every [`TICK`] to retire a handful; lazy timers are now retired in batches by ticks
//! that come anyway.
//!
//! Entries whose arming is no longer current (`proxy_core::Arming`: the transaction armed again or
//! ended) are dropped unseen, so a superseded Timer A neither wakes the workers nor fires.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dialtone_transaction::TransactionKey;

use crate::proxy_core::{Arming, TimerId};

/// The finest timer precision: due timers are looked for at most this often.
pub const TICK: Duration = Duration::from_millis(5);

/// The longest a timer-firing actor sleeps without looking at the queue. Timers armed by
/// actors that do not fire timers (TCP connections) wait at most this long to be noticed.
pub const IDLE_TICK: Duration = Duration::from_millis(100);

/// Timers armed at least this far ahead are lazy.
pub const PRECISE_HORIZON: Duration = Duration::from_secs(2);

/// The most timers one tick fires: lazy timers come due in batches (a tenth of a second of
/// them at once), and firing thousands in one go held a worker for milliseconds, long enough
/// for its socket to overflow at 7000 calls/s (SIPp saw retransmissions).
pub const FIRE_BATCH: usize = 256;

/// How late a lazy timer may fire: at most 5 % of its [`PRECISE_HORIZON`], far inside what
/// RFC 3261's timers tolerate (they bound waits, they do not schedule events to the tick).
pub const LAZY_SLACK: Duration = IDLE_TICK;

/// One armed timer: 32 bytes, held for as long as the timer runs (minutes, for a ringing
/// INVITE's Timer C), so each part is kept in its smallest form.
#[derive(Debug)]
struct Entry {
    /// Nanoseconds after the queue's epoch (8 bytes, where an `Instant` takes 16).
    at: u64,
    /// The timer's key: the kind of key says which [`TimerId`] it is (see [`Entry::id`]).
    key: TransactionKey,
    arming: Arming,
}

impl Entry {
    /// A transaction's timers go by its server key, a NOTIFY's by its client key.
    fn id(&self) -> TimerId {
        if self.key.is_client() {
            TimerId::Notify(self.key)
        } else {
            TimerId::Transaction(self.key)
        }
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed, so that the BinaryHeap (a max-heap) pops the earliest first. Timers due at
    // the same instant come out in no particular order: each entry is held for as long as
    // its timer runs (minutes, for Timer C), so it carries no sequence number to order them.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

#[derive(Debug, Default)]
struct Heaps {
    precise: BinaryHeap<Entry>,
    lazy: BinaryHeap<Entry>,
    /// The last [`TimerQueue::pop_due`] stopped at its limit with due timers left.
    backlogged: bool,
}

impl Heaps {
    /// Pops superseded entries off both tops, so that a peek sees a timer that will fire.
    fn drop_stale_tops(&mut self) {
        while self.precise.peek().is_some_and(|e| !e.arming.is_current()) {
            self.precise.pop();
        }
        while self.lazy.peek().is_some_and(|e| !e.arming.is_current()) {
            self.lazy.pop();
        }
    }

    /// The heap whose top is due first at `now` (nanoseconds after the epoch), when one is.
    fn due_heap(&mut self, now: u64) -> Option<&mut BinaryHeap<Entry>> {
        let precise = self.precise.peek().map(|e| e.at).filter(|at| *at <= now);
        let lazy = self.lazy.peek().map(|e| e.at).filter(|at| *at <= now);
        match (precise, lazy) {
            (Some(p), Some(l)) if l < p => Some(&mut self.lazy),
            (Some(_), _) => Some(&mut self.precise),
            (None, Some(_)) => Some(&mut self.lazy),
            (None, None) => None,
        }
    }
}

/// A shared pair of min-heaps of (instant, timer): precise and lazy.
#[derive(Debug)]
pub struct TimerQueue {
    heaps: Mutex<Heaps>,
    /// What the entries' instants count from: the queue's creation, before any timer.
    epoch: Instant,
}

impl Default for TimerQueue {
    fn default() -> Self {
        TimerQueue {
            heaps: Mutex::default(),
            epoch: Instant::now(),
        }
    }
}

impl TimerQueue {
    /// `at` in nanoseconds after the epoch (an instant before it counts as the epoch).
    fn since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn instant(&self, at: u64) -> Instant {
        self.epoch + Duration::from_nanos(at)
    }

    /// Arms `id` at `at`, seen from `now`, to fire while `arming` is current (the core ignores
    /// early fires anyway: its machines compare `now` with their own deadlines).
    pub fn push(&self, now: Instant, at: Instant, id: TimerId, arming: Arming) {
        let key = match id {
            TimerId::Transaction(key) | TimerId::Notify(key) => key,
        };
        let entry = Entry {
            at: self.since_epoch(at),
            key,
            arming,
        };
        debug_assert_eq!(entry.id(), id, "a timer's id is told by its kind of key");
        let mut heaps = self.heaps.lock().unwrap_or_else(|p| p.into_inner());
        if at.saturating_duration_since(now) >= PRECISE_HORIZON {
            heaps.lazy.push(entry);
        } else {
            heaps.precise.push(entry);
        }
    }

    /// Removes and returns up to `limit` timers due at `now`, earliest first; lazy timers that
    /// are due go too, even before their slack is used up.
    pub fn pop_due(&self, now: Instant, limit: usize) -> Vec<TimerId> {
        let mut heaps = self.heaps.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.since_epoch(now);
        let mut due = Vec::new();
        while due.len() < limit {
            heaps.drop_stale_tops();
            let Some(heap) = heaps.due_heap(now) else {
                break;
            };
            if let Some(entry) = heap.pop() {
                due.push(entry.id());
            }
        }
        heaps.drop_stale_tops();
        heaps.backlogged = due.len() == limit && heaps.due_heap(now).is_some();
        due
    }

    /// When a tick must come, seen from `now`: the earliest precise timer, or the earliest lazy
    /// one plus its slack; `now` itself while the last tick left due timers behind (more than
    /// one [`FIRE_BATCH`]), so that a backlog drains tick by tick instead of waiting another
    /// slack.
    ///
    /// A lazy timer that merely came due does not bring the tick forward: under a steady call
    /// load one always has, and answering "now" for it made every worker re-arm its tick for
    /// the next [`TICK`] after each message it handled (200 wake-ups a second each, and a
    /// write to the runtime's eventfd for every new sleep).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let mut heaps = self.heaps.lock().unwrap_or_else(|p| p.into_inner());
        heaps.drop_stale_tops();
        let precise = heaps.precise.peek().map(|entry| self.instant(entry.at));
        let backlogged = heaps.backlogged;
        let lazy = heaps.lazy.peek().map(|entry| {
            let at = self.instant(entry.at);
            if backlogged && at <= now {
                now
            } else {
                at + LAZY_SLACK
            }
        });
        match (precise, lazy) {
            (Some(p), Some(l)) => Some(p.min(l)),
            (p, l) => p.or(l),
        }
    }

    /// Timers armed and not yet fired (superseded ones included until they reach a top).
    pub fn len(&self) -> usize {
        let heaps = self.heaps.lock().unwrap_or_else(|p| p.into_inner());
        heaps.precise.len() + heaps.lazy.len()
    }

    /// True when no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_core::ArmCounter;

    fn id(n: &str) -> TimerId {
        TimerId::Transaction(TransactionKey::rfc3261_server(
            "INVITE",
            &format!("z9hG4bK{n}"),
            "h",
        ))
    }

    #[test]
    fn an_entry_is_thirty_two_bytes_and_gives_back_its_id() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
        let q = TimerQueue::default();
        let t0 = Instant::now();
        let notify = TimerId::Notify(TransactionKey::client("z9hG4bKn", "NOTIFY"));
        q.push(t0, t0, notify.clone(), Arming::standalone());
        q.push(t0, t0, id("t"), Arming::standalone());
        let mut fired = q.pop_due(t0, 10);
        fired.sort_by_key(|id| matches!(id, TimerId::Notify(_)));
        assert_eq!(fired, vec![id("t"), notify]);
    }

    #[test]
    fn due_timers_come_out_earliest_first_and_later_ones_stay() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        q.push(
            t0,
            t0 + Duration::from_millis(30),
            id("c"),
            Arming::standalone(),
        );
        q.push(
            t0,
            t0 + Duration::from_millis(10),
            id("a"),
            Arming::standalone(),
        );
        q.push(
            t0,
            t0 + Duration::from_millis(20),
            id("b"),
            Arming::standalone(),
        );
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
            q.push(t0, t0, id(&i.to_string()), Arming::standalone());
        }
        assert_eq!(q.pop_due(t0, 2).len(), 2);
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn a_lazy_timer_lets_the_tick_wait_for_its_slack_and_fires_with_the_precise_ones_in_order() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        let j = t0 + Duration::from_secs(32);
        q.push(t0, j, id("timer-j"), Arming::standalone());
        assert_eq!(q.next_due(t0), Some(j + LAZY_SLACK));
        // Armed 31.5 s later, 400 ms ahead: precise, so the tick comes at its deadline.
        let e = t0 + Duration::from_millis(31_900);
        q.push(
            t0 + Duration::from_millis(31_500),
            e,
            id("timer-e"),
            Arming::standalone(),
        );
        assert_eq!(q.next_due(t0), Some(e));
        assert!(q.pop_due(e - Duration::from_millis(1), 10).is_empty());
        assert_eq!(q.pop_due(j, 10), vec![id("timer-e"), id("timer-j")]);
        assert!(q.is_empty());
        assert_eq!(q.next_due(j), None);
    }

    #[test]
    fn an_overdue_lazy_backlog_asks_for_the_next_tick_at_once() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        let at = t0 + Duration::from_secs(32);
        for i in 0..3 {
            q.push(t0, at, id(&i.to_string()), Arming::standalone());
        }
        let tick = at + LAZY_SLACK;
        assert_eq!(q.next_due(t0), Some(tick));
        assert_eq!(q.pop_due(tick, 2).len(), 2);
        assert_eq!(q.next_due(tick), Some(tick));
        assert_eq!(q.pop_due(tick, 2).len(), 1);
        assert_eq!(q.next_due(tick), None);
    }

    #[test]
    fn a_lazy_timer_that_came_due_still_waits_for_its_slack() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        let at = t0 + Duration::from_secs(32);
        q.push(t0, at, id("timer-j"), Arming::standalone());
        let just_after = at + Duration::from_millis(1);
        assert_eq!(q.next_due(just_after), Some(at + LAZY_SLACK));
        // A tick that fired everything due leaves no backlog behind it.
        q.push(
            t0,
            at + Duration::from_secs(1),
            id("later"),
            Arming::standalone(),
        );
        assert_eq!(q.pop_due(just_after, 10), vec![id("timer-j")]);
        assert_eq!(
            q.next_due(just_after),
            Some(at + Duration::from_secs(1) + LAZY_SLACK)
        );
    }

    #[test]
    fn a_superseded_arming_neither_wakes_the_tick_nor_fires() {
        let q = TimerQueue::default();
        let t0 = Instant::now();
        let invite = ArmCounter::default();
        let timer_a = t0 + Duration::from_millis(500);
        let timer_c = t0 + Duration::from_secs(180);
        q.push(t0, timer_a, id("invite"), invite.arm());
        q.push(
            t0,
            t0 + Duration::from_millis(50),
            id("other"),
            Arming::standalone(),
        );
        // The 180 came: the transaction's earliest deadline is now Timer C.
        q.push(
            t0 + Duration::from_millis(20),
            timer_c,
            id("invite"),
            invite.arm(),
        );
        assert_eq!(
            q.pop_due(t0 + Duration::from_millis(60), 10),
            vec![id("other")]
        );
        assert_eq!(q.next_due(t0), Some(timer_c + LAZY_SLACK));
        assert!(q.pop_due(timer_a, 10).is_empty());
        // The transaction ended: Timer C is dropped too.
        invite.close();
        assert_eq!(q.next_due(timer_a), None);
        assert!(q.pop_due(timer_c + LAZY_SLACK, 10).is_empty());
        assert!(q.is_empty());
    }
}
