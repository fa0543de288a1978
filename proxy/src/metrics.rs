//! The proxy's Prometheus metrics, following Prometheus conventions: base units, `_total`
//! counters, `_seconds` histograms, bounded label values, and every series created at zero on
//! start so dashboards and alerts see it before the first event.

use prometheus::{
    CounterVec, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Response classes used as label values: a status's class is `CLASSES[status / 100 - 1]`,
/// and anything past 5xx counts as 6xx.
pub const CLASSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Registration events used as label values, in the order of [`RegistrationEvent`].
pub const REGISTRATION_EVENTS: &[&str] =
    &["created", "refreshed", "removed", "expired", "rejected"];

/// What happened to a binding (or a REGISTER), for `dialtone_proxy_registration_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// A contact the AOR did not have was bound.
    Created = 0,
    /// A binding's expiry was renewed.
    Refreshed = 1,
    /// A binding was removed by a REGISTER (`expires=0`, `Contact: *`).
    Removed = 2,
    /// A binding lapsed and the expiry sweep removed it.
    Expired = 3,
    /// A REGISTER was refused (4xx/5xx from the registrar rules).
    Rejected = 4,
}

/// Auth failure reasons used as label values.
pub const AUTH_FAILURES: &[&str] = &["bad_credentials", "wrong_user", "malformed", "throttled"];

/// The children of a counter vector, one per label value in the order the values were given,
/// looked up once at start. `with_label_values` hashes the label and takes the vector's lock
/// on every call, and the request path counts two or three things per message.
#[derive(Clone)]
pub struct Children(Vec<IntCounter>);

impl Children {
    fn of(vec: &IntCounterVec, values: &[&str]) -> Children {
        Children(values.iter().map(|v| vec.with_label_values(&[v])).collect())
    }

    fn at(&self, index: usize) -> &IntCounter {
        // The indexes come from the same lists the children were made from; the last child
        // ("other", "6xx") takes anything past the end rather than a panic.
        &self.0[index.min(self.0.len() - 1)]
    }
}

/// The index of a status code's class in [`CLASSES`].
fn class_index(status: u16) -> usize {
    usize::from(status / 100).saturating_sub(1)
}

/// All metrics of one proxy process.
#[derive(Clone)]
pub struct ProxyMetrics {
    pub registry: Registry,
    pub requests_received: IntCounterVec,
    pub responses_sent: IntCounterVec,
    pub responses_relayed: IntCounterVec,
    pub transactions_active: IntGauge,
    pub transaction_duration: Histogram,
    pub registrations_active: IntGauge,
    pub registration_events: IntCounterVec,
    pub store_failing: IntGauge,
    pub store_failed_commits: IntCounter,
    /// From another node's commit to this node applying it (Redis store).
    pub location_sync: Histogram,
    /// 1 while this node follows the shared location store (Redis), 0 while it does not.
    pub location_store_up: IntGauge,
    /// Other nodes' authentication events and voicemail counts applied here (Redis store).
    pub cluster_events_applied: IntCounter,
    pub auth_challenges: IntCounter,
    pub auth_failures: IntCounterVec,
    pub throttled_sources: IntCounter,
    pub calls_active: IntGauge,
    pub calls_completed: IntCounter,
    pub retransmissions: IntCounter,
    /// Requests sent on to the next address DNS gave because the one tried failed.
    pub failovers: IntCounter,
    /// Requests too large for UDP whose TCP connection was refused, sent over UDP instead.
    pub udp_fallbacks: IntCounter,
    pub parse_errors: IntCounterVec,
    pub socket_errors: IntCounterVec,
    pub tcp_connections: IntGauge,
    /// Workers receiving each UDP listen address's datagrams (`udp-balance`); its series are
    /// made by the server at start, one per address.
    pub udp_receiving_workers: IntGaugeVec,
    /// CPU time of each UDP worker's thread, per listen address and worker; made like
    /// `udp_receiving_workers`.
    pub udp_worker_cpu_seconds: CounterVec,
    /// Datagrams each UDP worker received, per listen address and worker; made like
    /// `udp_receiving_workers`.
    pub udp_datagrams_received: IntCounterVec,
    pub build_info: IntGaugeVec,
    requests_by_method: Children,
    sent_by_class: Children,
    relayed_by_class: Children,
    registration_events_by_kind: Children,
}

impl std::fmt::Debug for ProxyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyMetrics")
    }
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    label: &str,
    values: &[&str],
) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label])
        .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
    for v in values {
        c.with_label_values(&[v]);
    }
    register(registry, Box::new(c.clone()));
    c
}

fn register(registry: &Registry, c: Box<dyn prometheus::core::Collector>) {
    // Names are static and distinct; a failure here is a programming error caught by tests.
    if let Err(e) = registry.register(c) {
        unreachable!("metric registration failed: {e}");
    }
}

