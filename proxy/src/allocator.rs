//! glibc allocator settings for the proxy's threads.
//!
//! Each thread keeps glibc's default, an arena of its own. The proxy used to put every thread
//! on the main heap (`M_ARENA_MAX` 1), because a thread's arena grows by one `mprotect` per
//! page: a registrar taking 1000 new AORs a second made a UDP worker call `mprotect` about 43
//! times a second, in the middle of answering requests. But one arena is one lock, and the
//! durable registrar added two busy allocating threads (the journal writer and its fold) to
//! the two workers. At 22 000 REGISTERs a second the workers spent 4 % of their time waking
//! each other on that lock, and in three alternating pairs of runs (`../shared/bench`,
//! register_noauth, defaults) one arena dropped 20 000 to 81 000 datagrams at 81-85 % CPU
//! where an arena per thread dropped 0 to 173 at 72-74 %; calls at 4 000/s cost 0.12-0.14
//! against 0.14 ms. The price is memory: 275 bytes per binding at 100 000 against 233
//! (`tests/bench/memory.py`), INVITEs and TCP connections unchanged.

/// glibc's fast bins off. With them, every allocation of 1 KiB or more (each datagram's copy,
/// the response being built) first walked and merged the small chunks freed since the last
/// one (`malloc_consolidate`, `unlink_chunk`): 5.6 % of the proxy's samples at 1000
/// REGISTERs a second. Small chunks still go through the per-thread cache (tcache) first, and
/// a freed chunk beyond it is merged at once instead: 0.2 % (perf, the same load).
const MAX_FAST: i32 = 0;

/// Bytes the main heap grows by beyond what a request needs (glibc's default is 128 KiB), for
/// the main thread and the start-up work that allocates there.
const TOP_PAD: i32 = 1024 * 1024;

/// Applies the settings. Call before the worker threads start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocator parameters; the value is in range, and
    // a failure (return value 0) leaves the default, which is merely slower.
    unsafe {
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
        libc::mallopt(libc::M_MXFAST, MAX_FAST);
    }
}
