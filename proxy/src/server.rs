//! Starts the proxy: the registrar (with its store), the core, one UDP worker per arbiter for
//! each UDP listen address, a TCP listener per TCP address, and the admin HTTP server; then
//! waits for SIGTERM or Ctrl-C, flushes the registrations store and stops.

use dialtone_transaction::Transport;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use crate::calls::CallTracker;
use crate::config::{Config, ConfigError, UdpBalance};
use crate::error::ProxyError;
use crate::hep::HepExporter;
use crate::metrics::ProxyMetrics;
use crate::proxy_core::ProxyCore;
use crate::registrar::{start_registrar, Flush, LocationChoice, Registrar};
use crate::trace::{Capture, TraceRecorder};
use crate::transport::balance::{self, Receiving, UdpGroup};
use crate::transport::dns::SipResolver;
use crate::transport::routes::KernelRoutes;
use crate::transport::tcp::TcpListenerActor;
use crate::transport::udp::{bind_reuseport, UdpWorker};
use crate::transport::Outbound;
use crate::worker_cpus;

/// The longest an orderly stop may take before the process exits anyway.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the proxy until a stop signal. Must be called outside any runtime.
pub fn run(config: Config) -> Result<(), ProxyError> {
    let system = actix::System::new();
    system.block_on(async move { serve(config).await })
}

