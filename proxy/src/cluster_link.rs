//! The security state, the established calls and the voicemail counts of the proxies sharing
//! one Redis (issue 21): so that an attacker who spreads guesses over the nodes is locked out
//! after the same number of failures, that a credential replayed to another node is refused,
//! that a call's BYE passes a node that did not see its INVITE (`--record-route-host`) even
//! with auth on, and that counts set on one node reach the subscriptions held by the others.
//!
//! - **One nonce key.** Nonces are HMAC-signed; every node signs with the key kept in Redis
//!   under [`NONCE_KEY`] (the first node to start writes it, `SET NX`), so a challenge from one
//!   node can be answered to another ([`shared_nonce_key`], before the core is built). Each
//!   node takes a number (`INCR` of [`NODE_SEQUENCE`], modulo 256) that goes into its nonces,
//!   so that two nodes never issue the same nonce: a nonce used at one node is a replay at
//!   every other.
//! - **Events.** Each node's authenticator tells this link every failure and every nonce use
//!   (`auth_events.rs`); the link writes them to Redis (a nonce use under
//!   `dialtone:auth:nonce:NONCE` for twice the nonce lifetime, a failure appended to
//!   `dialtone:auth:fail:KEY` for the failure window) and publishes them on [`CHANNEL`] in the
//!   same pipeline. Every other node applies them to its own tables; a node that starts
//!   reads what Redis holds first. Counts set through one node's admin API are published
//!   the same way and notified to the subscriptions of the others (the phones themselves
//!   get one unsolicited NOTIFY, from the node where the counts were set); so are the calls
//!   each node sees established and ended (`calls.rs`), which the others count as calls they
//!   know, so that their in-dialog requests pass unchallenged there too.
//!
//! The proxy core answers every request from memory, without waiting for Redis: a guess or a
//! replay that reaches a second node within the link's delay (about a millisecond on one
//! machine, see the README) is judged on what that node knew. With a Redis Cluster
//! (`redis+cluster://`), events are published but not stored: a node that starts learns
//! only what is published from then on.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use crate::auth::{FAILURE_WINDOW, NONCE_LIFETIME_SECS};
use crate::auth_events::AuthEvent;
use crate::calls::CallEvent;
use crate::proxy_core::ProxyCore;
use crate::registrar::redis_store::scan;
use crate::registrar::{MessageCounts, RedisTarget, StoreError};
use crate::transport::{execute_detached, Outbound};

/// The channel the nodes tell each other their events on.
pub const CHANNEL: &str = "dialtone:cluster";

/// The key of the cluster's nonce key (64 hex digits).
pub const NONCE_KEY: &str = "dialtone:auth:nonce-key";

/// The counter the nodes take their numbers from.
pub const NODE_SEQUENCE: &str = "dialtone:auth:node-sequence";

/// The first wait before connecting again after a failure; it doubles up to [`RETRY_AT_MOST`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_AT_MOST: Duration = Duration::from_secs(2);

/// Events published in one pipeline at most.
const MAX_BATCH: usize = 256;

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shared {
    Auth(AuthEvent),
    Counts { user: String, counts: MessageCounts },
    Call(CallEvent),
}

impl Shared {
    /// `NODE A EVENT` or `NODE M USER NEW/OLD`.
    fn encode(&self, node: &str) -> String {
        match self {
            Shared::Auth(event) => format!("{node} A {}", event.encode()),
            Shared::Counts { user, counts } => format!("{node} M {user} {counts}"),
            Shared::Call(CallEvent::Established(call_id)) => format!("{node} C+ {call_id}"),
            Shared::Call(CallEvent::Ended(call_id)) => format!("{node} C- {call_id}"),
        }
    }

    /// The sending node and the event of a message.
    fn decode(message: &str) -> Option<(&str, Shared)> {
        let (node, rest) = message.split_once(' ')?;
        let (kind, rest) = rest.split_once(' ')?;
        let shared = match kind {
            "A" => Shared::Auth(AuthEvent::decode(rest)?),
            "M" => {
                let (user, counts) = rest.split_once(' ')?;
                Shared::Counts {
                    user: user.to_owned(),
                    counts: MessageCounts::parse(counts).ok()?,
                }
            }
            "C+" if !rest.is_empty() => Shared::Call(CallEvent::Established(rest.to_owned())),
            "C-" if !rest.is_empty() => Shared::Call(CallEvent::Ended(rest.to_owned())),
            _ => return None,
        };
        Some((node, shared))
    }

