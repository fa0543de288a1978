//! The registration actor of one line: the actix shell around [`Registration`]. It hands
//! REGISTERs to the endpoint, feeds responses and timeouts back with `now`, keeps one timer at
//! the machine's deadline, and tells the line ([`RegistrationChanged`], to the recipient it was
//! given) and the metrics the state and the proxy in use after every change.
//! On [`Unregister`] (shutdown) it sends `Expires: 0` and answers once that is done.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use dialtone_sip::Message;
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::endpoint::{ClientEvent, Endpoint, SendRequest, TransactionUpdate};
use crate::metrics::Metrics;
use crate::registration::rules::{Registration, RegistrationState};

/// The registration state (its [`RegistrationState::name`]) or the proxy in use changed;
/// for the line, whose new calls go to that proxy.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegistrationChanged {
    /// The state's name.
    pub state: &'static str,
    /// The proxy the line registers with now.
    pub proxy: SocketAddr,
}

/// A call's INVITE found `proxy` not answering (408: no response at all; 503): when it is
/// the proxy the line uses, the line moves to the next one (issue 21 item 5).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProxyUnanswered {
    /// The proxy the INVITE went to.
    pub proxy: SocketAddr,
    /// 408 or 503.
    pub status: u16,
}

/// Remove the binding and report when done (or given up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    /// Signalled when the Expires: 0 exchange is over.
    pub done: oneshot::Sender<()>,
}

/// Register again now with these settings (a `check-sync` re-read the config).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resync {
    /// The Expires to ask for.
    pub expires: u32,
    /// The line's credentials.
    pub user: crate::auth::DigestUser,
}

/// The actor.
pub struct RegistrationActor {
    line_name: String,
    rules: Registration,
    endpoint: Addr<Endpoint>,
    line: Recipient<RegistrationChanged>,
    metrics: Metrics,
    timer: Option<SpawnHandle>,
    on_unregistered: Option<oneshot::Sender<()>>,
    last_state: &'static str,
    last_proxy: Option<SocketAddr>,
    /// How long after start the first REGISTER goes (see [`RegistrationActor::starting_after`]).
    start_after: Duration,
}

impl RegistrationActor {
    /// A registration for `line_name` driven by `rules`.
    pub fn new(
        line_name: String,
        rules: Registration,
        endpoint: Addr<Endpoint>,
        line: Recipient<RegistrationChanged>,
        metrics: Metrics,
    ) -> Self {
        RegistrationActor {
            line_name,
            rules,
            endpoint,
            line,
            metrics,
            timer: None,
            on_unregistered: None,
            last_state: "",
            last_proxy: None,
            start_after: Duration::ZERO,
        }
    }

    /// Sends the first REGISTER `delay` after the actor starts: `app.rs` spreads a bank of
    /// lines over time, since a thousand REGISTERs sent at once, and their answers, overflowed
    /// the sockets' receive buffers and left some lines unregistered for half a minute.
    pub fn starting_after(mut self, delay: Duration) -> Self {
        self.start_after = delay;
        self
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some(transmit) = self.rules.poll_transmit() {
            self.endpoint.do_send(SendRequest {
                bytes: transmit.bytes,
                destination: transmit.destination,
                owner: ctx.address().recipient(),
            });
        }
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = self.rules.poll_timeout() {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |actor, ctx| {
                actor.timer = None;
                actor.rules.handle_timeout(Instant::now());
                actor.pump(ctx);
            }));
        }
        let state = self.rules.state();
        let proxy = self.rules.proxy();
        if self.last_proxy.is_some_and(|last| last != proxy) {
            info!(line = %self.line_name, %proxy, "now using proxy");
        }
        if state.name() != self.last_state || self.last_proxy != Some(proxy) {
            self.last_state = state.name();
            self.last_proxy = Some(proxy);
            match state {
                RegistrationState::Failed { status, .. } => {
                    warn!(line = %self.line_name, status, "registration failed; will retry")
                }
                RegistrationState::Registered { .. } => {
                    info!(line = %self.line_name, "registered")
                }
                _ => {}
            }
            self.metrics
                .set_registration_state(&self.line_name, state.name());
            self.line.do_send(RegistrationChanged {
                state: state.name(),
                proxy,
            });
        }
        if state == RegistrationState::Unregistered {
            if let Some(done) = self.on_unregistered.take() {
                let _ = done.send(());
            }
        }
    }
}

impl Actor for RegistrationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.start_after.is_zero() {
            self.rules.start(Instant::now());
            self.pump(ctx);
            return;
        }
        ctx.run_later(self.start_after, |actor, ctx| {
            actor.rules.start(Instant::now());
            actor.pump(ctx);
        });
    }
}

impl Handler<TransactionUpdate> for RegistrationActor {
    type Result = ();

    fn handle(&mut self, msg: TransactionUpdate, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match msg.0 {
            ClientEvent::Response { bytes, .. } => match Message::parse(&bytes) {
                Ok(response) => {
                    if let Err(e) = self
                        .rules
                        .handle_response(now, SystemTime::now(), &response)
                    {
                        warn!(line = %self.line_name, error = %e, "REGISTER response unusable");
                    }
                }
                Err(e) => warn!(error = %e, "unparsable REGISTER response"),
            },
            ClientEvent::Failed { method, .. } if method == "OPTIONS" => {
                self.rules.handle_probe_failure(now)
            }
            ClientEvent::Failed { status, .. } => self.rules.handle_failure(now, status),
        }
        self.pump(ctx);
    }
}

impl Handler<ProxyUnanswered> for RegistrationActor {
    type Result = ();

    fn handle(&mut self, msg: ProxyUnanswered, ctx: &mut Context<Self>) {
        warn!(line = %self.line_name, proxy = %msg.proxy, status = msg.status, "a call's INVITE found the proxy not answering");
        self.rules.proxy_unanswered(Instant::now(), msg.proxy);
        self.pump(ctx);
    }
}

impl Handler<Resync> for RegistrationActor {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Context<Self>) {
        info!(line = %self.line_name, "re-registering (check-sync)");
        self.rules.resync(Instant::now(), msg.expires, msg.user);
        self.pump(ctx);
    }
}

impl Handler<Unregister> for RegistrationActor {
    type Result = ();

    fn handle(&mut self, msg: Unregister, ctx: &mut Context<Self>) {
        self.on_unregistered = Some(msg.done);
        self.rules.unregister(Instant::now());
        self.pump(ctx);
    }
}
