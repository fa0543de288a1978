//! What the earpiece plays each 20 ms, shared by every handset backend: the line's tone, or
//! the call's audio, with the call-waiting tone heard over the call rather than instead of
//! it, so the subscriber can keep talking while it beeps.

use std::collections::VecDeque;

use dialtone_media::{Tone, ToneGenerator, FRAME_SAMPLES};

/// The next 20 ms for the earpiece: the tone, or the call's audio; the call-waiting tone is
/// heard over the call's audio, not instead of it (the subscriber keeps talking).
pub fn earpiece_frame(
    tone: Option<&mut ToneGenerator>,
    received: &mut VecDeque<Vec<i16>>,
) -> Vec<i16> {
    let mut call = || {
        received
            .pop_front()
            .unwrap_or_else(|| vec![0; FRAME_SAMPLES])
    };
    match tone {
        Some(generator) if generator.tone() == Tone::CallWaiting => {
            let beep = generator.next_frame(FRAME_SAMPLES);
            let mut frame = call();
            frame.resize(FRAME_SAMPLES, 0);
            for (sample, extra) in frame.iter_mut().zip(beep) {
                *sample = sample.saturating_add(extra);
            }
            frame
        }
        Some(generator) => generator.next_frame(FRAME_SAMPLES),
        None => call(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialtone_media::tone_amplitude;

    #[test]
    fn the_call_waiting_tone_is_heard_over_the_call_and_other_tones_replace_it() {
        let call_audio: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|i| ((i as f64 * std::f64::consts::TAU * 1000.0 / 8000.0).sin() * 8000.0) as i16)
            .collect();
        let mut received = VecDeque::from([call_audio.clone(), call_audio.clone()]);
        let mut waiting = ToneGenerator::new(Tone::CallWaiting);
        let frame = earpiece_frame(Some(&mut waiting), &mut received);
        assert!(
            tone_amplitude(&frame, 1000.0, 8000) > 1000.0,
            "the call goes on"
        );
        assert!(
            tone_amplitude(&frame, 440.0, 8000) > 1000.0,
            "and the beep is heard"
        );
        let mut dial = ToneGenerator::new(Tone::Dial);
        let frame = earpiece_frame(Some(&mut dial), &mut received);
        assert!(tone_amplitude(&frame, 1000.0, 8000) < 100.0);
    }
}
