//! Several apps behind one verigate, chosen by Host: each host its own routes, providers and
//! upstream; the flows return to the public URL configured for the request's host, and a
//! forged Host never ends up in a provider's return URL.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

const SHOP: &str = "shop.example.test";
const ADMIN: &str = "admin.example.test";

/// Two echo apps (the shop's, the admin's) and the proxy in front of them: the shop's
/// `/signup` on Iamport, the rest of the shop open, all of the admin host on TomoIDV.
async fn two_apps(public_url: Value) -> (Env, Arc<Echo>, Arc<Echo>) {
    let shop = Arc::new(Echo::default());
    let admin = Arc::new(Echo::default());
    let shop_addr = Upstream::Echo.spawn(&shop).await;
    let admin_addr = Upstream::Echo.spawn(&admin).await;
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::tomo())
        .named_upstream("shop", [shop_addr.to_string()], json!({}))
        .named_upstream("admin", [admin_addr.to_string()], json!({}))
        .routes([
            Route::path("/signup")
                .name("shop-signup")
                .host([SHOP])
                .upstream("shop")
                .providers(["iamport"]),
            Route::prefix("/")
                .name("shop-rest")
                .host([SHOP, "www.shop.example.test"])
                .upstream("shop"),
            Route::prefix("/")
                .name("admin")
                .host([ADMIN])
                .upstream("admin")
                .providers(["tomo"]),
        ])
        .set("public_url", public_url);
    let env = Env::with(proxy).await;
    (env, shop, admin)
}

fn on(env: &Env, host: &str, path: &str) -> reqwest::RequestBuilder {
    env.client.get(env.url(path)).header("host", host)
}

