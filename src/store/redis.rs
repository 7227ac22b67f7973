//! Redis store, for several verigate instances behind one load balancer. Every decision is one
//! atomic Redis command or script, so a result accepted on one instance is a replay on all, and
//! of concurrent signups of one person exactly one gets the reservation. Connects lazily and
//! reconnects by itself; every call is bounded by a timeout, and failure means "unavailable"
//! (gated requests that need the store fail closed).
//!
//! Behind Sentinel the master is asked of the sentinels; a fault that may mean a failover (the
//! connection broke or timed out, `READONLY`, ...) drops the connection, and the next call asks
//! again. Decisions that must survive a failover (`claim_once`, reservations and commits, the
//! take of a kept request, revocations) are sent with `WAIT replicas timeout` on the same
//! connection, in one pipeline: too few acknowledgements is an error (the caller fails
//! closed), never an accept.

use super::{
    looks_hashed, now_ms, ConsentRecord, KeyExchange, Log, MemberRecord, Person, PersonRef,
    Registration, Reservation, Retention, Revocation, Store, StoreError, Token,
};
use crate::store::{RedisConfig, RedisTarget, RedisWait, SentinelConfig};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections for decisions that `WAIT`: a `WAIT` holds its connection until the replicas
/// answer (or its timeout), so these are apart from the one every other call uses, and a few,
/// so that one slow `WAIT` does not hold up the next decision.
const DURABLE_LINKS: usize = 4;

/// Where the master is.
enum Target {
    Url(redis::Client),
    Sentinel {
        sentinel: tokio::sync::Mutex<Sentinel>,
        master: String,
        node: SentinelNodeConnectionInfo,
    },
}

impl Target {
    /// A client for the master now. With sentinels: the first sentinel that answers names it,
    /// and the named server must say it is a master (`ROLE`).
    async fn client(&self) -> Result<redis::Client, redis::RedisError> {
        match self {
            Target::Url(c) => Ok(c.clone()),
            Target::Sentinel {
                sentinel,
                master,
                node,
            } => {
                sentinel
                    .lock()
                    .await
                    .async_master_for(master, Some(node))
                    .await
            }
        }
    }

    fn follows_failover(&self) -> bool {
        matches!(self, Target::Sentinel { .. })
    }
}

/// One connection to the master, made on first use. Numbered, so that a fault seen on one
/// drops that one only, never a newer one another call made meanwhile.
#[derive(Default)]
struct Link {
    slot: tokio::sync::Mutex<Option<(u64, ConnectionManager)>>,
    made: AtomicU64,
}

/// A fault after which the master may be another server: the connection broke, refused or
/// timed out, or the server is a replica now (`READONLY`), loading, or says its master is down.
fn may_be_failover(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.kind(),
            redis::ErrorKind::ReadOnly
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::TryAgain
        )
}

pub struct RedisStore {
    target: Target,
    prefix: String,
    wait: Option<RedisWait>,
    main: Link,
    durable: [Link; DURABLE_LINKS],
    next_durable: AtomicUsize,
}

fn err(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {}", e.category()))
}

/// One argument of a script, as Redis receives it.
fn arg(x: impl redis::ToRedisArgs) -> Vec<u8> {
    x.to_redis_args().concat()
}

fn timed_out() -> StoreError {
    StoreError::Unavailable("redis: call timed out".into())
}

/// Release only a reservation, never a committed record.
const RELEASE: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 9) == 'reserved|' then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// Commit only what this request reserved (a crashed reservation may have been retaken). A
/// committed record is `done|{per-site id's hash}|{created ms}|{last use ms}`.
const COMMIT: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, 9) == 'reserved|' then
  redis.call('SET', KEYS[1], 'done|' .. string.sub(v, 10) .. '|' .. ARGV[1] .. '|' .. ARGV[1])
  return 1
end
return 0
"#;

/// Take a kept request: read and delete in one script, so exactly one caller gets the value.
const TAKE: &str = r#"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return v
"#;

fn sentinel_target(s: &SentinelConfig) -> Result<Target, StoreError> {
    let open = |e: redis::RedisError| StoreError::Open(format!("redis sentinel: {}", e.category()));
    let infos = s
        .addrs
        .iter()
        .map(|(host, port)| redis::ConnectionInfo {
            addr: redis::ConnectionAddr::Tcp(host.clone(), *port),
            redis: redis::RedisConnectionInfo {
                password: s.password.clone(),
                ..Default::default()
            },
        })
        .collect::<Vec<_>>();
    let sentinel = Sentinel::build(infos).map_err(open)?;
    let node = SentinelNodeConnectionInfo {
        tls_mode: None,
        redis_connection_info: Some(redis::RedisConnectionInfo {
            db: s.db,
            password: s.redis_password.clone(),
            ..Default::default()
        }),
    };
    Ok(Target::Sentinel {
        sentinel: tokio::sync::Mutex::new(sentinel),
        master: s.master.clone(),
        node,
    })
}

