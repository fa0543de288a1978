//! The Grafana dashboard (`deploy/grafana/dialtone.json`) cannot drift from the programs: every
//! metric its PromQL names is exported by a running proxy (`dialtone_proxy_*`) or ATA
//! (`dialtone_ata_*`), every panel reads the `datasource` variable, and (with Debian's
//! `promtool`) every expression parses.

use std::collections::BTreeSet;
use std::process::Command;

use dialtone_e2e::{http_get, start_ata, tool_available, workspace_root, Proxy};

const PROXY: &str = env!("CARGO_BIN_EXE_e2e-dialtone-proxy");
const ATA: &str = env!("CARGO_BIN_EXE_e2e-dialtone-ata");

fn dashboard() -> serde_json::Value {
    let path = workspace_root().join("deploy/grafana/dialtone.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/dialtone.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every PromQL expression: panel targets and query variables.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(query) = var["query"]["query"].as_str() {
            exprs.push(query.to_string());
        }
    }
    exprs
}

/// The metric names of an expression: its identifiers that start with `dialtone_`, and `up`.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("dialtone_") || *t == "up")
        .map(str::to_string)
        .collect()
}

/// The sample names in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_metric_the_dashboard_uses_is_exported() {
    let dashboard = dashboard();
    let names: BTreeSet<String> = expressions(&dashboard)
        .iter()
        .flat_map(|e| metric_names(e))
        .collect();
    assert!(names.len() > 20, "too few metrics found: {names:?}");

    let proxy = Proxy::start(PROXY, &[]);
    let proxy_metrics = exported(&http_get(proxy.http, "/metrics").expect("proxy /metrics"));
    let ata = start_ata(ATA, &["--line", "8000:8000", "--register-interval", "0"]);
    let ata_metrics = exported(&http_get(ata.control, "/metrics").expect("ATA /metrics"));

    let mut missing = Vec::new();
    for name in &names {
        let found = if name.starts_with("dialtone_proxy_") {
            proxy_metrics.contains(name)
        } else if name.starts_with("dialtone_ata_") {
            ata_metrics.contains(name)
        } else {
            name == "up" // Prometheus's own.
        };
        if !found {
            missing.push(name.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics nobody exports: {missing:?}"
    );
    // The RTP quality panels per line are there.
    for name in [
        "dialtone_ata_rtp_packets_lost_total",
        "dialtone_ata_rtp_jitter_seconds",
        "dialtone_ata_call_mos",
        "dialtone_proxy_transaction_duration_seconds_bucket",
    ] {
        assert!(names.contains(name), "the dashboard does not show {name}");
    }
}

#[test]
fn every_panel_reads_the_datasource_variable() {
    let dashboard = dashboard();
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {}",
            panel["title"]
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(target["datasource"]["uid"], "${datasource}");
        }
    }
}

#[test]
fn every_expression_parses_as_promql() {
    if !tool_available("promtool") {
        return;
    }
    // Recording rules are the one offline PromQL check promtool has; Grafana's variables get
    // the values they would have.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in expressions(&dashboard())
        .iter()
        .filter(|e| !e.starts_with("label_values("))
        .enumerate()
    {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$line", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).expect("json string")
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, &rules).expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