impl ProxyMetrics {
    /// Creates and registers every metric, each series at zero.
    pub fn new() -> ProxyMetrics {
        let registry = Registry::new();
        let methods = dialtone_sip::Method::METRIC_LABELS;
        let requests_received = counter_vec(
            &registry,
            "dialtone_proxy_requests_received_total",
            "SIP requests received, by method.",
            "method",
            methods,
        );
        let responses_sent = counter_vec(
            &registry,
            "dialtone_proxy_responses_sent_total",
            "SIP responses generated by the proxy itself, by class.",
            "class",
            CLASSES,
        );
        let responses_relayed = counter_vec(
            &registry,
            "dialtone_proxy_responses_relayed_total",
            "SIP responses relayed upstream, by class.",
            "class",
            CLASSES,
        );
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            register(&registry, Box::new(g.clone()));
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help)
                .unwrap_or_else(|e| unreachable!("static metric definition {name}: {e}"));
            register(&registry, Box::new(c.clone()));
            c
        };
        let transactions_active = gauge(
            "dialtone_proxy_transactions_active",
            "Server transactions currently held.",
        );
        let transaction_duration = Histogram::with_opts(
            HistogramOpts::new(
                "dialtone_proxy_transaction_duration_seconds",
                "Time from a request's arrival to its final response.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 32.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("histogram: {e}"));
        register(&registry, Box::new(transaction_duration.clone()));
        let registrations_active = gauge(
            "dialtone_proxy_registrations_active",
            "Registered contact bindings.",
        );
        let registration_events = counter_vec(
            &registry,
            "dialtone_proxy_registration_events_total",
            "Registration events, by kind.",
            "event",
            REGISTRATION_EVENTS,
        );
        let store_failing = gauge(
            "dialtone_proxy_registrar_store_failing",
            "1 while the last commit of the registrar store failed: some bindings are in memory only.",
        );
        let store_failed_commits = counter(
            "dialtone_proxy_registrar_store_failed_commits_total",
            "Registrar store commits that failed (their changes are kept and committed again).",
        );
        let location_sync = Histogram::with_opts(
            HistogramOpts::new(
                "dialtone_proxy_location_sync_seconds",
                "Time from another node's commit to the Redis location store to this node \
                 applying the change to its memory.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("histogram: {e}"));
        register(&registry, Box::new(location_sync.clone()));
        let location_store_up = gauge(
            "dialtone_proxy_location_store_up",
            "1 while this node follows the shared location store (Redis): subscribed and \
             loaded; 0 while not (calls then use the bindings in memory). 1 for redb.",
        );
        location_store_up.set(1);
        let cluster_events_applied = counter(
            "dialtone_proxy_cluster_events_applied_total",
            "Other nodes' authentication failures, nonce uses and voicemail counts applied by \
             this node (proxies sharing a Redis location store).",
        );
        let auth_challenges = counter(
            "dialtone_proxy_auth_challenges_total",
            "401/407 challenges sent.",
        );
        let auth_failures = counter_vec(
            &registry,
            "dialtone_proxy_auth_failures_total",
            "Authentication failures, by reason.",
            "reason",
            AUTH_FAILURES,
        );
        let throttled_sources = counter(
            "dialtone_proxy_auth_throttled_total",
            "Requests refused because their source or user failed authentication too often.",
        );
        let calls_active = gauge("dialtone_proxy_calls_active", "Calls established now.");
        let calls_completed = counter(
            "dialtone_proxy_calls_completed_total",
            "Calls that were established and then ended with BYE.",
        );
        let retransmissions = counter(
            "dialtone_proxy_retransmissions_total",
            "Requests and responses retransmitted by the proxy's transactions.",
        );
        let failovers = counter(
            "dialtone_proxy_failovers_total",
            "Requests sent on to the next address DNS gave (RFC 3263 section 4.3) because the \
             one tried was unreachable, did not answer, or answered 503.",
        );
        let udp_fallbacks = counter(
            "dialtone_proxy_udp_fallbacks_total",
            "Requests sent over TCP only because of their size whose connection was refused \
             or reset, retried over UDP (RFC 3261 section 18.1.1).",
        );
        let parse_errors = counter_vec(
            &registry,
            "dialtone_proxy_parse_errors_total",
            "Messages that failed to parse, by kind.",
            "kind",
            dialtone_sip::ParseError::KINDS,
        );
        let socket_errors = counter_vec(
            &registry,
            "dialtone_proxy_socket_errors_total",
            "Socket send or receive errors, by transport.",
            "transport",
            &["udp", "tcp"],
        );
        let tcp_connections = gauge(
            "dialtone_proxy_tcp_connections",
            "Open SIP connections over TCP, accepted or opened by the proxy.",
        );
        let build_info = IntGaugeVec::new(
            Opts::new("dialtone_proxy_build_info", "Build information; always 1."),
            &["version"],
        )
        .unwrap_or_else(|e| unreachable!("build info: {e}"));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        register(&registry, Box::new(build_info.clone()));
        let udp_receiving_workers = IntGaugeVec::new(
            Opts::new(
                "dialtone_proxy_udp_receiving_workers",
                "Workers receiving the datagrams of a UDP listen address: 1 while one keeps up \
                 (udp-balance adaptive), all of them under load.",
            ),
            &["listen"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        register(&registry, Box::new(udp_receiving_workers.clone()));
        let udp_worker_cpu_seconds = CounterVec::new(
            Opts::new(
                "dialtone_proxy_udp_worker_cpu_seconds_total",
                "CPU time of a UDP worker's thread (updated ten times a second).",
            ),
            &["listen", "worker"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        register(&registry, Box::new(udp_worker_cpu_seconds.clone()));
        let udp_datagrams_received = IntCounterVec::new(
            Opts::new(
                "dialtone_proxy_udp_datagrams_received_total",
                "Datagrams a UDP worker received.",
            ),
            &["listen", "worker"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        register(&registry, Box::new(udp_datagrams_received.clone()));
        ProxyMetrics {
            requests_by_method: Children::of(&requests_received, methods),
            sent_by_class: Children::of(&responses_sent, CLASSES),
            relayed_by_class: Children::of(&responses_relayed, CLASSES),
            registration_events_by_kind: Children::of(&registration_events, REGISTRATION_EVENTS),
            registry,
            requests_received,
            responses_sent,
            responses_relayed,
            transactions_active,
            transaction_duration,
            registrations_active,
            registration_events,
            store_failing,
            store_failed_commits,
            location_sync,
            location_store_up,
            cluster_events_applied,
            auth_challenges,
            auth_failures,
            throttled_sources,
            calls_active,
            calls_completed,
            retransmissions,
            failovers,
            udp_fallbacks,
            parse_errors,
            socket_errors,
            tcp_connections,
            udp_receiving_workers,
            udp_worker_cpu_seconds,
            udp_datagrams_received,
            build_info,
        }
    }

    /// `dialtone_proxy_requests_received_total` for `method`.
    pub fn request_received(&self, method: &dialtone_sip::Method<'_>) -> &IntCounter {
        self.requests_by_method.at(method.metric_index())
    }

    /// `dialtone_proxy_responses_sent_total` for the class of `status`.
    pub fn response_sent(&self, status: u16) -> &IntCounter {
        self.sent_by_class.at(class_index(status))
    }

    /// `dialtone_proxy_responses_relayed_total` for the class of `status`.
    pub fn response_relayed(&self, status: u16) -> &IntCounter {
        self.relayed_by_class.at(class_index(status))
    }

    /// `dialtone_proxy_registration_events_total` for `event`.
    pub fn registration_event(&self, event: RegistrationEvent) -> &IntCounter {
        self.registration_events_by_kind.at(event as usize)
    }

    /// The text exposition format for `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_exists_at_zero_from_start() {
        let m = ProxyMetrics::new();
        let text = m.render();
        assert!(text.contains("dialtone_proxy_requests_received_total{method=\"INVITE\"} 0"));
        assert!(text.contains("dialtone_proxy_responses_relayed_total{class=\"6xx\"} 0"));
        assert!(text.contains("dialtone_proxy_parse_errors_total{kind=\"bad_header\"} 0"));
        assert!(text.contains("dialtone_proxy_transaction_duration_seconds_bucket"));
        assert!(text.contains("dialtone_proxy_build_info{version="));
        m.requests_received.with_label_values(&["REGISTER"]).inc();
        assert!(m
            .render()
            .contains("dialtone_proxy_requests_received_total{method=\"REGISTER\"} 1"));
    }

    #[test]
    fn the_resolved_counters_are_the_labelled_series() {
        let m = ProxyMetrics::new();
        m.request_received(&dialtone_sip::Method::Bye).inc();
        m.request_received(&dialtone_sip::Method::Extension("FOO"))
            .inc_by(2);
        m.response_sent(487).inc();
        m.response_relayed(180).inc_by(3);
        m.response_relayed(999).inc();
        m.registration_event(RegistrationEvent::Expired).inc_by(4);
        m.registration_event(RegistrationEvent::Rejected).inc();
        let text = m.render();
        for line in [
            "dialtone_proxy_requests_received_total{method=\"BYE\"} 1",
            "dialtone_proxy_requests_received_total{method=\"other\"} 2",
            "dialtone_proxy_requests_received_total{method=\"INVITE\"} 0",
            "dialtone_proxy_responses_sent_total{class=\"4xx\"} 1",
            "dialtone_proxy_responses_relayed_total{class=\"1xx\"} 3",
            "dialtone_proxy_responses_relayed_total{class=\"6xx\"} 1",
            "dialtone_proxy_registration_events_total{event=\"expired\"} 4",
            "dialtone_proxy_registration_events_total{event=\"rejected\"} 1",
            "dialtone_proxy_registration_events_total{event=\"created\"} 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
