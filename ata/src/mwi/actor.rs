//! The message-waiting actor of one line: the actix shell around [`Subscription`]. It hands
//! SUBSCRIBEs to the endpoint (responses come back as [`TransactionUpdate`]), routes the
//! subscription's dialog to itself ([`RouteDialog`]) so that its NOTIFYs come as
//! [`DialogRequest`] and are answered with [`SendResponse`], takes the unsolicited NOTIFYs the
//! endpoint answered itself ([`UnsolicitedSummary`], after [`AttachMwi`]), and keeps one timer
//! at the machine's deadline.
//!
//! It tells the line the counts with [`MessagesWaiting`], to the recipient it was given, only
//! when they change, with an info log and the `dialtone_ata_voice_messages` gauges. Without a
//! notifier (`mwi_server = "none"`, or a line that does not register) it holds no
//! subscription and only passes on unsolicited NOTIFYs. On [`Unsubscribe`] (shutdown) it
//! sends `Expires: 0` in the dialog and answers once that is done.

use std::time::Instant;

use actix::prelude::*;
use dialtone_sip::Message;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::subscription::{Subscription, SubscriptionState};
use super::summary::{parse_summary, MessageSummary};
use crate::endpoint::{
    AttachMwi, ClientEvent, DialogRequest, Endpoint, RouteDialog, SendRequest, SendResponse,
    TransactionUpdate, UnsolicitedSummary,
};
use crate::metrics::Metrics;

/// The line's mailbox counts changed; for the line (stutter dial tone while `new > 0`).
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct MessagesWaiting {
    /// New messages.
    pub new: u32,
    /// Old messages.
    pub old: u32,
}

/// End the subscription and report when done (or given up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unsubscribe {
    /// Signalled when the Expires: 0 exchange is over.
    pub done: oneshot::Sender<()>,
}

/// The actor.
pub struct MwiActor {
    user: String,
    subscription: Option<Subscription>,
    endpoint: Addr<Endpoint>,
    line: Recipient<MessagesWaiting>,
    metrics: Metrics,
    routed: Option<(String, String)>,
    timer: Option<SpawnHandle>,
    last: Option<MessageSummary>,
    last_state: &'static str,
    on_unsubscribed: Option<oneshot::Sender<()>>,
}

impl MwiActor {
    /// Message waiting for the line of `user`; with `subscription`, it subscribes.
    pub fn new(
        user: String,
        subscription: Option<Subscription>,
        endpoint: Addr<Endpoint>,
        line: Recipient<MessagesWaiting>,
        metrics: Metrics,
    ) -> Self {
        MwiActor {
            user,
            subscription,
            endpoint,
            line,
            metrics,
            routed: None,
            timer: None,
            last: None,
            last_state: "",
            on_unsubscribed: None,
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscription.as_mut() else {
            return;
        };
        while let Some(transmit) = subscription.poll_transmit() {
            self.endpoint.do_send(SendRequest {
                bytes: transmit.bytes,
                destination: transmit.destination,
                owner: ctx.address().recipient(),
            });
        }
        let mut summaries = Vec::new();
        while let Some(summary) = subscription.poll_summary() {
            summaries.push(summary);
        }
        let key = subscription
            .dialog_key()
            .map(|(call_id, tag)| (call_id.to_owned(), tag.to_owned()));
        let state = subscription.state();
        let deadline = subscription.poll_timeout();
        for summary in summaries {
            self.report(summary);
        }
        self.route(ctx, key);
        if let Some(handle) = self.timer.take() {
            ctx.cancel_future(handle);
        }
        if let Some(at) = deadline {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |actor, ctx| {
                actor.timer = None;
                if let Some(subscription) = actor.subscription.as_mut() {
                    subscription.handle_timeout(Instant::now());
                }
                actor.pump(ctx);
            }));
        }
        if state.name() != self.last_state {
            self.last_state = state.name();
            match state {
                SubscriptionState::Waiting { status, .. } if status != 200 => {
                    warn!(line = %self.user, status, "message-waiting subscription failed; will retry")
                }
                SubscriptionState::Waiting { .. } => {
                    info!(line = %self.user, "message-waiting subscription ended; will subscribe again")
                }
                SubscriptionState::Active { .. } => {
                    info!(line = %self.user, "subscribed to message waiting")
                }
                _ => {}
            }
        }
        if state == SubscriptionState::Idle {
            if let Some(done) = self.on_unsubscribed.take() {
                let _ = done.send(());
            }
        }
    }

    /// Keeps the endpoint routing exactly the subscription's current dialog to us.
    fn route(&mut self, ctx: &mut Context<Self>, key: Option<(String, String)>) {
        if key == self.routed {
            return;
        }
        if let Some((call_id, local_tag)) = self.routed.take() {
            self.endpoint.do_send(RouteDialog {
                call_id,
                local_tag,
                owner: None,
                txn: None,
            });
        }
        if let Some((call_id, local_tag)) = key.clone() {
            self.endpoint.do_send(RouteDialog {
                call_id,
                local_tag,
                owner: Some(ctx.address().recipient()),
                txn: None,
            });
        }
        self.routed = key;
    }

    /// Tells the line a summary that differs from the last one.
    fn report(&mut self, summary: MessageSummary) {
        if self.last == Some(summary) {
            return;
        }
        self.last = Some(summary);
        info!(line = %self.user, new = summary.new, old = summary.old, "voice messages");
        self.metrics
            .set_voice_messages(&self.user, summary.new, summary.old);
        self.line.do_send(MessagesWaiting {
            new: summary.new,
            old: summary.old,
        });
    }
}

