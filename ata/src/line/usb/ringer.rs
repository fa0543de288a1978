//! The ring a USB handset can give: it has no bell, only the speaker of its sound card, so
//! while the line rings on-hook `device.rs` mixes this signal into what it plays. A
//! [`Ringer`] makes 8 kHz samples in the North American ring cadence (2 s on, 4 s off, as
//! a bell would ring, GR-506), sounding 440 + 480 Hz: the same pair as ringback, so a
//! caller and the called handset hear one sound, and their 40 Hz beat warbles like a
//! ringer.
//!
//! Pure: driven by one flag per frame, no clock inside. A burst starts from the cadence's
//! beginning whenever ringing (re)starts, and ends at once, from the next frame, when the
//! flag drops, whether the call was answered (off-hook) or withdrawn.

use dialtone_media::tone::dbm0_to_amplitude;
use dialtone_media::PCM_SAMPLE_RATE;

/// Samples in one burst: 2 s at 8 kHz.
pub const ON_SAMPLES: u64 = 2 * PCM_SAMPLE_RATE as u64;
/// Samples of silence after a burst: 4 s at 8 kHz.
pub const OFF_SAMPLES: u64 = 4 * PCM_SAMPLE_RATE as u64;
/// Each component's level: -6 dBm0, 13 dB above ringback (-19). The handset lies on the
/// desk, not at the ear, when it rings; the two peaks together still stay below full scale.
pub const LEVEL_DBM0: f64 = -6.0;
/// The two components, in Hz.
const FREQUENCIES: [f64; 2] = [440.0, 480.0];

/// A ring generator; silent until told the line rings.
#[derive(Debug, Clone, Default)]
pub struct Ringer {
    /// Samples since the current ringing began; `None` while not ringing.
    position: Option<u64>,
    /// A distinctive ring's (on, off) bursts in milliseconds (`line::caller_id::ring_cadence`);
    /// empty: the ordinary ring.
    cadence: &'static [(u32, u32)],
}

impl Ringer {
    /// A silent ringer.
    pub fn new() -> Ringer {
        Ringer::default()
    }

    /// Rings the next ringing with this distinctive cadence ((on, off) milliseconds per
    /// burst, repeated); an empty one is the ordinary 2 s on, 4 s off.
    pub fn set_cadence(&mut self, cadence: &'static [(u32, u32)]) {
        self.cadence = cadence;
    }

    /// Whether the last frame was made while ringing.
    pub fn is_ringing(&self) -> bool {
        self.position.is_some()
    }

    /// The next `len` samples: the cadence while `ringing`, silence otherwise. A `false`
    /// resets the cadence, so the next ringing starts with a full burst.
    pub fn next_frame(&mut self, ringing: bool, len: usize) -> Vec<i16> {
        let mut frame = vec![0; len];
        self.mix_into(ringing, &mut frame);
        frame
    }

    /// Adds the next `frame.len()` samples of the ring to `frame` (saturating), or leaves
    /// it untouched when not `ringing`.
    pub fn mix_into(&mut self, ringing: bool, frame: &mut [i16]) {
        if !ringing {
            self.position = None;
            return;
        }
        let start = self.position.unwrap_or(0);
        let amplitude = dbm0_to_amplitude(LEVEL_DBM0);
        for (n, out) in (start..).zip(frame.iter_mut()) {
            let sample = match burst_position(self.cadence, n) {
                Some(in_burst) => tone_sample(in_burst, amplitude),
                None if self.cadence.is_empty() => ring_sample(n, amplitude),
                None => 0,
            };
            *out = out.saturating_add(sample);
        }
        self.position = Some(start + frame.len() as u64);
    }
}

/// Where sample `n` of a distinctive ring falls: samples into its burst, or `None` in a
/// pause (or for the ordinary ring, which `ring_sample` makes).
fn burst_position(cadence: &[(u32, u32)], n: u64) -> Option<u64> {
    let samples = |ms: u32| u64::from(ms) * u64::from(PCM_SAMPLE_RATE) / 1000;
    let cycle: u64 = cadence
        .iter()
        .map(|&(on, off)| samples(on) + samples(off))
        .sum();
    if cycle == 0 {
        return None;
    }
    let mut at = n % cycle;
    for &(on, off) in cadence {
        let (on, off) = (samples(on), samples(off));
        if at < on {
            return Some(at);
        }
        if at < on + off {
            return None;
        }
        at -= on + off;
    }
    None
}

fn tone_sample(n: u64, amplitude: f64) -> i16 {
    let t = n as f64 / f64::from(PCM_SAMPLE_RATE);
    let v: f64 = FREQUENCIES
        .iter()
        .map(|f| (std::f64::consts::TAU * f * t).sin())
        .sum();
    (v * amplitude).round().clamp(-32768.0, 32767.0) as i16
}

