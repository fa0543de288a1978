//! A call-quality estimate: a simplified ITU-T G.107 E-model turning packet
//! loss, jitter and delay into an R factor and a MOS (1.0 to 4.5).
//!
//! The full E-model has some twenty inputs; for a VoIP leg almost all sit at
//! their defaults, which G.107 sums to R = 93.2 before delay and equipment
//! impairments. What remains, as in Cole and Rosenbluth's widely used
//! reduction ("Voice over IP performance monitoring", 2001):
//!
//! * R = 93.2 - Id - Ie,eff
//! * Id (delay) = 0.024 d + 0.11 (d - 177.3) H(d - 177.3), d the one-way
//!   mouth-to-ear delay in ms, H the step function.
//! * Ie,eff (equipment and loss) = Ie + (95 - Ie) Ppl / (Ppl + Bpl), Ppl the
//!   loss in percent, Ie and Bpl the codec's values from ITU-T G.113 appendix I
//!   (random loss, so the burst ratio is 1).
//! * MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R), clamped to 1..4.5 (G.107 annex B).
//!
//! Jitter is not an E-model input. A jitter buffer turns it into delay, so it
//! is added to the delay as twice its value (a buffer sized to absorb most of
//! the variation); packets the buffer had to drop should be counted in the loss.

use std::time::Duration;

/// A codec's equipment impairment and packet-loss robustness (ITU-T G.113 appendix I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Ie: impairment with no loss.
    pub ie: f64,
    /// Bpl: robustness to random loss; larger is more robust.
    pub bpl: f64,
}

/// G.711 with packet-loss concealment (G.113 appendix I: Ie 0, Bpl 25.1).
/// The jitter buffer in this crate conceals, so this is the one to use for PCMU/PCMA.
pub const G711_WITH_PLC: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 25.1 };
/// G.711 without concealment (G.113 appendix I: Ie 0, Bpl 4.3).
pub const G711_WITHOUT_PLC: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 4.3 };
/// Opus narrowband at telephone rates has no G.113 entry; these values are an
/// assumption (G.711-like quality, stronger concealment) until measured.
pub const OPUS_ASSUMED: CodecImpairment = CodecImpairment { ie: 0.0, bpl: 30.0 };

/// Default R for a VoIP connection with every other E-model input at its default.
const R_DEFAULT: f64 = 93.2;

/// What the estimate is made from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityInputs {
    /// Fraction of packets lost (or discarded late), 0.0 to 1.0.
    pub loss_fraction: f64,
    /// Interarrival jitter (RFC 3550 A.8).
    pub jitter: Duration,
    /// One-way network delay, e.g. half the RTCP round-trip time, plus
    /// packetisation and buffering on both ends if known.
    pub one_way_delay: Duration,
}

/// The E-model transmission rating R (0 to 93.2 here).
pub fn r_factor(inputs: &QualityInputs, codec: &CodecImpairment) -> f64 {
    let delay_ms = (inputs.one_way_delay + 2 * inputs.jitter).as_secs_f64() * 1000.0;
    let id = 0.024 * delay_ms
        + if delay_ms > 177.3 {
            0.11 * (delay_ms - 177.3)
        } else {
            0.0
        };
    let ppl = inputs.loss_fraction.clamp(0.0, 1.0) * 100.0;
    let ie_eff = codec.ie + (95.0 - codec.ie) * ppl / (ppl + codec.bpl);
    (R_DEFAULT - id - ie_eff).max(0.0)
}

/// MOS (listening-conversational quality, 1.0 to 4.5) for an R factor (G.107 annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        (1.0 + 0.035 * r + 7.0e-6 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5)
    }
}

/// MOS estimate straight from measurements.
pub fn estimate_mos(inputs: &QualityInputs, codec: &CodecImpairment) -> f64 {
    mos_from_r(r_factor(inputs, codec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(loss: f64, jitter_ms: u64, delay_ms: u64) -> QualityInputs {
        QualityInputs {
            loss_fraction: loss,
            jitter: Duration::from_millis(jitter_ms),
            one_way_delay: Duration::from_millis(delay_ms),
        }
    }

    #[test]
    fn a_perfect_g711_call_scores_about_4_4() {
        let mos = estimate_mos(&inputs(0.0, 0, 0), &G711_WITH_PLC);
        assert!((mos - 4.41).abs() < 0.02, "{mos}");
    }

    #[test]
    fn mos_decreases_as_loss_grows() {
        let scores: Vec<f64> = [0.0, 0.01, 0.03, 0.05, 0.10, 0.20]
            .iter()
            .map(|&l| estimate_mos(&inputs(l, 5, 40), &G711_WITH_PLC))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] > w[1]), "{scores:?}");
        assert!(scores[5] < 3.0, "{scores:?}");
    }

    #[test]
    fn mos_decreases_with_jitter_and_delay() {
        let base = estimate_mos(&inputs(0.01, 0, 20), &G711_WITH_PLC);
        assert!(estimate_mos(&inputs(0.01, 40, 20), &G711_WITH_PLC) < base);
        assert!(estimate_mos(&inputs(0.01, 0, 300), &G711_WITH_PLC) < base - 0.3);
    }

    #[test]
    fn concealment_makes_loss_hurt_less() {
        let with = estimate_mos(&inputs(0.05, 0, 0), &G711_WITH_PLC);
        let without = estimate_mos(&inputs(0.05, 0, 0), &G711_WITHOUT_PLC);
        assert!(with > without + 0.5, "{with} vs {without}");
    }

    #[test]
    fn mos_from_r_follows_g107_annex_b_at_known_points() {
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        // R 50 -> 2.58, R 70 -> 3.60, R 80 -> 4.02 (G.107 figure B.1 values).
        assert!((mos_from_r(50.0) - 2.575).abs() < 0.01);
        assert!((mos_from_r(70.0) - 3.6).abs() < 0.02);
        assert!((mos_from_r(80.0) - 4.024).abs() < 0.01);
    }
}
