//! One message-summary subscription: the dialog a SUBSCRIBE created with the proxy as
//! notifier (RFC 6665 section 4.2, RFC 3261 section 12.1.1 for the UAS side), and the NOTIFY
//! requests sent in it (section 12.2.1.1: the subscriber's Contact as Request-URI, the
//! Record-Route of the SUBSCRIBE as route set, CSeq growing by one per request).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dialtone_sip::{Contacts, HeaderName, Message, RequestBuilder, Uri};
use dialtone_transaction::Transport;

use super::summary;
use crate::proxy_core::identity::{uri_target, ProxyIdentity};
use crate::proxy_core::{Destination, Source};

/// What identifies a subscription dialog (RFC 3261 section 12: Call-ID and both tags).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    /// The subscriber's tag (the SUBSCRIBE's From tag).
    pub subscriber_tag: String,
    /// Ours (the To tag of our 200).
    pub our_tag: String,
}

/// The state of one subscription the proxy notifies.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The mailbox's user.
    pub aor: String,
    /// The NOTIFY's From: the SUBSCRIBE's To with our tag.
    from: String,
    /// The NOTIFY's To: the SUBSCRIBE's From as received.
    to: String,
    call_id: String,
    /// The subscriber's Contact URI (section 12.1.1: the remote target).
    remote_target: String,
    /// The SUBSCRIBE's Record-Route values, in order (the UAS's route set, section 12.1.1).
    route_set: Vec<String>,
    /// Where NOTIFYs go: see [`next_hop`].
    pub destination: Destination,
    /// Our Contact, in the 200 and in every NOTIFY.
    pub contact: String,
    /// The CSeq of the last NOTIFY sent in this dialog.
    notify_cseq: u32,
    /// The CSeq of the last SUBSCRIBE taken in this dialog.
    pub subscribe_cseq: u32,
    /// When the subscription lapses unless refreshed.
    pub expires_at: Instant,
}

/// Why a SUBSCRIBE cannot make a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSubscribe {
    /// No Call-ID, From tag or CSeq that can be read.
    Headers,
    /// No Contact URI to send NOTIFYs to (RFC 6665 section 4.1.2.1 requires one).
    Contact,
}

impl Subscription {
    /// The subscription a new SUBSCRIBE (no To tag) from `source` creates, notified under
    /// `our_tag` with `contact` as our Contact, until `expires_at`.
    pub fn create(
        request: &Message<'_>,
        source: Source,
        aor: &str,
        our_tag: &str,
        contact: String,
        expires_at: Instant,
    ) -> Result<(DialogKey, Subscription), BadSubscribe> {
        let call_id = request.call_id().map_err(|_| BadSubscribe::Headers)?;
        let from = request.from().map_err(|_| BadSubscribe::Headers)?;
        let subscriber_tag = from.tag().ok_or(BadSubscribe::Headers)?;
        let cseq = request.cseq().map_err(|_| BadSubscribe::Headers)?.seq;
        let to_value = request
            .header_value(HeaderName::To)
            .ok_or(BadSubscribe::Headers)?;
        let from_value = request
            .header_value(HeaderName::From)
            .ok_or(BadSubscribe::Headers)?;
        let remote_target = remote_target(request).ok_or(BadSubscribe::Contact)?;
        let route_set: Vec<String> = request
            .values(HeaderName::RecordRoute)
            .map(str::to_string)
            .collect();
        let destination = next_hop(&route_set, &remote_target, source);
        let key = DialogKey {
            call_id: call_id.to_string(),
            subscriber_tag: subscriber_tag.to_string(),
            our_tag: our_tag.to_string(),
        };
        let subscription = Subscription {
            aor: aor.to_string(),
            from: format!("{to_value};tag={our_tag}"),
            to: from_value.to_string(),
            call_id: call_id.to_string(),
            remote_target,
            route_set,
            destination,
            contact,
            notify_cseq: 0,
            subscribe_cseq: cseq,
            expires_at,
        };
        Ok((key, subscription))
    }

    /// A refresh in the dialog: a new expiry, and the target refresh a SUBSCRIBE's Contact
    /// carries (RFC 6665 section 4.1.2.2; the route set stays, section 12.2).
    pub fn refresh(&mut self, request: &Message<'_>, source: Source, expires_at: Instant) {
        if let Some(target) = remote_target(request) {
            self.remote_target = target;
            self.destination = next_hop(&self.route_set, &self.remote_target, source);
        }
        if let Ok(cseq) = request.cseq() {
            self.subscribe_cseq = cseq.seq;
        }
        self.expires_at = expires_at;
    }

    /// Seconds left at `now`, rounded up (0 once lapsed).
    pub fn remaining(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }

    /// The next NOTIFY of this dialog (RFC 6665 section 4.2.1.2 and 8.2.3 for
    /// Subscription-State), with `branch` in our Via and the body for `account`'s counts.
    pub fn notify(
        &mut self,
        identity: &ProxyIdentity,
        branch: &str,
        subscription_state: &str,
        body: &str,
    ) -> Bytes {
        self.notify_cseq += 1;
        let destination = self.destination;
        let listen = identity.listen_toward(destination.transport, destination.addr);
        let mut builder = RequestBuilder::new("NOTIFY", &self.remote_target)
            .header(
                "Via",
                &identity.via_from(destination.transport, listen, branch),
            )
            .header("Max-Forwards", "70");
        for route in &self.route_set {
            builder = builder.header("Route", route);
        }
        let bytes = builder
            .header("From", &self.from)
            .header("To", &self.to)
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} NOTIFY", self.notify_cseq))
            .header("Contact", &self.contact)
            .header("Event", summary::EVENT)
            .header("Subscription-State", subscription_state)
            .body(summary::CONTENT_TYPE, body.as_bytes())
            .build();
        Bytes::from(bytes)
    }
}

/// The first Contact URI of `request`, without the Contact's own parameters.
fn remote_target(request: &Message<'_>) -> Option<String> {
    match request.contacts().ok()? {
        Contacts::List(list) => list.first().map(|c| c.uri.as_str().to_string()),
        Contacts::Wildcard => None,
    }
}

/// Where the NOTIFYs of a dialog go: the first route when there is a route set (a proxy in
/// front of the subscriber, reached by IP), else as a binding is reached (`targets.rs`): over
/// TCP the connection the SUBSCRIBE came on, over UDP the Contact's IP and port, and the
/// SUBSCRIBE's source when the Contact names no IP (a name, or nothing usable: a phone
/// behind NAT is reached where its request came from).
pub fn next_hop(route_set: &[String], remote_target: &str, source: Source) -> Destination {
    if source.transport == Transport::Tcp {
        return Destination {
            transport: Transport::Tcp,
            addr: source.addr,
        };
    }
    let first_hop = route_set
        .first()
        .map(|route| {
            route
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_else(|| remote_target.to_string());
    let addr = Uri::parse(&first_hop)
        .ok()
        .as_ref()
        .and_then(uri_target)
        .and_then(|(host, port, transport)| {
            let ip = host.parse::<IpAddr>().ok()?;
            Some(Destination {
                transport,
                addr: SocketAddr::new(ip, port),
            })
        });
    addr.unwrap_or(Destination {
        transport: Transport::Udp,
        addr: source.addr,
    })
}

/// The granted duration of a subscription (RFC 6665 section 4.2.1.1: the notifier may
/// shorten it): the requested one capped at [`super::MAX_EXPIRES`], that when none was asked.
pub fn granted(requested: Option<u32>) -> Duration {
    let max = super::MAX_EXPIRES;
    Duration::from_secs(u64::from(requested.map_or(max, |r| r.min(max))))
}
