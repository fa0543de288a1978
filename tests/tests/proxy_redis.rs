//! The Redis location store (`--location redis://...`): two proxy nodes on one real
//! redis-server (started per test on a free port, its own directory, stopped by PID) share
//! their bindings live; a Redis crash costs the REGISTERs of the outage a 500 with
//! Retry-After and nothing acknowledged before; `CLIENT KILL` is survived.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dialtone_ata::ctl::CtlCommand;
use dialtone_e2e::proxy_api::registrations;
use dialtone_e2e::redis::RedisServer;
use dialtone_e2e::sip_client::{Msg, UdpPeer};
use dialtone_e2e::sip_phone::{call, SipPeer};
use dialtone_e2e::{
    ata_line_command, http_get, http_get_status, read_recording, wait_for_ata_metric,
    wait_for_line, wait_until, Proxy,
};
use dialtone_media::tone_amplitude;

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn node(redis: &RedisServer, extra: &[&str]) -> Proxy {
    let url = redis.url();
    let mut args = vec!["--location", url.as_str()];
    args.extend_from_slice(extra);
    Proxy::start(PROXY, &args)
}

/// A REGISTER of `user` (one contact on `peer`'s address) sent to `peer`'s proxy.
fn register(peer: &mut UdpPeer, user: &str, cseq: u32) -> Msg {
    let text = format!(
        "REGISTER sip:{proxy} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{user}-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@127.0.0.1>;tag=f-{user}\r\n\
         To: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: redis-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{user}@{me}>\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n",
        proxy = peer.proxy,
        me = peer.hostport(),
    );
    peer.send(text.as_bytes());
    peer.expect("response to REGISTER")
}

fn is_registered(http: SocketAddr, user: &str) -> bool {
    registrations(http)
        .as_array()
        .is_some_and(|list| list.iter().any(|b| b["aor"] == user))
}

fn readyz(http: SocketAddr) -> (u16, String) {
    http_get_status(http, "/readyz").expect("/readyz answers")
}

#[test]
fn an_ata_registered_through_one_node_is_called_through_the_other_with_two_way_audio() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let auth = [
        "--domain",
        "lab",
        "--auth",
        "all",
        "--user",
        "8000:pw8000",
        "--user",
        "9000:pw9000",
    ];
    let node_a = node(&redis, &auth);
    let node_b = node(&redis, &auth);
    let dir = tempfile::tempdir().unwrap();
    let (a_wav, b_wav) = (dir.path().join("a.wav"), dir.path().join("b.wav"));
    let ata = |line: &str, proxy: SocketAddr, tone: &str, wav: &std::path::Path| {
        dialtone_e2e::start_ata(
            ATA,
            &[
                "--line",
                line,
                "--proxy",
                &proxy.to_string(),
                "--audio-in",
                tone,
                "--audio-out",
                wav.to_str().unwrap(),
                "--auto-answer",
                "0.2",
                "--register-interval",
                "300",
            ],
        )
    };
    // B registers through node A only; A registers and calls through node B only.
    let b = ata("9000:pw9000", node_a.sip, "tone:1500", &b_wav);
    let a = ata("8000:pw8000", node_b.sip, "tone:1000", &a_wav);
    for ata in [&a, &b] {
        wait_for_line(ata.control, 1, "registration", |s| {
            s.registration == "registered"
        });
    }
    assert!(wait_until(Duration::from_secs(2), || is_registered(
        node_b.http,
        "9000"
    )));
    ata_line_command(a.control, 1, CtlCommand::Dial("9000#".into()));
    wait_for_line(a.control, 1, "A connected through node B", |s| {
        s.state == "connected"
    });
    wait_for_line(b.control, 1, "B connected", |s| s.state == "connected");
    wait_for_ata_metric(a.control, "dialtone_ata_rtp_packets_received_total", 50.0);
    wait_for_ata_metric(b.control, "dialtone_ata_rtp_packets_received_total", 50.0);
    ata_line_command(a.control, 1, CtlCommand::OnHook);
    wait_for_line(b.control, 1, "B idle after the BYE", |s| {
        s.state == "idle" && s.call.is_none()
    });
    wait_for_line(a.control, 1, "A idle", |s| s.state == "idle");
    drop((a, b));
    let level = |samples: &[i16], hz: f64| tone_amplitude(samples, hz, 8000);
    let (heard_by_a, heard_by_b) = (read_recording(&a_wav), read_recording(&b_wav));
    assert!(
        level(&heard_by_b, 1000.0) > 5.0 * level(&heard_by_b, 1500.0),
        "B should hear A's 1000 Hz"
    );
    assert!(
        level(&heard_by_a, 1500.0) > 5.0 * level(&heard_by_a, 1000.0),
        "A should hear B's 1500 Hz"
    );
}

