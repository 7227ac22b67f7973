//! The provider down, slow, answering garbage or lying: clear 502/503 answers, no session, and
//! the proxy keeps serving.

use crate::common::*;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::time::Duration;

fn token_ok() -> Json<Value> {
    let now = chrono::Utc::now().timestamp();
    Json(
        json!({"code": 0, "message": null, "response": {"access_token": "t", "now": now, "expired_at": now + 1800}}),
    )
}

/// A fake Iamport whose certification endpoint answers with `cert`.
fn fake(cert: Router) -> Router {
    Router::new()
        .route("/users/getToken", post(|| async { token_ok() }))
        .merge(cert)
}

async fn attempt(env: &Env) -> (reqwest::StatusCode, String, Browser) {
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let imp = Value::String("imp_123456789012".into());
    let r = b.complete(&imp, &Value::String(flow.merchant_uid())).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap_or("").to_string(), b)
}

/// The default stack with Iamport at `addr` (a fake or dead one).
async fn iamport_at(addr: std::net::SocketAddr) -> Env {
    Env::with(Proxy::shop().provider(Provider::iamport().base_url(format!("http://{addr}")))).await
}

async fn still_serving(env: &Env) {
    let r = env.client.get(env.url("/open")).send().await.unwrap();
    assert_eq!(r.status(), 200, "proxy keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down() {
    // A port that was bound and released: nothing listens there.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let env = iamport_at(dead).await;
    let (status, code, b) = attempt(&env).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (503, "provider_unavailable")
    );
    assert!(!b.jar.contains_key("vg"));
    still_serving(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_slow() {
    let slow = fake(Router::new().route(
        "/certifications/{id}",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    ));
    let addr = spawn_router(slow).await;
    let env = iamport_at(addr).await;
    let (status, code, b) = attempt(&env).await;
    assert_eq!(
        (status.as_u16(), code.as_str()),
        (503, "provider_unavailable")
    );
    assert!(!b.jar.contains_key("vg"));
    still_serving(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_garbage_and_lies() {
    let now = chrono::Utc::now().timestamp();
    let cases: Vec<(&str, Router, u16, &str)> = vec![
        (
            "html instead of JSON",
            Router::new().route("/certifications/{id}", get(|| async { "<html>oops</html>" })),
            502,
            "provider_bad_response",
        ),
        (
            "non-zero code on HTTP 200",
            Router::new().route(
                "/certifications/{id}",
                get(|| async { Json(json!({"code": -1, "message": "fail", "response": null})) }),
            ),
            502,
            "provider_rejected",
        ),
        (
            "a result for another imp_uid",
            Router::new().route(
                "/certifications/{id}",
                get(move || async move {
                    Json(json!({"code": 0, "message": null, "response": {
                        "imp_uid": "imp_999999999999", "merchant_uid": "x", "certified": true,
                        "certified_at": now, "unique_key": "ci", "unique_in_site": "di"}}))
                }),
            ),
            502,
            "provider_bad_response",
        ),
        (
            "404 not found",
            Router::new().route(
                "/certifications/{id}",
                get(|| async {
                    (StatusCode::NOT_FOUND, Json(json!({"code": -1, "message": "인증결과가 존재하지 않습니다.", "response": null}))).into_response()
                }),
            ),
            400,
            "result_not_found",
        ),
        (
            "500",
            Router::new().route(
                "/certifications/{id}",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response() }),
            ),
            502,
            "provider_bad_response",
        ),
    ];
    for (what, router, status, code) in cases {
        let addr = spawn_router(fake(router)).await;
        let env = iamport_at(addr).await;
        let (s, c, b) = attempt(&env).await;
        assert_eq!((s.as_u16(), c.as_str()), (status, code), "{what}");
        assert!(!b.jar.contains_key("vg"), "{what}");
        still_serving(&env).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_a_provider_error_not_a_session() {
    let env = Env::with(Proxy::shop().provider(Provider::iamport().api_secret("wrong"))).await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("provider_unauthorized"));
    assert!(!b.jar.contains_key("vg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_api_is_faithful() {
    let env = Env::start().await;
    let c = client();
    let base = format!("http://{}/iamport", env.sandbox);
    // Missing fields.
    let r = c
        .post(format!("{base}/users/getToken"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "imp_key, imp_secret 파라메터가 누락되었습니다."
    );
    // Wrong secret.
    let r = c
        .post(format!("{base}/users/getToken"))
        .json(&json!({"imp_key": "sandbox_key", "imp_secret": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Form encoding works too, and the same token comes back while valid.
    let t1: Value = c
        .post(format!("{base}/users/getToken"))
        .form(&[("imp_key", "sandbox_key"), ("imp_secret", "sandbox_secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t2: Value = c
        .post(format!("{base}/users/getToken"))
        .json(&json!({"imp_key": "sandbox_key", "imp_secret": "sandbox_secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t1["code"], 0);
    assert_eq!(
        t1["response"]["access_token"],
        t2["response"]["access_token"]
    );
    let life =
        t1["response"]["expired_at"].as_i64().unwrap() - t1["response"]["now"].as_i64().unwrap();
    assert_eq!(life, 1800);
    let token = t1["response"]["access_token"].as_str().unwrap();
    // Unknown imp_uid: 404 with the real message; both Authorization forms accepted.
    for auth in [token.to_string(), format!("Bearer {token}")] {
        let r = c
            .get(format!("{base}/certifications/imp_000000000000"))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert_eq!(
            r.json::<Value>().await.unwrap()["message"],
            "인증결과가 존재하지 않습니다."
        );
    }
    // No or bad token: 401.
    let r = c
        .get(format!("{base}/certifications/imp_000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/certifications/imp_000000000000"))
        .header("authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Deterministic identities: same person, same CI; DI depends on imp_code.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let one = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let flow = b.start_iamport("/member").await;
    let two = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let c1 = sandbox_certification(env.sandbox, one["imp_uid"].as_str().unwrap()).await;
    let c2 = sandbox_certification(env.sandbox, two["imp_uid"].as_str().unwrap()).await;
    assert_ne!(c1["imp_uid"], c2["imp_uid"]);
    assert_eq!(c1["unique_key"], c2["unique_key"]);
    assert_eq!(c1["unique_in_site"], c2["unique_in_site"]);
    assert_eq!(c1["unique_key"].as_str().unwrap().len(), 88);
    assert_eq!(c1["unique_in_site"].as_str().unwrap().len(), 64);
    assert_eq!(c1["birthday"], "1990-01-01");
    assert_eq!(c1["certified"], true);
    // The stand-in SDK is served as JavaScript.
    let r = c.get(format!("{base}/js/iamport.js")).send().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    assert!(r.text().await.unwrap().contains("IMP"));
}
