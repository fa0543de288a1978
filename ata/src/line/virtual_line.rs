//! The `virtual` line backend: a handset made of files. The microphone is an
//! [`AudioSource`]; the earpiece mixes the current tone or the received audio into 20 ms
//! frames written to a WAV file (8 kHz, mono, 16-bit) while the handset is off-hook; the
//! ringer is a flag the control API reports. Hook and keypad come from the control API
//! through the line actor.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use dialtone_media::{Tone, ToneGenerator, PCM_SAMPLE_RATE};

use crate::config::AudioIn;
use crate::error::AtaError;
use crate::line::audio_source::AudioSource;

/// Frames of received audio held before the oldest is dropped (200 ms): the media and line
/// timers are not locked together, so a little slack absorbs their drift.
const MAX_QUEUED_FRAMES: usize = 10;

/// Flush the WAV header every second so a reader sees a valid file while we still record.
const FLUSH_EVERY_FRAMES: u32 = 50;

/// The files-and-flags handset.
pub struct VirtualLine {
    microphone: AudioSource,
    recorder: Option<hound::WavWriter<BufWriter<File>>>,
    tone: Option<ToneGenerator>,
    ringing: bool,
    received: VecDeque<Vec<i16>>,
    frames_since_flush: u32,
}

impl VirtualLine {
    /// Opens the microphone source and creates the recording.
    pub fn open(audio_in: &AudioIn, audio_out: Option<&Path>) -> Result<VirtualLine, AtaError> {
        let recorder = match audio_out {
            Some(path) => {
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: PCM_SAMPLE_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                Some(
                    hound::WavWriter::create(path, spec).map_err(|e| AtaError::AudioFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Ok(VirtualLine {
            microphone: AudioSource::open(audio_in)?,
            recorder,
            tone: None,
            ringing: false,
            received: VecDeque::new(),
            frames_since_flush: 0,
        })
    }

    /// Plays `tone` in the earpiece, or stops it.
    pub fn set_tone(&mut self, tone: Option<Tone>) {
        self.tone = tone.map(ToneGenerator::new);
    }

    /// The tone playing, if any.
    pub fn tone(&self) -> Option<Tone> {
        self.tone.as_ref().map(|g| g.tone())
    }

    /// Starts or stops the ringer.
    pub fn set_ringer(&mut self, on: bool) {
        self.ringing = on;
    }

    /// Whether the ringer rings.
    pub fn is_ringing(&self) -> bool {
        self.ringing
    }

    /// The next 20 ms from the microphone.
    pub fn microphone_frame(&mut self) -> Vec<i16> {
        self.microphone.next_frame()
    }

    /// Received audio for the earpiece.
    pub fn queue_received(&mut self, frame: Vec<i16>) {
        if self.received.len() >= MAX_QUEUED_FRAMES {
            self.received.pop_front();
        }
        self.received.push_back(frame);
    }

    /// Forgets queued audio (the call ended).
    pub fn clear_received(&mut self) {
        self.received.clear();
    }

    /// One 20 ms earpiece tick: what the handset plays now, recorded while off-hook.
    pub fn earpiece_tick(&mut self, off_hook: bool) -> Result<(), AtaError> {
        let frame = super::earpiece::earpiece_frame(self.tone.as_mut(), &mut self.received);
        if !off_hook {
            return Ok(());
        }
        if let Some(recorder) = self.recorder.as_mut() {
            for sample in frame {
                recorder
                    .write_sample(sample)
                    .map_err(|e| AtaError::AudioFile {
                        path: "audio_out".into(),
                        reason: e.to_string(),
                    })?;
            }
            self.frames_since_flush += 1;
            if self.frames_since_flush >= FLUSH_EVERY_FRAMES {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Writes the WAV header and buffered samples out, so the file is complete on disk.
    pub fn flush(&mut self) -> Result<(), AtaError> {
        self.frames_since_flush = 0;
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.flush().map_err(|e| AtaError::AudioFile {
                path: "audio_out".into(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::FRAME_SAMPLES;

    #[test]
    fn the_earpiece_records_received_audio_only_while_off_hook() {
        let path = std::env::temp_dir().join(format!("ata-virtual-{}.wav", std::process::id()));
        let mut line = VirtualLine::open(&AudioIn::Silence, Some(&path)).expect("open");
        line.queue_received(vec![100; FRAME_SAMPLES]);
        line.earpiece_tick(false).expect("tick");
        line.queue_received(vec![200; FRAME_SAMPLES]);
        line.earpiece_tick(true).expect("tick");
        line.flush().expect("flush");
        let reader = hound::WavReader::open(&path).expect("valid WAV after flush");
        assert_eq!(reader.spec().sample_rate, 8000);
        let samples: Vec<i16> = reader.into_samples().map(|s| s.expect("sample")).collect();
        assert_eq!(samples, vec![200; FRAME_SAMPLES]);
        let _ = std::fs::remove_file(path);
    }
}
