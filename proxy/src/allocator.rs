//! glibc allocator settings for the proxy's threads.
//!
//! By default glibc gives each new thread its own arena, an mmap'd heap that grows by
//! `mprotect`, one page at a time: a registrar taking 1000 new AORs a second made a UDP worker
//! call `mprotect` (and take the page faults after it) on about one request in six, in the
//! middle of answering it (seen with `perf trace` on the worker at 1000 REGISTERs/s). With one
//! arena every thread allocates from the main heap, which grows by `brk` with a pad, so growth
//! costs a system call per [`TOP_PAD`] bytes instead of per page. Small allocations and frees
//! stay in each thread's cache (glibc's tcache) without taking the arena's lock.

/// Bytes the main heap grows by beyond what a request needs (glibc's default is 128 KiB).
const TOP_PAD: i32 = 1024 * 1024;

/// Applies the settings. Call before the worker threads start: an arena, once a thread has
/// one, is kept.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocator parameters; both values are in range,
    // and a failure (return value 0) leaves the defaults, which are merely slower.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}
