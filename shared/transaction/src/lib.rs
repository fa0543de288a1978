//! SIP transactions (RFC 3261 section 17, as corrected by RFC 6026) as sans-IO state machines.
//!
//! This crate sits between the transport actors and the transaction user (the proxy core, the
//! ATA's call logic), and both binaries use it alone for what RFC 3261 puts in the transaction
//! layer. It never opens a socket or reads the clock: the caller parses (with `dialtone-sip`),
//! finds the transaction by the key [`server_key`] or [`client_key`] gives, and feeds the
//! machine what it learned — a status code and the message bytes — together with `now`.
//! The machine answers through three queues, drained after every input:
//!
//! - [`poll_transmit`](Transaction::poll_transmit): bytes to put on the wire now (first sends and
//!   retransmissions alike; the destination is the transaction's peer, known to the caller);
//! - [`poll_timeout`](Transaction::poll_timeout): when to call `handle_timeout` next;
//! - [`poll_event`](Transaction::poll_event): what the transaction user must hear about.
//!
//! The four machines live in their own modules ([`client_invite`], [`client_non_invite`],
//! [`server_invite`], [`server_non_invite`]); their timer values in [`timer`]; the proxy's
//! Timer C in [`timer_c`]; transaction matching in [`key`] and, from a parsed message, in
//! [`message_key`]; the two requests the layer builds itself, the ACK of a non-2xx final and
//! the CANCEL, in [`derived`]; a machine whose kind is known only at run time in
//! [`either`]; the [`Transport`] every crate names a hop's transport
//! with in [`transport`]. This file holds what they share:
//! the [`Event`] type, the [`Transaction`] trait and the output queues.
#![forbid(unsafe_code)]

pub mod client_invite;
pub mod client_non_invite;
pub mod derived;
pub mod either;
mod error;
pub mod key;
mod key_digest;
mod key_packer;
pub mod message_key;
pub mod server_invite;
pub mod server_non_invite;
pub mod timer;
pub mod timer_c;
pub mod transport;

#[cfg(test)]
mod testing;

use std::time::Instant;

use bytes::Bytes;
use smallvec::SmallVec;

pub use client_invite::{ClientInviteState, ClientInviteTransaction};
pub use client_non_invite::{ClientNonInviteState, ClientNonInviteTransaction};
pub use derived::{ack_for_non_2xx, cancel_for};
pub use either::{ClientTransaction, ServerTransaction};
pub use error::Error;
pub use key::{KeyFields, TransactionKey};
pub use message_key::{client_key, server_key};
pub use server_invite::{ServerInviteState, ServerInviteTransaction};
pub use server_non_invite::{ServerNonInviteState, ServerNonInviteTransaction};
pub use timer::{Timer, TimerConfig};
pub use timer_c::{TimerC, TimerCExpiry};
pub use transport::{Transport, UnknownTransport};

/// What a transaction tells its transaction user (TU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Client transactions: a response the TU must see (RFC 3261 17.1.1.2 and 17.1.2.2: every
    /// provisional, the first final, and, in the RFC 6026 Accepted state, every further 2xx,
    /// since each may come from a different fork and set up its own dialog).
    Response {
        /// The status code, 100 to 699.
        status: u16,
        /// The response as received.
        response: Bytes,
    },
    /// Client INVITE: a 300-699 final arrived, and the transaction must acknowledge it
    /// (RFC 3261 17.1.1.3). The machine cannot build messages, so the TU builds the ACK from the
    /// original INVITE and this response's To header and hands it to
    /// [`ClientInviteTransaction::send_ack`].
    NeedsAck {
        /// The status of the final response being acknowledged.
        status: u16,
    },
    /// Server INVITE in the Accepted state: an ACK to the 2xx matched this transaction (which
    /// happens for RFC 2543 peers, whose ACK has no branch of its own). RFC 6026 section 7.1: it
    /// belongs to the TU, which forwards or consumes it.
    AckForTu,
    /// The transaction gave up waiting: Timer B (client INVITE) or Timer F (client non-INVITE),
    /// which the TU treats as a 408 Request Timeout (RFC 3261 8.1.3.1, 16.7 step 2), or Timer H
    /// (server INVITE: the ACK never came, RFC 3261 17.2.1).
    Timeout {
        /// Which timer fired: [`Timer::B`], [`Timer::F`] or [`Timer::H`].
        timer: Timer,
    },
    /// The caller reported a transport failure while the transaction was sending
    /// (RFC 3261 17.1.4 and 17.2.4); the TU treats a client failure as a 503.
    TransportError,
    /// The transaction reached the Terminated state and can be removed from the table.
    /// Emitted exactly once, always as the last event.
    Terminated,
}

