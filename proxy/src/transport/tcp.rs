//! TCP: a listener actor that accepts connections (at most [`MAX_CONNECTIONS_PER_SOURCE`] per
//! source address) and one actor per connection that frames messages by Content-Length,
//! answers CRLF keep-alive pings, and closes idle connections and connections stuck in the
//! middle of a message.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::{Buf, Bytes};
use dashmap::DashMap;
use dialtone_sip::framer::Frame;
use dialtone_sip::StreamFramer;

use super::{dns::SipResolver, execute, wall_now, Outbound, Stored};
use crate::proxy_core::{ProxyCore, Source};
use dialtone_transaction::Transport;

/// Connections accepted from one source address at once.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 64;
/// A connection with no traffic for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The most read from a connection at once.
const READ_CHUNK: usize = 16 * 1024;
/// A connection holding part of a message for this long is closed.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Bytes to write on a connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Write(pub Bytes);

/// Bytes read from a connection (or its end, as `None`).
#[derive(Message)]
#[rtype(result = "()")]
struct Read(Option<Bytes>);

/// Close the connection once the writes queued before it are done. It travels through the
/// actor's own mailbox, behind the responses already sent to it (`Write`), which a plain
/// `stop` would drop.
#[derive(Message)]
#[rtype(result = "()")]
struct CloseAfterWrites;

/// One TCP connection.
pub struct TcpConnection {
    peer: SocketAddr,
    local: SocketAddr,
    framer: StreamFramer,
    /// Written to directly from the actor; what the socket does not take at once waits in
    /// `unsent` for it to be writable. (A writer task with a channel cost about 1.5 KiB per
    /// connection, most of it the channel's first block, idle or not.)
    writer: Arc<tokio::net::tcp::OwnedWriteHalf>,
    unsent: VecDeque<Bytes>,
    /// Stop once `unsent` is written (`CloseAfterWrites` came while it was not).
    close_when_written: bool,
    reader: Option<tokio::net::tcp::OwnedReadHalf>,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    resolver: Arc<SipResolver>,
    last_activity: Instant,
    partial_since: Option<Instant>,
    per_source: Option<Arc<DashMap<IpAddr, usize>>>,
    /// The peer finished sending or sent what cannot be framed: nothing more is read.
    closing: bool,
}

impl TcpConnection {
    /// Starts an actor for a connected stream on the current arbiter. The caller registers it
    /// with [`Outbound::register_tcp`] once whatever must go first has been queued to it.
    pub fn start_for(
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        core: Arc<ProxyCore>,
        outbound: Arc<Outbound>,
        resolver: Arc<SipResolver>,
    ) -> Addr<TcpConnection> {
        Self::start_with(stream, peer, local, core, outbound, resolver, None)
    }

    fn start_with(
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        local: SocketAddr,
        core: Arc<ProxyCore>,
        outbound: Arc<Outbound>,
        resolver: Arc<SipResolver>,
        per_source: Option<Arc<DashMap<IpAddr, usize>>>,
    ) -> Addr<TcpConnection> {
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let core_metrics = core.metrics().clone();
        let addr = TcpConnection {
            peer,
            local,
            framer: StreamFramer::new(),
            writer: Arc::new(write_half),
            unsent: VecDeque::new(),
            close_when_written: false,
            reader: Some(read_half),
            core,
            outbound: outbound.clone(),
            resolver,
            last_activity: Instant::now(),
            partial_since: None,
            closing: false,
            per_source,
        }
        .start();
        core_metrics.tcp_connections.inc();
        addr
    }
}

