//! The `usb` line backend (feature `usb-handset`): a USB handset's sound card through cpal
//! (ALSA), and its hook switch and keypad from the Linux input device (evdev).
//!
//! Skeleton, untested on hardware: the sound card is the first ALSA device whose name
//! contains the line's `audio_in` text (else the default devices), resampled to and from
//! 8 kHz by nearest sample; when the line's `audio_out` is a `/dev/input/...` path, hook and
//! keys are read from that evdev device on a thread (`KEY_0`..`KEY_9`, `KEY_KPASTERISK`,
//! `KEY_NUMERIC_POUND`; `KEY_PHONE` toggles the hook). Tones play in the earpiece like the
//! virtual backend's.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use dialtone_media::{Tone, ToneGenerator, FRAME_SAMPLES, PCM_SAMPLE_RATE};

use crate::config::LineConfig;
use crate::error::AtaError;
use crate::line::{Handset, HandsetEvent};

/// Samples kept per direction (half a second at the device rate) before dropping.
const MAX_BUFFERED: usize = 24_000;

type Shared = Arc<Mutex<VecDeque<i16>>>;

/// A USB handset.
pub struct UsbLine {
    capture: Shared,
    playback: Shared,
    device_rate: u32,
    tone: Option<ToneGenerator>,
    ringing: bool,
    received: VecDeque<Vec<i16>>,
    events: Option<Receiver<HandsetEvent>>,
    _streams: Vec<cpal::Stream>,
}

fn audio_error(reason: impl ToString) -> AtaError {
    AtaError::AudioFile {
        path: "usb handset".into(),
        reason: reason.to_string(),
    }
}

impl UsbLine {
    /// Opens the sound card named like the line's `audio_in` (`usb:NAME`), else the default
    /// devices, and the input device in `audio_out` when it is an evdev path.
    pub fn open(line: &LineConfig) -> Result<UsbLine, AtaError> {
        let host = cpal::default_host();
        let wanted = match &line.audio_in {
            crate::config::AudioIn::File(path) => path.to_string_lossy().into_owned(),
            _ => String::new(),
        };
        let pick = |devices: Vec<cpal::Device>| {
            devices.into_iter().find(|d| {
                d.name()
                    .map(|n| !wanted.is_empty() && n.contains(&wanted))
                    .unwrap_or(false)
            })
        };
        let input = pick(host.input_devices().map_err(audio_error)?.collect())
            .or_else(|| host.default_input_device())
            .ok_or_else(|| audio_error("no capture device"))?;
        let output = pick(host.output_devices().map_err(audio_error)?.collect())
            .or_else(|| host.default_output_device())
            .ok_or_else(|| audio_error("no playback device"))?;
        let config = input.default_input_config().map_err(audio_error)?;
        let device_rate = config.sample_rate().0;
        let capture: Shared = Arc::new(Mutex::new(VecDeque::new()));
        let playback: Shared = Arc::new(Mutex::new(VecDeque::new()));
        let sink = capture.clone();
        let channels = usize::from(config.channels().max(1));
        let in_stream = input
            .build_input_stream(
                &config.into(),
                move |data: &[f32], _| {
                    if let Ok(mut buffer) = sink.lock() {
                        for frame in data.chunks(channels) {
                            if buffer.len() < MAX_BUFFERED {
                                buffer.push_back((frame[0] * f32::from(i16::MAX)) as i16);
                            }
                        }
                    }
                },
                |e| tracing::warn!(error = %e, "capture error"),
                None,
            )
            .map_err(audio_error)?;
        let out_config = output.default_output_config().map_err(audio_error)?;
        let out_channels = usize::from(out_config.channels().max(1));
        let source = playback.clone();
        let out_stream = output
            .build_output_stream(
                &out_config.into(),
                move |data: &mut [f32], _| {
                    let mut buffer = source.lock().ok();
                    for frame in data.chunks_mut(out_channels) {
                        let sample = buffer.as_mut().and_then(|b| b.pop_front()).unwrap_or(0);
                        frame.fill(f32::from(sample) / f32::from(i16::MAX));
                    }
                },
                |e| tracing::warn!(error = %e, "playback error"),
                None,
            )
            .map_err(audio_error)?;
        in_stream.play().map_err(audio_error)?;
        out_stream.play().map_err(audio_error)?;
        let events = line
            .audio_out
            .as_deref()
            .filter(|p| p.starts_with("/dev/input"))
            .map(spawn_evdev_reader)
            .transpose()?;
        Ok(UsbLine {
            capture,
            playback,
            device_rate,
            tone: None,
            ringing: false,
            received: VecDeque::new(),
            events,
            _streams: vec![in_stream, out_stream],
        })
    }
}

