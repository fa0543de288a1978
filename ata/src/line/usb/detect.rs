//! Choosing the handset's devices: the sound card by name ([`pick_audio_device`], for
//! `usb_audio_device`) and, when `usb_hid_device` is not set, the HID device by what it
//! reports ([`detect_hid_device`]).
//!
//! Detection scans `/sys/class/hidraw/*/device/`: a device whose `report_descriptor`
//! (readable by everyone, unlike `/dev/hidraw*`) has a Telephony Hook Switch input is a
//! handset; among several, one from a vendor known for USB handsets and headsets (HID_ID in
//! `uevent`) is preferred, then the lowest number. Pure but for the directory reads, which
//! take the sysfs root as a parameter so tests can build a fake one.

use std::path::{Path, PathBuf};

use super::hid::ReportLayout;

/// USB vendors whose telephony devices report the Telephony page: GN Netcom (Jabra),
/// Plantronics (Poly), Sennheiser Communications (EPOS), Yealink.
pub const TELEPHONY_VENDORS: [u32; 4] = [0x0B0E, 0x047F, 0x1395, 0x6993];

/// The index of the device named `wanted`: an exact name (any case) first, else the first
/// that contains it; the error lists the names there are.
pub fn pick_audio_device(names: &[String], wanted: &str) -> Result<usize, String> {
    let wanted = wanted.to_lowercase();
    names
        .iter()
        .position(|n| n.to_lowercase() == wanted)
        .or_else(|| {
            names
                .iter()
                .position(|n| n.to_lowercase().contains(&wanted))
        })
        .ok_or_else(|| {
            if names.is_empty() {
                format!("no sound card matches `{wanted}`: none found")
            } else {
                format!(
                    "no sound card matches `{wanted}`; there are: {}",
                    names.join(", ")
                )
            }
        })
}

/// One `/sys/class/hidraw/hidrawN` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct HidCandidate {
    /// `/dev/hidrawN`.
    pub node: PathBuf,
    /// The USB vendor id from `HID_ID=BUS:VENDOR:PRODUCT`.
    pub vendor: Option<u32>,
    /// `HID_NAME`.
    pub name: String,
    /// Whether its descriptor has a Telephony Hook Switch input.
    pub hook_switch: bool,
}

/// Reads every hidraw device under `sysfs` (normally `/sys`).
pub fn scan_hidraw(sysfs: &Path) -> Vec<HidCandidate> {
    let Ok(entries) = std::fs::read_dir(sysfs.join("class/hidraw")) else {
        return Vec::new();
    };
    let mut found: Vec<HidCandidate> = entries
        .flatten()
        .map(|entry| {
            let device = entry.path().join("device");
            let uevent = std::fs::read_to_string(device.join("uevent")).unwrap_or_default();
            let descriptor = std::fs::read(device.join("report_descriptor")).unwrap_or_default();
            HidCandidate {
                node: Path::new("/dev").join(entry.file_name()),
                vendor: uevent_vendor(&uevent),
                name: uevent_value(&uevent, "HID_NAME")
                    .unwrap_or_default()
                    .to_owned(),
                hook_switch: ReportLayout::parse(&descriptor)
                    .is_ok_and(|layout| layout.has_hook_switch()),
            }
        })
        .collect();
    found.sort_by_key(|c| node_number(&c.node));
    found
}

/// The handset among `candidates`, or an error that lists what was seen.
pub fn detect_hid_device(candidates: &[HidCandidate]) -> Result<PathBuf, String> {
    let handsets = candidates.iter().filter(|c| c.hook_switch);
    let known = handsets
        .clone()
        .find(|c| c.vendor.is_some_and(|v| TELEPHONY_VENDORS.contains(&v)));
    if let Some(found) = known.or_else(|| handsets.clone().next()) {
        return Ok(found.node.clone());
    }
    let seen: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} ({})", c.node.display(), c.name))
        .collect();
    Err(if seen.is_empty() {
        "no hidraw devices found; set the key to the handset's /dev/hidrawN".into()
    } else {
        format!(
            "no hidraw device reports a Hook Switch (usage page 0x0B); seen: {}",
            seen.join(", ")
        )
    })
}

