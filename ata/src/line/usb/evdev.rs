//! The fallback input path: a Linux input device (`/dev/input/event*`), for handsets whose
//! keypad the kernel's hid-input already turned into key events, or when hidraw is not
//! readable. Each read gives `struct input_event` records (linux/input.h); [`parse_event`]
//! decodes one and [`EvdevKeys`] turns key presses and releases into the raw snapshots
//! `debounce.rs` takes.
//!
//! The kernel maps the Telephony page's keys (HID 0x0B, 0xB0..0xBB) to `KEY_NUMERIC_0`..
//! `KEY_NUMERIC_POUND`; most kernels do not map the Hook Switch (0x20) at all, which is why
//! hidraw is the primary path. Where a driver does report the hook, it is as `KEY_PHONE`
//! held while off-hook, and that is how it is read here: value 1 lifted, 0 put down.

use std::time::Instant;

use super::debounce::HandsetInput;

/// `EV_KEY`.
const EV_KEY: u16 = 0x01;
/// `KEY_PHONE`.
pub const KEY_PHONE: u16 = 169;

/// Bytes of one `struct input_event`: a `struct timeval` (two longs) then type, code, value.
pub const EVENT_SIZE: usize = 2 * std::mem::size_of::<std::os::raw::c_long>() + 8;

/// One key event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    /// The key code (input-event-codes.h).
    pub code: u16,
    /// 0 released, 1 pressed, 2 autorepeat.
    pub value: i32,
}

/// A key event from one record, or `None` for other event types.
pub fn parse_event(record: &[u8]) -> Option<KeyEvent> {
    let at = EVENT_SIZE.checked_sub(8)?;
    let field = record.get(at..at + 8)?;
    let kind = u16::from_ne_bytes([field[0], field[1]]);
    let code = u16::from_ne_bytes([field[2], field[3]]);
    let value = i32::from_ne_bytes([field[4], field[5], field[6], field[7]]);
    (kind == EV_KEY).then_some(KeyEvent { code, value })
}

/// A keypad key for a key code: the top-row digits, the numeric pad, and the telephony
/// keys (`KEY_NUMERIC_*`) the kernel gives handsets.
pub fn keypad_key(code: u16) -> Option<char> {
    Some(match code {
        2..=10 => char::from(b'1' + (code - 2) as u8), // KEY_1..KEY_9
        11 | 82 => '0',                                // KEY_0, KEY_KP0
        79..=81 => char::from(b'1' + (code - 79) as u8), // KEY_KP1..KEY_KP3
        75..=77 => char::from(b'4' + (code - 75) as u8), // KEY_KP4..KEY_KP6
        71..=73 => char::from(b'7' + (code - 71) as u8), // KEY_KP7..KEY_KP9
        55 => '*',                                     // KEY_KPASTERISK
        0x200..=0x209 => char::from(b'0' + (code - 0x200) as u8), // KEY_NUMERIC_0..9
        0x20a => '*',                                  // KEY_NUMERIC_STAR
        0x20b => '#',                                  // KEY_NUMERIC_POUND
        _ => return None,
    })
}

/// The keys held, as evdev presses and releases change them.
#[derive(Debug, Default)]
pub struct EvdevKeys {
    held: Vec<char>,
}

impl EvdevKeys {
    /// Applies one key event to `input` at `now`.
    pub fn apply(&mut self, event: KeyEvent, now: Instant, input: &mut HandsetInput) {
        // Autorepeat (2) is the kernel's, not the handset's: a held key is one digit.
        if event.value == 2 {
            return;
        }
        let down = event.value == 1;
        if event.code == KEY_PHONE {
            input.hook(now, down);
            return;
        }
        let Some(key) = keypad_key(event.code) else {
            return;
        };
        self.held.retain(|k| *k != key);
        if down {
            self.held.push(key);
        }
        input.keys(now, &self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::HandsetEvent;
    use std::time::Duration;

    fn record(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut bytes = vec![0u8; EVENT_SIZE - 8];
        bytes.extend(kind.to_ne_bytes());
        bytes.extend(code.to_ne_bytes());
        bytes.extend(value.to_ne_bytes());
        bytes
    }

    #[test]
    fn key_records_decode_and_other_event_types_do_not() {
        assert_eq!(
            parse_event(&record(1, 0x20b, 1)),
            Some(KeyEvent {
                code: 0x20b,
                value: 1
            })
        );
        assert_eq!(parse_event(&record(0, 0, 0)), None, "EV_SYN");
        assert_eq!(parse_event(&[0; 4]), None, "short read");
    }

    #[test]
    fn telephony_and_keyboard_codes_map_to_keypad_keys() {
        assert_eq!(keypad_key(2), Some('1'));
        assert_eq!(keypad_key(11), Some('0'));
        assert_eq!(keypad_key(73), Some('9'));
        assert_eq!(keypad_key(0x205), Some('5'));
        assert_eq!(keypad_key(0x20b), Some('#'));
        assert_eq!(keypad_key(30), None, "KEY_A is not on a keypad");
    }

    #[test]
    fn key_phone_is_the_hook_level_and_autorepeat_is_not_a_second_digit() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut input = HandsetInput::new(start);
        let mut keys = EvdevKeys::default();
        keys.apply(
            KeyEvent {
                code: KEY_PHONE,
                value: 1,
            },
            at(0),
            &mut input,
        );
        keys.apply(
            KeyEvent {
                code: 0x203,
                value: 1,
            },
            at(100),
            &mut input,
        );
        keys.apply(
            KeyEvent {
                code: 0x203,
                value: 2,
            },
            at(600),
            &mut input,
        );
        keys.apply(
            KeyEvent {
                code: 0x203,
                value: 0,
            },
            at(700),
            &mut input,
        );
        keys.apply(
            KeyEvent {
                code: KEY_PHONE,
                value: 0,
            },
            at(1000),
            &mut input,
        );
        input.handle_timeout(at(2000));
        let events: Vec<_> = std::iter::from_fn(|| input.poll_event()).collect();
        assert_eq!(
            events,
            [
                HandsetEvent::OffHook,
                HandsetEvent::Key('3'),
                HandsetEvent::OnHook
            ]
        );
    }
}
