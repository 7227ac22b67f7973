//! One behavioural suite for every store backend (memory, SQLite, Redis), then the store
//! through the real proxy: durability across restarts, two instances sharing Redis, outages.
//! The Redis tests use the server named by VERIGATE_TEST_REDIS (e.g. redis://127.0.0.1:6379);
//! without it they print SKIPPED (and fail under CI=true).

use crate::common::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use verigate::store::{self, KeyExchange, PersonRef, Registration, Reservation, Store};
use verigate::store::{RedisConfig, StoreConfig};

/// A member registered without an owner.
const NOBODY: verigate::store::Person<'static> = verigate::store::Person {
    ci_hash: "",
    unique_in_site: "",
};

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
        s.forget(&PersonRef::CiHash("ci-a".into()), None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.reserve_account("signup", p("ci-a", "di-a"), ttl)
            .await
            .unwrap(),
        Reservation::Reserved
    );
    assert_eq!(
        s.forget(&PersonRef::UniqueInSite("di-b".into()), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.forget(&PersonRef::UniqueInSite("nobody".into()), None)
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.count_accounts().await.unwrap(), 0);

    // ifree members: registration needs a pending member whose key is the one it used; a
    // re-sent key exchange replaces the pending key; a registered member never changes.
    let ttl = Duration::from_secs(600);
    assert_eq!(s.member_get("m1").await.unwrap(), None);
    assert_eq!(
        s.member_register("m1", "key-1", "pass", None, NOBODY)
            .await
            .unwrap(),
        Registration::Unknown
    );
    assert_eq!(
        s.member_key("m1", "key-1", ttl, 10).await.unwrap(),
        KeyExchange::Issued
    );
    let first = s.member_get("m1").await.unwrap().unwrap();
    assert_eq!(
        (first.key.as_str(), first.passcode.as_deref()),
        ("key-1", None)
    );
    assert_eq!(
        s.member_key("m1", "key-2", ttl, 10).await.unwrap(),
        KeyExchange::Issued
    );
    assert_eq!(
        s.member_get("m1").await.unwrap().unwrap().key,
        "key-2",
        "a re-sent key exchange replaces the pending key"
    );
    assert_eq!(
        s.member_register("m1", "key-1", "pass", None, NOBODY)
            .await
            .unwrap(),
        Registration::KeyReplaced,
        "a registration made with the superseded key"
    );
    assert_eq!(s.member_get("m1").await.unwrap().unwrap().passcode, None);
    assert_eq!(
        s.member_register("m1", "key-2", "pass", Some("ubi"), NOBODY)
            .await
            .unwrap(),
        Registration::Registered
    );
    let r = s.member_get("m1").await.unwrap().unwrap();
    assert_eq!(
        (r.key.as_str(), r.passcode.as_deref(), r.ubifill.as_deref()),
        ("key-2", Some("pass"), Some("ubi"))
    );
    // Registered: neither a second registration nor a key exchange changes anything.
    assert_eq!(
        s.member_register("m1", "key-2", "pass2", None, NOBODY)
            .await
            .unwrap(),
        Registration::AlreadyRegistered
    );
    assert_eq!(
        s.member_key("m1", "key-3", ttl, 10).await.unwrap(),
        KeyExchange::Registered
    );
    assert_eq!(s.member_get("m1").await.unwrap().unwrap(), r);

    // Pending members are bounded (a registered one does not count) and expire.
    for i in 0..3 {
        assert_eq!(
            s.member_key(&format!("p{i}"), "k", ttl, 3).await.unwrap(),
            KeyExchange::Issued
        );
    }
    assert_eq!(
        s.member_key("p3", "k", ttl, 3).await.unwrap(),
        KeyExchange::Full
    );
    assert_eq!(s.member_get("p3").await.unwrap(), None);
    assert_eq!(
        s.member_key("p0", "k2", ttl, 3).await.unwrap(),
        KeyExchange::Issued,
        "a pending member may re-key at the bound"
    );
    let short = Duration::from_millis(1);
    assert_eq!(
        s.member_key("gone", "k", short, 100).await.unwrap(),
        KeyExchange::Issued
    );
    // Wait on the store's own clock: poll until the pending member has expired.
    let mut expired = false;
    for _ in 0..200 {
        if s.member_get("gone").await.unwrap().is_none() {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(expired, "a pending member expires");
    assert_eq!(
        s.member_register("gone", "k", "pass", None, NOBODY)
            .await
            .unwrap(),
        Registration::Unknown
    );

    // Revoked sessions: listed from a point in time on, until the session would have expired.
    let now_s = chrono::Utc::now().timestamp();
    let before = chrono::Utc::now().timestamp_millis();
    s.revoke("sess-a", now_s + 3600).await.unwrap();
    s.revoke("sess-old", now_s - 1).await.unwrap();
    let listed = s.revocations(before - 1).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        ["sess-a"],
        "an expired session's revocation is not listed"
    );
    assert_eq!(listed[0].until, now_s + 3600);
    assert!(listed[0].at_ms >= before - 1);
    let later = s.revocations(listed[0].at_ms + 60_000).await.unwrap();
    assert!(later.is_empty(), "{later:?}");

    kept_requests(s).await;
}

/// Kept requests: binary values kept whole, taken by exactly one of many concurrent takers,
/// never kept past `max_live` live ones, gone once expired.
async fn kept_requests(s: Arc<dyn Store>) {
    let ttl = Duration::from_secs(60);
    let id = format!("kept-{}", rand_suffix());
    let value: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    assert!(s.keep_request(&id, &value, ttl, 10).await.unwrap());
    let takers: Vec<_> = (0..16)
        .map(|_| {
            let (s, id) = (s.clone(), id.clone());
            tokio::spawn(async move { s.take_request(&id).await.unwrap() })
        })
        .collect();
    let mut got = Vec::new();
    for t in takers {
        if let Some(v) = t.await.unwrap() {
            got.push(v);
        }
    }
    assert_eq!(got.len(), 1, "exactly one taker gets a kept request");
    assert!(got[0] == value, "the value comes back byte for byte");
    assert_eq!(s.take_request(&id).await.unwrap(), None);
    assert_eq!(s.take_request("never-kept").await.unwrap(), None);

    // At most `max_live` live ones: the next is refused, until one is taken.
    let ids: Vec<String> = (0..3)
        .map(|i| format!("cap-{i}-{}", rand_suffix()))
        .collect();
    for id in &ids[..2] {
        assert!(s.keep_request(id, b"x", ttl, 2).await.unwrap());
    }
    assert!(!s.keep_request(&ids[2], b"x", ttl, 2).await.unwrap());
    // Keeping one again under its own id replaces it; it takes no second place.
    assert!(s.keep_request(&ids[0], b"y", ttl, 2).await.unwrap());
    assert_eq!(
        s.take_request(&ids[0]).await.unwrap().as_deref(),
        Some(&b"y"[..])
    );
    assert!(s.keep_request(&ids[2], b"x", ttl, 2).await.unwrap());
    for id in &ids[1..] {
        assert!(s.take_request(id).await.unwrap().is_some());
    }

    // An expired one is gone, and counts no more: poll the store's own clock.
    let short = format!("short-{}", rand_suffix());
    assert!(s
        .keep_request(&short, b"x", Duration::from_millis(1), 1)
        .await
        .unwrap());
    let other = format!("other-{}", rand_suffix());
    let mut room = false;
    for _ in 0..200 {
        if s.keep_request(&other, b"x", ttl, 1).await.unwrap() {
            room = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(room, "an expired kept request leaves its place");
    assert_eq!(s.take_request(&short).await.unwrap(), None);
    assert!(s.take_request(&other).await.unwrap().is_some());
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
        store::open(&StoreConfig::Redis(RedisConfig::url(
            url.clone(),
            prefix.clone(),
        )))
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
    let s = store::open(&StoreConfig::Redis(RedisConfig::url(
        format!("redis://{dead}"),
        "x:",
    )))
    .unwrap();
    assert!(s.ping().await.is_err());
    assert!(s.claim_once("k", Duration::from_secs(1)).await.is_err());
}

/// The durability README claims for `kind: sqlite` rests on two settings; this reads them as
/// SQLite reports them in effect on the store's own connection (`PRAGMA journal_mode=WAL`
/// silently keeps the old mode when it cannot switch, so the schema's text proves nothing).
/// `SqliteStore::open` is the constructor `store::open` (and so the proxy) uses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_runs_wal_with_synchronous_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pragmas.db");
    let path_s = path.display().to_string();
    for round in ["a fresh file", "the file reopened"] {
        let s = store::sqlite::SqliteStore::open(&path_s).unwrap();
        assert!(s.claim_once(round, Duration::from_secs(60)).await.unwrap());
        let (mode, sync) = s.pragmas().await.unwrap();
        assert_eq!(mode, "wal", "{round}: journal_mode in effect");
        assert_eq!(
            sync, 2,
            "{round}: synchronous in effect (2 = FULL, 1 = NORMAL, 0 = OFF)"
        );
        assert!(
            dir.path().join("pragmas.db-wal").exists(),
            "{round}: the write went to the WAL"
        );
    }
    // WAL is recorded in the file: any other connection to it (`verigate accounts`, a second
    // process on the host) runs WAL too.
    let other = rusqlite::Connection::open(&path).unwrap();
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "journal_mode as another connection finds it");
}

/// A "Redis" that accepts connections, reads what it is sent and never answers, holding every
/// socket open: a hung server, or a network path that black-holes after the handshake.
/// Returns its address and how many connections it accepted.
async fn silent_redis() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                // The client hung up; keep nothing else open.
            });
        }
    });
    (addr, accepted)
}

