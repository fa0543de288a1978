//! The receive jitter buffer: holds RTP packets long enough to put them back
//! in order and smooth out network jitter, then plays one 20 ms frame each time
//! the audio device asks, concealing packets that never came.
//!
//! Packets are keyed by their extended sequence number, so reordering,
//! duplicates and wrap-around are handled by ordering alone. Playout starts
//! once the first packet has waited the target delay; when the buffer runs dry
//! (loss burst, or a sender's silence suppression) it re-buffers the same way,
//! which keeps talkspurts intact. Missing frames are concealed by the codec if
//! it can (Opus), otherwise by repeating the last frame and fading it out.
//!
//! Time is passed in: `push` takes the arrival instant, `pop_frame` takes now.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::codec::{AudioCodec, FRAME_DURATION, FRAME_SAMPLES};
use crate::rtp::RtpPacket;

/// Concealed frames before the repeat has faded to silence (80 ms): longer
/// repetition of one pitch period sounds robotic, ITU-T G.711 appendix I
/// fades over a similar span.
const FADE_FRAMES: u32 = 4;
/// A sequence jump this many frames (2 s) away from the playout point is a
/// new stream (sender restart), not loss or lateness.
const RESYNC_FRAMES: u64 = 100;
/// Pops without a late packet before an adaptive buffer shrinks by one frame (10 s).
const QUIET_POPS_BEFORE_SHRINK: u32 = 500;
/// Extended sequence numbers start here so that packets before the first one
/// (reordered) do not underflow.
const EXTENDED_BASE: u64 = 1 << 32;

/// How deep the buffer is and whether it adapts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Delay before playout starts, and the depth kept when fixed.
    pub target_delay: Duration,
    /// Adaptive buffers never go shallower than this.
    pub min_delay: Duration,
    /// The buffer never holds more than this; older frames are dropped to catch up.
    pub max_delay: Duration,
    /// Grow by a frame on each late packet, shrink after 10 s without one.
    pub adaptive: bool,
}

impl Default for JitterConfig {
    /// 60 ms fixed: three frames absorbs typical LAN and good-WAN jitter, and
    /// is what the ATA 186 itself uses as its default playout delay.
    fn default() -> Self {
        JitterConfig {
            target_delay: Duration::from_millis(60),
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            adaptive: false,
        }
    }
}

/// What a played frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Decoded from a received packet.
    Decoded,
    /// Made up for a missing packet (codec concealment or faded repeat).
    Concealed,
    /// Nothing to play: before the first packet, or after the fade ran out.
    Silence,
}

/// One 20 ms frame of 8 kHz PCM for the handset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayoutFrame {
    /// Where the samples came from.
    pub kind: FrameKind,
    /// The samples (160 for G.711 and Opus at 20 ms).
    pub samples: Vec<i16>,
}

/// Counters for metrics and the quality estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JitterStats {
    /// Packets accepted into the buffer.
    pub received: u64,
    /// Frames played from packets.
    pub decoded: u64,
    /// Frames concealed (missing, late or undecodable packet).
    pub concealed: u64,
    /// Packets that came after their playout time and were dropped.
    pub late: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Frames dropped because the buffer was over its maximum depth.
    pub overflow_dropped: u64,
    /// Payloads the codec could not decode.
    pub decode_errors: u64,
    /// Times the buffer started over for a new SSRC or a sequence jump.
    pub resets: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for the first packet to have aged `target` before playing.
    Buffering {
        since: Option<Instant>,
    },
    Playing,
}

/// A jitter buffer for one received stream.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    target_frames: u64,
    packets: BTreeMap<u64, Vec<u8>>,
    ssrc: Option<u32>,
    highest: Option<u64>,
    next_play: Option<u64>,
    state: State,
    played_mask: u64,
    last_frame: Vec<i16>,
    missing_run: u32,
    pending_stalls: u32,
    quiet_pops: u32,
    stats: JitterStats,
}

