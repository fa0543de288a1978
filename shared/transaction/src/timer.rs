//! Timer values (RFC 3261 section 17, table 4 in appendix A, plus RFC 6026's Timers L and M) and
//! the small schedule each machine keeps.
//!
//! Every machine has at most two timers armed at once: one retransmission timer (A, E or G,
//! only over unreliable transports) and one deadline that ends the transaction (B, D, F, H, I,
//! J, K, L or M). The crate-private `Schedule` holds exactly that, so `poll_timeout` is the earlier of the two.

use std::time::{Duration, Instant};

use crate::Error;

/// The protocol timers, named as in RFC 3261 table 4 and RFC 6026 section 7.
///
/// Returned by `handle_timeout` and carried by [`crate::Event::Timeout`], so that metrics and
/// tests can see which one fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Client INVITE request retransmission, doubling from T1 (17.1.1.2).
    A,
    /// Client INVITE timeout in Calling, 64*T1 (17.1.1.2).
    B,
    /// Proxy INVITE timeout, over 3 minutes, reset by 101-199 (16.6 step 11, 16.7 step 2).
    C,
    /// Client INVITE wait for final response retransmissions in Completed (17.1.1.2).
    D,
    /// Client non-INVITE request retransmission, doubling from T1 up to T2 (17.1.2.2).
    E,
    /// Client non-INVITE timeout, 64*T1 (17.1.2.2).
    F,
    /// Server INVITE final response retransmission, doubling from T1 up to T2 (17.2.1).
    G,
    /// Server INVITE wait for the ACK, 64*T1 (17.2.1).
    H,
    /// Server INVITE wait for ACK retransmissions in Confirmed, T4 (17.2.1).
    I,
    /// Server non-INVITE wait for request retransmissions in Completed, 64*T1 (17.2.2).
    J,
    /// Client non-INVITE wait for response retransmissions in Completed, T4 (17.1.2.2).
    K,
    /// Server INVITE wait in Accepted for INVITE retransmissions, 64*T1 (RFC 6026 7.1).
    L,
    /// Client INVITE wait in Accepted for further 2xx, 64*T1 (RFC 6026 7.2).
    M,
}

/// Timer D over unreliable transports. RFC 3261 17.1.1.2 asks for "at least 32 seconds": the
/// client cannot know the server's T1, so the figure is 64 times the default T1 rather than a
/// multiple of ours.
pub const TIMER_D_UNRELIABLE: Duration = Duration::from_secs(32);

/// RFC 3261 16.6 step 11: Timer C "MUST be larger than 3 minutes".
pub const TIMER_C_MINIMUM: Duration = Duration::from_secs(180);

/// The base timer values, validated once at start and shared by every transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Round-trip time estimate; RFC 3261 17.1.1.1 recommends 500 ms.
    pub t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses; 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network; 5 s.
    pub t4: Duration,
    /// Proxy Timer C. The default is 181 s: RFC 3261 16.6 step 11 demands strictly more than
    /// three minutes, and one second over is the shortest compliant value, so a caller waiting
    /// on a phone nobody answers hears the timeout as early as the RFC allows.
    pub timer_c: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            timer_c: Duration::from_secs(181),
        }
    }
}

impl TimerConfig {
    /// Checks the values the machines rely on: a zero T1 or T2 would retransmit in a busy loop,
    /// T2 below T1 inverts the back-off (RFC 3261 17.1.2.2 caps at T2 a value that starts at T1),
    /// and Timer C must exceed three minutes (16.6 step 11).
    pub fn validate(&self) -> Result<(), Error> {
        if self.t1.is_zero() {
            return Err(Error::InvalidConfig {
                field: "t1",
                reason: "must be greater than zero",
            });
        }
        if self.t2 < self.t1 {
            return Err(Error::InvalidConfig {
                field: "t2",
                reason: "must not be shorter than t1",
            });
        }
        if self.t4.is_zero() {
            return Err(Error::InvalidConfig {
                field: "t4",
                reason: "must be greater than zero",
            });
        }
        if self.timer_c <= TIMER_C_MINIMUM {
            return Err(Error::InvalidConfig {
                field: "timer_c",
                reason: "must be longer than 3 minutes (RFC 3261 16.6 step 11)",
            });
        }
        Ok(())
    }

