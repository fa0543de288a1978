//! The admin page at `/` of the admin HTTP address: registrations, active and recent calls, and
//! each call's ladder diagram (parties as columns, messages as arrows, as in the seed's figures
//! D-1 to D-4), kept live by polling the JSON API of [`crate::http`] every second.
//!
//! One static file (`web/index.html`, HTML, CSS and a little vanilla JS) embedded in the
//! binary; the server fills in the registrations table and the state at the time of the
//! request, so the page is whole before its script has fetched anything.

use serde::Serialize;

use crate::proxy_core::ProxyCore;
use crate::trace::{CallTrace, TraceRecorder, TraceSummary};
use crate::views::{registrations, stats, RegistrationView, StatsView};

const INDEX: &str = include_str!("web/index.html");

/// What the page's script starts from (the same shapes as the JSON API).
#[derive(Debug, Serialize)]
struct InitialState {
    stats: StatsView,
    registrations: Vec<RegistrationView>,
    calls: serde_json::Value,
    traces: Vec<TraceSummary>,
    /// The call whose ladder is shown first: the newest active call, else the newest ended.
    selected: Option<String>,
    trace: Option<CallTrace>,
}

/// The page, filled in for this moment.
pub fn render_index(core: &ProxyCore, recorder: Option<&TraceRecorder>) -> String {
    let (active, recent) = core.calls().snapshot();
    let selected = active
        .iter()
        .max_by_key(|c| c.started_at)
        .or(recent.first())
        .map(|c| c.call_id.clone());
    let state = InitialState {
        stats: stats(core),
        registrations: registrations(core),
        calls: serde_json::json!({ "active": active, "recent": recent }),
        traces: recorder.map(TraceRecorder::summaries).unwrap_or_default(),
        trace: selected
            .as_deref()
            .and_then(|id| recorder.and_then(|r| r.get(id))),
        selected,
    };
    let rows: String = state
        .registrations
        .iter()
        .map(|r| {
            format!(
                "<tr class=\"registration\"><td>{}</td><td>{}</td><td>{} s</td><td>{}</td><td>{}</td></tr>",
                escape(&r.aor),
                escape(&r.contact),
                r.expires_in,
                escape(&r.source),
                escape(&r.transport)
            )
        })
        .collect();
    let stats = format!(
        "{} registrations, {} active calls, {} transactions",
        state.stats.registrations, state.stats.calls_active, state.stats.transactions
    );
    INDEX
        .replacen("<!--STATS-->", &stats, 1)
        .replacen("<!--REGISTRATIONS-->", &rows, 1)
        .replacen("/*INITIAL_STATE*/", &script_json(&state), 1)
}

/// HTML text escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON safe inside a `<script>` element: SIP text holds `<sip:..>`, and a `</script>` in a
/// captured message must not end the element.
fn script_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "{}".into())
        .replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_html_and_in_the_embedded_json() {
        assert_eq!(escape("<sip:a&b>\""), "&lt;sip:a&amp;b&gt;&quot;");
        let json = script_json(&serde_json::json!({ "text": "</script><sip:x>" }));
        assert!(!json.contains('<'));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["text"],
            "</script><sip:x>"
        );
    }

    #[test]
    fn the_page_has_every_placeholder_filled() {
        assert!(INDEX.contains("<!--REGISTRATIONS-->"));
        assert!(INDEX.contains("/*INITIAL_STATE*/"));
        assert!(INDEX.contains("<!--STATS-->"));
    }
}
