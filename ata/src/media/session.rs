//! One call's RTP session, sans-IO: what to send every 20 ms, what to do with a received
//! datagram, what the earpiece plays, and the RTCP report (RFC 3550, RFC 3551, RFC 4733).
//!
//! The media actor (`media::actor`) owns the sockets and the clock and calls in with `now`:
//! [`MediaSession::push_microphone`] as the line delivers handset frames,
//! [`MediaSession::tick`] every 20 ms for the packets to send and the frame to play,
//! [`MediaSession::on_rtp`] and [`MediaSession::on_rtcp`] per datagram, and
//! [`MediaSession::rtcp_report`] every few seconds. Symmetric RTP (RFC 4961): once a packet
//! arrives, we send to where it came from, which gets through NATs the SDP does not know of.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialtone_media::mos::{CodecImpairment, G711_WITH_PLC};
use dialtone_media::rtcp::{self, RtcpPacket, SenderInfo};
use dialtone_media::{
    estimate_mos, AudioCodec, DtmfDigit, DtmfReceiver, DtmfSender, JitterBuffer, JitterConfig,
    PlayoutFrame, QualityInputs, ReceiveStats, RtpPacket, RtpSender, FLASH_EVENT, FRAME_SAMPLES,
};

/// A key press lasts 100 ms on the wire (RFC 4733 section 5 suggests at least 40 ms).
const DTMF_DURATION: u16 = 800;
/// Updates every 20 ms at 8 kHz.
const DTMF_STEP: u16 = 160;
/// -10 dBm0.
const DTMF_VOLUME: u8 = 10;
/// A hook flash lasts 400 ms on the wire: within the 300 to 700 ms a real switch hook flash
/// takes, which is what a PBX's flash detection expects.
const FLASH_DURATION: u16 = 3200;
/// Microphone frames kept before the oldest is dropped (100 ms of drift slack).
const MAX_MICROPHONE_FRAMES: usize = 5;

/// What the session was set up with.
pub struct SessionParams {
    /// The codec we send and receive.
    pub encoder: Box<dyn AudioCodec>,
    /// A second instance for decoding (stateful codecs keep separate state per direction).
    pub decoder: Box<dyn AudioCodec>,
    /// The peer's telephone-event payload type, if it supports RFC 4733.
    pub telephone_event: Option<u8>,
    /// Where the SDP says to send.
    pub remote: Option<SocketAddr>,
    /// Whether we send (false when held with sendonly/inactive from the peer).
    pub send: bool,
    /// Seed for SSRC, sequence and timestamp.
    pub seed: u64,
    /// Our CNAME for RTCP SDES.
    pub cname: String,
    /// The E-model impairment of the codec.
    pub impairment: CodecImpairment,
}

/// Counters since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaCounters {
    /// RTP packets sent.
    pub packets_sent: u64,
    /// RTP bytes sent (whole datagrams).
    pub bytes_sent: u64,
    /// RTP packets received.
    pub packets_received: u64,
    /// RTP bytes received.
    pub bytes_received: u64,
    /// Cumulative loss (RFC 3550 A.3).
    pub lost: i64,
    /// Interarrival jitter.
    pub jitter: Duration,
    /// Estimated MOS; 0 before anything was received.
    pub mos: f64,
}

/// The result of one 20 ms tick.
#[derive(Debug)]
pub struct Tick {
    /// Datagrams for the RTP socket.
    pub packets: Vec<Vec<u8>>,
    /// Where they go.
    pub destination: Option<SocketAddr>,
    /// What the earpiece plays.
    pub playout: PlayoutFrame,
}

/// One call's RTP session.
pub struct MediaSession {
    encoder: Box<dyn AudioCodec>,
    decoder: Box<dyn AudioCodec>,
    payload_type: u8,
    telephone_event: Option<u8>,
    remote: Option<SocketAddr>,
    send: bool,
    sender: RtpSender,
    jitter: JitterBuffer,
    stats: Option<ReceiveStats>,
    dtmf_in: DtmfReceiver,
    dtmf_out: Option<DtmfSender>,
    /// RFC 4733 events waiting to be sent, with their durations.
    events_waiting: VecDeque<(u8, u16)>,
    microphone: VecDeque<Vec<i16>>,
    counters: MediaCounters,
    cname: String,
    impairment: CodecImpairment,
    round_trip: Option<Duration>,
    sent_since_report: bool,
}

