//! The endpoint's transaction table, sans-IO: every client and server transaction of the
//! device (RFC 3261 section 17), keyed by [`TransactionKey`], with the machines of
//! `dialtone-transaction` doing retransmissions and timeouts.
//!
//! The endpoint actor (`endpoint::mod`) feeds it what the socket received and its timer, with
//! `now`, and drains [`TransactionTable::poll_output`]: datagrams to send, and events for the
//! transaction user (a registration or a call) that owns each client transaction. Server
//! transactions get a numeric id the TU answers with.
//!
//! The table also builds the ACK to a 300-699 final (17.1.1.3), which belongs to the client
//! INVITE transaction and not to the TU.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::{Message, Method};
use dialtone_transaction::{
    ack_for_non_2xx, client_key, server_key, ClientTransaction, Event, ServerTransaction,
    TimerConfig, TransactionKey, Transport,
};

use crate::error::{AtaError, Unusable};

/// What a client transaction tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response the TU must see.
    Response {
        /// The status.
        status: u16,
        /// The response.
        bytes: Bytes,
    },
    /// No final response: Timer B/F (408) or a send failure (503).
    Failed {
        /// The request's method.
        method: String,
        /// 408 or 503.
        status: u16,
    },
}

/// What the table wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableOutput<O> {
    /// Put these bytes on the wire.
    Transmit {
        /// The datagram.
        bytes: Bytes,
        /// Where to.
        destination: SocketAddr,
    },
    /// Tell a client transaction's owner.
    Client {
        /// The owner given to [`TransactionTable::send_request`].
        owner: O,
        /// What happened.
        event: ClientEvent,
    },
}

/// How a received request relates to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition<O> {
    /// A retransmission, or the ACK to our non-2xx: the table dealt with it.
    Absorbed,
    /// A new request with a new server transaction `id`; for a CANCEL, `cancels` is the owner
    /// of the INVITE transaction it targets (if that INVITE is still known).
    New {
        /// The server transaction.
        id: u64,
        /// For a CANCEL: the INVITE transaction's id and owner.
        cancels: Option<(u64, Option<O>)>,
    },
    /// An ACK that matched no transaction: the ACK to a 2xx, for the dialog.
    AckForDialog,
}

struct ClientEntry<O> {
    machine: ClientTransaction,
    destination: SocketAddr,
    owner: O,
    method: String,
    last_response: Option<Bytes>,
}

struct ServerEntry<O> {
    machine: ServerTransaction,
    source: SocketAddr,
    owner: Option<O>,
    id: u64,
}

/// All transactions of one endpoint.
pub struct TransactionTable<O> {
    config: TimerConfig,
    client_transport: Transport,
    clients: HashMap<TransactionKey, ClientEntry<O>>,
    servers: HashMap<TransactionKey, ServerEntry<O>>,
    server_ids: HashMap<u64, TransactionKey>,
    next_id: u64,
    outputs: VecDeque<TableOutput<O>>,
}

impl<O: Clone> TransactionTable<O> {
    /// An empty table with RFC 3261's default timers.
    pub fn new(config: TimerConfig) -> Self {
        TransactionTable {
            config,
            client_transport: Transport::Udp,
            clients: HashMap::new(),
            servers: HashMap::new(),
            server_ids: HashMap::new(),
            next_id: 1,
            outputs: VecDeque::new(),
        }
    }

    /// Our requests travel on a reliable transport (TCP): no retransmission timers
    /// (RFC 3261 17.1.1.2, 17.1.2.2).
    pub fn with_reliable_requests(mut self) -> Self {
        self.client_transport = Transport::Tcp;
        self
    }

