//! The virtual handset's microphone: 20 ms frames of 8 kHz PCM from silence, a sine tone
//! (`tone:HZ`) or a WAV file played in a loop (mono or the first channel, 16-bit; other
//! rates are resampled by nearest sample, which is enough for a lab's test signals).
//!
//! Used by `line::virtual_line`; the USB backend reads a real microphone instead.

use std::f64::consts::TAU;

use dialtone_media::{FRAME_SAMPLES, PCM_SAMPLE_RATE};

use crate::config::AudioIn;
use crate::error::AtaError;

/// The sine level: -10 dBFS, loud enough for detection, far from clipping after G.711.
const TONE_AMPLITUDE: f64 = 0.316 * i16::MAX as f64;

/// A source of microphone frames.
#[derive(Debug, Clone)]
pub enum AudioSource {
    /// Zeros.
    Silence,
    /// A sine wave.
    Tone {
        /// Frequency in Hz.
        hz: f64,
        /// Phase in radians.
        phase: f64,
    },
    /// Looped samples at 8 kHz.
    Samples {
        /// The samples.
        samples: Vec<i16>,
        /// The next one to play.
        position: usize,
    },
}

impl AudioSource {
    /// Opens the configured source.
    pub fn open(config: &AudioIn) -> Result<AudioSource, AtaError> {
        match config {
            AudioIn::Silence => Ok(AudioSource::Silence),
            AudioIn::Tone(hz) => Ok(tone_period(*hz)
                .map(|samples| AudioSource::Samples {
                    samples,
                    position: 0,
                })
                .unwrap_or(AudioSource::Tone {
                    hz: *hz,
                    phase: 0.0,
                })),
            AudioIn::File(path) => {
                let error = |reason: String| AtaError::AudioFile {
                    path: path.display().to_string(),
                    reason,
                };
                let mut reader = hound::WavReader::open(path).map_err(|e| error(e.to_string()))?;
                let spec = reader.spec();
                if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
                    return Err(error("only 16-bit integer WAV is supported".into()));
                }
                let channels = usize::from(spec.channels.max(1));
                let all: Vec<i16> = reader
                    .samples::<i16>()
                    .collect::<Result<_, _>>()
                    .map_err(|e| error(e.to_string()))?;
                let mono: Vec<i16> = all.iter().step_by(channels).copied().collect();
                let samples = resample_nearest(&mono, spec.sample_rate, PCM_SAMPLE_RATE);
                if samples.is_empty() {
                    return Ok(AudioSource::Silence);
                }
                Ok(AudioSource::Samples {
                    samples,
                    position: 0,
                })
            }
        }
    }

    /// The next 20 ms frame.
    pub fn next_frame(&mut self) -> Vec<i16> {
        match self {
            AudioSource::Silence => vec![0; FRAME_SAMPLES],
            AudioSource::Tone { hz, phase } => {
                let step = TAU * *hz / f64::from(PCM_SAMPLE_RATE);
                (0..FRAME_SAMPLES)
                    .map(|_| {
                        let sample = (phase.sin() * TONE_AMPLITUDE) as i16;
                        *phase = (*phase + step) % TAU;
                        sample
                    })
                    .collect()
            }
            AudioSource::Samples { samples, position } => {
                // Whole runs of the loop at a time: a tone's period is a few samples, and a
                // division per sample showed in the profile at 1000 calls.
                let mut frame = Vec::with_capacity(FRAME_SAMPLES);
                while frame.len() < FRAME_SAMPLES {
                    let start = *position % samples.len();
                    let run = (samples.len() - start).min(FRAME_SAMPLES - frame.len());
                    frame.extend_from_slice(&samples[start..start + run]);
                    *position = (start + run) % samples.len();
                }
                frame
            }
        }
    }
}

/// One exact period of a tone of a whole number of hertz, which the source then loops: at
/// 8 kHz such a tone repeats every 8000 / gcd(hz, 8000) samples (8 for 1000 Hz, 16 for
/// 1500 Hz), so a table of that many samples is the same sine wave as computing it, without
/// 160 calls of `sin` per line every 20 ms (a tenth of a core at 1000 calls under load).
/// `None` for other frequencies, which are computed as they play.
fn tone_period(hz: f64) -> Option<Vec<i16>> {
    if !(hz > 0.0 && hz.fract() == 0.0 && hz < f64::from(PCM_SAMPLE_RATE)) {
        return None;
    }
    let rate = u64::from(PCM_SAMPLE_RATE);
    let (mut a, mut b) = (hz as u64, rate);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let period = (rate / a) as usize;
    let step = TAU * hz / f64::from(PCM_SAMPLE_RATE);
    Some(
        (0..period)
            .map(|i| ((i as f64 * step).sin() * TONE_AMPLITUDE) as i16)
            .collect(),
    )
}

fn resample_nearest(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..out_len)
        .filter_map(|i| {
            let source = (i as u64 * u64::from(from) / u64::from(to)) as usize;
            input.get(source).copied()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::tone_amplitude;

    #[test]
    fn a_tone_source_has_its_energy_at_its_frequency() {
        let mut source = AudioSource::open(&AudioIn::Tone(1000.0)).expect("tone");
        let samples: Vec<i16> = (0..10).flat_map(|_| source.next_frame()).collect();
        let at_1000 = tone_amplitude(&samples, 1000.0, PCM_SAMPLE_RATE);
        let at_1500 = tone_amplitude(&samples, 1500.0, PCM_SAMPLE_RATE);
        assert!(at_1000 > 10.0 * at_1500, "{at_1000} vs {at_1500}");
    }

    #[test]
    fn a_tone_of_whole_hertz_plays_from_one_period_as_the_computed_sine_would() {
        let mut table = AudioSource::open(&AudioIn::Tone(1500.0)).expect("tone");
        assert!(matches!(&table, AudioSource::Samples { samples, .. } if samples.len() == 16));
        let mut computed = AudioSource::Tone {
            hz: 1500.0,
            phase: 0.0,
        };
        for _ in 0..50 {
            let (a, b) = (table.next_frame(), computed.next_frame());
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).max();
            assert!(worst <= Some(1), "{worst:?}");
        }
        let odd = AudioSource::open(&AudioIn::Tone(1000.5)).expect("tone");
        assert!(matches!(odd, AudioSource::Tone { .. }));
    }

    #[test]
    fn a_wav_file_is_looped_at_8_khz() {
        let path = std::env::temp_dir().join(format!("ata-source-{}.wav", std::process::id()));
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(&path, spec).expect("create");
        for i in 0..200i16 {
            writer.write_sample(i).expect("write");
        }
        writer.finalize().expect("finalize");
        let mut source = AudioSource::open(&AudioIn::File(path.clone())).expect("open");
        let frame = source.next_frame();
        assert_eq!(&frame[..3], &[0, 2, 4]);
        assert_eq!(
            frame[100], 0,
            "100 samples at 8 kHz, then the loop restarts"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error =
            AudioSource::open(&AudioIn::File("/nonexistent/x.wav".into())).expect_err("missing");
        assert!(error.to_string().contains("/nonexistent/x.wav"));
    }
}