impl MediaSession {
    /// A session ready to send to `params.remote`.
    pub fn new(params: SessionParams) -> Self {
        let payload_type = params.encoder.payload_type();
        let step = params.encoder.timestamp_step();
        MediaSession {
            sender: RtpSender::with_seed(payload_type, step, params.seed),
            payload_type,
            encoder: params.encoder,
            decoder: params.decoder,
            telephone_event: params.telephone_event,
            remote: params.remote,
            send: params.send,
            jitter: JitterBuffer::new(JitterConfig::default()),
            stats: None,
            dtmf_in: DtmfReceiver::new(),
            dtmf_out: None,
            events_waiting: VecDeque::new(),
            microphone: VecDeque::new(),
            counters: MediaCounters::default(),
            cname: params.cname,
            impairment: params.impairment,
            round_trip: None,
            sent_since_report: false,
        }
    }

    /// A default G.711 impairment for the quality estimate.
    pub fn g711_impairment() -> CodecImpairment {
        G711_WITH_PLC
    }

    /// Changes direction or destination after a re-INVITE.
    pub fn update(&mut self, remote: Option<SocketAddr>, send: bool) {
        self.remote = remote.or(self.remote);
        self.send = send;
    }

    /// A 20 ms frame from the handset microphone.
    pub fn push_microphone(&mut self, frame: Vec<i16>) {
        if self.microphone.len() >= MAX_MICROPHONE_FRAMES {
            self.microphone.pop_front();
        }
        self.microphone.push_back(frame);
    }

    /// Queues a key press for RFC 4733; without telephone-event it is dropped (in-band DTMF
    /// through G.711 would work too, but the seed's ATA and every peer here negotiate 101).
    pub fn send_digit(&mut self, key: char) -> bool {
        match (self.telephone_event, DtmfDigit::from_char(key)) {
            (Some(_), Some(digit)) => {
                self.events_waiting
                    .push_back((digit.event_code(), DTMF_DURATION));
                true
            }
            _ => false,
        }
    }

    /// Queues a hook flash as RFC 4733 event 16 (`flash_mode = "rfc4733"`); dropped without
    /// telephone-event.
    pub fn send_flash(&mut self) -> bool {
        if self.telephone_event.is_none() {
            return false;
        }
        self.events_waiting.push_back((FLASH_EVENT, FLASH_DURATION));
        true
    }

