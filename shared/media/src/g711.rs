//! G.711 companding (ITU-T G.711): mu-law (PCMU, North America) and A-law
//! (PCMA, elsewhere), one byte per 8 kHz sample.
//!
//! Written from the segment/mantissa definition in the Recommendation rather
//! than from lookup tables: the encoders find the segment from the position of
//! the highest set bit, which is branch-light and needs no 64 KiB table. The
//! `codec` module wraps these in the `AudioCodec` trait; the benchmark in
//! `benches/g711.rs` measures a 20 ms frame.

/// mu-law adds this bias before finding the segment, so segment 0 starts at 0.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude mu-law represents before the bias would overflow 15 bits.
const ULAW_CLIP: i32 = 32_635;

/// Encodes one 16-bit linear sample as mu-law.
///
/// The 14-bit G.711 input is the top of the 16-bit sample; louder samples clip.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let value = i32::from(sample);
    let sign: u8 = if value < 0 { 0x80 } else { 0x00 };
    let magnitude = value.unsigned_abs().min(ULAW_CLIP as u32) as i32 + ULAW_BIAS;
    // magnitude is in 132..=32767, so its top bit is bit 7..=14: segments 0..=7.
    let segment = (31 - magnitude.leading_zeros()) as i32 - 7;
    let mantissa = (magnitude >> (segment + 3)) & 0x0f;
    // Codes are sent inverted so that silence is not a run of zero bytes.
    !(sign | (segment as u8) << 4 | mantissa as u8)
}

/// Decodes one mu-law byte to a 16-bit linear sample.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let segment = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0f);
    // The middle of the quantisation interval, which halves the worst error.
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << segment) - ULAW_BIAS;
    // At most 32124, so it fits in i16.
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one 16-bit linear sample as A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    // A-law works on 13 bits; the arithmetic shift keeps the sign.
    let value = i32::from(sample) >> 3;
    // Even bits are inverted on the wire (G.711 table 1a), hence the 0x55.
    let (mask, magnitude) = if value >= 0 {
        (0xd5u8, value)
    } else {
        (0x55u8, -value - 1)
    };
    let code = if magnitude < 32 {
        (magnitude >> 1) as u8
    } else {
        // magnitude is in 32..=4095: top bit 5..=11 gives segments 1..=7.
        let segment = (31 - magnitude.leading_zeros()) as i32 - 4;
        ((segment << 4) | ((magnitude >> segment) & 0x0f)) as u8
    };
    code ^ mask
}

/// Decodes one A-law byte to a 16-bit linear sample.
pub fn alaw_to_linear(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = i32::from((code >> 4) & 0x07);
    let mantissa = i32::from(code & 0x0f);
    let magnitude = if segment == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (segment - 1)
    };
    // At most 32256; the sign bit set after un-inverting means positive.
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// Encodes a block of samples as mu-law, appending to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_ulaw(s)));
}

/// Decodes a block of mu-law bytes, appending to `out`.
pub fn decode_ulaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| ulaw_to_linear(c)));
}

/// Encodes a block of samples as A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| linear_to_alaw(s)));
}

/// Decodes a block of A-law bytes, appending to `out`.
pub fn decode_alaw(codes: &[u8], out: &mut Vec<i16>) {
    out.extend(codes.iter().map(|&c| alaw_to_linear(c)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_encodes_to_the_well_known_idle_codes() {
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_alaw(0), 0xd5);
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
    }

    #[test]
    fn full_scale_decodes_to_the_largest_g711_values() {
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(alaw_to_linear(0xaa), 32_256);
        assert_eq!(alaw_to_linear(0x2a), -32_256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xaa);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2a);
    }

    #[test]
    fn every_ulaw_code_decodes_and_re_encodes_to_itself_except_negative_zero() {
        for code in 0..=255u8 {
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7f is "-0", which decodes to 0 and comes back as "+0".
            let expected = if code == 0x7f { 0xff } else { code };
            assert_eq!(back, expected, "code {code:#04x}");
        }
    }

    #[test]
    fn every_alaw_code_decodes_and_re_encodes_to_itself() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "code {code:#04x}"
            );
        }
    }

    #[test]
    fn decoded_values_are_monotonic_in_the_code() {
        // Positive mu-law codes run 0xff (smallest) down to 0x80 (largest).
        let ulaw: Vec<i16> = (0x80..=0xffu8).rev().map(ulaw_to_linear).collect();
        assert!(ulaw.windows(2).all(|w| w[0] < w[1]));
        // A-law positive codes, un-inverted, run 0x80..=0xff.
        let alaw: Vec<i16> = (0x80..=0xffu8).map(|c| alaw_to_linear(c ^ 0x55)).collect();
        assert!(alaw.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ulaw_round_trip_error_is_at_most_half_a_step() {
        for s in -32_635..=32_635i32 {
            let back = i32::from(ulaw_to_linear(linear_to_ulaw(s as i16)));
            // Step size in segment e is 8 << e and |s| + 132 >= 128 << e.
            let bound = (s.abs() + ULAW_BIAS) / 32;
            assert!((back - s).abs() <= bound, "sample {s} came back as {back}");
        }
    }

    #[test]
    fn alaw_round_trip_error_is_at_most_half_a_step() {
        for s in -32_767..=32_767i32 {
            let back = i32::from(alaw_to_linear(linear_to_alaw(s as i16)));
            // Step is 16 below 512 and doubles per segment; |s| >= 256 << (e-1).
            let bound = (s.abs() / 32).max(8) + 8;
            assert!((back - s).abs() <= bound, "sample {s} came back as {back}");
        }
    }

    fn snr_db(original: &[i16], decoded: &[i16]) -> f64 {
        let signal: f64 = original.iter().map(|&s| f64::from(s).powi(2)).sum();
        let noise: f64 = original
            .iter()
            .zip(decoded)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        10.0 * (signal / noise).log10()
    }

    fn sine(freq: f64, amplitude: f64, n: usize) -> Vec<i16> {
        (0..n)
            .map(|i| {
                (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_1khz_sine_survives_ulaw_with_snr_above_30_db() {
        let pcm = sine(1004.0, 10_000.0, 8000);
        let mut codes = Vec::new();
        encode_ulaw(&pcm, &mut codes);
        let mut back = Vec::new();
        decode_ulaw(&codes, &mut back);
        assert_eq!(back.len(), pcm.len());
        let snr = snr_db(&pcm, &back);
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }

    #[test]
    fn a_1khz_sine_survives_alaw_with_snr_above_30_db() {
        let pcm = sine(1004.0, 10_000.0, 8000);
        let mut codes = Vec::new();
        encode_alaw(&pcm, &mut codes);
        let mut back = Vec::new();
        decode_alaw(&codes, &mut back);
        let snr = snr_db(&pcm, &back);
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }
}
