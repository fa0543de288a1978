//! The transport actors: they own the sockets and the timers, hand every received message to
//! the [`ProxyCore`], and carry out the [`Action`]s it returns. They hold no protocol logic.
//!
//! - [`udp::UdpWorker`]: one per worker thread, each with its own `SO_REUSEPORT` socket on the
//!   same address; [`balance`] picks which of them receive.
//! - [`tcp::TcpListenerActor`] and [`tcp::TcpConnection`]: one actor per connection, framing
//!   messages by Content-Length (`dialtone_sip::StreamFramer`).
//! - [`Outbound`]: sends from any thread, over UDP or an existing or new TCP connection.
//! - [`dns`]: RFC 3263 resolution for next hops named by a domain.

/// The three callbacks into the core that every transport actor handles the same way: a fired
/// timer, a finished DNS lookup and a failed send. The actor needs `core`, `outbound` and
/// `resolver` fields.
macro_rules! core_callbacks {
    ($actor:ty) => {
        impl actix::Handler<$crate::transport::TimerFired> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                $crate::transport::TimerFired(id): $crate::transport::TimerFired,
                ctx: &mut actix::Context<Self>,
            ) {
                let actions = self.core.handle_timer(
                    std::time::Instant::now(),
                    $crate::transport::wall_now(),
                    &id,
                );
                $crate::transport::execute(actions, &self.outbound, &self.resolver, ctx);
            }
        }

        impl actix::Handler<$crate::transport::TransportFailed> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                $crate::transport::TransportFailed(bytes): $crate::transport::TransportFailed,
                ctx: &mut actix::Context<Self>,
            ) {
                let actions = self.core.handle_transport_error(
                    std::time::Instant::now(),
                    $crate::transport::wall_now(),
                    &bytes,
                );
                $crate::transport::execute(actions, &self.outbound, &self.resolver, ctx);
            }
        }

        impl actix::Handler<$crate::transport::Resolved> for $actor {
            type Result = ();
            fn handle(&mut self, msg: $crate::transport::Resolved, ctx: &mut actix::Context<Self>) {
                let actions = self.core.handle_resolved(
                    std::time::Instant::now(),
                    $crate::transport::wall_now(),
                    &msg.key,
                    msg.transport,
                    &msg.addrs,
                );
                $crate::transport::execute(actions, &self.outbound, &self.resolver, ctx);
            }
        }
    };
}
pub(crate) use core_callbacks;

/// [`Stored`] for an actor that sends a released response through [`Outbound`] (a TCP
/// connection writes its own, see `tcp.rs`). The actor needs an `outbound` field.
macro_rules! sends_when_stored {
    ($actor:ty) => {
        impl actix::Handler<$crate::transport::Stored> for $actor {
            type Result = ();
            fn handle(
                &mut self,
                stored: $crate::transport::Stored,
                ctx: &mut actix::Context<Self>,
            ) {
                use actix::AsyncContext;
                if let Some((to, bytes)) = $crate::transport::held_response(&self.core, stored) {
                    self.outbound
                        .send(to, bytes, || Some(ctx.address().recipient()));
                }
            }
        }
    };
}
pub(crate) use sends_when_stored;

/// [`FiresTimers`] for an actor with `core`, `outbound`, `resolver` and `tick` fields.
macro_rules! fires_timers {
    ($actor:ty) => {
        impl $crate::transport::FiresTimers for $actor {
            fn timer_parts(
                &self,
            ) -> (
                std::sync::Arc<$crate::proxy_core::ProxyCore>,
                std::sync::Arc<$crate::transport::Outbound>,
                std::sync::Arc<$crate::transport::dns::SipResolver>,
            ) {
                (
                    self.core.clone(),
                    self.outbound.clone(),
                    self.resolver.clone(),
                )
            }
            fn tick_slot(&mut self) -> &mut Option<(actix::SpawnHandle, std::time::Instant)> {
                &mut self.tick
            }
        }
    };
}
pub(crate) use fires_timers;

mod arrival;
pub mod balance;
pub mod dns;
mod receive_batch;
pub mod routes;
pub mod tcp;
pub mod timers;
pub mod udp;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix::prelude::*;
use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

mod actions;
pub(crate) use actions::held_response;
pub use actions::{execute, execute_detached, Resolved, Stored, TimerFired, TransportFailed};

use crate::proxy_core::{reply, Destination, ProxyCore, Source};
use crate::registrar::StoreWriter;
use crate::trace::{Capture, Direction};
use dialtone_transaction::Transport;

