//! The device's Prometheus metrics, served at `/metrics` by `control.rs`.
//!
//! Every series exists from start at zero (each line's label values are created when the
//! line is), counters end in `_total`, and units are base units (seconds, bytes). The actors
//! update them directly: the prometheus types are atomic, so sharing them needs no messages.
//!
//! - `dialtone_ata_line_state{line,state}`: 1 for the line's current state, 0 for the others;
//! - `dialtone_ata_registration_state{line,state}`: the same for registration;
//! - `dialtone_ata_calls_total{line,direction,outcome}`: finished calls;
//! - `dialtone_ata_rtp_{packets,bytes}_{sent,received}_total{line}`;
//! - `dialtone_ata_rtp_packets_lost_total{line}`: RFC 3550 A.3 cumulative loss;
//! - `dialtone_ata_rtp_jitter_seconds{line}`, `dialtone_ata_call_mos{line}`: of the current
//!   (or last) call;
//! - `dialtone_ata_voice_messages{line,kind}`: the message-waiting counts (`new`, `old`) the
//!   last message-summary NOTIFY gave.

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// How a call ended, for `dialtone_ata_calls_total`.
pub const OUTCOMES: [&str; 6] = [
    "answered",
    "busy",
    "failed",
    "cancelled",
    "rejected",
    "unanswered",
];

/// The names of the two state gauges' states, given by the state machines that own them
/// (`LineState::NAMES`, `RegistrationState::NAMES`): metrics sit below the line and the
/// registration, which update them, so this module does not import those.
#[derive(Debug, Clone, Copy)]
pub struct StateNames {
    /// Every telephone state; the first is the idle state a line starts in.
    pub line: &'static [&'static str],
    /// Every registration state; the first is the unregistered state a line starts in.
    pub registration: &'static [&'static str],
}

