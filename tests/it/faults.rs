//! Faults an instance must survive or report: a store that cannot write is not ready (its
//! `/readyz` answers 503 naming the store) and comes back by itself when the fault clears.
//!
//! The SQLite test mounts a small tmpfs (needs root and `mount`; it says so and skips
//! elsewhere, fails under `CI=true`), fills it and holds its lock from
//! another connection. The Redis test starts its own `redis-server` on a free loopback port
//! and makes it full (`maxmemory`, `noeviction`) and then a read-only replica.

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
