//! Message capture: what the transport layer sent and received, for people.
//!
//! The transport actors call [`Capture::message`] once per message received (`UdpWorker`'s
//! `Readable` handler, `TcpConnection`'s `Read` handler) and once per message sent
//! (`Outbound::send`). A [`Capture`] exists only when something wants the messages, so with
//! tracing and HEP both off the hooks cost one empty `OnceLock` read. Behind it:
//!
//! - [`TraceRecorder`]: the last N calls' messages in memory, keyed by Call-ID, read by
//!   `/api/trace/{call_id}`, `dialtone-proxy ctl trace` and the admin page's ladder diagrams
//!   (drawn like the seed's figures D-1 to D-4);
//! - [`crate::hep::HepExporter`]: every message as HEPv3 to a Homer collector.
//!
//! Only the first line and the Call-ID are looked at (a scan of the header section, not a
//! parse): the core parses the message properly, and capture must stay cheap.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::hep::HepExporter;
use dialtone_transaction::Transport;

/// Messages kept per call; a call that goes on longer (a re-INVITE storm, a flood with one
/// Call-ID) keeps its first ones and counts the rest as dropped.
pub const MAX_MESSAGES_PER_CALL: usize = 256;
/// Octets of a message's text kept; the rest is cut (bodies of a lab call are far smaller).
pub const MAX_TEXT: usize = 8 * 1024;

/// The largest buffers an evicted call hands on to a new one (see `TraceRecorder::record`):
/// room for a call with SDP and a re-INVITE or two.
const REUSED_TEXT_MAX: usize = 32 * 1024;
const REUSED_MESSAGES_MAX: usize = 64;

/// Which way a message went, seen from the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Received by the proxy.
    In,
    /// Sent by the proxy.
    Out,
}

/// One captured message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TracedMessage {
    /// Microseconds since the Unix epoch.
    pub at_us: u64,
    pub direction: Direction,
    /// `udp` or `tcp`.
    pub transport: String,
    /// The proxy's address.
    pub local: SocketAddr,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The request line or status line.
    pub first_line: String,
    pub call_id: String,
    /// The message as text (lossy UTF-8), at most [`MAX_TEXT`] octets.
    pub text: String,
    /// True when `text` was cut.
    pub truncated: bool,
}

impl TracedMessage {
    /// The sender's address.
    pub fn from(&self) -> SocketAddr {
        match self.direction {
            Direction::In => self.remote,
            Direction::Out => self.local,
        }
    }

    /// The receiver's address.
    pub fn to(&self) -> SocketAddr {
        match self.direction {
            Direction::In => self.local,
            Direction::Out => self.remote,
        }
    }

    /// A short label for an arrow: the method of a request, `code reason` of a response.
    pub fn label(&self) -> String {
        label_of(&self.first_line)
    }
}

/// The arrow label of a first line: `INVITE` for `INVITE sip:.. SIP/2.0`, `180 Ringing` for
/// `SIP/2.0 180 Ringing`.
pub fn label_of(first_line: &str) -> String {
    match first_line.strip_prefix("SIP/2.0 ") {
        Some(status) => status.to_string(),
        None => first_line
            .split(' ')
            .next()
            .unwrap_or(first_line)
            .to_string(),
    }
}

/// The messages of one Call-ID, in the order the proxy saw them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallTrace {
    pub call_id: String,
    pub messages: Vec<TracedMessage>,
    /// Messages not kept because the call had [`MAX_MESSAGES_PER_CALL`] already.
    pub dropped: usize,
}

/// A summary of one traced Call-ID, for listings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TraceSummary {
    pub call_id: String,
    /// The first message's first line (`INVITE sip:9000@.. SIP/2.0`, `REGISTER ..`).
    pub first_line: String,
    pub messages: usize,
    pub first_at_us: u64,
    pub last_at_us: u64,
}

/// A message as the recorder keeps it: where its octets sit in its call's [`KeptCall::text`],
/// turned into text only when someone asks ([`KeptCall::traced`]).
#[derive(Debug)]
struct Kept {
    at_us: u64,
    direction: Direction,
    transport: Transport,
    truncated: bool,
    local: SocketAddr,
    remote: SocketAddr,
    /// Where its octets start in the call's text, and how many (at most [`MAX_TEXT`]).
    start: u32,
    len: u32,
}

