//! DTMF digits and RFC 4733 telephone-events: the 4-byte payload, a sender that
//! turns one key press into its packet sequence, and a receiver that reports
//! each digit once.
//!
//! The sender only makes payloads and timestamps; [`crate::RtpSender::event_frame`]
//! puts them in the audio stream's sequence space. The same [`DtmfDigit`] is used
//! by the tone generator (in-band DTMF) and the Goertzel detector.

use crate::error::MediaError;

/// One key of the 4x4 DTMF keypad: 0-9, *, #, A-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit(u8);

/// Keys in RFC 4733 event-code order (section 3.2, table 3).
const KEYS: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '#', 'A', 'B', 'C', 'D',
];
/// Row (low group) frequencies in Hz.
pub const DTMF_ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies in Hz.
pub const DTMF_COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The keypad as laid out, row by row, so that (row, column) indexes a key.
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

impl DtmfDigit {
    /// The key for a character; lower-case a-d are accepted.
    pub fn from_char(c: char) -> Option<Self> {
        let c = c.to_ascii_uppercase();
        KEYS.iter()
            .position(|&k| k == c)
            .map(|i| DtmfDigit(i as u8))
    }

    /// The key for an RFC 4733 event code (0-15); other events are not DTMF.
    pub fn from_event_code(code: u8) -> Option<Self> {
        (usize::from(code) < KEYS.len()).then_some(DtmfDigit(code))
    }

    /// The key at a keypad position (row 0-3 = 697..941 Hz, column 0-3 = 1209..1633 Hz).
    pub fn from_position(row: usize, column: usize) -> Option<Self> {
        let c = *KEYPAD.get(row)?.get(column)?;
        Self::from_char(c)
    }

    /// The character printed on the key.
    pub fn as_char(self) -> char {
        KEYS[usize::from(self.0)]
    }

    /// The RFC 4733 event code.
    pub fn event_code(self) -> u8 {
        self.0
    }

    /// (row, column) frequencies in Hz.
    pub fn frequencies(self) -> (f64, f64) {
        let c = self.as_char();
        for (r, row) in KEYPAD.iter().enumerate() {
            if let Some(col) = row.iter().position(|&k| k == c) {
                return (DTMF_ROWS[r], DTMF_COLUMNS[col]);
            }
        }
        // Every key is on the keypad; this line is never reached.
        (DTMF_ROWS[0], DTMF_COLUMNS[0])
    }
}

impl std::fmt::Display for DtmfDigit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// The RFC 4733 section 2.3 payload: event, E bit, volume, duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0-15 are DTMF keys, 16 is flash).
    pub event: u8,
    /// E bit: this is (a retransmission of) the final packet of the event.
    pub end: bool,
    /// Power level in -dBm0, 0-63 (larger is quieter).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

/// Length of a telephone-event payload.
pub const TELEPHONE_EVENT_LEN: usize = 4;

impl TelephoneEvent {
    /// Reads the first four bytes of an RTP payload. Extra bytes (redundant
    /// events, RFC 4733 2.5.1.5 multi-event payloads) are ignored.
    pub fn parse(payload: &[u8]) -> Result<Self, MediaError> {
        let b = payload
            .get(..TELEPHONE_EVENT_LEN)
            .ok_or(MediaError::Truncated {
                what: "telephone-event payload",
                len: payload.len(),
                needed: TELEPHONE_EVENT_LEN,
            })?;
        Ok(TelephoneEvent {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3f,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// The wire form; the R bit is sent as zero and volume is cut to 6 bits.
    pub fn to_bytes(self) -> [u8; TELEPHONE_EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }
}

/// One packet the sender wants sent: marker, timestamp and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// Set on the first packet of the event (RFC 4733 2.5.1.2).
    pub marker: bool,
    /// The event's start timestamp, the same in every packet of the event.
    pub timestamp: u32,
    /// The telephone-event payload.
    pub payload: [u8; TELEPHONE_EVENT_LEN],
}

/// How many times the final packet is sent (RFC 4733 2.5.1.4 recommends three).
pub const END_PACKET_COPIES: u8 = 3;

/// The packet sequence of one key press, one packet per call to `next_packet`
/// (every 20 ms).
///
/// Durations grow by one frame per packet until they reach the key's length;
/// that packet and two copies carry the E bit.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    timestamp: u32,
    volume: u8,
    step: u16,
    total: u16,
    sent_so_far: u16,
    started: bool,
    end_copies_sent: u8,
}

impl DtmfSender {
    /// A key press starting at RTP timestamp `timestamp` lasting `duration`
    /// timestamp units (800 for 100 ms at 8 kHz), updated every `step` units
    /// (160 for 20 ms at 8 kHz). `volume` is in -dBm0; 10 is usual.
    pub fn new(digit: DtmfDigit, timestamp: u32, duration: u16, step: u16, volume: u8) -> Self {
        Self::for_event(digit.event_code(), timestamp, duration, step, volume)
    }

