use super::*;
use crate::transport::udp::bind_reuseport;
use crate::worker_cpus::WorkerCpus;

/// How many of `count` datagrams from one client socket each of two sockets in a reuseport
/// group receives, after `setup` attached a program (or none) through the first.
fn received_by_each(setup: impl Fn(&std::net::UdpSocket), count: usize) -> [usize; 2] {
    let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
    let addr = first.local_addr().unwrap();
    let second = bind_reuseport(addr, 1 << 20).unwrap();
    setup(&first);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..count {
        client.send_to(format!("{i}").as_bytes(), addr).unwrap();
    }
    let mut counts = [0; 2];
    let mut buf = [0u8; 64];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while total < count && Instant::now() < deadline {
        for (socket, n) in [&first, &second].into_iter().zip(counts.iter_mut()) {
            while socket.recv_from(&mut buf).is_ok() {
                *n += 1;
                total += 1;
            }
        }
    }
    assert_eq!(total, count, "every datagram arrived");
    counts
}

#[test]
fn one_peers_datagrams_are_spread_over_the_group_only_when_asked() {
    // The kernel's hash sends one client socket's datagrams to one socket of the group;
    // spread, each socket gets some (all 200 on one side would have odds of 2^-199).
    let hashed = received_by_each(|_| {}, 200);
    assert!(hashed.contains(&0), "one flow, one socket: {hashed:?}");
    let spread = received_by_each(|s| attach(s, Receiving::All, 2).unwrap(), 200);
    assert!(
        spread.iter().all(|&n| n > 20),
        "both sockets take a share: {spread:?}"
    );
}

#[test]
fn gathered_every_datagram_goes_to_the_first_socket_and_the_program_can_change_back() {
    let first = received_by_each(|s| attach(s, Receiving::First, 2).unwrap(), 200);
    assert_eq!(first, [200, 0]);
    // The program replaces the one before, whichever socket of the group it is attached to.
    let respread = received_by_each(
        |s| {
            attach(s, Receiving::First, 2).unwrap();
            attach(s, Receiving::All, 2).unwrap();
        },
        200,
    );
    assert!(respread.iter().all(|&n| n > 20), "{respread:?}");
    let regathered = received_by_each(
        |s| {
            attach(s, Receiving::All, 2).unwrap();
            attach(s, Receiving::First, 2).unwrap();
        },
        200,
    );
    assert_eq!(regathered, [200, 0]);
}

