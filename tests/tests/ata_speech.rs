//! End-to-end speech: espeak-ng says a sentence, the test resamples it to 8 kHz (a windowed
//! sinc low-pass, so nothing above 4 kHz folds back), A plays it as its microphone
//! (`--audio-in FILE.wav`, looped) in a direct call to B, and B's recording must follow the
//! sentence's loudness contour: the best normalised cross-correlation of the two 10 ms
//! energy envelopes, over every alignment, must pass [`THRESHOLD`]. The same check must
//! refuse a recording of silence and a recording of a different sentence, so it can fail.
//!
//! Without `espeak-ng` installed the test prints `skipped: espeak-ng not installed` locally
//! and fails in CI (`tool_available`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::{
    ata_line_command, ata_metric, read_recording, start_ata, tool_available, wait_for_line,
    wait_until, write_wav_8k,
};

const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");
/// 10 ms at 8 kHz.
const ENVELOPE_FRAME: usize = 80;
/// What counts as "the same contour": G.711 and a jitter buffer keep speech envelopes near
/// 0.9; unrelated speech stays well below.
const THRESHOLD: f64 = 0.7;

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog. Dialtone is calling.";
const OTHER_SENTENCE: &str = "Seven silver bells ring softly in the morning mist.";

/// espeak-ng's output (16-bit mono at its own rate, 22 050 Hz) at 8 kHz.
fn speak(text: &str, dir: &Path, name: &str) -> Vec<i16> {
    let raw = dir.join(format!("{name}-raw.wav"));
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng runs");
    assert!(status.success(), "espeak-ng failed: {status}");
    let reader = hound::WavReader::open(&raw).expect("espeak-ng wrote a WAV");
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let samples: Vec<f64> = reader
        .into_samples::<i16>()
        .step_by(channels)
        .map(|s| f64::from(s.expect("sample")))
        .collect();
    resample(&samples, spec.sample_rate, 8000)
}

/// Band-limited resampling: each output sample is a Hann-windowed sinc interpolation of the
/// input, with the cut-off at 90 % of the output's Nyquist frequency.
fn resample(input: &[f64], from: u32, to: u32) -> Vec<i16> {
    use std::f64::consts::PI;
    const HALF_TAPS: i64 = 24;
    let ratio = f64::from(from) / f64::from(to);
    let cutoff = 0.9 * f64::from(to.min(from)) / f64::from(from);
    let out_len = (input.len() as f64 / ratio) as usize;
    (0..out_len)
        .map(|n| {
            let centre = n as f64 * ratio;
            let first = centre.floor() as i64 - HALF_TAPS;
            let mut sum = 0.0;
            for i in first..=first + 2 * HALF_TAPS {
                let Some(&x) = usize::try_from(i).ok().and_then(|i| input.get(i)) else {
                    continue;
                };
                let d = i as f64 - centre;
                let sinc = if d.abs() < 1e-9 {
                    1.0
                } else {
                    (PI * cutoff * d).sin() / (PI * cutoff * d)
                };
                let window = 0.5 + 0.5 * (PI * d / (HALF_TAPS as f64 + 1.0)).cos();
                sum += x * cutoff * sinc * window;
            }
            sum.clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
        })
        .collect()
}

/// Log energy per 10 ms frame (+1 so silence is 0, not minus infinity).
fn envelope(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks_exact(ENVELOPE_FRAME)
        .map(|frame| {
            let energy: f64 = frame.iter().map(|&s| f64::from(s).powi(2)).sum();
            (1.0 + energy / ENVELOPE_FRAME as f64).ln()
        })
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (mean_a, mean_b) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - mean_a, y - mean_b);
        cov += dx * dy;
        var_a += dx * dx;
        var_b += dy * dy;
    }
    if var_a < 1e-9 || var_b < 1e-9 {
        // A flat envelope (silence) follows no contour.
        return 0.0;
    }
    cov / (var_a * var_b).sqrt()
}

