//! A NOTIFY the proxy sends, as a real client transaction (RFC 3261 section 17.1.2, the
//! shared non-INVITE machine: Timer E retransmits over UDP, Timer F gives up, Timer K absorbs
//! late copies of the response), and the out-of-dialog NOTIFY that phones such as Cisco's
//! ATAs and Asterisk's peers take without subscribing.
//!
//! The machine's output becomes the core's [`Action`]s here, as the proxy's branches do in
//! `transaction/mod.rs`: bytes to send, and a timer armed whenever its deadline changes (its
//! own [`ArmCounter`], so that a superseded arming never fires).

use std::time::Instant;

use bytes::Bytes;
use dialtone_sip::RequestBuilder;
use dialtone_transaction::{ClientTransaction, Event, Timer, TimerConfig, TransactionKey};

use super::subscription::DialogKey;
use super::summary;
use crate::proxy_core::arming::ArmCounter;
use crate::proxy_core::identity::ProxyIdentity;
use crate::proxy_core::{Action, Destination, TimerId};

/// One NOTIFY in flight.
#[derive(Debug)]
pub struct NotifyTransaction {
    client: ClientTransaction,
    destination: Destination,
    /// The subscription it notifies; `None` for an unsolicited NOTIFY or a final one.
    pub subscription: Option<DialogKey>,
    armed: Option<Instant>,
    arm_counter: ArmCounter,
}

/// What became of a NOTIFY after a call into its machine.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// The subscriber is gone: a 481 (RFC 6665 section 4.2.2: the subscription no longer
    /// exists there), a 408, a timeout (Timer F) or a transport failure. Its subscription
    /// must be removed.
    pub subscriber_gone: bool,
    /// The transaction ended and can be forgotten.
    pub terminated: bool,
}

impl NotifyTransaction {
    /// Starts the transaction for `request` towards `destination`.
    pub fn start(
        now: Instant,
        timers: &TimerConfig,
        destination: Destination,
        request: Bytes,
        subscription: Option<DialogKey>,
    ) -> NotifyTransaction {
        let client = ClientTransaction::new(now, timers, destination.transport, request, false);
        NotifyTransaction {
            client,
            destination,
            subscription,
            armed: None,
            arm_counter: ArmCounter::default(),
        }
    }

    /// A timer fired (or may have).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.armed = None;
        self.client.handle_timeout(now);
    }

    /// A response to the NOTIFY arrived.
    pub fn handle_response(&mut self, now: Instant, status: u16, bytes: Bytes) {
        if let Err(error) = self.client.handle_response(now, status, bytes) {
            tracing::debug!(%error, "a response the NOTIFY's transaction refused");
        }
    }

    /// The transport could not send it.
    pub fn handle_transport_error(&mut self, now: Instant) {
        self.client.handle_transport_error(now);
    }

    /// Turns what the machine wants into actions, keyed `key` for its timer.
    pub fn drain(&mut self, key: &TransactionKey, actions: &mut Vec<Action>) -> Drained {
        let mut drained = Drained::default();
        while let Some(bytes) = self.client.poll_transmit() {
            actions.push(Action::Send {
                to: self.destination,
                bytes,
            });
        }
        while let Some(event) = self.client.poll_event() {
            match event {
                Event::Response { status, .. } if status == 481 || status == 408 => {
                    drained.subscriber_gone = true
                }
                Event::Response { status, .. } if status >= 300 => {
                    tracing::debug!(status, "a NOTIFY was refused; the subscription stays")
                }
                Event::Timeout { timer: Timer::F } | Event::TransportError => {
                    drained.subscriber_gone = true
                }
                Event::Terminated => drained.terminated = true,
                _ => {}
            }
        }
        if drained.terminated {
            self.arm_counter.close();
        } else if let Some(at) = self.client.poll_timeout() {
            if self.armed != Some(at) {
                self.armed = Some(at);
                actions.push(Action::Arm {
                    id: TimerId::Notify(*key),
                    at,
                    arming: self.arm_counter.arm(),
                });
            }
        }
        drained
    }
}

/// A new branch id for a NOTIFY of ours (RFC 3261 section 8.1.1.7: unique, with the magic
/// cookie).
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

/// An out-of-dialog NOTIFY of `account`'s counts to a binding's contact `request_uri` at
/// `destination`, for `aor` at `domain`. Such a NOTIFY belongs to no subscription (RFC 3842
/// section 3 expects one, but ATAs that never subscribe light their lamp by it); it carries
/// `Subscription-State: active` for the peers that look for the header anyway.
pub fn unsolicited(
    identity: &ProxyIdentity,
    request_uri: &str,
    destination: Destination,
    branch: &str,
    aor: &str,
    domain: &str,
    body: &str,
) -> Bytes {
    let listen = identity.listen_toward(destination.transport, destination.addr);
    let host = identity.host_of(listen);
    let tag = format!("{:08x}", rand::random::<u32>());
    let call_id = format!("mwi-{:016x}@{host}", rand::random::<u64>());
    let bytes = RequestBuilder::new("NOTIFY", request_uri)
        .header(
            "Via",
            &identity.via_from(destination.transport, listen, branch),
        )
        .header("Max-Forwards", "70")
        .header("From", &format!("<sip:{aor}@{domain}>;tag={tag}"))
        .header("To", &format!("<sip:{aor}@{domain}>"))
        .header("Call-ID", &call_id)
        .header("CSeq", "1 NOTIFY")
        .header("Contact", &format!("<sip:{host}>"))
        .header("Event", summary::EVENT)
        .header("Subscription-State", "active")
        .body(summary::CONTENT_TYPE, body.as_bytes())
        .build();
    Bytes::from(bytes)
}
