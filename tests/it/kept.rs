//! A browser's form post kept across the verification detour (README "What a request meets",
//! kept requests): kept, sealed in the store, delivered once after verifying with the
//! identity headers, through the same rules as a direct request; never twice (reload, a
//! second tab, a replayed return URL, two instances on one Redis); refused when over its cap,
//! from another site, or on a route that opts out; dropped when it expires.

use crate::common::recorder::{Recorder, Seen};
use crate::common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The routes of these tests: a one-account adult signup, an upload, a JSON API, a route
/// keeping at most 1 KB, one that opts out, one on TomoIDV only; the rest open.
fn routes() -> Vec<Route> {
    let mut routes = crate::common::recorder::kept_routes();
    routes.extend([
        Route::path("/small")
            .providers(["iamport"])
            .keep_request(json!({ "max_body": "1KB" })),
        Route::path("/optout")
            .providers(["iamport"])
            .keep_request(json!(false)),
        Route::path("/foreign").providers(["tomo"]),
        Route::prefix("/"),
    ]);
    routes
}

fn proxy() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::tomo())
        .routes(routes())
}

async fn start(proxy: Proxy) -> (Env, Arc<Recorder>) {
    let (app, addr) = Recorder::spawn().await;
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    (env, app)
}

const FORM: &str = "application/x-www-form-urlencoded";

