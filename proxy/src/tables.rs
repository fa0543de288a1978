//! How the proxy's shared tables (transactions, calls, registrations) are sharded.
//!
//! A `DashMap` is a set of shards, each a hash table behind its own lock, and a full shard
//! grows in one step: it moves every entry into a table twice the size while holding its
//! write lock. dashmap's default is four shards per CPU, eight on a two-core machine. The
//! transaction tables grow for as long as a load lasts up to the 32 s a transaction is kept,
//! and since keys spread evenly, all eight shards of a table double within moments of each
//! other, each moving an eighth of the table. At 6000 calls/s that was a pause of several
//! milliseconds every time the table doubled: the registrar probe's answer took up to 17 ms in
//! the proxy at those moments, against 0.1 ms otherwise (`tcpdump` on loopback, the time from
//! the REGISTER to its 200). Every message waiting behind the growing shard, on either worker,
//! waited with it.
//!
//! With [`SHARDS`] shards the same work comes in pieces a few hundred entries long, spread
//! over the run. An empty shard costs a lock and an empty table (128 bytes with its cache
//! padding), so a table costs 32 KiB before it holds anything.

use std::hash::Hash;

use dashmap::DashMap;

/// Shards per table: a power of two, as dashmap requires.
pub const SHARDS: usize = 256;

/// An empty table with [`SHARDS`] shards.
pub fn sharded<K: Eq + Hash, V>() -> DashMap<K, V> {
    DashMap::with_shard_amount(SHARDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::CallTracker;
    use crate::metrics::ProxyMetrics;
    use crate::registrar::LocationService;

    #[test]
    fn the_shared_tables_have_many_small_shards() {
        let table: DashMap<u32, u32> = sharded();
        assert_eq!(table.shards().len(), SHARDS);
        assert!(SHARDS > 4 * std::thread::available_parallelism().map_or(1, |n| n.get()));
        let core = crate::proxy_core::tests::core();
        assert_eq!(core.servers.shards().len(), SHARDS);
        assert_eq!(core.branches.shards().len(), SHARDS);
        assert_eq!(CallTracker::new(ProxyMetrics::new()).shard_count(), SHARDS);
        assert_eq!(LocationService::new().shard_count(), SHARDS);
    }
}