#[tokio::test]
async fn two_apps_chosen_by_host_with_their_own_routes_and_providers() {
    let (env, shop, admin) = two_apps(json!([
        "http://shop.example.test:8080",
        "https://admin.example.test"
    ]))
    .await;
    let json_get =
        |host: &str, path: &str| on(&env, host, path).header("accept", "application/json");

    // The shop's open pages go to the shop's app, with the Host as sent.
    let r = json_get(SHOP, "/products/1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["host"][0], SHOP);
    assert_eq!(shop.hits.load(Ordering::SeqCst), 1);
    let r = json_get("WWW.Shop.Example.Test", "/").send().await.unwrap();
    assert_eq!(r.status(), 200, "a second host of the shop, in any case");
    assert_eq!(shop.hits.load(Ordering::SeqCst), 2);
    // One spelling per host: a trailing dot is outside the grammar.
    let r = json_get("www.shop.example.test.", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await, (400, "bad_request_target".into()));
    assert_eq!(shop.hits.load(Ordering::SeqCst), 2);

    // The admin host is gated as a whole: nothing reaches its app without a session.
    let r = json_get(ADMIN, "/products/1").send().await.unwrap();
    assert_eq!(refusal(r).await, (401, "verification_required".into()));
    let r = json_get("Admin.Example.Test:80", "/").send().await.unwrap();
    assert_eq!(refusal(r).await, (401, "verification_required".into()));
    let r = on(&env, ADMIN, "/")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/.verigate/verify?return_to=%2F");
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);

    // A host no route names: no app.
    let r = json_get("other.example.test", "/").send().await.unwrap();
    assert_eq!(refusal(r).await, (404, "no_route".into()));
    let r = json_get("xadmin.example.test", "/").send().await.unwrap();
    assert_eq!(refusal(r).await, (404, "no_route".into()));

    // Each host offers its own providers (one each: the choice page sends straight to it).
    let chosen = |host: &'static str, rt: &'static str| {
        let req = on(&env, host, &format!("/.verigate/verify?return_to={rt}"));
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 302, "{host}");
            r.headers()["location"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(
        chosen(ADMIN, "%2F").await,
        "/.verigate/tomo/start?return_to=%2F"
    );
    assert_eq!(
        chosen(SHOP, "%2Fsignup").await,
        "/.verigate/iamport/start?return_to=%2Fsignup"
    );
    let r = json_get(ADMIN, "/.verigate/iamport/start?return_to=%2F")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(r).await, (403, "provider_not_accepted".into()));

    // A verification on the shop's host returns to the shop's public URL.
    let mut b = env.browser();
    let start = b
        .send(
            on(&env, SHOP, "/.verigate/iamport/start?return_to=%2Fsignup")
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(start.status(), 200);
    let params = flow_json(&start.text().await.unwrap());
    let back = params["m_redirect_url"].as_str().unwrap();
    assert_eq!(
        back,
        "http://shop.example.test:8080/.verigate/iamport/return"
    );
    let flow = Flow {
        params: params.clone(),
        flow_cookie: b.jar["vg_flow"].clone(),
    };
    let certified = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let location = reqwest::Url::parse(certified["location"].as_str().unwrap()).unwrap();
    assert_eq!(location.host_str(), Some(SHOP));
    let path = format!("{}?{}", location.path(), location.query().unwrap());
    let done = b
        .send(on(&env, SHOP, &path).header("accept", "text/html"))
        .await;
    assert_eq!(done.status(), 302, "{}", done.text().await.unwrap());
    assert_eq!(done.headers()["location"], "/signup");
    // Host-only: the session cookie names no Domain.
    let set: Vec<&str> = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(set.iter().any(|c| c.starts_with("vg=")));
    assert!(set
        .iter()
        .all(|c| !c.to_ascii_lowercase().contains("domain=")));

    let r = b
        .send(on(&env, SHOP, "/signup").header("accept", "application/json"))
        .await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    assert_eq!(seen["headers"]["x-verified-provider"][0], "iamport");
    // The admin host wants TomoIDV: the shop's Iamport session does not open it.
    let r = b
        .send(on(&env, ADMIN, "/").header("accept", "application/json"))
        .await;
    assert_eq!(refusal(r).await, (401, "verification_required".into()));
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_forged_host_never_ends_up_in_a_provider_return_url() {
    // Listed hosts only.
    let (env, _, _) = two_apps(json!([
        "http://shop.example.test:8080",
        "https://*.shops.example.test"
    ]))
    .await;
    let start = |host: &str| {
        on(&env, host, "/.verigate/iamport/start?return_to=%2Fsignup")
            .header("accept", "application/json")
    };
    for forged in [
        "evil.example",
        "shop.example.test.evil.example",
        "example.test",
    ] {
        let r = start(forged).send().await.unwrap();
        assert_eq!(refusal(r).await, (421, "unknown_host".into()), "{forged}");
    }
    // A host under a wildcard entry returns to itself, on the entry's scheme.
    let r = start("A.Shops.Example.Test").send().await.unwrap();
    // (The iamport route is the shop's: its providers are all configured ones here.)
    assert_eq!(r.status(), 200);
    let params = flow_json(&r.text().await.unwrap());
    assert_eq!(
        params["m_redirect_url"],
        "https://a.shops.example.test/.verigate/iamport/return"
    );
    let r = start("shop.example.test:9999").send().await.unwrap();
    let params = flow_json(&r.text().await.unwrap());
    assert_eq!(
        params["m_redirect_url"], "http://shop.example.test:8080/.verigate/iamport/return",
        "the configured URL, not the port the request named"
    );

    // No public_url: only hosts the routes name are used.
    let (env, _, _) = two_apps(Value::Null).await;
    let r = on(
        &env,
        "evil.example",
        "/.verigate/iamport/start?return_to=%2F",
    )
    .header("accept", "application/json")
    .send()
    .await
    .unwrap();
    assert_eq!(refusal(r).await, (421, "unknown_host".into()));
    let r = on(
        &env,
        "shop.example.test:8080",
        "/.verigate/iamport/start?return_to=%2Fsignup",
    )
    .send()
    .await
    .unwrap();
    let params = flow_json(&r.text().await.unwrap());
    assert_eq!(
        params["m_redirect_url"],
        "http://shop.example.test:8080/.verigate/iamport/return"
    );
}

/// An HTTP/1.1 absolute-form target names the host too: it must be the Host header's, so a
/// request cannot be routed by one and served by the other.
#[tokio::test]
async fn an_absolute_form_target_and_the_host_header_name_one_host() {
    let (env, shop, admin) = two_apps(json!(["http://shop.example.test"])).await;
    let ask = |target: &str, host: &str| {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
        let proxy = env.proxy;
        async move { raw_request(proxy, &head).await }
    };
    let status = |resp: &str| resp.split(' ').nth(1).unwrap_or("").to_string();
    // The admin's target with the shop's Host (and the other way round): refused (by
    // Pingora's own reading already; the gate's `bad_request_target` stands behind it).
    let r = ask("http://admin.example.test/x", SHOP).await;
    assert_eq!(status(&r), "400", "{r}");
    let r = ask("http://shop.example.test/x", ADMIN).await;
    assert_eq!(status(&r), "400", "{r}");
    assert_eq!(shop.hits.load(Ordering::SeqCst), 0);
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
    // Agreeing: routed by that host (the admin's is gated, the shop's open).
    let r = ask("http://admin.example.test/x", ADMIN).await;
    assert_eq!(status(&r), "401", "{r}");
    let r = ask("http://shop.example.test/x", SHOP).await;
    assert_eq!(status(&r), "200", "{r}");
    assert_eq!(shop.hits.load(Ordering::SeqCst), 1);
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
}

/// Host spellings outside the grammar (a DNS name, an IPv4 address or a bracketed IPv6
/// address, with an optional port): app stacks split, trim, unbracket or decode them into
/// another name than verigate would read, so they are refused before any route is chosen, on
/// every method.
const BAD_HOSTS: &[&str] = &[
    "admin.example.test,shop.example.test",
    "shop.example.test,admin.example.test",
    "admin.example.test shop.example.test",
    "admin.example.test.",
    "Admin.Example.Test.:80",
    "admin.example.test..",
    ".admin.example.test",
    "admin..example.test",
    "-admin.example.test",
    "admin-.example.test",
    "admin_x.example.test",
    "admin.example.test_",
    "shop.example.test@admin.example.test",
    "user@admin.example.test",
    "admin.example.test:80@shop.example.test",
    "admin%2eexample.test",
    "admin.example.test%00",
    "admin.example.test\\shop.example.test",
    "admin.example.test/",
    "admin.example.test;shop.example.test",
    "admin.example.test:",
    "admin.example.test:0",
    "admin.example.test:080",
    "admin.example.test:65536",
    "admin.example.test:99999999999",
    "admin.example.test:8o",
    "admin.example.test:+80",
    "\u{e4}dmin.example.test",
    "admin.example.test\u{3002}",
    "::1",
    "[::1",
    "[::1]x",
    "[fe80::1%25eth0]",
    "[fe80::1%eth0]",
    "[0:0::1]",
    "[v1.admin]",
    "[admin.example.test]",
    "127.1",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "2130706433",
    "1.2.3.4.5",
    "256.0.0.1",
];

#[tokio::test]
async fn host_spellings_outside_the_grammar_are_refused_on_every_method() {
    let (env, shop, admin) = two_apps(json!(["http://shop.example.test"])).await;
    let ask = |method: &str, target: &str, hosts: &[&str]| {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        for h in hosts {
            head.push_str(&format!("Host: {h}\r\n"));
        }
        head.push_str("Accept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let proxy = env.proxy;
        async move { raw_request(proxy, &head).await }
    };
    // Pingora refuses userinfo itself, before any phase runs (a bare 400 of its own); every
    // other spelling meets verigate's grammar, whose answer names its code (a HEAD answer has
    // no body to name it in).
    let refused = |method: &str, resp: &str, pingora: bool| {
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
        head.starts_with("HTTP/1.1 400 ")
            && if pingora {
                body.is_empty()
            } else {
                method == "HEAD" || body.contains("\"error\":\"bad_request_target\"")
            }
    };
    let mut asked = 0;
    for method in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        for bad in BAD_HOSTS {
            let r = ask(method, "/x", &[bad]).await;
            assert!(
                refused(method, &r, bad.contains('@')),
                "{method} Host: {bad:?}: {r}"
            );
            asked += 1;
        }
        // Two Host headers, whichever comes first; a Host beside an absolute-form target
        // naming another host or port.
        for (target, hosts) in [
            ("/x", &[SHOP, ADMIN][..]),
            ("/x", &[ADMIN, SHOP][..]),
            ("/x", &[ADMIN, ADMIN][..]),
            ("http://admin.example.test/x", &[SHOP][..]),
            ("http://shop.example.test/x", &[ADMIN][..]),
            ("http://shop.example.test:81/x", &[SHOP][..]),
            ("http://shop.example.test./x", &[SHOP][..]),
            ("http://shop_x.example.test/x", &["shop_x.example.test"][..]),
        ] {
            // (Pingora compares two Host headers and an absolute-form authority with Host
            // byte for byte before any phase; what it lets through meets the gate's rule.)
            let r = ask(method, target, hosts).await;
            assert!(
                refused(method, &r, false) || refused(method, &r, true),
                "{method} {target} {hosts:?}: {r}"
            );
            asked += 1;
        }
    }
    assert_eq!(asked, 7 * (BAD_HOSTS.len() + 8));
    assert_eq!(
        shop.hits.load(Ordering::SeqCst),
        0,
        "the shop's app was reached"
    );
    assert_eq!(
        admin.hits.load(Ordering::SeqCst),
        0,
        "the admin's app was reached"
    );
    // The grammar's spellings still route: any letter case, a port, the absolute form.
    let r = ask("GET", "/x", &["SHOP.example.test:8080"]).await;
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let r = ask("GET", "http://admin.example.test/x", &[ADMIN]).await;
    assert!(r.starts_with("HTTP/1.1 401 "), "{r}");
}

#[test]
fn config_errors_name_their_keys() {
    let secrets = Proxy::new().secrets();
    let base = |extra: &str| {
        format!(
            "listen: 127.0.0.1:0\nsession: {{ keys_env: VG_KEYS, hash_key_env: VG_HASH }}\n{extra}"
        )
    };
    let problems = |extra: &str| match verigate::config::from_yaml_str(&base(extra), &secrets) {
        Ok(_) => panic!("accepted:\n{extra}"),
        Err(e) => e.problems().join("\n"),
    };
    let p = problems("routes: [{ match: { path_prefix: / } }]\n");
    assert!(p.contains("upstream: set upstream"), "{p}");
    let p = problems(
        "upstreams: { shop: { addrs: [\"127.0.0.1:1\"] }, admin: { addrs: [\"app:x\", \"bad name:80\"] } }\nroutes: [{ match: { path_prefix: /, host: [\"a b\", \"shop.example.\", \"a_b.example\", \"[fe80::1%eth0]\"] }, upstream: nope }, { match: { path: /x } }]\n",
    );
    for want in [
        "upstreams.admin.addrs[0]: `app:x` is not an address",
        "upstreams.admin.addrs[1]: `bad name:80` is not an address",
        "routes[0].match.host[0]: `a b` is not a host name",
        "routes[0].match.host[1]: `shop.example.` is not a host name",
        "routes[0].match.host[2]: `a_b.example` is not a host name",
        "routes[0].match.host[3]: `[fe80::1%eth0]` is not a host name",
        "routes[0].upstream: no upstream named `nope` (upstreams: admin, shop)",
        "routes[1].upstream: name this route's upstream",
    ] {
        assert!(p.contains(want), "missing {want}:\n{p}");
    }
    let p = problems(
        "upstream: { addrs: [\"127.0.0.1:1\"] }\nupstreams: { default: { addrs: [\"127.0.0.1:2\"] }, \"a.b\": { addrs: [\"127.0.0.1:3\"] } }\npublic_url: [\"https://a.example\", \"ftp://b.example\", \"https://*.example\", \"https://a:99999\", \"https://a.example.\", \"https://b_c.example\", \"https://c.example:0443\"]\nresolver: { system: false, interval: 0s }\n",
    );
    for want in [
        "upstreams.default: `default` is the top-level upstream's name",
        "upstreams.a.b: `a.b` may hold only letters",
        "public_url[1]: `ftp://b.example` is not an http(s) URL",
        "public_url[3]: `https://a:99999` is not an http(s) URL",
        "public_url[4]: `https://a.example.` is not an http(s) URL",
        "public_url[5]: `https://b_c.example` is not an http(s) URL",
        "public_url[6]: `https://c.example:0443` is not an http(s) URL",
        "resolver.system: with system: false",
        "resolver.interval: `0s` must be longer than zero",
    ] {
        assert!(p.contains(want), "missing {want}:\n{p}");
    }
    // A name that does not resolve is no config error (it is resolved at start, and again).
    let ok = verigate::config::from_yaml_str(
        &base("upstream: { addrs: [\"app.invalid:8080\", \"localhost:1\"] }\n"),
        &secrets,
    );
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.problems()));
    // The only named upstream is the default of routes that name none.
    let cfg = verigate::config::from_yaml_str(
        &base("upstreams: { shop: { addrs: [\"127.0.0.1:1\"] } }\nroutes: [{ match: { path_prefix: / } }]\n"),
        &secrets,
    )
    .unwrap();
    assert_eq!(cfg.upstream_of(0).unwrap().name, "shop");
    // Valid but probably not meant: warnings with their key paths.
    let cfg = verigate::config::from_yaml_str(
        &base("upstream: { addrs: [\"127.0.0.1:1\"] }\nupstreams: { b: { addrs: [\"127.0.0.1:2\"] } }\npublic_url: [\"https://a.example\"]\nroutes: [{ match: { host: [a.example, b.example], path_prefix: / }, upstream: b }]\n"),
        &secrets,
    )
    .unwrap();
    let warnings: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    let text = warnings.join("\n");
    assert!(
        text.contains("upstream: no route sends requests here"),
        "{text}"
    );
    assert!(
        text.contains("routes[0].match.host: `b.example` has no public_url entry"),
        "{text}"
    );
    assert!(!text.contains("`a.example`"), "{text}");
}

