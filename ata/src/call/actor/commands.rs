//! How the call actor carries out what the line asks of it (the subscriber's hang-up, answer,
//! hook flash, keys and transfer, and a referred call's progress; the messages are defined
//! beside the actor): on the dialog, the negotiator or the media actor.

use std::time::Instant;

use actix::prelude::*;

use super::{Answer, CallActor, Flash, HangUp, Key, ReferNotify, Transfer};
use crate::media::actor::{SendDigit, StopMedia};

impl Handler<HangUp> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: HangUp, ctx: &mut Context<Self>) {
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.hang_up();
        }
        if let Some(media) = self.media.take() {
            media.do_send(StopMedia);
        }
        self.pump(ctx);
    }
}

impl Handler<Answer> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Answer, ctx: &mut Context<Self>) {
        let Some((answer, audio)) = self.sdp.accept() else {
            return;
        };
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.accept(Instant::now(), answer);
        }
        self.start_media(&audio);
        self.pump(ctx);
    }
}

impl Handler<Flash> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Flash, ctx: &mut Context<Self>) {
        let Some(offer) = self.sdp.hold_or_resume() else {
            return;
        };
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.reinvite(offer);
        }
        self.pump(ctx);
    }
}

impl Handler<Transfer> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Transfer, ctx: &mut Context<Self>) {
        let target = self.target_uri(&msg.0);
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.refer(&target);
        }
        self.pump(ctx);
    }
}

impl Handler<ReferNotify> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: ReferNotify, ctx: &mut Context<Self>) {
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.notify_refer(msg.status, msg.reason);
        }
        self.pump(ctx);
    }
}

impl Handler<Key> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Key, _ctx: &mut Context<Self>) {
        if let Some(media) = &self.media {
            media.do_send(SendDigit(msg.0));
        }
    }
}
