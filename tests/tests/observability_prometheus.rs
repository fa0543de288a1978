//! Debian's Prometheus scraping a real proxy and two ATAs with the lab's scrape configuration
//! (`deploy/prometheus/prometheus.yml`, its ports rewritten to this test's): every target comes
//! up, and after some SIP traffic the series the Grafana dashboard uses hold what happened.

use std::net::SocketAddr;
use std::time::Duration;

use dialtone_e2e::sip_phone::{call, SipPeer};
use dialtone_e2e::{free_port, http_get, start_ata, tool_available, wait_until, workspace_root};
use dialtone_e2e::{Process, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

/// A query string value (RFC 3986: everything but unreserved characters escaped).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The value of an instant query's first sample, if any.
fn query(prometheus: SocketAddr, promql: &str) -> Option<f64> {
    let body = http_get(
        prometheus,
        &format!("/api/v1/query?query={}", encode(promql)),
    )?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Waits (15 s at most, Prometheus scrapes every second) until `promql` is at least `min`.
fn assert_eventually_at_least(prometheus: SocketAddr, promql: &str, min: f64) {
    let reached = wait_until(Duration::from_secs(15), || {
        query(prometheus, promql).is_some_and(|v| v >= min)
    });
    assert!(
        reached,
        "{promql} never reached {min} (now {:?})",
        query(prometheus, promql)
    );
}

#[test]
fn prometheus_scrapes_the_lab_and_sees_the_traffic() {
    if !tool_available("prometheus") {
        return;
    }
    let proxy = Proxy::start(PROXY, &[]);
    let sip = proxy.sip.to_string();
    let ata_8000 = start_ata(ATA, &["--proxy", &sip, "--line", "8000:8000"]);
    let ata_9000 = start_ata(ATA, &["--proxy", &sip, "--line", "9000:9000"]);
    let ata_6000 = start_ata(ATA, &["--proxy", &sip, "--line", "6000:6000"]);

    let lab = std::fs::read_to_string(workspace_root().join("deploy/prometheus/prometheus.yml"))
        .expect("deploy/prometheus/prometheus.yml");
    let config = lab
        .replace("127.0.0.1:8060", &proxy.http.to_string())
        .replace("127.0.0.1:8071", &ata_8000.control.to_string())
        .replace("127.0.0.1:8072", &ata_9000.control.to_string())
        .replace("127.0.0.1:8073", &ata_6000.control.to_string())
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    assert!(
        config.contains(&proxy.http.to_string()),
        "the lab file names 127.0.0.1:8060"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write config");
    let port = free_port();
    let prometheus: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let _prometheus = Process::start(
        "prometheus",
        &[
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address={prometheus}"),
        ],
        "prometheus",
    );
    assert!(
        wait_until(Duration::from_secs(30), || http_get(prometheus, "/-/ready")
            .is_some()),
        "prometheus did not become ready on {prometheus}"
    );
    let all_up = wait_until(Duration::from_secs(30), || {
        let Some(body) = http_get(prometheus, "/api/v1/targets") else {
            return false;
        };
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let targets = json["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        targets.len() == 4 && targets.iter().all(|t| t["health"] == "up")
    });
    assert!(
        all_up,
        "not every target is up: {}",
        http_get(prometheus, "/api/v1/targets").unwrap_or_default()
    );

    // Traffic: a registration, an OPTIONS to the proxy, a call between two test phones.
    let a = SipPeer::new(proxy.sip, "7000");
    let b = SipPeer::new(proxy.sip, "7001");
    b.register();
    assert!(a.options().starts_with("SIP/2.0 200"));
    call(&a, &b, "prometheus-call-1@127.0.0.1");

    for (promql, min) in [
        ("up{job=\"dialtone-proxy\"}", 1.0),
        ("sum(up{job=\"dialtone-ata\"})", 2.0),
        ("dialtone_proxy_build_info", 1.0),
        // The ATAs' registrations and the test phone's.
        (
            "dialtone_proxy_requests_received_total{method=\"REGISTER\"}",
            3.0,
        ),
        (
            "dialtone_proxy_requests_received_total{method=\"OPTIONS\"}",
            1.0,
        ),
        (
            "dialtone_proxy_requests_received_total{method=\"INVITE\"}",
            1.0,
        ),
        (
            "dialtone_proxy_requests_received_total{method=\"BYE\"}",
            1.0,
        ),
        ("dialtone_proxy_registrations_active", 3.0),
        (
            "dialtone_proxy_registration_events_total{event=\"created\"}",
            3.0,
        ),
        ("dialtone_proxy_responses_relayed_total{class=\"1xx\"}", 1.0),
        ("dialtone_proxy_responses_relayed_total{class=\"2xx\"}", 2.0),
        ("dialtone_proxy_responses_sent_total{class=\"2xx\"}", 4.0),
        ("dialtone_proxy_transaction_duration_seconds_count", 1.0),
        (
            "sum(dialtone_ata_registration_state{state=\"registered\"})",
            2.0,
        ),
    ] {
        assert_eventually_at_least(prometheus, promql, min);
    }
    // A dashboard expression over a histogram gives a number once there are transactions.
    assert_eventually_at_least(
        prometheus,
        "histogram_quantile(0.5, sum by (le) (rate(dialtone_proxy_transaction_duration_seconds_bucket[1m]))) >= 0",
        0.0,
    );
}
