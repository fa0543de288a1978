//! A message kept as what it does not share with another one, line by line.
//!
//! Why: an INVITE server transaction must answer each retransmitted INVITE with the last
//! provisional it sent (RFC 3261 section 17.2.1), so a proxy holds the relayed 180 for as
//! long as the callee rings, minutes. That 180 repeats most of the INVITE the transaction
//! keeps anyway: the Vias, From, To, Call-ID and CSeq (section 8.2.6.2 has the callee copy
//! them). Kept as a [`Delta`] against the INVITE, each such line is three bytes.
//!
//! How: the message is cut into lines (each up to and with its `\n`, the last one perhaps
//! without). For each line, the line of the reference that shares the longest beginning with
//! it gives that beginning; the rest is written out. Nothing is assumed about the message:
//! any bytes, CRLF or bare LF, a body or none, come back exactly.

use smallvec::SmallVec;

/// A copy of a line's first bytes is worth its length's byte of record from this length on
/// (a line's record has its index byte anyway).
const MIN_COPY: usize = 2;

/// Only the first lines of the reference are looked at: enough for any header section, and
/// a message of thousands of short lines costs at most this many comparisons per line.
const MAX_REFERENCE_LINES: usize = 64;

/// No piece longer than this is copied or written out in one record (a length takes three
/// bytes at most).
const MAX_PIECE: usize = u16::MAX as usize;

/// A message written as its differences from a reference (see the module documentation).
///
/// Each line is a record: the index of a reference line (`u8`), how many of its first bytes
/// to copy, how many bytes follow written out, and those bytes. The two lengths take seven
/// bits a byte, low bits first, the top bit saying another byte follows (LEB128): one byte
/// each for a header line.
#[derive(Clone, PartialEq, Eq)]
pub struct Delta(Box<[u8]>);

impl Delta {
    /// `message` as its differences from `reference`.
    pub fn new(message: &[u8], reference: &[u8]) -> Delta {
        let reference = reference_lines(reference);
        // What each line copies, found first so that the delta is allocated once, exactly.
        let copies: SmallVec<[(u8, usize); 16]> = lines(message)
            .map(|line| {
                reference
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (i as u8, common_prefix(r, line).min(MAX_PIECE)))
                    .max_by_key(|&(i, len)| (len, std::cmp::Reverse(i)))
                    .filter(|&(_, len)| len >= MIN_COPY)
                    .unwrap_or((0, 0))
            })
            .collect();
        let size: usize = lines(message)
            .zip(&copies)
            .flat_map(|(line, &(_, copied))| pieces(line, copied))
            .map(|(copy, piece)| 1 + length_size(copy) + length_size(piece.len()) + piece.len())
            .sum();
        let mut out = Vec::with_capacity(size);
        for (line, &(index, copied)) in lines(message).zip(&copies) {
            for (copy, piece) in pieces(line, copied) {
                out.push(index);
                push_length(&mut out, copy);
                push_length(&mut out, piece.len());
                out.extend_from_slice(piece);
            }
        }
        debug_assert_eq!(out.len(), size);
        Delta(out.into_boxed_slice())
    }

    /// The message again, given the same `reference` it was made against. `None` if the
    /// reference is not that one (a copy reaches past one of its lines).
    pub fn restore(&self, reference: &[u8]) -> Option<Vec<u8>> {
        Self::restore_encoded(&self.0, reference)
    }

    /// The bytes a delta is made of, for a holder that keeps bytes (a `Bytes`, say): a
    /// client transaction keeps a branch's head this way. [`Delta::restore_encoded`] reads
    /// them back.
    pub fn into_encoded(self) -> Box<[u8]> {
        self.0
    }

    /// [`Delta::restore`] for the bytes of [`Delta::into_encoded`]: `None` as well for bytes
    /// that are not a delta's.
    pub fn restore_encoded(encoded: &[u8], reference: &[u8]) -> Option<Vec<u8>> {
        let reference = reference_lines(reference);
        let size = records(encoded).try_fold(0, |size, record| {
            let (_, copy, literal) = record?;
            Some(size + copy + literal.len())
        })?;
        let mut out = Vec::with_capacity(size);
        for record in records(encoded) {
            let (index, copy, literal) = record?;
            if copy > 0 {
                out.extend_from_slice(reference.get(usize::from(index))?.get(..copy)?);
            }
            out.extend_from_slice(literal);
        }
        Some(out)
    }

    /// The bytes this delta holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it stands for an empty message.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Delta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delta({} bytes)", self.0.len())
    }
}

/// The records of a delta's bytes: reference line, bytes copied from it, bytes written out.
/// An item is `None` where the bytes end inside a record (not a delta's bytes).
fn records(encoded: &[u8]) -> impl Iterator<Item = Option<(u8, usize, &[u8])>> {
    let mut rest = encoded;
    std::iter::from_fn(move || {
        let (&index, after) = rest.split_first()?;
        let record = read_length(after).and_then(|(copy, after)| {
            let (literal, after) = read_length(after)?;
            let literal_bytes = after.get(..literal)?;
            rest = &after[literal..];
            Some((index, copy, literal_bytes))
        });
        if record.is_none() {
            rest = &[];
        }
        Some(record)
    })
}

