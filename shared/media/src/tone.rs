//! Call-progress and DTMF tone generators, as the ATA 186 plays them to the
//! handset: North American dial, stutter dial, ringback, busy, reorder,
//! call-waiting and off-hook warning tones, and the sixteen DTMF keys.
//!
//! Output is 8 kHz i16 PCM, produced frame by frame. Both the waveform and the
//! cadence are functions of the sample count alone, so the generator never
//! needs a clock and its output is the same on every run.

use std::f64::consts::TAU;

use crate::dtmf::DtmfDigit;

/// Sample rate of everything the generator produces.
pub const TONE_SAMPLE_RATE: u32 = 8000;

/// Linear peak amplitude of a 0 dBm0 sine: G.711 full scale (32124 in 16-bit
/// terms) is +3.17 dBm0, so 0 dBm0 is 32124 / 10^(3.17/20).
const ZERO_DBM0_PEAK: f64 = 22_000.0;

/// The tones an ATA plays. Levels and cadences follow the North American
/// precise tone plan (as in Telcordia GR-506): dial -13 dBm0 per component,
/// ringback -19, busy and reorder -24, off-hook warning loud to wake a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// 350 + 440 Hz, continuous.
    Dial,
    /// Dial tone that stutters first (0.1 s on, 0.1 s off, ten times, then
    /// steady): messages wait, or every call is forwarded (GR-506 "stutter").
    StutterDial,
    /// 440 Hz, 0.3 s every 10 s, over the call's audio: a second call waits.
    CallWaiting,
    /// 440 + 480 Hz, 2 s on, 4 s off.
    Ringback,
    /// 480 + 620 Hz, 0.5 s on, 0.5 s off.
    Busy,
    /// 480 + 620 Hz, 0.25 s on, 0.25 s off ("fast busy").
    Reorder,
    /// 1400 + 2060 + 2450 + 2600 Hz, 0.1 s on, 0.1 s off (receiver off hook).
    OffHookWarning,
    /// A DTMF key's row and column frequencies, continuous while held.
    Dtmf(DtmfDigit),
}

/// On/off cadence in samples; `off == 0` means continuous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// Samples of tone per cycle.
    pub on: u64,
    /// Samples of silence per cycle.
    pub off: u64,
    /// Cycles played before the tone turns steady; 0 = the cadence repeats forever.
    pub steady_after: u64,
}

impl Tone {
    /// Component frequencies in Hz.
    pub fn frequencies(self) -> Vec<f64> {
        match self {
            Tone::Dial | Tone::StutterDial => vec![350.0, 440.0],
            Tone::CallWaiting => vec![440.0],
            Tone::Ringback => vec![440.0, 480.0],
            Tone::Busy | Tone::Reorder => vec![480.0, 620.0],
            Tone::OffHookWarning => vec![1400.0, 2060.0, 2450.0, 2600.0],
            Tone::Dtmf(d) => {
                let (row, col) = d.frequencies();
                vec![row, col]
            }
        }
    }

    /// Level of each component in dBm0.
    pub fn level_dbm0(self) -> f64 {
        match self {
            Tone::Dial | Tone::StutterDial | Tone::CallWaiting => -13.0,
            Tone::Ringback => -19.0,
            Tone::Busy | Tone::Reorder => -24.0,
            // Really +3 dBm0 or louder on a line; four components at that level
            // would clip 16-bit PCM, so each is held where the sum just fits.
            Tone::OffHookWarning => -10.0,
            // A typical DTMF sender level (ITU-T Q.23 allows -3 to -15 per tone).
            Tone::Dtmf(_) => -8.0,
        }
    }

    /// The tone's cadence.
    pub fn cadence(self) -> Cadence {
        let ms = |ms: u64| ms * u64::from(TONE_SAMPLE_RATE) / 1000;
        match self {
            Tone::Dial | Tone::Dtmf(_) => Cadence::repeating(1, 0),
            Tone::StutterDial => Cadence {
                steady_after: 10,
                ..Cadence::repeating(ms(100), ms(100))
            },
            Tone::CallWaiting => Cadence::repeating(ms(300), ms(9700)),
            Tone::Ringback => Cadence::repeating(ms(2000), ms(4000)),
            Tone::Busy => Cadence::repeating(ms(500), ms(500)),
            Tone::Reorder => Cadence::repeating(ms(250), ms(250)),
            Tone::OffHookWarning => Cadence::repeating(ms(100), ms(100)),
        }
    }
}