/// The sysfs directory of a `/dev/hidrawN` node, for its report descriptor.
pub fn hidraw_sysfs_dir(sysfs: &Path, node: &Path) -> Option<PathBuf> {
    let name = node.file_name()?;
    Some(sysfs.join("class/hidraw").join(name).join("device"))
}

fn uevent_value<'a>(uevent: &'a str, key: &str) -> Option<&'a str> {
    uevent
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// `HID_ID=0003:00000B0E:00000348` → 0x0B0E.
fn uevent_vendor(uevent: &str) -> Option<u32> {
    let id = uevent_value(uevent, "HID_ID")?;
    u32::from_str_radix(id.split(':').nth(1)?, 16).ok()
}

fn node_number(node: &Path) -> u32 {
    node.to_string_lossy()
        .trim_start_matches("/dev/hidraw")
        .parse()
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Report 1: Hook Switch as one bit, padded to the byte.
    const HOOK: &[u8] = &[
        0x05, 0x0B, 0x09, 0x01, 0xA1, 0x01, 0x85, 0x01, 0x09, 0x20, 0x75, 0x01, 0x95, 0x01, 0x81,
        0x02, 0x95, 0x07, 0x81, 0x03, 0xC0,
    ];
    /// A mouse: buttons only.
    const MOUSE: &[u8] = &[
        0x05, 0x01, 0x09, 0x02, 0xA1, 0x01, 0x05, 0x09, 0x19, 0x01, 0x29, 0x03, 0x75, 0x01, 0x95,
        0x03, 0x81, 0x02, 0xC0,
    ];

    fn fake_sysfs(devices: &[(&str, &str, &[u8])]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "ata-sysfs-{}-{}",
            std::process::id(),
            devices.len()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (name, uevent, descriptor) in devices {
            let dir = root.join("class/hidraw").join(name).join("device");
            std::fs::create_dir_all(&dir).expect("fake sysfs");
            std::fs::write(dir.join("uevent"), uevent).expect("uevent");
            std::fs::write(dir.join("report_descriptor"), descriptor).expect("descriptor");
        }
        root
    }

    #[test]
    fn the_hidraw_device_with_a_hook_switch_is_chosen_and_known_vendors_first() {
        let root = fake_sysfs(&[
            (
                "hidraw0",
                "HID_ID=0003:0000046D:0000C077\nHID_NAME=Mouse\n",
                MOUSE,
            ),
            (
                "hidraw2",
                "HID_ID=0003:00000D8C:00000014\nHID_NAME=C-Media Phone\n",
                HOOK,
            ),
            (
                "hidraw10",
                "HID_ID=0003:00000B0E:00000348\nHID_NAME=Jabra\n",
                HOOK,
            ),
        ]);
        let candidates = scan_hidraw(&root);
        assert_eq!(candidates.len(), 3);
        assert_eq!(candidates[1].vendor, Some(0x0D8C));
        assert!(candidates[1].hook_switch && !candidates[0].hook_switch);
        assert_eq!(
            detect_hid_device(&candidates),
            Ok(PathBuf::from("/dev/hidraw10"))
        );
        assert_eq!(
            detect_hid_device(&candidates[..2]),
            Ok(PathBuf::from("/dev/hidraw2"))
        );
        let error = detect_hid_device(&candidates[..1]).expect_err("a mouse is no handset");
        assert!(error.contains("/dev/hidraw0 (Mouse)"), "{error}");
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn audio_devices_match_by_name_in_any_case_and_the_error_lists_them() {
        let names: Vec<String> = [
            "default",
            "sysdefault:CARD=Phone",
            "plughw:CARD=Phone,DEV=0",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(pick_audio_device(&names, "card=phone"), Ok(1));
        assert_eq!(pick_audio_device(&names, "PLUGHW:CARD=Phone,DEV=0"), Ok(2));
        assert_eq!(
            pick_audio_device(&names, "DEFAULT"),
            Ok(0),
            "exact beats contains"
        );
        let error = pick_audio_device(&names, "yealink").expect_err("no match");
        assert!(error.contains("plughw:CARD=Phone,DEV=0"), "{error}");
    }
}
