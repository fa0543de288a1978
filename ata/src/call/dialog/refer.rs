//! Transfer inside the dialog (RFC 3515, RFC 5589 sections 6 and 7): as transferor our REFER
//! (blind, or attended with a `Replaces` naming our dialog with the target, RFC 3891) and the
//! peer's NOTIFYs about it; as transferee the peer's REFER (202) and our NOTIFYs of the
//! referred call (`message/sipfrag`), which end the implicit subscription. Also hook flash
//! sent to the far end as INFO (`flash_mode = "info"`).

use dialtone_sip::Message;

use super::{CallEvent, Dialog, DialogIds, Phase, TxnId};
use crate::identity::ALLOW;

impl Dialog {
    /// Transferor: asks the peer to call `target` (REFER, RFC 3515 section 2.4.1).
    pub fn refer(&mut self, target: &str) {
        self.send_refer(target.to_owned());
    }

    /// Transferor, attended (RFC 5589 section 7): asks the peer to call `target` with an
    /// INVITE that replaces the dialog `replaced` (ours with the target, RFC 3891 section 3:
    /// `to-tag` is the target's tag, `from-tag` ours).
    pub fn refer_replacing(&mut self, replaced: &DialogIds) {
        let replaces = format!(
            "{};to-tag={};from-tag={}",
            replaced.call_id, replaced.remote_tag, replaced.local_tag
        );
        let target = format!(
            "{}?Replaces={}",
            replaced.remote_uri,
            escape_header(&replaces)
        );
        self.send_refer(target);
    }

    /// Hook flash for the far end's features, as SIP INFO (`application/hook-flash`, the
    /// body Cisco and Broadsoft equipment sends: `signal=hf`).
    pub fn info_flash(&mut self) {
        if self.phase != Phase::Confirmed {
            return;
        }
        self.local_cseq += 1;
        let (builder, destination) = self.in_dialog_request("INFO", self.local_cseq);
        let bytes = builder
            .body("application/hook-flash", b"signal=hf\r\n")
            .build();
        self.send_in_dialog(bytes, destination);
    }

    fn send_refer(&mut self, target: String) {
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
        self.send_in_dialog(bytes, destination);
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
        self.send_in_dialog(bytes, destination);
    }

    /// RFC 3515 section 2.4.2: accept with 202 and report the referred call by NOTIFY.
    pub(super) fn on_refer(&mut self, txn: TxnId, request: &Message<'_>) {
        if self.phase != Phase::Confirmed {
            self.respond(txn, request, 481, "Call/Transaction Does Not Exist", None);
            return;
        }
        let refer_to = request.header_value_by_name("Refer-To").unwrap_or_default();
        let target = Some(refer_target(refer_to))
            .filter(|t| t.starts_with("sip:") || t.starts_with("sips:"));
        let Some(target) = target else {
            // Section 2.4.1: exactly one Refer-To, and we can only call SIP URIs.
            self.respond(txn, request, 400, "Bad Refer-To", None);
            return;
        };
        self.respond(txn, request, 202, "Accepted", None);
        let replaces = refer_replaces(refer_to);
        self.event(CallEvent::Referred { target, replaces });
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
/// (`?Replaces=...`, see [`refer_replaces`]).
pub(super) fn refer_target(value: &str) -> String {
    let value = value.trim();
    let uri = match (value.find('<'), value.find('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value.split(';').next().unwrap_or(value),
    };
    uri.split('?').next().unwrap_or(uri).trim().to_owned()
}

/// The `Replaces` header of a Refer-To URI (`<sip:b@h?Replaces=id%3Bto-tag%3D1...>`),
/// unescaped (RFC 3261 19.1.1: URI headers are escaped).
pub(super) fn refer_replaces(value: &str) -> Option<String> {
    let value = value.trim();
    let uri = match (value.find('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value,
    };
    let (_, headers) = uri.split_once('?')?;
    headers.split('&').find_map(|header| {
        let (name, value) = header.split_once('=')?;
        name.eq_ignore_ascii_case("Replaces")
            .then(|| unescape(value))
            .filter(|v| !v.is_empty())
    })
}

/// Escapes a URI header value (RFC 3261 25.1 `hvalue`: unreserved and a few marks stay).
fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 2);
    for byte in value.bytes() {
        let plain = byte.is_ascii_alphanumeric() || b"-_.!~*'()[]/?:+$".contains(&byte);
        if plain {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
