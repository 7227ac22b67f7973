//! What verigate remembers between requests: accepted provider results (replay guard) and
//! one-account-per-person records. One trait, three backends: `memory` (one process, nothing
//! kept), `sqlite` (one node, durable: the default) and `redis` (several instances).

pub mod memory;
pub mod redis;
pub mod sqlite;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// How long each kind of record about a person is kept (`records.retention`); `None`: until
/// the app forgets the person (`POST /accounts/forget`). The other kinds have fixed lifetimes
/// (docs/operations/privacy-facts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// One-account records, counted from their last use (signup, or a second signup refused).
    pub accounts: Option<Duration>,
    /// Registered ifree members, counted from their last login (or registration).
    pub ifree_members: Option<Duration>,
    /// Audit lines (erasures), counted from when written.
    pub audit: Duration,
    /// Verification ledger lines, counted from when written.
    pub ledger: Duration,
    /// Guardian consent records, counted from the consent; `None`: until the child is
    /// forgotten (`records.retention.consents`).
    pub consents: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            accounts: None,
            ifree_members: None,
            audit: Duration::from_secs(730 * 86_400),
            ledger: Duration::from_secs(365 * 86_400),
            consents: None,
        }
    }
}

/// Which store (`store:` in the config, checked by `config`).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Memory,
    Sqlite { path: String },
    Redis(RedisConfig),
}

/// A Redis store: where its master is, the key prefix, and what decisions wait for.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub target: RedisTarget,
    pub prefix: String,
    /// Replicas that must acknowledge a decision that must survive a failover (None: none).
    pub wait: Option<RedisWait>,
}

impl RedisConfig {
    /// One Redis at `url`, no replicas waited for.
    pub fn url(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisConfig {
            target: RedisTarget::Url(url.into()),
            prefix: prefix.into(),
            wait: None,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis (`redis://` or `rediss://`).
    Url(String),
    /// The master that the sentinels name.
    Sentinel(SentinelConfig),
}

#[derive(Clone, PartialEq, Eq)]
pub struct SentinelConfig {
    /// The master's name in the sentinels' configuration.
    pub master: String,
    /// The sentinels, as `(host, port)`.
    pub addrs: Vec<(String, u16)>,
    /// The sentinels' password.
    pub password: Option<String>,
    /// The master's (and replicas') password.
    pub redis_password: Option<String>,
    pub db: i64,
}

/// `WAIT replicas timeout` after each decision that must survive a failover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisWait {
    pub replicas: u32,
    pub timeout: Duration,
}

impl std::fmt::Debug for StoreConfig {
    // The Redis URL and passwords are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Memory => write!(f, "memory"),
            StoreConfig::Sqlite { path } => write!(f, "sqlite({path})"),
            StoreConfig::Redis(r) => match &r.target {
                RedisTarget::Url(_) => write!(f, "redis(prefix {})", r.prefix),
                RedisTarget::Sentinel(s) => write!(
                    f,
                    "redis(sentinel master {}, {} sentinels, prefix {})",
                    s.master,
                    s.addrs.len(),
                    r.prefix
                ),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store cannot be opened: {0}")]
    Open(String),
}

/// The outcome of reserving a person's account on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// This request holds the reservation; commit on success, release otherwise.
    Reserved,
    /// The person's signup on this route already succeeded.
    Taken,
    /// Another request of the same person is in flight.
    InProgress,
}

/// Whom an account record belongs to, for `accounts forget`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonRef {
    /// The keyed hash of the CI (as kept in sessions and records).
    CiHash(String),
    /// The per-site identifier as records keep it: [`di_hash`] of the
    /// `X-Verified-Unique-In-Site` the app received (records written before it was hashed hold
    /// it in clear: the CLI asks for both).
    UniqueInSite(String),
}

/// What a one-account record keeps of the per-site identifier (`X-Verified-Unique-In-Site`):
/// its keyed hash, never the DI itself; empty when there is none.
pub fn di_hash(hash_key: &[u8; 32], unique_in_site: &str) -> String {
    if unique_in_site.is_empty() {
        return String::new();
    }
    crate::session::keyed_hash(hash_key, "di", unique_in_site)
}

/// The people a one-account record is about.
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    pub ci_hash: &'a str,
    pub unique_in_site: &'a str,
}

/// An ifree member's record. Every field is sealed by the caller (encrypted at rest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub key: String,
    pub passcode: Option<String>,
    pub ubifill: Option<String>,
}

