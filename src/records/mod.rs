//! What verigate remembers about people, and how it forgets them: the one erasure both the
//! admin API (`POST /accounts/forget`) and `verigate accounts forget` run, and the store the
//! record commands open.

pub mod api;

use crate::live::revoked;
use crate::store::StoreConfig;
use crate::store::{ConsentRecord, PersonRef, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the memory store keeps nothing between processes: there is nothing to act on")]
    Memory,
    #[error("{0}")]
    Forget(#[from] ForgetError),
    #[error("no consent record {0} in {1}")]
    NoConsent(String, String),
}

/// The store the records live in, named for an operator: the SQLite file's absolute path, or
/// Redis's address and prefix (never the URL: it may hold a password).
pub fn describe(store: &StoreConfig) -> String {
    match store {
        StoreConfig::Memory => "memory store".into(),
        StoreConfig::Sqlite { path } => format!("SQLite file {path}"),
        StoreConfig::Redis(r) => match &r.target {
            crate::store::RedisTarget::Url(url) => {
                let addr = redis::Client::open(url.as_str())
                    .map(|c| c.get_connection_info().addr.to_string())
                    .unwrap_or_else(|_| "(unreadable URL)".into());
                format!("Redis {addr}, prefix {}", r.prefix)
            }
            crate::store::RedisTarget::Sentinel(s) => format!(
                "Redis master {} of sentinels {}, prefix {}",
                s.master,
                s.addrs
                    .iter()
                    .map(|(h, p)| format!("{h}:{p}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.prefix
            ),
        },
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
        StoreConfig::Redis(r) => Arc::new(crate::store::redis::RedisStore::new(r)?),
    })
}

/// What an erasure works with: the hash key, how long a session or an age status may live (a
/// person's revocation lasts that long, then no session of before it can be alive), how long the
/// longest re-signup cooldown is (`require.rejoin_after`; None: no marker is kept), and the
/// one-account routes with their own cooldowns (an erasure limited to one route).
#[derive(Clone, Copy)]
pub struct Keys<'a> {
    pub hash_key: &'a [u8; 32],
    pub session_ttl: Duration,
    pub rejoin_max: Option<Duration>,
    pub routes: &'a [(String, Option<Duration>)],
}

/// The ids of a person's rejoin markers: keyed hashes (never the hash the records are kept
/// under) of each identifier the person has, the same at an erasure and at a later signup.
/// A marker of an erasure limited to one route (`route`) has ids of its own, which only that
/// route's signups look up.
pub fn rejoin_ids(
    hash_key: &[u8; 32],
    route: Option<&str>,
    ci_hashes: &[&str],
    unique_in_site: &str,
) -> Vec<String> {
    let (ci, uis) = match route {
        None => ("rejoin/ci".to_string(), "rejoin/uis".to_string()),
        Some(r) => (
            format!("rejoin/route/{r}/ci"),
            format!("rejoin/route/{r}/uis"),
        ),
    };
    let mut out: Vec<String> = ci_hashes
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| crate::session::keyed_hash(hash_key, &ci, h))
        .collect();
    if !unique_in_site.is_empty() {
        out.push(crate::session::keyed_hash(hash_key, &uis, unique_in_site));
    }
    out
}

/// What an erasure removed, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    /// The route the erasure was limited to (its one-account records and cooldown only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// One-account records (every route, or `route`'s).
    pub accounts: u64,
    /// Registered ifree member records (key, passcode, ubifill) of the person.
    pub ifree_members: u64,
    /// Verification ledger lines of the person (`records.ledger`).
    pub ledger_lines: u64,
    /// Guardian consent records whose child is the person (or the stated child asked for).
    /// An erasure limited to one route leaves them: they go with the person's withdrawal.
    pub consents: u64,
    /// Whether every open session of the person was revoked (on every instance sharing the
    /// store, within a poll interval). Not for an erasure limited to one route.
    pub sessions_revoked: bool,
    /// Until when (UNIX seconds) the person's re-signup is refused on the route with the
    /// longest `rejoin_after` (each route counts its own); None: no route has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejoin_marked_until: Option<i64>,
    /// The person revocations recorded (id, until): the caller's instance applies them at once.
    #[serde(skip)]
    pub revocations: Vec<(String, i64)>,
}

/// Why an erasure was not made.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("route `{0}` is not a route with one_account_per_person")]
    UnknownRoute(String),
    #[error("{0}")]
    NotAnId(&'static str),
}

