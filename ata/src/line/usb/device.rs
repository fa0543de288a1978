//! The glue between the handset's hardware and the line actor (feature `usb-handset`):
//! [`UsbLine`] opens the sound card with cpal (ALSA) and the HID device, and implements
//! [`Handset`].
//!
//! Audio: each direction has a [`DriftBuffer`] shared with the card's callback thread, the
//! resampler on the pushing side: the line's 20 ms tick pushes the earpiece (tone or
//! received audio) at 8 kHz through an 8 kHz → card resampler; the capture callback pushes
//! the microphone through a card → 8 kHz resampler and the tick pops 160 samples. While
//! the line rings on-hook the tick plays a [`Ringer`]'s ring instead of silence, the
//! speaker being the only bell a USB handset has. Input:
//! a thread blocks on reads of the hidraw (or evdev) node and sends each decoded snapshot
//! with its arrival time; the tick feeds them to [`HandsetInput`], which debounces.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SizedSample};
use dialtone_media::{Tone, ToneGenerator, FRAME_SAMPLES, PCM_SAMPLE_RATE};
use tracing::{info, warn};

use super::debounce::HandsetInput;
use super::detect;
use super::drift::DriftBuffer;
use super::evdev::{self, EvdevKeys, KeyEvent};
use super::hid::{ReportLayout, Telephony};
use super::resample::{downmix, to_i16, upmix, Resampler};
use super::ringer::Ringer;
use crate::config::LineConfig;
use crate::error::AtaError;
use crate::line::{Handset, HandsetEvent};

/// What the pushing side aims to keep buffered: 60 ms, three line ticks, enough for a
/// card period of up to 20 ms and the actor's scheduling jitter.
const TARGET_MS: usize = 60;
/// Room before samples are dropped: 200 ms.
const CAPACITY_MS: usize = 200;

type Shared = Arc<Mutex<DriftBuffer>>;

/// One raw input reading from the HID thread.
enum Reading {
    Report(Instant, Telephony),
    Key(Instant, KeyEvent),
}

/// A USB handset.
pub struct UsbLine {
    capture: Shared,
    playback: Shared,
    to_card: Resampler,
    tone: Option<ToneGenerator>,
    ringing: bool,
    ringer: Ringer,
    received: std::collections::VecDeque<Vec<i16>>,
    input: HandsetInput,
    evdev_keys: EvdevKeys,
    readings: Receiver<Reading>,
    _streams: [cpal::Stream; 2],
}

fn audio_error(reason: impl ToString) -> AtaError {
    AtaError::config("usb_audio_device", reason.to_string())
}

fn hid_error(path: &Path, reason: impl std::fmt::Display) -> AtaError {
    AtaError::config("usb_hid_device", format!("{}: {reason}", path.display()))
}

fn buffer(rate: u32) -> Shared {
    let per_ms = rate as usize / 1000;
    Arc::new(Mutex::new(DriftBuffer::new(
        TARGET_MS * per_ms,
        CAPACITY_MS * per_ms,
    )))
}

impl UsbLine {
    /// Opens the line's sound card (`usb_audio_device`, else the default one) and HID
    /// device (`usb_hid_device`, else detected).
    pub fn open(line: &LineConfig) -> Result<UsbLine, AtaError> {
        let host = cpal::default_host();
        let input = pick(
            host.input_devices().map_err(audio_error)?,
            &line.usb_audio_device,
        )?
        .or_else(|| host.default_input_device())
        .ok_or_else(|| audio_error("no capture device"))?;
        let output = pick(
            host.output_devices().map_err(audio_error)?,
            &line.usb_audio_device,
        )?
        .or_else(|| host.default_output_device())
        .ok_or_else(|| audio_error("no playback device"))?;
        let in_config = input.default_input_config().map_err(audio_error)?;
        let out_config = output.default_output_config().map_err(audio_error)?;
        let capture = buffer(PCM_SAMPLE_RATE);
        let playback = buffer(out_config.sample_rate().0);
        let in_stream = match in_config.sample_format() {
            cpal::SampleFormat::I16 => capture_stream::<i16>(&input, &in_config, &capture),
            cpal::SampleFormat::F32 => capture_stream::<f32>(&input, &in_config, &capture),
            other => Err(audio_error(format!("capture format {other} not supported"))),
        }?;
        let out_stream = match out_config.sample_format() {
            cpal::SampleFormat::I16 => playback_stream::<i16>(&output, &out_config, &playback),
            cpal::SampleFormat::F32 => playback_stream::<f32>(&output, &out_config, &playback),
            other => Err(audio_error(format!(
                "playback format {other} not supported"
            ))),
        }?;
        in_stream.play().map_err(audio_error)?;
        out_stream.play().map_err(audio_error)?;
        info!(
            user = %line.user,
            capture = %input.name().unwrap_or_default(),
            playback = %output.name().unwrap_or_default(),
            "USB handset sound card open"
        );
        let readings = open_hid(line.usb_hid_device.as_deref())?;
        Ok(UsbLine {
            capture,
            playback,
            to_card: Resampler::new(PCM_SAMPLE_RATE, out_config.sample_rate().0),
            tone: None,
            ringing: false,
            ringer: Ringer::new(),
            received: Default::default(),
            input: HandsetInput::new(Instant::now()),
            evdev_keys: EvdevKeys::default(),
            readings,
            _streams: [in_stream, out_stream],
        })
    }
}

