//! Embedded SQLite store: one file, WAL, every write synced (`synchronous=FULL`) before it is
//! acknowledged, so a crash (kill -9 included: tested) loses nothing acknowledged, nor does a
//! power loss as far as SQLite's WAL+FULL guarantee and the disk's fsync hold (not tested).
//! Calls run on tokio's blocking pool; several processes on one host may share the file.

use super::{
    looks_hashed, now_ms, ConsentRecord, KeyExchange, Log, MemberRecord, Person, PersonRef,
    Registration, Reservation, Retention, Revocation, Store, StoreError,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    claims: AtomicU64,
}

fn err(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("sqlite: {e}"))
}

const SCHEMA: &str = "
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
-- A deleted record is overwritten, not left in a free page (an erasure must erase).
PRAGMA secure_delete=ON;
CREATE TABLE IF NOT EXISTS used_results (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS accounts (
    route TEXT NOT NULL,
    person TEXT NOT NULL,
    unique_in_site TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'done')),
    expires_at INTEGER,
    created_ms INTEGER,
    used_ms INTEGER,
    PRIMARY KEY (route, person)
);
CREATE INDEX IF NOT EXISTS accounts_uis ON accounts (unique_in_site);
CREATE TABLE IF NOT EXISTS members (
    member TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    passcode TEXT,
    ubifill TEXT,
    -- Pending (key exchanged, not registered) until this UNIX ms; NULL once registered.
    pending_until INTEGER,
    -- The owner: keyed CI hash and the per-site id's keyed hash (an erasure finds them).
    person TEXT,
    uis TEXT,
    created_ms INTEGER,
    used_ms INTEGER
);
CREATE TABLE IF NOT EXISTS revoked (
    id TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_at ON revoked (at_ms);
CREATE TABLE IF NOT EXISTS kept (
    id TEXT PRIMARY KEY,
    sealed BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kept_expiry ON kept (expires_at);
CREATE TABLE IF NOT EXISTS rejoin (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rejoin_expiry ON rejoin (expires_at);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at_ms);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_at ON ledger (at_ms);
-- Guardian consents (PIPA 제22조의2): people as keyed hashes or random ids, never in clear.
CREATE TABLE IF NOT EXISTS consents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    child TEXT NOT NULL,
    child_stated_birth TEXT,
    guardian TEXT NOT NULL,
    provider TEXT NOT NULL,
    stated_relation TEXT,
    route TEXT NOT NULL,
    text_version TEXT NOT NULL,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS consents_child ON consents (child);
CREATE INDEX IF NOT EXISTS consents_at ON consents (at_ms);
-- One row, rewritten by `/readyz` to prove the store can write.
CREATE TABLE IF NOT EXISTS write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at_ms INTEGER NOT NULL
);
";

/// A consent record's columns, in [`consent_row`]'s order.
const CONSENT_COLUMNS: &str =
    "id, child, child_stated_birth, guardian, provider, stated_relation, route, text_version, at_ms";

fn consent_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConsentRecord> {
    Ok(ConsentRecord {
        id: r.get(0)?,
        child: r.get(1)?,
        child_stated_birth: r.get(2)?,
        guardian: r.get(3)?,
        provider: r.get(4)?,
        stated_relation: r.get(5)?,
        route: r.get(6)?,
        text_version: r.get(7)?,
        at_ms: r.get(8)?,
    })
}

/// How long the write probe waits for a lock another process holds before it calls the store
/// locked (decisions wait up to 5 s; readiness answers sooner).
const PROBE_BUSY: Duration = Duration::from_secs(1);
/// The connection's lock wait for every other statement.
const BUSY: Duration = Duration::from_secs(5);

/// Whether the store at `path` could be opened for writing, without creating or changing
/// anything (`verigate check`): an existing database opens read-write; a new one needs a
/// directory that exists and takes new files.
pub fn check_path(path: &str) -> Result<(), StoreError> {
    use rusqlite::OpenFlags;
    let p = std::path::Path::new(path);
    let open = |e: &dyn std::fmt::Display| StoreError::Open(format!("{path}: {e}"));
    if path.ends_with('/') || path.ends_with(std::path::MAIN_SEPARATOR) {
        return Err(open(&"names a directory, not a database file"));
    }
    if p.exists() {
        if !p.is_file() {
            return Err(open(&"is not a regular file"));
        }
        let conn = Connection::open_with_flags(
            p,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open(&e))?;
        conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
            .map_err(|e| open(&e))?;
        // Writable: a write lock taken and given back changes nothing (SQLite opens a file
        // it may not write read-only, without a word).
        conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| open(&e))?;
        return Ok(());
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(open(&format!("directory {} does not exist", dir.display())));
    }
    // A probe file proves the directory takes new files (permissions, read-only mounts).
    let probe = dir.join(format!(".verigate-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .map_err(|e| open(&format!("cannot create files in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The schema version this release writes (`PRAGMA user_version`):
/// 0: releases up to 6d07646 (no version kept); 1: accounts and members carry creation and
/// last-use times, members their owner; 2: the data migration ran (per-site ids kept in clear
/// by releases before the DI was hashed are keyed hashes); 3: guardian consent records
/// (`consents`; a database of version 2 gains the table at open, and its version with it).
pub const SCHEMA_VERSION: i64 = 3;

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare(&format!(
        "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
    ))?
    .exists(params![column])
}

/// Bring a database made by an earlier version up to schema version 1 (the columns); the data
/// migration that needs the hash key is [`Store::migrate`]. A database of a later release is
/// refused: this one would not know what its records mean.
fn migrate(conn: &Connection) -> rusqlite::Result<std::result::Result<(), String>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Ok(Err(format!(
            "schema version {version} was written by a later verigate (this one knows up to \
             {SCHEMA_VERSION}): run that release, or restore a backup"
        )));
    }
    // Members gained `pending_until` (an older pending member, without one, counts as
    // expired).
    let now = now_ms();
    for (table, column, kind) in [
        ("members", "pending_until", "INTEGER"),
        ("members", "person", "TEXT"),
        ("members", "uis", "TEXT"),
        ("members", "created_ms", "INTEGER"),
        ("members", "used_ms", "INTEGER"),
        ("accounts", "created_ms", "INTEGER"),
        ("accounts", "used_ms", "INTEGER"),
    ] {
        if !has_column(conn, table, column)? {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    // Records of before carry no time: their lifetime starts at the migration.
    conn.execute(
        "UPDATE accounts SET created_ms = ?1 WHERE created_ms IS NULL",
        params![now],
    )?;
    conn.execute(
        "UPDATE members SET created_ms = ?1 WHERE created_ms IS NULL",
        params![now],
    )?;
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS members_pending ON members (pending_until) WHERE passcode IS NULL;
         CREATE INDEX IF NOT EXISTS members_person ON members (person);
         CREATE INDEX IF NOT EXISTS members_uis ON members (uis);",
    )?;
    if version < 1 {
        conn.execute_batch("PRAGMA user_version = 1")?;
    }
    // Version 3 adds the `consents` table only (made by SCHEMA at open, as on a new database):
    // a database whose data migration ran (2) is at 3 now. One of before 2 gets there by the
    // data migration ([`Store::migrate`]), which needs the hash key.
    if version == 2 {
        conn.execute_batch("PRAGMA user_version = 3")?;
    }
    Ok(Ok(()))
}

impl SqliteStore {
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open(format!("{path}: {e}")))?;
        Self::with_conn(path, conn)
    }

    /// Open the database at `path` only if it exists (the record commands: a command that
    /// creates an empty database where it stands would "forget" nothing and say it did).
    pub fn open_existing(path: &str) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen) if !std::path::Path::new(path).exists() => {
                StoreError::Open(format!(
                    "{path}: no such database (verigate creates it when the service first \
                     starts; check store.path and the config file given with -c)"
                ))
            }
            _ => StoreError::Open(format!("{path}: {e}")),
        })?;
        Self::with_conn(path, conn)
    }

    fn with_conn(path: &str, conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(BUSY)
            .map_err(|e| StoreError::Open(format!("{path}: {e}")))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| StoreError::Open(format!("{path}: {e}")))?;
        migrate(&conn)
            .map_err(|e| StoreError::Open(format!("{path}: {e}")))?
            .map_err(|e| StoreError::Open(format!("{path}: {e}")))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            claims: AtomicU64::new(0),
        })
    }

    /// The journal mode and `synchronous` level in effect on this store's connection, as
    /// SQLite reports them (`("wal", 2)`: WAL, FULL). `tests/it/store.rs` reads them to prove
    /// the durability docs/guide/redis.md claims; `PRAGMA journal_mode=WAL` falls back
    /// silently when it cannot switch, so what was asked for is not proof.
    pub async fn pragmas(&self) -> Result<(String, i64), StoreError> {
        self.with(|c| {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
            Ok((mode, sync))
        })
        .await
    }

    async fn with<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .map_err(|_| StoreError::Unavailable("sqlite lock poisoned".into()))?;
            f(&mut c).map_err(err)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task: {e}")))?
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let key = key.to_string();
        let sweep = self.claims.fetch_add(1, Ordering::Relaxed) % 1000 == 999;
        self.with(move |c| {
            let now = now_ms();
            if sweep {
                c.execute(
                    "DELETE FROM used_results WHERE expires_at <= ?1",
                    params![now],
                )?;
            }
            let n = c.execute(
                "INSERT INTO used_results (key, expires_at) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE used_results.expires_at <= ?3",
                params![key, now + ttl.as_millis() as i64, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn reserve_account(
        &self,
        route: &str,
        person: Person<'_>,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let (route, ci, uis) = (
            route.to_string(),
            person.ci_hash.to_string(),
            person.unique_in_site.to_string(),
        );
        self.with(move |c| {
            let now = now_ms();
            let tx = c.transaction()?;
            let n = tx.execute(
                "INSERT INTO accounts (route, person, unique_in_site, state, expires_at)
                 VALUES (?1, ?2, ?3, 'reserved', ?4)
                 ON CONFLICT (route, person) DO UPDATE SET
                   state = 'reserved', unique_in_site = excluded.unique_in_site,
                   expires_at = excluded.expires_at
                 WHERE accounts.state = 'reserved' AND accounts.expires_at <= ?5",
                params![route, ci, uis, now + ttl.as_millis() as i64, now],
            )?;
            let out = if n == 1 {
                Reservation::Reserved
            } else {
                let state: Option<String> = tx
                    .query_row(
                        "SELECT state FROM accounts WHERE route = ?1 AND person = ?2",
                        params![route, ci],
                        |r| r.get(0),
                    )
                    .optional()?;
                match state.as_deref() {
                    Some("done") => {
                        // The record refused a second signup: the person is still about.
                        tx.execute(
                            "UPDATE accounts SET used_ms = ?3 WHERE route = ?1 AND person = ?2",
                            params![route, ci, now],
                        )?;
                        Reservation::Taken
                    }
                    _ => Reservation::InProgress,
                }
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn commit_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let (route, ci) = (route.to_string(), ci_hash.to_string());
        self.with(move |c| {
            c.execute(
                "UPDATE accounts SET state = 'done', expires_at = NULL, created_ms = ?3, used_ms = ?3
                 WHERE route = ?1 AND person = ?2",
                params![route, ci, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    async fn release_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let (route, ci) = (route.to_string(), ci_hash.to_string());
        self.with(move |c| {
            c.execute(
                "DELETE FROM accounts WHERE route = ?1 AND person = ?2 AND state = 'reserved'",
                params![route, ci],
            )?;
            Ok(())
        })
        .await
    }

    async fn forget(&self, who: &PersonRef, route: Option<&str>) -> Result<u64, StoreError> {
        let who = who.clone();
        let route = route.map(str::to_string);
        self.with(move |c| {
            // `?2 IS NULL`: every route.
            let n = match &who {
                PersonRef::CiHash(h) => c.execute(
                    "DELETE FROM accounts WHERE person = ?1 AND (?2 IS NULL OR route = ?2)",
                    params![h, route],
                )?,
                PersonRef::UniqueInSite(u) => c.execute(
                    "DELETE FROM accounts WHERE unique_in_site = ?1 AND (?2 IS NULL OR route = ?2)",
                    params![u, route],
                )?,
            };
            // The WAL still holds the pages as they were before: copy it into the database
            // and empty it, so the erased rows are nowhere in the files.
            c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(n as u64)
        })
        .await
    }

    async fn consent_put(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        let r = rec.clone();
        self.with(move |c| {
            // `id` is UNIQUE: an existing id is an error, never a replaced proof.
            c.execute(
                "INSERT INTO consents (id, child, child_stated_birth, guardian, provider,
                   stated_relation, route, text_version, at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    r.id,
                    r.child,
                    r.child_stated_birth,
                    r.guardian,
                    r.provider,
                    r.stated_relation,
                    r.route,
                    r.text_version,
                    r.at_ms
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn consent_get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {CONSENT_COLUMNS} FROM consents WHERE id = ?1"),
                params![id],
                consent_row,
            )
            .optional()
        })
        .await
    }

    async fn consents_of(&self, child: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let child = child.to_string();
        self.with(move |c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT {CONSENT_COLUMNS} FROM consents WHERE child = ?1 ORDER BY at_ms, seq"
            ))?;
            let rows = q.query_map(params![child], consent_row)?;
            rows.collect()
        })
        .await
    }

    async fn consent_forget(&self, child: &str) -> Result<u64, StoreError> {
        let child = child.to_string();
        self.with(move |c| {
            let n = c.execute(
                "DELETE FROM consents WHERE child = ?1 AND ?1 != ''",
                params![child],
            )?;
            if n > 0 {
                // The erased rows are nowhere in the files, the WAL included.
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn forget_members(&self, who: &PersonRef) -> Result<u64, StoreError> {
        let who = who.clone();
        self.with(move |c| {
            let n = match &who {
                PersonRef::CiHash(h) => c.execute(
                    "DELETE FROM members WHERE person = ?1 AND ?1 != ''",
                    params![h],
                )?,
                PersonRef::UniqueInSite(u) => c.execute(
                    "DELETE FROM members WHERE uis = ?1 AND ?1 != ''",
                    params![u],
                )?,
            };
            if n > 0 {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn member_used(&self, member: &str, owner: Person<'_>) -> Result<(), StoreError> {
        let (member, ci, uis) = (
            member.to_string(),
            owner.ci_hash.to_string(),
            owner.unique_in_site.to_string(),
        );
        self.with(move |c| {
            c.execute(
                "UPDATE members SET used_ms = ?2, person = ?3, uis = ?4
                 WHERE member = ?1 AND passcode IS NOT NULL",
                params![member, now_ms(), ci, uis],
            )?;
            Ok(())
        })
        .await
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM accounts WHERE state = 'done'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
        .await
    }

    async fn member_key(
        &self,
        member: &str,
        sealed_key: &str,
        ttl: Duration,
        max_pending: u64,
    ) -> Result<KeyExchange, StoreError> {
        let (member, key) = (member.to_string(), sealed_key.to_string());
        let now = now_ms();
        let until = now + ttl.as_millis() as i64;
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let registered: Option<bool> = tx
                .query_row(
                    "SELECT passcode IS NOT NULL FROM members WHERE member = ?1",
                    params![member],
                    |r| r.get(0),
                )
                .optional()?;
            if registered == Some(true) {
                return Ok(KeyExchange::Registered);
            }
            tx.execute(
                "DELETE FROM members WHERE passcode IS NULL AND (pending_until IS NULL OR pending_until <= ?1)",
                params![now],
            )?;
            let others: i64 = tx.query_row(
                "SELECT COUNT(*) FROM members WHERE passcode IS NULL AND member != ?1",
                params![member],
                |r| r.get(0),
            )?;
            let pending_already = tx
                .prepare("SELECT 1 FROM members WHERE member = ?1")?
                .exists(params![member])?;
            if !pending_already && others as u64 >= max_pending {
                return Ok(KeyExchange::Full);
            }
            tx.execute(
                "INSERT INTO members (member, key, pending_until, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (member) DO UPDATE SET key = excluded.key, pending_until = excluded.pending_until
                 WHERE members.passcode IS NULL",
                params![member, key, until, now],
            )?;
            tx.commit()?;
            Ok(KeyExchange::Issued)
        })
        .await
    }

    async fn member_register(
        &self,
        member: &str,
        sealed_key: &str,
        sealed_passcode: &str,
        sealed_ubifill: Option<&str>,
        owner: Person<'_>,
    ) -> Result<Registration, StoreError> {
        let (member, key, pass, ubi) = (
            member.to_string(),
            sealed_key.to_string(),
            sealed_passcode.to_string(),
            sealed_ubifill.map(str::to_string),
        );
        let (ci, uis) = (owner.ci_hash.to_string(), owner.unique_in_site.to_string());
        let now = now_ms();
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let row: Option<(String, bool, Option<i64>)> = tx
                .query_row(
                    "SELECT key, passcode IS NOT NULL, pending_until FROM members WHERE member = ?1",
                    params![member],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let answer = match row {
                Some((_, true, _)) => Registration::AlreadyRegistered,
                Some((stored, false, Some(until))) if until > now => {
                    if stored != key {
                        Registration::KeyReplaced
                    } else {
                        tx.execute(
                            "UPDATE members SET passcode = ?2, ubifill = ?3, pending_until = NULL,
                               person = ?4, uis = ?5, created_ms = ?6, used_ms = ?6
                             WHERE member = ?1",
                            params![member, pass, ubi, ci, uis, now],
                        )?;
                        Registration::Registered
                    }
                }
                _ => Registration::Unknown,
            };
            tx.commit()?;
            Ok(answer)
        })
        .await
    }

    async fn member_get(&self, member: &str) -> Result<Option<MemberRecord>, StoreError> {
        let member = member.to_string();
        let now = now_ms();
        self.with(move |c| {
            c.query_row(
                "SELECT key, passcode, ubifill FROM members
                 WHERE member = ?1 AND (passcode IS NOT NULL OR pending_until > ?2)",
                params![member, now],
                |r| {
                    Ok(MemberRecord {
                        key: r.get(0)?,
                        passcode: r.get(1)?,
                        ubifill: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn revoke(&self, id: &str, until: i64) -> Result<(), StoreError> {
        let id = id.to_string();
        let now = now_ms();
        self.with(move |c| {
            c.execute("DELETE FROM revoked WHERE until * 1000 <= ?1", params![now])?;
            // Revoked again (a person forgotten a second time): the newer time counts.
            c.execute(
                "INSERT INTO revoked (id, until, at_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET
                   until = max(revoked.until, excluded.until), at_ms = excluded.at_ms",
                params![id, until, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn revocations(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let now = now_ms();
        self.with(move |c| {
            let mut q = c.prepare_cached(
                "SELECT id, until, at_ms FROM revoked WHERE at_ms >= ?1 AND until * 1000 > ?2 ORDER BY at_ms",
            )?;
            let rows = q.query_map(params![since_ms, now], |r| {
                Ok(Revocation {
                    id: r.get(0)?,
                    until: r.get(1)?,
                    at_ms: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn keep_request(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
        max_live: u64,
    ) -> Result<bool, StoreError> {
        let (id, sealed) = (id.to_string(), sealed.to_vec());
        let now = now_ms();
        let until = now + ttl.as_millis() as i64;
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM kept WHERE expires_at <= ?1", params![now])?;
            let live: i64 = tx.query_row(
                "SELECT COUNT(*) FROM kept WHERE id != ?1",
                params![id],
                |r| r.get(0),
            )?;
            if live as u64 >= max_live {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO kept (id, sealed, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, expires_at = excluded.expires_at",
                params![id, sealed, until],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn take_request(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let id = id.to_string();
        let now = now_ms();
        self.with(move |c| {
            // One statement: the row goes as it is read, so only one caller ever gets it.
            let taken: Option<(Vec<u8>, i64)> = c
                .query_row(
                    "DELETE FROM kept WHERE id = ?1 RETURNING sealed, expires_at",
                    params![id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(taken.filter(|(_, until)| *until > now).map(|(v, _)| v))
        })
        .await
    }

    async fn account_persons(&self, unique_in_site: &str) -> Result<Vec<String>, StoreError> {
        let uis = unique_in_site.to_string();
        self.with(move |c| {
            let mut q = c.prepare_cached(
                "SELECT DISTINCT person FROM accounts WHERE unique_in_site = ?1 ORDER BY person",
            )?;
            let rows = q.query_map(params![uis], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn mark_rejoin(&self, id: &str, at_ms: i64, until_ms: i64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.with(move |c| {
            c.execute("DELETE FROM rejoin WHERE expires_at <= ?1", params![at_ms])?;
            c.execute(
                "INSERT INTO rejoin (id, at_ms, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms,
                   expires_at = max(rejoin.expires_at, excluded.expires_at)",
                params![id, at_ms, until_ms],
            )?;
            Ok(())
        })
        .await
    }

    async fn rejoin_since(&self, ids: &[String]) -> Result<Option<i64>, StoreError> {
        let ids = ids.to_vec();
        let now = now_ms();
        self.with(move |c| {
            let mut latest: Option<i64> = None;
            let mut q =
                c.prepare_cached("SELECT at_ms FROM rejoin WHERE id = ?1 AND expires_at > ?2")?;
            for id in &ids {
                let at: Option<i64> = q.query_row(params![id, now], |r| r.get(0)).optional()?;
                latest = latest.max(at);
            }
            Ok(latest)
        })
        .await
    }

    async fn log_append(&self, log: Log, at_ms: i64, line: &str) -> Result<(), StoreError> {
        let line = line.to_string();
        let table = log.name();
        self.with(move |c| {
            c.execute(
                &format!("INSERT INTO {table} (at_ms, line) VALUES (?1, ?2)"),
                params![at_ms, line],
            )?;
            Ok(())
        })
        .await
    }

    async fn log_forget(&self, log: Log, person: &str) -> Result<u64, StoreError> {
        let needle = super::person_field(person);
        let table = log.name();
        self.with(move |c| {
            let n = c.execute(
                &format!("DELETE FROM {table} WHERE instr(line, ?1) > 0"),
                params![needle],
            )?;
            if n > 0 {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn log_lines(&self, log: Log, since_ms: i64) -> Result<Vec<String>, StoreError> {
        let table = log.name();
        self.with(move |c| {
            let mut q = c.prepare_cached(&format!(
                "SELECT line FROM {table} WHERE at_ms >= ?1 ORDER BY seq"
            ))?;
            let rows = q.query_map(params![since_ms], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn purge(&self, retention: &Retention) -> Result<u64, StoreError> {
        let now = now_ms();
        let before = |d: Option<Duration>| d.map(|d| now - d.as_millis() as i64);
        let consents = before(retention.consents);
        let (accounts, members, audit, ledger) = (
            before(retention.accounts),
            before(retention.ifree_members),
            now - retention.audit.as_millis() as i64,
            now - retention.ledger.as_millis() as i64,
        );
        self.with(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // A record without a time (written by an earlier release sharing the file during
            // an upgrade) gets this one: its lifetime starts now, never at the epoch.
            tx.execute(
                "UPDATE accounts SET created_ms = ?1 WHERE created_ms IS NULL AND state = 'done'",
                params![now],
            )?;
            tx.execute(
                "UPDATE members SET created_ms = ?1 WHERE created_ms IS NULL",
                params![now],
            )?;
            let mut n = 0;
            n += tx.execute(
                "DELETE FROM used_results WHERE expires_at <= ?1",
                params![now],
            )?;
            n += tx.execute(
                "DELETE FROM accounts WHERE state = 'reserved' AND expires_at <= ?1",
                params![now],
            )?;
            if let Some(t) = accounts {
                n += tx.execute(
                    "DELETE FROM accounts WHERE state = 'done'
                     AND max(coalesce(created_ms, 0), coalesce(used_ms, 0)) <= ?1",
                    params![t],
                )?;
            }
            n += tx.execute(
                "DELETE FROM members WHERE passcode IS NULL
                 AND (pending_until IS NULL OR pending_until <= ?1)",
                params![now],
            )?;
            if let Some(t) = members {
                n += tx.execute(
                    "DELETE FROM members WHERE passcode IS NOT NULL
                     AND max(coalesce(created_ms, 0), coalesce(used_ms, 0)) <= ?1",
                    params![t],
                )?;
            }
            n += tx.execute("DELETE FROM revoked WHERE until * 1000 <= ?1", params![now])?;
            n += tx.execute("DELETE FROM kept WHERE expires_at <= ?1", params![now])?;
            n += tx.execute("DELETE FROM rejoin WHERE expires_at <= ?1", params![now])?;
            n += tx.execute("DELETE FROM audit WHERE at_ms <= ?1", params![audit])?;
            n += tx.execute("DELETE FROM ledger WHERE at_ms <= ?1", params![ledger])?;
            if let Some(t) = consents {
                // Counted from the consent.
                n += tx.execute("DELETE FROM consents WHERE at_ms <= ?1", params![t])?;
            }
            tx.commit()?;
            if n > 0 {
                // What went is nowhere in the files, the WAL included.
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(n as u64)
        })
        .await
    }

    async fn migrate(&self, hash_key: &[u8; 32]) -> Result<u64, StoreError> {
        let key = *hash_key;
        self.with(move |c| {
            let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version >= SCHEMA_VERSION {
                return Ok(0);
            }
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            // Per-site ids releases before the hashed DI kept in clear: their keyed hash now.
            let clear: Vec<(String, String, String)> = {
                let mut q = tx.prepare(
                    "SELECT route, person, unique_in_site FROM accounts WHERE unique_in_site != ''",
                )?;
                let rows = q.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|(_, _, u): &(String, String, String)| !looks_hashed(u))
                    .collect()
            };
            for (route, person, uis) in &clear {
                tx.execute(
                    "UPDATE accounts SET unique_in_site = ?3 WHERE route = ?1 AND person = ?2",
                    params![route, person, super::di_hash(&key, uis)],
                )?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
            tx.commit()?;
            if !clear.is_empty() {
                // The clear values are nowhere in the files any more.
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            Ok(clear.len() as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .map(|_| ())
        })
        .await
    }

    async fn probe_write(&self) -> Result<(), StoreError> {
        self.with(|c| {
            c.busy_timeout(PROBE_BUSY)?;
            let wrote = (|| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                tx.execute(
                    "INSERT INTO write_probe (id, at_ms) VALUES (1, ?1)
                     ON CONFLICT (id) DO UPDATE SET at_ms = excluded.at_ms",
                    params![now_ms()],
                )?;
                tx.commit()
            })();
            c.busy_timeout(BUSY)?;
            wrote
        })
        .await
    }
}