async fn serve(config: Config) -> Result<(), ProxyError> {
    // Sockets first, so that a port in use fails start-up before anything else starts.
    // SO_REUSEPORT would let a second proxy share the port silently (the kernel would split the
    // traffic between the two), so an exclusive probe bind checks that the port is free.
    for listen in config
        .listen
        .iter()
        .filter(|l| l.transport == Transport::Udp)
    {
        std::net::UdpSocket::bind(listen.addr).map_err(ProxyError::io(format!(
            "listen udp:{} (address in use?)",
            listen.addr
        )))?;
    }
    // One socket per worker on each UDP address; the first of each also serves sends from
    // any worker (from the address that reaches the destination, see `Outbound`), and the
    // program that picks the receiving socket is attached through it (`balance.rs`).
    let mut send_sockets = Vec::new();
    let mut udp_groups = Vec::new();
    for listen in config
        .listen
        .iter()
        .filter(|l| l.transport == Transport::Udp)
    {
        let mut sockets = Vec::new();
        let mut program = None;
        let mut first = None;
        for index in 0..config.workers {
            let socket = bind_reuseport(listen.addr, config.udp_receive_buffer)
                .map_err(ProxyError::io(format!("listen udp:{}", listen.addr)))?;
            if index == 0 && config.workers > 1 {
                // The program belongs to the group; the sockets bound next join it.
                let receiving = match config.udp_balance {
                    UdpBalance::Adaptive => Some(Receiving::First),
                    UdpBalance::Datagram => Some(Receiving::All),
                    UdpBalance::Flow => None,
                };
                if let Some(receiving) = receiving {
                    match balance::attach(&socket, receiving, config.workers) {
                        Ok(()) => program = Some(receiving),
                        Err(e) => tracing::warn!(addr = %listen.addr, error = %e,
                            "udp-balance not available; each peer goes to one worker"),
                    }
                }
            }
            if index == 0 {
                let sender = socket
                    .try_clone()
                    .map_err(ProxyError::io(format!("listen udp:{}", listen.addr)))?;
                first = Some(Arc::new(sender));
            }
            sockets.push(socket);
        }
        // `workers` is at least 1 (config.rs), so the first socket was bound.
        let Some(first) = first else { continue };
        send_sockets.push(first.clone());
        udp_groups.push((listen.addr, first, program, sockets));
    }
    // Kept and handed to the HTTP server: binding again later left a window in which another
    // process could take the port (it happened to a test proxy whose neighbour picked it).
    let http_listener = std::net::TcpListener::bind(config.http).map_err(ProxyError::io(
        format!("http {} (address in use?)", config.http),
    ))?;
    let mut tcp_listeners = Vec::new();
    for listen in config
        .listen
        .iter()
        .filter(|l| l.transport == Transport::Tcp)
    {
        let listener = tokio::net::TcpListener::bind(listen.addr)
            .await
            .map_err(ProxyError::io(format!("listen tcp:{}", listen.addr)))?;
        tcp_listeners.push(listener);
    }

    // Everything that can fail on a bad setting comes before the registrar starts: an error
    // returned after it would drop the runtime under a running actor, and actix then panics,
    // burying the message.
    let placement = worker_cpus::place(&config.worker_cpus, config.workers).map_err(|reason| {
        ConfigError::Invalid {
            key: "worker-cpus",
            reason,
        }
    })?;
    match placement.unpinned_because() {
        Some(because) => tracing::info!(because, "udp workers not pinned to CPUs"),
        None => {
            let cpus: Vec<usize> = (0..config.workers)
                .filter_map(|i| placement.cpu_of(i))
                .collect();
            tracing::info!(cpus = %worker_cpus::cpu_list(&cpus), follows_load = placement.follows_load(),
                "udp workers pinned to CPUs, in order (with follows_load, only while the load is light)");
        }
    }
    let hep = match config.hep {
        Some(collector) => Some(
            HepExporter::new(collector).map_err(ProxyError::io(format!("hep udp:{collector}")))?,
        ),
        None => None,
    };

    let metrics = ProxyMetrics::new();
    let Registrar {
        location,
        mailboxes,
        writer: store,
        actor: registrar,
        link,
    } = start_registrar(
        &config.location,
        config.journal_sync,
        metrics.location_sync.clone(),
    )?;
    metrics.registrations_active.set(location.count() as i64);
    let calls = CallTracker::new(metrics.clone());
    let mut core = ProxyCore::new(&config, location, metrics, calls).with_mailboxes(mailboxes);
    let redis = match &config.location {
        LocationChoice::Redis(target) => Some(target.clone()),
        _ => None,
    };
    if let Some(target) = &redis {
        match crate::cluster_link::shared_nonce_key(target) {
            Ok((key, node)) => core = core.with_nonce_key(key, node),
            Err(error) => tracing::error!(
                %error,
                "no shared nonce key: this node's challenges must be answered to it"
            ),
        }
    }
    if core.identity().is_multihomed(Transport::Udp)
        || core.identity().is_multihomed(Transport::Tcp)
    {
        core = core.with_routes(Arc::new(KernelRoutes::default()));
    }
    let core = Arc::new(core);
    let resolver = Arc::new(SipResolver::new(&config.dns));

    let tcp_local = config
        .listen
        .iter()
        .find(|l| l.transport == Transport::Tcp)
        .map(|l| l.addr);
    let outbound = Outbound::new(send_sockets, tcp_local);
    outbound.set_core(core.clone(), resolver.clone());
    if let Some(store) = &store {
        outbound.set_store(store.clone());
    }
    let recorder =
        (config.trace_calls > 0).then(|| Arc::new(TraceRecorder::new(config.trace_calls)));
    if let Some(capture) = Capture::new(recorder.clone(), hep) {
        outbound.set_capture(capture);
    }

    let mut arbiters = Vec::new();
    let mut groups = Vec::new();
    for (listen, first, program, sockets) in udp_groups {
        let group = Arc::new(UdpGroup::new(
            listen,
            first,
            sockets.len(),
            program,
            config.udp_balance == UdpBalance::Adaptive,
            placement.clone(),
            core.metrics(),
        ));
        for (index, socket) in sockets.into_iter().enumerate() {
            let arbiter = Arbiter::new();
            let (core, outbound, resolver) = (core.clone(), outbound.clone(), resolver.clone());
            let place = (group.clone(), index);
            let started = arbiter.spawn_fn(move || {
                match UdpWorker::new(socket, core, outbound, resolver, place) {
                    Ok(worker) => {
                        worker.start();
                    }
                    Err(e) => {
                        tracing::error!(%listen, worker = index, error = %e,
                            "udp worker failed to start")
                    }
                }
            });
            if !started {
                return Err(ProxyError::WorkerNotStarted(arbiters.len()));
            }
            arbiters.push(arbiter);
        }
        groups.push(group);
    }
    if !groups.is_empty() {
        actix::spawn(balance::watch(groups));
    }
    // Timers are fired by the UDP workers; without any, the first TCP listener does it.
    let mut timers_fired = !arbiters.is_empty();
    for listener in tcp_listeners {
        let mut actor =
            TcpListenerActor::new(listener, core.clone(), outbound.clone(), resolver.clone())
                .map_err(ProxyError::io("listen tcp"))?;
        if !timers_fired {
            actor = actor.firing_timers();
            timers_fired = true;
        }
        actor.start();
    }
    let cluster = match redis {
        Some(target) => Some(crate::cluster_link::start(
            target,
            core.clone(),
            outbound.clone(),
        )?),
        None => None,
    };
    let http = crate::http::start(
        http_listener,
        core.clone(),
        outbound.clone(),
        recorder,
        store,
        link,
        cluster,
    )
    .map_err(ProxyError::io(format!("http {}", config.http)))?;
    let http_handle = http.handle();
    actix::spawn(http);

    for listen in &config.listen {
        let kind = listen.transport.as_str();
        println!("dialtone-proxy listening on {kind}:{}", listen.addr);
    }
    println!("dialtone-proxy admin http://{}/metrics", config.http);
    tracing::info!(workers = config.workers, realm = %config.realm, "dialtone-proxy ready");

    wait_for_stop_signal().await;
    tracing::info!("stopping");
    // A stop must not hang on a stuck store or an idle HTTP keep-alive: bounded waits, and a
    // watchdog that ends the process if the orderly path takes too long.
    std::thread::spawn(|| {
        std::thread::sleep(STOP_DEADLINE);
        eprintln!("dialtone-proxy: stop took longer than {STOP_DEADLINE:?}; exiting");
        std::process::exit(1);
    });
    match tokio::time::timeout(Duration::from_secs(5), registrar.send(Flush)).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "flushing registrations failed"),
        Err(_) => tracing::error!("flushing registrations timed out"),
        _ => {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), http_handle.stop(false)).await;
    for arbiter in arbiters {
        arbiter.stop();
    }
    System::current().stop();
    Ok(())
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
