//! Clock drift between the line (its 20 ms tick, locked to RTP's 8 kHz) and the sound
//! card (its own crystal, typically within ±0.1 % of nominal): a [`DriftBuffer`] sits
//! between the two clocks, one side pushing and the other popping, and tells the pushing
//! side's [`Resampler`](super::resample::Resampler) how much faster or slower to make
//! samples so the fill stays near a target. Without it a card 0.1 % fast empties a
//! 60 ms buffer in a minute and then clicks every few seconds; 0.1 % slow grows the
//! latency without bound.
//!
//! The controller is a gentle PI loop on the smoothed fill level (smoothed because the
//! fill saw-tooths by a whole frame or card period at every push and pop). Its correction
//! is limited to ±0.5 %, far more than any crystal, and far less than a pitch change
//! anyone hears. Pure: no clock and no lock inside; `device.rs` shares one per direction
//! between the line and the card's callback.

use std::collections::VecDeque;

/// The largest correction: ±0.5 %.
const MAX_CORRECTION: f64 = 0.005;
/// Proportional gain: correction per unit of relative fill error.
const GAIN_P: f64 = 0.005;
/// Integral gain per update (several hundred updates a second on both sides).
const GAIN_I: f64 = 0.000_01;
/// Weight of one fill reading in the smoothed fill; about a second of readings.
const SMOOTHING: f64 = 0.005;

/// A FIFO of mono samples with a fill-level controller.
#[derive(Debug, Clone)]
pub struct DriftBuffer {
    samples: VecDeque<f32>,
    target: usize,
    capacity: usize,
    /// Silence is played until the fill first reaches the target (and after an underflow).
    primed: bool,
    smoothed: f64,
    integral: f64,
    underflows: u64,
    overflows: u64,
}

impl DriftBuffer {
    /// A buffer aiming at `target` samples and holding at most `capacity`.
    pub fn new(target: usize, capacity: usize) -> DriftBuffer {
        let target = target.max(1);
        DriftBuffer {
            samples: VecDeque::with_capacity(capacity),
            target,
            capacity: capacity.max(2 * target),
            primed: false,
            smoothed: target as f64,
            integral: 0.0,
            underflows: 0,
            overflows: 0,
        }
    }

    /// Adds samples; those beyond the capacity are dropped (and counted).
    pub fn push(&mut self, input: &[f32]) {
        let room = self.capacity - self.samples.len();
        if input.len() > room {
            self.overflows += 1;
        }
        self.samples.extend(&input[..input.len().min(room)]);
        if self.samples.len() >= self.target {
            self.primed = true;
        }
        self.observe();
    }

    /// Fills `out` from the buffer; silence while priming, and on underflow (counted),
    /// after which it primes again so one late push does not become a stutter.
    pub fn pop(&mut self, out: &mut [f32]) {
        if !self.primed {
            out.fill(0.0);
            return;
        }
        let available = self.samples.len().min(out.len());
        for (slot, sample) in out.iter_mut().zip(self.samples.drain(..available)) {
            *slot = sample;
        }
        if available < out.len() {
            out[available..].fill(0.0);
            self.underflows += 1;
            self.primed = false;
        }
        self.observe();
    }

    /// Empties the buffer (the call ended); the controller keeps what it learned.
    pub fn clear(&mut self) {
        self.samples.clear();
        self.primed = false;
    }

    /// How many output samples the pushing side should make per nominal one.
    pub fn correction(&self) -> f64 {
        if !self.primed {
            return 1.0;
        }
        let error = (self.target as f64 - self.smoothed) / self.target as f64;
        1.0 + (GAIN_P * error + self.integral).clamp(-MAX_CORRECTION, MAX_CORRECTION)
    }

    /// Samples held now.
    pub fn fill(&self) -> usize {
        self.samples.len()
    }

    /// Pops that found too few samples.
    pub fn underflows(&self) -> u64 {
        self.underflows
    }

    /// Pushes that found too little room.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    fn observe(&mut self) {
        if !self.primed {
            return;
        }
        self.smoothed += SMOOTHING * (self.samples.len() as f64 - self.smoothed);
        let error = (self.target as f64 - self.smoothed) / self.target as f64;
        // Anti-windup: the integral alone never asks for more than the limit.
        self.integral = (self.integral + GAIN_I * error).clamp(-MAX_CORRECTION, MAX_CORRECTION);
    }
}

#[cfg(test)]
mod tests {
    use super::super::resample::Resampler;
    use super::*;

    /// What one simulated minute did to the buffer.
    struct Run {
        underflows: u64,
        overflows: u64,
        /// Lowest and highest fill after the first 10 s, in ms at the buffer's rate.
        fill_ms: (f64, f64),
    }