/// The lines of the reference a delta may copy from.
fn reference_lines(reference: &[u8]) -> SmallVec<[&[u8]; 16]> {
    lines(reference).take(MAX_REFERENCE_LINES).collect()
}

/// The lines of `bytes`, each with its `\n`; the last one may have none.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
}

/// The records of a line whose first `copied` bytes are copied: (bytes copied, bytes
/// written out), the rest cut in pieces of at most [`MAX_PIECE`].
fn pieces(line: &[u8], copied: usize) -> impl Iterator<Item = (usize, &[u8])> {
    let mut copy = copied;
    line[copied..]
        .chunks(MAX_PIECE)
        // A line copied whole still needs its record.
        .chain((copied == line.len()).then_some(&[][..]))
        .map(move |piece| (std::mem::take(&mut copy), piece))
}

/// How many bytes [`push_length`] writes for `n`.
fn length_size(n: usize) -> usize {
    match n {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        _ => 3,
    }
}

/// Writes `n` (at most [`MAX_PIECE`]) seven bits a byte, low bits first.
fn push_length(out: &mut Vec<u8>, mut n: usize) {
    debug_assert!(n <= MAX_PIECE);
    while n >= 0x80 {
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length [`push_length`] wrote, and the bytes after it.
fn read_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut n = 0;
    for (i, &byte) in bytes.iter().enumerate().take(3) {
        n |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((n, &bytes[i + 1..]));
        }
    }
    None
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:9000@127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK776asdhds;rport\r\n\
        From: <sip:8000@127.0.0.1>;tag=1928301774\r\n\
        To: <sip:9000@127.0.0.1>\r\n\
        Call-ID: a84b4c76e66710@127.0.0.1\r\n\
        CSeq: 314159 INVITE\r\n\r\n";

    const RINGING: &[u8] = b"SIP/2.0 180 Ringing\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK776asdhds;rport=40000;received=127.0.0.2\r\n\
        From: <sip:8000@127.0.0.1>;tag=1928301774\r\n\
        To: <sip:9000@127.0.0.1>;tag=a6c85cf\r\n\
        Call-ID: a84b4c76e66710@127.0.0.1\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:9000@127.0.0.1:41000>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn a_provisional_comes_back_exactly_and_keeps_only_what_the_invite_lacks() {
        let delta = Delta::new(RINGING, INVITE);
        assert_eq!(delta.restore(INVITE).as_deref(), Some(RINGING));
        // The status line, the Via's new parameters, the To tag, Contact and Content-Length
        // are written out; From, Call-ID and CSeq are three bytes of record each.
        assert!(
            delta.len() < 150,
            "{} bytes for a {}-byte 180",
            delta.len(),
            RINGING.len()
        );
    }

    #[test]
    fn a_message_sharing_nothing_comes_back_exactly() {
        for message in [
            &b""[..],
            b"x",
            b"SIP/2.0 100 Trying\n\nno CRLF, no final newline",
            b"\r\n\r\n\r\n",
        ] {
            let delta = Delta::new(message, INVITE);
            assert_eq!(delta.restore(INVITE).as_deref(), Some(message));
        }
        assert!(Delta::new(b"", INVITE).is_empty());
    }

    #[test]
    fn a_line_longer_than_a_record_holds_comes_back_exactly() {
        let mut message = b"Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bK776asdhds;x=".to_vec();
        message.extend(std::iter::repeat_n(b'a', 70_000));
        message.extend_from_slice(b"\r\n\r\n");
        let delta = Delta::new(&message, INVITE);
        assert_eq!(delta.restore(INVITE), Some(message));
    }

    #[test]
    fn restoring_against_another_reference_fails_or_differs_but_never_panics() {
        let delta = Delta::new(RINGING, INVITE);
        assert_eq!(delta.restore(b"INVITE\r\n"), None);
        let mut reordered: Vec<&[u8]> = lines(INVITE).collect();
        reordered.reverse();
        let reordered = reordered.concat();
        assert_ne!(delta.restore(&reordered).as_deref(), Some(RINGING));
    }

    #[test]
    fn a_cut_delta_restores_nothing_or_fewer_lines_and_never_panics() {
        let delta = Delta::new(RINGING, INVITE);
        for cut in 0..delta.len() {
            if let Some(restored) = Delta::restore_encoded(&delta.0[..cut], INVITE) {
                assert!(RINGING.starts_with(&restored) && restored.len() < RINGING.len());
            }
        }
        let long_literal = Delta::new(&[b'x'; 300], INVITE);
        assert_eq!(
            long_literal.len(),
            1 + 1 + 2 + 300,
            "a length of 300 takes two bytes"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_message_comes_back_exactly_from_any_reference(
            message in proptest::collection::vec(proptest::sample::select(&b"ab: \r\n;="[..]), 0..400),
            reference in proptest::collection::vec(proptest::sample::select(&b"ab: \r\n;="[..]), 0..400),
        ) {
            let delta = Delta::new(&message, &reference);
            proptest::prop_assert_eq!(delta.restore(&reference), Some(message));
        }
    }
}
