//! Sample-rate conversion between the line's 8 kHz and the sound card's rate (44.1 or
//! 48 kHz, sometimes 16 kHz), streaming, one 20 ms frame or one card period at a time.
//!
//! A [`Resampler`] is a cubic (Catmull-Rom) interpolator with a windowed-sinc low-pass at the higher of
//! the two rates: after the interpolation when going up (it removes the images the
//! interpolation leaves around multiples of 8 kHz), before it when going down (it removes
//! everything the 8 kHz side cannot carry, which would otherwise alias into the call).
//! Telephone speech ends at 3.4 kHz, so the pass band ends at 3.6 kHz; nothing cleverer
//! is needed for a handset. Its ratio can be nudged by a small correction ([`Resampler::
//! set_correction`]), which is how `drift.rs` absorbs the difference between the RTP clock
//! and the card's crystal.
//!
//! [`downmix`] and [`upmix`] turn the card's interleaved frames into mono and back.

use std::f64::consts::PI;

/// Upper edge of the pass band: above telephone speech (3.4 kHz), below 4 kHz (Nyquist at
/// 8 kHz) so the transition band ends close to it.
const CUTOFF_HZ: f64 = 3600.0;

/// Filter length per kHz of the filtered rate: a Hamming window's transition band is about
/// 3.3 / N of the rate, so rate / 400 taps gives about 1.3 kHz, from 3.6 to about 4.9 kHz.
const TAP_DIVISOR: u32 = 400;

/// A streaming mono converter from one rate to another.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Input samples per output sample, before correction.
    step: f64,
    /// Output samples are made `correction` times as often as nominal (1.001 = 0.1 % more).
    correction: f64,
    /// The last three input samples (oldest first) and where the next output falls
    /// between the middle two, in input periods.
    history: [f32; 3],
    position: f64,
    filter: Option<Fir>,
}

impl Resampler {
    /// A converter from `from` Hz to `to` Hz. A zero rate is treated as equal rates.
    pub fn new(from: u32, to: u32) -> Resampler {
        let (from, to) = if from == 0 || to == 0 {
            (1, 1)
        } else {
            (from, to)
        };
        let filter = (from != to).then(|| Fir::low_pass(from.max(to), CUTOFF_HZ));
        Resampler {
            from,
            to,
            step: f64::from(from) / f64::from(to),
            correction: 1.0,
            history: [0.0; 3],
            position: 0.0,
            filter,
        }
    }

    /// The input rate.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// The output rate.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Makes `correction` times the nominal number of output samples (clamped to ±1 %).
    pub fn set_correction(&mut self, correction: f64) {
        self.correction = if correction.is_finite() {
            correction.clamp(0.99, 1.01)
        } else {
            1.0
        };
    }

    /// Converts `input`, appending the output samples to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let upsampling = self.to > self.from;
        let step = self.step / self.correction;
        for &sample in input {
            let x = match (&mut self.filter, upsampling) {
                (Some(filter), false) => filter.push(sample),
                _ => sample,
            };
            let [p0, p1, p2] = self.history;
            while self.position < 1.0 {
                let y = catmull_rom(p0, p1, p2, x, self.position as f32);
                out.push(match (&mut self.filter, upsampling) {
                    (Some(filter), true) => filter.push(y),
                    _ => y,
                });
                self.position += step;
            }
            self.position -= 1.0;
            self.history = [p1, p2, x];
        }
    }

    /// Converts 16-bit samples (the line's side) to the card's rate, as `f32` in ±1.
    pub fn process_i16(&mut self, input: &[i16], out: &mut Vec<f32>) {
        let scaled: Vec<f32> = input.iter().map(|&s| f32::from(s) / 32768.0).collect();
        self.process(&scaled, out);
    }
}

/// The Catmull-Rom cubic through four samples, at `t` between `p1` and `p2`: unlike a
/// straight line between two samples, it keeps 1 kHz at 8 kHz within 0.1 dB (a straight
/// line loses 0.45 dB there and 4 dB at 3 kHz).
fn catmull_rom(p0: f32, p1: f32, p2: f32, p3: f32, t: f32) -> f32 {
    p1 + 0.5
        * t
        * (p2 - p0 + t * (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3 + t * (3.0 * (p1 - p2) + p3 - p0)))
}