impl Cadence {
    /// `on` samples of tone, `off` of silence, forever.
    pub const fn repeating(on: u64, off: u64) -> Cadence {
        Cadence {
            on,
            off,
            steady_after: 0,
        }
    }
}

/// Peak linear amplitude for a level in dBm0.
pub fn dbm0_to_amplitude(level_dbm0: f64) -> f64 {
    ZERO_DBM0_PEAK * 10f64.powf(level_dbm0 / 20.0)
}

/// Produces a tone's samples, continuing where the last call stopped.
#[derive(Debug, Clone)]
pub struct ToneGenerator {
    tone: Tone,
    frequencies: Vec<f64>,
    amplitude: f64,
    cadence: Cadence,
    position: u64,
}

impl ToneGenerator {
    /// A generator at the start of the tone's first "on" period.
    pub fn new(tone: Tone) -> Self {
        ToneGenerator {
            tone,
            frequencies: tone.frequencies(),
            amplitude: dbm0_to_amplitude(tone.level_dbm0()),
            cadence: tone.cadence(),
            position: 0,
        }
    }

    /// The tone being played.
    pub fn tone(&self) -> Tone {
        self.tone
    }

    /// Samples produced so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// True if the next sample falls in an "on" period.
    pub fn is_on(&self) -> bool {
        self.on_at(self.position)
    }

    fn on_at(&self, n: u64) -> bool {
        let Cadence {
            on,
            off,
            steady_after,
        } = self.cadence;
        let steady = steady_after > 0 && n >= steady_after * (on + off);
        off == 0 || steady || n % (on + off) < on
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out.iter_mut() {
            let n = self.position;
            *sample = if self.on_at(n) {
                // Phase from the sample index modulo one second keeps f64
                // precision over hours of dial tone; every frequency here is a
                // whole number of Hz, so the wave is periodic in one second.
                let t = (n % u64::from(TONE_SAMPLE_RATE)) as f64 / f64::from(TONE_SAMPLE_RATE);
                let v: f64 = self.frequencies.iter().map(|f| (TAU * f * t).sin()).sum();
                (v * self.amplitude).round().clamp(-32768.0, 32767.0) as i16
            } else {
                0
            };
            self.position += 1;
        }
    }

