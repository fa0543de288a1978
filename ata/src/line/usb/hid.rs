//! The handset's hook switch and keypad from raw HID input reports (`/dev/hidraw*`).
//!
//! A USB telephony handset describes its reports in its report descriptor (HID 1.11
//! section 6.2.2) and reports the hook as the Telephony page's Hook Switch (HID Usage
//! Tables, page 0x0B, usage 0x20; 1 = off-hook), which the kernel's hid-input does not turn
//! into a key event; so we read the raw reports. [`ReportLayout::parse`] is a minimal
//! descriptor parser: it follows Usage Page, Report Size/Count/ID, Logical Minimum/Maximum,
//! Push/Pop, Usage and Usage Minimum/Maximum to find the bit position of every Input field
//! on the Telephony page. [`ReportLayout::decode`] turns one report into a [`Telephony`]
//! snapshot (hook, flash, keys held), which `debounce.rs` turns into events.

/// The Telephony usage page.
pub const PAGE_TELEPHONY: u16 = 0x0B;
/// Hook Switch (on/off control: 1 while the handset is lifted).
pub const USAGE_HOOK_SWITCH: u16 = 0x20;
/// Flash (momentary): a handset's own flash/recall button.
pub const USAGE_FLASH: u16 = 0x21;
/// Phone Key 0; keys 1 to 9, star and pound follow (0xB0..0xBB).
pub const USAGE_PHONE_KEY_0: u16 = 0xB0;

/// What one Input field carries.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FieldKind {
    /// One usage, its value the control's state.
    Variable(u16),
    /// A key index: the value picks a usage from `usages` (value - logical minimum).
    Array { usages: Vec<u16>, logical_min: i32 },
}

/// One Telephony Input field: where it sits in which report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    report_id: u8,
    bit_offset: usize,
    bit_size: usize,
    kind: FieldKind,
}

/// Where a device puts its Telephony inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportLayout {
    fields: Vec<Field>,
    /// Whether reports start with a report ID byte.
    numbered: bool,
}

/// The controls' state in one report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telephony {
    /// Whether this report carries Telephony fields at all (else the rest says nothing).
    pub carried: bool,
    /// The hook switch, when this report carries it: `true` = off-hook.
    pub off_hook: Option<bool>,
    /// The flash button is held.
    pub flash: bool,
    /// Keypad keys held (`0`-`9`, `*`, `#`).
    pub keys: Vec<char>,
}

/// The global items, saved and restored by Push and Pop.
#[derive(Debug, Clone, Copy, Default)]
struct Globals {
    usage_page: u16,
    logical_min: i32,
    report_size: usize,
    report_count: usize,
    report_id: u8,
}

/// Why a descriptor could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptorError {
    /// An item runs past the end of the descriptor.
    Truncated(usize),
    /// No Input field on the Telephony page: not a handset.
    NoTelephony,
}

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DescriptorError::Truncated(at) => write!(f, "report descriptor cut at byte {at}"),
            DescriptorError::NoTelephony => {
                write!(f, "report descriptor has no Telephony (page 0x0B) inputs")
            }
        }
    }
}

