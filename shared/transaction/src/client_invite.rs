//! The INVITE client transaction (RFC 3261 17.1.1, with RFC 6026's Accepted state).
//!
//! Created by the TU with the INVITE to send; retransmits it on Timer A over UDP, gives up on
//! Timer B, passes responses up, and acknowledges 300-699 finals itself. A 2xx is not
//! acknowledged here (the ACK to a 2xx is the TU's, RFC 3261 13.2.2.4); the machine only waits
//! in Accepted for Timer M so that 2xx retransmissions from other forks still reach the TU.
//!
//! Because this crate cannot build messages, acknowledging a 300-699 takes two steps: the
//! machine emits [`Event::NeedsAck`], and the TU answers with [`ClientInviteTransaction::send_ack`]
//! (RFC 3261 17.1.1.3 says what the ACK contains). Later retransmissions of the final response
//! are answered with the same ACK bytes.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use crate::timer::{BaseTimers, Due, Schedule, TIMER_D_UNRELIABLE};
use crate::{impl_transaction, Error, Event, Outputs, StatusClass, Timer, TimerConfig, Transport};

const MACHINE: &str = "client INVITE transaction";

/// The states of RFC 3261 figure 5 as amended by RFC 6026 section 7.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientInviteState {
    /// The INVITE is out; no response yet. Timers A (UDP) and B run.
    Calling,
    /// A provisional response arrived; the machine now only waits (the proxy's Timer C, in
    /// [`crate::TimerC`], bounds the wait).
    Proceeding,
    /// A 300-699 final arrived and was acknowledged; Timer D absorbs its retransmissions.
    Completed,
    /// A 2xx arrived (RFC 6026); Timer M lets further 2xx reach the TU.
    Accepted,
    /// Done; drop the machine once its queues are drained.
    Terminated,
}

impl ClientInviteState {
    /// The state's name as the RFC writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Calling => "Calling",
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

impl fmt::Display for ClientInviteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An INVITE client transaction. See the module documentation.
#[derive(Debug)]
pub struct ClientInviteTransaction {
    config: BaseTimers,
    transport: Transport,
    state: ClientInviteState,
    request: Bytes,
    /// The TU-built ACK for the 300-699 final, resent on each retransmission of that final.
    /// Boxed: only a 300-699 final has one, and a ringing INVITE is kept for minutes.
    ack: Option<Box<Bytes>>,
    schedule: Schedule,
    out: Outputs,
}

impl ClientInviteTransaction {
    /// Starts the transaction at `now`: queues `request` (the serialized INVITE) for sending and
    /// arms Timer A (unreliable transports only) and Timer B (RFC 3261 17.1.1.2).
    pub fn new(now: Instant, config: &TimerConfig, transport: Transport, request: Bytes) -> Self {
        let mut schedule = Schedule::default();
        if !transport.is_reliable() {
            schedule.arm_retransmission(Timer::A, now, config.t1);
        }
        schedule.arm_deadline(Timer::B, now, config.sixty_four_t1());
        let mut out = Outputs::default();
        out.transmit(request.clone());
        Self {
            config: BaseTimers::from(config),
            transport,
            state: ClientInviteState::Calling,
            request,
            ack: None,
            schedule,
            out,
        }
    }

    /// The current state.
    pub fn state(&self) -> ClientInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientInviteState::Terminated
    }

    /// The INVITE this transaction sends, for the TU building the ACK or a CANCEL (RFC 3261 9.1).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// Swaps the kept INVITE for `request`, what the TU still needs of it (a proxy keeps only
    /// what a CANCEL and an ACK copy, for the minutes a branch may ring). Allowed once a
    /// response has come: the INVITE is never sent again after the Calling state (17.1.1.2).
    pub fn replace_request(&mut self, request: Bytes) -> Result<(), Error> {
        if self.state == ClientInviteState::Calling {
            return Err(Error::WrongState {
                machine: MACHINE,
                action: "replace the request",
                state: self.state.name(),
            });
        }
        self.request = request;
        Ok(())
    }