/// A guardian's consent to a child's signup (PIPA 제22조의2, 게임산업법 제12조의3): the proof a
/// merchant keeps. No clear CI, DI, name or phone: people are keyed hashes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConsentRecord {
    /// The record's id (random, URL-safe): what `X-Verified-Guardian-Consent` carries.
    pub id: String,
    /// The child: their keyed CI hash (as sessions keep it), or, for a child without a
    /// verification of their own, a random id (`stated:<random>`).
    pub child: String,
    /// The birth date the child stated (`YYYY-MM-DD`), only for a child without a verification
    /// of their own; `None` when the child's birth date was verified.
    pub child_stated_birth: Option<String>,
    /// The guardian's keyed CI hash (never the child's).
    pub guardian: String,
    /// The provider that verified the guardian (`iamport`, `portone`, ...).
    pub provider: String,
    /// The relation the guardian stated (`parent`, `guardian`, ...): stated, not verified.
    pub stated_relation: Option<String>,
    /// The route's name the consent was given for.
    pub route: String,
    /// The version of the consent text the guardian was shown (`guardian_consent.text_version`).
    pub text_version: String,
    /// When the guardian consented (UNIX ms).
    pub at_ms: i64,
}

/// A revoked session (`Store::revocations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The session's keyed id (never the cookie).
    pub id: String,
    /// When the session would have expired (UNIX seconds): the revocation matters until then.
    pub until: i64,
    /// When it was revoked (UNIX ms).
    pub at_ms: i64,
}

/// What a key exchange did (`Store::member_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyExchange {
    /// The key is the member's pending key now.
    Issued,
    /// The member has registered: nothing changed (a public endpoint never hands out or
    /// replaces a registered member's key).
    Registered,
    /// Too many live pending members: not kept.
    Full,
}

/// What a shared rate limit said (`Store::take_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// This store is no instance's to share: the caller counts on its own.
    Local,
    /// A token was taken.
    Taken,
    /// The bucket is empty: the next token comes in this long.
    Refused(Duration),
}