impl ReportLayout {
    /// Finds the Telephony inputs in a report descriptor.
    pub fn parse(descriptor: &[u8]) -> Result<ReportLayout, DescriptorError> {
        let mut globals = Globals::default();
        let mut stack: Vec<Globals> = Vec::new();
        // Local items: 32-bit usages (page in the high half when the item is 4 bytes).
        let mut usages: Vec<u32> = Vec::new();
        let mut usage_min: Option<u32> = None;
        let mut offsets: std::collections::HashMap<u8, usize> = Default::default();
        let mut layout = ReportLayout::default();
        let mut at = 0;
        while at < descriptor.len() {
            let prefix = descriptor[at];
            if prefix == 0xFE {
                // Long item (HID 1.11 section 6.2.2.3): size byte, tag byte, data; none defined.
                let size = usize::from(
                    *descriptor
                        .get(at + 1)
                        .ok_or(DescriptorError::Truncated(at))?,
                );
                at += 3 + size;
                continue;
            }
            let size = match prefix & 0x03 {
                3 => 4,
                n => usize::from(n),
            };
            let data = descriptor
                .get(at + 1..at + 1 + size)
                .ok_or(DescriptorError::Truncated(at))?;
            let unsigned = data
                .iter()
                .rev()
                .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
            let signed = match size {
                1 => i32::from(data[0] as i8),
                2 => i32::from(i16::from_le_bytes([data[0], data[1]])),
                4 => unsigned as i32,
                _ => 0,
            };
            let full_usage = |value: u32, page: u16| {
                if size == 4 {
                    value
                } else {
                    (u32::from(page) << 16) | value
                }
            };
            match (prefix >> 2) & 0x03 {
                // Main items.
                0 => {
                    let tag = prefix >> 4;
                    if tag == 0x8 {
                        // Input: bit 0 constant, bit 1 variable (else array).
                        let offset = offsets.entry(globals.report_id).or_insert(0);
                        let constant = unsigned & 0x01 != 0;
                        let variable = unsigned & 0x02 != 0;
                        if !constant {
                            layout.add_input(&globals, *offset, variable, &usages);
                        }
                        *offset += globals.report_size * globals.report_count;
                    } else if tag == 0x9 || tag == 0xB {
                        // Output and Feature reports are counted apart from Input ones; the
                        // handset's LEDs and ringer live there and do not concern us yet.
                    }
                    usages.clear();
                    usage_min = None;
                }
                // Global items.
                1 => match prefix >> 4 {
                    0x0 => globals.usage_page = unsigned as u16,
                    0x1 => globals.logical_min = signed,
                    0x7 => globals.report_size = unsigned as usize,
                    0x8 => {
                        globals.report_id = unsigned as u8;
                        layout.numbered = true;
                    }
                    0x9 => globals.report_count = unsigned as usize,
                    0xA => stack.push(globals),
                    0xB => globals = stack.pop().unwrap_or(globals),
                    _ => {}
                },
                // Local items.
                2 => match prefix >> 4 {
                    0x0 => usages.push(full_usage(unsigned, globals.usage_page)),
                    0x1 => usage_min = Some(full_usage(unsigned, globals.usage_page)),
                    0x2 => {
                        if let Some(min) = usage_min.take() {
                            let max = full_usage(unsigned, globals.usage_page);
                            // A range longer than a page is a corrupt descriptor; cap it.
                            usages.extend((min..=max).take(0x1_0000));
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
            at += 1 + size;
        }
        if layout.fields.is_empty() {
            return Err(DescriptorError::NoTelephony);
        }
        Ok(layout)
    }

    fn add_input(&mut self, globals: &Globals, offset: usize, variable: bool, usages: &[u32]) {
        let telephony = |usage: u32| (usage >> 16) as u16 == PAGE_TELEPHONY;
        if variable {
            for i in 0..globals.report_count {
                // Fewer usages than fields: the last usage applies to the rest (HID 6.2.2.8).
                let Some(&usage) = usages.get(i).or(usages.last()) else {
                    return;
                };
                if telephony(usage) {
                    self.fields.push(Field {
                        report_id: globals.report_id,
                        bit_offset: offset + i * globals.report_size,
                        bit_size: globals.report_size,
                        kind: FieldKind::Variable(usage as u16),
                    });
                }
            }
        } else if usages.iter().any(|&u| telephony(u)) {
            let list: Vec<u16> = usages
                .iter()
                .map(|&u| if telephony(u) { u as u16 } else { 0 })
                .collect();
            for i in 0..globals.report_count {
                self.fields.push(Field {
                    report_id: globals.report_id,
                    bit_offset: offset + i * globals.report_size,
                    bit_size: globals.report_size,
                    kind: FieldKind::Array {
                        usages: list.clone(),
                        logical_min: globals.logical_min,
                    },
                });
            }
        }
    }

    /// Whether the device reports a hook switch (what auto-detection looks for).
    pub fn has_hook_switch(&self) -> bool {
        self.fields
            .iter()
            .any(|f| f.kind == FieldKind::Variable(USAGE_HOOK_SWITCH))
    }

    /// The Telephony controls in one input report as read from hidraw (with its report ID
    /// byte first when the device numbers its reports). A report without Telephony
    /// fields gives an empty snapshot with `off_hook: None`.
    pub fn decode(&self, report: &[u8]) -> Telephony {
        let (id, body) = match (self.numbered, report.split_first()) {
            (true, Some((&id, body))) => (id, body),
            _ => (0, report),
        };
        let mut state = Telephony::default();
        let mut carried = false;
        for field in self.fields.iter().filter(|f| f.report_id == id) {
            let Some(value) = bits(body, field.bit_offset, field.bit_size) else {
                continue;
            };
            carried = true;
            let usage = match &field.kind {
                FieldKind::Variable(USAGE_HOOK_SWITCH) => {
                    state.off_hook = Some(value != 0);
                    continue;
                }
                FieldKind::Variable(usage) if value != 0 => *usage,
                FieldKind::Variable(_) => continue,
                FieldKind::Array {
                    usages,
                    logical_min,
                } => {
                    let index = i64::from(value) - i64::from(*logical_min);
                    match usize::try_from(index).ok().and_then(|i| usages.get(i)) {
                        Some(&usage) => usage,
                        None => continue,
                    }
                }
            };
            if usage == USAGE_FLASH {
                state.flash = true;
            } else if let Some(key) = phone_key(usage) {
                if !state.keys.contains(&key) {
                    state.keys.push(key);
                }
            }
        }
        state.carried = carried;
        state
    }
}

/// Phone Key 0..9, Star, Pound (usages 0xB0..0xBB) as keypad characters.
fn phone_key(usage: u16) -> Option<char> {
    match usage.checked_sub(USAGE_PHONE_KEY_0)? {
        n @ 0..=9 => Some(char::from(b'0' + n as u8)),
        10 => Some('*'),
        11 => Some('#'),
        _ => None,
    }
}

/// `size` bits (at most 32) from bit `offset`, little-endian as HID packs them.
fn bits(bytes: &[u8], offset: usize, size: usize) -> Option<u32> {
    if size == 0 || size > 32 || offset + size > bytes.len() * 8 {
        return None;
    }
    let mut value = 0u64;
    for i in 0..size {
        let bit = offset + i;
        if bytes[bit / 8] >> (bit % 8) & 1 == 1 {
            value |= 1 << i;
        }
    }
    Some(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handset like the common USB "VoIP phone" kind: report 1 is a consumer-page volume
    /// pair (which we must skip over), report 2 the telephony controls, report 3 an LED
    /// output (which must not shift the input offsets).
    const HANDSET: &[u8] = &[
        0x05, 0x0C, //       Usage Page (Consumer)
        0x09, 0x01, //       Usage (Consumer Control)
        0xA1, 0x01, //       Collection (Application)
        0x85, 0x01, //         Report ID (1)
        0x15, 0x00, //         Logical Minimum (0)
        0x25, 0x01, //         Logical Maximum (1)
        0x09, 0xE9, //         Usage (Volume Increment)
        0x09, 0xEA, //         Usage (Volume Decrement)
        0x75, 0x01, //         Report Size (1)
        0x95, 0x02, //         Report Count (2)
        0x81, 0x02, //         Input (Data, Variable, Absolute)
        0x95, 0x06, //         Report Count (6)
        0x81, 0x03, //         Input (Constant): padding
        0xC0, //             End Collection
        0x05, 0x0B, //       Usage Page (Telephony)
        0x09, 0x05, //       Usage (Headset)
        0xA1, 0x01, //       Collection (Application)
        0x85, 0x02, //         Report ID (2)
        0x15, 0x00, //         Logical Minimum (0)
        0x25, 0x01, //         Logical Maximum (1)
        0x09, 0x20, //         Usage (Hook Switch)
        0x09, 0x21, //         Usage (Flash)
        0x75, 0x01, //         Report Size (1)
        0x95, 0x02, //         Report Count (2)
        0x81, 0x06, //         Input (Data, Variable, Relative)
        0x95, 0x06, //         Report Count (6)
        0x81, 0x03, //         Input (Constant): padding to the byte
        0x19, 0xB0, //         Usage Minimum (Phone Key 0)
        0x29, 0xBB, //         Usage Maximum (Phone Key Pound)
        0x15, 0x01, //         Logical Minimum (1): 0 means no key
        0x25, 0x0C, //         Logical Maximum (12)
        0x75, 0x04, //         Report Size (4)
        0x95, 0x02, //         Report Count (2): two keys at once
        0x81, 0x00, //         Input (Data, Array)
        0x85, 0x03, //         Report ID (3)
        0x05, 0x08, //         Usage Page (LEDs)
        0x09, 0x17, //         Usage (Off-Hook)
        0x75, 0x01, //         Report Size (1)
        0x95, 0x08, //         Report Count (8)
        0x91, 0x02, //         Output (Data, Variable)
        0xC0, //             End Collection
    ];

    #[test]
    fn the_descriptor_puts_hook_and_keys_where_the_handset_sends_them() {
        let layout = ReportLayout::parse(HANDSET).expect("telephony");
        assert!(layout.has_hook_switch());
        // Report 2: hook bit 0, flash bit 1, keys in the second byte's nibbles.
        assert_eq!(
            layout.decode(&[0x02, 0b01, 0x00]),
            Telephony {
                carried: true,
                off_hook: Some(true),
                ..Telephony::default()
            }
        );
        let lifted_dialling_5 = layout.decode(&[0x02, 0b01, 0x06]);
        assert_eq!(lifted_dialling_5.keys, ['5']);
        assert_eq!(layout.decode(&[0x02, 0b00, 0xCB]).keys, ['*', '#']);
        let flash = layout.decode(&[0x02, 0b11, 0x00]);
        assert!(flash.flash);
        assert_eq!(flash.off_hook, Some(true));
        assert_eq!(layout.decode(&[0x02, 0b00, 0x00]).off_hook, Some(false));
    }

    #[test]
    fn reports_of_other_pages_say_nothing_about_the_hook() {
        let layout = ReportLayout::parse(HANDSET).expect("telephony");
        assert_eq!(layout.decode(&[0x01, 0b01]), Telephony::default());
        assert_eq!(layout.decode(&[0x02]), Telephony::default(), "short report");
    }

    #[test]
    fn an_unnumbered_bitmap_keypad_with_extended_usages_decodes() {
        const BITMAP: &[u8] = &[
            0x05, 0x0B, //     Usage Page (Telephony)
            0x09, 0x01, //     Usage (Phone)
            0xA1, 0x01, //     Collection (Application)
            0x0B, 0x20, 0x00, 0x0B, 0x00, // Usage (Telephony: Hook Switch), 4-byte form
            0x75, 0x01, //       Report Size (1)
            0x95, 0x01, //       Report Count (1)
            0x81, 0x02, //       Input (Variable)
            0x19, 0xB0, //       Usage Minimum (Phone Key 0)
            0x29, 0xBB, //       Usage Maximum (Phone Key Pound)
            0x95, 0x0C, //       Report Count (12): one bit per key
            0x81, 0x02, //       Input (Variable)
            0x95, 0x03, //       Report Count (3)
            0x81, 0x01, //       Input (Constant)
            0xC0, //           End Collection
        ];
        let layout = ReportLayout::parse(BITMAP).expect("telephony");
        // Bit 0 hook; bits 1..12 keys 0..#: key 7 is bit 8.
        let state = layout.decode(&[0b0000_0001, 0b0000_0001]);
        assert_eq!(state.off_hook, Some(true));
        assert_eq!(state.keys, ['7']);
    }

    #[test]
    fn a_keyboard_is_not_a_handset_and_a_cut_descriptor_is_an_error() {
        let keyboard = [
            0x05, 0x01, 0x09, 0x06, 0xA1, 0x01, 0x05, 0x07, 0x19, 0xE0, 0x29, 0xE7, 0x75, 0x01,
            0x95, 0x08, 0x81, 0x02, 0xC0,
        ];
        assert_eq!(
            ReportLayout::parse(&keyboard),
            Err(DescriptorError::NoTelephony)
        );
        assert_eq!(
            ReportLayout::parse(&HANDSET[..HANDSET.len() - 2]),
            Err(DescriptorError::Truncated(HANDSET.len() - 3))
        );
    }
}
