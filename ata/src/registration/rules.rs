//! The registration state machine of one line, sans-IO (RFC 3261 section 10.2).
//!
//! The actor (`registration::actor`) calls [`Registration::start`], feeds every final response
//! of our REGISTER transactions to [`Registration::handle_response`], transaction timeouts to
//! [`Registration::handle_failure`], and its timer to [`Registration::handle_timeout`], always
//! with `now`; it drains [`Registration::poll_transmit`] into the endpoint and sleeps until
//! [`Registration::poll_timeout`].
//!
//! Rules kept here:
//! - one Call-ID for all registrations of the line, CSeq + 1 for each REGISTER (10.2.4);
//! - a 401 or 407 is answered once per nonce with digest credentials (22.2, 22.3); a second
//!   challenge for the same nonce, unless `stale`, means the password is wrong;
//! - the granted time is our Contact's `expires` in the 200, else the `Expires` header, else
//!   what we asked (10.2.4). The seed's registrar writes the contact's `expires` as an RFC 2543
//!   date in its own clock; a date already past for us is unusable, so the `Expires` header
//!   wins then (seed table D-2);
//! - refresh at 80% of the granted time (inside the 50-90% the issue asks for, leaving a
//!   fifth for retransmissions);
//! - 423 is retried once with `Min-Expires` (10.2.8);
//! - failures and timeouts back off 5 s, 10 s, 20 s ... up to 5 minutes: short enough that an
//!   ATA started before the lab's proxy registers soon after it comes up; a failure response
//!   with Retry-After is not retried sooner than it asks (up to an hour);
//! - with backup proxies ([`ProxyList`], `failover.rs`), a REGISTER that times out, cannot be
//!   sent or is answered 503 goes at once to the next proxy (RFC 3263 section 4.3), with fresh
//!   credentials (another registrar, another realm); the back-off starts only when every
//!   proxy failed. While on a backup, an OPTIONS (own Call-ID) asks the primary every
//!   fallback interval whether it is back, and its answer sends the next REGISTER there.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use dialtone_sip::headers::parse_contact_expires;
use dialtone_sip::{Contacts, Message, Method, RequestBuilder};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::failover::ProxyList;
use crate::auth::{answer_challenge, AuthHeader, DigestUser};
use crate::error::{AtaError, Unusable};
use crate::identity::{self, LineIdentity, USER_AGENT};

/// First retry delay after a failure.
pub const BACKOFF_START: Duration = Duration::from_secs(5);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Longest wait a registrar's Retry-After can impose: a lab's phone must not stay
/// unregistered for a day because of one header.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(3600);

/// Where a line's registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not registered and not trying (registration disabled, or after unregistering).
    Unregistered,
    /// A REGISTER is in flight.
    Registering,
    /// The registrar holds our binding until the instant given.
    Registered {
        /// When the binding lapses.
        until: Instant,
    },
    /// The last attempt failed; the next one is at `retry_at`.
    Failed {
        /// The status that failed it (408 for a timeout).
        status: u16,
        /// When we try again.
        retry_at: Instant,
    },
    /// An `Expires: 0` REGISTER is in flight.
    Unregistering,
}

impl RegistrationState {
    /// The state's name, for metrics and the control API.
    pub fn name(&self) -> &'static str {
        match self {
            RegistrationState::Unregistered => "unregistered",
            RegistrationState::Registering => "registering",
            RegistrationState::Registered { .. } => "registered",
            RegistrationState::Failed { .. } => "failed",
            RegistrationState::Unregistering => "unregistering",
        }
    }

    /// Every name [`RegistrationState::name`] can return.
    pub const NAMES: [&'static str; 5] = [
        "unregistered",
        "registering",
        "registered",
        "failed",
        "unregistering",
    ];
}

/// A REGISTER to hand to the endpoint as a new client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The request.
    pub bytes: Vec<u8>,
    /// The registrar's address.
    pub destination: SocketAddr,
}

