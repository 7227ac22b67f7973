//! What verigate remembers about people, and how it forgets them: the one erasure both the
//! admin API (`POST /accounts/forget`) and `verigate accounts forget` run, and the store the
//! record commands open.

pub mod api;

use crate::config::StoreConfig;
use crate::live::revoked;
use crate::store::{PersonRef, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the memory store keeps nothing between processes: there is nothing to act on")]
    Memory,
}

/// The store the records live in, named for an operator: the SQLite file's absolute path, or
/// Redis's address and prefix (never the URL: it may hold a password).
pub fn describe(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Memory => "memory store".into(),
        StoreConfig::Sqlite { path } => format!("SQLite file {path}"),
        StoreConfig::Redis { url, prefix } => {
            let addr = redis::Client::open(url.as_str())
                .map(|c| c.get_connection_info().addr.to_string())
                .unwrap_or_else(|_| "(unreadable URL)".into());
            format!("Redis {addr}, prefix {prefix}")
        }
    }
}

/// Open the configured store for a record command: an SQLite database must exist already
/// (never created here); the memory store is refused.
pub fn open_existing(store: &StoreConfig) -> Result<Arc<dyn Store>, RecordsError> {
    Ok(match store {
        StoreConfig::Memory => return Err(RecordsError::Memory),
        StoreConfig::Sqlite { path } => {
            Arc::new(crate::store::sqlite::SqliteStore::open_existing(path)?)
        }
        StoreConfig::Redis { url, prefix } => {
            Arc::new(crate::store::redis::RedisStore::new(url, prefix)?)
        }
    })
}

/// What an erasure works with: the hash key, how long a session or an age status may live (a person's
/// revocation lasts that long, then no session of before it can be alive), and how long the
/// longest re-signup cooldown is (`require.rejoin_after`; None: no marker is kept).
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    pub hash_key: &'a [u8; 32],
    pub session_ttl: Duration,
    pub rejoin_max: Option<Duration>,
}

/// The ids of a person's rejoin markers: keyed hashes (never the hash the records are kept
/// under) of each identifier the person has, the same at an erasure and at a later signup.
pub fn rejoin_ids(hash_key: &[u8; 32], ci_hashes: &[&str], unique_in_site: &str) -> Vec<String> {
    let mut out: Vec<String> = ci_hashes
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| crate::session::keyed_hash(hash_key, "rejoin/ci", h))
        .collect();
    if !unique_in_site.is_empty() {
        out.push(crate::session::keyed_hash(
            hash_key,
            "rejoin/uis",
            unique_in_site,
        ));
    }
    out
}

/// What an erasure removed, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    /// One-account records (every route).
    pub accounts: u64,
    /// Whether every open session of the person was revoked (on every instance sharing the
    /// store, within a poll interval).
    pub sessions_revoked: bool,
    /// Until when (UNIX seconds) the person's re-signup is refused on the route with the
    /// longest `rejoin_after` (each route counts its own); None: no route has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejoin_marked_until: Option<i64>,
    /// The person revocations recorded (id, until): the caller's instance applies them at once.
    #[serde(skip)]
    pub revocations: Vec<(String, i64)>,
}

/// Forget a person: their one-account records, and every open session of theirs (revoked by
/// person, not by cookie). The same code for the admin API and the CLI.
pub async fn forget(
    store: &dyn Store,
    keys: Keys<'_>,
    who: &PersonRef,
    now: i64,
) -> Result<Forgotten, StoreError> {
    // The person's CI hashes are read before their records go: a rejoin marker must catch
    // them through any provider, not only through the per-site id given.
    if let Some(rejoin) = keys.rejoin_max {
        let ids = match who {
            PersonRef::CiHash(h) => rejoin_ids(keys.hash_key, &[h.as_str()], ""),
            PersonRef::UniqueInSite(u) => {
                let mut cis = Vec::new();
                for stored in stored_forms(keys.hash_key, u) {
                    cis.extend(store.account_persons(&stored).await?);
                }
                cis.sort();
                cis.dedup();
                let cis: Vec<&str> = cis.iter().map(String::as_str).collect();
                rejoin_ids(keys.hash_key, &cis, u)
            }
        };
        let at_ms = now.saturating_mul(1000);
        let until_ms = at_ms.saturating_add(rejoin.as_millis() as i64);
        for id in &ids {
            store.mark_rejoin(id, at_ms, until_ms).await?;
        }
    }
    let accounts = match who {
        PersonRef::CiHash(_) => store.forget(who).await?,
        PersonRef::UniqueInSite(u) => {
            let mut n = 0;
            for stored in stored_forms(keys.hash_key, u) {
                n += store.forget(&PersonRef::UniqueInSite(stored)).await?;
            }
            n
        }
    };
    let ids = match who {
        PersonRef::CiHash(h) => revoked::person_ids(keys.hash_key, h, ""),
        PersonRef::UniqueInSite(u) => revoked::person_ids(keys.hash_key, "", u),
    };
    let until = now.saturating_add(keys.session_ttl.as_secs() as i64 + 60);
    for id in &ids {
        store.revoke(id, until).await?;
    }
    Ok(Forgotten {
        accounts,
        sessions_revoked: !ids.is_empty(),
        rejoin_marked_until: keys
            .rejoin_max
            .map(|d| now.saturating_add(d.as_secs() as i64)),
        revocations: ids.into_iter().map(|id| (id, until)).collect(),
    })
}

