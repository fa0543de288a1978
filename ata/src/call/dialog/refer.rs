//! Blind transfer inside the dialog (RFC 3515, RFC 5589 section 6): as transferor our REFER
//! and the peer's NOTIFYs about it; as transferee the peer's REFER (202) and our NOTIFYs of
//! the referred call (`message/sipfrag`), which end the implicit subscription.

use dialtone_sip::Message;

use super::{CallEvent, Dialog, Output, Phase, TxnId};
use crate::identity::ALLOW;

impl Dialog {
    /// Transferor: asks the peer to call `target` (REFER, RFC 3515 section 2.4.1).
    pub fn refer(&mut self, target: &str) {
        if self.phase != Phase::Confirmed || self.refer_cseq.is_some() {
            return;
        }
        self.local_cseq += 1;
        self.refer_cseq = Some(self.local_cseq);
        let contact = format!("<{}>", self.identity.contact_uri());
        let referred_by = format!("<{}>", self.identity.aor());
        let (builder, destination) = self.in_dialog_request("REFER", self.local_cseq);
        let bytes = builder
            .header("Refer-To", &format!("<{target}>"))
            .header("Referred-By", &referred_by)
            .header("Contact", &contact)
            .header("Allow", ALLOW)
            .build();
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    /// Transferee: reports the referred call's progress to the transferor in a NOTIFY
    /// (RFC 3515 section 2.4.4); a `status` of 200 or more is the final one and ends the
    /// implicit subscription.
    pub fn notify_refer(&mut self, status: u16, reason: &str) {
        if !matches!(self.phase, Phase::Confirmed | Phase::Ending) {
            return;
        }
        self.local_cseq += 1;
        let state = if status >= 200 {
            "terminated;reason=noresource"
        } else {
            "active;expires=60"
        };
        let contact = format!("<{}>", self.identity.contact_uri());
        let (builder, destination) = self.in_dialog_request("NOTIFY", self.local_cseq);
        let bytes = builder
            .header("Event", "refer")
            .header("Subscription-State", state)
            .header("Contact", &contact)
            .body(
                "message/sipfrag;version=2.0",
                format!("SIP/2.0 {status} {reason}\r\n").as_bytes(),
            )
            .build();
        self.outputs
            .push_back(Output::Request { bytes, destination });
    }

    /// RFC 3515 section 2.4.2: accept with 202 and report the referred call by NOTIFY.
    pub(super) fn on_refer(&mut self, txn: TxnId, request: &Message<'_>) {
        if self.phase != Phase::Confirmed {
            self.respond(txn, request, 481, "Call/Transaction Does Not Exist", None);
            return;
        }
        let target = request
            .header_value_by_name("Refer-To")
            .map(refer_target)
            .filter(|t| t.starts_with("sip:") || t.starts_with("sips:"));
        let Some(target) = target else {
            // Section 2.4.1: exactly one Refer-To, and we can only call SIP URIs.
            self.respond(txn, request, 400, "Bad Refer-To", None);
            return;
        };
        self.respond(txn, request, 202, "Accepted", None);
        self.event(CallEvent::Referred { target });
    }

    /// A NOTIFY in the dialog: for our REFER (`Event: refer`), its sipfrag says how the
    /// transferee's call goes; anything else is acknowledged and ignored.
    pub(super) fn on_notify(&mut self, txn: TxnId, request: &Message<'_>) {
        self.respond(txn, request, 200, "OK", None);
        let event = request.header_value_by_name("Event").unwrap_or_default();
        let is_refer = event
            .split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        let status = sipfrag_status(request.body());
        if let (true, Some(status)) = (is_refer, status) {
            let terminated = request
                .header_value_by_name("Subscription-State")
                .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
            self.event(CallEvent::ReferProgress { status, terminated });
        }
    }
}

/// The URI of a Refer-To value (`<sip:...>` or a bare URI), without its header parameters
/// (`?Replaces=...` is for attended transfer, which we do not do).
pub(super) fn refer_target(value: &str) -> String {
    let value = value.trim();
    let uri = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value),
    };
    uri.split('?').next().unwrap_or(uri).trim().to_owned()
}

/// The status code of a `message/sipfrag` body's status line (`SIP/2.0 200 OK`).
pub(super) fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.eq_ignore_ascii_case("SIP/2.0") {
        return None;
    }
    parts.next()?.parse().ok()
}
