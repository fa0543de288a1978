//! Transaction keys: how an incoming message finds its transaction (RFC 3261 17.1.3, 17.2.3).
//!
//! [`crate::message_key`] fills a [`KeyFields`] from a parsed request (or takes a response's
//! top Via branch and CSeq method), and the transaction table looks the resulting
//! [`TransactionKey`] up. Keys are plain owned values, free of the parser's borrows.
//!
//! Three kinds of key, never equal to one another:
//!
//! - **client** (17.1.3): the branch we put in our top Via plus the CSeq method. The method is
//!   needed because a CANCEL shares its INVITE's branch but is its own transaction.
//! - **server, RFC 3261** (17.2.3), when the top Via branch starts with the magic cookie
//!   `z9hG4bK`: branch, sent-by and method, with ACK counted as INVITE.
//! - **server, RFC 2543 fallback** (17.2.3), when it does not — the seed's Cisco ATA sends no
//!   branch at all: Request-URI, From tag, To tag, Call-ID, CSeq number and method (ACK counted
//!   as INVITE) and the whole top Via.
//!
//! **ACK matching.** An ACK's key is built like any request's and equals the key of its
//! INVITE, so the table hands it to that [`crate::ServerInviteTransaction`] through
//! `handle_ack`. Under RFC 3261 rules this only happens for the ACK to a non-2xx (the ACK to a
//! 2xx has a fresh branch). Under RFC 2543 rules there is a snag: the ACK carries the To tag of
//! the response, while an initial INVITE had none. 17.2.3 therefore matches the ACK's To tag
//! against the response's, not the INVITE's. This crate does not keep a second index for
//! that: INVITE-family RFC 2543 keys simply leave the To tag out, and the server
//! transaction's state tells the two ACKs apart (Completed: the ACK to our 300-699 final;
//! Accepted: the ACK to a 2xx, passed to the TU per RFC 6026). What is lost is 17.2.3's
//! disambiguation between a 2xx and a non-2xx forwarded for the same INVITE, which only
//! happens after a forking proxy crashed; a transaction forwards at most one final, so the
//! state still identifies the ACK correctly for every transaction this proxy runs.
//!
//! **Case.** RFC 3261 7.3.1 makes tokens and parameter values case-insensitive unless a header
//! says otherwise, so the branch (a token, 20.42) and the tags (tokens, 19.3) are compared
//! ignoring ASCII case, as are sent-by and the top Via (hosts and tokens). Call-ID is compared
//! byte for byte (20.8), methods case-sensitively (7.1). The Request-URI is compared as
//! given: the caller passes it in the form it wants compared (19.1.4's rules need a parsed URI).

use std::fmt;

use crate::key_digest::{self, Domain};
pub use crate::key_packer::Packer;

/// The magic cookie that marks an RFC 3261 branch (RFC 3261 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The parts of a received request that identify its transaction, as the parser found them.
/// Header values are passed without their header name; tags and branch without `tag=` or
/// `branch=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyFields {
    /// The request method, e.g. `INVITE`.
    pub method: String,
    /// The Request-URI (RFC 2543 keys only).
    pub request_uri: String,
    /// The whole value of the topmost Via (RFC 2543 keys only).
    pub top_via: String,
    /// The topmost Via's branch parameter, if any.
    pub via_branch: Option<String>,
    /// The topmost Via's sent-by, `host[:port]` as written.
    pub via_sent_by: String,
    /// The Call-ID (RFC 2543 keys only).
    pub call_id: String,
    /// The From tag (RFC 2543 keys only).
    pub from_tag: Option<String>,
    /// The To tag (RFC 2543 keys only; ignored for INVITE, ACK and CANCEL, see the module
    /// docs).
    pub to_tag: Option<String>,
    /// The CSeq number (RFC 2543 keys only).
    pub cseq_number: u32,
    /// The CSeq method (RFC 2543 keys only).
    pub cseq_method: String,
}

