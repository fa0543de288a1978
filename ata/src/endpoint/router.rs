//! Where a request that arrives at the endpoint goes, sans-IO: no actix, no socket, no clock.
//!
//! The endpoint actor (`endpoint::mod`) hands every request to the transaction table first;
//! what the table does not absorb comes here with its [`Disposition`], and [`Router::route`]
//! says what it is:
//!
//! - inside a dialog a call registered ([`Router::route_dialog`]): for that call;
//! - a CANCEL: for the call that owns the INVITE it cancels;
//! - a new INVITE: for the line whose user is in the Request-URI (or the first line, for
//!   direct calls by IP);
//! - a `NOTIFY` with `Event: check-sync` (the Cisco ATA's remote resync): answered 200, and
//!   news for whoever attached ([`Router::attach_check_sync`]);
//! - a `NOTIFY` with `Event: message-summary` outside any dialog (RFC 3842's unsolicited
//!   message-waiting indication, which Cisco ATAs and Asterisk accept): answered 200, and
//!   for the message-waiting owner ([`Router::attach_mwi`]) of the line whose user is in the
//!   Request-URI (or the first one, as for an INVITE); one in our subscription's dialog is
//!   routed to it like any in-dialog request;
//! - anything else is answered here: 200 to an out-of-dialog OPTIONS, 481 to a CANCEL or an
//!   in-dialog request of no dialog we know, 404 when no line takes a call, 489 to another
//!   event package, 405 to any other method.
//!
//! The owners (`C` a call, `L` a line, `S` the check-sync listener, `M` a line's
//! message-waiting owner) are the actor's recipients; the tests use plain values. The responses the router makes itself carry a
//! random To tag (RFC 3261 8.2.6.2: the UAS adds one to a response of a request without).

use std::collections::HashMap;

use dialtone_sip::{Message, Method, ResponseBuilder};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::table::Disposition;
use crate::identity::{self, ALLOW, USER_AGENT};

/// A response the endpoint sends in a server transaction on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnResponse {
    /// The server transaction.
    pub txn: u64,
    /// The status.
    pub status: u16,
    /// The response.
    pub bytes: Vec<u8>,
}

/// What an arriving request is, and who hears of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<C, L, S, M> {
    /// Nothing to deliver: the table absorbed it (a retransmission, the ACK to our non-2xx),
    /// or it is an ACK of no dialog we know.
    Nothing,
    /// A request inside a call's dialog; `txn` is `None` for the ACK to a 2xx.
    InDialog {
        /// The call.
        owner: C,
        /// Its server transaction.
        txn: Option<u64>,
    },
    /// A CANCEL, for the call whose INVITE it cancels.
    Cancel {
        /// The call.
        owner: C,
        /// The CANCEL's server transaction.
        txn: u64,
    },
    /// A new INVITE, for a line.
    NewCall {
        /// The line.
        owner: L,
        /// The INVITE's server transaction.
        txn: u64,
    },
    /// A check-sync NOTIFY: send `response`, then tell `owner`.
    CheckSync {
        /// Who re-reads the configuration.
        owner: S,
        /// The 200.
        response: OwnResponse,
    },
    /// An unsolicited message-summary NOTIFY: send `response`, then hand the body to
    /// `owner`.
    MessageSummary {
        /// The line's message-waiting owner.
        owner: M,
        /// The 200.
        response: OwnResponse,
    },
    /// The endpoint answers it itself.
    OwnResponse(OwnResponse),
}

/// The endpoint's routing tables. See the module docs.
#[derive(Debug)]
pub struct Router<C, L, S, M> {
    dialogs: HashMap<(String, String), C>,
    cancel_owners: HashMap<u64, C>,
    lines: Vec<(String, L)>,
    mwi_owners: Vec<(String, M)>,
    check_sync: Option<S>,
    rng: StdRng,
}

