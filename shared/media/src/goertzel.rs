//! The Goertzel algorithm: the strength of one frequency in a block of
//! samples, far cheaper than an FFT when only a few frequencies matter. On top
//! of it, an in-band DTMF detector.
//!
//! Tests across the crate use [`tone_amplitude`] to prove that audio which went
//! through a codec or the jitter buffer still carries the tone it should; the
//! ATA can use [`DtmfDetector`] for peers that send DTMF in-band.

use std::f64::consts::TAU;

use crate::dtmf::{DtmfDigit, DTMF_COLUMNS, DTMF_ROWS};

/// Goertzel power at `freq` over `samples`: |X(k)|^2 of the DFT bin nearest
/// to `freq` (the target need not be a bin centre; the filter is tuned exactly).
pub fn goertzel_power(samples: &[i16], freq: f64, sample_rate: u32) -> f64 {
    let coeff = 2.0 * (TAU * freq / f64::from(sample_rate)).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// Estimated peak amplitude of a sine at `freq` in `samples`: a sine of
/// amplitude A gives about A when the block holds many whole periods.
pub fn tone_amplitude(samples: &[i16], freq: f64, sample_rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    2.0 * goertzel_power(samples, freq, sample_rate).sqrt() / samples.len() as f64
}

/// Samples per detection block: 205 at 8 kHz is the classic choice, giving
/// bins about 39 Hz apart, fine enough to separate the DTMF frequencies.
pub const DTMF_BLOCK: usize = 205;
/// Weakest component accepted, as a peak amplitude (about -35 dBm0).
const MIN_AMPLITUDE: f64 = 400.0;
/// Largest allowed level difference between row and column ("twist"), as an
/// amplitude ratio: 8 dB.
const MAX_TWIST: f64 = 2.51;
/// The strongest row (column) must beat the runner-up by this ratio (about 8 dB),
/// which rejects speech and chords.
const MIN_DOMINANCE: f64 = 2.5;
/// The two tones must carry at least this share of the block's energy.
const MIN_TONE_SHARE: f64 = 0.6;

/// The DTMF key in one block of 8 kHz samples, if it holds a clean one.
pub fn detect_dtmf_block(samples: &[i16], sample_rate: u32) -> Option<DtmfDigit> {
    if samples.is_empty() {
        return None;
    }
    let strongest = |freqs: &[f64; 4]| {
        let mut amps: Vec<(usize, f64)> = freqs
            .iter()
            .enumerate()
            .map(|(i, &f)| (i, tone_amplitude(samples, f, sample_rate)))
            .collect();
        amps.sort_by(|a, b| b.1.total_cmp(&a.1));
        (amps[0].0, amps[0].1, amps[1].1)
    };
    let (row, row_amp, row_next) = strongest(&DTMF_ROWS);
    let (col, col_amp, col_next) = strongest(&DTMF_COLUMNS);
    if row_amp < MIN_AMPLITUDE || col_amp < MIN_AMPLITUDE {
        return None;
    }
    if row_amp > col_amp * MAX_TWIST || col_amp > row_amp * MAX_TWIST {
        return None;
    }
    if row_amp < row_next * MIN_DOMINANCE || col_amp < col_next * MIN_DOMINANCE {
        return None;
    }
    // Mean power of a sine of amplitude A is A^2 / 2.
    let total: f64 =
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
    let tones = (row_amp * row_amp + col_amp * col_amp) / 2.0;
    if tones < MIN_TONE_SHARE * total {
        return None;
    }
    DtmfDigit::from_position(row, col)
}

/// Finds DTMF key presses in a stream of 8 kHz samples fed in any chunk size.
///
/// A key is reported once, after two consecutive blocks agree on it (about
/// 51 ms, inside the 40 ms minimum tone of ITU-T Q.24 plus margin), and not
/// again until a block without it has been seen.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    sample_rate: u32,
    block: Vec<i16>,
    candidate: Option<DtmfDigit>,
    reported: Option<DtmfDigit>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    /// A detector for 8 kHz audio.
    pub fn new() -> Self {
        DtmfDetector {
            sample_rate: 8000,
            block: Vec::with_capacity(DTMF_BLOCK),
            candidate: None,
            reported: None,
        }
    }

    /// Feeds samples; returns keys newly pressed within them.
    pub fn push(&mut self, samples: &[i16]) -> Vec<DtmfDigit> {
        let mut found = Vec::new();
        for &s in samples {
            self.block.push(s);
            if self.block.len() == DTMF_BLOCK {
                let seen = detect_dtmf_block(&self.block, self.sample_rate);
                self.block.clear();
                if seen.is_some() && seen == self.candidate && seen != self.reported {
                    found.extend(seen);
                    self.reported = seen;
                }
                if seen.is_none() {
                    self.reported = None;
                }
                self.candidate = seen;
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::{Tone, ToneGenerator};

    fn sine(freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| (amplitude * (TAU * freq * i as f64 / 8000.0).sin()) as i16)
            .collect()
    }

    #[test]
    fn amplitude_of_a_pure_sine_is_recovered_at_its_frequency_only() {
        let pcm = sine(1000.0, 8000.0, 800);
        assert!((tone_amplitude(&pcm, 1000.0, 8000) - 8000.0).abs() < 80.0);
        assert!(tone_amplitude(&pcm, 1200.0, 8000) < 80.0);
        assert!(tone_amplitude(&pcm, 500.0, 8000) < 80.0);
    }

    #[test]
    fn silence_and_empty_input_have_no_power() {
        assert_eq!(tone_amplitude(&[0; 160], 440.0, 8000), 0.0);
        assert_eq!(tone_amplitude(&[], 440.0, 8000), 0.0);
    }

    #[test]
    fn every_generated_key_is_detected_from_one_block() {
        for c in "0123456789*#ABCD".chars() {
            let d = DtmfDigit::from_char(c).unwrap();
            let pcm = ToneGenerator::new(Tone::Dtmf(d)).next_frame(DTMF_BLOCK);
            assert_eq!(detect_dtmf_block(&pcm, 8000), Some(d), "key {c}");
        }
    }

    #[test]
    fn dial_tone_and_a_single_dtmf_frequency_are_not_keys() {
        let dial = ToneGenerator::new(Tone::Dial).next_frame(DTMF_BLOCK);
        assert_eq!(detect_dtmf_block(&dial, 8000), None);
        let row_only = sine(770.0, 8000.0, DTMF_BLOCK);
        assert_eq!(detect_dtmf_block(&row_only, 8000), None);
    }

    #[test]
    fn detector_reports_a_held_key_once_and_a_second_press_again() {
        let five = DtmfDigit::from_char('5').unwrap();
        let mut det = DtmfDetector::new();
        let mut found = Vec::new();
        for _ in 0..2 {
            let mut g = ToneGenerator::new(Tone::Dtmf(five));
            for _ in 0..10 {
                found.extend(det.push(&g.next_frame(160)));
            }
            for _ in 0..5 {
                found.extend(det.push(&[0; 160]));
            }
        }
        assert_eq!(found, [five, five]);
    }
}
