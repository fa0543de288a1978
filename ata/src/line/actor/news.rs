//! How the line actor takes in calls: a new INVITE (ring, wait, forward or refuse as the
//! phone decides, or take the place of one of our calls when it carries `Replaces`, RFC 3891)
//! and what its calls report ([`News`]), which it passes to the phone, and as the transferee of
//! a transfer relays to the transferor's call as `ReferNotify`.

use std::time::Instant;

use actix::prelude::*;
use dialtone_sip::Message;
use tracing::info;

use super::{handle, LineActor};
use crate::call::actor::{CallActor, CallContext, Reception, ReferNotify};
use crate::call::news::{CallOutcome, News};
use crate::endpoint::NewCall;
use crate::line::caller_id::caller_of;
use crate::line::phone::{AudioRoute, CallId, CallState, Disposition};
use crate::registration::actor::ProxyUnanswered;

impl LineActor {
    /// The call whose dialog a `Replaces` value names (RFC 3891 section 3: `to-tag` is our
    /// tag, `from-tag` the peer's).
    fn replaced_call(&self, replaces: &str) -> Option<CallId> {
        let mut parts = replaces.split(';');
        let call_id = parts.next()?.trim();
        let mut to_tag = None;
        let mut from_tag = None;
        for part in parts {
            match part.trim().split_once('=') {
                Some((name, value)) if name.eq_ignore_ascii_case("to-tag") => to_tag = Some(value),
                Some((name, value)) if name.eq_ignore_ascii_case("from-tag") => {
                    from_tag = Some(value)
                }
                _ => {}
            }
        }
        self.calls.iter().find_map(|(id, h)| {
            let ids = h.dialog.as_ref()?;
            let same = ids.call_id == call_id
                && Some(ids.local_tag.as_str()) == to_tag
                && Some(ids.remote_tag.as_str()) == from_tag;
            same.then_some(*id)
        })
    }

    pub(super) fn incoming(&mut self, ctx: &mut Context<Self>, msg: NewCall, context: CallContext) {
        let message = Message::parse(&msg.bytes).ok();
        let caller = message.as_ref().map(caller_of).unwrap_or_default();
        let replaces = message
            .as_ref()
            .and_then(|m| m.header_value_by_name("Replaces"))
            .map(str::to_owned);
        if let Some(replaces) = replaces {
            // RFC 3891 section 3: an INVITE with Replaces of a dialog we do not have gets 481.
            let replaced = self
                .replaced_call(&replaces)
                .and_then(|old| self.phone.replace_call(old, caller));
            let Some(id) = replaced else {
                info!(line = %self.user, "INVITE with Replaces of no call of ours");
                CallActor::incoming(0, context, msg, Reception::Reject(481)).start();
                return;
            };
            info!(line = %self.user, "a call replaces ours (attended transfer)");
            let actor = CallActor::incoming(id, context, msg, Reception::AnswerNow).start();
            self.calls.insert(id, handle(actor));
            return self.pump(ctx);
        }
        let number = caller.party.number.clone();
        let (id, disposition) = self.phone.incoming_call(Instant::now(), caller);
        info!(line = %self.user, caller = %number, ?disposition, "incoming call");
        let reception = match disposition.clone() {
            Disposition::Ring | Disposition::Wait => Reception::Ring,
            Disposition::Reject(status) => Reception::Reject(status),
            Disposition::Forward { target, reason } => Reception::Forward { target, reason },
        };
        let actor = CallActor::incoming(id, context, msg, reception.clone()).start();
        if reception != Reception::Ring {
            return self.pump(ctx);
        }
        self.calls.insert(id, handle(actor));
        if let (Some(delay), Disposition::Ring) = (self.auto_answer, disposition) {
            ctx.run_later(delay, move |actor, ctx| {
                let ringing = actor
                    .phone
                    .calls()
                    .iter()
                    .any(|c| c.id == id && c.state == CallState::Ringing);
                if ringing && !actor.phone.is_off_hook() {
                    if let Some(handle) = actor.calls.get_mut(&id) {
                        handle.auto_answered = true;
                    }
                    actor.phone.off_hook(Instant::now());
                    actor.pump(ctx);
                }
            });
        }
        self.pump(ctx);
    }