impl Actor for TcpConnection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            let me = ctx.address();
            actix::spawn(async move {
                loop {
                    // Wait for data holding no buffer, then read into one on the stack, which
                    // is gone before the next wait: an idle connection keeps no read buffer
                    // (a 16 KiB one per connection was most of its memory).
                    if reader.readable().await.is_err() {
                        me.do_send(Read(None));
                        break;
                    }
                    let read = {
                        let mut buf = [0u8; READ_CHUNK];
                        match reader.try_read(&mut buf) {
                            Ok(0) => Err(()),
                            Ok(n) => Ok(Some(Bytes::copy_from_slice(&buf[..n]))),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                            Err(_) => Err(()),
                        }
                    };
                    match read {
                        Ok(Some(chunk)) => me.do_send(Read(Some(chunk))),
                        Ok(None) => continue,
                        Err(()) => {
                            me.do_send(Read(None));
                            break;
                        }
                    }
                }
            });
        }
        ctx.run_interval(Duration::from_secs(5), |act, ctx| {
            let now = Instant::now();
            let idle = now.duration_since(act.last_activity) > IDLE_TIMEOUT;
            let stuck = act
                .partial_since
                .is_some_and(|since| now.duration_since(since) > PARTIAL_TIMEOUT);
            if idle || stuck {
                tracing::debug!(peer = %act.peer, idle, stuck, "closing tcp connection");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.outbound.unregister_tcp(&self.peer, &ctx.address());
        self.core.metrics().tcp_connections.dec();
        if let Some(map) = &self.per_source {
            if let Some(mut count) = map.get_mut(&self.peer.ip()) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

impl Handler<Write> for TcpConnection {
    type Result = ();
    fn handle(&mut self, Write(bytes): Write, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        self.write(bytes, ctx);
    }
}

impl Handler<CloseAfterWrites> for TcpConnection {
    type Result = ();
    fn handle(&mut self, _: CloseAfterWrites, ctx: &mut Context<Self>) {
        if self.unsent.is_empty() {
            ctx.stop();
        } else {
            self.close_when_written = true;
        }
    }
}

impl TcpConnection {
    /// Writes `bytes` after what is already waiting: at once if the socket takes them, else
    /// when it becomes writable. A connection that fails to write is closed.
    fn write(&mut self, bytes: Bytes, ctx: &mut Context<Self>) {
        if !self.unsent.is_empty() {
            self.unsent.push_back(bytes);
            return;
        }
        // The usual case: the socket takes it all at once, and nothing is queued (queueing
        // first cost an allocation and a free per message).
        match self.writer.try_write(&bytes) {
            Ok(n) if n == bytes.len() => {}
            Ok(n) => {
                self.unsent.push_back(bytes.slice(n..));
                self.write_when_writable(ctx);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.unsent.push_back(bytes);
                self.write_when_writable(ctx);
            }
            Err(_) => ctx.stop(),
        }
    }

    /// Goes on with `unsent` once the socket can take more.
    fn write_when_writable(&mut self, ctx: &mut Context<Self>) {
        let writer = Arc::clone(&self.writer);
        let writable = async move { writer.writable().await };
        ctx.spawn(
            writable
                .into_actor(self)
                .map(|ready, act, ctx| match ready {
                    Ok(()) => act.write_unsent(ctx),
                    Err(_) => ctx.stop(),
                }),
        );
    }

    /// Writes what waits until the socket would block (then waits for it to be writable
    /// again), or until nothing waits (then stops if a close was asked for).
    fn write_unsent(&mut self, ctx: &mut Context<Self>) {
        while let Some(front) = self.unsent.front_mut() {
            match self.writer.try_write(front) {
                Ok(n) if n == front.len() => {
                    self.unsent.pop_front();
                }
                Ok(n) => front.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.write_when_writable(ctx);
                    return;
                }
                Err(_) => {
                    self.unsent.clear();
                    ctx.stop();
                    return;
                }
            }
        }
        self.unsent = VecDeque::new();
        if self.close_when_written {
            ctx.stop();
        }
    }
}

impl TcpConnection {
    /// Stops reading and closes after the responses already on their way (a peer that
    /// half-closes after its request still gets the answer). A 200 to a REGISTER may still be
    /// waiting for the store: the close then waits for the same commit, whose callbacks run in
    /// order, so its `Stored` reaches the mailbox first.
    fn close_after_writes(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        self.closing = true;
        let me = ctx.address();
        match self.outbound.store() {
            Some(store) => store.after_commit(Box::new(move |_| me.do_send(CloseAfterWrites))),
            None => me.do_send(CloseAfterWrites),
        }
    }
}

impl Handler<Read> for TcpConnection {
    type Result = ();
    fn handle(&mut self, Read(chunk): Read, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let Some(chunk) = chunk else {
            return self.close_after_writes(ctx);
        };
        self.last_activity = Instant::now();
        self.framer.push(&chunk);
        loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Message(bytes))) => {
                    let source = Source {
                        transport: Transport::Tcp,
                        addr: self.peer,
                        local: self.local,
                    };
                    self.outbound.capture_received(&source, &bytes, None);
                    let actions =
                        self.core
                            .handle_message(Instant::now(), wall_now(), source, bytes);
                    execute(actions, &self.outbound, &self.resolver, ctx);
                }
                Ok(Some(Frame::Ping)) => {
                    // RFC 5626 section 3.5.1: a CRLFCRLF ping gets a CRLF pong.
                    self.write(Bytes::from_static(b"\r\n"), ctx);
                }
                Ok(None) => break,
                Err(error) => {
                    // A stream that cannot be framed cannot be resynchronised (RFC 3261 18.3).
                    tracing::debug!(peer = %self.peer, %error, "closing unframeable tcp stream");
                    self.core
                        .metrics()
                        .parse_errors
                        .with_label_values(&["bad_content_length"])
                        .inc();
                    return self.close_after_writes(ctx);
                }
            }
        }
        self.framer.release_if_empty();
        self.partial_since = match (self.framer.pending(), self.partial_since) {
            (0, _) => None,
            (_, Some(since)) => Some(since),
            (_, None) => Some(Instant::now()),
        };
    }
}

