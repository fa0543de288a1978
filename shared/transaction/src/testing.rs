//! Test support: a fake clock that drives any machine from one `poll_timeout` to the next,
//! recording the offset from the start of every message sent and every timer fired.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Event, Timer, Transaction};

/// Milliseconds, for writing expected instants as the RFC's tables do.
pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// One thing a machine did, at its offset from the start of the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Sent(Duration, Bytes),
    Fired(Duration, Timer),
}

/// Records what is queued at `start` (the first send), then jumps the clock to each
/// `poll_timeout` and fires it exactly then, until no timer remains armed.
pub(crate) fn run<T: Transaction>(machine: &mut T, start: Instant) -> Vec<Step> {
    run_from(machine, start, start)
}

/// As [`run`], with the clock already at `now`.
pub(crate) fn run_from<T: Transaction>(machine: &mut T, start: Instant, now: Instant) -> Vec<Step> {
    let mut steps = Vec::new();
    record_sends(machine, now - start, &mut steps);
    // A machine that re-arms forever is a bug; the bound turns it into a failure, not a hang.
    for _ in 0..10_000 {
        let Some(at) = machine.poll_timeout() else {
            return steps;
        };
        assert!(at >= now, "a timer was armed in the past");
        if let Some(timer) = machine.handle_timeout(at) {
            steps.push(Step::Fired(at - start, timer));
        }
        record_sends(machine, at - start, &mut steps);
    }
    panic!("the machine never stopped arming timers");
}

fn record_sends<T: Transaction>(machine: &mut T, offset: Duration, steps: &mut Vec<Step>) {
    while let Some(message) = machine.poll_transmit() {
        steps.push(Step::Sent(offset, message));
    }
}

/// The offsets of every send in `steps`.
pub(crate) fn sent_at(steps: &[Step]) -> Vec<Duration> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::Sent(at, _) => Some(*at),
            Step::Fired(..) => None,
        })
        .collect()
}

/// The timers fired in `steps`, with their offsets.
pub(crate) fn fired(steps: &[Step]) -> Vec<(Duration, Timer)> {
    steps
        .iter()
        .filter_map(|step| match step {
            Step::Fired(at, timer) => Some((*at, *timer)),
            Step::Sent(..) => None,
        })
        .collect()
}

/// Drains the transmit queue.
pub(crate) fn transmits<T: Transaction>(machine: &mut T) -> Vec<Bytes> {
    std::iter::from_fn(|| machine.poll_transmit()).collect()
}

/// Drains the event queue.
pub(crate) fn events<T: Transaction>(machine: &mut T) -> Vec<Event> {
    std::iter::from_fn(|| machine.poll_event()).collect()
}