    /// 64*T1: Timers B, F, H, J (unreliable), L and M.
    pub fn sixty_four_t1(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// The base values a machine reads (T1, T2, T4), kept in milliseconds: every live transaction
/// holds one, and a ringing INVITE lives for minutes (a [`TimerConfig`] of four `Duration`s
/// is 64 bytes, this is 12). RFC 3261's timers are all whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BaseTimers {
    t1_ms: u32,
    t2_ms: u32,
    t4_ms: u32,
}

impl BaseTimers {
    pub(crate) fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms.into())
    }

    pub(crate) fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms.into())
    }

    pub(crate) fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms.into())
    }

    /// 64*T1: Timers B, F, H, J, L and M.
    pub(crate) fn sixty_four_t1(&self) -> Duration {
        self.t1().saturating_mul(64)
    }
}

impl From<&TimerConfig> for BaseTimers {
    fn from(config: &TimerConfig) -> Self {
        // Sub-millisecond parts round up, so that a nonzero T1 never becomes zero; values past
        // 49 days saturate.
        let ms = |d: Duration| u32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        BaseTimers {
            t1_ms: ms(config.t1),
            t2_ms: ms(config.t2),
            t4_ms: ms(config.t4),
        }
    }
}

/// A timer that fired, as the schedule reports it to its machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The retransmission timer fired; `interval` is the value it had been armed with, from
    /// which the machine computes the next one.
    Retransmit { timer: Timer, interval: Duration },
    /// The deadline fired; every deadline ends its transaction.
    Deadline(Timer),
}

#[derive(Debug, Clone, Copy)]
struct Retransmission {
    timer: Timer,
    at: Instant,
    /// In milliseconds, like [`BaseTimers`] from which every interval is doubled: a machine
    /// is kept for minutes while a callee rings.
    interval_ms: u32,
}

/// The (at most) two armed timers of one machine, boxed and only while one is armed: a
/// ringing INVITE's machines have none (a client in Proceeding waits on the proxy's Timer C,
/// a server in Proceeding on its TU), and they are kept for minutes. So they hold 8 bytes
/// each, not 48, for an allocation when a machine first arms a timer.
#[derive(Debug, Default)]
pub(crate) struct Schedule(Option<Box<Armed>>);

#[derive(Debug, Default)]
struct Armed {
    retransmission: Option<Retransmission>,
    deadline: Option<(Timer, Instant)>,
}

impl Schedule {
    /// Arms the retransmission timer to fire `interval` after `now`. An interval so long that
    /// the instant overflows leaves it disarmed: such a timer could never fire anyway.
    pub(crate) fn arm_retransmission(&mut self, timer: Timer, now: Instant, interval: Duration) {
        let retransmission = now.checked_add(interval).map(|at| Retransmission {
            timer,
            at,
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
        });
        self.armed().retransmission = retransmission;
        self.free_if_idle();
    }

    /// Arms the deadline to fire `after` from `now` (disarmed if the instant overflows).
    pub(crate) fn arm_deadline(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.armed().deadline = now.checked_add(after).map(|at| (timer, at));
        self.free_if_idle();
    }

    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// The earliest armed timer.
    pub(crate) fn next(&self) -> Option<Instant> {
        let armed = self.0.as_deref()?;
        let retransmission = armed.retransmission.map(|r| r.at);
        let deadline = armed.deadline.map(|(_, at)| at);
        match (retransmission, deadline) {
            (Some(r), Some(d)) => Some(r.min(d)),
            (r, d) => r.or(d),
        }
    }

    /// Disarms and returns the timer due at `now`, the deadline first when both are due.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Due> {
        let armed = self.0.as_deref_mut()?;
        if let Some((timer, at)) = armed.deadline {
            if at <= now {
                self.clear();
                return Some(Due::Deadline(timer));
            }
        }
        let due = match armed.retransmission {
            Some(r) if r.at <= now => {
                armed.retransmission = None;
                Some(Due::Retransmit {
                    timer: r.timer,
                    interval: Duration::from_millis(r.interval_ms.into()),
                })
            }
            _ => None,
        };
        self.free_if_idle();
        due
    }

    fn armed(&mut self) -> &mut Armed {
        self.0.get_or_insert_with(Box::default)
    }

    fn free_if_idle(&mut self) {
        if self
            .0
            .as_deref()
            .is_some_and(|a| a.retransmission.is_none() && a.deadline.is_none())
        {
            self.0 = None;
        }
    }
}

