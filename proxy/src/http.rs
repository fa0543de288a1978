//! The admin HTTP server: `/metrics` (Prometheus text format), `/livez`, `/readyz`, JSON for
//! registrations, calls and message traces (`/api/registrations`, `/api/calls`, `/api/stats`,
//! `/api/traces`, `/api/trace/{call_id}`), which `dialtone-proxy ctl` and the admin page read,
//! the voicemail counts of the message-waiting notifier (`GET`/`POST /api/mwi/{user}`, which
//! `ctl mwi` calls),
//! and the admin page itself at `/` ([`crate::web`]).

use crate::registrar::{LinkStatus, StoreWriter};
use std::sync::Arc;
use std::time::Instant;

use actix_web::{web, App, HttpResponse, HttpServer};

use crate::cluster_link::ClusterLink;
use crate::metrics::RegistrationEvent;
use crate::proxy_core::{Action, ProxyCore};
use crate::registrar::MessageCounts;
use crate::trace::TraceRecorder;
use crate::transport::{execute_detached, wall_now, Outbound};
use crate::views::{registrations, stats};

/// The message recorder, when `--trace-calls` is not 0.
type Recorder = web::Data<Option<Arc<TraceRecorder>>>;

/// The registrar store's writer, whose health `/readyz` and `/metrics` report (none in memory).
type Store = web::Data<Option<StoreWriter>>;

/// With Redis: whether this node follows the shared store, for `/readyz` and `/metrics`.
type Link = web::Data<Option<LinkStatus>>;

async fn metrics(core: web::Data<Arc<ProxyCore>>, store: Store, link: Link) -> HttpResponse {
    if let Some(link) = link.get_ref() {
        let up = link.problem().is_none();
        core.metrics().location_store_up.set(up as i64);
    }
    core.metrics()
        .registrations_active
        .set(core.location().count() as i64);
    core.metrics()
        .transactions_active
        .set(core.active_transactions() as i64);
    // The expiry sweep counts in the location service (it knows nothing of metrics); the
    // counter catches up here.
    let expired = core
        .metrics()
        .registration_event(RegistrationEvent::Expired);
    expired.inc_by(
        core.location()
            .expired_total()
            .saturating_sub(expired.get()),
    );
    if let Some(store) = store.get_ref() {
        let metrics = core.metrics();
        metrics.store_failing.set(store.failing().is_some() as i64);
        // The writer counts; the counter catches up at each scrape (it only ever grows).
        let behind = store
            .failed_commits()
            .saturating_sub(metrics.store_failed_commits.get());
        metrics.store_failed_commits.inc_by(behind);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(core.metrics().render())
}

/// Ready unless the registrar store is failing, or (Redis) this node does not follow the
/// shared store: the proxy still routes to the bindings it holds, but registrations it takes
/// are not saved, or it may miss other nodes' changes, and a load balancer or an operator
/// should know.
async fn readyz(store: Store, link: Link) -> HttpResponse {
    if let Some(error) = store.get_ref().as_ref().and_then(|store| store.failing()) {
        return HttpResponse::ServiceUnavailable()
            .body(format!("not ready: registrar store failing: {error}\n"));
    }
    match link.get_ref().as_ref().and_then(|link| link.problem()) {
        None => HttpResponse::Ok().body("ready\n"),
        Some(problem) => HttpResponse::ServiceUnavailable().body(format!("not ready: {problem}\n")),
    }
}

async fn api_registrations(core: web::Data<Arc<ProxyCore>>) -> HttpResponse {
    HttpResponse::Ok().json(registrations(&core))
}

async fn api_calls(core: web::Data<Arc<ProxyCore>>) -> HttpResponse {
    let (active, recent) = core.calls().snapshot();
    HttpResponse::Ok().json(serde_json::json!({ "active": active, "recent": recent }))
}

async fn api_stats(core: web::Data<Arc<ProxyCore>>) -> HttpResponse {
    HttpResponse::Ok().json(stats(&core))
}

/// The JSON of a user's voicemail counts.
fn mwi_json(user: &str, counts: MessageCounts) -> serde_json::Value {
    serde_json::json!({ "user": user, "new": counts.new, "old": counts.old })
}

/// `GET /api/mwi/USER`: the counts, or 404 naming the unknown user.
async fn api_mwi_get(core: web::Data<Arc<ProxyCore>>, user: web::Path<String>) -> HttpResponse {
    match core.message_counts(&user, wall_now()) {
        Ok(counts) => HttpResponse::Ok().json(mwi_json(&user, counts)),
        Err(error) => HttpResponse::NotFound().body(format!("{error}\n")),
    }
}

/// `POST /api/mwi/USER` with the body `NEW/OLD` (or `NEW`; text, as `ctl mwi` and `curl -d
/// 2/1` send it): sets the counts, answers once the store has committed them (none in
/// memory-only mode), and notifies the user's subscriptions and bindings (RFC 3842). 400
/// names what is wrong with the counts, 404 an unknown user; 500 says the counts are set and
/// notified but not yet saved (the store's writer keeps trying).
async fn api_mwi_set(
    core: web::Data<Arc<ProxyCore>>,
    outbound: web::Data<Arc<Outbound>>,
    store: Store,
    cluster: Option<web::Data<ClusterLink>>,
    user: web::Path<String>,
    body: String,
) -> HttpResponse {
    let counts = match MessageCounts::parse(&body) {
        Ok(counts) => counts,
        Err(error) => return HttpResponse::BadRequest().body(format!("{error}\n")),
    };
    let actions = match core.set_message_counts(Instant::now(), wall_now(), &user, counts) {
        Ok(actions) => actions,
        Err(error) => return HttpResponse::NotFound().body(format!("{error}\n")),
    };
    // Saved first, then notified: a phone never shows counts a restart would lose.
    let (persist, notify): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::Persist { .. }));
    let saved = match store.get_ref() {
        Some(store) => {
            for action in persist {
                if let Action::Persist { sequence, changes } = action {
                    if let Err(error) = store.send(sequence, changes) {
                        tracing::error!(%error, "voicemail counts not persisted");
                    }
                }
            }
            let (done, committed) = tokio::sync::oneshot::channel();
            store.after_commit(Box::new(move |result| {
                let _ = done.send(result.map_err(|e| e.to_string()));
            }));
            committed
                .await
                .unwrap_or_else(|_| Err("the store's writer stopped".to_string()))
        }
        None => Ok(()),
    };
    execute_detached(notify, &outbound);
    // The other nodes of a cluster notify the subscriptions they hold.
    if let Some(cluster) = cluster {
        cluster.publish_counts(&user, counts);
    }
    match saved {
        Ok(()) => HttpResponse::Ok().json(mwi_json(&user, counts)),
        Err(error) => HttpResponse::InternalServerError().body(format!(
            "counts set to {counts} and notified, but not saved yet: {error}\n"
        )),
    }
}