/// The forms a per-site identifier takes in one-account records: its keyed hash (records
/// kept since the DI is hashed at rest) and the identifier itself (records written before).
fn stored_forms(hash_key: &[u8; 32], unique_in_site: &str) -> [String; 2] {
    [
        crate::store::di_hash(hash_key, unique_in_site),
        unique_in_site.to_string(),
    ]
}

/// Who made an erasure, for the audit trail.
#[derive(Debug, Clone, Copy)]
pub enum Via<'a> {
    /// The admin API, authenticated as `operator` (the token's name, or the open loopback).
    Api(&'a str),
    /// The command line, run by this Unix user.
    Cli(&'a str),
}

/// [`forget`], then its audit line: time, operator, what was asked (a keyed hash, never the
/// identifier) and what each kind lost. An erasure whose line cannot be written is an error
/// (the caller repeats it; forgetting twice changes nothing more).
pub async fn forget_audited(
    store: &dyn Store,
    keys: Keys<'_>,
    who: &PersonRef,
    now: i64,
    via: Via<'_>,
) -> Result<Forgotten, StoreError> {
    let f = forget(store, keys, who, now).await?;
    let (asked_by, value) = match who {
        PersonRef::UniqueInSite(u) => ("unique_in_site", u),
        PersonRef::CiHash(h) => ("person", h),
    };
    let (via, operator) = match via {
        Via::Api(o) => ("api", o),
        Via::Cli(o) => ("cli", o),
    };
    let at_ms = crate::store::now_ms();
    let line = serde_json::json!({
        "at": chrono::DateTime::from_timestamp_millis(at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "action": "forget",
        "via": via,
        "operator": operator,
        "asked_by": asked_by,
        "asked": crate::session::keyed_hash(keys.hash_key, &format!("audit/{asked_by}"), value),
        "removed": &f,
    });
    store.audit_append(at_ms, &line.to_string()).await?;
    Ok(f)
}

/// The Unix user running this command (`$USER` when it agrees with the process's uid).
pub fn unix_operator() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    match (name, uid) {
        (Some(n), Some(u)) => format!("{n} (uid {u})"),
        (None, Some(u)) => format!("uid {u}"),
        (Some(n), None) => n,
        (None, None) => "unknown".into(),
    }
}

/// What `verigate accounts` does.
#[derive(Debug, Clone)]
pub enum Command {
    Count,
    Forget(PersonRef),
    /// `verigate audit`: the audit lines, one JSON object a line, oldest first.
    Audit,
}

/// Run an `accounts` command (a one-off, outside the proxy) against the store `cfg` names;
/// the text to print names the store it acted on.
pub fn run_command(
    cfg: &crate::config::RecordsConfig,
    cmd: Command,
) -> Result<String, RecordsError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Open(format!("runtime: {e}")))?;
    let store = open_existing(&cfg.store)?;
    let target = describe(&cfg.store);
    let keys = Keys {
        hash_key: &cfg.hash_key,
        session_ttl: cfg.session_ttl,
        rejoin_max: cfg.rejoin_max,
    };
    rt.block_on(async move {
        Ok(match cmd {
            Command::Audit => {
                let lines = store.audit_lines().await?;
                let mut out = format!("{} audit line(s) in {target}", lines.len());
                for l in lines {
                    out.push('\n');
                    out.push_str(&l);
                }
                out
            }
            Command::Count => {
                let n = store.count_accounts().await?;
                format!("{n} account record(s) in {target}")
            }
            Command::Forget(who) => {
                let operator = unix_operator();
                let f = forget_audited(
                    store.as_ref(),
                    keys,
                    &who,
                    crate::clock::unix_now(),
                    Via::Cli(&operator),
                )
                .await?;
                format!(
                    "forgot {} account record(s) in {target}; the person's sessions {}",
                    f.accounts,
                    if f.sessions_revoked {
                        "are revoked on every instance sharing it"
                    } else {
                        "were not revoked (no identifier given)"
                    },
                )
            }
        })
    })
}

/// How often expired records a backend cannot expire itself (SQLite's rejoin markers) are
/// purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The background task that purges expired records ([`Store::purge`]).
pub struct Purger {
    pub store: Arc<dyn Store>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Purger {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            match self.store.purge().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "records: expired records purged"),
                Err(e) => tracing::warn!(error = %e, "records: cannot purge expired records"),
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(PURGE_EVERY) => {}
            }
        }
    }
}