/// What a browser sends when a page's form is submitted: HTML accepted, this site as Origin.
async fn submit(
    b: &mut Browser,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let req = b
        .client
        .post(b.url(path))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("origin", format!("http://{}", b.env_proxy))
        .header("content-type", content_type)
        .body(body);
    b.send(req).await
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// Verify in redirect mode for `return_to` and come back: the return's answer (a redirect
/// to `return_to`).
async fn verify(env: &Env, b: &mut Browser, return_to: &str, p: &Person) -> reqwest::Response {
    let r = b.verify_redirect(env.sandbox, return_to, p).await;
    assert_eq!(r.status(), 302, "verified");
    assert_eq!(location(&r), return_to);
    r
}

fn identity_of(s: &Seen) -> (Option<&str>, Option<&str>) {
    (
        s.header("x-verified-unique-in-site"),
        s.header("x-verified-age-ok"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_is_kept_and_delivered_once_after_verifying() {
    let (env, app) = start(proxy()).await;
    let mut b = env.browser();
    let body = "nickname=%ED%99%8D%EA%B8%B8%EB%8F%99&about=hello"
        .as_bytes()
        .to_vec();
    let r = submit(&mut b, "/signup?from=form", FORM, body.clone()).await;
    assert_eq!(r.status(), 303, "sent to verify");
    assert_eq!(
        location(&r),
        "/.verigate/verify?return_to=%2Fsignup%3Ffrom%3Dform"
    );
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("vg_kept="))
        .expect("the kept request's cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(app.seen().is_empty(), "nothing reached the app yet");
    // The way to verify says so (one provider: the verify address leads to its start page);
    // another page's does not.
    for (verify, kept) in [
        (location(&r), true),
        ("/.verigate/verify?return_to=%2Fupload".to_string(), false),
    ] {
        let start = location(&b.get_html(&verify).await);
        assert!(start.starts_with("/.verigate/iamport/start"), "{start}");
        let page = b.get_html(&start).await.text().await.unwrap();
        assert_eq!(page.contains("Your form is kept"), kept, "{page}");
    }

    // Another browser, verified, at the same address: nothing of this one's form.
    let mut stranger = env.browser();
    verify(
        &env,
        &mut stranger,
        "/signup?from=form",
        &Person::named("남남"),
    )
    .await;
    assert_eq!(stranger.get_html("/signup?from=form").await.status(), 200);
    assert!(app.of("POST", "/signup").is_empty());

    verify(&env, &mut b, "/signup?from=form", &Person::adult()).await;
    // The browser comes back, in this tab and (at the same moment) in three others: the
    // kept post reaches the app once, in place of one of these GETs.
    let tabs: Vec<_> = (0..4)
        .map(|_| {
            let mut tab = b.clone();
            tokio::spawn(async move {
                let r = tab.get_html("/signup?from=form").await;
                (
                    r.status().as_u16(),
                    r.headers()
                        .get("location")
                        .map(|l| l.to_str().unwrap().to_string()),
                    r.headers()
                        .get("cache-control")
                        .map(|l| l.to_str().unwrap().to_string()),
                    set_cookies(&r),
                )
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tabs {
        answers.push(t.await.unwrap());
    }
    let posts = app.of("POST", "/signup");
    assert_eq!(posts.len(), 1, "delivered exactly once: {answers:?}");
    let delivered: Vec<_> = answers.iter().filter(|a| a.0 == 303).collect();
    assert_eq!(delivered.len(), 1, "{answers:?}");
    let (_, loc, cache, cookies) = delivered[0];
    // The app's own redirect, as a redirect; its cookie passes; the kept cookie ends.
    assert_eq!(loc.as_deref(), Some("/welcome"));
    assert_eq!(cache.as_deref(), Some("no-store"));
    assert!(cookies.iter().any(|c| c.starts_with("app_session=s1")));
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("vg_kept=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    // The other tabs got the page a GET gets.
    assert_eq!(
        answers.iter().filter(|a| a.0 == 200).count(),
        3,
        "{answers:?}"
    );

    let post = &posts[0];
    assert_eq!(post.target, "/signup?from=form");
    assert_eq!(post.body, body, "the body, byte for byte");
    assert_eq!(post.header("content-type"), Some(FORM));
    assert_eq!(
        post.header("content-length"),
        Some(&*body.len().to_string())
    );
    let (uis, age_ok) = identity_of(post);
    assert!(uis.is_some_and(|u| !u.is_empty()), "{post:?}");
    assert_eq!(age_ok, Some("true"));
    assert!(post.header("x-verified-provider") == Some("iamport"));
    let cookie = post.header("cookie").unwrap_or("");
    assert!(
        !cookie.contains("vg"),
        "verigate's cookies stay home: {cookie}"
    );

    // Reload: a GET, as any later visit.
    b.jar.remove("vg_kept");
    let again = b.get_html("/signup?from=form").await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.of("POST", "/signup").len(), 1, "never twice");
    // Counted (metrics are per process: other tests of this file count on `signup` too).
    let kept = r#"verigate_kept_requests_total{outcome="kept",route="signup"}"#;
    let resumed = r#"verigate_kept_requests_total{outcome="resumed",route="signup"}"#;
    let m = env
        .metrics_until(|m| metric(m, kept) >= 1.0 && metric(m, resumed) >= 1.0)
        .await;
    assert!(metric(&m, kept) >= 1.0 && metric(&m, resumed) >= 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_return_url_or_a_session_from_before_never_delivers_it() {
    let (env, app) = start(proxy()).await;
    let mut b = env.browser();
    // A person verified with Iamport posts to a TomoIDV route: kept, sent to verify.
    verify(&env, &mut b, "/", &Person::adult()).await;
    let r = submit(&mut b, "/foreign", FORM, b"a=1".to_vec()).await;
    assert_eq!(r.status(), 303);
    // Back to the page without verifying: the session from before the post does not deliver
    // it; the page still wants a TomoIDV verification.
    let r = b.get_html("/foreign").await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/.verigate/verify"));
    assert!(app.of("POST", "/foreign").is_empty());
    assert!(
        b.jar.contains_key("vg_kept"),
        "still waiting for its verification"
    );

    // A replayed Iamport return URL: refused as a replay, never a second delivery.
    let mut c = env.browser();
    submit(&mut c, "/upload", "text/plain", b"once".to_vec()).await;
    let flow = c.start_iamport("/upload").await;
    let back = c.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let ret = back["location"].as_str().unwrap().to_string();
    // A second tab holding the same cookies opens the same return URL.
    let mut replay = c.clone();
    let r = c.open_html(&ret).await;
    assert_eq!(location(&r), "/upload");
    assert_eq!(c.get_html("/upload").await.status(), 201);
    let (status, code) = refusal(replay.open_html(&ret).await).await;
    assert_eq!((status, code.as_str()), (409, "replayed_result"));
    assert_eq!(replay.get_html("/upload").await.status(), 302, "no session");
    assert_eq!(
        c.get_html("/upload").await.status(),
        200,
        "a reload is a GET"
    );
    assert_eq!(app.of("POST", "/upload").len(), 1);
}

/// A multipart body with a file of every byte value.
fn multipart(boundary: &str) -> Vec<u8> {
    let file: Vec<u8> = (0..100).flat_map(|_| 0u8..=255).collect();
    let mut b = Vec::new();
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n사진\r\n")
            .as_bytes(),
    );
    b.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    b.extend_from_slice(&file);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_with_a_file_and_json_from_a_page_arrive_byte_for_byte() {
    let (env, app) = start(proxy()).await;
    // Multipart with a file, from a browser that says where it posts from (Sec-Fetch-Site).
    let mut b = env.browser();
    let boundary = "----verigateBoundary7MA4YWxkTrZu0gW";
    let ct = format!("multipart/form-data; boundary={boundary}");
    let body = multipart(boundary);
    let req = b
        .client
        .post(b.url("/upload"))
        .header("accept", "text/html")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .header("content-type", &ct)
        .body(body.clone());
    let r = b.send(req).await;
    assert_eq!(r.status(), 303);
    verify(&env, &mut b, "/upload", &Person::adult()).await;
    let r = b.get_html("/upload").await;
    assert_eq!(r.status(), 201, "the app's own status");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(&format!("Uploaded {} bytes", body.len())));
    let posts = app.of("POST", "/upload");
    assert_eq!(posts.len(), 1);
    assert!(posts[0].body == body, "the multipart body, byte for byte");
    assert_eq!(posts[0].header("content-type"), Some(ct.as_str()));
    assert!(identity_of(&posts[0]).0.is_some());

    // JSON from a page's own script: a JSON answer with the way to verify, the request kept;
    // the script goes there, and the browser lands on the app's answer.
    let mut p = env.browser();
    let json_body = br#"{"item":"\xec\x82\xac\xea\xb3\xbc","count":3}"#.to_vec();
    let req = p
        .client
        .post(p.url("/api/items"))
        .header("accept", "application/json")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("content-type", "application/json")
        .body(json_body.clone());
    let r = p.send(req).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "verification_required");
    assert_eq!(v["kept"], true);
    assert_eq!(
        v["verify_url"],
        "/.verigate/verify?return_to=%2Fapi%2Fitems"
    );
    assert!(p.jar.contains_key("vg_kept"));
    verify(&env, &mut p, "/api/items", &Person::named("김영희")).await;
    let r = p.get_html("/api/items").await;
    assert_eq!(r.status(), 201);
    let posts = app.of("POST", "/api/items");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, json_body);
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    // The app answers the browser that will show it: the navigation's Accept.
    assert!(posts[0].header("accept").unwrap().contains("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_cap_a_form_is_not_kept_and_the_page_says_send_it_again() {
    let (env, app) = start(proxy()).await;
    // At the cap: kept.
    let mut b = env.browser();
    let r = submit(&mut b, "/small", FORM, vec![b'a'; 1024]).await;
    assert_eq!(r.status(), 303);
    // One byte over: the page says to verify, then send the form again; nothing kept.
    let mut c = env.browser();
    let r = submit(&mut c, "/small", FORM, vec![b'a'; 1025]).await;
    assert_eq!(r.status(), 401);
    assert!(set_cookies(&r).iter().all(|c| !c.starts_with("vg_kept")));
    let html = r.text().await.unwrap();
    assert!(html.contains("401 · form_not_kept"), "{html}");
    assert!(html.contains("양식을 다시 보내 주세요"), "{html}");
    assert!(html.contains("send the form again"), "{html}");
    assert!(
        html.contains(r#"href="/.verigate/verify?return_to=%2Fsmall""#),
        "{html}"
    );
    // The same, streamed without a length: counted as it arrives.
    let chunk = "a".repeat(600);
    let head = format!(
        "POST /small HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\nAccept: text/html\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        env.proxy, env.proxy, chunk.len(), chunk.len()
    );
    let answer = raw_request(env.proxy, &head).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("form_not_kept"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("set-cookie: vg_kept"),
        "{answer}"
    );
    // A declared length over the cap is not read at all, however large.
    let head = format!(
        "POST /small HTTP/1.1\r\nHost: {}\r\nOrigin: http://{}\r\nAccept: text/html\r\nContent-Type: {FORM}\r\nContent-Length: 999999999\r\n\r\nabc",
        env.proxy, env.proxy
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), raw_request(env.proxy, &head))
        .await
        .expect("answered without waiting for the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // An address too long to come back to (return_to takes 2,048 bytes) is not kept either.
    let long = format!("/small?q={}", "x".repeat(2100));
    let r = submit(&mut env.browser(), &long, FORM, b"a=1".to_vec()).await;
    assert_eq!(refusal(r).await, (401, "form_not_kept".into()));
    assert!(app.seen().is_empty(), "nothing reached the app");
}

/// One client cannot fill the store for everyone (a red team kept 1,000 forged same-origin
/// posts from one address in 1.6 s, then a real person's form was not kept): each client
/// address has its own allowance; others keep theirs. Clients are told apart behind a trusted
/// load balancer by its `X-Forwarded-For`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_fill_the_store_for_everyone() {
    let (env, app) = start(proxy().set(
        "clients",
        json!({ "trusted_proxies": ["127.0.0.0/8"], "max_kept_per_client": 3 }),
    ))
    .await;
    let post = |from: &'static str| {
        let mut b = env.browser();
        async move {
            let req = b
                .client
                .post(b.url("/upload"))
                .header("accept", "text/html")
                .header("origin", format!("http://{}", b.env_proxy))
                .header("x-forwarded-for", from)
                .header("content-type", FORM)
                .body("a=1");
            b.send(req).await
        }
    };
    for i in 0..3 {
        assert_eq!(post("203.0.113.5").await.status(), 303, "post {i} kept");
    }
    // The fourth from that client: not kept, the page says to send it again.
    let r = post("203.0.113.5").await;
    assert_eq!(refusal(r).await, (401, "form_not_kept".into()));
    // Another client, and one of another IPv6 /64, keep theirs.
    assert_eq!(post("203.0.113.9").await.status(), 303);
    assert_eq!(post("2001:db8:1:2::1").await.status(), 303);
    // The same /64 is one client.
    for _ in 0..2 {
        assert_eq!(post("2001:db8:1:2::99").await.status(), 303);
    }
    let r = post("2001:db8:1:2::ff").await;
    assert_eq!(refusal(r).await, (401, "form_not_kept".into()));
    assert!(app.seen().is_empty(), "nothing reached the app");
}

type Headers = Vec<(&'static str, String)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_form_an_api_client_and_an_opted_out_route_keep_nothing() {
    let (env, app) = start(proxy()).await;
    let cases: Vec<(&str, Headers)> = vec![
        // Another site's form: verifying must never send it on (CSRF).
        (
            "/signup",
            vec![
                ("origin", "http://evil.example".into()),
                ("accept", "text/html".into()),
            ],
        ),
        (
            "/signup",
            vec![
                ("sec-fetch-site", "cross-site".into()),
                ("origin", format!("http://{}", env.proxy)),
                ("accept", "text/html".into()),
            ],
        ),
        // A client that is no browser's page (no Origin, no Sec-Fetch-Site).
        ("/api/items", vec![("accept", "application/json".into())]),
        // A route that opts out.
        (
            "/optout",
            vec![
                ("origin", format!("http://{}", env.proxy)),
                ("accept", "text/html".into()),
            ],
        ),
    ];
    for (path, headers) in cases {
        let mut b = env.browser();
        let mut req = b
            .client
            .post(b.url(path))
            .header("content-type", FORM)
            .body("a=1");
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let r = b.send(req).await;
        assert!(!b.jar.contains_key("vg_kept"), "{path} {headers:?}: kept");
        assert_eq!(
            refusal(r).await,
            (401, "verification_required".to_string()),
            "{path} {headers:?}"
        );
    }
    assert!(app.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_age_and_one_account_apply_to_a_kept_request() {
    let (env, app) = start(proxy()).await;
    // A minor's kept signup: refused once verified, never reaches the app, and is gone.
    let mut b = env.browser();
    submit(&mut b, "/signup", FORM, b"nickname=kid".to_vec()).await;
    verify(&env, &mut b, "/signup", &Person::born("20150505")).await;
    let r = b.get_html("/signup").await;
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("vg_kept=;")));
    assert_eq!(refusal(r).await, (403, "underage".into()));
    assert!(app.of("POST", "/signup").is_empty());
    // An adult then verifies in the same browser: the minor's form is not sent for them.
    verify(&env, &mut b, "/signup", &Person::adult()).await;
    assert_eq!(b.get_html("/signup").await.status(), 200);
    assert!(app.of("POST", "/signup").is_empty());

    // One account per person: the adult signs up directly...
    let r = submit(&mut b, "/signup", FORM, b"nickname=first".to_vec()).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/welcome");
    // ...and again from another browser, kept across a new verification: refused.
    let mut other = env.browser();
    submit(&mut other, "/signup", FORM, b"nickname=second".to_vec()).await;
    verify(&env, &mut other, "/signup", &Person::adult()).await;
    let r = other.get_html("/signup").await;
    assert_eq!(refusal(r).await, (409, "duplicate_account".into()));
    let posts = app.of("POST", "/signup");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, b"nickname=first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_kept_request_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let proxy = proxy().store(Storage::sqlite(&db)).route_before(
        "signup",
        Route::path("/brief")
            .providers(["iamport"])
            .keep_request(json!({ "ttl": "1s" })),
    );
    let (env, app) = start(proxy).await;
    let mut b = env.browser();
    let r = submit(&mut b, "/brief", FORM, b"a=1".to_vec()).await;
    assert_eq!(r.status(), 303);
    // Wait for the store to let it go (its own clock), then verify.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let live = || -> i64 {
        let now = chrono::Utc::now().timestamp_millis();
        conn.query_row(
            "SELECT COUNT(*) FROM kept WHERE expires_at > ?1",
            [now],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(live(), 1, "kept, sealed, in the store");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while live() > 0 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    verify(&env, &mut b, "/brief", &Person::adult()).await;
    let r = b.get_html("/brief").await;
    assert_eq!(r.status(), 200, "the page a GET gets");
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("vg_kept=;")));
    assert!(app.of("POST", "/brief").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kept_body_is_sealed_in_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let (env, _app) = start(proxy().store(Storage::sqlite(&db))).await;
    let mut b = env.browser();
    let secret = "nickname=SECRET-NICKNAME-4242&phone=01099998888";
    submit(&mut b, "/signup", FORM, secret.as_bytes().to_vec()).await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let sealed: Vec<u8> = conn
        .query_row("SELECT sealed FROM kept", [], |r| r.get(0))
        .unwrap();
    assert!(sealed.len() > secret.len());
    for needle in ["SECRET-NICKNAME", "01099998888", "/signup", FORM] {
        assert!(
            !sealed.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in clear in the store"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_request_is_delivered_once_across_two_instances_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vgtest:kept:{}:", std::process::id());
    let store = Storage::redis(&url).prefix(&prefix);
    let (app, addr) = Recorder::spawn().await;
    let a = Env::with(Setup::new(proxy().store(store.clone())).upstream(Upstream::At(addr))).await;
    let b_env = Env::with(
        Setup::new(
            proxy()
                .store(store)
                .provider(Provider::iamport().on_sandbox(a.sandbox)),
        )
        .upstream(Upstream::At(addr)),
    )
    .await;
    let mut b = a.browser();
    let r = submit(&mut b, "/api/orders", FORM, b"qty=2".to_vec()).await;
    assert_eq!(r.status(), 303);
    verify(&a, &mut b, "/api/orders", &Person::adult()).await;
    // The same browser lands on both instances at once, several times.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut tab = b.clone();
        if i % 2 == 1 {
            tab.env_proxy = b_env.proxy;
        }
        tasks.push(tokio::spawn(async move {
            tab.get_html("/api/orders").await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(app.of("POST", "/api/orders").len(), 1, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    // Nothing of it is left in Redis.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}kept*"))
        .query(&mut c)
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    redis_cleanup(&url, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_cannot_be_reached_gets_it_on_the_reload_after_it_is_back() {
    // Where the app will listen, not listening yet (on an address of its own: no other
    // server of this process takes the port meanwhile).
    let addr = std::net::TcpListener::bind("127.0.0.3:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = Env::with(Setup::new(proxy()).upstream(Upstream::At(addr))).await;
    let mut b = env.browser();
    submit(&mut b, "/signup", FORM, b"nickname=patient".to_vec()).await;
    verify(&env, &mut b, "/signup", &Person::adult()).await;
    let r = b.get_html("/signup").await;
    let cookies = set_cookies(&r);
    assert_eq!(refusal(r).await, (502, "upstream_unavailable".into()));
    // The app never had any of it: kept again, under a new cookie.
    let again = cookies
        .iter()
        .find(|c| c.starts_with("vg_kept=") && !c.starts_with("vg_kept=;"));
    assert!(again.is_some(), "{cookies:?}");
    // The app is back: the reload sends the form, once.
    let app = Recorder::spawn_at(addr).await;
    // (Right away: the failed attempt's one-account reservation was released before its
    // page was sent.)
    let r = b.get_html("/signup").await;
    let to = r.headers().get("location").cloned();
    assert_eq!(
        r.status(),
        303,
        "the app's answer: {}",
        r.text().await.unwrap()
    );
    assert_eq!(to.unwrap(), "/welcome");
    assert_eq!(b.get_html("/signup").await.status(), 200);
    let posts = app.of("POST", "/signup");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, b"nickname=patient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_had_it_and_timed_out_never_gets_it_twice() {
    // An app that reads each request whole, counts it, and never answers.
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = posts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut conn = RawConn::new(s);
                while let Some(head) = conn.head().await {
                    conn.body(content_length(&head)).await;
                    if head.starts_with("POST ") {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let env =
        Env::with(Setup::new(proxy().upstream_read_timeout("1s")).upstream(Upstream::At(addr)))
            .await;
    let mut b = env.browser();
    submit(&mut b, "/signup", FORM, b"nickname=once".to_vec()).await;
    verify(&env, &mut b, "/signup", &Person::adult()).await;
    let r = b.get_html("/signup").await;
    let cookies = set_cookies(&r);
    assert_eq!(refusal(r).await, (504, "upstream_timeout".into()));
    assert_eq!(posts.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The app may have acted on it: gone, and the cookie with it.
    assert!(
        cookies.iter().any(|c| c.starts_with("vg_kept=;")),
        "{cookies:?}"
    );
    b.jar.insert("vg_kept".into(), "stale".into());
    let r = b.get_html("/signup").await;
    assert_eq!(refusal(r).await, (504, "upstream_timeout".into()));
    assert_eq!(
        posts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "never twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_flask_app_runs_its_handler_once_with_the_kept_form() {
    let app = match apps::start(apps::Stack::Waitress) {
        Ok(a) => a,
        Err(why) => {
            skip::missing("the Flask app (tests/apps/setup.sh)", &why);
            return;
        }
    };
    let env = Env::with(Setup::new(proxy()).upstream(Upstream::At(app.addr))).await;
    let mut b = env.browser();
    let body = "nickname=%ED%99%8D%EA%B8%B8%EB%8F%99&about=kept+form"
        .as_bytes()
        .to_vec();
    let r = submit(&mut b, "/signup", FORM, body.clone()).await;
    assert_eq!(r.status(), 303);
    verify(&env, &mut b, "/signup", &Person::adult()).await;
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["handler"], "signup", "{v}");
    assert_eq!(v["method"], "POST", "{v}");
    assert_eq!(v["posts"], 1, "{v}");
    assert_eq!(v["content_type"], FORM, "{v}");
    assert_eq!(
        v["form"],
        json!({ "nickname": "홍길동", "about": "kept form" }),
        "{v}"
    );
    let digest = {
        use sha2::Digest;
        sha2::Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(v["body_sha256"], digest, "{v}");
    assert!(v["verified"].as_str().is_some_and(|u| !u.is_empty()), "{v}");
    assert_eq!(v["age_ok"], "true", "{v}");
    // Reload: the handler runs a GET; its POSTs stay at one.
    let v: Value = b.get_html("/signup").await.json().await.unwrap();
    assert_eq!(
        (v["method"].as_str(), v["posts"].as_u64()),
        (Some("GET"), Some(1)),
        "{v}"
    );
}

/// Poll `/readyz` until it answers `status`.
async fn ready_is(env: &Env, status: u16) {
    let readyz = format!("http://{}/readyz", env.admin);
    for _ in 0..500 {
        if env.client.get(&readyz).send().await.unwrap().status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("/readyz never answered {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_keeps_nothing_new_and_loses_nothing_kept() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let target = redis_addr(&url);
    let cut = cuttable(target).await;
    let prefix = format!("vgtest:kept-outage:{}:", std::process::id());
    let store = Storage::redis(&format!("redis://{}", cut.addr)).prefix(&prefix);
    let (env, app) = start(proxy().store(store)).await;
    let mut b = env.browser();
    assert_eq!(
        submit(&mut b, "/signup", FORM, b"nickname=waits".to_vec())
            .await
            .status(),
        303
    );
    verify(&env, &mut b, "/signup", &Person::adult()).await;

    cut.up.store(false, Ordering::SeqCst);
    ready_is(&env, 503).await;
    // Back while the store is down: a 503 page, and the kept request waits (cookie kept).
    let r = b.get_html("/signup").await;
    assert!(set_cookies(&r).iter().all(|c| !c.starts_with("vg_kept")));
    assert_eq!(refusal(r).await, (503, "store_unavailable".into()));
    // A new post cannot be kept: the page says to send it again after verifying.
    let mut c = env.browser();
    let r = submit(&mut c, "/signup", FORM, b"nickname=lost".to_vec()).await;
    assert_eq!(refusal(r).await, (401, "form_not_kept".into()));
    assert!(app.seen().is_empty());

    cut.up.store(true, Ordering::SeqCst);
    ready_is(&env, 200).await;
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 303, "delivered once the store is back");
    assert_eq!(location(&r), "/welcome");
    let posts = app.of("POST", "/signup");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body, b"nickname=waits");
    redis_cleanup(&url, &prefix);
}

/// `proxy()` on the store named by `redis` (a Redis under a prefix of its own), or on the
/// default in-memory store.
fn proxy_on(redis: Option<(&str, &str)>) -> Proxy {
    match redis {
        Some((url, prefix)) => proxy().store(Storage::redis(url).prefix(prefix)),
        None => proxy(),
    }
}

/// Start a verification the way a person who typed the site's address does (the browser
/// says `Sec-Fetch-Site: none`; no kept post's `303` led here), certify, come back.
async fn verify_typed(env: &Env, b: &mut Browser, return_to: &str, p: &Person) {
    let enc: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let req = b
        .client
        .get(b.url(&format!("/.verigate/iamport/start?return_to={enc}")))
        .header("accept", "text/html")
        .header("sec-fetch-site", "none")
        .header("sec-fetch-mode", "navigate");
    let r = b.send(req).await;
    assert_eq!(r.status(), 200, "start page");
    let flow = Flow {
        params: flow_json(&r.text().await.unwrap()),
        flow_cookie: String::new(),
    };
    let back = b.certify(env.sandbox, &flow, p, true).await;
    let r = b.open_html(back["location"].as_str().unwrap()).await;
    assert_eq!(r.status(), 302, "verified");
}

/// The planted-cookie attack: an attacker's kept post, its cookie set in the victim's browser
/// (by a sibling host of the same site, say), is never sent with the victim's identity:
/// neither to a victim verified already, nor to one who verifies with the cookie planted.
async fn planted_kept_cookie_is_never_delivered(redis: Option<(&str, &str)>) {
    let (env, app) = start(proxy_on(redis)).await;
    let mut attacker = env.browser();
    let r = submit(
        &mut attacker,
        "/signup",
        FORM,
        b"nickname=attacker".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 303, "the attacker's post is kept");
    let planted = attacker.jar.get("vg_kept").cloned().expect("a kept cookie");

    // A victim verified after the post, then lured to the address.
    let mut victim = env.browser();
    verify(&env, &mut victim, "/", &Person::adult()).await;
    victim.jar.insert("vg_kept".into(), planted.clone());
    let r = victim.get_html("/signup").await;
    assert_eq!(r.status(), 200, "a GET gets what a GET gets");
    // A victim who verifies with the cookie already planted (the site's address typed in).
    let mut typed = env.browser();
    typed.jar.insert("vg_kept".into(), planted.clone());
    verify_typed(&env, &mut typed, "/signup", &Person::named("피해자")).await;
    let r = typed.get_html("/signup").await;
    assert_eq!(r.status(), 200, "a GET gets what a GET gets");
    assert!(
        app.of("POST", "/signup").is_empty(),
        "the attacker's post never went with a victim's identity: {:?}",
        app.of("POST", "/signup")
    );
    // The attacker's own browser, verifying the way its 303 leads, still gets it delivered.
    verify(&env, &mut attacker, "/signup", &Person::named("공격자")).await;
    assert_eq!(attacker.get_html("/signup").await.status(), 303);
    assert_eq!(app.of("POST", "/signup").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_cookie_planted_in_another_browser_is_never_delivered() {
    planted_kept_cookie_is_never_delivered(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_cookie_planted_in_another_browser_is_never_delivered_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vgtest:kept-planted:{}:", std::process::id());
    planted_kept_cookie_is_never_delivered(Some((&url, &prefix))).await;
    redis_cleanup(&url, &prefix);
}

/// The shared-browser attack: person A's post, left in the browser, is dropped when the next
/// person logs out or chooses "verify as someone else"; it never goes under B's identity.
async fn logout_drops_the_browsers_kept_posts(redis: Option<(&str, &str)>) {
    let (env, app) = start(proxy_on(redis)).await;
    for way_out in [
        "/.verigate/logout",
        // What "verify as someone else" posts: the logout, then a fresh verification.
        "/.verigate/logout?return_to=%2F.verigate%2Fverify%3Freturn_to%3D%252Fsignup",
    ] {
        let mut b = env.browser();
        let r = submit(&mut b, "/signup", FORM, b"nickname=A".to_vec()).await;
        assert_eq!(r.status(), 303, "A's post is kept");
        let a_kept = b.jar.get("vg_kept").cloned().expect("a kept cookie");
        // B, at the same browser.
        let req = b
            .client
            .post(b.url(way_out))
            .header("accept", "text/html")
            .header("origin", format!("http://{}", b.env_proxy));
        let r = b.send(req).await;
        assert_eq!(r.status(), 303, "{way_out}");
        assert!(
            !b.jar.contains_key("vg_kept"),
            "{way_out} ends the kept cookie: {:?}",
            set_cookies(&r)
        );
        verify(&env, &mut b, "/signup", &Person::named("다음사람")).await;
        assert_eq!(b.get_html("/signup").await.status(), 200);
        // Even the old cookie, put back, finds nothing: the kept post itself is gone.
        b.jar.insert("vg_kept".into(), a_kept);
        assert_eq!(b.get_html("/signup").await.status(), 200);
        assert!(
            app.of("POST", "/signup").is_empty(),
            "A's post never went under B's identity ({way_out})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_verify_as_someone_else_drop_the_kept_posts() {
    logout_drops_the_browsers_kept_posts(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_verify_as_someone_else_drop_the_kept_posts_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vgtest:kept-logout:{}:", std::process::id());
    logout_drops_the_browsers_kept_posts(Some((&url, &prefix))).await;
    redis_cleanup(&url, &prefix);
}

/// A client whose connections come from `ip` (a loopback address of its own).
fn browser_from(env: &Env, ip: &str) -> Browser {
    let mut b = env.browser();
    b.client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    b
}

/// The fill attack: 30 posts from each of 34 addresses of one network, at once, with the
/// default caps (they filled `max_kept_requests` in 2 s). Afterwards an ordinary person's form
/// from another network is still kept.
async fn a_few_networks_cannot_fill_the_store(redis: Option<(&str, &str)>) {
    let (env, app) = start(proxy_on(redis)).await;
    let mut tasks = Vec::new();
    for host in 10..44 {
        let mut b = browser_from(&env, &format!("127.0.0.{host}"));
        tasks.push(tokio::spawn(async move {
            let mut kept = 0;
            for i in 0..30 {
                let r = submit(&mut b, "/upload", FORM, format!("spam={i}").into_bytes()).await;
                match r.status().as_u16() {
                    303 => kept += 1,
                    401 => {}
                    other => panic!("post {i} from 127.0.0.{host}: {other}"),
                }
            }
            kept
        }));
    }
    let mut kept = 0;
    for t in tasks {
        kept += t.await.unwrap();
    }
    assert!(
        kept < 1000,
        "the attack kept {kept} of 1,020 posts: it must not fill the store"
    );
    let mut person = browser_from(&env, "127.0.1.7");
    let r = submit(&mut person, "/upload", FORM, b"name=ordinary".to_vec()).await;
    assert_eq!(r.status(), 303, "an ordinary person's form is still kept");
    assert!(app.seen().is_empty());
    eprintln!("the attack from 34 addresses of one /24 kept {kept} of 1,020 posts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_networks_cannot_fill_the_kept_store_for_everyone() {
    a_few_networks_cannot_fill_the_store(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_few_networks_cannot_fill_the_kept_store_for_everyone_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vgtest:kept-fill:{}:", std::process::id());
    a_few_networks_cannot_fill_the_store(Some((&url, &prefix))).await;
    redis_cleanup(&url, &prefix);
}

/// With `session.secure`, verigate's cookies carry the `__Host-` prefix (one host, `Secure`,
/// `Path=/`, no `Domain`): what a sibling host can set (the name without the prefix, with a
/// `Domain`) is never read as a kept request or as a session issued under the new name. A
/// session issued under the old name before the upgrade still opens, and is moved to the new
/// name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_secure_cookies_a_sibling_host_cannot_plant_one() {
    let (env, app) = start(proxy().secure_cookies()).await;
    let host_only = |c: &str| {
        c.contains("; Secure")
            && c.contains("Path=/;")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Lax")
            && !c.contains("Domain")
    };
    let mut attacker = env.browser();
    let r = submit(
        &mut attacker,
        "/signup",
        FORM,
        b"nickname=attacker".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 303);
    let kept = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-vg_kept="))
        .expect("the kept cookie under its __Host- name");
    assert!(host_only(&kept), "{kept}");
    let planted = attacker.jar["__Host-vg_kept"].clone();

    // Verified: the session and the flow cookie under their __Host- names.
    let mut victim = env.browser();
    let flow = victim.start_iamport("/signup").await;
    assert!(
        victim.jar.contains_key("__Host-vg_flow"),
        "{:?}",
        victim.jar
    );
    let back = victim
        .certify(env.sandbox, &flow, &Person::named("피해자"), true)
        .await;
    // (Its return URL says https: secure cookies mean TLS in front; this proxy speaks HTTP.)
    let ret = back["location"]
        .as_str()
        .unwrap()
        .replace("https://", "http://");
    let r = victim.open_html(&ret).await;
    assert_eq!(r.status(), 302);
    let session = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("__Host-vg="))
        .expect("the session under its __Host- name");
    assert!(host_only(&session), "{session}");
    assert!(!victim.jar.contains_key("vg"));

    // What a sibling host can plant: the attacker's kept cookie under the unprefixed name.
    victim.jar.insert("vg_kept".into(), planted);
    assert_eq!(victim.get_html("/signup").await.status(), 200);
    assert!(app.of("POST", "/signup").is_empty(), "never delivered");
    // The victim's own session planted back under the old name (as a sibling host could
    // plant the attacker's): a session issued under the new name never opens there.
    let mut old_name = env.browser();
    old_name
        .jar
        .insert("vg".into(), victim.jar["__Host-vg"].clone());
    assert_eq!(old_name.get_html("/upload").await.status(), 302);

    // The upgrade: a session issued under the old name (by the same keys, secure off) still
    // opens, and the answer moves it to the new name.
    let (before, _) = start(proxy()).await;
    let mut b = before.browser();
    verify(&before, &mut b, "/upload", &Person::adult()).await;
    let old = b.jar["vg"].clone();
    let mut upgraded = env.browser();
    upgraded.jar.insert("vg".into(), old.clone());
    let r = upgraded.get_html("/upload").await;
    assert_eq!(r.status(), 200, "a session from before the upgrade opens");
    let cookies = set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("__Host-vg={old};")) && host_only(c)),
        "re-issued under the new name: {cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("vg=;") && c.contains("Max-Age=0")),
        "the old name ended: {cookies:?}"
    );
    assert!(!upgraded.jar.contains_key("vg"));
    assert_eq!(upgraded.get_html("/upload").await.status(), 200);
}

/// A forwarder in front of Redis that, once armed, loses the first reply that carries a kept
/// request (a bulk string longer than 100 bytes; every other reply on this path is shorter): Redis has run the command, the connection
/// breaks before verigate reads the answer. `lost` says it happened.
struct LosesAReply {
    addr: std::net::SocketAddr,
    armed: Arc<std::sync::atomic::AtomicBool>,
    lost: Arc<std::sync::atomic::AtomicBool>,
}

async fn loses_a_reply(target: std::net::SocketAddr) -> LosesAReply {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, lo) = (armed.clone(), lost.clone());
    tokio::spawn(async move {
        while let Ok((inbound, _)) = l.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (a, lo) = (a.clone(), lo.clone());
            tokio::spawn(async move {
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut ri, &mut wo).await });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match ro.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let reply = &buf[..n];
                    if reply.first() == Some(&b'$') && n > 100 && a.swap(false, Ordering::SeqCst) {
                        lo.store(true, Ordering::SeqCst);
                        break; // the reply is lost; both directions close
                    }
                    if wi.write_all(reply).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    LosesAReply { addr, armed, lost }
}

/// The guarantee the docs give for Redis: at most once. Redis runs the take, its reply is
/// lost: verigate answers 503 (the page says the form is kept for a reload) but the post is
/// gone from the store; a reload finds nothing; the app never gets it (never twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_take_whose_reply_is_lost_delivers_at_most_once() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let fwd = loses_a_reply(redis_addr(&url)).await;
    let prefix = format!("vgtest:kept-lost-reply:{}:", std::process::id());
    let store = Storage::redis(&format!("redis://{}", fwd.addr)).prefix(&prefix);
    let (env, app) = start(proxy().store(store)).await;
    let mut b = env.browser();
    let r = submit(&mut b, "/signup", FORM, b"nickname=lost-reply".to_vec()).await;
    assert_eq!(r.status(), 303);
    verify(&env, &mut b, "/signup", &Person::adult()).await;

    fwd.armed.store(true, Ordering::SeqCst);
    let r = b.get_html("/signup").await;
    assert!(
        fwd.lost.load(Ordering::SeqCst),
        "the take's reply was not lost"
    );
    assert_eq!(r.status(), 503);
    let page = r.text().await.unwrap();
    assert!(page.contains(" · store_unavailable</p>"), "{page}");
    // The page promises no reload: the form was not sent, and may be gone.
    assert!(
        page.contains(
            "Your form was not sent. Trying again sends it if it is still kept, but it may be gone"
        ),
        "{page}"
    );
    assert!(!page.contains("kept for a reload"), "{page}");
    // Redis ran the take: the kept request is gone from the store.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let kept: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}kept*"))
        .query(&mut con)
        .unwrap();
    assert!(kept.is_empty(), "{kept:?}");
    // Trying again finds nothing: the app gets the GET, never the post.
    let r = b.get_html("/signup").await;
    assert!(r.status().is_success(), "{}", r.status());
    assert!(app.of("POST", "/signup").is_empty(), "delivered after all?");
    redis_cleanup(&url, &prefix);
}

/// An age-only route keeps a form post as any gated route does, and delivers it with the age
/// headers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_age_only_route_delivers_a_kept_post_with_the_age_alone() {
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .age_status_ttl("365d")
        .routes([
            Route::path("/bar-order")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .min_age(19)
                .age_status(),
            Route::prefix("/"),
        ]);
    let (env, app) = start(proxy).await;
    let mut b = env.browser();
    let r = submit(&mut b, "/bar-order", FORM, b"drink=makgeolli".to_vec()).await;
    assert_eq!(r.status(), 303, "kept, sent to verify");
    verify(&env, &mut b, "/bar-order", &Person::adult()).await;
    // The recorder answers the delivered POST with 201.
    assert_eq!(b.get_html("/bar-order").await.status(), 201);
    let posts = app.of("POST", "/bar-order");
    assert_eq!(posts.len(), 1, "delivered once");
    let s = &posts[0];
    assert_eq!(s.body, b"drink=makgeolli");
    assert_eq!(s.header("x-verified-age-ok"), Some("true"));
    assert!(s.header("x-verified-age-checked-at").is_some());
    for h in ["person", "unique-in-site", "provider", "method", "at"] {
        assert_eq!(s.header(&format!("x-verified-{h}")), None, "{h}");
    }
}
