//! Pages a shop can own: `site` (name, logo, contact) on every page verigate shows, the
//! duplicate-account page led by `require.on_duplicate`, the underage page naming the age and
//! its rule, a verify-again that says why, `tls.hsts` on HTTPS answers only; and `check`'s
//! word, by key path, on each new key. The same pages in Chromium: `browser_pages`.

use crate::common::tls::{https_client, origin, Http, TestCa, HOST};
use crate::common::*;
use serde_json::{json, Value};

/// A site whose every value needs escaping somewhere.
pub(crate) fn site() -> Value {
    json!({
        "name": "예시쇼핑 <Shop> & \"Co\"",
        "logo_url": "https://cdn.shop.test/logo.png?v=1&s=2",
        "support": {
            "text": "고객센터 평일 10:00-18:00 <b>",
            "url": "https://shop.test/help?from=verigate&x=1",
            "phone": "+82 1588-0000",
            "email": "help@shop.test"
        }
    })
}

/// What every page with [`site`] shows, escaped.
pub(crate) fn assert_framed(html: &str, what: &str) {
    for want in [
        r#"<header class="site" data-site>"#,
        r#"<img src="https://cdn.shop.test/logo.png?v=1&amp;s=2" alt="예시쇼핑 &lt;Shop&gt; &amp; &quot;Co&quot;" referrerpolicy="no-referrer">"#,
        "고객센터 평일 10:00-18:00 &lt;b&gt;",
        r#"href="tel:+8215880000""#,
        r#"href="mailto:help@shop.test""#,
        r#"href="https://shop.test/help?from=verigate&amp;x=1""#,
    ] {
        assert!(html.contains(want), "{what}: no {want}:\n{html}");
    }
    for never in [
        "<Shop>",
        "<b>",
        "<!--verigate-site-->",
        "<!--verigate-support-->",
    ] {
        assert!(!html.contains(never), "{what}: {never} in\n{html}");
    }
    // The frame heads and ends the card.
    let main = html.find("<main>").expect("a card");
    let header = html.find("data-site").unwrap();
    let footer = html.find("<footer class=\"support\"").expect("the contact");
    let end = html.find("</main>").unwrap();
    assert!(main < header && header < footer && footer < end, "{what}");
}

/// The shop with `site`, a signup led to sign in, minors refused under both age rules, a
/// checkout that wants a fresh verification and a route for TomoIDV or PortOne.
pub(crate) fn shop_with_site() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport().max_result_age("1h"))
        .provider(Provider::tomo())
        .provider(Provider::portone())
        .routes([
            Route::path("/signup")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .one_account()
                .require_set(
                    "on_duplicate",
                    json!({ "url": "/login?find=id", "label": "로그인 · 아이디 찾기" }),
                ),
            Route::prefix("/checkout")
                .providers(["iamport"])
                .min_age(19)
                .max_session_age("10m"),
            Route::prefix("/teen")
                .providers(["iamport"])
                .min_age(14)
                .age_rule("birthday"),
            Route::prefix("/abroad").providers(["tomo", "portone"]),
            Route::prefix("/member").providers(["iamport", "tomo"]),
            Route::prefix("/"),
        ])
        .set("site", site())
}

