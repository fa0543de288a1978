//! What the call actor tells its observer (`call::observer`, the load generator's): the
//! setup time of an outgoing call, its media's final counters, and how it ended. Also where
//! every path that ends a call's media goes through ([`CallActor::stop_media`]), since the
//! final counters are read there.

use std::time::Instant;

use super::CallActor;
use crate::call::observer::{CallObserved, Observed};
use crate::media::actor::StopMedia;

impl CallActor {
    /// Tells the observer, if there is one, `event` about this call.
    fn observe(&self, event: Observed) {
        let (Some(observer), Some(dialog)) = (&self.context.observer, &self.dialog) else {
            return;
        };
        observer.do_send(CallObserved {
            line: self.context.line_name.clone(),
            call_id: dialog.call_id().to_owned(),
            event,
        });
    }

    /// An outgoing call's 2xx arrived: its setup time, from the first INVITE sent.
    pub(super) fn observe_answered(&self) {
        if let Some(sent) = self.invite_sent {
            let setup = Instant::now().saturating_duration_since(sent);
            self.observe(Observed::Answered { setup });
        }
    }

    /// The actor stops.
    pub(super) fn observe_end(&self) {
        self.observe(Observed::Ended {
            incoming: self.incoming,
            outcome: self.outcome(),
            status: self.final_status,
        });
    }

    /// Stops the media actor. With an observer, its final counters are asked for and passed
    /// on (the actor answers as it stops); without, it is only told to stop.
    pub(super) fn stop_media(&mut self) {
        let Some(media) = self.media.take() else {
            return;
        };
        let (Some(observer), Some(dialog)) = (self.context.observer.clone(), &self.dialog) else {
            media.do_send(StopMedia);
            return;
        };
        let line = self.context.line_name.clone();
        let call_id = dialog.call_id().to_owned();
        actix::spawn(async move {
            if let Ok(counters) = media.send(StopMedia).await {
                observer.do_send(CallObserved {
                    line,
                    call_id,
                    event: Observed::Media(counters),
                });
            }
        });
    }
}
