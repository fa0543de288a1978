//! The [`AudioCodec`] trait the media actor encodes and decodes through, and its
//! G.711 implementations (PCMU, PCMA). Opus lives in `opus_codec` behind the
//! `opus` feature.
//!
//! Every codec takes and gives 8 kHz mono i16 PCM, the handset's format, so
//! the actor, tone generator and jitter buffer never resample; a codec whose
//! RTP clock differs (Opus: 48 kHz, RFC 7587) says so in `clock_rate`.

use std::time::Duration;

use crate::error::MediaError;
use crate::g711;

/// Sample rate of the PCM every codec takes and gives.
pub const PCM_SAMPLE_RATE: u32 = 8000;
/// Length of one packet's worth of audio.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Static payload type of PCMU (RFC 3551 table 4).
pub const PCMU_PAYLOAD_TYPE: u8 = 0;
/// Static payload type of PCMA (RFC 3551 table 4).
pub const PCMA_PAYLOAD_TYPE: u8 = 8;

/// An audio codec as one RTP stream uses it.
pub trait AudioCodec: Send + std::fmt::Debug {
    /// Encoding name as in SDP `a=rtpmap` ("PCMU", "PCMA", "opus").
    fn name(&self) -> &'static str;
    /// RTP payload type this stream uses.
    fn payload_type(&self) -> u8;
    /// RTP clock rate (8000 for G.711, 48000 for Opus).
    fn clock_rate(&self) -> u32;
    /// RTP timestamp increment per 20 ms frame.
    fn timestamp_step(&self) -> u32 {
        self.clock_rate() / 50
    }
    /// Encodes one frame of 8 kHz PCM (160 samples for 20 ms), appending the
    /// payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError>;
    /// Decodes one payload, appending 8 kHz PCM to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError>;
    /// Appends a codec-generated concealment frame for a lost packet, if the
    /// codec has its own concealment; returns false if it has none (G.711),
    /// and the jitter buffer then repeats and fades the last frame itself.
    fn conceal(&mut self, _out: &mut Vec<i16>) -> bool {
        false
    }
}

/// G.711 mu-law, payload type 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pcmu;

/// G.711 A-law, payload type 8.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pcma;

impl AudioCodec for Pcmu {
    fn name(&self) -> &'static str {
        "PCMU"
    }
    fn payload_type(&self) -> u8 {
        PCMU_PAYLOAD_TYPE
    }
    fn clock_rate(&self) -> u32 {
        PCM_SAMPLE_RATE
    }
    /// Any number of samples is accepted: G.711 is one byte per sample.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        g711::encode_ulaw(pcm, out);
        Ok(())
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError> {
        g711::decode_ulaw(payload, out);
        Ok(())
    }
}

impl AudioCodec for Pcma {
    fn name(&self) -> &'static str {
        "PCMA"
    }
    fn payload_type(&self) -> u8 {
        PCMA_PAYLOAD_TYPE
    }
    fn clock_rate(&self) -> u32 {
        PCM_SAMPLE_RATE
    }
    /// Any number of samples is accepted: G.711 is one byte per sample.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), MediaError> {
        g711::encode_alaw(pcm, out);
        Ok(())
    }
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), MediaError> {
        g711::decode_alaw(payload, out);
        Ok(())
    }
}

/// The G.711 codec for a static payload type (0 or 8), e.g. from SDP.
pub fn g711_for_payload_type(payload_type: u8) -> Option<Box<dyn AudioCodec>> {
    match payload_type {
        PCMU_PAYLOAD_TYPE => Some(Box::new(Pcmu)),
        PCMA_PAYLOAD_TYPE => Some(Box::new(Pcma)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_amplitude;
    use crate::tone::{Tone, ToneGenerator};

    fn through(codec: &mut dyn AudioCodec, pcm: &[i16]) -> Vec<i16> {
        let mut payload = Vec::new();
        codec.encode(pcm, &mut payload).unwrap();
        let mut back = Vec::new();
        codec.decode(&payload, &mut back).unwrap();
        back
    }

    #[test]
    fn g711_codecs_carry_the_rfc_3551_names_types_and_clocks() {
        let u = g711_for_payload_type(0).unwrap();
        let a = g711_for_payload_type(8).unwrap();
        assert_eq!(
            (
                u.name(),
                u.payload_type(),
                u.clock_rate(),
                u.timestamp_step()
            ),
            ("PCMU", 0, 8000, 160)
        );
        assert_eq!(
            (
                a.name(),
                a.payload_type(),
                a.clock_rate(),
                a.timestamp_step()
            ),
            ("PCMA", 8, 8000, 160)
        );
        assert!(g711_for_payload_type(18).is_none());
    }

    #[test]
    fn a_20ms_frame_is_160_payload_bytes_and_160_samples_back() {
        let pcm = ToneGenerator::new(Tone::Dial).next_frame(FRAME_SAMPLES);
        let mut payload = Vec::new();
        Pcmu.encode(&pcm, &mut payload).unwrap();
        assert_eq!(payload.len(), 160);
        assert_eq!(through(&mut Pcma, &pcm).len(), 160);
    }

    #[test]
    fn dial_tone_is_still_dial_tone_after_pcmu_and_pcma() {
        let pcm = ToneGenerator::new(Tone::Dial).next_frame(800);
        for codec in [&mut Pcmu as &mut dyn AudioCodec, &mut Pcma] {
            let back = through(codec, &pcm);
            let a350 = tone_amplitude(&back, 350.0, 8000);
            let a1k = tone_amplitude(&back, 1000.0, 8000);
            assert!(
                a350 > 4000.0 && a1k < 100.0,
                "{}: {a350} {a1k}",
                codec.name()
            );
        }
    }

    #[test]
    fn g711_has_no_codec_concealment() {
        let mut out = Vec::new();
        assert!(!Pcmu.conceal(&mut out));
        assert!(out.is_empty());
    }
}
