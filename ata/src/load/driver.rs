//! The load generator's actor: places the calls on the caller lines as the [`Schedule`] says
//! (the control API's `Dial`, so a call goes exactly the way a person's would), hangs each up
//! after its hold time (`OnHook`), books what the calls report ([`CallObserved`]) and what
//! the callee process writes in the [`Ledger`], prints a progress line on stderr once a
//! second, and hands the ledger back when every call has ended or the run's time is up.
//!
//! One 10 ms timer drives it all: at 1000 calls a second that is ten calls a tick, and the
//! timer costs nothing beside the calls' own media.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::callee::CalleeLine;
use super::ledger::{Entry, Ledger};
use super::options::LoadPlan;
use super::schedule::{HangUps, Lines, Schedule};
use crate::call::observer::CallObserved;
use crate::line::{Command, Control, LineActor};

/// How often the driver looks at the clock.
const TICK: Duration = Duration::from_millis(10);
/// A call neither answered nor ended this long after it was placed is given up (Timer B is
/// 32 s).
const GIVE_UP_AFTER: Duration = Duration::from_secs(40);

/// Begin: the caller lines are up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Go {
    /// The caller lines, in order.
    pub lines: Vec<Addr<LineActor>>,
}

/// What the driver hands back.
pub struct Finished {
    /// Every call.
    pub ledger: Ledger,
    /// The callee process's lines still to be read.
    pub callee_lines: mpsc::UnboundedReceiver<CalleeLine>,
    /// From the first call placed to the end.
    pub elapsed: Duration,
}

/// The actor.
pub struct LoadDriver {
    plan: LoadPlan,
    lines: Vec<Addr<LineActor>>,
    by_user: HashMap<String, usize>,
    ledger: Ledger,
    schedule: Option<Schedule>,
    free: Lines,
    hang_ups: HangUps,
    callee_lines: Option<mpsc::UnboundedReceiver<CalleeLine>>,
    done: Option<oneshot::Sender<Finished>>,
    started: Option<Instant>,
    last_progress: Option<Instant>,
}

impl LoadDriver {
    /// A driver for `plan`; it waits for [`Go`].
    pub fn new(
        plan: LoadPlan,
        callee_lines: mpsc::UnboundedReceiver<CalleeLine>,
        done: oneshot::Sender<Finished>,
    ) -> LoadDriver {
        let by_user = (0..plan.lines).map(|i| (plan.callers.user(i), i)).collect();
        LoadDriver {
            free: Lines::new(plan.lines),
            hang_ups: HangUps::new(plan.hold),
            plan,
            lines: Vec::new(),
            by_user,
            ledger: Ledger::new(),
            schedule: None,
            callee_lines: Some(callee_lines),
            done: Some(done),
            started: None,
            last_progress: None,
        }
    }

    fn control(&self, line: usize, command: Command) {
        if let Some(addr) = self.lines.get(line) {
            addr.do_send(Control(command));
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.read_callee_lines();
        let Some(started) = self.started else {
            return;
        };
        self.place_due_calls(now);
        while let Some((line, call_id)) = self.hang_ups.pop_due(now) {
            let user = self.plan.callers.user(line);
            if self.ledger.call_of(&user) == Some(call_id.as_str()) {
                self.control(line, Command::OnHook);
            }
        }
        for line in self.ledger.expire(now, GIVE_UP_AFTER) {
            self.control(line, Command::OnHook);
            self.free.give_back(line);
        }
        self.progress(now, started);
        let all_placed = self.schedule.as_ref().is_some_and(Schedule::is_done);
        let out_of_time = now.saturating_duration_since(started) > self.plan.max_time;
        if (all_placed && self.ledger.active() == 0) || out_of_time {
            if out_of_time {
                eprintln!("load: out of time; hanging up what is left");
                for line in 0..self.lines.len() {
                    self.control(line, Command::OnHook);
                }
            }
            self.finish(ctx, now.saturating_duration_since(started));
        }
    }

    /// Dials the calls the schedule says are due, on free lines; when none is free, the call
    /// waits for one (the run then falls behind its rate, which the report's elapsed shows).
    fn place_due_calls(&mut self, now: Instant) {
        let due = self.schedule.as_ref().map_or(0, |s| s.due(now));
        for _ in 0..due {
            let Some(line) = self.free.take() else {
                break;
            };
            let (user, callee) = (self.plan.callers.user(line), self.plan.callees.user(line));
            self.ledger.placed(now, line, &user, &callee);
            if let Some(schedule) = self.schedule.as_mut() {
                schedule.placed();
            }
            self.control(line, Command::Dial(format!("{callee}#")));
        }
    }

    fn read_callee_lines(&mut self) {
        let Some(receiver) = self.callee_lines.as_mut() else {
            return;
        };
        while let Ok(line) = receiver.try_recv() {
            if let CalleeLine::Leg { call_id, received } = line {
                self.ledger.callee_media(&call_id, received);
            }
        }
    }

    /// The progress line, once a second: elapsed, attempted, answered, failed, active.
    fn progress(&mut self, now: Instant, started: Instant) {
        if self
            .last_progress
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        self.last_progress = Some(now);
        eprintln!(
            "load {:6.1} s  attempted {}/{}  answered {}  failed {}  active {}",
            now.saturating_duration_since(started).as_secs_f64(),
            self.ledger.attempted(),
            self.plan.calls,
            self.ledger.answered(),
            self.ledger.failed(),
            self.ledger.active(),
        );
    }

    fn finish(&mut self, ctx: &mut Context<Self>, elapsed: Duration) {
        let (Some(done), Some(callee_lines)) = (self.done.take(), self.callee_lines.take()) else {
            return;
        };
        let _ = done.send(Finished {
            ledger: std::mem::take(&mut self.ledger),
            callee_lines,
            elapsed,
        });
        ctx.stop();
    }
}

impl Actor for LoadDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(TICK, |driver, ctx| driver.tick(ctx));
    }
}

impl Handler<Go> for LoadDriver {
    type Result = ();

    fn handle(&mut self, msg: Go, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.lines = msg.lines;
        self.started = Some(now);
        self.schedule = Some(Schedule::new(self.plan.rate, self.plan.calls, now));
        self.tick(ctx);
    }
}

impl Handler<CallObserved> for LoadDriver {
    type Result = ();

    fn handle(&mut self, msg: CallObserved, _ctx: &mut Context<Self>) {
        if !self.by_user.contains_key(&msg.line) {
            return;
        }
        match self.ledger.caller_event(&msg.line, &msg.call_id, msg.event) {
            Entry::Answered(line) => self.hang_ups.answered(Instant::now(), line, &msg.call_id),
            Entry::Ended(line) => {
                // Puts a line back on-hook after a call that failed (busy tone).
                self.control(line, Command::OnHook);
                self.free.give_back(line);
            }
            Entry::Nothing => {}
        }
    }
}
