//! The SIP endpoint actor: owns the device's UDP socket, its TCP connections (`tcp.rs`,
//! with `transport = "tcp"`) and its [`TransactionTable`], and delivers what arrives to the
//! transaction users.
//!
//! - responses go through their client transaction to its owner (a registration or a call
//!   actor) as [`TransactionUpdate`];
//! - requests go through the table, then the [`Router`] (pure, `router.rs`) says what each
//!   is: in a dialog a call registered ([`RouteDialog`]) or a CANCEL of its INVITE, for that
//!   call as [`DialogRequest`] (a message-waiting subscription routes its dialog the same
//!   way); a new INVITE, for a line as [`NewCall`]; a check-sync NOTIFY, answered 200 and
//!   passed on as [`CheckSync`]; an unsolicited message-summary NOTIFY, answered 200 and
//!   passed on as [`UnsolicitedSummary`] to the line's message-waiting owner ([`AttachMwi`]);
//!   or a response the endpoint sends itself (OPTIONS 200, 481, 404, 405, 489).
//!
//! Every message here is the endpoint's, and its users give it recipients: the endpoint
//! imports none of them. The table does retransmissions and timeouts; this actor only owns
//! the socket and one timer set to the table's earliest deadline.

pub mod router;
pub mod table;
pub mod tcp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use dialtone_sip::{Message, Method, ResponseBuilder};
use dialtone_transaction::{TimerConfig, Transport};
use rand::Rng;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use router::{OwnResponse, Route, Router};
pub use table::{ClientEvent, Disposition, TableOutput, TransactionTable};
use tcp::{StreamClosed, StreamMessage, StreamOpened, StreamOwner};

/// The largest datagram we accept (RFC 3261 18.1.1 leaves room up to the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// A client transaction's news for its owner.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct TransactionUpdate(pub ClientEvent);

/// A request for a call actor: in its dialog, or a CANCEL of its INVITE.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct DialogRequest {
    /// Its server transaction; `None` for the ACK to a 2xx.
    pub txn: Option<u64>,
    /// The request.
    pub bytes: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
}

/// A new INVITE for a line.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct NewCall {
    /// Its server transaction.
    pub txn: u64,
    /// The INVITE.
    pub bytes: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
}

/// Start a client transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendRequest {
    /// The request (we built it, with our branch).
    pub bytes: Vec<u8>,
    /// The next hop.
    pub destination: SocketAddr,
    /// Who hears the responses.
    pub owner: Recipient<TransactionUpdate>,
}

/// Send outside any transaction (the ACK to a 2xx).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendStateless {
    /// The message.
    pub bytes: Vec<u8>,
    /// The next hop.
    pub destination: SocketAddr,
}

/// Answer in a server transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendResponse {
    /// The transaction.
    pub txn: u64,
    /// The status.
    pub status: u16,
    /// The response.
    pub bytes: Vec<u8>,
}

/// Route a dialog's requests to `owner`, or stop routing them (`owner: None`); also makes
/// `owner` the owner of server transaction `txn`, so a CANCEL finds it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RouteDialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag in the dialog.
    pub local_tag: String,
    /// The call actor, or `None` to forget the dialog.
    pub owner: Option<Recipient<DialogRequest>>,
    /// The INVITE's server transaction, for an incoming call.
    pub txn: Option<u64>,
}

/// A line announces the user it answers for.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachLine {
    /// The SIP user.
    pub user: String,
    /// Where new calls go.
    pub owner: Recipient<NewCall>,
}

/// The endpoint received `NOTIFY` with `Event: check-sync` (the Cisco ATA's remote resync)
/// and answered it 200; whoever attached with [`AttachResync`] re-reads the configuration.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CheckSync;

/// The endpoint received a `NOTIFY` with `Event: message-summary` outside any dialog for
/// this owner's line and answered it 200; the body is the RFC 3842 summary.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct UnsolicitedSummary {
    /// The NOTIFY's body.
    pub body: Bytes,
    /// Where it came from.
    pub source: SocketAddr,
}

/// A line's message-waiting owner announces the user it answers for.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachMwi {
    /// The SIP user.
    pub user: String,
    /// Where unsolicited message-summary NOTIFYs go.
    pub owner: Recipient<UnsolicitedSummary>,
}

/// Who hears `check-sync` NOTIFYs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachResync(pub Recipient<CheckSync>);

#[derive(Message)]
#[rtype(result = "()")]
struct Datagram {
    bytes: Bytes,
    source: SocketAddr,
}