    /// Playback: the line pushes 20 ms at 8 kHz through a resampler to 48 kHz every 20 ms
    /// of line time; the card pops 10 ms periods by its own clock, `card_speed` times the
    /// nominal rate. `controlled = false` leaves the resampler's ratio alone.
    fn playback(card_speed: f64, controlled: bool) -> Run {
        let mut buffer = DriftBuffer::new(2880, 9600); // 60 ms target, 200 ms room
        let mut resampler = Resampler::new(8000, 48_000);
        let (mut line_at, mut card_at) = (0.0f64, 0.0f64);
        let mut fill_ms = (f64::MAX, 0.0f64);
        let mut scratch = Vec::new();
        let mut period = vec![0.0f32; 480];
        while line_at < 60.0 || card_at < 60.0 {
            if line_at <= card_at {
                if controlled {
                    resampler.set_correction(buffer.correction());
                }
                scratch.clear();
                resampler.process(&[0.1; 160], &mut scratch);
                buffer.push(&scratch);
                line_at += 0.020;
            } else {
                buffer.pop(&mut period);
                card_at += 0.010 / card_speed;
                if card_at > 10.0 {
                    let ms = buffer.fill() as f64 / 48.0;
                    fill_ms = (fill_ms.0.min(ms), fill_ms.1.max(ms));
                }
            }
        }
        Run {
            underflows: buffer.underflows(),
            overflows: buffer.overflows(),
            fill_ms,
        }
    }

    /// Capture: the card pushes 10 ms periods by its clock, resampled to 8 kHz; the line
    /// pops a 160-sample frame every 20 ms of line time.
    fn capture(card_speed: f64) -> Run {
        let mut buffer = DriftBuffer::new(480, 1600); // 60 ms target, 200 ms room
        let mut resampler = Resampler::new(48_000, 8000);
        let (mut line_at, mut card_at) = (0.0f64, 0.0f64);
        let mut fill_ms = (f64::MAX, 0.0f64);
        let mut scratch = Vec::new();
        let mut frame = vec![0.0f32; 160];
        while line_at < 60.0 || card_at < 60.0 {
            if card_at <= line_at {
                resampler.set_correction(buffer.correction());
                scratch.clear();
                resampler.process(&[0.1; 480], &mut scratch);
                buffer.push(&scratch);
                card_at += 0.010 / card_speed;
            } else {
                buffer.pop(&mut frame);
                line_at += 0.020;
                if line_at > 10.0 {
                    let ms = buffer.fill() as f64 / 8.0;
                    fill_ms = (fill_ms.0.min(ms), fill_ms.1.max(ms));
                }
            }
        }
        Run {
            underflows: buffer.underflows(),
            overflows: buffer.overflows(),
            fill_ms,
        }
    }

    #[test]
    fn a_card_a_tenth_of_a_percent_off_neither_starves_nor_floods_playback() {
        for speed in [1.001, 0.999] {
            let run = playback(speed, true);
            assert_eq!((run.underflows, run.overflows), (0, 0), "speed {speed}");
            // Bounded latency: within 25 ms of the 60 ms target for the whole minute.
            assert!(
                run.fill_ms.0 > 35.0 && run.fill_ms.1 < 85.0,
                "speed {speed}: {:?}",
                run.fill_ms
            );
        }
    }

    #[test]
    fn a_card_a_tenth_of_a_percent_off_neither_starves_nor_floods_capture() {
        for speed in [1.001, 0.999] {
            let run = capture(speed);
            assert_eq!((run.underflows, run.overflows), (0, 0), "speed {speed}");
            assert!(
                run.fill_ms.0 > 35.0 && run.fill_ms.1 < 85.0,
                "speed {speed}: {:?}",
                run.fill_ms
            );
        }
    }

    #[test]
    fn without_the_correction_the_same_drift_moves_the_latency_away() {
        // The simulation really drifts: a fixed ratio ends 0.1 % of a minute (60 ms) off.
        let fast = playback(1.001, false);
        assert!(
            fast.fill_ms.0 < 20.0 || fast.underflows > 0,
            "{:?}",
            fast.fill_ms
        );
        let slow = playback(0.999, false);
        assert!(slow.fill_ms.1 > 100.0, "{:?}", slow.fill_ms);
    }

    #[test]
    fn silence_plays_until_the_target_is_reached_and_after_an_underflow() {
        let mut buffer = DriftBuffer::new(4, 16);
        buffer.push(&[1.0; 3]);
        let mut out = [9.0; 2];
        buffer.pop(&mut out);
        assert_eq!(out, [0.0, 0.0]);
        buffer.push(&[1.0; 1]);
        buffer.pop(&mut out);
        assert_eq!(out, [1.0, 1.0]);
        let mut big = [9.0; 4];
        buffer.pop(&mut big);
        assert_eq!(big, [1.0, 1.0, 0.0, 0.0]);
        assert_eq!(buffer.underflows(), 1);
        buffer.push(&[1.0; 2]);
        buffer.pop(&mut out);
        assert_eq!(out, [0.0, 0.0], "primes again after an underflow");
    }
}
