//! The load generator's flags ([`LoadOptions`], `dialtone-ata load`), checked once into a
//! [`LoadPlan`], and the device configuration each side runs with ([`Side::config`]): a bank
//! of numbered lines on the proxy, registering, without message waiting, each line's
//! microphone a tone (the callers 1000 Hz, the callees 1500 Hz).

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use crate::config::{Config, FileConfig, FileLine, Overrides, MAX_LINES};
use crate::error::AtaError;

/// How long the callee rings before it answers: as short as the line's timer allows, so that
/// the setup time is the network's and the proxy's.
const ANSWER_AFTER_SECONDS: f64 = 0.001;

/// `dialtone-ata load`: calls through a proxy from one bank of lines to another, with tones
/// both ways; a table on stdout, JSON with `--json`, a progress line on stderr.
#[derive(Args, Debug, Clone)]
pub struct LoadOptions {
    /// The proxy and registrar every line uses, HOST[:PORT].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub proxy: String,
    /// Calls to place.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub calls: usize,
    /// Calls placed per second.
    #[arg(long, default_value_t = 5.0, value_name = "PER_SECOND")]
    pub rate: f64,
    /// Seconds each answered call is held before the caller hangs up.
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub hold: f64,
    /// Lines on each side, the most calls at once (at most 1000) [default: enough for rate × (hold + 3 s)].
    #[arg(long, value_name = "N")]
    pub lines: Option<usize>,
    /// The codec offered: pcmu, pcma or opus (a build with --features opus; offered with
    /// PCMU after it, which an ATA always offers).
    #[arg(long, default_value = "pcmu", value_name = "CODEC")]
    pub codec: String,
    /// The callers' users count up from this number.
    #[arg(long, default_value = "70000", value_name = "USER")]
    pub caller_from: String,
    /// The callees' users count up from this number; caller line n calls callee line n.
    #[arg(long, default_value = "80000", value_name = "USER")]
    pub callee_from: String,
    /// Every line's digest password (for a proxy with --auth: its users file lists them).
    #[arg(long, default_value = "", value_name = "PASSWORD")]
    pub password: String,
    /// The address every socket binds (SIP and RTP, both processes).
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub bind: IpAddr,
    /// RTP ports, split in two halves: the callers' and the callees'.
    #[arg(long, default_value = "20000-39999", value_name = "FROM-TO")]
    pub rtp_ports: String,
    /// Write the report as JSON to this file (`-`: stdout, instead of the table).
    #[arg(long, value_name = "FILE")]
    pub json: Option<String>,
    /// Give up this long after the first call [default: calls / rate + hold + 60 s].
    #[arg(long, value_name = "SECONDS")]
    pub max_seconds: Option<f64>,
}

/// The checked plan of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    /// Calls to place.
    pub calls: usize,
    /// Per second.
    pub rate: f64,
    /// How long each is held.
    pub hold: Duration,
    /// Lines per side.
    pub lines: usize,
    /// The deadline of the whole run, from its first call.
    pub max_time: Duration,
    /// The callers' side.
    pub callers: Side,
    /// The callees' side.
    pub callees: Side,
}

/// One side's device.
#[derive(Debug, Clone, PartialEq)]
pub struct Side {
    /// The proxy.
    pub proxy: String,
    /// The first line's user.
    pub first_user: String,
    /// How many lines.
    pub lines: usize,
    /// Their password.
    pub password: String,
    /// Where to bind.
    pub bind: IpAddr,
    /// RTP ports `FROM-TO`.
    pub rtp_ports: String,
    /// The codec offered.
    pub codec: String,
    /// The microphone tone, Hz.
    pub tone_hz: u32,
    /// Answer incoming calls.
    pub answers: bool,
}

impl LoadOptions {
    /// Checks the flags; errors name the flag.
    pub fn plan(&self) -> Result<LoadPlan, AtaError> {
        if self.calls == 0 {
            return Err(AtaError::config("calls", "must be at least 1"));
        }
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(AtaError::config("rate", "must be above zero"));
        }
        if !(self.hold.is_finite() && self.hold >= 0.0) {
            return Err(AtaError::config("hold", "must be zero or more seconds"));
        }
        let needed = (self.rate * (self.hold + 3.0)).ceil() as usize;
        let lines = self
            .lines
            .unwrap_or(needed.min(self.calls).min(MAX_LINES))
            .max(1);
        if lines > MAX_LINES {
            return Err(AtaError::config("lines", format!("at most {MAX_LINES}")));
        }
        let (from, to) = port_range(&self.rtp_ports)?;
        // Each call takes an RTP/RTCP pair on each side.
        let half = from + (to - from) / 2;
        if usize::from(half - from) < 2 * lines {
            return Err(AtaError::config(
                "rtp_ports",
                format!("{lines} lines per side need {} ports", 4 * lines),
            ));
        }
        let max_time = self
            .max_seconds
            .unwrap_or(self.calls as f64 / self.rate + self.hold + 60.0);
        let side = |first_user: &str, rtp_ports: String, tone_hz, answers| Side {
            proxy: self.proxy.clone(),
            first_user: first_user.to_owned(),
            lines,
            password: self.password.clone(),
            bind: self.bind,
            rtp_ports,
            codec: self.codec.to_ascii_lowercase(),
            tone_hz,
            answers,
        };
        Ok(LoadPlan {
            calls: self.calls,
            rate: self.rate,
            hold: Duration::from_secs_f64(self.hold),
            lines,
            max_time: Duration::from_secs_f64(max_time.max(1.0)),
            callers: side(
                &self.caller_from,
                format!("{from}-{}", half - 1),
                1000,
                false,
            ),
            callees: side(&self.callee_from, format!("{half}-{to}"), 1500, true),
        })
    }
}

