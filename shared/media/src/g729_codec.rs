//! G.729 Annex A (RFC 3551 section 4.5.6) for the `g729` feature, through the safe encoder
//! and decoder of `dialtone-g729` (which binds libbcg729; this crate stays free of unsafe).
//!
//! Payload type 18, clock 8000. A 20 ms packet carries two 10-byte frames, each 10 ms of the
//! handset's 8 kHz PCM, so no resampling. We offer `annexb=no` (RFC 4856: Annex B is assumed
//! unless refused) and send no comfort noise; a peer that sends an Annex B SID frame anyway
//! (2 bytes, last in its packet) gets silence for it: the talkspurt has ended, and silence is
//! what a refused Annex B should sound like.

use dialtone_g729::{Decoder, Encoder, G729Error, FRAME_BYTES, FRAME_SAMPLES as G729_SAMPLES};

use crate::codec::{AudioCodec, FRAME_SAMPLES, PCM_SAMPLE_RATE};
use crate::error::MediaError;

/// Static payload type of G.729 (RFC 3551 table 4).
pub const G729_PAYLOAD_TYPE: u8 = 18;
/// Bytes of an Annex B SID (comfort noise) frame.
const SID_BYTES: usize = 2;

fn codec_error(e: G729Error) -> MediaError {
    MediaError::Codec {
        codec: "G729",
        detail: e.to_string(),
    }
}

/// G.729 on static payload type 18: one encoder and one decoder channel.
#[derive(Debug)]
pub struct G729Codec {
    encoder: Encoder,
    decoder: Decoder,
}

impl G729Codec {
    /// A codec with fresh channels (each stream direction keeps its own state).
    pub fn new() -> Result<Self, MediaError> {
        Ok(G729Codec {
            encoder: Encoder::new().map_err(codec_error)?,
            decoder: Decoder::new().map_err(codec_error)?,
        })
    }
}

