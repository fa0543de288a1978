//! The registrar journal's format, pure: a header naming the journal's generation, then
//! records of binding changes, each with its length and a checksum.
//!
//! Why a journal in front of redb: at 1000 REGISTERs a second each REGISTER arrives alone, and
//! a redb commit of one binding (a copy-on-write B-tree path, its pages written, an fsync) cost
//! more CPU than all the rest of the REGISTER. Appending one record to a file whose blocks are
//! already allocated and waiting for it to reach the disk costs a fraction of that and makes the change just
//! as durable; the records are folded into redb thousands at a time (see
//! [`super::journaled_store`]).
//!
//! Layout (little-endian):
//!
//! ```text
//! header:  "DTJRNL01" (8) | generation u64 (8) | CRC-32 of the 16 bytes before (4)
//! record:  payload length u32 (4) | CRC-32 of generation ++ payload (4) | payload
//! ```
//!
//! A journal is reused by writing a new header with a higher generation: the records of the
//! earlier generation still in the file then fail their checksum, so replay stops where the
//! current generation's records end. A record torn by a crash fails its checksum too; it was
//! never acknowledged, since its synchronous write had not returned. Each append also writes a zero
//! length after its record, so replay normally stops on that and the checksum is the second
//! line of defence.

/// The first eight bytes of every journal file.
const MAGIC: &[u8; 8] = b"DTJRNL01";

/// The header's size; the first record starts here.
pub const HEADER_LEN: usize = 20;

/// A record's length and checksum, before its payload.
pub const RECORD_OVERHEAD: usize = 8;

/// Bytes written after each record so that replay finds a zero length there.
pub const END_MARK_LEN: usize = 4;

/// The largest payload a record may have (a binding is a hundred bytes or two; this only
/// keeps a corrupt length from being believed).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The header of a journal of `generation`.
pub fn header(generation: u64) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32fast::hash(&out[..16]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The generation a header names, or `None` when `bytes` does not start with a valid header
/// (a file never written, or one of another format).
pub fn read_header(bytes: &[u8]) -> Option<u64> {
    let head = bytes.get(..HEADER_LEN)?;
    if &head[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(head[16..20].try_into().ok()?);
    if crc != crc32fast::hash(&head[..16]) {
        return None;
    }
    Some(u64::from_le_bytes(head[8..16].try_into().ok()?))
}

/// Appends one record of `payload` in `generation` to `out`.
pub fn push_record(out: &mut Vec<u8>, generation: u64, payload: &[u8]) {
    let length = u32::try_from(payload.len()).expect("record payloads are far below 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&record_crc(generation, payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payloads of the valid records of `generation` in `body` (the file after its header),
/// in order, and the offset in `body` where they end (where the next record goes).
pub fn read_records(body: &[u8], generation: u64) -> (Vec<&[u8]>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(head) = body.get(at..at + RECORD_OVERHEAD) {
        let length = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if length == 0 || length > MAX_PAYLOAD {
            break;
        }
        let start = at + RECORD_OVERHEAD;
        let Some(payload) = body.get(start..start + length) else {
            break;
        };
        if record_crc(generation, payload) != crc {
            break;
        }
        records.push(payload);
        at = start + length;
    }
    (records, at)
}

fn record_crc(generation: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&generation.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(generation: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            push_record(&mut out, generation, payload);
        }
        out
    }

    #[test]
    fn records_read_back_in_order_and_end_where_the_next_goes() {
        let mut file = body(3, &[b"one", b"two"]);
        let written = file.len();
        file.extend_from_slice(&[0; 64]);
        let (records, end) = read_records(&file, 3);
        assert_eq!(records, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(end, written);
    }

    #[test]
    fn a_torn_record_ends_the_replay_before_it() {
        let mut file = body(1, &[b"kept", b"torn away"]);
        let cut = file.len() - 3;
        file.truncate(cut);
        let (records, _) = read_records(&file, 1);
        assert_eq!(records, vec![&b"kept"[..]]);
        let mut flipped = body(1, &[b"kept", b"bit flipped"]);
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(read_records(&flipped, 1).0, vec![&b"kept"[..]]);
    }

    #[test]
    fn records_of_an_earlier_generation_are_not_replayed() {
        // A reset journal: a new generation's record over the start of the old ones.
        let mut file = body(8, &[b"new"]);
        let old = body(7, &[b"old one", b"old two"]);
        file.extend_from_slice(&old);
        let (records, end) = read_records(&file, 8);
        assert_eq!(records, vec![&b"new"[..]]);
        assert_eq!(end, RECORD_OVERHEAD + 3);
    }

    #[test]
    fn a_header_names_its_generation_and_anything_else_is_none() {
        assert_eq!(read_header(&header(42)), Some(42));
        assert_eq!(read_header(&[0; HEADER_LEN]), None);
        assert_eq!(read_header(&header(42)[..10]), None);
        let mut bad = header(42);
        bad[9] ^= 1;
        assert_eq!(read_header(&bad), None);
    }

    #[test]
    fn a_corrupt_length_is_not_believed() {
        let mut file = vec![0xff; RECORD_OVERHEAD];
        file.extend_from_slice(&[1; 32]);
        assert_eq!(read_records(&file, 0), (Vec::<&[u8]>::new(), 0));
    }
}
