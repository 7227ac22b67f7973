//! Upstreams by name: resolved at start and again every `resolver.interval` (a hosts file of
//! the test's own, `resolver.hosts_file`), all addresses used, the last good set kept when a
//! name stops resolving; an address that refuses connections is set aside (passive health)
//! while the others serve; a name that does not resolve at start is no config error.

use crate::common::*;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A hosts file in a directory that lives as long as the returned guard.
struct Hosts {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Hosts {
    fn new(text: &str) -> Hosts {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, text).unwrap();
        Hosts { _dir: dir, path }
    }

    /// Replaced whole, as an editor or a config manager writes it.
    fn write(&self, text: &str) {
        let tmp = self.path.with_extension("new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn resolver(&self) -> Value {
        json!({ "hosts_file": self.path.display().to_string(), "system": false, "interval": "1s" })
    }
}

/// The whole site on upstream `name`.
fn on_upstream(name: &str) -> Proxy {
    Proxy::new().route(Route::prefix("/").upstream(name))
}

async fn get(env: &Env, path: &str) -> reqwest::Response {
    env.client
        .get(env.url(path))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

async fn admin_text(env: &Env, path: &str) -> (u16, String) {
    let r = env
        .client
        .get(format!("http://{}{path}", env.admin))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Poll `f` until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn hits(e: &Echo) -> usize {
    e.hits.load(Ordering::SeqCst)
}

#[tokio::test]
async fn localhost_by_name_serves_every_request() {
    // `localhost` may also be ::1, where the app does not listen: that address is set aside
    // and the request goes to 127.0.0.1, so every request is served.
    let echo = Arc::new(Echo::default());
    let app = Upstream::Echo.spawn(&echo).await;
    let proxy = on_upstream("local").named_upstream(
        "local",
        [format!("localhost:{}", app.port())],
        json!({}),
    );
    let env = Env::with(proxy).await;
    for i in 0..8 {
        assert_eq!(get(&env, &format!("/p{i}")).await.status(), 200);
    }
    assert_eq!(hits(&echo), 8);
}

#[tokio::test]
async fn a_name_whose_address_changes_moves_the_traffic_and_keeps_its_last_good_set() {
    let a = Arc::new(Echo::default());
    let b = Arc::new(Echo::default());
    let a_addr = Upstream::Echo.spawn(&a).await;
    let b_addr: SocketAddr = ([127, 0, 0, 2], a_addr.port()).into();
    spawn_echo_at(&b, b_addr).await;
    let hosts = Hosts::new("127.0.0.1 app.test\n");
    let name = format!("app.test:{}", a_addr.port());
    let proxy = on_upstream("moving")
        .named_upstream("moving", [&name], json!({}))
        .set("resolver", hosts.resolver());
    let env = Env::with(proxy).await;
    assert_eq!(get(&env, "/").await.status(), 200);
    assert_eq!((hits(&a), hits(&b)), (1, 0));

    // The name moves: after a re-resolution the new address gets the traffic.
    hosts.write("127.0.0.2 app.test\n");
    let moved = eventually(Duration::from_secs(15), || async {
        get(&env, "/").await.status() == 200 && hits(&b) > 0
    })
    .await;
    assert!(moved, "traffic did not move to the new address");
    let a_before = hits(&a);
    for _ in 0..4 {
        assert_eq!(get(&env, "/").await.status(), 200);
    }
    assert_eq!(hits(&a), a_before, "nothing more to the old address");

    // The name stops resolving: the last good address keeps serving, and it shows.
    hosts.write("# app.test is gone\n");
    let unresolved = r#"verigate_upstream_names_unresolved{upstream="moving"}"#;
    let seen = eventually(Duration::from_secs(15), || async {
        metric(&env.metrics().await, unresolved) == 1.0
    })
    .await;
    assert!(seen, "the name's failure is not in the metrics");
    let m = env.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"verigate_upstream_names_unresolved{upstream="moving"}"#
        ),
        1.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            r#"verigate_upstream_resolve_failures_total{upstream="moving"}"#
        ) >= 1.0
    );
    assert_eq!(
        metric(&m, r#"verigate_upstream_addresses{upstream="moving"}"#),
        1.0
    );
    let b_before = hits(&b);
    for _ in 0..3 {
        assert_eq!(get(&env, "/").await.status(), 200);
    }
    assert_eq!(hits(&b), b_before + 3);
    let (status, body) = admin_text(&env, "/readyz").await;
    assert_eq!(status, 200, "the last good set still serves: {body}");
    assert!(
        body.contains(&format!(
            "upstream moving: 1 address; {name} does not resolve"
        )) && body.contains("last good addresses kept"),
        "{body}"
    );

    // It resolves again (to both): both are used.
    hosts.write("127.0.0.1 app.test\n127.0.0.2 app.test\n");
    let both = eventually(Duration::from_secs(15), || async {
        let m = env.metrics().await;
        metric(&m, r#"verigate_upstream_addresses{upstream="moving"}"#) == 2.0
    })
    .await;
    assert!(both);
    let (a0, b0) = (hits(&a), hits(&b));
    for _ in 0..6 {
        assert_eq!(get(&env, "/").await.status(), 200);
    }
    assert_eq!(
        (hits(&a) - a0, hits(&b) - b0),
        (3, 3),
        "round robin over both"
    );
}

#[tokio::test]
async fn an_address_that_refuses_connections_is_set_aside_while_the_other_serves() {
    let echo = Arc::new(Echo::default());
    let live = Upstream::Echo.spawn(&echo).await;
    let dead = refused_addr();
    let proxy = on_upstream("flaky").named_upstream(
        "flaky",
        [dead.to_string(), live.to_string()],
        json!({ "eject_for": "60s" }),
    );
    let env = Env::with(proxy).await;
    for i in 0..6 {
        let r = get(&env, &format!("/{i}")).await;
        assert_eq!(r.status(), 200, "request {i}");
    }
    // A POST too: nothing of it reached the dead address, so it is sent to the other.
    let r = env
        .client
        .post(env.url("/signup"))
        .header("accept", "application/json")
        .body("a=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(hits(&echo), 7);
    let m = env.metrics().await;
    let sample = |n: &str| metric(&m, &format!("{n}{{upstream=\"flaky\"}}"));
    assert_eq!(
        sample("verigate_upstream_connect_failures_total"),
        1.0,
        "{m}"
    );
    assert_eq!(sample("verigate_upstream_ejections_total"), 1.0);
    assert!(sample("verigate_upstream_skipped_total") >= 1.0, "{m}");
    assert_eq!(sample("verigate_upstream_ejected_addresses"), 1.0);
    let (status, body) = admin_text(&env, "/readyz").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("upstream flaky: 2 addresses, 1 set aside after failed connects"),
        "{body}"
    );
}

#[tokio::test]
async fn with_every_address_set_aside_they_are_still_tried() {
    let dead = refused_addr();
    let proxy = on_upstream("down").named_upstream(
        "down",
        [dead.to_string()],
        json!({ "eject_for": "60s" }),
    );
    let env = Env::with(proxy).await;
    let r = get(&env, "/").await;
    assert_eq!(refusal(r).await, (502, "upstream_unavailable".into()));
    // The app comes back while its only address is set aside: health fails open.
    let echo = Arc::new(Echo::default());
    spawn_echo_at(&echo, dead).await;
    assert_eq!(get(&env, "/").await.status(), 200);
    assert_eq!(hits(&echo), 1);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_at_start_is_not_ready_then_serves() {
    let echo = Arc::new(Echo::default());
    let app = Upstream::Echo.spawn(&echo).await;
    let hosts = Hosts::new("");
    let name = format!("late.test:{}", app.port());
    let proxy = on_upstream("later")
        .named_upstream("later", [&name], json!({}))
        .set("resolver", hosts.resolver())
        .may_start_unready();
    let env = Env::with(proxy).await;
    let (status, body) = admin_text(&env, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(
        body.contains(&format!(
            "upstream later: 0 addresses; {name} does not resolve"
        )),
        "{body}"
    );
    let r = get(&env, "/").await;
    assert_eq!(refusal(r).await, (502, "upstream_unavailable".into()));
    let r = env
        .client
        .get(env.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("upstream_unavailable"));
    assert_eq!(hits(&echo), 0);

    hosts.write("127.0.0.1 late.test\n");
    let served = eventually(Duration::from_secs(15), || async {
        get(&env, "/").await.status() == 200
    })
    .await;
    assert!(served, "the name resolved but requests are not served");
    assert_eq!(admin_text(&env, "/readyz").await.0, 200);
}

#[tokio::test]
async fn a_reload_moves_a_route_to_another_upstream() {
    let a = Arc::new(Echo::default());
    let b = Arc::new(Echo::default());
    let a_addr = Upstream::Echo.spawn(&a).await;
    let b_addr = Upstream::Echo.spawn(&b).await;
    let hosts = Hosts::new("127.0.0.1 b.test\n");
    let base = Proxy::new()
        .named_upstream("ra", [a_addr.to_string()], json!({}))
        .named_upstream("rb", [format!("b.test:{}", b_addr.port())], json!({}))
        .set("resolver", hosts.resolver())
        .reloadable();
    let env = Env::with(base.clone().route(Route::prefix("/").upstream("ra"))).await;
    assert_eq!(get(&env, "/").await.status(), 200);
    env.write_config(&base.clone().route(Route::prefix("/").upstream("rb")));
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&env, "/").await.status(), 200);
    assert_eq!((hits(&a), hits(&b)), (1, 1));
    // A reload to a name that does not resolve is taken (the name is no config error); its
    // requests get 502 until it does.
    env.write_config(
        &base
            .clone()
            .named_upstream("rc", ["nowhere.test:1"], json!({}))
            .route(Route::prefix("/").upstream("rc")),
    );
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let r = get(&env, "/").await;
    assert_eq!(refusal(r).await, (502, "upstream_unavailable".into()));
}

#[test]
fn check_warns_about_a_name_that_does_not_resolve() {
    let hosts = Hosts::new("127.0.0.1 known.test\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verigate.yaml");
    let yaml = Proxy::new()
        .route(Route::prefix("/"))
        .upstream_addrs(["known.test:8080", "unknown.test:8080"])
        .set("resolver", hosts.resolver())
        .to_yaml(NO_SANDBOX, NO_SANDBOX);
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["check", "-c"])
        .arg(&path)
        .env("VG_KEYS", SESSION_KEY)
        .env("VG_HASH", HASH_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("warning: upstream.addrs[1]: unknown.test is not in the hosts file"),
        "{text}"
    );
    assert!(!text.contains("addrs[0]"), "{text}");
    assert!(text.trim_end().ends_with("ok"), "{text}");
}
