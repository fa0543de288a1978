//! Nonce-count replay protection (RFC 7616 section 3.4 and section 5.3): remembers, for each
//! nonce in use, the highest `nc` accepted, and refuses any `nc` that is not higher.
//!
//! An answer without `qop` has no `nc`; it counts as `nc=1`, so such a nonce is accepted once
//! (a one-time nonce, as Kamailio's auth module offers): the seed's Cisco ATA answers in the
//! RFC 2069 form, and without this a captured REGISTER or INVITE could be sent again for the
//! nonce's whole lifetime.
//!
//! With each accepted count the tracker keeps a fingerprint of the request that used it, so
//! that a stateless registrar can tell the retransmission of that very request (same
//! transaction: it must get its answer again) from a replay in a new transaction.
//!
//! A plain data structure with `now` passed in. Memory is bounded: entries older than the nonce
//! lifetime are dropped (their nonces check as stale before reaching here), and when the table
//! is full the oldest nonce is dropped and a floor is raised so that neither it nor anything
//! older can be replayed afterwards; such clients get `stale=true` and carry on with a new nonce.
//!

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};

/// The highest count accepted for one nonce, and the request that used it.
#[derive(Debug, Clone, Copy)]
struct Use {
    nc: u32,
    request: u64,
}

/// Why a count was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The count was used before; `same_request` when by a request with the same fingerprint
    /// and this very count (a retransmission).
    Reused {
        /// The same request again, not a new one.
        same_request: bool,
    },
    /// The nonce is older than what the table still remembers (it was full): it may have been
    /// used, so it is refused; the client should be told to take a new one (`stale=true`).
    Forgotten,
    /// `nc=00000000`, which no client sends.
    Zero,
}

/// Highest nonce count seen per nonce, with bounded memory.
#[derive(Debug, Clone)]
pub struct NonceCountTracker {
    capacity: usize,
    max_age_secs: u64,
    /// A keyed hash of the nonce -> its use so far. A hash, not the text: with one-time
    /// nonces every challenged request adds an entry, and the 48-character strings (twice,
    /// with the age index) made the table about three times larger. The key is random per
    /// table, so nobody can make two nonces collide on purpose; by chance (2^-64 a pair) a
    /// collision only costs a client one more challenge.
    entries: HashMap<u64, Use>,
    /// The same entries ordered oldest first, for expiry and eviction.
    by_age: BTreeSet<(u64, u64)>,
    /// The key of the nonce hash.
    hasher: RandomState,
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
            hasher: RandomState::new(),
            floor: None,
        }
    }

    /// Records `nc` for `nonce` (issued at `issued_at`), used by the request whose fingerprint
    /// is `request`, if it is higher than any before. Call this only after the response has
    /// been verified, or anyone could push a client's count ahead of it.
    pub fn accept(
        &mut self,
        nonce: &str,
        issued_at: u64,
        nc: u32,
        request: u64,
        now_unix_secs: u64,
    ) -> Result<(), Refused> {
        self.expire(now_unix_secs);
        let nonce = self.hasher.hash_one(nonce);
        if let Some(last) = self.entries.get_mut(&nonce) {
            if nc <= last.nc {
                return Err(Refused::Reused {
                    same_request: nc == last.nc && request == last.request,
                });
            }
            last.nc = nc;
            last.request = request;
            return Ok(());
        }
        // An unseen nonce starts at zero, so nc=00000000 is never accepted.
        if nc == 0 {
            return Err(Refused::Zero);
        }
        if self.below_floor(issued_at) {
            return Err(Refused::Forgotten);
        }
        if self.entries.len() >= self.capacity {
            self.evict_oldest();
            if self.below_floor(issued_at) {
                return Err(Refused::Forgotten);
            }
        }
        let first_use = Use { nc, request };
        self.entries.insert(nonce, first_use);
        self.by_age.insert((issued_at, nonce));
        Ok(())
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

    /// Accepts with one fixed request fingerprint.
    fn ok(t: &mut NonceCountTracker, nonce: &str, issued_at: u64, nc: u32, now: u64) -> bool {
        t.accept(nonce, issued_at, nc, 7, now).is_ok()
    }

    #[test]
    fn the_same_count_again_is_the_same_request_only_with_its_fingerprint() {
        let mut t = NonceCountTracker::new(10, 300);
        assert_eq!(t.accept("n", T, 1, 11, T), Ok(()));
        assert_eq!(
            t.accept("n", T, 1, 11, T + 1),
            Err(Refused::Reused { same_request: true }),
            "a retransmission"
        );
        assert_eq!(
            t.accept("n", T, 1, 12, T + 1),
            Err(Refused::Reused {
                same_request: false
            }),
            "a new request with the used nonce"
        );
        assert_eq!(t.accept("n", T, 2, 12, T + 1), Ok(()));
        assert_eq!(
            t.accept("n", T, 1, 11, T + 2),
            Err(Refused::Reused {
                same_request: false
            }),
            "an older count is never a retransmission of the latest"
        );
        assert_eq!(t.accept("m", T, 0, 11, T), Err(Refused::Zero));
    }

    #[test]
    fn accepts_rising_counts_and_refuses_repeats() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(ok(&mut t, "n", T, 1, T));
        assert!(ok(&mut t, "n", T, 2, T));
        assert!(!ok(&mut t, "n", T, 2, T), "the same nc twice is a replay");
        assert!(!ok(&mut t, "n", T, 1, T), "an older nc is a replay");
        assert!(ok(&mut t, "n", T, 7, T), "skipping ahead is allowed");
    }

    #[test]
    fn counts_are_kept_per_nonce() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(ok(&mut t, "a", T, 1, T));
        assert!(ok(&mut t, "b", T, 1, T));
        assert!(!ok(&mut t, "a", T, 1, T));
    }

    #[test]
    fn refuses_a_zero_count() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(!ok(&mut t, "n", T, 0, T));
    }

    #[test]
    fn forgets_nonces_past_their_lifetime() {
        let mut t = NonceCountTracker::new(10, 300);
        assert!(ok(&mut t, "old", T, 5, T));
        assert!(ok(&mut t, "new", T + 200, 1, T + 200));
        assert_eq!(t.len(), 2);
        assert!(ok(&mut t, "new", T + 200, 2, T + 301));
        assert_eq!(t.len(), 1, "the nonce issued at T expired at T+300");
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut t = NonceCountTracker::new(3, 300);
        for i in 0..10 {
            assert!(ok(&mut t, &format!("n{i}"), T + i, 1, T + i));
            assert!(t.len() <= 3);
        }
    }

    #[test]
    fn an_evicted_nonce_cannot_be_replayed_from_scratch() {
        let mut t = NonceCountTracker::new(2, 300);
        assert!(ok(&mut t, "a", T, 3, T));
        assert!(ok(&mut t, "b", T + 1, 1, T + 1));
        assert!(ok(&mut t, "c", T + 2, 1, T + 2), "evicts a");
        assert!(
            !ok(&mut t, "a", T, 1, T + 3),
            "a was forgotten, but the floor still refuses it"
        );
        assert!(
            !ok(&mut t, "z", T, 1, T + 3),
            "so is any unseen nonce as old"
        );
        assert!(ok(&mut t, "d", T + 3, 1, T + 3), "newer nonces are fine");
    }

    #[test]
    fn a_capacity_of_zero_still_tracks_one_nonce() {
        let mut t = NonceCountTracker::new(0, 300);
        assert!(ok(&mut t, "n", T, 1, T));
        assert!(!ok(&mut t, "n", T, 1, T));
    }
}