/// One Call-ID's kept messages.
///
/// Their octets are copied, one after another, into one buffer per call. Keeping each
/// datagram's own buffer instead (a reference, no copy) held 13 allocations per call until the
/// call was evicted, 200 calls later: at 3000 calls a second their frees came cold, and the
/// recorder cost a fifth of the proxy's CPU. Copied, the datagram's buffer is freed at once,
/// while it is still in the cache, by the worker that allocated it, and an evicted call's two
/// buffers go to the next new call (`TraceRecorder::record`).
#[derive(Debug)]
struct KeptCall {
    text: Vec<u8>,
    messages: Vec<Kept>,
    dropped: usize,
}

impl KeptCall {
    fn new(class: Class, first_len: usize) -> KeptCall {
        let expected = class.expected_messages();
        KeptCall {
            // The first message is usually the longest (an INVITE with its SDP).
            text: Vec::with_capacity(expected * first_len),
            messages: Vec::with_capacity(expected),
            dropped: 0,
        }
    }

    /// Adds `bytes` (already cut to [`MAX_TEXT`]) in time order: two workers can handle two
    /// datagrams of one peer in the other order than they arrived (`at_us` is then the
    /// kernel's arrival stamp), so nearly always at the end, but not always.
    fn push(&mut self, mut message: Kept, bytes: &[u8]) {
        if self.messages.len() >= MAX_MESSAGES_PER_CALL {
            self.dropped += 1;
            return;
        }
        message.start = self.text.len() as u32;
        message.len = bytes.len() as u32;
        self.text.extend_from_slice(bytes);
        // The common case is checked first: a search over the list reads lines of it that a
        // busy proxy no longer has in its cache (a third of this function's time at 6 000
        // calls a second, `perf annotate`).
        if self
            .messages
            .last()
            .is_none_or(|last| last.at_us <= message.at_us)
        {
            self.messages.push(message);
            return;
        }
        let place = self.messages.partition_point(|m| m.at_us <= message.at_us);
        self.messages.insert(place, message);
    }

    /// Whether a new call may take over this one's buffers: not when a long call grew them
    /// far beyond what a call usually needs, which would then stay held.
    fn is_reusable(&self) -> bool {
        self.text.capacity() <= REUSED_TEXT_MAX && self.messages.capacity() <= REUSED_MESSAGES_MAX
    }

    fn clear(&mut self) {
        self.text.clear();
        self.messages.clear();
        self.dropped = 0;
    }

    fn bytes(&self, message: &Kept) -> &[u8] {
        let start = message.start as usize;
        &self.text[start..start + message.len as usize]
    }

    fn traced(&self, message: &Kept, call_id: &str) -> TracedMessage {
        let bytes = self.bytes(message);
        TracedMessage {
            at_us: message.at_us,
            direction: message.direction,
            transport: message.transport.via_token().to_ascii_lowercase(),
            local: message.local,
            remote: message.remote,
            first_line: String::from_utf8_lossy(first_line(bytes)).into_owned(),
            call_id: call_id.to_owned(),
            text: String::from_utf8_lossy(bytes).into_owned(),
            truncated: message.truncated,
        }
    }
}

#[derive(Debug, Default)]
struct Calls {
    /// Hashed with a seeded fast hash, not SipHash: the table holds at most twice the
    /// recorder's capacity, so a peer choosing colliding Call-IDs can slow a lookup only to a
    /// walk over those few hundred entries, and every message looks its Call-ID up.
    by_id: HashMap<String, KeptCall, foldhash::fast::RandomState>,
    /// Call-IDs oldest first, per [`Class`]; the front is evicted when its class is full.
    order: [VecDeque<String>; 2],
}

/// An evicted call whose buffers and Call-ID strings a new call takes over.
struct Reused {
    id_in_order: String,
    id_in_map: String,
    call: KeptCall,
}

