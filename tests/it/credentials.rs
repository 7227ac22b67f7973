//! Provider credentials known before a shopper needs them: `check --online` tries them (exit
//! 2 on a refusal), `verigate run` tries them at start and after reloads and reports each
//! provider on `/readyz` and as `verigate_provider_credentials_ok`; a shopper who meets a
//! merchant misconfiguration is told the site's verification is not available, not to wait.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Command;

const WRONG: &str = "wrong-secret-0123456789abcdef";

/// Iamport's secret from a file (rewritable between reloads), PortOne's from `PORTONE_SECRET`
/// (which `env` may make wrong), TomoIDV as the sandbox knows it.
fn config(imp_secret_file: &std::path::Path) -> Proxy {
    Proxy::shop()
        .provider(Provider::iamport().set("api_secret_env", Value::Null).set(
            "api_secret_file",
            json!(imp_secret_file.display().to_string()),
        ))
        .provider(Provider::portone())
        .provider(Provider::tomo())
}

/// `to_yaml` without the keys set to null (a provider section takes `_env` or `_file`).
fn yaml(proxy: &Proxy, sandbox: std::net::SocketAddr, upstream: std::net::SocketAddr) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = proxy.to_value(sandbox, upstream);
    strip(&mut v);
    serde_yaml::to_string(&v).expect("yaml")
}

fn check_online(cfg: &std::path::Path, portone_secret: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["check", "--online", "-c"])
        .arg(cfg)
        .env("VG_KEYS", SESSION_KEY)
        .env("VG_HASH", HASH_KEY)
        .env("IMP_KEY", "sandbox_key")
        .env("PORTONE_SECRET", portone_secret)
        .env(
            "TOMO_KEY",
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK.trim(),
        )
        .output()
        .expect("check --online");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_tries_every_providers_credentials() {
    let (router, _sim) =
        verigate::demo::sandbox::router(verigate::providers::sandbox::SandboxOptions::default());
    let sandbox = spawn_router(router).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("imp_secret");
    std::fs::write(&secret, WRONG).expect("write");
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(&cfg, yaml(&config(&secret), sandbox, NO_SANDBOX)).expect("write");

    // Plain `check` does not call anyone: ok.
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["check", "-c"])
        .arg(&cfg)
        .env("VG_KEYS", SESSION_KEY)
        .env("VG_HASH", HASH_KEY)
        .env("IMP_KEY", "sandbox_key")
        .env("PORTONE_SECRET", WRONG)
        .env(
            "TOMO_KEY",
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK.trim(),
        )
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let (code, text) = check_online(&cfg, WRONG);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("provider iamport: provider refused our credentials"),
        "{text}"
    );
    assert!(
        text.contains("provider portone: provider refused our credentials"),
        "{text}"
    );
    assert!(text.contains("provider tomo: credentials ok"), "{text}");
    assert!(!text.contains(WRONG), "a secret repeated: {text}");
    assert!(!text.lines().any(|l| l == "ok"), "{text}");

    std::fs::write(&secret, verigate::providers::iamport::sandbox::API_SECRET).expect("write");
    let (code, text) = check_online(&cfg, verigate::providers::portone::sandbox::API_SECRET);
    assert_eq!(code, Some(0), "{text}");
    for p in ["iamport", "portone", "tomo"] {
        assert!(
            text.contains(&format!("provider {p}: credentials ok")),
            "{text}"
        );
    }
    assert_eq!(text.lines().last(), Some("ok"));

    // A provider that cannot be reached fails the check too.
    std::fs::write(&cfg, yaml(&config(&secret), NO_SANDBOX, NO_SANDBOX)).expect("write");
    let (code, text) = check_online(&cfg, verigate::providers::portone::sandbox::API_SECRET);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("provider iamport: provider unreachable"),
        "{text}"
    );
}

async fn readyz(admin: std::net::SocketAddr) -> Value {
    client()
        .get(format!("http://{admin}/readyz"))
        .header("accept", "application/json")
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON")
}

fn credentials<'a>(v: &'a Value, provider: &str) -> &'a str {
    v["providers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["provider"] == provider))
        .and_then(|p| p["credentials"].as_str())
        .unwrap_or_else(|| panic!("no provider {provider} in {v}"))
}

/// `/readyz` until `provider`'s credentials are no longer `from` (the prober runs in the
/// background; bounded).
async fn until_changed(admin: std::net::SocketAddr, provider: &str, from: &str) -> Value {
    for _ in 0..300 {
        let v = readyz(admin).await;
        if credentials(&v, provider) != from {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{provider}'s credentials stayed {from}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tries_credentials_at_start_and_after_reload() {
    let (router, _sim) =
        verigate::demo::sandbox::router(verigate::providers::sandbox::SandboxOptions::default());
    let sandbox = spawn_router(router).await;
    let upstream = spawn_router(axum::Router::new().fallback(|| async { "ok" })).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("imp_secret");
    std::fs::write(&secret, WRONG).expect("write");
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(&cfg, yaml(&config(&secret), sandbox, upstream)).expect("write");
    let p = start_binary(&cfg);
    let admin = p.admin.expect("admin");

    // Tried at start, without any shopper: Iamport's secret is refused.
    let v = until_changed(admin, "iamport", "unchecked").await;
    assert_eq!(credentials(&v, "iamport"), "failing", "{v}");
    let v = until_changed(admin, "tomo", "unchecked").await;
    assert_eq!(credentials(&v, "tomo"), "ok", "{v}");
    let v = until_changed(admin, "portone", "unchecked").await;
    assert_eq!(credentials(&v, "portone"), "ok", "{v}");
    // Reported, not a reason to drain: every instance shares the credentials.
    assert_eq!(v["ready"], true, "{v}");
    let detail = v["providers"][0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("refused our credentials"), "{v}");
    assert!(!v.to_string().contains(WRONG), "a secret on /readyz: {v}");
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric(
            &metrics,
            r#"verigate_provider_credentials_ok{provider="iamport"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            r#"verigate_provider_credentials_ok{provider="tomo"}"#
        ),
        1.0
    );
    // The log writer flushes in batches: the line arrives shortly.
    let mut logged = false;
    for _ in 0..100 {
        if p.log_text().contains("provider credentials not accepted") {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(logged, "the refusal is logged: {}", p.log_text());
    assert!(!p.log_text().contains(WRONG), "a secret in the log");

    // The secret fixed and reloaded: tried again at once (no waiting out the backoff).
    std::fs::write(&secret, verigate::providers::iamport::sandbox::API_SECRET).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["reload", "--admin", &admin.to_string(), "-c"])
        .arg(&cfg)
        .output()
        .expect("reload");
    assert!(out.status.success(), "{:?}", out);
    let v = until_changed(admin, "iamport", "failing").await;
    let v = match credentials(&v, "iamport") {
        "unchecked" => until_changed(admin, "iamport", "unchecked").await,
        _ => v,
    };
    assert_eq!(credentials(&v, "iamport"), "ok", "{v}");
    let metrics = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert_eq!(
        metric(
            &metrics,
            r#"verigate_provider_credentials_ok{provider="iamport"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopper_meets_a_page_that_names_the_misconfiguration() {
    let env = Env::with(Proxy::shop().provider(Provider::iamport().api_secret(WRONG))).await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(r.status(), 502);
    let page = r.text().await.expect("page");
    assert!(
        page.contains("This site&#39;s verification is not available"),
        "{page}"
    );
    assert!(
        page.contains("이 사이트의 본인인증을 지금 사용할 수 없습니다"),
        "{page}"
    );
    assert!(!page.contains("try again shortly"), "{page}");
}