#[test]
fn no_worker_is_refused() {
    let socket = bind_reuseport("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
    assert!(attach(&socket, Receiving::All, 0).is_err());
}

#[test]
fn a_light_load_stays_on_the_first_worker_and_a_heavy_one_spreads() {
    let mut governor = Governor::new();
    assert_eq!(governor.receiving(), Receiving::First);
    for _ in 0..100 {
        assert_eq!(governor.window(SPREAD_ABOVE * 0.9), None);
    }
    assert_eq!(governor.window(SPREAD_ABOVE * 1.1), Some(Receiving::All));
    assert_eq!(governor.window(SPREAD_ABOVE * 1.1), None, "told once");
    assert_eq!(governor.receiving(), Receiving::All);
}

#[test]
fn the_load_gathers_again_only_after_a_calm_second() {
    let mut governor = Governor::new();
    governor.window(1.0);
    // Between the two lines: stays spread however long it lasts.
    for _ in 0..100 {
        assert_eq!(governor.window((GATHER_BELOW + SPREAD_ABOVE) / 2.0), None);
    }
    // Calm windows, but one busy window among them starts the count again.
    for _ in 0..CALM_WINDOWS - 1 {
        assert_eq!(governor.window(GATHER_BELOW / 2.0), None);
    }
    assert_eq!(governor.window(GATHER_BELOW * 1.5), None);
    for _ in 0..CALM_WINDOWS - 1 {
        assert_eq!(governor.window(GATHER_BELOW / 2.0), None);
    }
    assert_eq!(
        governor.window(GATHER_BELOW / 2.0),
        Some(Receiving::First),
        "gathered after {CALM_WINDOWS} calm windows in a row"
    );
}

/// A group of two sockets bound on a free loopback port, as the server builds it.
fn group(adaptive: bool) -> (UdpGroup, ProxyMetrics) {
    placed_group(adaptive, Placement::default())
}

/// [`group`], its workers placed on CPUs by `placement`.
fn placed_group(adaptive: bool, placement: Placement) -> (UdpGroup, ProxyMetrics) {
    // Gathered on the first either way, so that only the governor could move it.
    let metrics = ProxyMetrics::new();
    let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
    let addr = first.local_addr().unwrap();
    attach(&first, Receiving::First, 2).unwrap();
    let _second = bind_reuseport(addr, 1 << 16).unwrap();
    let group = UdpGroup::new(
        addr,
        Arc::new(first.try_clone().unwrap()),
        2,
        Some(Receiving::First),
        adaptive,
        placement,
        &metrics,
    );
    (group, metrics)
}

/// The value of the series of `name` whose labels include `labels`.
fn series(metrics: &ProxyMetrics, name: &str, labels: &str) -> f64 {
    metrics
        .render()
        .lines()
        .find(|l| l.starts_with(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {labels} in\n{}", metrics.render()))
}

/// Spends `cpu` of this thread's CPU time, by its own clock.
fn burn(cpu: Duration) {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    let start = thread_cpu_time(tid).unwrap();
    let mut x = 1u64;
    while thread_cpu_time(tid).unwrap() - start < cpu {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

#[test]
fn a_threads_cpu_time_is_read_from_its_clock_and_an_ended_one_has_none() {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        burn(Duration::from_millis(20));
    });
    let tid = rx.recv().unwrap();
    worker.join().unwrap();
    // The thread has ended: its id names no thread of ours any more.
    assert_eq!(thread_cpu_time(tid), None);
    // SAFETY: gettid has no preconditions.
    let me = unsafe { libc::gettid() };
    let before = thread_cpu_time(me).unwrap();
    burn(Duration::from_millis(20));
    let used = thread_cpu_time(me).unwrap() - before;
    assert!(used >= Duration::from_millis(20), "{used:?}");
}

#[test]
fn a_group_exports_its_workers_cpu_time_and_how_many_receive() {
    let (group, metrics) = group(true);
    assert_eq!(
        series(&metrics, "dialtone_proxy_udp_receiving_workers", "udp:"),
        1.0
    );
    assert_eq!(
        series(
            &metrics,
            "dialtone_proxy_udp_worker_cpu_seconds_total",
            "worker=\"1\""
        ),
        0.0,
        "every series exists from the start"
    );
    // This thread plays worker 0; worker 1 never starts.
    group.worker_started(0);
    let start = Instant::now();
    group.end_window(start);
    let first = series(
        &metrics,
        "dialtone_proxy_udp_worker_cpu_seconds_total",
        "worker=\"0\"",
    );
    burn(Duration::from_millis(30));
    group.end_window(start + Duration::from_secs(1));
    let used = series(
        &metrics,
        "dialtone_proxy_udp_worker_cpu_seconds_total",
        "worker=\"0\"",
    ) - first;
    assert!((0.030..0.5).contains(&used), "{used}");
    // 30 ms of CPU in a second is light: still one worker.
    assert_eq!(
        series(&metrics, "dialtone_proxy_udp_receiving_workers", "udp:"),
        1.0
    );
    // Half a core's worth in the next window spreads.
    burn(Duration::from_millis(60));
    group.end_window(start + Duration::from_millis(1100));
    assert_eq!(
        series(&metrics, "dialtone_proxy_udp_receiving_workers", "udp:"),
        2.0
    );
}

#[test]
fn a_fixed_balance_never_changes_its_program() {
    let (group, metrics) = group(false);
    group.worker_started(0);
    group.end_window(Instant::now());
    burn(Duration::from_millis(60));
    group.end_window(Instant::now() + Duration::from_millis(100));
    assert_eq!(
        series(&metrics, "dialtone_proxy_udp_receiving_workers", "udp:"),
        1.0
    );
}

/// Runs `worker_started(0)` of `group` on a thread of its own, which waits until told to end;
/// returns its id and the sender that ends it.
fn start_worker_thread(
    group: &Arc<UdpGroup>,
) -> (
    i32,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
    let group = group.clone();
    let thread = std::thread::spawn(move || {
        group.worker_started(0);
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = end_rx.recv();
    });
    (tid_rx.recv().unwrap(), end_tx, thread)
}

#[test]
fn auto_pins_the_workers_while_gathered_and_lets_them_go_while_spread() {
    let allowed = worker_cpus::cpus_of_thread(0).unwrap();
    if allowed.len() < 2 {
        eprintln!("skipped: this process may use one CPU only, where nothing is pinned");
        return;
    }
    let placement = worker_cpus::plan(&WorkerCpus::Auto, &allowed, 2, Some(allowed[1])).unwrap();
    let (group, _metrics) = placed_group(true, placement);
    let group = Arc::new(group);
    let (tid, end, thread) = start_worker_thread(&group);
    let cpus = || worker_cpus::cpus_of_thread(tid).unwrap();
    assert_eq!(cpus(), [allowed[1]], "gathered as it starts: pinned");

    group.steer(|governor| governor.window(1.0));
    assert_eq!(cpus(), allowed, "spread: the kernel places it");

    for _ in 0..CALM_WINDOWS {
        group.steer(|governor| governor.window(0.0));
    }
    assert_eq!(cpus(), [allowed[1]], "gathered again: pinned again");
    end.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn listed_cpus_hold_whatever_the_load() {
    let allowed = worker_cpus::cpus_of_thread(0).unwrap();
    let last = *allowed.last().unwrap();
    let listed = WorkerCpus::List(vec![last]);
    let placement = worker_cpus::plan(&listed, &allowed, 2, None).unwrap();
    let (group, _metrics) = placed_group(true, placement);
    let group = Arc::new(group);
    let (tid, end, thread) = start_worker_thread(&group);
    group.steer(|governor| governor.window(1.0));
    assert_eq!(worker_cpus::cpus_of_thread(tid).unwrap(), [last]);
    end.send(()).unwrap();
    thread.join().unwrap();
}
