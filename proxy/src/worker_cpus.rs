//! Which CPU each UDP worker thread runs on (`worker-cpus`).
//!
//! By default (`auto`) each worker is pinned to a CPU of its own while the load is light, so
//! that the kernel does not move it. Why: a worker woken for a datagram was often woken on the
//! other core, the one of the process that sent it (a `sendto` on loopback wakes its reader
//! "synchronously", and the scheduler pulls the reader towards the writer), and started there
//! from caches that held nothing of its own (each core of the bench machine has its own 4 MiB
//! L2). On the bench machine (2 cores, SIPp on them too, `../shared/bench`, call_noauth at 200
//! calls/s, the defaults, three alternating runs each) the unpinned proxy migrated 1.2 times
//! per call and spent 0.225–0.25 ms of CPU per call; pinned, 0.156–0.169. Kamailio, which pins
//! nothing, drops as much when `taskset` pins it (0.42–0.53 against 0.32–0.34 ms), so this is
//! the machine's price of a migration, not something of ours alone.
//!
//! Under a heavy load the workers are let go (`transport/balance.rs` does both, as its
//! governor gathers the datagrams on the first worker or spreads them): with both workers
//! pinned and busy, SIPp could not get a core's worth of time, its socket overflowed and
//! register_auth at 32 000/s collapsed to 13 600/s in three runs out of three, where the
//! unpinned workers passed two of three.
//!
//! The price of a pin: a pinned worker cannot leave a CPU that something else keeps busy (the
//! kernel moves the other, unpinned, processes instead). Hence pinning only where each worker
//! gets a CPU of its own, starting at the CPU the proxy was started on (two proxies on one
//! machine do not both pile onto CPU 0), within the CPUs the process may use (`taskset`, a
//! container's cpuset). `off` leaves the workers to the kernel; a list (`2,3`) names the CPUs,
//! and pins them whatever the load.

/// How the UDP workers are placed on CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCpus {
    /// Each worker on a CPU of its own while the load is light, when there are enough CPUs:
    /// see the module documentation.
    Auto,
    /// Wherever the kernel puts them.
    Off,
    /// Worker `i` of each listen address on the `i`-th CPU of the list, from the start again
    /// when there are more workers than CPUs listed, whatever the load.
    List(Vec<usize>),
}

/// The largest CPU number a list may name: the kernel's affinity masks as glibc sizes them
/// (`CPU_SETSIZE`).
pub const MAX_CPU: usize = 1023;

impl WorkerCpus {
    /// `auto`, `off`, or CPU numbers separated by commas (`0,2`).
    pub fn parse(raw: &str) -> Result<WorkerCpus, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => return Ok(WorkerCpus::Auto),
            "off" => return Ok(WorkerCpus::Off),
            _ => {}
        }
        let cpus = raw
            .split(',')
            .map(|part| match part.trim().parse::<usize>() {
                Ok(cpu) if cpu <= MAX_CPU => Ok(cpu),
                _ => Err(format!(
                    "`{raw}` is not auto, off or a list of CPU numbers (0 to {MAX_CPU}) like `0,1`"
                )),
            })
            .collect::<Result<Vec<usize>, String>>()?;
        Ok(WorkerCpus::List(cpus))
    }
}

/// The CPU of each worker index, or none for all of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Indexed by worker; empty when the workers are not pinned.
    cpus: Vec<usize>,
    /// Pinned only while the load is light (`auto`), or always (a list).
    while_light: bool,
    /// The CPUs the process may use: where a worker let go may run.
    allowed: Vec<usize>,
    /// Why not, when they are not: said once in the log at start.
    unpinned_because: Option<&'static str>,
}

impl Placement {
    /// The CPU that worker `index` (of any listen address) is pinned to, if any.
    pub fn cpu_of(&self, index: usize) -> Option<usize> {
        self.cpus.get(index).copied()
    }

    /// The CPU that worker `index` is pinned to under the current load: while `light`, its
    /// CPU; under a heavy load, its CPU only when the CPUs were listed.
    pub fn cpu_under(&self, index: usize, light: bool) -> Option<usize> {
        self.cpu_of(index).filter(|_| light || !self.while_light)
    }

    /// Whether the pins change with the load (`auto`, with workers pinned).
    pub fn follows_load(&self) -> bool {
        self.while_light && !self.cpus.is_empty()
    }

    /// The CPUs the process may use.
    pub fn allowed(&self) -> &[usize] {
        &self.allowed
    }

    /// Why the workers are not pinned, when they are not.
    pub fn unpinned_because(&self) -> Option<&'static str> {
        self.unpinned_because
    }

    fn unpinned(because: &'static str) -> Placement {
        Placement {
            unpinned_because: Some(because),
            ..Placement::default()
        }
    }
}

