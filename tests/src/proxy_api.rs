//! The proxy's admin HTTP API, read as JSON by the tests that check what the proxy knows:
//! its bindings (`/api/registrations`), its calls (`/api/calls`) and the messages of one
//! Call-ID as it traced them (`/api/trace/{call_id}`). The proxy itself is started by
//! [`crate::Proxy`]; these take the `http` address it listens on.

use std::net::SocketAddr;

use serde_json::Value;

use crate::http_get;

/// GET `path` from the proxy at `http`, as JSON; panics when it does not answer 200 with JSON.
pub fn get_json(http: SocketAddr, path: &str) -> Value {
    let body = http_get(http, path).unwrap_or_else(|| panic!("GET {path}"));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Every binding in `/api/registrations`, as JSON.
pub fn registrations(http: SocketAddr) -> Value {
    let body = http_get(http, "/api/registrations").expect("GET /api/registrations");
    serde_json::from_str(&body).expect("registrations JSON")
}

/// The binding of `aor` (a user such as `7000`) in `/api/registrations`, if it has one.
pub fn binding(http: SocketAddr, aor: &str) -> Option<Value> {
    get_json(http, "/api/registrations")
        .as_array()?
        .iter()
        .find(|b| b["aor"] == aor)
        .cloned()
}

/// The calls in `/api/calls` under `key` ("active" or "recent").
pub fn calls(http: SocketAddr, key: &str) -> Vec<Value> {
    get_json(http, "/api/calls")[key]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The messages of `call_id` the proxy recorded, as first lines with their direction
/// (`in INVITE sip:...`, `out SIP/2.0 407 ...`).
pub fn trace(http: SocketAddr, call_id: &str) -> Vec<String> {
    get_json(http, &format!("/api/trace/{call_id}"))["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| {
                    let field = |key: &str| m[key].as_str().unwrap_or_default().to_string();
                    format!("{} {}", field("direction"), field("first_line"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The text of the first message of `call_id` the proxy traced in `direction` (`in` or
/// `out`) whose first line starts with `start`.
pub fn traced_message(
    http: SocketAddr,
    call_id: &str,
    direction: &str,
    start: &str,
) -> Option<String> {
    get_json(http, &format!("/api/trace/{call_id}"))["messages"]
        .as_array()?
        .iter()
        .find(|m| {
            m["direction"] == direction
                && m["first_line"]
                    .as_str()
                    .is_some_and(|line| line.starts_with(start))
        })
        .and_then(|m| m["text"].as_str())
        .map(str::to_owned)
}

/// Asserts that the proxy challenged `user`'s REGISTER (Call-ID `call_id`, from its binding)
/// with a 401 or 407 before it registered it.
#[track_caller]
pub fn assert_register_challenged(http: SocketAddr, user: &str, call_id: &str) {
    let trace = trace(http, call_id);
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with("out SIP/2.0 401") || l.starts_with("out SIP/2.0 407")),
        "{user}'s REGISTER was not challenged: {trace:?}"
    );
}
