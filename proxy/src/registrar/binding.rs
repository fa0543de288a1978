//! What the registrar keeps: a [`Binding`] of an address-of-record to a contact (RFC 3261
//! section 10.3), the [`BindingChange`]s the store applies (and the user's voicemail counts,
//! which travel the same way), and the identity of a contact
//! (section 19.1.4) that keys both memory and the store.

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_sip::Uri;
use dialtone_transaction::Transport;
use serde::{Deserialize, Serialize};

use super::mailbox::MessageCounts;

/// One binding of an address-of-record to a contact address (RFC 3261 section 10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The address-of-record's key (the To URI's user part).
    pub aor: String,
    /// The contact URI exactly as received, with its uri-parameters and `?headers` but without
    /// the Contact header's own parameters (RFC 4475 sections 3.3.12 to 3.3.14: cparam01, cparam02, regescrt).
    pub contact: String,
    /// The `q` parameter in thousandths (`q=0.5` is 500), `None` when the contact gave none.
    pub q: Option<u16>,
    /// When the binding lapses, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// The Call-ID of the REGISTER that made or last refreshed the binding (section 10.3 step 7).
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Where that REGISTER came from.
    pub source: SocketAddr,
    /// Over which transport.
    pub transport: Transport,
    /// When that REGISTER was processed, in seconds since the Unix epoch.
    pub registered_at: u64,
}

impl Binding {
    /// True once the binding has lapsed at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        unix_seconds(now) >= self.expires_at
    }

    /// Seconds left at `now` (0 once expired).
    pub fn remaining(&self, now: SystemTime) -> u32 {
        let left = self.expires_at.saturating_sub(unix_seconds(now));
        u32::try_from(left).unwrap_or(u32::MAX)
    }

    /// The q value used for ordering: an absent `q` counts as 1.0, as most proxies do (RFC 3261
    /// gives it no default).
    pub fn priority(&self) -> u16 {
        self.q.unwrap_or(1000)
    }

    /// The binding's identity within its AOR: see [`contact_identity`].
    pub fn identity(&self) -> String {
        contact_identity(&self.contact)
    }

    /// The key under which the store keeps this binding.
    pub fn store_key(&self) -> String {
        store_key(&self.aor, &self.contact)
    }

    /// The Contact header value for a 200 OK to REGISTER: every current binding with its
    /// remaining time (section 10.3 step 8), and its q when it had one.
    pub fn response_contact(&self, now: SystemTime) -> String {
        let mut value = format!("<{}>;expires={}", self.contact, self.remaining(now));
        if let Some(q) = self.q {
            value.push_str(";q=");
            value.push_str(&format_q(q));
        }
        value
    }
}

/// What the store must do after a REGISTER or an expiry sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingChange {
    /// Write this binding, replacing any with the same AOR and contact identity.
    Upsert(Binding),
    /// Delete the binding of `aor` whose contact has the identity of `contact`.
    Remove { aor: String, contact: String },
    /// Write the voicemail counts of `aor` (not a binding, but the same user's, kept in the
    /// same file through the same writer so that they survive a restart alike; see
    /// [`super::mailbox`]).
    Mailbox { aor: String, counts: MessageCounts },
}

impl BindingChange {
    /// The key of the stored binding this change touches.
    pub fn store_key(&self) -> String {
        match self {
            BindingChange::Upsert(binding) => binding.store_key(),
            BindingChange::Remove { aor, contact } => store_key(aor, contact),
            // A tab is in no AOR or contact: this key names no binding.
            BindingChange::Mailbox { aor, .. } => format!("{aor}\tmailbox"),
        }
    }

    pub(super) fn remove(binding: &Binding) -> BindingChange {
        BindingChange::Remove {
            aor: binding.aor.clone(),
            contact: binding.contact.clone(),
        }
    }
}

pub(super) fn format_q(q: u16) -> String {
    match q {
        1000 => "1".to_owned(),
        q if q % 100 == 0 => format!("0.{}", q / 100),
        q if q % 10 == 0 => format!("0.{:02}", q / 10),
        q => format!("0.{q:03}"),
    }
}

