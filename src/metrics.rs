//! Prometheus metrics. Labels are route names, providers, decisions and reasons: never raw
//! paths or identities.

use once_cell::sync::Lazy;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::time::Duration;

/// verigate's registry (exposed together with the default registry on `/metrics`).
pub static REGISTRY: Lazy<Registry> = Lazy::new(Registry::new);

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    // Registering twice only happens if the Lazy is re-run, which it is not.
    let _ = REGISTRY.register(Box::new(c.clone()));
    c
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    let _ = REGISTRY.register(Box::new(h.clone()));
    h
}

pub static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_requests_total",
        "Requests by route and gate decision",
        &["route", "decision"],
    )
});

pub static DROPPED_HEADERS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_dropped_headers_total",
        "Request headers kept from the app: invalid_name (a byte besides letters, digits and -), identity (verigate's own names in any spelling), environment (a path, prefix or user app servers take from their proxy)",
        &["why"],
    )
});

pub static VERIFICATIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_verifications_total",
        "Verification flows by provider, outcome (started, completed, failed) and reason",
        &["provider", "outcome", "reason"],
    )
});

pub static GUARDIAN: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_guardian_consents_total",
        "Guardian consent steps by route and outcome: handover (a guardian link made), accepted (a consent recorded), underage, is_child, verification_failed, link_expired, link_used",
        &["route", "outcome"],
    )
});

pub static SESSIONS_ISSUED: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_sessions_issued_total",
        "Session cookies issued, by provider",
        &["provider"],
    )
});

pub static AGE_STATUSES_ISSUED: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_age_statuses_issued_total",
        "Age status cookies issued (session.age_status_ttl), by provider",
        &["provider"],
    )
});

pub static TOKEN_FETCHES: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_provider_token_fetches_total",
        "Access tokens fetched from providers",
        &["provider"],
    )
});

pub static PROVIDER_CIRCUIT_OPEN: Lazy<IntGaugeVec> = Lazy::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "verigate_provider_circuit_open",
            "1 while a provider's circuit breaker is open (calls fail fast), 0 when closed",
        ),
        &["provider"],
    )
    .unwrap_or_else(|e| panic!("metric malformed: {e}"));
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
});

pub static PROVIDER_FAST_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_provider_fast_failures_total",
        "Provider calls refused without touching the network because the circuit was open",
        &["provider"],
    )
});

pub static CLIENTS_GONE: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_flow_clients_gone_total",
        "Flow requests ended because their client disconnected while verigate waited on the provider",
        &["provider"],
    )
});

pub static UPGRADED_TUNNELS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upgraded_tunnels_total",
        "WebSocket tunnels (a 101 passed) by route and how they ended: carried (bytes of the client's reached the app) or torn_down (none did)",
        &["route", "end"],
    )
});

/// A WebSocket tunnel ended (`UPGRADED_TUNNELS`).
pub fn upgraded_tunnel(route: &str, carried: bool) {
    let end = if carried { "carried" } else { "torn_down" };
    UPGRADED_TUNNELS.with_label_values(&[route, end]).inc();
}

pub static PROVIDER_CALLS: Lazy<HistogramVec> = Lazy::new(|| {
    histogram(
        "verigate_provider_call_seconds",
        "Latency of provider API calls",
        &["provider", "endpoint"],
        vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
    )
});

pub static UPSTREAM_RESPONSES: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upstream_responses_total",
        "Upstream responses by route and status class (2xx, 3xx, 4xx, 5xx)",
        &["route", "class"],
    )
});

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

pub static REQUEST_SECONDS: Lazy<HistogramVec> = Lazy::new(|| {
    histogram(
        "verigate_request_duration_seconds",
        "Whole request time as seen by verigate (upstream included), by route",
        &["route"],
        LATENCY_BUCKETS.to_vec(),
    )
});

pub static GATE_SECONDS: Lazy<HistogramVec> = Lazy::new(|| {
    histogram(
        "verigate_gate_duration_seconds",
        "Time verigate itself adds to a proxied request (its filters, upstream excluded), by route",
        &["route"],
        LATENCY_BUCKETS.to_vec(),
    )
});

pub static RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    let c = counter(
        "verigate_config_reloads_total",
        "Config reloads by result (success, failure)",
        &["result"],
    );
    // Published at 0 from the start, so a rate or an alert has a series before the first.
    for result in ["success", "failure"] {
        c.with_label_values(&[result]);
    }
    c
});

pub static BUILD_INFO: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    let g = prometheus::IntGaugeVec::new(
        Opts::new(
            "verigate_build_info",
            "Always 1; the running verigate's version",
        ),
        &["version"],
    )
    .unwrap_or_else(|e| panic!("metric verigate_build_info is malformed: {e}"));
    let _ = REGISTRY.register(Box::new(g.clone()));
    g.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    g
});

