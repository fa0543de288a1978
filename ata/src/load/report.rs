//! The load generator's results, pure: one [`CallResult`] per call attempt (both ends' view
//! of the RTP they received), the [`Summary`] of a run (calls attempted, answered and failed;
//! setup time p50/p99; loss, jitter and MOS per direction), and how both are written: a table
//! for people ([`Summary::table`]) and JSON for scripts ([`Report`], serde). No sockets, no
//! clock: `driver.rs` gathers the results, this file only counts and writes.

use serde::{Deserialize, Serialize};

use crate::media::session::MediaCounters;

/// What one end of a call received, from its RTP receive statistics (RFC 3550 A.3, A.8) and
/// the E-model estimate (ITU-T G.107) the media session keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// RTP packets received.
    pub packets: u64,
    /// Their bytes (whole RTP datagrams): with `packets`, which codec the call carried (G.711
    /// at 20 ms is 172 bytes a packet, Opus far fewer).
    #[serde(default)]
    pub bytes: u64,
    /// Packets lost (cumulative, RFC 3550 A.3; duplicates can make it negative).
    pub lost: i64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Estimated MOS; 0 when nothing was received.
    pub mos: f64,
}

impl Received {
    /// From a media session's final counters.
    pub fn from_counters(counters: &MediaCounters) -> Received {
        Received {
            packets: counters.packets_received,
            bytes: counters.bytes_received,
            lost: counters.lost,
            jitter_ms: counters.jitter.as_secs_f64() * 1000.0,
            mos: counters.mos,
        }
    }

    /// Lost packets as a percentage of those expected.
    pub fn loss_percent(&self) -> f64 {
        let lost = self.lost.max(0) as f64;
        let expected = self.packets as f64 + lost;
        if expected == 0.0 {
            0.0
        } else {
            100.0 * lost / expected
        }
    }
}

/// One call attempt, as both ends saw it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallResult {
    /// The SIP Call-ID (empty when the call never got as far as a dialog).
    pub call_id: String,
    /// The calling line's user.
    pub caller: String,
    /// The number dialled.
    pub callee: String,
    /// Whether a 2xx came back.
    pub answered: bool,
    /// How the caller's call ended (`answered`, `busy`, `failed`, `unanswered`, ...).
    pub outcome: String,
    /// The final failure status, if any.
    pub status: Option<u16>,
    /// INVITE sent to 2xx received, milliseconds.
    pub setup_ms: Option<f64>,
    /// What the caller received (the callee → caller direction).
    pub caller_received: Option<Received>,
    /// What the callee received (the caller → callee direction).
    pub callee_received: Option<Received>,
}

/// Quantiles of a set of values (nearest rank); all 0 for an empty set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (any order).
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            p50: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// The `p`th percentile of sorted values by nearest rank (the smallest value with at least
/// `p` % of the values at or below it); 0 for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One direction of every answered call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Direction {
    /// Answered calls whose receiving end reported.
    pub calls: usize,
    /// Packets received, all calls.
    pub packets: u64,
    /// Packets lost, all calls.
    pub lost: i64,
    /// Lost as a percentage of expected, all calls together.
    pub loss_percent: f64,
    /// The worst call's loss percentage.
    pub worst_loss_percent: f64,
    /// Interarrival jitter per call, milliseconds.
    pub jitter_ms: Spread,
    /// The lowest MOS of any call.
    pub mos_min: f64,
    /// The median MOS.
    pub mos_p50: f64,
}