    /// The writes that keep the event in Redis for nodes that start later.
    fn store_in(&self, pipeline: &mut redis::Pipeline) {
        match self {
            Shared::Auth(AuthEvent::NonceUsed {
                nonce, nc, request, ..
            }) => {
                pipeline
                    .cmd("SET")
                    .arg(format!("dialtone:auth:nonce:{nonce}"))
                    .arg(format!("{nc} {request}"))
                    .arg("EX")
                    .arg(NONCE_LIFETIME_SECS * 2)
                    .ignore();
            }
            Shared::Auth(AuthEvent::Failure { key, at_unix_secs }) => {
                let list = format!("dialtone:auth:fail:{key}");
                pipeline.cmd("RPUSH").arg(&list).arg(at_unix_secs).ignore();
                pipeline
                    .cmd("EXPIRE")
                    .arg(&list)
                    .arg(FAILURE_WINDOW.as_secs())
                    .ignore();
            }
            // The counts are the registrar's to store (`registrar/redis_store.rs`); a node
            // that starts learns the calls established from then on.
            Shared::Counts { .. } | Shared::Call(_) => {}
        }
    }
}

/// The running link; clones share it.
#[derive(Clone)]
pub struct ClusterLink {
    outgoing: UnboundedSender<Shared>,
}

impl ClusterLink {
    /// Counts set through this node's admin API, for the other nodes' subscriptions.
    pub fn publish_counts(&self, user: &str, counts: MessageCounts) {
        let _ = self.outgoing.send(Shared::Counts {
            user: user.to_owned(),
            counts,
        });
    }
}

/// The cluster's nonce key (the one in Redis, or a new one written there if none is) and this
/// node's number. Blocks (at start, before the core is built) for a few seconds at most; `Err`
/// when Redis does not answer, and this node then signs with a key of its own (its challenges
/// must then be answered to it).
pub fn shared_nonce_key(target: &RedisTarget) -> Result<([u8; 32], u8), StoreError> {
    let fail = |reason: String| StoreError::Redis {
        target: target.display(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start a runtime: {e}")))?;
    let url = target.nodes[0].clone();
    let fetch = async move {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        let mine: [u8; 32] = rand::random();
        let _: Option<String> = redis::cmd("SET")
            .arg(NONCE_KEY)
            .arg(hex(&mine))
            .arg("NX")
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let stored: String = redis::cmd("GET")
            .arg(NONCE_KEY)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let key = unhex(&stored).ok_or_else(|| format!("{NONCE_KEY} holds no 32-byte hex key"))?;
        let sequence: u64 = redis::cmd("INCR")
            .arg(NODE_SEQUENCE)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((key, (sequence % 256) as u8))
    };
    // The caller is inside the actix system's runtime, where blocking on (or dropping)
    // another is refused: the runtime lives and ends on a thread of its own.
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::time::timeout(Duration::from_secs(5), fetch).await
                })
            })
            .join()
            .unwrap_or_else(|_| Ok(Err("the fetch panicked".into())))
    })
    .map_err(|_| fail("no answer within 5 s".into()))?
    .map_err(fail)
}

/// Starts the link on a thread of its own: hands `core`'s authenticator the sink of its events,
/// publishes them, and applies the other nodes' (NOTIFYs of counts go out through `outbound`).
pub fn start(
    target: RedisTarget,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
) -> Result<ClusterLink, StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Redis {
            target: target.display(),
            reason: format!("cannot start the cluster link's runtime: {e}"),
        })?;
    let node = uuid::Uuid::new_v4().simple().to_string();
    let (outgoing, events) = mpsc::unbounded_channel();
    let sink = outgoing.clone();
    core.authenticator()
        .share_events(Box::new(move |event| drop(sink.send(Shared::Auth(event)))));
    let sink = outgoing.clone();
    core.calls()
        .share_events(Box::new(move |event| drop(sink.send(Shared::Call(event)))));
    let stores = !target.cluster;
    std::thread::Builder::new()
        .name("cluster-link".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(publish(target.clone(), node.clone(), events, stores));
                follow(target, node, core, outbound, stores).await;
            })
        })
        .map_err(|e| StoreError::Redis {
            target: "cluster link".into(),
            reason: format!("cannot start its thread: {e}"),
        })?;
    Ok(ClusterLink { outgoing })
}

/// Writes and publishes this node's events, a batch per pipeline.
async fn publish(
    target: RedisTarget,
    node: String,
    mut events: UnboundedReceiver<Shared>,
    stores: bool,
) {
    let mut connection = connect(&target).await;
    while let Some(first) = events.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match events.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let mut pipeline = redis::pipe();
        for event in &batch {
            if stores {
                event.store_in(&mut pipeline);
            }
            pipeline
                .cmd("PUBLISH")
                .arg(CHANNEL)
                .arg(event.encode(&node))
                .ignore();
        }
        if let Err(error) = pipeline.query_async::<()>(&mut connection).await {
            // The manager reconnects by itself; these events are lost to the other nodes,
            // which then judge on what they know (each node's own rules still hold).
            tracing::warn!(%error, events = batch.len(), "cluster link: events not shared");
        }
    }
}