impl Calls {
    /// Evicts the oldest calls of `class` until a new one fits within `max_calls`. The first
    /// evicted call is handed back for the new call to take over: once the recorder is full, a
    /// new call allocates nothing (`benches/recorder.rs`: a REGISTER and its 200 took 733 ns
    /// with four allocations and four frees per Call-ID, 682 ns without; a call 2.05 and 1.82
    /// µs). Any other goes to `evicted`, to be dropped once the lock is released.
    fn make_room(
        &mut self,
        class: Class,
        max_calls: usize,
        evicted: &mut Vec<KeptCall>,
    ) -> Option<Reused> {
        let order = &mut self.order[class as usize];
        let mut reused = None;
        while order.len() >= max_calls {
            let Some(id_in_order) = order.pop_front() else {
                break;
            };
            let Some((id_in_map, call)) = self.by_id.remove_entry(&id_in_order) else {
                continue;
            };
            if reused.is_none() && call.is_reusable() {
                reused = Some(Reused {
                    id_in_order,
                    id_in_map,
                    call,
                });
            } else {
                evicted.push(call);
            }
        }
        reused
    }

    /// Starts keeping `call_id`, in `reused`'s buffers if there are some.
    fn start(
        &mut self,
        class: Class,
        call_id: &str,
        reused: Option<Reused>,
        first_len: usize,
    ) -> &mut KeptCall {
        let (id_in_order, id_in_map, call) = match reused {
            Some(Reused {
                mut id_in_order,
                mut id_in_map,
                mut call,
            }) => {
                id_in_order.clear();
                id_in_order.push_str(call_id);
                id_in_map.clear();
                id_in_map.push_str(call_id);
                call.clear();
                (id_in_order, id_in_map, call)
            }
            None => (
                call_id.to_owned(),
                call_id.to_owned(),
                KeptCall::new(class, first_len),
            ),
        };
        self.order[class as usize].push_back(id_in_order);
        self.by_id.entry(id_in_map).or_insert(call)
    }
}

/// What a Call-ID is for, by its first message. REGISTER refreshes and OPTIONS pings come by
/// the thousand in a lab; counted apart from calls, they cannot push the calls someone wants
/// to look at out of the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Call = 0,
    Housekeeping = 1,
}

impl Class {
    /// Room for the messages a Call-ID of this class usually has, made once: a relayed call
    /// is 13 messages in and out (INVITE, 100, 180, 200, ACK, BYE and its 200), which a
    /// growing list reached in three reallocations.
    fn expected_messages(self) -> usize {
        match self {
            Class::Call => 14,
            Class::Housekeeping => 4,
        }
    }

    fn of(first_line: &[u8]) -> Class {
        if first_line.starts_with(b"REGISTER ") || first_line.starts_with(b"OPTIONS ") {
            Class::Housekeeping
        } else {
            Class::Call
        }
    }
}

/// The last `max_calls` calls' messages, and apart from them the last `max_calls` REGISTER and
/// OPTIONS exchanges'.
#[derive(Debug)]
pub struct TraceRecorder {
    max_calls: usize,
    calls: Mutex<Calls>,
}

impl TraceRecorder {
    /// A recorder keeping `max_calls` Call-IDs (at least one).
    pub fn new(max_calls: usize) -> TraceRecorder {
        TraceRecorder {
            max_calls: max_calls.max(1),
            calls: Mutex::new(Calls::default()),
        }
    }

    /// Records one message; messages without a Call-ID (keep-alives, garbage) are not kept.
    pub fn record(
        &self,
        at: SystemTime,
        direction: Direction,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
    ) {
        let Some(call_id) = call_id(bytes) else {
            return;
        };
        let call_id = String::from_utf8_lossy(call_id);
        let text = &bytes[..bytes.len().min(MAX_TEXT)];
        let message = Kept {
            at_us: at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            direction,
            transport,
            truncated: text.len() < bytes.len(),
            local,
            remote,
            start: 0,
            len: 0,
        };
        // Evicted calls are dropped after the lock is released: the workers wait on this lock.
        let mut evicted = Vec::new();
        {
            let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(trace) = calls.by_id.get_mut(call_id.as_ref()) {
                trace.push(message, text);
                return;
            }
            let class = Class::of(first_line(text));
            let reused = calls.make_room(class, self.max_calls, &mut evicted);
            calls
                .start(class, &call_id, reused, text.len())
                .push(message, text);
        }
        drop(evicted);
    }