impl AudioCodec for G729Codec {
    fn name(&self) -> &'static str {
        "G729"
    }
    fn payload_type(&self) -> u8 {
        G729_PAYLOAD_TYPE
    }
    fn clock_rate(&self) -> u32 {
        PCM_SAMPLE_RATE
    }
    /// Exactly one 20 ms frame (160 samples) per call: two G.729 frames, 20 bytes.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(MediaError::FrameSize {
                codec: "G729",
                expected: FRAME_SAMPLES,
                got: pcm.len(),
            });
        }
        for chunk in pcm.chunks_exact(G729_SAMPLES) {
            let chunk: &[i16; G729_SAMPLES] = chunk.try_into().expect("chunks_exact");
            out.extend_from_slice(&self.encoder.encode(chunk));
        }
        Ok(())
    }
    /// Any number of 10-byte frames, optionally followed by one 2-byte SID frame, which
    /// plays as silence to the end of the packet's 20 ms (at least its own 10 ms).
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError> {
        let sid = match payload.len() % FRAME_BYTES {
            0 if !payload.is_empty() => false,
            SID_BYTES => true,
            _ => {
                return Err(MediaError::Codec {
                    codec: "G729",
                    detail: format!(
                        "a {}-byte payload is not 10-byte frames and at most one 2-byte SID",
                        payload.len()
                    ),
                })
            }
        };
        let voice = payload.len() / FRAME_BYTES;
        for frame in payload.chunks_exact(FRAME_BYTES) {
            let frame: &[u8; FRAME_BYTES] = frame.try_into().expect("chunks_exact");
            out.extend_from_slice(&self.decoder.decode(frame));
        }
        if sid {
            let silence = G729_SAMPLES.max(FRAME_SAMPLES.saturating_sub(voice * G729_SAMPLES));
            out.resize(out.len() + silence, 0);
        }
        Ok(())
    }
    /// The decoder's own concealment (frame erasure, ITU-T G.729 section 4.4), two frames for
    /// 20 ms, which keeps its state in step for the frames after the gap.
    fn conceal(&mut self, out: &mut Vec<i16>) -> bool {
        for _ in 0..FRAME_SAMPLES / G729_SAMPLES {
            out.extend_from_slice(&self.decoder.conceal());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_amplitude;
    use crate::tone::{Tone, ToneGenerator};
    use std::f64::consts::TAU;

    fn sine(freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
        (0..len)
            .map(|n| (amplitude * (TAU * freq * n as f64 / 8000.0).sin()).round() as i16)
            .collect()
    }

    /// `pcm` through encode and decode, 20 ms at a time.
    fn through(codec: &mut G729Codec, pcm: &[i16]) -> Vec<i16> {
        let mut back = Vec::new();
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            let mut payload = Vec::new();
            codec.encode(frame, &mut payload).unwrap();
            codec.decode(&payload, &mut back).unwrap();
        }
        back
    }

    #[test]
    fn g729_carries_the_rfc_3551_name_type_and_clock() {
        let codec = G729Codec::new().unwrap();
        assert_eq!(
            (
                codec.name(),
                codec.payload_type(),
                codec.clock_rate(),
                codec.timestamp_step()
            ),
            ("G729", 18, 8000, 160)
        );
    }

    #[test]
    fn a_20ms_frame_is_two_10_byte_frames_and_160_samples_back() {
        let mut codec = G729Codec::new().unwrap();
        let pcm = ToneGenerator::new(Tone::Dial).next_frame(FRAME_SAMPLES);
        let mut payload = Vec::new();
        codec.encode(&pcm, &mut payload).unwrap();
        assert_eq!(payload.len(), 20);
        let mut back = Vec::new();
        codec.decode(&payload, &mut back).unwrap();
        assert_eq!(back.len(), 160);
        back.clear();
        codec.decode(&payload[..10], &mut back).unwrap();
        assert_eq!(back.len(), 80);
    }

    #[test]
    fn a_1000_hz_tone_survives_encode_and_decode() {
        let mut codec = G729Codec::new().unwrap();
        // 400 ms; the first 200 ms let the codec's predictors settle.
        let back = through(&mut codec, &sine(1000.0, 8000.0, 3200));
        let settled = &back[1600..];
        let wanted = tone_amplitude(settled, 1000.0, 8000);
        let other = tone_amplitude(settled, 2200.0, 8000);
        assert!(wanted > 4000.0, "1000 Hz at {wanted}");
        assert!(
            other < wanted / 20.0,
            "2200 Hz at {other}, 1000 Hz at {wanted}"
        );
    }

    #[test]
    fn a_frame_of_the_wrong_length_is_refused() {
        let mut codec = G729Codec::new().unwrap();
        let mut payload = Vec::new();
        assert_eq!(
            codec.encode(&[0; 80], &mut payload),
            Err(MediaError::FrameSize {
                codec: "G729",
                expected: 160,
                got: 80
            })
        );
        assert!(payload.is_empty());
    }

    #[test]
    fn a_sid_frame_plays_as_silence_to_the_end_of_the_packet() {
        let mut codec = G729Codec::new().unwrap();
        let mut out = Vec::new();
        codec.decode(&[0x12, 0x34], &mut out).unwrap();
        assert_eq!(out, vec![0; 160]);

        let mut payload = Vec::new();
        codec
            .encode(&sine(1000.0, 8000.0, 160), &mut payload)
            .unwrap();
        payload.truncate(10);
        payload.extend_from_slice(&[0x12, 0x34]);
        out.clear();
        codec.decode(&payload, &mut out).unwrap();
        assert_eq!(out.len(), 160);
        assert!(out[80..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_payload_that_is_not_whole_frames_is_an_error() {
        let mut codec = G729Codec::new().unwrap();
        for len in [0, 1, 3, 9, 11, 15] {
            let mut out = Vec::new();
            assert!(
                codec.decode(&vec![0; len], &mut out).is_err(),
                "{len} bytes"
            );
            assert!(out.is_empty(), "{len} bytes");
        }
    }

    #[test]
    fn concealment_is_the_decoders_own_20ms() {
        let mut codec = G729Codec::new().unwrap();
        through(&mut codec, &sine(1000.0, 8000.0, 2400));
        let mut out = Vec::new();
        assert!(codec.conceal(&mut out));
        assert_eq!(out.len(), 160);
        assert!(tone_amplitude(&out, 1000.0, 8000) > 2000.0);
    }
}
