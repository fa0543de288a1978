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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The counter a transaction moves on with each arming.
#[derive(Debug, Default)]
pub struct ArmCounter {
    current: Arc<AtomicU64>,
}

/// One arming: current until the transaction arms again or ends.
#[derive(Debug, Clone)]
pub struct Arming {
    current: Arc<AtomicU64>,
    this: u64,
}

/// The value a closed counter holds: no arming matches it.
const CLOSED: u64 = u64::MAX;

impl ArmCounter {
    /// A new arming, which supersedes every earlier one.
    pub fn arm(&self) -> Arming {
        let this = self.current.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        Arming {
            current: self.current.clone(),
            this,
        }
    }

    /// The transaction ended: none of its armings is current any more.
    pub fn close(&self) {
        self.current.store(CLOSED, Ordering::Relaxed);
    }
}

impl Arming {
    /// False once the transaction armed again or ended.
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Relaxed) == self.this
    }

    /// An arming that nothing supersedes, for the timer queue's tests.
    #[cfg(test)]
    pub fn standalone() -> Arming {
        ArmCounter::default().arm()
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
}