    /// A response matched this transaction (by [`crate::TransactionKey::client`]).
    ///
    /// Responses that do not fit the state (a 1xx after the final, a 2xx after a 486) are
    /// absorbed silently, as RFC 3261 figure 5 has no transition for them. Only a status outside
    /// 100-699 is an error.
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: u16,
        response: Bytes,
    ) -> Result<(), Error> {
        let class = StatusClass::of(status)?;
        use ClientInviteState::*;
        match (self.state, class) {
            (Calling | Proceeding, StatusClass::Provisional) => {
                // 17.1.1.2: a provisional stops retransmissions, and Timer B only guards Calling.
                self.schedule.clear();
                self.state = Proceeding;
                self.out.event(Event::Response { status, response });
            }
            (Calling | Proceeding, StatusClass::Success) => {
                // RFC 6026 7.2: stay around for 64*T1 so that 2xx from other forks still
                // reach the TU instead of being mistaken for strays.
                self.schedule.clear();
                self.schedule
                    .arm_deadline(Timer::M, now, self.config.sixty_four_t1());
                self.state = Accepted;
                self.out.event(Event::Response { status, response });
            }
            (Calling | Proceeding, StatusClass::Failure) => {
                // 17.1.1.2: Timer D runs from entering Completed. Over reliable transports it is
                // zero, but the ACK must go out first, so there the machine ends when the TU
                // hands over the ACK, and this 32 s deadline only guards against a TU that never
                // does.
                self.schedule.clear();
                self.schedule
                    .arm_deadline(Timer::D, now, TIMER_D_UNRELIABLE);
                self.state = Completed;
                self.out.event(Event::Response { status, response });
                self.out.event(Event::NeedsAck { status });
            }
            (Completed, StatusClass::Failure) => {
                // 17.1.1.2: a retransmitted final means our ACK was lost; resend it, and do not
                // bother the TU again.
                if let Some(ack) = &self.ack {
                    self.out.transmit(Bytes::clone(ack));
                }
            }
            (Accepted, StatusClass::Success) => {
                self.out.event(Event::Response { status, response });
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends the ACK the TU built after [`Event::NeedsAck`] (RFC 3261 17.1.1.3), and keeps it
    /// for answering retransmissions of the final response. Over a reliable transport Timer D is
    /// zero, so the transaction terminates at once.
    pub fn send_ack(&mut self, _now: Instant, ack: Bytes) -> Result<(), Error> {
        if self.state != ClientInviteState::Completed || self.ack.is_some() {
            return Err(Error::WrongState {
                machine: MACHINE,
                action: "send an ACK",
                state: self.state.name(),
            });
        }
        self.out.transmit(ack.clone());
        self.ack = Some(Box::new(ack));
        if self.transport.is_reliable() {
            self.terminate();
        }
        Ok(())
    }

    /// Fires the timer due at `now`: Timer A retransmits the INVITE and doubles its interval
    /// (17.1.1.2, no T2 cap for INVITE requests); Timer B reports [`Event::Timeout`]; Timers D
    /// and M end the transaction.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
        match self.schedule.take_due(now)? {
            Due::Retransmit { timer, interval } => {
                self.out.transmit(self.request.clone());
                self.schedule
                    .arm_retransmission(timer, now, interval.saturating_mul(2));
                Some(timer)
            }
            Due::Deadline(timer) => {
                if timer == Timer::B {
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
        self.state = ClientInviteState::Terminated;
        self.out.terminate(&mut self.schedule);
    }
}

impl_transaction!(ClientInviteTransaction);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{events, fired, ms, run, sent_at, transmits, Step};

    fn invite() -> Bytes {
        Bytes::from_static(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n")
    }

    fn ack() -> Bytes {
        Bytes::from_static(b"ACK sip:bob@example.com SIP/2.0\r\n\r\n")
    }

    fn response(status: u16) -> Bytes {
        Bytes::from(format!("SIP/2.0 {status} Whatever\r\n\r\n"))
    }

    fn udp(start: Instant) -> ClientInviteTransaction {
        ClientInviteTransaction::new(start, &TimerConfig::default(), Transport::Udp, invite())
    }

    #[test]
    fn unanswered_invite_over_udp_is_sent_at_timer_a_instants_and_times_out_at_32_s() {
        let start = Instant::now();
        let mut tx = udp(start);
        let steps = run(&mut tx, start);
        assert_eq!(
            sent_at(&steps),
            [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec()
        );
        let mut expected: Vec<_> = [500, 1500, 3500, 7500, 15500, 31500]
            .into_iter()
            .map(|at| (ms(at), Timer::A))
            .collect();
        expected.push((ms(32_000), Timer::B));
        assert_eq!(fired(&steps), expected);
        assert!(steps
            .iter()
            .all(|step| !matches!(step, Step::Sent(_, m) if *m != invite())));
        assert_eq!(
            events(&mut tx),
            vec![Event::Timeout { timer: Timer::B }, Event::Terminated]
        );
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.poll_transmit(), None);
    }

    #[test]
    fn unanswered_invite_over_tcp_is_sent_once_and_times_out_at_32_s() {
        let start = Instant::now();
        let mut tx =
            ClientInviteTransaction::new(start, &TimerConfig::default(), Transport::Tcp, invite());
        let steps = run(&mut tx, start);
        assert_eq!(
            steps,
            vec![
                Step::Sent(ms(0), invite()),
                Step::Fired(ms(32_000), Timer::B)
            ]
        );
    }

    #[test]
    fn custom_t1_moves_every_retransmission_and_timer_b() {
        let start = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        let mut tx = ClientInviteTransaction::new(start, &config, Transport::Udp, invite());
        let steps = run(&mut tx, start);
        assert_eq!(
            sent_at(&steps),
            [0, 100, 300, 700, 1500, 3100, 6300].map(ms).to_vec()
        );
        assert_eq!(fired(&steps).last(), Some(&(ms(6400), Timer::B)));
    }

    #[test]
    fn provisional_response_stops_retransmissions_and_timer_b() {
        let start = Instant::now();
        let mut tx = udp(start);
        transmits(&mut tx);
        tx.handle_response(start + ms(200), 180, response(180))
            .expect("valid status");
        assert_eq!(tx.state(), ClientInviteState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(
            events(&mut tx),
            vec![Event::Response {
                status: 180,
                response: response(180)
            }]
        );
        assert_eq!(tx.handle_timeout(start + ms(40_000)), None);
        assert_eq!(tx.poll_transmit(), None);
    }

    #[test]
    fn failure_final_asks_for_an_ack_and_resends_it_for_each_retransmitted_final() {
        let start = Instant::now();
        let mut tx = udp(start);
        transmits(&mut tx);
        tx.handle_response(start + ms(100), 180, response(180))
            .expect("valid status");
        let final_at = start + ms(5_000);
        tx.handle_response(final_at, 486, response(486))
            .expect("valid status");
        assert_eq!(tx.state(), ClientInviteState::Completed);
        assert_eq!(
            events(&mut tx),
            vec![
                Event::Response {
                    status: 180,
                    response: response(180)
                },
                Event::Response {
                    status: 486,
                    response: response(486)
                },
                Event::NeedsAck { status: 486 },
            ]
        );
        tx.send_ack(final_at, ack()).expect("ACK allowed");
        assert_eq!(transmits(&mut tx), vec![ack()]);

        for retransmission in [5_500, 6_500, 8_500] {
            tx.handle_response(start + ms(retransmission), 486, response(486))
                .expect("valid status");
            assert_eq!(transmits(&mut tx), vec![ack()]);
        }
        assert_eq!(events(&mut tx), vec![], "retransmissions stay hidden");

        assert_eq!(tx.poll_timeout(), Some(final_at + ms(32_000)));
        assert_eq!(tx.handle_timeout(final_at + ms(31_999)), None);
        assert_eq!(tx.handle_timeout(final_at + ms(32_000)), Some(Timer::D));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn failure_final_over_tcp_terminates_as_soon_as_the_ack_is_sent() {
        let start = Instant::now();
        let mut tx =
            ClientInviteTransaction::new(start, &TimerConfig::default(), Transport::Tcp, invite());
        transmits(&mut tx);
        tx.handle_response(start + ms(300), 404, response(404))
            .expect("valid status");
        assert_eq!(tx.state(), ClientInviteState::Completed);
        tx.send_ack(start + ms(300), ack()).expect("ACK allowed");
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(transmits(&mut tx), vec![ack()]);
        assert_eq!(events(&mut tx).last(), Some(&Event::Terminated));
    }

    #[test]
    fn ack_is_refused_outside_completed_and_when_already_sent() {
        let start = Instant::now();
        let mut tx = udp(start);
        assert!(matches!(
            tx.send_ack(start, ack()),
            Err(Error::WrongState {
                state: "Calling",
                ..
            })
        ));
        tx.handle_response(start, 500, response(500))
            .expect("valid status");
        tx.send_ack(start, ack()).expect("first ACK allowed");
        assert!(tx.send_ack(start, ack()).is_err());
    }

    #[test]
    fn the_request_is_replaced_only_once_it_will_not_be_sent_again() {
        let start = Instant::now();
        let mut tx = udp(start);
        let skeleton = Bytes::from_static(b"INVITE sip:b SIP/2.0\r\n\r\n");
        assert!(tx.replace_request(skeleton.clone()).is_err());
        transmits(&mut tx);
        tx.handle_response(start, 180, response(180))
            .expect("valid status");
        tx.replace_request(skeleton.clone())
            .expect("allowed after a 1xx");
        assert_eq!(tx.request(), &skeleton);
        // Proceeding: nothing is retransmitted, so the skeleton never goes out.
        tx.handle_timeout(start + ms(10_000));
        assert_eq!(tx.poll_transmit(), None);
    }

    #[test]
    fn retransmitted_final_before_the_tu_built_the_ack_sends_nothing() {
        let start = Instant::now();
        let mut tx = udp(start);
        transmits(&mut tx);
        tx.handle_response(start, 603, response(603))
            .expect("valid status");
        tx.handle_response(start + ms(500), 603, response(603))
            .expect("valid status");
        assert_eq!(tx.poll_transmit(), None);
    }

    #[test]
    fn success_moves_to_accepted_and_passes_every_further_2xx_until_timer_m() {
        let start = Instant::now();
        let mut tx = udp(start);
        transmits(&mut tx);
        let ok_at = start + ms(2_000);
        tx.handle_response(ok_at, 200, response(200))
            .expect("valid status");
        assert_eq!(tx.state(), ClientInviteState::Accepted);
        assert_eq!(
            tx.poll_timeout(),
            Some(ok_at + ms(32_000)),
            "Timer M = 64*T1"
        );

        tx.handle_response(ok_at + ms(500), 200, response(200))
            .expect("valid status");
        tx.handle_response(ok_at + ms(600), 183, response(183))
            .expect("valid status");
        tx.handle_response(ok_at + ms(700), 486, response(486))
            .expect("valid status");
        let ok = Event::Response {
            status: 200,
            response: response(200),
        };
        assert_eq!(events(&mut tx), vec![ok.clone(), ok]);
        assert_eq!(tx.poll_transmit(), None, "the ACK to a 2xx is the TU's");

        assert_eq!(tx.handle_timeout(ok_at + ms(32_000)), Some(Timer::M));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn timer_m_scales_with_t1() {
        let start = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_secs(1),
            t2: Duration::from_secs(4),
            ..TimerConfig::default()
        };
        let mut tx = ClientInviteTransaction::new(start, &config, Transport::Tcp, invite());
        tx.handle_response(start, 200, response(200))
            .expect("valid status");
        assert_eq!(tx.poll_timeout(), Some(start + ms(64_000)));
    }

    #[test]
    fn transport_error_in_calling_informs_the_tu_and_terminates() {
        let start = Instant::now();
        let mut tx = udp(start);
        tx.handle_transport_error(start + ms(10));
        assert!(tx.is_terminated());
        assert_eq!(
            events(&mut tx),
            vec![Event::TransportError, Event::Terminated]
        );
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn invalid_status_is_refused_without_changing_state() {
        let start = Instant::now();
        let mut tx = udp(start);
        assert_eq!(
            tx.handle_response(start, 42, response(42)),
            Err(Error::InvalidStatus(42))
        );
        assert_eq!(tx.state(), ClientInviteState::Calling);
    }
}