/// Identifies one transaction in a table. See the module documentation for the matching rules.
///
/// A proxy holds one key per transaction, another per timer it arms and one per branch, for
/// up to 32 s each (Timer J, L, M) or, for a ringing INVITE, Timer C's minutes, so keys are
/// kept small: 16 bytes, no allocation, whatever the rules. A key is a 118-bit keyed digest
/// of its fields (see [`crate::key_digest`]) with its kind and the code of its method in the
/// top ten bits of the first word; so a key prints its kind, method and digest, not its
/// branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionKey([u64; 2]);

/// Which rules made a key: the kinds never share a digest (each has its own domain) and never
/// compare equal (the kind is part of the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The branch, lower-cased; the method XORed in.
    Client = 0,
    /// `<branch length>:<branch><sent-by>`, both lower-cased; the method XORed in. The length
    /// prefix keeps two different (branch, sent-by) pairs from ever spelling the same text.
    Server = 1,
    /// The RFC 2543 fields, each after its length; the method XORed in.
    Rfc2543 = 2,
}

/// Where the method code sits in the first word.
const METHOD_SHIFT: u32 = 56;
/// Where the kind sits in the first word.
const KIND_SHIFT: u32 = 54;
/// The bits of the first word that hold the digest.
const DIGEST_BITS: u64 = (1 << KIND_SHIFT) - 1;

impl TransactionKey {
    /// The key of the client transaction a response belongs to (17.1.3): the branch of the
    /// response's top Via and the method of its CSeq.
    pub fn client(branch: &str, method: &str) -> Self {
        let mut key = Packer::default();
        key.push_lowercase(branch);
        Self::digested(&key, Kind::Client, method)
    }

    /// The key of the server transaction a received request belongs to (17.2.3), by RFC 3261
    /// rules when the top Via branch has the magic cookie and by RFC 2543 rules otherwise.
    pub fn server(fields: &KeyFields) -> Self {
        match fields.via_branch.as_deref() {
            Some(branch) if has_magic_cookie(branch) => {
                Self::rfc3261_server(&fields.method, branch, &fields.via_sent_by)
            }
            _ => {
                let method = transaction_method(&fields.cseq_method);
                let mut key = Packer::default();
                let mut field = |text: &str, lowercase: bool| {
                    key.push_number(text.len());
                    key.push(":");
                    if lowercase {
                        key.push_lowercase(text);
                    } else {
                        key.push(text);
                    }
                };
                field(&fields.request_uri, false);
                field(&fields.call_id, false);
                field(fields.from_tag.as_deref().unwrap_or(""), true);
                // See the module docs: an INVITE's To tag differs from its ACK's, and a
                // CANCEL's key gives its INVITE's (`cancelled_invite`), so the INVITE family
                // leaves it out.
                let to_tag = match method {
                    "INVITE" | "CANCEL" => "",
                    _ => fields.to_tag.as_deref().unwrap_or(""),
                };
                field(to_tag, true);
                field(&fields.top_via, true);
                key.push_number(fields.cseq_number);
                Self::digested(&key, Kind::Rfc2543, method)
            }
        }
    }

    /// The server key of a request whose branch has the magic cookie: only the method, the
    /// branch and the sent-by count, so a caller that knows the branch is RFC 3261's need not
    /// gather the RFC 2543 fields of [`KeyFields`].
    pub fn rfc3261_server(method: &str, branch: &str, sent_by: &str) -> Self {
        Self::rfc3261_server_with(method, branch, |key| key.push_lowercase(sent_by))
    }

    /// [`Self::rfc3261_server`] with the sent-by part written by `sent_by` straight into the
    /// key's text (a key is made for every received request, from the parser's borrows).
    pub fn rfc3261_server_with(
        method: &str,
        branch: &str,
        sent_by: impl FnOnce(&mut Packer),
    ) -> Self {
        debug_assert!(has_magic_cookie(branch));
        let mut key = Packer::default();
        key.push_number(branch.len());
        key.push(":");
        key.push_lowercase(branch);
        sent_by(&mut key);
        Self::digested(&key, Kind::Server, method)
    }

