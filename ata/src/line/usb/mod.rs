//! The `usb` line backend: a USB telephony handset, whose sound card (USB Audio Class)
//! carries the earpiece and microphone and whose HID interface reports the hook switch and
//! keypad. Written against the HID 1.11 and HID Usage Tables (Telephony page 0x0B) and UAC
//! specifications; no handset was attached while it was written, so every piece below is
//! tested with fakes.
//!
//! The pure pieces, compiled in every build so their tests always run:
//! - `resample.rs`: 8 kHz ↔ the card's rate, mono ↔ the card's channels;
//! - `drift.rs`: the buffer between the line's clock and the card's, nudging the
//!   resampler so neither side starves;
//! - `hid.rs`: report descriptor → where hook and keys sit → one report's snapshot;
//! - `evdev.rs`: the fallback, Linux input events → the same snapshots;
//! - `debounce.rs`: snapshots with their times → `HandsetEvent`s (hook, digit, flash);
//! - `detect.rs`: the sound card by name, the HID device by its descriptor;
//! - `ringer.rs`: the ring played through the handset's speaker while it rings on-hook.
//!
//! The glue, only with feature `usb-handset` (it needs cpal and so ALSA): `device.rs`,
//! `UsbLine`, the [`Handset`](crate::line::Handset) the line actor drives.

pub mod debounce;
pub mod detect;
pub mod drift;
pub mod evdev;
pub mod hid;
pub mod resample;
pub mod ringer;

#[cfg(feature = "usb-handset")]
mod device;

#[cfg(feature = "usb-handset")]
pub use device::UsbLine;
