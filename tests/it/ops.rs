//! Operating verigate: metrics after traffic, hot reload (also under load, also refused),
//! the signed identity assertion checked against the published JWKS, and logs free of PII.

use crate::common::*;
use jsonwebtoken::decode_header;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// `identity_headers` with the signed assertion, its key in the secret `key_env`.
fn assertion(key_env: &str) -> Value {
    json!({
        "prefix": "X-Verified-",
        "assertion": { "enabled": true, "key_env": key_env, "audience": "shop-app", "issuer": "verigate-test" },
    })
}

/// The route a reload adds to the shop's: `/open` gated on Iamport.
fn vip() -> Route {
    Route::prefix("/open").name("vip").providers(["iamport"])
}

fn metric(m: &str, line: &str) -> f64 {
    m.lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn jwks(env: &Env) -> Value {
    env.client
        .get(env.url("/.verigate/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn verify(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    verify_assertion(token, jwks, audience)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_verifies_against_published_jwks() {
    let proxy = Proxy::shop()
        .set("identity_headers", assertion("VG_ASSERT"))
        .reloadable();
    let env = Env::with(proxy.clone()).await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/adult", &Person::adult())
        .await;
    assert_eq!(b.get_html("/adult").await.status(), 200);
    let up = env.last_upstream();
    let token = up["headers"]["x-verified-assertion"][0]
        .as_str()
        .expect("assertion header")
        .to_string();
    let keys = jwks(&env).await;
    let claims = verify(&token, &keys, "shop-app").unwrap();
    assert_eq!(claims["sub"], up["headers"]["x-verified-person"][0]);
    assert_eq!(
        claims["unique_in_site"],
        up["headers"]["x-verified-unique-in-site"][0]
    );
    assert_eq!(claims["age_ok"], true);
    assert_eq!(claims["provider"], "iamport");
    assert_eq!(claims["aud"], "shop-app");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    let life = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(life > 0 && life <= 60, "{life}");
    // A foreign audience is refused by the same check.
    assert!(verify(&token, &keys, "other-app").is_err());
    // An expired assertion (signed with the real key, backdated) is refused.
    let signer =
        verigate::assertion::Signer::from_pem(&assertion_keys().0, "verigate-test", "shop-app", 60)
            .unwrap();
    let old = signer
        .sign(
            "x",
            None,
            "iamport",
            0,
            chrono::Utc::now().timestamp() - 3600,
        )
        .unwrap();
    assert!(verify(&old, &keys, "shop-app")
        .unwrap_err()
        .contains("Expired"));
    // A client cannot smuggle its own assertion: on an open route none arrives.
    env.client
        .get(env.url("/open"))
        .header("X-Verified-Assertion", &token)
        .send()
        .await
        .unwrap();
    assert!(env.last_upstream()["headers"]["x-verified-assertion"].is_null());

    // Rotation by reload: the new key signs; the old one stays published for the old tokens.
    env.write_config(&proxy.set("identity_headers", assertion("VG_ASSERT2")));
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let keys2 = jwks(&env).await;
    assert_eq!(keys2["keys"].as_array().unwrap().len(), 2);
    verify(&token, &keys2, "shop-app").expect("old token still verifies during rotation");
    assert_eq!(b.get_html("/adult").await.status(), 200);
    let new_token = env.last_upstream()["headers"]["x-verified-assertion"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        decode_header(&new_token).unwrap().kid,
        decode_header(&token).unwrap().kid
    );
    verify(&new_token, &keys2, "shop-app").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_config_and_refuses_bad_ones() {
    // Alone in its process: the reload counters and gauge then move with this test only.
    if !skip::alone("ops::reload_swaps_config_and_refuses_bad_ones") {
        return;
    }
    let original = Proxy::shop().reloadable();
    let env = Env::with(original.clone()).await;
    let (ok, failed) = (
        "verigate_config_reloads_total{result=\"success\"}",
        "verigate_config_reloads_total{result=\"failure\"}",
    );
    let last_ok = "verigate_config_last_reload_success";
    let before = env.metrics().await;
    // Reloads (success, failure) since the test began, and the last-reload gauge.
    let reloads = |m: &str| {
        (
            metric(m, ok) - metric(&before, ok),
            metric(m, failed) - metric(&before, failed),
            metric(m, last_ok),
        )
    };
    assert_eq!(
        env.client
            .get(env.url("/open/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Gate a new prefix.
    let gated = original.clone().route_before("everything-else", vip());
    env.write_config(&gated);
    assert_eq!(env.reload().await, (200, "ok\n".into()));
    assert_eq!(
        env.client
            .get(env.url("/open/x"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(reloads(&env.metrics().await), (1.0, 0.0, 1.0));

    // A broken config is refused with every problem; the previous one keeps serving. (The
    // bad values are spliced into the file's text: the builders write only good ones.)
    let broken = env
        .config_text(&gated)
        .replace("min_age: 19", "min_age: nineteen")
        .replace("timeout: 1s", "timeout: soon");
    env.write_config_text(&broken);
    let (status, body) = env.reload().await;
    assert_eq!(status, 400);
    assert!(
        body.contains("min_age") && body.contains("providers.iamport.timeout"),
        "{body}"
    );
    assert_eq!(
        env.client
            .get(env.url("/open/x"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(reloads(&env.metrics().await), (1.0, 1.0, 0.0));
    env.write_config_text("listen: [unclosed");
    assert_eq!(env.reload().await.0, 400);
    // Settings that need a restart are refused, not half-applied.
    env.write_config(&original.clone().set("threads", json!(3)));
    let (status, body) = env.reload().await;
    assert_eq!(status, 400);
    assert!(
        body.contains("threads: changing it needs a restart"),
        "{body}"
    );
    assert_eq!(reloads(&env.metrics().await), (1.0, 3.0, 0.0));
    // Back to the original.
    env.write_config(&original);
    assert_eq!(env.reload().await.0, 200);
    assert_eq!(reloads(&env.metrics().await), (2.0, 3.0, 1.0));
    assert_eq!(
        env.client
            .get(env.url("/open/x"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_load_drops_nothing() {
    let original = Proxy::shop().reloadable();
    let env = Arc::new(Env::with(original.clone()).await);
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let total = 3000;
    let workers = 30;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (env, failures, done) = (env.clone(), failures.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..total / workers {
                let r = env
                    .client
                    .get(env.url(&format!("/open/{w}/{i}")))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Reload repeatedly while the requests are in flight.
    let mut reloads = 0;
    while done.load(Ordering::SeqCst) < total {
        let variant = if reloads % 2 == 0 {
            original.clone().session_ttl("11h")
        } else {
            original.clone()
        };
        env.write_config(&variant);
        assert_eq!(env.reload().await.0, 200);
        reloads += 1;
        tokio::task::yield_now().await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        reloads >= 3,
        "only {reloads} reloads happened during the load"
    );
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "requests failed across {reloads} reloads"
    );
    eprintln!("{total} requests, {reloads} reloads, 0 failures");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    // Alone in its process: every counter then moves with this test's traffic only, so each
    // is checked for exactly what the traffic should add.
    if !skip::alone("ops::metrics_move_with_traffic") {
        return;
    }
    let env = Env::start().await;
    let before = env.metrics().await;
    for i in 0..5 {
        env.client
            .get(env.url(&format!("/page/{i}")))
            .send()
            .await
            .unwrap();
    }
    let mut kid = env.browser();
    kid.verify_redirect(env.sandbox, "/adult", &Person::born("20150101"))
        .await;
    assert_eq!(kid.get_html("/adult").await.status(), 403);
    // Five pages through the open route; one minor verified with Iamport (one token, one
    // certification lookup), then refused at the adult route.
    let expected: &[(&str, f64)] = &[
        (
            r#"verigate_upstream_responses_total{class="2xx",route="everything-else"}"#,
            5.0,
        ),
        (
            r#"verigate_requests_total{decision="passed",route="everything-else"}"#,
            5.0,
        ),
        (
            r#"verigate_gate_duration_seconds_count{route="everything-else"}"#,
            5.0,
        ),
        (
            r#"verigate_request_duration_seconds_count{route="everything-else"}"#,
            5.0,
        ),
        (
            r#"verigate_requests_total{decision="underage",route="adult"}"#,
            1.0,
        ),
        (
            r#"verigate_request_duration_seconds_count{route="adult"}"#,
            1.0,
        ),
        (
            r#"verigate_gate_duration_seconds_count{route="adult"}"#,
            0.0,
        ),
        (r#"verigate_sessions_issued_total{provider="iamport"}"#, 1.0),
        (
            r#"verigate_verifications_total{outcome="started",provider="iamport",reason=""}"#,
            1.0,
        ),
        (
            r#"verigate_verifications_total{outcome="completed",provider="iamport",reason=""}"#,
            1.0,
        ),
        (
            r#"verigate_provider_token_fetches_total{provider="iamport"}"#,
            1.0,
        ),
        (
            r#"verigate_provider_call_seconds_count{endpoint="getToken",provider="iamport"}"#,
            1.0,
        ),
        (
            r#"verigate_provider_call_seconds_count{endpoint="certifications",provider="iamport"}"#,
            1.0,
        ),
    ];
    let moved = |m: &str| {
        expected
            .iter()
            .all(|(sample, by)| metric(m, sample) - metric(&before, sample) == *by)
    };
    let after = env.metrics_until(moved).await;
    for (sample, by) in expected {
        assert_eq!(
            metric(&after, sample) - metric(&before, sample),
            *by,
            "{sample}"
        );
    }
    // No reload happened: the gauge keeps its initial 1.
    assert_eq!(metric(&after, "verigate_config_last_reload_success"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_logs_carry_no_personal_data_and_reload_on_sighup() {
    let (router, _sim) =
        verigate::demo::sandbox::router(verigate::providers::sandbox::SandboxOptions::default());
    let sandbox = spawn_router(router).await;
    let echo = Arc::new(Echo::default());
    let upstream = spawn_router(
        axum::Router::new()
            .fallback(axum::routing::any(|| async { "ok" }))
            .with_state(echo),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.db");
    let proxy = Proxy::shop()
        .store(Storage::sqlite(&db))
        .set("identity_headers", assertion("VG_ASSERT"));
    let text = proxy.to_yaml(sandbox, upstream);
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(&cfg, &text).unwrap();
    let p = start_binary(&cfg);
    let mut b = Browser {
        env_proxy: p.addr,
        client: client(),
        jar: Default::default(),
        origin: None,
    };
    let person = Person {
        name: "고유한이름".into(),
        birth: "19870615".into(),
        phone: "01098765432".into(),
        ..Person::adult()
    };
    let flow = b.start_iamport("/signup").await;
    let back = b.certify(sandbox, &flow, &person, true).await;
    let r = b
        .send(b.client.get(back["location"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(b.post("/signup", "user=x").await.status(), 200);
    assert_eq!(b.get_html("/member").await.status(), 200);
    let cert = sandbox_certification(sandbox, back["imp_uid"].as_str().unwrap()).await;

    // SIGHUP reloads: gate /open, then see it refused.
    let gated = proxy.route_before("everything-else", vip());
    std::fs::write(&cfg, gated.to_yaml(sandbox, upstream)).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &p.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let c = client();
    let mut gated = false;
    for _ in 0..300 {
        if c.get(format!("http://{}/open", p.addr))
            .send()
            .await
            .unwrap()
            .status()
            == 401
        {
            gated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(gated, "SIGHUP reload took effect");
    // `verigate reload -c FILE` goes through the admin listener, and reports refusals.
    std::fs::write(&cfg, text.replace("min_age: 19", "min_age: -3")).unwrap();
    let admin = p.admin.unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["reload", "--admin", &admin, "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("routes[0].require.min_age"), "{said}");
    let scrape = || async {
        client()
            .get(format!("http://{admin}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(
        metric(&scrape().await, "verigate_config_last_reload_success"),
        0.0
    );
    std::fs::write(&cfg, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["reload", "--admin", &admin, "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let m = scrape().await;
    assert_eq!(metric(&m, "verigate_config_last_reload_success"), 1.0);
    assert_eq!(
        metric(&m, "verigate_config_reloads_total{result=\"success\"}"),
        2.0,
        "SIGHUP and verigate reload"
    );
    assert_eq!(
        metric(&m, "verigate_config_reloads_total{result=\"failure\"}"),
        1.0
    );

    // Logs: access lines with route and decision, and nothing personal or secret anywhere.
    let mut log = p.log_text();
    for _ in 0..300 {
        if log.contains("\"route\":\"member\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        log = p.log_text();
    }
    assert!(log.contains("\"target\":\"verigate::access\""), "{log}");
    assert!(log.contains("\"decision\":\"passed\""), "{log}");
    let session_cookie = b.jar.get("vg").unwrap().clone();
    for secret in [
        "고유한이름",
        "%EA%B3%A0",
        "19870615",
        "1987-06-15",
        "01098765432",
        cert["unique_key"].as_str().unwrap(),
        cert["unique_in_site"].as_str().unwrap(),
        session_cookie.as_str(),
        &flow.flow_cookie,
        "sandbox_secret",
        SESSION_KEY,
    ] {
        assert!(!log.contains(secret), "log leaks {secret}:\n{log}");
    }
    assert!(!log.contains("BEGIN PRIVATE KEY"));
}

#[test]
fn dashboard_uses_only_metrics_verigate_exports() {
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/grafana-dashboard.json"
    ))
    .unwrap();
    let _: Value = serde_json::from_str(&dash).expect("dashboard is JSON");
    let exported = verigate::metrics::names();
    let mut names: Vec<&str> = dash
        .match_indices("verigate_")
        .map(|(i, _)| {
            let rest = &dash[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10);
    for n in names {
        let base = n.trim_end_matches("_bucket");
        assert!(exported.iter().any(|e| e == base), "{n} is not exported");
    }
}
