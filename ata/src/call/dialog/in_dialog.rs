//! Requests inside the dialog (RFC 3261 12.2): the ones the peer sends us (ACK, CANCEL, BYE,
//! re-INVITE, OPTIONS, REFER, NOTIFY, INFO) and how ours are addressed along the route set
//! (12.2.1.1, loose or strict, in [`super::super::route`]; to a resolved host name's preferred
//! address, `super::super::hops`), the BYE among them.

use std::net::SocketAddr;

use dialtone_sip::{Message, Method, RequestBuilder, ResponseBuilder};

use super::super::route::{next_hop, route_plan};
use super::{sdp_body, CallEvent, Dialog, Output, Phase, TxnId};
use crate::error::{AtaError, Unusable};
use crate::identity::{self, ALLOW, USER_AGENT};

impl Dialog {
    /// A request the endpoint routed to this dialog. `txn` is its server transaction, `None`
    /// for an ACK to our 2xx (which has none).
    pub fn handle_request(
        &mut self,
        txn: Option<TxnId>,
        request: &Message<'_>,
        bytes: &[u8],
    ) -> Result<(), AtaError> {
        let method = request
            .method()
            .ok_or(AtaError::Unusable(Unusable::NotARequest))?;
        let cseq = request.cseq()?;
        if method == Method::Ack {
            if self.pending_ok.take().is_some() && self.phase == Phase::Accepted {
                self.phase = Phase::Confirmed;
                self.event(CallEvent::Confirmed);
                if self.bye_pending {
                    self.send_bye();
                }
            }
            return Ok(());
        }
        let Some(txn) = txn else {
            return Err(AtaError::Unusable(Unusable::NoServerTransaction));
        };
        if method == Method::Cancel {
            self.respond(txn, request, 200, "OK", None);
            if matches!(self.phase, Phase::Offered | Phase::Ringing) {
                self.respond_invite(487, "Request Terminated", None, true);
                self.event(CallEvent::Cancelled);
                self.terminate();
            }
            return Ok(());
        }
        // RFC 3261 12.2.2: a CSeq lower than the last one is out of order.
        if self.remote_cseq.is_some_and(|last| cseq.seq < last) {
            self.respond(txn, request, 500, "Server Internal Error", None);
            return Ok(());
        }
        self.remote_cseq = Some(cseq.seq);
        match method {
            Method::Bye => {
                self.respond(txn, request, 200, "OK", None);
                if self.phase != Phase::Terminated {
                    self.event(CallEvent::RemoteHangup);
                    self.terminate();
                }
            }
            Method::Invite if self.phase == Phase::Confirmed => {
                if self.reinvite_txn.is_some() || self.reinvite_cseq.is_some() {
                    // RFC 3261 14.2: an offer crossing ours, or a second one pending.
                    self.respond(txn, request, 491, "Request Pending", None);
                } else {
                    self.reinvite_txn = Some((txn, bytes.to_vec()));
                    self.event(CallEvent::Reoffer {
                        sdp: sdp_body(request),
                    });
                }
            }
            Method::Invite => self.respond(txn, request, 491, "Request Pending", None),
            Method::Options => self.respond(txn, request, 200, "OK", None),
            Method::Refer => self.on_refer(txn, request),
            Method::Notify => self.on_notify(txn, request),
            Method::Info => self.respond(txn, request, 200, "OK", None),
            _ => self.respond(txn, request, 501, "Not Implemented", None),
        }
        Ok(())
    }

    pub(super) fn send_bye(&mut self) {
        self.bye_pending = false;
        self.local_cseq += 1;
        let (builder, destination) = self.in_dialog_request("BYE", self.local_cseq);
        self.send_in_dialog(builder.build(), destination);
        self.phase = Phase::Ending;
    }

    pub(super) fn in_dialog_request(
        &mut self,
        method: &str,
        seq: u32,
    ) -> (RequestBuilder, SocketAddr) {
        self.in_dialog_request_with_cseq(method, seq, method)
    }

    /// Builds an in-dialog request with the route set (RFC 3261 12.2.1.1). Every request
    /// inside the dialog, the ACK to a 2xx included, is addressed here, so that none is
    /// routed by a rule of its own.
    pub(super) fn in_dialog_request_with_cseq(
        &mut self,
        method: &str,
        seq: u32,
        cseq_method: &str,
    ) -> (RequestBuilder, SocketAddr) {
        let plan = route_plan(&self.route_set, &self.remote_target);
        let destination = next_hop(&plan.next_hop)
            .or_else(|| self.hops.destination_for(&plan.next_hop))
            .unwrap_or(self.fallback);
        let branch = identity::new_branch(&mut self.rng);
        let mut builder = RequestBuilder::new(method, &plan.request_uri)
            .header("Via", &self.identity.via(&branch))
            .header("Max-Forwards", "70");
        for route in &plan.routes {
            builder = builder.header("Route", &format!("<{route}>"));
        }
        let builder = builder
            .header("From", &self.local_party_header())
            .header("To", &self.remote_party_header())
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{seq} {cseq_method}"))
            .header("User-Agent", USER_AGENT);
        (builder, destination)
    }

    pub(super) fn local_party_header(&self) -> String {
        self.local_header.clone()
    }

    pub(super) fn remote_party_header(&self) -> String {
        self.remote_header.clone()
    }

    pub(super) fn respond(
        &mut self,
        txn: TxnId,
        request: &Message<'_>,
        status: u16,
        reason: &str,
        body: Option<&[u8]>,
    ) {
        let mut builder = ResponseBuilder::for_request(request, status, reason)
            .to_tag(&self.local_tag)
            .header("Server", USER_AGENT);
        if status == 200 && request.method() == Some(Method::Options) {
            builder = builder
                .header("Allow", ALLOW)
                .header("Accept", "application/sdp");
        }
        if let Some(body) = body {
            builder = builder.body("application/sdp", body);
        }
        self.outputs.push_back(Output::Response {
            txn,
            status,
            bytes: builder.build(),
        });
    }
}