/// Whether `who` is spelled as verigate gives it to the app: a person id (`X-Verified-Person`)
/// is 32 characters of URL-safe base64 (`A-Z a-z 0-9 - _`); a per-site id has no space or
/// control character at its ends or in it. A copy with spaces, padding or quotes matches no
/// one, and an erasure of it would answer as if it had worked.
pub fn check_ref(who: &PersonRef) -> Result<(), ForgetError> {
    match who {
        PersonRef::CiHash(p) => {
            let ok = p.len() == 32
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            ok.then_some(()).ok_or(ForgetError::NotAnId(
                "person is not an X-Verified-Person value (32 characters of A-Z a-z 0-9 - _)",
            ))
        }
        PersonRef::UniqueInSite(u) => {
            let ok = !u.is_empty()
                && u.len() <= 512
                && !u.chars().any(|c| c.is_whitespace() || c.is_control());
            ok.then_some(()).ok_or(ForgetError::NotAnId(
                "unique_in_site is not an X-Verified-Unique-In-Site value (no spaces or control characters)",
            ))
        }
    }
}

/// Forget a person: their one-account records, their registered ifree members, and every open
/// session of theirs (revoked by person, not by cookie); with `route`, only that route's
/// one-account records (the person stays verified and a member elsewhere). The same code for
/// the admin API and the CLI.
pub async fn forget(
    store: &dyn Store,
    keys: Keys<'_>,
    who: &PersonRef,
    route: Option<&str>,
    now: i64,
) -> Result<Forgotten, ForgetError> {
    check_ref(who)?;
    let rejoin = match route {
        None => keys.rejoin_max,
        Some(r) => match keys.routes.iter().find(|(name, _)| name == r) {
            Some((_, after)) => *after,
            None => return Err(ForgetError::UnknownRoute(r.to_string())),
        },
    };
    // The person's CI hashes are read before their records go: a rejoin marker must catch
    // them through any provider, not only through the per-site id given, and their ifree
    // members are found under either.
    let cis: Vec<String> = match who {
        PersonRef::CiHash(h) => vec![h.clone()],
        PersonRef::UniqueInSite(u) => {
            let mut cis = Vec::new();
            for stored in stored_forms(keys.hash_key, u) {
                cis.extend(store.account_persons(&stored).await?);
            }
            cis.sort();
            cis.dedup();
            cis
        }
    };
    if let Some(rejoin) = rejoin {
        let refs: Vec<&str> = cis.iter().map(String::as_str).collect();
        let uis = match who {
            PersonRef::UniqueInSite(u) => u.as_str(),
            PersonRef::CiHash(_) => "",
        };
        let at_ms = now.saturating_mul(1000);
        let until_ms = at_ms.saturating_add(rejoin.as_millis() as i64);
        for id in rejoin_ids(keys.hash_key, route, &refs, uis) {
            store.mark_rejoin(&id, at_ms, until_ms).await?;
        }
    }
    let accounts = match who {
        PersonRef::CiHash(_) => store.forget(who, route).await?,
        PersonRef::UniqueInSite(u) => {
            let mut n = 0;
            for stored in stored_forms(keys.hash_key, u) {
                n += store
                    .forget(&PersonRef::UniqueInSite(stored), route)
                    .await?;
            }
            n
        }
    };
    let mut out = Forgotten {
        route: route.map(str::to_string),
        accounts,
        rejoin_marked_until: rejoin.map(|d| now.saturating_add(d.as_secs() as i64)),
        ..Default::default()
    };
    if route.is_some() {
        return Ok(out);
    }
    for ci in &cis {
        out.ifree_members += store.forget_members(&PersonRef::CiHash(ci.clone())).await?;
        // A consent record's child is the keyed CI hash, as sessions keep it.
        out.consents += store.consent_forget(ci).await?;
    }
    if let PersonRef::UniqueInSite(u) = who {
        let hashed = crate::store::di_hash(keys.hash_key, u);
        out.ifree_members += store
            .forget_members(&PersonRef::UniqueInSite(hashed))
            .await?;
    }
    let mut ledger_ids: Vec<String> = cis
        .iter()
        .filter_map(|ci| crate::providers::accept::ledger_person(keys.hash_key, ci, ""))
        .collect();
    if let PersonRef::UniqueInSite(u) = who {
        ledger_ids.extend(crate::providers::accept::ledger_person(
            keys.hash_key,
            "",
            u,
        ));
    }
    for id in &ledger_ids {
        out.ledger_lines += store.log_forget(crate::store::Log::Ledger, id).await?;
    }
    let ids = match who {
        PersonRef::CiHash(h) => revoked::person_ids(keys.hash_key, h, ""),
        PersonRef::UniqueInSite(u) => revoked::person_ids(keys.hash_key, "", u),
    };
    let until = now.saturating_add(keys.session_ttl.as_secs() as i64 + 60);
    for id in &ids {
        store.revoke(id, until).await?;
    }
    out.sessions_revoked = !ids.is_empty();
    out.revocations = ids.into_iter().map(|id| (id, until)).collect();
    Ok(out)
}