impl<C: Clone + PartialEq, L: Clone, S: Clone, M: Clone> Router<C, L, S, M> {
    /// An empty router; `seed` makes its To tags.
    pub fn new(seed: u64) -> Self {
        Router {
            dialogs: HashMap::new(),
            cancel_owners: HashMap::new(),
            lines: Vec::new(),
            mwi_owners: Vec::new(),
            check_sync: None,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Routes the dialog (Call-ID, our tag) to `owner`; with `txn`, `owner` also owns that
    /// INVITE server transaction, so that a CANCEL of it finds the call.
    pub fn route_dialog(&mut self, call_id: String, local_tag: String, owner: C, txn: Option<u64>) {
        if let Some(txn) = txn {
            self.cancel_owners.insert(txn, owner.clone());
        }
        self.dialogs.insert((call_id, local_tag), owner);
    }

    /// Forgets the dialog and the transactions its owner held.
    pub fn forget_dialog(&mut self, call_id: String, local_tag: String) {
        if let Some(owner) = self.dialogs.remove(&(call_id, local_tag)) {
            self.cancel_owners.retain(|_, o| o != &owner);
        }
    }

    /// New calls for `user` go to `owner`; the first line attached also takes calls for
    /// users no line has.
    pub fn attach_line(&mut self, user: String, owner: L) {
        self.lines.push((user, owner));
    }

    /// Unsolicited message-summary NOTIFYs for `user` go to `owner`; the first attached
    /// also takes those for users no line has. Without any they are refused 489.
    pub fn attach_mwi(&mut self, user: String, owner: M) {
        self.mwi_owners.push((user, owner));
    }

    /// check-sync NOTIFYs go to `owner`; without one they are refused 489.
    pub fn attach_check_sync(&mut self, owner: S) {
        self.check_sync = Some(owner);
    }

    /// What `request`, which the table judged `disposition`, is.
    pub fn route<T>(
        &mut self,
        request: &Message<'_>,
        disposition: Disposition<T>,
    ) -> Route<C, L, S, M> {
        let dialog_key = match (request.call_id(), request.to()) {
            (Ok(call_id), Ok(to)) => to.tag().map(|tag| (call_id.to_owned(), tag.to_owned())),
            _ => None,
        };
        let dialog = dialog_key
            .as_ref()
            .and_then(|k| self.dialogs.get(k))
            .cloned();
        match disposition {
            Disposition::Absorbed => Route::Nothing,
            Disposition::AckForDialog => match dialog {
                Some(owner) => Route::InDialog { owner, txn: None },
                None => Route::Nothing,
            },
            Disposition::New { id, cancels } => {
                let cancels = cancels.map(|(invite, _)| invite);
                self.route_new(request, id, cancels, dialog, dialog_key.is_some())
            }
        }
    }

    /// A request with a new server transaction `id`; `cancels` is the INVITE transaction a
    /// CANCEL targets.
    fn route_new(
        &mut self,
        request: &Message<'_>,
        id: u64,
        cancels: Option<u64>,
        dialog: Option<C>,
        has_to_tag: bool,
    ) -> Route<C, L, S, M> {
        let method = request.method().unwrap_or(Method::Extension(""));
        if method == Method::Cancel {
            return match cancels.and_then(|invite| self.cancel_owners.get(&invite)) {
                Some(owner) => Route::Cancel {
                    owner: owner.clone(),
                    txn: id,
                },
                // RFC 3261 9.2: no matching transaction.
                None => self.respond(id, request, 481, "Call/Transaction Does Not Exist"),
            };
        }
        if let Some(owner) = dialog {
            return Route::InDialog {
                owner,
                txn: Some(id),
            };
        }
        if has_to_tag {
            // RFC 3261 12.2.2: a request in a dialog we do not have.
            return self.respond(id, request, 481, "Call/Transaction Does Not Exist");
        }
        let user = request.request_uri().and_then(|u| u.user()).unwrap_or("");
        match method {
            Method::Invite => match for_user(&self.lines, user) {
                Some(owner) => Route::NewCall { owner, txn: id },
                None => self.respond(id, request, 404, "Not Found"),
            },
            Method::Options => self.respond(id, request, 200, "OK"),
            Method::Notify if is_check_sync(request) => match self.check_sync.clone() {
                Some(owner) => Route::CheckSync {
                    owner,
                    response: self.own_response(id, request, 200, "OK"),
                },
                None => self.respond(id, request, 489, "Bad Event"),
            },
            Method::Notify if is_message_summary(request) => match for_user(&self.mwi_owners, user)
            {
                Some(owner) => Route::MessageSummary {
                    owner,
                    response: self.own_response(id, request, 200, "OK"),
                },
                None => self.respond(id, request, 489, "Bad Event"),
            },
            // RFC 6665 8.2.1: an event package we do not know.
            Method::Notify => self.respond(id, request, 489, "Bad Event"),
            _ => self.respond(id, request, 405, "Method Not Allowed"),
        }
    }

    fn respond(
        &mut self,
        txn: u64,
        request: &Message<'_>,
        status: u16,
        reason: &str,
    ) -> Route<C, L, S, M> {
        Route::OwnResponse(self.own_response(txn, request, status, reason))
    }

    fn own_response(
        &mut self,
        txn: u64,
        request: &Message<'_>,
        status: u16,
        reason: &str,
    ) -> OwnResponse {
        let tag = identity::new_tag(&mut self.rng);
        let mut builder = ResponseBuilder::for_request(request, status, reason)
            .to_tag(&tag)
            .header("Server", USER_AGENT);
        if status == 200 || status == 405 {
            builder = builder
                .header("Allow", ALLOW)
                .header("Accept", "application/sdp");
        }
        OwnResponse {
            txn,
            status,
            bytes: builder.build(),
        }
    }
}

/// The owner attached for `user`, else the first one attached (requests by IP name no user,
/// or another).
fn for_user<T: Clone>(owners: &[(String, T)], user: &str) -> Option<T> {
    owners
        .iter()
        .find(|(u, _)| u == user)
        .or_else(|| owners.first())
        .map(|(_, owner)| owner.clone())
}

/// The event package a request names in `Event`, without its parameters (`check-sync` of
/// `check-sync;reboot=false`, RFC 6665 8.2.1); compare it ignoring case.
pub fn event_package<'a>(message: &Message<'a>) -> Option<&'a str> {
    message
        .header_value_by_name("Event")
        .and_then(|e| e.split(';').next())
        .map(str::trim)
}

/// `Event: check-sync`.
fn is_check_sync(message: &Message<'_>) -> bool {
    event_package(message).is_some_and(|e| e.eq_ignore_ascii_case("check-sync"))
}

/// `Event: message-summary` (RFC 3842).
fn is_message_summary(message: &Message<'_>) -> bool {
    event_package(message).is_some_and(|e| e.eq_ignore_ascii_case("message-summary"))
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
