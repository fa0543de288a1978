//! End-to-end: a software ATA keeps its registration through `dialtone-proxy --auth all`
//! refresh after refresh. Its refreshes carry the credentials of the last challenge, whose
//! nonce the proxy accepts only once (one-time nonces): each refresh must be challenged
//! afresh and answered, and the line must stay registered throughout.

use std::time::Duration;

use dialtone_e2e::{http_get, wait_for_line, wait_until, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// The value of a counter line of `/metrics` (`name{labels} value`), 0 when absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn an_atas_refreshes_get_a_fresh_challenge_each_and_keep_it_registered() {
    let proxy = Proxy::start(
        PROXY,
        &[
            "--auth",
            "all",
            "--domain",
            "lab",
            "--user",
            "8000:pw8000",
            "--min-expires",
            "1",
            "--memory-only",
        ],
    );
    let proxy_sip = proxy.sip.to_string();
    // Asked for 2 s, the binding is refreshed every 1.6 s (80 %).
    let ata = dialtone_e2e::start_ata(
        ATA,
        &[
            "--line",
            "8000:pw8000",
            "--proxy",
            &proxy_sip,
            "--register-interval",
            "2",
        ],
    );
    wait_for_line(ata.control, 1, "registration", |s| {
        s.registration == "registered"
    });
    let refreshed = "dialtone_proxy_registration_events_total{event=\"refreshed\"}";
    let done = wait_until(Duration::from_secs(15), || {
        let metrics = http_get(proxy.http, "/metrics").unwrap_or_default();
        counter(&metrics, refreshed) >= 3.0
    });
    let metrics = http_get(proxy.http, "/metrics").unwrap_or_default();
    assert!(done, "three refreshes: {}", counter(&metrics, refreshed));
    // One challenge for the first REGISTER and one for every refresh: the nonce of the last
    // challenge is never accepted twice.
    let challenges = counter(&metrics, "dialtone_proxy_auth_challenges_total");
    let refreshes = counter(&metrics, refreshed);
    assert!(
        challenges > refreshes,
        "{challenges} challenges for {refreshes} refreshes"
    );
    let status = wait_for_line(ata.control, 1, "still registered", |s| {
        s.registration == "registered"
    });
    assert_eq!(status.registration, "registered");
}
