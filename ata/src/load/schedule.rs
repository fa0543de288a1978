//! When the load generator places and ends calls, pure: call attempts at a steady rate
//! ([`Schedule`]: the `n`th call is due `n / rate` seconds after the start), which caller
//! lines are free ([`Lines`]), and which answered calls have been held long enough
//! ([`HangUps`]). `now` is a parameter; `driver.rs` reads the clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Call attempts at a steady rate.
#[derive(Debug, Clone)]
pub struct Schedule {
    rate: f64,
    total: usize,
    start: Instant,
    placed: usize,
}

impl Schedule {
    /// `total` calls at `rate` per second from `start` (the first at once).
    pub fn new(rate: f64, total: usize, start: Instant) -> Schedule {
        Schedule {
            rate,
            total,
            start,
            placed: 0,
        }
    }

    /// How many calls are due by `now` and not placed yet.
    pub fn due(&self, now: Instant) -> usize {
        let elapsed = now.saturating_duration_since(self.start).as_secs_f64();
        let by_now = (elapsed * self.rate).floor() as usize + 1;
        by_now.min(self.total).saturating_sub(self.placed)
    }

    /// One call was placed.
    pub fn placed(&mut self) {
        self.placed = (self.placed + 1).min(self.total);
    }

    /// Calls placed so far.
    pub fn count(&self) -> usize {
        self.placed
    }

    /// Whether every call was placed.
    pub fn is_done(&self) -> bool {
        self.placed == self.total
    }

    /// When the next call is due, if any is left.
    pub fn next_due(&self) -> Option<Instant> {
        (!self.is_done())
            .then(|| self.start + Duration::from_secs_f64(self.placed as f64 / self.rate))
    }
}

/// The caller lines without a call, used in turn (the one free longest first), so that a
/// line's last call has ended on both sides before it calls again.
#[derive(Debug, Clone)]
pub struct Lines {
    free: VecDeque<usize>,
}

impl Lines {
    /// Lines `0..count`, all free.
    pub fn new(count: usize) -> Lines {
        Lines {
            free: (0..count).collect(),
        }
    }

    /// A free line, now busy.
    pub fn take(&mut self) -> Option<usize> {
        self.free.pop_front()
    }

    /// The line's call has ended.
    pub fn give_back(&mut self, line: usize) {
        if !self.free.contains(&line) {
            self.free.push_back(line);
        }
    }

    /// How many are free.
    pub fn free(&self) -> usize {
        self.free.len()
    }
}

/// Answered calls waiting for their hold time to pass, in answer order (every call is held
/// equally long, so that is also the order they end in). Each is named by its line and its
/// Call-ID, so that a call the far end ended early is not mistaken for the line's next one.
#[derive(Debug, Clone, Default)]
pub struct HangUps {
    hold: Duration,
    waiting: VecDeque<(Instant, usize, String)>,
}

impl HangUps {
    /// Calls held `hold`.
    pub fn new(hold: Duration) -> HangUps {
        HangUps {
            hold,
            waiting: VecDeque::new(),
        }
    }

    /// Line `line`'s call `call_id` was answered at `now`.
    pub fn answered(&mut self, now: Instant, line: usize, call_id: &str) {
        self.waiting
            .push_back((now + self.hold, line, call_id.to_owned()));
    }

    /// A call (line, Call-ID) held long enough by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, String)> {
        match self.waiting.front() {
            Some((at, _, _)) if *at <= now => {
                let (_, line, call_id) = self.waiting.pop_front()?;
                Some((line, call_id))
            }
            _ => None,
        }
    }

    /// When the next hang-up is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.waiting.front().map(|(at, _, _)| *at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_fall_due_at_the_rate_and_stop_at_the_total() {
        let start = Instant::now();
        let mut schedule = Schedule::new(10.0, 25, start);
        assert_eq!(schedule.due(start), 1, "the first at once");
        schedule.placed();
        assert_eq!(schedule.due(start + Duration::from_millis(99)), 0);
        assert_eq!(schedule.due(start + Duration::from_millis(100)), 1);
        assert_eq!(schedule.due(start + Duration::from_millis(1050)), 10);
        assert_eq!(
            schedule.next_due(),
            Some(start + Duration::from_millis(100))
        );
        for _ in 0..24 {
            schedule.placed();
        }
        assert!(schedule.is_done());
        assert_eq!(schedule.due(start + Duration::from_secs(60)), 0);
        assert_eq!(schedule.next_due(), None);
    }

    #[test]
    fn lines_are_used_in_turn_and_none_is_given_out_twice() {
        let mut lines = Lines::new(2);
        assert_eq!(lines.take(), Some(0));
        assert_eq!(lines.take(), Some(1));
        assert_eq!(lines.take(), None);
        lines.give_back(1);
        lines.give_back(1);
        lines.give_back(0);
        assert_eq!(lines.free(), 2);
        assert_eq!(lines.take(), Some(1));
    }

    #[test]
    fn calls_are_hung_up_after_their_hold_time_in_answer_order() {
        let start = Instant::now();
        let mut hang_ups = HangUps::new(Duration::from_secs(2));
        hang_ups.answered(start, 4, "a");
        hang_ups.answered(start + Duration::from_millis(10), 7, "b");
        assert_eq!(hang_ups.pop_due(start + Duration::from_millis(1999)), None);
        assert_eq!(hang_ups.next_due(), Some(start + Duration::from_secs(2)));
        let later = start + Duration::from_secs(3);
        assert_eq!(hang_ups.pop_due(later), Some((4, "a".into())));
        assert_eq!(hang_ups.pop_due(later), Some((7, "b".into())));
        assert_eq!(hang_ups.pop_due(later), None);
    }
}
