//! The admin listener: health, readiness and metrics labelled by route and provider only.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_after_traffic() {
    let env = Env::start().await;
    let c = &env.client;
    let r = c
        .get(format!("http://{}/healthz", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("http://{}/readyz", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("http://{}/nope", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let before = env.metrics().await;
    let count = |m: &str, line: &str| -> u64 {
        m.lines()
            .find(|l| l.starts_with(line))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let passed_open = r#"verigate_requests_total{decision="passed",route="everything-else"}"#;
    let redirected = r#"verigate_requests_total{decision="redirected_to_verify",route="member"}"#;
    let unauth = r#"verigate_requests_total{decision="unauthenticated_api",route="member"}"#;
    let completed =
        r#"verigate_verifications_total{outcome="completed",provider="iamport",reason=""}"#;
    let (p0, r0, u0, c0) = (
        count(&before, passed_open),
        count(&before, redirected),
        count(&before, unauth),
        count(&before, completed),
    );

    let mut b = env.browser();
    b.get_html("/open").await;
    b.get_html("/open/2").await;
    b.get_html("/member/x").await;
    b.get_json("/member/x").await;
    b.verify_redirect(env.sandbox, "/member/x", &Person::named("메트릭"))
        .await;

    // Metrics are process-wide and tests run in parallel: counters moved at least this much.
    // Request counters move in the logging phase, just after the response: poll.
    let moved = |m: &str| {
        count(m, passed_open) >= p0 + 2
            && count(m, redirected) > r0
            && count(m, unauth) > u0
            && count(m, completed) > c0
    };
    let after = env.metrics_until(moved).await;
    assert!(moved(&after), "{after}");
    assert!(after.contains(
        "verigate_provider_call_seconds_bucket{endpoint=\"certifications\",provider=\"iamport\""
    ));
    // Never raw paths or identities in labels.
    assert!(!after.contains("/member/x"));
    assert!(!after.contains("메트릭"));
}

/// What ops can read before anything happened: the version, both reload results at 0, and the
/// process's own figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_reloads_at_zero_and_process_metrics() {
    let env = Env::start().await;
    let m = env.metrics().await;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        m.contains(&format!("verigate_build_info{{version=\"{version}\"}} 1")),
        "{m}"
    );
    for result in ["success", "failure"] {
        assert!(
            m.lines().any(|l| l.starts_with(&format!(
                "verigate_config_reloads_total{{result=\"{result}\"}} "
            ))),
            "{result}: {m}"
        );
    }
    assert!(metric(&m, "process_resident_memory_bytes") > 0.0, "{m}");
    assert!(m.contains("process_cpu_seconds_total"), "{m}");
}
