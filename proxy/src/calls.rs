//! Calls seen by the proxy: established when a 2xx to an INVITE is relayed, completed when the
//! BYE's final response is (a 481 or 408 ends a dialog too); kept for the admin API
//! (`/api/calls`) and the calls gauges. A call whose BYE never passes the proxy (a phone
//! unplugged mid-call) stays listed as active.
//!
//! In a cluster (nodes on one Redis, `cluster_link.rs`) each node also tells the others the
//! calls it saw established and ended ([`CallEvent`]), and counts their calls as established
//! too: with `--record-route-host` a call's later requests may reach a node that never saw
//! its INVITE, and with auth on that node lets them pass only inside a call it knows of.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use dialtone_sip::Message;
use serde::Serialize;

use crate::metrics::ProxyMetrics;

/// How many ended calls are kept for the admin API.
const RECENT_CALLS: usize = 100;

/// How long a call stays listed when no final response to its BYE passes the proxy: 12 hours,
/// as long as Kamailio's dialog module keeps a dialog by default (`default_timeout`).
const STALE_AFTER_SECS: u64 = 12 * 3600;

/// The table is walked for stale calls at most this often, and only when a call starts.
const STALE_CHECK_EVERY_SECS: u64 = 60;

/// One call.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub call_id: String,
    pub from: String,
    pub to: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// Seconds since the Unix epoch, once ended.
    pub ended_at: Option<u64>,
}

/// A call another node of the cluster saw start or end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// A 2xx to its INVITE passed that node.
    Established(String),
    /// The final response to its BYE did.
    Ended(String),
}

/// Where the calls table tells the cluster link what it saw.
pub type CallSink = Box<dyn Fn(CallEvent) + Send + Sync>;

/// The calls table.
pub struct CallTracker {
    active: DashMap<String, CallRecord>,
    recent: Mutex<VecDeque<CallRecord>>,
    metrics: ProxyMetrics,
    /// Unix second from which the next new call walks the table for stale calls.
    next_stale_check: AtomicU64,
    /// Calls other nodes of the cluster saw established, with the unix second they told us.
    elsewhere: DashMap<String, u64>,
    events: std::sync::OnceLock<CallSink>,
}

impl std::fmt::Debug for CallTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallTracker")
            .field("active", &self.active.len())
            .field("elsewhere", &self.elsewhere.len())
            .finish()
    }
}

