//! The INVITE server transaction (RFC 3261 17.2.1, with RFC 6026's Accepted state).
//!
//! Created when an INVITE arrives that matches no transaction; the TU then drives it with
//! [`ServerInviteTransaction::send_response`]. It answers retransmitted INVITEs with the last
//! response, retransmits a 300-699 final on Timer G until the ACK arrives (or Timer H gives
//! up), absorbs that ACK, and after a 2xx waits in Accepted for Timer L so that INVITE
//! retransmissions are not mistaken for new requests (RFC 6026 section 7.1).
//!
//! RFC 3261 17.2.1 also wants a 100 (Trying) within 200 ms unless the TU answers sooner. The
//! machine cannot build one, so the TU sends it through `send_response` like any provisional;
//! the proxy does so at once (RFC 3261 16.2 allows a stateful proxy to).

use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::Delta;

use crate::timer::{doubled_up_to_t2, BaseTimers, Due, Schedule};
use crate::{impl_transaction, Error, Event, Outputs, StatusClass, Timer, TimerConfig, Transport};

const MACHINE: &str = "server INVITE transaction";

/// The states of RFC 3261 figure 7 as amended by RFC 6026 section 7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerInviteState {
    /// The INVITE is with the TU; provisionals may have been sent.
    Proceeding,
    /// A 300-699 final was sent; Timer G (UDP) retransmits it and Timer H waits for the ACK.
    Completed,
    /// The ACK arrived; Timer I absorbs its retransmissions.
    Confirmed,
    /// A 2xx was sent (RFC 6026); Timer L absorbs INVITE retransmissions.
    Accepted,
    /// Done; drop the machine once its queues are drained.
    Terminated,
}

impl ServerInviteState {
    /// The state's name as the RFC writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Proceeding => "Proceeding",
            Self::Completed => "Completed",
            Self::Confirmed => "Confirmed",
            Self::Accepted => "Accepted",
            Self::Terminated => "Terminated",
        }
    }
}

impl fmt::Display for ServerInviteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An INVITE server transaction. See the module documentation.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    config: BaseTimers,
    transport: Transport,
    state: ServerInviteState,
    request: Bytes,
    /// What a retransmitted INVITE is answered with (17.2.1).
    last_response: Option<LastResponse>,
    schedule: Schedule,
    out: Outputs,
}

/// The response a retransmitted INVITE gets.
#[derive(Debug)]
enum LastResponse {
    /// In Proceeding, a 100 (Trying) kept as sent: the TU's own, short, and usually replaced
    /// by the callee's 180 within milliseconds, so not worth working out a delta (boxed, to
    /// keep a ringing INVITE's machine small).
    Trying(Box<Bytes>),
    /// In Proceeding, the last provisional, kept as its differences from the request: a
    /// callee may ring for minutes, and its 180 repeats the INVITE's Vias, From, To, Call-ID
    /// and CSeq (see [`Delta`]).
    Provisional(Delta),
    /// In Completed, the 300-699 final that Timer G resends (boxed, to keep a ringing
    /// INVITE's machine small).
    Final(Box<Bytes>),
}

impl ServerInviteTransaction {
    /// Creates the transaction for the INVITE `request` received at `now`, in Proceeding. The
    /// caller passes the request to the TU itself; nothing is sent until the TU responds.
    pub fn new(_now: Instant, config: &TimerConfig, transport: Transport, request: Bytes) -> Self {
        Self {
            config: BaseTimers::from(config),
            transport,
            state: ServerInviteState::Proceeding,
            request,
            last_response: None,
            schedule: Schedule::default(),
            out: Outputs::default(),
        }
    }

    /// The current state.
    pub fn state(&self) -> ServerInviteState {
        self.state
    }

