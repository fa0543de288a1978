//! From raw handset contacts to telephone events: [`HandsetInput`] debounces the hook
//! switch and the keys and tells a hook flash from a hang-up. Pure, with time passed in:
//! `device.rs` feeds it the snapshots the HID reader timestamps and asks it for
//! [`HandsetEvent`]s on every 20 ms line tick.
//!
//! A mechanical hook switch chatters for a few milliseconds when it moves, so a level
//! counts only once it has held [`DEBOUNCE`]. A debounced on-hook is not reported at once:
//! if the handset is lifted again within [`FLASH_MAX`] the whole dip is a hook flash (the
//! Cisco ATA 186 and most exchanges take up to about 600 ms as a flash, longer as a
//! hang-up), so the on-hook is held back until that time has passed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::line::HandsetEvent;

/// How long a contact must hold a level before it counts.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// The longest on-hook dip taken as a flash.
pub const FLASH_MAX: Duration = Duration::from_millis(600);

/// One debounced contact.
#[derive(Debug, Clone, Copy)]
struct Contact {
    stable: bool,
    raw: bool,
    since: Instant,
}

impl Contact {
    fn new(now: Instant) -> Contact {
        Contact {
            stable: false,
            raw: false,
            since: now,
        }
    }

    fn sample(&mut self, now: Instant, level: bool) {
        if level != self.raw {
            self.raw = level;
            self.since = now;
        }
    }

    /// The new stable level, when the raw one has held long enough to become it.
    fn settle(&mut self, now: Instant) -> Option<bool> {
        if self.raw != self.stable && now.saturating_duration_since(self.since) >= DEBOUNCE {
            self.stable = self.raw;
            return Some(self.stable);
        }
        None
    }

    fn deadline(&self) -> Option<Instant> {
        (self.raw != self.stable).then_some(self.since + DEBOUNCE)
    }
}

/// The handset's debounced hook and keys.
#[derive(Debug, Clone)]
pub struct HandsetInput {
    hook: Contact,
    /// What the line was last told: `true` = off-hook.
    reported_off_hook: bool,
    /// A debounced on-hook not yet reported: flash if lifted before this instant.
    dip_until: Option<Instant>,
    flash_button: Contact,
    keys: HashMap<char, Contact>,
    events: std::collections::VecDeque<HandsetEvent>,
}

impl HandsetInput {
    /// On-hook, no key held.
    pub fn new(now: Instant) -> HandsetInput {
        HandsetInput {
            hook: Contact::new(now),
            reported_off_hook: false,
            dip_until: None,
            flash_button: Contact::new(now),
            keys: HashMap::new(),
            events: Default::default(),
        }
    }

    /// The hook switch's raw level at `now` (`true` = lifted).
    pub fn hook(&mut self, now: Instant, off_hook: bool) {
        self.handle_timeout(now);
        self.hook.sample(now, off_hook);
    }

    /// The handset's own flash button, raw.
    pub fn flash_button(&mut self, now: Instant, held: bool) {
        self.handle_timeout(now);
        self.flash_button.sample(now, held);
    }

    /// The keys held at `now`, raw; keys not listed are up.
    pub fn keys(&mut self, now: Instant, held: &[char]) {
        self.handle_timeout(now);
        for key in held {
            self.keys
                .entry(*key)
                .or_insert_with(|| Contact::new(now))
                .sample(now, true);
        }
        for (key, contact) in self.keys.iter_mut() {
            if !held.contains(key) {
                contact.sample(now, false);
            }
        }
    }