/// Replace a value only while it is still `ARGV[1]` (keeping its TTL): a record another
/// instance changed or deleted meanwhile is left as it is.
const SWAP: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"#;

/// The version of the key formats this release writes (`{prefix}schema`): 0 (no key) up to
/// 6d07646; 2: account values carry their times, per-site ids are keyed hashes, members their
/// owner and times; 3: guardian consent records (`consent:{id}`, indexed by child and by time:
/// new keys only, so a store of 2 is at 3 without a scan). The number follows SQLite's
/// `user_version`.
pub const SCHEMA_VERSION: i64 = 3;

/// Keep a consent record under a new id only: the record (JSON), its id in the child's index
/// and in the index by time (the purge's), in one step. 0: the id exists (nothing changed).
const CONSENT_PUT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"#;

/// Remove a child's consent records in one step (a record kept meanwhile by another instance
/// is either in the index read here, and goes, or kept after, under an index made anew).
/// `ARGV[1]`: the record key's head (`{prefix}consent:`). Answers how many records went.
const CONSENT_FORGET: &str = r#"
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local n = 0
for _, id in ipairs(ids) do
  n = n + redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('DEL', KEYS[1])
return n
"#;

/// Remove up to `ARGV[3]` consent records made at or before `ARGV[2]` (UNIX ms), from the
/// index by time `KEYS[1]`, with their ids in their child's index. `ARGV[1]`: the key prefix.
/// Answers how many records went (an index entry whose record is gone already counts none).
const CONSENT_PURGE: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, id in ipairs(ids) do
  local k = ARGV[1] .. 'consent:' .. id
  local v = redis.call('GET', k)
  if v then
    local ok, rec = pcall(cjson.decode, v)
    if ok and type(rec) == 'table' and type(rec['child']) == 'string' then
      redis.call('ZREM', ARGV[1] .. 'consents:child:' .. rec['child'], id)
    end
    n = n + redis.call('DEL', k)
  end
  redis.call('ZREM', KEYS[1], id)
