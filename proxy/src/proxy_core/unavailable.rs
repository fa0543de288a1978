//! Next hops that asked not to be sent requests for a while: a 503 (Service Unavailable) with
//! `Retry-After` (RFC 3261 section 21.5.4: the client "SHOULD NOT forward any other requests
//! to that server for the duration specified in the Retry-After header field"). The addresses
//! DNS gives for a next hop are tried without them (`ProxyCore::handle_resolved`), so a server
//! in maintenance is skipped in favour of its backups instead of being asked, and refusing,
//! request after request.
//!
//! Pure apart from the table: time is passed in. The table is bounded, since the addresses come
//! from responses that any next hop can send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The longest pause a next hop can ask for. Retry-After has no upper bound, and a typo in a
/// server's configuration should not take it out of service for days.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// The most addresses held: a proxy has few next-hop servers, so a full table means something
/// sends 503s from many addresses, and further ones are not remembered.
pub const MAX_ENTRIES: usize = 1024;

/// Addresses and the instant until which they are not sent new requests.
#[derive(Debug, Default)]
pub struct UnavailableHops {
    until: DashMap<SocketAddr, Instant>,
}

impl UnavailableHops {
    /// `addr` answered 503 with `Retry-After: seconds` at `now`.
    pub fn pause(&self, addr: SocketAddr, seconds: u64, now: Instant) {
        if seconds == 0 {
            return;
        }
        if self.until.len() >= MAX_ENTRIES {
            self.until.retain(|_, until| *until > now);
            if self.until.len() >= MAX_ENTRIES {
                return;
            }
        }
        let until = now + Duration::from_secs(seconds).min(MAX_PAUSE);
        self.until
            .entry(addr)
            .and_modify(|held| *held = (*held).max(until))
            .or_insert(until);
    }

    /// How long `addr` is still paused at `now`; `None` when it may be used.
    pub fn remaining(&self, addr: &SocketAddr, now: Instant) -> Option<Duration> {
        let until = *self.until.get(addr)?;
        if until > now {
            return Some(until - now);
        }
        self.until.remove_if(addr, |_, until| *until <= now);
        None
    }
}

/// The delta-seconds of a `Retry-After` value (RFC 3261 section 20.33: `delta-seconds
/// [ comment ] *( SEMI retry-param )`), `None` when it does not start with them.
pub fn retry_after_seconds(value: &str) -> Option<u64> {
    let value = value.trim_start();
    let digits = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_paused_address_is_unavailable_until_its_retry_after_has_passed() {
        let hops = UnavailableHops::default();
        let t0 = Instant::now();
        let a = addr("192.0.2.1:5060");
        hops.pause(a, 30, t0);
        assert_eq!(hops.remaining(&a, t0), Some(Duration::from_secs(30)));
        assert_eq!(
            hops.remaining(&a, t0 + Duration::from_secs(29)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(hops.remaining(&a, t0 + Duration::from_secs(30)), None);
        assert_eq!(hops.until.len(), 0, "an expired pause is forgotten");
        assert_eq!(hops.remaining(&addr("192.0.2.2:5060"), t0), None);
    }

    #[test]
    fn pauses_are_capped_never_shortened_and_zero_means_none() {
        let hops = UnavailableHops::default();
        let t0 = Instant::now();
        let a = addr("192.0.2.1:5060");
        hops.pause(a, 86_400, t0);
        assert_eq!(hops.remaining(&a, t0), Some(MAX_PAUSE));
        hops.pause(a, 10, t0);
        assert_eq!(hops.remaining(&a, t0), Some(MAX_PAUSE), "not shortened");
        let b = addr("192.0.2.2:5060");
        hops.pause(b, 0, t0);
        assert_eq!(hops.remaining(&b, t0), None);
    }

    #[test]
    fn a_full_table_drops_expired_pauses_and_then_refuses_new_ones() {
        let hops = UnavailableHops::default();
        let t0 = Instant::now();
        for port in 0..MAX_ENTRIES as u16 {
            hops.pause(SocketAddr::from(([192, 0, 2, 1], port)), 10, t0);
        }
        let late = addr("192.0.2.9:5060");
        hops.pause(late, 10, t0);
        assert_eq!(hops.remaining(&late, t0), None, "no room");
        let later = t0 + Duration::from_secs(11);
        hops.pause(late, 10, later);
        assert_eq!(hops.remaining(&late, later), Some(Duration::from_secs(10)));
        assert_eq!(hops.until.len(), 1, "the expired ones made room");
    }

    #[test]
    fn retry_after_values_give_their_delta_seconds() {
        assert_eq!(retry_after_seconds("120"), Some(120));
        assert_eq!(retry_after_seconds(" 18000;duration=3600"), Some(18000));
        assert_eq!(retry_after_seconds("120 (I'm in a meeting)"), Some(120));
        assert_eq!(retry_after_seconds("soon"), None);
        assert_eq!(retry_after_seconds(""), None);
        assert_eq!(retry_after_seconds("99999999999999999999999"), None);
    }
}
