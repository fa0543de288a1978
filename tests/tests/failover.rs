//! Issue 21 items 4 and 5, end to end on loopback, each proxy node killed with `kill -9`:
//!
//! - Calls that survive a node: two independent proxy nodes record-route one name
//!   (`--record-route-host lab-proxies.test`) that a DNS server of the test's own resolves
//!   (SRV, node A preferred) to both. A call set up through node A keeps its two-way audio;
//!   once A is killed, the caller's BYE times out at A and is sent again to B, which relays it
//!   to the callee, although B never saw the call.
//! - ATAs that fail over: an ATA with `--proxy A --proxy B` registers at A; once A is killed it
//!   registers at B, is called through B, and goes back to A when a new A answers its probes;
//!   registered for an hour, it learns that A is gone from a call's INVITE instead.

use std::net::SocketAddr;
use std::time::Duration;

use dialtone_ata::ctl::CtlCommand;
use dialtone_ata::line::LineStatus;
use dialtone_e2e::dns::{a, dns_server, srv_with};
use dialtone_e2e::proxy_api::{binding, get_json};
use dialtone_e2e::tone::assert_hears_other_tone;
use dialtone_e2e::{
    ata_line_command, read_recording, start_ata, wait_for_ata_metric, wait_for_line, wait_until,
    Proxy,
};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn status(control: SocketAddr) -> LineStatus {
    ata_line_command(control, 1, CtlCommand::Status)
}

/// Polls line 1's status until `done` holds (`seconds` at most); panics with the last status.
fn wait_for_status(
    control: SocketAddr,
    seconds: u64,
    what: &str,
    done: impl Fn(&LineStatus) -> bool,
) -> LineStatus {
    let mut last = None;
    let reached = wait_until(Duration::from_secs(seconds), || {
        let now = status(control);
        let ok = done(&now);
        last = Some(now);
        ok
    });
    assert!(
        reached,
        "timed out waiting for {what}; last status {last:?}"
    );
    last.unwrap_or_else(|| unreachable!())
}

#[test]
fn a_call_through_a_node_that_dies_is_ended_through_the_other_node_of_the_record_route_name() {
    call_survives_its_node(None);
}

/// The same with auth on everything and the two nodes sharing one Redis: node B lets the BYE
/// of a call it never saw pass unchallenged, because node A told it (through Redis) that the
/// call was established.
#[test]
fn with_auth_on_and_one_redis_the_other_node_lets_the_bye_of_the_call_pass() {
    let Some(redis) = dialtone_e2e::redis::RedisServer::start() else {
        return;
    };
    call_survives_its_node(Some(&redis));
}

