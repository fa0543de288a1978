//! A registrar whose disk fills up: the REGISTERs it cannot save get 500 with Retry-After
//! (RFC 3261 section 10.3 step 7), `/readyz` stops saying ready, and once there is room again
//! the unsaved bindings are written without any client having to send anything, so that a
//! crash right after loses none of them.
//!
//! The full disk is a file size limit (`RLIMIT_FSIZE`) on the proxy, set by the shell that
//! starts it (the soft limit only, so that lifting it needs no privilege), with `SIGXFSZ` ignored so that a write past it fails with `EFBIG` instead of
//! killing the process; `prlimit` (util-linux) lifts it. No root and no mount needed.

use std::net::SocketAddr;
use std::time::Duration;

use dialtone_e2e::proxy_api::registrations;
use dialtone_e2e::sip_client::{Msg, UdpPeer};
use dialtone_e2e::{free_port, http_get, tool_available, wait_until, Process, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

/// The file may grow this far (in 512-byte blocks): the new store's file is about 1.5 MiB, so
/// it opens, and the first commits that need more room fail.
const FILE_SIZE_LIMIT_BLOCKS: u32 = 3200;

/// Starts the proxy under the file size limit (through `sh`, which `exec`s it: same PID).
fn start_limited(sip: SocketAddr, http: SocketAddr, data_dir: &str) -> Process {
    let mut args = vec![
        "-c".to_string(),
        format!("trap '' XFSZ; ulimit -S -f {FILE_SIZE_LIMIT_BLOCKS}; exec \"$0\" \"$@\""),
        PROXY.to_string(),
    ];
    args.extend(proxy_args(sip, http, data_dir));
    let process = Process::start("sh", &args, "proxy-limited");
    assert!(
        wait_until(Duration::from_secs(15), || http_get(http, "/readyz")
            .is_some()),
        "dialtone-proxy did not become ready on {http}"
    );
    process
}

fn proxy_args(sip: SocketAddr, http: SocketAddr, data_dir: &str) -> Vec<String> {
    [
        "--listen",
        &format!("udp:{sip}"),
        "--http",
        &http.to_string(),
        "--data-dir",
        data_dir,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A REGISTER for `user` with a large Contact (so that the file has to grow soon).
fn register(peer: &mut UdpPeer, sip: SocketAddr, user: &str) -> Msg {
    let padding = "p".repeat(1000);
    let text = format!(
        "REGISTER sip:{sip} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{user}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{user}@{ip}>;tag=f-{user}\r\n\
         To: <sip:{user}@{ip}>\r\n\
         Call-ID: store-{user}\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{user}@{me};pad={padding}>\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n",
        me = peer.hostport(),
        ip = sip.ip(),
    );
    peer.send(text.as_bytes());
    peer.expect("response to REGISTER")
}

fn registered_aors(http: SocketAddr) -> Vec<String> {
    let list = registrations(http);
    let mut aors: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|b| b["aor"].as_str().map(str::to_string))
        .collect();
    aors.sort();
    aors
}

#[test]
fn a_full_disk_gets_500s_and_readyz_503_and_the_unsaved_bindings_are_written_once_there_is_room() {
    if !tool_available("prlimit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let sip: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut proxy = start_limited(sip, http, &data_dir);
    let mut peer = UdpPeer::bind("127.0.0.2", sip);

    // Register users until the file cannot grow: their REGISTER gets a 500, not a 200.
    let mut saved = Vec::new();
    let refused = loop {
        let user = format!("u{:04}", saved.len());
        let response = register(&mut peer, sip, &user);
        match response.status() {
            Some(200) => saved.push(user),
            Some(500) => break (user, response),
            _ => panic!("unexpected answer: {}", response.summary()),
        }
        assert!(saved.len() < 5000, "the file size limit was never reached");
    };
    let (refused_user, refusal) = refused;
    assert_eq!(refusal.header("retry-after").as_deref(), Some("5"));
    assert!(refusal.headers("contact").is_empty(), "{}", refusal.text());
    assert!(
        http_get(http, "/readyz").is_none(),
        "not ready while the store fails"
    );
    let metrics = http_get(http, "/metrics").expect("/metrics");
    assert!(
        metrics.contains("dialtone_proxy_registrar_store_failing 1"),
        "{metrics}"
    );
    // Memory has the binding all the same: calls reach it.
    assert!(registered_aors(http).contains(&refused_user));

    // Room again: the writer retries by itself, and the proxy is ready again.
    let lifted = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &proxy.pid().to_string(),
            "--fsize=unlimited:unlimited",
        ])
        .output()
        .expect("prlimit");
    assert!(
        lifted.status.success(),
        "{}",
        String::from_utf8_lossy(&lifted.stderr)
    );
    assert!(
        wait_until(Duration::from_secs(10), || http_get(http, "/readyz")
            .is_some()),
        "ready again once the store can commit"
    );

    // A crash now loses nothing: the refused REGISTER's binding was written by the retry.
    proxy.kill_hard();
    let restarted = Proxy::start_with_args(PROXY, sip, http, proxy_args(sip, http, &data_dir));
    let aors = registered_aors(restarted.http);
    assert!(
        aors.contains(&refused_user),
        "{refused_user} not in {aors:?}"
    );
    for user in &saved {
        assert!(aors.contains(user), "{user} not in {aors:?}");
    }
}
