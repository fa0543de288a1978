//! Stateless server nonces: the server can tell its own nonces from forged ones, and fresh ones
//! from expired ones, without remembering any of them.
//!
//! A nonce is `hex(stamp || HMAC-SHA256(key, stamp || realm || binding)[..16])`, 48 hex
//! characters, the scheme RFC 7616 section 5.4 suggests. The stamp is 64 bits: the issuing
//! second in the upper 40, a per-key counter in the lower 24, so that no two challenges of one
//! server carry the same nonce (a one-time nonce, `replay.rs`, must belong to one client; two
//! clients challenged in the same second used to get the same one). The tag is truncated to 128
//! bits, which RFC 2104 section 5 allows, to keep the nonce short for the small buffers of old
//! phones. Replay within a nonce's lifetime is `replay.rs`'s job; this module only vouches for
//! origin and age. Time is passed in, so expiry is tested with a fake clock.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::DigestError;

type HmacSha256 = Hmac<Sha256>;

const STAMP_LEN: usize = 8;
const TAG_LEN: usize = 16;
const NONCE_HEX_LEN: usize = 2 * (STAMP_LEN + TAG_LEN);
/// Bits of the stamp that count nonces within one second.
const COUNTER_BITS: u32 = 24;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// The server's nonce key and nonce lifetime.
///
/// Every proxy instance that should accept another's nonces needs the same key. A random key
/// per start is fine for one instance: nonces from before a restart then check as
/// [`NonceStatus::Invalid`] and clients are simply challenged again.
#[derive(Clone)]
pub struct NonceSecret {
    /// The keyed HMAC state, cloned for each nonce so the key is only absorbed once.
    mac: HmacSha256,
    lifetime_secs: u64,
    /// Numbers the nonces issued (shared by clones): the low bits of each stamp.
    counter: Arc<AtomicU32>,
    /// For one node of several sharing the key: its number in the counter's top bits (see
    /// [`NonceSecret::for_node`]), and the mask of the bits left to count with.
    node_bits: u64,
    count_mask: u64,
}

/// Bits of the counter that hold the node's number when several servers share one key.
const NODE_BITS: u32 = 8;

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceStatus {
    /// Ours and within its lifetime.
    Fresh {
        /// When it was issued, seconds since the Unix epoch.
        issued_at: u64,
    },
    /// Ours but expired: re-challenge with `stale=true` if the response was otherwise right.
    Stale {
        /// When it was issued, seconds since the Unix epoch.
        issued_at: u64,
    },
    /// Not issued by this key for this realm and binding: forged, tampered, or from before a
    /// key change.
    Invalid,
}

impl NonceSecret {
    /// The shortest key accepted: 128 bits.
    pub const MIN_KEY_LEN: usize = 16;

    /// A nonce key (random bytes the caller supplies, at least [`Self::MIN_KEY_LEN`]) and the
    /// number of seconds a nonce stays fresh (300 is a sensible choice for SIP).
    pub fn new(key: &[u8], lifetime_secs: u64) -> Result<Self, DigestError> {
        let weak = DigestError::WeakNonceKey {
            min: Self::MIN_KEY_LEN,
            got: key.len(),
        };
        if key.len() < Self::MIN_KEY_LEN {
            return Err(weak);
        }
        // HMAC takes keys of any length, so this cannot fail; the error is mapped, not unwrapped.
        let mac = HmacSha256::new_from_slice(key).map_err(|_| weak)?;
        // Started from the key's bytes rather than zero, so that the nonces of two keys (two
        // starts of one proxy) do not count alike; uniqueness only needs the increments.
        let start = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
        Ok(NonceSecret {
            mac,
            lifetime_secs,
            counter: Arc::new(AtomicU32::new(start)),
            node_bits: 0,
            count_mask: COUNTER_MASK,
        })
    }

