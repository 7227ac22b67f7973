//! Identity rules as a merchant's app meets them: a signup form that answers with a redirect
//! (post/redirect/get) still counts as one account; the app can say a signup did not happen;
//! a person whose age cannot be confirmed never passes a min_age route.

use crate::common::{spawn_router, Env, Person, Provider, Proxy, Route, Setup, Upstream};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use verigate::config::{from_yaml_str, Secrets};

/// A legacy signup app: `/signup-prg` answers 303 (post/redirect/get), `/signup-invalid`
/// re-renders the form with 200 and says the signup was rejected. Counts what it ran.
async fn legacy_app(hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
    let h1 = hits.clone();
    let h2 = hits.clone();
    let r = Router::new()
        .route(
            "/signup-prg",
            post(move || {
                let h = h1.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::SEE_OTHER, [("location", "/welcome")]).into_response()
                }
            }),
        )
        .route(
            "/signup-invalid",
            post(move || {
                let h = h2.clone();
                async move {
                    h.fetch_add(1, Ordering::SeqCst);
                    (
                        StatusCode::OK,
                        [("x-verigate-signup", "rejected")],
                        "<form>name is required</form>",
                    )
                        .into_response()
                }
            }),
        );
    spawn_router(r).await
}

/// Iamport, `routes` and an open rest, in front of `app`.
async fn env_with(app: std::net::SocketAddr, routes: impl IntoIterator<Item = Route>) -> Env {
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .routes(routes)
        .route(Route::prefix("/").name("rest"));
    Env::with(Setup::new(proxy).upstream(Upstream::At(app))).await
}

async fn env_with_app() -> (Env, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = legacy_app(hits.clone()).await;
    let env = env_with(
        app,
        [
            Route::path("/signup-prg")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .one_account(),
            Route::path("/signup-invalid")
                .methods(["POST"])
                .providers(["iamport"])
                .one_account(),
        ],
    )
    .await;
    (env, hits)
}

async fn signed_in(env: &Env, p: &Person) -> crate::common::Browser {
    let mut b = env.browser();
    let r = b.verify_redirect(env.sandbox, "/signup-prg", p).await;
    assert_eq!(r.status(), 302, "verification completes");
    b
}

async fn submit(b: &mut crate::common::Browser, path: &str) -> (u16, Option<String>, String) {
    let req = b
        .client
        .post(b.url(path))
        .header("accept", "application/json")
        .form(&[("name", "x")]);
    let r = b.send(req).await;
    let status = r.status().as_u16();
    let verdict = r
        .headers()
        .get("x-verigate-signup")
        .map(|v| v.to_str().unwrap_or("").to_string());
    let body = r.text().await.unwrap_or_default();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, verdict, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_answered_with_a_redirect_is_one_account() {
    let (env, hits) = env_with_app().await;
    let p = Person::named("리다이렉트");
    let mut b = signed_in(&env, &p).await;
    let (status, _, _) = submit(&mut b, "/signup-prg").await;
    assert_eq!(status, 303, "the app's redirect reaches the browser");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // The same person again, from this browser and from another: refused, never upstream.
    let (status, _, code) = submit(&mut b, "/signup-prg").await;
    assert_eq!((status, code.as_str()), (409, "duplicate_account"));
    let mut other = signed_in(&env, &p).await;
    let (status, _, code) = submit(&mut other, "/signup-prg").await;
    assert_eq!((status, code.as_str()), (409, "duplicate_account"));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the app signed this person up once"
    );
}