/// Every method of the store trait, by name, with its answer as text.
const CALLS: [&str; 14] = [
    "ping",
    "claim_once",
    "reserve_account",
    "commit_account",
    "release_account",
    "forget",
    "count_accounts",
    "member_key",
    "member_register",
    "member_get",
    "revoke",
    "revocations",
    "keep_request",
    "take_request",
];

async fn call(s: &dyn Store, name: &str) -> Result<String, String> {
    fn out<T: std::fmt::Debug>(r: Result<T, store::StoreError>) -> Result<String, String> {
        r.map(|v| format!("{v:?}")).map_err(|e| e.to_string())
    }
    let ttl = Duration::from_secs(60);
    match name {
        "ping" => out(s.ping().await),
        "claim_once" => out(s.claim_once("k", ttl).await),
        "reserve_account" => out(s.reserve_account("signup", p("ci", "di"), ttl).await),
        "commit_account" => out(s.commit_account("signup", "ci").await),
        "release_account" => out(s.release_account("signup", "ci").await),
        "forget" => out(s.forget(&PersonRef::CiHash("ci".into()), None).await),
        "count_accounts" => out(s.count_accounts().await),
        "member_key" => out(s.member_key("m", "k", ttl, 10).await),
        "member_register" => out(s.member_register("m", "k", "p", Some("u"), NOBODY).await),
        "member_get" => out(s.member_get("m").await),
        "revoke" => out(s.revoke("id", 4_000_000_000).await),
        "revocations" => out(s.revocations(0).await),
        "keep_request" => out(s.keep_request("r", b"body", ttl, 10).await),
        "take_request" => out(s.take_request("r").await),
        other => panic!("no store call {other}"),
    }
}