super::core_callbacks!(TcpConnection);

impl Handler<Stored> for TcpConnection {
    type Result = ();
    /// A held 200 to a REGISTER that came over this connection is written here directly, not
    /// through [`Outbound`], which would queue it behind a `CloseAfterWrites` already waiting.
    fn handle(&mut self, stored: Stored, ctx: &mut Context<Self>) {
        let Some((to, bytes)) = super::held_response(&self.core, stored) else {
            return;
        };
        if to.transport == Transport::Tcp && to.addr == self.peer {
            self.outbound.capture_sent(&to, &bytes);
            self.last_activity = Instant::now();
            self.write(bytes, ctx);
        } else {
            self.outbound
                .send(to, bytes, || Some(ctx.address().recipient()));
        }
    }
}

/// Accepts TCP connections.
pub struct TcpListenerActor {
    listener: Option<tokio::net::TcpListener>,
    local: SocketAddr,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    resolver: Arc<SipResolver>,
    per_source: Arc<DashMap<IpAddr, usize>>,
    /// Fire the core's timers (set when no UDP worker does, i.e. a TCP-only proxy).
    fires_timers: bool,
    tick: Option<(SpawnHandle, Instant)>,
}

/// An accepted connection.
#[derive(Message)]
#[rtype(result = "()")]
struct Accepted(tokio::net::TcpStream, SocketAddr);

impl TcpListenerActor {
    /// Wraps a bound listener.
    pub fn new(
        listener: tokio::net::TcpListener,
        core: Arc<ProxyCore>,
        outbound: Arc<Outbound>,
        resolver: Arc<SipResolver>,
    ) -> std::io::Result<TcpListenerActor> {
        let local = listener.local_addr()?;
        Ok(TcpListenerActor {
            listener: Some(listener),
            local,
            core,
            outbound,
            resolver,
            per_source: Arc::new(DashMap::new()),
            fires_timers: false,
            tick: None,
        })
    }
}

impl TcpListenerActor {
    /// Makes this listener fire the core's due timers on every tick (see `timers.rs`), for a
    /// proxy without UDP workers.
    pub fn firing_timers(mut self) -> Self {
        self.fires_timers = true;
        self
    }
}

super::fires_timers!(TcpListenerActor);

impl Actor for TcpListenerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.fires_timers {
            super::arm_tick(self, ctx, Instant::now() + super::timers::IDLE_TICK);
        }
        if let Some(listener) = self.listener.take() {
            let me = ctx.address();
            actix::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => me.do_send(Accepted(stream, peer)),
                        Err(e) => {
                            tracing::warn!(error = %e, "tcp accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            });
        }
    }
}

impl Handler<Accepted> for TcpListenerActor {
    type Result = ();
    fn handle(&mut self, Accepted(stream, peer): Accepted, _ctx: &mut Context<Self>) {
        let mut count = self.per_source.entry(peer.ip()).or_insert(0);
        if *count >= MAX_CONNECTIONS_PER_SOURCE {
            tracing::debug!(%peer, "too many tcp connections from this source; refused");
            return;
        }
        *count += 1;
        drop(count);
        let connection = TcpConnection::start_with(
            stream,
            peer,
            self.local,
            self.core.clone(),
            self.outbound.clone(),
            self.resolver.clone(),
            Some(self.per_source.clone()),
        );
        self.outbound.register_tcp(peer, connection);
    }
}

super::core_callbacks!(TcpListenerActor);

super::sends_when_stored!(TcpListenerActor);
