//! The authenticator: digest challenges and verification for the proxy (RFC 3261 section 22.3),
//! with throttling of repeated failures.
//!
//! It answers one question for the proxy core: given a request's credentials header, is the
//! request authenticated, should it be challenged (again), or refused? Unknown users are
//! challenged and verified exactly like known ones, against a dummy secret
//! (`dialtone_digest::Secret::Unknown`), so neither the response nor its timing tells them
//! apart. Failures are counted per source address and per user name; past the limit the
//! source or user gets 403 for a while (see [`Throttle`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dialtone_digest::{
    Credentials, NonceCountTracker, NonceSecret, Outcome, Secret, SecretKind, Verifier,
    VerifyRequest,
};

use crate::auth_events::AuthEvent;

/// Where an authenticator in a cluster sends what it learns (see `auth_events.rs`).
pub type EventSink = Box<dyn Fn(AuthEvent) + Send + Sync>;

/// At most this many failures per window, per source and per user, before refusing.
pub const MAX_FAILURES: usize = 5;
/// The window over which failures are counted.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a throttled source or user is refused.
pub const BLOCK_DURATION: Duration = Duration::from_secs(60);
/// Nonces older than this are stale (the client retries with the same password, RFC 7616 3.3).
pub const NONCE_LIFETIME_SECS: u64 = 300;

/// What the proxy should do with a request after looking at its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// The credentials are valid for this user.
    Authenticated { user: String },
    /// No usable credentials: send a challenge (with `stale=true` when the nonce only expired).
    Challenge { stale: bool },
    /// Valid credentials for this user, whose nonce (and count) the very same request used
    /// before: the retransmission of a request that a stateless registrar must answer again
    /// (with nothing changed). A second use by any other request is a replay and gets
    /// [`AuthDecision::Challenge`].
    Replayed { user: String },
    /// Valid credentials for another user than the request claims (403, RFC 3261 22.3).
    WrongUser,
    /// Wrong credentials: challenge again (the failure is counted).
    Failed,
    /// The source or user has failed too often: 403 for a while.
    Throttled,
    /// The credentials header cannot be parsed: 400.
    Malformed,
}

/// Whom a request says it comes from, which the digest username must match (RFC 3261 section
/// 22.3 leaves the rule to the proxy; ours ties the two so that a user cannot call as another).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed<'a> {
    /// This user: the From's user part (or the To's, for REGISTER).
    User(&'a str),
    /// Nobody in particular: the From is anonymous (RFC 3323 section 4.1.1.3, `"Anonymous"
    /// <sip:anonymous@anonymous.invalid>`), so any known user's valid credentials pass, and
    /// the proxy asserts that user's identity in its place (RFC 3325).
    AnyKnownUser,
}

/// A user's stored secret.
#[derive(Debug, Clone)]
enum StoredSecret {
    Password(String),
    Ha1(String),
}

/// Counts failures per key in a sliding window and blocks keys past the limit. Pure: time is
/// passed in.
#[derive(Debug, Default)]
pub struct Throttle {
    entries: HashMap<String, ThrottleEntry>,
}

#[derive(Debug, Default)]
struct ThrottleEntry {
    failures: Vec<SystemTime>,
    blocked_until: Option<SystemTime>,
}