/// Places `workers` workers (no I/O): `allowed` is the CPUs the process may use, `started_on`
/// the CPU it was started on. An error names a listed CPU the process may not use.
pub fn plan(
    choice: &WorkerCpus,
    allowed: &[usize],
    workers: usize,
    started_on: Option<usize>,
) -> Result<Placement, String> {
    match choice {
        WorkerCpus::Off => Ok(Placement::unpinned("worker-cpus = off")),
        WorkerCpus::List(listed) => {
            if let Some(cpu) = listed.iter().find(|cpu| !allowed.contains(cpu)) {
                return Err(format!(
                    "CPU {cpu} is not one this process may run on ({})",
                    cpu_list(allowed)
                ));
            }
            let cpus = (0..workers).map(|i| listed[i % listed.len()]).collect();
            Ok(Placement {
                cpus,
                while_light: false,
                allowed: allowed.to_vec(),
                unpinned_because: None,
            })
        }
        WorkerCpus::Auto if allowed.len() < 2 => {
            Ok(Placement::unpinned("the process may use one CPU only"))
        }
        WorkerCpus::Auto if workers > allowed.len() => Ok(Placement::unpinned(
            "more workers than CPUs: the kernel shares them out",
        )),
        WorkerCpus::Auto => {
            let first = started_on
                .and_then(|cpu| allowed.iter().position(|&c| c == cpu))
                .unwrap_or(0);
            let cpus = (0..workers)
                .map(|i| allowed[(first + i) % allowed.len()])
                .collect();
            Ok(Placement {
                cpus,
                while_light: true,
                allowed: allowed.to_vec(),
                unpinned_because: None,
            })
        }
    }
}

/// `0,1,4` for the log and errors.
pub fn cpu_list(cpus: &[usize]) -> String {
    let cpus: Vec<String> = cpus.iter().map(usize::to_string).collect();
    cpus.join(",")
}

/// Plans the placement for this process: [`plan`] with the CPUs it may use and the one the
/// calling thread runs on. Where the kernel cannot say (not Linux), `auto` pins nothing and a
/// list is an error.
pub fn place(choice: &WorkerCpus, workers: usize) -> Result<Placement, String> {
    if *choice == WorkerCpus::Off {
        return plan(choice, &[], workers, None);
    }
    match os::cpus_of(0) {
        Ok(allowed) => plan(choice, &allowed, workers, os::current_cpu()),
        Err(_) if *choice == WorkerCpus::Auto => Ok(Placement::unpinned(
            "the CPUs this process may use are not known",
        )),
        Err(error) => Err(format!(
            "cannot read the CPUs this process may use: {error}"
        )),
    }
}

/// The CPUs thread `tid` of this process (0: the calling thread) may run on, in order.
pub fn cpus_of_thread(tid: i32) -> std::io::Result<Vec<usize>> {
    os::cpus_of(tid)
}

/// Pins thread `tid` of this process (0: the calling thread) to `cpu`.
pub fn pin_thread(tid: i32, cpu: usize) -> std::io::Result<()> {
    os::set_affinity(tid, &[cpu])
}

/// Lets thread `tid` of this process run on any of `cpus` again.
pub fn free_thread(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    os::set_affinity(tid, cpus)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod os {
    use std::io;
    use std::mem;

    /// The CPUs thread `tid` (0: the calling one) may run on.
    pub fn cpus_of(tid: i32) -> io::Result<Vec<usize>> {
        // SAFETY: a zeroed `cpu_set_t` is an empty set; the kernel writes at most its size.
        let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size passed.
        let rc =
            unsafe { libc::sched_getaffinity(tid, mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `CPU_ISSET` reads the set within its size (`CPU_SETSIZE`).
        let allowed = (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect();
        Ok(allowed)
    }

    pub fn current_cpu() -> Option<usize> {
        // SAFETY: no arguments; returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).ok()
    }

    /// Thread `tid` (0: the calling one) may run on `cpus` only.
    pub fn set_affinity(tid: i32, cpus: &[usize]) -> io::Result<()> {
        if let Some(cpu) = cpus.iter().find(|&&cpu| cpu >= libc::CPU_SETSIZE as usize) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the kernel's affinity mask"),
            ));
        }
        if cpus.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no CPU given"));
        }
        // SAFETY: a zeroed `cpu_set_t` is an empty set; `CPU_SET` writes within it (checked
        // above), and `sched_setaffinity` only reads it.
        unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            for &cpu in cpus {
                libc::CPU_SET(cpu, &mut set);
            }
            if libc::sched_setaffinity(tid, mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod os {
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "CPU affinity is set on Linux (glibc) only",
        )
    }

    pub fn cpus_of(_tid: i32) -> io::Result<Vec<usize>> {
        Err(unsupported())
    }

    pub fn current_cpu() -> Option<usize> {
        None
    }

    pub fn set_affinity(_tid: i32, _cpus: &[usize]) -> io::Result<()> {
        Err(unsupported())
    }
}

#[cfg(test)]
#[path = "worker_cpus_tests.rs"]
mod tests;