    /// For the key of a CANCEL, the key of the INVITE it cancels (RFC 3261 9.2: match as if
    /// the CANCEL were the request it targets; 9.1 builds it with the same branch, Request-URI,
    /// Call-ID, From, To, CSeq number and top Via). `None` for any other method.
    pub fn cancelled_invite(&self) -> Option<Self> {
        if self.method() != "CANCEL" {
            return None;
        }
        self.swap_method("INVITE")
    }

    /// The key of the same RFC 3261 branch (and sent-by) under `method`: the CANCEL of a
    /// client INVITE, for one (RFC 3261 9.1). `None` for an RFC 2543 key (its To tag counts
    /// for some methods and not others), or a key whose own method is an extension (its
    /// digest cannot be taken back out).
    pub fn with_method(&self, method: &str) -> Option<Self> {
        if self.kind() == Kind::Rfc2543 {
            return None;
        }
        self.swap_method(method)
    }

    /// Whether this is a client transaction's key (a response's), not a server's.
    pub fn is_client(&self) -> bool {
        self.kind() == Kind::Client
    }

    /// Whether the key follows RFC 3261 rules (a client key, or a magic-cookie branch) rather
    /// than the RFC 2543 fallback.
    pub fn is_rfc3261(&self) -> bool {
        self.kind() != Kind::Rfc2543
    }

    /// The transaction's method, with ACK already counted as INVITE; `extension` for a method
    /// a key has no name for (see [`crate::key_digest`]).
    pub fn method(&self) -> &'static str {
        key_digest::method_name(self.method_code()).unwrap_or("extension")
    }

    /// The key of the text `key` holds, for `method`, by the rules of `kind`.
    fn digested(key: &Packer, kind: Kind, method: &str) -> Self {
        let method = transaction_method(method);
        let domain = match kind {
            Kind::Client => Domain::Client,
            Kind::Server => Domain::Server,
            Kind::Rfc2543 => Domain::Rfc2543,
        };
        let digest = key_digest::xor(key.digest(domain), key_digest::method_digest(method));
        Self::packed(kind, key_digest::method_code(method), digest)
    }

    fn packed(kind: Kind, method: u8, digest: [u64; 2]) -> Self {
        let tag = u64::from(method) << METHOD_SHIFT | (kind as u64) << KIND_SHIFT;
        Self([digest[0] & DIGEST_BITS | tag, digest[1]])
    }

    /// This key with its method's digest swapped for `method`'s.
    fn swap_method(&self, method: &str) -> Option<Self> {
        let own = key_digest::method_name(self.method_code())?;
        let method = transaction_method(method);
        let digest = key_digest::xor(self.0, key_digest::method_digest(own));
        let digest = key_digest::xor(digest, key_digest::method_digest(method));
        Some(Self::packed(
            self.kind(),
            key_digest::method_code(method),
            digest,
        ))
    }

    fn method_code(&self) -> u8 {
        (self.0[0] >> METHOD_SHIFT) as u8
    }

    fn kind(&self) -> Kind {
        match (self.0[0] >> KIND_SHIFT) & 0b11 {
            0 => Kind::Client,
            1 => Kind::Server,
            _ => Kind::Rfc2543,
        }
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind() {
            Kind::Client => "client",
            Kind::Server => "server",
            Kind::Rfc2543 => "server rfc2543",
        };
        let digest = self.0[0] & DIGEST_BITS;
        write!(
            f,
            "{kind} {} #{digest:014x}{:016x}",
            self.method(),
            self.0[1]
        )
    }
}

/// Whether `branch` begins with the magic cookie, ignoring case as for any token (7.3.1).
pub fn has_magic_cookie(branch: &str) -> bool {
    branch
        .get(..MAGIC_COOKIE.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(MAGIC_COOKIE))
}