/// How long an outgoing TCP connect may take before the messages waiting for it are reported
/// as failed (the kernel alone would retry a SYN for about two minutes, longer than any SIP
/// transaction lives; RFC 3261 Timer B and F are 32 s).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Messages that may wait for one connection to open; more are reported as failed at once.
const MAX_WAITING: usize = 256;

/// A message waiting for its connection to open, and who to tell if it cannot.
type Waiting = (Bytes, Option<Recipient<TransportFailed>>);

/// Sends messages for the core, from whichever actor handled the input.
pub struct Outbound {
    /// One socket per UDP listen address (a clone of one of its workers' sockets), in the
    /// order of the listen addresses.
    udp: Vec<(SocketAddr, Arc<UdpSocket>)>,
    tcp_connections: DashMap<SocketAddr, Addr<tcp::TcpConnection>>,
    /// Messages waiting for a connection being opened, in the order they were sent (see
    /// `connect_and_send`).
    connecting: DashMap<SocketAddr, Vec<Waiting>>,
    core: std::sync::OnceLock<(Arc<ProxyCore>, Arc<dns::SipResolver>)>,
    tcp_local: Option<SocketAddr>,
    /// Set when tracing or HEP export is on (`crate::trace`).
    capture: std::sync::OnceLock<Capture>,
    /// The registrar store's writer, when bindings are persisted: the core's `Persist` goes
    /// to it, and its commits release the held 200s (`SendWhenStored`).
    store: std::sync::OnceLock<StoreWriter>,
    /// Every armed timer of the core (see `timers.rs` for why not `run_later`).
    pub timers: timers::TimerQueue,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("tcp_connections", &self.tcp_connections.len())
            .finish()
    }
}

impl Outbound {
    /// `udp` holds a clone of one worker socket per UDP listen address (the workers of one
    /// address share its port, so the Via is true whichever sends).
    pub fn new(udp: Vec<Arc<UdpSocket>>, tcp_local: Option<SocketAddr>) -> Arc<Outbound> {
        let udp = udp
            .into_iter()
            .filter_map(|socket| Some((socket.local_addr().ok()?, socket)))
            .collect();
        Arc::new(Outbound {
            udp,
            capture: std::sync::OnceLock::new(),
            store: std::sync::OnceLock::new(),
            timers: timers::TimerQueue::default(),
            tcp_connections: DashMap::new(),
            connecting: DashMap::new(),
            core: std::sync::OnceLock::new(),
            tcp_local,
        })
    }

    /// Lets new outgoing TCP connections deliver what they receive to the core, and resolve
    /// the next hops of what they receive with `resolver`.
    pub fn set_core(&self, core: Arc<ProxyCore>, resolver: Arc<dns::SipResolver>) {
        let _ = self.core.set((core, resolver));
    }

    /// True when messages are captured (call traces or HEP): receivers then ask the kernel
    /// for arrival times (`arrival.rs`).
    pub fn captures(&self) -> bool {
        self.capture.get().is_some()
    }

    /// Turns on message capture (the trace recorder, HEP export).
    pub fn set_capture(&self, capture: Capture) {
        let _ = self.capture.set(capture);
    }

    /// Persists through `store` from now on (see the `store` field).
    pub fn set_store(&self, store: StoreWriter) {
        let _ = self.store.set(store);
    }

    /// The registrar store's writer, when bindings are persisted.
    pub fn store(&self) -> Option<&StoreWriter> {
        self.store.get()
    }

    /// Hands a received message to the capture, if any (the receive hooks of the transports).
    /// `arrival`: when the kernel queued it, if known; else now.
    pub fn capture_received(&self, source: &Source, bytes: &Bytes, arrival: Option<SystemTime>) {
        if let Some(capture) = self.capture.get() {
            let at = arrival.unwrap_or_else(wall_now);
            capture.message(
                at,
                Direction::In,
                source.transport,
                source.local,
                source.addr,
                bytes,
            );
        }
    }

    /// Sent messages: from the UDP listen address, or (TCP) the TCP listen address, which is
    /// what the Via says even when an outgoing connection has an ephemeral port.
    pub(crate) fn capture_sent(&self, to: &Destination, bytes: &Bytes) {
        if let Some(capture) = self.capture.get() {
            let local = match to.transport {
                Transport::Udp => self.udp_socket_toward(to.addr).map(|(addr, _)| *addr),
                Transport::Tcp => self.tcp_local,
            };
            let local = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
            capture.message(
                wall_now(),
                Direction::Out,
                to.transport,
                local,
                to.addr,
                bytes,
            );
        }
    }