/// What every transaction machine offers, so one driver loop can serve all four.
///
/// Each machine also has these as inherent methods; the trait exists for code that handles
/// transactions generically (the proxy's table, the tests' fake clock).
pub trait Transaction {
    /// Fires the timer due at `now`, if any, and returns which one fired. At most one timer is
    /// meaningful at a time: when a retransmission timer and the timeout are both due, the
    /// timeout wins, as retransmitting into a dead transaction helps nobody.
    fn handle_timeout(&mut self, now: Instant) -> Option<Timer>;
    /// The transport could not send the last message (ICMP error, TCP connection lost).
    fn handle_transport_error(&mut self, now: Instant);
    /// The next message to put on the wire, oldest first.
    fn poll_transmit(&mut self) -> Option<Bytes>;
    /// When `handle_timeout` should next be called; `None` when no timer is armed.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next event for the transaction user, oldest first.
    fn poll_event(&mut self) -> Option<Event>;
    /// Whether the machine is in the Terminated state (its queues may still hold output).
    fn is_terminated(&self) -> bool;
}

/// Gives a machine the part every machine shares, so it is written once: its `poll_transmit`,
/// `poll_timeout` and `poll_event` (drained from its `out` queues and its `schedule`), and the
/// [`Transaction`] trait over its inherent `handle_timeout`, `handle_transport_error` and
/// `is_terminated`. Entering Terminated is shared too: [`Outputs::terminate`].
macro_rules! impl_transaction {
    ($machine:ty) => {
        impl $machine {
            /// The next message to put on the wire, oldest first.
            pub fn poll_transmit(&mut self) -> Option<::bytes::Bytes> {
                self.out.poll_transmit()
            }

            /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` when no timer
            /// is armed.
            pub fn poll_timeout(&self) -> Option<::std::time::Instant> {
                self.schedule.next()
            }

            /// The next event for the transaction user, oldest first.
            pub fn poll_event(&mut self) -> Option<$crate::Event> {
                self.out.poll_event()
            }
        }

        impl $crate::Transaction for $machine {
            fn handle_timeout(&mut self, now: ::std::time::Instant) -> Option<$crate::Timer> {
                <$machine>::handle_timeout(self, now)
            }
            fn handle_transport_error(&mut self, now: ::std::time::Instant) {
                <$machine>::handle_transport_error(self, now)
            }
            fn poll_transmit(&mut self) -> Option<::bytes::Bytes> {
                <$machine>::poll_transmit(self)
            }
            fn poll_timeout(&self) -> Option<::std::time::Instant> {
                <$machine>::poll_timeout(self)
            }
            fn poll_event(&mut self) -> Option<$crate::Event> {
                <$machine>::poll_event(self)
            }
            fn is_terminated(&self) -> bool {
                <$machine>::is_terminated(self)
            }
        }
    };
}
pub(crate) use impl_transaction;

/// The class of a response status, which is all the machines look at (RFC 3261 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    /// 100-199.
    Provisional,
    /// 200-299.
    Success,
    /// 300-699: redirection and failure, handled alike by transactions.
    Failure,
}

impl StatusClass {
    /// Classifies `status`, refusing anything outside 100-699 (RFC 3261 21: the first digit
    /// defines the class, and only 1 to 6 are defined).
    pub(crate) fn of(status: u16) -> Result<Self, Error> {
        match status {
            100..=199 => Ok(Self::Provisional),
            200..=299 => Ok(Self::Success),
            300..=699 => Ok(Self::Failure),
            _ => Err(Error::InvalidStatus(status)),
        }
    }
}

/// What a machine has for its caller to drain: messages to send and events for the TU, in
/// one queue, boxed while it holds anything (one allocation per burst, as a `Vec` made; 8
/// bytes while empty, where a `Vec` is 24 and two `VecDeque`s were 64).
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    queue: Option<Box<SmallVec<[Output; BURST]>>>,
}

/// The most outputs a machine queues at once in practice (a response and its event, a
/// retransmission): more go to the heap inside the box.
const BURST: usize = 3;

#[derive(Debug)]
enum Output {
    Transmit(Bytes),
    Event(Event),
}

impl Outputs {
    pub(crate) fn transmit(&mut self, message: Bytes) {
        self.push(Output::Transmit(message));
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.push(Output::Event(event));
    }

    fn push(&mut self, output: Output) {
        self.queue.get_or_insert_with(Box::default).push(output);
    }

    /// The oldest message to send. A drained queue gives its memory back: a transaction lives
    /// for seconds or minutes (a ringing INVITE up to Timer C) with its queue nearly always
    /// empty.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        match self.take_first(|output| matches!(output, Output::Transmit(_)))? {
            Output::Transmit(message) => Some(message),
            Output::Event(_) => None,
        }
    }

    /// The oldest event for the TU (see [`Outputs::poll_transmit`] for the memory).
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        match self.take_first(|output| matches!(output, Output::Event(_)))? {
            Output::Event(event) => Some(event),
            Output::Transmit(_) => None,
        }
    }

    /// Removes the oldest entry that is `wanted` (the queue holds a few entries at most),
    /// freeing an emptied queue.
    fn take_first(&mut self, wanted: impl Fn(&Output) -> bool) -> Option<Output> {
        let queue = self.queue.as_deref_mut()?;
        let at = queue.iter().position(wanted)?;
        let output = queue.remove(at);
        if queue.is_empty() {
            self.queue = None;
        }
        Some(output)
    }

    /// The bookkeeping of entering the Terminated state, the same for every machine: no timer
    /// is left armed, and the TU hears [`Event::Terminated`] after whatever came before it.
    pub(crate) fn terminate(&mut self, schedule: &mut timer::Schedule) {
        schedule.clear();
        self.event(Event::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ms, run, sent_at};

    #[test]
    fn no_machine_retransmits_over_a_reliable_transport() {
        let start = Instant::now();
        let config = TimerConfig::default();
        let message = Bytes::from_static(b"message");
        let reliable = Transport::Tcp;

        let mut client_invite =
            ClientInviteTransaction::new(start, &config, reliable, message.clone());
        let mut client_non_invite =
            ClientNonInviteTransaction::new(start, &config, reliable, message.clone());
        let mut server_invite =
            ServerInviteTransaction::new(start, &config, reliable, message.clone());
        server_invite
            .send_response(start, 486, message.clone())
            .expect("allowed");
        let mut server_non_invite =
            ServerNonInviteTransaction::new(start, &config, reliable, message.clone());
        server_non_invite
            .send_response(start, 100, message.clone())
            .expect("allowed");

        let once = vec![ms(0)];
        assert_eq!(sent_at(&run(&mut client_invite, start)), once);
        assert_eq!(sent_at(&run(&mut client_non_invite, start)), once);
        assert_eq!(sent_at(&run(&mut server_invite, start)), once);
        assert_eq!(sent_at(&run(&mut server_non_invite, start)), once);
    }

    #[test]
    fn status_classes_follow_the_first_digit() {
        assert_eq!(StatusClass::of(100), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(199), Ok(StatusClass::Provisional));
        assert_eq!(StatusClass::of(200), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(299), Ok(StatusClass::Success));
        assert_eq!(StatusClass::of(300), Ok(StatusClass::Failure));
        assert_eq!(StatusClass::of(699), Ok(StatusClass::Failure));
    }

    #[test]
    fn status_codes_outside_100_to_699_are_refused() {
        for status in [0, 99, 700, 999, u16::MAX] {
            assert_eq!(StatusClass::of(status), Err(Error::InvalidStatus(status)));
        }
    }
}
