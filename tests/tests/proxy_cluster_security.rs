//! The security state and voicemail counts of two proxy nodes sharing one real redis-server
//! (`--location redis://...`, issue 21): guesses that alternate between the nodes lock the user
//! out after the same number of failures as on one node; credentials accepted by one node and
//! replayed to the other are challenged again; a challenge from one node can be answered to
//! the other (one nonce key); counts set with one node's admin API reach a subscription held
//! by the other. Each wait for the other node's state awaits its
//! `dialtone_proxy_cluster_events_applied_total`, not a delay.

use std::net::SocketAddr;
use std::time::Duration;

use dialtone_e2e::redis::RedisServer;
use dialtone_e2e::sip_client::{Msg, UdpPeer};
use dialtone_e2e::sip_message::digest_answer;
use dialtone_e2e::{http_get, wait_until, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

const AUTH: [&str; 6] = ["--domain", "lab", "--auth", "all", "--user", "8000:pw8000"];

fn node(redis: &RedisServer) -> Proxy {
    let url = redis.url();
    let mut args = vec!["--location", url.as_str()];
    args.extend_from_slice(&AUTH);
    Proxy::start(PROXY, &args)
}

fn applied(http: SocketAddr) -> f64 {
    http_get(http, "/metrics")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("dialtone_proxy_cluster_events_applied_total "))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until `http`'s node has applied at least `count` events of the other.
fn wait_applied(http: SocketAddr, count: f64) {
    let reached = wait_until(Duration::from_secs(5), || applied(http) >= count);
    assert!(
        reached,
        "the node applied {} events, not {count}",
        applied(http)
    );
}

/// A REGISTER for 8000 from `peer` to its proxy, with `auth` (a Proxy-Authorization value:
/// the proxy challenges REGISTER with 407 by default) if given.
fn register(peer: &mut UdpPeer, cseq: u32, auth: Option<&str>) -> Msg {
    let auth = auth
        .map(|a| format!("Proxy-Authorization: {a}\r\n"))
        .unwrap_or_default();
    let text = format!(
        "REGISTER sip:lab SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-cl-{cseq}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:8000@lab>;tag=cl\r\nTo: <sip:8000@lab>\r\n\
         Call-ID: cluster-security\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:8000@{me}>\r\n\
         {auth}Expires: 600\r\nContent-Length: 0\r\n\r\n",
        me = peer.hostport(),
    );
    peer.send(text.as_bytes());
    peer.expect("response to REGISTER")
}

fn challenged(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 407))
}

#[test]
fn guesses_alternating_between_two_nodes_lock_the_user_out_after_five_failures() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let nodes = [node(&redis), node(&redis)];
    let mut peers = nodes
        .iter()
        .map(|n| UdpPeer::bind("127.0.0.1", n.sip))
        .collect::<Vec<_>>();
    let mut cseq = 1;
    for guess in 0..5 {
        let (here, there) = (guess % 2, (guess + 1) % 2);
        let before = applied(nodes[there].http);
        let challenge = register(&mut peers[here], cseq, None);
        assert!(challenged(challenge.status()), "{}", challenge.summary());
        let wrong = digest_answer(&challenge, "8000", "wrong", "REGISTER", "sip:lab");
        let refused = register(&mut peers[here], cseq + 1, Some(&wrong));
        assert!(
            challenged(refused.status()),
            "guess {guess} is refused and challenged again: {}",
            refused.summary()
        );
        cseq += 2;
        // The failure counts against the source and the user: two events for the other node.
        wait_applied(nodes[there].http, before + 2.0);
    }
    // The sixth guess, whichever node it reaches, is one too many.
    let before = applied(nodes[0].http);
    let challenge = register(&mut peers[1], cseq, None);
    let answer = if challenged(challenge.status()) {
        let wrong = digest_answer(&challenge, "8000", "wrong", "REGISTER", "sip:lab");
        register(&mut peers[1], cseq + 1, Some(&wrong))
    } else {
        challenge
    };
    assert_eq!(answer.status(), Some(403), "{}", answer.summary());
    wait_applied(nodes[0].http, before + 2.0);
    // And now even the right password is refused on both nodes for a while.
    for (i, peer) in peers.iter_mut().enumerate() {
        let seq = cseq + 10 + i as u32 * 2;
        let mut answer = register(peer, seq, None);
        if challenged(answer.status()) {
            let right = digest_answer(&answer, "8000", "pw8000", "REGISTER", "sip:lab");
            answer = register(peer, seq + 1, Some(&right));
        }
        assert_eq!(answer.status(), Some(403), "node {i}: {}", answer.summary());
    }
}