impl Direction {
    fn of<'a>(received: impl Iterator<Item = &'a Received>) -> Direction {
        let all: Vec<&Received> = received.collect();
        let packets = all.iter().map(|r| r.packets).sum::<u64>();
        let lost = all.iter().map(|r| r.lost.max(0)).sum::<i64>();
        let total = Received {
            packets,
            bytes: all.iter().map(|r| r.bytes).sum(),
            lost,
            jitter_ms: 0.0,
            mos: 0.0,
        };
        let jitter: Vec<f64> = all.iter().map(|r| r.jitter_ms).collect();
        let mut mos: Vec<f64> = all.iter().map(|r| r.mos).collect();
        mos.sort_by(f64::total_cmp);
        Direction {
            calls: all.len(),
            packets,
            lost,
            loss_percent: total.loss_percent(),
            worst_loss_percent: all.iter().map(|r| r.loss_percent()).fold(0.0, f64::max),
            jitter_ms: Spread::of(&jitter),
            mos_min: mos.first().copied().unwrap_or(0.0),
            mos_p50: percentile(&mos, 50.0),
        }
    }
}

/// The run in numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Calls placed.
    pub attempted: usize,
    /// Calls that got a 2xx.
    pub answered: usize,
    /// Calls that did not.
    pub failed: usize,
    /// Setup time of the answered calls, milliseconds.
    pub setup_ms: Spread,
    /// What the callees received.
    pub caller_to_callee: Direction,
    /// What the callers received.
    pub callee_to_caller: Direction,
}

impl Summary {
    /// Counts `calls`.
    pub fn of(calls: &[CallResult]) -> Summary {
        let answered: Vec<&CallResult> = calls.iter().filter(|c| c.answered).collect();
        let setup: Vec<f64> = answered.iter().filter_map(|c| c.setup_ms).collect();
        Summary {
            attempted: calls.len(),
            answered: answered.len(),
            failed: calls.len() - answered.len(),
            setup_ms: Spread::of(&setup),
            caller_to_callee: Direction::of(
                answered.iter().filter_map(|c| c.callee_received.as_ref()),
            ),
            callee_to_caller: Direction::of(
                answered.iter().filter_map(|c| c.caller_received.as_ref()),
            ),
        }
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = format!(
            "calls      attempted {}  answered {}  failed {}\n\
             setup ms   p50 {:.1}  p99 {:.1}  max {:.1}\n\
             direction        calls   packets    lost  loss %  jitter ms p50/p99  MOS min/p50\n",
            self.attempted,
            self.answered,
            self.failed,
            self.setup_ms.p50,
            self.setup_ms.p99,
            self.setup_ms.max,
        );
        for (name, d) in [
            ("caller → callee", &self.caller_to_callee),
            ("callee → caller", &self.callee_to_caller),
        ] {
            out.push_str(&format!(
                "{name}  {:>7}  {:>8}  {:>6}  {:>6.2}  {:>8.2} / {:<7.2}  {:.2} / {:.2}\n",
                d.calls,
                d.packets,
                d.lost,
                d.loss_percent,
                d.jitter_ms.p50,
                d.jitter_ms.p99,
                d.mos_min,
                d.mos_p50
            ));
        }
        out
    }
}

/// CPU used during the run, as a percentage of one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUse {
    /// The load generator's own process (the callers).
    pub caller_process: f64,
    /// The callee process it started.
    pub callee_process: f64,
}

/// What a run was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The proxy the calls went through.
    pub proxy: String,
    /// Calls to place.
    pub calls: usize,
    /// Calls placed per second.
    pub rate: f64,
    /// Seconds each answered call was held.
    pub hold_seconds: f64,
    /// Lines on each side (the most calls at once).
    pub lines: usize,
    /// The codec offered.
    pub codec: String,
}

/// The whole report, as `--json` writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// What was asked.
    pub settings: Settings,
    /// Seconds from the first call placed to the last one ended.
    pub elapsed_seconds: f64,
    /// The most calls connected at once.
    pub peak_concurrent: usize,
    /// CPU of both processes over the run.
    pub cpu_percent: CpuUse,
    /// The counts.
    pub summary: Summary,
    /// Every call.
    pub calls: Vec<CallResult>,
}