    /// The same key for node `node` of a cluster whose servers all sign with it: the node's
    /// number takes the top 8 bits of each stamp's counter, so that two nodes never issue the
    /// same nonce in the same second (a nonce used at one node is a replay at every other, so
    /// two clients must never get the same); each node still issues 2^16 a second.
    pub fn for_node(mut self, node: u8) -> Self {
        let count_bits = COUNTER_BITS - NODE_BITS;
        self.node_bits = u64::from(node) << count_bits;
        self.count_mask = (1 << count_bits) - 1;
        self
    }

    /// How long a nonce stays fresh, in seconds.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    /// A new nonce for `realm`, stamped `now_unix_secs`.
    ///
    /// `binding` is optional extra data the nonce is bound to (a client address, a Call-ID); the
    /// same bytes must be given to [`check`](Self::check). Pass `&[]` for none.
    /// Every call gives a different nonce, up to 2^24 of them within one second.
    pub fn issue(&self, now_unix_secs: u64, realm: &str, binding: &[u8]) -> String {
        let counted = u64::from(self.counter.fetch_add(1, Ordering::Relaxed));
        let count = self.node_bits | (counted & self.count_mask);
        let stamp = ((now_unix_secs << COUNTER_BITS) | count).to_be_bytes();
        let tag = self.tag(&stamp, realm, binding);
        let mut raw = [0u8; STAMP_LEN + TAG_LEN];
        raw[..STAMP_LEN].copy_from_slice(&stamp);
        raw[STAMP_LEN..].copy_from_slice(&tag[..TAG_LEN]);
        crate::algorithm::lower_hex(&raw)
    }

    /// Checks a nonce a client sent back. The tag comparison is constant-time.
    pub fn check(
        &self,
        nonce: &str,
        now_unix_secs: u64,
        realm: &str,
        binding: &[u8],
    ) -> NonceStatus {
        if nonce.len() != NONCE_HEX_LEN {
            return NonceStatus::Invalid;
        }
        let mut raw = [0u8; STAMP_LEN + TAG_LEN];
        if hex::decode_to_slice(nonce, &mut raw).is_err() {
            return NonceStatus::Invalid;
        }
        let mut stamp = [0u8; STAMP_LEN];
        stamp.copy_from_slice(&raw[..STAMP_LEN]);
        let mut mac = self.mac.clone();
        feed(&mut mac, &stamp, realm, binding);
        if mac.verify_truncated_left(&raw[STAMP_LEN..]).is_err() {
            return NonceStatus::Invalid;
        }
        let issued_at = u64::from_be_bytes(stamp) >> COUNTER_BITS;
        // A stamp in the future can only be ours after the clock stepped back; it is still
        // honest, so it counts as fresh rather than locking clients out.
        if now_unix_secs > issued_at.saturating_add(self.lifetime_secs) {
            NonceStatus::Stale { issued_at }
        } else {
            NonceStatus::Fresh { issued_at }
        }
    }

    fn tag(&self, stamp: &[u8; STAMP_LEN], realm: &str, binding: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        feed(&mut mac, stamp, realm, binding);
        mac.finalize().into_bytes().into()
    }
}

/// The realm is length-prefixed so that realm and binding cannot trade bytes with each other.
fn feed(mac: &mut HmacSha256, stamp: &[u8; STAMP_LEN], realm: &str, binding: &[u8]) {
    mac.update(stamp);
    mac.update(&(realm.len() as u64).to_be_bytes());
    mac.update(realm.as_bytes());
    mac.update(binding);
}

