//! The C interface of libbcg729 1.1 (`bcg729/encoder.h`, `bcg729/decoder.h`), declared by
//! hand: six functions and two opaque channel contexts. Only `encoder.rs` and `decoder.rs`
//! call these; every call there says why it is sound.
//!
//! Each channel is a heap context the library allocates in `init*` and frees in `close*`, and
//! all of a channel's state lives in it: the library's only globals are the codebook tables of
//! its `codebooks.c`, initialised data it reads and never writes (it has no `.bss` and no
//! thread-locals). So two channels share nothing that changes, and a channel may move between
//! threads.

/// `bcg729EncoderChannelContextStruct`, opaque.
#[repr(C)]
pub(crate) struct EncoderChannel {
    _opaque: [u8; 0],
}

/// `bcg729DecoderChannelContextStruct`, opaque.
#[repr(C)]
pub(crate) struct DecoderChannel {
    _opaque: [u8; 0],
}

extern "C" {
    /// A new encoder channel; `enable_vad` 1 turns on Annex B VAD/DTX.
    pub(crate) fn initBcg729EncoderChannel(enable_vad: u8) -> *mut EncoderChannel;
    /// Frees an encoder channel.
    pub(crate) fn closeBcg729EncoderChannel(channel: *mut EncoderChannel);
    /// Encodes 80 samples into `bit_stream` (room for 10 bytes); writes 10 to
    /// `bit_stream_length` for a voice frame, or 2 or 0 only with VAD on.
    pub(crate) fn bcg729Encoder(
        channel: *mut EncoderChannel,
        input_frame: *const i16,
        bit_stream: *mut u8,
        bit_stream_length: *mut u8,
    );
    /// A new decoder channel.
    pub(crate) fn initBcg729DecoderChannel() -> *mut DecoderChannel;
    /// Frees a decoder channel.
    pub(crate) fn closeBcg729DecoderChannel(channel: *mut DecoderChannel);
    /// Decodes one frame of `bit_stream_length` bytes (10, or 2 for a SID frame) into 80
    /// samples of `signal`; with `frame_erasure_flag` set it conceals a lost frame instead.
    pub(crate) fn bcg729Decoder(
        channel: *mut DecoderChannel,
        bit_stream: *const u8,
        bit_stream_length: u8,
        frame_erasure_flag: u8,
        sid_frame_flag: u8,
        rfc3389_payload_flag: u8,
        signal: *mut i16,
    );
}