pub static LAST_RELOAD_OK: Lazy<Gauge> = Lazy::new(|| {
    let g = Gauge::new(
        "verigate_config_last_reload_success",
        "1 if the last config reload succeeded (or none was tried), 0 if it was refused",
    )
    .unwrap_or_else(|e| panic!("metric malformed: {e}"));
    g.set(1.0);
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
});

pub static ASSERTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_assertions_signed_total",
        "Signed identity assertions sent upstream, by route",
        &["route"],
    )
});

pub static KEPT_REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_kept_requests_total",
        "Form posts kept across the verification detour, by route and outcome (kept, resumed, kept_for_retry, gone, too_large, full, store_unavailable)",
        &["route", "outcome"],
    )
});

pub static RATE_LIMITED: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_rate_limited_total",
        "Requests refused 429 by a rate limit, by limit (start_per_client, start_per_provider, ifree_exchange_per_client, ifree_exchange_overall)",
        &["what"],
    )
});

pub static TLS_CERT_EXPIRY: Lazy<Gauge> = Lazy::new(|| {
    let g = Gauge::new(
        "verigate_tls_certificate_expiry_timestamp_seconds",
        "When the TLS listener's certificate expires (UNIX seconds; read at start and on every reload); absent without TLS",
    )
    .unwrap_or_else(|e| panic!("metric is malformed: {e}"));
    g
});

/// The listener certificate's expiry; exported from the first one on (without TLS, which a
/// reload cannot turn on, the gauge is never exported).
pub fn tls_certificate_expiry(not_after: Option<i64>) {
    if let Some(t) = not_after {
        TLS_CERT_EXPIRY.set(t as f64);
        let _ = REGISTRY.register(Box::new(TLS_CERT_EXPIRY.clone()));
    }
}

pub fn rate_limited(what: &str) {
    RATE_LIMITED.with_label_values(&[what]).inc();
}

pub fn kept(route: &str, outcome: &str) {
    KEPT_REQUESTS.with_label_values(&[route, outcome]).inc();
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name} is malformed: {e}"));
    let _ = REGISTRY.register(Box::new(g.clone()));
    g
}

pub static UPSTREAM_ADDRESSES: Lazy<IntGaugeVec> = Lazy::new(|| {
    gauge(
        "verigate_upstream_addresses",
        "Addresses an upstream's requests are spread over (its names resolved, all their addresses)",
        &["upstream"],
    )
});

pub static UPSTREAM_UNRESOLVED: Lazy<IntGaugeVec> = Lazy::new(|| {
    gauge(
        "verigate_upstream_names_unresolved",
        "Names of an upstream whose last resolution failed (their last good addresses are kept)",
        &["upstream"],
    )
});

pub static UPSTREAM_EJECTED: Lazy<IntGaugeVec> = Lazy::new(|| {
    gauge(
        "verigate_upstream_ejected_addresses",
        "Addresses of an upstream skipped after failed connects (as of the last scrape)",
        &["upstream"],
    )
});

pub static UPSTREAM_RESOLVE_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upstream_resolve_failures_total",
        "Resolutions of an upstream name that failed",
        &["upstream"],
    )
});

pub static UPSTREAM_CONNECT_FAILURES: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upstream_connect_failures_total",
        "Connects to an upstream address that failed (refused, timed out)",
        &["upstream"],
    )
});

pub static UPSTREAM_EJECTIONS: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upstream_ejections_total",
        "Times an upstream address was set aside after failed connects (upstream.eject_after)",
        &["upstream"],
    )
});

pub static UPSTREAM_SKIPPED: Lazy<IntCounterVec> = Lazy::new(|| {
    counter(
        "verigate_upstream_skipped_total",
        "Requests sent past a set-aside address to another one",
        &["upstream"],
    )
});

pub fn reload(ok: bool) {
    RELOADS
        .with_label_values(&[if ok { "success" } else { "failure" }])
        .inc();
    LAST_RELOAD_OK.set(if ok { 1.0 } else { 0.0 });
}

pub fn request(route: &str, decision: &str) {
    REQUESTS.with_label_values(&[route, decision]).inc();
}

pub fn verification(provider: &str, outcome: &str, reason: &str) {
    VERIFICATIONS
        .with_label_values(&[provider, outcome, reason])
        .inc();
}

pub fn guardian(outcome: &str, route: &str) {
    GUARDIAN.with_label_values(&[route, outcome]).inc();
}

pub fn session_issued(provider: &str) {
    SESSIONS_ISSUED.with_label_values(&[provider]).inc();
}

pub fn age_status_issued(provider: &str) {
    AGE_STATUSES_ISSUED.with_label_values(&[provider]).inc();
}

pub fn provider_token_fetch(provider: &str) {
    TOKEN_FETCHES.with_label_values(&[provider]).inc();
}