/// What a consent record id looks like (`gc_…`: URL-safe characters): checked before the store
/// is asked, so that a copy with spaces or quotes is refused, not "not found".
pub fn check_consent_id(id: &str) -> Result<(), ForgetError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(url_safe);
    ok.then_some(()).ok_or(ForgetError::NotAnId(
        "not a consent record id (X-Verified-Guardian-Consent: A-Z a-z 0-9 - _)",
    ))
}

/// A consent record's child as the records keep it: a person id (`X-Verified-Person`, the
/// keyed CI hash), or a child without a verification of their own (`stated:<random>`).
pub fn check_consent_child(child: &str) -> Result<(), ForgetError> {
    let ok = match child.strip_prefix(STATED) {
        Some(random) => !random.is_empty() && random.len() <= 128 && random.bytes().all(url_safe),
        None => check_ref(&PersonRef::CiHash(child.to_string())).is_ok(),
    };
    ok.then_some(()).ok_or(ForgetError::NotAnId(
        "child is neither an X-Verified-Person value nor a stated child id (stated:…, A-Z a-z 0-9 - _)",
    ))
}

/// The head of a stated child's id (a child without a verification of their own).
pub const STATED: &str = "stated:";

fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A consent record as the admin API and the CLI show it: every field, the time also in
/// RFC 3339 (UTC).
pub fn consent_json(r: &ConsentRecord) -> serde_json::Value {
    // Every field as the record has it (no list here to drift from the type), and the time.
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["at"] = serde_json::json!(chrono::DateTime::from_timestamp_millis(r.at_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
    v
}

/// Forget a stated child (`stated:<random>`, a child without a verification of their own):
/// their consent records, then the audit line. A verified child is forgotten as a person
/// ([`forget_audited`]), which takes their consent records with the rest.
pub async fn forget_consent_child_audited(
    store: &dyn Store,
    hash_key: &[u8; 32],
    child: &str,
    via: Via<'_>,
) -> Result<Forgotten, ForgetError> {
    if !child.starts_with(STATED) {
        return Err(ForgetError::NotAnId(
            "consent_child is a stated child id (stated:…); forget a verified child by person or unique_in_site",
        ));
    }
    check_consent_child(child)?;
    let f = Forgotten {
        consents: store.consent_forget(child).await?,
        ..Default::default()
    };
    audit_forget(store, hash_key, "consent_child", child, via, &f).await?;
    Ok(f)
}

/// The audit line of an erasure: time, operator, what was asked (a keyed hash, never the
/// identifier) and what each kind lost.
async fn audit_forget(
    store: &dyn Store,
    hash_key: &[u8; 32],
    asked_by: &str,
    value: &str,
    via: Via<'_>,
    f: &Forgotten,
) -> Result<(), StoreError> {
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
        "asked": crate::session::keyed_hash(hash_key, &format!("audit/{asked_by}"), value),
        "removed": f,
    });
    store
        .log_append(crate::store::Log::Audit, at_ms, &line.to_string())
        .await
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
    route: Option<&str>,
    now: i64,
    via: Via<'_>,
) -> Result<Forgotten, ForgetError> {
    let f = forget(store, keys, who, route, now).await?;
    let (asked_by, value) = match who {
        PersonRef::UniqueInSite(u) => ("unique_in_site", u),
        PersonRef::CiHash(h) => ("person", h),
    };
    audit_forget(store, keys.hash_key, asked_by, value, via, &f).await?;
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
    /// Forget a person, on every route or on one.
    Forget(PersonRef, Option<String>),
    /// `verigate audit`: the audit lines made at or after this UNIX ms, one JSON object a
    /// line, oldest first.
    Audit(i64),
    /// `verigate ledger`: the ledger lines, as `Audit`.
    Ledger(i64),
    /// `verigate accounts forget --consent-child stated:…`: a stated child's consent records.
    ForgetConsentChild(String),
    /// `verigate consents show ID`: one consent record, as JSON.
    ConsentShow(String),
    /// `verigate consents of CHILD`: a child's consent records, oldest first.
    ConsentsOf(String),
}

