//! The tones of the two-way-audio tests: each side of a call plays a sine of its own
//! frequency, and what a side heard must carry the other side's tone, not its own (measured
//! with dialtone-media's Goertzel filter). Recordings are read and written with
//! [`crate::read_recording`] and [`crate::write_wav_8k`].

use dialtone_media::tone_amplitude;

/// Sample `i` of a sine at `hz`, 8 kHz, a quarter of full scale.
pub fn sine_sample(hz: f64, i: u64) -> i16 {
    let t = i as f64 / 8000.0;
    ((std::f64::consts::TAU * hz * t).sin() * 8000.0) as i16
}

/// `seconds` of a sine at `hz`, 8 kHz, a quarter of full scale.
pub fn sine(hz: f64, seconds: u32) -> Vec<i16> {
    (0..u64::from(8000 * seconds))
        .map(|i| sine_sample(hz, i))
        .collect()
}

/// Asserts that `samples`, what `who` heard, carry the other side's tone at `heard` Hz
/// clearly (amplitude over 1000) and at least five times louder than `who`'s own at `own` Hz.
#[track_caller]
pub fn assert_hears_other_tone(who: &str, samples: &[i16], heard: f64, own: f64) {
    let (other, itself) = (
        tone_amplitude(samples, heard, 8000),
        tone_amplitude(samples, own, 8000),
    );
    assert!(
        other > 1000.0 && other > 5.0 * itself.max(1.0),
        "{who} should hear {heard} Hz (amplitude {other:.0}) over its own {own} Hz \
         ({itself:.0}) in {} samples",
        samples.len()
    );
}

/// Asserts that `samples`, what `who` heard during one phase of a call, carry `hz` clearly
/// (amplitude over 300).
#[track_caller]
pub fn assert_hears(who: &str, samples: &[i16], hz: f64) {
    let amplitude = tone_amplitude(samples, hz, 8000);
    assert!(
        amplitude > 300.0,
        "{who} should hear {hz} Hz: amplitude {amplitude:.0} in {} samples",
        samples.len()
    );
}

/// Asserts that `samples` carry no more than a trace of `hz` (amplitude under 100).
#[track_caller]
pub fn assert_does_not_hear(who: &str, samples: &[i16], hz: f64) {
    let amplitude = tone_amplitude(samples, hz, 8000);
    assert!(
        amplitude < 100.0,
        "{who} should not hear {hz} Hz: amplitude {amplitude:.0} in {} samples",
        samples.len()
    );
}
