//! The proxy core's CPU cost per message, without sockets: what one REGISTER and one whole call
//! (INVITE, 180, 200, ACK, BYE, 200) cost in `ProxyCore`, the part of the proxy's time that is
//! ours rather than the kernel's. `cargo bench -p dialtone-proxy --bench core`.

use dialtone_transaction::Transport;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use dialtone_proxy::calls::CallTracker;
use dialtone_proxy::config::{Config, FileConfig, ProxyFlags};
use dialtone_proxy::metrics::ProxyMetrics;
use dialtone_proxy::proxy_core::{Action, ProxyCore, Source};
use dialtone_proxy::registrar::LocationService;

fn core() -> ProxyCore {
    let flags = ProxyFlags {
        listen: vec!["udp:127.0.0.1:5070".into()],
        ..Default::default()
    };
    let config = Config::merge(FileConfig::default(), &flags).unwrap();
    let metrics = ProxyMetrics::new();
    let calls = CallTracker::new(metrics.clone());
    ProxyCore::new(&config, LocationService::new(), metrics, calls)
}

fn from(port: u16) -> Source {
    Source {
        transport: Transport::Udp,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        local: "127.0.0.1:5070".parse().unwrap(),
    }
}

fn register(user: u32, n: u64, port: u16) -> Bytes {
    Bytes::from(format!(
        "REGISTER sip:127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag={n}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{n}@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\nExpires: 3600\r\nUser-Agent: bench\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// The first datagram the core sends.
fn sent(actions: &[Action]) -> Bytes {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Send { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .expect("the core sent something")
}

/// A response from the callee to the forwarded request `request`.
fn answer(request: &[u8], status: &str, to_tag: &str, body: &str) -> Bytes {
    let text = std::str::from_utf8(request).unwrap();
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in text.split("\r\n").skip(1) {
        if line.is_empty() {
            break;
        }
        let name = line.split(':').next().unwrap_or("");
        match name {
            "Via" | "From" | "Call-ID" | "CSeq" | "Record-Route" => {
                out.push_str(line);
                out.push_str("\r\n");
            }
            "To" => out.push_str(&format!("{line};tag={to_tag}\r\n")),
            _ => {}
        }
    }
    out.push_str("Contact: <sip:9000@127.0.0.1:5090>\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    Bytes::from(out)
}

fn bench_register(c: &mut Criterion) {
    let core = core();
    let mut n = 0u64;
    c.bench_function("REGISTER, new binding or refresh (100k users)", |b| {
        b.iter(|| {
            n += 1;
            let user = 100_000 + (n % 100_000) as u32;
            core.handle_message(
                Instant::now(),
                SystemTime::now(),
                from(5061),
                register(user, n, 5061),
            )
        })
    });
}

fn bench_call(c: &mut Criterion) {
    let core = core();
    let now = Instant::now();
    core.handle_message(now, SystemTime::now(), from(5090), register(9000, 0, 5090));
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let mut n = 0u64;
    c.bench_function("call: INVITE, 180, 200, ACK, BYE, 200", |b| {
        b.iter(|| {
            n += 1;
            let wall = SystemTime::now();
            let invite = Bytes::from(format!(
                "INVITE sip:9000@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-i{n}\r\nMax-Forwards: 70\r\nFrom: <sip:8000@127.0.0.1>;tag=f{n}\r\nTo: <sip:9000@127.0.0.1>\r\nCall-ID: call-{n}@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:8000@127.0.0.1:5061>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ));
            let actions = core.handle_message(Instant::now(), wall, from(5061), invite);
            let forwarded = actions
                .iter()
                .filter_map(|a| match a {
                    Action::Send { bytes, .. } => Some(bytes.clone()),
                    _ => None,
                })
                .find(|b| b.starts_with(b"INVITE"))
                .expect("forwarded INVITE");
            core.handle_message(Instant::now(), wall, from(5090), answer(&forwarded, "180 Ringing", "t", ""));
            let ok = core.handle_message(Instant::now(), wall, from(5090), answer(&forwarded, "200 OK", "t", sdp));
            let _ = sent(&ok);
            let ack = Bytes::from(format!(
                "ACK sip:9000@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-a{n}\r\nRoute: <sip:127.0.0.1:5070;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:8000@127.0.0.1>;tag=f{n}\r\nTo: <sip:9000@127.0.0.1>;tag=t\r\nCall-ID: call-{n}@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
            ));
            core.handle_message(Instant::now(), wall, from(5061), ack);
            let bye = Bytes::from(format!(
                "BYE sip:9000@127.0.0.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-b{n}\r\nRoute: <sip:127.0.0.1:5070;lr>\r\nMax-Forwards: 70\r\nFrom: <sip:8000@127.0.0.1>;tag=f{n}\r\nTo: <sip:9000@127.0.0.1>;tag=t\r\nCall-ID: call-{n}@127.0.0.1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
            ));
            let actions = core.handle_message(Instant::now(), wall, from(5061), bye);
            let forwarded = sent(&actions);
            core.handle_message(Instant::now(), wall, from(5090), answer(&forwarded, "200 OK", "t", ""))
        })
    });
}

criterion_group!(benches, bench_register, bench_call);
criterion_main!(benches);