/// The device named like `wanted`, or `None` to use the default one.
fn pick(
    devices: impl Iterator<Item = cpal::Device>,
    wanted: &Option<String>,
) -> Result<Option<cpal::Device>, AtaError> {
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    let devices: Vec<cpal::Device> = devices.collect();
    let names: Vec<String> = devices
        .iter()
        .map(|d| d.name().unwrap_or_default())
        .collect();
    let index = detect::pick_audio_device(&names, wanted).map_err(audio_error)?;
    Ok(devices.into_iter().nth(index))
}

fn capture_stream<T>(
    device: &cpal::Device,
    config: &cpal::SupportedStreamConfig,
    buffer: &Shared,
) -> Result<cpal::Stream, AtaError>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels().max(1));
    let mut resampler = Resampler::new(config.sample_rate().0, PCM_SAMPLE_RATE);
    let sink = buffer.clone();
    let mut scratch = Vec::new();
    device
        .build_input_stream(
            &config.config(),
            move |data: &[T], _| {
                let samples: Vec<f32> = data.iter().map(|s| s.to_sample::<f32>()).collect();
                let Ok(mut buffer) = sink.lock() else {
                    return;
                };
                resampler.set_correction(buffer.correction());
                scratch.clear();
                resampler.process(&downmix(&samples, channels), &mut scratch);
                buffer.push(&scratch);
            },
            |e| warn!(error = %e, "USB handset capture error"),
            None,
        )
        .map_err(audio_error)
}

fn playback_stream<T>(
    device: &cpal::Device,
    config: &cpal::SupportedStreamConfig,
    buffer: &Shared,
) -> Result<cpal::Stream, AtaError>
where
    T: SizedSample + FromSample<f32>,
{
    let channels = usize::from(config.channels().max(1));
    let source = buffer.clone();
    let mut mono = Vec::new();
    let mut frames = Vec::new();
    device
        .build_output_stream(
            &config.config(),
            move |data: &mut [T], _| {
                mono.resize(data.len() / channels, 0.0);
                match source.lock() {
                    Ok(mut buffer) => buffer.pop(&mut mono),
                    Err(_) => mono.fill(0.0),
                }
                frames.resize(data.len(), 0.0);
                upmix(&mono, channels, &mut frames);
                for (out, sample) in data.iter_mut().zip(&frames) {
                    *out = T::from_sample(*sample);
                }
            },
            |e| warn!(error = %e, "USB handset playback error"),
            None,
        )
        .map_err(audio_error)
}

/// Starts the reader thread for the configured or detected HID device.
fn open_hid(configured: Option<&Path>) -> Result<Receiver<Reading>, AtaError> {
    let sysfs = Path::new("/sys");
    let path: PathBuf = match configured {
        Some(path) => path.to_owned(),
        None => detect::detect_hid_device(&detect::scan_hidraw(sysfs))
            .map_err(|reason| AtaError::config("usb_hid_device", reason))?,
    };
    let file = File::open(&path).map_err(|e| hid_error(&path, e))?;
    let (tx, rx) = channel();
    if path.starts_with("/dev/input") {
        info!(device = %path.display(), "USB handset keys from evdev (hook only if mapped)");
        std::thread::spawn(move || read_evdev(file, tx));
    } else {
        let dir = detect::hidraw_sysfs_dir(sysfs, &path)
            .ok_or_else(|| hid_error(&path, "not a hidraw node"))?;
        let descriptor =
            std::fs::read(dir.join("report_descriptor")).map_err(|e| hid_error(&path, e))?;
        let layout = ReportLayout::parse(&descriptor).map_err(|e| hid_error(&path, e))?;
        if !layout.has_hook_switch() {
            warn!(device = %path.display(), "the handset reports no Hook Switch");
        }
        info!(device = %path.display(), "USB handset hook and keys from hidraw");
        std::thread::spawn(move || read_hidraw(file, layout, tx));
    }
    Ok(rx)
}