fn call_survives_its_node(shared: Option<&dialtone_e2e::redis::RedisServer>) {
    // Each node's SRV record needs its port: the DNS server is made for the ports chosen.
    let dns_of_cluster = std::cell::RefCell::new(String::new());
    let nodes = Proxy::start_several(PROXY, 2, |sips| {
        let dns = dns_server(vec![(
            "lab-proxies.test.",
            vec![
                (
                    "_sip._udp.lab-proxies.test.".into(),
                    srv_with(10, 10, sips[0].port(), "node-a.lab-proxies.test."),
                ),
                (
                    "_sip._udp.lab-proxies.test.".into(),
                    srv_with(20, 10, sips[1].port(), "node-b.lab-proxies.test."),
                ),
                ("node-a.lab-proxies.test.".into(), a("127.0.0.1")),
                ("node-b.lab-proxies.test.".into(), a("127.0.0.1")),
            ],
        )])
        .to_string();
        *dns_of_cluster.borrow_mut() = dns.clone();
        let mut flags = vec![
            "--record-route-host".to_string(),
            "lab-proxies.test".to_string(),
            "--dns".to_string(),
            dns,
            "--trace-calls".to_string(),
            "20".to_string(),
        ];
        if let Some(redis) = shared {
            flags.extend(["--location".to_string(), redis.url()]);
            for flag in ["--auth", "all", "--user", "9001:x", "--user", "8001:x"] {
                flags.push(flag.to_string());
            }
        }
        vec![flags.clone(), flags]
    });
    let dns = dns_of_cluster.into_inner();
    let [mut node_a, node_b]: [Proxy; 2] = nodes.try_into().unwrap_or_else(|_| unreachable!());
    let (sip_a, http_a) = (node_a.sip, node_a.http);

    let dir = std::env::temp_dir().join(format!("dialtone-e2e-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (caller_wav, callee_wav) = (dir.join("caller.wav"), dir.join("callee.wav"));
    let a_proxy = sip_a.to_string();
    // T1 of 50 ms: a request to the dead node times out after 64 T1, 3.2 s.
    let ata = |line: &str, tone: &str, wav: &std::path::Path, more: &[&str]| {
        let mut args = vec![
            "--line",
            line,
            "--proxy",
            &a_proxy,
            "--dns",
            &dns,
            "--t1-ms",
            "50",
            "--audio-in",
            tone,
            "--audio-out",
            wav.to_str().expect("utf8"),
        ];
        args.extend_from_slice(more);
        start_ata(ATA, &args)
    };
    let callee = ata(
        "9001:x",
        "tone:1500",
        &callee_wav,
        &["--auto-answer", "0.2"],
    );
    let caller = ata("8001:x", "tone:1000", &caller_wav, &[]);
    for (ata, user) in [(&callee, "9001"), (&caller, "8001")] {
        wait_for_line(ata.control, 1, "registered at node A", |s| {
            s.registration == "registered"
        });
        assert!(binding(http_a, user).is_some(), "{user} registered at A");
    }

    ata_line_command(caller.control, 1, CtlCommand::Dial("9001#".into()));
    wait_for_line(caller.control, 1, "caller connected", |s| {
        s.state == "connected"
    });
    wait_for_line(callee.control, 1, "callee connected", |s| {
        s.state == "connected"
    });
    wait_for_ata_metric(
        caller.control,
        "dialtone_ata_rtp_packets_received_total",
        50.0,
    );
    wait_for_ata_metric(
        callee.control,
        "dialtone_ata_rtp_packets_received_total",
        50.0,
    );
    let calls = get_json(http_a, "/api/calls");
    let call_id = calls["active"][0]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("node A knows the call: {calls}"))
        .to_owned();

    node_a.process.kill_hard();
    ata_line_command(caller.control, 1, CtlCommand::OnHook);
    wait_for_status(callee.control, 15, "the callee to end its call", |s| {
        s.state == "idle" && s.call.is_none()
    });
    wait_for_line(caller.control, 1, "caller idle", |s| {
        s.state == "idle" && s.call.is_none()
    });

    // Node B relayed the BYE: in from the caller, out to the callee, and its 200 back.
    let trace = get_json(node_b.http, &format!("/api/trace/{call_id}"));
    let ladder: Vec<(String, String)> = trace["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("node B traced the call: {trace}"))
        .iter()
        .map(|m| {
            let first = m["first_line"].as_str().unwrap_or("");
            (
                m["direction"].as_str().unwrap_or("").to_owned(),
                first.split(' ').take(2).collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    for step in [
        ("in", "BYE sip:9001@127.0.0.1"),
        ("out", "BYE sip:9001@127.0.0.1"),
    ] {
        assert!(
            ladder
                .iter()
                .any(|(d, l)| d == step.0 && l.starts_with(step.1)),
            "{step:?} in node B's trace {ladder:?}"
        );
    }
    assert!(
        ladder.iter().any(|(d, l)| d == "out" && l == "SIP/2.0 200"),
        "node B sent the callee's 200 back: {ladder:?}"
    );

    let heard = |path: &std::path::Path| read_recording(path);
    assert_hears_other_tone("the caller", &heard(&caller_wav), 1500.0, 1000.0);
    assert_hears_other_tone("the callee", &heard(&callee_wav), 1000.0, 1500.0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_ata_registers_at_its_backup_proxy_when_the_primary_dies_and_goes_back_when_it_returns() {
    let extra = ["--min-expires", "1", "--memory-only"];
    let mut primary = Proxy::start(PROXY, &extra);
    let backup = Proxy::start(PROXY, &extra);
    let (primary_sip, backup_sip) = (primary.sip.to_string(), backup.sip.to_string());
    // A binding of 2 s is refreshed every 1.6 s; a REGISTER unanswered for 64 T1 (3.2 s)
    // has timed out; the primary is probed every half second while on the backup.
    let phone = start_ata(
        ATA,
        &[
            "--line",
            "7001:x",
            "--proxy",
            &primary_sip,
            "--proxy",
            &backup_sip,
            "--register-interval",
            "2",
            "--t1-ms",
            "50",
            "--proxy-fallback-interval",
            "0.5",
            "--auto-answer",
            "0.2",
        ],
    );
    let at_primary = wait_for_status(phone.control, 10, "registered at the primary", |s| {
        s.registration == "registered" && s.proxy.as_deref() == Some(primary_sip.as_str())
    });
    assert!(binding(primary.http, "7001").is_some());
    assert!(
        dialtone_ata::ctl::summary(&at_primary).contains(&format!("at {primary_sip}")),
        "{}",
        dialtone_ata::ctl::summary(&at_primary)
    );

    primary.process.kill_hard();
    wait_for_status(phone.control, 15, "registered at the backup", |s| {
        s.registration == "registered" && s.proxy.as_deref() == Some(backup_sip.as_str())
    });
    assert!(binding(backup.http, "7001").is_some());

    // A phone of the backup's calls it there.
    let caller = start_ata(
        ATA,
        &[
            "--line",
            "7002:x",
            "--proxy",
            &backup_sip,
            "--register-interval",
            "60",
        ],
    );
    wait_for_line(caller.control, 1, "the caller registered", |s| {
        s.registration == "registered"
    });
    ata_line_command(caller.control, 1, CtlCommand::Dial("7001#".into()));
    wait_for_line(
        phone.control,
        1,
        "the call through the backup answered",
        |s| s.state == "connected",
    );
    ata_line_command(caller.control, 1, CtlCommand::OnHook);
    wait_for_line(phone.control, 1, "idle again", |s| {
        s.state == "idle" && s.call.is_none()
    });

    // The primary comes back on its address: the ATA's probe finds it and it registers there.
    let primary = Proxy::restart(PROXY, &primary);
    wait_for_status(phone.control, 15, "back at the primary", |s| {
        s.registration == "registered" && s.proxy.as_deref() == Some(primary_sip.as_str())
    });
    assert!(wait_until(Duration::from_secs(5), || binding(
        primary.http,
        "7001"
    )
    .is_some()));
}

#[test]
fn an_invite_the_primary_does_not_answer_moves_the_ata_to_its_backup_before_any_refresh() {
    let mut primary = Proxy::start(PROXY, &["--memory-only"]);
    let backup = Proxy::start(PROXY, &["--memory-only"]);
    let (primary_sip, backup_sip) = (primary.sip.to_string(), backup.sip.to_string());
    // Registered for an hour: only the call can find out that the primary is gone.
    let phone = start_ata(
        ATA,
        &[
            "--line",
            "7101:x",
            "--proxy",
            &primary_sip,
            "--proxy",
            &backup_sip,
            "--t1-ms",
            "50",
        ],
    );
    let callee = start_ata(
        ATA,
        &[
            "--line",
            "7102:x",
            "--proxy",
            &backup_sip,
            "--auto-answer",
            "0.2",
        ],
    );
    for ata in [&phone, &callee] {
        wait_for_line(ata.control, 1, "registered", |s| {
            s.registration == "registered"
        });
    }
    primary.process.kill_hard();

    // The INVITE to the dead primary times out (64 T1): the call fails, the line moves on.
    ata_line_command(phone.control, 1, CtlCommand::Dial("7102#".into()));
    let moved = wait_for_status(phone.control, 10, "registered at the backup", |s| {
        s.registration == "registered" && s.proxy.as_deref() == Some(backup_sip.as_str())
    });
    assert_eq!(
        moved.last_outcome.as_deref(),
        Some("failed 408"),
        "{moved:?}"
    );
    assert!(binding(backup.http, "7101").is_some());

    // The next call goes through the backup.
    ata_line_command(phone.control, 1, CtlCommand::OnHook);
    ata_line_command(phone.control, 1, CtlCommand::Dial("7102#".into()));
    wait_for_line(
        callee.control,
        1,
        "the call through the backup answered",
        |s| s.state == "connected",
    );
    ata_line_command(phone.control, 1, CtlCommand::OnHook);
}
