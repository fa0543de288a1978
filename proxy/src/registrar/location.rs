//! The location service (RFC 3261 section 10.3 and 16.5): where each address-of-record can be
//! reached now.
//!
//! A concurrent map rather than an actor, because every UDP worker looks up the callee of every
//! INVITE here (the proxy core's target set, section 16.5) and a message round trip per call to
//! one actor would serialise them. REGISTERs are applied by [`LocationService::register`] under
//! the AOR's entry lock, so two REGISTERs for one AOR on two workers cannot lose an update; the
//! rules themselves are in [`super::rules`].
//!
//! The service does not write to the store: it returns what the store must be told
//! ([`Applied::into_persist`]), and the actor that asked carries it out. Each such change gets a
//! sequence number taken under the AOR's lock, so that the store's writer, which hears from
//! every worker, can tell the later of two changes to one binding whatever order they arrive
//! in, and a restart cannot bring back a binding that a later REGISTER had replaced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use dashmap::mapref::entry::{Entry, OccupiedEntry};
use dashmap::DashMap;
use dialtone_sip::Message;

use super::binding::{unix_seconds, Binding, BindingChange};
use super::packed::PackedBindings;
use super::rules::{process_register, repeats_current, Origin, RegisterOutcome, RegistrarPolicy};

/// The bindings of every AOR, shared by the workers. Clones share the same map.
#[derive(Debug, Clone)]
pub struct LocationService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// AOR to its bindings, highest q first, packed (see [`super::packed`]).
    bindings: DashMap<Box<str>, PackedBindings>,
    /// Whether the bindings are persisted, so that REGISTERs say what the store must write.
    persistent: bool,
    /// The next sequence number of a change for the store (see the module documentation).
    next_sequence: AtomicU64,
    expired_total: AtomicU64,
    /// No binding lapses before this (Unix seconds; `u64::MAX` when there is none), so that
    /// the sweep every second walks the map only when something may have expired. Lowered
    /// after every write to the map, reset before each walk and rebuilt by it; a stale value
    /// is only ever too low, which costs one walk that finds nothing.
    earliest_expiry: AtomicU64,
}

/// A REGISTER applied to memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// What to answer.
    pub outcome: RegisterOutcome,
    /// For a persistent service and an accepted REGISTER: the sequence number of the changes
    /// the store's writer must commit before the 200 goes ([`Applied::into_persist`]).
    pub sequence: Option<u64>,
}

impl Applied {
    /// The changes to persist with their sequence number, when there are some.
    pub fn into_persist(self) -> Option<(u64, Vec<BindingChange>)> {
        let sequence = self.sequence?;
        let RegisterOutcome::Ok {
            changes,
            bindings_after,
            ..
        } = self.outcome
        else {
            return None;
        };
        Some((sequence, to_persist(changes, bindings_after)))
    }
}

/// What the store must write for a REGISTER that made `changes` and left `bindings_after`. A
/// REGISTER that changed nothing (a fetch, a retransmission) writes the AOR's bindings again:
/// its 200 then waits for a commit that holds them, even when the change it repeats was made
/// by another worker whose send to the writer is still to come.
///
/// Takes both by value: a REGISTER's changes go to the writer as they are, not copied (a
/// binding's copy is four allocations, at tens of thousands of REGISTERs a second).
pub fn to_persist(changes: Vec<BindingChange>, bindings_after: Vec<Binding>) -> Vec<BindingChange> {
    if changes.is_empty() {
        bindings_after
            .into_iter()
            .map(BindingChange::Upsert)
            .collect()
    } else {
        changes
    }
}

impl Default for LocationService {
    fn default() -> LocationService {
        LocationService::with_bindings(Vec::new(), false)
    }
}

impl LocationService {
    /// An empty location service kept in memory only.
    pub fn new() -> LocationService {
        LocationService::default()
    }

