//! The call recorder's cost per message once it is full (the defaults keep 200 calls): every
//! new Call-ID evicts the oldest of its class. REGISTER exchanges (a REGISTER and its 200, a
//! Call-ID each, as at full registration load) and whole calls (13 messages, as relayed).
//! `cargo bench -p dialtone-proxy --bench recorder`.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dialtone_proxy::trace::{Direction, TraceRecorder};
use dialtone_transaction::Transport;

const KEPT_CALLS: usize = 200;

fn register(n: u64) -> Bytes {
    Bytes::from(format!(
        "REGISTER sip:127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{n}@127.0.0.1>;tag={n}\r\nTo: <sip:{n}@127.0.0.1>\r\nCall-ID: reg-{n}@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:{n}@127.0.0.1:5061>;expires=3600\r\nUser-Agent: bench\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn ok(n: u64) -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n};rport=5061;received=127.0.0.1\r\nFrom: <sip:{n}@127.0.0.1>;tag={n}\r\nTo: <sip:{n}@127.0.0.1>;tag=proxy\r\nCall-ID: reg-{n}@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:{n}@127.0.0.1:5061>;expires=3600\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn invite(n: u64) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:9000@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}\r\nMax-Forwards: 70\r\nFrom: <sip:8000@127.0.0.1>;tag={n}\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: call-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:8000@127.0.0.1:5061>\r\nContent-Type: application/sdp\r\nContent-Length: 130\r\n\r\nv=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    ))
}

fn bench_recorder(c: &mut Criterion) {
    let (proxy, peer): (SocketAddr, SocketAddr) = (
        "127.0.0.1:5070".parse().unwrap(),
        "127.0.0.1:5061".parse().unwrap(),
    );
    let now = SystemTime::now();
    let recorder = TraceRecorder::new(KEPT_CALLS);
    let mut n = 0u64;
    c.bench_function(
        "recorder: a REGISTER and its 200, new Call-ID, recorder full",
        |b| {
            b.iter(|| {
                n += 1;
                recorder.record(
                    now,
                    Direction::In,
                    Transport::Udp,
                    proxy,
                    peer,
                    &register(n),
                );
                recorder.record(now, Direction::Out, Transport::Udp, proxy, peer, &ok(n));
            })
        },
    );
    c.bench_function(
        "recorder: a call's 13 messages, new Call-ID, recorder full",
        |b| {
            b.iter(|| {
                n += 1;
                let message = invite(n);
                for i in 0..13 {
                    let direction = if i % 2 == 0 {
                        Direction::In
                    } else {
                        Direction::Out
                    };
                    recorder.record(now, direction, Transport::Udp, proxy, peer, &message);
                }
            })
        },
    );
}

criterion_group!(benches, bench_recorder);
criterion_main!(benches);