end
return {n, #ids}
"#;

/// How many consent records one purge step takes (a script holds Redis while it runs).
const CONSENT_PURGE_BATCH: usize = 500;

/// An account value's fields: state, the per-site id as kept, created and last used (UNIX ms;
/// absent in values of before [`SCHEMA_VERSION`] 2).
fn account_fields(v: &str) -> (&str, &str, Option<i64>, Option<i64>) {
    let mut it = v.split('|');
    let state = it.next().unwrap_or("");
    let uis = it.next().unwrap_or("");
    let created = it.next().and_then(|t| t.parse().ok());
    let used = it.next().and_then(|t| t.parse().ok());
    (state, uis, created, used)
}

impl RedisStore {
    pub fn new(cfg: &RedisConfig) -> Result<Self, StoreError> {
        let target = match &cfg.target {
            RedisTarget::Url(url) => Target::Url(
                redis::Client::open(url.as_str())
                    .map_err(|e| StoreError::Open(format!("redis url: {}", e.category())))?,
            ),
            RedisTarget::Sentinel(s) => sentinel_target(s)?,
        };
        Ok(RedisStore {
            target,
            prefix: cfg.prefix.clone(),
            wait: cfg.wait,
            main: Link::default(),
            durable: Default::default(),
            next_durable: AtomicUsize::new(0),
        })
    }

    /// The connection of `link`, made on first use. One bound covers getting it, waiting for
    /// another call's attempt included: while Redis hangs, concurrent calls must not queue
    /// behind each other's connection attempts (each would add its own timeout to the next
    /// one's).
    async fn conn(&self, link: &Link) -> Result<(u64, ConnectionManager), StoreError> {
        tokio::time::timeout(CALL_TIMEOUT, async {
            let mut slot = link.slot.lock().await;
            if let Some((n, c)) = slot.as_ref() {
                return Ok((*n, c.clone()));
            }
            let client = self.target.client().await.map_err(err)?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(CALL_TIMEOUT)
                .set_response_timeout(CALL_TIMEOUT)
                .set_number_of_retries(1);
            let c = ConnectionManager::new_with_config(client, cfg)
                .await
                .map_err(err)?;
            let n = link.made.fetch_add(1, Ordering::Relaxed);
            *slot = Some((n, c.clone()));
            Ok((n, c))
        })
        .await
        .map_err(|_| StoreError::Unavailable("redis: connect timed out".into()))?
    }

    /// After a fault that may mean a failover, drop connection `n` of `link` (behind
    /// sentinels: the next call asks them for the master). One URL: the connection manager
    /// reconnects to it by itself.
    fn drop_conn(&self, link: &Link, n: u64) {
        if !self.target.follows_failover() {
            return;
        }
        // Locked: another call is making a new connection right now.
        if let Ok(mut slot) = link.slot.try_lock() {
            if slot.as_ref().is_some_and(|(m, _)| *m == n) {
                *slot = None;
            }
        }
    }

    /// Run `f` on `link`'s connection, bounded by the call timeout; Redis's own answer is
    /// left to the caller (the outer error is the connection's or the timeout's).
    async fn on_raw<T, F, Fut>(
        &self,
        link: &Link,
        f: F,
    ) -> Result<redis::RedisResult<T>, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (n, c) = self.conn(link).await?;
        match tokio::time::timeout(CALL_TIMEOUT, f(c)).await {
            Err(_) => {
                self.drop_conn(link, n);
                Err(timed_out())
            }
            Ok(r) => {
                if let Err(e) = &r {
                    if may_be_failover(e) {
                        self.drop_conn(link, n);
                    }
                }
                Ok(r)
            }
        }
    }

    async fn on<T, F, Fut>(&self, link: &Link, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.on_raw(link, f).await?.map_err(err)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        self.on(
            &self.main,
            |mut c| async move { cmd.query_async(&mut c).await },
        )
        .await
    }

    /// A script by its SHA1 (`EVALSHA`); on `NOSCRIPT` (a new master after a failover, a
    /// restarted Redis, `SCRIPT FLUSH`) `redis::Script` loads it and runs it again.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        src: &'static str,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> Result<T, StoreError> {
        self.on(&self.main, |mut c| async move {
            let script = redis::Script::new(src);
            let mut inv = script.prepare_invoke();
            for k in keys {
                inv.key(k);
            }
            for a in args {
                inv.arg(a);
            }
            inv.invoke_async(&mut c).await
        })
        .await
    }

    /// A decision that must survive a failover: `cmd`, then (when configured) `WAIT` for the
    /// replicas in the same pipeline on one connection (so the `WAIT` counts this command's
    /// write, never a reconnected connection's nothing). When `wrote` says the command changed
    /// something and fewer replicas than configured acknowledged it in time, the answer is an
    /// error: the caller fails closed.
    async fn durable<T: redis::FromRedisValue>(
        &self,
        cmd: redis::Cmd,
        wrote: impl Fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let (v, acked) = self.durable_acked(cmd).await?;
        if wrote(&v) {
            acked?;
        }
        Ok(v)
    }

    /// `cmd` and its `WAIT`: Redis's answer, and whether the replicas acknowledged it (the
    /// error to answer when they did not). Without `wait`, always acknowledged.
    async fn durable_acked<T: redis::FromRedisValue>(
        &self,
        cmd: redis::Cmd,
    ) -> Result<(T, Result<(), StoreError>), StoreError> {
        let Some(wait) = self.wait else {
            return Ok((self.run(cmd).await?, Ok(())));
        };
        let i = self.next_durable.fetch_add(1, Ordering::Relaxed) % DURABLE_LINKS;
        let (v, acked): (T, i64) = self
            .on(&self.durable[i], |mut c| async move {
                redis::pipe()
                    .add_command(cmd)
                    .cmd("WAIT")
                    .arg(wait.replicas)
                    .arg(wait.timeout.as_millis().max(1) as u64)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let ok = if acked >= i64::from(wait.replicas) {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!(
                "redis: not acknowledged by {} replica(s) within {} ms ({acked} did)",
                wait.replicas,
                wait.timeout.as_millis()
            )))
        };
        Ok((v, ok))
    }

    /// The sorted set of revoked sessions: members `id|until`, scored by the UNIX ms of the
    /// revocation.
    fn revoked_set(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// The sorted set of pending members, scored by the UNIX ms their key exchange expires.
    fn pending_set(&self) -> String {
        format!("{}members:pending", self.prefix)
    }

    /// The sorted set of live kept requests, scored by the UNIX ms each expires.
    fn kept_set(&self) -> String {
        format!("{}kept", self.prefix)
    }

    fn kept_key(&self, id: &str) -> String {
        format!("{}kept:{id}", self.prefix)
    }

    /// A consent record: its JSON.
    fn consent_key(&self, id: &str) -> String {
        format!("{}consent:{id}", self.prefix)
    }

    /// A child's consent records: a sorted set of their ids, scored by the consent's UNIX ms.
    fn consent_child_set(&self, child: &str) -> String {
        format!("{}consents:child:{child}", self.prefix)
    }

    /// Every consent record's id, scored by the consent's UNIX ms (what the purge reads).
    fn consent_time_set(&self) -> String {
        format!("{}consents:by-time", self.prefix)
    }

    fn member_hash(&self, member: &str) -> String {
        format!("{}member:{member}", self.prefix)
    }

    fn account_key(&self, route: &str, ci_hash: &str) -> String {
        format!("{}acct:{route}:{ci_hash}", self.prefix)
    }

    /// Every account key with its value (SCAN: for the rare ops commands, not requests).
    async fn accounts(&self) -> Result<Vec<(String, String)>, StoreError> {
        let keys = self.scan(&format!("{}acct:*", self.prefix)).await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let mut get = redis::cmd("GET");
            get.arg(&k);
            let v: Option<String> = self.run(get).await?;
            if let Some(v) = v {
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// Every registered member's key with its owner and times (SCAN, as [`Self::accounts`]).
    async fn members(&self) -> Result<Vec<(String, MemberOwner)>, StoreError> {
        let keys = self.scan(&format!("{}member:*", self.prefix)).await?;
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let mut get = redis::cmd("HMGET");
            get.arg(&k)
                .arg("passcode")
                .arg("person")
                .arg("uis")
                .arg("created")
                .arg("used");
            let v: MemberFields = self.run(get).await?;
            if v.0.is_some() {
                out.push((
                    k,
                    MemberOwner {
                        person: v.1.unwrap_or_default(),
                        uis: v.2.unwrap_or_default(),
                        created: v.3,
                        used: v.4,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Keys matching `pattern` (SCAN).
    async fn scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(500);
            let (next, batch): (u64, Vec<String>) = self.run(scan).await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    async fn swap(&self, key: &str, old: &str, new: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .invoke(SWAP, vec![key.to_string()], vec![arg(old), arg(new)])
            .await?;
        Ok(n == 1)
    }

    /// Delete `key` only while its value is still `old`.
    async fn del_if(&self, key: &str, old: &str) -> Result<u64, StoreError> {
        const DEL_IF: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DEL_IF).arg(1).arg(key).arg(old);
        // An erasure must not come back with a failover: waits for the replicas.
        let n: i64 = self.durable(cmd, |n: &i64| *n > 0).await?;
        Ok(n as u64)
    }

    /// Delete `key`; an erasure must not come back with a failover: waits for the replicas.
    async fn del(&self, key: &str) -> Result<u64, StoreError> {
        let mut del = redis::cmd("DEL");
        del.arg(key);
        let d: i64 = self.durable(del, |d: &i64| *d > 0).await?;
        Ok(d as u64)
    }
}

/// A consent record as `consent:{id}` keeps it (JSON).
fn consent_from_json(v: &str) -> Result<ConsentRecord, StoreError> {
    serde_json::from_str(v)
        .map_err(|e| StoreError::Unavailable(format!("redis: unreadable consent record: {e}")))
}

/// A member hash's `passcode`, `person`, `uis`, `created`, `used`.
type MemberFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

/// A registered member's owner and times as the hash keeps them.
struct MemberOwner {
    person: String,
    uis: String,
    created: Option<i64>,
    used: Option<i64>,
}

#[async_trait]
impl Store for RedisStore {
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}used:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        // A result accepted here must stay used on a new master: waits for the replicas.
        let r: Option<String> = self.durable(cmd, Option::is_some).await?;
        Ok(r.is_some())
    }

    async fn reserve_account(
        &self,
        route: &str,
        person: Person<'_>,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let key = self.account_key(route, person.ci_hash);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&key)
            .arg(format!("reserved|{}", person.unique_in_site))
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64);
        // The reservation must be on a new master before the signup goes to the app: a
        // second signup of the person there is then in progress (or taken), never new.
        match self.durable_acked::<Option<String>>(cmd).await? {
            (Some(_), Ok(())) => return Ok(Reservation::Reserved),
            (Some(_), Err(e)) => {
                // Ours, and not acknowledged: undo it, so that the person's next attempt is
                // not "in progress" until it expires. (Only when it is known to be ours: after
                // a call that failed otherwise, the reservation there may be another
                // request's.)
                if let Err(undo) = self.release_account(route, person.ci_hash).await {
                    tracing::debug!(error = %undo, "could not undo an unacknowledged reservation");
                }
                return Err(e);
            }
            (None, _) => {}
        }
        let mut get = redis::cmd("GET");
        get.arg(&key);
        let v: Option<String> = self.run(get).await?;
        Ok(match v {
            Some(v) if v.starts_with("done|") => {
                // The record refused a second signup: the person is still about.
                let (_, uis, created, _) = account_fields(&v);
                let now = now_ms();
                let new = format!("done|{uis}|{}|{now}", created.unwrap_or(now));
                self.swap(&key, &v, &new).await?;
                Reservation::Taken
            }
            _ => Reservation::InProgress,
        })
    }

    async fn commit_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(COMMIT)
            .arg(1)
            .arg(self.account_key(route, ci_hash))
            .arg(now_ms());
        let _: i64 = self.durable(cmd, |n: &i64| *n == 1).await?;
        Ok(())
    }

    async fn release_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .invoke(RELEASE, vec![self.account_key(route, ci_hash)], vec![])
            .await?;
        Ok(())
    }

    async fn forget(&self, who: &PersonRef, route: Option<&str>) -> Result<u64, StoreError> {
        let head = format!("{}acct:", self.prefix);
        let mut n = 0;
        for (k, v) in self.accounts().await? {
            // `{prefix}acct:{route}:{ci_hash}`: route names hold no colon, nor do hashes.
            let Some((r, ci)) = k.strip_prefix(&head).and_then(|rest| rest.rsplit_once(':')) else {
                continue;
            };
            if route.is_some_and(|want| want != r) {
                continue;
            }
            let hit = match who {
                PersonRef::CiHash(h) => ci == h,
                PersonRef::UniqueInSite(u) => account_fields(&v).1 == u,
            };
            if hit {
                n += self.del(&k).await?;
            }
        }
        Ok(n)
    }

    async fn consent_put(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec)
            .map_err(|e| StoreError::Unavailable(format!("consent record: {e}")))?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CONSENT_PUT)
            .arg(3)
            .arg(self.consent_key(&rec.id))
            .arg(self.consent_child_set(&rec.child))
            .arg(self.consent_time_set())
            .arg(&rec.id)
            .arg(json)
            .arg(rec.at_ms);
        // The proof of a consent the app is told of must be on a new master: waits for the
        // replicas, and a record they did not acknowledge is an error (the caller refuses).
        let kept: i64 = self.durable(cmd, |n: &i64| *n == 1).await?;
        if kept == 1 {
            Ok(())
        } else {
            Err(StoreError::Unavailable("consent record id exists".into()))
        }
    }

    async fn consent_get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let mut get = redis::cmd("GET");
        get.arg(self.consent_key(id));
        let v: Option<String> = self.run(get).await?;
        v.map(|v| consent_from_json(&v)).transpose()
    }

    async fn consents_of(&self, child: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let mut ids = redis::cmd("ZRANGE");
        ids.arg(self.consent_child_set(child)).arg(0).arg(-1);
        let ids: Vec<String> = self.run(ids).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut get = redis::cmd("MGET");
        for id in &ids {
            get.arg(self.consent_key(id));
        }
        let values: Vec<Option<String>> = self.run(get).await?;
        // Oldest first (the index's score); a record gone between the two reads is left out.
        values
            .into_iter()
            .flatten()
            .map(|v| consent_from_json(&v))
            .collect()
    }

    async fn consent_forget(&self, child: &str) -> Result<u64, StoreError> {
        if child.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CONSENT_FORGET)
            .arg(2)
            .arg(self.consent_child_set(child))
            .arg(self.consent_time_set())
            .arg(self.consent_key(""));
        // An erasure must not come back with a failover: waits for the replicas.
        let n: i64 = self.durable(cmd, |n: &i64| *n > 0).await?;
        Ok(n as u64)
    }

    async fn forget_members(&self, who: &PersonRef) -> Result<u64, StoreError> {
        let mut n = 0;
        for (k, owner) in self.members().await? {
            let hit = match who {
                PersonRef::CiHash(h) => !h.is_empty() && owner.person == *h,
                PersonRef::UniqueInSite(u) => !u.is_empty() && owner.uis == *u,
            };
            if hit {
                n += self.del(&k).await?;
            }
        }
        Ok(n)
    }

    async fn member_used(&self, member: &str, owner: Person<'_>) -> Result<(), StoreError> {
        const USED: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'passcode') == 1 then
  redis.call('HSET', KEYS[1], 'used', ARGV[1], 'person', ARGV[2], 'uis', ARGV[3])
