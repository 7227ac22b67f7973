//! What reaches the upstream app, byte for byte: header names, the request line, and that
//! stripping and injecting hold on every way a request is rebuilt.
//! (Sessions open on the host they were issued on: the browser verified on 127.0.0.1, so the
//! hand-written requests below name that host.)

use crate::common::*;
use serde_json::json;

/// `proxy` in front of the raw upstream, and a verified browser's session cookie.
async fn verified_env(proxy: Proxy) -> (Env, String) {
    let env = Env::with(Setup::new(proxy).upstream(Upstream::Raw)).await;
    let mut b = env.browser();
    let back = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(back.status(), 302, "verification ends in a redirect");
    let vg = b.jar.get("vg").expect("a session cookie").clone();
    (env, vg)
}

/// A request as a legacy browser might spell it: mixed-case names, a spoofed identity header,
/// verigate's cookie between two of the app's.
fn head(target: &str, vg: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Legacy/1.0\r\n\
         X-Custom-Thing: a\r\nX_Verified_Unique_In_Site: forged\r\n\
         Cookie: app=1; vg={vg}; other=2\r\nConnection: close\r\n\r\n"
    )
}

/// Send `head("GET {target}")` through the proxy, expect a 200, and return what reached the
/// app after checking its request line and that it holds each of `want` as a whole line.
async fn forward(env: &Env, target: &str, vg: &str, line: &str, want: &[&str]) -> String {
    let resp = raw_request(env.proxy, &head(target, vg)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let up = env.last_head();
    assert!(up.starts_with(&format!("{line}\r\n")), "{up}");
    let lines: Vec<&str> = up.split("\r\n").collect();
    for w in want {
        assert!(lines.contains(w), "{w} in\n{up}");
    }
    up
}

/// What every rebuilt request must satisfy, whatever the case of its names.
fn assert_gated(head: &str, vg: &str) {
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("forged"),
        "spoofed header reached the app:\n{head}"
    );
    assert!(
        !head.contains(vg),
        "session cookie reached the app:\n{head}"
    );
    assert!(lower.contains("\r\ncookie: app=1; other=2\r\n"), "{head}");
    assert_eq!(
        lower.matches("\r\nx-verified-unique-in-site: ").count(),
        1,
        "{head}"
    );
    assert!(
        lower.contains("\r\nx-verified-provider: iamport\r\n"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_go_upstream_in_canonical_case_by_default() {
    let (env, vg) = verified_env(Proxy::shop()).await;
    // Lower-case, but for the framing names Pingora title-cases (Host, Content-Length, ...):
    // one spelling for HTTP/1 and HTTP/2 clients.
    let names = [
        "user-agent: Legacy/1.0",
        "x-custom-thing: a",
        "Host: 127.0.0.1",
    ];
    let line = "GET /member/page?q=1 HTTP/1.1";
    let up = forward(&env, "/member/page?q=1", &vg, line, &names).await;
    assert_gated(&up, &vg);

    // The open route is rebuilt the same way: no spelling differs between routes.
    let up = forward(&env, "/open", &vg, "GET /open HTTP/1.1", &names).await;
    assert!(!up.to_ascii_lowercase().contains("x-verified"), "{up}");
    assert!(!up.contains(&vg), "{up}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_header_case_keeps_the_clients_spelling() {
    let (env, vg) = verified_env(Proxy::shop().preserve_header_case()).await;
    let names = [
        "User-Agent: Legacy/1.0",
        "X-Custom-Thing: a",
        "Host: 127.0.0.1",
    ];
    let up = forward(
        &env,
        "/member/page",
        &vg,
        "GET /member/page HTTP/1.1",
        &names,
    )
    .await;
    assert_gated(&up, &vg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_targets_are_gated_and_forwarded_as_their_path() {
    let (env, vg) = verified_env(Proxy::shop()).await;
    // A proxy-style request line: verigate decides on its path and sends the app exactly
    // that path, in origin form (the app never reads the authority as part of a path).
    let target = "http://127.0.0.1/member/page?q=1";
    let line = "GET /member/page?q=1 HTTP/1.1";
    let up = forward(
        &env,
        target,
        &vg,
        line,
        &["x-custom-thing: a", "Host: 127.0.0.1"],
    )
    .await;
    assert_gated(&up, &vg);

    // Without a session it is still a gated route.
    let before = env.hits();
    let resp = raw_request(env.proxy, &head(target, "nope")).await;
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert_eq!(env.hits(), before);
}

/// An app that is down, or that takes the request and never answers: the person gets a
/// readable page (an API client JSON) with 502 or 504, not Pingora's empty body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_down_or_silent_gets_a_page_not_an_empty_answer() {
    let down = {
        let l = std::net::TcpListener::bind(loopback()).unwrap();
        l.local_addr().unwrap()
    };
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(down))).await;
    // The connection ends after a failed attempt, and the answer says so.
    let raw = raw_request(
        env.proxy,
        "GET /about HTTP/1.1\r\nHost: shop.example\r\nAccept: text/html\r\n\r\n",
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 502"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{raw}"
    );
    let mut b = env.browser();
    let page = b.get_html("/about").await;
    assert_eq!(page.status(), 502);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("502 · upstream_unavailable") && html.contains("서비스에 연결할 수 없습니다"),
        "{html}"
    );
    assert_eq!(
        refusal(b.get_json("/api/items").await).await,
        (502, "upstream_unavailable".into())
    );

    // Accepts, reads, never answers.
    let silent = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let env = Env::with(
        Setup::new(Proxy::shop().upstream_read_timeout("1s")).upstream(Upstream::At(addr)),
    )
    .await;
    let mut b = env.browser();
    let page = b.get_html("/about").await;
    assert_eq!(page.status(), 504);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("504 · upstream_timeout"));
    assert_eq!(
        refusal(b.get_json("/api/items").await).await,
        (504, "upstream_timeout".into())
    );
}

/// What the app is told about who sent a request: from a client, its own forwarding headers
/// are replaced by what verigate saw; from a trusted proxy they are kept and extended. The
/// host the app is told is always the one verigate routed on (a red team's Flask app behind
/// ProxyFix served another vhost's handler from a trusted `X-Forwarded-Host`). Every request
/// has an id, upstream and on verigate's own pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let spoof = |target: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 1.2.3.4\r\n\
             X-Real-IP: 1.2.3.4\r\nForwarded: for=1.2.3.4;host=evil\r\n\
             X-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\
             X-Forwarded-Port: 1337\r\nX-Forwarded-Prefix: //evil.example\r\n\
             X-Host: evil.example\r\nX-Original-Host: evil.example\r\n\
             True-Client-IP: 1.2.3.4\r\nX-Forwarded-Client-Cert: Hash=1\r\n\
             X_Forwarded_Host: evil.example\r\nX_Forwarded_For: 1.2.3.4\r\n\
             X_Forwarded_Port: 1337\r\n\
             X-Request-Id: lb-42\r\nConnection: close\r\n\r\n"
        )
    };
    let line = |head: &str, name: &str| -> Option<String> {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    // A client: replaced.
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::Raw)).await;
    let resp = raw_request(env.proxy, &spoof("/about")).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let up = env.last_head();
    assert_eq!(
        line(&up, "x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "{up}"
    );
    assert_eq!(line(&up, "x-real-ip").as_deref(), Some("127.0.0.1"), "{up}");
    assert_eq!(
        line(&up, "x-forwarded-host").as_deref(),
        Some("shop.example"),
        "{up}"
    );
    assert_eq!(
        line(&up, "x-forwarded-proto").as_deref(),
        Some("http"),
        "{up}"
    );
    assert_eq!(line(&up, "forwarded"), None, "{up}");
    for gone in [
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-host",
        "x-original-host",
        "true-client-ip",
        "x-forwarded-client-cert",
        "x_forwarded_host",
        "x_forwarded_for",
        "x_forwarded_port",
    ] {
        assert_eq!(
            line(&up, gone),
            None,
            "{gone} from a client reached the app:\n{up}"
        );
    }
    assert!(!up.contains("evil") && !up.contains("1337"), "{up}");
    let id = line(&up, "x-request-id").unwrap();
    assert!(id.len() == 32 && id != "lb-42", "{id}");
    // Each request its own id.
    raw_request(env.proxy, &spoof("/about")).await;
    assert_ne!(line(&env.last_head(), "x-request-id").unwrap(), id);
    // verigate's own answers carry it: the header, and the page.
    let refused = raw_request(
        env.proxy,
        "GET /a/../b HTTP/1.1\r\nHost: shop.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    )
    .await;
    let rid = line(&refused, "x-request-id").expect("a request id on verigate's answer");
    assert!(refused.contains(&format!("Request id: {rid}")), "{refused}");

    // A trusted proxy (the load balancer on loopback): kept and extended.
    let env = Env::with(
        Setup::new(Proxy::shop().set("clients", json!({ "trusted_proxies": ["127.0.0.0/8"] })))
            .upstream(Upstream::Raw),
    )
    .await;
    raw_request(env.proxy, &spoof("/about")).await;
    let up = env.last_head();
    assert_eq!(
        line(&up, "x-forwarded-for").as_deref(),
        Some("1.2.3.4, 127.0.0.1"),
        "{up}"
    );
    // The host is the one verigate routed on, whoever says otherwise; no other name for it.
    assert_eq!(
        line(&up, "x-forwarded-host").as_deref(),
        Some("shop.example"),
        "{up}"
    );
    for gone in [
        "forwarded",
        "x-host",
        "x-original-host",
        "x_forwarded_host",
        "x_forwarded_for",
        "x_forwarded_port",
    ] {
        assert_eq!(line(&up, gone), None, "{gone} reached the app:\n{up}");
    }
    // A path prefix changes the path the app routes on: never from anyone (the app sets its
    // prefix in its own config).
    assert_eq!(line(&up, "x-forwarded-prefix"), None, "{up}");
    // What a load balancer knows and verigate does not: kept.
    assert_eq!(line(&up, "x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(line(&up, "x-forwarded-port").as_deref(), Some("1337"));
    assert_eq!(line(&up, "true-client-ip").as_deref(), Some("1.2.3.4"));
    assert_eq!(line(&up, "x-request-id").as_deref(), Some("lb-42"));
}
