//! The conference mixer for three-way calling: the line mixes its calls'
//! audio locally, and each party hears every other party but not itself.
//!
//! Party 0 is the handset microphone and the others are each remote call's
//! decoded 20 ms frame; what comes out for party 0 goes to the earpiece, what
//! comes out for party `i` is encoded and sent on call `i`. Pure and sans-IO:
//! the line's actor feeds one frame per party every 20 ms.
//!
//! The sum of all frames is taken once in `i32` and each party's own frame is
//! subtracted from that unclamped total, so a mix of n parties costs 2n passes
//! instead of n²; only the result is clamped to `i16` (saturating, never
//! wrapping, since a wrap turns a loud peak into a full-scale click).

use crate::codec::FRAME_SAMPLES;

/// Mixes one frame per party into "everyone but me" frames, reusing its
/// buffers from one 20 ms tick to the next.
#[derive(Debug, Default, Clone)]
pub struct ConferenceMixer {
    total: Vec<i32>,
    outputs: Vec<Vec<i16>>,
}

impl ConferenceMixer {
    /// A mixer with no buffers yet; the first [`mix`](Self::mix) sizes them.
    pub fn new() -> Self {
        Self::default()
    }

    /// For each party `i` of `frames`, the saturating sum of every other
    /// party's frame, in the same order as `frames`.
    ///
    /// A missing frame is an empty slice and counts as silence; a frame
    /// shorter than the others is padded with silence. Every output is as long
    /// as the longest frame, and at least [`FRAME_SAMPLES`] (160, 20 ms).
    pub fn mix(&mut self, frames: &[&[i16]]) -> &[Vec<i16>] {
        let len = frames
            .iter()
            .map(|f| f.len())
            .max()
            .unwrap_or(0)
            .max(FRAME_SAMPLES);
        self.total.clear();
        self.total.resize(len, 0);
        for frame in frames {
            for (sum, &s) in self.total.iter_mut().zip(frame.iter()) {
                *sum += i32::from(s);
            }
        }
        self.outputs.resize_with(frames.len(), Vec::new);
        for (out, frame) in self.outputs.iter_mut().zip(frames) {
            out.clear();
            out.extend(self.total.iter().enumerate().map(|(n, &sum)| {
                let own = frame.get(n).map_or(0, |&s| i32::from(s));
                clamp_to_i16(sum - own)
            }));
        }
        &self.outputs[..frames.len()]
    }
}

/// One-shot form of [`ConferenceMixer::mix`], for callers that do not keep a
/// mixer between frames.
pub fn mix_for_each(frames: &[&[i16]]) -> Vec<Vec<i16>> {
    ConferenceMixer::new().mix(frames).to_vec()
}

