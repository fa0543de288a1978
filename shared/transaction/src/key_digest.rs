//! What a transaction key keeps of its text: a keyed digest (118 of its 128 bits; the key
//! keeps its kind and method code in the other ten).
//!
//! Why: a proxy holds a key per transaction, per branch and per armed timer, for up to 32 s,
//! or for minutes while a callee rings. As text (the branch, the sent-by) a key was a shared
//! heap string of 50 to 80 bytes; as a digest it is 16 bytes inside the key, no allocation.
//! An RFC 2543 key (the seed's Cisco ATA: Request-URI, Call-ID, tags, CSeq number, top Via)
//! is digested the same way, each field after its length.
//!
//! Why it is safe: two SipHash-1-3 functions under this process's random keys (std's
//! `RandomState`, what `HashMap` uses against hash flooding) give 128 bits that a sender
//! cannot steer without knowing the keys, so two different transactions share a digest with
//! a probability of 2^-118, and no message can be crafted to make them.
//!
//! The method is digested apart and XORed in: the key of the same branch under another method
//! (the INVITE a CANCEL targets, the CANCEL of an INVITE) then comes from the key alone.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// The methods a key can name when printed, and whose digest it can swap for another's.
/// An ACK is filed under its INVITE, so it is not here.
const NAMED: [&str; 13] = [
    "INVITE",
    "CANCEL",
    "BYE",
    "REGISTER",
    "OPTIONS",
    "SUBSCRIBE",
    "NOTIFY",
    "MESSAGE",
    "PUBLISH",
    "PRACK",
    "UPDATE",
    "REFER",
    "INFO",
];

/// The code of a method [`NAMED`] does not name.
pub(crate) const EXTENSION: u8 = u8::MAX;

/// What the digest of a key's text is made in: client and server keys never meet.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Domain {
    Method = 0,
    Client = 1,
    Server = 2,
    Rfc2543 = 3,
}

struct Keys {
    hashers: [std::hash::RandomState; 2],
    named: [[u64; 2]; NAMED.len()],
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hashers = [std::hash::RandomState::new(), std::hash::RandomState::new()];
        let named = NAMED.map(|name| of(&hashers, Domain::Method, name.as_bytes()));
        Keys { hashers, named }
    })
}

fn of(hashers: &[std::hash::RandomState; 2], domain: Domain, text: &[u8]) -> [u64; 2] {
    hashers.each_ref().map(|state| {
        let mut hasher = state.build_hasher();
        hasher.write_u8(domain as u8);
        hasher.write(text);
        hasher.finish()
    })
}

/// The digest of a key's `text` in `domain`.
pub(crate) fn digest(domain: Domain, text: &[u8]) -> [u64; 2] {
    of(&keys().hashers, domain, text)
}

/// The code a key keeps of `method`: its place in [`NAMED`], or [`EXTENSION`].
pub(crate) fn method_code(method: &str) -> u8 {
    NAMED
        .iter()
        .position(|named| *named == method)
        .map_or(EXTENSION, |i| i as u8)
}

/// The name of a method code; `None` for an extension method.
pub(crate) fn method_name(code: u8) -> Option<&'static str> {
    NAMED.get(usize::from(code)).copied()
}

/// The digest of `method`, XORed into a key's.
pub(crate) fn method_digest(method: &str) -> [u64; 2] {
    match keys().named.get(usize::from(method_code(method))) {
        Some(named) => *named,
        None => digest(Domain::Method, method.as_bytes()),
    }
}

/// `a` XOR `b`.
pub(crate) fn xor(a: [u64; 2], b: [u64; 2]) -> [u64; 2] {
    [a[0] ^ b[0], a[1] ^ b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_depends_on_the_domain_and_every_byte() {
        let one = digest(Domain::Client, b"z9hg4bkab");
        assert_eq!(one, digest(Domain::Client, b"z9hg4bkab"));
        assert_ne!(one, digest(Domain::Server, b"z9hg4bkab"));
        assert_ne!(one, digest(Domain::Client, b"z9hg4bkac"));
        assert_ne!(one[0], one[1], "two functions, not one twice");
    }

    #[test]
    fn named_methods_have_codes_and_extensions_share_one() {
        assert_eq!(method_name(method_code("CANCEL")), Some("CANCEL"));
        assert_eq!(method_code("FOO"), EXTENSION);
        assert_eq!(method_name(EXTENSION), None);
        assert_eq!(
            method_digest("INVITE"),
            digest(Domain::Method, b"INVITE"),
            "the table holds the same digests"
        );
        assert_ne!(method_digest("FOO"), method_digest("BAR"));
    }
}
