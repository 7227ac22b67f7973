//! Rate limits on starting verifications (per client, per provider) and on ifree key
//! exchanges, through the real proxy and the provider sandbox: what the provider saw, what
//! the refused clients got (`429`, `Retry-After`), and that instances on one Redis share them.

use crate::common::*;
use serde_json::{json, Value};

/// TomoIDV (its start page calls the provider) behind a trusted proxy at 127.0.0.1, with the
/// given `limits`.
fn tomo(limits: Value) -> Proxy {
    Proxy::new()
        .provider(Provider::tomo())
        .route(Route::prefix("/adult").providers(["tomo"]))
        .route(Route::prefix("/"))
        .set("clients", json!({ "trusted_proxies": ["127.0.0.1/32"] }))
        .set("limits", limits)
}

fn per_client(burst: u32) -> Value {
    // One token a minute: none comes back while a test runs.
    json!({ "verification_starts": { "per_client": { "burst": burst, "per_minute": 1 } } })
}

const START: &str = "/.verigate/tomo/start?return_to=%2Fadult";

/// A start page opened by `client` (as the trusted proxy says, when `client` is some).
async fn start(env: &Env, client: Option<&str>, accept: &str) -> reqwest::Response {
    let mut req = env.client.get(env.url(START)).header("accept", accept);
    if let Some(c) = client {
        req = req.header("x-forwarded-for", c);
    }
    req.send().await.unwrap()
}

/// A refusal by a rate limit: `429`, a whole number of seconds in `Retry-After`, the code.
async fn assert_limited(r: reqwest::Response) {
    assert_eq!(r.status(), 429);
    let after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&after), "{after}");
    assert!(r.text().await.unwrap().contains("rate_limited"));
}