fn read_hidraw(mut file: File, layout: ReportLayout, tx: Sender<Reading>) {
    // hidraw gives one whole report per read; 64 bytes is a full-speed interrupt packet.
    let mut report = [0u8; 256];
    loop {
        match file.read(&mut report) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let state = layout.decode(&report[..n]);
                if tx.send(Reading::Report(Instant::now(), state)).is_err() {
                    break;
                }
            }
        }
    }
    warn!("USB handset HID device closed");
}

fn read_evdev(mut file: File, tx: Sender<Reading>) {
    let mut record = [0u8; evdev::EVENT_SIZE];
    while file.read_exact(&mut record).is_ok() {
        if let Some(event) = evdev::parse_event(&record) {
            if tx.send(Reading::Key(Instant::now(), event)).is_err() {
                return;
            }
        }
    }
    warn!("USB handset input device closed");
}

impl Handset for UsbLine {
    fn set_tone(&mut self, tone: Option<Tone>) {
        self.tone = tone.map(ToneGenerator::new);
    }
    fn tone(&self) -> Option<Tone> {
        self.tone.as_ref().map(|g| g.tone())
    }
    fn set_ring_cadence(&mut self, cadence: &'static [(u32, u32)]) {
        self.ringer.set_cadence(cadence);
    }
    fn set_ringer(&mut self, on: bool) {
        // The HID Ringer output (Telephony 0x9E) is not driven yet; the earpiece tick
        // sounds the ring through the speaker, and the status shows it.
        self.ringing = on;
    }
    fn is_ringing(&self) -> bool {
        self.ringing
    }
    fn microphone_frame(&mut self) -> Vec<i16> {
        let mut frame = [0.0f32; FRAME_SAMPLES];
        if let Ok(mut buffer) = self.capture.lock() {
            buffer.pop(&mut frame);
        }
        frame.iter().map(|&s| to_i16(s)).collect()
    }
    fn queue_received(&mut self, frame: Vec<i16>) {
        // Drift is absorbed at the card; this only bridges the media and line timers.
        if self.received.len() >= 10 {
            self.received.pop_front();
        }
        self.received.push_back(frame);
    }
    fn clear_received(&mut self) {
        self.received.clear();
    }
    fn earpiece_tick(&mut self, off_hook: bool) -> Result<(), AtaError> {
        let frame = crate::line::earpiece::earpiece_frame(self.tone.as_mut(), &mut self.received);
        // On-hook the earpiece is silent but for the ring, and the card keeps its clock:
        // feed it silence so the drift loop stays locked. Off-hook the ring stops at once,
        // even before the line has called `set_ringer(false)`.
        let mut frame = if off_hook {
            frame
        } else {
            vec![0; FRAME_SAMPLES]
        };
        self.ringer.mix_into(self.ringing && !off_hook, &mut frame);
        let mut out = Vec::with_capacity(FRAME_SAMPLES * 6);
        if let Ok(mut buffer) = self.playback.lock() {
            self.to_card.set_correction(buffer.correction());
            self.to_card.process_i16(&frame, &mut out);
            buffer.push(&out);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), AtaError> {
        Ok(())
    }
    fn poll_event(&mut self) -> Option<HandsetEvent> {
        while let Ok(reading) = self.readings.try_recv() {
            match reading {
                Reading::Report(at, state) => {
                    if let Some(off_hook) = state.off_hook {
                        self.input.hook(at, off_hook);
                    }
                    if state.carried {
                        self.input.flash_button(at, state.flash);
                        self.input.keys(at, &state.keys);
                    }
                }
                Reading::Key(at, event) => self.evdev_keys.apply(event, at, &mut self.input),
            }
        }
        // The line asks every 20 ms tick; that is the debouncer's clock.
        self.input.handle_timeout(Instant::now());
        self.input.poll_event()
    }
}
