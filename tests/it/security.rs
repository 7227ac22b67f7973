//! Unhappy paths: spoofed identity headers, forged or broken cookies, path tricks, open redirects.

use crate::common::*;
use serde_json::Value;
use verigate::identity::ProviderId;
use verigate::session::{Claims, Keyring, Purpose};

const SPOOFS: &[&str] = &[
    "X-Verified-Unique-In-Site",
    "x-verified-age-ok",
    "X-VERIFIED-PROVIDER",
    "X_Verified_At",
    "x_verified_unique_in_site",
    "X-Verified_Name",
    "x-verified-anything-else",
];

fn identity_headers(up: &Value) -> Vec<(String, Value)> {
    up["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| {
            k.to_ascii_lowercase()
                .replace('_', "-")
                .starts_with("x-verified-")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_app() {
    let env = Env::start().await;
    // Open route: every variant stripped. Raw socket so underscores and case go through as sent.
    let mut head = String::from("GET /open/page HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n");
    for h in SPOOFS {
        head.push_str(&format!("{h}: forged\r\n"));
    }
    head.push_str("X-Verified-Age-Ok: true\r\n\r\n");
    let resp = raw_request(env.proxy, &head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert_eq!(identity_headers(&env.last_upstream()), vec![]);

    // Gated route with a real session: only verigate's values arrive.
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    let mut req = b.client.get(b.url("/member")).header("accept", "text/html");
    for h in SPOOFS {
        req = req.header(*h, "forged");
    }
    let r = b.send(req).await;
    assert_eq!(r.status(), 200);
    let ids = identity_headers(&env.last_upstream());
    assert!(!ids.is_empty());
    for (k, v) in &ids {
        assert!(!v.to_string().contains("forged"), "{k} kept a forged value");
        assert_eq!(v.as_array().unwrap().len(), 1, "{k} has one value");
    }
    assert!(ids.iter().all(|(k, _)| !k.contains("anything")));

    // Gated route without a session: spoofing does not open it.
    let mut head = String::from(
        "GET /member HTTP/1.1\r\nHost: shop\r\nAccept: text/html\r\nConnection: close\r\n",
    );
    for h in SPOOFS {
        head.push_str(&format!("{h}: forged\r\n"));
    }
    head.push_str("\r\n");
    let resp = raw_request(env.proxy, &head).await;
    assert!(resp.starts_with("HTTP/1.1 302"), "{resp}");
}

/// Header names an app stack may read as a protected one: identity names in other
/// spellings (CGI and WSGI servers turn `-` into `_`, others fold more), the environment app
/// servers take from their proxy (script name, path, prefix, user; `Proxy` as `HTTP_PROXY`),
/// forwarding and override headers spelled outside the grammar, and plain names outside it.
const NAME_SPELLINGS: &[&str] = &[
    "X_Verified_Name",
    "X-Verified_Name",
    "x.verified.name",
    "X-VERIFIED_NAME",
    "X-Verified.Age-Ok",
    "XVerifiedAgeOk",
    "X-VerifiedProvider",
    "X-Verified~Provider",
    "x!verified!unique!in!site",
    "X-Verified-Assertion",
    "SCRIPT_NAME",
    "Script-Name",
    "PATH_INFO",
    "Path-Info",
    "REMOTE_USER",
    "Remote-User",
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Prefix",
    "X_Forwarded_Prefix",
    "X-Script-Name",
    "X-Forwarded-Script-Name",
    "X-Forwarded-Path",
    "X-Forwarded-Uri",
    "X-Original-URL",
    "X.Original.URL",
    "XOriginalURL",
    "X-Rewrite-URL",
    "X-Original-URI",
    "Request-Uri",
    "Proxy",
    "X_Forwarded_For",
    "X-Forwarded_Host",
    "X.Real.IP",
    "X_HTTP_Method_Override",
    "X.HTTP.Method.Override",
    "Foo_Bar",
    "foo.bar",
    "a#b",
    "a|b",
];

/// No value `forged` and no name outside the grammar or protected when folded reached the app.
fn nothing_forged(up: &Value) -> Result<(), String> {
    let headers = up["headers"].as_object().ok_or("no headers")?;
    for (k, v) in headers {
        let folded: String = k
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        if v.to_string().contains("forged")
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || folded.starts_with("xverified")
            || [
                "scriptname",
                "pathinfo",
                "remoteuser",
                "xforwardedprefix",
                "xscriptname",
                "xoriginalurl",
                "proxy",
            ]
            .contains(&folded.as_str())
        {
            return Err(format!("{k}: {v} reached the app"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_names_outside_the_grammar_and_server_environment_names_never_reach_the_app() {
    let env = Env::start().await;
    let mut asked = 0;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let mut head = format!("{method} /open/page HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\nConnection: close\r\n");
        for h in NAME_SPELLINGS {
            head.push_str(&format!("{h}: forged\r\n"));
        }
        head.push_str("X-App-Header: kept\r\n\r\n");
        let hits = env.hits();
        let resp = raw_request(env.proxy, &head).await;
        assert!(resp.starts_with("HTTP/1.1 2"), "{method}: {resp}");
        assert_eq!(env.hits(), hits + 1, "{method}");
        let up = env.last_upstream();
        if let Err(e) = nothing_forged(&up) {
            panic!("{method}: {e}");
        }
        assert_eq!(
            up["headers"]["x-app-header"],
            serde_json::json!(["kept"]),
            "{method}"
        );
        asked += 1;
    }
    assert_eq!(asked, 6);
    // Each spelling is dropped on its own too (not only when beside the others).
    for h in NAME_SPELLINGS {
        let head = format!(
            "GET /open/page HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n{h}: forged\r\n\r\n"
        );
        let resp = raw_request(env.proxy, &head).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{h}: {resp}");
        if let Err(e) = nothing_forged(&env.last_upstream()) {
            panic!("{h}: {e}");
        }
    }
    // Counted by why, never by name or value.
    let m = env.metrics().await;
    for why in ["invalid_name", "identity", "environment"] {
        assert!(
            m.contains(&format!("verigate_dropped_headers_total{{why=\"{why}\"}}")),
            "{why}: {m}"
        );
    }
    assert!(!m.contains("forged") && !m.to_ascii_lowercase().contains("script_name"));
}

/// Claims other proxies make to apps, sent by a client: the scheme (Tornado's `xheaders`
/// prefers `X-Scheme` to verigate's `X-Forwarded-Proto`), users and groups of auth proxies,
/// client addresses, hosts, and the base path an app is mounted under.
const PROXY_CLAIMS: &[&str] = &[
    "X-Scheme",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Webauth-User",
    "X-Authenticated-User",
    "X-Proxy-User",
    "Remote-Email",
    "X-Amzn-Oidc-Identity",
    "X-Ms-Client-Principal-Name",
    "Oidc-Claim-Sub",
    "Client-Ip",
    "X-Original-Forwarded-For",
    "X-ProxyUser-Ip",
    "X-Forwarded-Https",
    "Https",
    "X-Forwarded-Hostname",
    "X-Forwarded-Host-Name",
    "X-Forwarded-Base",
    "X-Base-Url",
    "X-Forwarded-Context",
    "X-Envoy-Original-Path",
    "X-Ingress-Path",
    "X-Path-Prefix",
    // Red team, second round: Authelia, Tailscale, Cloudflare Access, Pomerium, client
    // certificates, originating addresses, X-Accel/X-Sendfile path control.
    "Remote-Name",
    "X-Remote-Group",
    "Tailscale-User-Login",
    "Cf-Access-Jwt-Assertion",
    "X-Pomerium-Jwt-Assertion",
    "Ssl-Client-Cert",
    "X-Ssl-Client-Cert",
    "X-Originating-Ip",
    "X-Accel-Redirect",
    "X-Accel-Mapping",
    "X-Sendfile-Type",
];

/// Ordinary headers of apps and browsers, which must still reach the app.
const APP_HEADERS: &[&str] = &[
    "X-Requested-With",
    "X-CSRF-Token",
    "X-Api-Key",
    "User-Agent",
    "Accept",
    "Cookie",
    "Sec-Fetch-User",
    "Sec-WebSocket-Protocol",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_proxies_claims_never_reach_the_app_and_app_headers_do() {
    let env = Env::start().await;
    for h in PROXY_CLAIMS {
        let head = format!(
            "GET /open/page HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n{h}: forged\r\n\r\n"
        );
        let resp = raw_request(env.proxy, &head).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{h}: {resp}");
        let up = env.last_upstream();
        let headers = up["headers"].as_object().expect("headers");
        assert!(
            !headers.contains_key(&h.to_ascii_lowercase()),
            "{h} reached the app: {up}"
        );
        assert!(!up.to_string().contains("forged"), "{h}: {up}");
    }
    let mut head = String::from("GET /open/page HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n");
    for h in APP_HEADERS {
        head.push_str(&format!("{h}: app=sent\r\n"));
    }
    head.push_str("\r\n");
    let resp = raw_request(env.proxy, &head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let up = env.last_upstream();
    for h in APP_HEADERS {
        assert_eq!(
            up["headers"][h.to_ascii_lowercase()],
            serde_json::json!(["app=sent"]),
            "{h}: {up}"
        );
    }
}

fn claims(now: i64) -> Claims {
    Claims {
        unique_in_site: "forged-di".into(),
        ci_hash: "h".into(),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
        provider: ProviderId::Iamport,
        verified_at: now,
        issued_at: now,
        expires_at: now + 3600,
        name: None,
        gender: None,
        phone: None,
        countries: Vec::new(),
        foreigner: None,
        carrier: None,
        method: String::new(),
        // The host the test's requests name: each case is refused for its own reason.
        host: Some("127.0.0.1".into()),
        host_only: false,
        kept: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_expired_and_wrong_key_cookies_are_refused() {
    let env = Env::start().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    let good = b.jar["vg"].clone();
    let now = chrono::Utc::now().timestamp();
    let right = Keyring::from_base64_list(SESSION_KEY).unwrap();
    let wrong = Keyring::new(&[[9u8; 32]]).unwrap();
    let mut flipped = good.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let expired = right.seal_json(
        Purpose::Session,
        &Claims {
            expires_at: now - 1,
            ..claims(now - 7200)
        },
    );
    let future = right.seal_json(
        Purpose::Session,
        &Claims {
            issued_at: now + 3600,
            ..claims(now)
        },
    );
    let flow_as_session = right.seal_json(Purpose::Flow, &claims(now));
    let cases = [
        ("tampered", String::from_utf8(flipped).unwrap()),
        ("truncated", good[..good.len() - 4].to_string()),
        ("wrong key", wrong.seal_json(Purpose::Session, &claims(now))),
        (
            "issued on another host",
            right.seal_json(
                Purpose::Session,
                &Claims {
                    host: Some("shop.example".into()),
                    ..claims(now)
                },
            ),
        ),
        (
            "issued on no host",
            right.seal_json(
                Purpose::Session,
                &Claims {
                    host: None,
                    ..claims(now)
                },
            ),
        ),
        ("expired", expired),
        ("issued in the future", future),
        ("flow cookie as session", flow_as_session),
        ("garbage", "%%%not-base64".into()),
        ("empty", String::new()),
    ];
    let hits = env.hits();
    for (what, value) in cases {
        let r = env
            .client
            .get(env.url("/member"))
            .header("accept", "text/html")
            .header("cookie", format!("vg={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{what}");
    }
    assert_eq!(env.hits(), hits);
    // A cookie sealed with the right key is honoured (rotation and multi-instance rely on it).
    let minted = right.seal_json(Purpose::Session, &claims(now));
    let r = env
        .client
        .get(env.url("/member"))
        .header("cookie", format!("vg={minted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_spellings_cannot_slip_past_a_gated_route() {
    let env = Env::start().await;
    for p in [
        "/SIGNUP",
        "/Signup/",
        "//signup",
        "/./signup",
        "/x/../signup",
        "/%73ignup",
        "/%2573ignup",
        "/signup;jsessionid=1",
        "/signup/",
        "/%53%49%47%4E%55%50",
        "/open/..%2f..%2fsignup",
        "/member/../signup",
        "/MEMBER",
        "/%6dember",
        "/checkout/%2e%2e/adult",
        "/signup?x=/open",
    ] {
        let r = env
            .client
            .get(env.url(p))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 302 || r.status() == 400,
            "{p} answered {}",
            r.status()
        );
    }
    for p in ["/sign%2fup", "/signup%00", "/signup%5c", "/a%zz"] {
        let r = env.client.get(env.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{p}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_path");
    }
    // Backslash and control characters via a raw socket.
    let resp = raw_request(
        env.proxy,
        "GET /signup\\ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert_eq!(env.hits(), 0, "nothing reached the app");
    // The query string never changes the route.
    let r = env
        .client
        .get(env.url("/open?next=/signup"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_accepts_only_same_site_paths() {
    let env = Env::start().await;
    for bad in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/x%0d%0aSet-Cookie:%20a=b",
    ] {
        let enc: String = form_urlencoded::byte_serialize(bad.as_bytes()).collect();
        for ep in ["verify", "iamport/start"] {
            let r = env
                .client
                .get(env.url(&format!("/.verigate/{ep}?return_to={enc}")))
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 400, "{ep} accepted {bad}");
            assert!(r.headers().get("set-cookie").is_none());
            let html = r.text().await.unwrap();
            assert!(
                html.contains(r#"<p class="code">400 · bad_return_to</p>"#),
                "{ep} refused {bad} for another reason: {html}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_page_escapes_and_binds_return_to() {
    // A return_to that, written into a page as is, would end the page's script block and
    // run its own.
    const HOSTILE: &str = "/member?q=</script><script>alert(1)</script>";
    // Two ways to verify, so the choice page is shown (with one it redirects: see below).
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .provider(Provider::portone())
            .route(Route::prefix("/member").providers(["iamport", "portone"]))
            .route(Route::prefix("/")),
    )
    .await;
    // Bound: the flow ends exactly where it started, whatever the return_to holds.
    let mut b = env.browser();
    let flow = b.start_iamport(HOSTILE).await;
    assert_eq!(flow.params["provider"], "iamport");
    let r = b
        .verify_redirect(env.sandbox, HOSTILE, &Person::adult())
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], HOSTILE);
    // Escaped: every flow page that carries the return_to (the choice page's links, the
    // start page, a refusal's retry link) keeps it inert. The pages for a plain return_to
    // give the number of script elements each page has of its own.
    let pages = |return_to: &'static str| {
        let env = &env;
        async move {
            let enc: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
            let mut c = env.browser();
            let choice = c
                .get_html(&format!("/.verigate/verify?return_to={enc}"))
                .await;
            assert_eq!(choice.status(), 200);
            let choice = choice.text().await.unwrap();
            let start = c
                .get_html(&format!("/.verigate/iamport/start?return_to={enc}"))
                .await;
            assert_eq!(start.status(), 200);
            let start = start.text().await.unwrap();
            // The person cancels in the provider's window: refused, with a retry link.
            let refusal = c.get_html("/.verigate/iamport/return?success=false").await;
            assert_eq!(refusal.status(), 403);
            let refusal = refusal.text().await.unwrap();
            assert!(
                refusal.contains(r#"<p class="code">403 · not_certified</p>"#),
                "{refusal}"
            );
            (
                enc,
                [("choice", choice), ("start", start), ("refusal", refusal)],
            )
        }
    };
    let (_, plain) = pages("/member").await;
    let (enc, hostile) = pages(HOSTILE).await;
    // The markup around the first place `needle` shows up on a page.
    let around = |html: &str, needle: &str| {
        let at = html.find(needle).unwrap_or(0);
        let from = html.floor_char_boundary(at.saturating_sub(120));
        let to = html.ceil_char_boundary((at + 120).min(html.len()));
        html[from..to].to_string()
    };
    for ((page, html), (_, own)) in hostile.iter().zip(&plain) {
        assert!(
            !html.contains("<script>alert(1)"),
            "the return_to broke out of the {page} page's markup: …{}…",
            around(html, "<script>alert(1)")
        );
        assert_eq!(
            html.matches("<script").count(),
            own.matches("<script").count(),
            "the return_to added a script element to the {page} page:\n{html}"
        );
        assert_eq!(
            html.matches("</script>").count(),
            own.matches("</script>").count(),
            "the return_to closed a script element on the {page} page:\n{html}"
        );
    }
    // And the return_to is really on the pages that link back to it, URL-encoded: the
    // checks above looked where it is.
    for (page, link) in [(0, "/.verigate/iamport/start"), (2, "/.verigate/verify")] {
        let (name, html) = &hostile[page];
        let href = format!(r#"href="{link}?return_to={enc}""#);
        assert!(
            html.contains(&href),
            "no {href} on the {name} page: …{}…",
            around(html, "href=")
        );
    }
    // With one way to verify, the choice page is a redirect whose Location carries the
    // return_to encoded, never as markup.
    let env = Env::start().await;
    let r = env
        .browser()
        .get_html(&format!("/.verigate/verify?return_to={enc}"))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("/.verigate/iamport/start?return_to={enc}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flow_endpoint_and_unmatched_route() {
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .route(Route::prefix("/member").providers(["iamport"])),
    )
    .await;
    let r = env
        .client
        .get(env.url("/.verigate/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // No route matches: fail closed with 404, nothing upstream.
    let r = env.client.get(env.url("/elsewhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "no_route");
    assert_eq!(env.hits(), 0);
}

/// A Cookie line that is not text (a UTF-8 cookie beside verigate's session) is outside the
/// cookie grammar: verigate neither reads it nor forwards it, so the session cookie it carries
/// never reaches the app of an open route; the app's text cookies still go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_line_that_is_not_text_never_reaches_the_app() {
    let env = Env::start().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    let session = b.jar.get("vg").cloned().expect("a session cookie");
    let head = format!(
        "GET /open/page HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\
         Cookie: vg={session}; theirs=caf\u{e9}\r\nCookie: plain=1\r\n\r\n"
    );
    let resp = raw_request(env.proxy, &head).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let seen = env.last_upstream()["headers"]["cookie"].to_string();
    assert!(
        seen.contains("plain=1") && !seen.contains("vg") && !seen.contains(session.as_str()),
        "only the text line goes on: {seen}"
    );
    // The same line on a gated route opens no session: sent to verify.
    let head = format!(
        "GET /member HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nAccept: text/html\r\n\
         Cookie: vg={session}; theirs=caf\u{e9}\r\n\r\n"
    );
    let resp = raw_request(env.proxy, &head).await;
    assert!(resp.starts_with("HTTP/1.1 302"), "{resp}");
}
