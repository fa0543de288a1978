//! The load generator's book of calls, pure: the attempt each caller line has in progress,
//! what the caller's call reports about it (`call::observer`), what the callee process reports
//! about the same call (by SIP Call-ID), and the finished [`CallResult`]s. It tells the driver
//! which line to hang up later ([`Entry::Answered`]) and which line is free again
//! ([`Entry::Ended`]); `now` is a parameter.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::report::{CallResult, Received};
use crate::call::observer::Observed;

/// An attempt in progress on a caller line.
#[derive(Debug, Clone)]
struct Attempt {
    line: usize,
    since: Instant,
    result: CallResult,
}

/// What an observed event means for the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Nothing to do.
    Nothing,
    /// Line `n`'s call was answered: hang it up after the hold time.
    Answered(usize),
    /// Line `n`'s call is over: the line is free.
    Ended(usize),
}

/// Every call of a run.
#[derive(Debug, Default)]
pub struct Ledger {
    active: HashMap<String, Attempt>,
    done: Vec<CallResult>,
    caller_media: HashMap<String, Received>,
    callee_media: HashMap<String, Received>,
    connected: usize,
    peak: usize,
}

impl Ledger {
    /// An empty book.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Line `line` (user `user`) dialled `callee` at `now`.
    pub fn placed(&mut self, now: Instant, line: usize, user: &str, callee: &str) {
        let result = CallResult {
            caller: user.to_owned(),
            callee: callee.to_owned(),
            ..CallResult::default()
        };
        self.active.insert(
            user.to_owned(),
            Attempt {
                line,
                since: now,
                result,
            },
        );
    }

    /// What the caller line `user`'s call `call_id` reported.
    pub fn caller_event(&mut self, user: &str, call_id: &str, event: Observed) -> Entry {
        if let Observed::Media(counters) = &event {
            // May come after the call actor's end; kept by Call-ID.
            self.caller_media
                .insert(call_id.to_owned(), Received::from_counters(counters));
            return Entry::Nothing;
        }
        let Some(attempt) = self.active.get_mut(user) else {
            return Entry::Nothing;
        };
        if !attempt.result.call_id.is_empty() && attempt.result.call_id != call_id {
            return Entry::Nothing;
        }
        attempt.result.call_id = call_id.to_owned();
        match event {
            Observed::Answered { setup } => {
                attempt.result.answered = true;
                attempt.result.setup_ms = Some(setup.as_secs_f64() * 1000.0);
                self.connected += 1;
                self.peak = self.peak.max(self.connected);
                Entry::Answered(attempt.line)
            }
            Observed::Ended {
                outcome, status, ..
            } => {
                let Some(mut attempt) = self.active.remove(user) else {
                    return Entry::Nothing;
                };
                if attempt.result.answered {
                    self.connected -= 1;
                }
                attempt.result.outcome = outcome.to_owned();
                attempt.result.status = status;
                self.done.push(attempt.result);
                Entry::Ended(attempt.line)
            }
            Observed::Media(_) => Entry::Nothing,
        }
    }

    /// What the callee received in call `call_id`.
    pub fn callee_media(&mut self, call_id: &str, received: Received) {
        self.callee_media.insert(call_id.to_owned(), received);
    }

