//! Which worker sockets of a UDP listen address receive its datagrams.
//!
//! The sockets of one address form an `SO_REUSEPORT` group, and a classic BPF program attached
//! to the group picks the socket for each datagram ([`attach`]). With `udp-balance =
//! "adaptive"` (the default) the program follows the load ([`Governor`]): while the first
//! worker alone keeps up, every datagram goes to it; once the load needs more, each goes to a
//! worker picked at random; and back to the first once the load has stayed light for a second.
//!
//! Why: every worker that receives is woken for its share, and a woken worker starts from caches
//! that the other processes on its core have cooled. On the bench machine (2 cores, SIPp on
//! them too, `../shared/bench`, the defaults, three runs each), one worker against two spent
//! 0.044–0.051 against 0.063–0.068 ms of CPU per REGISTER at 1000/s, 0.022 against
//! 0.028–0.031 at 8000/s, 0.27–0.33 against 0.31–0.36 ms per call at 200 calls/s and 0.10–0.11
//! against 0.12–0.14 at 1500/s. Spreading pays once one worker no longer keeps up: at 30 000
//! REGISTERs/s both cost the same CPU, but the probe's median round trip was 1.5 ms on one
//! worker against 0.59 ms on two.
//!
//! The load is the CPU time of the worker threads, summed, per [`WINDOW`] (read from the
//! kernel's per-thread clocks, [`thread_cpu_time`], so that the workers pay nothing for it per
//! datagram; their wall time in the handler overstated it wherever SIPp shared their core).
//! Spreading as soon as a worker found a full batch waiting was tried and dropped: SIPp's
//! bursts at 8000 REGISTERs/s did that every second or two, flipping the program back and
//! forth while one worker kept up well; a burst now waits at most a window in the first
//! socket's receive buffer. A load that starts at full speed did not need it: SIPp at 30 000
//! REGISTERs/s from a standing start, three runs of 3 s, dropped no datagram (the always-random
//! program dropped 382 in one of its three).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prometheus::{Counter, IntCounter, IntGauge};

use crate::metrics::ProxyMetrics;
use crate::worker_cpus::{self, Placement};

/// How often the governor looks at the load.
pub const WINDOW: Duration = Duration::from_millis(100);

/// Load (the workers' CPU time, in cores) above which the datagrams are spread. One worker was
/// still as quick as two at 8000 REGISTERs/s and 1500 calls/s (about 0.15 of a core each), and
/// twice as slow at 30 000 REGISTERs/s (about 0.4).
pub const SPREAD_ABOVE: f64 = 0.35;

/// Load below which, for [`CALM_WINDOWS`] windows running, the datagrams go to the first worker
/// again. Well under [`SPREAD_ABOVE`]: spread, the same traffic costs more than on one worker,
/// and a load near the line must not flip the program every window.
pub const GATHER_BELOW: f64 = 0.2;

/// Windows of light load in a row before the datagrams are gathered on the first worker.
pub const CALM_WINDOWS: u32 = 10;

/// Which sockets of a group receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiving {
    /// Every datagram to the first socket bound.
    First,
    /// Each datagram to a socket picked at random.
    All,
}

/// The rule that picks [`Receiving`] from the load; no I/O, no clock.
#[derive(Debug)]
pub struct Governor {
    receiving: Receiving,
    calm: u32,
}

impl Default for Governor {
    fn default() -> Governor {
        Governor::new()
    }
}

impl Governor {
    /// Starts gathered: a proxy starts idle.
    pub fn new() -> Governor {
        Governor {
            receiving: Receiving::First,
            calm: 0,
        }
    }

    pub fn receiving(&self) -> Receiving {
        self.receiving
    }

    /// One window's load; returns the new choice when it changes.
    pub fn window(&mut self, load: f64) -> Option<Receiving> {
        match self.receiving {
            Receiving::First if load > SPREAD_ABOVE => self.change(Receiving::All),
            Receiving::First => None,
            Receiving::All if load < GATHER_BELOW => {
                self.calm += 1;
                if self.calm >= CALM_WINDOWS {
                    self.change(Receiving::First)
                } else {
                    None
                }
            }
            Receiving::All => {
                self.calm = 0;
                None
            }
        }
    }

    /// Goes back to `receiving` after the kernel refused the change.
    fn restore(&mut self, receiving: Receiving) {
        self.receiving = receiving;
        self.calm = 0;
    }

    fn change(&mut self, receiving: Receiving) -> Option<Receiving> {
        self.receiving = receiving;
        self.calm = 0;
        Some(receiving)
    }
}