fn unix_seconds(wall: SystemTime) -> u64 {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CallTracker {
    /// An empty table updating `metrics`.
    pub fn new(metrics: ProxyMetrics) -> Self {
        CallTracker {
            active: crate::tables::sharded(),
            recent: Mutex::new(VecDeque::new()),
            metrics,
            next_stale_check: AtomicU64::new(0),
            elsewhere: DashMap::new(),
            events: std::sync::OnceLock::new(),
        }
    }

    /// From now on every call established or ended here is told to `sink` too.
    pub fn share_events(&self, sink: CallSink) {
        let _ = self.events.set(sink);
    }

    /// Applies what another node saw of a call.
    pub fn apply_remote(&self, event: CallEvent, wall: SystemTime) {
        match event {
            CallEvent::Established(call_id) => {
                self.elsewhere.insert(call_id, unix_seconds(wall));
            }
            CallEvent::Ended(call_id) => {
                self.elsewhere.remove(&call_id);
            }
        }
    }

    fn tell(&self, event: impl FnOnce() -> CallEvent) {
        if let Some(sink) = self.events.get() {
            sink(event());
        }
    }

    /// A 2xx to an INVITE went upstream at `wall`.
    pub fn established(&self, response: &[u8], wall: SystemTime) {
        self.established_at(response, unix_seconds(wall));
    }

    fn established_at(&self, response: &[u8], now: u64) {
        self.forget_stale(now);
        let Ok(m) = Message::parse(response) else {
            return;
        };
        let Ok(call_id) = m.call_id() else { return };
        if self.active.contains_key(call_id) {
            return;
        }
        let record = CallRecord {
            call_id: call_id.to_string(),
            from: m
                .from()
                .map(|f| f.uri.as_str().to_string())
                .unwrap_or_default(),
            to: m
                .to()
                .map(|t| t.uri.as_str().to_string())
                .unwrap_or_default(),
            started_at: now,
            ended_at: None,
        };
        // Counted by entry, not by `len()`: `len()` locks every shard of the table in turn,
        // which cost more than the rest of this call once the table had many shards. The
        // entry keeps a second copy of the 2xx, handled at once on the other worker, from
        // counting the call twice.
        if let Entry::Vacant(slot) = self.active.entry(call_id.to_string()) {
            slot.insert(record);
            self.metrics.calls_active.inc();
            self.tell(|| CallEvent::Established(call_id.to_string()));
        }
    }

    /// Drops the calls listed for [`STALE_AFTER_SECS`]: their BYE never passed the proxy (a
    /// phone unplugged mid-call, a BYE sent around it), and they would otherwise stay listed,
    /// and held in memory, for good. Walks the table at most once a [`STALE_CHECK_EVERY_SECS`]
    /// and only when a call starts, so that an idle proxy does no work for it (and gains no
    /// new stale calls either).
    fn forget_stale(&self, now: u64) {
        let due = self.next_stale_check.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now + STALE_CHECK_EVERY_SECS;
        if self
            .next_stale_check
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // the other worker is walking it
        }
        self.elsewhere
            .retain(|_, told| now.saturating_sub(*told) < STALE_AFTER_SECS);
        let mut forgotten = 0;
        self.active.retain(|_, call| {
            let stale = now.saturating_sub(call.started_at) >= STALE_AFTER_SECS;
            forgotten += u64::from(stale);
            !stale
        });
        if forgotten > 0 {
            self.metrics.calls_active.sub(forgotten as i64);
            tracing::info!(
                forgotten,
                "calls listed for 12 hours without a final response to their BYE dropped"
            );
        }
    }

    /// True while `call_id` is an established call that has not ended: in-dialog requests of
    /// such a call pass without credentials (see `proxy_core/admission.rs`).
    pub fn is_active(&self, call_id: &str) -> bool {
        self.active.contains_key(call_id) || self.elsewhere.contains_key(call_id)
    }

    /// The final response to a BYE went upstream at `wall`.
    pub fn ended(&self, call_id: &str, wall: SystemTime) {
        if self.elsewhere.remove(call_id).is_some() {
            self.tell(|| CallEvent::Ended(call_id.to_string()));
        }
        if let Some((_, mut record)) = self.active.remove(call_id) {
            self.tell(|| CallEvent::Ended(call_id.to_string()));
            record.ended_at = Some(unix_seconds(wall));
            self.metrics.calls_completed.inc();
            self.metrics.calls_active.dec();
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_front(record);
            recent.truncate(RECENT_CALLS);
        }
    }

    /// Shards of the active calls table.
    #[cfg(test)]
    pub(crate) fn shard_count(&self) -> usize {
        self.active.shards().len()
    }

    /// Active calls, then recent ones.
    pub fn snapshot(&self) -> (Vec<CallRecord>, Vec<CallRecord>) {
        let active = self.active.iter().map(|e| e.value().clone()).collect();
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        (active, recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_to_invite(call_id: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK1\r\n\
             From: <sip:8000@lab>;tag=a\r\nTo: <sip:9000@lab>;tag=b\r\n\
             Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn the_active_calls_gauge_counts_each_call_once_and_returns_to_zero() {
        let metrics = ProxyMetrics::new();
        let calls = CallTracker::new(metrics.clone());
        calls.established(&ok_to_invite("one@lab"), SystemTime::now());
        calls.established(&ok_to_invite("one@lab"), SystemTime::now());
        calls.established(&ok_to_invite("two@lab"), SystemTime::now());
        assert_eq!(
            metrics.calls_active.get(),
            2,
            "a repeated 2xx is the same call"
        );

        calls.ended("one@lab", SystemTime::now());
        calls.ended("one@lab", SystemTime::now());
        assert_eq!(
            metrics.calls_active.get(),
            1,
            "a repeated BYE 2xx ends nothing more"
        );
        assert_eq!(metrics.calls_completed.get(), 1);

        calls.ended("two@lab", SystemTime::now());
        assert_eq!(metrics.calls_active.get(), 0);
        let (active, recent) = calls.snapshot();
        assert!(active.is_empty());
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn a_call_listed_for_twelve_hours_without_a_bye_is_dropped_when_a_new_call_starts() {
        let metrics = ProxyMetrics::new();
        let calls = CallTracker::new(metrics.clone());
        let start = 1_800_000_000;
        calls.established_at(&ok_to_invite("lost@lab"), start);
        calls.established_at(&ok_to_invite("long@lab"), start + 3600);
        calls.established_at(&ok_to_invite("new@lab"), start + STALE_AFTER_SECS);

        let (active, _) = calls.snapshot();
        let mut listed: Vec<&str> = active.iter().map(|c| c.call_id.as_str()).collect();
        listed.sort_unstable();
        assert_eq!(listed, ["long@lab", "new@lab"]);
        assert_eq!(metrics.calls_active.get(), 2);
        assert_eq!(
            metrics.calls_completed.get(),
            0,
            "a dropped call did not complete"
        );
    }

    #[test]
    fn calls_established_on_another_node_count_until_it_says_they_ended_and_ours_are_told() {
        let calls = CallTracker::new(ProxyMetrics::new());
        let told = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = told.clone();
        calls.share_events(Box::new(move |e| sink.lock().unwrap().push(e)));
        let now = SystemTime::now();
        calls.apply_remote(CallEvent::Established("far@lab".into()), now);
        assert!(
            calls.is_active("far@lab"),
            "a call another node saw established"
        );
        calls.ended("far@lab", now);
        assert!(!calls.is_active("far@lab"));
        calls.established(&ok_to_invite("near@lab"), now);
        calls.apply_remote(CallEvent::Ended("gone@lab".into()), now);
        calls.ended("near@lab", now);
        assert_eq!(
            *told.lock().unwrap(),
            [
                CallEvent::Ended("far@lab".into()),
                CallEvent::Established("near@lab".into()),
                CallEvent::Ended("near@lab".into()),
            ]
        );
    }
}
