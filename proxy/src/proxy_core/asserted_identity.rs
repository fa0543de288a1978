//! Caller identity and privacy (RFC 3323, RFC 3325): which From is anonymous, the
//! `P-Asserted-Identity` the proxy writes for a caller it authenticated, and where that
//! header may go.
//!
//! The trust domain (RFC 3325 section 2.3, "Spec(T)") is this proxy and its own users'
//! registered phones: the proxy authenticates every caller itself (digest, `--auth all` for
//! local users, `register` or `all` for anything leaving), so the identity it asserts is the
//! digest user's, never what the caller wrote. Hence:
//! - every `P-Asserted-Identity` and `P-Preferred-Identity` a request arrives with is removed
//!   before forwarding (section 5: a proxy removes PAI from an untrusted source; no UA is a
//!   trusted node, and the proxy asserts one identity per user, so a preferred one has
//!   nothing to choose from);
//! - an out-of-dialog request the proxy authenticated gets `P-Asserted-Identity: "Display"
//!   <sip:USER@DOMAIN>` (section 6), USER the digest user and DOMAIN the proxy's;
//! - with `Privacy: id` (or `header`, `user`: any request for privacy but `none`), the
//!   header is left off a copy that leaves the trust domain (section 7, RFC 3323 section 4.2),
//!   i.e. anything not sent to one of our users' bindings. Towards a binding it stays: the
//!   callee's ATA is inside the trust domain, can still show who called (to an operator's
//!   phone, or in a log) and honours Privacy itself; removing it there would make an
//!   anonymous caller unknowable even to the system that must trace nuisance calls.
//!
//! The anonymous From (RFC 3323 section 4.1.1.3) is what lets a user call anonymously at all
//! under `--auth all`: its digest username is then any known user's, not the From's user
//! (`admission.rs`, [`crate::auth::Claimed::AnyKnownUser`]).

use dialtone_sip::{Editor, Message, NameAddr};

/// The header names this module writes and removes (not classified by the parser).
const P_ASSERTED_IDENTITY: &str = "P-Asserted-Identity";
const P_PREFERRED_IDENTITY: &str = "P-Preferred-Identity";
const PRIVACY: &str = "Privacy";

/// True when `from` is the anonymous URI of RFC 3323 section 4.1.1.3 (host
/// `anonymous.invalid`), or any URI whose user is `anonymous`, as UAs that keep their own
/// domain write it.
pub(crate) fn is_anonymous(from: &NameAddr<'_>) -> bool {
    from.uri.as_sip().is_some_and(|sip| {
        sip.host.eq_ignore_ascii_case("anonymous.invalid")
            || sip
                .user
                .is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
    })
}

/// The identity the proxy asserts for a request it authenticated, and whether the caller
/// asked to keep it private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AssertedIdentity {
    /// The header's value, `"Display" <sip:user@domain>`.
    value: String,
    /// The request carries a Privacy other than `none` (RFC 3323 section 4.2).
    private: bool,
}

impl AssertedIdentity {
    /// The identity of `user` at `domain` for `request`: the display name of its From when
    /// that is not anonymous (a UA's display name is its user's to choose; an anonymous one
    /// says nothing).
    pub(crate) fn for_request(request: &Message<'_>, user: &str, domain: &str) -> Self {
        let display = request
            .from()
            .ok()
            .filter(|from| !is_anonymous(from))
            .and_then(|from| from.display_name)
            .map(|name| name.trim_matches('"').trim())
            .filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("anonymous"));
        let value = match display {
            Some(name) => format!("\"{name}\" <sip:{user}@{domain}>"),
            None => format!("<sip:{user}@{domain}>"),
        };
        AssertedIdentity {
            value,
            private: asks_privacy(request),
        }
    }

    /// The header's value.
    pub(crate) fn value(&self) -> &str {
        &self.value
    }
}

