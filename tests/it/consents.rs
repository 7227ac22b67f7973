//! Guardian consent records (PIPA 제22조의2) as the records keep and show them: the store on
//! every backend (put, get, a child's records, erasure, the purge), the SQLite file across a
//! restart of the real binary and from the previous release's schema, one Redis shared by two
//! instances, the admin API (`GET /consents/{id}`, `GET /consents?child=`, erasure) and the
//! CLI. The Redis parts use VERIGATE_TEST_REDIS with a prefix of their own.

use crate::common::*;
use crate::records::{
    api_forget, audit_lines, cli, contains, drop_prefix, every_backend, hash_key, shop_with_api,
    signup, store_bytes, user_version, StoreAt, TOKEN,
};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use verigate::store::{self, ConsentRecord, Store};

/// A child's person id as the records keep it (the keyed CI hash, `X-Verified-Person`).
fn person(ci: &str) -> String {
    verigate::session::keyed_hash(&hash_key(), "ci", ci)
}

fn record(id: &str, child: &str, at_ms: i64) -> ConsentRecord {
    ConsentRecord {
        id: id.to_string(),
        child: child.to_string(),
        child_stated_birth: child
            .starts_with("stated:")
            .then(|| "2014-03-01".to_string()),
        guardian: person("guardian-ci"),
        provider: "iamport".into(),
        stated_relation: Some("parent".into()),
        route: "signup".into(),
        text_version: "2026-12".into(),
        at_ms,
    }
}

/// A fresh consent id, as the flow makes them (`gc_` and 22 URL-safe characters).
fn fresh_id() -> String {
    format!("gc_{:022}", rand::random::<u64>())
}

