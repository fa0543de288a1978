//! The non-INVITE client transaction (RFC 3261 17.1.2): REGISTER, OPTIONS, BYE, CANCEL, ...
//!
//! Created by the TU with the request to send; retransmits it on Timer E over UDP (doubling
//! from T1 up to T2, then every T2 once a provisional arrived), gives up on Timer F, passes
//! responses up, and lingers for Timer K to absorb retransmitted finals.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use crate::timer::{doubled_up_to_t2, BaseTimers, Due, Schedule};
use crate::{impl_transaction, Error, Event, Outputs, StatusClass, Timer, TimerConfig, Transport};

/// The states of RFC 3261 figure 6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNonInviteState {
    /// The request is out; no response yet. Timers E (UDP) and F run.
    Trying,
    /// A provisional arrived; Timer E now runs at T2, Timer F still runs.
    Proceeding,
    /// A final arrived; Timer K absorbs its retransmissions.
    Completed,
    /// Done; drop the machine once its queues are drained.
    Terminated,
}

impl ClientNonInviteState {
    /// The state's name as the RFC writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Trying => "Trying",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Terminated => "Terminated",
        }
    }
}

impl fmt::Display for ClientNonInviteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A non-INVITE client transaction. See the module documentation.
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    config: BaseTimers,
    transport: Transport,
    state: ClientNonInviteState,
    request: Bytes,
    schedule: Schedule,
    out: Outputs,
}

impl ClientNonInviteTransaction {
    /// Starts the transaction at `now`: queues `request` for sending and arms Timer E
    /// (unreliable transports only) and Timer F (RFC 3261 17.1.2.2).
    pub fn new(now: Instant, config: &TimerConfig, transport: Transport, request: Bytes) -> Self {
        let mut schedule = Schedule::default();
        if !transport.is_reliable() {
            schedule.arm_retransmission(Timer::E, now, config.t1);
        }
        schedule.arm_deadline(Timer::F, now, config.sixty_four_t1());
        let mut out = Outputs::default();
        out.transmit(request.clone());
        Self {
            config: BaseTimers::from(config),
            transport,
            state: ClientNonInviteState::Trying,
            request,
            schedule,
            out,
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientNonInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientNonInviteState::Terminated
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// A response matched this transaction. Responses after the final are absorbed
    /// (RFC 3261 17.1.2.2, Completed state); only a status outside 100-699 is an error.
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: u16,
        response: Bytes,
    ) -> Result<(), Error> {
        let class = StatusClass::of(status)?;
        use ClientNonInviteState::*;
        match (self.state, class) {
            (Trying | Proceeding, StatusClass::Provisional) => {
                // The running Timer E is left alone: 17.1.2.2 only switches to T2 when it
                // next fires in Proceeding.
                self.state = Proceeding;
                self.out.event(Event::Response { status, response });
            }
            (Trying | Proceeding, StatusClass::Success | StatusClass::Failure) => {
                self.state = Completed;
                self.out.event(Event::Response { status, response });
                self.schedule.clear();
                if self.transport.is_reliable() {
                    // Table 4: Timer K is zero over reliable transports.
                    self.terminate();
                } else {
                    self.schedule.arm_deadline(Timer::K, now, self.config.t4());
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Fires the timer due at `now`: Timer E retransmits (next interval doubled up to T2 in
    /// Trying, T2 in Proceeding); Timer F reports [`Event::Timeout`]; Timer K ends the
    /// transaction.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
        match self.schedule.take_due(now)? {
            Due::Retransmit { timer, interval } => {
                self.out.transmit(self.request.clone());
                let next = match self.state {
                    ClientNonInviteState::Proceeding => self.config.t2(),
                    _ => doubled_up_to_t2(interval, self.config.t2()),
                };
                self.schedule.arm_retransmission(timer, now, next);
                Some(timer)
            }
            Due::Deadline(timer) => {
                if timer == Timer::F {
                    self.out.event(Event::Timeout { timer });
                }
                self.terminate();
                Some(timer)
            }
        }
    }

    /// The transport failed to send (RFC 3261 17.1.4): inform the TU and terminate.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.out.event(Event::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ClientNonInviteState::Terminated;
        self.out.terminate(&mut self.schedule);
    }
}

impl_transaction!(ClientNonInviteTransaction);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{events, fired, ms, run, run_from, sent_at, transmits};

    fn register() -> Bytes {
        Bytes::from_static(b"REGISTER sip:example.com SIP/2.0\r\n\r\n")
    }

    fn response(status: u16) -> Bytes {
        Bytes::from(format!("SIP/2.0 {status} Whatever\r\n\r\n"))
    }

    fn new(start: Instant, transport: Transport) -> ClientNonInviteTransaction {
        ClientNonInviteTransaction::new(start, &TimerConfig::default(), transport, register())
    }

    #[test]
    fn unanswered_request_over_udp_backs_off_to_t2_and_times_out_at_32_s() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        let steps = run(&mut tx, start);
        let expected_sends = [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ];
        assert_eq!(sent_at(&steps), expected_sends.map(ms).to_vec());
        let mut expected_timers: Vec<_> = expected_sends[1..]
            .iter()
            .map(|&at| (ms(at), Timer::E))
            .collect();
        expected_timers.push((ms(32_000), Timer::F));
        assert_eq!(fired(&steps), expected_timers);
        assert_eq!(
            events(&mut tx),
            vec![Event::Timeout { timer: Timer::F }, Event::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn after_a_provisional_the_request_is_retransmitted_every_t2() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        transmits(&mut tx);
        // Timer E armed at 0 for 500 ms keeps running; from its next firing on, T2.
        tx.handle_response(start + ms(200), 100, response(100))
            .expect("valid status");
        assert_eq!(tx.state(), ClientNonInviteState::Proceeding);
        let steps = run_from(&mut tx, start, start + ms(200));
        assert_eq!(
            sent_at(&steps),
            [500, 4500, 8500, 12500, 16500, 20500, 24500, 28500]
                .map(ms)
                .to_vec()
        );
        assert_eq!(fired(&steps).last(), Some(&(ms(32_000), Timer::F)));
    }

    #[test]
    fn final_over_udp_is_followed_by_timer_k_of_t4() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        transmits(&mut tx);
        let final_at = start + ms(700);
        tx.handle_response(final_at, 200, response(200))
            .expect("valid status");
        assert_eq!(tx.state(), ClientNonInviteState::Completed);
        assert_eq!(tx.poll_timeout(), Some(final_at + ms(5_000)));

        tx.handle_response(final_at + ms(1_000), 200, response(200))
            .expect("valid status");
        assert_eq!(
            events(&mut tx),
            vec![Event::Response {
                status: 200,
                response: response(200)
            }],
            "the retransmitted final is absorbed"
        );
        assert_eq!(tx.poll_transmit(), None);

        assert_eq!(tx.handle_timeout(final_at + ms(5_000)), Some(Timer::K));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn final_over_tcp_terminates_at_once_since_timer_k_is_zero() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Tcp);
        tx.handle_response(start + ms(50), 401, response(401))
            .expect("valid status");
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(
            events(&mut tx),
            vec![
                Event::Response {
                    status: 401,
                    response: response(401)
                },
                Event::Terminated
            ]
        );
    }

    #[test]
    fn request_over_tcp_is_never_retransmitted() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Tcp);
        let steps = run(&mut tx, start);
        assert_eq!(sent_at(&steps), vec![ms(0)]);
        assert_eq!(fired(&steps), vec![(ms(32_000), Timer::F)]);
    }

