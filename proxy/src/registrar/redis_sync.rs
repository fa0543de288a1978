//! Live sharing of the bindings between the proxies on one Redis: every node keeps all
//! bindings in its [`LocationService`] (the cache the proxy core reads synchronously on every
//! INVITE), and follows the others' commits.
//!
//! Each commit publishes the AORs it changed on [`CHANNEL`] in the same pipeline as its
//! writes (`redis_layout.rs`'s `SyncMessage`); the follower, a task on the Redis runtime of
//! every node, fetches those AORs from Redis and replaces them in memory
//! ([`LocationService::apply`]). It fetches rather than trusting the message, so that of two
//! nodes writing one AOR, whatever order their messages come in, the last fetch sees the last
//! write; and it follows its own node's messages too, so that a fetch of another node's
//! change that raced a local REGISTER is put right once that REGISTER's commit lands. The time
//! from the writer's commit to the apply goes to `dialtone_proxy_location_sync_seconds` (for
//! other nodes' messages).
//!
//! Pub/sub is lossy across a broken connection, so whenever the follower (re)subscribes it
//! loads every binding again (SCAN) and replaces the whole cache; until then, and while Redis
//! is away, [`LinkStatus`] says why, for `/readyz` and `/metrics`, and calls still reach the
//! bindings already in memory. It reconnects with a back-off from [`RETRY_FIRST`] doubling to
//! [`RETRY_AT_MOST`].
//!
//! [`start`] wires the Redis store together: the runtime for its connections, the first load,
//! the writer over [`RedisStore`], and the follower.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use prometheus::Histogram;

use super::binding::Binding;
use super::choice::RedisTarget;
use super::error::StoreError;
use super::location::LocationService;
use super::mailbox::MessageCounts;
use super::redis_layout::{SyncMessage, CHANNEL};
use super::redis_store::{RedisLink, RedisStore, ANSWER_WITHIN};
use super::writer::{spawn, StoreWriter};

/// The first wait before subscribing again after a failure.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest wait between two attempts.
pub const RETRY_AT_MOST: Duration = Duration::from_secs(2);

/// The state of the follower's link to Redis, shared with the admin API. Clones share it.
#[derive(Debug, Clone)]
pub struct LinkStatus {
    target: String,
    problem: Arc<Mutex<Option<String>>>,
}

impl LinkStatus {
    fn new(target: String) -> LinkStatus {
        LinkStatus {
            target,
            problem: Arc::new(Mutex::new(Some("connecting".into()))),
        }
    }

    /// A status that says "connecting", for tests of what reports it.
    #[cfg(test)]
    pub(crate) fn for_test(target: &str) -> LinkStatus {
        LinkStatus::new(target.to_owned())
    }

    /// Sets the problem, for tests.
    #[cfg(test)]
    pub(crate) fn set_for_test(&self, problem: Option<String>) {
        self.set(problem);
    }

    /// Why this node may be missing other nodes' changes now (not subscribed, not loaded),
    /// naming the target; `None` while it follows them.
    pub fn problem(&self) -> Option<String> {
        let problem = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        problem
            .as_ref()
            .map(|problem| format!("location store {}: {problem}", self.target))
    }

    /// Records `problem` (`None`: following), logging when the state changes.
    fn set(&self, new: Option<String>) {
        let mut problem = self.problem.lock().unwrap_or_else(PoisonError::into_inner);
        if *problem == new {
            return;
        }
        match &new {
            None => tracing::info!(target = self.target, "location store: following redis"),
            Some(why) => {
                tracing::error!(target = self.target, problem = why.as_str(),
                "location store: not following redis; calls use the bindings in memory, retrying")
            }
        }
        *problem = new;
    }
}

/// The Redis store as started (see [`start`]).
pub struct RedisRegistrar {
    pub location: LocationService,
    pub mailboxes: Vec<(String, MessageCounts)>,
    pub writer: StoreWriter,
    pub link: LinkStatus,
}