/// The endpoint actor.
pub struct Endpoint {
    socket: Arc<UdpSocket>,
    table: TransactionTable<Recipient<TransactionUpdate>>,
    router: Router<
        Recipient<DialogRequest>,
        Recipient<NewCall>,
        Recipient<CheckSync>,
        Recipient<UnsolicitedSummary>,
    >,
    transport: Transport,
    listener: Option<TcpListener>,
    connections: HashMap<SocketAddr, mpsc::UnboundedSender<Bytes>>,
    me: Option<Addr<Endpoint>>,
    timer: Option<SpawnHandle>,
    timer_at: Option<Instant>,
}

impl Endpoint {
    /// An endpoint on an already bound socket; with [`Transport::Tcp`] our requests go
    /// over TCP and `listener` (on the same address) takes the peers' connections.
    /// `t1` is RFC 3261's T1 (500 ms unless configured): Timer B and F are 64 T1.
    pub fn new(
        socket: UdpSocket,
        transport: Transport,
        listener: Option<TcpListener>,
        t1: std::time::Duration,
    ) -> Self {
        let table = TransactionTable::new(TimerConfig {
            t1,
            ..TimerConfig::default()
        });
        let table = match transport {
            Transport::Udp => table,
            Transport::Tcp => table.with_reliable_requests(),
        };
        Endpoint {
            socket: Arc::new(socket),
            table,
            transport,
            listener,
            connections: HashMap::new(),
            me: None,
            router: Router::new(rand::thread_rng().gen()),
            timer: None,
            timer_at: None,
        }
    }

    /// Sends on the connection to `destination` if there is one (a response goes back on
    /// the connection its request came in on, RFC 3261 18.2.2); else over TCP on a new
    /// connection when that is our transport, else in a datagram.
    fn transmit(&mut self, bytes: &[u8], destination: SocketAddr) {
        if let Some(queue) = self.connections.get(&destination) {
            if queue.send(Bytes::copy_from_slice(bytes)).is_ok() {
                return;
            }
            self.connections.remove(&destination);
        }
        match (self.transport, &self.me) {
            (Transport::Tcp, Some(me)) => {
                let queue = tcp::connect(destination, stream_owner(me));
                let _ = queue.send(Bytes::copy_from_slice(bytes));
                self.connections.insert(destination, queue);
            }
            _ => crate::datagram::send(&self.socket, bytes, destination),
        }
    }

    /// Drains the table and re-arms the timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(output) = self.table.poll_output() {
            match output {
                TableOutput::Transmit { bytes, destination } => self.transmit(&bytes, destination),
                TableOutput::Client { owner, event } => owner.do_send(TransactionUpdate(event)),
            }
        }
        let next = self.table.poll_timeout();
        if next == self.timer_at {
            return;
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        self.timer_at = next;
        if let Some(at) = next {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |actor, ctx| {
                actor.timer = None;
                actor.timer_at = None;
                actor.table.handle_timeout(Instant::now());
                actor.pump(ctx);
            }));
        }
    }

    fn on_request(
        &mut self,
        message: &Message<'_>,
        bytes: Bytes,
        source: SocketAddr,
        transport: Transport,
    ) {
        let now = Instant::now();
        let disposition =
            match self
                .table
                .on_request(now, message, bytes.clone(), source, transport)
            {
                Ok(d) => d,
                Err(e) => {
                    debug!(%source, error = %e, "unusable request");
                    self.answer_stateless(message, 400, "Bad Request", source);
                    return;
                }
            };
        match self.router.route(message, disposition) {
            Route::Nothing => {}
            Route::InDialog { owner, txn } => owner.do_send(DialogRequest { txn, bytes, source }),
            Route::Cancel { owner, txn } => owner.do_send(DialogRequest {
                txn: Some(txn),
                bytes,
                source,
            }),
            Route::NewCall { owner, txn } => owner.do_send(NewCall { txn, bytes, source }),
            Route::CheckSync { owner, response } => {
                info!(%source, "check-sync: re-reading the configuration");
                self.respond(response);
                owner.do_send(CheckSync);
            }
            Route::MessageSummary { owner, response } => {
                self.respond(response);
                owner.do_send(UnsolicitedSummary {
                    body: Bytes::copy_from_slice(message.body()),
                    source,
                });
            }
            Route::OwnResponse(response) => self.respond(response),
        }
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<Self>,
        bytes: Bytes,
        source: SocketAddr,
        transport: Transport,
    ) {
        let message = match Message::parse(&bytes) {
            Ok(m) => m,
            Err(e) => {
                debug!(%source, error = %e, "unparsable SIP message dropped");
                return;
            }
        };
        if message.is_request() {
            self.on_request(&message, bytes.clone(), source, transport);
        } else if !self
            .table
            .on_response(Instant::now(), &message, bytes.clone())
        {
            debug!(%source, "stray response dropped");
        }
        self.pump(ctx);
    }

    /// Sends a response the router made in its server transaction.
    fn respond(&mut self, response: OwnResponse) {
        let bytes = Bytes::from(response.bytes);
        if let Err(e) = self
            .table
            .respond(Instant::now(), response.txn, response.status, bytes)
        {
            debug!(error = %e, "response refused");
        }
    }

    fn answer_stateless(
        &mut self,
        request: &Message<'_>,
        status: u16,
        reason: &str,
        to: SocketAddr,
    ) {
        if request.method() == Some(Method::Ack) {
            return;
        }
        let response = ResponseBuilder::for_request(request, status, reason).build();
        self.transmit(&response, to);
    }
}

