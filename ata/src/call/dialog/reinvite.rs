//! Re-INVITE inside the dialog (RFC 3261 14, RFC 3264 section 8): ours for hold and resume,
//! the peer's answered with what the actor negotiated, and the ACK to the 2xx of ours.

use std::time::Instant;

use dialtone_sip::{Message, ResponseBuilder};

use super::{sdp_body, CallEvent, Dialog, Output, PendingOk, Phase};
use crate::error::AtaError;
use crate::identity::{ALLOW, USER_AGENT};

impl Dialog {
    /// Sends a re-INVITE with `sdp` (hold or resume, RFC 3264 section 8).
    pub fn reinvite(&mut self, sdp: Vec<u8>) {
        if self.phase != Phase::Confirmed || self.reinvite_cseq.is_some() {
            return;
        }
        self.local_cseq += 1;
        self.reinvite_cseq = Some(self.local_cseq);
        let contact = format!("<{}>", self.identity.contact_uri());
        let (builder, destination) = self.in_dialog_request("INVITE", self.local_cseq);
        let bytes = builder
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .body("application/sdp", &sdp)
            .build();
        self.send_in_dialog(bytes, destination);
    }

    /// Answers the re-INVITE announced by [`CallEvent::Reoffer`].
    pub fn answer_reinvite(&mut self, now: Instant, sdp: Option<Vec<u8>>, status: u16) {
        let Some((txn, request)) = self.reinvite_txn.take() else {
            return;
        };
        let Ok(message) = Message::parse(&request) else {
            return;
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Not Acceptable Here"
        };
        let mut builder = ResponseBuilder::for_request(&message, status, reason)
            .header("Contact", &format!("<{}>", self.identity.contact_uri()))
            .header("Server", USER_AGENT);
        if let Some(sdp) = &sdp {
            builder = builder.body("application/sdp", sdp);
        }
        let bytes = builder.build();
        self.outputs.push_back(Output::Response {
            txn,
            status,
            bytes: bytes.clone(),
        });
        if status == 200 {
            self.pending_ok = Some(PendingOk::new(txn, bytes, now, self.t1));
        }
    }

    pub(super) fn on_reinvite_response(
        &mut self,
        status: u16,
        response: &Message<'_>,
    ) -> Result<(), AtaError> {
        if status < 200 {
            return Ok(());
        }
        let seq = self.reinvite_cseq.take().unwrap_or(self.local_cseq);
        if (200..300).contains(&status) {
            let (builder, destination) = self.in_dialog_request_with_cseq("ACK", seq, "ACK");
            self.outputs.push_back(Output::Stateless {
                bytes: builder.build(),
                destination,
            });
            self.event(CallEvent::ReofferAnswered {
                sdp: sdp_body(response),
            });
        }
        Ok(())
    }
}