/// A sample in ±1 as 16-bit PCM, saturating.
pub fn to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Interleaved frames of `channels` samples to mono, averaging the channels (a handset's
/// card is mono or duplicates one microphone on both channels).
pub fn downmix(interleaved: &[f32], channels: usize) -> Vec<f32> {
    let channels = channels.max(1);
    interleaved
        .chunks(channels)
        .map(|frame| frame.iter().sum::<f32>() / frame.len() as f32)
        .collect()
}

/// Mono to interleaved frames: the same sample on every channel.
pub fn upmix(mono: &[f32], channels: usize, out: &mut [f32]) {
    for (frame, &sample) in out.chunks_mut(channels.max(1)).zip(mono) {
        frame.fill(sample);
    }
}

/// A Hamming-windowed sinc low-pass, run sample by sample.
#[derive(Debug, Clone)]
struct Fir {
    /// The taps, reversed, so the newest sample meets the first tap's mirror.
    taps: Vec<f32>,
    /// The history written twice, at `next` and `next + len`, so the last `len` samples
    /// are always one contiguous slice (no wrap-around in the hot loop).
    history: Vec<f32>,
    next: usize,
}

impl Fir {
    fn low_pass(rate: u32, cutoff: f64) -> Fir {
        let len = (rate / TAP_DIVISOR).max(15) | 1;
        let middle = f64::from(len - 1) / 2.0;
        let fc = cutoff / f64::from(rate);
        let mut taps: Vec<f64> = (0..len)
            .map(|i| {
                let n = f64::from(i) - middle;
                let sinc = if n == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * PI * fc * n).sin() / (PI * n)
                };
                let window = 0.54 - 0.46 * (2.0 * PI * f64::from(i) / f64::from(len - 1)).cos();
                sinc * window
            })
            .collect();
        // Unity gain at DC, so a tone in the pass band keeps its level.
        let sum: f64 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        let len = len as usize;
        Fir {
            taps: taps.into_iter().rev().map(|t| t as f32).collect(),
            history: vec![0.0; 2 * len],
            next: 0,
        }
    }

    fn push(&mut self, x: f32) -> f32 {
        let len = self.taps.len();
        self.history[self.next] = x;
        self.history[self.next + len] = x;
        self.next = (self.next + 1) % len;
        // Oldest first: history[next..next + len].
        let window = &self.history[self.next..self.next + len];
        window.iter().zip(&self.taps).map(|(h, t)| h * t).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::tone_amplitude;

    fn sine(hz: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<i16> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (amplitude * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()) as i16)
            .collect()
    }

    /// Resamples in 20 ms pieces, as the line does, to catch state lost between calls.
    fn run(resampler: &mut Resampler, input: &[i16]) -> Vec<i16> {
        let piece = (resampler.from_rate() / 50) as usize;
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            resampler.process_i16(chunk, &mut out);
        }
        out.into_iter().map(to_i16).collect()
    }

    /// Skips the filters' start-up and measures a whole number of 1 kHz periods.
    fn steady(samples: &[i16], rate: u32) -> &[i16] {
        let skip = (rate / 10) as usize;
        &samples[skip..skip + (rate / 2) as usize]
    }

    #[test]
    fn a_1_khz_tone_survives_8k_to_48k_and_back_with_its_frequency_and_level() {
        for rate in [48_000, 44_100] {
            let tone = sine(1000.0, 8000, 2.0, 10_000.0);
            let up = run(&mut Resampler::new(8000, rate), &tone);
            let expected = tone.len() as f64 * f64::from(rate) / 8000.0;
            assert!((up.len() as f64 - expected).abs() <= 2.0, "{}", up.len());
            let up_level = tone_amplitude(steady(&up, rate), 1000.0, rate);
            assert!((up_level - 10_000.0).abs() < 300.0, "{rate}: {up_level}");
            // Interpolation's first image (7 kHz) must be filtered out.
            assert!(tone_amplitude(steady(&up, rate), 7000.0, rate) < 100.0);

            let back = run(&mut Resampler::new(rate, 8000), &up);
            let level = tone_amplitude(steady(&back, 8000), 1000.0, 8000);
            assert!((level - 10_000.0).abs() < 300.0, "{rate}: {level}");
            for other in [900.0, 1100.0, 2000.0] {
                let leak = tone_amplitude(steady(&back, 8000), other, 8000);
                assert!(leak < 200.0, "{rate}: {leak} at {other} Hz");
            }
        }
    }

    #[test]
    fn what_8_khz_cannot_carry_is_filtered_not_folded_into_the_call() {
        // 6 kHz at 48 kHz would alias to 2 kHz at 8 kHz without the low-pass.
        let tone = sine(6000.0, 48_000, 1.0, 10_000.0);
        let down = run(&mut Resampler::new(48_000, 8000), &tone);
        let alias = tone_amplitude(steady(&down, 8000), 2000.0, 8000);
        assert!(alias < 100.0, "{alias}");
    }

    #[test]
    fn a_correction_changes_the_output_count_by_that_much() {
        let input = vec![0i16; 80_000];
        let mut resampler = Resampler::new(8000, 48_000);
        resampler.set_correction(1.001);
        let out = run(&mut resampler, &input);
        assert!((out.len() as i64 - 480_480).abs() <= 2, "{}", out.len());
    }

    #[test]
    fn stereo_frames_average_to_mono_and_mono_fills_every_channel() {
        assert_eq!(downmix(&[0.5, 0.25, -1.0, 0.0], 2), [0.375, -0.5]);
        let mut out = [0.0; 4];
        upmix(&[0.5, -0.5], 2, &mut out);
        assert_eq!(out, [0.5, 0.5, -0.5, -0.5]);
    }
}