/// The fixed inputs of one line's registration.
#[derive(Debug, Clone)]
pub struct RegistrationParams {
    /// Who registers; `identity.domain` is the registrar's domain.
    pub identity: LineIdentity,
    /// Where REGISTERs go: the primary proxy, then its backups.
    pub registrars: Vec<SocketAddr>,
    /// While on a backup, how often the primary is probed with OPTIONS.
    pub fallback_interval: Duration,
    /// The Expires asked for.
    pub expires: u32,
    /// Digest credentials.
    pub user: DigestUser,
}

/// One line's registration.
#[derive(Debug)]
pub struct Registration {
    params: RegistrationParams,
    state: RegistrationState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    asked: u32,
    auth: Option<AuthHeader>,
    challenges_answered: u32,
    failures: u32,
    refresh_at: Option<Instant>,
    proxies: ProxyList,
    probes: u32,
    outbox: Vec<Transmit>,
    rng: StdRng,
}

impl Registration {
    /// A registration that has sent nothing yet; `seed` drives its identifiers.
    pub fn new(params: RegistrationParams, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let call_id = identity::new_call_id(&mut rng, params.identity.local);
        let from_tag = identity::new_tag(&mut rng);
        let asked = params.expires;
        let proxies = ProxyList::new(params.registrars.clone(), params.fallback_interval);
        Registration {
            params,
            state: RegistrationState::Unregistered,
            call_id,
            from_tag,
            cseq: 0,
            asked,
            auth: None,
            challenges_answered: 0,
            failures: 0,
            refresh_at: None,
            proxies,
            probes: 0,
            outbox: Vec::new(),
            rng,
        }
    }

    /// The proxy the line uses now: where REGISTERs go, and new calls.
    pub fn proxy(&self) -> SocketAddr {
        self.proxies.current()
    }

    /// The current state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// The Call-ID every REGISTER of this line carries.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Sends the first REGISTER.
    pub fn start(&mut self, now: Instant) {
        self.send_register(now, self.params.expires);
    }

    /// Registers again at once with `expires` and `user`, forgetting cached credentials and
    /// back-off: what a `check-sync` NOTIFY asks for (the config may have new passwords).
    pub fn resync(&mut self, now: Instant, expires: u32, user: DigestUser) {
        if self.state == RegistrationState::Unregistering {
            return;
        }
        self.params.expires = expires;
        self.params.user = user;
        self.auth = None;
        self.challenges_answered = 0;
        self.failures = 0;
        self.refresh_at = None;
        self.send_register(now, expires);
    }

    /// Removes the binding (`Expires: 0`), as on shutdown (10.2.2).
    pub fn unregister(&mut self, now: Instant) {
        if matches!(self.state, RegistrationState::Unregistered) {
            return;
        }
        self.refresh_at = None;
        self.send_register(now, 0);
        self.state = RegistrationState::Unregistering;
    }

    /// A final response (or any response: provisionals are ignored) to our REGISTER.
    /// `wall` is the wall-clock time, for date-form contact expiry.
    pub fn handle_response(
        &mut self,
        now: Instant,
        wall: SystemTime,
        response: &Message<'_>,
    ) -> Result<(), AtaError> {
        let status = response
            .status()
            .ok_or(AtaError::Unusable(Unusable::NotAResponse))?;
        let cseq = response.cseq()?;
        if cseq.method == Method::Options {
            self.on_probe_response(now, status);
            return Ok(());
        }
        if cseq.seq != self.cseq {
            // A late answer to an earlier REGISTER; the current one decides.
            return Ok(());
        }
        match status {
            100..=199 => Ok(()),
            200..=299 => {
                self.on_success(now, wall, response);
                Ok(())
            }
            401 | 407 => self.on_challenge(now, response),
            423 => {
                match response.min_expires()? {
                    Some(min) if min > self.asked && self.challenges_answered < 8 => {
                        self.challenges_answered += 1;
                        self.send_register(now, min);
                    }
                    _ => self.fail(now, status),
                }
                Ok(())
            }
            503 if self.fail_over(now) => Ok(()),
            _ => {
                // A registrar that says when to come back (a 500 whose binding it could not
                // save, a 503 while it is overloaded) is not asked again sooner (RFC 3261
                // section 20.33); an unreadable Retry-After is ignored, not fatal.
                let asked_wait =
                    response.retry_after().ok().flatten().map(|seconds| {
                        Duration::from_secs(u64::from(seconds)).min(RETRY_AFTER_MAX)
                    });
                self.fail_at_least(now, status, asked_wait.unwrap_or_default());
                Ok(())
            }
        }
    }