/// Attaches the program for `receiving` to the reuseport group of `socket` (any of its sockets:
/// the program belongs to the group, and replaces the one before). The program returns the
/// index of a socket in the order they were bound: 0, or a random number (`SKF_AD_RANDOM`)
/// modulo `workers`.
pub fn attach(
    socket: &std::net::UdpSocket,
    receiving: Receiving,
    workers: usize,
) -> std::io::Result<()> {
    let workers = u32::try_from(workers)
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| std::io::Error::other("worker count out of range"))?;
    let instruction = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let first = [
        // the socket at index 0 takes the datagram
        instruction(libc::BPF_RET | libc::BPF_K, 0),
    ];
    let random = [
        // A = a random 32-bit number
        instruction(
            libc::BPF_LD | libc::BPF_W | libc::BPF_ABS,
            (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32,
        ),
        // A = A % workers
        instruction(libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K, workers),
        // the socket at index A takes the datagram
        instruction(libc::BPF_RET | libc::BPF_A, 0),
    ];
    let program: &[libc::sock_filter] = match receiving {
        Receiving::First => &first,
        Receiving::All => &random,
    };
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `program`, which outlives the call; the kernel copies the
    // program during `setsockopt` and keeps no pointer to it. The length passed is the size of
    // the `sock_fprog` it reads.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One worker thread, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct WorkerThread {
    /// The kernel's id of the worker's thread, once it runs (0 before).
    tid: AtomicI32,
}

/// The workers of one UDP listen address: their CPU time, exported as metrics, and with
/// `udp-balance = "adaptive"` the [`Governor`] that picks who receives.
#[derive(Debug)]
pub struct UdpGroup {
    /// The group's first socket (shared with `Outbound`, which sends from it), to attach
    /// programs through.
    socket: Arc<std::net::UdpSocket>,
    threads: Box<[WorkerThread]>,
    /// `None` when the program never changes (`datagram`, `flow`, a single worker).
    governor: Option<Mutex<Governor>>,
    /// The workers' CPUs (`worker_cpus.rs`): with `auto`, pinned while gathered on the first.
    placement: Placement,
    seen: Mutex<Seen>,
    receiving_workers: IntGauge,
    cpu_seconds: Box<[Counter]>,
    received: Box<[IntCounter]>,
}

/// What the last window ended with.
#[derive(Debug)]
struct Seen {
    at: Instant,
    /// Each worker thread's CPU time so far (`None` before it runs).
    cpu: Vec<Option<Duration>>,
}

impl UdpGroup {
    /// The group of `workers` sockets bound at `listen`, `first` being the first of them,
    /// whose program is `attached` (`None`: the kernel's hash). `adaptive`: the governor moves
    /// the program from [`Receiving::First`], which it must start with. `placement`: the
    /// workers' CPUs.
    pub fn new(
        listen: SocketAddr,
        first: Arc<std::net::UdpSocket>,
        workers: usize,
        attached: Option<Receiving>,
        adaptive: bool,
        placement: Placement,
        metrics: &ProxyMetrics,
    ) -> UdpGroup {
        let label = format!("udp:{listen}");
        let receiving_workers = metrics.udp_receiving_workers.with_label_values(&[&label]);
        let adaptive = adaptive && attached == Some(Receiving::First);
        receiving_workers.set(match attached {
            Some(Receiving::First) => 1,
            // The kernel's hash reaches every worker too, one peer to each.
            _ => workers as i64,
        });
        let cpu_seconds = (0..workers)
            .map(|worker| {
                metrics
                    .udp_worker_cpu_seconds
                    .with_label_values(&[&label, &worker.to_string()])
            })
            .collect();
        let received = (0..workers)
            .map(|worker| {
                metrics
                    .udp_datagrams_received
                    .with_label_values(&[&label, &worker.to_string()])
            })
            .collect();
        UdpGroup {
            socket: first,
            threads: (0..workers).map(|_| WorkerThread::default()).collect(),
            governor: adaptive.then(|| Mutex::new(Governor::new())),
            placement,
            seen: Mutex::new(Seen {
                at: Instant::now(),
                cpu: vec![None; workers],
            }),
            receiving_workers,
            cpu_seconds,
            received,
        }
    }

    /// The counter of the datagrams worker `worker` receives, for it to keep (an atomic add
    /// per datagram; looked up by label only here).
    pub fn received_counter(&self, worker: usize) -> Option<IntCounter> {
        self.received.get(worker).cloned()
    }

    /// Worker `worker` runs on the calling thread: its CPU time counts from now, and it is
    /// pinned to its CPU if the load (light, as it starts) says so.
    pub fn worker_started(&self, worker: usize) {
        let Some(thread) = self.threads.get(worker) else {
            return;
        };
        // SAFETY: gettid has no preconditions and cannot fail.
        let tid = unsafe { libc::gettid() };
        thread.tid.store(tid, Ordering::Relaxed);
        if let Some(cpu) = self.placement.cpu_under(worker, self.gathered()) {
            if let Err(error) = worker_cpus::pin_thread(tid, cpu) {
                tracing::warn!(worker, cpu, %error, "udp worker not pinned; the kernel places it");
            }
        }
    }