/// The method a transaction is filed under: an ACK belongs to its INVITE (17.1.3, 17.2.3).
fn transaction_method(method: &str) -> &str {
    if method == "ACK" {
        "INVITE"
    } else {
        method
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn rfc3261_invite() -> KeyFields {
        KeyFields {
            method: "INVITE".into(),
            request_uri: "sip:bob@example.com".into(),
            top_via: "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776asdhds".into(),
            via_branch: Some("z9hG4bK776asdhds".into()),
            via_sent_by: "pc33.example.com:5060".into(),
            call_id: "a84b4c76e66710@pc33.example.com".into(),
            from_tag: Some("1928301774".into()),
            to_tag: None,
            cseq_number: 314159,
            cseq_method: "INVITE".into(),
        }
    }

    /// What the seed's Cisco ATA sends: a top Via with no branch at all.
    fn cisco_invite() -> KeyFields {
        KeyFields {
            top_via: "SIP/2.0/UDP 192.168.1.20:5060".into(),
            via_branch: None,
            via_sent_by: "192.168.1.20:5060".into(),
            ..rfc3261_invite()
        }
    }

    fn with_method(fields: &KeyFields, method: &str) -> KeyFields {
        KeyFields {
            method: method.into(),
            cseq_method: method.into(),
            ..fields.clone()
        }
    }

    #[test]
    fn a_key_gives_the_same_branch_under_another_method() {
        let invite = TransactionKey::client("z9hG4bKAb.1", "INVITE");
        let cancel = invite.with_method("CANCEL");
        assert_eq!(
            cancel,
            Some(TransactionKey::client("z9hg4bkab.1", "CANCEL"))
        );
        assert_eq!(cancel.and_then(|c| c.with_method("ACK")), Some(invite));
        let server = TransactionKey::server(&rfc3261_invite());
        assert_eq!(
            server.with_method("CANCEL"),
            Some(TransactionKey::server(&with_method(
                &rfc3261_invite(),
                "CANCEL"
            )))
        );
        let extension = TransactionKey::client("z9hG4bKx", "FOO");
        assert_eq!(extension.with_method("CANCEL"), None);
        assert_eq!(extension.method(), "extension");
        assert_ne!(extension, TransactionKey::client("z9hG4bKx", "BAR"));
        assert_eq!(
            TransactionKey::server(&cisco_invite()).with_method("CANCEL"),
            None
        );
    }

    #[test]
    fn a_key_longer_than_the_stack_buffer_counts_every_byte() {
        let branch = format!("z9hG4bK{}", "AbC".repeat(100));
        let key = TransactionKey::client(&branch, "INVITE");
        assert_eq!(
            key,
            TransactionKey::client(&branch.to_ascii_lowercase(), "INVITE")
        );
        assert_ne!(key, TransactionKey::client(&format!("{branch}d"), "INVITE"));
        let long_host = "H".repeat(300);
        let server = TransactionKey::rfc3261_server("INVITE", "z9hG4bKx", &long_host);
        assert_eq!(
            server,
            TransactionKey::rfc3261_server("INVITE", "z9hG4bKx", &long_host.to_lowercase())
        );
        assert_ne!(
            server,
            TransactionKey::rfc3261_server("INVITE", "z9hG4bKx", &format!("{long_host}i"))
        );
    }

    #[test]
    fn rfc3261_retransmission_has_the_same_key() {
        assert_eq!(
            TransactionKey::server(&rfc3261_invite()),
            TransactionKey::server(&rfc3261_invite())
        );
        assert!(TransactionKey::server(&rfc3261_invite()).is_rfc3261());
    }

    #[test]
    fn rfc3261_key_ignores_everything_but_branch_sent_by_and_method() {
        let other_headers = KeyFields {
            request_uri: "sip:carol@example.com".into(),
            call_id: "different".into(),
            cseq_number: 1,
            ..rfc3261_invite()
        };
        assert_eq!(
            TransactionKey::server(&other_headers),
            TransactionKey::server(&rfc3261_invite())
        );
    }

    #[test]
    fn rfc3261_branch_and_sent_by_compare_without_case() {
        let shouted = KeyFields {
            via_branch: Some("Z9HG4BK776ASDHDS".into()),
            via_sent_by: "PC33.Example.COM:5060".into(),
            ..rfc3261_invite()
        };
        assert_eq!(
            TransactionKey::server(&shouted),
            TransactionKey::server(&rfc3261_invite())
        );
    }

    #[test]
    fn a_branch_and_sent_by_split_differently_are_different_keys() {
        // The packed form must not let "…ab" + "c" equal "…a" + "bc".
        let one = KeyFields {
            via_branch: Some("z9hG4bKab".into()),
            via_sent_by: "c".into(),
            ..rfc3261_invite()
        };
        let two = KeyFields {
            via_branch: Some("z9hG4bKa".into()),
            via_sent_by: "bc".into(),
            ..rfc3261_invite()
        };
        assert_ne!(TransactionKey::server(&one), TransactionKey::server(&two));
    }

    #[test]
    fn keys_print_their_kind_method_and_digest() {
        let server = TransactionKey::server(&rfc3261_invite());
        assert!(
            server.to_string().starts_with("server INVITE #"),
            "{server}"
        );
        assert_eq!(server.method(), "INVITE");
        let client = TransactionKey::client("z9hG4bKx", "ACK");
        assert!(
            client.to_string().starts_with("client INVITE #"),
            "{client}"
        );
        assert_eq!(client.method(), "INVITE");
        assert!(std::mem::size_of::<TransactionKey>() <= 24);
    }

    #[test]
    fn rfc3261_keys_differ_by_branch_sent_by_or_method() {
        let base = TransactionKey::server(&rfc3261_invite());
        let other_branch = KeyFields {
            via_branch: Some("z9hG4bK776asdhdt".into()),
            ..rfc3261_invite()
        };
        let other_host = KeyFields {
            via_sent_by: "pc34.example.com:5060".into(),
            ..rfc3261_invite()
        };
        assert_ne!(TransactionKey::server(&other_branch), base);
        assert_ne!(TransactionKey::server(&other_host), base);
        assert_ne!(
            TransactionKey::server(&with_method(&rfc3261_invite(), "OPTIONS")),
            base
        );
    }

    #[test]
    fn rfc3261_ack_to_a_non_2xx_finds_the_invite() {
        let ack = KeyFields {
            to_tag: Some("a6c85cf".into()),
            ..with_method(&rfc3261_invite(), "ACK")
        };
        assert_eq!(
            TransactionKey::server(&ack),
            TransactionKey::server(&rfc3261_invite())
        );
    }

    #[test]
    fn cancel_is_its_own_transaction_but_targets_the_invite() {
        let invite = TransactionKey::server(&rfc3261_invite());
        let cancel = TransactionKey::server(&with_method(&rfc3261_invite(), "CANCEL"));
        assert_ne!(cancel, invite);
        assert_eq!(cancel.cancelled_invite(), Some(invite));
        assert_eq!(invite.cancelled_invite(), None);
    }

    #[test]
    fn client_key_matches_a_response_by_branch_and_cseq_method() {
        let sent = TransactionKey::client("z9hG4bKnashds8", "INVITE");
        assert_eq!(TransactionKey::client("z9hG4bKNASHDS8", "INVITE"), sent);
        let cancel = TransactionKey::client("z9hG4bKnashds8", "CANCEL");
        assert_ne!(cancel, sent);
        assert_eq!(cancel.cancelled_invite(), Some(sent));
    }

    #[test]
    fn client_and_server_keys_never_collide_even_on_a_spiral() {
        // A spiralled request comes back with our own branch on top.
        let ours = TransactionKey::client("z9hG4bK776asdhds", "INVITE");
        assert_ne!(ours, TransactionKey::server(&rfc3261_invite()));
    }

    #[test]
    fn branch_without_magic_cookie_falls_back_to_rfc2543() {
        let old = KeyFields {
            via_branch: Some("776asdhds".into()),
            ..rfc3261_invite()
        };
        assert!(!TransactionKey::server(&old).is_rfc3261());
        assert!(!TransactionKey::server(&cisco_invite()).is_rfc3261());
    }

    #[test]
    fn rfc2543_retransmission_matches() {
        assert_eq!(
            TransactionKey::server(&cisco_invite()),
            TransactionKey::server(&cisco_invite())
        );
    }

    #[test]
    fn rfc2543_ack_with_the_response_to_tag_matches_the_invite() {
        let ack = KeyFields {
            to_tag: Some("a6c85cf".into()),
            ..with_method(&cisco_invite(), "ACK")
        };
        let mut table = HashMap::new();
        table.insert(TransactionKey::server(&cisco_invite()), "invite");
        assert_eq!(table.get(&TransactionKey::server(&ack)), Some(&"invite"));
    }

    #[test]
    fn rfc2543_different_cseq_number_does_not_match() {
        let next = KeyFields {
            cseq_number: 314160,
            ..cisco_invite()
        };
        assert_ne!(
            TransactionKey::server(&next),
            TransactionKey::server(&cisco_invite())
        );
        let ack_of_next = with_method(&next, "ACK");
        assert_ne!(
            TransactionKey::server(&ack_of_next),
            TransactionKey::server(&cisco_invite())
        );
    }

    #[test]
    fn rfc2543_keys_differ_by_each_identifying_field() {
        let base = TransactionKey::server(&cisco_invite());
        let variants = [
            KeyFields {
                request_uri: "sip:carol@example.com".into(),
                ..cisco_invite()
            },
            KeyFields {
                call_id: "A84B4C76E66710@pc33.example.com".into(),
                ..cisco_invite()
            },
            KeyFields {
                from_tag: Some("other".into()),
                ..cisco_invite()
            },
            KeyFields {
                top_via: "SIP/2.0/UDP 192.168.1.21:5060".into(),
                ..cisco_invite()
            },
            with_method(&cisco_invite(), "OPTIONS"),
        ];
        for variant in variants {
            assert_ne!(TransactionKey::server(&variant), base, "{variant:?}");
        }
    }

    #[test]
    fn rfc2543_non_invite_keys_keep_the_to_tag() {
        let bye = KeyFields {
            to_tag: Some("a6c85cf".into()),
            ..with_method(&cisco_invite(), "BYE")
        };
        let other_dialog = KeyFields {
            to_tag: Some("ffffff".into()),
            ..bye.clone()
        };
        assert_ne!(
            TransactionKey::server(&bye),
            TransactionKey::server(&other_dialog)
        );
        let shouted = KeyFields {
            to_tag: Some("A6C85CF".into()),
            ..bye.clone()
        };
        assert_eq!(
            TransactionKey::server(&bye),
            TransactionKey::server(&shouted)
        );
    }

    #[test]
    fn rfc2543_cancel_targets_the_invite() {
        let cancel = TransactionKey::server(&with_method(&cisco_invite(), "CANCEL"));
        assert_ne!(cancel, TransactionKey::server(&cisco_invite()));
        assert_eq!(
            cancel.cancelled_invite(),
            Some(TransactionKey::server(&cisco_invite()))
        );
        let tagged = KeyFields {
            to_tag: Some("a6c85cf".into()),
            ..with_method(&cisco_invite(), "CANCEL")
        };
        assert_eq!(
            TransactionKey::server(&tagged).cancelled_invite(),
            Some(TransactionKey::server(&cisco_invite())),
            "the To tag counts for no key of the INVITE family"
        );
    }

    #[test]
    fn every_key_is_sixteen_bytes_and_the_kinds_never_meet() {
        assert_eq!(std::mem::size_of::<TransactionKey>(), 16);
        let client = TransactionKey::client("z9hG4bK776asdhds", "INVITE");
        let server = TransactionKey::server(&rfc3261_invite());
        let old = TransactionKey::server(&cisco_invite());
        assert_ne!(client, server);
        assert_ne!(server, old);
        assert!(
            old.to_string().starts_with("server rfc2543 INVITE #"),
            "{old}"
        );
        assert_eq!(
            TransactionKey::server(&with_method(&cisco_invite(), "FOO")).method(),
            "extension"
        );
    }

    #[test]
    fn magic_cookie_check_survives_short_and_non_ascii_branches() {
        assert!(has_magic_cookie("z9hG4bK"));
        assert!(has_magic_cookie("Z9hg4bkXYZ"));
        assert!(!has_magic_cookie("z9hG4b"));
        assert!(!has_magic_cookie(""));
        assert!(!has_magic_cookie("z9hG4éK123"));
        assert!(!has_magic_cookie("z9hG4bé1"));
    }
}
