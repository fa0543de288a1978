//! A client or server transaction whose kind (INVITE or not) is known only at run time: the
//! proxy's branches and server side, the ATA's transaction table. One type each, so that no
//! transaction user writes the same two-armed `match` for every call.
//!
//! The variants are public: a caller that needs what only an INVITE machine does (sending the
//! ACK of a non-2xx, reading the server INVITE state) matches on them.

use std::time::Instant;

use bytes::Bytes;

use crate::{
    ClientInviteTransaction, ClientNonInviteTransaction, Error, Event, ServerInviteTransaction,
    ServerNonInviteTransaction, Timer, TimerConfig, Transaction, Transport,
};

/// A client transaction: INVITE (RFC 3261 17.1.1) or not (17.1.2).
#[derive(Debug)]
pub enum ClientTransaction {
    /// An INVITE client transaction.
    Invite(ClientInviteTransaction),
    /// Any other method's client transaction.
    NonInvite(ClientNonInviteTransaction),
}

/// A server transaction: INVITE (RFC 3261 17.2.1) or not (17.2.2).
#[derive(Debug)]
pub enum ServerTransaction {
    /// An INVITE server transaction.
    Invite(ServerInviteTransaction),
    /// Any other method's server transaction.
    NonInvite(ServerNonInviteTransaction),
}

impl ClientTransaction {
    /// The request this transaction sends (a shared handle, not a copy).
    pub fn request(&self) -> &Bytes {
        match self {
            Self::Invite(t) => t.request(),
            Self::NonInvite(t) => t.request(),
        }
    }

    /// Starts the machine for `request` (INVITE when `is_invite`) at `now`.
    pub fn new(
        now: Instant,
        config: &TimerConfig,
        transport: Transport,
        request: Bytes,
        is_invite: bool,
    ) -> Self {
        if is_invite {
            Self::Invite(ClientInviteTransaction::new(
                now, config, transport, request,
            ))
        } else {
            Self::NonInvite(ClientNonInviteTransaction::new(
                now, config, transport, request,
            ))
        }
    }

    /// A response to the request arrived.
    pub fn handle_response(
        &mut self,
        now: Instant,
        status: u16,
        bytes: Bytes,
    ) -> Result<(), Error> {
        match self {
            Self::Invite(t) => t.handle_response(now, status, bytes),
            Self::NonInvite(t) => t.handle_response(now, status, bytes),
        }
    }

    /// The INVITE machine, for the ACK of a non-2xx final; `None` for any other method.
    pub fn as_invite_mut(&mut self) -> Option<&mut ClientInviteTransaction> {
        match self {
            Self::Invite(t) => Some(t),
            Self::NonInvite(_) => None,
        }
    }

    fn machine(&mut self) -> &mut dyn Transaction {
        match self {
            Self::Invite(t) => t,
            Self::NonInvite(t) => t,
        }
    }

    fn machine_ref(&self) -> &dyn Transaction {
        match self {
            Self::Invite(t) => t,
            Self::NonInvite(t) => t,
        }
    }
}

impl ServerTransaction {
    /// The request this transaction answers (a shared handle, not a copy).
    pub fn request(&self) -> &Bytes {
        match self {
            Self::Invite(t) => t.request(),
            Self::NonInvite(t) => t.request(),
        }
    }

    /// Starts the machine for a received `request` (INVITE when `is_invite`) at `now`.
    pub fn new(
        now: Instant,
        config: &TimerConfig,
        transport: Transport,
        request: Bytes,
        is_invite: bool,
    ) -> Self {
        if is_invite {
            Self::Invite(ServerInviteTransaction::new(
                now, config, transport, request,
            ))
        } else {
            Self::NonInvite(ServerNonInviteTransaction::new(
                now, config, transport, request,
            ))
        }
    }

    /// The transaction user answers the request.
    pub fn send_response(&mut self, now: Instant, status: u16, bytes: Bytes) -> Result<(), Error> {
        match self {
            Self::Invite(t) => t.send_response(now, status, bytes),
            Self::NonInvite(t) => t.send_response(now, status, bytes),
        }
    }

    /// A copy of the request arrived again.
    pub fn handle_request_retransmission(&mut self, now: Instant) {
        match self {
            Self::Invite(t) => t.handle_request_retransmission(now),
            Self::NonInvite(t) => t.handle_request_retransmission(now),
        }
    }

