//! The UDP worker actor: one per worker thread (arbiter), each owning an `SO_REUSEPORT` socket
//! bound to the same listen address, so that the kernel spreads datagrams over the cores. On
//! each readiness event it drains the socket (up to a batch), hands each datagram to the core,
//! and carries out the actions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{dns::SipResolver, execute, wall_now, Outbound};
use crate::proxy_core::{Action, ProxyCore, Source};
use dialtone_transaction::Transport;

/// Datagrams drained from the socket after one readiness event.
const BATCH: usize = 64;
/// Send buffer asked of the kernel: a send never waits on loopback, but a burst of forwarded
/// requests to a slow link must not fail with `WouldBlock`.
const SEND_BUFFER: usize = 4 * 1024 * 1024;
/// Largest datagram accepted (the message size cap is 64 KiB).
const MAX_DATAGRAM: usize = 65_535;

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

/// Makes the kernel hand each datagram arriving at `socket`'s address to one of the `workers`
/// sockets of its `SO_REUSEPORT` group picked at random, instead of hashing the sender's
/// address and port (see `config::UdpBalance`). A classic BPF program attached to the group
/// (`SO_ATTACH_REUSEPORT_CBPF`, Linux 4.5) returns the index of the socket, in the order they
/// were bound: a random number (`SKF_AD_RANDOM`) modulo `workers`.
///
/// Why: with the hash, a worker that only a quiet peer reaches sleeps for long stretches, and
/// its caches go cold: at 1000 REGISTERs/s from SIPp, a probe REGISTER hashed to the other
/// worker cost about 70 µs of CPU against 26 µs on the busy one, and its round trip took
/// 0.21 ms against 0.16 ms spread this way (`../shared/bench`, 8 runs each). One peer sending
/// everything from one port also kept a single core.
pub fn spread_each_datagram(socket: &std::net::UdpSocket, workers: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
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
    let program = [
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
    /// One receive buffer, reused: each datagram is copied out at its real size (zeroing a
    /// fresh 64 KiB buffer per datagram cost more than parsing the message).
    buf: Vec<u8>,
    /// This worker's own address, held for as long as it runs. Actix wakes an actor's mailbox
    /// when the last sender to it is dropped; a held REGISTER's 200 goes out from the store's
    /// writer thread, whose callback drops a clone of this address, and without this one that
    /// clone was the last: every commit woke the worker from `epoll_wait` for nothing.
    me: Option<Addr<UdpWorker>>,
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
            buf: vec![0u8; MAX_DATAGRAM],
            me: None,
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
        // At most BATCH datagrams per turn, so that timers and other messages get their turn;
        // readiness stays set until a read would block, so the stream wakes us again at once.
        for _ in 0..BATCH {
            let buf = &mut self.buf;
            let stamped = self.stamped;
            let received = self.socket.try_io(Interest::READABLE, |socket| {
                if stamped {
                    super::arrival::recv_stamped(socket, buf)
                } else {
                    socket.recv_from(buf).map(|(n, from)| (n, from, None))
                }
            });
            let (n, from, arrival) = match received {
                Ok(received) => received,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // Rare on an unconnected socket (no ICMP errors surface here); counted with
                    // the send errors so that /metrics shows it, and the socket keeps serving.
                    tracing::debug!(error = %e, "udp receive failed");
                    self.core
                        .metrics()
                        .socket_errors
                        .with_label_values(&["udp"])
                        .inc();
                    break;
                }
            };
            let bytes = Bytes::copy_from_slice(&self.buf[..n]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// How many of `count` datagrams from one client socket each of two sockets in a
    /// reuseport group receives, with or without spreading.
    fn received_by_each(spread: bool, count: usize) -> [usize; 2] {
        let first = bind_reuseport("127.0.0.1:0".parse().unwrap(), 1 << 20).unwrap();
        let addr = first.local_addr().unwrap();
        let second = bind_reuseport(addr, 1 << 20).unwrap();
        if spread {
            spread_each_datagram(&first, 2).unwrap();
        }
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
        let hashed = received_by_each(false, 200);
        assert!(hashed.contains(&0), "one flow, one socket: {hashed:?}");
        let spread = received_by_each(true, 200);
        assert!(
            spread.iter().all(|&n| n > 20),
            "both sockets take a share: {spread:?}"
        );
    }

    #[test]
    fn no_worker_is_refused() {
        let socket = bind_reuseport("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
        assert!(spread_each_datagram(&socket, 0).is_err());
    }
}