pub fn client_gone(provider: &str) {
    CLIENTS_GONE.with_label_values(&[provider]).inc();
}

pub fn provider_call(provider: &str, endpoint: &str, took: Duration) {
    PROVIDER_CALLS
        .with_label_values(&[provider, endpoint])
        .observe(took.as_secs_f64());
}

/// The name of every metric verigate defines (also those with no sample yet).
pub fn names() -> Vec<String> {
    use prometheus::core::Collector;
    let collectors: [&dyn Collector; 27] = [
        &*REQUESTS,
        &*GUARDIAN,
        &*RATE_LIMITED,
        &*TLS_CERT_EXPIRY,
        &*VERIFICATIONS,
        &*SESSIONS_ISSUED,
        &*AGE_STATUSES_ISSUED,
        &*TOKEN_FETCHES,
        &*PROVIDER_CIRCUIT_OPEN,
        &*PROVIDER_FAST_FAILURES,
        &*CLIENTS_GONE,
        &*PROVIDER_CALLS,
        &*UPSTREAM_RESPONSES,
        &*REQUEST_SECONDS,
        &*GATE_SECONDS,
        &*RELOADS,
        &*LAST_RELOAD_OK,
        &*ASSERTIONS,
        &*BUILD_INFO,
        &*KEPT_REQUESTS,
        &*UPSTREAM_ADDRESSES,
        &*UPSTREAM_UNRESOLVED,
        &*UPSTREAM_EJECTED,
        &*UPSTREAM_RESOLVE_FAILURES,
        &*UPSTREAM_CONNECT_FAILURES,
        &*UPSTREAM_EJECTIONS,
        &*UPSTREAM_SKIPPED,
    ];
    let mut out: Vec<String> = collectors
        .iter()
        .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Prometheus text of verigate's and the default registry's metrics.
pub fn render() -> Vec<u8> {
    Lazy::force(&REQUESTS);
    Lazy::force(&VERIFICATIONS);
    Lazy::force(&GUARDIAN);
    Lazy::force(&SESSIONS_ISSUED);
    Lazy::force(&TOKEN_FETCHES);
    Lazy::force(&PROVIDER_CIRCUIT_OPEN);
    Lazy::force(&PROVIDER_FAST_FAILURES);
    Lazy::force(&CLIENTS_GONE);
    Lazy::force(&PROVIDER_CALLS);
    Lazy::force(&UPSTREAM_RESPONSES);
    Lazy::force(&REQUEST_SECONDS);
    Lazy::force(&GATE_SECONDS);
    Lazy::force(&RELOADS);
    Lazy::force(&BUILD_INFO);
    Lazy::force(&LAST_RELOAD_OK);
    Lazy::force(&ASSERTIONS);
    Lazy::force(&KEPT_REQUESTS);
    Lazy::force(&UPSTREAM_ADDRESSES);
    Lazy::force(&UPSTREAM_UNRESOLVED);
    Lazy::force(&UPSTREAM_EJECTED);
    Lazy::force(&UPSTREAM_RESOLVE_FAILURES);
    Lazy::force(&UPSTREAM_CONNECT_FAILURES);
    Lazy::force(&UPSTREAM_EJECTIONS);
    Lazy::force(&UPSTREAM_SKIPPED);
    Lazy::force(&RATE_LIMITED);
    let mut families = REGISTRY.gather();
    families.extend(prometheus::gather());
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&families, &mut out);
    out
}

/// Metric handles for one route, resolved once per config so that a request records its
/// metrics without label lookups.
pub struct RouteMetrics {
    route: String,
    passed: prometheus::IntCounter,
    duration: prometheus::Histogram,
    gate: prometheus::Histogram,
    upstream: [prometheus::IntCounter; 4],
}

impl RouteMetrics {
    pub fn new(route: &str) -> Self {
        let class = |c: &str| UPSTREAM_RESPONSES.with_label_values(&[route, c]);
        RouteMetrics {
            route: route.to_string(),
            passed: REQUESTS.with_label_values(&[route, "passed"]),
            duration: REQUEST_SECONDS.with_label_values(&[route]),
            gate: GATE_SECONDS.with_label_values(&[route]),
            upstream: [class("2xx"), class("3xx"), class("4xx"), class("5xx")],
        }
    }

    /// One request's metrics. `upstream`: its status and the gate's own time, when proxied.
    pub fn record(&self, decision: &str, total: Duration, upstream: Option<(u16, Duration)>) {
        if decision == "passed" {
            self.passed.inc();
        } else {
            request(&self.route, decision);
        }
        self.duration.observe(total.as_secs_f64());
        if let Some((status, gate)) = upstream {
            let i = match status {
                200..=299 => 0,
                300..=399 => 1,
                400..=499 => 2,
                _ => 3,
            };
            self.upstream[i].inc();
            self.gate.observe(gate.as_secs_f64());
        }
    }
}
