//! What verigate remembers between requests: accepted provider results (replay guard) and
//! one-account-per-person records. One trait, three backends: `memory` (one process, nothing
//! kept), `sqlite` (one node, durable: the default) and `redis` (several instances).

pub mod memory;
pub mod redis;
pub mod sqlite;

use crate::config::StoreConfig;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

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
    /// The per-site identifier the app received (`X-Verified-Unique-In-Site`).
    UniqueInSite(String),
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
    /// Remove every account record of a person, on every route. Returns how many.
    async fn forget(&self, who: &PersonRef) -> Result<u64, StoreError>;
    /// How many committed account records there are.
    async fn count_accounts(&self) -> Result<u64, StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// Keep `sealed_key` as `member`'s key unless one is already kept; returns the record as
    /// stored afterwards (so a re-sent key exchange sees the first key).
    async fn member_key(&self, member: &str, sealed_key: &str) -> Result<MemberRecord, StoreError>;
    /// Record a member's registration. False when the member has no key (unknown).
    async fn member_register(
        &self,
        member: &str,
        sealed_passcode: &str,
        sealed_ubifill: Option<&str>,
    ) -> Result<bool, StoreError>;
    async fn member_get(&self, member: &str) -> Result<Option<MemberRecord>, StoreError>;
}

/// Open the configured backend. Redis connects lazily (and reconnects by itself).
pub fn open(cfg: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match cfg {
        StoreConfig::Memory => Arc::new(memory::MemoryStore::new()),
        StoreConfig::Sqlite { path } => Arc::new(sqlite::SqliteStore::open(path)?),
        StoreConfig::Redis { url, prefix } => Arc::new(redis::RedisStore::new(url, prefix)?),
    })
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What `verigate accounts` does.
#[derive(Debug, Clone)]
pub enum AccountsOp {
    Count,
    Forget(PersonRef),
}

/// Run an `accounts` command against the configured store (a one-off, outside the proxy).
pub fn accounts(cfg: &StoreConfig, op: AccountsOp) -> Result<u64, StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Open(format!("runtime: {e}")))?;
    let store = open(cfg)?;
    rt.block_on(async move {
        match op {
            AccountsOp::Count => store.count_accounts().await,
            AccountsOp::Forget(who) => store.forget(&who).await,
        }
    })
}
