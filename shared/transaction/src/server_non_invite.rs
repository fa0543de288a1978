//! The non-INVITE server transaction (RFC 3261 17.2.2): REGISTER, OPTIONS, BYE, CANCEL, ...
//!
//! Created when such a request arrives that matches no transaction; the TU answers through
//! [`ServerNonInviteTransaction::send_response`]. Request retransmissions are answered with the
//! last response sent, and after the final the machine lingers for Timer J (64*T1 over UDP,
//! zero over reliable transports) so that late retransmissions still get that final.

use std::fmt;
use std::time::Instant;

use bytes::Bytes;

use crate::timer::{BaseTimers, Due, Schedule};
use crate::{impl_transaction, Error, Event, Outputs, StatusClass, Timer, TimerConfig, Transport};

const MACHINE: &str = "server non-INVITE transaction";

/// The states of RFC 3261 figure 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerNonInviteState {
    /// The request is with the TU; nothing sent yet. Retransmissions are absorbed.
    Trying,
    /// A provisional was sent; retransmissions get it again.
    Proceeding,
    /// The final was sent; retransmissions get it again until Timer J.
    Completed,
    /// Done; drop the machine once its queues are drained.
    Terminated,
}

impl ServerNonInviteState {
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

impl fmt::Display for ServerNonInviteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A non-INVITE server transaction. See the module documentation.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    config: BaseTimers,
    transport: Transport,
    state: ServerNonInviteState,
    request: Bytes,
    last_response: Option<Bytes>,
    schedule: Schedule,
    out: Outputs,
}

impl ServerNonInviteTransaction {
    /// Creates the transaction for `request` received at `now`, in Trying. The caller passes the
    /// request to the TU itself.
    pub fn new(_now: Instant, config: &TimerConfig, transport: Transport, request: Bytes) -> Self {
        Self {
            config: BaseTimers::from(config),
            transport,
            state: ServerNonInviteState::Trying,
            request,
            last_response: None,
            schedule: Schedule::default(),
            out: Outputs::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerNonInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerNonInviteState::Terminated
    }

    /// The request that created the transaction.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The TU sends a response: provisionals while Trying or Proceeding, then one final
    /// (17.2.2: "any other final responses passed by the TU ... MUST be discarded"; here they
    /// are refused so the TU bug shows).
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        response: Bytes,
    ) -> Result<(), Error> {
        let class = StatusClass::of(status)?;
        if !matches!(
            self.state,
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding
        ) {
            return Err(Error::WrongState {
                machine: MACHINE,
                action: "send a response",
                state: self.state.name(),
            });
        }
        self.last_response = Some(response.clone());
        self.out.transmit(response);
        if class == StatusClass::Provisional {
            self.state = ServerNonInviteState::Proceeding;
        } else {
            self.state = ServerNonInviteState::Completed;
            if self.transport.is_reliable() {
                // Table 4: Timer J is zero over reliable transports.
                self.terminate();
            } else {
                self.schedule
                    .arm_deadline(Timer::J, now, self.config.sixty_four_t1());
            }
        }
        Ok(())
    }

    /// A retransmission of the request arrived: resend the last response (17.2.2), or absorb
    /// it while the TU has not answered yet.
    pub fn handle_request_retransmission(&mut self, _now: Instant) {
        if matches!(
            self.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            if let Some(response) = &self.last_response {
                self.out.transmit(response.clone());
            }
        }
    }

    /// Fires Timer J if due at `now`, ending the transaction.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
        match self.schedule.take_due(now)? {
            // Never armed: RFC 3261 17.2.2 gives this side no retransmission timer.
            Due::Retransmit { timer, .. } => Some(timer),
            Due::Deadline(timer) => {
                self.terminate();
                Some(timer)
            }
        }
    }

    /// The transport failed to send (RFC 3261 17.2.4): inform the TU and terminate.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.out.event(Event::TransportError);
        self.terminate();
    }

    fn terminate(&mut self) {
        self.state = ServerNonInviteState::Terminated;
        self.out.terminate(&mut self.schedule);
    }
}

impl_transaction!(ServerNonInviteTransaction);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{events, fired, ms, run, sent_at, transmits};

    fn options() -> Bytes {
        Bytes::from_static(b"OPTIONS sip:example.com SIP/2.0\r\n\r\n")
    }

    fn response(status: u16) -> Bytes {
        Bytes::from(format!("SIP/2.0 {status} Whatever\r\n\r\n"))
    }

    fn new(start: Instant, transport: Transport) -> ServerNonInviteTransaction {
        ServerNonInviteTransaction::new(start, &TimerConfig::default(), transport, options())
    }

    #[test]
    fn retransmission_while_trying_is_absorbed() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.handle_request_retransmission(start + ms(500));
        assert_eq!(tx.poll_transmit(), None);
        assert_eq!(tx.state(), ServerNonInviteState::Trying);
    }

    #[test]
    fn retransmission_gets_the_last_provisional_then_the_final() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 100, response(100))
            .expect("allowed");
        tx.handle_request_retransmission(start + ms(500));
        assert_eq!(transmits(&mut tx), vec![response(100), response(100)]);

        tx.send_response(start + ms(600), 200, response(200))
            .expect("allowed");
        tx.handle_request_retransmission(start + ms(1_500));
        tx.handle_request_retransmission(start + ms(3_500));
        assert_eq!(
            transmits(&mut tx),
            vec![response(200), response(200), response(200)]
        );
    }

    #[test]
    fn final_over_udp_lingers_for_timer_j_of_64_t1_and_is_never_retransmitted_alone() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 200, response(200))
            .expect("allowed");
        assert_eq!(tx.state(), ServerNonInviteState::Completed);
        let steps = run(&mut tx, start);
        assert_eq!(sent_at(&steps), vec![ms(0)]);
        assert_eq!(fired(&steps), vec![(ms(32_000), Timer::J)]);
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn final_over_tcp_terminates_at_once_since_timer_j_is_zero() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Tcp);
        tx.send_response(start, 200, response(200))
            .expect("allowed");
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(transmits(&mut tx), vec![response(200)], "still sent");
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn custom_t1_changes_timer_j() {
        let start = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        let mut tx = ServerNonInviteTransaction::new(start, &config, Transport::Udp, options());
        tx.send_response(start, 404, response(404))
            .expect("allowed");
        assert_eq!(tx.poll_timeout(), Some(start + ms(6_400)));
    }

    #[test]
    fn second_final_is_refused() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 200, response(200))
            .expect("allowed");
        assert_eq!(
            tx.send_response(start, 500, response(500)),
            Err(Error::WrongState {
                machine: MACHINE,
                action: "send a response",
                state: "Completed"
            })
        );
        assert_eq!(transmits(&mut tx), vec![response(200)]);
    }

    #[test]
    fn transport_error_in_proceeding_informs_the_tu_and_terminates() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 100, response(100))
            .expect("allowed");
        tx.handle_transport_error(start);
        assert!(tx.is_terminated());
        assert_eq!(
            events(&mut tx),
            vec![Event::TransportError, Event::Terminated]
        );
    }
}
