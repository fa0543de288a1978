//! `dialtone-g729`: G.729 Annex A for the Dialtone ATA, through the system's libbcg729
//! (Debian: libbcg729-dev).
//!
//! The one place in the workspace with `unsafe` for a codec: `dialtone-media` forbids unsafe
//! code, so its `G729Codec` (feature `g729`) speaks to the library only through the safe
//! [`Encoder`] and [`Decoder`] here. `ffi` declares the six C functions by hand; `encoder` and
//! `decoder` own one library channel each, free it on drop, and say at every call why it is
//! sound. G.729 works on 10 ms frames: 80 samples of 8 kHz PCM to 10 bytes and back.
//! This crate knows nothing of RTP (two frames per 20 ms packet is `dialtone-media`'s
//! business).

mod decoder;
mod encoder;
mod ffi;

use thiserror::Error;

pub use decoder::Decoder;
pub use encoder::Encoder;

/// Samples in one G.729 frame: 10 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 80;
/// Bytes in one G.729 voice frame (80 bits).
pub const FRAME_BYTES: usize = 10;

/// What can go wrong in `dialtone-g729`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum G729Error {
    /// libbcg729 could not allocate a channel context.
    #[error("libbcg729 could not allocate a G.729 {what} channel")]
    ChannelAllocation {
        /// "encoder" or "decoder".
        what: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::TAU;

    const RATE: f64 = 8000.0;

    fn tone(freq: f64, amplitude: f64, frames: usize) -> Vec<[i16; FRAME_SAMPLES]> {
        (0..frames)
            .map(|f| {
                std::array::from_fn(|i| {
                    let n = (f * FRAME_SAMPLES + i) as f64;
                    (amplitude * (TAU * freq * n / RATE).sin()).round() as i16
                })
            })
            .collect()
    }

    /// Amplitude of the `freq` component of `pcm` (one DFT bin, by projection).
    fn amplitude_at(pcm: &[i16], freq: f64) -> f64 {
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &s) in pcm.iter().enumerate() {
            let phase = TAU * freq * n as f64 / RATE;
            re += f64::from(s) * phase.cos();
            im += f64::from(s) * phase.sin();
        }
        2.0 * (re * re + im * im).sqrt() / pcm.len() as f64
    }

    fn through(frames: &[[i16; FRAME_SAMPLES]]) -> Vec<i16> {
        let mut encoder = Encoder::new().unwrap();
        let mut decoder = Decoder::new().unwrap();
        frames
            .iter()
            .flat_map(|pcm| decoder.decode(&encoder.encode(pcm)))
            .collect()
    }

    #[test]
    fn a_1000_hz_tone_survives_encoding_and_decoding() {
        // 400 ms; the first 200 ms let the codec's predictors settle.
        let out = through(&tone(1000.0, 8000.0, 40));
        let settled = &out[out.len() / 2..];
        let wanted = amplitude_at(settled, 1000.0);
        let other = amplitude_at(settled, 2200.0);
        assert!(wanted > 4000.0, "1000 Hz at {wanted}");
        assert!(
            other < wanted / 20.0,
            "2200 Hz at {other}, 1000 Hz at {wanted}"
        );
    }

    #[test]
    fn silence_stays_quiet() {
        let out = through(&vec![[0; FRAME_SAMPLES]; 20]);
        let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!(peak < 100, "peak {peak}");
    }

    #[test]
    fn two_channels_fed_alike_encode_alike() {
        let frames = tone(440.0, 6000.0, 5);
        let (mut a, mut b) = (Encoder::new().unwrap(), Encoder::new().unwrap());
        for pcm in &frames {
            assert_eq!(a.encode(pcm), b.encode(pcm));
        }
    }

    #[test]
    fn concealment_carries_the_tone_over_a_lost_frame() {
        let frames = tone(1000.0, 8000.0, 30);
        let mut encoder = Encoder::new().unwrap();
        let mut decoder = Decoder::new().unwrap();
        for pcm in &frames {
            decoder.decode(&encoder.encode(pcm));
        }
        let concealed = decoder.conceal();
        assert!(amplitude_at(&concealed, 1000.0) > 2000.0);
    }

    #[test]
    fn codec_channels_can_move_between_threads() {
        fn is_send<T: Send>() {}
        is_send::<Encoder>();
        is_send::<Decoder>();
    }
}
