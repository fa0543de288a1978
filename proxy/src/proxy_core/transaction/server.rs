//! The server side of a proxied request: its server transaction (INVITE or not), the
//! responses the proxy writes itself, retransmissions of the request and the ACK of a non-2xx
//! final (RFC 3261 sections 16.2, 17.2).

use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::Message;
use dialtone_transaction::{ServerInviteState, ServerTransaction};

use super::{ProxyTransaction, TransactionEnv};
use crate::proxy_core::{reply, Action, Destination};

impl ProxyTransaction {
    /// Sends a response the proxy writes itself (100 Trying, or a final), parsing the stored
    /// request again; a caller that holds the parsed request uses [`Self::respond_to`].
    pub(crate) fn respond_locally(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        actions: &mut Vec<Action>,
    ) {
        // A clone of the `Bytes` handle, not of the message, so that `self` stays free to mutate.
        let raw = self.request().clone();
        let Ok(request) = Message::parse(&raw) else {
            return;
        };
        self.respond_to(&request, now, env, status, reason, extra, actions);
    }

    /// Sends a response the proxy writes itself to `request`, which must be this transaction's
    /// request, already parsed: parsing it a second time (and its Via, From and To again) was a
    /// sixth of what a REGISTER cost the core.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn respond_to(
        &mut self,
        request: &Message<'_>,
        now: Instant,
        env: &TransactionEnv<'_>,
        status: u16,
        reason: &str,
        extra: &[(&str, String)],
        actions: &mut Vec<Action>,
    ) {
        debug_assert_eq!(request.as_bytes(), &self.request()[..]);
        let bytes = reply::local_response(
            request,
            self.source(),
            status,
            reason,
            extra,
            env.to_tag,
            env.server_header,
        );
        if status >= 200 {
            if self.final_sent {
                return;
            }
            self.final_sent = true;
            self.challenged = matches!(status, 401 | 407);
            env.metrics
                .transaction_duration
                .observe(now.duration_since(self.started).as_secs_f64());
        }
        env.metrics.response_sent(status).inc();
        self.send_upstream(now, status, bytes);
        self.drain(now, env, actions);
    }

    /// Keeps only the skeleton of a kept INVITE (`Message::skeleton`): the proxy's own
    /// responses to it (100, 404, 408, 487, 500, 503) copy nothing else, its forwarded copies
    /// are already written, and a ringing INVITE is kept for minutes (Timer C). Other requests
    /// keep theirs: a held REGISTER is answered again from it, and they live seconds.
    /// `request` is this transaction's request, already parsed.
    pub(crate) fn keep_only_the_skeleton(&mut self, request: &Message<'_>) {
        let ServerTransaction::Invite(server) = &mut self.server else {
            return;
        };
        debug_assert_eq!(request.as_bytes(), &server.request()[..]);
        server.replace_request(Bytes::from(request.skeleton()));
    }

    /// A retransmission of the request arrived, to be answered at `reply_to`: the server
    /// transaction answers it, there and from now on. A client that lost its TCP connection
    /// sends the retransmission on a new one and listens there; the response used to go to the
    /// closed connection and was lost (RFC 3261 section 18.2.2 only says to answer on the
    /// connection of the original request "if that connection is still open"). When the
    /// server machine already ended (a non-INVITE over TCP whose branch lives on), the kept
    /// final response answers instead.
    pub(crate) fn on_retransmission(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        reply_to: Destination,
        actions: &mut Vec<Action>,
    ) {
        self.set_reply_to(reply_to);
        let before = actions.len();
        if self.server.is_terminated() {
            if let Some(bytes) = self.later.as_ref().and_then(|l| l.final_response.as_ref()) {
                actions.push(Action::Send {
                    to: reply_to,
                    bytes: Bytes::clone(bytes),
                });
            }
        } else {
            self.server.handle_request_retransmission(now);
            self.drain(now, env, actions);
        }
        env.metrics
            .retransmissions
            .inc_by((actions.len() - before) as u64);
    }

    /// An ACK matched the INVITE server transaction. Returns true when it was the ACK of our
    /// non-2xx final and so absorbed (RFC 3261 section 17.2.1); false when the caller must
    /// forward it (the ACK of a 2xx, which belongs to the dialog).
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        env: &TransactionEnv<'_>,
        actions: &mut Vec<Action>,
    ) -> bool {
        match &mut self.server {
            ServerTransaction::Invite(t)
                if matches!(
                    t.state(),
                    ServerInviteState::Completed | ServerInviteState::Confirmed
                ) =>
            {
                t.handle_ack(now);
                self.drain(now, env, actions);
                true
            }
            _ => false,
        }
    }

    /// Hands a response to the server transaction, keeping a non-INVITE final for later copies
    /// of the request (see `final_response`).
    pub(super) fn send_upstream(&mut self, now: Instant, status: u16, bytes: Bytes) {
        if status >= 200 && !self.is_invite {
            self.later_mut()
                .final_response
                .get_or_insert_with(|| bytes.clone());
        }
        let _ = self.server.send_response(now, status, bytes);
    }
}