    /// The REGISTER transaction timed out or could not be sent (treated as 408 / 503).
    pub fn handle_failure(&mut self, now: Instant, status: u16) {
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Unregistered;
            return;
        }
        if !self.fail_over(now) {
            self.fail(now, status);
        }
    }

    /// Another transaction (a call's INVITE) found `proxy` not answering: when it is the one
    /// in use, the line moves to the next proxy and registers there (with one proxy, nothing
    /// changes: the registration's own refresh will find out).
    pub fn proxy_unanswered(&mut self, now: Instant, proxy: SocketAddr) {
        if proxy != self.proxies.current() || self.state == RegistrationState::Unregistering {
            return;
        }
        let moved = self.proxies.fail_over(now) || self.proxies.current() != proxy;
        if moved {
            self.auth = None;
            self.challenges_answered = 0;
            self.refresh_at = None;
            self.send_register(now, self.params.expires);
        }
    }

    /// The OPTIONS probe of the primary timed out or could not be sent.
    pub fn handle_probe_failure(&mut self, now: Instant) {
        self.proxies.probe_failed(now);
    }

    /// The proxy in use did not answer or answered 503: when a backup is left to try,
    /// registers there at once (true).
    fn fail_over(&mut self, now: Instant) -> bool {
        if self.state == RegistrationState::Unregistering || !self.proxies.fail_over(now) {
            return false;
        }
        self.auth = None;
        self.challenges_answered = 0;
        self.refresh_at = None;
        self.send_register(now, self.params.expires);
        true
    }

    /// Any answer but 503 from the primary means it is back: register there now.
    fn on_probe_response(&mut self, now: Instant, status: u16) {
        match status {
            100..=199 => {}
            503 => self.proxies.probe_failed(now),
            _ => {
                if self.state == RegistrationState::Unregistering {
                    return;
                }
                self.proxies.probe_answered();
                self.auth = None;
                self.challenges_answered = 0;
                self.failures = 0;
                self.refresh_at = None;
                self.send_register(now, self.params.expires);
            }
        }
    }

    /// The timer from [`Registration::poll_timeout`] fired.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(primary) = self.proxies.take_probe(now) {
            self.send_probe(primary);
        }
        let Some(at) = self.register_due() else {
            return;
        };
        if at > now {
            return;
        }
        self.refresh_at = None;
        match self.state {
            RegistrationState::Registered { .. } | RegistrationState::Failed { .. } => {
                self.send_register(now, self.params.expires)
            }
            _ => {}
        }
    }

    /// The next REGISTER to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(self.outbox.remove(0))
        }
    }

    /// When [`Registration::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.register_due(), self.proxies.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the next REGISTER is due (a refresh or a retry).
    fn register_due(&self) -> Option<Instant> {
        match self.state {
            RegistrationState::Failed { retry_at, .. } => Some(retry_at),
            RegistrationState::Registered { .. } => self.refresh_at,
            _ => None,
        }
    }

    /// An OPTIONS to the primary, outside the registration's Call-ID, asking whether it is
    /// back (any answer will do).
    fn send_probe(&mut self, primary: SocketAddr) {
        self.probes += 1;
        let id = &self.params.identity;
        let branch = identity::new_branch(&mut self.rng);
        let uri = format!("sip:{primary}");
        let call_id = identity::new_call_id(&mut self.rng, id.local);
        let tag = identity::new_tag(&mut self.rng);
        let bytes = RequestBuilder::new("OPTIONS", &uri)
            .header("Via", &id.via(&branch))
            .header("Max-Forwards", "70")
            .header("From", &format!("{};tag={tag}", id.from_value()))
            .header("To", &format!("<{uri}>"))
            .header("Call-ID", &call_id)
            .header("CSeq", &format!("{} OPTIONS", self.probes))
            .header("Accept", "application/sdp")
            .header("User-Agent", USER_AGENT)
            .build();
        self.outbox.push(Transmit {
            bytes,
            destination: primary,
        });
    }

    fn on_success(&mut self, now: Instant, wall: SystemTime, response: &Message<'_>) {
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Unregistered;
            return;
        }
        let granted = self.granted_seconds(wall, response);
        self.failures = 0;
        self.challenges_answered = 0;
        if granted == 0 {
            // The registrar kept no binding for us: treat as a failure and try again later.
            self.fail(now, 200);
            return;
        }
        let lifetime = Duration::from_secs(u64::from(granted));
        self.state = RegistrationState::Registered {
            until: now + lifetime,
        };
        self.refresh_at = Some(now + lifetime.mul_f64(0.8));
    }

    fn granted_seconds(&self, wall: SystemTime, response: &Message<'_>) -> u32 {
        let header = response.expires().ok().flatten();
        let our_contact = self.params.identity.contact_uri();
        let ours = match response.contacts() {
            Ok(Contacts::List(list)) => list.iter().find(|c| {
                same_contact(c.uri.as_str(), &our_contact)
                    || c.uri.user() == Some(&*self.params.identity.user)
            }),
            _ => None,
        };
        let contact_expires = ours
            .and_then(|c| c.params.get("expires").flatten())
            .and_then(|v| parse_contact_expires(v).ok())
            .map(|e| e.seconds_from(wall))
            .filter(|&s| s > 0);
        contact_expires.or(header).unwrap_or(self.asked)
    }

    fn on_challenge(&mut self, now: Instant, response: &Message<'_>) -> Result<(), AtaError> {
        let uri = format!("sip:{}", self.params.identity.domain);
        let cnonce = identity::new_cnonce(&mut self.rng);
        let header = match answer_challenge(response, &self.params.user, "REGISTER", &uri, &cnonce)
        {
            Ok(h) => h,
            Err(e) => {
                self.fail(now, response.status().unwrap_or(401));
                return Err(e);
            }
        };
        let repeated = self.auth.as_ref().is_some_and(|a| a.nonce == header.nonce);
        // RFC 3261 22.2: a challenge repeated after our credentials means they were refused,
        // unless the server only found the nonce stale.
        if (repeated && !header.stale) || self.challenges_answered >= 3 {
            self.fail(now, response.status().unwrap_or(401));
            return Ok(());
        }
        self.challenges_answered += 1;
        self.auth = Some(header);
        let expires = if self.state == RegistrationState::Unregistering {
            0
        } else {
            self.asked
        };
        let unregistering = self.state == RegistrationState::Unregistering;
        self.send_register(now, expires);
        if unregistering {
            self.state = RegistrationState::Unregistering;
        }
        Ok(())
    }

    fn fail(&mut self, now: Instant, status: u16) {
        self.fail_at_least(now, status, Duration::ZERO);
    }

    /// Fails, and tries again after the back-off or after `wait`, whichever is later.
    fn fail_at_least(&mut self, now: Instant, status: u16, wait: Duration) {
        if self.state == RegistrationState::Unregistering {
            self.state = RegistrationState::Unregistered;
            return;
        }
        let delay = BACKOFF_START
            .saturating_mul(1u32 << self.failures.min(10))
            .min(BACKOFF_MAX)
            .max(wait);
        self.failures += 1;
        self.auth = None;
        self.challenges_answered = 0;
        self.state = RegistrationState::Failed {
            status,
            retry_at: now + delay,
        };
    }

    fn send_register(&mut self, _now: Instant, expires: u32) {
        self.cseq += 1;
        self.asked = if expires == 0 { self.asked } else { expires };
        let id = &self.params.identity;
        let branch = identity::new_branch(&mut self.rng);
        let uri = format!("sip:{}", id.domain);
        let mut builder = RequestBuilder::new("REGISTER", &uri)
            .header("Via", &id.via(&branch))
            .header("Max-Forwards", "70")
            .header(
                "From",
                &format!("{};tag={}", id.from_value(), self.from_tag),
            )
            .header("To", &id.from_value())
            .header("Call-ID", &self.call_id)
            .header("CSeq", &format!("{} REGISTER", self.cseq))
            .header(
                "Contact",
                &format!("<{}>;expires={expires}", id.contact_uri()),
            )
            .header("Expires", &expires.to_string())
            .header("User-Agent", USER_AGENT);
        if let Some(auth) = &self.auth {
            builder = builder.header(auth.name, &auth.value);
        }
        self.outbox.push(Transmit {
            bytes: builder.build(),
            destination: self.proxies.current(),
        });
        if expires != 0 {
            self.state = RegistrationState::Registering;
        }
    }
}