    /// The UDP socket a datagram to `peer` leaves from: on a host with several networks, the
    /// one bound to the address the kernel would use to reach it, which is the address the
    /// core wrote in the Via (`ProxyIdentity::listen_toward`); else the only one.
    fn udp_socket_toward(&self, peer: SocketAddr) -> Option<&(SocketAddr, Arc<UdpSocket>)> {
        if self.udp.len() > 1 {
            if let Some((core, _)) = self.core.get() {
                let local = core.identity().listen_toward(Transport::Udp, peer);
                if let Some(found) = self.udp.iter().find(|(addr, _)| *addr == local) {
                    return Some(found);
                }
            }
        }
        self.udp.first()
    }

    /// Registers an accepted or connected TCP connection for reuse (RFC 3261 section 18.2.2:
    /// responses go back over the connection the request came on).
    pub fn register_tcp(&self, peer: SocketAddr, addr: Addr<tcp::TcpConnection>) {
        self.tcp_connections.insert(peer, addr);
    }

    /// Forgets a closed TCP connection, unless another connection to the same peer has taken
    /// its place in the registry since (one opened while this one was closing).
    pub fn unregister_tcp(&self, peer: &SocketAddr, closed: &Addr<tcp::TcpConnection>) {
        self.tcp_connections
            .remove_if(peer, |_, registered| registered == closed);
    }

    /// Open TCP connections.
    pub fn tcp_connection_count(&self) -> usize {
        self.tcp_connections.len()
    }

    /// Sends `bytes` to `to`. Errors are counted, never fatal: SIP retransmission recovers.
    /// When the transport refuses outright (no route, wrong address family, TCP connection
    /// refused), the recipient `on_failure` gives is told, so that the core can treat the
    /// forwarded request as answered 503 (RFC 3261 section 16.9) instead of waiting for Timer B
    /// or F. It is asked for only then, or when a TCP connect must hold it: an actor's
    /// recipient is an allocation, which made per message cost one more for every send.
    pub fn send(
        self: &Arc<Self>,
        to: Destination,
        bytes: Bytes,
        on_failure: impl FnOnce() -> Option<Recipient<TransportFailed>>,
    ) {
        self.capture_sent(&to, &bytes);
        match to.transport {
            Transport::Udp => {
                let Some((_, socket)) = self.udp_socket_toward(to.addr) else {
                    return;
                };
                for _ in 0..3 {
                    match socket.send_to(&bytes, to.addr) {
                        Ok(_) => return,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::yield_now();
                        }
                        Err(e) => {
                            tracing::debug!(to = %to.addr, error = %e, "udp send failed");
                            self.count_error("udp");
                            if let Some(recipient) = on_failure() {
                                recipient.do_send(TransportFailed(bytes));
                            }
                            return;
                        }
                    }
                }
                self.count_error("udp");
            }
            Transport::Tcp => {
                if let Some(conn) = self.tcp_connections.get(&to.addr) {
                    conn.do_send(tcp::Write(bytes));
                    return;
                }
                // A response whose request's connection has closed goes to the client's
                // listening address (RFC 3261 section 18.2.2), over a connection already open
                // to it or a new one. Only here, when the connection is gone, is the response
                // parsed again.
                let mut peer = to.addr;
                if let Some(addr) = reply::stream_reconnect_target(&bytes) {
                    if let Some(conn) = self.tcp_connections.get(&addr) {
                        conn.do_send(tcp::Write(bytes));
                        return;
                    }
                    peer = addr;
                }
                self.connect_and_send(peer, bytes, on_failure());
            }
        }
    }

    /// Opens a connection to `peer` and sends `bytes` over it. Whatever else is sent to `peer`
    /// meanwhile waits behind it and goes over the same connection, in order: two responses
    /// sent back to back (a 180 and a 200) must not open two connections, nor overtake each
    /// other. The connection is registered for reuse only once everything that waited has
    /// been queued to it, so nothing sent later can pass them.
    fn connect_and_send(
        self: &Arc<Self>,
        peer: SocketAddr,
        bytes: Bytes,
        on_failure: Option<Recipient<TransportFailed>>,
    ) {
        let Some((core, resolver)) = self.core.get().cloned() else {
            return;
        };
        match self.connecting.entry(peer) {
            Entry::Occupied(mut waiting) if waiting.get().len() < MAX_WAITING => {
                waiting.get_mut().push((bytes, on_failure));
                return;
            }
            Entry::Occupied(_) => {
                // A peer that does not answer the connect must not make the queue grow
                // without bound; SIP retransmission or the transaction's timeout takes over.
                self.count_error("tcp");
                if let Some(recipient) = on_failure {
                    recipient.do_send(TransportFailed(bytes));
                }
                return;
            }
            Entry::Vacant(slot) => {
                // Registered since the caller looked (a connection just opened).
                if let Some(conn) = self.tcp_connections.get(&peer) {
                    conn.do_send(tcp::Write(bytes));
                    return;
                }
                slot.insert(vec![(bytes, on_failure)]);
            }
        }
        let outbound = self.clone();
        let local = self.tcp_local;
        actix::spawn(async move {
            let connected =
                match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(peer))
                    .await
                {
                    Ok(connected) => connected,
                    Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
                };
            // Only this task removes the entry it was started for.
            let Entry::Occupied(mut waiting) = outbound.connecting.entry(peer) else {
                return;
            };
            match connected {
                Ok(stream) => {
                    let local = stream.local_addr().ok().or(local).unwrap_or(peer);
                    let connection = tcp::TcpConnection::start_for(
                        stream,
                        peer,
                        local,
                        core,
                        outbound.clone(),
                        resolver,
                    );
                    for (bytes, _) in waiting.get_mut().drain(..) {
                        connection.do_send(tcp::Write(bytes));
                    }
                    outbound.register_tcp(peer, connection);
                    waiting.remove();
                }
                Err(e) => {
                    tracing::debug!(to = %peer, error = %e, "tcp connect failed");
                    outbound.count_error("tcp");
                    for (bytes, on_failure) in waiting.remove() {
                        if let Some(recipient) = on_failure {
                            recipient.do_send(TransportFailed(bytes));
                        }
                    }
                }
            }
        });
    }

    fn count_error(&self, transport: &str) {
        if let Some((core, _)) = self.core.get() {
            core.metrics()
                .socket_errors
                .with_label_values(&[transport])
                .inc();
        }
    }
}

