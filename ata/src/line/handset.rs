//! The line's hardware as the line actor sees it: the [`Handset`] trait (tone, ringer,
//! microphone, earpiece, and the hook and keypad events the hardware produces by itself),
//! implemented by the file handset ([`VirtualLine`]) here and by `usb::UsbLine`.

use dialtone_media::Tone;

use super::virtual_line::{self, VirtualLine};
use crate::error::AtaError;

/// What a handset reports by itself (the USB handset's hook switch and keypad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandsetEvent {
    /// Lifted.
    OffHook,
    /// Put down.
    OnHook,
    /// A key.
    Key(char),
    /// Hook flash (a short on-hook dip, or the handset's flash button): hold or resume.
    Flash,
}

/// A line's hardware.
pub trait Handset {
    /// Plays a tone in the earpiece, or stops it.
    fn set_tone(&mut self, tone: Option<Tone>);
    /// The tone playing.
    fn tone(&self) -> Option<Tone>;
    /// Rings or stops ringing.
    fn set_ringer(&mut self, on: bool);
    /// Whether it rings.
    fn is_ringing(&self) -> bool;
    /// The cadence of the next ring ((on, off) milliseconds; empty: the ordinary ring). A
    /// handset that cannot ring differently ignores it.
    fn set_ring_cadence(&mut self, _cadence: &'static [(u32, u32)]) {}
    /// The next 20 ms from the microphone.
    fn microphone_frame(&mut self) -> Vec<i16>;
    /// Received audio for the earpiece.
    fn queue_received(&mut self, frame: Vec<i16>);
    /// Drops queued received audio.
    fn clear_received(&mut self);
    /// Plays the next 20 ms in the earpiece.
    fn earpiece_tick(&mut self, off_hook: bool) -> Result<(), AtaError>;
    /// Makes recordings complete on disk.
    fn flush(&mut self) -> Result<(), AtaError>;
    /// Hook and keypad events the hardware produced since the last call.
    fn poll_event(&mut self) -> Option<HandsetEvent> {
        None
    }
}

impl Handset for VirtualLine {
    fn set_tone(&mut self, tone: Option<Tone>) {
        virtual_line::VirtualLine::set_tone(self, tone)
    }
    fn tone(&self) -> Option<Tone> {
        virtual_line::VirtualLine::tone(self)
    }
    fn set_ringer(&mut self, on: bool) {
        virtual_line::VirtualLine::set_ringer(self, on)
    }
    fn is_ringing(&self) -> bool {
        virtual_line::VirtualLine::is_ringing(self)
    }
    fn microphone_frame(&mut self) -> Vec<i16> {
        virtual_line::VirtualLine::microphone_frame(self)
    }
    fn queue_received(&mut self, frame: Vec<i16>) {
        virtual_line::VirtualLine::queue_received(self, frame)
    }
    fn clear_received(&mut self) {
        virtual_line::VirtualLine::clear_received(self)
    }
    fn earpiece_tick(&mut self, off_hook: bool) -> Result<(), AtaError> {
        virtual_line::VirtualLine::earpiece_tick(self, off_hook)
    }
    fn flush(&mut self) -> Result<(), AtaError> {
        virtual_line::VirtualLine::flush(self)
    }
}
