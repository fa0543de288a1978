//! What the admin API and the admin page show of the proxy's state: registrations and
//! counters as plain serialisable views, read from the core. The HTTP server (`http.rs`)
//! sends them as JSON and the admin page (`web.rs`) draws them; both read them here, so that
//! neither depends on the other for them.

use std::time::SystemTime;

use serde::Serialize;

use crate::proxy_core::ProxyCore;

/// A registration as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct RegistrationView {
    pub aor: String,
    pub contact: String,
    pub expires_in: u32,
    pub source: String,
    pub transport: String,
    pub call_id: String,
    pub cseq: u32,
}

/// Counters for `ctl stats`.
#[derive(Debug, Serialize)]
pub struct StatsView {
    pub registrations: usize,
    pub transactions: usize,
    pub calls_active: usize,
}

/// The live registrations, sorted by AOR and contact.
pub fn registrations(core: &ProxyCore) -> Vec<RegistrationView> {
    let now = SystemTime::now();
    let mut list: Vec<RegistrationView> = core
        .location()
        .snapshot()
        .into_iter()
        .filter(|b| !b.is_expired(now))
        .map(|b| RegistrationView {
            expires_in: b.remaining(now),
            aor: b.aor,
            contact: b.contact,
            source: b.source.to_string(),
            transport: b.transport.as_str().to_string(),
            call_id: b.call_id,
            cseq: b.cseq,
        })
        .collect();
    list.sort_by(|a, b| a.aor.cmp(&b.aor).then(a.contact.cmp(&b.contact)));
    list
}

/// The counters of `ctl stats`.
pub fn stats(core: &ProxyCore) -> StatsView {
    let (active, _) = core.calls().snapshot();
    StatsView {
        registrations: core.location().count(),
        transactions: core.active_transactions(),
        calls_active: active.len(),
    }
}
