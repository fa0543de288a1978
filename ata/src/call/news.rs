//! What a call tells its line: [`CallNews`] and how a call ended ([`CallOutcome`]).
//!
//! Defined here, beside their sender, so that the call never imports the line: the line
//! gives each call a [`LineInbox`] of recipients when it starts it, and the arrow between the
//! two modules runs one way (line → call).

use std::net::SocketAddr;

use actix::prelude::*;

use crate::call::dialog::DialogIds;
use crate::media::actor::{MediaListener, MicrophoneFrame};

/// A finished call attempt, as the subscriber hears it (and the phone acts on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Failed with this status.
    Failed(u16),
    /// The far end hung up.
    RemoteHangup,
    /// The caller gave up before we answered.
    Cancelled,
    /// We transferred the call away (REFER accepted and the transferee's call answered).
    Transferred,
}

/// News from a call actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallNews {
    /// The call's id.
    pub call: u64,
    /// What happened.
    pub news: News,
}

/// What a call tells its line.
pub enum News {
    /// The far end rings (180/183).
    Ringing,
    /// The far end sends early media (183 with SDP): play it instead of ringback.
    EarlyMedia {
        /// The media actor.
        media: Recipient<MicrophoneFrame>,
        /// The negotiated codec, `name/rate[/channels]`.
        codec: String,
    },
    /// Media flows; send microphone frames there.
    Connected {
        /// The media actor.
        media: Recipient<MicrophoneFrame>,
        /// The negotiated codec, `name/rate[/channels]` as in SDP `a=rtpmap`.
        codec: String,
        /// The dialog's identifiers, for an attended transfer or a Replaces naming it.
        dialog: Option<DialogIds>,
    },
    /// The call ended, as the subscriber should hear it.
    Ended(CallOutcome),
    /// Transferee: the peer asked us to call `target` (REFER).
    Referred {
        /// A SIP URI.
        target: String,
        /// The `Replaces` to put in the new INVITE (an attended transfer).
        replaces: Option<String>,
    },
    /// Transferor: the transfer failed with this status; the call goes on.
    TransferFailed {
        /// The status (of the REFER, or of the transferee's call).
        status: u16,
    },
    /// The proxy our INVITE went to did not answer it at all (Timer B, a send error) or
    /// answered 503: the line's registration moves to its next proxy (issue 21 item 5).
    ProxyUnanswered {
        /// That proxy.
        proxy: SocketAddr,
        /// 408, or 503.
        status: u16,
    },
    /// The call actor stopped.
    Gone,
}

/// Where a call and its media report to: the line, as recipients.
#[derive(Clone)]
pub struct LineInbox {
    /// The call's news.
    pub news: Recipient<CallNews>,
    /// What the call's media actor receives (earpiece audio, DTMF keys).
    pub media: MediaListener,
}