    pub(super) fn on_news(&mut self, id: CallId, news: News) {
        let referred = self.referred_by.as_ref().filter(|(new, _)| *new == id);
        let referred = referred.map(|(_, old)| old.clone());
        match news {
            News::Ringing => {
                if let Some(old) = referred {
                    old.do_send(ReferNotify {
                        status: 180,
                        reason: "Ringing",
                    });
                }
                self.phone.call_ringing(id)
            }
            News::EarlyMedia { media, codec } => {
                if let Some(handle) = self.calls.get_mut(&id) {
                    handle.media = Some(media);
                }
                self.phone.call_early_media(id, codec);
            }
            News::Connected {
                media,
                codec,
                dialog,
            } => {
                if let Some(handle) = self.calls.get_mut(&id) {
                    handle.media = Some(media);
                    handle.dialog = dialog;
                }
                self.last_outcome = Some("answered".into());
                if let Some(old) = referred {
                    self.referred_by = None;
                    old.do_send(ReferNotify {
                        status: 200,
                        reason: "OK",
                    });
                }
                self.phone.call_connected(id, codec);
            }
            News::Ended(outcome) => self.on_ended(id, outcome, referred),
            News::Referred { target, replaces } => {
                if let Some(old) = self.calls.get(&id).map(|h| h.actor.clone()) {
                    info!(line = %self.user, %target, attended = replaces.is_some(), "transferred: calling");
                    let new = self.phone.referred(id, target, replaces);
                    old.do_send(ReferNotify {
                        status: 100,
                        reason: "Trying",
                    });
                    self.handset.clear_received();
                    self.referred_by = Some((new, old));
                }
            }
            News::TransferFailed { status } => {
                self.last_outcome = Some(format!("transfer failed {status}"));
                if let Some(target) = self.transfers.remove(&id) {
                    // The phone already let both calls go; end them rather than leave two
                    // far ends waiting on hold.
                    self.hang_up_both(id, target);
                }
            }
            News::ProxyUnanswered { proxy, status } => {
                if let Some(registrar) = &self.registrar {
                    registrar.do_send(ProxyUnanswered { proxy, status });
                }
            }
            News::Gone => {
                self.calls.remove(&id);
                self.transfers.remove(&id);
                self.phone.call_gone(id);
            }
        }
    }

    fn on_ended(&mut self, id: CallId, outcome: CallOutcome, referred: Option<Addr<CallActor>>) {
        let was_heard = matches!(self.phone.audio_route(), AudioRoute::Call(a) if a == id);
        let auto_answered = match self.calls.get_mut(&id) {
            Some(handle) => {
                handle.media = None;
                handle.auto_answered
            }
            None => false,
        };
        if was_heard {
            self.handset.clear_received();
            let _ = self.handset.flush();
        }
        if let Some(old) = referred {
            self.referred_by = None;
            let status = match outcome {
                CallOutcome::Failed(status) => status,
                _ => 487,
            };
            old.do_send(ReferNotify {
                status,
                reason: "Failed",
            });
        }
        self.last_outcome = Some(match outcome {
            CallOutcome::Failed(status) => format!("failed {status}"),
            CallOutcome::RemoteHangup => "remote hangup".into(),
            CallOutcome::Cancelled => "cancelled".into(),
            CallOutcome::Transferred => "transferred".into(),
        });
        self.phone.call_ended(id, outcome);
        // A virtual line that answers by itself also hangs up by itself, so an unattended lab
        // callee is ready for the next call.
        let nothing_left = self
            .phone
            .calls()
            .iter()
            .all(|c| c.state == CallState::Ending);
        if auto_answered && nothing_left {
            self.phone.on_hook(Instant::now());
        }
    }
}