    /// The messages of `call_id`, if it is still kept.
    pub fn get(&self, call_id: &str) -> Option<CallTrace> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.by_id.get(call_id).map(|kept| CallTrace {
            call_id: call_id.to_owned(),
            messages: kept
                .messages
                .iter()
                .map(|m| kept.traced(m, call_id))
                .collect(),
            dropped: kept.dropped,
        })
    }

    /// Every kept Call-ID, the most recently started first.
    pub fn summaries(&self) -> Vec<TraceSummary> {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let mut summaries: Vec<TraceSummary> = calls
            .order
            .iter()
            .flatten()
            .filter_map(|id| calls.by_id.get(id).map(|t| (id, t)))
            .map(|(id, t)| TraceSummary {
                call_id: id.clone(),
                first_line: t
                    .messages
                    .first()
                    .map(|m| String::from_utf8_lossy(first_line(t.bytes(m))).into_owned())
                    .unwrap_or_default(),
                messages: t.messages.len(),
                first_at_us: t.messages.first().map_or(0, |m| m.at_us),
                last_at_us: t.messages.last().map_or(0, |m| m.at_us),
            })
            .collect();
        // Stable: Call-IDs started in the same microsecond keep their arrival order.
        summaries.reverse();
        summaries.sort_by_key(|s| std::cmp::Reverse(s.first_at_us));
        summaries
    }
}

/// The first line of a message, without its CRLF.
pub fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(bytes.len());
    &bytes[..end]
}

