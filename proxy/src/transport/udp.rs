//! The UDP worker actor: one per worker thread (arbiter), each owning an `SO_REUSEPORT` socket
//! bound to the same listen address, so that the kernel can spread datagrams over the cores
//! (`balance.rs` decides how). On each readiness event it drains the socket (up to a batch,
//! received with `receive_batch.rs`), hands each datagram to the core, and carries out the
//! actions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::balance::UdpGroup;
use super::receive_batch::ReceiveBatch;
use super::{dns::SipResolver, execute, wall_now, Outbound};
use crate::proxy_core::{Action, ProxyCore, Source};
use dialtone_transaction::Transport;

/// Datagrams drained from the socket after one readiness event.
const BATCH: usize = 64;
/// Send buffer asked of the kernel: a send never waits on loopback, but a burst of forwarded
/// requests to a slow link must not fail with `WouldBlock`.
const SEND_BUFFER: usize = 4 * 1024 * 1024;

/// Opens a UDP socket with `SO_REUSEPORT`, a receive buffer of `receive_buffer` bytes (see
/// `config::DEFAULT_UDP_RECEIVE_BUFFER` for the size) and a large send buffer.
pub fn bind_reuseport(
    addr: SocketAddr,
    receive_buffer: usize,
) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if let Err(e) = socket.set_recv_buffer_size(receive_buffer) {
        tracing::warn!(%addr, error = %e, "udp-receive-buffer not applied");
    }
    // Linux reports twice the size it grants; less than asked means `net.core.rmem_max` capped it.
    if let Ok(granted) = socket.recv_buffer_size() {
        if granted < receive_buffer {
            tracing::warn!(%addr, asked = receive_buffer, granted = granted / 2,
                "udp-receive-buffer capped by the kernel (net.core.rmem_max)");
        }
    }
    let _ = socket.set_send_buffer_size(SEND_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The socket has datagrams to read: the worker drains it in its handler.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Readable;

/// One UDP worker.
pub struct UdpWorker {
    /// Registered for readability only: with write interest too (as `tokio::net::UdpSocket`
    /// registers), every datagram sent on the socket, by any worker, raised an edge-triggered
    /// EPOLLOUT event that woke this worker for nothing, delaying the next request and the
    /// peer that shares its core (one extra `epoll_wait` per send, measured with `perf trace`).
    socket: Arc<AsyncFd<std::net::UdpSocket>>,
    local: SocketAddr,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    resolver: Arc<SipResolver>,
    tick: Option<(SpawnHandle, Instant)>,
    /// Whether the socket stamps arrivals (only when messages are captured: `arrival.rs`).
    stamped: bool,
    /// The receive buffers, reused: each datagram is copied out at its real size (zeroing a
    /// fresh 64 KiB buffer per datagram cost more than parsing the message).
    batch: ReceiveBatch,
    /// This worker's own address, held for as long as it runs. Actix wakes an actor's mailbox
    /// when the last sender to it is dropped; a held REGISTER's 200 goes out from the store's
    /// writer thread, whose callback drops a clone of this address, and without this one that
    /// clone was the last: every commit woke the worker from `epoll_wait` for nothing.
    me: Option<Addr<UdpWorker>>,
    /// `dialtone_proxy_udp_datagrams_received_total` of this worker.
    received: Option<prometheus::IntCounter>,
}

impl UdpWorker {
    /// Wraps an already bound socket, the one at `index` in `group`; must be called on the
    /// worker's arbiter, whose thread the group then measures as this worker's.
    pub fn new(
        socket: std::net::UdpSocket,
        core: Arc<ProxyCore>,
        outbound: Arc<Outbound>,
        resolver: Arc<SipResolver>,
        (group, index): (Arc<UdpGroup>, usize),
    ) -> std::io::Result<UdpWorker> {
        let local = socket.local_addr()?;
        group.worker_started(index);
        let stamped = outbound.captures()
            && match super::arrival::stamp_arrivals(&socket) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(%local, error = %e, "no arrival times for captured messages");
                    false
                }
            };
        // SAFETY: a `std::net::UdpSocket` owns its descriptor and returns the same one from
        // `as_raw_fd` until it is dropped, which happens only with the `AsyncFd` (the socket
        // moves into it); that is all `register_with_interest` requires.
        let socket = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let socket = Arc::new(socket);
        Ok(UdpWorker {
            socket,
            local,
            core,
            outbound,
            resolver,
            tick: None,
            stamped,
            batch: ReceiveBatch::default(),
            me: None,
            received: group.received_counter(index),
        })
    }
}

impl Actor for UdpWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        // The stream only says "readable"; the handler reads. Reading inside the stream and
        // handing the datagrams over as its items cost ~70 µs per wake-up between the read
        // and the handler at 1000 REGISTERs/s (measured in the worker), which is most of the
        // proxy's latency at low load.
        let stream = futures_util::stream::unfold(self.socket.clone(), |socket| async move {
            // The guard is dropped without clearing: the handler's reads clear the readiness
            // when they meet `WouldBlock`.
            drop(socket.readable().await.ok()?);
            Some((Readable, socket))
        });
        ctx.add_stream(stream);
        super::arm_tick(self, ctx, Instant::now() + super::timers::IDLE_TICK);
    }
}

impl StreamHandler<Readable> for UdpWorker {
    fn handle(&mut self, _: Readable, ctx: &mut Context<Self>) {
        let mut armed = false;
        let mut handled = 0;
        // At most BATCH datagrams per turn, so that timers and other messages get their turn;
        // readiness stays set until a receive finds the queue dry, so the stream wakes us
        // again at once.
        while handled < BATCH {
            let batch = &mut self.batch;
            let stamped = self.stamped;
            batch.clear();
            let received = self
                .socket
                .try_io(Interest::READABLE, |socket| batch.receive(socket, stamped));
            for (datagram, from, arrival) in self.batch.datagrams() {
                handled += 1;
                if let Some(received) = &self.received {
                    received.inc();
                }
                let bytes = Bytes::copy_from_slice(datagram);
                let source = Source {
                    transport: Transport::Udp,
                    addr: from,
                    local: self.local,
                };
                self.outbound.capture_received(&source, &bytes, arrival);
                let actions = self
                    .core
                    .handle_message(Instant::now(), wall_now(), source, bytes);
                armed |= actions.iter().any(|a| matches!(a, Action::Arm { .. }));
                execute(actions, &self.outbound, &self.resolver, ctx);
            }
            match received {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // Rare on an unconnected socket (no ICMP errors surface here); counted
                    // with the send errors so that /metrics shows it, and the socket keeps
                    // serving.
                    tracing::debug!(error = %e, "udp receive failed");
                    self.core
                        .metrics()
                        .socket_errors
                        .with_label_values(&["udp"])
                        .inc();
                    break;
                }
            }
        }
        if armed {
            super::tick_for_armed_timers(self, ctx);
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(local = %self.local, "udp receive stream ended");
    }
}

super::core_callbacks!(UdpWorker);

super::sends_when_stored!(UdpWorker);

super::fires_timers!(UdpWorker);