/// Starts the Redis store for `target`: a runtime of one thread for its connections, a first
/// load of every binding and mailbox (when Redis does not answer, the proxy says so and
/// starts with an empty cache: it cannot answer REGISTERs with 200 before Redis is back
/// anyway, and the follower fills the cache as soon as it is), the writer, and the follower.
/// `sync_seconds` is `dialtone_proxy_location_sync_seconds`.
pub fn start(target: RedisTarget, sync_seconds: Histogram) -> Result<RedisRegistrar, StoreError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("redis-io")
        .enable_all()
        .build()
        .map_err(|e| StoreError::Redis {
            target: target.display(),
            reason: format!("cannot start its runtime: {e}"),
        })?;
    let runtime = Arc::new(runtime);
    let node = uuid::Uuid::new_v4().simple().to_string();
    let link = LinkStatus::new(target.display());
    let mut reader = RedisLink::new(target.clone());
    // The caller is inside the actix system's runtime, where blocking on another is refused.
    let handle = runtime.handle().clone();
    let loaded = std::thread::scope(|scope| {
        scope
            .spawn(|| handle.block_on(reader.load_all(SystemTime::now())))
            .join()
            .unwrap_or_else(|_| Err("the first load panicked".into()))
    });
    let (bindings, mailboxes) = match loaded {
        Ok(loaded) => {
            tracing::info!(
                bindings = loaded.0.len(),
                mailboxes = loaded.1.len(),
                target = target.display(),
                "registrar bindings loaded from redis"
            );
            loaded
        }
        Err(reason) => {
            tracing::error!(
                target = target.display(),
                reason,
                "location store: redis does not answer at start; serving with an empty cache \
                 (REGISTERs get 500 until it answers), retrying"
            );
            link.set(Some(format!("not loaded yet: {reason}")));
            (Vec::new(), Vec::new())
        }
    };
    let location = LocationService::with_bindings(bindings, true);
    let follower = Follower {
        target: target.clone(),
        node: node.clone(),
        location: location.clone(),
        reader,
        link: link.clone(),
        sync_seconds,
    };
    runtime.spawn(follower.run());
    let writer = spawn(RedisStore::new(RedisLink::new(target), runtime, node));
    Ok(RedisRegistrar {
        location,
        mailboxes,
        writer,
        link,
    })
}

/// The follower task (see the module documentation).
struct Follower {
    target: RedisTarget,
    node: String,
    location: LocationService,
    reader: RedisLink,
    link: LinkStatus,
    sync_seconds: Histogram,
}

impl Follower {
    async fn run(mut self) {
        let mut wait = RETRY_FIRST;
        loop {
            match self.follow().await {
                Ok(()) => {
                    self.link.set(Some("subscription lost".into()));
                    wait = RETRY_FIRST;
                }
                Err(problem) => self.link.set(Some(problem)),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_AT_MOST);
        }
    }

    /// Subscribes, loads everything, then applies each message until the subscription ends
    /// (`Ok`) or a fetch fails (`Err`: the next subscription loads everything again).
    async fn follow(&mut self) -> Result<(), String> {
        let client =
            redis::Client::open(self.target.nodes[0].as_str()).map_err(|e| e.to_string())?;
        let mut pubsub = tokio::time::timeout(ANSWER_WITHIN, client.get_async_pubsub())
            .await
            .map_err(|_| "no answer to subscribe".to_string())?
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        pubsub
            .subscribe(CHANNEL)
            .await
            .map_err(|e| format!("cannot subscribe: {e}"))?;
        let (bindings, _) = self
            .reader
            .load_all(SystemTime::now())
            .await
            .map_err(|e| format!("cannot load the bindings: {e}"))?;
        replace_all(&self.location, bindings);
        self.link.set(None);
        let mut messages = pubsub.into_on_message();
        while let Some(first) = messages.next().await {
            // Whatever else has arrived is fetched together with it.
            let mut batch = vec![first];
            while let Some(Some(more)) = messages.next().now_or_never() {
                batch.push(more);
            }
            let decoded: Vec<SyncMessage> = batch
                .iter()
                .filter_map(|m| SyncMessage::decode(m.get_payload_bytes()))
                .collect();
            let mut aors: Vec<String> = decoded.iter().flat_map(|m| m.aors.clone()).collect();
            aors.sort_unstable();
            aors.dedup();
            let fetched = self
                .reader
                .read_aors(&aors, SystemTime::now())
                .await
                .map_err(|e| format!("cannot fetch changed bindings: {e}"))?;
            for (aor, bindings) in fetched {
                self.location.apply(&aor, bindings);
            }
            let now = unix_micros(SystemTime::now());
            for message in decoded.iter().filter(|m| m.node != self.node) {
                let seconds = now.saturating_sub(message.at_micros) as f64 / 1e6;
                self.sync_seconds.observe(seconds);
            }
        }
        Ok(())
    }
}

/// Makes `location` hold exactly `bindings` (a load after a gap in the messages): AORs not
/// among them are forgotten. A local REGISTER whose commit is still to come is forgotten too
/// for that moment, and comes back with the fetch its own commit's message causes.
fn replace_all(location: &LocationService, bindings: Vec<Binding>) {
    let mut by_aor: HashMap<String, Vec<Binding>> = HashMap::new();
    for binding in bindings {
        by_aor.entry(binding.aor.clone()).or_default().push(binding);
    }
    let held: HashSet<String> = location.snapshot().into_iter().map(|b| b.aor).collect();
    for aor in held.iter().filter(|aor| !by_aor.contains_key(*aor)) {
        location.apply(aor, Vec::new());
    }
    for (aor, bindings) in by_aor {
        location.apply(&aor, bindings);
    }
}

fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