/// A transport actor that fires the core's due timers (the UDP workers; the TCP listener of a
/// proxy without UDP). Its next tick is armed for the earliest timer in the shared queue, no
/// sooner than [`timers::TICK`] and no later than [`timers::IDLE_TICK`]: a proxy with no
/// transaction pending (a registrar under REGISTER load keeps none) does not wake up 200 times
/// a second for nothing.
pub(crate) trait FiresTimers:
    Actor<Context = Context<Self>>
    + Handler<TimerFired>
    + Handler<Resolved>
    + Handler<TransportFailed>
    + Handler<Stored>
{
    /// The core, the outbound side and the resolver the fired timers need.
    fn timer_parts(&self) -> (Arc<ProxyCore>, Arc<Outbound>, Arc<dns::SipResolver>);
    /// The armed tick: its handle and when it fires.
    fn tick_slot(&mut self) -> &mut Option<(SpawnHandle, Instant)>;
}

/// Makes sure `act` ticks no later than `at`.
pub(crate) fn arm_tick<A: FiresTimers>(act: &mut A, ctx: &mut Context<A>, at: Instant) {
    if let Some((handle, armed_at)) = *act.tick_slot() {
        if armed_at <= at {
            return;
        }
        ctx.cancel_future(handle);
    }
    let delay = at.saturating_duration_since(Instant::now());
    let handle = ctx.run_later(delay, |act, ctx| on_tick(act, ctx));
    *act.tick_slot() = Some((handle, at));
}

/// After `act` armed timers itself: ticks in time for the earliest one.
pub(crate) fn tick_for_armed_timers<A: FiresTimers>(act: &mut A, ctx: &mut Context<A>) {
    let (_, outbound, _) = act.timer_parts();
    let now = Instant::now();
    if let Some(due) = outbound.timers.next_due(now) {
        arm_tick(act, ctx, due.max(now + timers::TICK));
    }
}

fn on_tick<A: FiresTimers>(act: &mut A, ctx: &mut Context<A>) {
    *act.tick_slot() = None;
    let (core, outbound, resolver) = act.timer_parts();
    fire_due_timers(&core, &outbound, &resolver, ctx);
    let now = Instant::now();
    let next = outbound
        .timers
        .next_due(now)
        .map_or(now + timers::IDLE_TICK, |due| {
            due.clamp(now + timers::TICK, now + timers::IDLE_TICK)
        });
    arm_tick(act, ctx, next);
}

