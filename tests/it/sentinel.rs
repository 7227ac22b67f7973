//! Redis behind Sentinel, with a failover under traffic: a master, two replicas and three
//! sentinels of the test's own (Debian's `redis-server` and `redis-sentinel`, each on a loopback
//! port chosen at run time and in a temp dir of its own). Signups, verifications and replays
//! run while the master is killed (SIGKILL). Asserted: no person reaches the app's signup twice
//! (0 second accounts), no replayed result is accepted (0), every signup committed before the
//! kill is still one on the new master (`409`), and service resumes by itself within a bound.
//! The outage (kill to the first verification accepted that started after it) is printed.
//!
//! Two replicas, not one: verigate waits for one replica's acknowledgement (`store.wait`, by
//! default with sentinels), and after a failover with one replica the new master would have
//! none, so decisions would fail closed until the old master came back as a replica.

use crate::common::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the cluster may take to form, and service to resume after the kill.
const BOUND: Duration = Duration::from_secs(60);
const MASTER: &str = "vg";
/// Traffic workers (each a person at a time).
const WORKERS: usize = 4;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One Redis process (server or sentinel) in a temp dir of its own; killed when dropped.
struct Node {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn server(replica_of: Option<u16>) -> Option<Node> {
        let dir = tempfile::tempdir().ok()?;
        let port = free_port();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            // A replica (re)synced after the failover gets its copy at once.
            .args([
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
            ])
            .arg("--dir")
            .arg(dir.path());
        if let Some(m) = replica_of {
            cmd.args(["--replicaof", "127.0.0.1", &m.to_string()]);
        }
        let child = cmd.stdout(Stdio::null()).spawn().ok()?;
        Some(Node {
            child,
            port,
            _dir: dir,
        })
    }

    fn sentinel(master_port: u16) -> Option<Node> {
        let dir = tempfile::tempdir().ok()?;
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        // Sentinel rewrites its config file: it lives in the node's own dir.
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 4000\n\
                 sentinel parallel-syncs {MASTER} 2\n",
                dir = dir.path().display()
            ),
        )
        .ok()?;
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        Some(Node {
            child,
            port,
            _dir: dir,
        })
    }

    /// One command on a fresh connection (bounded), for setting up and watching.
    fn query<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?;
        let mut c = client.get_connection_with_timeout(Duration::from_secs(1))?;
        c.set_read_timeout(Some(Duration::from_secs(1)))?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
    }
}

struct Cluster {
    master: Option<Node>,
    /// Kept alive (killed when the cluster is dropped).
    _replicas: Vec<Node>,
    sentinels: Vec<Node>,
}

