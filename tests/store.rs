//! One behavioural suite for every store backend (memory, SQLite, Redis), then the store
//! through the real proxy: durability across restarts, two instances sharing Redis, outages.
//! The Redis tests use the server named by VERIGATE_TEST_REDIS (e.g. redis://127.0.0.1:6379);
//! without it they print SKIPPED (and fail under CI=true).

mod common;
use common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use verigate::config::StoreConfig;
use verigate::store::{self, PersonRef, Reservation, Store};

/// The Redis to test against; without one, the test reports SKIPPED (fails under CI=true).
#[track_caller]
fn redis_url() -> Option<String> {
    match std::env::var("VERIGATE_TEST_REDIS") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            skip::missing(
                "Redis",
                "set VERIGATE_TEST_REDIS=redis://127.0.0.1:6379 with a Redis running there",
            );
            None
        }
    }
}

/// Delete every key a test wrote under its prefix.
fn redis_cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut con);
    }
}

fn unique_prefix(tag: &str) -> String {
    format!("vgtest:{tag}:{}:{}:", std::process::id(), rand_suffix())
}

fn rand_suffix() -> String {
    use rand::Rng;
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}

fn p<'a>(ci: &'a str, uis: &'a str) -> store::Person<'a> {
    store::Person {
        ci_hash: ci,
        unique_in_site: uis,
    }
}