/// Fires the core's due timers from inside actor `A`.
pub fn fire_due_timers<A>(
    core: &Arc<ProxyCore>,
    outbound: &Arc<Outbound>,
    resolver: &Arc<dns::SipResolver>,
    ctx: &mut Context<A>,
) where
    A: Actor<Context = Context<A>>
        + Handler<TimerFired>
        + Handler<Resolved>
        + Handler<TransportFailed>
        + Handler<Stored>,
{
    let (now, wall) = (Instant::now(), wall_now());
    for id in outbound.timers.pop_due(now, timers::FIRE_BATCH) {
        let actions = core.handle_timer(now, wall, &id);
        execute(actions, outbound, resolver, ctx);
    }
}

/// The wall clock, read only here and in the actors (the core takes time as a parameter).
pub fn wall_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy_core::HeldRequest;

    /// Collects what the transport reports as failed.
    struct Failures(std::sync::mpsc::Sender<Bytes>);

    impl Actor for Failures {
        type Context = Context<Self>;
    }

    impl Handler<TransportFailed> for Failures {
        type Result = ();
        fn handle(&mut self, TransportFailed(bytes): TransportFailed, _: &mut Context<Self>) {
            let _ = self.0.send(bytes);
        }
    }

    #[actix_rt::test]
    async fn messages_for_a_peer_that_never_accepts_fail_after_the_connect_timeout() {
        use socket2::{Domain, Socket, Type};
        // A listener that never accepts, with its backlog full: the kernel drops further SYNs,
        // so a connect to it hangs, as to a peer behind a firewall that drops packets.
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        listener
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        listener.listen(0).unwrap();
        let peer = listener.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..4 {
            let filler = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
            filler.set_nonblocking(true).unwrap();
            let _ = filler.connect(&peer.into());
            fillers.push(filler);
        }
        let core = Arc::new(crate::proxy_core::tests::core());
        let outbound = Outbound::new(Vec::new(), None);
        outbound.set_core(core, Arc::new(dns::SipResolver::new(&[])));
        let (failed_tx, failed) = std::sync::mpsc::channel();
        let failures = Failures(failed_tx).start();
        let to = Destination {
            transport: Transport::Tcp,
            addr: peer,
        };
        tokio::time::pause();
        for i in 0..=MAX_WAITING {
            let request = Bytes::from(format!("OPTIONS sip:{i}@x SIP/2.0\r\n\r\n"));
            outbound.send(to, request, || Some(failures.clone().recipient()));
        }
        // One more than may wait is refused at once; the rest wait for the connect.
        tokio::task::yield_now().await;
        assert_eq!(
            failed.try_iter().collect::<Vec<_>>(),
            [Bytes::from(format!(
                "OPTIONS sip:{MAX_WAITING}@x SIP/2.0\r\n\r\n"
            ))]
        );
        // Paused time moves on to the timeout once nothing else can happen.
        tokio::time::sleep(CONNECT_TIMEOUT + std::time::Duration::from_secs(1)).await;
        let mut reported = Vec::new();
        for _ in 0..100 {
            reported.extend(failed.try_iter());
            if reported.len() >= MAX_WAITING {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            reported.len(),
            MAX_WAITING,
            "all reported once the connect timed out"
        );
        assert_eq!(
            reported[0],
            Bytes::from_static(b"OPTIONS sip:0@x SIP/2.0\r\n\r\n"),
            "reported in the order they were sent"
        );
        assert!(outbound.connecting.is_empty());
        drop(fillers);
    }

    #[test]
    fn a_held_register_gets_its_200_when_saved_and_the_500_when_not() {
        let core = crate::proxy_core::tests::core();
        let request = Bytes::from_static(b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKh1\r\nMax-Forwards: 70\r\nFrom: <sip:j@127.0.0.1>;tag=1\r\nTo: <sip:j@127.0.0.1>\r\nCall-ID: h1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n");
        let held = |saved| Stored {
            to: Destination {
                transport: Transport::Udp,
                addr: "127.0.0.2:5062".parse().unwrap(),
            },
            bytes: Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"),
            saved,
            request: HeldRequest {
                request: request.clone(),
                source: "127.0.0.2:5062".parse().unwrap(),
            },
        };
        let (_, ok) = held_response(&core, held(true)).unwrap();
        assert_eq!(ok, Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n"));
        let (_, not_stored) = held_response(&core, held(false)).unwrap();
        assert!(not_stored.starts_with(b"SIP/2.0 500 "), "{not_stored:?}");
    }
}
