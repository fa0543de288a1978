//! The HTTP control API (actix-web), the virtual line's buttons and the device's health:
//!
//! | method | path | does |
//! | --- | --- | --- |
//! | GET | `/livez` | 200 while the process serves |
//! | GET | `/readyz` | 200 when every registering line is registered, else 503 |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/lines` | every line's [`LineStatus`] as JSON |
//! | GET | `/lines/{n}` | line `n` (from 1) |
//! | POST | `/lines/{n}/offhook`, `/onhook`, `/flash`, `/answer` | the hook switch; answers the new status |
//! | POST | `/lines/{n}/dial?digits=9000%23` | keys (lifting the handset first if needed) |
//! | POST | `/lines/{n}/transfer?target=7000` | blind transfer of the connected call (REFER) to a number or SIP URI |
//! | POST | `/lines/{n}/transfer?attended=true` | attended transfer: the held call to the consultation call (REFER with Replaces) |
//! | GET | `/calls` | the lines that have a call, with it |
//!
//! Errors are JSON `{"error": "..."}` with 400 (bad command) or 404 (no such line).
//! `ctl.rs` is the client.

use std::net::SocketAddr;

use actix::Addr;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

use crate::line::{Command, Control, GetStatus, LineActor, LineStatus};
use crate::metrics::Metrics;

/// What the handlers share.
#[derive(Clone)]
pub struct ControlState {
    /// The lines, in order.
    pub lines: Vec<Addr<LineActor>>,
    /// The metrics.
    pub metrics: Metrics,
}

#[derive(Deserialize)]
struct DialQuery {
    digits: String,
}

#[derive(Deserialize)]
struct TransferQuery {
    target: Option<String>,
    attended: Option<bool>,
}

fn error(status: actix_web::http::StatusCode, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": message }))
}

async fn statuses(state: &ControlState) -> Vec<LineStatus> {
    let mut all = Vec::new();
    for line in &state.lines {
        if let Ok(status) = line.send(GetStatus).await {
            all.push(status);
        }
    }
    all
}

async fn livez() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

async fn readyz(state: web::Data<ControlState>) -> HttpResponse {
    let lines = statuses(&state).await;
    let ready = lines.len() == state.lines.len()
        && lines
            .iter()
            .all(|l| l.registration == "registered" || l.registration == "disabled");
    if ready {
        HttpResponse::Ok().body("ready\n")
    } else {
        HttpResponse::ServiceUnavailable().body("not ready: lines not registered\n")
    }
}

async fn metrics(state: web::Data<ControlState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn list_lines(state: web::Data<ControlState>) -> HttpResponse {
    HttpResponse::Ok().json(statuses(&state).await)
}

async fn list_calls(state: web::Data<ControlState>) -> HttpResponse {
    let calls: Vec<LineStatus> = statuses(&state)
        .await
        .into_iter()
        .filter(|l| l.call.is_some())
        .collect();
    HttpResponse::Ok().json(calls)
}

fn line(state: &ControlState, n: usize) -> Option<&Addr<LineActor>> {
    n.checked_sub(1).and_then(|i| state.lines.get(i))
}

async fn one_line(state: web::Data<ControlState>, path: web::Path<usize>) -> HttpResponse {
    let Some(addr) = line(&state, path.into_inner()) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such line");
    };
    match addr.send(GetStatus).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(_) => error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "line stopped",
        ),
    }
}

async fn command(state: &ControlState, n: usize, command: Command) -> HttpResponse {
    let Some(addr) = line(state, n) else {
        return error(actix_web::http::StatusCode::NOT_FOUND, "no such line");
    };
    match addr.send(Control(command)).await {
        Ok(Ok(status)) => HttpResponse::Ok().json(status),
        Ok(Err(message)) => error(actix_web::http::StatusCode::BAD_REQUEST, &message),
        Err(_) => error(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            "line stopped",
        ),
    }
}

async fn hook(state: web::Data<ControlState>, path: web::Path<(usize, String)>) -> HttpResponse {
    let (n, action) = path.into_inner();
    let cmd = match action.as_str() {
        "offhook" => Command::OffHook,
        "onhook" => Command::OnHook,
        "flash" => Command::Flash,
        "answer" => Command::Answer,
        _ => return error(actix_web::http::StatusCode::NOT_FOUND, "no such command"),
    };
    command(&state, n, cmd).await
}

async fn dial(
    state: web::Data<ControlState>,
    path: web::Path<usize>,
    query: web::Query<DialQuery>,
) -> HttpResponse {
    command(
        &state,
        path.into_inner(),
        Command::Dial(query.into_inner().digits),
    )
    .await
}

async fn transfer(
    state: web::Data<ControlState>,
    path: web::Path<usize>,
    query: web::Query<TransferQuery>,
) -> HttpResponse {
    command(
        &state,
        path.into_inner(),
        match query.into_inner() {
            TransferQuery {
                attended: Some(true),
                ..
            } => Command::TransferAttended,
            TransferQuery {
                target: Some(target),
                ..
            } => Command::Transfer(target),
            _ => {
                return error(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "transfer needs target=NUMBER or attended=true",
                )
            }
        },
    )
    .await
}

/// Binds the control API; returns the server to await and the address it listens on.
pub fn serve(
    address: SocketAddr,
    state: ControlState,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/livez", web::get().to(livez))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route("/lines", web::get().to(list_lines))
            .route("/calls", web::get().to(list_calls))
            .route("/lines/{n}", web::get().to(one_line))
            .route("/lines/{n}/dial", web::post().to(dial))
            .route("/lines/{n}/transfer", web::post().to(transfer))
            .route("/lines/{n}/{action}", web::post().to(hook))
    })
    .workers(1)
    .disable_signals()
    .bind(address)?;
    let bound = server.addrs().first().copied().unwrap_or(address);
    Ok((server.run(), bound))
}