impl Throttle {
    /// True while `key` is blocked.
    pub fn is_blocked(&self, key: &str, now: SystemTime) -> bool {
        self.entries
            .get(key)
            .and_then(|e| e.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Records a failure; returns true when this failure made the key blocked.
    pub fn record_failure(&mut self, key: &str, now: SystemTime) -> bool {
        if self.entries.len() > 100_000 {
            // Bounded memory under a flood of distinct keys: forget everything not blocked.
            self.entries
                .retain(|_, e| e.blocked_until.is_some_and(|u| now < u));
        }
        let entry = self.entries.entry(key.to_string()).or_default();
        entry
            .failures
            .retain(|t| now.duration_since(*t).unwrap_or(Duration::ZERO) < FAILURE_WINDOW);
        entry.failures.push(now);
        if entry.failures.len() > MAX_FAILURES {
            entry.blocked_until = Some(now + BLOCK_DURATION);
            entry.failures.clear();
            return true;
        }
        false
    }
}

/// The proxy's authenticator; shared by all workers.
pub struct Authenticator {
    verifier: Verifier,
    users: HashMap<String, StoredSecret>,
    unknown_kind: SecretKind,
    throttle: Mutex<Throttle>,
    tracker: Mutex<NonceCountTracker>,
    /// Set once a cluster link is up: every failure and nonce use goes there too.
    events: OnceLock<EventSink>,
    offer_qop: bool,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("realm", &self.verifier.realm())
            .field("users", &self.users.len())
            .finish()
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Authenticator {
    /// An authenticator for `realm` with `users` (`password` or `ha1:HEX` secrets), signing
    /// its nonces with a key of its own.
    pub fn new(realm: &str, users: &[(String, String)], offer_qop: bool) -> Authenticator {
        Self::with_nonce_key(realm, users, offer_qop, rand::random())
    }

    /// As [`Authenticator::new`], signing nonces with `key` (a cluster's nodes are rekeyed
    /// with theirs, see [`Authenticator::rekeyed`]).
    fn with_nonce_key(
        realm: &str,
        users: &[(String, String)],
        offer_qop: bool,
        key: [u8; 32],
    ) -> Authenticator {
        // The key is 32 bytes, which NonceSecret always accepts.
        let nonces = NonceSecret::new(&key, NONCE_LIFETIME_SECS)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid"));
        let verifier = Verifier::new(realm, nonces).with_qop(offer_qop);
        let mut map = HashMap::new();
        let mut ha1_count = 0;
        for (name, secret) in users {
            let stored = match secret.strip_prefix("ha1:") {
                Some(hex) => {
                    ha1_count += 1;
                    StoredSecret::Ha1(hex.to_ascii_lowercase())
                }
                None => StoredSecret::Password(secret.clone()),
            };
            map.insert(name.clone(), stored);
        }
        let unknown_kind = if ha1_count * 2 > users.len() {
            SecretKind::Ha1
        } else {
            SecretKind::Password
        };
        Authenticator {
            verifier,
            users: map,
            unknown_kind,
            throttle: Mutex::new(Throttle::default()),
            tracker: Mutex::new(NonceCountTracker::new(100_000, NONCE_LIFETIME_SECS * 2)),
            events: OnceLock::new(),
            offer_qop,
        }
    }

    /// The same authenticator signing its nonces with `key`, the cluster's, as its node number
    /// `node` (so that no two nodes issue the same nonce); before it has issued any.
    pub fn rekeyed(self, key: [u8; 32], node: u8) -> Authenticator {
        let nonces = NonceSecret::new(&key, NONCE_LIFETIME_SECS)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is valid"))
            .for_node(node);
        let verifier = Verifier::new(self.verifier.realm(), nonces).with_qop(self.offer_qop);
        Authenticator { verifier, ..self }
    }

    /// From now on every failure and nonce use is also told to `sink` (the cluster link);
    /// only the first sink set counts.
    pub fn share_events(&self, sink: EventSink) {
        let _ = self.events.set(sink);
    }

    /// Applies what another node learnt: its failure counts towards our lockout, its nonce
    /// use makes the same credentials a replay here.
    pub fn apply_remote(&self, event: &AuthEvent) {
        match event {
            AuthEvent::Failure { key, at_unix_secs } => {
                let at = UNIX_EPOCH + Duration::from_secs(*at_unix_secs);
                let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
                throttle.record_failure(key, at);
            }
            AuthEvent::NonceUsed {
                nonce,
                nc,
                request,
                at_unix_secs,
            } => {
                let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
                // The issue time only orders the table's expiry; the time of use is close.
                let _ = tracker.accept(nonce, *at_unix_secs, *nc, *request, *at_unix_secs);
            }
        }
    }

    fn tell(&self, event: impl FnOnce() -> AuthEvent) {
        if let Some(sink) = self.events.get() {
            sink(event());
        }
    }

    /// The realm challenged.
    pub fn realm(&self) -> &str {
        self.verifier.realm()
    }

    /// True when `user` has credentials here (a known user with no binding gets 480, an
    /// unknown one 404).
    pub fn is_known_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    fn is_blocked(&self, key: &str, now: SystemTime) -> bool {
        let throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        throttle.is_blocked(key, now)
    }

    /// The value of a WWW-Authenticate or Proxy-Authenticate header for a new challenge.
    pub fn challenge(&self, now: SystemTime, stale: bool) -> String {
        self.verifier
            .challenge(unix_secs(now), stale, &[])
            .to_string()
    }

    /// Checks the credentials in `header` (the Authorization or Proxy-Authorization value for
    /// our realm, if any) for a request by `claimed` from `source`; `request_fingerprint`
    /// identifies the request's transaction (see [`dialtone_digest::VerifyRequest`]).
    pub fn check(
        &self,
        headers: &[&str],
        method: &str,
        claimed: Claimed<'_>,
        source: IpAddr,
        now: SystemTime,
        request_fingerprint: u64,
    ) -> AuthDecision {
        let source_key = format!("ip:{source}");
        if self.is_blocked(&source_key, now)
            || matches!(claimed, Claimed::User(user) if self.is_blocked(&format!("user:{user}"), now))
        {
            return AuthDecision::Throttled;
        }
        // Of several credentials, the ones for our realm count (RFC 3261 22.3).
        let mut ours = None;
        for value in headers {
            match Credentials::parse(value) {
                Ok(c) if c.realm == self.realm() => {
                    ours = Some(c);
                    break;
                }
                Ok(_) => {}
                Err(_) => return AuthDecision::Malformed,
            }
        }
        let Some(credentials) = ours else {
            return AuthDecision::Challenge { stale: false };
        };
        // An anonymous caller is throttled by the user its credentials name, so that failures
        // under `anonymous` cannot lock every anonymous caller out.
        let claimed_user = match claimed {
            Claimed::User(user) => user.to_owned(),
            Claimed::AnyKnownUser => credentials.username.to_string(),
        };
        let user_key = format!("user:{claimed_user}");
        if matches!(claimed, Claimed::AnyKnownUser) && self.is_blocked(&user_key, now) {
            return AuthDecision::Throttled;
        }
        let secret = match self.users.get(credentials.username.as_ref()) {
            Some(StoredSecret::Password(p)) => Secret::Password(p),
            Some(StoredSecret::Ha1(h)) => Secret::Ha1(h),
            None => Secret::Unknown(self.unknown_kind),
        };
        let request = VerifyRequest {
            credentials: &credentials,
            method,
            secret,
            now_unix_secs: unix_secs(now),
            nonce_binding: &[],
            request_fingerprint,
        };
        let outcome = {
            let mut tracker = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
            self.verifier.verify(&request, Some(&mut tracker))
        };
        if outcome == Outcome::Ok {
            let nc = match (credentials.qop.is_some(), credentials.nc) {
                (true, Some(nc)) => nc,
                (true, None) => 0,
                (false, _) => 1,
            };
            self.tell(|| AuthEvent::NonceUsed {
                nonce: credentials.nonce.to_string(),
                nc,
                request: request_fingerprint,
                at_unix_secs: unix_secs(now),
            });
        }
        match outcome {
            Outcome::Ok if credentials.username != claimed_user.as_str() => AuthDecision::WrongUser,
            Outcome::Ok => AuthDecision::Authenticated {
                user: credentials.username.into_owned(),
            },
            Outcome::Replay {
                same_request: true, ..
            } if credentials.username == claimed_user.as_str() => AuthDecision::Replayed {
                user: credentials.username.into_owned(),
            },
            // A replay learns nothing but a new challenge; `stale` is only for a nonce that
            // expired, or one the full table forgot (it may never have been used).
            Outcome::Replay { forgotten, .. } => AuthDecision::Challenge { stale: forgotten },
            Outcome::Stale => AuthDecision::Challenge { stale: true },
            Outcome::BadNonce | Outcome::WrongRealm => AuthDecision::Challenge { stale: false },
            Outcome::Malformed(_) => AuthDecision::Malformed,
            Outcome::BadResponse | Outcome::UnknownUser => {
                let (by_source, by_user) = {
                    let mut throttle = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
                    let by_source = throttle.record_failure(&source_key, now);
                    (by_source, throttle.record_failure(&user_key, now))
                };
                for key in [source_key, user_key] {
                    self.tell(|| AuthEvent::Failure {
                        key,
                        at_unix_secs: unix_secs(now),
                    });
                }
                if by_source || by_user {
                    AuthDecision::Throttled
                } else {
                    AuthDecision::Failed
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_auth() -> Authenticator {
        Authenticator::new(
            "CISCO",
            &[
                ("8000".into(), "8000".into()),
                ("9000".into(), "9000".into()),
            ],
            false,
        )
    }

    fn answer(auth: &Authenticator, user: &str, password: &str, now: SystemTime) -> String {
        let challenge_text = auth.challenge(now, false);
        let challenge = dialtone_digest::Challenge::parse(&challenge_text).unwrap();
        dialtone_digest::answer(
            &challenge,
            &dialtone_digest::AnswerParams {
                username: user,
                password,
                method: "INVITE",
                uri: "sip:9000@127.0.0.1",
                cnonce: "abc",
                nc: 1,
            },
        )
        .unwrap()
        .to_string()
    }

    #[test]
    fn right_password_authenticates_and_no_credentials_challenge() {
        let auth = seed_auth();
        let now = SystemTime::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            auth.check(&[], "INVITE", Claimed::User("8000"), ip, now, 0),
            AuthDecision::Challenge { stale: false }
        );
        let value = answer(&auth, "8000", "8000", now);
        assert_eq!(
            auth.check(&[&value], "INVITE", Claimed::User("8000"), ip, now, 0),
            AuthDecision::Authenticated {
                user: "8000".into()
            }
        );
    }

    #[test]
    fn credentials_of_another_user_are_forbidden() {
        let auth = seed_auth();
        let now = SystemTime::now();
        let value = answer(&auth, "9000", "9000", now);
        assert_eq!(
            auth.check(
                &[&value],
                "INVITE",
                Claimed::User("8000"),
                "127.0.0.1".parse().unwrap(),
                now,
                0
            ),
            AuthDecision::WrongUser
        );
    }

    #[test]
    fn unknown_users_fail_like_wrong_passwords_and_get_throttled() {
        let auth = seed_auth();
        let now = SystemTime::now();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        let unknown = answer(&auth, "7777", "7777", now);
        assert_eq!(
            auth.check(&[&unknown], "INVITE", Claimed::User("7777"), ip, now, 0),
            AuthDecision::Failed
        );
        let wrong = answer(&auth, "8000", "nope", now);
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(
                auth.check(&[&wrong], "INVITE", Claimed::User("8000"), ip, now, 0),
                AuthDecision::Failed
            );
        }
        assert_eq!(
            auth.check(&[&wrong], "INVITE", Claimed::User("8000"), ip, now, 0),
            AuthDecision::Throttled
        );
        // Even the right password is refused while throttled, and accepted after the block.
        let right = answer(&auth, "8000", "8000", now);
        assert_eq!(
            auth.check(&[&right], "INVITE", Claimed::User("8000"), ip, now, 0),
            AuthDecision::Throttled
        );
        let later = now + BLOCK_DURATION + Duration::from_secs(1);
        let right = answer(&auth, "8000", "8000", later);
        assert_eq!(
            auth.check(&[&right], "INVITE", Claimed::User("8000"), ip, later, 0),
            AuthDecision::Authenticated {
                user: "8000".into()
            }
        );
    }

    #[test]
    fn expired_nonce_is_rechallenged_as_stale() {
        let auth = seed_auth();
        let then = SystemTime::now();
        let value = answer(&auth, "8000", "8000", then);
        let later = then + Duration::from_secs(NONCE_LIFETIME_SECS + 5);
        assert_eq!(
            auth.check(
                &[&value],
                "INVITE",
                Claimed::User("8000"),
                "127.0.0.1".parse().unwrap(),
                later,
                0
            ),
            AuthDecision::Challenge { stale: true }
        );
    }

    #[test]
    fn ha1_secrets_verify() {
        let ha1 = dialtone_digest::ha1(dialtone_digest::Algorithm::Md5, "8000", "CISCO", "8000");
        let auth = Authenticator::new("CISCO", &[("8000".into(), format!("ha1:{ha1}"))], true);
        let now = SystemTime::now();
        let value = answer(&auth, "8000", "8000", now);
        assert!(matches!(
            auth.check(
                &[&value],
                "INVITE",
                Claimed::User("8000"),
                "127.0.0.1".parse().unwrap(),
                now,
                0
            ),
            AuthDecision::Authenticated { .. }
        ));
    }

    #[test]
    fn throttle_window_forgets_old_failures() {
        let mut t = Throttle::default();
        let now = SystemTime::now();
        for i in 0..MAX_FAILURES {
            assert!(!t.record_failure("k", now + Duration::from_secs(i as u64)));
        }
        // The first failures left the window: still not blocked.
        assert!(!t.record_failure("k", now + FAILURE_WINDOW + Duration::from_secs(2)));
        assert!(!t.is_blocked("k", now + FAILURE_WINDOW + Duration::from_secs(2)));
    }

    /// Two nodes with one nonce key, each applying what the other tells it (as the cluster
    /// link does), in the order the events happened.
    fn cluster() -> (
        Authenticator,
        Authenticator,
        std::sync::mpsc::Receiver<(u8, AuthEvent)>,
    ) {
        let key: [u8; 32] = [7; 32];
        let users = [("8000".to_string(), "8000".to_string())];
        let a = Authenticator::new("CISCO", &users, false).rekeyed(key, 1);
        let b = Authenticator::new("CISCO", &users, false).rekeyed(key, 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let tx_b = std::sync::Mutex::new(tx.clone());
        let tx_a = std::sync::Mutex::new(tx);
        a.share_events(Box::new(move |e| {
            let _ = tx_a.lock().unwrap().send((b'a', e));
        }));
        b.share_events(Box::new(move |e| {
            let _ = tx_b.lock().unwrap().send((b'b', e));
        }));
        (a, b, rx)
    }

    fn deliver(
        a: &Authenticator,
        b: &Authenticator,
        rx: &std::sync::mpsc::Receiver<(u8, AuthEvent)>,
    ) {
        while let Ok((from, event)) = rx.try_recv() {
            match from {
                b'a' => b.apply_remote(&event),
                _ => a.apply_remote(&event),
            }
        }
    }

    #[test]
    fn in_a_cluster_a_challenge_from_one_node_is_answered_to_the_other_and_a_replay_is_refused() {
        let (a, b, rx) = cluster();
        let now = SystemTime::now();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let value = answer(&a, "8000", "8000", now);
        assert_eq!(
            b.check(&[&value], "INVITE", Claimed::User("8000"), ip, now, 1),
            AuthDecision::Authenticated {
                user: "8000".into()
            },
            "B verifies A's nonce"
        );
        deliver(&a, &b, &rx);
        assert_eq!(
            a.check(&[&value], "INVITE", Claimed::User("8000"), ip, now, 2),
            AuthDecision::Challenge { stale: false },
            "the same credentials replayed to A are refused"
        );
    }

    #[test]
    fn guesses_spread_over_two_nodes_lock_the_user_out_after_the_same_number_of_failures() {
        let (a, b, rx) = cluster();
        let now = SystemTime::now();
        let mut decisions = Vec::new();
        for guess in 0..=MAX_FAILURES {
            let node = if guess % 2 == 0 { &a } else { &b };
            // A new source each time: only the user's counter can lock them out.
            let ip: IpAddr = format!("127.0.0.{}", guess + 1).parse().unwrap();
            let value = answer(node, "8000", "wrong", now);
            decisions.push(node.check(&[&value], "INVITE", Claimed::User("8000"), ip, now, 0));
            deliver(&a, &b, &rx);
        }
        assert!(
            decisions[..MAX_FAILURES]
                .iter()
                .all(|d| *d == AuthDecision::Failed),
            "{decisions:?}"
        );
        assert_eq!(
            decisions[MAX_FAILURES],
            AuthDecision::Throttled,
            "{decisions:?}"
        );
        let right = answer(&a, "8000", "8000", now);
        let ip: IpAddr = "127.0.0.99".parse().unwrap();
        for node in [&a, &b] {
            assert_eq!(
                node.check(&[&right], "INVITE", Claimed::User("8000"), ip, now, 0),
                AuthDecision::Throttled,
                "locked out on both nodes"
            );
        }
    }
}