fn stream_owner(me: &Addr<Endpoint>) -> StreamOwner {
    StreamOwner {
        messages: me.clone().recipient(),
        opened: me.clone().recipient(),
        closed: me.clone().recipient(),
    }
}

impl Actor for Endpoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.me = Some(ctx.address());
        if let Some(listener) = self.listener.take() {
            tcp::listen(listener, stream_owner(&ctx.address()));
        }
        let socket = self.socket.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            let mut buffer = vec![0u8; MAX_DATAGRAM];
            loop {
                match socket.recv_from(&mut buffer).await {
                    Ok((len, source)) => {
                        let bytes = Bytes::copy_from_slice(&buffer[..len]);
                        if me.try_send(Datagram { bytes, source }).is_err() && !me.connected() {
                            break;
                        }
                    }
                    // ICMP port unreachable surfaces here on some systems; keep serving.
                    Err(e) => debug!(error = %e, "SIP receive error"),
                }
            }
        });
    }
}

impl Handler<Datagram> for Endpoint {
    type Result = ();

    fn handle(&mut self, datagram: Datagram, ctx: &mut Context<Self>) {
        // RFC 5626 keep-alives (CRLF) and stray bytes are not messages.
        if datagram.bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        self.on_message(ctx, datagram.bytes, datagram.source, Transport::Udp);
    }
}

impl Handler<StreamMessage> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: StreamMessage, ctx: &mut Context<Self>) {
        self.on_message(ctx, msg.bytes, msg.peer, Transport::Tcp);
    }
}

impl Handler<StreamOpened> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: StreamOpened, _ctx: &mut Context<Self>) {
        self.connections.insert(msg.peer, msg.queue);
    }
}

impl Handler<StreamClosed> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: StreamClosed, _ctx: &mut Context<Self>) {
        // Only forget the queue if it is the dead connection's, not a newer one's.
        if self
            .connections
            .get(&msg.peer)
            .is_some_and(|queue| queue.is_closed())
        {
            self.connections.remove(&msg.peer);
        }
    }
}

impl Handler<SendRequest> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: SendRequest, ctx: &mut Context<Self>) {
        let owner = msg.owner.clone();
        if let Err(e) = self.table.send_request(
            Instant::now(),
            Bytes::from(msg.bytes),
            msg.destination,
            msg.owner,
        ) {
            warn!(error = %e, "request not sent");
            owner.do_send(TransactionUpdate(ClientEvent::Failed {
                method: String::new(),
                status: 503,
            }));
        }
        self.pump(ctx);
    }
}

impl Handler<SendStateless> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: SendStateless, _ctx: &mut Context<Self>) {
        self.transmit(&msg.bytes, msg.destination);
    }
}

impl Handler<SendResponse> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: SendResponse, ctx: &mut Context<Self>) {
        if let Err(e) =
            self.table
                .respond(Instant::now(), msg.txn, msg.status, Bytes::from(msg.bytes))
        {
            debug!(txn = msg.txn, status = msg.status, error = %e, "response refused");
        }
        self.pump(ctx);
    }
}

impl Handler<RouteDialog> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: RouteDialog, _ctx: &mut Context<Self>) {
        match msg.owner {
            Some(owner) => self
                .router
                .route_dialog(msg.call_id, msg.local_tag, owner, msg.txn),
            None => self.router.forget_dialog(msg.call_id, msg.local_tag),
        }
    }
}

impl Handler<AttachResync> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: AttachResync, _ctx: &mut Context<Self>) {
        self.router.attach_check_sync(msg.0);
    }
}

impl Handler<AttachMwi> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: AttachMwi, _ctx: &mut Context<Self>) {
        self.router.attach_mwi(msg.user, msg.owner);
    }
}

impl Handler<AttachLine> for Endpoint {
    type Result = ();

    fn handle(&mut self, msg: AttachLine, _ctx: &mut Context<Self>) {
        self.router.attach_line(msg.user, msg.owner);
    }
}
