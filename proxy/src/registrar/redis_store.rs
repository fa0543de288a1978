//! The Redis location store: several proxies keep their bindings in one Redis (or a Redis
//! Cluster), so that each finds the phones registered through any other.
//!
//! [`RedisLink`] is one connection to the target, opened lazily and reopened after a failure:
//! redis-rs's [`ConnectionManager`] (a multiplexed connection that reconnects with back-off)
//! for one server, its cluster client (which follows the slots itself) for a cluster. Every
//! operation is bounded by [`ANSWER_WITHIN`], so a hung server costs a REGISTER a 500, not
//! its whole transaction. [`RedisStore`] is what the writer thread (`writer.rs`) commits to,
//! through the same [`CommitBatch`] as the redb file: one pipeline per batch (per AOR in a
//! cluster, whose pipelines must stay in one slot), and the 200s of the batch wait for Redis's
//! answer to it. A failed pipeline fails the batch: its REGISTERs get 500 with Retry-After and
//! the writer keeps its changes and commits them again, which is safe because every write
//! sets a binding's whole state. The layout and the writes themselves are `redis_layout.rs`'s.
//!
//! What a 200 then promises depends on Redis's own persistence (README): the write is in
//! Redis's memory and, with `appendonly yes` and `appendfsync always`, on its disk.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::{join_all, try_join_all};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};

use super::binding::{unix_seconds, Binding, BindingChange};
use super::choice::RedisTarget;
use super::error::StoreError;
use super::mailbox::MessageCounts;
use super::redis_layout::{
    aor_of_mailbox_key, binding_key, decode_binding, decode_mailbox, index_key, writes_for, Write,
    BINDING_PATTERN, CHANNEL, MAILBOX_PATTERN,
};
use super::writer::CommitBatch;

/// The longest any one operation (a batch's pipeline, a read) may take before it counts as
/// failed. A SIP client retransmits a REGISTER for 32 s; a 500 after two is still useful.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// How long loading every binding at start may take.
pub const LOAD_WITHIN: Duration = Duration::from_secs(30);

/// Keys fetched together while loading.
const LOAD_CHUNK: usize = 512;

/// A connection to the target; see the module documentation.
pub struct RedisLink {
    target: RedisTarget,
    connection: Option<Connection>,
}

#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Server(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Server(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// Bounds `operation` by [`ANSWER_WITHIN`] (or `within`), as a message.
async fn bounded<T>(
    within: Duration,
    operation: impl std::future::Future<Output = Result<T, RedisError>>,
) -> Result<T, String> {
    match tokio::time::timeout(within, operation).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} s", within.as_secs())),
    }
}

impl RedisLink {
    /// A link that connects at its first use.
    pub fn new(target: RedisTarget) -> RedisLink {
        RedisLink {
            target,
            connection: None,
        }
    }

    /// The target, as logs name it.
    pub fn target(&self) -> &RedisTarget {
        &self.target
    }

    async fn connection(&mut self) -> Result<Connection, RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let connection = if self.target.cluster {
            let client = redis::cluster::ClusterClientBuilder::new(self.target.nodes.clone())
                .connection_timeout(ANSWER_WITHIN)
                .response_timeout(ANSWER_WITHIN)
                .retries(2)
                .build()?;
            Connection::Cluster(client.get_async_connection().await?)
        } else {
            let client = redis::Client::open(self.target.nodes[0].as_str())?;
            // After a connection is lost it connects again at the next request, once: its own
            // retries wait a second or more each (backon's least delay), which would hold every
            // REGISTER of an outage that long. The back-off is the writer's instead: a failed
            // batch is tried again with the next one, or a second later.
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(ANSWER_WITHIN)
                .set_response_timeout(ANSWER_WITHIN)
                .set_number_of_retries(0);
            Connection::Server(ConnectionManager::new_with_config(client, config).await?)
        };
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Sends `writes`: one pipeline to a server; to a cluster one per slot, at once, and then
    /// the announcement. A connection found dropped (Redis restarted, `CLIENT KILL`) is
    /// reopened and the writes sent once more, within the same [`ANSWER_WITHIN`], which
    /// repeats nothing harmful: each write sets a whole state.
    pub async fn write(&mut self, writes: &[Write]) -> Result<(), String> {
        bounded(ANSWER_WITHIN, async {
            match self.try_write(writes).await {
                Ok(()) => Ok(()),
                Err(_) => self.try_write(writes).await,
            }
        })
        .await
    }

