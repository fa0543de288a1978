//! How the call actor carries out what the line asks of it (the subscriber's hang-up, answer,
//! hook flash, keys and transfer, and a referred call's progress; the messages are defined
//! beside the actor): on the dialog, the negotiator or the media actor.

use std::time::Instant;

use actix::prelude::*;

use super::{
    Answer, AttendedTransfer, CallActor, Forward, HangUp, Hold, Key, ReferNotify, Resume,
    SendFlash, Transfer,
};
use crate::media::actor::{SendDigit, SendFlashEvent};

impl Handler<HangUp> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: HangUp, ctx: &mut Context<Self>) {
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.hang_up();
        }
        self.stop_media();
        self.pump(ctx);
    }
}

impl CallActor {
    /// Answers the ringing call with the prepared SDP answer and starts its media.
    pub(super) fn answer(&mut self) {
        let Some((answer, audio)) = self.sdp.accept() else {
            return;
        };
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.accept(Instant::now(), answer);
        }
        self.start_media(&audio);
    }
}

impl Handler<Answer> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Answer, ctx: &mut Context<Self>) {
        self.answer();
        self.pump(ctx);
    }
}

impl Handler<Hold> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Hold, ctx: &mut Context<Self>) {
        if let (Some(offer), Some(dialog)) = (self.sdp.hold(), self.dialog.as_mut()) {
            dialog.reinvite(offer);
        }
        self.pump(ctx);
    }
}

impl Handler<Resume> for CallActor {
    type Result = ();

    fn handle(&mut self, _msg: Resume, ctx: &mut Context<Self>) {
        if let (Some(offer), Some(dialog)) = (self.sdp.resume(), self.dialog.as_mut()) {
            dialog.reinvite(offer);
        }
        self.pump(ctx);
    }
}

impl Handler<SendFlash> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: SendFlash, ctx: &mut Context<Self>) {
        if msg.as_info {
            if let Some(dialog) = self.dialog.as_mut() {
                dialog.info_flash();
            }
        } else if let Some(media) = &self.media {
            media.do_send(SendFlashEvent);
        }
        self.pump(ctx);
    }
}

impl Handler<AttendedTransfer> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: AttendedTransfer, ctx: &mut Context<Self>) {
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.refer_replacing(&msg.0);
        }
        self.pump(ctx);
    }
}

impl Handler<Forward> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: Forward, ctx: &mut Context<Self>) {
        let target = self.target_uri(&msg.target);
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.redirect(&target, msg.reason);
        }
        self.stop_media();
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