    /// Whether the transaction is over.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerInviteState::Terminated
    }

    /// The INVITE that created the transaction.
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// Swaps the kept INVITE for `request`, what the TU still needs of it to write its own
    /// responses. The machine reads it only to restore its last provisional, kept as a delta
    /// against it, so that provisional is made again against `request`.
    pub fn replace_request(&mut self, request: Bytes) {
        if let Some(LastResponse::Provisional(delta)) = &self.last_response {
            self.last_response = self
                .restore(delta)
                .map(|provisional| LastResponse::Provisional(Delta::new(&provisional, &request)));
        }
        self.request = request;
    }

    /// The provisional `delta` stands for; it was made against the request kept now, so it
    /// always comes back.
    fn restore(&self, delta: &Delta) -> Option<Bytes> {
        let restored = delta.restore(&self.request);
        debug_assert!(
            restored.is_some(),
            "a provisional kept against another request"
        );
        restored.map(Bytes::from)
    }

    /// Sends the response a retransmitted INVITE gets, if there is one.
    fn resend_last_response(&mut self) {
        let response = match &self.last_response {
            Some(LastResponse::Provisional(delta)) => self.restore(delta),
            Some(LastResponse::Trying(response) | LastResponse::Final(response)) => {
                Some(Bytes::clone(response))
            }
            None => None,
        };
        if let Some(response) = response {
            self.out.transmit(response);
        }
    }

    /// The TU sends a response. In Proceeding any status is allowed; in Accepted only 2xx
    /// (RFC 6026 7.1: the UAS core's own 2xx retransmissions, or 2xx from other forks at a
    /// proxy, pass straight to the transport). Anything else is a TU bug and is refused.
    pub fn send_response(
        &mut self,
        now: Instant,
        status: u16,
        response: Bytes,
    ) -> Result<(), Error> {
        let class = StatusClass::of(status)?;
        match (self.state, class) {
            (ServerInviteState::Proceeding, StatusClass::Provisional) => {
                self.last_response = Some(if status == 100 {
                    LastResponse::Trying(Box::new(response.clone()))
                } else {
                    LastResponse::Provisional(Delta::new(&response, &self.request))
                });
                self.out.transmit(response);
            }
            (ServerInviteState::Proceeding, StatusClass::Success) => {
                self.out.transmit(response);
                self.last_response = None;
                self.state = ServerInviteState::Accepted;
                self.schedule
                    .arm_deadline(Timer::L, now, self.config.sixty_four_t1());
            }
            (ServerInviteState::Proceeding, StatusClass::Failure) => {
                self.last_response = Some(LastResponse::Final(Box::new(response.clone())));
                self.out.transmit(response);
                self.state = ServerInviteState::Completed;
                if !self.transport.is_reliable() {
                    self.schedule
                        .arm_retransmission(Timer::G, now, self.config.t1());
                }
                self.schedule
                    .arm_deadline(Timer::H, now, self.config.sixty_four_t1());
            }
            (ServerInviteState::Accepted, StatusClass::Success) => {
                self.out.transmit(response);
            }
            (state, class) => {
                return Err(Error::WrongState {
                    machine: MACHINE,
                    action: match class {
                        StatusClass::Provisional => "send a provisional response",
                        StatusClass::Success => "send a 2xx response",
                        StatusClass::Failure => "send a 300-699 response",
                    },
                    state: state.name(),
                })
            }
        }
        Ok(())
    }

    /// A retransmission of the INVITE arrived (same [`crate::TransactionKey`]). 17.2.1: in
    /// Proceeding resend the last provisional, in Completed the final; RFC 6026 7.1: absorb it
    /// in Accepted, as the 2xx is the TU's to retransmit.
    pub fn handle_request_retransmission(&mut self, _now: Instant) {
        match self.state {
            ServerInviteState::Proceeding | ServerInviteState::Completed => {
                self.resend_last_response()
            }
            ServerInviteState::Confirmed
            | ServerInviteState::Accepted
            | ServerInviteState::Terminated => {}
        }
    }

    /// An ACK matched this transaction (its key equals the INVITE's, see [`crate::key`]).
    ///
    /// The state tells which ACK it is. In Completed it acknowledges our 300-699 final
    /// (17.2.1): stop retransmitting and wait Timer I for its retransmissions. In Accepted it
    /// acknowledges a 2xx, which is only possible for RFC 2543 peers whose ACK shares the
    /// INVITE's key; RFC 6026 7.1 hands it to the TU ([`Event::AckForTu`]). Elsewhere it is
    /// absorbed.
    pub fn handle_ack(&mut self, now: Instant) {
        match self.state {
            ServerInviteState::Completed => {
                self.schedule.clear();
                self.state = ServerInviteState::Confirmed;
                if self.transport.is_reliable() {
                    // Table 4: Timer I is zero over reliable transports.
                    self.terminate();
                } else {
                    self.schedule.arm_deadline(Timer::I, now, self.config.t4());
                }
            }
            ServerInviteState::Accepted => self.out.event(Event::AckForTu),
            ServerInviteState::Proceeding
            | ServerInviteState::Confirmed
            | ServerInviteState::Terminated => {}
        }
    }

    /// Fires the timer due at `now`: Timer G resends the final, doubling up to T2 (17.2.1);
    /// Timer H reports [`Event::Timeout`] (the ACK never came); Timers I and L end the
    /// transaction.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
        match self.schedule.take_due(now)? {
            Due::Retransmit { timer, interval } => {
                self.resend_last_response();
                self.schedule.arm_retransmission(
                    timer,
                    now,
                    doubled_up_to_t2(interval, self.config.t2()),
                );
                Some(timer)
            }
            Due::Deadline(timer) => {
                if timer == Timer::H {
                    self.out.event(Event::Timeout { timer });
                }
                self.terminate();
                Some(timer)
            }
        }
    }

    /// The transport failed to send (RFC 3261 17.2.4): inform the TU and terminate, except in
    /// Accepted, where RFC 6026 7.1 keeps the machine alive to go on absorbing INVITE
    /// retransmissions.
    pub fn handle_transport_error(&mut self, _now: Instant) {
        match self.state {
            ServerInviteState::Terminated => {}
            ServerInviteState::Accepted => self.out.event(Event::TransportError),
            _ => {
                self.out.event(Event::TransportError);
                self.terminate();
            }
        }
    }

    fn terminate(&mut self) {
        self.state = ServerInviteState::Terminated;
        self.out.terminate(&mut self.schedule);
    }
}