    #[test]
    fn custom_t1_and_t2_change_the_back_off_and_timer_f() {
        let start = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_millis(200),
            t2: Duration::from_millis(1000),
            ..TimerConfig::default()
        };
        let mut tx = ClientNonInviteTransaction::new(start, &config, Transport::Udp, register());
        let steps = run(&mut tx, start);
        let sends = sent_at(&steps);
        // 200, 400, 800, then capped at 1000 ms; Timer F at 64 * 200 ms = 12.8 s.
        assert_eq!(sends[..6], [0, 200, 600, 1400, 2400, 3400].map(ms));
        assert_eq!(sends.last(), Some(&ms(12_400)));
        assert_eq!(fired(&steps).last(), Some(&(ms(12_800), Timer::F)));
    }

    #[test]
    fn custom_t4_changes_timer_k() {
        let start = Instant::now();
        let config = TimerConfig {
            t4: Duration::from_secs(2),
            ..TimerConfig::default()
        };
        let mut tx = ClientNonInviteTransaction::new(start, &config, Transport::Udp, register());
        tx.handle_response(start, 200, response(200))
            .expect("valid status");
        assert_eq!(tx.poll_timeout(), Some(start + ms(2_000)));
    }

    #[test]
    fn transport_error_informs_the_tu_once() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.handle_transport_error(start);
        tx.handle_transport_error(start);
        assert_eq!(
            events(&mut tx),
            vec![Event::TransportError, Event::Terminated]
        );
    }

    proptest::proptest! {
        #[test]
        fn retransmission_gaps_never_exceed_t2_and_timer_f_is_64_t1(
            t1_ms in 1u64..2_000,
            extra_ms in 0u64..8_000,
        ) {
            let config = TimerConfig {
                t1: ms(t1_ms),
                t2: ms(t1_ms + extra_ms),
                ..TimerConfig::default()
            };
            let start = Instant::now();
            let mut tx =
                ClientNonInviteTransaction::new(start, &config, Transport::Udp, register());
            let steps = run(&mut tx, start);
            let sends = sent_at(&steps);
            for gap in sends.windows(2).map(|w| w[1] - w[0]) {
                proptest::prop_assert!(gap <= config.t2);
                proptest::prop_assert!(gap >= config.t1);
            }
            proptest::prop_assert_eq!(
                fired(&steps).last().copied(),
                Some((ms(64 * t1_ms), Timer::F))
            );
        }
    }
}