/// The Call-ID header's value (or its compact form `i`, RFC 3261 section 7.3.3), found by
/// scanning the header lines; `None` when there is none before the blank line.
pub fn call_id(bytes: &[u8]) -> Option<&[u8]> {
    let mut rest = bytes;
    // Skip the start line; then one header line at a time, looking closer only at lines that
    // can be a Call-ID (`Call-ID` or its compact form `i`, any case): every message passes here.
    while let Some(end) = memchr::memchr(b'\n', rest) {
        rest = &rest[end + 1..];
        let line = match memchr::memchr(b'\n', rest) {
            Some(end) => &rest[..end],
            None => rest,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if !matches!(line[0], b'C' | b'c' | b'I' | b'i') {
            continue;
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"call-id") || name.eq_ignore_ascii_case(b"i") {
            let value = line[colon + 1..].trim_ascii();
            return (!value.is_empty()).then_some(value);
        }
    }
    None
}

/// What the transport layer feeds: the recorder and the HEP exporter, each optional.
#[derive(Debug)]
pub struct Capture {
    recorder: Option<Arc<TraceRecorder>>,
    hep: Option<HepExporter>,
}

impl Capture {
    /// `None` when there is nothing to feed, so that the hooks can skip all work.
    pub fn new(recorder: Option<Arc<TraceRecorder>>, hep: Option<HepExporter>) -> Option<Capture> {
        (recorder.is_some() || hep.is_some()).then_some(Capture { recorder, hep })
    }

    /// One message sent or received by the proxy.
    pub fn message(
        &self,
        at: SystemTime,
        direction: Direction,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &Bytes,
    ) {
        if let Some(hep) = &self.hep {
            let (src, dst) = match direction {
                Direction::In => (remote, local),
                Direction::Out => (local, remote),
            };
            hep.send(at, transport, src, dst, bytes);
        }
        if let Some(recorder) = &self.recorder {
            recorder.record(at, direction, transport, local, remote, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:9000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062\r\nCall-ID: abc@127.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn finds_the_call_id_in_long_and_compact_form_but_not_in_the_body() {
        assert_eq!(call_id(INVITE), Some(&b"abc@127.0.0.1"[..]));
        assert_eq!(
            call_id(b"SIP/2.0 200 OK\r\ni:  x1 \r\n\r\n"),
            Some(&b"x1"[..])
        );
        assert_eq!(
            call_id(b"MESSAGE sip:a SIP/2.0\r\nTo: <sip:a>\r\n\r\nCall-ID: body\r\n"),
            None
        );
        assert_eq!(call_id(b"\r\n\r\n"), None);
        assert_eq!(first_line(INVITE), b"INVITE sip:9000@127.0.0.1 SIP/2.0");
    }

    #[test]
    fn labels_are_the_method_or_the_status() {
        assert_eq!(label_of("INVITE sip:9000@x SIP/2.0"), "INVITE");
        assert_eq!(label_of("SIP/2.0 180 Ringing"), "180 Ringing");
    }

    #[test]
    fn keeps_the_last_calls_and_their_messages_in_order() {
        let recorder = TraceRecorder::new(2);
        let now = SystemTime::now();
        for id in ["a", "b", "c"] {
            let text = format!("OPTIONS sip:x SIP/2.0\r\nCall-ID: {id}\r\n\r\n");
            recorder.record(
                now,
                Direction::In,
                Transport::Udp,
                addr(5060),
                addr(5062),
                &Bytes::from(text),
            );
            recorder.record(
                now,
                Direction::Out,
                Transport::Udp,
                addr(5060),
                addr(5062),
                &Bytes::from(format!("SIP/2.0 200 OK\r\nCall-ID: {id}\r\n\r\n")),
            );
        }
        assert!(recorder.get("a").is_none());
        let c = recorder.get("c").unwrap();
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].label(), "OPTIONS");
        assert_eq!(c.messages[0].from(), addr(5062));
        assert_eq!(c.messages[1].label(), "200 OK");
        assert_eq!(c.messages[1].to(), addr(5062));
        let ids: Vec<_> = recorder
            .summaries()
            .into_iter()
            .map(|s| s.call_id)
            .collect();
        assert_eq!(ids, ["c", "b"]);
    }

    #[test]
    fn a_recorded_message_is_copied_so_the_datagrams_buffer_is_freed_at_once() {
        let recorder = TraceRecorder::new(4);
        let datagram = Bytes::from(INVITE.to_vec());
        let now = SystemTime::now();
        let (proxy, peer) = (addr(5060), addr(5062));
        recorder.record(now, Direction::In, Transport::Udp, proxy, peer, &datagram);
        assert!(
            datagram.is_unique(),
            "the recorder holds the datagram's buffer"
        );
        let kept = recorder.get("abc@127.0.0.1").unwrap();
        assert_eq!(kept.messages[0].text.as_bytes(), INVITE);
    }

    #[test]
    fn a_new_call_takes_over_the_buffers_of_the_call_it_evicts() {
        let recorder = TraceRecorder::new(1);
        let now = SystemTime::now();
        let record_invite = |id: &str| {
            let invite =
                format!("INVITE sip:9000@h SIP/2.0\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\n\r\n");
            let (proxy, peer) = (addr(5060), addr(5062));
            recorder.record(
                now,
                Direction::In,
                Transport::Udp,
                proxy,
                peer,
                invite.as_bytes(),
            );
        };
        let text_of = |id: &str| {
            let calls = recorder.calls.lock().unwrap();
            calls.by_id[id].text.as_ptr()
        };
        record_invite("a");
        let first = text_of("a");
        record_invite("b");
        assert!(recorder.get("a").is_none());
        assert_eq!(text_of("b"), first, "a buffer of its own");
        let b = recorder.get("b").unwrap();
        assert_eq!(b.messages.len(), 1);
        assert!(b.messages[0].text.contains("Call-ID: b"));
        assert_eq!(recorder.summaries().len(), 1);
    }

    #[test]
    fn a_flood_of_registrations_does_not_push_a_call_out() {
        let recorder = TraceRecorder::new(2);
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let record = |seconds: u64, text: String| {
            recorder.record(
                start + std::time::Duration::from_secs(seconds),
                Direction::In,
                Transport::Udp,
                addr(5060),
                addr(5062),
                &Bytes::from(text.clone()),
            )
        };
        record(
            0,
            "INVITE sip:9000@x SIP/2.0\r\nCall-ID: call-1\r\n\r\n".into(),
        );
        for n in 1..=5 {
            record(
                n,
                format!("REGISTER sip:x SIP/2.0\r\nCall-ID: reg-{n}\r\n\r\n"),
            );
        }
        record(
            6,
            "INVITE sip:9000@x SIP/2.0\r\nCall-ID: call-2\r\n\r\n".into(),
        );
        record(
            7,
            "INVITE sip:9000@x SIP/2.0\r\nCall-ID: call-3\r\n\r\n".into(),
        );
        // Calls evict calls only, registrations registrations only.
        assert!(recorder.get("call-1").is_none());
        assert!(recorder.get("reg-3").is_none());
        let ids: Vec<_> = recorder
            .summaries()
            .into_iter()
            .map(|s| s.call_id)
            .collect();
        assert_eq!(ids, ["call-3", "call-2", "reg-5", "reg-4"]);

        let recorder = TraceRecorder::new(2);
        recorder.record(
            start,
            Direction::In,
            Transport::Udp,
            addr(5060),
            addr(5062),
            &Bytes::from_static(b"INVITE sip:9000@x SIP/2.0\r\nCall-ID: kept\r\n\r\n"),
        );
        for n in 1..=50 {
            recorder.record(
                start + std::time::Duration::from_secs(n),
                Direction::In,
                Transport::Udp,
                addr(5060),
                addr(5062),
                &Bytes::from(format!(
                    "OPTIONS sip:x SIP/2.0\r\nCall-ID: ping-{n}\r\n\r\n"
                )),
            );
        }
        assert!(recorder.get("kept").is_some());
    }

    #[test]
    fn a_message_recorded_late_takes_its_place_by_time() {
        // Two workers read the ACK and the INVITE that a peer sent in that order; the one
        // with the INVITE finished first.
        let recorder = TraceRecorder::new(10);
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let record = |micros: u64, text: &str| {
            recorder.record(
                start + std::time::Duration::from_micros(micros),
                Direction::In,
                Transport::Udp,
                addr(5060),
                addr(5062),
                &Bytes::copy_from_slice(text.as_bytes()),
            )
        };
        record(
            0,
            "INVITE sip:9000@x SIP/2.0\r\nCall-ID: late\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        record(
            30,
            "INVITE sip:9000@x SIP/2.0\r\nCall-ID: late\r\nCSeq: 2 INVITE\r\n\r\n",
        );
        record(
            20,
            "ACK sip:9000@x SIP/2.0\r\nCall-ID: late\r\nCSeq: 1 ACK\r\n\r\n",
        );
        record(
            30,
            "SIP/2.0 100 Trying\r\nCall-ID: late\r\nCSeq: 2 INVITE\r\n\r\n",
        );
        let lines: Vec<String> = recorder
            .get("late")
            .unwrap()
            .messages
            .iter()
            .map(|m| m.text.lines().nth(2).unwrap_or("").to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "CSeq: 1 INVITE",
                "CSeq: 1 ACK",
                "CSeq: 2 INVITE",
                "CSeq: 2 INVITE"
            ]
        );
        let trace = recorder.get("late").unwrap();
        assert!(
            trace.messages[3].first_line.starts_with("SIP/2.0 100"),
            "ties keep their order"
        );
    }

    #[test]
    fn caps_messages_per_call_and_text_length() {
        let recorder = TraceRecorder::new(10);
        let mut big = b"MESSAGE sip:x SIP/2.0\r\nCall-ID: big\r\n\r\n".to_vec();
        big.resize(MAX_TEXT * 2, b'x');
        for _ in 0..MAX_MESSAGES_PER_CALL + 5 {
            recorder.record(
                SystemTime::now(),
                Direction::In,
                Transport::Tcp,
                addr(5060),
                addr(5062),
                &Bytes::from(big.clone()),
            );
        }
        let trace = recorder.get("big").unwrap();
        assert_eq!(trace.messages.len(), MAX_MESSAGES_PER_CALL);
        assert_eq!(trace.dropped, 5);
        assert!(trace.messages[0].truncated);
        assert_eq!(trace.messages[0].text.len(), MAX_TEXT);
        assert_eq!(trace.messages[0].transport, "tcp");
    }
}
