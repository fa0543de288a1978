//! Cost of G.711 on one 20 ms frame (160 samples), the unit the media actor
//! encodes and decodes every 20 ms per call.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use dialtone_media::g711::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};
use dialtone_media::{Tone, ToneGenerator, FRAME_SAMPLES};

fn g711(c: &mut Criterion) {
    let pcm = ToneGenerator::new(Tone::Dial).next_frame(FRAME_SAMPLES);
    let mut ulaw = Vec::with_capacity(FRAME_SAMPLES);
    encode_ulaw(&pcm, &mut ulaw);
    let mut alaw = Vec::with_capacity(FRAME_SAMPLES);
    encode_alaw(&pcm, &mut alaw);
    let mut bytes = Vec::with_capacity(FRAME_SAMPLES);
    let mut samples = Vec::with_capacity(FRAME_SAMPLES);

    c.bench_function("ulaw encode 20 ms", |b| {
        b.iter(|| {
            bytes.clear();
            encode_ulaw(black_box(&pcm), &mut bytes);
        })
    });
    c.bench_function("ulaw decode 20 ms", |b| {
        b.iter(|| {
            samples.clear();
            decode_ulaw(black_box(&ulaw), &mut samples);
        })
    });
    c.bench_function("alaw encode 20 ms", |b| {
        b.iter(|| {
            bytes.clear();
            encode_alaw(black_box(&pcm), &mut bytes);
        })
    });
    c.bench_function("alaw decode 20 ms", |b| {
        b.iter(|| {
            samples.clear();
            decode_alaw(black_box(&alaw), &mut samples);
        })
    });
}

criterion_group!(benches, g711);
criterion_main!(benches);