/// Every store call, at once (as concurrent requests make them), against `s`; each must come
/// back with an error within `bound`. Returns the slowest call's time.
async fn every_call_fails_within(s: Arc<dyn Store>, bound: Duration) -> Duration {
    let mut tasks = Vec::new();
    for name in CALLS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = tokio::time::timeout(bound, call(&*s, name)).await;
            (name, r, t.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (name, r, took) = t.await.unwrap();
        let r = r.unwrap_or_else(|_| panic!("{name} hung: no answer within {bound:?}"));
        assert!(
            r.is_err(),
            "{name} answered {r:?} from a Redis that never answers"
        );
        eprintln!("{name}: {:?} after {took:.2?}", r.unwrap_err());
        slowest = slowest.max(took);
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_redis_calls_fail_instead_of_hanging() {
    let (addr, accepted) = silent_redis().await;
    let s = store::open(&StoreConfig::Redis(RedisConfig::url(
        format!("redis://{addr}"),
        "x:",
    )))
    .unwrap();
    // Twice: the first round meets a store that never connected, the second one whose
    // earlier attempts all timed out.
    for round in 1..=2 {
        let slowest = every_call_fails_within(s.clone(), Duration::from_secs(10)).await;
        eprintln!("round {round}: slowest call {slowest:.2?}");
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the TCP connections were accepted: the calls waited for answers, not for a connect"
    );
}

/// Through the proxy: with a Redis that never answers, `/readyz` says 503 and a one-account
/// signup fails closed with 503 `store_unavailable`, each well within the bound, also when
/// many arrive at once; an open route keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_redis_through_the_proxy_fails_closed_in_bounded_time() {
    let (redis, _) = silent_redis().await;
    let upstream = spawn_router(axum::Router::new().fallback(axum::routing::any(|| async {
        (axum::http::StatusCode::CREATED, "ok")
    })))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("verigate.yaml");
    let proxy = Proxy::shop().store(Storage::redis(&format!("redis://{redis}")).prefix("x:"));
    std::fs::write(&cfg, proxy.to_yaml(NO_SANDBOX, upstream)).unwrap();
    let proc = start_binary(&cfg);
    let c = client();
    let bound = Duration::from_secs(10);
    let admin = proc.admin.unwrap();
    let t = std::time::Instant::now();
    let r = tokio::time::timeout(bound, c.get(format!("http://{admin}/readyz")).send())
        .await
        .expect("/readyz answers within the bound")
        .unwrap();
    assert_eq!(r.status(), 503, "/readyz with a silent store");
    eprintln!("/readyz: 503 after {:.2?}", t.elapsed());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = c.clone();
        let addr = proc.addr;
        tasks.push(tokio::spawn(async move {
            let t = std::time::Instant::now();
            let r = tokio::time::timeout(
                bound,
                c.post(format!("http://{addr}/signup"))
                    .header(
                        "cookie",
                        format!("vg={}", session_for(&format!("silent-{i}"))),
                    )
                    .header("accept", "application/json")
                    .body("user=x")
                    .send(),
            )
            .await
            .unwrap_or_else(|_| panic!("signup {i} hung past {bound:?}"))
            .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body, t.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (status, body, took) = t.await.unwrap();
        assert_eq!(
            (status, &body["error"]),
            (503, &Value::from("store_unavailable"))
        );
        slowest = slowest.max(took);
    }
    eprintln!("8 concurrent signups: 503 store_unavailable, slowest after {slowest:.2?}");
    let r = tokio::time::timeout(bound, c.get(format!("http://{}/open", proc.addr)).send())
        .await
        .expect("an open route answers")
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
}

/// A forwarder to `target` that can freeze: while `frozen`, connections stay open and what
/// arrives is held, nothing passes either way (a Redis that stops answering mid-connection).
async fn freezable(
    target: std::net::SocketAddr,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            while frozen.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = l.accept().await {
            let flag = flag.clone();
            tokio::spawn(async move {
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (ri, wi) = inbound.into_split();
                let (ro, wo) = outbound.into_split();
                tokio::join!(pipe(ri, wo, flag.clone()), pipe(ro, wi, flag));
            });
        }
    });
    (addr, frozen)
}

/// The other hang: connected to a working Redis, which then stops answering. Every call
/// still comes back with an error in bounded time, and the store works again once Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_stops_answering_fails_calls_in_bounded_time() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let target = redis_addr(&url);
    let (addr, frozen) = freezable(target).await;
    let prefix = unique_prefix("frozen");
    let s = store::open(&StoreConfig::Redis(RedisConfig::url(
        format!("redis://{addr}"),
        prefix.clone(),
    )))
    .unwrap();
    s.ping().await.unwrap();
    assert!(s
        .claim_once("before", Duration::from_secs(60))
        .await
        .unwrap());
    frozen.store(true, Ordering::SeqCst);
    let slowest = every_call_fails_within(s.clone(), Duration::from_secs(10)).await;
    eprintln!("connected, then silent: slowest call {slowest:.2?}");
    frozen.store(false, Ordering::SeqCst);
    let mut back = false;
    for _ in 0..100 {
        if s.ping().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the store works again once Redis answers");
    assert!(!s
        .claim_once("before", Duration::from_secs(60))
        .await
        .unwrap());
    redis_cleanup(&url, &prefix);
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
            provider: verigate::identity::ProviderId::Iamport,
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
            host: Some("127.0.0.1".into()),
            host_only: false,
            kept: None,
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
    let store = Storage::sqlite(dir.path().join("s.db"));
    let first = Env::with(Proxy::shop().store(store.clone())).await;
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
    let second = Env::with(
        Proxy::shop()
            .store(store)
            .provider(Provider::iamport().on_sandbox(sandbox)),
    )
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
    let yaml_text = Proxy::shop()
        .store(Storage::sqlite(dir.path().join("k.db")))
        .to_yaml(NO_SANDBOX, upstream);
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
    let store = Storage::redis(&url).prefix(&prefix);
    let a = Env::with(Proxy::shop().store(store.clone())).await;
    let b_env = Env::with(
        Proxy::shop()
            .store(store)
            .provider(Provider::iamport().on_sandbox(a.sandbox)),
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_fails_closed_and_recovers() {
    use std::sync::atomic::Ordering;
    let Some(url) = redis_url() else { return };
    let target = redis_addr(&url);
    let cut = cuttable(target).await;
    let prefix = unique_prefix("outage");
    let store = Storage::redis(&format!("redis://{}", cut.addr)).prefix(&prefix);
    let env = Env::with(Proxy::shop().store(store)).await;
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
    for (ci, di) in [
        ("ci-1-0123456789abcdefghijklmnopq", "di-1"),
        ("ci-2-0123456789abcdefghijklmnopq", "di-2"),
    ] {
        s.reserve_account("signup", p(ci, di), Duration::from_secs(60))
            .await
            .unwrap();
        s.commit_account("signup", ci).await.unwrap();
    }
    let yaml_text = Proxy::shop()
        .store(Storage::sqlite(&db))
        .to_yaml(NO_SANDBOX, loopback());
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
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let on = format!("SQLite file {}", db.display());
    assert_eq!(
        run(&["accounts", "count"]),
        (Some(0), format!("2 account record(s) in {on}"))
    );
    let (code, out) = run(&["accounts", "forget", "--unique-in-site", "di-1"]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(&format!(
            "forgot 1 account record(s) and 0 ifree member record(s) in {on};"
        )),
        "{out}"
    );
    let (code, out) = run(&[
        "accounts",
        "forget",
        "--ci-hash",
        "ci-2-0123456789abcdefghijklmnopq",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with(&format!(
            "forgot 1 account record(s) and 0 ifree member record(s) in {on};"
        )),
        "{out}"
    );
    assert_eq!(
        run(&["accounts", "count"]),
        (Some(0), format!("0 account record(s) in {on}"))
    );
    // An id no app received (a space copied with it) is refused, not "forgotten".
    let (code, out) = run(&[
        "accounts",
        "forget",
        "--ci-hash",
        " ci-2-0123456789abcdefghijklmnop",
    ]);
    assert_ne!(code, Some(0), "{out}");
}