/// Nearest-sample conversion between rates; handsets run at 16 or 48 kHz.
pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to || from == 0 || to == 0 {
        return input.to_vec();
    }
    let len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..len)
        .filter_map(|i| {
            input
                .get((i as u64 * u64::from(from) / u64::from(to)) as usize)
                .copied()
        })
        .collect()
}

/// Maps a Linux key code (input-event-codes.h) to a handset event.
pub fn key_event(code: u16) -> Option<HandsetEvent> {
    let key = match code {
        2..=10 => char::from(b'1' + (code - 2) as u8),
        11 => '0',
        55 => '*',                                 // KEY_KPASTERISK
        523 => '#',                                // KEY_NUMERIC_POUND
        522 => '*',                                // KEY_NUMERIC_STAR
        169 => return Some(HandsetEvent::OffHook), // KEY_PHONE
        _ => return None,
    };
    Some(HandsetEvent::Key(key))
}

fn spawn_evdev_reader(path: &Path) -> Result<Receiver<HandsetEvent>, AtaError> {
    let mut file = File::open(path).map_err(|e| AtaError::AudioFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        // struct input_event on 64-bit Linux: timeval (16), type u16, code u16, value i32.
        let mut event = [0u8; 24];
        let mut off_hook = false;
        while file.read_exact(&mut event).is_ok() {
            let kind = u16::from_ne_bytes([event[16], event[17]]);
            let code = u16::from_ne_bytes([event[18], event[19]]);
            let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
            if kind != 1 || value != 1 {
                continue;
            }
            let mapped = match key_event(code) {
                Some(HandsetEvent::OffHook) => {
                    off_hook = !off_hook;
                    Some(if off_hook {
                        HandsetEvent::OffHook
                    } else {
                        HandsetEvent::OnHook
                    })
                }
                other => other,
            };
            if let Some(e) = mapped {
                if tx.send(e).is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

impl Handset for UsbLine {
    fn set_tone(&mut self, tone: Option<Tone>) {
        self.tone = tone.map(ToneGenerator::new);
    }
    fn tone(&self) -> Option<Tone> {
        self.tone.as_ref().map(|g| g.tone())
    }
    fn set_ringer(&mut self, on: bool) {
        self.ringing = on;
    }
    fn is_ringing(&self) -> bool {
        self.ringing
    }
    fn microphone_frame(&mut self) -> Vec<i16> {
        let wanted = FRAME_SAMPLES * self.device_rate as usize / PCM_SAMPLE_RATE as usize;
        let raw: Vec<i16> = match self.capture.lock() {
            Ok(mut buffer) => {
                let n = wanted.min(buffer.len());
                buffer.drain(..n).collect()
            }
            Err(_) => Vec::new(),
        };
        let mut frame = resample(&raw, self.device_rate, PCM_SAMPLE_RATE);
        frame.resize(FRAME_SAMPLES, 0);
        frame
    }
    fn queue_received(&mut self, frame: Vec<i16>) {
        if self.received.len() < 10 {
            self.received.push_back(frame);
        }
    }
    fn clear_received(&mut self) {
        self.received.clear();
    }
    fn earpiece_tick(&mut self, off_hook: bool) -> Result<(), AtaError> {
        let frame = match self.tone.as_mut() {
            Some(g) => g.next_frame(FRAME_SAMPLES),
            None => self
                .received
                .pop_front()
                .unwrap_or_else(|| vec![0; FRAME_SAMPLES]),
        };
        if off_hook {
            let out = resample(&frame, PCM_SAMPLE_RATE, self.device_rate);
            if let Ok(mut buffer) = self.playback.lock() {
                if buffer.len() < MAX_BUFFERED {
                    buffer.extend(out);
                }
            }
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), AtaError> {
        Ok(())
    }
    fn poll_event(&mut self) -> Option<HandsetEvent> {
        self.events.as_ref().and_then(|rx| rx.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resampling_48_khz_to_8_khz_keeps_every_sixth_sample() {
        let input: Vec<i16> = (0..48).collect();
        assert_eq!(
            resample(&input, 48_000, 8_000),
            [0, 6, 12, 18, 24, 30, 36, 42]
        );
        assert_eq!(resample(&[1, 2], 8_000, 16_000), [1, 1, 2, 2]);
    }

    #[test]
    fn keypad_codes_map_to_telephone_keys() {
        assert_eq!(key_event(2), Some(HandsetEvent::Key('1')));
        assert_eq!(key_event(11), Some(HandsetEvent::Key('0')));
        assert_eq!(key_event(523), Some(HandsetEvent::Key('#')));
        assert_eq!(key_event(169), Some(HandsetEvent::OffHook));
        assert_eq!(key_event(30), None);
    }
}
