//! Message capture through a real call: `dialtone-proxy ctl trace CALL-ID` prints the ladder,
//! `/api/trace/{call_id}` holds every message in order, and with `--hep` each message arrives
//! at a collector as a HEPv3 packet whose chunks and payload say what the proxy saw.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use dialtone_e2e::sip_phone::{call, SipPeer};
use dialtone_e2e::{http_get, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

/// The messages of a call through the proxy, each seen in and out.
const LADDER: [&str; 13] = [
    "INVITE", "100", "INVITE", "180", "180", "200", "200", "ACK", "ACK", "BYE", "BYE", "200", "200",
];

/// One decoded HEPv3 packet: chunk type → value (generic vendor only).
fn decode_hep(packet: &[u8]) -> HashMap<u16, Vec<u8>> {
    assert_eq!(&packet[..4], b"HEP3", "not HEPv3");
    let total = u16::from_be_bytes([packet[4], packet[5]]) as usize;
    assert_eq!(total, packet.len(), "HEP length field");
    let mut chunks = HashMap::new();
    let mut rest = &packet[6..];
    while !rest.is_empty() {
        assert!(rest.len() >= 6, "truncated chunk header");
        let vendor = u16::from_be_bytes([rest[0], rest[1]]);
        let kind = u16::from_be_bytes([rest[2], rest[3]]);
        let len = u16::from_be_bytes([rest[4], rest[5]]) as usize;
        assert!(len >= 6 && len <= rest.len(), "chunk length {len}");
        assert_eq!(vendor, 0, "generic chunks only");
        chunks.insert(kind, rest[6..len].to_vec());
        rest = &rest[len..];
    }
    chunks
}

fn u16_of(v: &[u8]) -> u16 {
    u16::from_be_bytes([v[0], v[1]])
}

fn u32_of(v: &[u8]) -> u32 {
    u32::from_be_bytes([v[0], v[1], v[2], v[3]])
}

fn labels_of_first_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .map(|l| match l.strip_prefix("SIP/2.0 ") {
            Some(status) => status[..3].to_string(),
            None => l.split(' ').next().unwrap_or("").to_string(),
        })
        .collect()
}

#[test]
fn ctl_trace_prints_the_ladder_and_hep_carries_every_message() {
    let collector = UdpSocket::bind("127.0.0.1:0").expect("collector socket");
    collector
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let hep = format!("udp:{}", collector.local_addr().expect("addr"));
    let proxy = Proxy::start(PROXY, &["--hep", &hep, "--trace-calls", "50"]);
    let a = SipPeer::new(proxy.sip, "8000");
    let b = SipPeer::new(proxy.sip, "9000");
    b.register();
    let call_id = call(&a, &b, "trace-call-1@127.0.0.1");

    // The recorder, through the JSON API.
    let json = http_get(proxy.http, &format!("/api/trace/{call_id}")).expect("trace JSON");
    let trace: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let messages = trace["messages"].as_array().expect("messages");
    let labels = labels_of_first_lines(
        messages
            .iter()
            .map(|m| m["first_line"].as_str().unwrap_or("")),
    );
    assert_eq!(labels, LADDER, "{json}");
    assert_eq!(messages[0]["direction"], "in");
    assert_eq!(messages[0]["remote"], a.addr.to_string());
    assert_eq!(messages[2]["direction"], "out");
    assert_eq!(messages[2]["remote"], b.addr.to_string());
    assert!(messages[0]["text"]
        .as_str()
        .unwrap_or("")
        .contains(&format!("Call-ID: {call_id}")));
    assert!(http_get(proxy.http, "/api/trace/no-such-call").is_none());

    // The operator's command.
    let out = Command::new(PROXY)
        .args(["ctl", "--http", &proxy.http.to_string(), "trace", &call_id])
        .output()
        .expect("ctl trace");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("Call-ID {call_id}"));
    assert!(lines[1].contains(&a.addr.to_string()) && lines[1].contains(&b.addr.to_string()));
    assert_eq!(lines.len(), 2 + LADDER.len(), "{text}");
    let rows = labels_of_first_lines(
        lines[2..]
            .iter()
            .map(|l| l.split("  udp ").nth(1).unwrap_or("")),
    );
    assert_eq!(rows, LADDER, "{text}");
    assert!(
        lines[2].contains("->|"),
        "the INVITE goes right: {}",
        lines[2]
    );
    assert!(lines[3].contains("|<-"), "the 100 comes back: {}", lines[3]);

    // HEP: every message of the call, in and out, with its addresses.
    let mut packets = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65_535];
    while Instant::now() < deadline && packets.len() < LADDER.len() {
        if let Ok((n, _)) = collector.recv_from(&mut buf) {
            let chunks = decode_hep(&buf[..n]);
            let payload = String::from_utf8_lossy(&chunks[&0x000f]).into_owned();
            if payload.contains(&format!("Call-ID: {call_id}")) {
                packets.push((chunks, payload));
            }
        }
    }
    let labels = labels_of_first_lines(packets.iter().map(|(_, p)| p.lines().next().unwrap_or("")));
    assert_eq!(labels, LADDER);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32;
    let addr = |chunks: &HashMap<u16, Vec<u8>>, ip: u16, port: u16| {
        let ip = &chunks[&ip];
        SocketAddr::from(([ip[0], ip[1], ip[2], ip[3]], u16_of(&chunks[&port])))
    };
    for (chunks, payload) in &packets {
        assert_eq!(chunks[&0x0001], [2], "IPv4");
        assert_eq!(chunks[&0x0002], [17], "UDP");
        assert_eq!(chunks[&0x000b], [1], "SIP");
        assert!(u32_of(&chunks[&0x000c]) > 0, "capture id");
        assert!(now.abs_diff(u32_of(&chunks[&0x0009])) < 60, "timestamp");
        assert!(u32_of(&chunks[&0x000a]) < 1_000_000, "microseconds");
        assert!(payload.ends_with("\r\n\r\n"), "whole message: {payload}");
    }
    // The first is A's INVITE to the proxy, the third the proxy's INVITE to B.
    assert_eq!(addr(&packets[0].0, 3, 7), a.addr);
    assert_eq!(addr(&packets[0].0, 4, 8), proxy.sip);
    assert_eq!(addr(&packets[2].0, 3, 7), proxy.sip);
    assert_eq!(addr(&packets[2].0, 4, 8), b.addr);
    assert_eq!(
        packets[0].1,
        messages[0]["text"].as_str().unwrap_or(""),
        "HEP and the recorder saw the same octets"
    );
}
