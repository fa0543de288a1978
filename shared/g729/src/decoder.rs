//! [`Decoder`]: one G.729 decoder channel, one 10-byte frame in, 80 samples (10 ms) out,
//! and the G.729 concealment of a lost frame (ITU-T G.729 section 4.4), which keeps the
//! channel's state in step with the encoder across the gap.

use std::ptr::NonNull;

use crate::ffi;
use crate::{G729Error, FRAME_BYTES, FRAME_SAMPLES};

/// One G.729 decoder channel (its state carries from frame to frame).
#[derive(Debug)]
pub struct Decoder {
    channel: NonNull<ffi::DecoderChannel>,
}

// SAFETY: as for `Encoder`: the channel is owned by this value alone and holds all of its
// state, the library has no shared mutable state, and every call takes `&mut self`.
unsafe impl Send for Decoder {}

impl Decoder {
    /// A new decoder channel.
    pub fn new() -> Result<Self, G729Error> {
        // SAFETY: takes nothing and returns a fresh heap context, or null if its allocation
        // failed; null is refused below, so `channel` is always valid.
        let raw = unsafe { ffi::initBcg729DecoderChannel() };
        NonNull::new(raw)
            .map(|channel| Decoder { channel })
            .ok_or(G729Error::ChannelAllocation { what: "decoder" })
    }

    /// Decodes one 10-byte voice frame (any 80 bits are a valid frame).
    pub fn decode(&mut self, frame: &[u8; FRAME_BYTES]) -> [i16; FRAME_SAMPLES] {
        self.run(frame, false)
    }

    /// The decoder's estimate of a lost frame, from the frames before it.
    pub fn conceal(&mut self) -> [i16; FRAME_SAMPLES] {
        // The library ignores the bits of an erased frame; zeros keep the pointer valid.
        self.run(&[0; FRAME_BYTES], true)
    }

    fn run(&mut self, frame: &[u8; FRAME_BYTES], erased: bool) -> [i16; FRAME_SAMPLES] {
        let mut pcm = [0i16; FRAME_SAMPLES];
        // SAFETY: `channel` is a live context from `new` (freed only in `drop`); the library
        // reads at most the 10 bytes we say `frame` holds (its type guarantees them; the SID
        // and RFC 3389 flags are off, so it reads no other layout) and writes exactly 80
        // samples into `pcm`; both buffers outlive the call.
        unsafe {
            ffi::bcg729Decoder(
                self.channel.as_ptr(),
                frame.as_ptr(),
                FRAME_BYTES as u8,
                u8::from(erased),
                0,
                0,
                pcm.as_mut_ptr(),
            );
        }
        pcm
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: `channel` came from `initBcg729DecoderChannel`, was never freed, and is not
        // used after this.
        unsafe { ffi::closeBcg729DecoderChannel(self.channel.as_ptr()) }
    }
}