/// The ring's sample `n` samples into the ringing. Each burst starts at phase zero, and 2 s
/// hold whole periods of both components, so bursts begin and end at a zero crossing.
fn ring_sample(n: u64, amplitude: f64) -> i16 {
    let in_cycle = n % (ON_SAMPLES + OFF_SAMPLES);
    if in_cycle >= ON_SAMPLES {
        return 0;
    }
    let t = in_cycle as f64 / f64::from(PCM_SAMPLE_RATE);
    let v: f64 = FREQUENCIES
        .iter()
        .map(|f| (std::f64::consts::TAU * f * t).sin())
        .sum();
    (v * amplitude).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::{tone_amplitude, FRAME_SAMPLES};

    fn ring(ringer: &mut Ringer, frames: usize) -> Vec<i16> {
        (0..frames)
            .flat_map(|_| ringer.next_frame(true, FRAME_SAMPLES))
            .collect()
    }

    /// 50 ms: whole periods of 440, 480 and 1000 Hz alike, so the Goertzel bins of the
    /// two components (40 Hz apart) do not leak into each other; a 20 ms frame is too short.
    const BLOCK: usize = 400;

    fn has_ring(frame: &[i16]) -> bool {
        let expected = dbm0_to_amplitude(LEVEL_DBM0);
        FREQUENCIES.iter().all(|&f| {
            let a = tone_amplitude(frame, f, PCM_SAMPLE_RATE);
            a > 0.8 * expected && a < 1.2 * expected
        })
    }

    #[test]
    fn a_distinctive_ring_plays_its_own_bursts() {
        let mut ringer = Ringer::new();
        // Bellcore-dr2: 0.8 s on, 0.4 s off, 0.8 s on, 4 s off.
        ringer.set_cadence(&[(800, 400), (800, 4000)]);
        let pcm = ring(&mut ringer, 320);
        let on = |from_ms: usize| has_ring(&pcm[from_ms * 8..from_ms * 8 + BLOCK]);
        assert!(on(100), "first burst");
        assert!(!on(900), "the short pause");
        assert!(on(1300), "second burst");
        assert!(!on(2500), "the long pause");
        assert!(on(6100), "the next cycle");
    }

    #[test]
    fn the_cadence_is_exactly_16000_samples_on_then_32000_off() {
        assert_eq!((ON_SAMPLES, OFF_SAMPLES), (16_000, 32_000));
        let mut ringer = Ringer::new();
        // Two whole cycles and the start of a third, in 20 ms frames.
        let pcm = ring(&mut ringer, 2 * 300 + 10);
        for cycle in 0..2 {
            let base = cycle * 48_000;
            let on = &pcm[base..base + 16_000];
            let off = &pcm[base + 16_000..base + 48_000];
            assert!(
                on[15_990..].iter().any(|&s| s != 0),
                "the burst lasts to its last samples"
            );
            assert!(off.iter().all(|&s| s == 0), "silent between bursts");
        }
        assert!(has_ring(&pcm[96_000..96_000 + BLOCK]));
    }

    #[test]
    fn a_burst_carries_440_and_480_hz_and_nothing_else() {
        let mut ringer = Ringer::new();
        let pcm = ring(&mut ringer, 100);
        for (i, block) in pcm.chunks(BLOCK).enumerate() {
            assert!(has_ring(block), "block {i}");
            let stray = tone_amplitude(block, 1000.0, PCM_SAMPLE_RATE);
            assert!(stray < 50.0, "block {i}: {stray} at 1 kHz");
        }
        for (i, frame) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            assert!(frame.iter().any(|&s| s.unsigned_abs() > 1000), "frame {i}");
        }
        let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!(peak < 32_000, "no clipping, peak {peak}");
    }

    #[test]
    fn not_ringing_is_silent_and_leaves_other_audio_alone() {
        let mut ringer = Ringer::new();
        assert_eq!(
            ringer.next_frame(false, FRAME_SAMPLES),
            vec![0; FRAME_SAMPLES]
        );
        let mut frame = vec![123; FRAME_SAMPLES];
        ringer.mix_into(false, &mut frame);
        assert_eq!(frame, vec![123; FRAME_SAMPLES]);
        assert!(!ringer.is_ringing());
    }

    #[test]
    fn stopping_mid_burst_is_silent_from_the_next_frame() {
        let mut ringer = Ringer::new();
        let burst = ring(&mut ringer, 40);
        assert!(has_ring(&burst[burst.len() - BLOCK..]));
        assert!(ringer.is_ringing());
        for _ in 0..5 {
            assert_eq!(
                ringer.next_frame(false, FRAME_SAMPLES),
                vec![0; FRAME_SAMPLES]
            );
        }
        assert!(!ringer.is_ringing());
    }

    #[test]
    fn ringing_again_starts_with_a_full_burst() {
        let mut ringer = Ringer::new();
        let first = ring(&mut ringer, 150);
        ringer.next_frame(false, FRAME_SAMPLES);
        let again = ring(&mut ringer, 150);
        assert_eq!(first, again);
    }

    #[test]
    fn the_ring_mixes_onto_what_is_already_playing() {
        let mut ringer = Ringer::new();
        let alone = ringer.next_frame(true, FRAME_SAMPLES);
        let mut ringer = Ringer::new();
        let mut frame = vec![100; FRAME_SAMPLES];
        ringer.mix_into(true, &mut frame);
        let expected: Vec<i16> = alone.iter().map(|s| s.saturating_add(100)).collect();
        assert_eq!(frame, expected);
    }
}
