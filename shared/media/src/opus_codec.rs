//! Opus (RFC 6716) through libopus, for the `opus` feature.
//!
//! libopus encodes and decodes at 8 kHz directly (it resamples internally), so
//! the handset's 8 kHz PCM goes in and out unchanged and this crate does no
//! resampling. The RTP clock is still 48 kHz whatever the audio bandwidth
//! (RFC 7587 section 4.1), so a 20 ms frame advances the timestamp by 960, and
//! SDP names it `opus/48000/2`.

use opus::{Application, Channels, Decoder, Encoder};

use crate::codec::{AudioCodec, FRAME_SAMPLES, PCM_SAMPLE_RATE};
use crate::error::MediaError;

/// RTP clock rate of Opus (RFC 7587 4.1).
pub const OPUS_CLOCK_RATE: u32 = 48_000;
/// Room for the longest Opus packet (120 ms) at 8 kHz.
const MAX_DECODED: usize = 960;
/// Large enough for any 20 ms Opus packet (RFC 6716 caps a frame at 1275 bytes).
const MAX_PACKET: usize = 1500;

fn codec_error(e: opus::Error) -> MediaError {
    MediaError::Codec {
        codec: "opus",
        detail: e.to_string(),
    }
}

/// Opus, mono, tuned for voice.
pub struct OpusCodec {
    payload_type: u8,
    encoder: Encoder,
    decoder: Decoder,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for OpusCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusCodec")
            .field("payload_type", &self.payload_type)
            .finish_non_exhaustive()
    }
}

impl OpusCodec {
    /// An Opus codec for the dynamic `payload_type` negotiated in SDP.
    pub fn new(payload_type: u8) -> Result<Self, MediaError> {
        Ok(OpusCodec {
            payload_type: payload_type & 0x7f,
            encoder: Encoder::new(PCM_SAMPLE_RATE, Channels::Mono, Application::Voip)
                .map_err(codec_error)?,
            decoder: Decoder::new(PCM_SAMPLE_RATE, Channels::Mono).map_err(codec_error)?,
            scratch: vec![0; MAX_DECODED],
        })
    }
}

impl AudioCodec for OpusCodec {
    fn name(&self) -> &'static str {
        "opus"
    }
    fn payload_type(&self) -> u8 {
        self.payload_type
    }
    fn clock_rate(&self) -> u32 {
        OPUS_CLOCK_RATE
    }
    /// Exactly one 20 ms frame (160 samples) per call.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(MediaError::FrameSize {
                codec: "opus",
                expected: FRAME_SAMPLES,
                got: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PACKET, 0);
        match self.encoder.encode(pcm, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(codec_error(e))
            }
        }
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError> {
        if payload.is_empty() {
            // An empty slice means "lost" to libopus; a peer's empty payload is
            // not a packet we can decode.
            return Err(MediaError::Codec {
                codec: "opus",
                detail: "empty payload".into(),
            });
        }
        let n = self
            .decoder
            .decode(payload, &mut self.scratch, false)
            .map_err(codec_error)?;
        out.extend_from_slice(&self.scratch[..n.min(MAX_DECODED)]);
        Ok(())
    }
    /// libopus's own concealment, which keeps the decoder's state in step.
    fn conceal(&mut self, out: &mut Vec<i16>) -> bool {
        match self
            .decoder
            .decode(&[], &mut self.scratch[..FRAME_SAMPLES], false)
        {
            Ok(n) => {
                out.extend_from_slice(&self.scratch[..n.min(FRAME_SAMPLES)]);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_amplitude;
    use crate::tone::{Tone, ToneGenerator};

    #[test]
    fn opus_reports_its_rtp_clock_of_48khz_and_a_960_step() {
        let c = OpusCodec::new(111).unwrap();
        assert_eq!(
            (
                c.name(),
                c.payload_type(),
                c.clock_rate(),
                c.timestamp_step()
            ),
            ("opus", 111, 48_000, 960)
        );
    }

    #[test]
    fn dial_tone_survives_opus_at_8khz() {
        let mut c = OpusCodec::new(111).unwrap();
        let mut gen = ToneGenerator::new(Tone::Dial);
        let mut decoded = Vec::new();
        for _ in 0..25 {
            let mut payload = Vec::new();
            c.encode(&gen.next_frame(FRAME_SAMPLES), &mut payload)
                .unwrap();
            assert!(!payload.is_empty() && payload.len() < 200);
            let before = decoded.len();
            c.decode(&payload, &mut decoded).unwrap();
            assert_eq!(decoded.len() - before, FRAME_SAMPLES);
        }
        // Skip the codec's start-up delay; judge the last 200 ms.
        let tail = &decoded[decoded.len() - 1600..];
        let a350 = tone_amplitude(tail, 350.0, 8000);
        let a440 = tone_amplitude(tail, 440.0, 8000);
        let a1k = tone_amplitude(tail, 1000.0, 8000);
        assert!(a350 > 2500.0 && a440 > 2500.0, "{a350} {a440}");
        assert!(a1k < a350 / 10.0, "{a1k}");
    }

    #[test]
    fn opus_refuses_a_frame_that_is_not_20ms() {
        let mut c = OpusCodec::new(111).unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            c.encode(&[0; 100], &mut out),
            Err(MediaError::FrameSize { got: 100, .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn opus_conceals_a_lost_frame_with_160_samples() {
        let mut c = OpusCodec::new(111).unwrap();
        let mut payload = Vec::new();
        c.encode(
            &ToneGenerator::new(Tone::Dial).next_frame(FRAME_SAMPLES),
            &mut payload,
        )
        .unwrap();
        let mut out = Vec::new();
        c.decode(&payload, &mut out).unwrap();
        out.clear();
        assert!(c.conceal(&mut out));
        assert_eq!(out.len(), FRAME_SAMPLES);
    }
}