/// What a registration did (`Store::member_register`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// No pending key exchange (never made, or expired).
    Unknown,
    /// The member had registered already: nothing changed.
    AlreadyRegistered,
    /// A later key exchange replaced the key this registration was made with.
    KeyReplaced,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Record `key` as used; true the first time, false on every later call within `ttl`.
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Reserve `(route, person)` before the request goes upstream. A reservation not
    /// committed or released within `ttl` expires (a crash mid-request).
    async fn reserve_account(
        &self,
        route: &str,
        person: Person<'_>,
        ttl: Duration,
    ) -> Result<Reservation, StoreError>;
    /// The upstream accepted the signup: the record becomes permanent.
    async fn commit_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError>;
    /// The signup did not happen: drop the reservation (never a committed record).
    async fn release_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError>;
    /// Remove every account record of a person, on every route or on `route` only. Returns
    /// how many.
    async fn forget(&self, who: &PersonRef, route: Option<&str>) -> Result<u64, StoreError>;
    /// Remove the registered ifree members whose owner (recorded at registration, or at a
    /// later login for members registered before owners were) is `who` in its stored form
    /// (the keyed CI hash, or the per-site id's [`di_hash`]). Returns how many.
    async fn forget_members(&self, who: &PersonRef) -> Result<u64, StoreError>;
    /// A registered member logged in: their last use is now, and their owner is `owner`
    /// (members registered before owners were recorded get theirs here).
    async fn member_used(&self, member: &str, owner: Person<'_>) -> Result<(), StoreError>;
    /// How many committed account records there are.
    async fn count_accounts(&self) -> Result<u64, StoreError>;
    /// The keyed CI hashes of the account records carrying per-site id `unique_in_site`.
    async fn account_persons(&self, unique_in_site: &str) -> Result<Vec<String>, StoreError>;
    /// Record that the person named by `id` (a keyed hash) was forgotten at `at_ms`; the
    /// marker lives until `until_ms` (UNIX ms), then goes by itself (a TTL, or [`purge`]).
    ///
    /// [`purge`]: Store::purge
    async fn mark_rejoin(&self, id: &str, at_ms: i64, until_ms: i64) -> Result<(), StoreError>;
    /// The latest time (UNIX ms) one of `ids` was forgotten, among live markers.
    async fn rejoin_since(&self, ids: &[String]) -> Result<Option<i64>, StoreError>;
    /// Drop every record past its lifetime (`retention` for the kinds a merchant chooses, each
    /// record's own expiry for the rest) that a backend does not expire by itself; returns
    /// how many.
    async fn purge(&self, retention: &Retention) -> Result<u64, StoreError>;
    /// Bring records written by an earlier release to this one's form (identifiers kept in
    /// clear become keyed hashes; records without times get the migration's time). Runs at
    /// start; a store already migrated is left alone. Returns how many records changed.
    async fn migrate(&self, hash_key: &[u8; 32]) -> Result<u64, StoreError>;
    /// Append a line (JSON, no clear identifier) made at `at_ms` to `log` (the purge drops it
    /// after its retention).
    async fn log_append(&self, log: Log, at_ms: i64, line: &str) -> Result<(), StoreError>;
    /// Remove the lines of `log` that name `person` (a keyed-hash id, [`person_field`]).
    /// Returns how many.
    async fn log_forget(&self, log: Log, person: &str) -> Result<u64, StoreError>;
    /// The lines of `log` made at or after `since_ms`, oldest first.
    async fn log_lines(&self, log: Log, since_ms: i64) -> Result<Vec<String>, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether the store can write now (`/readyz`): a small write that changes nothing any
    /// decision reads (SQLite: a probe row in a transaction; Redis: a probe key with a TTL).
    /// A store that answers but cannot write (disk full, read-only, locked, `OOM`) is an
    /// error here while `ping` passes.
    async fn probe_write(&self) -> Result<(), StoreError> {
        self.ping().await
    }
    /// A key exchange: `sealed_key` becomes `member`'s pending key, replacing a pending one,
    /// until `ttl` from now. A registered member is left as it is (`Registered`); a new pending
    /// member beyond `max_pending` live ones is not kept (`Full`). Expired pending members
    /// neither count nor remain.
    async fn member_key(
        &self,
        member: &str,
        sealed_key: &str,
        ttl: Duration,
        max_pending: u64,
    ) -> Result<KeyExchange, StoreError>;
    /// Record the registration of a pending member whose key is still `sealed_key` (the key the
    /// registration was decrypted with). Nothing changes unless it answers `Registered`.
    async fn member_register(
        &self,
        member: &str,
        sealed_key: &str,
        sealed_passcode: &str,
        sealed_ubifill: Option<&str>,
        owner: Person<'_>,
    ) -> Result<Registration, StoreError>;
    /// Revoke the session whose keyed id is `id` (logout) until `until` (UNIX seconds: when it
    /// would have expired anyway).
    async fn revoke(&self, id: &str, until: i64) -> Result<(), StoreError>;
    /// Revocations recorded at or after `since_ms` (UNIX ms) and not yet expired, oldest first:
    /// what every instance polls to refuse a revoked session within a second.
    async fn revocations(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError>;
    /// A registered member, or a pending one whose key exchange has not expired.
    async fn member_get(&self, member: &str) -> Result<Option<MemberRecord>, StoreError>;
    /// Keep a request (sealed by the caller) under `id` for `ttl`, waiting for its
    /// verification. Not kept (`false`) when `max_live` kept requests are live already:
    /// unverified clients cannot fill the store. Expired ones neither count nor remain.
    async fn keep_request(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
        max_live: u64,
    ) -> Result<bool, StoreError>;
    /// Take the kept request `id`: its value to exactly one caller, on any instance, while it
    /// lives; `None` to every other (taken already, expired or never kept). One atomic step.
    async fn take_request(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Keep a guardian consent record (a new id; an existing id is an error).
    async fn consent_put(&self, rec: &ConsentRecord) -> Result<(), StoreError>;
    /// The consent record `id`, if kept (and not past its retention).
    async fn consent_get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError>;
    /// The consent records about `child` (its [`ConsentRecord::child`] form), oldest first.
    async fn consents_of(&self, child: &str) -> Result<Vec<ConsentRecord>, StoreError>;
    /// Remove the consent records about `child` (the child's withdrawal). Returns how many.
    async fn consent_forget(&self, child: &str) -> Result<u64, StoreError>;
    /// Take one token from the bucket `key` (`burst` at once, refilled at `per_minute`),
    /// shared by every instance of this store; `Local` where the store is one process's.
    async fn take_token(
        &self,
        _key: &str,
        _burst: u32,
        _per_minute: u32,
    ) -> Result<Token, StoreError> {
        Ok(Token::Local)
    }
}

/// Open the configured backend. Redis connects lazily (and reconnects by itself).
pub fn open(cfg: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match cfg {
        StoreConfig::Memory => Arc::new(memory::MemoryStore::new()),
        StoreConfig::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path)?),
        StoreConfig::Redis(r) => Arc::new(redis::RedisStore::new(r)?),
    })
}

/// What `verigate check` can prove about the configured store without changing it: an SQLite
/// path must be openable. (Redis is reached at run time; memory needs nothing.)
pub fn check(cfg: &StoreConfig) -> Result<(), StoreError> {
    match cfg {
        StoreConfig::Sqlite { path } => sqlite::check_path(path),
        StoreConfig::Memory | StoreConfig::Redis(_) => Ok(()),
    }
}

/// The append-only logs the store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Erasures and counts (`records.retention.audit`).
    Audit,
    /// Accepted verifications (`records.ledger`, `records.retention.ledger`).
    Ledger,
}

impl Log {
    pub fn name(self) -> &'static str {
        match self {
            Log::Audit => "audit",
            Log::Ledger => "ledger",
        }
    }
}

/// What a log line that names `person` holds: the id as a JSON string (in its `person` or
/// `site_person` field; ids are keyed hashes, found nowhere else).
pub fn person_field(person: &str) -> String {
    serde_json::Value::String(person.to_string()).to_string()
}

/// Whether `v` has the form of a keyed hash ([`crate::session::keyed_hash`]: 24 bytes,
/// URL-safe base64 without padding): what the migration leaves as it is.
pub fn looks_hashed(v: &str) -> bool {
    v.len() == 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
