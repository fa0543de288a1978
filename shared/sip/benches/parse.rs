//! How fast the message layer handles the seed's traffic: parsing an INVITE with SDP, a REGISTER
//! and a 200 OK, and the edits a proxy makes to forward them (RFC 3261 sections 16.6 and 16.7).
//!
//! The target is parse + forwarding edits of the seed INVITE under 2 µs on one core; the messages
//! are the seed flows' own bytes, so the numbers describe the traffic the lab actually carries.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dialtone_sip::{HeaderName, Message};

const INVITE: &[u8] = include_bytes!("../../../tests/data/seed-flows/D-3-call-noauth/01.sip");
const REGISTER: &[u8] = include_bytes!("../../../tests/data/seed-flows/D-2-register-auth/04.sip");
const OK_200: &[u8] = include_bytes!("../../../tests/data/seed-flows/D-3-call-noauth/07.sip");

/// What a proxy does to a request it forwards: read what routing needs, then add its Via and
/// Record-Route and decrement Max-Forwards.
fn forward_request(raw: &[u8]) -> Vec<u8> {
    let Ok(message) = Message::parse(raw) else {
        return Vec::new();
    };
    let top_via = message.top_via().map(|v| v.host).unwrap_or("");
    let max_forwards = message.max_forwards().ok().flatten();
    let route = message.top_route().ok().flatten().map(|r| r.uri);
    black_box((top_via, max_forwards, route, message.request_uri()));
    message
        .edit()
        .insert_header_first(
            "Via",
            "SIP/2.0/UDP 192.168.2.97:5060;branch=z9hG4bK140fed6e-f61cbd1a-1",
        )
        .insert_header_first("Record-Route", "<sip:192.168.2.97:5060;lr>")
        .decrement_max_forwards()
        .finish()
}

/// What a proxy does to a response it relays: drop its own Via.
fn forward_response(raw: &[u8]) -> Vec<u8> {
    let Ok(message) = Message::parse(raw) else {
        return Vec::new();
    };
    black_box(message.top_via().ok());
    message.edit().remove_top_via().finish()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, raw) in [
        ("invite_with_sdp", INVITE),
        ("register", REGISTER),
        ("ok_200", OK_200),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| Message::parse(black_box(raw)).map(|m| m.headers().len()))
        });
    }
    group.finish();
}

fn forwarding(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward");
    group.bench_function("invite_parse_and_edit", |b| {
        b.iter(|| forward_request(black_box(INVITE)))
    });
    group.bench_function("ok_200_parse_and_remove_via", |b| {
        b.iter(|| forward_response(black_box(OK_200)))
    });
    // The typed reads alone, to show what the lazy header parsing costs on top of the index.
    group.bench_function("invite_check_request", |b| {
        b.iter(|| {
            Message::parse(black_box(INVITE))
                .map(|m| m.check_request().is_ok() && m.header(HeaderName::Route).is_none())
        })
    });
    group.finish();
}

criterion_group!(benches, parse, forwarding);
criterion_main!(benches);
