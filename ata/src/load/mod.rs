//! `dialtone-ata load`: the ATA as a load generator with real voice. N caller lines place
//! calls through a proxy to N callee lines at R per second, each call held H seconds with a
//! G.711 (or Opus) tone both ways, and the run is reported as calls attempted, answered and
//! failed, setup time (INVITE sent to 2xx received) p50/p99, and per call the RTP loss,
//! jitter and MOS of what each end really received: a table on stdout, JSON with `--json`, a
//! progress line on stderr every second.
//!
//! **Two processes.** The callers run in this process; the callees in a second one, the same
//! program started as `dialtone-ata load-answer` (`callee.rs`), which registers its lines at
//! the same proxy and auto-answers. Why not both banks in one process: an ATA's actors run on
//! one actix thread, so one process is one core; with both ends of every call in it, 1000
//! calls would be 2000 RTP streams on that one thread, and the callee's work would delay the
//! caller's and show up in the setup times being measured. Two processes are also two devices,
//! as in a real lab (one process is one device, see ARCHITECTURE.md), and their CPU is
//! reported apart, the figure the target "1000 calls in one process under one core" is about.
//! The callee reports what its end received per call on its stdout (JSON lines), and both
//! ends are joined by SIP Call-ID, which a proxy leaves as it is.
//!
//! The calls are the ATA's ordinary calls: the driver presses the lines' keys (`Dial`, then
//! `OnHook`) as the control API does, and each call reports to it through `call::observer`.
//! Pure parts: `options.rs` (flags, each side's config), `schedule.rs` (when), `ledger.rs`
//! (the calls' book), `report.rs` (counting and writing), `cpu.rs`; the actor: `driver.rs`.

pub mod callee;
pub mod cpu;
pub mod driver;
pub mod ledger;
pub mod options;
pub mod report;
pub mod schedule;

use std::time::Instant;

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

pub use callee::CalleeOptions;
use callee::{wait_registered, CalleeLine, CalleeProcess, REGISTER_WITHIN};
use driver::{Go, LoadDriver};
pub use options::LoadOptions;
use report::{CpuUse, Report, Settings, Summary};

use crate::app;
use crate::error::AtaError;
use crate::resync::ConfigSource;

/// Runs the load; returns the report (already printed, and written with `--json`).
pub fn run(options: LoadOptions) -> Result<Report, AtaError> {
    let plan = options.plan()?;
    let settings = Settings {
        proxy: options.proxy.clone(),
        calls: plan.calls,
        rate: plan.rate,
        hold_seconds: plan.hold.as_secs_f64(),
        lines: plan.lines,
        codec: plan.callers.codec.clone(),
    };
    // Checked here so that a bad codec fails before a process starts.
    let caller_config = plan.callers.config()?;
    let report = actix_rt::System::new().block_on(async move {
        let (callee, mut callee_lines) = CalleeProcess::spawn(&plan.callees)?;
        wait_for_callees(&mut callee_lines, plan.lines).await?;
        let (done, finished) = oneshot::channel();
        let driver = LoadDriver::new(plan.clone(), callee_lines, done).start();
        let source = ConfigSource {
            path: None,
            flags: Default::default(),
        };
        let device =
            app::start_observed(caller_config, source, Some(driver.clone().recipient())).await?;
        let registered = wait_registered(&device.lines, REGISTER_WITHIN).await;
        if registered < plan.lines {
            return Err(not_registered("caller", registered, plan.lines));
        }
        let cpu = CpuClock::start(callee.pid());
        driver.do_send(Go {
            lines: device.lines.clone(),
        });
        let finished = finished
            .await
            .map_err(|_| AtaError::Io(std::io::Error::other("the load driver stopped early")))?;
        let cpu_percent = cpu.stop(callee.pid());
        let mut ledger = finished.ledger;
        let mut callee_lines = finished.callee_lines;
        device.stop().await;
        for line in callee.stop(&mut callee_lines).await {
            if let CalleeLine::Leg { call_id, received } = line {
                ledger.callee_media(&call_id, received);
            }
        }
        let peak_concurrent = ledger.peak_connected();
        let calls = ledger.finish();
        System::current().stop();
        Ok::<_, AtaError>(Report {
            settings,
            elapsed_seconds: finished.elapsed.as_secs_f64(),
            peak_concurrent,
            cpu_percent,
            summary: Summary::of(&calls),
            calls,
        })
    })?;
    write_out(&report, options.json.as_deref())?;
    Ok(report)
}

/// Waits for the callee process to say its lines are registered.
async fn wait_for_callees(
    lines: &mut mpsc::UnboundedReceiver<CalleeLine>,
    expected: usize,
) -> Result<(), AtaError> {
    let within = REGISTER_WITHIN + std::time::Duration::from_secs(10);
    match tokio::time::timeout(within, lines.recv()).await {
        Ok(Some(CalleeLine::Ready { registered, .. })) if registered >= expected => Ok(()),
        Ok(Some(CalleeLine::Ready { registered, .. })) => {
            Err(not_registered("callee", registered, expected))
        }
        _ => Err(AtaError::Io(std::io::Error::other(
            "the callee process did not start (see its errors above)",
        ))),
    }
}

fn not_registered(side: &str, registered: usize, lines: usize) -> AtaError {
    AtaError::config(
        "proxy",
        format!("only {registered} of {lines} {side} lines registered within {REGISTER_WITHIN:?}"),
    )
}

/// Both processes' CPU time from the first call to the last.
struct CpuClock {
    at: Instant,
    own: u64,
    callee: u64,
}

impl CpuClock {
    fn start(callee: u32) -> CpuClock {
        CpuClock {
            at: Instant::now(),
            own: cpu::process_ticks(std::process::id()).unwrap_or(0),
            callee: cpu::process_ticks(callee).unwrap_or(0),
        }
    }

    fn stop(&self, callee: u32) -> CpuUse {
        let seconds = self.at.elapsed().as_secs_f64();
        let used = |now: Option<u64>, before: u64| now.unwrap_or(before).saturating_sub(before);
        CpuUse {
            caller_process: cpu::percent_of_core(
                used(cpu::process_ticks(std::process::id()), self.own),
                seconds,
            ),
            callee_process: cpu::percent_of_core(
                used(cpu::process_ticks(callee), self.callee),
                seconds,
            ),
        }
    }
}

/// The table on stdout, and the JSON where `--json` says (`-`: stdout instead of the table).
fn write_out(report: &Report, json: Option<&str>) -> Result<(), AtaError> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| AtaError::Io(std::io::Error::other(e)))?;
    match json {
        Some("-") => println!("{text}"),
        Some(path) => {
            print!("{}", report.text());
            std::fs::write(path, text + "\n")
                .map_err(|e| AtaError::config("json", format!("{path}: {e}")))?;
        }
        None => print!("{}", report.text()),
    }
    Ok(())
}
