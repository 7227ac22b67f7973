//! Faults an instance must survive or report: a store that cannot write is not ready (its
//! `/readyz` answers 503 naming the store) and comes back by itself when the fault clears.
//!
//! The SQLite test mounts a small tmpfs (needs root and `mount`; it says so and skips
//! elsewhere, fails under `CI=true`), fills it and holds its lock from
//! another connection. The Redis test starts its own `redis-server` on a free loopback port
//! and makes it full (`maxmemory`, `noeviction`) and then a read-only replica.
//!
//! Session keys rotate under traffic (new key first, reload; then the old key dropped) with an
//! explicit hash key: sessions, one-account records and ifree members stay; without one, the
//! same rotation loses the records (what `check` warns about).

use crate::common::*;
use std::time::{Duration, Instant};

/// How long a fault may take to show on `/readyz` (its write probe is cached for 1 s).
const BOUND: Duration = Duration::from_secs(15);

async fn readyz(env: &Env) -> (u16, String) {
    let r = env
        .client
        .get(format!("http://{}/readyz", env.admin))
        .send()
        .await
        .expect("admin answers");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

/// Poll `/readyz` until it answers `status`, within `BOUND`; the last answer's body.
async fn readyz_becomes(env: &Env, status: u16, what: &str) -> String {
    let start = Instant::now();
    loop {
        let (s, body) = readyz(env).await;
        if s == status {
            return body;
        }
        assert!(
            start.elapsed() < BOUND,
            "{what}: /readyz still {s} after {BOUND:?}, expected {status}:\n{body}"
        );
        // Polling pace, not synchronisation: the loop ends on what /readyz answers.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tmpfs mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Fill the filesystem under `dir` with one file until it is full; the file's path.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    // Whatever part-page is left goes too.
    while f.write(&[0u8]).is_ok_and(|n| n == 1) {}
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_that_cannot_write_is_not_ready_and_comes_back() {
    let Some(fs) = Tmpfs::mount("2m") else {
        skip::missing(
            "root and `mount -t tmpfs`",
            "run as root in a container that may mount tmpfs",
        );
        return;
    };
    let db = fs.dir.path().join("state.db");
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .store(Storage::sqlite(&db)),
    )
    .await;
    let body = readyz_becomes(&env, 200, "fresh store").await;
    assert!(body.starts_with("ready\n"), "{body}");

    // Disk full.
    let filler = fill(fs.dir.path());
    let body = readyz_becomes(&env, 503, "disk full").await;
    assert!(
        body.starts_with("store: ") && body.contains("sqlite") && body.contains("full"),
        "{body}"
    );
    std::fs::remove_file(&filler).expect("free the disk");
    let body = readyz_becomes(&env, 200, "disk freed").await;
    assert!(body.starts_with("ready\n"), "{body}");

    // Locked by another process's writer.
    let other = rusqlite::Connection::open(&db).expect("second connection");
    other
        .execute_batch("BEGIN EXCLUSIVE")
        .expect("take the lock");
    let body = readyz_becomes(&env, 503, "locked").await;
    assert!(
        body.starts_with("store: ") && body.contains("sqlite") && body.contains("locked"),
        "{body}"
    );
    other.execute_batch("ROLLBACK").expect("release the lock");
    readyz_becomes(&env, 200, "lock released").await;
    drop(other);
    drop(env);
}

/// A `redis-server` of this test's own on a free loopback port; killed when dropped.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let me = OwnRedis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let client = redis::Client::open(me.url.as_str()).ok()?;
        let start = Instant::now();
        while start.elapsed() < BOUND {
            if let Ok(mut c) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Some(me);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn cmd(&self, args: &[&str]) {
        let client = redis::Client::open(self.url.as_str()).expect("url");
        let mut c = client.get_connection().expect("own redis answers");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<()>(&mut c)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_that_cannot_write_is_not_ready_and_comes_back() {
    let Some(redis) = OwnRedis::start() else {
        skip::missing(
            "redis-server",
            "apt-get install redis-server (.ci/run does)",
        );
        return;
    };
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .store(Storage::redis(&redis.url).prefix("faults:")),
    )
    .await;
    readyz_becomes(&env, 200, "fresh redis").await;

    // Full: Redis refuses writes with OOM.
    redis.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let body = readyz_becomes(&env, 503, "redis OOM").await;
    assert!(
        body.starts_with("store: ") && body.contains("redis: cannot write (OOM)"),
        "{body}"
    );
    redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    readyz_becomes(&env, 200, "redis has memory again").await;

    // A read-only replica (of a master that is not there: it stays read-only).
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    redis.cmd(&["CONFIG", "SET", "replica-read-only", "yes"]);
    redis.cmd(&["REPLICAOF", "127.0.0.1", &dead.port().to_string()]);
    let body = readyz_becomes(&env, 503, "read-only replica").await;
    assert!(
        body.starts_with("store: ") && body.contains("redis: cannot write (READONLY)"),
        "{body}"
    );
    redis.cmd(&["REPLICAOF", "NO", "ONE"]);
    readyz_becomes(&env, 200, "replica promoted").await;
    drop(env);
}

/// A second session key (0x02 × 32), the rotation's new key.
const NEW_SESSION_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// A browser of `env` that has verified as `Person::adult()` (its session cookie set).
async fn verified(env: &Env) -> Browser {
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let back = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let loc = back["location"].as_str().expect("location").to_string();
    let r = b.send(b.client.get(&loc)).await;
    assert_eq!(r.status(), 302, "verified");
    b
}

/// An ifree member registers with verigate (the sandbox's key exchange and registration).
async fn ifree_member(env: &Env) -> String {
    let r = env
        .client
        .post(format!("http://{}/ifree/sandbox/members", env.sandbox))
        .json(&serde_json::json!({
            "callback_url": env.url("/.verigate/ifree/callback"),
            "passcode": "246810",
        }))
        .send()
        .await
        .expect("sandbox answers");
    let v: serde_json::Value = r.json().await.expect("JSON");
    v["ptn_cd"]
        .as_str()
        .unwrap_or_else(|| panic!("registration failed: {v}"))
        .to_string()
}

/// The member logs in (the SDK's callback: `POST /ifree/login {ptn_token, state}`): 200 when
/// verigate found and opened the member's record.
async fn ifree_login(env: &Env, ptn_cd: &str) -> u16 {
    let mut b = env.browser();
    let r = b.get_html("/.verigate/ifree/start?return_to=%2Fclub").await;
    assert_eq!(r.status(), 200, "ifree start page");
    let flow = flow_json(&r.text().await.expect("body"));
    let token = env.ifree.issue_ptn_token(ptn_cd);
    let req = b
        .client
        .post(b.url("/.verigate/ifree/login"))
        .header("accept", "application/json")
        .json(&serde_json::json!({ "ptn_token": token, "state": flow["state"] }));
    b.send(req).await.status().as_u16()
}

struct Rotated {
    /// The ifree member's login after the rotation.
    ifree_login: u16,
    /// The same person's signup after the rotation, verified again (sealed under the new key).
    second_signup: u16,
    /// Gated requests with the pre-rotation cookie while the rotation happened: (sent, 200s).
    during: (usize, usize),
}

/// Rotate the session keys (new key first, reload) under traffic: a person who signed up
/// before keeps using their old cookie during the rotation, then verifies again and tries to
/// sign up a second time. Then the old key is dropped (reload): the old cookie ends, the one
/// account does not.
async fn rotate_session_keys(explicit_hash_key: bool) -> Rotated {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("session-keys");
    std::fs::write(&keys, SESSION_KEY).expect("keys file");
    let mut routes = shop_routes();
    routes.insert(4, Route::prefix("/club").providers(["ifree"]));
    let mut proxy = Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::ifree())
        .routes(routes)
        .store(Storage::sqlite(dir.path().join("state.db")))
        .reloadable()
        .session_set("keys_env", serde_json::Value::Null)
        .session_set("keys_file", serde_json::json!(keys.display().to_string()));
    if !explicit_hash_key {
        proxy = proxy.session_set("hash_key_env", serde_json::Value::Null);
    }
    let env = Env::with(proxy).await;

    let ptn_cd = ifree_member(&env).await;
    assert_eq!(
        ifree_login(&env, &ptn_cd).await,
        200,
        "member before rotation"
    );
    let mut before = verified(&env).await;
    assert_eq!(before.post("/signup", "user=x").await.status(), 201);

    // Traffic with the old cookie across the reload.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let (mut b, sent, ok, stop) = (before.clone(), sent.clone(), ok.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let s = b.send(b.client.get(b.url("/member/page"))).await.status();
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if s == 200 {
                    ok.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        })
    };
    let wait_for = |n: usize| {
        let sent = sent.clone();
        async move {
            let start = Instant::now();
            while sent.load(std::sync::atomic::Ordering::SeqCst) < n {
                assert!(start.elapsed() < BOUND, "traffic stalled");
                tokio::task::yield_now().await;
            }
        }
    };
    wait_for(5).await;
    std::fs::write(&keys, format!("{NEW_SESSION_KEY},{SESSION_KEY}")).expect("rotate");
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let after_reload = sent.load(std::sync::atomic::Ordering::SeqCst);
    wait_for(after_reload + 5).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    traffic.await.expect("traffic task");
    let during = (
        sent.load(std::sync::atomic::Ordering::SeqCst),
        ok.load(std::sync::atomic::Ordering::SeqCst),
    );

    // The old cookie still opens (sessions intact) ...
    let r = before
        .send(before.client.get(before.url("/member/x")))
        .await;
    assert_eq!(r.status(), 200, "old session after rotation");
    // ... and the same person, verified again under the new key, tries a second account.
    let mut again = verified(&env).await;
    let second_signup = again.post("/signup", "user=y").await.status().as_u16();
    let ifree_login = ifree_login(&env, &ptn_cd).await;

    // Drop the old key: the old cookie ends; the new one and the record stay.
    std::fs::write(&keys, NEW_SESSION_KEY).expect("drop the old key");
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    let r = before
        .send(before.client.get(before.url("/member/x")))
        .await;
    assert_ne!(
        r.status(),
        200,
        "a cookie sealed under a dropped key must not open"
    );
    let r = again.send(again.client.get(again.url("/member/x"))).await;
    assert_eq!(r.status(), 200, "new session after dropping the old key");
    if explicit_hash_key {
        assert_eq!(again.post("/signup", "user=z").await.status(), 409);
    }
    Rotated {
        ifree_login,
        second_signup,
        during,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_key_rotation_under_traffic_keeps_sessions_one_account_and_ifree_members() {
    let r = rotate_session_keys(true).await;
    assert_eq!(
        r.during.0, r.during.1,
        "gated requests refused during rotation"
    );
    assert_eq!(r.second_signup, 409, "one-account record lost in rotation");
    assert_eq!(r.ifree_login, 200, "ifree member lost in rotation");
}

/// Why `check` warns: with the hash key derived from the session keys, the same rotation
/// lets the person open a second account and loses the ifree member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_key_rotation_without_a_hash_key_loses_one_account_and_ifree_members() {
    let r = rotate_session_keys(false).await;
    assert_eq!(
        r.during.0, r.during.1,
        "gated requests refused during rotation"
    );
    assert_eq!(
        r.second_signup, 201,
        "the derived hash key changed with the session keys"
    );
    assert_ne!(
        r.ifree_login, 200,
        "the member's record is keyed and sealed under the old hash key"
    );
}