/// The next retransmission interval for Timers E and G: double the last, capped at T2
/// (RFC 3261 17.1.2.2 and 17.2.1). Timer A doubles without the cap.
pub(crate) fn doubled_up_to_t2(interval: Duration, t2: Duration) -> Duration {
    interval.saturating_mul(2).min(t2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_uses_the_rfc_values_and_is_valid() {
        let config = TimerConfig::default();
        assert_eq!(config.t1, Duration::from_millis(500));
        assert_eq!(config.t2, Duration::from_secs(4));
        assert_eq!(config.t4, Duration::from_secs(5));
        assert!(config.timer_c > TIMER_C_MINIMUM);
        assert_eq!(config.sixty_four_t1(), Duration::from_secs(32));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn config_with_zero_t1_is_refused() {
        let config = TimerConfig {
            t1: Duration::ZERO,
            ..TimerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig { field: "t1", .. })
        ));
    }

    #[test]
    fn config_with_t2_below_t1_is_refused() {
        let config = TimerConfig {
            t1: Duration::from_secs(2),
            t2: Duration::from_secs(1),
            ..TimerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig { field: "t2", .. })
        ));
    }

    #[test]
    fn config_with_timer_c_of_exactly_three_minutes_is_refused() {
        let config = TimerConfig {
            timer_c: Duration::from_secs(180),
            ..TimerConfig::default()
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig {
                field: "timer_c",
                ..
            })
        ));
    }

    #[test]
    fn schedule_reports_the_deadline_before_a_retransmission_due_at_the_same_instant() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.arm_retransmission(Timer::E, now, Duration::from_secs(1));
        schedule.arm_deadline(Timer::F, now, Duration::from_secs(1));
        let at = now + Duration::from_secs(1);
        assert_eq!(schedule.take_due(at), Some(Due::Deadline(Timer::F)));
        assert_eq!(schedule.next(), None);
    }

    #[test]
    fn schedule_fires_nothing_before_its_instant() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.arm_retransmission(Timer::A, now, Duration::from_millis(500));
        assert_eq!(schedule.take_due(now + Duration::from_millis(499)), None);
        assert_eq!(schedule.next(), Some(now + Duration::from_millis(500)));
    }

    #[test]
    fn schedule_leaves_a_timer_too_far_to_represent_disarmed() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.arm_deadline(Timer::B, now, Duration::MAX);
        assert_eq!(schedule.next(), None);
        assert!(schedule.0.is_none(), "nothing armed, nothing held");
    }

    #[test]
    fn a_schedule_holds_its_timers_only_while_one_is_armed() {
        let now = Instant::now();
        let mut schedule = Schedule::default();
        schedule.arm_retransmission(Timer::A, now, Duration::from_millis(500));
        schedule.arm_deadline(Timer::B, now, Duration::from_secs(32));
        let first = now + Duration::from_millis(500);
        assert!(matches!(
            schedule.take_due(first),
            Some(Due::Retransmit {
                timer: Timer::A,
                ..
            })
        ));
        assert!(schedule.0.is_some(), "Timer B is still armed");
        assert_eq!(schedule.next(), Some(now + Duration::from_secs(32)));
        schedule.arm_retransmission(Timer::A, first, Duration::from_secs(1));
        schedule.clear();
        assert!(schedule.0.is_none());
        schedule.arm_deadline(Timer::D, now, Duration::from_secs(32));
        assert_eq!(
            schedule.take_due(now + Duration::from_secs(32)),
            Some(Due::Deadline(Timer::D))
        );
        assert!(schedule.0.is_none(), "the last timer fired");
        schedule.arm_retransmission(Timer::E, now, Duration::from_millis(500));
        assert!(matches!(
            schedule.take_due(now + Duration::from_millis(500)),
            Some(Due::Retransmit {
                timer: Timer::E,
                ..
            })
        ));
        assert!(schedule.0.is_none(), "the only timer fired");
    }

    #[test]
    fn doubling_stops_at_t2() {
        let t2 = Duration::from_secs(4);
        assert_eq!(
            doubled_up_to_t2(Duration::from_millis(500), t2),
            Duration::from_secs(1)
        );
        assert_eq!(doubled_up_to_t2(Duration::from_secs(2), t2), t2);
        assert_eq!(doubled_up_to_t2(t2, t2), t2);
    }
}