fn limited_count(metrics: &str, what: &str) -> u64 {
    let line = format!("verigate_rate_limited_total{{what=\"{what}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_starts_from_one_client_reach_the_provider_only_up_to_the_limit() {
    let env = Env::with(tomo(per_client(5))).await;
    let before = limited_count(&env.metrics().await, "start_per_client");
    let mut started = 0;
    for _ in 0..20 {
        let r = start(&env, Some("198.51.100.7"), "text/html").await;
        match r.status().as_u16() {
            302 => started += 1,
            _ => assert_limited(r).await,
        }
    }
    assert_eq!(started, 5);
    assert_eq!(
        env.tomo.started(),
        5,
        "the provider saw only the allowed starts"
    );
    // An API client of the same address gets the JSON refusal.
    let r = start(&env, Some("198.51.100.7"), "application/json").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited", "{v}");
    // Another client still starts.
    let r = start(&env, Some("198.51.100.8"), "text/html").await;
    assert_eq!(r.status(), 302);
    assert_eq!(env.tomo.started(), 6);
    // The open part of the site is not limited.
    for _ in 0..10 {
        let r = env
            .client
            .get(env.url("/open"))
            .header("x-forwarded-for", "198.51.100.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let after = limited_count(&env.metrics().await, "start_per_client");
    assert!(after >= before + 16, "{before} → {after}");
}

/// An IPv6 client is its /64: other addresses of the same /64 share its limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_is_its_whole_64() {
    let env = Env::with(tomo(per_client(3))).await;
    for c in ["2001:db8::1", "2001:db8::2", "2001:db8::ffff:1"] {
        assert_eq!(start(&env, Some(c), "text/html").await.status(), 302, "{c}");
    }
    assert_limited(start(&env, Some("2001:db8::abcd"), "text/html").await).await;
    assert_eq!(
        start(&env, Some("2001:db8:0:1::1"), "text/html")
            .await
            .status(),
        302,
        "the next /64 is another client"
    );
    assert_eq!(env.tomo.started(), 4);
}

/// A client that is no trusted proxy cannot pick a new address for each start by sending
/// `X-Forwarded-For`: it is counted by its own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_forwarded_for_does_not_make_a_new_client() {
    let env = Env::with(
        tomo(per_client(3)).set("clients", json!({ "trusted_proxies": ["192.0.2.0/24"] })),
    )
    .await;
    for i in 0..3 {
        let r = start(&env, Some(&format!("198.51.100.{i}")), "text/html").await;
        assert_eq!(r.status(), 302);
    }
    for i in 3..8 {
        assert_limited(start(&env, Some(&format!("198.51.100.{i}")), "text/html").await).await;
    }
    assert_eq!(env.tomo.started(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_provider_limit_holds_whoever_starts() {
    let env = Env::with(tomo(json!({ "verification_starts": {
        "per_client": { "burst": 10, "per_minute": 10 },
        "per_provider": { "burst": 4, "per_minute": 1 } } })))
    .await;
    for i in 0..4 {
        let r = start(&env, Some(&format!("198.51.100.{i}")), "text/html").await;
        assert_eq!(r.status(), 302);
    }
    for i in 4..9 {
        assert_limited(start(&env, Some(&format!("198.51.100.{i}")), "text/html").await).await;
    }
    assert_eq!(env.tomo.started(), 4);
    assert!(limited_count(&env.metrics().await, "start_per_provider") >= 5);
}

/// Two instances on one Redis count one client's starts together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_redis_share_the_limits() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vgtest:limits:{}:{}:", std::process::id(), fresh_suffix());
    let store = Storage::redis(&url).prefix(&prefix);
    let a = Env::with(tomo(per_client(4)).store(store.clone())).await;
    let b = Env::with(
        tomo(per_client(4))
            .provider(Provider::tomo().on_sandbox(a.sandbox))
            .store(store),
    )
    .await;
    for env in [&a, &b, &a, &b] {
        let r = start(env, Some("198.51.100.9"), "text/html").await;
        assert_eq!(r.status(), 302);
    }
    for env in [&a, &b] {
        assert_limited(start(env, Some("198.51.100.9"), "text/html").await).await;
    }
    assert_eq!(
        a.tomo.started(),
        4,
        "both instances' starts, on the one sandbox"
    );
    assert_eq!(
        start(&b, Some("198.51.100.10"), "text/html").await.status(),
        302
    );
}

fn fresh_suffix() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 12)
}

/// ifree with callbacks allowed from 127.0.0.1 only, and these key-exchange limits.
fn ifree(limits: Value) -> Proxy {
    Proxy::new()
        .provider(Provider::ifree().callback_allow_ips(&["127.0.0.1"]))
        .route(Route::prefix("/member").providers(["ifree"]))
        .route(Route::prefix("/"))
        .set("limits", json!({ "ifree_key_exchanges": limits }))
}

/// A key exchange posted from `from` (a loopback address).
async fn exchange(env: &Env, from: &str, ptn_cd: &str) -> reqwest::Response {
    use base64::Engine;
    use rsa::pkcs8::EncodePublicKey;
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let public = KEY.get_or_init(|| {
        let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let der = sk.to_public_key().to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    });
    let client = reqwest::Client::builder()
        .local_address(from.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    client
        .post(env.url("/.verigate/ifree/callback"))
        .json(
            &json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": ptn_cd,
            "public_key": public}),
        )
        .send()
        .await
        .unwrap()
}

/// One anonymous client cannot close ifree registration for everyone: callers outside the
/// allow list are refused without spending ifree's own limit, and ifree's servers are held
/// to theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ifree_key_exchanges_are_limited_and_outsiders_spend_nothing() {
    let env = Env::with(ifree(json!({
        "per_client": { "burst": 100, "per_minute": 1 },
        "overall": { "burst": 3, "per_minute": 1 } })))
    .await;
    for i in 0..20 {
        let r = exchange(&env, "127.0.0.2", &format!("OUT{i}")).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "9403", "{v}");
    }
    for i in 0..3 {
        let r = exchange(&env, "127.0.0.1", &format!("IN{i}")).await;
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "0000", "{v}");
    }
    let r = exchange(&env, "127.0.0.1", "IN3").await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ifree_caller_is_held_to_its_own_limit() {
    let env = Env::with(
        ifree(json!({ "per_client": { "burst": 2, "per_minute": 1 } }))
            .provider(Provider::ifree().callback_allow_ips(&["127.0.0.1", "127.0.0.3"])),
    )
    .await;
    for i in 0..2 {
        let v: Value = exchange(&env, "127.0.0.1", &format!("A{i}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["code"], "0000", "{v}");
    }
    assert_eq!(exchange(&env, "127.0.0.1", "A2").await.status(), 429);
    let v: Value = exchange(&env, "127.0.0.3", "B0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], "0000", "another caller has its own: {v}");
}