fn same_contact(a: &str, b: &str) -> bool {
    let strip = |s: &str| s.split(';').next().unwrap_or("").to_ascii_lowercase();
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> RegistrationParams {
        RegistrationParams {
            identity: LineIdentity {
                user: "9301".into(),
                display_name: None,
                domain: "192.168.2.81".into(),
                local: "127.0.0.1:5060".parse().expect("addr"),
                transport: dialtone_transaction::Transport::Udp,
            },
            registrars: vec!["127.0.0.1:5070".parse().expect("addr")],
            fallback_interval: Duration::from_secs(30),
            expires: 3600,
            user: DigestUser {
                username: "9301".into(),
                password: "9301".into(),
            },
        }
    }

    /// Answers `request` with the status line and extra headers given, echoing the
    /// transaction headers as a registrar would.
    fn respond(request: &[u8], status: &str, extra: &str) -> Vec<u8> {
        let request = Message::parse(request).expect("our REGISTER parses");
        let mut text = format!("SIP/2.0 {status}\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            let value = request.header_value_by_name(name).expect("header present");
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str(extra);
        text.push_str("Content-Length: 0\r\n\r\n");
        text.into_bytes()
    }

    fn feed(reg: &mut Registration, now: Instant, bytes: &[u8]) {
        let message = Message::parse(bytes).expect("response parses");
        reg.handle_response(now, SystemTime::now(), &message)
            .expect("handled");
    }

    fn header(bytes: &[u8], name: &str) -> String {
        Message::parse(bytes)
            .expect("parses")
            .header_value_by_name(name)
            .map(str::to_owned)
            .unwrap_or_default()
    }

    #[test]
    fn first_register_asks_for_the_configured_expiry() {
        let mut reg = Registration::new(params(), 1);
        reg.start(Instant::now());
        let sent = reg.poll_transmit().expect("a REGISTER");
        assert!(sent
            .bytes
            .starts_with(b"REGISTER sip:192.168.2.81 SIP/2.0\r\n"));
        assert_eq!(header(&sent.bytes, "Expires"), "3600");
        assert_eq!(header(&sent.bytes, "CSeq"), "1 REGISTER");
        assert_eq!(reg.state(), RegistrationState::Registering);
    }

    #[test]
    fn a_resync_registers_at_once_with_the_new_password_after_a_failure() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 5);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        feed(&mut reg, start, &respond(&first, "403 Forbidden", ""));
        assert!(matches!(reg.state(), RegistrationState::Failed { .. }));
        let retry_at = reg.poll_timeout().expect("a back-off retry");
        assert!(retry_at > start);
        let new_user = DigestUser {
            username: "9301".into(),
            password: "new".into(),
        };
        reg.resync(start, 600, new_user);
        let again = reg.poll_transmit().expect("a REGISTER at once").bytes;
        assert_eq!(header(&again, "Expires"), "600");
        assert_eq!(header(&again, "Call-ID"), header(&first, "Call-ID"));
        assert_eq!(header(&again, "CSeq"), "2 REGISTER");
        assert_eq!(reg.state(), RegistrationState::Registering);
    }

    #[test]
    fn a_407_is_answered_with_the_same_call_id_and_the_next_cseq() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 2);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        let challenge = respond(
            &first,
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: DIGEST realm=\"CISCO\", nonce=\"3bd5e334\"\r\n",
        );
        feed(&mut reg, start, &challenge);
        let second = reg.poll_transmit().expect("retried REGISTER").bytes;
        assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
        assert_eq!(header(&second, "CSeq"), "2 REGISTER");
        // The seed's own answer for user 9301 (table D-4, message 4).
        assert!(header(&second, "Proxy-Authorization")
            .contains("response=\"87ac0afeb08222af706f9e8b5c566ce2\""));
    }

    #[test]
    fn a_repeated_challenge_for_the_same_nonce_fails_and_backs_off() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 3);
        reg.start(start);
        let challenge_header = "WWW-Authenticate: Digest realm=\"lab\", nonce=\"n1\"\r\n";
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        feed(
            &mut reg,
            start,
            &respond(&first, "401 Unauthorized", challenge_header),
        );
        let second = reg.poll_transmit().expect("retry").bytes;
        feed(
            &mut reg,
            start,
            &respond(&second, "401 Unauthorized", challenge_header),
        );
        assert!(reg.poll_transmit().is_none());
        assert_eq!(
            reg.state(),
            RegistrationState::Failed {
                status: 401,
                retry_at: start + BACKOFF_START
            }
        );
    }

    #[test]
    fn refreshes_at_eighty_percent_of_the_granted_expiry() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 4);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        feed(
            &mut reg,
            start,
            &respond(&first, "200 OK", "Expires: 100\r\n"),
        );
        assert_eq!(reg.poll_timeout(), Some(start + Duration::from_secs(80)));
        reg.handle_timeout(start + Duration::from_secs(79));
        assert!(reg.poll_transmit().is_none(), "not yet at 79 s");
        reg.handle_timeout(start + Duration::from_secs(80));
        let refresh = reg.poll_transmit().expect("refresh at 80 s").bytes;
        assert_eq!(header(&refresh, "CSeq"), "2 REGISTER");
        assert_eq!(header(&refresh, "Call-ID"), header(&first, "Call-ID"));
    }

    #[test]
    fn a_past_date_form_contact_expiry_falls_back_to_the_expires_header() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 5);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        let contact = format!(
            "Contact: <{}>;expires=\"Tue, 23 Oct 2001 14:24:57 GMT\"\r\nExpires: 3600\r\n",
            params().identity.contact_uri()
        );
        feed(&mut reg, start, &respond(&first, "200 OK", &contact));
        assert_eq!(
            reg.state(),
            RegistrationState::Registered {
                until: start + Duration::from_secs(3600)
            }
        );
    }

    #[test]
    fn a_contact_expiry_in_seconds_beats_the_header() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 6);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        let contact = format!(
            "Contact: <{}>;expires=60\r\nExpires: 3600\r\n",
            params().identity.contact_uri()
        );
        feed(&mut reg, start, &respond(&first, "200 OK", &contact));
        assert_eq!(reg.poll_timeout(), Some(start + Duration::from_secs(48)));
    }

    #[test]
    fn timeouts_back_off_doubling_up_to_the_cap() {
        let mut now = Instant::now();
        let mut reg = Registration::new(params(), 7);
        reg.start(now);
        let mut delays = Vec::new();
        for _ in 0..9 {
            assert!(reg.poll_transmit().is_some());
            reg.handle_failure(now, 408);
            let at = reg.poll_timeout().expect("retry armed");
            delays.push((at - now).as_secs());
            now = at;
            reg.handle_timeout(now);
        }
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn a_failure_with_retry_after_waits_that_long_when_it_is_longer_than_the_back_off() {
        let start = Instant::now();
        for (retry_after, want) in [
            ("Retry-After: 2\r\n", 5),
            ("Retry-After: 30;duration=60\r\n", 30),
            ("Retry-After: 86400\r\n", 3600),
            ("Retry-After: later\r\n", 5),
        ] {
            let mut reg = Registration::new(params(), 10);
            reg.start(start);
            let first = reg.poll_transmit().expect("REGISTER").bytes;
            feed(
                &mut reg,
                start,
                &respond(&first, "500 Server Internal Error", retry_after),
            );
            assert_eq!(
                reg.poll_timeout(),
                Some(start + Duration::from_secs(want)),
                "{retry_after:?}"
            );
        }
    }

    #[test]
    fn a_423_is_retried_with_min_expires() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 8);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        feed(
            &mut reg,
            start,
            &respond(&first, "423 Interval Too Brief", "Min-Expires: 7200\r\n"),
        );
        let second = reg.poll_transmit().expect("retry").bytes;
        assert_eq!(header(&second, "Expires"), "7200");
    }

    const PRIMARY: &str = "127.0.0.1:5070";
    const BACKUP: &str = "127.0.0.1:5080";

    fn with_backup() -> Registration {
        let params = RegistrationParams {
            registrars: vec![
                PRIMARY.parse().expect("addr"),
                BACKUP.parse().expect("addr"),
            ],
            ..params()
        };
        Registration::new(params, 11)
    }

    fn sent_to(reg: &mut Registration, expected: &str) -> Vec<u8> {
        let sent = reg.poll_transmit().expect("a request");
        assert_eq!(sent.destination, expected.parse().expect("addr"));
        sent.bytes
    }

    #[test]
    fn a_register_that_times_out_goes_at_once_to_the_backup_proxy() {
        let start = Instant::now();
        let mut reg = with_backup();
        reg.start(start);
        let first = sent_to(&mut reg, PRIMARY);
        reg.handle_failure(start + Duration::from_secs(32), 408);
        let second = sent_to(&mut reg, BACKUP);
        assert_eq!(header(&second, "Call-ID"), header(&first, "Call-ID"));
        assert_eq!(header(&second, "CSeq"), "2 REGISTER");
        assert_eq!(reg.state(), RegistrationState::Registering);
        assert_eq!(reg.proxy(), BACKUP.parse().expect("addr"));
    }

    #[test]
    fn a_503_sends_the_register_to_the_backup_proxy_with_fresh_credentials() {
        let start = Instant::now();
        let mut reg = with_backup();
        reg.start(start);
        let first = sent_to(&mut reg, PRIMARY);
        let challenge = "WWW-Authenticate: Digest realm=\"a\", nonce=\"n1\"\r\n";
        feed(
            &mut reg,
            start,
            &respond(&first, "401 Unauthorized", challenge),
        );
        let answered = sent_to(&mut reg, PRIMARY);
        assert!(!header(&answered, "Authorization").is_empty());
        feed(
            &mut reg,
            start,
            &respond(&answered, "503 Service Unavailable", ""),
        );
        let to_backup = sent_to(&mut reg, BACKUP);
        assert!(
            header(&to_backup, "Authorization").is_empty(),
            "the primary's nonce means nothing to the backup"
        );
        assert_eq!(reg.proxy(), BACKUP.parse().expect("addr"));
    }

    #[test]
    fn when_every_proxy_failed_the_primary_is_tried_again_after_the_back_off() {
        let start = Instant::now();
        let mut reg = with_backup();
        reg.start(start);
        sent_to(&mut reg, PRIMARY);
        reg.handle_failure(start, 408);
        sent_to(&mut reg, BACKUP);
        reg.handle_failure(start, 408);
        assert!(reg.poll_transmit().is_none());
        assert_eq!(
            reg.state(),
            RegistrationState::Failed {
                status: 408,
                retry_at: start + BACKOFF_START
            }
        );
        reg.handle_timeout(start + BACKOFF_START);
        sent_to(&mut reg, PRIMARY);
    }

    #[test]
    fn on_the_backup_the_primary_is_probed_and_registered_at_again_once_it_answers() {
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        let mut reg = with_backup();
        reg.start(start);
        sent_to(&mut reg, PRIMARY);
        reg.handle_failure(start, 408);
        let at_backup = sent_to(&mut reg, BACKUP);
        feed(
            &mut reg,
            start,
            &respond(&at_backup, "200 OK", "Expires: 3600\r\n"),
        );
        assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
        assert_eq!(
            reg.poll_timeout(),
            Some(start + interval),
            "the probe, not the refresh"
        );
        reg.handle_timeout(start + interval - Duration::from_millis(1));
        assert!(reg.poll_transmit().is_none(), "not before the interval");

        // The primary is still down: the probe times out and another follows an interval later.
        reg.handle_timeout(start + interval);
        let probe = sent_to(&mut reg, PRIMARY);
        assert!(probe.starts_with(b"OPTIONS sip:127.0.0.1:5070 SIP/2.0\r\n"));
        assert_ne!(header(&probe, "Call-ID"), header(&at_backup, "Call-ID"));
        reg.handle_probe_failure(start + interval * 2);
        assert_eq!(reg.proxy(), BACKUP.parse().expect("addr"));
        assert_eq!(reg.poll_timeout(), Some(start + interval * 3));

        // It answers: the next REGISTER goes there at once.
        reg.handle_timeout(start + interval * 3);
        let probe = sent_to(&mut reg, PRIMARY);
        feed(
            &mut reg,
            start + interval * 3,
            &respond(&probe, "200 OK", ""),
        );
        let back = sent_to(&mut reg, PRIMARY);
        assert!(back.starts_with(b"REGISTER "));
        assert_eq!(reg.proxy(), PRIMARY.parse().expect("addr"));
        assert_eq!(reg.state(), RegistrationState::Registering);
        feed(
            &mut reg,
            start + interval * 3,
            &respond(&back, "200 OK", "Expires: 100\r\n"),
        );
        assert_eq!(
            reg.poll_timeout(),
            Some(start + interval * 3 + Duration::from_secs(80)),
            "no more probes on the primary"
        );
    }

    #[test]
    fn a_calls_invite_unanswered_by_the_proxy_in_use_moves_the_line_to_the_next_one() {
        let start = Instant::now();
        let mut reg = with_backup();
        reg.start(start);
        let first = sent_to(&mut reg, PRIMARY);
        feed(
            &mut reg,
            start,
            &respond(&first, "200 OK", "Expires: 3600\r\n"),
        );
        reg.proxy_unanswered(start, BACKUP.parse().expect("addr"));
        assert!(reg.poll_transmit().is_none(), "not the proxy in use");
        reg.proxy_unanswered(start, PRIMARY.parse().expect("addr"));
        sent_to(&mut reg, BACKUP);
        assert_eq!(reg.proxy(), BACKUP.parse().expect("addr"));
        // From the last backup, the round ends at the primary, which is asked at once.
        reg.proxy_unanswered(start, BACKUP.parse().expect("addr"));
        sent_to(&mut reg, PRIMARY);
        // A single proxy: nothing to move to.
        let mut single = Registration::new(params(), 12);
        single.start(start);
        sent_to(&mut single, "127.0.0.1:5070");
        single.proxy_unanswered(start, "127.0.0.1:5070".parse().expect("addr"));
        assert!(single.poll_transmit().is_none());
    }

    #[test]
    fn unregistering_sends_expires_zero_and_ends_unregistered() {
        let start = Instant::now();
        let mut reg = Registration::new(params(), 9);
        reg.start(start);
        let first = reg.poll_transmit().expect("REGISTER").bytes;
        feed(
            &mut reg,
            start,
            &respond(&first, "200 OK", "Expires: 100\r\n"),
        );
        reg.unregister(start);
        let bye = reg.poll_transmit().expect("unregister").bytes;
        assert_eq!(header(&bye, "Expires"), "0");
        assert!(header(&bye, "Contact").ends_with(";expires=0"));
        feed(&mut reg, start, &respond(&bye, "200 OK", ""));
        assert_eq!(reg.state(), RegistrationState::Unregistered);
        assert_eq!(reg.poll_timeout(), None);
    }
}