/// `GET path` on the admin listener `admin`, with `token`: status and JSON.
async fn admin_get(admin: SocketAddr, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = client().get(format!("http://{admin}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// What the admin API shows of `r`: every field, and the time in RFC 3339.
fn shown(r: &ConsentRecord) -> Value {
    json!({
        "id": r.id,
        "child": r.child,
        "child_stated_birth": r.child_stated_birth,
        "guardian": r.guardian,
        "provider": r.provider,
        "stated_relation": r.stated_relation,
        "route": r.route,
        "text_version": r.text_version,
        "at_ms": r.at_ms,
        "at": chrono::DateTime::from_timestamp_millis(r.at_ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Put, get, a child's records oldest first, an existing id refused, the purge by
/// `records.retention.consents` (counted from the consent), the erasure of a child: on memory,
/// SQLite and Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_records_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let child = person("child-ci");
    for (name, s, prefix) in every_backend(dir.path()) {
        let s = s.as_ref();
        let now = chrono::Utc::now().timestamp_millis();
        let old = record("gc_old", &child, now - 2 * 3600 * 1000);
        let new = record("gc_new", &child, now);
        let stated = record("gc_stated", "stated:Xy-z_0123", now);
        // Kept in another order than their times: read oldest first.
        for r in [&new, &old, &stated] {
            s.consent_put(r).await.unwrap();
        }
        let mut other = old.clone();
        other.child = person("someone-else");
        assert!(
            s.consent_put(&other).await.is_err(),
            "{name}: an existing id is never replaced"
        );
        assert_eq!(
            s.consent_get("gc_old").await.unwrap(),
            Some(old.clone()),
            "{name}"
        );
        assert_eq!(s.consent_get("gc_none").await.unwrap(), None, "{name}");
        assert_eq!(
            s.consents_of(&child).await.unwrap(),
            vec![old.clone(), new.clone()],
            "{name}"
        );
        assert_eq!(
            s.consents_of("stated:Xy-z_0123").await.unwrap(),
            vec![stated.clone()],
            "{name}"
        );
        assert!(s.consents_of("stated:nobody").await.unwrap().is_empty());

        // Until forgotten: the purge leaves them; an hour from the consent: the old one goes.
        let until_forgotten = store::Retention::default();
        assert_eq!(s.purge(&until_forgotten).await.unwrap(), 0, "{name}");
        assert_eq!(s.consents_of(&child).await.unwrap().len(), 2, "{name}");
        let hourly = store::Retention {
            consents: Some(hour),
            ..Default::default()
        };
        assert_eq!(s.purge(&hourly).await.unwrap(), 1, "{name}");
        assert_eq!(s.purge(&hourly).await.unwrap(), 0, "{name}: once");
        assert_eq!(s.consent_get("gc_old").await.unwrap(), None, "{name}");
        assert_eq!(
            s.consents_of(&child).await.unwrap(),
            vec![new.clone()],
            "{name}"
        );

        // The child's withdrawal: their records, not another child's.
        assert_eq!(s.consent_forget(&child).await.unwrap(), 1, "{name}");
        assert_eq!(s.consent_forget(&child).await.unwrap(), 0, "{name}");
        assert_eq!(s.consent_forget("").await.unwrap(), 0, "{name}");
        assert!(s.consents_of(&child).await.unwrap().is_empty(), "{name}");
        assert_eq!(s.consent_get("gc_new").await.unwrap(), None, "{name}");
        assert_eq!(
            s.consent_get("gc_stated").await.unwrap(),
            Some(stated.clone()),
            "{name}"
        );
        // A lifetime already over takes the rest.
        let none = store::Retention {
            consents: Some(Duration::ZERO),
            ..Default::default()
        };
        assert_eq!(s.purge(&none).await.unwrap(), 1, "{name}");
        assert_eq!(s.consent_get("gc_stated").await.unwrap(), None, "{name}");
        if let Some(p) = prefix {
            // Nothing is left under the prefix of a record, its indexes included.
            let url = redis_url().unwrap();
            let mut c = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{p}consent*"))
                .query(&mut c)
                .unwrap();
            assert!(keys.is_empty(), "{name}: left {keys:?}");
            drop_prefix(&p);
        }
    }
}

/// On Redis, concurrent puts of one id from many callers (two instances racing): exactly one
/// is kept, and the child's index holds it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_is_kept_once_under_concurrent_puts_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-consent-race-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let cfg = store::RedisConfig::url(url.clone(), prefix.clone());
    let a = std::sync::Arc::new(store::redis::RedisStore::new(&cfg).unwrap());
    let b = std::sync::Arc::new(store::redis::RedisStore::new(&cfg).unwrap());
    let child = person("raced-child");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let mut r = record("gc_raced", &child, 1_000 + i);
        r.text_version = format!("v{i}");
        tasks.push(tokio::spawn(async move { s.consent_put(&r).await.is_ok() }));
    }
    let mut kept = 0;
    for t in tasks {
        kept += usize::from(t.await.unwrap());
    }
    assert_eq!(kept, 1, "exactly one put of the id succeeded");
    let of = a.consents_of(&child).await.unwrap();
    assert_eq!(of.len(), 1);
    assert_eq!(
        Some(of[0].clone()),
        b.consent_get("gc_raced").await.unwrap()
    );
    drop_prefix(&prefix);
}

/// The real binary on SQLite: a record written while it runs is read through its admin API
/// after a restart; unknown and malformed ids, a child's list, the token; the erasure by
/// person id, by per-site id and by a stated child's id takes the child's records, counts them
/// in the answer and the audit line, and leaves no trace of them in the files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_records_survive_a_restart_and_go_with_the_child_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let cfg = dir.path().join("verigate.yaml");
    let text = shop_with_api(Storage::sqlite(&db), dir.path()).to_yaml(NO_SANDBOX, loopback());
    std::fs::write(&cfg, text).unwrap();

    let first = start_binary(&cfg);
    let s = store::sqlite::SqliteStore::open(&db.display().to_string()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let child = person("child-one");
    let by_site = person("child-two");
    let site_id = "site-id-of-child-two";
    let (one, two) = (fresh_id(), fresh_id());
    let rec_one = record(&one, &child, now - 1000);
    let rec_two = record(&two, &child, now);
    let rec_site = record(&fresh_id(), &by_site, now);
    let rec_stated = record(&fresh_id(), "stated:AbC-12_z", now);
    for r in [&rec_one, &rec_two, &rec_site, &rec_stated] {
        s.consent_put(r).await.unwrap();
    }
    // The one-account record maps the per-site id to the child's person id (as a signup does).
    signup(
        &s,
        "signup",
        &by_site,
        &store::di_hash(&hash_key(), site_id),
    )
    .await;
    drop(s);
    drop(first);

    let second = start_binary(&cfg);
    let admin = second.admin.unwrap();
    let (status, got) = admin_get(admin, Some(TOKEN), &format!("/consents/{one}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["consent"], shown(&rec_one));
    let (status, got) = admin_get(admin, Some(TOKEN), &format!("/consents?child={child}")).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["count"], 2);
    assert_eq!(got["consents"], json!([shown(&rec_one), shown(&rec_two)]));
    let (status, got) = admin_get(admin, Some(TOKEN), "/consents?child=stated%3AAbC-12_z").await;
    assert_eq!((status, got["count"].clone()), (200, json!(1)), "{got}");
    let (status, got) = admin_get(
        admin,
        Some(TOKEN),
        &format!("/consents?child={}", person("nobody")),
    )
    .await;
    assert_eq!((status, got["count"].clone()), (200, json!(0)), "{got}");

    // Unhappy paths: unknown id, malformed ids and children, no token, a wrong method.
    let (status, got) = admin_get(admin, Some(TOKEN), "/consents/gc_unknown").await;
    assert_eq!(
        (status, got["error"].as_str()),
        (404, Some("not_found")),
        "{got}"
    );
    for bad in [
        "/consents/gc%20x",
        "/consents/",
        "/consents/a%22b",
        "/consents/x/y",
    ] {
        let (status, got) = admin_get(admin, Some(TOKEN), bad).await;
        assert_eq!(
            (status, got["error"].as_str()),
            (400, Some("not_an_id")),
            "{bad}: {got}"
        );
    }
    for bad in [
        "/consents?child=short",
        "/consents?child=stated%3A",
        "/consents?child=stated%3Aa%20b",
    ] {
        let (status, got) = admin_get(admin, Some(TOKEN), bad).await;
        assert_eq!(
            (status, got["error"].as_str()),
            (400, Some("not_an_id")),
            "{bad}: {got}"
        );
    }
    let (status, got) = admin_get(admin, Some(TOKEN), "/consents").await;
    assert_eq!(
        (status, got["error"].as_str()),
        (400, Some("bad_request")),
        "{got}"
    );
    let (status, got) = admin_get(admin, Some(TOKEN), "/consents?kid=x").await;
    assert_eq!(
        (status, got["error"].as_str()),
        (400, Some("bad_request")),
        "{got}"
    );
    let (status, _) = admin_get(admin, None, &format!("/consents/{one}")).await;
    assert_eq!(status, 401);
    let (status, _) = admin_get(
        admin,
        Some("wrong-token"),
        &format!("/consents?child={child}"),
    )
    .await;
    assert_eq!(status, 401);
    let r = client()
        .delete(format!("http://{admin}/consents/{one}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);

    // Erasure: by person id, by per-site id (through the account record), by stated id.
    let (status, got) = api_forget(admin, Some(TOKEN), json!({ "person": child })).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["forgot"]["consents"], 2, "{got}");
    let (status, got) = api_forget(admin, Some(TOKEN), json!({ "unique_in_site": site_id })).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["forgot"]["consents"], 1, "{got}");
    assert_eq!(got["forgot"]["accounts"], 1, "{got}");
    let (status, got) = api_forget(
        admin,
        Some(TOKEN),
        json!({ "consent_child": "stated:AbC-12_z" }),
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["forgot"]["consents"], 1, "{got}");
    assert_eq!(got["forgot"]["accounts"], 0, "{got}");
    let (status, got) = api_forget(
        admin,
        Some(TOKEN),
        json!({ "consent_child": "stated:AbC-12_z" }),
    )
    .await;
    assert_eq!(
        (status, got["forgot"]["consents"].clone()),
        (200, json!(0)),
        "{got}"
    );
    // A stated child's id only; never with a person's, nor limited to a route.
    for body in [
        json!({ "consent_child": child }),
        json!({ "consent_child": "stated:a b" }),
    ] {
        let (status, got) = api_forget(admin, Some(TOKEN), body.clone()).await;
        assert_eq!(
            (status, got["error"].as_str()),
            (400, Some("not_an_id")),
            "{body}: {got}"
        );
    }
    for body in [
        json!({ "consent_child": "stated:x", "person": child }),
        json!({ "consent_child": "stated:x", "route": "signup" }),
    ] {
        let (status, got) = api_forget(admin, Some(TOKEN), body.clone()).await;
        assert_eq!(
            (status, got["error"].as_str()),
            (400, Some("bad_request")),
            "{body}: {got}"
        );
    }
    for r in [&rec_one, &rec_two, &rec_site, &rec_stated] {
        let (status, _) = admin_get(admin, Some(TOKEN), &format!("/consents/{}", r.id)).await;
        assert_eq!(status, 404, "{} erased", r.id);
    }
    drop(second);

    let lines = audit_lines(&StoreAt::Sqlite(dir.path().to_path_buf())).await;
    let counts: Vec<(String, u64)> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            (
                v["asked_by"].as_str().unwrap().to_string(),
                v["removed"]["consents"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("person".to_string(), 2),
            ("unique_in_site".to_string(), 1),
            ("consent_child".to_string(), 1),
            ("consent_child".to_string(), 0),
        ]
    );
    let all = lines.join("\n");
    assert!(
        !all.contains("stated:AbC"),
        "the audit line holds a keyed hash, not the id"
    );
    let bytes = store_bytes(&StoreAt::Sqlite(dir.path().to_path_buf()));
    for r in [&rec_one, &rec_two, &rec_site, &rec_stated] {
        assert!(!contains(&bytes, &r.id), "{} is nowhere in the files", r.id);
    }
    assert!(!contains(&bytes, "stated:AbC-12_z"));
}

/// Two instances on one Redis (a prefix of the test's own): a record one keeps is read
/// through the other's admin API; an erasure through one is seen by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_show_one_consent_record() {
    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-consent-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::redis(&url).prefix(&prefix);
    let a = Env::with(shop_with_api(storage.clone(), dir.path())).await;
    let b = Env::with(shop_with_api(storage, dir.path())).await;
    let s = store::redis::RedisStore::new(&store::RedisConfig::url(url.clone(), prefix.clone()))
        .unwrap();
    let child = person("shared-child");
    let rec = record(&fresh_id(), &child, chrono::Utc::now().timestamp_millis());
    s.consent_put(&rec).await.unwrap();
    for admin in [a.admin, b.admin] {
        let (status, got) = admin_get(admin, Some(TOKEN), &format!("/consents/{}", rec.id)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["consent"], shown(&rec));
    }
    let (status, got) = api_forget(b.admin, Some(TOKEN), json!({ "person": child })).await;
    assert_eq!(
        (status, got["forgot"]["consents"].clone()),
        (200, json!(1)),
        "{got}"
    );
    let (status, _) = admin_get(a.admin, Some(TOKEN), &format!("/consents/{}", rec.id)).await;
    assert_eq!(status, 404, "gone on the other instance too");
    let (status, got) = admin_get(a.admin, Some(TOKEN), &format!("/consents?child={child}")).await;
    assert_eq!((status, got["count"].clone()), (200, json!(0)), "{got}");
    let lines = audit_lines(&StoreAt::Redis(url.clone(), prefix.clone())).await;
    assert!(
        lines.iter().any(|l| l.contains(r#""consents":1"#)),
        "{lines:?}"
    );
    let bytes = store_bytes(&StoreAt::Redis(url.clone(), prefix.clone()));
    assert!(
        !contains(&bytes, &rec.id),
        "the record is nowhere under the prefix"
    );
    drop((a, b));
    drop_prefix(&prefix);
}

/// The CLI opens the service's store: `consents show` prints one record as JSON (an unknown id
/// fails, a malformed one too), `consents of` a child's records, and `accounts forget` takes
/// a child's records by person id or a stated child's by `--consent-child`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let config = dir.path().join("verigate.yaml");
    let text = Proxy::shop()
        .store(Storage::sqlite("./state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    std::fs::write(&config, text).unwrap();
    let s = store::sqlite::SqliteStore::open(&db.display().to_string()).unwrap();
    let child = person("cli-child");
    let now = chrono::Utc::now().timestamp_millis();
    let rec = record(&fresh_id(), &child, now);
    let stated = record(&fresh_id(), "stated:cli-kid", now);
    s.consent_put(&rec).await.unwrap();
    s.consent_put(&stated).await.unwrap();
    drop(s);
    let env = [("VG_HASH", HASH_KEY)];
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli(elsewhere.path(), &config, args, &env);

    let (code, out, err) = run(&["consents", "show", &rec.id]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, shown(&rec));
    let (code, _, err) = run(&["consents", "show", "gc_unknown"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no consent record gc_unknown in SQLite file"),
        "{err}"
    );
    let (code, _, err) = run(&["consents", "show", "gc bad"]);
    assert_eq!(code, 1);
    assert!(err.contains("not a consent record id"), "{err}");

    let (code, out, err) = run(&["consents", "of", &child]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with(&format!("1 consent record(s) of {child} in SQLite file ")));
    let v: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(v, shown(&rec));
    let (code, _, err) = run(&["consents", "of", "not-a-child"]);
    assert_eq!(code, 1);
    assert!(err.contains("neither an X-Verified-Person value"), "{err}");

    let (code, out, err) = run(&["accounts", "forget", "--consent-child", "stated:cli-kid"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("forgot 1 consent record(s) of stated:cli-kid in SQLite file "),
        "{out}"
    );
    let (code, _, err) = run(&["accounts", "forget", "--consent-child", &child]);
    assert_eq!(code, 1, "a verified child goes by person id");
    assert!(err.contains("forget a verified child by person"), "{err}");
    let (code, out, err) = run(&["accounts", "forget", "--person", &child]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("; 1 guardian consent record(s) of theirs as a child;"),
        "{out}"
    );
    let (code, out, _) = run(&["consents", "of", &child]);
    assert_eq!(code, 0);
    assert!(out.starts_with("0 consent record(s)"), "{out}");
    let audit = audit_lines(&StoreAt::Sqlite(dir.path().to_path_buf())).await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|l| l.contains(r#""via":"cli""#)));
}

/// The previous release's SQLite file (schema version 2, no `consents` table) upgrades in
/// place at open: version 3, its records as they were, consent records kept; the data
/// migration has nothing left to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_of_version_2_gains_consent_records_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(SCHEMA_V2).unwrap();
        c.execute(
            "INSERT INTO accounts VALUES ('signup', 'ci-v2', ?1, 'done', NULL, ?2, ?2)",
            rusqlite::params![
                store::di_hash(&hash_key(), "di-v2"),
                chrono::Utc::now().timestamp_millis()
            ],
        )
        .unwrap();
    }
    assert_eq!(user_version(&path), 2);
    let s = store::sqlite::SqliteStore::open(&path.display().to_string()).unwrap();
    assert_eq!(user_version(&path), 3, "upgraded at open");
    assert_eq!(store::sqlite::SCHEMA_VERSION, 3);
    assert_eq!(
        s.migrate(&hash_key()).await.unwrap(),
        0,
        "nothing to migrate"
    );
    assert_eq!(s.count_accounts().await.unwrap(), 1);
    let rec = record(&fresh_id(), "ci-v2", chrono::Utc::now().timestamp_millis());
    s.consent_put(&rec).await.unwrap();
    assert_eq!(s.consents_of("ci-v2").await.unwrap(), vec![rec.clone()]);
    drop(s);
    // Opened again (another process, a restart): the same file, the same record.
    let s = store::sqlite::SqliteStore::open(&path.display().to_string()).unwrap();
    assert_eq!(s.consent_get(&rec.id).await.unwrap(), Some(rec));
    assert_eq!(user_version(&path), 3);
}

/// The SQLite schema of the previous release (main at cbef535, `user_version` 2), as it left a
/// database: its tables, the columns and indexes its migration added, and its version.
const SCHEMA_V2: &str = "
PRAGMA journal_mode=WAL;
CREATE TABLE used_results (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE accounts (
    route TEXT NOT NULL,
    person TEXT NOT NULL,
    unique_in_site TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'done')),
    expires_at INTEGER,
    created_ms INTEGER,
    used_ms INTEGER,
    PRIMARY KEY (route, person)
);
CREATE INDEX accounts_uis ON accounts (unique_in_site);
CREATE TABLE members (
    member TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    passcode TEXT,
    ubifill TEXT,
    pending_until INTEGER,
    person TEXT,
    uis TEXT,
    created_ms INTEGER,
    used_ms INTEGER
);
CREATE TABLE revoked (id TEXT PRIMARY KEY, until INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX revoked_at ON revoked (at_ms);
CREATE TABLE kept (id TEXT PRIMARY KEY, sealed BLOB NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX kept_expiry ON kept (expires_at);
CREATE TABLE rejoin (id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX rejoin_expiry ON rejoin (expires_at);
CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX audit_at ON audit (at_ms);
CREATE TABLE ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX ledger_at ON ledger (at_ms);
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);
CREATE INDEX members_pending ON members (pending_until) WHERE passcode IS NULL;
CREATE INDEX members_person ON members (person);
CREATE INDEX members_uis ON members (uis);
PRAGMA user_version = 2;
";

/// `records.retention.consents`: until forgotten when left out (no warning), a lifetime when
/// written, an error naming the key when out of bounds or not a lifetime; the record commands
/// read it as the service does.
#[test]
fn consent_retention_in_the_config() {
    let yaml = |records: Value| {
        Proxy::shop()
            .set("records", records)
            .to_yaml(NO_SANDBOX, loopback())
    };
    let secrets = Proxy::shop().secrets();
    let cfg = verigate::config::from_yaml_str(&yaml(Value::Null), &secrets).unwrap();
    assert_eq!(cfg.records.retention.consents, None);
    assert!(
        !cfg.warnings
            .iter()
            .any(|w| w.to_string().contains("retention.consents")),
        "{:?}",
        cfg.warnings
    );
    for (v, want) in [
        ("1095d", Some(Duration::from_secs(1095 * 86_400))),
        ("until_forgotten", None),
    ] {
        let cfg = verigate::config::from_yaml_str(
            &yaml(json!({ "retention": { "consents": v } })),
            &secrets,
        )
        .unwrap();
        assert_eq!(cfg.records.retention.consents, want, "{v}");
    }
    for bad in ["12h", "forever", "0d", ""] {
        let err = verigate::config::from_yaml_str(
            &yaml(json!({ "retention": { "consents": bad } })),
            &secrets,
        )
        .unwrap_err();
        assert!(
            err.problems()
                .iter()
                .any(|p| p.starts_with("records.retention.consents: ")),
            "{bad}: {err}"
        );
    }
    // What the record commands load (only the store, the hash key and records).
    let text = yaml(json!({ "retention": { "consents": "30d" } }));
    let rc = verigate::config::records_from_yaml_str(&text, &secrets).unwrap();
    assert_eq!(
        rc.records.retention.consents,
        Some(Duration::from_secs(30 * 86_400))
    );
}