impl_transaction!(ServerInviteTransaction);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{events, fired, ms, run, run_from, sent_at, transmits};

    fn invite() -> Bytes {
        Bytes::from_static(b"INVITE sip:bob@example.com SIP/2.0\r\n\r\n")
    }

    fn response(status: u16) -> Bytes {
        Bytes::from(format!("SIP/2.0 {status} Whatever\r\n\r\n"))
    }

    fn new(start: Instant, transport: Transport) -> ServerInviteTransaction {
        ServerInviteTransaction::new(start, &TimerConfig::default(), transport, invite())
    }

    #[test]
    fn nothing_is_sent_or_armed_before_the_tu_responds() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        assert_eq!(tx.state(), ServerInviteState::Proceeding);
        assert_eq!(tx.poll_transmit(), None);
        assert_eq!(tx.poll_timeout(), None);
        tx.handle_request_retransmission(start + ms(500));
        assert_eq!(tx.poll_transmit(), None, "no provisional to resend yet");
    }

    #[test]
    fn retransmitted_invite_in_proceeding_gets_the_latest_provisional() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 100, response(100))
            .expect("allowed");
        tx.send_response(start + ms(10), 180, response(180))
            .expect("allowed");
        assert_eq!(transmits(&mut tx), vec![response(100), response(180)]);
        tx.handle_request_retransmission(start + ms(500));
        assert_eq!(transmits(&mut tx), vec![response(180)]);
        assert_eq!(
            tx.poll_timeout(),
            None,
            "provisionals are not retransmitted"
        );
    }

    #[test]
    fn the_provisional_is_kept_small_and_resent_whole_after_the_request_is_cut_down() {
        let invite = Bytes::from_static(
            b"INVITE sip:bob@example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8\r\n\
            Max-Forwards: 70\r\n\
            From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
            To: Bob <sip:bob@example.com>\r\n\
            Call-ID: a84b4c76e66710@pc33.example.com\r\n\
            CSeq: 314159 INVITE\r\n\
            Content-Length: 0\r\n\r\n",
        );
        let ringing = Bytes::from_static(
            b"SIP/2.0 180 Ringing\r\n\
            Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKnashds8;received=192.0.2.1\r\n\
            From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
            To: Bob <sip:bob@example.com>;tag=a6c85cf\r\n\
            Call-ID: a84b4c76e66710@pc33.example.com\r\n\
            CSeq: 314159 INVITE\r\n\
            Content-Length: 0\r\n\r\n",
        );
        let start = Instant::now();
        let mut tx =
            ServerInviteTransaction::new(start, &TimerConfig::default(), Transport::Udp, invite);
        tx.send_response(start, 180, ringing.clone())
            .expect("allowed");
        assert_eq!(transmits(&mut tx), vec![ringing.clone()]);
        let Some(LastResponse::Provisional(kept)) = &tx.last_response else {
            panic!("the 180 is kept as a provisional")
        };
        assert!(
            kept.len() < ringing.len() / 2,
            "{kept:?} for {}",
            ringing.len()
        );

        // The proxy keeps only what its own responses copy once the INVITE is forwarded.
        let skeleton: Vec<u8> = tx
            .request()
            .split_inclusive(|&b| b == b'\n')
            .filter(|line| !line.starts_with(b"Max-Forwards") && !line.starts_with(b"Content"))
            .flatten()
            .copied()
            .collect();
        tx.replace_request(Bytes::from(skeleton));
        tx.handle_request_retransmission(start + ms(500));
        assert_eq!(transmits(&mut tx), vec![ringing]);
    }

    #[test]
    fn failure_final_over_udp_is_retransmitted_at_timer_g_until_timer_h() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 486, response(486))
            .expect("allowed");
        assert_eq!(tx.state(), ServerInviteState::Completed);
        let steps = run(&mut tx, start);
        // Intervals 0.5, 1, 2, 4, then 4 s (T2) each.
        let expected_sends = [
            0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500,
        ];
        assert_eq!(sent_at(&steps), expected_sends.map(ms).to_vec());
        let mut expected_timers: Vec<_> = expected_sends[1..]
            .iter()
            .map(|&at| (ms(at), Timer::G))
            .collect();
        expected_timers.push((ms(32_000), Timer::H));
        assert_eq!(fired(&steps), expected_timers);
        assert_eq!(
            events(&mut tx),
            vec![Event::Timeout { timer: Timer::H }, Event::Terminated]
        );
    }

    #[test]
    fn ack_stops_timer_g_and_confirmed_lasts_timer_i_of_t4() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 404, response(404))
            .expect("allowed");
        let steps = run_until(&mut tx, start, ms(2_000));
        assert_eq!(sent_at(&steps), [0, 500, 1500].map(ms).to_vec());

        let ack_at = start + ms(2_000);
        tx.handle_ack(ack_at);
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(ack_at + ms(5_000)));

        tx.handle_ack(ack_at + ms(100));
        tx.handle_request_retransmission(ack_at + ms(200));
        assert_eq!(tx.poll_transmit(), None, "Confirmed absorbs everything");

        let steps = run_from(&mut tx, start, ack_at);
        assert_eq!(fired(&steps), vec![(ms(7_000), Timer::I)]);
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn retransmitted_invite_in_completed_gets_the_final_again() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 603, response(603))
            .expect("allowed");
        transmits(&mut tx);
        tx.handle_request_retransmission(start + ms(100));
        assert_eq!(transmits(&mut tx), vec![response(603)]);
    }

    #[test]
    fn failure_final_over_tcp_is_not_retransmitted_and_the_ack_ends_it_at_once() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Tcp);
        tx.send_response(start, 486, response(486))
            .expect("allowed");
        assert_eq!(transmits(&mut tx), vec![response(486)]);
        assert_eq!(tx.poll_timeout(), Some(start + ms(32_000)), "only Timer H");
        tx.handle_ack(start + ms(50));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn unacknowledged_final_over_tcp_still_times_out_on_timer_h() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Tcp);
        tx.send_response(start, 486, response(486))
            .expect("allowed");
        let steps = run(&mut tx, start);
        assert_eq!(sent_at(&steps), vec![ms(0)]);
        assert_eq!(fired(&steps), vec![(ms(32_000), Timer::H)]);
    }

    #[test]
    fn success_moves_to_accepted_absorbs_invites_and_ends_on_timer_l() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 180, response(180))
            .expect("allowed");
        let ok_at = start + ms(3_000);
        tx.send_response(ok_at, 200, response(200))
            .expect("allowed");
        assert_eq!(tx.state(), ServerInviteState::Accepted);
        assert_eq!(transmits(&mut tx), vec![response(180), response(200)]);
        assert_eq!(
            tx.poll_timeout(),
            Some(ok_at + ms(32_000)),
            "Timer L = 64*T1"
        );

        tx.handle_request_retransmission(ok_at + ms(500));
        assert_eq!(
            tx.poll_transmit(),
            None,
            "INVITE absorbed, no 2xx by the machine"
        );

        tx.send_response(ok_at + ms(500), 200, response(200))
            .expect("2xx retransmission from the TU");
        assert_eq!(transmits(&mut tx), vec![response(200)]);

        tx.handle_ack(ok_at + ms(600));
        assert_eq!(events(&mut tx), vec![Event::AckForTu]);

        assert_eq!(tx.handle_timeout(ok_at + ms(32_000)), Some(Timer::L));
        assert!(tx.is_terminated());
        assert_eq!(events(&mut tx), vec![Event::Terminated]);
    }

    #[test]
    fn second_final_response_is_refused() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 486, response(486))
            .expect("allowed");
        assert_eq!(
            tx.send_response(start, 200, response(200)),
            Err(Error::WrongState {
                machine: MACHINE,
                action: "send a 2xx response",
                state: "Completed"
            })
        );
        let mut accepted = new(start, Transport::Udp);
        accepted
            .send_response(start, 200, response(200))
            .expect("allowed");
        assert!(accepted.send_response(start, 486, response(486)).is_err());
        assert!(accepted.send_response(start, 180, response(180)).is_err());
    }

    #[test]
    fn transport_error_in_accepted_is_reported_but_keeps_absorbing() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 200, response(200))
            .expect("allowed");
        tx.handle_transport_error(start);
        assert_eq!(tx.state(), ServerInviteState::Accepted);
        assert_eq!(events(&mut tx), vec![Event::TransportError]);
    }

    #[test]
    fn transport_error_in_completed_terminates() {
        let start = Instant::now();
        let mut tx = new(start, Transport::Udp);
        tx.send_response(start, 500, response(500))
            .expect("allowed");
        tx.handle_transport_error(start);
        assert!(tx.is_terminated());
        assert_eq!(
            events(&mut tx),
            vec![Event::TransportError, Event::Terminated]
        );
    }

    #[test]
    fn custom_t1_t2_and_t4_change_timers_g_h_and_i() {
        let start = Instant::now();
        let config = TimerConfig {
            t1: Duration::from_millis(250),
            t2: Duration::from_millis(1_000),
            t4: Duration::from_millis(1_500),
            ..TimerConfig::default()
        };
        let mut tx = ServerInviteTransaction::new(start, &config, Transport::Udp, invite());
        tx.send_response(start, 480, response(480))
            .expect("allowed");
        let steps = run(&mut tx, start);
        let sends = sent_at(&steps);
        assert_eq!(sends[..6], [0, 250, 750, 1750, 2750, 3750].map(ms));
        assert_eq!(fired(&steps).last(), Some(&(ms(16_000), Timer::H)));

        let mut tx = ServerInviteTransaction::new(start, &config, Transport::Udp, invite());
        tx.send_response(start, 480, response(480))
            .expect("allowed");
        tx.handle_ack(start + ms(100));
        assert_eq!(tx.poll_timeout(), Some(start + ms(1_600)));
    }

    /// Drives `tx` like [`run`], but stops before the first timer at or after `until`.
    fn run_until(
        tx: &mut ServerInviteTransaction,
        start: Instant,
        until: Duration,
    ) -> Vec<crate::testing::Step> {
        let mut steps = Vec::new();
        while let Some(message) = tx.poll_transmit() {
            steps.push(crate::testing::Step::Sent(ms(0), message));
        }
        while let Some(at) = tx.poll_timeout().filter(|at| *at < start + until) {
            if let Some(timer) = tx.handle_timeout(at) {
                steps.push(crate::testing::Step::Fired(at - start, timer));
            }
            while let Some(message) = tx.poll_transmit() {
                steps.push(crate::testing::Step::Sent(at - start, message));
            }
        }
        steps
    }
}
