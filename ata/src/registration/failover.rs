//! Which proxy a line uses, sans-IO (issue 21 item 5): the primary first, then its backups in
//! order, as a Cisco ATA's backup proxy works. [`Registration`](super::rules::Registration)
//! owns one [`ProxyList`] and asks it where REGISTERs go.
//!
//! - When the proxy in use stops answering (a REGISTER times out or cannot be sent) or
//!   answers 503, the next one is used at once ([`ProxyList::fail_over`]); after the last,
//!   the primary again, behind the registration's back-off (every proxy failed, RFC 3263
//!   section 4.3 has nothing left to try).
//! - While on a backup, the primary is asked with OPTIONS every `fallback_interval`
//!   ([`ProxyList::take_probe`]); when it answers (anything but 503), the line goes back to
//!   it ([`ProxyList::probe_answered`]) and registers there.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The proxies of one line and which one it uses.
#[derive(Debug, Clone)]
pub struct ProxyList {
    proxies: Vec<SocketAddr>,
    current: usize,
    fallback_interval: Duration,
    probe_at: Option<Instant>,
}

impl ProxyList {
    /// `proxies` in order of preference, at least one; `fallback_interval` between OPTIONS
    /// to the primary while on a backup.
    pub fn new(proxies: Vec<SocketAddr>, fallback_interval: Duration) -> Self {
        assert!(
            !proxies.is_empty(),
            "a line registers with at least one proxy"
        );
        ProxyList {
            proxies,
            current: 0,
            fallback_interval,
            probe_at: None,
        }
    }

    /// The proxy in use.
    pub fn current(&self) -> SocketAddr {
        self.proxies[self.current]
    }

    /// The primary.
    pub fn primary(&self) -> SocketAddr {
        self.proxies[0]
    }

    /// The proxy in use stopped answering: moves to the next one. True when there is one not
    /// yet tried in this round, to use at once; false when the round is over (the primary is
    /// in use again, after a back-off).
    pub fn fail_over(&mut self, now: Instant) -> bool {
        self.current = (self.current + 1) % self.proxies.len();
        if self.current == 0 {
            self.probe_at = None;
            return false;
        }
        self.probe_at = Some(now + self.fallback_interval);
        true
    }

    /// When [`ProxyList::take_probe`] wants to be called: only while on a backup.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probe_at
    }

    /// Where an OPTIONS probe goes now, if one is due; the next waits for its outcome.
    pub fn take_probe(&mut self, now: Instant) -> Option<SocketAddr> {
        match self.probe_at {
            Some(at) if at <= now && self.current != 0 => {
                self.probe_at = None;
                Some(self.primary())
            }
            _ => None,
        }
    }

    /// The primary answered the probe: it is used again.
    pub fn probe_answered(&mut self) {
        self.current = 0;
        self.probe_at = None;
    }

    /// The probe timed out or got 503: ask again after the interval.
    pub fn probe_failed(&mut self, now: Instant) {
        if self.current != 0 {
            self.probe_at = Some(now + self.fallback_interval);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn each_failure_moves_to_the_next_proxy_and_after_the_last_the_round_ends_at_the_primary() {
        let now = Instant::now();
        let mut list = ProxyList::new(vec![addr(1), addr(2), addr(3)], Duration::from_secs(30));
        assert_eq!(list.current(), addr(1));
        assert!(list.fail_over(now));
        assert_eq!(list.current(), addr(2));
        assert!(list.fail_over(now));
        assert_eq!(list.current(), addr(3));
        assert!(!list.fail_over(now), "every proxy failed");
        assert_eq!(list.current(), addr(1));
        assert_eq!(list.poll_timeout(), None, "no probe while on the primary");
    }

    #[test]
    fn a_single_proxy_never_fails_over() {
        let mut list = ProxyList::new(vec![addr(1)], Duration::from_secs(30));
        assert!(!list.fail_over(Instant::now()));
        assert_eq!(list.current(), addr(1));
    }

    #[test]
    fn on_a_backup_the_primary_is_probed_every_interval_until_it_answers() {
        let start = Instant::now();
        let interval = Duration::from_secs(30);
        let mut list = ProxyList::new(vec![addr(1), addr(2)], interval);
        list.fail_over(start);
        assert_eq!(list.poll_timeout(), Some(start + interval));
        assert_eq!(list.take_probe(start + interval / 2), None, "not yet");
        assert_eq!(list.take_probe(start + interval), Some(addr(1)));
        assert_eq!(list.poll_timeout(), None, "one probe at a time");
        list.probe_failed(start + interval * 2);
        assert_eq!(list.poll_timeout(), Some(start + interval * 3));
        assert_eq!(list.take_probe(start + interval * 3), Some(addr(1)));
        list.probe_answered();
        assert_eq!(list.current(), addr(1));
        assert_eq!(list.poll_timeout(), None);
    }
}
