//! The actor messages through which the core's work comes back to a transport actor (a timer
//! fired, a send failed, a name resolved, the store committed), and [`execute`], which carries
//! out the core's [`Action`]s from inside an actor ([`execute_detached`] from outside one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use dialtone_transaction::Transport;

use super::{dns, Outbound};
use crate::proxy_core::{Action, Destination, HeldRequest, ProxyCore, TimerId};

/// A timer of the core fired.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TimerFired(pub TimerId);

/// The transport could not send these bytes (see [`Outbound::send`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportFailed(pub Bytes);

/// The registrar store committed: the response held for it can go (see
/// [`Action::SendWhenStored`]). Sent from the store's writer thread to the actor that handled
/// the request, because a send may have to open a TCP connection, which needs the actor's
/// arbiter.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Stored {
    pub to: Destination,
    pub bytes: Bytes,
    /// Whether the commit saved the changes; if not, `request` gets another answer.
    pub saved: bool,
    pub request: HeldRequest,
}

/// A DNS resolution finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resolved {
    pub key: dialtone_transaction::TransactionKey,
    pub transport: Transport,
    pub addrs: Vec<SocketAddr>,
}

/// Carries out the core's actions from inside actor `A`, whose `TimerFired`, `Resolved` and
/// `TransportFailed` handlers call back into the core.
pub fn execute<A>(
    actions: Vec<Action>,
    outbound: &Arc<Outbound>,
    resolver: &Arc<dns::SipResolver>,
    ctx: &mut Context<A>,
) where
    A: Actor<Context = Context<A>>
        + Handler<TimerFired>
        + Handler<Resolved>
        + Handler<TransportFailed>
        + Handler<Stored>,
{
    for action in actions {
        match action {
            Action::Send { to, bytes } => {
                outbound.send(to, bytes, || Some(ctx.address().recipient()))
            }
            Action::Persist { sequence, changes } => {
                let Some(store) = outbound.store() else {
                    continue;
                };
                if let Err(error) = store.send(sequence, changes) {
                    // Memory stays right; only a restart would miss these changes.
                    tracing::error!(%error, "registrar changes not persisted");
                }
            }
            Action::SendWhenStored { to, bytes, request } => {
                let Some(store) = outbound.store() else {
                    outbound.send(to, bytes, || Some(ctx.address().recipient()));
                    continue;
                };
                let me = ctx.address();
                let outbound = Arc::clone(outbound);
                store.after_commit(Box::new(move |stored| {
                    if let Err(error) = &stored {
                        tracing::debug!(%error, "a REGISTER is answered 500: not saved");
                    } else if to.transport == Transport::Udp {
                        // Sent from where the commit was decided: this worker itself with the
                        // inline writer (the default), or the writer thread with
                        // `journal-sync = "each"`, where waking the actor only to send a
                        // datagram cost a thread wake-up per REGISTER. A send failure still
                        // reaches the actor.
                        outbound.send(to, bytes, || Some(me.recipient()));
                        return;
                    }
                    me.do_send(Stored {
                        to,
                        bytes,
                        saved: stored.is_ok(),
                        request,
                    });
                }));
            }
            Action::Arm { id, at, arming } => outbound.timers.push(Instant::now(), at, id, arming),
            Action::Resolve {
                key,
                host,
                port,
                transport,
            } => {
                let resolver = resolver.clone();
                let me = ctx.address();
                actix::spawn(async move {
                    let (transport, addrs) = resolver.resolve(&host, port, transport).await;
                    me.do_send(Resolved {
                        key,
                        transport,
                        addrs,
                    });
                });
            }
        }
    }
}

/// Carries out actions the core returned outside any transport actor (the admin API setting
/// voicemail counts): sends go without a failure report (a NOTIFY that cannot leave is
/// retransmitted until Timer F, which ends its subscription), timers go into the shared
/// queue that the workers fire, changes to the store's writer. Nothing else is expected
/// there, and is logged if it comes.
pub fn execute_detached(actions: Vec<Action>, outbound: &Arc<Outbound>) {
    for action in actions {
        match action {
            Action::Send { to, bytes } => outbound.send(to, bytes, || None),
            Action::Persist { sequence, changes } => {
                if let Some(store) = outbound.store() {
                    if let Err(error) = store.send(sequence, changes) {
                        tracing::error!(%error, "changes not persisted");
                    }
                }
            }
            Action::Arm { id, at, arming } => outbound.timers.push(Instant::now(), at, id, arming),
            other => tracing::error!(?other, "an action no actor can carry out here; dropped"),
        }
    }
}

/// The response a held REGISTER gets once its commit is decided: the 200, or if the changes
/// are not saved, the core's 500 (built only then). Memory holds the binding either way and
/// serves calls, and the writer commits it again; the client is told and retries
/// (Retry-After). Called on the actor that took the request, which has the core at hand.
pub(crate) fn held_response(core: &ProxyCore, stored: Stored) -> Option<(Destination, Bytes)> {
    if stored.saved {
        return Some((stored.to, stored.bytes));
    }
    core.not_stored_response(&stored.request)
        .map(|bytes| (stored.to, bytes))
}