async fn api_traces(recorder: Recorder) -> HttpResponse {
    match recorder.as_ref() {
        Some(recorder) => HttpResponse::Ok().json(recorder.summaries()),
        None => HttpResponse::Ok().json(serde_json::json!([])),
    }
}

async fn api_trace(recorder: Recorder, call_id: web::Path<String>) -> HttpResponse {
    let Some(recorder) = recorder.as_ref() else {
        return HttpResponse::NotFound().body("message tracing is off (--trace-calls 0)\n");
    };
    match recorder.get(&call_id) {
        Some(trace) => HttpResponse::Ok().json(trace),
        None => HttpResponse::NotFound().body(format!("no trace of Call-ID {call_id}\n")),
    }
}

async fn index(core: web::Data<Arc<ProxyCore>>, recorder: Recorder) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(crate::web::render_index(&core, recorder.as_deref()))
}

/// The routes, with the core and the recorder they read.
fn routes(
    core: web::Data<Arc<ProxyCore>>,
    outbound: web::Data<Arc<Outbound>>,
    recorder: Recorder,
    store: Store,
    link: Link,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(core)
            .app_data(outbound)
            .app_data(recorder)
            .app_data(store)
            .app_data(link)
            .route("/", web::get().to(index))
            .route("/metrics", web::get().to(metrics))
            .route(
                "/livez",
                web::get().to(|| async { HttpResponse::Ok().body("ok\n") }),
            )
            .route("/readyz", web::get().to(readyz))
            .route("/api/registrations", web::get().to(api_registrations))
            .route("/api/calls", web::get().to(api_calls))
            .route("/api/stats", web::get().to(api_stats))
            .route("/api/mwi/{user}", web::get().to(api_mwi_get))
            .route("/api/mwi/{user}", web::post().to(api_mwi_set))
            .route("/api/traces", web::get().to(api_traces))
            .route("/api/trace/{call_id}", web::get().to(api_trace));
    }
}

/// Starts the HTTP server on `listener`, bound early in start-up so that no other process can
/// take the port in between.
pub fn start(
    listener: std::net::TcpListener,
    core: Arc<ProxyCore>,
    outbound: Arc<Outbound>,
    recorder: Option<Arc<TraceRecorder>>,
    store: Option<StoreWriter>,
    link: Option<LinkStatus>,
    cluster: Option<ClusterLink>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(core);
    let outbound = web::Data::new(outbound);
    let recorder = web::Data::new(recorder);
    let store = web::Data::new(store);
    let link = web::Data::new(link);
    let server = HttpServer::new(move || {
        let app = App::new().configure(routes(
            data.clone(),
            outbound.clone(),
            recorder.clone(),
            store.clone(),
            link.clone(),
        ));
        match &cluster {
            Some(cluster) => app.app_data(web::Data::new(cluster.clone())),
            None => app,
        }
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