async fn html_of(r: reqwest::Response) -> (u16, String) {
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The `href`s of the page's steps, in order, with their `data-next` and class.
fn steps(html: &str) -> Vec<(String, String)> {
    html.match_indices("data-next=\"")
        .map(|(at, m)| {
            let v = &html[at + m.len()..];
            let next = v[..v.find('"').unwrap()].to_string();
            let tag = &html[html[..at].rfind('<').unwrap()..at];
            let class = tag
                .split("class=\"")
                .nth(1)
                .map(|c| c[..c.find('"').unwrap()].to_string())
                .unwrap_or_default();
            (next, class)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_carries_the_shops_name_logo_and_contact() {
    let env = Env::with(shop_with_site()).await;
    let mut b = env.browser();
    // The choice page, a start page, the logout page, a refusal before any verification.
    for (path, status) in [
        ("/.verigate/verify?return_to=%2Fmember", 200),
        ("/.verigate/iamport/start?return_to=%2Fmember", 200),
        ("/.verigate/logout?return_to=%2Fmember", 200),
        ("/.verigate/verify?return_to=%2F%2Fevil.example", 400),
        ("/.verigate/nobody/start", 404),
    ] {
        let (s, html) = html_of(b.get_html(path).await).await;
        assert_eq!(s, status, "{path}: {html}");
        assert_framed(&html, path);
    }
    // The providers' windows are told the name as written (their own escaping).
    let flow = b.start_iamport("/member").await;
    assert_eq!(flow.params["company"], "예시쇼핑 <Shop> & \"Co\"");
    // JSON stays JSON: no frame in it.
    let r = b.get_json("/member").await;
    let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(v["error"], "verification_required");
    assert!(!v.to_string().contains("Shop"), "{v}");

    // Refusals of a person: under age (both rules), already signed up.
    let mut minor = env.browser();
    assert_eq!(
        minor
            .verify_redirect(env.sandbox, "/checkout", &Person::born("20150505"))
            .await
            .status(),
        302
    );
    let (s, html) = html_of(minor.get_html("/checkout").await).await;
    assert_eq!(s, 403);
    assert_framed(&html, "underage");
    let (s, html) = html_of(minor.get_html("/teen").await).await;
    assert_eq!(s, 403);
    assert_framed(&html, "underage (birthday)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_underage_page_names_the_age_and_the_rule() {
    let env = Env::with(shop_with_site()).await;
    let mut minor = env.browser();
    minor
        .verify_redirect(env.sandbox, "/checkout", &Person::born("20150505"))
        .await;
    let (_, html) = html_of(minor.get_html("/checkout").await).await;
    assert!(html.contains("403 · underage"), "{html}");
    assert!(
        html.contains(r#"data-rule="youth_act" data-min-age="19""#),
        "{html}"
    );
    assert!(
        html.contains("만 19세 이상 (청소년보호법 기준: 19세가 되는 해의 1월 1일부터)"),
        "{html}"
    );
    assert!(
        html.contains(
            "Age 19 or over (Youth Protection Act rule: from 1 January of the year you turn 19)"
        ),
        "{html}"
    );
    let (_, html) = html_of(minor.get_html("/teen").await).await;
    assert!(
        html.contains(r#"data-rule="birthday" data-min-age="14""#),
        "{html}"
    );
    assert!(
        html.contains("만 14세 이상 (생일 기준: 만 14세 생일부터)"),
        "{html}"
    );
    assert!(
        html.contains("Age 14 or over (birthday rule: from the birthday on which you turn 14)"),
        "{html}"
    );
    // API clients read the same in JSON.
    let v: Value = minor.get_json("/teen").await.json().await.unwrap();
    assert_eq!(
        (&v["error"], &v["min_age"], &v["age_rule"]),
        (&json!("underage"), &json!(14), &json!("birthday"))
    );
    // An adult passes: the rule is the gate's, the page only says it.
    let mut adult = env.browser();
    adult
        .verify_redirect(env.sandbox, "/checkout", &Person::adult())
        .await;
    assert_eq!(adult.get_html("/checkout").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_page_leads_with_the_shops_own_next_step() {
    let env = Env::with(shop_with_site()).await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/signup", &Person::adult())
        .await;
    let r = b.post("/signup", "nickname=a").await;
    assert_eq!(r.status(), 201, "the first signup reaches the app");
    let req = b
        .client
        .post(b.url("/signup"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("nickname=b");
    let (s, html) = html_of(b.send(req).await).await;
    assert_eq!(s, 409, "{html}");
    assert!(html.contains("409 · duplicate_account"), "{html}");
    assert_framed(&html, "duplicate");
    // Sign in / find my ID first (the primary button), verify as someone else second, back.
    assert_eq!(
        steps(&html),
        vec![
            ("primary".to_string(), "button".to_string()),
            ("switch".to_string(), "button secondary".to_string()),
            ("back".to_string(), "back".to_string()),
        ],
        "{html}"
    );
    assert!(
        html.contains(
            r#"<a class="button" data-next="primary" href="/login?find=id">로그인 · 아이디 찾기</a>"#
        ),
        "{html}"
    );
    // Without on_duplicate the page is as before: verify as someone else is the first step.
    let plain = Proxy::shop();
    let env = Env::with(plain).await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/signup", &Person::adult())
        .await;
    assert_eq!(b.post("/signup", "a=1").await.status(), 201);
    let req = b
        .client
        .post(b.url("/signup"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("a=2");
    let (s, html) = html_of(b.send(req).await).await;
    assert_eq!(s, 409);
    assert_eq!(
        steps(&html)[0],
        ("switch".into(), "button".into()),
        "{html}"
    );
    assert!(!html.contains("data-site"), "no site, no frame: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sent_to_verify_again_is_told_why() {
    let env = Env::with(shop_with_site()).await;
    let mut b = env.browser();
    let p = Person {
        certified_ago: 20 * 60,
        ..Person::adult()
    };
    b.verify_redirect(env.sandbox, "/member", &p).await;
    assert_eq!(b.get_html("/member").await.status(), 200);
    // Too old for checkout (10 minutes): the verify address says so, and so does the start
    // page it leads to (one provider: no choice page), with the span read from the route.
    let r = b.get_html("/checkout").await;
    assert_eq!(r.status(), 302);
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        to,
        "/.verigate/verify?return_to=%2Fcheckout&why=session_too_old"
    );
    let r = b.get_html(&to).await;
    assert_eq!(r.status(), 302);
    let start = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        start,
        "/.verigate/iamport/start?return_to=%2Fcheckout&why=session_too_old"
    );
    let (s, html) = html_of(b.get_html(&start).await).await;
    assert_eq!(s, 200);
    assert_framed(&html, "start page");
    assert!(
        html.contains(r#"<p class="why" data-why="session_too_old">"#),
        "{html}"
    );
    assert!(
        html.contains("이 페이지는 10분 이내에 한 본인인증만 받습니다"),
        "{html}"
    );
    assert!(html.contains("within the last 10 minutes"), "{html}");
    // A form post meets the same reason on its 401 (JSON: `reason`).
    let v: Value = b.get_json("/checkout").await.json().await.unwrap();
    assert_eq!(v["reason"], "session_too_old", "{v}");
    // So does a page's own script whose post is kept for after the verification.
    let req = b
        .client
        .post(b.url("/checkout"))
        .header("accept", "application/json")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "cors")
        .header("content-type", "application/json")
        .body(r#"{"item":1}"#);
    let r = b.send(req).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["kept"].clone(), v["reason"].clone()),
        (
            serde_json::json!(true),
            serde_json::json!("session_too_old")
        ),
        "{v}"
    );
    assert_eq!(
        v["verify_url"],
        "/.verigate/verify?return_to=%2Fcheckout&why=session_too_old"
    );
    // A route that does not take the provider verified with: the choice page says so.
    let r = b.get_html("/abroad").await;
    let to = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        to,
        "/.verigate/verify?return_to=%2Fabroad&why=provider_not_accepted"
    );
    let (s, html) = html_of(b.get_html(&to).await).await;
    assert_eq!(s, 200);
    assert!(
        html.contains(r#"data-why="provider_not_accepted""#),
        "{html}"
    );
    assert!(
        html.contains("이전에 사용하신 인증 수단을 받지 않습니다"),
        "{html}"
    );
    // Each choice carries the reason on to its start page.
    assert!(
        html.contains("/.verigate/tomo/start?return_to=%2Fabroad&amp;why=provider_not_accepted"),
        "{html}"
    );
    // No session at all: nothing to explain. A `why` the route cannot back, or an unknown
    // one, shows nothing (the address never writes the page's text).
    let mut fresh = env.browser();
    let r = fresh.get_html("/checkout").await;
    assert_eq!(
        r.headers()["location"],
        "/.verigate/verify?return_to=%2Fcheckout"
    );
    for path in [
        "/.verigate/verify?return_to=%2Fmember&why=session_too_old",
        "/.verigate/verify?return_to=%2Fmember&why=%3Cscript%3E",
        "/.verigate/iamport/start?return_to=%2Fmember&why=anything",
    ] {
        let (s, html) = html_of(fresh.get_html(path).await).await;
        assert_eq!(s, 200, "{path}");
        assert!(!html.contains("class=\"why\""), "{path}: {html}");
        assert!(!html.contains("why="), "{path}: carried on: {html}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_429_and_the_merchant_misconfiguration_pages_carry_the_site() {
    // One start per client, then 429.
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .route(Route::prefix("/member").providers(["iamport"]))
        .route(Route::prefix("/"))
        .set(
            "limits",
            json!({ "verification_starts": { "per_client": { "burst": 1, "per_minute": 1 } } }),
        )
        .set("site", site());
    let env = Env::with(proxy).await;
    let mut b = env.browser();
    let path = "/.verigate/iamport/start?return_to=%2Fmember";
    assert_eq!(b.get_html(path).await.status(), 200);
    let (s, html) = html_of(b.get_html(path).await).await;
    assert_eq!(s, 429, "{html}");
    assert!(html.contains("429 · rate_limited"));
    assert_framed(&html, "429");

    // The merchant's secret is refused: the page says so, and whom to contact.
    let proxy = Proxy::shop()
        .provider(Provider::iamport().api_secret("wrong-secret-0123456789abcdef"))
        .set("site", site());
    let env = Env::with(proxy).await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    let (s, html) = html_of(r).await;
    assert_eq!(s, 502, "{html}");
    assert!(html.contains("provider_unauthorized"), "{html}");
    assert_framed(&html, "merchant misconfiguration");
    assert!(
        html.contains("문의 · Contact: 예시쇼핑 &lt;Shop&gt; &amp; &quot;Co&quot;"),
        "{html}"
    );
}

/// The problems `check` reports for `proxy`, one line each.
fn problems(proxy: &Proxy) -> Vec<String> {
    let text = proxy.to_yaml(loopback(), loopback());
    match verigate::config::from_yaml_str(&text, &proxy.secrets()) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

/// `check` refuses `value` at `key` (set under the shop's config) with a problem that names
/// `path` first.
fn refused(proxy: Proxy, path: &str) {
    let found = problems(&proxy);
    assert!(
        found.iter().any(|p| p.starts_with(&format!("{path}: "))),
        "{path}: {found:?}"
    );
}

fn with_on_duplicate(v: Value, one_account: bool) -> Proxy {
    let mut r = Route::path("/signup")
        .methods(["GET", "POST"])
        .providers(["iamport"]);
    if one_account {
        r = r.one_account();
    }
    Proxy::new()
        .provider(Provider::iamport())
        .route(r.require_set("on_duplicate", v))
        .route(Route::prefix("/"))
}

#[test]
fn check_names_the_key_of_every_bad_page_setting() {
    let shop = || Proxy::shop();
    assert_eq!(problems(&shop().set("site", site())), Vec::<String>::new());
    for (logo, why) in [
        ("http://cdn.shop.test/logo.png", "not https"),
        ("javascript:alert(1)", "a script"),
        ("https://user:pw@cdn.shop.test/logo.png", "credentials"),
        ("https://cdn.shop.test/a logo.png", "a space"),
        ("https://cdn.shop.test/\"onerror=\"x", "a quote"),
        ("//cdn.shop.test/logo.png", "no scheme"),
        ("https://", "no host"),
    ] {
        let s = json!({ "name": "예시쇼핑", "logo_url": logo });
        let found = problems(&shop().set("site", s));
        assert!(
            found.iter().any(|p| p.starts_with("site.logo_url: ")),
            "{why}: {found:?}"
        );
    }
    refused(
        shop().set("site", json!({ "logo_url": "https://cdn.shop.test/l.png" })),
        "site.logo_url",
    );
    refused(
        shop().set("site", json!({ "name": "a", "support": {} })),
        "site.support",
    );
    for (key, value) in [
        ("text", json!("")),
        ("text", json!("line\nbreak")),
        ("text", json!("x".repeat(201))),
        ("url", json!("http://shop.test/help")),
        ("url", json!("mailto:help@shop.test")),
        ("phone", json!("call us")),
        ("phone", json!("12")),
        ("phone", json!("1588-0000+1")),
        ("email", json!("nobody")),
        ("email", json!("a@b")),
        ("email", json!("a b@shop.test")),
        ("email", json!("\"><script>@shop.test")),
    ] {
        refused(
            shop().set("site", json!({ "name": "a", "support": { key: value } })),
            &format!("site.support.{key}"),
        );
    }
    // An unknown key under site is named, as anywhere else.
    let found = problems(&shop().set("site", json!({ "name": "a", "logo": "x" })));
    assert!(
        found
            .iter()
            .any(|p| p.contains("site") && p.contains("logo")),
        "{found:?}"
    );

    let at = "routes[0].require.on_duplicate";
    assert_eq!(
        problems(&with_on_duplicate(
            json!({ "url": "https://shop.test/login", "label": "로그인" }),
            true
        )),
        Vec::<String>::new()
    );
    for url in [
        "//evil.example/login",
        "javascript:alert(1)",
        "http://shop.test/login",
        "login",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "/a b",
        "",
    ] {
        let found = problems(&with_on_duplicate(
            json!({ "url": url, "label": "x" }),
            true,
        ));
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{at}.url: "))),
            "{url:?}: {found:?}"
        );
    }
    for label in ["", "   ", &"가".repeat(41), "two\nlines"] {
        let found = problems(&with_on_duplicate(
            json!({ "url": "/login", "label": label }),
            true,
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with(&format!("{at}.label: "))),
            "{label:?}: {found:?}"
        );
    }
    let found = problems(&with_on_duplicate(
        json!({ "url": "/login", "label": "로그인" }),
        false,
    ));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with(&format!("{at}: ")) && p.contains("one_account_per_person")),
        "{found:?}"
    );
    let found = problems(&with_on_duplicate(json!({ "url": "/login" }), true));
    assert!(
        found
            .iter()
            .any(|p| p.contains("on_duplicate") && p.contains("label")),
        "{found:?}"
    );
}

#[test]
fn check_names_the_key_of_a_bad_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = TestCa::new("verigate test CA").write_server(dir.path());
    let tls = |hsts: Value| {
        Proxy::shop().set(
            "tls",
            json!({ "cert_file": cert, "key_file": key, "hsts": hsts }),
        )
    };
    assert_eq!(
        problems(&tls(
            json!({ "max_age": "180d", "include_subdomains": true })
        )),
        Vec::<String>::new()
    );
    for bad in ["soon", "731d", "-1s", ""] {
        refused(tls(json!({ "max_age": bad })), "tls.hsts.max_age");
    }
    let found = problems(&tls(json!({ "include_subdomains": true })));
    assert!(
        found
            .iter()
            .any(|p| p.contains("hsts") && p.contains("max_age")),
        "{found:?}"
    );
}

/// The `Strict-Transport-Security` of an answer, if any.
fn sts(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_over_tls_and_never_over_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let proxy = Proxy::shop()
        .set(
            "tls",
            json!({ "cert_file": cert, "key_file": key,
                    "hsts": { "max_age": "180d", "include_subdomains": true } }),
        )
        .set("redirect_http_listen", json!("127.0.0.1:0"));
    let env = Env::with(proxy).await;
    let want = Some("max-age=15552000; includeSubDomains".to_string());
    for http in [Http::One, Http::Two] {
        let c = https_client(&ca, env.proxy, http);
        let base = origin(env.proxy);
        // The app's answer, verigate's redirect to verify, its page, its JSON refusal.
        for (path, accept, status) in [
            ("/", "text/html", 200),
            ("/member", "text/html", 302),
            ("/.verigate/verify?return_to=%2Fmember", "text/html", 302),
            ("/.verigate/logout", "text/html", 200),
            ("/member", "application/json", 401),
        ] {
            let r = c
                .get(format!("{base}{path}"))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{http:?} {path}");
            assert_eq!(sts(&r), want, "{http:?} {path} {accept}");
        }
    }
    // The plain-HTTP listener's redirect never carries it.
    let plain = env.redirect.expect("a redirect listener");
    let r = client()
        .get(format!("http://{plain}/member"))
        .header("host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(sts(&r), None);

    // Without tls.hsts: none, over TLS too.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.write_server(dir.path());
    let env =
        Env::with(Proxy::shop().set("tls", json!({ "cert_file": cert, "key_file": key }))).await;
    let c = https_client(&ca, env.proxy, Http::One);
    for path in ["/", "/.verigate/logout"] {
        let r = c
            .get(format!("{}{path}", origin(env.proxy)))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(sts(&r), None, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_hsts_is_left_as_it_is() {
    use axum::{response::IntoResponse, routing::get, Router};
    let app = spawn_router(
        Router::new()
            .route(
                "/own",
                get(|| async {
                    (
                        [("strict-transport-security", "max-age=63072000; preload")],
                        "own",
                    )
                        .into_response()
                }),
            )
            .fallback(get(|| async { "plain" })),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("verigate test CA");
    let (cert, key) = ca.write_server(dir.path());
    let proxy = Proxy::shop().set(
        "tls",
        json!({ "cert_file": cert, "key_file": key, "hsts": { "max_age": "1d" } }),
    );
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(app))).await;
    let c = https_client(&ca, env.proxy, Http::One);
    let r = c
        .get(format!("{}/own", origin(env.proxy)))
        .send()
        .await
        .unwrap();
    let all: Vec<_> = r
        .headers()
        .get_all("strict-transport-security")
        .iter()
        .collect();
    assert_eq!(all, ["max-age=63072000; preload"]);
    let r = c
        .get(format!("{}/other", origin(env.proxy)))
        .send()
        .await
        .unwrap();
    assert_eq!(sts(&r).as_deref(), Some("max-age=86400"));
}