    fn machine(&mut self) -> &mut dyn Transaction {
        match self {
            Self::Invite(t) => t,
            Self::NonInvite(t) => t,
        }
    }

    fn machine_ref(&self) -> &dyn Transaction {
        match self {
            Self::Invite(t) => t,
            Self::NonInvite(t) => t,
        }
    }
}

/// Both enums offer the [`Transaction`] interface of the machine inside, as inherent methods
/// too (so callers need not import the trait).
macro_rules! delegate_transaction {
    ($either:ty) => {
        impl $either {
            /// Fires the timer due at `now`, if any (see [`Transaction::handle_timeout`]).
            pub fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
                self.machine().handle_timeout(now)
            }
            /// The transport could not send the last message.
            pub fn handle_transport_error(&mut self, now: Instant) {
                self.machine().handle_transport_error(now)
            }
            /// The next message to put on the wire, oldest first.
            pub fn poll_transmit(&mut self) -> Option<Bytes> {
                self.machine().poll_transmit()
            }
            /// When to call `handle_timeout` next; `None` when no timer is armed.
            pub fn poll_timeout(&self) -> Option<Instant> {
                self.machine_ref().poll_timeout()
            }
            /// The next event for the transaction user, oldest first.
            pub fn poll_event(&mut self) -> Option<Event> {
                self.machine().poll_event()
            }
            /// Whether the machine is in the Terminated state.
            pub fn is_terminated(&self) -> bool {
                self.machine_ref().is_terminated()
            }
        }

        impl Transaction for $either {
            fn handle_timeout(&mut self, now: Instant) -> Option<Timer> {
                <$either>::handle_timeout(self, now)
            }
            fn handle_transport_error(&mut self, now: Instant) {
                <$either>::handle_transport_error(self, now)
            }
            fn poll_transmit(&mut self) -> Option<Bytes> {
                <$either>::poll_transmit(self)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$either>::poll_timeout(self)
            }
            fn poll_event(&mut self) -> Option<Event> {
                <$either>::poll_event(self)
            }
            fn is_terminated(&self) -> bool {
                <$either>::is_terminated(self)
            }
        }
    };
}

delegate_transaction!(ClientTransaction);
delegate_transaction!(ServerTransaction);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_follows_the_method_and_each_machine_keeps_its_own_rules() {
        let now = Instant::now();
        let config = TimerConfig::default();
        let request = Bytes::from_static(b"request");
        let mut invite =
            ClientTransaction::new(now, &config, Transport::Udp, request.clone(), true);
        let mut other =
            ClientTransaction::new(now, &config, Transport::Udp, request.clone(), false);
        assert!(invite.as_invite_mut().is_some());
        assert!(other.as_invite_mut().is_none());
        // Both send the request at once; over UDP both arm a retransmission (Timer A, Timer E).
        assert_eq!(invite.poll_transmit(), Some(request.clone()));
        assert_eq!(other.poll_transmit(), Some(request.clone()));
        assert!(invite.poll_timeout().is_some() && other.poll_timeout().is_some());
        // A 200 ends a non-INVITE client transaction's wait (Completed, Timer K), while an
        // INVITE one moves to Accepted (RFC 6026): both hand the response to the TU.
        other
            .handle_response(now, 200, Bytes::from_static(b"200"))
            .unwrap();
        invite
            .handle_response(now, 200, Bytes::from_static(b"200"))
            .unwrap();
        assert!(matches!(
            other.poll_event(),
            Some(Event::Response { status: 200, .. })
        ));
        assert!(matches!(
            invite.poll_event(),
            Some(Event::Response { status: 200, .. })
        ));

        let mut server = ServerTransaction::new(now, &config, Transport::Tcp, request, true);
        assert!(matches!(server, ServerTransaction::Invite(_)));
        server
            .send_response(now, 486, Bytes::from_static(b"486"))
            .unwrap();
        assert_eq!(server.poll_transmit(), Some(Bytes::from_static(b"486")));
        assert!(!server.is_terminated());
        assert_eq!(
            server.send_response(now, 99, Bytes::new()),
            Err(Error::InvalidStatus(99))
        );
    }
}