    /// A location service holding `bindings` (loaded from the store at start); when
    /// `persistent`, every REGISTER says what the store must write ([`Applied::into_persist`]).
    pub fn with_bindings(bindings: Vec<Binding>, persistent: bool) -> LocationService {
        let map: DashMap<Box<str>, PackedBindings> = crate::tables::sharded();
        let earliest = earliest_expiry(&bindings);
        let mut by_aor: std::collections::HashMap<String, Vec<Binding>> = Default::default();
        for binding in bindings {
            by_aor.entry(binding.aor.clone()).or_default().push(binding);
        }
        for (aor, mut bindings) in by_aor {
            sort_by_q(&mut bindings);
            map.insert(aor.into(), PackedBindings::pack(&bindings));
        }
        LocationService {
            inner: Arc::new(Inner {
                bindings: map,
                persistent,
                next_sequence: AtomicU64::new(1),
                expired_total: AtomicU64::new(0),
                earliest_expiry: AtomicU64::new(earliest),
            }),
        }
    }

    /// The unexpired bindings of `aor` at `now`, highest q first: the proxy's target set.
    pub fn lookup(&self, aor: &str, now: SystemTime) -> Vec<Binding> {
        match self.inner.bindings.get(aor) {
            Some(bindings) => {
                let mut bindings = bindings.unpack();
                bindings.retain(|b| !b.is_expired(now));
                bindings
            }
            None => Vec::new(),
        }
    }

    /// Processes a REGISTER for `aor` (see [`process_register`]) and applies its outcome, all
    /// under the AOR's entry lock. The caller answers the request and, for a persistent
    /// service, hands [`Applied::into_persist`] to the store's writer.
    pub fn register(
        &self,
        request: &Message<'_>,
        aor: &str,
        now: SystemTime,
        origin: Origin,
        policy: &RegistrarPolicy,
    ) -> Applied {
        match self.inner.bindings.entry(aor.into()) {
            Entry::Occupied(entry) => self.register_bound(entry, request, aor, now, origin, policy),
            Entry::Vacant(entry) => {
                let outcome = process_register(request, aor, now, origin, policy, &[]);
                let sequence = self.persist_sequence(&outcome);
                if let RegisterOutcome::Ok { bindings_after, .. } = &outcome {
                    if !bindings_after.is_empty() {
                        entry.insert(PackedBindings::pack(bindings_after));
                        self.lower_earliest_expiry(earliest_expiry(bindings_after));
                    }
                }
                Applied { outcome, sequence }
            }
        }
    }

    /// Like [`LocationService::register`], but only for a request that repeats the one that made
    /// the AOR's current bindings ([`repeats_current`], decided under the same entry lock as
    /// the rest); `None` for any other.
    pub fn register_repeat(
        &self,
        request: &Message<'_>,
        aor: &str,
        now: SystemTime,
        origin: Origin,
        policy: &RegistrarPolicy,
    ) -> Option<Applied> {
        let Entry::Occupied(entry) = self.inner.bindings.entry(aor.into()) else {
            return None;
        };
        if !repeats_current(request, aor, now, origin, policy, &entry.get().unpack()) {
            return None;
        }
        Some(self.register_bound(entry, request, aor, now, origin, policy))
    }

    /// Runs the rules for an AOR that has bindings and applies the outcome to its entry.
    fn register_bound(
        &self,
        mut entry: OccupiedEntry<'_, Box<str>, PackedBindings>,
        request: &Message<'_>,
        aor: &str,
        now: SystemTime,
        origin: Origin,
        policy: &RegistrarPolicy,
    ) -> Applied {
        let current = entry.get().unpack();
        let outcome = process_register(request, aor, now, origin, policy, &current);
        let sequence = self.persist_sequence(&outcome);
        if let RegisterOutcome::Ok { bindings_after, .. } = &outcome {
            if bindings_after.is_empty() {
                entry.remove();
            } else {
                *entry.get_mut() = PackedBindings::pack(bindings_after);
                self.lower_earliest_expiry(earliest_expiry(bindings_after));
            }
        }
        Applied { outcome, sequence }
    }

    /// Replaces the bindings of `aor` with `bindings_after` (an empty list forgets the AOR). For
    /// callers that ran the rules themselves; nothing is persisted.
    pub fn apply(&self, aor: &str, mut bindings_after: Vec<Binding>) {
        if bindings_after.is_empty() {
            self.inner.bindings.remove(aor);
        } else {
            sort_by_q(&mut bindings_after);
            let earliest = earliest_expiry(&bindings_after);
            self.inner
                .bindings
                .insert(aor.into(), PackedBindings::pack(&bindings_after));
            self.lower_earliest_expiry(earliest);
        }
    }