/// Shows the lifetime but never the key.
impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceSecret")
            .field("key", &"<hidden>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const T: u64 = 1_700_000_000;

    fn secret() -> NonceSecret {
        NonceSecret::new(KEY, 300).unwrap()
    }

    #[test]
    fn a_new_nonce_is_fresh_until_its_lifetime_ends() {
        let s = secret();
        let nonce = s.issue(T, "dialtone", &[]);
        assert_eq!(nonce.len(), NONCE_HEX_LEN);
        let fresh = NonceStatus::Fresh { issued_at: T };
        assert_eq!(s.check(&nonce, T, "dialtone", &[]), fresh);
        assert_eq!(s.check(&nonce, T + 300, "dialtone", &[]), fresh);
        assert_eq!(
            s.check(&nonce, T + 301, "dialtone", &[]),
            NonceStatus::Stale { issued_at: T }
        );
    }

    #[test]
    fn a_changed_character_makes_the_nonce_invalid() {
        let s = secret();
        let nonce = s.issue(T, "dialtone", &[]);
        for i in 0..nonce.len() {
            let mut bytes = nonce.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert_eq!(
                s.check(&tampered, T, "dialtone", &[]),
                NonceStatus::Invalid,
                "position {i}"
            );
        }
    }

    #[test]
    fn nonces_issued_in_the_same_second_all_differ() {
        let s = secret();
        let nonces: std::collections::HashSet<String> =
            (0..1000).map(|_| s.issue(T, "dialtone", &[])).collect();
        assert_eq!(nonces.len(), 1000);
        for nonce in &nonces {
            assert_eq!(
                s.check(nonce, T, "dialtone", &[]),
                NonceStatus::Fresh { issued_at: T }
            );
        }
    }

    #[test]
    fn moving_the_timestamp_forward_breaks_the_signature() {
        // The obvious attack on expiry: re-stamp an old nonce as new.
        let s = secret();
        let nonce = s.issue(T, "dialtone", &[]);
        let restamped = format!(
            "{}{}",
            hex::encode(((T + 1000) << COUNTER_BITS).to_be_bytes()),
            &nonce[16..]
        );
        assert_eq!(
            s.check(&restamped, T + 1000, "dialtone", &[]),
            NonceStatus::Invalid
        );
    }

    #[test]
    fn a_nonce_is_bound_to_its_realm_binding_and_key() {
        let s = secret();
        let nonce = s.issue(T, "dialtone", b"192.0.2.1");
        assert_eq!(
            s.check(&nonce, T, "dialtone", b"192.0.2.1"),
            NonceStatus::Fresh { issued_at: T }
        );
        assert_eq!(
            s.check(&nonce, T, "other", b"192.0.2.1"),
            NonceStatus::Invalid
        );
        assert_eq!(
            s.check(&nonce, T, "dialtone", b"192.0.2.2"),
            NonceStatus::Invalid
        );
        let other_key = NonceSecret::new(b"fedcba9876543210", 300).unwrap();
        assert_eq!(
            other_key.check(&nonce, T, "dialtone", b"192.0.2.1"),
            NonceStatus::Invalid
        );
    }

    #[test]
    fn foreign_and_malformed_nonces_are_invalid() {
        let s = secret();
        for nonce in ["3bd5e334", "", "zz", &"g".repeat(NONCE_HEX_LEN), "\u{e9}"] {
            assert_eq!(s.check(nonce, T, "CISCO", &[]), NonceStatus::Invalid);
        }
    }

    #[test]
    fn a_short_key_is_refused() {
        assert_eq!(
            NonceSecret::new(b"short", 300).err(),
            Some(DigestError::WeakNonceKey { min: 16, got: 5 })
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let shown = format!("{:?}", secret());
        assert!(!shown.contains("0123456789abcdef"));
        assert!(shown.contains("lifetime_secs: 300"));
    }

    #[test]
    fn two_nodes_sharing_a_key_never_issue_the_same_nonce_and_check_each_others() {
        let key = [9u8; 32];
        let a = NonceSecret::new(&key, 300).unwrap().for_node(1);
        let b = NonceSecret::new(&key, 300).unwrap().for_node(2);
        let from_a: std::collections::HashSet<String> =
            (0..1000).map(|_| a.issue(1_000, "r", &[])).collect();
        for _ in 0..1000 {
            let nonce = b.issue(1_000, "r", &[]);
            assert!(!from_a.contains(&nonce), "{nonce} issued by both");
            assert!(matches!(
                a.check(&nonce, 1_000, "r", &[]),
                NonceStatus::Fresh { .. }
            ));
        }
    }
}