    /// Whether the first worker alone receives: one worker, or the governor gathered them.
    fn gathered(&self) -> bool {
        self.threads.len() == 1
            || self.governor.as_ref().is_some_and(|governor| {
                governor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .receiving()
                    == Receiving::First
            })
    }

    /// With `worker-cpus = "auto"`: pins the workers to their CPUs once the datagrams are
    /// gathered, lets them go once spread (see `worker_cpus.rs` for why).
    fn place_workers(&self, receiving: Receiving) {
        if !self.placement.follows_load() {
            return;
        }
        let light = receiving == Receiving::First;
        for (worker, thread) in self.threads.iter().enumerate() {
            let tid = thread.tid.load(Ordering::Relaxed);
            if tid == 0 {
                continue; // not started yet: it places itself as it starts
            }
            let placed = match self.placement.cpu_under(worker, light) {
                Some(cpu) => worker_cpus::pin_thread(tid, cpu),
                None => worker_cpus::free_thread(tid, self.placement.allowed()),
            };
            if let Err(error) = placed {
                tracing::warn!(worker, light, %error, "udp worker: its CPUs were not changed");
            }
        }
    }

    /// Ends a window: exports the workers' CPU time and lets the governor look at the load.
    /// Called every [`WINDOW`] by [`watch`].
    pub fn end_window(&self, now: Instant) {
        let load = {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            let elapsed = now.duration_since(seen.at).as_secs_f64();
            let mut used = 0.0;
            for ((thread, last), exported) in self
                .threads
                .iter()
                .zip(seen.cpu.iter_mut())
                .zip(self.cpu_seconds.iter())
            {
                let tid = thread.tid.load(Ordering::Relaxed);
                let Some(total) = (tid != 0).then(|| thread_cpu_time(tid)).flatten() else {
                    continue;
                };
                let seconds = total.saturating_sub(last.unwrap_or_default()).as_secs_f64();
                exported.inc_by(seconds);
                // A thread seen for the first time brings its start-up: not this window's load.
                if last.is_some() {
                    used += seconds;
                }
                *last = Some(total);
            }
            seen.at = now;
            if elapsed > 0.0 {
                used / elapsed
            } else {
                0.0
            }
        };
        self.steer(|governor| governor.window(load));
    }

    /// Asks the governor (if any) and attaches the program it picks.
    fn steer(&self, decide: impl FnOnce(&mut Governor) -> Option<Receiving>) {
        let Some(governor) = &self.governor else {
            return;
        };
        let mut governor = governor.lock().unwrap_or_else(PoisonError::into_inner);
        let before = governor.receiving();
        let Some(receiving) = decide(&mut governor) else {
            return;
        };
        match attach(&self.socket, receiving, self.threads.len()) {
            Ok(()) => {
                self.receiving_workers.set(if receiving == Receiving::All {
                    self.threads.len() as i64
                } else {
                    1
                });
                tracing::debug!(?receiving, "udp datagrams now go to {receiving:?}");
                drop(governor);
                self.place_workers(receiving);
            }
            Err(error) => {
                governor.restore(before);
                tracing::warn!(%error, ?receiving, "udp-balance: the kernel refused the change");
            }
        }
    }
}

/// The CPU time thread `tid` of this process has used, from its kernel clock; `None` once the
/// thread has ended. The clock's id is the kernel's encoding for a thread's scheduler clock
/// (`~tid << 3 | CPUCLOCK_PERTHREAD | CPUCLOCK_SCHED`, what glibc's `pthread_getcpuclockid`
/// returns), built from the id so that a thread that has ended gives an error, not the
/// undefined behaviour of a stale `pthread_t`.
pub fn thread_cpu_time(tid: libc::pid_t) -> Option<Duration> {
    const PER_THREAD: libc::clockid_t = 4;
    const SCHED: libc::clockid_t = 2;
    let clock = (!tid << 3) | PER_THREAD | SCHED;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write; an unknown clock id is an error, not UB.
    let rc = unsafe { libc::clock_gettime(clock, &mut now) };
    (rc == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

/// Ends a window of every group every [`WINDOW`], for as long as the proxy runs.
pub async fn watch(groups: Vec<Arc<UdpGroup>>) {
    let mut every = tokio::time::interval(WINDOW);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = Instant::now();
        for group in &groups {
            group.end_window(now);
        }
    }
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