    /// Attempts neither answered nor ended within `limit` of being placed (a call that never
    /// became a dialog, a lost report): counted as failed with 408, their lines freed.
    pub fn expire(&mut self, now: Instant, limit: Duration) -> Vec<usize> {
        let stale: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| !a.result.answered && now.saturating_duration_since(a.since) > limit)
            .map(|(user, _)| user.clone())
            .collect();
        let mut lines = Vec::new();
        for user in stale {
            if let Some(mut attempt) = self.active.remove(&user) {
                attempt.result.outcome = "unanswered".into();
                attempt.result.status = Some(408);
                lines.push(attempt.line);
                self.done.push(attempt.result);
            }
        }
        lines
    }

    /// The Call-ID of line `user`'s call in progress, once known.
    pub fn call_of(&self, user: &str) -> Option<&str> {
        self.active
            .get(user)
            .map(|a| a.result.call_id.as_str())
            .filter(|id| !id.is_empty())
    }

    /// Calls placed so far.
    pub fn attempted(&self) -> usize {
        self.done.len() + self.active.len()
    }

    /// Calls answered so far.
    pub fn answered(&self) -> usize {
        self.done.iter().filter(|c| c.answered).count()
            + self.active.values().filter(|a| a.result.answered).count()
    }

    /// Calls over without an answer.
    pub fn failed(&self) -> usize {
        self.done.iter().filter(|c| !c.answered).count()
    }

    /// Calls in progress (placed, not ended).
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// The most calls connected at once.
    pub fn peak_connected(&self) -> usize {
        self.peak
    }

    /// Every call, with both ends' media put together; attempts still in progress count as
    /// failed (`unfinished`).
    pub fn finish(mut self) -> Vec<CallResult> {
        for (_, mut attempt) in self.active.drain() {
            attempt.result.outcome = "unfinished".into();
            attempt.result.answered = false;
            self.done.push(attempt.result);
        }
        for call in &mut self.done {
            call.caller_received = self.caller_media.remove(&call.call_id);
            call.callee_received = self.callee_media.remove(&call.call_id);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::session::MediaCounters;

    fn counters(packets: u64) -> MediaCounters {
        MediaCounters {
            packets_received: packets,
            mos: 4.4,
            ..MediaCounters::default()
        }
    }

    fn ended(outcome: &'static str, status: Option<u16>) -> Observed {
        Observed::Ended {
            incoming: false,
            outcome,
            status,
        }
    }

    #[test]
    fn an_answered_call_gets_its_setup_time_and_both_ends_media() {
        let now = Instant::now();
        let mut ledger = Ledger::new();
        ledger.placed(now, 3, "7003", "8003");
        let setup = Duration::from_millis(12);
        assert_eq!(
            ledger.caller_event("7003", "abc", Observed::Answered { setup }),
            Entry::Answered(3)
        );
        assert_eq!(ledger.peak_connected(), 1);
        ledger.callee_media("abc", Received::from_counters(&counters(250)));
        assert_eq!(
            ledger.caller_event("7003", "abc", ended("answered", None)),
            Entry::Ended(3)
        );
        // The caller's media counters may come after its call actor stopped.
        ledger.caller_event("7003", "abc", Observed::Media(counters(249)));
        let calls = ledger.finish();
        assert_eq!(calls.len(), 1);
        let call = &calls[0];
        assert!(call.answered);
        assert_eq!(call.setup_ms, Some(12.0));
        assert_eq!(call.caller_received.as_ref().map(|r| r.packets), Some(249));
        assert_eq!(call.callee_received.as_ref().map(|r| r.packets), Some(250));
    }

    #[test]
    fn a_refused_call_is_a_failure_and_frees_its_line() {
        let now = Instant::now();
        let mut ledger = Ledger::new();
        ledger.placed(now, 0, "7000", "8000");
        assert_eq!(
            ledger.caller_event("7000", "x", ended("busy", Some(486))),
            Entry::Ended(0)
        );
        assert_eq!(
            (ledger.attempted(), ledger.answered(), ledger.failed()),
            (1, 0, 1)
        );
        assert_eq!(ledger.finish()[0].status, Some(486));
    }

    #[test]
    fn an_attempt_that_never_reports_expires_as_a_408() {
        let now = Instant::now();
        let mut ledger = Ledger::new();
        ledger.placed(now, 5, "7005", "8005");
        assert!(ledger
            .expire(now + Duration::from_secs(1), Duration::from_secs(40))
            .is_empty());
        assert_eq!(
            ledger.expire(now + Duration::from_secs(41), Duration::from_secs(40)),
            vec![5]
        );
        assert_eq!(ledger.active(), 0);
        assert_eq!(ledger.finish()[0].status, Some(408));
    }

    #[test]
    fn calls_still_running_at_the_end_count_as_failed() {
        let mut ledger = Ledger::new();
        ledger.placed(Instant::now(), 1, "7001", "8001");
        let calls = ledger.finish();
        assert_eq!(calls[0].outcome, "unfinished");
        assert!(!calls[0].answered);
    }
}