    /// Removes and returns every binding expired at `now`, and queues their removal to the
    /// store. Called by the registrar actor's sweep.
    ///
    /// Walks the map only once the earliest expiry is reached: with 100 000 bindings a walk
    /// write-locks each shard in turn for a while, which delays the REGISTERs and INVITEs that
    /// need it, and it took 2 % of the proxy's CPU at 1000 REGISTERs/s with 10 000 bindings.
    pub fn expire(&self, now: SystemTime) -> Vec<(String, Binding)> {
        self.expire_in_order(now).1
    }

    /// [`Self::expire`], with the sequence number the store's writer must give the removals:
    /// taken before the walk, so that a REGISTER that brings a removed binding back, which
    /// can only come after the walk passed it, always carries a higher one.
    pub fn expire_in_order(&self, now: SystemTime) -> (u64, Vec<(String, Binding)>) {
        let mut expired = Vec::new();
        if unix_seconds(now) < self.inner.earliest_expiry.load(Ordering::Relaxed) {
            return (0, expired);
        }
        let sequence = self.next_sequence();
        // Reset before the walk: a binding written during it lowers the value itself (after
        // its map write), and every binding already in the map is seen by the walk.
        self.inner
            .earliest_expiry
            .store(u64::MAX, Ordering::Relaxed);
        let mut earliest_kept = u64::MAX;
        let now_seconds = unix_seconds(now);
        self.inner.bindings.retain(|aor, packed| {
            if packed.earliest_expiry() <= now_seconds {
                let (gone, kept): (Vec<Binding>, Vec<Binding>) =
                    packed.unpack().into_iter().partition(|b| b.is_expired(now));
                expired.extend(gone.into_iter().map(|b| (aor.to_string(), b)));
                *packed = PackedBindings::pack(&kept);
            }
            earliest_kept = earliest_kept.min(packed.earliest_expiry());
            !packed.is_empty()
        });
        self.lower_earliest_expiry(earliest_kept);
        self.inner
            .expired_total
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        (sequence, expired)
    }

    /// Every binding held, for the admin API (expired ones not yet swept included).
    pub fn snapshot(&self) -> Vec<Binding> {
        self.inner
            .bindings
            .iter()
            .flat_map(|entry| entry.value().unpack())
            .collect()
    }

    /// Shards of the bindings table.
    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.inner.bindings.shards().len()
    }

    /// How many bindings are held, for a gauge. Counts those expired but not yet swept (at most
    /// one sweep interval old).
    pub fn count(&self) -> usize {
        self.inner.bindings.iter().map(|entry| entry.len()).sum()
    }

    /// How many bindings the sweeps have removed since start, for a counter.
    pub fn expired_total(&self) -> u64 {
        self.inner.expired_total.load(Ordering::Relaxed)
    }

    /// Whether the bindings are persisted (REGISTERs then say what the store must write).
    pub fn is_persistent(&self) -> bool {
        self.inner.persistent
    }

    /// A sequence number for a change to the store made outside a REGISTER (see the module
    /// documentation).
    pub fn next_sequence(&self) -> u64 {
        self.inner.next_sequence.fetch_add(1, Ordering::Relaxed)
    }

    /// Call after the map write that holds a binding lapsing at `expires_at` (see `expire`).
    fn lower_earliest_expiry(&self, expires_at: u64) {
        self.inner
            .earliest_expiry
            .fetch_min(expires_at, Ordering::Relaxed);
    }

    /// The sequence number of what the store must write for `outcome` (see [`to_persist`]),
    /// taken under the AOR's lock; `None` for a service in memory only or a rejection.
    fn persist_sequence(&self, outcome: &RegisterOutcome) -> Option<u64> {
        (self.inner.persistent && matches!(outcome, RegisterOutcome::Ok { .. }))
            .then(|| self.next_sequence())
    }
}

/// The earliest `expires_at` among `bindings`, `u64::MAX` for none.
fn earliest_expiry(bindings: &[Binding]) -> u64 {
    bindings
        .iter()
        .map(|b| b.expires_at)
        .min()
        .unwrap_or(u64::MAX)
}

fn sort_by_q(bindings: &mut [Binding]) {
    bindings.sort_by_key(|b| std::cmp::Reverse(b.priority()));
}

#[cfg(test)]
#[path = "location_tests.rs"]
mod tests;