impl Cluster {
    fn installed() -> bool {
        ["redis-server", "redis-sentinel"].iter().all(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    fn start() -> Cluster {
        let master = Node::server(None).expect("start the master");
        let replicas = (0..2)
            .map(|_| Node::server(Some(master.port)).expect("start a replica"))
            .collect();
        let sentinels = (0..3)
            .map(|_| Node::sentinel(master.port).expect("start a sentinel"))
            .collect();
        let c = Cluster {
            master: Some(master),
            _replicas: replicas,
            sentinels,
        };
        c.until("the cluster forms", || c.formed());
        c
    }

    /// Poll `ok` until it holds, within `BOUND` (pace of the polling only, no synchronisation).
    fn until(&self, what: &str, ok: impl Fn() -> bool) {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < BOUND, "{what}: not within {BOUND:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Both replicas in sync with the master, and every sentinel knows both replicas, as
    /// promotable (a replica whose INFO the sentinel has not had lately, or whose link to the
    /// master it has not seen up, is no candidate: `SENTINEL FAILOVER` then answers
    /// NOGOODSLAVE), and the two other sentinels (a failover needs their votes).
    fn formed(&self) -> bool {
        let Some(m) = &self.master else { return false };
        let info: String = m.query(&["INFO", "replication"]).unwrap_or_default();
        let online = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .count();
        online == 2
            && self.sentinels.iter().all(|s| {
                let replicas: Vec<HashMap<String, String>> = s
                    .query(&["SENTINEL", "REPLICAS", MASTER])
                    .unwrap_or_default();
                let promotable = |r: &HashMap<String, String>| {
                    let field = |k: &str| r.get(k).map(String::as_str);
                    field("flags") == Some("slave")
                        && field("master-link-status") == Some("ok")
                        && field("info-refresh")
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_some_and(|ms| ms < 5_000)
                };
                let others: Vec<redis::Value> = s
                    .query(&["SENTINEL", "SENTINELS", MASTER])
                    .unwrap_or_default();
                replicas.len() == 2 && replicas.iter().all(promotable) && others.len() == 2
            })
    }

    fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }
}

/// The app: counts the signups that reach it, by the verified name verigate forwards.
async fn counting_app() -> (std::net::SocketAddr, Arc<Mutex<HashMap<String, usize>>>) {
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    async fn signup(
        State(c): State<Arc<Mutex<HashMap<String, usize>>>>,
        h: HeaderMap,
    ) -> StatusCode {
        let name = h
            .get("x-verified-name")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)")
            .to_string();
        *c.lock().unwrap().entry(name).or_default() += 1;
        StatusCode::CREATED
    }
    let app = axum::Router::new()
        .route("/signup", axum::routing::post(signup))
        .fallback(|| async { "ok" })
        .with_state(counts.clone());
    (spawn_router(app).await, counts)
}

/// A verification's return URL kept for replaying, with the browser state of its flow.
#[derive(Clone)]
struct Kept {
    location: String,
    attacker: Browser,
}

#[derive(Default)]
struct Log {
    /// (started, ended, accepted) per verification.
    verifications: Vec<(Instant, Instant, bool)>,
    /// Statuses of every answer, by what was asked.
    statuses: HashMap<(&'static str, u16), usize>,
    /// Replays verigate accepted (302 to the return address).
    replays_accepted: usize,
    kept: Vec<Kept>,
    /// People whose signup was answered 201 by the app through verigate.
    signed_up: Vec<Person>,
}

/// Verify `p` (redirect mode) through `env`: the return's status and, if accepted, what a
/// replay needs. A start page that fails (a store call of its own) counts as not accepted.
async fn verify(env: &Env, b: &mut Browser, p: &Person) -> (u16, Option<Kept>) {
    let r = b
        .get_html("/.verigate/iamport/start?return_to=%2Fsignup")
        .await;
    if r.status() != 200 {
        return (r.status().as_u16(), None);
    }
    let html = r.text().await.expect("start page");
    let flow = Flow {
        params: flow_json(&html),
        flow_cookie: b.jar.get("vg_flow").cloned().unwrap_or_default(),
    };
    let back = b.certify(env.sandbox, &flow, p, true).await;
    let location = back["location"].as_str().expect("location").to_string();
    let attacker = b.clone();
    let r = b.open_html(&location).await;
    let s = r.status().as_u16();
    (s, (s == 302).then_some(Kept { location, attacker }))
}

fn person(tag: &str) -> Person {
    Person::named(&format!("sentinel-{tag}"))
}

/// One person's round: verify, replay the result, sign up, sign up again in the same session,
/// and from a second browser verified as the same person.
async fn round(env: &Env, log: &Mutex<Log>, tag: &str) {
    let p = person(tag);
    let mut b = env.browser();
    let started = Instant::now();
    let (s, kept) = verify(env, &mut b, &p).await;
    let ended = Instant::now();
    {
        let mut l = log.lock().unwrap();
        l.verifications.push((started, ended, s == 302));
        *l.statuses.entry(("verify", s)).or_default() += 1;
    }
    let Some(kept) = kept else { return };
    let mut attacker = kept.attacker.clone();
    let replay = attacker.open_html(&kept.location).await.status().as_u16();
    let signup = b.post("/signup", "user=a").await.status().as_u16();
    let again = b.post("/signup", "user=b").await.status().as_u16();
    let mut other = env.browser();
    let (s2, _) = verify(env, &mut other, &p).await;
    let second = if s2 == 302 {
        other.post("/signup", "user=c").await.status().as_u16()
    } else {
        0
    };
    let mut l = log.lock().unwrap();
    *l.statuses.entry(("replay", replay)).or_default() += 1;
    if replay == 302 {
        l.replays_accepted += 1;
    }
    *l.statuses.entry(("signup", signup)).or_default() += 1;
    *l.statuses.entry(("signup again", again)).or_default() += 1;
    *l.statuses
        .entry(("second browser signup", second))
        .or_default() += 1;
    if signup == 201 {
        l.signed_up.push(p);
    }
    l.kept.push(kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_killed_under_traffic_loses_no_decision_and_service_resumes() {
    if !Cluster::installed() {
        skip::missing(
            "redis-server and redis-sentinel",
            "apt-get install redis-server redis-sentinel (.ci/run does)",
        );
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("cluster");
    let (app, counts) = counting_app().await;
    let env = Env::with(
        Setup::new(
            Proxy::shop()
                .store(Storage::sentinel(MASTER, cluster.sentinel_addrs()).prefix("sentinel:")),
        )
        .upstream(Upstream::At(app)),
    )
    .await;
    let env = Arc::new(env);
    let log = Arc::new(Mutex::new(Log::default()));

    // Before the kill: people sign up, their results kept for replaying after the failover.
    for i in 0..6 {
        round(&env, &log, &format!("before-{i}")).await;
    }
    let before = log.lock().unwrap().signed_up.clone();
    assert_eq!(
        before.len(),
        6,
        "signups before the kill: {:?}",
        log.lock().unwrap().statuses
    );

    // Traffic through the kill.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (env, log, stop) = (env.clone(), log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    round(&env, &log, &format!("w{w}-{n}")).await;
                    n += 1;
                }
            })
        })
        .collect();
    let done = |log: &Mutex<Log>| log.lock().unwrap().verifications.len();
    let start = Instant::now();
    let at_kill = loop {
        let n = done(&log);
        if n >= 6 + WORKERS * 2 {
            break n;
        }
        assert!(start.elapsed() < BOUND, "traffic stalled before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let old_master = cluster.master.take().expect("master");
    let old_port = old_master.port;
    let killed = Instant::now();
    drop(old_master); // SIGKILL, then reaped
    eprintln!("sentinel: master killed after {at_kill} verifications");

    // Service resumes: a verification that started after the kill is accepted.
    let resumed = loop {
        let first = log
            .lock()
            .unwrap()
            .verifications
            .iter()
            .filter(|(s, _, ok)| *ok && *s > killed)
            .map(|(_, e, _)| *e)
            .min();
        if let Some(e) = first {
            break e;
        }
        assert!(
            killed.elapsed() < BOUND,
            "service did not resume within {BOUND:?}: {:?}",
            log.lock().unwrap().statuses
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let outage = resumed.duration_since(killed);
    // And goes on: as many rounds again after it.
    let after_resume = done(&log);
    let start = Instant::now();
    while done(&log) < after_resume + WORKERS * 2 {
        assert!(
            start.elapsed() < BOUND,
            "traffic stalled after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }

    // The sentinels moved the master to a replica.
    let new_master: Vec<String> = cluster.sentinels[0]
        .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
        .expect("sentinel answers");
    assert_ne!(new_master[1], old_port.to_string(), "no failover happened");

    // Every result accepted, before or during the failover, replayed now: none accepted.
    let kept = log.lock().unwrap().kept.clone();
    let mut late_replays_accepted = 0;
    for k in &kept {
        let mut a = k.attacker.clone();
        if a.open_html(&k.location).await.status() == 302 {
            late_replays_accepted += 1;
        }
    }
    // Everyone who signed up before the kill is still signed up on the new master.
    for p in &before {
        let mut b = env.browser();
        let (s, _) = verify(&env, &mut b, p).await;
        assert_eq!(s, 302, "verification after the failover");
        assert_eq!(
            b.post("/signup", "user=d").await.status(),
            409,
            "{}: signed up before the kill, not a one-account record after the failover",
            p.name
        );
    }

    let l = log.lock().unwrap();
    let counts = counts.lock().unwrap();
    let second_accounts = counts.values().filter(|n| **n > 1).count();
    let signups_during = l.signed_up.len() - before.len();
    eprintln!(
        "sentinel failover: outage {:.2} s (kill to the first accepted verification started \
         after it); {} verifications, {} signups after the first 6, {} results replayed late; \
         statuses {:?}",
        outage.as_secs_f64(),
        l.verifications.len(),
        signups_during,
        kept.len(),
        l.statuses
    );
    assert_eq!(second_accounts, 0, "second accounts: {counts:?}");
    assert_eq!(l.replays_accepted, 0, "replays accepted during the traffic");
    assert_eq!(
        late_replays_accepted, 0,
        "replays accepted after the failover"
    );
    assert!(
        signups_during > 0,
        "no signup after the kill: {:?}",
        l.statuses
    );
    drop(cluster);
}

/// `store.wait` not met (a Redis with no replica): every decision that must survive a failover
/// fails closed, and none is left half done where that would refuse the person's next try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_not_acknowledged_fails_closed() {
    use verigate::store::{self, Person as StorePerson};
    use verigate::store::{RedisConfig, RedisTarget, RedisWait, StoreConfig};
    if !Cluster::installed() {
        skip::missing(
            "redis-server and redis-sentinel",
            "apt-get install redis-server redis-sentinel (.ci/run does)",
        );
        return;
    }
    let node = Node::server(None).expect("start redis-server");
    let start = Instant::now();
    while node.query::<String>(&["PING"]).is_err() {
        assert!(start.elapsed() < BOUND, "redis-server did not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("redis://127.0.0.1:{}", node.port);
    let s = store::open(&StoreConfig::Redis(RedisConfig {
        target: RedisTarget::Url(url.clone()),
        prefix: "w:".into(),
        wait: Some(RedisWait {
            replicas: 1,
            timeout: Duration::from_millis(100),
        }),
    }))
    .expect("open");
    let ttl = Duration::from_secs(60);

    // A result: not accepted; the guard it set stays, so it is refused from now on.
    assert!(s.claim_once("r1", ttl).await.is_err(), "claim accepted");
    assert!(
        !s.claim_once("r1", ttl).await.expect("read"),
        "replay accepted"
    );
    // A reservation: refused, and undone (the next try is not "in progress" for a minute).
    let p = StorePerson {
        ci_hash: "ci1",
        unique_in_site: "",
    };
    assert!(s.reserve_account("signup", p, ttl).await.is_err());
    let left: Option<String> = node.query(&["GET", "w:acct:signup:ci1"]).expect("GET");
    assert_eq!(left, None, "unacknowledged reservation left behind");
    // A kept post (kept without waiting): its take is not delivered, and it is gone.
    assert!(s.keep_request("k1", b"post", ttl, 10).await.expect("keep"));
    assert!(s.take_request("k1").await.is_err(), "take delivered");
    assert_eq!(s.take_request("k1").await.expect("take"), None);
    // A revocation.
    assert!(s.revoke("sid", i64::MAX / 2).await.is_err());
    // Reads and writes that do not wait still work.
    s.ping().await.expect("ping");
    s.probe_write().await.expect("probe");
    // A script cache emptied (a new master's is): the script is loaded again on NOSCRIPT.
    let loads = |node: &Node| -> u64 {
        let info: String = node.query(&["INFO", "commandstats"]).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_script|load:calls="))
            .and_then(|r| r.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(s.keep_request("k2", b"post", ttl, 10).await.expect("keep"));
    let () = node.query(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");
    let before = loads(&node);
    assert!(s
        .keep_request("k3", b"post", ttl, 10)
        .await
        .expect("keep after a flush"));
    assert_eq!(loads(&node), before + 1, "the script was not loaded again");

    // Through the proxy: a verification answers 503, the app sees nothing.
    let env =
        Env::with(Proxy::shop().store(Storage::redis(&url).prefix("wp:").wait(1, "100ms"))).await;
    let mut b = env.browser();
    let (status, _) = verify(&env, &mut b, &person("unacknowledged")).await;
    assert_eq!(
        status, 503,
        "verification with no replica to acknowledge it"
    );
    assert_eq!(env.hits(), 0);
}

/// A failover with the old master alive (`SENTINEL FAILOVER`): the store follows the master to
/// the promoted replica by itself, and what was decided before stays decided. Until the
/// sentinels turn the old master into a replica it still says it is a master and keeps the
/// store's connection: decisions made there meanwhile are counted and printed (not covered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failover_is_followed_to_the_new_master() {
    use verigate::store;
    use verigate::store::{RedisConfig, RedisTarget, SentinelConfig, StoreConfig};
    if !Cluster::installed() {
        skip::missing(
            "redis-server and redis-sentinel",
            "apt-get install redis-server redis-sentinel (.ci/run does)",
        );
        return;
    }
    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("cluster");
    let old_port = cluster.master.as_ref().expect("master").port;
    let s = store::open(&StoreConfig::Redis(RedisConfig {
        target: RedisTarget::Sentinel(SentinelConfig {
            master: MASTER.into(),
            addrs: cluster
                .sentinels
                .iter()
                .map(|n| ("127.0.0.1".to_string(), n.port))
                .collect(),
            password: None,
            redis_password: None,
            db: 0,
        }),
        prefix: "mf:".into(),
        wait: Some(verigate::store::RedisWait {
            replicas: 1,
            timeout: Duration::from_millis(500),
        }),
    }))
    .expect("open");
    let ttl = Duration::from_secs(600);
    assert!(s.claim_once("before", ttl).await.expect("claim"));

    let () = cluster.sentinels[0]
        .query(&["SENTINEL", "FAILOVER", MASTER])
        .expect("SENTINEL FAILOVER");
    // The sentinels move the master (a poll with a bound; the failover takes seconds) ...
    let start = Instant::now();
    let new_port = loop {
        let new: Vec<String> = cluster.sentinels[0]
            .query(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
            .expect("sentinel answers");
        if new[1] != old_port.to_string() {
            break new[1].clone();
        }
        assert!(start.elapsed() < BOUND, "no failover happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // ... and the store follows: until a claim accepted is on the new master. Claims accepted
    // in between on the old master (it still says it is a master, and a replica not yet moved
    // can acknowledge them) are counted: the guarantee does not cover them
    // (docs/guide/redis.md, "a failover with the old master alive").
    let new_master = cluster
        ._replicas
        .iter()
        .find(|n| n.port.to_string() == new_port)
        .expect("a replica was promoted");
    let (mut refused, mut elsewhere, mut n) = (0, 0, 0);
    loop {
        n += 1;
        let key = format!("after-{n}");
        match s.claim_once(&key, ttl).await {
            Ok(true) => {
                let there: Option<String> = new_master
                    .query(&["GET", &format!("mf:used:{key}")])
                    .expect("GET");
                if there.is_some() {
                    break;
                }
                elsewhere += 1;
            }
            Ok(false) => panic!("a fresh key was refused as used"),
            Err(_) => refused += 1,
        }
        assert!(
            start.elapsed() < BOUND,
            "the store did not follow the failover ({refused} refused, {elsewhere} elsewhere)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Decided before the failover: still decided.
    assert!(
        !s.claim_once("before", ttl).await.expect("claim"),
        "replay accepted"
    );
    eprintln!(
        "sentinel manual failover: followed in {:.2} s from SENTINEL FAILOVER ({refused} calls refused, {elsewhere} claims accepted on the old master \
         meanwhile)",
        start.elapsed().as_secs_f64()
    );
}