#[test]
fn a_register_on_one_node_is_found_by_an_invite_on_the_other_50_ms_after_its_200() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let node_a = node(&redis, &[]);
    let node_b = node(&redis, &[]);
    let caller = SipPeer::new(node_b.sip, "8000");
    for n in 0..10 {
        let mut callee = SipPeer::new(node_a.sip, &format!("95{n:02}"));
        callee.register();
        let acknowledged = Instant::now();
        // The INVITE leaves node B's way no later than 50 ms after node A's 200.
        callee.proxy = node_b.sip;
        std::thread::sleep(
            (acknowledged + Duration::from_millis(50)).saturating_duration_since(Instant::now()),
        );
        assert!(acknowledged.elapsed() < Duration::from_millis(60));
        call(&caller, &callee, &format!("sync-{n}"));
    }
    let metrics = http_get(node_b.http, "/metrics").expect("/metrics");
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialtone_proxy_location_sync_seconds_count "))
        .expect("the sync histogram");
    assert!(count.parse::<u64>().unwrap() >= 10, "{count}");
}

#[test]
fn redis_killed_and_restarted_under_registers_loses_no_acknowledged_binding() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let node_a = node(&redis, &[]);
    let mut peer = UdpPeer::bind("127.0.0.1", node_a.sip);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut next = 0;
    let mut send = |peer: &mut UdpPeer, acknowledged: &mut Vec<String>, refused: &mut u32| {
        let user = format!("k{next:04}");
        next += 1;
        let response = register(peer, &user, 1);
        match response.status() {
            Some(200) => acknowledged.push(user),
            Some(500) => {
                assert_eq!(response.header("retry-after").as_deref(), Some("5"));
                *refused += 1;
            }
            _ => panic!("unexpected answer: {}", response.summary()),
        }
        response.status()
    };
    for _ in 0..50 {
        assert_eq!(send(&mut peer, &mut acknowledged, &mut refused), Some(200));
    }
    redis.kill();
    // The next REGISTERs are refused, and the node says why it is not ready.
    let mut outage = 0;
    while send(&mut peer, &mut acknowledged, &mut refused) != Some(500) {
        outage += 1;
        assert!(outage < 20, "REGISTERs still acknowledged with Redis gone");
    }
    for _ in 0..5 {
        assert_eq!(send(&mut peer, &mut acknowledged, &mut refused), Some(500));
    }
    let (status, why) = readyz(node_a.http);
    assert_eq!(status, 503, "{why}");
    assert!(why.contains("location store"), "{why}");
    assert!(why.contains(&redis.port.to_string()), "{why}");

    redis.restart();
    assert!(
        wait_until(Duration::from_secs(10), || readyz(node_a.http).0 == 200),
        "ready again without a restart: {:?}",
        readyz(node_a.http)
    );
    for _ in 0..20 {
        assert_eq!(send(&mut peer, &mut acknowledged, &mut refused), Some(200));
    }
    assert!(refused >= 6);

    // Every acknowledged binding is in Redis, and a node started now loads them all.
    for user in &acknowledged {
        let key = format!("dialtone:{{{user}}}:bindings");
        assert_eq!(redis.cli(&["ZCARD", &key]), "1", "{user} lost");
    }
    let fresh = node(&redis, &[]);
    for user in &acknowledged {
        assert!(is_registered(fresh.http, user), "{user} not loaded");
    }
}

#[test]
fn client_kill_of_the_nodes_connections_is_survived() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let node_a = node(&redis, &[]);
    let node_b = node(&redis, &[]);
    let mut peer = UdpPeer::bind("127.0.0.1", node_a.sip);
    assert_eq!(register(&mut peer, "7001", 1).status(), Some(200));
    let killed: u32 = redis
        .cli(&["CLIENT", "KILL", "TYPE", "normal"])
        .parse()
        .unwrap();
    assert!(killed >= 2, "killed {killed}");
    assert_eq!(
        register(&mut peer, "7002", 1).status(),
        Some(200),
        "the next REGISTER after CLIENT KILL"
    );
    for http in [node_a.http, node_b.http] {
        assert!(wait_until(Duration::from_secs(5), || readyz(http).0 == 200));
    }
    let killed: u32 = redis
        .cli(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .unwrap();
    assert!(killed >= 2, "killed {killed} subscribers");
    assert_eq!(register(&mut peer, "7003", 1).status(), Some(200));
    assert!(
        wait_until(Duration::from_secs(5), || is_registered(
            node_b.http,
            "7003"
        )),
        "node B follows again after its subscription was killed"
    );
    assert_eq!(readyz(node_b.http).0, 200);
}