/// The `codecs` of a side offering `codec`: Opus with PCMU after it, since an ATA always
/// offers a G.711 that every peer understands (the config refuses a list without one); both
/// sides list Opus first, so Opus is what the calls carry.
fn offered_codecs(codec: &str) -> String {
    match codec {
        "opus" => "opus,pcmu".into(),
        other => other.into(),
    }
}

fn port_range(text: &str) -> Result<(u16, u16), AtaError> {
    let bad = || AtaError::config("rtp_ports", format!("`{text}` is not FROM-TO"));
    let (from, to) = text.split_once('-').ok_or_else(bad)?;
    let (from, to): (u16, u16) = (
        from.trim().parse().map_err(|_| bad())?,
        to.trim().parse().map_err(|_| bad())?,
    );
    if from >= to {
        return Err(bad());
    }
    Ok((from, to))
}

impl Side {
    /// The device configuration of this side.
    pub fn config(&self) -> Result<Config, AtaError> {
        let file = FileConfig {
            proxy: Some(crate::config::OneOrMany::One(self.proxy.clone())),
            bind: Some(format!("{}:0", self.bind)),
            control: Some(format!("{}:0", self.bind)),
            rtp_ports: Some(self.rtp_ports.clone()),
            codecs: Some(offered_codecs(&self.codec)),
            mwi_server: Some("none".into()),
            auto_answer: self.answers.then_some(ANSWER_AFTER_SECONDS),
            line: vec![FileLine {
                user: self.first_user.clone(),
                password: self.password.clone(),
                audio_in: Some(format!("tone:{}", self.tone_hz)),
                count: Some(self.lines as u32),
                ..FileLine::default()
            }],
            ..FileConfig::default()
        };
        Config::build(file, Overrides::default())
    }

    /// The user of line `index` (from 0), as the config numbers them.
    pub fn user(&self, index: usize) -> String {
        let width = self.first_user.len();
        let first: u64 = self.first_user.parse().unwrap_or(0);
        format!("{:0width$}", first + index as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        load: LoadOptions,
    }

    fn plan(args: &[&str]) -> Result<LoadPlan, AtaError> {
        let mut all = vec!["load", "--proxy", "127.0.0.1:5060"];
        all.extend_from_slice(args);
        Flags::parse_from(all).load.plan()
    }

    #[test]
    fn lines_default_to_what_the_rate_and_hold_keep_busy() {
        let big = plan(&["--calls", "1000", "--rate", "20", "--hold", "10"]).expect("plan");
        assert_eq!(big.lines, 260);
        assert_eq!(big.callers.rtp_ports, "20000-29998");
        assert_eq!(big.callees.rtp_ports, "29999-39999");
        assert_eq!(big.max_time, Duration::from_secs(120));
        let small = plan(&["--calls", "3"]).expect("plan");
        assert_eq!(small.lines, 3, "no more lines than calls");
    }

    #[test]
    fn each_side_is_a_registering_bank_of_lines_and_only_the_callees_answer() {
        let plan = plan(&["--calls", "5", "--password", "pw"]).expect("plan");
        let callers = plan.callers.config().expect("config");
        let callees = plan.callees.config().expect("config");
        assert_eq!(callers.lines.len(), 5);
        assert_eq!(callers.lines[4].user, "70004");
        assert_eq!(callees.lines[0].password, "pw");
        assert!(callers.register_interval > 0 && callers.mwi_server.is_none());
        assert_eq!(callers.auto_answer, None);
        assert!(callees.auto_answer.is_some());
        assert_eq!(plan.callees.user(2), "80002");
    }

    #[test]
    fn bad_flags_name_themselves() {
        let error = plan(&["--rate", "0"]).expect_err("rate").to_string();
        assert!(error.contains("`rate`"), "{error}");
        let error = plan(&["--lines", "1001"]).expect_err("lines").to_string();
        assert!(error.contains("`lines`"), "{error}");
        let error = plan(&["--lines", "1000", "--rtp-ports", "20000-20100"])
            .expect_err("ports")
            .to_string();
        assert!(error.contains("`rtp_ports`"), "{error}");
    }
}