    async fn try_write(&mut self, writes: &[Write]) -> Result<(), RedisError> {
        let mut connection = self.connection().await?;
        if !self.target.cluster {
            let mut pipeline = redis::pipe();
            writes.iter().for_each(|w| add(&mut pipeline, w));
            return pipeline.query_async(&mut connection).await;
        }
        let (announcements, keyed): (Vec<&Write>, Vec<&Write>) =
            writes.iter().partition(|w| w.hash_tag().is_none());
        let mut by_slot: Vec<(&str, Pipeline)> = Vec::new();
        for write in keyed {
            let tag = write.hash_tag().unwrap_or_default();
            match by_slot.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, pipeline)) => add(pipeline, write),
                None => {
                    let mut pipeline = redis::pipe();
                    add(&mut pipeline, write);
                    by_slot.push((tag, pipeline));
                }
            }
        }
        try_join_all(by_slot.iter().map(|(_, pipeline)| {
            let mut connection = connection.clone();
            async move { pipeline.query_async::<()>(&mut connection).await }
        }))
        .await?;
        for write in announcements {
            let mut pipeline = redis::pipe();
            add(&mut pipeline, write);
            pipeline.query_async::<()>(&mut connection).await?;
        }
        Ok(())
    }

    /// The live bindings of each of `aors` at `now`, as Redis has them now (tried twice, as
    /// [`RedisLink::write`] is).
    pub async fn read_aors(
        &mut self,
        aors: &[String],
        now: SystemTime,
    ) -> Result<Vec<(String, Vec<Binding>)>, String> {
        bounded(ANSWER_WITHIN, async {
            match self.try_read_aors(aors, now).await {
                Ok(found) => Ok(found),
                Err(_) => self.try_read_aors(aors, now).await,
            }
        })
        .await
    }

    async fn try_read_aors(
        &mut self,
        aors: &[String],
        now: SystemTime,
    ) -> Result<Vec<(String, Vec<Binding>)>, RedisError> {
        let connection = self.connection().await?;
        try_join_all(aors.iter().map(|aor| {
            let mut connection = connection.clone();
            async move {
                let bindings = read_aor(&mut connection, aor, now).await?;
                Ok::<_, RedisError>((aor.clone(), bindings))
            }
        }))
        .await
    }

    /// Every live binding and every mailbox, found with `SCAN` (never `KEYS`, which stops the
    /// server while it walks): on each node given, for a cluster (list every master; a key on
    /// a master not listed is missed, one found twice counts once).
    pub async fn load_all(
        &mut self,
        now: SystemTime,
    ) -> Result<(Vec<Binding>, Vec<(String, MessageCounts)>), String> {
        bounded(LOAD_WITHIN, self.try_load_all(now)).await
    }

    async fn try_load_all(
        &mut self,
        now: SystemTime,
    ) -> Result<(Vec<Binding>, Vec<(String, MessageCounts)>), RedisError> {
        let mut connection = self.connection().await?;
        let mut binding_keys = BTreeSet::new();
        let mut mailbox_keys = BTreeSet::new();
        for node in &self.target.nodes {
            let mut scanner = redis::Client::open(node.as_str())?
                .get_multiplexed_async_connection()
                .await?;
            binding_keys.extend(scan(&mut scanner, BINDING_PATTERN).await?);
            mailbox_keys.extend(scan(&mut scanner, MAILBOX_PATTERN).await?);
        }
        let binding_keys: Vec<String> = binding_keys.into_iter().collect();
        let mut bindings = Vec::with_capacity(binding_keys.len());
        for chunk in binding_keys.chunks(LOAD_CHUNK) {
            for (key, value) in chunk.iter().zip(get_each(&mut connection, chunk).await?) {
                let Some(value) = value else { continue };
                if let Some(binding) = decode_binding(key, &value) {
                    if !binding.is_expired(now) {
                        bindings.push(binding);
                    }
                }
            }
        }
        let mailbox_keys: Vec<String> = mailbox_keys.into_iter().collect();
        let mut mailboxes = Vec::new();
        for chunk in mailbox_keys.chunks(LOAD_CHUNK) {
            for (key, value) in chunk.iter().zip(get_each(&mut connection, chunk).await?) {
                let (Some(aor), Some(value)) = (aor_of_mailbox_key(key), value) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&value);
                if let Some(counts) = decode_mailbox(key, &text) {
                    mailboxes.push((aor.to_owned(), counts));
                }
            }
        }
        Ok((bindings, mailboxes))
    }
}

