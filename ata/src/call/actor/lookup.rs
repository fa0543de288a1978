//! The call actor's side of a next hop that is a host name (issue 21 item 4): when the dialog
//! asks for a lookup (`Dialog::take_hop_lookup`, once its route set is known), the name is
//! resolved on the actor's context without blocking it (`crate::resolve::Locator`: SRV, then
//! A, in RFC 2782 order), and the addresses are handed back to the dialog, which keeps them
//! for its later requests and their retries.

use actix::prelude::*;
use tracing::{debug, warn};

use super::CallActor;

impl CallActor {
    /// Starts the lookup the dialog asks for, if any.
    pub(super) fn look_up_next_hop(&mut self, ctx: &mut Context<Self>) {
        let Some(lookup) = self.dialog.as_mut().and_then(|d| d.take_hop_lookup()) else {
            return;
        };
        let locator = self.context.locator.clone();
        let transport = self.context.identity.transport;
        let call = self.id;
        let resolve = async move {
            let targets = locator
                .targets(&lookup.host, lookup.port, transport)
                .await
                .unwrap_or_else(|reason| {
                    warn!(call, host = %lookup.host, %reason, "next hop does not resolve");
                    Vec::new()
                });
            (lookup.host, targets)
        };
        ctx.spawn(resolve.into_actor(self).map(|(host, targets), actor, ctx| {
            debug!(call = actor.id, %host, ?targets, "next hop resolved");
            if let Some(dialog) = actor.dialog.as_mut() {
                dialog.hop_resolved(&host, targets);
            }
            actor.pump(ctx);
        }));
    }
}
