//! The admin page at `/`, driven in headless Chromium through a real call: it lists the
//! registration and draws the call's ladder (INVITE, 100, 180, 200, ACK, BYE, 200 in order).
//! A screenshot is kept under `target/observability/` for people to look at.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dialtone_e2e::sip_phone::{call, SipPeer};
use dialtone_e2e::{tool_available, workspace_root, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");

fn chromium(profile: &std::path::Path, extra: &[&str], url: &str) -> std::process::Output {
    let mut args = vec![
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(url.to_string());
    Command::new("chromium")
        .args(&args)
        .output()
        .expect("running chromium")
}

/// The `data-label`s of the ladder's arrows, in document order.
fn ladder_labels(dom: &str) -> Vec<String> {
    dom.split("class=\"msg ")
        .skip(1)
        .filter_map(|chunk| {
            let start = chunk.find("data-label=\"")? + "data-label=\"".len();
            let end = chunk[start..].find('"')?;
            Some(chunk[start..start + end].to_string())
        })
        .collect()
}

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("observability");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[test]
fn admin_page_lists_the_registration_and_draws_the_call_ladder() {
    if !tool_available("chromium") {
        return;
    }
    let proxy = Proxy::start(PROXY, &[]);
    let a = SipPeer::new(proxy.sip, "8000");
    let b = SipPeer::new(proxy.sip, "9000");
    b.register();
    let call_id = call(&a, &b, "web-call-1@127.0.0.1");

    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("http://{}/", proxy.http);
    // Virtual time lets the page's first poll of the JSON API finish before the DOM is dumped.
    let out = chromium(
        profile.path(),
        &["--virtual-time-budget=3000", "--dump-dom"],
        &url,
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("</svg>"),
        "no ladder in the page; chromium said: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("class=\"registration\""), "{dom}");
    assert!(dom.contains(&format!("sip:9000@{}", b.addr)), "{dom}");
    assert!(dom.contains(&call_id), "{dom}");

    let labels = ladder_labels(&dom);
    let expected = ["INVITE", "100", "180", "200", "ACK", "BYE", "200"];
    let mut next = 0;
    for label in &labels {
        if next < expected.len() && label.starts_with(expected[next]) {
            next += 1;
        }
    }
    assert_eq!(
        next,
        expected.len(),
        "ladder labels {labels:?} do not hold {expected:?} in order"
    );
    // Each message crosses the proxy: in from one party, out to the other.
    assert_eq!(labels.iter().filter(|l| *l == "INVITE").count(), 2);

    let shot = artifacts_dir().join("admin-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        profile.path(),
        &[
            "--virtual-time-budget=3000",
            "--hide-scrollbars",
            "--window-size=1200,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert!(
        dialtone_e2e::wait_until(Duration::from_secs(2), || shot.exists()),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("admin page screenshot: {}", shot.display());
}