/// The identity of a contact URI within an AOR, after RFC 3261 section 19.1.4, simplified:
///
/// - for `sip:`/`sips:`, the scheme and host compare case-insensitively, the user part
///   case-sensitively after `%XX` unescaping, the port as written (an absent port differs from
///   `:5060`, as 19.1.4 says), and `?headers` as written.
/// - Of the uri-parameters, those 19.1.4 never ignores (`user`, `ttl`, `method`, `maddr`,
///   `transport`: present in one URI, they must be in the other) compare by name and value
///   case-insensitively in any order; every other parameter is left out. 19.1.4 ignores such
///   a parameter when only one URI has it: `sip:+19725552222@gw1.example.net` (RFC 4475
///   cparam01, whose `unknownparam` is a Contact parameter) and
///   `sip:+19725552222@gw1.example.net;unknownparam` (cparam02, a URI parameter) are one
///   binding, and the second REGISTER replaces the first. (Two different values of such a
///   parameter would differ by 19.1.4; a key cannot say "compare when both have it", and a
///   UA that changes them, `rinstance` or `ob`, means the same contact.) Keys stored under the
///   layout that kept every parameter are moved to this one when the store loads.
/// - Other schemes (tel, ...) compare by the whole text with the scheme lowercased.
///
/// A text that does not parse as a URI is its own identity.
/// The uri-parameters RFC 3261 section 19.1.4 compares even when only one URI has them.
const NEVER_IGNORED_PARAMS: [&str; 5] = ["maddr", "method", "transport", "ttl", "user"];

pub fn contact_identity(contact: &str) -> String {
    let mut out = String::with_capacity(contact.len() + 8);
    push_contact_identity(&mut out, contact);
    out
}

/// [`contact_identity`], appended to `out`.
fn push_contact_identity(out: &mut String, contact: &str) {
    match Uri::parse(contact) {
        Ok(Uri::Sip(sip)) => {
            // Written straight into one string (this runs for every contact of every REGISTER);
            // the layout is the store's key format and must not change:
            // `scheme:user:password@host:port;params?headers`.
            out.push_str(if sip.secure { "sips:" } else { "sip:" });
            out.push_str(&sip.user_unescaped().unwrap_or_default());
            out.push(':');
            out.push_str(sip.password.unwrap_or(""));
            out.push('@');
            out.extend(sip.host.chars().map(|c| c.to_ascii_lowercase()));
            out.push(':');
            if let Some(port) = sip.port {
                let _ = write!(out, "{port}");
            }
            out.push(';');
            let mut params: Vec<String> = sip
                .params
                .iter()
                .filter(|(name, _)| {
                    NEVER_IGNORED_PARAMS
                        .iter()
                        .any(|p| name.eq_ignore_ascii_case(p))
                })
                .map(|(name, value)| match value {
                    Some(v) => format!("{}={}", name.to_ascii_lowercase(), v.to_ascii_lowercase()),
                    None => name.to_ascii_lowercase(),
                })
                .collect();
            params.sort();
            for (n, param) in params.iter().enumerate() {
                if n > 0 {
                    out.push(';');
                }
                out.push_str(param);
            }
            out.push('?');
            out.push_str(sip.headers.unwrap_or(""));
        }
        Ok(other) => match other.as_str().split_once(':') {
            Some((scheme, rest)) => {
                out.extend(scheme.chars().map(|c| c.to_ascii_lowercase()));
                out.push(':');
                out.push_str(rest);
            }
            None => out.push_str(other.as_str()),
        },
        Err(_) => out.push_str(contact),
    }
}

/// The store's key for a binding: the AOR and the contact's identity, separated by a space,
/// which neither can contain (RFC 3261 section 25.1 URIs have no white space).
pub fn store_key(aor: &str, contact: &str) -> String {
    let mut key = String::with_capacity(aor.len() + contact.len() + 9);
    key.push_str(aor);
    key.push(' ');
    push_contact_identity(&mut key, contact);
    key
}

/// Whole seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
