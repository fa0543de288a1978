//! Nonce-count replay protection (RFC 7616 section 3.4 and section 5.3): remembers, for each
//! nonce in use, the highest `nc` accepted, and refuses any `nc` that is not higher.
//!
//! A plain data structure with `now` passed in. Memory is bounded: entries older than the nonce
//! lifetime are dropped (their nonces check as stale before reaching here), and when the table
//! is full the oldest nonce is dropped and a floor is raised so that neither it nor anything
//! older can be replayed afterwards; such clients get `stale=true` and carry on with a new nonce.
//!
//! Without `qop` there is no `nc` and nothing to track: RFC 2069 answers (the seed's Cisco ATA)
//! are replayable for the nonce's lifetime, which is why that lifetime should stay short.

use std::collections::{BTreeSet, HashMap};

/// Highest nonce count seen per nonce, with bounded memory.
#[derive(Debug, Clone)]
pub struct NonceCountTracker {
    capacity: usize,
    max_age_secs: u64,
    /// nonce -> (issued_at, highest nc accepted)
    entries: HashMap<String, (u64, u32)>,
    /// The same entries ordered oldest first, for expiry and eviction.
    by_age: BTreeSet<(u64, String)>,
    /// Nonces issued at or before this time are refused unless already tracked.
    floor: Option<u64>,
}

impl NonceCountTracker {
    /// A tracker holding at most `capacity` nonces (at least one), each for `max_age_secs` after
    /// it was issued: pass the nonce lifetime ([`NonceSecret::lifetime_secs`](crate::NonceSecret::lifetime_secs)).
    pub fn new(capacity: usize, max_age_secs: u64) -> Self {
        NonceCountTracker {
            capacity: capacity.max(1),
            max_age_secs,
            entries: HashMap::new(),
            by_age: BTreeSet::new(),
            floor: None,
        }
    }

    /// Records `nc` for `nonce` (issued at `issued_at`) if it is higher than any before, and says
    /// whether it was. Call this only after the response has been verified, or anyone could
    /// push a client's count ahead of it.
    pub fn accept(&mut self, nonce: &str, issued_at: u64, nc: u32, now_unix_secs: u64) -> bool {
        self.expire(now_unix_secs);
        if let Some((_, last)) = self.entries.get_mut(nonce) {
            if nc <= *last {
                return false;
            }
            *last = nc;
            return true;
        }
        // An unseen nonce starts at zero, so nc=00000000 is never accepted.
        if nc == 0 || self.below_floor(issued_at) {
            return false;
        }
        if self.entries.len() >= self.capacity {
            self.evict_oldest();
            if self.below_floor(issued_at) {
                return false;
            }
        }
        self.entries.insert(nonce.to_owned(), (issued_at, nc));
        self.by_age.insert((issued_at, nonce.to_owned()));
        true
    }

    /// How many nonces are tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn below_floor(&self, issued_at: u64) -> bool {
        self.floor.is_some_and(|floor| issued_at <= floor)
    }

    fn expire(&mut self, now: u64) {
        while let Some((issued_at, _)) = self.by_age.first() {
            if issued_at.saturating_add(self.max_age_secs) >= now {
                break;
            }
            if let Some((_, nonce)) = self.by_age.pop_first() {
                self.entries.remove(&nonce);
            }
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((issued_at, nonce)) = self.by_age.pop_first() {
            self.entries.remove(&nonce);
            self.floor = Some(self.floor.map_or(issued_at, |floor| floor.max(issued_at)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000;

    #[test]
    fn accepts_rising_counts_and_refuses_repeats() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(t.accept("n", T, 1, T));
        assert!(t.accept("n", T, 2, T));
        assert!(!t.accept("n", T, 2, T), "the same nc twice is a replay");
        assert!(!t.accept("n", T, 1, T), "an older nc is a replay");
        assert!(t.accept("n", T, 7, T), "skipping ahead is allowed");
    }

    #[test]
    fn counts_are_kept_per_nonce() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(t.accept("a", T, 1, T));
        assert!(t.accept("b", T, 1, T));
        assert!(!t.accept("a", T, 1, T));
    }

    #[test]
    fn refuses_a_zero_count() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(!t.accept("n", T, 0, T));
    }

    #[test]
    fn forgets_nonces_past_their_lifetime() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(t.accept("old", T, 5, T));
        assert!(t.accept("new", T + 200, 1, T + 200));
        assert_eq!(t.len(), 2);
        assert!(t.accept("new", T + 200, 2, T + 301));
        assert_eq!(t.len(), 1, "the nonce issued at T expired at T+300");
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut t = NonceCountTracker::new(3, 300);
        for i in 0..10 {
            assert!(t.accept(&format!("n{i}"), T + i, 1, T + i));
            assert!(t.len() <= 3);
        }
    }

    #[test]
    fn an_evicted_nonce_cannot_be_replayed_from_scratch() {
        let mut t = NonceCountTracker::new(2, 300);
        assert!(t.accept("a", T, 3, T));
        assert!(t.accept("b", T + 1, 1, T + 1));
        assert!(t.accept("c", T + 2, 1, T + 2), "evicts a");
        assert!(
            !t.accept("a", T, 1, T + 3),
            "a was forgotten, but the floor still refuses it"
        );
        assert!(!t.accept("z", T, 1, T + 3), "so is any unseen nonce as old");
        assert!(t.accept("d", T + 3, 1, T + 3), "newer nonces are fine");
    }

    #[test]
    fn a_capacity_of_zero_still_tracks_one_nonce() {
        let mut t = NonceCountTracker::new(0, 300);
        assert!(t.accept("n", T, 1, T));
        assert!(!t.accept("n", T, 1, T));
    }
}