    /// Starts a client transaction for `request` (which we built, so its top Via has our
    /// branch). ACK is never a transaction: send it with [`TableOutput::Transmit`] directly.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Bytes,
        destination: SocketAddr,
        owner: O,
    ) -> Result<(), AtaError> {
        let message = Message::parse(&request)?;
        let method = message
            .method()
            .ok_or(AtaError::Unusable(Unusable::NotARequest))?;
        message.top_via()?;
        let key = client_key(&message).ok_or(AtaError::Unusable(Unusable::NoBranch))?;
        let machine = ClientTransaction::new(
            now,
            &self.config,
            self.client_transport,
            request.clone(),
            method == Method::Invite,
        );
        self.clients.insert(
            key,
            ClientEntry {
                machine,
                destination,
                owner,
                method: method.as_str().to_owned(),
                last_response: None,
            },
        );
        self.drain_client(now, &key);
        Ok(())
    }

    /// A response arrived; returns false when no transaction matched (a stray, dropped).
    pub fn on_response(&mut self, now: Instant, message: &Message<'_>, bytes: Bytes) -> bool {
        let (Some(status), Some(key)) = (message.status(), client_key(message)) else {
            return false;
        };
        let Some(entry) = self.clients.get_mut(&key) else {
            return false;
        };
        entry.last_response = Some(bytes.clone());
        let result = entry.machine.handle_response(now, status, bytes);
        if result.is_err() {
            return false;
        }
        self.drain_client(now, &key);
        true
    }

    /// A request arrived from `source`, over `transport`.
    pub fn on_request(
        &mut self,
        now: Instant,
        message: &Message<'_>,
        bytes: Bytes,
        source: SocketAddr,
        transport: Transport,
    ) -> Result<Disposition<O>, AtaError> {
        let key = server_key_of(message)?;
        let method = message
            .method()
            .ok_or(AtaError::Unusable(Unusable::NotARequest))?;
        if let Some(entry) = self.servers.get_mut(&key) {
            match (&mut entry.machine, method) {
                (ServerTransaction::Invite(m), Method::Ack) => {
                    let accepted = m.state() == dialtone_transaction::ServerInviteState::Accepted;
                    m.handle_ack(now);
                    let id = entry.id;
                    self.drain_server(now, id);
                    // RFC 6026 7.1: an ACK to a 2xx that matched (RFC 2543 peers) is the TU's.
                    return Ok(if accepted {
                        Disposition::AckForDialog
                    } else {
                        Disposition::Absorbed
                    });
                }
                (machine, _) => machine.handle_request_retransmission(now),
            }
            let id = entry.id;
            self.drain_server(now, id);
            return Ok(Disposition::Absorbed);
        }
        if method == Method::Ack {
            return Ok(Disposition::AckForDialog);
        }
        let machine = ServerTransaction::new(
            now,
            &self.config,
            transport,
            bytes,
            method == Method::Invite,
        );
        let id = self.next_id;
        self.next_id += 1;
        let cancels = key.cancelled_invite().and_then(|invite_key| {
            self.servers
                .get(&invite_key)
                .map(|e| (e.id, e.owner.clone()))
        });
        self.servers.insert(
            key,
            ServerEntry {
                machine,
                source,
                owner: None,
                id,
            },
        );
        self.server_ids.insert(id, key);
        Ok(Disposition::New { id, cancels })
    }

    /// Records who answers server transaction `id` (so a CANCEL can find it).
    pub fn set_owner(&mut self, id: u64, owner: O) {
        if let Some(entry) = self
            .server_ids
            .get(&id)
            .and_then(|key| self.servers.get_mut(key))
        {
            entry.owner = Some(owner);
        }
    }

    /// The TU answers server transaction `id`.
    pub fn respond(
        &mut self,
        now: Instant,
        id: u64,
        status: u16,
        response: Bytes,
    ) -> Result<(), AtaError> {
        let entry = self
            .server_ids
            .get(&id)
            .and_then(|key| self.servers.get_mut(key))
            .ok_or(AtaError::Unusable(Unusable::NoSuchServerTransaction))?;
        entry.machine.send_response(now, status, response)?;
        self.drain_server(now, id);
        Ok(())
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due_clients: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, e)| e.machine.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due_clients {
            if let Some(entry) = self.clients.get_mut(&key) {
                entry.machine.handle_timeout(now);
            }
            self.drain_client(now, &key);
        }
        let due_servers: Vec<u64> = self
            .servers
            .values()
            .filter(|e| e.machine.poll_timeout().is_some_and(|t| t <= now))
            .map(|e| e.id)
            .collect();
        for id in due_servers {
            if let Some(entry) = self
                .server_ids
                .get(&id)
                .and_then(|key| self.servers.get_mut(key))
            {
                entry.machine.handle_timeout(now);
            }
            self.drain_server(now, id);
        }
    }

    /// The earliest timer of any transaction.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self
            .clients
            .values()
            .filter_map(|e| e.machine.poll_timeout());
        let servers = self
            .servers
            .values()
            .filter_map(|e| e.machine.poll_timeout());
        clients.chain(servers).min()
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<TableOutput<O>> {
        self.outputs.pop_front()
    }

    /// How many transactions are alive (for tests and metrics).
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn drain_client(&mut self, now: Instant, key: &TransactionKey) {
        let Some(entry) = self.clients.get_mut(key) else {
            return;
        };
        let mut terminated = false;
        loop {
            let transmit = entry.machine.poll_transmit();
            if let Some(bytes) = transmit {
                self.outputs.push_back(TableOutput::Transmit {
                    bytes,
                    destination: entry.destination,
                });
                continue;
            }
            let event = entry.machine.poll_event();
            let Some(event) = event else {
                break;
            };
            match event {
                Event::Response { status, response } => {
                    self.outputs.push_back(TableOutput::Client {
                        owner: entry.owner.clone(),
                        event: ClientEvent::Response {
                            status,
                            bytes: response,
                        },
                    })
                }
                Event::NeedsAck { .. } => {
                    if let (ClientTransaction::Invite(m), Some(response)) =
                        (&mut entry.machine, entry.last_response.as_ref())
                    {
                        if let Some(ack) = ack_for_failure(m.request(), response) {
                            let _ = m.send_ack(now, ack);
                        }
                    }
                }
                Event::Timeout { .. } | Event::TransportError => {
                    let status = if event == Event::TransportError {
                        503
                    } else {
                        408
                    };
                    self.outputs.push_back(TableOutput::Client {
                        owner: entry.owner.clone(),
                        event: ClientEvent::Failed {
                            method: entry.method.clone(),
                            status,
                        },
                    })
                }
                Event::Terminated => terminated = true,
                Event::AckForTu => {}
            }
        }
        if terminated {
            self.clients.remove(key);
        }
    }

    fn drain_server(&mut self, _now: Instant, id: u64) {
        let Some(key) = self.server_ids.get(&id).cloned() else {
            return;
        };
        let Some(entry) = self.servers.get_mut(&key) else {
            return;
        };
        let mut terminated = false;
        loop {
            let transmit = entry.machine.poll_transmit();
            if let Some(bytes) = transmit {
                // RFC 3581 / symmetric signalling: answer where the request came from.
                self.outputs.push_back(TableOutput::Transmit {
                    bytes,
                    destination: entry.source,
                });
                continue;
            }
            let event = entry.machine.poll_event();
            match event {
                Some(Event::Terminated) => terminated = true,
                Some(_) => {}
                None => break,
            }
        }
        if terminated {
            self.servers.remove(&key);
            self.server_ids.remove(&id);
        }
    }
}

