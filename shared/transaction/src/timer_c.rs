//! Timer C, the proxy's bound on how long a forwarded INVITE may ring (RFC 3261 16.6 step 11,
//! 16.7 step 2, 16.8).
//!
//! The INVITE client transaction waits in Proceeding for as long as the callee rings; Timer C
//! is what ends that wait at a proxy. It is kept beside each of the proxy's INVITE client
//! transactions rather than inside the machine, because user agents (the ATA) have no Timer C
//! and because what happens when it fires is the proxy core's business: send a CANCEL, or act
//! as if a 408 had arrived. The helper only decides which.

use std::time::{Duration, Instant};

use crate::{Error, StatusClass};

/// What the proxy must do when Timer C fires (RFC 3261 16.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerCExpiry {
    /// A provisional response was received: the proxy must CANCEL the branch (RFC 3261 9.1),
    /// and the branch then ends with the callee's 487.
    Cancel,
    /// No provisional response was received: the proxy must behave as if the branch had
    /// answered 408 (Request Timeout). RFC 3261 9.1 forbids a CANCEL before a provisional.
    RequestTimeout,
}

/// Timer C for one proxied INVITE branch.
#[derive(Debug, Clone)]
pub struct TimerC {
    /// In milliseconds: a ringing INVITE holds its Timer C for minutes, and a `Duration` is
    /// 16 bytes where this is 4. Timer C is whole seconds anyway (181 by default).
    duration_ms: u32,
    deadline: Option<Instant>,
    provisional_seen: bool,
}

impl TimerC {
    /// Starts Timer C at `now`, when the INVITE is forwarded (16.6 step 11). `duration` is
    /// normally [`crate::TimerConfig::timer_c`], which `validate` keeps above three minutes.
    pub fn new(now: Instant, duration: Duration) -> Self {
        Self {
            duration_ms: u32::try_from(duration.as_millis()).unwrap_or(u32::MAX),
            deadline: now.checked_add(duration),
            provisional_seen: false,
        }
    }

    /// A response arrived on the branch. 16.7 step 2: a provisional from 101 to 199 restarts the
    /// timer, a 100 does not (it comes from the next hop, not the callee, and says nothing
    /// about the call progressing) but still counts as a provisional for 16.8; a final stops
    /// the timer.
    pub fn handle_response(&mut self, now: Instant, status: u16) -> Result<(), Error> {
        let class = StatusClass::of(status)?;
        if self.deadline.is_none() {
            return Ok(());
        }
        match class {
            StatusClass::Provisional => {
                self.provisional_seen = true;
                if status != 100 {
                    self.deadline = now.checked_add(Duration::from_millis(self.duration_ms.into()));
                }
            }
            StatusClass::Success | StatusClass::Failure => self.deadline = None,
        }
        Ok(())
    }

    /// Fires the timer if due at `now`, and says what the proxy must do. The timer then stops;
    /// 16.8 also allows restarting it, which the proxy does with [`TimerC::new`].
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerCExpiry> {
        let deadline = self.deadline?;
        if now < deadline {
            return None;
        }
        self.deadline = None;
        Some(if self.provisional_seen {
            TimerCExpiry::Cancel
        } else {
            TimerCExpiry::RequestTimeout
        })
    }

    /// When Timer C fires, if it is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Stops the timer, e.g. when the proxy cancels the branch for another reason.
    pub fn stop(&mut self) {
        self.deadline = None;
    }

    /// Whether the timer is running.
    pub fn is_running(&self) -> bool {
        self.deadline.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ms;
    use crate::TimerConfig;

    fn three_minutes_and_a_bit(start: Instant) -> TimerC {
        TimerC::new(start, TimerConfig::default().timer_c)
    }

    #[test]
    fn default_timer_c_is_181_seconds() {
        assert_eq!(TimerConfig::default().timer_c, Duration::from_secs(181));
    }

    #[test]
    fn fires_after_its_duration_as_a_408_when_nothing_came_back() {
        let start = Instant::now();
        let mut timer = three_minutes_and_a_bit(start);
        assert_eq!(timer.poll_timeout(), Some(start + ms(181_000)));
        assert_eq!(timer.handle_timeout(start + ms(180_999)), None);
        assert_eq!(
            timer.handle_timeout(start + ms(181_000)),
            Some(TimerCExpiry::RequestTimeout)
        );
        assert!(!timer.is_running());
        assert_eq!(
            timer.handle_timeout(start + ms(400_000)),
            None,
            "fires once"
        );
    }

    #[test]
    fn each_ringing_restarts_it_and_expiry_then_asks_for_a_cancel() {
        let start = Instant::now();
        let mut timer = three_minutes_and_a_bit(start);
        timer
            .handle_response(start + ms(1_000), 180)
            .expect("valid status");
        timer
            .handle_response(start + ms(100_000), 183)
            .expect("valid status");
        assert_eq!(timer.poll_timeout(), Some(start + ms(281_000)));
        assert_eq!(timer.handle_timeout(start + ms(181_000)), None);
        assert_eq!(
            timer.handle_timeout(start + ms(281_000)),
            Some(TimerCExpiry::Cancel)
        );
    }

    #[test]
    fn a_100_trying_does_not_restart_it_but_allows_the_cancel() {
        let start = Instant::now();
        let mut timer = three_minutes_and_a_bit(start);
        timer
            .handle_response(start + ms(50), 100)
            .expect("valid status");
        assert_eq!(timer.poll_timeout(), Some(start + ms(181_000)));
        assert_eq!(
            timer.handle_timeout(start + ms(181_000)),
            Some(TimerCExpiry::Cancel)
        );
    }

    #[test]
    fn a_final_response_stops_it_for_good() {
        let start = Instant::now();
        let mut timer = three_minutes_and_a_bit(start);
        timer
            .handle_response(start + ms(5_000), 486)
            .expect("valid status");
        assert_eq!(timer.poll_timeout(), None);
        timer
            .handle_response(start + ms(6_000), 180)
            .expect("valid status");
        assert_eq!(timer.poll_timeout(), None, "a late 180 does not revive it");
    }

    #[test]
    fn custom_duration_moves_the_expiry() {
        let start = Instant::now();
        let mut timer = TimerC::new(start, Duration::from_secs(240));
        assert_eq!(timer.handle_timeout(start + ms(239_999)), None);
        assert_eq!(
            timer.handle_timeout(start + ms(240_000)),
            Some(TimerCExpiry::RequestTimeout)
        );
    }

    #[test]
    fn invalid_status_is_refused() {
        let start = Instant::now();
        let mut timer = three_minutes_and_a_bit(start);
        assert_eq!(
            timer.handle_response(start, 1000),
            Err(Error::InvalidStatus(1000))
        );
        assert!(timer.is_running());
    }
}