/// The contract every backend keeps.
async fn suite(s: Arc<dyn Store>) {
    let ttl = Duration::from_secs(60);
    s.ping().await.unwrap();
    // Replay guard: once, then never again within the ttl; keys are independent.
    assert!(s.claim_once("iamport:imp_1", ttl).await.unwrap());
    assert!(!s.claim_once("iamport:imp_1", ttl).await.unwrap());
    assert!(s.claim_once("iamport:imp_2", ttl).await.unwrap());
    // A claim that expired may be made again.
    assert!(s
        .claim_once("short", Duration::from_millis(1))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.claim_once("short", ttl).await.unwrap());

    // Account life cycle.
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::InProgress
    );
    s.release_account("signup", "ci-a").await.unwrap();
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    s.commit_account("signup", "ci-a").await.unwrap();
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Taken
    );
    s.release_account("signup", "ci-a").await.unwrap();
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Taken,
        "release never undoes a commit"
    );
    assert_eq!(
        s.reserve_account("other-route", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    // A crashed reservation expires.
    assert_eq!(
        s.reserve_account("signup", p("ci-b", "di-b"), Duration::from_millis(1))
            .await
            .unwrap(),
        Reservation::Reserved
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        s.reserve_account("signup", p("ci-b", "di-b"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    s.commit_account("signup", "ci-b").await.unwrap();
    assert_eq!(s.count_accounts().await.unwrap(), 2);
    // Concurrent reservations of one person: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.reserve_account("race", p("ci-r", "di-r"), ttl)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() == Reservation::Reserved {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    // Forget by either identifier, on every route.
    s.commit_account("other-route", "ci-a").await.unwrap();
    assert_eq!(
        s.forget(&PersonRef::CiHash("ci-a".into())).await.unwrap(),
        2
    );
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        s.forget(&PersonRef::UniqueInSite("di-b".into()))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.forget(&PersonRef::UniqueInSite("nobody".into()))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.count_accounts().await.unwrap(), 0);

    // ifree members: the first key stays; registration needs a known member.
    assert_eq!(s.member_get("m1").await.unwrap(), None);
    assert!(!s.member_register("m1", "pass", None).await.unwrap());
    let first = s.member_key("m1", "key-1").await.unwrap();
    assert_eq!(
        (first.key.as_str(), first.passcode.as_deref()),
        ("key-1", None)
    );
    let again = s.member_key("m1", "key-2").await.unwrap();
    assert_eq!(
        again.key, "key-1",
        "a re-sent key exchange keeps the first key"
    );
    assert!(s.member_register("m1", "pass", Some("ubi")).await.unwrap());
    let r = s.member_get("m1").await.unwrap().unwrap();
    assert_eq!(
        (r.passcode.as_deref(), r.ubifill.as_deref()),
        (Some("pass"), Some("ubi"))
    );
    assert!(s.member_register("m1", "pass2", None).await.unwrap());
    let r = s.member_get("m1").await.unwrap().unwrap();
    assert_eq!(
        (r.passcode.as_deref(), r.ubifill.as_deref()),
        (Some("pass2"), None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_keeps_the_contract() {
    suite(store::open(&StoreConfig::Memory).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend_keeps_the_contract_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db").display().to_string();
    let cfg = StoreConfig::Sqlite { path: path.clone() };
    suite(store::open(&cfg).unwrap()).await;
    {
        let s = store::open(&cfg).unwrap();
        assert!(s
            .claim_once("durable", Duration::from_secs(600))
            .await
            .unwrap());
        s.reserve_account("signup", p("ci-d", "di-d"), Duration::from_secs(60))
            .await
            .unwrap();
        s.commit_account("signup", "ci-d").await.unwrap();
    }
    let s = store::open(&cfg).unwrap();
    assert!(!s
        .claim_once("durable", Duration::from_secs(600))
        .await
        .unwrap());
    assert_eq!(
        s.reserve_account("signup", p("ci-d", "di-d"), Duration::from_secs(60))
            .await
            .unwrap(),
        Reservation::Taken
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_keeps_the_contract() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("suite");
    suite(
        store::open(&StoreConfig::Redis {
            url: url.clone(),
            prefix: prefix.clone(),
        })
        .unwrap(),
    )
    .await;
    redis_cleanup(&url, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_unavailable_not_a_hang() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let s = store::open(&StoreConfig::Redis {
        url: format!("redis://{dead}"),
        prefix: "x:".into(),
    })
    .unwrap();
    assert!(s.ping().await.is_err());
    assert!(s.claim_once("k", Duration::from_secs(1)).await.is_err());
}

/// Mint a session for a made-up person (the test knows the session key).
fn session_for(ci_hash: &str) -> String {
    use verigate::session::{Claims, Keyring, Purpose};
    let now = chrono::Utc::now().timestamp();
    let ring = Keyring::from_base64_list(SESSION_KEY).unwrap();
    ring.seal_json(
        Purpose::Session,
        &Claims {
            unique_in_site: format!("di-{ci_hash}"),
            ci_hash: ci_hash.into(),
            birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
            provider: verigate::providers::ProviderId::Iamport,
            verified_at: now,
            issued_at: now,
            expires_at: now + 3600,
            name: None,
            gender: None,
            phone: None,
        },
    )
}

async fn signup(c: &reqwest::Client, proxy: std::net::SocketAddr, session: &str) -> u16 {
    c.post(format!("http://{proxy}/signup"))
        .header("cookie", format!("vg={session}"))
        .body("user=x")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_state_survives_a_proxy_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "store: {{ kind: sqlite, path: {} }}",
        dir.path().join("s.db").display()
    );
    let first = Env::with(Setup {
        store: store.clone(),
        ..Setup::default()
    })
    .await;
    let mut b = first.browser();
    let flow = b.start_iamport("/member").await;
    let back = b
        .certify(first.sandbox, &flow, &Person::adult(), true)
        .await;
    let loc = back["location"].as_str().unwrap().to_string();
    let mut replay = b.clone();
    assert_eq!(b.send(b.client.get(&loc)).await.status(), 302);
    let s = session_for("restart-person");
    assert_eq!(signup(&first.client, first.proxy, &s).await, 201);
    let sandbox = first.sandbox;
    drop(first);
    let second = Env::with(Setup {
        store,
        iamport_base: Some(format!("http://{sandbox}/iamport")),
        ..Setup::default()
    })
    .await;
    replay.env_proxy = second.proxy;
    let loc2 = loc.replace(
        &flow.params["m_redirect_url"].as_str().unwrap()[7..]
            .split('/')
            .next()
            .unwrap()
            .to_string(),
        &second.proxy.to_string(),
    );
    let r = replay.send(replay.client.get(&loc2)).await;
    assert_eq!(r.status(), 409, "replay refused after restart");
    assert_eq!(
        signup(&second.client, second.proxy, &s).await,
        409,
        "signup remembered after restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let echo = Arc::new(Echo::default());
    let upstream = spawn_router(
        axum::Router::new()
            .fallback(axum::routing::any(|| async {
                (axum::http::StatusCode::CREATED, "ok")
            }))
            .with_state(echo),
    )
    .await;
    let yaml_text = yaml(
        upstream,
        "",
        "http://127.0.0.1:9/iamport",
        "",
        DEFAULT_ROUTES,
        &format!(
            "store: {{ kind: sqlite, path: {} }}",
            dir.path().join("k.db").display()
        ),
    );
    let cfg = dir.path().join("verigate.yaml");
    std::fs::write(&cfg, yaml_text).unwrap();
    let mut p = start_binary(&cfg);
    let c = client();
    // Load: many people signing up at once; remember who was acknowledged.
    let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..600 {
        let c = c.clone();
        let addr = p.addr;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let ci = format!("kill-{i}");
            let status = signup(&c, addr, &session_for(&ci)).await;
            if status == 201 {
                acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            (ci, status)
        }));
    }
    // Mid-load (once some signups are acknowledged and others are in flight): SIGKILL.
    for _ in 0..1000 {
        if acked.load(std::sync::atomic::Ordering::SeqCst) >= 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    p.child.kill().unwrap();
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (ci, status) = t.await.unwrap();
        if status == 201 {
            acknowledged.push(ci);
        }
    }
    let _ = p.child.wait();
    assert!(
        !acknowledged.is_empty(),
        "some signups were acknowledged before the kill"
    );
    let p2 = start_binary(&cfg);
    for ci in &acknowledged {
        assert_eq!(
            signup(&c, p2.addr, &session_for(ci)).await,
            409,
            "{ci} was acknowledged, then forgotten"
        );
    }
    let mut p2 = p2;
    let _ = p2.child.kill();
    assert!(acknowledged.len() < 600, "the kill happened mid-load");
    eprintln!(
        "{} signups acknowledged before kill -9, all remembered",
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = unique_prefix("pair");
    let store = format!("store: {{ kind: redis, url: \"{url}\", prefix: \"{prefix}\" }}");
    let a = Env::with(Setup {
        store: store.clone(),
        ..Setup::default()
    })
    .await;
    let b_env = Env::with(Setup {
        store,
        iamport_base: Some(format!("http://{}/iamport", a.sandbox)),
        ..Setup::default()
    })
    .await;
    // A certification accepted on A is a replay on B.
    let mut browser = a.browser();
    let flow = browser.start_iamport("/member").await;
    let back = browser
        .certify(a.sandbox, &flow, &Person::adult(), true)
        .await;
    let mut on_b = browser.clone();
    on_b.env_proxy = b_env.proxy;
    let r = browser
        .complete(&back["imp_uid"], &back["merchant_uid"])
        .await;
    assert_eq!(r.status(), 200);
    let r = on_b.complete(&back["imp_uid"], &back["merchant_uid"]).await;
    assert_eq!(r.status(), 409, "replay across instances");
    // A session issued by A is honoured by B.
    on_b.jar = browser.jar.clone();
    assert_eq!(on_b.get_html("/member").await.status(), 200);
    // One account per person across instances, under a race.
    let before = a.hits() + b_env.hits();
    let s = session_for(&format!("race-{}", rand_suffix()));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = a.client.clone();
        let addr = if i % 2 == 0 { a.proxy } else { b_env.proxy };
        let s = s.clone();
        tasks.push(tokio::spawn(async move { signup(&c, addr, &s).await }));
    }
    let mut created = 0;
    for t in tasks {
        if t.await.unwrap() == 201 {
            created += 1;
        }
    }
    assert_eq!(created, 1);
    assert_eq!(
        a.hits() + b_env.hits() - before,
        1,
        "exactly one signup reached an app"
    );
    redis_cleanup(&url, &prefix);
}

/// A TCP forwarder in front of Redis that can be cut and restored: an outage on demand.
struct Cut {
    addr: std::net::SocketAddr,
    up: Arc<std::sync::atomic::AtomicBool>,
}

async fn cuttable(target: std::net::SocketAddr) -> Cut {
    use std::sync::atomic::Ordering;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                return;
            };
            if !flag.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let flag = flag.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = outbound.split();
                let watch = async {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy(&mut ri, &mut wo) => {}
                    _ = tokio::io::copy(&mut ro, &mut wi) => {}
                    _ = watch => {}
                }
            });
        }
    });
    Cut { addr, up }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_fails_closed_and_recovers() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let target: std::net::SocketAddr = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cut = cuttable(target).await;
    let prefix = unique_prefix("outage");
    let store = format!(
        "store: {{ kind: redis, url: \"redis://{}\", prefix: \"{prefix}\" }}",
        cut.addr
    );
    let env = Env::with(Setup {
        store,
        ..Setup::default()
    })
    .await;
    let c = &env.client;
    let s = session_for(&format!("outage-{}", rand_suffix()));
    let member = session_for("member-reader");

    cut.up.store(false, Ordering::SeqCst);
    let readyz = format!("http://{}/readyz", env.admin);
    let mut down = false;
    for _ in 0..300 {
        if c.get(&readyz).send().await.unwrap().status() == 503 {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(down, "/readyz reports the store down");
    // A route that needs the store fails closed with 503; nothing reaches the app.
    let hits = env.hits();
    let r = c
        .post(env.url("/signup"))
        .header("cookie", format!("vg={s}"))
        .header("accept", "application/json")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "store_unavailable"
    );
    assert_eq!(env.hits(), hits);
    // New verifications need the replay guard: 503 too.
    let mut b = env.browser();
    let r = b
        .verify_callback(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(r.status(), 503);
    // Open routes and already-verified sessions on routes without store rules keep working.
    assert_eq!(c.get(env.url("/open")).send().await.unwrap().status(), 200);
    let r = c
        .get(env.url("/member"))
        .header("cookie", format!("vg={member}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Redis comes back: verigate recovers by itself.
    cut.up.store(true, Ordering::SeqCst);
    let mut status = 0;
    for _ in 0..300 {
        status = signup(c, env.proxy, &s).await;
        if status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 201, "recovered");
    assert_eq!(c.get(&readyz).send().await.unwrap().status(), 200);
    redis_cleanup(&url, &prefix);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_cli_counts_and_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let cfg_store = StoreConfig::Sqlite {
        path: db.display().to_string(),
    };
    let s = store::open(&cfg_store).unwrap();
    for (ci, di) in [("ci-1", "di-1"), ("ci-2", "di-2")] {
        s.reserve_account("signup", p(ci, di), Duration::from_secs(60))
            .await
            .unwrap();
        s.commit_account("signup", ci).await.unwrap();
    }
    let yaml_text = yaml(
        loopback(),
        "",
        "http://127.0.0.1:9/iamport",
        "",
        DEFAULT_ROUTES,
        &format!("store: {{ kind: sqlite, path: {} }}", db.display()),
    );
    let cfg = dir.path().join("v.yaml");
    std::fs::write(&cfg, yaml_text).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_verigate"))
            .args(args)
            .arg("-c")
            .arg(&cfg)
            .env("VG_KEYS", SESSION_KEY)
            .env("VG_HASH", HASH_KEY)
            .env("IMP_KEY", "k")
            .env("IMP_SECRET", "s")
            .env(
                "TOMO_KEY",
                verigate::sandbox::tomo::SANDBOX_CLIENT_JWK.trim(),
            )
            .env("IFREE_SECRET", "s")
            .env("PORTONE_SECRET", "s")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    assert_eq!(run(&["accounts", "count"]), (Some(0), "2".into()));
    assert_eq!(
        run(&["accounts", "forget", "--unique-in-site", "di-1"]),
        (Some(0), "forgot 1 record(s)".into())
    );
    assert_eq!(
        run(&["accounts", "forget", "--ci-hash", "ci-2"]),
        (Some(0), "forgot 1 record(s)".into())
    );
    assert_eq!(run(&["accounts", "count"]), (Some(0), "0".into()));
}