impl Actor for MwiActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.endpoint.do_send(AttachMwi {
            user: self.user.clone(),
            owner: ctx.address().recipient(),
        });
        if let Some(subscription) = self.subscription.as_mut() {
            subscription.start(Instant::now());
        }
        self.pump(ctx);
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.route(ctx, None);
    }
}

impl Handler<TransactionUpdate> for MwiActor {
    type Result = ();

    fn handle(&mut self, msg: TransactionUpdate, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscription.as_mut() else {
            return;
        };
        let now = Instant::now();
        match msg.0 {
            ClientEvent::Response { bytes, .. } => match Message::parse(&bytes) {
                Ok(response) => {
                    if let Err(e) = subscription.handle_response(now, &response) {
                        warn!(line = %self.user, error = %e, "SUBSCRIBE response unusable");
                    }
                }
                Err(e) => warn!(error = %e, "unparsable SUBSCRIBE response"),
            },
            ClientEvent::Failed { status, .. } => subscription.handle_failure(now, status),
        }
        self.pump(ctx);
    }
}

impl Handler<DialogRequest> for MwiActor {
    type Result = ();

    fn handle(&mut self, msg: DialogRequest, ctx: &mut Context<Self>) {
        // The ACK to a 2xx has no transaction; nothing in a subscription answers one.
        let (Some(subscription), Some(txn)) = (self.subscription.as_mut(), msg.txn) else {
            return;
        };
        match Message::parse(&msg.bytes) {
            Ok(request) => {
                let answer = subscription.handle_notify(Instant::now(), &request);
                self.endpoint.do_send(SendResponse {
                    txn,
                    status: answer.status,
                    bytes: answer.bytes,
                });
            }
            Err(e) => debug!(error = %e, "unparsable request in the subscription"),
        }
        self.pump(ctx);
    }
}

impl Handler<UnsolicitedSummary> for MwiActor {
    type Result = ();

    fn handle(&mut self, msg: UnsolicitedSummary, _ctx: &mut Context<Self>) {
        match parse_summary(&msg.body) {
            Some(summary) => self.report(summary),
            None => debug!(source = %msg.source, "unsolicited message-summary without a summary"),
        }
    }
}

impl Handler<Unsubscribe> for MwiActor {
    type Result = ();

    fn handle(&mut self, msg: Unsubscribe, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscription.as_mut() else {
            let _ = msg.done.send(());
            return;
        };
        self.on_unsubscribed = Some(msg.done);
        subscription.unsubscribe(Instant::now());
        self.pump(ctx);
    }
}
