//! How the registrar's values are written to disk: the journal's records
//! ([`super::journaled_store`]) and redb's values ([`super::store`]) are postcard behind a
//! one-byte format mark; JSON, which earlier versions wrote, is still read.
//!
//! Why not JSON any more: at 10 000 REGISTERs a second the journal's writer and fold threads
//! spent about a quarter of the proxy's CPU, much of it writing and parsing JSON (escaping every
//! string, formatting and parsing the source address as text) and in the allocations that come
//! with it. postcard writes the same data in about half the bytes with no text conversion.
//!
//! Why a mark: a JSON value always starts with `{` or `"`; [`POSTCARD`] is neither, so a value
//! says which form it is in and a data directory written by an earlier version opens as it
//! did. (An earlier version cannot read what this one writes.)

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The first byte of a value in postcard form.
const POSTCARD: u8 = 1;

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value")]
    Empty,
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

/// Appends `value`'s stored form to `out`.
pub fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    out.push(POSTCARD);
    let taken = std::mem::take(out);
    *out = postcard::to_extend(value, taken)
        .expect("registrar values always encode: plain data and sequences of known length");
}

/// `value`'s stored form.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(value, &mut out);
    out
}

/// The value a stored form holds, in either form.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&POSTCARD, rest)) => Ok(postcard::from_bytes(rest)?),
        Some(_) => Ok(serde_json::from_slice(bytes)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registrar::binding::{Binding, BindingChange};
    use crate::registrar::mailbox::MessageCounts;
    use dialtone_transaction::Transport;

    fn binding() -> Binding {
        Binding {
            aor: "1001".into(),
            contact: "sip:1001@192.0.2.7:5060;transport=udp".into(),
            q: Some(500),
            expires_at: 1_800_000_000,
            call_id: "a84b4c76e66710@pc33".into(),
            cseq: 7,
            source: "192.0.2.7:5060".parse().unwrap(),
            transport: Transport::Udp,
            registered_at: 1_799_996_400,
        }
    }

    #[test]
    fn every_change_reads_back_as_written() {
        let changes = [
            BindingChange::Upsert(binding()),
            BindingChange::remove(&binding()),
            BindingChange::Mailbox {
                aor: "1001".into(),
                counts: MessageCounts { new: 2, old: 1 },
            },
        ];
        for change in changes {
            let stored = encode(&change);
            assert_eq!(stored[0], POSTCARD);
            assert_eq!(decode::<BindingChange>(&stored).unwrap(), change);
        }
    }

    #[test]
    fn json_written_by_an_earlier_version_still_reads() {
        let change = BindingChange::Upsert(binding());
        let json = serde_json::to_vec(&change).unwrap();
        assert_eq!(decode::<BindingChange>(&json).unwrap(), change);
        let counts = MessageCounts { new: 3, old: 0 };
        let json = serde_json::to_vec(&counts).unwrap();
        assert_eq!(decode::<MessageCounts>(&json).unwrap(), counts);
    }

    #[test]
    fn the_postcard_form_is_far_smaller_than_the_json() {
        let change = BindingChange::Upsert(binding());
        let json = serde_json::to_vec(&change).unwrap().len();
        let stored = encode(&change).len();
        assert!(stored * 3 < json * 2, "postcard {stored} B, JSON {json} B");
    }

    #[test]
    fn bytes_that_are_neither_form_are_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x01\xff\xff\xff\xff\xff",
            b"{\"Upsert\":",
            b"\x07",
        ] {
            assert!(decode::<BindingChange>(bytes).is_err(), "{bytes:?}");
        }
    }
}