/// The server transaction key of a received request (`dialtone_transaction::server_key`), or the
/// parse error of the header that keeps it from having one.
fn server_key_of(message: &Message<'_>) -> Result<TransactionKey, AtaError> {
    if let Some(key) = server_key(message) {
        return Ok(key);
    }
    message.top_via()?;
    message.cseq()?;
    message.call_id()?;
    message.from()?;
    message.to()?;
    Err(AtaError::Unusable(Unusable::NotARequest))
}

/// The ACK to a 300-699 final (RFC 3261 17.1.1.3), from the INVITE and the response as the
/// table keeps them (`dialtone_transaction::ack_for_non_2xx`).
fn ack_for_failure(invite: &[u8], response: &[u8]) -> Option<Bytes> {
    let (invite, response) = (Message::parse(invite).ok()?, Message::parse(response).ok()?);
    Some(Bytes::from(ack_for_non_2xx(&invite, &response)?.build()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const INVITE: &str = "INVITE sip:9000@127.0.0.1:5070 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKabc;rport\r\n\
        From: <sip:8000@127.0.0.1;user=phone>;tag=1\r\n\
        To: <sip:9000@127.0.0.1;user=phone>\r\n\
        Call-ID: c1@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn peer() -> SocketAddr {
        "127.0.0.1:5070".parse().expect("addr")
    }

    fn drain(table: &mut TransactionTable<u8>) -> Vec<TableOutput<u8>> {
        std::iter::from_fn(|| table.poll_output()).collect()
    }

    fn response(status: &str, to_tag: &str) -> Bytes {
        let text = INVITE
            .replacen(
                "INVITE sip:9000@127.0.0.1:5070 SIP/2.0",
                &format!("SIP/2.0 {status}"),
                1,
            )
            .replace(
                "To: <sip:9000@127.0.0.1;user=phone>",
                &format!("To: <sip:9000@127.0.0.1;user=phone>;tag={to_tag}"),
            );
        Bytes::from(text)
    }

    #[test]
    fn a_client_invite_is_retransmitted_until_a_provisional() {
        let start = Instant::now();
        let mut table = TransactionTable::new(TimerConfig::default());
        table
            .send_request(start, Bytes::from_static(INVITE.as_bytes()), peer(), 1)
            .expect("sent");
        assert_eq!(drain(&mut table).len(), 1);
        let at = table.poll_timeout().expect("Timer A");
        assert_eq!(at - start, Duration::from_millis(500));
        table.handle_timeout(at);
        assert!(matches!(
            drain(&mut table)[..],
            [TableOutput::Transmit { .. }]
        ));
        let ringing = response("180 Ringing", "t");
        let message = Message::parse(&ringing).expect("parses");
        assert!(table.on_response(at, &message, ringing.clone()));
        assert!(matches!(
            drain(&mut table)[..],
            [TableOutput::Client {
                owner: 1,
                event: ClientEvent::Response { status: 180, .. }
            }]
        ));
    }

    #[test]
    fn a_failure_final_is_acked_by_the_table_with_the_response_to_tag() {
        let start = Instant::now();
        let mut table = TransactionTable::new(TimerConfig::default());
        table
            .send_request(start, Bytes::from_static(INVITE.as_bytes()), peer(), 1)
            .expect("sent");
        drain(&mut table);
        let busy = response("486 Busy Here", "b1");
        let message = Message::parse(&busy).expect("parses");
        assert!(table.on_response(start, &message, busy.clone()));
        let outputs = drain(&mut table);
        let ack = outputs
            .iter()
            .find_map(|o| match o {
                TableOutput::Transmit { bytes, .. } => Some(bytes.clone()),
                _ => None,
            })
            .expect("an ACK went out");
        let ack = Message::parse(&ack).expect("ACK parses");
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.to().expect("To").tag(), Some("b1"));
        assert_eq!(ack.cseq().expect("CSeq").seq, 1);
        assert!(outputs.iter().any(|o| matches!(
            o,
            TableOutput::Client {
                event: ClientEvent::Response { status: 486, .. },
                ..
            }
        )));
    }

    #[test]
    fn a_retransmitted_request_is_absorbed_and_a_cancel_finds_its_invite() {
        let now = Instant::now();
        let mut table: TransactionTable<u8> = TransactionTable::new(TimerConfig::default());
        let invite = Bytes::from_static(INVITE.as_bytes());
        let message = Message::parse(&invite).expect("parses");
        let Disposition::New { id, .. } = table
            .on_request(now, &message, invite.clone(), peer(), Transport::Udp)
            .expect("ok")
        else {
            panic!("first INVITE is new");
        };
        table.set_owner(id, 5);
        assert_eq!(
            table
                .on_request(now, &message, invite.clone(), peer(), Transport::Udp)
                .expect("ok"),
            Disposition::Absorbed
        );
        let cancel = INVITE
            .replacen("INVITE sip", "CANCEL sip", 1)
            .replace("1 INVITE", "1 CANCEL");
        let cancel = Bytes::from(cancel);
        let message = Message::parse(&cancel).expect("parses");
        match table
            .on_request(now, &message, cancel.clone(), peer(), Transport::Udp)
            .expect("ok")
        {
            Disposition::New { cancels, .. } => assert_eq!(cancels, Some((id, Some(5)))),
            other => panic!("CANCEL should be new: {other:?}"),
        }
    }
}