/// A browser's form post is answered as a browser: the page, with the status and the next
/// step, not JSON; a page's own fetch and API clients keep JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_form_post_gets_pages() {
    let (env, hits) = env_with_app().await;
    let form = |b: &crate::common::Browser, headers: &[(&str, &str)]| {
        let mut req = b.client.post(b.url("/signup-prg")).form(&[("name", "x")]);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req
    };
    let chrome = [
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("sec-fetch-mode", "navigate"),
    ];
    let navigate_only = [("accept", "*/*"), ("sec-fetch-mode", "navigate")];
    // No session: the verification-required page with the way to verify.
    let mut anon = env.browser();
    for headers in [&chrome[..], &navigate_only[..]] {
        let r = anon.send(form(&anon, headers)).await;
        assert_eq!(r.status(), 401);
        let html = r.text().await.unwrap();
        assert!(html.contains("401 · verification_required"), "{html}");
        assert!(
            html.contains("/.verigate/verify?return_to=%2Fsignup-prg"),
            "the page offers verification: {html}"
        );
    }
    let r = anon.send(form(&anon, &[("accept", "*/*")])).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "verification_required"
    );
    // The second signup of one person: the 409 page for the browser, JSON for a fetch.
    let p = Person::named("두번째");
    let mut b = signed_in(&env, &p).await;
    assert_eq!(b.send(form(&b, &chrome)).await.status(), 303);
    let r = b.send(form(&b, &chrome)).await;
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("409 · duplicate_account") && html.contains("<html"),
        "{html}"
    );
    let r = b.send(form(&b, &[("accept", "application/json")])).await;
    assert_eq!(
        crate::common::refusal(r).await,
        (409, "duplicate_account".into())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_can_say_a_signup_did_not_happen() {
    let (env, hits) = env_with_app().await;
    let mut b = signed_in(&env, &Person::named("검증오류")).await;
    for n in 1..=3 {
        let (status, verdict, _) = submit(&mut b, "/signup-invalid").await;
        assert_eq!(status, 200, "the form comes back");
        assert_eq!(
            verdict, None,
            "the app's verdict header never reaches the client"
        );
        assert_eq!(
            hits.load(Ordering::SeqCst),
            n,
            "and the person may try again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_on_2xx_lets_a_redirected_signup_go_uncounted() {
    // commit_on: [2xx] with a redirecting app: the reservation is released, so the person
    // may sign up again (the merchant asked for exactly that).
    let hits = Arc::new(AtomicUsize::new(0));
    let app = legacy_app(hits.clone()).await;
    let env = env_with(
        app,
        [Route::path("/signup-prg")
            .name("strict")
            .methods(["POST"])
            .providers(["iamport"])
            .one_account()
            .commit_on(["2xx"])],
    )
    .await;
    let mut b = signed_in(&env, &Person::named("이차")).await;
    for n in 1..=2 {
        let (status, _, _) = submit(&mut b, "/signup-prg").await;
        assert_eq!(status, 303);
        assert_eq!(hits.load(Ordering::SeqCst), n);
    }
}

fn problems(routes: &str) -> Vec<String> {
    let mut m = std::collections::HashMap::new();
    m.insert("KEYS".to_string(), crate::common::SESSION_KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    m.insert("IF".to_string(), "s".to_string());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
upstream: {{ addrs: ["127.0.0.1:3000"] }}
session: {{ keys_env: KEYS }}
providers:
  iamport: {{ imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }}
  ifree: {{ client_id: c, secret_key_env: IF, base_url: "https://partner-auth.ifree.world", callback_allow_ips: [203.0.113.10] }}
routes:
{routes}"#
    );
    match from_yaml_str(&yaml, &Secrets::from_map(m)) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    }
}

#[test]
fn check_refuses_rules_that_cannot_hold() {
    let ps = problems(
        r#"
  - name: adult-ifree
    match: { path: /adult }
    require: { providers: [ifree], min_age: 19, age_rule: youth_act }
  - name: commit
    match: { path: /c }
    require: { providers: [iamport], commit_on: [2xx, 4xx] }
"#,
    );
    for want in [
        "routes[0].require.min_age: ifree's birth date is self-asserted",
        "routes[1].require.commit_on[1]: `4xx` is not one of 2xx, 3xx",
        "routes[1].require.commit_on: only means something with one_account_per_person: true",
    ] {
        assert!(
            ps.iter().any(|p| p.contains(want)),
            "missing {want:?} in {ps:#?}"
        );
    }
    assert_eq!(ps.len(), 3, "{ps:#?}");
    // ifree beside a provider that verifies birth dates is fine.
    let ps = problems(
        r#"
  - name: adult
    match: { path: /adult }
    require: { providers: [iamport, ifree], min_age: 19, age_rule: birthday }
"#,
    );
    assert_eq!(ps, Vec::<String>::new());
}

/// An app on a raw socket: answers `100 Continue` to `Expect`, reads the body, then either
/// answers 200 (`/signup`) or never answers (`/signup-hang`). Counts requests it read whole.
async fn raw_app(hits: Arc<AtomicUsize>) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(crate::common::loopback())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut conn = crate::common::RawConn::new(s);
                while let Some(head) = conn.head().await.map(|h| h.to_ascii_lowercase()) {
                    if head.contains("\r\nexpect: 100-continue") {
                        let _ = conn.s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
                    }
                    let want = crate::common::content_length(&head);
                    if conn.body(want).await < want {
                        return;
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    if head.starts_with("post /signup-hang") {
                        // The app acts and never answers: hold the connection.
                        let _ = conn.s.read(&mut [0u8; 64]).await;
                        return;
                    }
                    let resp = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn raw_env() -> (Env, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = raw_app(hits.clone()).await;
    let env = env_with(
        app,
        ["/signup", "/signup-hang"].map(|p| {
            Route::path(p)
                .methods(["POST"])
                .providers(["iamport"])
                .one_account()
        }),
    )
    .await;
    (env, hits)
}

async fn raw_signup(env: &Env, cookie: &str, path: &str, expect: bool) -> (u16, String) {
    let expect = if expect {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: vg={cookie}\r\nAccept: application/json\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\n{expect}Connection: close\r\n\r\nx=1"
    );
    let resp = crate::common::raw_request(env.proxy, &head).await;
    // The final answer: the last status line (a 100 Continue may come first).
    let last = resp.rfind("HTTP/1.1 ").unwrap_or(0);
    let status = resp[last + 9..]
        .get(..3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let code = resp
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str::<Value>(b).ok())
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_100_continue_settles_nothing() {
    let (env, hits) = raw_env().await;
    let b = signed_in(&env, &Person::named("계속")).await;
    let cookie = b.jar["vg"].clone();
    let (status, _) = raw_signup(&env, &cookie, "/signup", true).await;
    assert_eq!(status, 200, "the first signup goes through");
    for expect in [true, false] {
        let (status, code) = raw_signup(&env, &cookie, "/signup", expect).await;
        assert_eq!(
            (status, code.as_str()),
            (409, "duplicate_account"),
            "expect: {expect}"
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the app signed this person up once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_the_app_had_whole_but_never_answered_counts() {
    // The app read the whole request and may have acted on it; verigate's upstream read
    // timeout (5 s in tests) ends the wait. The outcome is unknown, so it counts: a second
    // signup would otherwise race the first one still running in the app.
    let (env, hits) = raw_env().await;
    let b = signed_in(&env, &Person::named("무응답")).await;
    let cookie = b.jar["vg"].clone();
    let (status, _) = raw_signup(&env, &cookie, "/signup-hang", false).await;
    assert!(
        status >= 500,
        "the client learns the app did not answer: {status}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let (status, code) = raw_signup(&env, &cookie, "/signup-hang", false).await;
    assert_eq!((status, code.as_str()), (409, "duplicate_account"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// An app whose signup at `/join` answers with the status the path names (`/join/301`, ...):
/// the framework's own redirects (a trailing slash, a moved page) before any handler ran, then
/// the real signup at `/join/done` (303, post/redirect/get) and `/join/found` (302). Counts
/// every request it answered, by path.
async fn redirecting_app(hits: Arc<std::sync::Mutex<Vec<String>>>) -> std::net::SocketAddr {
    let r = Router::new().route(
        "/join/{status}",
        post(
            move |axum::extract::Path(status): axum::extract::Path<String>| {
                let hits = hits.clone();
                async move {
                    hits.lock().unwrap().push(status.clone());
                    let code = match status.as_str() {
                        "done" => 303,
                        "found" => 302,
                        other => other.parse().unwrap_or(500),
                    };
                    (
                        StatusCode::from_u16(code).unwrap(),
                        [("location", "/join/elsewhere")],
                    )
                        .into_response()
                }
            },
        ),
    );
    spawn_router(r).await
}

/// A framework's own 301/307/308 (the request was moved, not processed: no account was made)
/// must not use up the person's one account; a 302 or 303 after the post does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_signup_is_no_account_and_post_redirect_get_is_one() {
    let hits = Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = redirecting_app(hits.clone()).await;
    let env = env_with(
        app,
        [Route::prefix("/join")
            .name("join")
            .methods(["POST"])
            .providers(["iamport"])
            .one_account()],
    )
    .await;
    for (done, code) in [("done", 303), ("found", 302)] {
        let mut b = signed_in(&env, &Person::named(&format!("이동{done}"))).await;
        for moved in ["301", "307", "308"] {
            let (status, _, code) = submit(&mut b, &format!("/join/{moved}")).await;
            assert_eq!(
                (status, code.as_str()),
                (moved.parse().unwrap(), ""),
                "the app's {moved} reaches the browser, and the person is not signed up"
            );
        }
        // The real signup still goes through, and counts.
        let (status, _, _) = submit(&mut b, &format!("/join/{done}")).await;
        assert_eq!(status, code, "the signup itself reaches the app");
        let (status, _, refused) = submit(&mut b, &format!("/join/{done}")).await;
        assert_eq!(
            (status, refused.as_str()),
            (409, "duplicate_account"),
            "after a {code} the person has their one account"
        );
    }
    let seen = hits.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["301", "307", "308", "done", "301", "307", "308", "found"],
        "every moved post reached the app, each real signup once"
    );
}
