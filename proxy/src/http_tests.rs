//! Tests of the admin HTTP endpoints that report the proxy's health.

use std::time::Duration;

use actix_web::{test, App};

use super::*;
use crate::calls::CallTracker;
use crate::config::{Config, FileConfig, ProxyFlags};
use crate::metrics::ProxyMetrics;
use crate::registrar::binding::BindingChange;
use crate::registrar::writer::testing::broken_writer;
use crate::registrar::LocationService;

fn core_with_store() -> Arc<ProxyCore> {
    let flags = ProxyFlags {
        listen: vec!["udp:127.0.0.1:5070".into()],
        ..ProxyFlags::default()
    };
    let config = Config::merge(FileConfig::default(), &flags).unwrap();
    let metrics = ProxyMetrics::new();
    let calls = CallTracker::new(metrics.clone());
    let location = LocationService::with_bindings(Vec::new(), true);
    Arc::new(ProxyCore::new(&config, location, metrics, calls))
}

/// Sends one change through `store` and waits until its commit has been tried.
fn commit_one(store: &crate::registrar::StoreWriter) -> Result<(), crate::registrar::StoreError> {
    store
        .send(
            crate::registrar::writer::testing::next_sequence(),
            vec![BindingChange::Remove {
                aor: "9301".into(),
                contact: "sip:9301@192.168.2.194".into(),
            }],
        )
        .unwrap();
    let (done, told) = std::sync::mpsc::channel();
    store.after_commit(Box::new(move |result| done.send(result).unwrap()));
    told.recv_timeout(Duration::from_secs(10)).unwrap()
}

/// The value of the series `name` (no labels) in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[actix_rt::test]
async fn a_failing_registrar_store_makes_the_proxy_not_ready_and_shows_in_the_metrics() {
    let (store, broken, _commits) = broken_writer();
    let core = core_with_store();
    let app = test::init_service(App::new().configure(routes(
        web::Data::new(core),
        web::Data::new(crate::transport::Outbound::new(Vec::new(), None)),
        web::Data::new(None),
        web::Data::new(Some(store.clone())),
        web::Data::new(None),
    )))
    .await;
    let get = |path: &str| test::TestRequest::get().uri(path).to_request();

    assert!(commit_one(&store).is_err());
    let response = test::call_service(&app, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    let body = test::read_body(response).await;
    assert!(
        String::from_utf8_lossy(&body).contains("No space left on device"),
        "{body:?}"
    );
    let metrics = test::read_body(test::call_service(&app, get("/metrics")).await).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("dialtone_proxy_registrar_store_failing 1"),
        "{metrics}"
    );
    // At least the one commit; the writer may have retried since (once a second).
    let failed = metric(
        &metrics,
        "dialtone_proxy_registrar_store_failed_commits_total",
    );
    assert!(failed >= 1.0, "{metrics}");

    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    commit_one(&store).unwrap();
    let response = test::call_service(&app, get("/readyz")).await;
    assert_eq!(response.status(), 200);
    let metrics = test::read_body(test::call_service(&app, get("/metrics")).await).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("dialtone_proxy_registrar_store_failing 0"),
        "{metrics}"
    );
    let failed_after = metric(
        &metrics,
        "dialtone_proxy_registrar_store_failed_commits_total",
    );
    assert!(
        failed_after >= failed,
        "a counter never goes down: {metrics}"
    );
}

#[actix_rt::test]
async fn bindings_the_sweep_expires_are_counted_as_expired_events() {
    let core = core_with_store();
    let now = std::time::SystemTime::now();
    use crate::registrar::actor::tests::binding;
    let unix_now = crate::registrar::binding::unix_seconds(now);
    core.location().apply(
        "9301",
        vec![
            binding("sip:9301@10.0.0.1", unix_now - 1),
            binding("sip:9301@10.0.0.2", unix_now - 1),
            binding("sip:9301@10.0.0.3", unix_now + 600),
        ],
    );
    assert_eq!(core.location().expire(now).len(), 2);
    let app = test::init_service(App::new().configure(routes(
        web::Data::new(core),
        web::Data::new(crate::transport::Outbound::new(Vec::new(), None)),
        web::Data::new(None),
        web::Data::new(Some(broken_writer().0)),
        web::Data::new(None),
    )))
    .await;
    let get = || test::TestRequest::get().uri("/metrics").to_request();
    for _ in 0..2 {
        // Scraping twice does not count them twice.
        let metrics = test::read_body(test::call_service(&app, get()).await).await;
        let metrics = String::from_utf8_lossy(&metrics);
        assert!(
            metrics.contains("dialtone_proxy_registration_events_total{event=\"expired\"} 2"),
            "{metrics}"
        );
    }
}

#[actix_rt::test]
async fn a_node_not_following_redis_is_not_ready_says_why_and_shows_in_the_metrics() {
    let link = crate::registrar::LinkStatus::for_test("redis redis://127.0.0.1:1");
    let app = test::init_service(App::new().configure(routes(
        web::Data::new(core_with_store()),
        web::Data::new(crate::transport::Outbound::new(Vec::new(), None)),
        web::Data::new(None),
        web::Data::new(None),
        web::Data::new(Some(link.clone())),
    )))
    .await;
    let get = |path: &str| test::TestRequest::get().uri(path).to_request();
    let response = test::call_service(&app, get("/readyz")).await;
    assert_eq!(response.status(), 503);
    let body = test::read_body(response).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("location store redis redis://127.0.0.1:1: connecting"),
        "{body}"
    );
    let metrics = test::read_body(test::call_service(&app, get("/metrics")).await).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(metric(&metrics, "dialtone_proxy_location_store_up"), 0.0);
    link.set_for_test(None);
    let response = test::call_service(&app, get("/readyz")).await;
    assert_eq!(response.status(), 200);
    let metrics = test::read_body(test::call_service(&app, get("/metrics")).await).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(metric(&metrics, "dialtone_proxy_location_store_up"), 1.0);
}