impl Report {
    /// The table and the CPU line, for stdout.
    pub fn text(&self) -> String {
        format!(
            "{} calls at {}/s held {} s through {} ({}), {:.1} s, at most {} at once\n{}\
             CPU        caller process {:.1} %  callee process {:.1} % of one core\n",
            self.settings.calls,
            self.settings.rate,
            self.settings.hold_seconds,
            self.settings.proxy,
            self.settings.codec,
            self.elapsed_seconds,
            self.peak_concurrent,
            self.summary.table(),
            self.cpu_percent.caller_process,
            self.cpu_percent.callee_process,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(packets: u64, lost: i64, jitter_ms: f64, mos: f64) -> Received {
        Received {
            packets,
            bytes: packets * 172,
            lost,
            jitter_ms,
            mos,
        }
    }

    fn answered(setup_ms: f64, to_callee: Received, to_caller: Received) -> CallResult {
        CallResult {
            answered: true,
            outcome: "answered".into(),
            setup_ms: Some(setup_ms),
            callee_received: Some(to_callee),
            caller_received: Some(to_caller),
            ..CallResult::default()
        }
    }

    #[test]
    fn percentiles_are_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
        let spread = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((spread.p50, spread.p99, spread.max), (2.0, 3.0, 3.0));
    }

    #[test]
    fn loss_is_a_share_of_the_packets_expected() {
        assert_eq!(received(90, 10, 0.0, 0.0).loss_percent(), 10.0);
        assert_eq!(received(0, 0, 0.0, 0.0).loss_percent(), 0.0);
        assert_eq!(
            received(100, -2, 0.0, 0.0).loss_percent(),
            0.0,
            "duplicates"
        );
    }

    #[test]
    fn a_summary_counts_failures_and_only_answered_calls_media() {
        let calls = vec![
            answered(2.0, received(100, 0, 0.2, 4.4), received(99, 1, 0.4, 4.3)),
            answered(4.0, received(95, 5, 1.0, 3.9), received(100, 0, 0.1, 4.4)),
            CallResult {
                outcome: "busy".into(),
                status: Some(486),
                ..CallResult::default()
            },
        ];
        let summary = Summary::of(&calls);
        assert_eq!(
            (summary.attempted, summary.answered, summary.failed),
            (3, 2, 1)
        );
        assert_eq!(summary.setup_ms.p50, 2.0);
        assert_eq!(summary.setup_ms.p99, 4.0);
        let to_callee = &summary.caller_to_callee;
        assert_eq!(
            (to_callee.calls, to_callee.packets, to_callee.lost),
            (2, 195, 5)
        );
        assert!((to_callee.loss_percent - 2.5).abs() < 1e-9);
        assert!((to_callee.worst_loss_percent - 5.0).abs() < 1e-9);
        assert_eq!(to_callee.mos_min, 3.9);
        assert_eq!(summary.callee_to_caller.jitter_ms.max, 0.4);
    }

    #[test]
    fn the_table_shows_the_counts_and_both_directions() {
        let summary = Summary::of(&[answered(
            2.5,
            received(250, 0, 0.1, 4.41),
            received(250, 0, 0.1, 4.41),
        )]);
        let table = summary.table();
        assert!(
            table.contains("attempted 1  answered 1  failed 0"),
            "{table}"
        );
        assert!(table.contains("p50 2.5"), "{table}");
        assert!(table.contains("caller → callee"), "{table}");
        assert!(table.contains("4.41 / 4.41"), "{table}");
    }

    #[test]
    fn the_json_report_reads_back_as_written() {
        let report = Report {
            settings: Settings {
                proxy: "127.0.0.1:5060".into(),
                calls: 1,
                rate: 1.0,
                hold_seconds: 2.0,
                lines: 1,
                codec: "pcmu".into(),
            },
            summary: Summary::of(&[answered(
                1.0,
                received(100, 0, 0.1, 4.4),
                received(100, 0, 0.1, 4.4),
            )]),
            ..Report::default()
        };
        let json = serde_json::to_string(&report).expect("serialise");
        assert!(json.contains("\"caller_to_callee\""), "{json}");
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, report);
    }
}
