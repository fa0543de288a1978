//! The UDP worker actor: one per worker thread (arbiter), each owning an `SO_REUSEPORT` socket
//! bound to the same listen address, so that the kernel spreads datagrams over the cores. It
//! receives in batches (drains the socket after each readiness event), hands each datagram to
//! the core, and carries out the actions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};

use super::{dns::SipResolver, execute, wall_now, Outbound};
use crate::config::TransportKind;
use crate::core::{Action, ProxyCore, Source};

/// Datagrams drained from the socket after one readiness event.
const BATCH: usize = 64;
/// Receive buffer asked of the kernel: enough for a burst at tens of thousands per second.
const RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Largest datagram accepted (the message size cap is 64 KiB).
const MAX_DATAGRAM: usize = 65_535;

/// Opens a UDP socket with `SO_REUSEPORT` and large buffers.
pub fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    let _ = socket.set_send_buffer_size(RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A batch of received datagrams.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Datagrams(pub Vec<(Bytes, SocketAddr)>);

/// One UDP worker.
pub struct UdpWorker {
    socket: Arc<tokio::net::UdpSocket>,
    local: SocketAddr,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    resolver: Arc<SipResolver>,
    tick: Option<(SpawnHandle, Instant)>,
}

impl UdpWorker {
    /// Wraps an already bound socket; must be called on the worker's arbiter.
    pub fn new(
        socket: std::net::UdpSocket,
        core: Arc<ProxyCore>,
        outbound: Arc<Outbound>,
        resolver: Arc<SipResolver>,
    ) -> std::io::Result<UdpWorker> {
        let local = socket.local_addr()?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
        Ok(UdpWorker {
            socket,
            local,
            core,
            outbound,
            resolver,
            tick: None,
        })
    }
}

impl Actor for UdpWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let socket = self.socket.clone();
        // One receive buffer per worker, reused: each datagram is copied out at its real size
        // (zeroing a fresh 64 KiB buffer per datagram cost more than parsing the message).
        let stream = futures_util::stream::unfold(
            (socket, vec![0u8; MAX_DATAGRAM]),
            |(socket, mut buf)| async move {
                let mut batch = Vec::new();
                loop {
                    if socket.readable().await.is_err() {
                        return None;
                    }
                    loop {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => {
                                batch.push((Bytes::copy_from_slice(&buf[..n]), from));
                                if batch.len() == BATCH {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                    if !batch.is_empty() {
                        return Some((Datagrams(batch), (socket, buf)));
                    }
                }
            },
        );
        ctx.add_stream(stream);
        super::arm_tick(self, ctx, Instant::now() + super::timers::IDLE_TICK);
    }
}

impl StreamHandler<Datagrams> for UdpWorker {
    fn handle(&mut self, Datagrams(batch): Datagrams, ctx: &mut Context<Self>) {
        let mut armed = false;
        for (bytes, from) in batch {
            let source = Source {
                transport: TransportKind::Udp,
                addr: from,
                local: self.local,
            };
            self.outbound.capture_received(&source, &bytes);
            let actions = self
                .core
                .handle_message(Instant::now(), wall_now(), source, bytes);
            armed |= actions.iter().any(|a| matches!(a, Action::Arm { .. }));
            execute(actions, &self.outbound, &self.resolver, ctx);
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

impl super::FiresTimers for UdpWorker {
    fn timer_parts(&self) -> (Arc<ProxyCore>, Arc<Outbound>, Arc<SipResolver>) {
        (
            self.core.clone(),
            self.outbound.clone(),
            self.resolver.clone(),
        )
    }
    fn tick_slot(&mut self) -> &mut Option<(SpawnHandle, Instant)> {
        &mut self.tick
    }
}