/// A connection manager to the first node, retried until Redis answers.
async fn connect(target: &RedisTarget) -> ConnectionManager {
    let mut wait = RETRY_FIRST;
    loop {
        let client = redis::Client::open(target.nodes[0].as_str());
        if let Ok(client) = client {
            if let Ok(manager) = ConnectionManager::new(client).await {
                return manager;
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_AT_MOST);
    }
}

/// Subscribes (again after every loss) and applies the other nodes' events; the first time,
/// reads what Redis holds of them.
async fn follow(
    target: RedisTarget,
    node: String,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    stores: bool,
) {
    let mut loaded = !stores;
    let mut wait = RETRY_FIRST;
    loop {
        match subscribe(&target).await {
            Ok(mut pubsub) => {
                wait = RETRY_FIRST;
                if !loaded {
                    match load(&target, &core).await {
                        Ok(()) => loaded = true,
                        Err(error) => {
                            tracing::warn!(%error, "cluster link: cannot read the shared state")
                        }
                    }
                }
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let payload: String = message.get_payload().unwrap_or_default();
                    match Shared::decode(&payload) {
                        Some((from, _)) if from == node => {}
                        Some((_, shared)) => apply(&core, &outbound, shared),
                        None => tracing::debug!(%payload, "cluster link: unknown message"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cluster link: cannot subscribe"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_AT_MOST);
    }
}

async fn subscribe(target: &RedisTarget) -> Result<redis::aio::PubSub, String> {
    let client = redis::Client::open(target.nodes[0].as_str()).map_err(|e| e.to_string())?;
    let mut pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
    pubsub.subscribe(CHANNEL).await.map_err(|e| e.to_string())?;
    Ok(pubsub)
}

fn apply(core: &ProxyCore, outbound: &Arc<Outbound>, shared: Shared) {
    core.metrics().cluster_events_applied.inc();
    match shared {
        Shared::Auth(event) => core.authenticator().apply_remote(&event),
        Shared::Counts { user, counts } => {
            let actions = core.apply_remote_message_counts(Instant::now(), &user, counts);
            execute_detached(actions, outbound);
        }
        Shared::Call(event) => core.calls().apply_remote(event, SystemTime::now()),
    }
}

/// Applies the used nonces and recent failures Redis holds (a node starting in a running
/// cluster).
async fn load(target: &RedisTarget, core: &ProxyCore) -> Result<(), String> {
    let client = redis::Client::open(target.nodes[0].as_str()).map_err(|e| e.to_string())?;
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let nonces = scan(&mut connection, "dialtone:auth:nonce:*")
        .await
        .map_err(|e| e.to_string())?;
    for key in nonces {
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let nonce = key.trim_start_matches("dialtone:auth:nonce:").to_owned();
        let parsed = value.as_deref().and_then(|v| v.split_once(' '));
        if let Some((nc, request)) = parsed {
            if let (Ok(nc), Ok(request)) = (nc.parse(), request.parse()) {
                core.authenticator().apply_remote(&AuthEvent::NonceUsed {
                    nonce,
                    nc,
                    request,
                    at_unix_secs: now,
                });
            }
        }
    }
    let lists = scan(&mut connection, "dialtone:auth:fail:*")
        .await
        .map_err(|e| e.to_string())?;
    for list in lists {
        let times: Vec<u64> = redis::cmd("LRANGE")
            .arg(&list)
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let key = list.trim_start_matches("dialtone:auth:fail:").to_owned();
        for at_unix_secs in times {
            core.authenticator().apply_remote(&AuthEvent::Failure {
                key: key.clone(),
                at_unix_secs,
            });
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_node_and_event() {
        let events = [
            Shared::Auth(AuthEvent::Failure {
                key: "ip:127.0.0.1".into(),
                at_unix_secs: 9,
            }),
            Shared::Counts {
                user: "8000".into(),
                counts: MessageCounts::parse("2/1").expect("counts"),
            },
            Shared::Call(CallEvent::Established("abc@host".into())),
            Shared::Call(CallEvent::Ended("abc@host".into())),
        ];
        for event in events {
            let line = event.encode("n1");
            assert_eq!(Shared::decode(&line), Some(("n1", event)));
        }
        assert_eq!(Shared::decode("n1 Z whatever"), None);
        assert_eq!(Shared::decode("n1 M 8000 x/y"), None);
    }

    #[test]
    fn the_nonce_key_survives_its_hex_form() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(unhex(&hex(&key)), Some(key));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex(&"zz".repeat(32)), None);
    }
}