/// A session opens only on the host it was issued on: a cookie tossed onto another host (a
/// sibling's script setting it with `Domain`, or one of the apps answering `Set-Cookie`) is
/// no session there, and no app's `Set-Cookie` can set verigate's cookies at all.
#[tokio::test]
async fn a_session_is_bound_to_its_host_and_apps_cannot_plant_one() {
    use axum::response::IntoResponse;
    // An app that tries to plant verigate's cookies beside its own.
    let planted = Arc::new(std::sync::Mutex::new(String::new()));
    let p = planted.clone();
    let app = spawn_router(axum::Router::new().fallback(move || {
        let vg = p.lock().unwrap().clone();
        async move {
            (
                [
                    (
                        "set-cookie",
                        format!("vg={vg}; Domain=example.test; Path=/"),
                    ),
                    ("set-cookie", "vg_flow=x; Path=/".to_string()),
                    ("set-cookie", "app=1; Path=/".to_string()),
                ],
                "hello",
            )
                .into_response()
        }
    }))
    .await;
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(app))).await;
    let mut b = env.browser();
    let back = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(back.status(), 302);
    let vg = b.jar["vg"].clone();
    *planted.lock().unwrap() = vg.clone();

    let get = |host: String, path: &str| {
        env.client
            .get(env.url(path))
            .header("host", host)
            .header("accept", "application/json")
            .header("cookie", format!("vg={vg}"))
    };
    let issued_on = format!("127.0.0.1:{}", env.proxy.port());
    // On its own host (any port, any case): a session.
    let r = get(issued_on.clone(), "/member/x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // The app's attempt to set verigate's cookies never reaches the browser; its own does.
    let set: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(set, ["app=1; Path=/"], "{set:?}");
    let r = get(issued_on.clone(), "/.verigate/session")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // On any other host: no session, on the gate and on the flow endpoints.
    for other in [
        format!("localhost:{}", env.proxy.port()),
        "shop.example.test".to_string(),
        "127.0.0.2".to_string(),
    ] {
        let r = get(other.clone(), "/member/x").send().await.unwrap();
        assert_eq!(
            refusal(r).await,
            (401, "verification_required".into()),
            "{other}"
        );
        let r = get(other.clone(), "/.verigate/session")
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(r).await, (401, "not_logged_in".into()), "{other}");
    }
}