    /// Settles whatever has held long enough by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(off_hook) = self.hook.settle(now) {
            self.hook_settled(off_hook, now);
        }
        if self.dip_until.is_some_and(|until| now >= until) {
            self.dip_until = None;
            self.reported_off_hook = false;
            self.events.push_back(HandsetEvent::OnHook);
        }
        if self.flash_button.settle(now) == Some(true) && self.reported_off_hook {
            self.events.push_back(HandsetEvent::Flash);
        }
        let mut pressed: Vec<char> = self
            .keys
            .iter_mut()
            .filter_map(|(key, contact)| (contact.settle(now) == Some(true)).then_some(*key))
            .collect();
        // Two keys settling in one call: a stable order, so tests and logs repeat.
        pressed.sort_unstable();
        self.events
            .extend(pressed.into_iter().map(HandsetEvent::Key));
    }

    fn hook_settled(&mut self, off_hook: bool, now: Instant) {
        match (off_hook, self.dip_until.take()) {
            (true, Some(_)) => self.events.push_back(HandsetEvent::Flash),
            (true, None) if !self.reported_off_hook => {
                self.reported_off_hook = true;
                self.events.push_back(HandsetEvent::OffHook);
            }
            (false, None) if self.reported_off_hook => {
                // The dip began when the contact opened, not when it settled.
                self.dip_until = Some(self.hook.since.min(now) + FLASH_MAX);
            }
            _ => {}
        }
    }

    /// The next event for the line.
    pub fn poll_event(&mut self) -> Option<HandsetEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] next has something to settle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.hook.deadline(),
            self.dip_until,
            self.flash_button.deadline(),
        ]
        .into_iter()
        .chain(self.keys.values().map(Contact::deadline))
        .flatten()
        .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(start: Instant, n: u64) -> Instant {
        start + Duration::from_millis(n)
    }

    /// Runs the line's 20 ms tick from `from` to `to` ms, collecting events.
    fn ticks(input: &mut HandsetInput, start: Instant, from: u64, to: u64) -> Vec<HandsetEvent> {
        let mut events = Vec::new();
        for t in (from..=to).step_by(20) {
            input.handle_timeout(ms(start, t));
            events.extend(std::iter::from_fn(|| input.poll_event()));
        }
        events
    }

    fn lifted(start: Instant) -> HandsetInput {
        let mut input = HandsetInput::new(start);
        input.hook(start, true);
        assert_eq!(ticks(&mut input, start, 0, 100), [HandsetEvent::OffHook]);
        input
    }

    #[test]
    fn a_bouncing_hook_switch_gives_one_off_hook() {
        let start = Instant::now();
        let mut input = HandsetInput::new(start);
        for (t, level) in [(0, true), (3, false), (5, true), (9, false), (12, true)] {
            input.hook(ms(start, t), level);
        }
        assert_eq!(ticks(&mut input, start, 20, 40), []);
        assert_eq!(ticks(&mut input, start, 60, 400), [HandsetEvent::OffHook]);
    }

    #[test]
    fn chatter_shorter_than_the_debounce_is_ignored() {
        let start = Instant::now();
        let mut input = lifted(start);
        input.hook(ms(start, 200), false);
        input.hook(ms(start, 210), true);
        assert_eq!(ticks(&mut input, start, 220, 2000), []);
    }

    #[test]
    fn a_held_key_gives_one_digit() {
        let start = Instant::now();
        let mut input = lifted(start);
        input.keys(ms(start, 200), &['5']);
        input.keys(ms(start, 205), &[]);
        input.keys(ms(start, 208), &['5']);
        for t in (220..1500).step_by(8) {
            input.keys(ms(start, t), &['5']);
        }
        assert_eq!(
            ticks(&mut input, start, 1500, 1600),
            [HandsetEvent::Key('5')]
        );
        let mut input = lifted(start);
        input.keys(ms(start, 200), &['5']);
        assert_eq!(
            ticks(&mut input, start, 200, 1500),
            [HandsetEvent::Key('5')]
        );
        input.keys(ms(start, 1500), &[]);
        input.keys(ms(start, 1600), &['5']);
        assert_eq!(
            ticks(&mut input, start, 1600, 1700),
            [HandsetEvent::Key('5')]
        );
    }

    #[test]
    fn a_short_dip_is_a_flash_and_a_long_one_is_a_hang_up() {
        let start = Instant::now();
        let mut input = lifted(start);
        input.hook(ms(start, 1000), false);
        assert_eq!(ticks(&mut input, start, 1000, 1400), []);
        input.hook(ms(start, 1400), true);
        assert_eq!(ticks(&mut input, start, 1400, 3000), [HandsetEvent::Flash]);

        input.hook(ms(start, 3000), false);
        let events = ticks(&mut input, start, 3000, 3580);
        assert_eq!(events, [], "held back while it could still be a flash");
        assert_eq!(ticks(&mut input, start, 3600, 3700), [HandsetEvent::OnHook]);
        input.hook(ms(start, 4000), true);
        assert_eq!(
            ticks(&mut input, start, 4000, 4100),
            [HandsetEvent::OffHook]
        );
    }

    #[test]
    fn the_flash_button_flashes_only_off_hook() {
        let start = Instant::now();
        let mut input = HandsetInput::new(start);
        input.flash_button(start, true);
        assert_eq!(ticks(&mut input, start, 0, 100), []);
        let mut input = lifted(start);
        input.flash_button(ms(start, 200), true);
        assert_eq!(ticks(&mut input, start, 200, 1000), [HandsetEvent::Flash]);
        assert!(input.poll_timeout().is_none());
    }
}