/// The metric families.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    states: StateNames,
    line_state: IntGaugeVec,
    registration_state: IntGaugeVec,
    calls: IntCounterVec,
    /// RTP packets sent.
    pub rtp_packets_sent: IntCounterVec,
    /// RTP packets received.
    pub rtp_packets_received: IntCounterVec,
    /// RTP payload-and-header bytes sent.
    pub rtp_bytes_sent: IntCounterVec,
    /// RTP bytes received.
    pub rtp_bytes_received: IntCounterVec,
    /// Packets lost, as counted by the receive statistics.
    pub rtp_packets_lost: IntCounterVec,
    /// Interarrival jitter.
    pub rtp_jitter: GaugeVec,
    /// Estimated MOS.
    pub mos: GaugeVec,
    /// Voice messages waiting, `new` and `old`.
    pub voice_messages: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every family, and the series of each line in `lines`.
    pub fn new(lines: &[String], states: StateNames) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let gauge =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let float = |name: &str, help: &str| -> Result<GaugeVec, prometheus::Error> {
            let g = GaugeVec::new(Opts::new(name, help), &["line"])?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let metrics = Metrics {
            states,
            line_state: gauge(
                "dialtone_ata_line_state",
                "1 for the line's current telephone state",
                &["line", "state"],
            )?,
            registration_state: gauge(
                "dialtone_ata_registration_state",
                "1 for the line's current registration state",
                &["line", "state"],
            )?,
            calls: counter(
                "dialtone_ata_calls_total",
                "Finished calls by direction and outcome",
                &["line", "direction", "outcome"],
            )?,
            rtp_packets_sent: counter(
                "dialtone_ata_rtp_packets_sent_total",
                "RTP packets sent",
                &["line"],
            )?,
            rtp_packets_received: counter(
                "dialtone_ata_rtp_packets_received_total",
                "RTP packets received",
                &["line"],
            )?,
            rtp_bytes_sent: counter(
                "dialtone_ata_rtp_bytes_sent_total",
                "RTP bytes sent",
                &["line"],
            )?,
            rtp_bytes_received: counter(
                "dialtone_ata_rtp_bytes_received_total",
                "RTP bytes received",
                &["line"],
            )?,
            rtp_packets_lost: counter(
                "dialtone_ata_rtp_packets_lost_total",
                "RTP packets lost (RFC 3550 A.3)",
                &["line"],
            )?,
            rtp_jitter: float(
                "dialtone_ata_rtp_jitter_seconds",
                "Interarrival jitter of the current or last call (RFC 3550 A.8)",
            )?,
            mos: float(
                "dialtone_ata_call_mos",
                "Estimated MOS of the current or last call (E-model)",
            )?,
            voice_messages: gauge(
                "dialtone_ata_voice_messages",
                "Voice messages of the line's mailbox (RFC 3842 message summary), new and old",
                &["line", "kind"],
            )?,
            registry,
        };
        for line in lines {
            metrics.init_line(line);
        }
        Ok(metrics)
    }

    fn init_line(&self, line: &str) {
        for state in self.states.line {
            self.line_state.with_label_values(&[line, state]).set(0);
        }
        self.set_line_state(line, self.states.line.first().copied().unwrap_or_default());
        for state in self.states.registration {
            self.registration_state
                .with_label_values(&[line, state])
                .set(0);
        }
        let unregistered = self.states.registration.first().copied();
        self.set_registration_state(line, unregistered.unwrap_or_default());
        for direction in ["incoming", "outgoing"] {
            for outcome in OUTCOMES {
                self.calls
                    .with_label_values(&[line, direction, outcome])
                    .reset();
            }
        }
        for family in [
            &self.rtp_packets_sent,
            &self.rtp_packets_received,
            &self.rtp_bytes_sent,
            &self.rtp_bytes_received,
            &self.rtp_packets_lost,
        ] {
            family.with_label_values(&[line]).reset();
        }
        self.rtp_jitter.with_label_values(&[line]).set(0.0);
        self.mos.with_label_values(&[line]).set(0.0);
        self.set_voice_messages(line, 0, 0);
    }

    /// The line's message-waiting counts.
    pub fn set_voice_messages(&self, line: &str, new: u32, old: u32) {
        for (kind, count) in [("new", new), ("old", old)] {
            self.voice_messages
                .with_label_values(&[line, kind])
                .set(i64::from(count));
        }
    }

    /// Marks `state` as the line's current state.
    pub fn set_line_state(&self, line: &str, state: &str) {
        for name in self.states.line {
            let value = i64::from(*name == state);
            self.line_state.with_label_values(&[line, name]).set(value);
        }
    }

    /// Marks `state` as the line's registration state.
    pub fn set_registration_state(&self, line: &str, state: &str) {
        for name in self.states.registration {
            let value = i64::from(*name == state);
            self.registration_state
                .with_label_values(&[line, name])
                .set(value);
        }
    }

    /// Counts a finished call.
    pub fn count_call(&self, line: &str, direction: &str, outcome: &str) {
        self.calls
            .with_label_values(&[line, direction, outcome])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_present_at_zero_from_the_start() {
        let states = StateNames {
            line: &crate::line::phone::LineState::NAMES,
            registration: &crate::registration::rules::RegistrationState::NAMES,
        };
        let metrics = Metrics::new(&["8000".to_owned()], states).expect("metrics");
        let text = metrics.render();
        for needle in [
            "dialtone_ata_calls_total{direction=\"outgoing\",line=\"8000\",outcome=\"busy\"} 0",
            "dialtone_ata_rtp_packets_sent_total{line=\"8000\"} 0",
            "dialtone_ata_rtp_packets_lost_total{line=\"8000\"} 0",
            "dialtone_ata_line_state{line=\"8000\",state=\"idle\"} 1",
            "dialtone_ata_line_state{line=\"8000\",state=\"connected\"} 0",
            "dialtone_ata_registration_state{line=\"8000\",state=\"registered\"} 0",
            "dialtone_ata_call_mos{line=\"8000\"} 0",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