#[test]
fn a_challenge_of_one_node_is_answered_to_the_other_and_a_replay_to_the_first_is_refused() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let mut to_a = UdpPeer::bind("127.0.0.1", a.sip);
    let mut to_b = UdpPeer::bind("127.0.0.1", b.sip);
    let challenge = register(&mut to_a, 1, None);
    assert!(challenged(challenge.status()), "{}", challenge.summary());
    let credentials = digest_answer(&challenge, "8000", "pw8000", "REGISTER", "sip:lab");
    let before = applied(a.http);
    let accepted = register(&mut to_b, 2, Some(&credentials));
    assert_eq!(
        accepted.status(),
        Some(200),
        "B verifies A's nonce: {}",
        accepted.summary()
    );
    wait_applied(a.http, before + 1.0);
    // The same credentials in a new request (another CSeq, another branch) to node A.
    let replayed = register(&mut to_a, 3, Some(&credentials));
    assert!(
        challenged(replayed.status()),
        "a replay to the other node is challenged again: {}",
        replayed.summary()
    );
}

#[test]
fn counts_set_on_one_node_reach_a_subscription_held_by_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&redis), node(&redis));
    let mut phone = UdpPeer::bind("127.0.0.1", b.sip);
    let subscribe = |cseq: u32, auth: Option<&str>, me: &str| {
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "SUBSCRIBE sip:8000@lab SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-sub-{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:8000@lab>;tag=sub\r\nTo: <sip:8000@lab>\r\n\
             Call-ID: cluster-mwi\r\nCSeq: {cseq} SUBSCRIBE\r\nContact: <sip:8000@{me}>\r\n\
             Event: message-summary\r\nAccept: application/simple-message-summary\r\n\
             {auth}Expires: 600\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let me = phone.hostport();
    phone.send(subscribe(1, None, &me).as_bytes());
    let challenge = phone.expect("a challenge");
    assert!(challenged(challenge.status()), "{}", challenge.summary());
    let credentials = digest_answer(&challenge, "8000", "pw8000", "SUBSCRIBE", "sip:8000@lab");
    phone.send(subscribe(2, Some(&credentials), &me).as_bytes());
    let mut first_notify = false;
    for _ in 0..2 {
        let message = phone.expect("the 200 and the first NOTIFY");
        if message.method().as_deref() == Some("NOTIFY") {
            first_notify = true;
            answer_notify(&phone, &message);
        } else {
            assert_eq!(message.status(), Some(200), "{}", message.summary());
        }
    }
    assert!(first_notify, "node B notified at once");

    let before = applied(b.http);
    let posted = std::process::Command::new(PROXY)
        .args(["ctl", "--http", &a.http.to_string(), "mwi", "8000", "3/1"])
        .output()
        .expect("run ctl mwi");
    assert!(posted.status.success(), "{posted:?}");
    wait_applied(b.http, before + 1.0);
    let notify = phone.expect_request("NOTIFY", "node B's NOTIFY of the counts set on A");
    let body = String::from_utf8_lossy(&notify.body()).into_owned();
    assert!(body.contains("Voice-Message: 3/1"), "{body}");
    assert_eq!(notify.header("Call-ID").as_deref(), Some("cluster-mwi"));
}

fn answer_notify(phone: &UdpPeer, notify: &Msg) {
    let ok = dialtone_e2e::sip_message::respond_like(
        "SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        notify,
        None,
    );
    phone.send(ok.as_bytes());
}