/// A log's lines as a command prints them: a count naming the store, then one line each.
fn print_lines(what: &str, target: &str, lines: Vec<String>) -> String {
    let mut out = format!("{} {what} line(s) in {target}", lines.len());
    for l in lines {
        out.push('\n');
        out.push_str(&l);
    }
    out
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
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
        routes: &cfg.one_account_routes,
    };
    rt.block_on(async move {
        // A store an earlier release wrote is brought up to this one's form first (as the
        // service does at start): an erasure then finds every record in the form it expects.
        store.migrate(&cfg.hash_key).await?;
        Ok(match cmd {
            Command::Audit(since) => print_lines(
                "audit",
                &target,
                store.log_lines(crate::store::Log::Audit, since).await?,
            ),
            Command::Ledger(since) => print_lines(
                "ledger",
                &target,
                store.log_lines(crate::store::Log::Ledger, since).await?,
            ),
            Command::Count => {
                let n = store.count_accounts().await?;
                format!("{n} account record(s) in {target}")
            }
            Command::ConsentShow(id) => {
                check_consent_id(&id)?;
                match store.consent_get(&id).await? {
                    Some(r) => pretty(&consent_json(&r)),
                    None => return Err(RecordsError::NoConsent(id, target)),
                }
            }
            Command::ConsentsOf(child) => {
                check_consent_child(&child)?;
                let records = store.consents_of(&child).await?;
                let mut out = format!("{} consent record(s) of {child} in {target}", records.len());
                for r in &records {
                    out.push('\n');
                    out.push_str(&consent_json(r).to_string());
                }
                out
            }
            Command::ForgetConsentChild(child) => {
                let operator = unix_operator();
                let f = forget_consent_child_audited(
                    store.as_ref(),
                    &cfg.hash_key,
                    &child,
                    Via::Cli(&operator),
                )
                .await?;
                format!(
                    "forgot {} consent record(s) of {child} in {target}",
                    f.consents
                )
            }
            Command::Forget(who, route) => {
                let operator = unix_operator();
                let f = forget_audited(
                    store.as_ref(),
                    keys,
                    &who,
                    route.as_deref(),
                    crate::clock::unix_now(),
                    Via::Cli(&operator),
                )
                .await?;
                let sessions = if f.route.is_some() {
                    "were left open (an erasure limited to one route)"
                } else if f.sessions_revoked {
                    "are revoked on every instance sharing it"
                } else {
                    "were not revoked (no identifier given)"
                };
                format!(
                    "forgot {} account record(s){} and {} ifree member record(s) in {target}; \
                     {} guardian consent record(s) of theirs as a child; the person's sessions \
                     {sessions}",
                    f.accounts,
                    f.route
                        .as_deref()
                        .map(|r| format!(" on route {r}"))
                        .unwrap_or_default(),
                    f.ifree_members,
                    f.consents,
                )
            }
        })
    })
}

/// How often the purge runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The background task that brings the store up to this release's form at start
/// ([`Store::migrate`]), then purges every record past its lifetime ([`Store::purge`]) every
/// [`PURGE_EVERY`], under the retention the current config sets.
pub struct Purger {
    pub store: Arc<dyn Store>,
    pub live: Arc<arc_swap::ArcSwap<crate::live::Live>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Purger {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut migrated = false;
        loop {
            let live = self.live.load_full();
            if !migrated {
                match self.store.migrate(&live.cfg.session.hash_key).await {
                    Ok(n) => {
                        migrated = true;
                        if n > 0 {
                            tracing::info!(records = n, "records: migrated to this release's form");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "records: cannot migrate the store yet"),
                }
            }
            match self.store.purge(&live.cfg.records.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "records: records past their lifetime purged"),
                Err(e) => tracing::warn!(error = %e, "records: cannot purge"),
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(PURGE_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_ids_and_children_as_verigate_spells_them() {
        for ok in ["gc_Q2x9-_abc", "a"] {
            assert!(check_consent_id(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(129);
        for bad in [
            "",
            " gc_x",
            "gc_x ",
            "gc/x",
            "\"gc_x\"",
            "gc%20x",
            long.as_str(),
        ] {
            assert!(check_consent_id(bad).is_err(), "{bad:?}");
        }
        let person = "A".repeat(32);
        for ok in [person.as_str(), "stated:Zk3-_9"] {
            assert!(check_consent_child(ok).is_ok(), "{ok}");
        }
        let short = "A".repeat(31);
        for bad in [
            "",
            "stated:",
            "stated:a b",
            "Stated:x",
            "stated",
            short.as_str(),
        ] {
            assert!(check_consent_child(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_consent_record_is_shown_with_every_field_and_its_time() {
        let r = ConsentRecord {
            id: "gc_1".into(),
            child: "stated:k".into(),
            child_stated_birth: Some("2014-03-01".into()),
            guardian: "g".into(),
            provider: "portone".into(),
            stated_relation: None,
            route: "signup".into(),
            text_version: "v2".into(),
            at_ms: 1_796_619_672_345,
        };
        let v = consent_json(&r);
        assert_eq!(v["at"], "2026-12-07T05:01:12.345Z");
        assert_eq!(v["stated_relation"], serde_json::Value::Null);
        let fields = serde_json::to_value(&r).unwrap();
        for (k, want) in fields.as_object().unwrap() {
            assert_eq!(&v[k], want, "{k}");
        }
    }
}