    /// Any RFC 4733 event, such as [`FLASH_EVENT`], sent as a key press is.
    pub fn for_event(event: u8, timestamp: u32, duration: u16, step: u16, volume: u8) -> Self {
        DtmfSender {
            event,
            timestamp,
            volume: volume.min(63),
            step: step.max(1),
            total: duration.max(1),
            sent_so_far: 0,
            started: false,
            end_copies_sent: 0,
        }
    }

    /// The digit being sent; `None` for an event that is not a key (hook flash).
    pub fn digit(&self) -> Option<DtmfDigit> {
        DtmfDigit::from_event_code(self.event)
    }

    /// True once every packet, end copies included, has been handed out.
    pub fn is_finished(&self) -> bool {
        self.end_copies_sent >= END_PACKET_COPIES
    }

    /// The next packet, or `None` when the event is over.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        if self.is_finished() {
            return None;
        }
        let marker = !self.started;
        self.started = true;
        self.sent_so_far = self.sent_so_far.saturating_add(self.step).min(self.total);
        let end = self.sent_so_far >= self.total;
        if end {
            self.end_copies_sent += 1;
        }
        let event = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration: self.sent_so_far,
        };
        Some(DtmfPacket {
            marker,
            timestamp: self.timestamp,
            payload: event.to_bytes(),
        })
    }
}

/// RFC 4733 section 3.2, table 3: event 16 is hook flash, which a PBX behind the far end
/// takes as the subscriber's flash (`flash_mode = "rfc4733"` on the ATA).
pub const FLASH_EVENT: u8 = 16;

/// How many recent event timestamps the receiver remembers, so that end
/// packets arriving after the next key's start are still recognised.
const REMEMBERED_EVENTS: usize = 8;

/// Reports each received DTMF key press once.
///
/// An event is identified by its RTP timestamp (RFC 4733 2.5.2.1), so the first
/// packet seen for a new timestamp reports the digit, whether or not it was the
/// marked start packet: a lost start packet does not lose the digit, and
/// updates and repeated end packets are not reported again.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    recent: Vec<(u32, u8)>,
}