    /// The next `len` samples (160 for a 20 ms frame).
    pub fn next_frame(&mut self, len: usize) -> Vec<i16> {
        let mut frame = vec![0; len];
        self.fill(&mut frame);
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::tone_amplitude;

    fn on_off_runs(tone: Tone, samples: usize) -> Vec<(bool, usize)> {
        let mut g = ToneGenerator::new(tone);
        let pcm = g.next_frame(samples);
        // A sine passes through zero now and then, so "on" is judged per
        // 5 ms chunk (which divides every cadence here), and runs are counted in chunks.
        let mut runs: Vec<(bool, usize)> = Vec::new();
        for frame in pcm.chunks(40) {
            let on = frame.iter().any(|&s| s != 0);
            match runs.last_mut() {
                Some((state, n)) if *state == on => *n += frame.len(),
                _ => runs.push((on, frame.len())),
            }
        }
        runs
    }

    #[test]
    fn dial_tone_has_energy_at_350_and_440_hz_and_not_at_1khz() {
        let pcm = ToneGenerator::new(Tone::Dial).next_frame(800);
        let expected = dbm0_to_amplitude(-13.0);
        for f in [350.0, 440.0] {
            let a = tone_amplitude(&pcm, f, TONE_SAMPLE_RATE);
            assert!(
                (a - expected).abs() < expected * 0.05,
                "{f} Hz amplitude {a}"
            );
        }
        assert!(tone_amplitude(&pcm, 1000.0, TONE_SAMPLE_RATE) < expected * 0.02);
        assert!(tone_amplitude(&pcm, 480.0, TONE_SAMPLE_RATE) < expected * 0.02);
    }

    #[test]
    fn ringback_cadence_is_exactly_16000_samples_on_then_32000_off() {
        let runs = on_off_runs(Tone::Ringback, 2 * 48_000);
        assert_eq!(
            runs,
            [
                (true, 16_000),
                (false, 32_000),
                (true, 16_000),
                (false, 32_000)
            ]
        );
    }

    #[test]
    fn busy_cadence_is_half_a_second_on_and_off() {
        let runs = on_off_runs(Tone::Busy, 16_000);
        assert_eq!(
            runs,
            [(true, 4000), (false, 4000), (true, 4000), (false, 4000)]
        );
    }

    #[test]
    fn reorder_cadence_is_a_quarter_second_on_and_off() {
        let runs = on_off_runs(Tone::Reorder, 8000);
        assert_eq!(
            runs,
            [(true, 2000), (false, 2000), (true, 2000), (false, 2000)]
        );
    }

    #[test]
    fn cadence_continues_across_frame_boundaries() {
        let mut framed = ToneGenerator::new(Tone::Busy);
        let mut pieces = Vec::new();
        for len in [7usize, 160, 3993, 4000, 1] {
            pieces.extend(framed.next_frame(len));
        }
        let whole = ToneGenerator::new(Tone::Busy).next_frame(pieces.len());
        assert_eq!(pieces, whole);
        assert_eq!(framed.position(), 8161);
        assert!(framed.is_on());
    }

    #[test]
    fn stutter_dial_stutters_ten_times_then_stays_on() {
        let runs = on_off_runs(Tone::StutterDial, 3 * 8000);
        let stutters: Vec<_> = runs.iter().take(20).copied().collect();
        for (i, run) in stutters.iter().enumerate() {
            assert_eq!(*run, (i % 2 == 0, 800), "run {i}");
        }
        assert_eq!(runs[20], (true, 3 * 8000 - 20 * 800), "steady after 2 s");
    }

    #[test]
    fn call_waiting_is_a_300_ms_beep_of_440_hz_every_10_s() {
        let runs = on_off_runs(Tone::CallWaiting, 25 * 8000);
        assert_eq!(
            &runs[..5],
            &[
                (true, 2400),
                (false, 77_600),
                (true, 2400),
                (false, 77_600),
                (true, 2400)
            ]
        );
        let beep = ToneGenerator::new(Tone::CallWaiting).next_frame(2400);
        assert!(tone_amplitude(&beep, 440.0, 8000) > 10.0 * tone_amplitude(&beep, 350.0, 8000));
    }

    #[test]
    fn busy_tone_is_480_and_620_hz() {
        let pcm = ToneGenerator::new(Tone::Busy).next_frame(800);
        let a480 = tone_amplitude(&pcm, 480.0, TONE_SAMPLE_RATE);
        let a620 = tone_amplitude(&pcm, 620.0, TONE_SAMPLE_RATE);
        let a350 = tone_amplitude(&pcm, 350.0, TONE_SAMPLE_RATE);
        assert!(a480 > 10.0 * a350 && a620 > 10.0 * a350);
    }

    #[test]
    fn off_hook_warning_does_not_clip() {
        let pcm = ToneGenerator::new(Tone::OffHookWarning).next_frame(8000);
        assert!(pcm.iter().all(|&s| s > i16::MIN && s < i16::MAX));
        assert!(pcm.iter().any(|&s| s.unsigned_abs() > 10_000));
    }

    #[test]
    fn dtmf_tone_for_each_key_has_its_row_and_column() {
        for c in "0123456789*#ABCD".chars() {
            let d = DtmfDigit::from_char(c).unwrap();
            let pcm = ToneGenerator::new(Tone::Dtmf(d)).next_frame(800);
            let (row, col) = d.frequencies();
            let expected = dbm0_to_amplitude(-8.0);
            assert!(
                tone_amplitude(&pcm, row, TONE_SAMPLE_RATE) > expected * 0.9,
                "{c}"
            );
            assert!(
                tone_amplitude(&pcm, col, TONE_SAMPLE_RATE) > expected * 0.9,
                "{c}"
            );
        }
    }
}