/// True when `request`'s Privacy header asks for any privacy (`id`, `header`, `user`,
/// `session`; `critical` only qualifies the others, and `none` asks for none).
fn asks_privacy(request: &Message<'_>) -> bool {
    request
        .headers()
        .iter()
        .filter(|h| h.raw_name.eq_ignore_ascii_case(PRIVACY))
        .flat_map(|h| h.value.split([';', ',']))
        .map(str::trim)
        .any(|value| {
            !value.is_empty()
                && !value.eq_ignore_ascii_case("none")
                && !value.eq_ignore_ascii_case("critical")
        })
}

/// Whether a forwarded copy goes to a host inside the trust domain (a binding of one of our
/// users) or outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// A registered binding of one of our users.
    Binding,
    /// Anywhere else: another domain, a phone's contact reached through a Route.
    Foreign,
}

/// Edits a forwarded copy: removes the identity headers the request came with and, when the
/// proxy asserts one and privacy allows it towards `hop`, adds its own.
pub(crate) fn rewrite(
    request: &Message<'_>,
    edit: &mut Editor<'_, '_>,
    asserted: Option<&AssertedIdentity>,
    hop: Hop,
) {
    for (index, header) in request.headers().iter().enumerate() {
        if header.raw_name.eq_ignore_ascii_case(P_ASSERTED_IDENTITY)
            || header.raw_name.eq_ignore_ascii_case(P_PREFERRED_IDENTITY)
        {
            edit.remove_header(index);
        }
    }
    let Some(asserted) = asserted else { return };
    if asserted.private && hop == Hop::Foreign {
        return;
    }
    edit.append_header(P_ASSERTED_IDENTITY, asserted.value());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &str, extra: &str) -> Vec<u8> {
        format!("INVITE sip:9000@lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5062;branch=z9hG4bKai\r\nMax-Forwards: 70\r\nFrom: {from};tag=a\r\nTo: <sip:9000@lab.example>\r\nCall-ID: ai\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n").into_bytes()
    }

    #[test]
    fn the_anonymous_uri_and_an_anonymous_user_are_anonymous() {
        for (from, anonymous) in [
            ("\"Anonymous\" <sip:anonymous@anonymous.invalid>", true),
            ("<sip:anonymous@lab.example>", true),
            ("<sip:x@Anonymous.Invalid>", true),
            ("\"Alice\" <sip:8000@lab.example>", false),
        ] {
            let bytes = request(from, "");
            let message = Message::parse(&bytes).unwrap();
            assert_eq!(is_anonymous(&message.from().unwrap()), anonymous, "{from}");
        }
    }

    #[test]
    fn the_asserted_identity_keeps_a_real_display_name_only() {
        let named = request("\"Alice Smith\" <sip:8000@lab.example>", "");
        let message = Message::parse(&named).unwrap();
        let asserted = AssertedIdentity::for_request(&message, "8000", "lab.example");
        assert_eq!(asserted.value(), "\"Alice Smith\" <sip:8000@lab.example>");
        let anonymous = request("\"Anonymous\" <sip:anonymous@anonymous.invalid>", "");
        let message = Message::parse(&anonymous).unwrap();
        let asserted = AssertedIdentity::for_request(&message, "8000", "lab.example");
        assert_eq!(asserted.value(), "<sip:8000@lab.example>");
    }

    #[test]
    fn privacy_none_and_critical_alone_ask_for_nothing() {
        for (privacy, private) in [
            ("", false),
            ("Privacy: none\r\n", false),
            ("Privacy: id\r\n", true),
            ("Privacy: header;critical\r\n", true),
            ("privacy: user\r\n", true),
            ("Privacy: critical\r\n", false),
        ] {
            let bytes = request("<sip:8000@lab.example>", privacy);
            let message = Message::parse(&bytes).unwrap();
            assert_eq!(asks_privacy(&message), private, "{privacy}");
        }
    }
}

#[cfg(test)]
#[path = "asserted_identity_tests.rs"]
mod through_the_core;
