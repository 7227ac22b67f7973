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

/// What the keys of an erasure are: the hash key, and how long a session may live (a person's
/// revocation lasts that long, then no session of before it can be alive).
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    pub hash_key: &'a [u8; 32],
    pub session_ttl: Duration,
}

/// What an erasure removed, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    /// One-account records (every route).
    pub accounts: u64,
    /// Whether every open session of the person was revoked (on every instance sharing the
    /// store, within a poll interval).
    pub sessions_revoked: bool,
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
    let accounts = store.forget(who).await?;
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
        revocations: ids.into_iter().map(|id| (id, until)).collect(),
    })
}

/// What `verigate accounts` does.
#[derive(Debug, Clone)]
pub enum Command {
    Count,
    Forget(PersonRef),
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
    };
    rt.block_on(async move {
        Ok(match cmd {
            Command::Count => {
                let n = store.count_accounts().await?;
                format!("{n} account record(s) in {target}")
            }
            Command::Forget(who) => {
                let f = forget(store.as_ref(), keys, &who, crate::clock::unix_now()).await?;
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