/// The best correlation of the sentence's envelope against any stretch of the recording.
fn best_match(sentence: &[i16], recording: &[i16]) -> f64 {
    let (reference, heard) = (envelope(sentence), envelope(recording));
    assert!(
        heard.len() >= reference.len(),
        "the recording ({} frames) is shorter than the sentence ({} frames)",
        heard.len(),
        reference.len()
    );
    (0..=heard.len() - reference.len())
        .map(|lag| correlation(&reference, &heard[lag..lag + reference.len()]))
        .fold(f64::MIN, f64::max)
}

#[test]
fn b_hears_the_sentence_a_says_and_the_check_refuses_silence_and_other_speech() {
    speech_call(&[]);
}

/// The same over Opus (`cargo test -p dialtone-e2e --features opus --test ata_speech`).
#[cfg(feature = "opus")]
#[test]
fn b_hears_the_sentence_over_opus() {
    speech_call(&["--codecs", "opus,pcmu"]);
}

/// A says the sentence to B, with `codec_flags` given to both ATAs.
fn speech_call(codec_flags: &[&str]) {
    if !tool_available("espeak-ng") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let sentence = speak(SENTENCE, dir.path(), "sentence");
    let other = speak(OTHER_SENTENCE, dir.path(), "other");
    let spoken = dir.path().join("sentence.wav");
    write_wav_8k(&spoken, &sentence);
    let b_wav = dir.path().join("b.wav");

    let b_args = [
        "--line",
        "9000:secret",
        "--register-interval",
        "0",
        "--audio-out",
        b_wav.to_str().expect("utf8"),
        "--auto-answer",
        "0.2",
    ];
    let b = start_ata(ATA, &[&b_args[..], codec_flags].concat());
    let b_sip = b.sip.to_string();
    let a_args = [
        "--line",
        "8000:secret",
        "--register-interval",
        "0",
        "--proxy",
        &b_sip,
        "--audio-in",
        spoken.to_str().expect("utf8"),
    ];
    let a = start_ata(ATA, &[&a_args[..], codec_flags].concat());
    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    // B's line shows "connected" as soon as it answers; the codec follows once its call actor
    // has built the answer, so wait for both.
    let connected = wait_for_line(b.control, 1, "B connected with a codec", |s| {
        s.state == "connected" && s.call.as_ref().is_some_and(|c| c.codec.is_some())
    });
    if codec_flags.iter().any(|f| f.starts_with("opus")) {
        let codec = connected.call.and_then(|c| c.codec).unwrap_or_default();
        assert_eq!(codec, "opus/48000/2", "the call must run on Opus");
    }
    // The sentence loops at A: two of its lengths and a second of slack guarantee that one
    // whole repetition lies inside B's recording.
    let packets = (2 * sentence.len() / 160 + 50) as f64;
    let received = wait_until(Duration::from_secs(30), || {
        ata_metric(b.control, "dialtone_ata_rtp_packets_received_total") >= packets
    });
    assert!(received, "B did not receive {packets} RTP packets in 30 s");
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE", |s| {
        s.state == "idle" && s.call.is_none()
    });

    let heard = read_recording(&b_wav);
    let score = best_match(&sentence, &heard);
    assert!(
        score > THRESHOLD,
        "B's recording should follow the sentence: correlation {score:.3} <= {THRESHOLD}"
    );
    let silence = vec![0i16; heard.len()];
    let silence_score = best_match(&sentence, &silence);
    assert!(
        silence_score < THRESHOLD,
        "silence must not pass the check: {silence_score:.3}"
    );
    let mut other_speech = Vec::new();
    while other_speech.len() < heard.len() {
        other_speech.extend_from_slice(&other);
    }
    let other_score = best_match(&sentence, &other_speech);
    assert!(
        other_score < THRESHOLD,
        "another sentence must not pass the check: {other_score:.3}"
    );
    eprintln!(
        "speech correlation: heard {score:.3}, silence {silence_score:.3}, other sentence {other_score:.3}"
    );
}
