//! One reading of every request: the request line as verigate accepts it (target forms,
//! method spelling, method-override headers), the paths it refuses, 405 for unlisted methods,
//! and the route-table lints. Written as the attacks first: each request here once reached a
//! gated handler of a real app server unverified.

use crate::common::{raw_request, skip, Env, Person, Provider, Proxy, Route, Setup, Upstream};
use serde_json::Value;
use std::collections::HashMap;
use verigate::config::{from_yaml_str, Secrets};

/// Status, lower-cased headers and body of a raw answer.
fn parse(resp: &str) -> (u16, HashMap<String, String>, String) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("<no JSON error in {body:?}>"))
}

async fn send(
    env: &Env,
    method: &str,
    target: &str,
    extra: &str,
) -> (u16, HashMap<String, String>, String) {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n",
        env.proxy
    );
    parse(&raw_request(env.proxy, &head).await)
}

/// A session cookie of a verified adult, for requests that must be refused even so.
async fn adult_cookie(env: &Env) -> String {
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(r.status(), 302, "verification completes");
    format!("Cookie: vg={}\r\n", b.jar["vg"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_targets_other_than_a_path_or_this_hosts_url_are_refused() {
    let env = Env::start().await;
    let cookie = adult_cookie(&env).await;
    for auth in ["", cookie.as_str()] {
        for method in ["GET", "POST", "PUT", "OPTIONS"] {
            for target in [
                "x:/signup",
                "signup",
                "ftp://host/signup",
                "mailto:a@b",
                "urn:signup",
                "http:/signup",
                "http://evil.example/signup",
                "http://user@HOST/signup",
                "//host/../signup",
                "//HOST/signup",
                "///signup",
            ] {
                let target = target.replace("HOST", &env.proxy.to_string());
                let (status, _, body) = send(&env, method, &target, auth).await;
                assert_eq!(status, 400, "{method} {target}: {body}");
                // verigate's answer, or Pingora's bare 400 for a target its parser refuses
                // before any phase runs (an authority that disagrees with Host, ...).
                if !body.is_empty() {
                    let code = error_code(&body);
                    assert!(
                        code == "bad_request_target" || code == "bad_path",
                        "{method} {target}: {code}"
                    );
                }
            }
            let (status, _, body) = send(&env, method, "*", auth).await;
            if method == "OPTIONS" {
                assert_eq!(status, 204, "OPTIONS *: {body}");
            } else {
                assert_eq!(status, 400, "{method} *");
                assert_eq!(error_code(&body), "bad_request_target");
            }
        }
    }
    let (status, _, _) = send(&env, "CONNECT", &format!("{}", env.proxy), "").await;
    assert!(status >= 400, "CONNECT answered {status}");
    assert_eq!(env.hits(), 0, "nothing reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_is_decided_and_forwarded_as_its_path() {
    let env = Env::start().await;
    // The authority agrees with Host: the path decides and is what the app is sent.
    let (status, _, body) = send(&env, "GET", &format!("http://{}/open?x=1", env.proxy), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.last_upstream()["uri"], "/open?x=1");
    // Upper-case scheme and host, default port spelled out or not: the same host.
    let host = env.proxy.to_string();
    let (status, _, _) = send(&env, "GET", &format!("HTTP://{host}/open/2"), "").await;
    assert_eq!(status, 200);
    assert_eq!(env.last_upstream()["uri"], "/open/2");
    // A gated path in absolute form is gated.
    let hits = env.hits();
    for m in ["GET", "POST"] {
        let (status, _, body) = send(&env, m, &format!("http://{host}/signup"), "").await;
        assert_eq!(status, 401, "{m}: {body}");
        assert_eq!(error_code(&body), "verification_required");
    }
    let (status, _, body) = send(&env, "GET", &format!("http://{host}/checkout/.."), "").await;
    assert_eq!((status, error_code(&body).as_str()), (400, "bad_path"));
    // Another authority than Host's, or another port: refused.
    // (Pingora's parser refuses some of these itself, with a bare 400.)
    for t in [
        "http://localhost:1/open",
        "http://127.0.0.2/open",
        "http://127.0.0.1:1/open",
        "https://HOST:1/open",
    ] {
        let t = t.replace("HOST", &host);
        let (status, _, body) = send(&env, "GET", &t, "").await;
        assert_eq!(status, 400, "{t}");
        if !body.is_empty() {
            assert_eq!(error_code(&body), "bad_request_target", "{t}");
        }
    }
    assert_eq!(env.hits(), hits, "no refused request reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_and_double_encoding_are_refused_in_every_spelling() {
    let env = Env::start().await;
    let cookie = adult_cookie(&env).await;
    let spellings = [
        "/checkout/..",
        "/checkout/../",
        "/checkout/.",
        "/checkout/%2e%2e",
        "/checkout/%2E%2E/",
        "/checkout/%2e.",
        "/checkout/.%2E",
        "/checkout/..;/",
        "/checkout/..;x=1",
        "/checkout/.;x",
        "/checkout/%2e%2e%3b",
        "/checkout/%252e%252e",
        "/checkout/%25%32%65%25%32%65",
        "/checkout/%c0%ae%c0%ae",
        "/checkout/%e0%80%ae",
        "/./signup",
        "/x/../signup",
        "/open/%2e%2e/signup",
        "/%2573ignup",
        "/signup%ff",
        "/checkout/..%2f",
        "/checkout\\..",
    ];
    for auth in ["", cookie.as_str()] {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            for p in spellings {
                let (status, _, body) = send(&env, method, p, auth).await;
                assert_eq!(status, 400, "{method} {p}");
                if method != "HEAD" {
                    assert_eq!(error_code(&body), "bad_path", "{method} {p}");
                }
            }
        }
    }
    assert_eq!(env.hits(), 0, "nothing reached the app");
    // Browsers' own spellings still work: a single escape, repeated slashes, a literal %.
    for p in ["/open/%7Euser", "/open//x", "/open/50%25", "/open/a.b/..."] {
        let (status, _, body) = send(&env, "GET", p, "").await;
        assert_eq!(status, 200, "{p}: {body}");
        assert_eq!(env.last_upstream()["uri"], *p, "forwarded as sent");
    }
}

/// Escapes of `?` and `#` end the path for a reader that decodes before it splits (h3 on
/// Node reads `/signup%3F` as `/signup`); verigate would have matched `/signup?` on the open
/// catch-all. Every such spelling is `400 bad_path`, whatever the method and session.
pub const ENCODED_DELIMITERS: &[&str] = &[
    "/signup%3F",
    "/signup%3f",
    "/signup%3Fx",
    "/signup%3f.json",
    "/signup%3F/x",
    "/signup%3F?a=1",
    "/signup%23",
    "/signup%23x",
    "/signup%23/x",
    "/open/%3f/signup",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escaped_query_and_fragment_delimiters_are_refused() {
    let env = Env::start().await;
    let cookie = adult_cookie(&env).await;
    for auth in ["", cookie.as_str()] {
        for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            for p in ENCODED_DELIMITERS {
                let (status, _, body) = send(&env, method, p, auth).await;
                assert_eq!(status, 400, "{method} {p}: {body}");
                if method != "HEAD" {
                    assert_eq!(error_code(&body), "bad_path", "{method} {p}");
                }
            }
        }
    }
    assert_eq!(env.hits(), 0, "nothing reached the app");
    // Escapes of the other delimiters end no reader's path: they still pass as sent.
    for p in ["/open/a%3Ab", "/open/a%40b", "/open/%5Bx%5D", "/open/a%3bb"] {
        let (status, _, body) = send(&env, "GET", p, "").await;
        assert_eq!(status, 200, "{p}: {body}");
        assert_eq!(env.last_upstream()["uri"], *p, "forwarded as sent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_methods_fail_closed_with_405() {
    let env = Env::start().await;
    let cookie = adult_cookie(&env).await;
    for auth in ["", cookie.as_str()] {
        for p in [
            "/signup",
            "/signup/",
            "/SIGNUP",
            "/signup.json",
            "/signup//;x",
            "/%73ignup",
        ] {
            for m in ["PUT", "PATCH", "DELETE", "TRACE", "PROPFIND", "OPTIONS"] {
                let (status, headers, body) = send(&env, m, p, auth).await;
                assert_eq!(status, 405, "{m} {p}: {body}");
                assert_eq!(error_code(&body), "method_not_allowed", "{m} {p}");
                assert_eq!(
                    headers.get("allow").map(String::as_str),
                    Some("GET, POST, HEAD")
                );
            }
            // A lower-case method is no method of this route in any reading.
            for m in ["post", "Post", "get", "pUT"] {
                let (status, _, body) = send(&env, m, p, auth).await;
                assert_eq!(
                    (status, error_code(&body).as_str()),
                    (400, "bad_method"),
                    "{m} {p}"
                );
            }
            // A method-override header names a method the app may act on.
            // (In any spelling of the name's grammar: compared folded.)
            for h in [
                "XHTTPMethodOverride: PUT",
                "X-HTTP-Method-Override: PUT",
                "x-http-method: delete",
                "X-Method-Override: PATCH",
            ] {
                let (status, _, body) = send(&env, "POST", p, &format!("{auth}{h}\r\n")).await;
                assert_eq!(status, 405, "{h} {p}: {body}");
            }
            let (status, _, body) = send(
                &env,
                "POST",
                p,
                &format!("{auth}X-HTTP-Method-Override: bad method\r\n"),
            )
            .await;
            assert_eq!((status, error_code(&body).as_str()), (400, "bad_method"));
        }
    }
    // Express's method-override reads `_method` from the query.
    for t in [
        "/signup?%5Fmethod=PUT",
        "/signup?_me%74hod=PUT",
        "/signup?.method=PUT",
        "/signup?_method=DELETE",
        "/signup?a=1&_method=put",
        "/signup?_method=GET,PUT",
    ] {
        let (status, _, body) = send(&env, "POST", t, &cookie).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (405, "method_not_allowed"),
            "{t}"
        );
    }
    assert_eq!(env.hits(), 0, "nothing reached the app");
    // A name outside the header-name grammar is no override: it never reaches the app, so the
    // request is the POST it says it is.
    let (status, _, body) = send(
        &env,
        "POST",
        "/signup",
        &format!("{cookie}X_HTTP_Method_Override: PUT\r\nX.HTTP.Method.Override: PUT\r\n"),
    )
    .await;
    assert!((200..300).contains(&status), "{status}: {body}");
    let up = env.last_upstream();
    assert_eq!(up["method"], "POST");
    let names: Vec<&String> = up["headers"].as_object().unwrap().keys().collect();
    assert!(names.iter().all(|n| !n.contains("override")), "{names:?}");
    // Listed methods still work, and HEAD comes with GET.
    let (status, _, body) = send(&env, "POST", "/signup", "").await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (401, "verification_required")
    );
    let (status, _, _) = send(&env, "HEAD", "/signup", "").await;
    assert_eq!(status, 401);
    // A route without a method list takes every method; an override to a state-changing
    // method on it needs the session like any other request.
    let (status, _, _) = send(&env, "GET", "/member", "X-HTTP-Method-Override: DELETE\r\n").await;
    assert_eq!(status, 401);
    let (status, _, _) = send(&env, "DELETE", "/member/x", &cookie).await;
    assert_eq!(status, 200);
    assert_eq!(env.last_upstream()["method"], "DELETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_override_counts_as_a_signup() {
    // GET with an override to POST on a one-account route reserves the person like a POST:
    // the second such request is a duplicate.
    let env = Env::with(Proxy::new().provider(Provider::iamport()).routes([
        Route::path("/signup").providers(["iamport"]).one_account(),
        Route::prefix("/").name("rest"),
    ]))
    .await;
    let cookie = adult_cookie(&env).await;
    let ov = format!("{cookie}X-HTTP-Method-Override: POST\r\n");
    let (status, _, _) = send(&env, "GET", "/signup", &ov).await;
    assert_eq!(status, 200, "the first signup goes through");
    let (status, _, body) = send(&env, "GET", "/signup", &ov).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (409, "duplicate_account")
    );
    let (status, _, body) = send(&env, "PUT", "/signup", &cookie).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (409, "duplicate_account")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_override_headers_never_reach_the_app() {
    let env = Env::start().await;
    let (status, _, _) = send(
        &env,
        "GET",
        "/open",
        "X-Original-URL: /signup\r\nX-Rewrite-URL: /signup\r\nX-Original-URI: /signup\r\nX_Original_URL: /signup\r\nx_rewrite_url: /signup\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let headers = &env.last_upstream()["headers"];
    for h in [
        "x-original-url",
        "x-rewrite-url",
        "x-original-uri",
        "x_original_url",
        "x_rewrite_url",
    ] {
        assert!(headers.get(h).is_none(), "{h} forwarded: {headers}");
    }
}

fn secrets() -> Secrets {
    let mut m = HashMap::new();
    m.insert("KEYS".to_string(), crate::common::SESSION_KEY.to_string());
    m.insert("IMP_KEY".to_string(), "k".to_string());
    m.insert("IMP_SECRET".to_string(), "s".to_string());
    Secrets::from_map(m)
}

fn problems(routes: &str) -> Vec<String> {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
upstream: {{ addrs: ["127.0.0.1:3000"] }}
session: {{ keys_env: KEYS }}
providers:
  iamport: {{ imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }}
routes:
{routes}"#
    );
    match from_yaml_str(&yaml, &secrets()) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    }
}

#[test]
fn route_table_lints_name_their_key_paths() {
    let ps = problems(
        r#"
  - name: everything
    match: { path_prefix: / }
  - name: signup
    match: { path: /signup, methods: [GET, PSOT, purge] }
    require: { providers: [iamport] }
  - name: signup
    match: { path: /a, extension_methods: [PURGE, purge, GET, "NOT A"], other_methods: maybe }
  - name: dots
    match: { path_prefix: /x/../y }
"#,
    );
    let want = [
        "routes[1].match.methods[1]: `PSOT` is not a standard HTTP method",
        "routes[1].match.methods[2]: `purge` is not a standard HTTP method",
        "routes[1].match: route `signup` can never match: route `everything` (routes[0])",
        "routes[2].name: `signup` is used by an earlier route",
        "routes[2].match.extension_methods[1]: `purge` must be a method token in capitals",
        "routes[2].match.extension_methods[2]: `GET` must be",
        "routes[2].match.extension_methods[3]: `NOT A` must be",
        "routes[2].match.other_methods: `maybe` is not one of refuse, next_route",
        "routes[3].match.path_prefix: `/x/../y` is refused in requests",
    ];
    for w in want {
        assert!(ps.iter().any(|p| p.contains(w)), "missing {w:?} in {ps:#?}");
    }
    // The catch-all shadows routes [2] too; nothing else is reported.
    assert_eq!(ps.len(), want.len() + 1, "{ps:#?}");

    // Shadowing by a prefix, an exact pattern with a format suffix, a method set.
    let ps = problems(
        r#"
  - name: account
    match: { path_prefix: /account }
  - name: settings
    match: { path: /Account/Settings }
  - name: signup
    match: { path: /signup, methods: [GET], other_methods: next_route }
  - name: signup-post
    match: { path: /signup, methods: [POST] }
  - name: signup-head
    match: { path: /signup.json, methods: [HEAD] }
"#,
    );
    assert_eq!(ps.len(), 2, "{ps:#?}");
    assert!(
        ps[0].contains("routes[1].match: route `settings` can never match"),
        "{ps:#?}"
    );
    assert!(
        ps[1].contains(
            "routes[4].match: route `signup-head` can never match: route `signup` (routes[2])"
        ),
        "{ps:#?}"
    );

    // Correct tables pass: specific before general, extension methods declared.
    let ps = problems(
        r#"
  - name: pay
    match: { path: /checkout/pay, methods: [POST], extension_methods: [PURGE] }
  - name: checkout
    match: { path_prefix: /checkout }
  - name: rest
    match: { path_prefix: / }
"#,
    );
    assert_eq!(ps, Vec::<String>::new());
}

/// verigate with short client deadlines, so slow clients are dropped while the test waits.
async fn impatient() -> Env {
    Env::with(Proxy::shop().client_timeouts("1s", "1s")).await
}

/// Send `head` a byte at a time, `gap` apart, until the server answers or closes; returns what
/// it answered (bounded: at most `head.len()` bytes are dripped, then the rest is read with a
/// 20 s bound).
async fn drip(
    s: &mut tokio::net::TcpStream,
    head: &[u8],
    gap: std::time::Duration,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    for b in head {
        if s.write_all(&[*b]).await.is_err() {
            break;
        }
        // Anything back (an answer, or the close) ends the drip.
        match tokio::time::timeout(gap, s.read(&mut chunk)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => {
                out.extend_from_slice(&chunk[..n]);
                break;
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

const SLOW_HEAD: &[u8] = b"GET /open HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drips_its_headers_is_dropped_and_does_not_slow_others() {
    let env = impatient().await;
    let gap = std::time::Duration::from_millis(100);
    // 40 drippers at once, each far slower than the 1 s deadline allows for its head.
    let proxy = env.proxy;
    let drippers: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
                drip(&mut s, SLOW_HEAD, gap).await
            })
        })
        .collect();
    // Meanwhile an ordinary client is served.
    for i in 0..20 {
        let r = env
            .client
            .get(env.url(&format!("/open/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for d in drippers {
        let answer = d
            .await
            .unwrap()
            .expect("the dripper was answered or closed");
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "dripper got {answer:?}"
        );
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "408 before closing: {answer:?}"
        );
    }
    assert_eq!(env.hits(), 20, "no dripped request reached the app");
    // The same on a kept-alive connection's second request.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET /open/first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let answer = drip(&mut s, SLOW_HEAD, gap)
        .await
        .expect("answered or closed");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "second request: {answer:?}"
    );
    assert_eq!(env.hits(), 21);
}

/// Send `first` at once, then drip `rest`: the answer must be a 408 (`what` names the case).
async fn expect_408(
    mut s: tokio::net::TcpStream,
    first: &[u8],
    rest: &[u8],
    gap: std::time::Duration,
    what: &str,
) {
    use tokio::io::AsyncWriteExt;
    s.write_all(first).await.unwrap();
    let answer = drip(&mut s, rest, gap).await.expect("answered or closed");
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "{first:?} {what}: {answer:?}"
    );
}

/// Empty lines before a request line (which HTTP/1 servers skip) are not the end of a head: a
/// client that sends them first, or sends nothing else, still has `header_timeout` from its first
/// byte. Red team: with `\r\n\r\n` first, a head dripped for 38 s reached the app, and a
/// stream of empty lines held a connection for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_lines_before_a_head_do_not_stop_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = impatient().await;
    let gap = std::time::Duration::from_millis(100);
    for prefix in [&b"\r\n\r\n"[..], b"\n\n", b"\r\n\n", b"\n\r\n"] {
        // In the same packet as the first byte of the request line, then the rest dripped.
        let mut first = prefix.to_vec();
        first.push(SLOW_HEAD[0]);
        let s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
        expect_408(s, &first, &SLOW_HEAD[1..], gap, "first").await;
        // Alone, then the whole head dripped.
        let s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
        expect_408(s, prefix, SLOW_HEAD, gap, "alone").await;
        // On a kept-alive connection's second request.
        let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
        s.write_all(b"GET /open/first HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        expect_408(s, prefix, SLOW_HEAD, gap, "second request").await;
    }
    // Nothing but empty lines, two every 100 ms: dropped at the deadline, not held.
    let s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    let lines = b"\n\n".repeat(200);
    let gap = std::time::Duration::from_millis(50);
    expect_408(s, b"", &lines, gap, "empty lines only").await;
    assert_eq!(
        env.hits(),
        4,
        "only the four first requests reached the app"
    );
}

/// An app that reads each request's whole body (by Content-Length) before it answers, and
/// reports through the channel how many body bytes it got before the connection ended.
async fn patient_upstream() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<usize>) {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind(crate::common::loopback())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut conn = crate::common::RawConn::new(s);
                let Some(head) = conn.head().await else {
                    return;
                };
                let want = crate::common::content_length(&head);
                let got = conn.body(want).await;
                let _ = tx.send(got).await;
                if got >= want {
                    let _ = conn
                        .s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (addr, rx)
}

/// Send `head` in writes of `chunk` bytes, then read the answer to its end (at most 20 s).
async fn send_in_pieces(env: &Env, head: &[u8], chunk: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    for piece in head.chunks(chunk) {
        if s.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let done =
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(done.is_ok(), "the connection was still open after 20 s");
    String::from_utf8_lossy(&out).into_owned()
}

/// A head of `size` bytes: one long header, then the empty line.
fn long_head(size: usize) -> Vec<u8> {
    let mut head = b"GET /open HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nX-Long: ".to_vec();
    head.resize(size - 4, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    head
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_4_kib_and_near_the_limit_are_read_whole_in_any_pieces() {
    let env = Env::with(Setup::default().upstream(Upstream::Raw)).await;
    // Over the first read's 4 KiB, and just under Pingora's 1 MiB limit on a head; in small
    // writes, and with the last empty line split across two writes.
    for (size, chunk) in [
        (4096 + 3, 7),
        (64 * 1024, 1000),
        (1024 * 1024 - 1024, 1000),
        (1024 * 1024 - 1024, 1024 * 1024 - 1026),
    ] {
        let head = long_head(size);
        let hits = env.hits();
        let answer = send_in_pieces(&env, &head, chunk).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{size} in {chunk}s: {}",
            &answer[..answer.len().min(200)]
        );
        assert_eq!(env.hits(), hits + 1, "{size}");
        let long = env
            .last_head()
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("x-long: ")
                    .map(str::len)
            })
            .unwrap_or(0);
        assert_eq!(
            long,
            size - 4 - "GET /open HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nX-Long: ".len(),
            "{size}"
        );
    }
    // Past the limit: refused, the app never reached.
    let hits = env.hits();
    let answer = send_in_pieces(&env, &long_head(1024 * 1024 + 64), 1000).await;
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    assert_eq!(env.hits(), hits, "a head past the limit reached the app");
}

/// Send `bytes` on a new connection and read until verigate closes it (at most 20 s).
async fn send_and_wait(env: &Env, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let done =
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(done.is_ok(), "the connection was still open after 20 s");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_ends_the_request() {
    // It counts every client error of the process: alone, none but its own.
    if !skip::alone("request_reading::a_body_that_stops_arriving_ends_the_request") {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (app, mut seen) = patient_upstream().await;
    let impatient = Proxy::shop().client_timeouts("1s", "1s");
    let env = Env::with(Setup::new(impatient).upstream(Upstream::At(app))).await;
    // verigate gives up on the body by itself (the client never closes): the client gets a
    // 408, and the app sees the body end short.
    let text = send_and_wait(
        &env,
        b"POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-some",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let got = tokio::time::timeout(std::time::Duration::from_secs(20), seen.recv())
        .await
        .expect("the app's connection ended")
        .expect("the app saw the request");
    assert!(got < 100, "the app got a whole body: {got}");
    // The same stall on a gated route, from a browser whose form post verigate would keep
    // across the verification: 408 too (red team: it was a 500), and nothing reaches the app.
    let form = format!(
        "POST /signup HTTP/1.1\r\nHost: {0}\r\nOrigin: http://{0}\r\n\
         Accept: text/html\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Mode: navigate\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\na=b",
        env.proxy
    );
    let text = send_and_wait(&env, form.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Both are the client's doing: counted as client errors, not as the app's.
    let metrics = env.metrics().await;
    let count = |decision: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("verigate_requests_total{")
                    && l.contains(&format!("decision=\"{decision}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(count("client_error"), 2.0, "{metrics}");
    assert_eq!(count("upstream_error"), 0.0, "{metrics}");
    // A body that keeps arriving, however slowly within the idle bound, goes through.
    let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    s.write_all(
        b"POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab",
    )
    .await
    .unwrap();
    s.write_all(b"cd").await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert_eq!(seen.recv().await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_or_the_connection_closes_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = Env::start().await;
    for (first, second) in [
        ("/open/1", "/open/2"),
        ("/signup", "/open/2"),
        ("/open/1", "/signup"),
        ("/checkout/..", "/open/2"),
    ] {
        let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
        let both = format!(
            "GET {first} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\nGET {second} HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(both.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .expect("never a silent hang")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        let statuses: Vec<&str> = text
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect();
        let want = |p: &str| match p {
            "/signup" => "401",
            "/checkout/.." => "400",
            _ => "200",
        };
        assert!(!statuses.is_empty(), "{first} {second}: no answer");
        assert_eq!(statuses[0], want(first), "{first} answered first: {text}");
        if let Some(s2) = statuses.get(1) {
            assert_eq!(*s2, want(second), "{second} answered second: {text}");
        }
        assert!(statuses.len() <= 2, "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_headers_must_name_a_host() {
    let env = Env::with(Setup::default().upstream(Upstream::Raw)).await;
    for head in [
        "GET /open HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /open HTTP/1.1\r\nHost: shop.example/signup\r\nConnection: close\r\n\r\n",
        "GET /open HTTP/1.1\r\nHost: user@shop.example\r\nConnection: close\r\n\r\n",
        "GET /open HTTP/1.1\r\nHost: shop.example:port\r\nConnection: close\r\n\r\n",
    ] {
        let (status, _, body) = parse(&raw_request(env.proxy, head).await);
        assert_eq!(status, 400, "{head:?}");
        if !body.is_empty() {
            assert!(body.contains("bad_request_target"), "{head:?}: {body}");
        }
    }
    assert_eq!(env.hits(), 0);
    // HTTP/1.0 needs no Host.
    let (status, _, _) = parse(&raw_request(env.proxy, "GET /open HTTP/1.0\r\n\r\n").await);
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_content_lengths_reach_the_app_as_one() {
    let env = Env::with(Setup::default().upstream(Upstream::Raw)).await;
    for cl in [
        "Content-Length: 3\r\nContent-Length: 3\r\n",
        "Content-Length: 3, 3\r\n",
    ] {
        let head = format!("POST /open HTTP/1.1\r\nHost: x\r\n{cl}Connection: close\r\n\r\nabc");
        let resp = raw_request(env.proxy, &head).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        let up = env.last_head().to_ascii_lowercase();
        assert_eq!(up.matches("content-length").count(), 1, "{up}");
        assert!(up.contains("\r\ncontent-length: 3\r\n"), "{up}");
    }
}
