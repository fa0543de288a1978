//! Calls seen by the proxy: established when a 2xx to an INVITE is relayed, completed when the
//! BYE's 2xx is; kept for the admin API (`/api/calls`) and the calls gauges.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use dashmap::DashMap;
use dialtone_sip::Message;
use serde::Serialize;

use crate::metrics::ProxyMetrics;

/// How many ended calls are kept for the admin API.
const RECENT_CALLS: usize = 100;

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

/// The calls table.
#[derive(Debug)]
pub struct CallTracker {
    active: DashMap<String, CallRecord>,
    recent: Mutex<VecDeque<CallRecord>>,
    metrics: ProxyMetrics,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl CallTracker {
    /// An empty table updating `metrics`.
    pub fn new(metrics: ProxyMetrics) -> Self {
        CallTracker {
            active: DashMap::new(),
            recent: Mutex::new(VecDeque::new()),
            metrics,
        }
    }

    /// A 2xx to an INVITE went upstream.
    pub fn established(&self, response: &[u8]) {
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
            started_at: unix_now(),
            ended_at: None,
        };
        self.active.insert(call_id.to_string(), record);
        self.metrics.calls_active.set(self.active.len() as i64);
    }

    /// A 2xx to a BYE went upstream.
    pub fn ended(&self, call_id: &str) {
        if let Some((_, mut record)) = self.active.remove(call_id) {
            record.ended_at = Some(unix_now());
            self.metrics.calls_completed.inc();
            self.metrics.calls_active.set(self.active.len() as i64);
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_front(record);
            recent.truncate(RECENT_CALLS);
        }
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