/// One write as commands of `pipeline`, whose answers are only checked for errors.
fn add(pipeline: &mut Pipeline, write: &Write) {
    match write {
        Write::SetExpiring { key, value, at } => {
            pipeline.cmd("SET").arg(key).arg(value).arg("EXAT").arg(at)
        }
        Write::Set { key, value } => pipeline.cmd("SET").arg(key).arg(value),
        Write::Delete { key } => pipeline.cmd("DEL").arg(key),
        Write::Index {
            index,
            member,
            score,
        } => pipeline.cmd("ZADD").arg(index).arg(score).arg(member),
        Write::Unindex { index, member } => pipeline.cmd("ZREM").arg(index).arg(member),
        Write::TrimIndex { index, before } => pipeline
            .cmd("ZREMRANGEBYSCORE")
            .arg(index)
            .arg("-inf")
            .arg(before),
        Write::ExpireIndexNoEarlierThan { index, at } => {
            pipeline
                .cmd("EXPIREAT")
                .arg(index)
                .arg(at)
                .arg("NX")
                .ignore();
            pipeline.cmd("EXPIREAT").arg(index).arg(at).arg("GT")
        }
        Write::Publish { message } => pipeline.cmd("PUBLISH").arg(CHANNEL).arg(message),
    }
    .ignore();
}

/// The bindings of `aor` whose index score (their `expires_at`) is still ahead of `now`.
async fn read_aor(
    connection: &mut Connection,
    aor: &str,
    now: SystemTime,
) -> Result<Vec<Binding>, RedisError> {
    let identities: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(index_key(aor))
        .arg(format!("({}", unix_seconds(now)))
        .arg("+inf")
        .query_async(connection)
        .await?;
    if identities.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = identities.iter().map(|i| binding_key(aor, i)).collect();
    // One AOR's keys share a slot, so MGET works on a cluster too.
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(connection)
        .await?;
    Ok(keys
        .iter()
        .zip(values)
        .filter_map(|(key, value)| decode_binding(key, &value?))
        .filter(|binding| !binding.is_expired(now) && binding.aor == aor)
        .collect())
}

/// Every key matching `pattern` on the node `connection` reaches (`SCAN`, never `KEYS`).
pub(crate) async fn scan(
    connection: &mut redis::aio::MultiplexedConnection,
    pattern: &str,
) -> Result<Vec<String>, RedisError> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(found);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The values of `keys` (one GET each, sent together: a multiplexed connection pipelines
/// them, and on a cluster each goes to its own slot's node).
async fn get_each(
    connection: &mut Connection,
    keys: &[String],
) -> Result<Vec<Option<Vec<u8>>>, RedisError> {
    join_all(keys.iter().map(|key| {
        let mut connection = connection.clone();
        async move {
            redis::cmd("GET")
                .arg(key)
                .query_async::<Option<Vec<u8>>>(&mut connection)
                .await
        }
    }))
    .await
    .into_iter()
    .collect()
}

/// What the writer thread commits to (see the module documentation). It owns the runtime
/// that carries every Redis connection of the process, so that the runtime is dropped on
/// the writer's thread, never inside an async task.
pub struct RedisStore {
    link: RedisLink,
    runtime: Arc<tokio::runtime::Runtime>,
    /// This process's name in the sync messages.
    node: String,
}

impl RedisStore {
    /// A store writing to `link` from `runtime`, announcing its commits as `node`.
    pub fn new(link: RedisLink, runtime: Arc<tokio::runtime::Runtime>, node: String) -> RedisStore {
        RedisStore {
            link,
            runtime,
            node,
        }
    }
}

impl CommitBatch for RedisStore {
    fn commit(&mut self, changes: &[BindingChange]) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let at_micros = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let writes = writes_for(changes, unix_seconds(now), &self.node, at_micros)?;
        let runtime = Arc::clone(&self.runtime);
        runtime
            .block_on(self.link.write(&writes))
            .map_err(|reason| StoreError::Redis {
                target: self.link.target().display(),
                reason,
            })
    }
}