end
return 0
"#;
        let _: i64 = self
            .invoke(
                USED,
                vec![self.member_hash(member)],
                vec![arg(now_ms()), arg(owner.ci_hash), arg(owner.unique_in_site)],
            )
            .await?;
        Ok(())
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        Ok(self
            .accounts()
            .await?
            .iter()
            .filter(|(_, v)| v.starts_with("done|"))
            .count() as u64)
    }

    async fn member_key(
        &self,
        member: &str,
        sealed_key: &str,
        ttl: Duration,
        max_pending: u64,
    ) -> Result<KeyExchange, StoreError> {
        // Atomic. A pending member is a hash that expires by itself, listed in a sorted set
        // by expiry so that live pending members can be counted (and the expired dropped).
        const KEY: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'passcode') == 1 then return 'registered' end
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 'full'
end
redis.call('HSET', KEYS[1], 'key', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return 'issued'
"#;
        let answer: String = self
            .invoke(
                KEY,
                vec![self.member_hash(member), self.pending_set()],
                vec![
                    arg(member),
                    arg(sealed_key),
                    arg(now_ms()),
                    arg(ttl.as_millis().max(1) as u64),
                    arg(max_pending),
                ],
            )
            .await?;
        match answer.as_str() {
            "issued" => Ok(KeyExchange::Issued),
            "registered" => Ok(KeyExchange::Registered),
            "full" => Ok(KeyExchange::Full),
            other => Err(StoreError::Unavailable(format!(
                "redis: unexpected key exchange answer {other}"
            ))),
        }
    }

    async fn member_register(
        &self,
        member: &str,
        sealed_key: &str,
        sealed_passcode: &str,
        sealed_ubifill: Option<&str>,
        owner: Person<'_>,
    ) -> Result<Registration, StoreError> {
        // Atomic: only a pending member whose key is still the one the registration used.
        const REGISTER: &str = r#"
if redis.call('HEXISTS', KEYS[1], 'passcode') == 1 then return 'registered' end
local key = redis.call('HGET', KEYS[1], 'key')
if not key then return 'unknown' end
if key ~= ARGV[2] then return 'replaced' end
redis.call('HSET', KEYS[1], 'passcode', ARGV[3])
if ARGV[4] == '' then redis.call('HDEL', KEYS[1], 'ubifill') else redis.call('HSET', KEYS[1], 'ubifill', ARGV[4]) end
redis.call('HSET', KEYS[1], 'person', ARGV[5], 'uis', ARGV[6], 'created', ARGV[7], 'used', ARGV[7])
redis.call('PERSIST', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'ok'
"#;
        let answer: String = self
            .invoke(
                REGISTER,
                vec![self.member_hash(member), self.pending_set()],
                vec![
                    arg(member),
                    arg(sealed_key),
                    arg(sealed_passcode),
                    arg(sealed_ubifill.unwrap_or("")),
                    arg(owner.ci_hash),
                    arg(owner.unique_in_site),
                    arg(now_ms()),
                ],
            )
            .await?;
        match answer.as_str() {
            "ok" => Ok(Registration::Registered),
            "registered" => Ok(Registration::AlreadyRegistered),
            "unknown" => Ok(Registration::Unknown),
            "replaced" => Ok(Registration::KeyReplaced),
            other => Err(StoreError::Unavailable(format!(
                "redis: unexpected registration answer {other}"
            ))),
        }
    }

    async fn revoke(&self, id: &str, until: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let mut add = redis::cmd("ZADD");
        add.arg(self.revoked_set())
            .arg(now)
            .arg(format!("{id}|{until}"));
        // A logout must hold on a new master: waits for the replicas (a member added anew).
        let _: i64 = self.durable(add, |_| true).await?;
        // Revocations outlive no session: drop those older than the longest a session can be
        // (a week; sessions are hours) so the set stays small.
        let mut prune = redis::cmd("ZREMRANGEBYSCORE");
        prune
            .arg(self.revoked_set())
            .arg("-inf")
            .arg(now - 7 * 24 * 3600 * 1000);
        let _: i64 = self.run(prune).await?;
        Ok(())
    }

    async fn revocations(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.revoked_set())
            .arg(since_ms)
            .arg("+inf")
            .arg("WITHSCORES");
        let rows: Vec<(String, i64)> = self.run(cmd).await?;
        let now_s = now_ms() / 1000;
        Ok(rows
            .into_iter()
            .filter_map(|(m, at_ms)| {
                let (id, until) = m.rsplit_once('|')?;
                let until: i64 = until.parse().ok()?;
                (until > now_s).then(|| Revocation {
                    id: id.to_string(),
                    until,
                    at_ms,
                })
            })
            .collect())
    }

    async fn member_get(&self, member: &str) -> Result<Option<MemberRecord>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.member_hash(member));
        let m: std::collections::HashMap<String, String> = self.run(cmd).await?;
        Ok(m.get("key").map(|k| MemberRecord {
            key: k.clone(),
            passcode: m.get("passcode").cloned(),
            ubifill: m.get("ubifill").cloned(),
        }))
    }

    async fn keep_request(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
        max_live: u64,
    ) -> Result<bool, StoreError> {
        // Atomic: count the live ones (dropping the expired from the set), then keep. The
        // set's expiry times are on Redis's own clock, as the key's PX is: they agree, and
        // instances whose clocks differ count alike.
        const KEEP: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Gone from the set exactly when the key is gone: Redis expires a key once now > its time.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return 1
"#;
        let kept: i64 = self
            .invoke(
                KEEP,
                vec![self.kept_key(id), self.kept_set()],
                vec![
                    arg(id),
                    arg(sealed),
                    arg(ttl.as_millis().max(1) as u64),
                    arg(max_live),
                ],
            )
            .await?;
        Ok(kept == 1)
    }

    async fn take_token(
        &self,
        key: &str,
        burst: u32,
        per_minute: u32,
    ) -> Result<Token, StoreError> {
        // A token bucket in one hash: tokens left (`t`) at Redis's own time (`at`, ms), so
        // every instance counts on one clock. Answers 0 (taken) or the ms until a token.
        const BUCKET: &str = r#"
local burst = tonumber(ARGV[1])
local per_ms = tonumber(ARGV[2]) / 60000
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now_ms
if now_ms > at then tokens = math.min(burst, tokens + (now_ms - at) * per_ms) end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now_ms))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + 1000)
return wait
"#;
        let wait: i64 = self
            .invoke(
                BUCKET,
                vec![format!("{}limit:{key}", self.prefix)],
                vec![arg(burst), arg(per_minute)],
            )
            .await?;
        Ok(match wait {
            w if w <= 0 => Token::Taken,
            w => Token::Refused(Duration::from_millis(w as u64)),
        })
    }

    async fn take_request(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // Atomic (one script), so exactly one instance gets the value; and it must stay
        // taken on a new master, or a reload there would take it again: waits for the
        // replicas, and a take they did not acknowledge is not delivered.
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TAKE)
            .arg(2)
            .arg(self.kept_key(id))
            .arg(self.kept_set())
            .arg(id);
        self.durable(cmd, Option::<Vec<u8>>::is_some).await
    }

    async fn account_persons(&self, unique_in_site: &str) -> Result<Vec<String>, StoreError> {
        let head = format!("{}acct:", self.prefix);
        let mut out: Vec<String> = self
            .accounts()
            .await?
            .into_iter()
            .filter(|(_, v)| account_fields(v).1 == unique_in_site)
            .filter_map(|(k, _)| {
                // `{prefix}acct:{route}:{ci_hash}`: the hash is after the last colon.
                let rest = k.strip_prefix(&head)?;
                rest.rsplit_once(':').map(|(_, ci)| ci.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn mark_rejoin(&self, id: &str, at_ms: i64, until_ms: i64) -> Result<(), StoreError> {
        let ttl = (until_ms - now_ms()).max(1);
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}rejoin:{id}", self.prefix))
            .arg(at_ms)
            .arg("PX")
            .arg(ttl);
        // Part of an erasure (the re-signup cooldown): waits for the replicas as it does.
        let _: () = self.durable(cmd, |_| true).await?;
        Ok(())
    }

    async fn rejoin_since(&self, ids: &[String]) -> Result<Option<i64>, StoreError> {
        if ids.is_empty() {
            return Ok(None);
        }
        let mut cmd = redis::cmd("MGET");
        for id in ids {
            cmd.arg(format!("{}rejoin:{id}", self.prefix));
        }
        let got: Vec<Option<i64>> = self.run(cmd).await?;
        Ok(got.into_iter().flatten().max())
    }

    async fn log_append(&self, log: Log, at_ms: i64, line: &str) -> Result<(), StoreError> {
        let mut add = redis::cmd("ZADD");
        add.arg(format!("{}{}", self.prefix, log.name()))
            .arg(at_ms)
            .arg(line);
        let _: i64 = self.run(add).await?;
        Ok(())
    }

    async fn log_forget(&self, log: Log, person: &str) -> Result<u64, StoreError> {
        let key = format!("{}{}", self.prefix, log.name());
        let needle = super::person_field(person);
        let mut all = redis::cmd("ZRANGE");
        all.arg(&key).arg(0).arg(-1);
        let lines: Vec<String> = self.run(all).await?;
        let mut n = 0;
        for l in lines.iter().filter(|l| l.contains(&needle)) {
            let mut rem = redis::cmd("ZREM");
            rem.arg(&key).arg(l);
            let d: i64 = self.run(rem).await?;
            n += d as u64;
        }
        Ok(n)
    }

    async fn log_lines(&self, log: Log, since_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(format!("{}{}", self.prefix, log.name()))
            .arg(since_ms)
            .arg("+inf");
        self.run(cmd).await
    }

    async fn purge(&self, retention: &Retention) -> Result<u64, StoreError> {
        // Replay guards, reservations, pending members, kept requests and rejoin markers carry
        // a Redis TTL: Redis expires them itself. What is left: the sets listing them, the
        // logs, revocations past their session, and the records kept for a chosen lifetime
        // counted from their last use (a SCAN: this runs every few minutes, not per request).
        let now = now_ms();
        let mut n = 0u64;
        let zrem = |key: String, max: i64| {
            let mut cmd = redis::cmd("ZREMRANGEBYSCORE");
            cmd.arg(key).arg("-inf").arg(max);
            cmd
        };
        for (key, max) in [
            (
                format!("{}{}", self.prefix, Log::Audit.name()),
                now - retention.audit.as_millis() as i64,
            ),
            (
                format!("{}{}", self.prefix, Log::Ledger.name()),
                now - retention.ledger.as_millis() as i64,
            ),
            (self.kept_set(), now - 1),
            (self.pending_set(), now),
        ] {
            let d: i64 = self.run(zrem(key, max)).await?;
            n += d as u64;
        }
        let mut all = redis::cmd("ZRANGE");
        all.arg(self.revoked_set()).arg(0).arg(-1);
        let revoked: Vec<String> = self.run(all).await?;
        let now_s = now / 1000;
        for m in revoked {
            let until = m.rsplit_once('|').and_then(|(_, u)| u.parse::<i64>().ok());
            if until.is_none_or(|u| u <= now_s) {
                let mut rem = redis::cmd("ZREM");
                rem.arg(self.revoked_set()).arg(&m);
                let d: i64 = self.run(rem).await?;
                n += d as u64;
            }
        }
        if let Some(keep) = retention.accounts {
            let before = now - keep.as_millis() as i64;
            for (k, v) in self.accounts().await? {
                let (state, uis, created, used) = account_fields(&v);
                if state != "done" {
                    continue;
                }
                match created {
                    // Written without times (an earlier release during an upgrade): its
                    // lifetime starts now.
                    None => {
                        self.swap(&k, &v, &format!("done|{uis}|{now}|{now}"))
                            .await?;
                    }
                    Some(c) if c.max(used.unwrap_or(c)) <= before => {
                        n += self.del_if(&k, &v).await?;
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(keep) = retention.consents {
            // Counted from the consent: the index by time names them, no SCAN.
            let before = now - keep.as_millis() as i64;
            loop {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(CONSENT_PURGE)
                    .arg(1)
                    .arg(self.consent_time_set())
                    .arg(&self.prefix)
                    .arg(before)
                    .arg(CONSENT_PURGE_BATCH);
                // An erasure by lifetime: waits for the replicas as an erasure does.
                let (gone, seen): (i64, i64) = self.durable(cmd, |r: &(i64, i64)| r.0 > 0).await?;
                n += gone as u64;
                if (seen as usize) < CONSENT_PURGE_BATCH {
                    break;
                }
            }
        }
        if let Some(keep) = retention.ifree_members {
            let before = now - keep.as_millis() as i64;
            for (k, owner) in self.members().await? {
                match owner.created {
                    None => {
                        let mut set = redis::cmd("HSETNX");
                        set.arg(&k).arg("created").arg(now);
                        let _: i64 = self.run(set).await?;
                    }
                    Some(c) if c.max(owner.used.unwrap_or(c)) <= before => {
                        n += self.del(&k).await?;
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(n)
    }

    async fn migrate(&self, hash_key: &[u8; 32]) -> Result<u64, StoreError> {
        let schema = format!("{}schema", self.prefix);
        let mut get = redis::cmd("GET");
        get.arg(&schema);
        let version: Option<i64> = self.run(get).await?;
        let version = version.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::Open(format!(
                "redis: key format {version} was written by a later verigate (this one knows \
                 up to {SCHEMA_VERSION})"
            )));
        }
        if version == SCHEMA_VERSION {
            return Ok(0);
        }
        let mut set = redis::cmd("SET");
        set.arg(&schema).arg(SCHEMA_VERSION);
        if version == 2 {
            // 3 adds keys of a new kind only: nothing of 2 changes form.
            let _: () = self.run(set).await?;
            return Ok(0);
        }
        let now = now_ms();
        let mut n = 0;
        for (k, v) in self.accounts().await? {
            let (state, uis, created, used) = account_fields(&v);
            if state != "done" {
                continue;
            }
            let kept = if uis.is_empty() || looks_hashed(uis) {
                uis.to_string()
            } else {
                super::di_hash(hash_key, uis)
            };
            let created = created.unwrap_or(now);
            let new = format!("done|{kept}|{created}|{}", used.unwrap_or(created));
            if new != v && self.swap(&k, &v, &new).await? {
                n += 1;
            }
        }
        // A member of before gets the migration's time as its creation (only while it still
        // exists: a pending one may expire meanwhile, and must not come back as a bare hash).
        const CREATED: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSETNX', KEYS[1], 'created', ARGV[1]) end
return 0
"#;
        for k in self.scan(&format!("{}member:*", self.prefix)).await? {
            let d: i64 = self
                .invoke(CREATED, vec![k.clone()], vec![arg(now)])
                .await?;
            n += d as u64;
        }
        let _: () = self.run(set).await?;
        Ok(n)
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        // A read-only replica answers `READONLY`, a full one `OOM`: name the code, which
        // says which fault it is (the message may hold nothing secret, but the code suffices).
        let mut set = redis::cmd("SET");
        set.arg(format!("{}readyz:write-probe", self.prefix))
            .arg(now_ms())
            .arg("PX")
            .arg(10_000);
        self.on_raw(&self.main, |mut c| async move {
            set.query_async::<()>(&mut c).await
        })
        .await?
        .map_err(|e| match e.code() {
            Some(code) => StoreError::Unavailable(format!("redis: cannot write ({code})")),
            None => err(e),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let r: String = self.run(redis::cmd("PING")).await?;
        if r == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(
                "redis: unexpected PING answer".into(),
            ))
        }
    }
}
