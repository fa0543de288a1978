//! The admin HTTP server: `/metrics` (Prometheus text format), `/livez`, `/readyz`, JSON for
//! registrations, calls and message traces (`/api/registrations`, `/api/calls`, `/api/stats`,
//! `/api/traces`, `/api/trace/{call_id}`), which `dialtone-proxy ctl` and the admin page read,
//! and the admin page itself at `/` ([`crate::web`]).

use crate::registrar::StoreWriter;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};

use crate::metrics::RegistrationEvent;
use crate::proxy_core::ProxyCore;
use crate::trace::TraceRecorder;
use crate::views::{registrations, stats};

/// The message recorder, when `--trace-calls` is not 0.
type Recorder = web::Data<Option<Arc<TraceRecorder>>>;

/// The registrar store's writer, whose health `/readyz` and `/metrics` report (none in memory).
type Store = web::Data<Option<StoreWriter>>;

async fn metrics(core: web::Data<Arc<ProxyCore>>, store: Store) -> HttpResponse {
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

/// Ready unless the registrar store is failing: the proxy still routes, but registrations it
/// takes are not saved, and a load balancer or an operator should know.
async fn readyz(store: Store) -> HttpResponse {
    match store.get_ref().as_ref().and_then(|store| store.failing()) {
        None => HttpResponse::Ok().body("ready\n"),
        Some(error) => HttpResponse::ServiceUnavailable()
            .body(format!("not ready: registrar store failing: {error}\n")),
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
    recorder: Recorder,
    store: Store,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config| {
        config
            .app_data(core)
            .app_data(recorder)
            .app_data(store)
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
            .route("/api/traces", web::get().to(api_traces))
            .route("/api/trace/{call_id}", web::get().to(api_trace));
    }
}

/// Starts the HTTP server on `listener`, bound early in start-up so that no other process can
/// take the port in between.
pub fn start(
    listener: std::net::TcpListener,
    core: Arc<ProxyCore>,
    recorder: Option<Arc<TraceRecorder>>,
    store: Option<StoreWriter>,
) -> std::io::Result<actix_web::dev::Server> {
    let data = web::Data::new(core);
    let recorder = web::Data::new(recorder);
    let store = web::Data::new(store);
    let server = HttpServer::new(move || {
        App::new().configure(routes(data.clone(), recorder.clone(), store.clone()))
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
