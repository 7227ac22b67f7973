//! Readiness per app: `/readyz` names every upstream and provider (text, or JSON detail);
//! one app whose upstream has no address (a misspelled name) does not take the other apps out
//! of a load balancer, and `/readyz/upstream/<name>` answers for one app.

use crate::common::*;
use serde_json::{json, Value};

const SHOP: &str = "shop.example.test";
const BLOG: &str = "blog.example.test";

async fn admin_get(env: &Env, path: &str, accept: &str) -> (u16, String) {
    let r = env
        .client
        .get(format!("http://{}{path}", env.admin))
        .header("accept", accept)
        .send()
        .await
        .expect("admin answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_misspelled_app_does_not_drain_the_other() {
    let echo = std::sync::Arc::new(Echo::default());
    let shop_addr = Upstream::Echo.spawn(&echo).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let hosts = dir.path().join("hosts");
    // The blog's app is `blog.test`; its upstream was written `blgo.test`.
    std::fs::write(&hosts, "127.0.0.1 blog.test\n").expect("hosts");
    let misspelled = format!("blgo.test:{}", shop_addr.port());
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::tomo())
        .named_upstream("shop", [shop_addr.to_string()], json!({}))
        .named_upstream("blog", [misspelled.as_str()], json!({}))
        .routes([
            Route::prefix("/")
                .name("shop")
                .host([SHOP])
                .upstream("shop"),
            Route::prefix("/")
                .name("blog")
                .host([BLOG])
                .upstream("blog"),
        ])
        .set(
            "resolver",
            json!({ "hosts_file": hosts.display().to_string(), "system": false, "interval": "1s" }),
        )
        .may_start_unready();
    let env = Env::with(proxy).await;

    // The instance stays in the balancer: the shop serves.
    let (status, body) = admin_get(&env, "/readyz", "text/plain").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains("upstream shop: 1 address\n"), "{body}");
    assert!(
        body.contains(&format!(
            "upstream blog: 0 addresses; {misspelled} does not resolve"
        )) && body.contains("(not ready)"),
        "{body}"
    );
    assert!(body.contains("provider iamport: credentials"), "{body}");
    assert!(body.contains("provider tomo: credentials"), "{body}");

    // The same as JSON detail.
    let (status, body) = admin_get(&env, "/readyz", "application/json").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["ready"], true);
    assert_eq!(v["store"]["ok"], true);
    let up = |name: &str| {
        v["upstreams"]
            .as_array()
            .expect("upstreams")
            .iter()
            .find(|u| u["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no upstream {name} in {v}"))
    };
    assert_eq!(up("shop")["ready"], true);
    assert_eq!(up("blog")["ready"], false);
    assert_eq!(up("blog")["in_use"], true);
    assert_eq!(up("blog")["not_resolving"][0][0], misspelled);
    let providers: Vec<&str> = v["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["provider"].as_str())
        .collect();
    assert_eq!(providers, vec!["iamport", "tomo"]);
    // ?format=json too (a balancer that sends no Accept).
    let (_, body) = admin_get(&env, "/readyz?format=json", "*/*").await;
    assert!(serde_json::from_str::<Value>(&body).is_ok(), "{body}");

    // Per-app endpoints for balancers that check one app.
    assert_eq!(admin_get(&env, "/readyz/upstream/shop", "*/*").await.0, 200);
    let (status, body) = admin_get(&env, "/readyz/upstream/blog", "*/*").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream blog"), "{body}");
    assert!(!body.contains("upstream shop"), "{body}");
    assert_eq!(admin_get(&env, "/readyz/upstream/nope", "*/*").await.0, 404);

    // And requests: the shop serves, the blog answers 502.
    let get = |host: &'static str| {
        env.client
            .get(env.url("/"))
            .header("host", host)
            .header("accept", "application/json")
            .send()
    };
    assert_eq!(get(SHOP).await.expect("shop").status(), 200);
    assert_eq!(
        refusal(get(BLOG).await.expect("blog")).await,
        (502, "upstream_unavailable".into())
    );
}