    /// The 20 ms tick: one packet to send (audio, or a DTMF event in its place) and the
    /// frame for the earpiece.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let mut packets = Vec::new();
        let microphone = self
            .microphone
            .pop_front()
            .unwrap_or_else(|| vec![0; FRAME_SAMPLES]);
        if self.send && self.remote.is_some() {
            if self.dtmf_out.is_none() {
                if let Some((event, duration)) = self.events_waiting.pop_front() {
                    self.dtmf_out = Some(DtmfSender::for_event(
                        event,
                        self.sender.next_timestamp(),
                        duration,
                        DTMF_STEP,
                        DTMF_VOLUME,
                    ));
                }
            }
            let event = match (self.dtmf_out.as_mut(), self.telephone_event) {
                (Some(out), Some(pt)) => out.next_packet().map(|p| (pt, p)),
                _ => None,
            };
            if let Some((pt, packet)) = event {
                packets.push(self.sender.event_frame(pt, &packet));
            } else {
                self.dtmf_out = None;
                let mut payload = Vec::with_capacity(FRAME_SAMPLES);
                if self.encoder.encode(&microphone, &mut payload).is_ok() {
                    packets.push(self.sender.audio_frame(&payload));
                } else {
                    self.sender.silent_frame();
                }
            }
        }
        for packet in &packets {
            self.counters.packets_sent += 1;
            self.counters.bytes_sent += packet.len() as u64;
            self.sent_since_report = true;
        }
        let playout = self.jitter.pop_frame(now, self.decoder.as_mut());
        Tick {
            packets,
            destination: self.remote,
            playout,
        }
    }

    /// A datagram on the RTP socket. Returns a DTMF key the first time an RFC 4733 event is
    /// seen.
    pub fn on_rtp(&mut self, now: Instant, datagram: &[u8], source: SocketAddr) -> Option<char> {
        let packet = RtpPacket::parse(datagram).ok()?;
        // Symmetric RTP: answer where the peer really is.
        self.remote = Some(source);
        self.counters.packets_received += 1;
        self.counters.bytes_received += datagram.len() as u64;
        let clock = self.decoder.clock_rate();
        let stats = self
            .stats
            .get_or_insert_with(|| ReceiveStats::new(packet.ssrc, clock));
        stats.on_packet(packet.sequence, packet.timestamp, now);
        if Some(packet.payload_type) == self.telephone_event {
            return self
                .dtmf_in
                .on_packet(packet.timestamp, packet.payload)
                .ok()
                .flatten()
                .map(|d| d.as_char());
        }
        if packet.payload_type == self.payload_type {
            self.jitter.push(&packet, now);
        }
        None
    }

    /// A datagram on the RTCP socket: remembers the peer's SR for our LSR/DLSR, and the
    /// round-trip time from its report on us.
    pub fn on_rtcp(&mut self, now: Instant, wall_ntp: u64, datagram: &[u8]) {
        let Ok(packets) = rtcp::parse_compound(datagram) else {
            return;
        };
        let our_ssrc = self.sender.ssrc();
        for packet in packets {
            let reports = match packet {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    if let Some(stats) = self.stats.as_mut() {
                        stats.on_sender_report(info.ntp_timestamp, now);
                    }
                    reports
                }
                RtcpPacket::ReceiverReport { reports, .. } => reports,
                _ => continue,
            };
            if let Some(rtt) = reports
                .iter()
                .find(|r| r.ssrc == our_ssrc)
                .and_then(|r| r.round_trip_time(wall_ntp))
            {
                self.round_trip = Some(rtt);
            }
        }
    }

    /// The periodic compound report: SR when we sent since the last one, RR otherwise.
    pub fn rtcp_report(&mut self, now: Instant, wall_ntp: u64) -> Option<Vec<u8>> {
        let reports = self
            .stats
            .as_mut()
            .map(|s| vec![s.report_block(now)])
            .unwrap_or_default();
        let sender_info = std::mem::take(&mut self.sent_since_report).then(|| SenderInfo {
            ntp_timestamp: wall_ntp,
            rtp_timestamp: self.sender.next_timestamp(),
            packet_count: self.sender.packets_sent(),
            octet_count: self.sender.octets_sent(),
        });
        rtcp::report_compound(self.sender.ssrc(), sender_info, reports, &self.cname).ok()
    }

    /// Where RTP goes now (after symmetric-RTP learning).
    pub fn tick_destination(&self) -> Option<SocketAddr> {
        self.remote
    }

    /// The counters and quality so far.
    pub fn counters(&self) -> MediaCounters {
        let mut counters = self.counters;
        if let Some(stats) = &self.stats {
            counters.lost = stats.lost();
            counters.jitter = stats.jitter();
            let inputs = QualityInputs {
                loss_fraction: stats.loss_fraction(),
                jitter: stats.jitter(),
                one_way_delay: self.round_trip.map(|r| r / 2).unwrap_or_default()
                    + JitterConfig::default().target_delay,
            };
            counters.mos = estimate_mos(&inputs, &self.impairment);
        }
        counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::{tone_amplitude, FrameKind, Pcmu};

    fn session(seed: u64, remote: SocketAddr) -> MediaSession {
        MediaSession::new(SessionParams {
            encoder: Box::new(Pcmu),
            decoder: Box::new(Pcmu),
            telephone_event: Some(101),
            remote: Some(remote),
            send: true,
            seed,
            cname: "test@127.0.0.1".into(),
            impairment: G711_WITH_PLC,
        })
    }

    fn sine(hz: f64, offset: usize) -> Vec<i16> {
        (0..FRAME_SAMPLES)
            .map(|i| {
                let t = (offset + i) as f64 / 8000.0;
                ((std::f64::consts::TAU * hz * t).sin() * 8000.0) as i16
            })
            .collect()
    }

    #[test]
    fn two_sessions_carry_a_tone_from_one_microphone_to_the_other_earpiece() {
        let a_addr: SocketAddr = "127.0.0.1:16384".parse().expect("addr");
        let b_addr: SocketAddr = "127.0.0.1:16386".parse().expect("addr");
        let mut a = session(1, b_addr);
        let mut b = session(2, a_addr);
        let start = Instant::now();
        let mut heard = Vec::new();
        for n in 0..50u32 {
            let now = start + Duration::from_millis(20 * u64::from(n));
            a.push_microphone(sine(1000.0, n as usize * FRAME_SAMPLES));
            let sent = a.tick(now);
            assert_eq!(sent.destination, Some(b_addr));
            for packet in sent.packets {
                assert_eq!(b.on_rtp(now, &packet, a_addr), None);
            }
            let played = b.tick(now).playout;
            if played.kind == FrameKind::Decoded {
                heard.extend(played.samples);
            }
        }
        assert!(heard.len() >= 40 * FRAME_SAMPLES, "{} samples", heard.len());
        let at_1000 = tone_amplitude(&heard, 1000.0, 8000);
        let at_1500 = tone_amplitude(&heard, 1500.0, 8000);
        assert!(at_1000 > 10.0 * at_1500, "{at_1000} vs {at_1500}");
        let counters = b.counters();
        assert_eq!(counters.packets_received, 50);
        assert_eq!(counters.lost, 0);
        assert!(counters.mos > 4.0, "MOS {}", counters.mos);
    }

    #[test]
    fn a_key_press_goes_out_as_rfc_4733_events_and_is_reported_once() {
        let a_addr: SocketAddr = "127.0.0.1:16384".parse().expect("addr");
        let b_addr: SocketAddr = "127.0.0.1:16386".parse().expect("addr");
        let mut a = session(3, b_addr);
        let mut b = session(4, a_addr);
        assert!(a.send_digit('5'));
        let start = Instant::now();
        let mut keys = Vec::new();
        for n in 0..10u64 {
            let now = start + Duration::from_millis(20 * n);
            for packet in a.tick(now).packets {
                keys.extend(b.on_rtp(now, &packet, a_addr));
            }
        }
        assert_eq!(keys, ['5']);
    }

    #[test]
    fn a_hook_flash_goes_out_as_event_16_for_400_ms() {
        let b_addr: SocketAddr = "127.0.0.1:16386".parse().expect("addr");
        let mut a = session(3, b_addr);
        assert!(a.send_flash());
        let start = Instant::now();
        let mut events = Vec::new();
        for n in 0..25u64 {
            for packet in a.tick(start + Duration::from_millis(20 * n)).packets {
                let parsed = RtpPacket::parse(&packet).expect("RTP");
                if parsed.payload_type == 101 {
                    events.push(event_fields(parsed.payload));
                }
            }
        }
        assert!(events.iter().all(|(event, _, _)| *event == FLASH_EVENT));
        let last = events.last().expect("events sent");
        assert!(last.1, "the last one ends the event");
        assert_eq!(last.2, 3200, "400 ms at 8 kHz");
    }

    /// (event, end, duration) of a telephone-event payload (RFC 4733 section 2.3).
    fn event_fields(payload: &[u8]) -> (u8, bool, u16) {
        (
            payload[0],
            payload[1] & 0x80 != 0,
            u16::from_be_bytes([payload[2], payload[3]]),
        )
    }

    #[test]
    fn symmetric_rtp_answers_where_packets_come_from() {
        let sdp_addr: SocketAddr = "127.0.0.1:20000".parse().expect("addr");
        let real: SocketAddr = "127.0.0.1:30000".parse().expect("addr");
        let mut a = session(5, sdp_addr);
        let mut b = session(6, real);
        let now = Instant::now();
        for packet in b.tick(now).packets {
            a.on_rtp(now, &packet, real);
        }
        assert_eq!(a.tick(now).destination, Some(real));
    }

    #[test]
    fn the_report_is_a_sender_report_after_sending_and_a_receiver_report_otherwise() {
        let remote: SocketAddr = "127.0.0.1:16386".parse().expect("addr");
        let mut a = session(7, remote);
        let now = Instant::now();
        let _ = a.tick(now);
        let sr = a.rtcp_report(now, 0).expect("report");
        assert_eq!(sr[1], rtcp::RTCP_SR);
        let rr = a.rtcp_report(now, 0).expect("report");
        assert_eq!(rr[1], rtcp::RTCP_RR);
    }
}