impl DtmfReceiver {
    /// A receiver that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event RTP packet's timestamp and payload. Returns
    /// the digit the first time an event is seen; events that are not DTMF
    /// keys (flash, tones) are not reported.
    pub fn on_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<DtmfDigit>, MediaError> {
        let event = TelephoneEvent::parse(payload)?;
        let key = (timestamp, event.event);
        if self.recent.contains(&key) {
            return Ok(None);
        }
        if self.recent.len() == REMEMBERED_EVENTS {
            self.recent.remove(0);
        }
        self.recent.push(key);
        Ok(DtmfDigit::from_event_code(event.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit(c: char) -> DtmfDigit {
        DtmfDigit::from_char(c).unwrap()
    }

    #[test]
    fn keys_map_to_rfc_4733_event_codes() {
        assert_eq!(digit('0').event_code(), 0);
        assert_eq!(digit('9').event_code(), 9);
        assert_eq!(digit('*').event_code(), 10);
        assert_eq!(digit('#').event_code(), 11);
        assert_eq!(digit('d').event_code(), 15);
        assert_eq!(DtmfDigit::from_event_code(16), None);
        assert_eq!(DtmfDigit::from_char('x'), None);
    }

    #[test]
    fn keys_have_their_keypad_frequencies() {
        assert_eq!(digit('1').frequencies(), (697.0, 1209.0));
        assert_eq!(digit('0').frequencies(), (941.0, 1336.0));
        assert_eq!(digit('#').frequencies(), (941.0, 1477.0));
        assert_eq!(digit('A').frequencies(), (697.0, 1633.0));
        assert_eq!(DtmfDigit::from_position(2, 1), Some(digit('8')));
    }

    #[test]
    fn telephone_event_payload_round_trips_with_known_bytes() {
        let ev = TelephoneEvent {
            event: 5,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(ev.to_bytes(), [5, 0x8a, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Ok(ev));
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn sender_emits_marked_start_growing_updates_and_three_end_packets() {
        let mut s = DtmfSender::new(digit('7'), 1000, 800, 160, 10);
        let packets: Vec<DtmfPacket> = std::iter::from_fn(|| s.next_packet()).collect();
        let events: Vec<TelephoneEvent> = packets
            .iter()
            .map(|p| TelephoneEvent::parse(&p.payload).unwrap())
            .collect();
        assert_eq!(packets.len(), 7);
        assert!(packets[0].marker);
        assert!(packets[1..].iter().all(|p| !p.marker));
        assert!(packets.iter().all(|p| p.timestamp == 1000));
        let durations: Vec<u16> = events.iter().map(|e| e.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert!(events[..4].iter().all(|e| !e.end));
        assert!(events.iter().all(|e| e.event == 7 && e.volume == 10));
        assert!(s.is_finished());
    }

    #[test]
    fn receiver_reports_a_digit_once_for_the_whole_sequence() {
        let mut s = DtmfSender::new(digit('#'), 42, 800, 160, 10);
        let mut r = DtmfReceiver::new();
        let mut reported = Vec::new();
        while let Some(p) = s.next_packet() {
            reported.extend(r.on_packet(p.timestamp, &p.payload).unwrap());
        }
        assert_eq!(reported, [digit('#')]);
    }

    #[test]
    fn receiver_reports_the_digit_when_the_start_packet_is_lost() {
        let mut s = DtmfSender::new(digit('3'), 42, 800, 160, 10);
        let mut r = DtmfReceiver::new();
        let _lost = s.next_packet();
        let mut reported = Vec::new();
        while let Some(p) = s.next_packet() {
            reported.extend(r.on_packet(p.timestamp, &p.payload).unwrap());
        }
        assert_eq!(reported, [digit('3')]);
    }

    #[test]
    fn the_same_key_pressed_twice_is_reported_twice() {
        let mut r = DtmfReceiver::new();
        let mut reported = Vec::new();
        for start in [0u32, 1600] {
            let mut s = DtmfSender::new(digit('5'), start, 480, 160, 10);
            while let Some(p) = s.next_packet() {
                reported.extend(r.on_packet(p.timestamp, &p.payload).unwrap());
            }
        }
        assert_eq!(reported, [digit('5'), digit('5')]);
    }

    #[test]
    fn a_late_end_packet_of_the_previous_key_is_not_reported_again() {
        let mut r = DtmfReceiver::new();
        let first = TelephoneEvent {
            event: 1,
            end: false,
            volume: 10,
            duration: 160,
        };
        let second = TelephoneEvent {
            event: 2,
            end: false,
            volume: 10,
            duration: 160,
        };
        let first_end = TelephoneEvent {
            end: true,
            duration: 800,
            ..first
        };
        assert_eq!(r.on_packet(0, &first.to_bytes()), Ok(Some(digit('1'))));
        assert_eq!(r.on_packet(1600, &second.to_bytes()), Ok(Some(digit('2'))));
        assert_eq!(r.on_packet(0, &first_end.to_bytes()), Ok(None));
    }
}
