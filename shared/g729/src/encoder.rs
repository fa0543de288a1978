//! [`Encoder`]: one G.729 encoder channel, 80 samples (10 ms) in, one 10-byte frame out.
//!
//! VAD/DTX (Annex B) stays off: the ATA offers `annexb=no` and sends every frame, so each
//! call yields exactly [`FRAME_BYTES`] bytes.

use std::ptr::NonNull;

use crate::ffi;
use crate::{G729Error, FRAME_BYTES, FRAME_SAMPLES};

/// One G.729 encoder channel (its state carries from frame to frame).
#[derive(Debug)]
pub struct Encoder {
    channel: NonNull<ffi::EncoderChannel>,
}

// SAFETY: the channel is owned by this value alone (no copy of the pointer escapes) and holds
// all of its state; the library keeps no thread-local or shared mutable state (see `ffi`).
// `&mut self` on every call keeps two threads from using it at once, so moving it is sound.
unsafe impl Send for Encoder {}

impl Encoder {
    /// A new encoder channel, without VAD.
    pub fn new() -> Result<Self, G729Error> {
        // SAFETY: takes a plain flag and returns a fresh heap context, or null if its
        // allocation failed; null is refused below, so `channel` is always valid.
        let raw = unsafe { ffi::initBcg729EncoderChannel(0) };
        NonNull::new(raw)
            .map(|channel| Encoder { channel })
            .ok_or(G729Error::ChannelAllocation { what: "encoder" })
    }

    /// Encodes one 10 ms frame.
    pub fn encode(&mut self, pcm: &[i16; FRAME_SAMPLES]) -> [u8; FRAME_BYTES] {
        let mut frame = [0u8; FRAME_BYTES];
        let mut len = 0u8;
        // SAFETY: `channel` is a live context from `new` (freed only in `drop`); the library
        // reads exactly 80 samples, which `pcm`'s type guarantees, and writes at most 10
        // bytes (the voice frame; VAD is off) into `frame` and one byte into `len`, all
        // local buffers that outlive the call.
        unsafe {
            ffi::bcg729Encoder(
                self.channel.as_ptr(),
                pcm.as_ptr(),
                frame.as_mut_ptr(),
                &mut len,
            );
        }
        debug_assert_eq!(
            usize::from(len),
            FRAME_BYTES,
            "VAD is off: always a voice frame"
        );
        frame
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: `channel` came from `initBcg729EncoderChannel`, was never freed, and is not
        // used after this.
        unsafe { ffi::closeBcg729EncoderChannel(self.channel.as_ptr()) }
    }
}