fn frames(d: Duration) -> u64 {
    (d.as_millis() / FRAME_DURATION.as_millis()).max(1) as u64
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterConfig) -> Self {
        JitterBuffer {
            config,
            target_frames: frames(config.target_delay),
            packets: BTreeMap::new(),
            ssrc: None,
            highest: None,
            next_play: None,
            state: State::Buffering { since: None },
            played_mask: 0,
            last_frame: Vec::new(),
            missing_run: 0,
            pending_stalls: 0,
            quiet_pops: 0,
            stats: JitterStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current target depth (changes only when adaptive).
    pub fn target_delay(&self) -> Duration {
        FRAME_DURATION * self.target_frames as u32
    }

    /// Packets waiting to be played.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True if no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    fn reset(&mut self) {
        self.packets.clear();
        self.highest = None;
        self.next_play = None;
        self.state = State::Buffering { since: None };
        self.played_mask = 0;
        self.pending_stalls = 0;
        self.stats.resets += 1;
    }

    fn extend(&self, sequence: u16) -> u64 {
        match self.highest {
            None => EXTENDED_BASE + u64::from(sequence),
            Some(h) => {
                // The nearest extended number with these low 16 bits.
                let delta = i64::from(sequence.wrapping_sub(h as u16) as i16);
                h.saturating_add_signed(delta)
            }
        }
    }

    /// Accepts a received packet of this stream's audio payload type (the
    /// actor routes telephone-events elsewhere). The payload is copied.
    pub fn push(&mut self, packet: &RtpPacket<'_>, arrival: Instant) {
        if self.ssrc.is_some_and(|s| s != packet.ssrc) {
            self.reset();
        }
        self.ssrc = Some(packet.ssrc);
        let mut ext = self.extend(packet.sequence);
        if let Some(next) = self.next_play {
            if ext.abs_diff(next) > RESYNC_FRAMES {
                self.reset();
                ext = self.extend(packet.sequence);
            } else if ext < next {
                self.on_too_late(next - 1 - ext);
                return;
            }
        }
        if self.packets.contains_key(&ext) {
            self.stats.duplicates += 1;
            return;
        }
        self.packets.insert(ext, packet.payload.to_vec());
        self.stats.received += 1;
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        if let State::Buffering {
            since: since @ None,
        } = &mut self.state
        {
            *since = Some(arrival);
        }
    }

    fn on_too_late(&mut self, age: u64) {
        let was_played = age < 64 && (self.played_mask >> age) & 1 == 1;
        if was_played {
            self.stats.duplicates += 1;
            return;
        }
        self.stats.late += 1;
        self.quiet_pops = 0;
        if self.config.adaptive && self.target_frames < frames(self.config.max_delay) {
            // Grow by one frame: play one concealment frame without advancing.
            self.target_frames += 1;
            self.pending_stalls += 1;
        }
    }

    /// The frame to play now; call every 20 ms. `codec` decodes the payloads
    /// (and conceals, if it can).
    pub fn pop_frame(&mut self, now: Instant, codec: &mut dyn AudioCodec) -> PlayoutFrame {
        if let State::Buffering { since } = self.state {
            let ready =
                since.is_some_and(|s| now.saturating_duration_since(s) >= self.target_delay());
            if !ready {
                return self.conceal(codec);
            }
            self.state = State::Playing;
            // Skip any gap left by the underrun; that time was concealed already.
            self.next_play = self.packets.keys().next().copied();
        }
        self.adapt();
        if self.pending_stalls > 0 {
            self.pending_stalls -= 1;
            return self.conceal(codec);
        }
        self.drop_overflow();
        let Some(next) = self.next_play else {
            return self.conceal(codec);
        };
        if self.packets.is_empty() {
            // Dry: the sender paused or a burst was lost. Re-buffer so the next
            // talkspurt again gets the full target depth.
            self.state = State::Buffering { since: None };
            return self.conceal(codec);
        }
        let frame = match self.packets.remove(&next) {
            Some(payload) => self.decode(&payload, codec),
            None => None,
        };
        self.advance(frame.is_some());
        match frame {
            Some(f) => f,
            None => self.conceal(codec),
        }
    }

    fn advance(&mut self, played: bool) {
        self.played_mask = (self.played_mask << 1) | u64::from(played);
        self.next_play = self.next_play.map(|n| n + 1);
    }

    fn adapt(&mut self) {
        if !self.config.adaptive {
            return;
        }
        self.quiet_pops += 1;
        if self.quiet_pops >= QUIET_POPS_BEFORE_SHRINK
            && self.target_frames > frames(self.config.min_delay)
        {
            self.quiet_pops = 0;
            self.target_frames -= 1;
            // Give the frame back now by skipping the oldest one if it is there.
            if self.depth() > self.target_frames {
                self.skip_one();
            }
        }
    }

    fn depth(&self) -> u64 {
        match (self.next_play, self.highest) {
            (Some(n), Some(h)) if h >= n => h - n + 1,
            _ => 0,
        }
    }

    fn skip_one(&mut self) {
        if let Some(n) = self.next_play {
            if self.packets.remove(&n).is_some() {
                self.stats.overflow_dropped += 1;
            }
            self.advance(false);
        }
    }

    fn drop_overflow(&mut self) {
        let max = frames(self.config.max_delay);
        while self.depth() > max {
            self.skip_one();
        }
    }

    fn decode(&mut self, payload: &[u8], codec: &mut dyn AudioCodec) -> Option<PlayoutFrame> {
        let mut samples = Vec::with_capacity(FRAME_SAMPLES);
        if codec.decode(payload, &mut samples).is_err() || samples.is_empty() {
            self.stats.decode_errors += 1;
            return None;
        }
        self.stats.decoded += 1;
        self.missing_run = 0;
        self.last_frame.clone_from(&samples);
        Some(PlayoutFrame {
            kind: FrameKind::Decoded,
            samples,
        })
    }

    fn conceal(&mut self, codec: &mut dyn AudioCodec) -> PlayoutFrame {
        self.missing_run = self.missing_run.saturating_add(1);
        if self.last_frame.is_empty() || self.missing_run > FADE_FRAMES {
            return PlayoutFrame {
                kind: FrameKind::Silence,
                samples: vec![0; FRAME_SAMPLES],
            };
        }
        self.stats.concealed += 1;
        let mut samples = Vec::with_capacity(FRAME_SAMPLES);
        if !codec.conceal(&mut samples) {
            // Gain ramps linearly across the frame from where the previous
            // concealed frame ended, so there is no step at the boundary.
            let fade = FADE_FRAMES as f32;
            let start = 1.0 - (self.missing_run - 1) as f32 / fade;
            let end = 1.0 - self.missing_run as f32 / fade;
            let n = self.last_frame.len() as f32;
            samples.extend(self.last_frame.iter().enumerate().map(|(i, &s)| {
                let gain = start + (end - start) * (i as f32 + 1.0) / n;
                (f32::from(s) * gain) as i16
            }));
        }
        PlayoutFrame {
            kind: FrameKind::Concealed,
            samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Pcmu;
    use crate::g711::linear_to_ulaw;
    use crate::rtp::RtpHeader;

    const STEP: Duration = FRAME_DURATION;

    /// A packet whose 160 samples all decode to one level that names it.
    fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
        let level = 1000 + i16::from(seq as u8) * 100;
        RtpHeader {
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc,
            ..RtpHeader::default()
        }
        .build(&[linear_to_ulaw(level); FRAME_SAMPLES], 0)
        .unwrap()
    }

    fn push(jb: &mut JitterBuffer, seq: u16, at: Instant) {
        jb.push(&RtpPacket::parse(&packet(seq, 1)).unwrap(), at);
    }

    /// The approximate level a decoded frame carries, to tell frames apart.
    fn level(frame: &PlayoutFrame) -> i16 {
        frame.samples[0]
    }

    fn expected_level(seq: u16) -> i16 {
        let mut out = Vec::new();
        Pcmu.decode(
            &[linear_to_ulaw(1000 + i16::from(seq as u8) * 100)],
            &mut out,
        )
        .unwrap();
        out[0]
    }

    #[test]
    fn nothing_plays_until_the_first_packet_has_waited_the_target_delay() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        assert_eq!(jb.pop_frame(t0, &mut Pcmu).kind, FrameKind::Silence);
        push(&mut jb, 10, t0);
        assert_eq!(
            jb.pop_frame(t0 + Duration::from_millis(40), &mut Pcmu).kind,
            FrameKind::Silence
        );
        let f = jb.pop_frame(t0 + Duration::from_millis(60), &mut Pcmu);
        assert_eq!(
            (f.kind, level(&f)),
            (FrameKind::Decoded, expected_level(10))
        );
    }

    #[test]
    fn reordered_packets_play_in_sequence_order() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for (i, seq) in [100u16, 102, 101, 104, 103].into_iter().enumerate() {
            push(&mut jb, seq, t0 + STEP * i as u32 / 4);
        }
        let played: Vec<i16> = (0..5)
            .map(|i| level(&jb.pop_frame(t0 + STEP * (3 + i), &mut Pcmu)))
            .collect();
        let expected: Vec<i16> = (100..105).map(expected_level).collect();
        assert_eq!(played, expected);
    }

    #[test]
    fn a_missing_packet_is_concealed_by_a_fading_repeat_of_the_last_frame() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for seq in [1u16, 2, 4, 5] {
            push(&mut jb, seq, t0);
        }
        let frames: Vec<PlayoutFrame> = (0..4)
            .map(|i| jb.pop_frame(t0 + STEP * (3 + i), &mut Pcmu))
            .collect();
        let kinds: Vec<FrameKind> = frames.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FrameKind::Decoded,
                FrameKind::Decoded,
                FrameKind::Concealed,
                FrameKind::Decoded
            ]
        );
        let concealed = &frames[2].samples;
        let last = i32::from(expected_level(2));
        assert_eq!(concealed.len(), FRAME_SAMPLES);
        // Starts near the last frame's level and ends at three quarters of it.
        assert!(i32::from(concealed[0]) > last * 99 / 100);
        assert!((i32::from(concealed[159]) - last * 3 / 4).abs() <= 2);
        assert_eq!(level(&frames[3]), expected_level(4));
        assert_eq!(jb.stats().concealed, 1);
    }

    #[test]
    fn concealment_fades_to_silence_after_four_frames() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        push(&mut jb, 1, t0);
        assert_eq!(
            jb.pop_frame(t0 + STEP * 3, &mut Pcmu).kind,
            FrameKind::Decoded
        );
        let kinds: Vec<FrameKind> = (4..10)
            .map(|i| jb.pop_frame(t0 + STEP * i, &mut Pcmu).kind)
            .collect();
        assert_eq!(&kinds[..4], &[FrameKind::Concealed; 4]);
        assert_eq!(&kinds[4..], &[FrameKind::Silence; 2]);
        let before_silence = jb.pop_frame(t0 + STEP * 10, &mut Pcmu);
        assert!(before_silence.samples.iter().all(|&s| s == 0));
    }

    #[test]
    fn duplicates_are_played_once_and_counted() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for seq in [1u16, 1, 2, 3] {
            push(&mut jb, seq, t0);
        }
        assert_eq!(
            jb.pop_frame(t0 + STEP * 3, &mut Pcmu).kind,
            FrameKind::Decoded
        );
        push(&mut jb, 1, t0 + STEP * 3);
        let levels: Vec<i16> = (4..6)
            .map(|i| level(&jb.pop_frame(t0 + STEP * i, &mut Pcmu)))
            .collect();
        assert_eq!(levels, [expected_level(2), expected_level(3)]);
        assert_eq!(jb.stats().duplicates, 2);
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn a_packet_after_its_playout_time_is_dropped_and_counted_late() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for seq in [1u16, 3, 4] {
            push(&mut jb, seq, t0);
        }
        jb.pop_frame(t0 + STEP * 3, &mut Pcmu);
        assert_eq!(
            jb.pop_frame(t0 + STEP * 4, &mut Pcmu).kind,
            FrameKind::Concealed
        );
        push(&mut jb, 2, t0 + STEP * 4);
        assert_eq!(jb.stats().late, 1);
        assert_eq!(
            level(&jb.pop_frame(t0 + STEP * 5, &mut Pcmu)),
            expected_level(3)
        );
    }

    #[test]
    fn playout_continues_across_sequence_wrap_around() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        let seqs: Vec<u16> = (65_533..=65_535).chain(0..3).collect();
        for (i, &seq) in seqs.iter().enumerate() {
            push(&mut jb, seq, t0 + STEP * i as u32);
        }
        let played: Vec<i16> = (0..6)
            .map(|i| level(&jb.pop_frame(t0 + STEP * (3 + i), &mut Pcmu)))
            .collect();
        let expected: Vec<i16> = seqs.iter().map(|&s| expected_level(s)).collect();
        assert_eq!(played, expected);
    }

    #[test]
    fn after_running_dry_the_buffer_waits_the_target_delay_again() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        push(&mut jb, 1, t0);
        assert_eq!(
            jb.pop_frame(t0 + STEP * 3, &mut Pcmu).kind,
            FrameKind::Decoded
        );
        // Silence suppression: the sender pauses, then resumes with seq 2.
        for i in 4..20 {
            jb.pop_frame(t0 + STEP * i, &mut Pcmu);
        }
        let resume = t0 + STEP * 20;
        push(&mut jb, 2, resume);
        assert_ne!(
            jb.pop_frame(resume + STEP, &mut Pcmu).kind,
            FrameKind::Decoded
        );
        let f = jb.pop_frame(resume + STEP * 3, &mut Pcmu);
        assert_eq!((f.kind, level(&f)), (FrameKind::Decoded, expected_level(2)));
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn a_new_ssrc_starts_the_buffer_over() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        push(&mut jb, 1, t0);
        jb.pop_frame(t0 + STEP * 3, &mut Pcmu);
        jb.push(
            &RtpPacket::parse(&packet(40_000, 2)).unwrap(),
            t0 + STEP * 4,
        );
        assert_eq!(jb.stats().resets, 1);
        let f = jb.pop_frame(t0 + STEP * 7, &mut Pcmu);
        assert_eq!(
            (f.kind, level(&f)),
            (FrameKind::Decoded, expected_level(40_000))
        );
    }

    #[test]
    fn a_burst_beyond_the_maximum_depth_is_trimmed_to_catch_up() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        for seq in 0..30u16 {
            push(&mut jb, seq, t0);
        }
        let f = jb.pop_frame(t0 + STEP * 3, &mut Pcmu);
        // Max 200 ms = 10 frames: the 20 oldest are dropped, 20..29 remain.
        assert_eq!(level(&f), expected_level(20));
        assert_eq!(jb.stats().overflow_dropped, 20);
    }

    #[test]
    fn an_adaptive_buffer_grows_on_late_packets_and_shrinks_when_quiet() {
        let config = JitterConfig {
            adaptive: true,
            ..JitterConfig::default()
        };
        let mut jb = JitterBuffer::new(config);
        let t0 = Instant::now();
        for seq in [1u16, 3, 4] {
            push(&mut jb, seq, t0);
        }
        jb.pop_frame(t0 + STEP * 3, &mut Pcmu);
        jb.pop_frame(t0 + STEP * 4, &mut Pcmu);
        push(&mut jb, 2, t0 + STEP * 4);
        assert_eq!(jb.target_delay(), Duration::from_millis(80));
        // The growth is played out as one stall frame before seq 3.
        assert_eq!(
            jb.pop_frame(t0 + STEP * 5, &mut Pcmu).kind,
            FrameKind::Concealed
        );
        assert_eq!(
            level(&jb.pop_frame(t0 + STEP * 6, &mut Pcmu)),
            expected_level(3)
        );
        for i in 0..600u32 {
            push(&mut jb, 5 + i as u16, t0 + STEP * (6 + i));
            jb.pop_frame(t0 + STEP * (7 + i), &mut Pcmu);
        }
        assert_eq!(jb.target_delay(), Duration::from_millis(60));
    }
}