fn clamp_to_i16(x: i32) -> i16 {
    // The clamp makes the cast lossless.
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_amplitude;
    use std::f64::consts::TAU;

    const RATE: u32 = 8000;

    fn sine(freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (amplitude * (TAU * freq * n as f64 / f64::from(RATE)).sin()).round() as i16)
            .collect()
    }

    fn amplitudes(frame: &[i16]) -> [f64; 3] {
        [440.0, 1000.0, 1600.0].map(|f| tone_amplitude(frame, f, RATE))
    }

    #[test]
    fn each_of_three_parties_hears_the_other_two_and_not_itself() {
        // Five 20 ms ticks of continuous tones: 100 ms holds whole periods of
        // all three, so the Goertzel filter sees no leakage between them.
        let ticks = 5;
        let tones = [440.0, 1000.0, 1600.0].map(|f| sine(f, 5000.0, ticks * FRAME_SAMPLES));
        let mut mixer = ConferenceMixer::new();
        let mut heard = vec![Vec::new(); 3];
        for tick in 0..ticks {
            let span = tick * FRAME_SAMPLES..(tick + 1) * FRAME_SAMPLES;
            let frames: Vec<&[i16]> = tones.iter().map(|t| &t[span.clone()]).collect();
            let out = mixer.mix(&frames);
            assert_eq!(out.len(), 3);
            for (party, mixed) in out.iter().enumerate() {
                assert_eq!(mixed.len(), FRAME_SAMPLES);
                heard[party].extend_from_slice(mixed);
            }
        }
        for (party, mixed) in heard.iter().enumerate() {
            let amps = amplitudes(mixed);
            for (other, &amp) in amps.iter().enumerate() {
                if other == party {
                    assert!(amp < 50.0, "party {party} hears itself: {amps:?}");
                } else {
                    assert!(amp > 4500.0, "party {party} misses {other}: {amps:?}");
                }
            }
        }
    }

    #[test]
    fn two_parties_each_get_the_other_unchanged() {
        let a = sine(440.0, 12000.0, FRAME_SAMPLES);
        let b = sine(1000.0, 9000.0, FRAME_SAMPLES);
        let out = mix_for_each(&[&a, &b]);
        assert_eq!(out, vec![b, a]);
    }

    #[test]
    fn a_loud_sum_saturates_instead_of_wrapping() {
        let loud = vec![30_000i16; FRAME_SAMPLES];
        let quiet_negative = vec![-30_000i16; FRAME_SAMPLES];
        let out = mix_for_each(&[&loud, &loud, &loud]);
        assert!(out.iter().all(|f| f.iter().all(|&s| s == i16::MAX)));
        let out = mix_for_each(&[&quiet_negative, &quiet_negative, &quiet_negative]);
        assert!(out.iter().all(|f| f.iter().all(|&s| s == i16::MIN)));
    }

    #[test]
    fn subtraction_uses_the_unclamped_total() {
        // The total of all three is 70 000, beyond i16; party 2 (the -20 000)
        // must still hear exactly 30 000 + 30 000 clamped, and party 0 must
        // hear 30 000 - 20 000 = 10 000, not a clamped total minus its own.
        let frames: [&[i16]; 3] = [&[30_000], &[30_000], &[-20_000]];
        let out = mix_for_each(&frames);
        assert_eq!(out[0][0], 10_000);
        assert_eq!(out[1][0], 10_000);
        assert_eq!(out[2][0], i16::MAX);
    }

    #[test]
    fn a_missing_or_short_frame_counts_as_silence() {
        let a = sine(440.0, 8000.0, FRAME_SAMPLES);
        let short = [1000i16; 40];
        let out = mix_for_each(&[&a, &[], &short]);
        assert!(out.iter().all(|f| f.len() == FRAME_SAMPLES));
        // The silent party hears a plus the short frame, padded.
        assert_eq!(
            out[1][..40],
            a[..40].iter().map(|s| s + 1000).collect::<Vec<_>>()[..]
        );
        assert_eq!(out[1][40..], a[40..]);
        // The short party hears only a; the handset hears the short frame then silence.
        assert_eq!(out[2], a);
        assert_eq!(out[0][..40], short[..]);
        assert!(out[0][40..].iter().all(|&s| s == 0));
    }

    #[test]
    fn outputs_are_as_long_as_the_longest_frame() {
        let long = vec![7i16; 2 * FRAME_SAMPLES];
        let out = mix_for_each(&[&long, &[1, 2, 3]]);
        assert_eq!(out[0].len(), 2 * FRAME_SAMPLES);
        assert_eq!(out[1], long);
        assert_eq!(&out[0][..3], &[1, 2, 3]);
    }

    #[test]
    fn a_reused_mixer_follows_the_number_of_parties() {
        let mut mixer = ConferenceMixer::new();
        let a = vec![100i16; FRAME_SAMPLES];
        let b = vec![200i16; FRAME_SAMPLES];
        let c = vec![300i16; FRAME_SAMPLES];
        assert_eq!(mixer.mix(&[&a, &b, &c]).len(), 3);
        let two = mixer.mix(&[&a, &b]);
        assert_eq!(two.len(), 2);
        assert_eq!(two[0], b);
        assert_eq!(two[1], a);
        assert!(mixer.mix(&[]).is_empty());
    }
}
