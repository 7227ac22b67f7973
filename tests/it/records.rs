//! What verigate remembers about people and how it forgets them: the `accounts` commands
//! (the store the service uses, never a new one, no provider secret needed), the erasure API
//! on the admin listener, per-person revocation across instances.
//! The Redis tests use the server named by VERIGATE_TEST_REDIS; without it they print SKIPPED
//! (and fail under CI=true).

use crate::common::*;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use verigate::config::Secrets;
use verigate::store::{self, Store};

fn secrets() -> Secrets {
    Proxy::shop().secrets()
}

/// `verigate ARGS -c CONFIG` run in `cwd` with only `env` (no provider secret): exit code,
/// stdout, stderr.
fn cli(cwd: &Path, config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_verigate"))
        .current_dir(cwd)
        .args(args)
        .arg("-c")
        .arg(config)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Two committed signups in `s`.
async fn two_signups(s: &dyn Store) {
    for (ci, di) in [("ci-one", "di-one"), ("ci-two", "di-two")] {
        let p = store::Person {
            ci_hash: ci,
            unique_in_site: di,
        };
        s.reserve_account("signup", p, Duration::from_secs(60))
            .await
            .unwrap();
        s.commit_account("signup", ci).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_cli_from_another_directory_acts_on_the_services_file() {
    let service_dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    // The reference config's relative path.
    let text = Proxy::shop()
        .store(Storage::sqlite("./verigate-state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = service_dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    // The store as the service opens it (the same loading `verigate run` does).
    let cfg = verigate::config::from_file_text(&text, &secrets(), &config).unwrap();
    let s = store::open(&cfg.store).unwrap();
    two_signups(s.as_ref()).await;
    let db = service_dir.path().join("verigate-state.db");
    assert!(db.is_file(), "the service's file is next to its config");

    // Only the hash key in the environment: no session keys, no provider secret.
    let env = [("VG_HASH", HASH_KEY)];
    let (code, out, err) = cli(elsewhere.path(), &config, &["accounts", "count"], &env);
    assert_eq!(code, 0, "{err}");
    let canonical = std::fs::canonicalize(&db).unwrap();
    assert!(
        out.starts_with("2 account record(s) in SQLite file ")
            && std::fs::canonicalize(out.rsplit(' ').next().unwrap()).unwrap() == canonical,
        "{out}"
    );
    let (code, out, err) = cli(
        elsewhere.path(),
        &config,
        &["accounts", "forget", "--unique-in-site", "di-one"],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("forgot 1 account record(s) and 0 ifree member record(s) in SQLite file "),
        "{out}"
    );
    assert_eq!(
        s.count_accounts().await.unwrap(),
        1,
        "the service's file lost it"
    );
    // The erasure is in the audit trail, by the Unix user who ran it, without the identifier.
    let (code, out, err) = cli(elsewhere.path(), &config, &["audit"], &env);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("1 audit line(s) in SQLite file "),
        "{out}"
    );
    let line: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(line["via"], "cli", "{line}");
    assert!(
        line["operator"].as_str().unwrap().contains("uid "),
        "{line}"
    );
    assert_eq!(line["removed"]["accounts"], 1, "{line}");
    assert!(!out.contains("di-one") && !out.contains("ci-one"), "{out}");
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing created where the operator stands"
    );
}

#[test]
fn accounts_cli_refuses_a_missing_database_and_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./not-there.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    let env = [("VG_HASH", HASH_KEY)];
    for args in [
        &["accounts", "count"][..],
        &["accounts", "forget", "--ci-hash", "x"][..],
    ] {
        let (code, out, err) = cli(dir.path(), &config, args, &env);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(err.contains("no such database"), "{err}");
        assert!(
            err.contains(&dir.path().join("not-there.db").display().to_string())
                || err.contains("not-there.db"),
            "names the file: {err}"
        );
        assert!(!dir.path().join("not-there.db").exists(), "never created");
    }
}

#[test]
fn accounts_cli_without_any_key_says_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./s.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = dir.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    let (code, _, err) = cli(dir.path(), &config, &["accounts", "count"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("session.hash_key_env"), "{err}");
    assert!(
        !err.contains("IMP_"),
        "provider secrets are not asked for: {err}"
    );
}

#[test]
fn a_database_where_earlier_versions_looked_is_refused_not_replaced() {
    // An upgrade: the service ran in /var/lib/verigate-like `workdir` with the config
    // elsewhere and `path: ./verigate-state.db`; its records are in workdir.
    let etc = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let text = Proxy::shop()
        .store(Storage::sqlite("./verigate-state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = etc.path().join("verigate.yaml");
    std::fs::write(&config, &text).unwrap();
    std::fs::write(workdir.path().join("verigate-state.db"), b"").unwrap();
    let env = [
        ("VG_HASH", HASH_KEY),
        ("VG_KEYS", SESSION_KEY),
        ("IMP_KEY", "k"),
        ("IMP_SECRET", "s"),
    ];
    for args in [&["check"][..], &["accounts", "count"][..]] {
        let (code, out, err) = cli(workdir.path(), &config, args, &env);
        let said = format!("{out}{err}");
        assert_eq!(code, 2, "{args:?}: {said}");
        assert!(
            said.contains("store.path") && said.contains("where earlier versions looked"),
            "{said}"
        );
    }
    assert!(!etc.path().join("verigate-state.db").exists());
}

pub(crate) const TOKEN: &str = "admin-token-0123456789abcdef";

/// A shop sharing `store`, its record API behind `TOKEN` (a token file in `dir`): `/signup`
/// refuses a forgotten person's signup for an hour, `/join` for a second (the test waits that
/// one out on the clock).
fn shop_with_api(store: Storage, dir: &Path) -> Proxy {
    let file = dir.join("admin-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let signup = Route::path("/signup")
        .methods(["GET", "POST"])
        .providers(["iamport"])
        .min_age(19)
        .one_account()
        .rejoin_after("1h")
        .forward(["name", "birth"]);
    let join = Route::path("/join")
        .methods(["POST"])
        .providers(["iamport"])
        .one_account()
        .rejoin_after("1s");
    let mut routes = shop_routes();
    routes[0] = signup;
    routes.insert(1, join);
    Proxy::new()
        .provider(Provider::iamport())
        .routes(routes)
        .store(store)
        .set(
            "admin",
            serde_json::json!({ "token_file": file.display().to_string() }),
        )
}

/// `POST /accounts/forget` on `admin` with `body` and `token`: status and JSON.
pub(crate) async fn api_forget(
    admin: std::net::SocketAddr,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut req = client()
        .post(format!("http://{admin}/accounts/forget"))
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// The claims of `b`'s session cookie (`vg`).
fn claims_of(b: &Browser) -> verigate::session::Claims {
    let ring = verigate::session::Keyring::from_base64_list(SESSION_KEY).unwrap();
    ring.open_session(&b.jar["vg"], chrono::Utc::now().timestamp())
        .unwrap()
}

/// Whether `b`'s cookie opens the gated `/member` on the instance at `proxy`.
async fn opens(b: &Browser, proxy: std::net::SocketAddr) -> bool {
    let mut b = b.clone();
    b.env_proxy = proxy;
    b.get_html("/member").await.status() == 200
}

/// Poll (bounded) until `proxy` refuses `b`'s cookie: revocations reach other instances
/// through the store within a poll interval.
async fn refused_within(b: &Browser, proxy: std::net::SocketAddr) -> Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !opens(b, proxy).await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the other instance still opens the forgotten person's session after 5 s");
}

/// Every byte the store holds: the SQLite files, or every key and value under the prefix.
pub(crate) fn store_bytes(store: &StoreAt) -> Vec<u8> {
    match store {
        StoreAt::Sqlite(dir) => {
            let mut out = Vec::new();
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("state.db")
                {
                    out.extend(std::fs::read(&p).unwrap());
                }
            }
            out
        }
        StoreAt::Redis(url, prefix) => {
            let mut c = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut c)
                .unwrap();
            let mut out = Vec::new();
            for k in keys {
                out.extend(k.as_bytes());
                let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query(&mut c).unwrap();
                out.extend(dump.unwrap_or_default());
            }
            out
        }
    }
}

/// The audit lines the store holds.
pub(crate) async fn audit_lines(at: &StoreAt) -> Vec<String> {
    match at {
        StoreAt::Sqlite(dir) => {
            store::sqlite::SqliteStore::open(&dir.join("state.db").display().to_string())
                .unwrap()
                .log_lines(store::Log::Audit, 0)
                .await
                .unwrap()
        }
        StoreAt::Redis(url, prefix) => store::redis::RedisStore::new(url, prefix)
            .unwrap()
            .log_lines(store::Log::Audit, 0)
            .await
            .unwrap(),
    }
}

pub(crate) enum StoreAt {
    Sqlite(std::path::PathBuf),
    Redis(String, String),
}

pub(crate) fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A person signs up; the app calls the erasure API; the person's session stops working on
/// both instances; the store no longer holds the person's hash or per-site id; they may sign
/// up again.
async fn erasure_end_to_end(storage: Storage, at: StoreAt) {
    let dir = tempfile::tempdir().unwrap();
    let a = Env::with(shop_with_api(storage.clone(), dir.path())).await;
    let b_env = Env::with(
        shop_with_api(storage, dir.path()).provider(Provider::iamport().on_sandbox(a.sandbox)),
    )
    .await;
    let name = format!("erased-{}", std::process::id());
    let mut person = a.browser();
    let r = person
        .verify_redirect(a.sandbox, "/signup", &Person::named(&name))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(person.post("/signup", "user=x").await.status(), 201);
    let claims = claims_of(&person);
    assert!(opens(&person, a.proxy).await && opens(&person, b_env.proxy).await);
    // The scan can fail: the records hold the person's keyed CI hash and per-site id now.
    let before = store_bytes(&at);
    assert!(
        contains(&before, &claims.ci_hash),
        "the scan finds the hash"
    );

    // Refused without the token, or with another.
    let body = serde_json::json!({ "unique_in_site": claims.unique_in_site });
    let (status, answer) = api_forget(a.admin, None, body.clone()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = api_forget(a.admin, Some("admin-token-0123456789abcdeX"), body.clone()).await;
    assert_eq!(status, 401);
    assert!(
        opens(&person, a.proxy).await,
        "a refused call forgets nothing"
    );

    let (status, answer) = api_forget(a.admin, Some(TOKEN), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["accounts"], 1, "{answer}");
    assert_eq!(answer["forgot"]["sessions_revoked"], true, "{answer}");
    let marked_until = answer["forgot"]["rejoin_marked_until"].as_i64().unwrap();
    let erased_at = marked_until - 3600;
    assert!(erased_at <= chrono::Utc::now().timestamp(), "{answer}");
    assert!(
        !opens(&person, a.proxy).await,
        "refused at once where the API was called"
    );
    let delay = refused_within(&person, b_env.proxy).await;
    println!("the erasure reached the other instance after {delay:?}");

    // The audit line: the API, its operator, a keyed hash of what was asked, the counts.
    let lines = audit_lines(&at).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(line["via"], "api", "{line}");
    assert_eq!(line["operator"], "admin token", "{line}");
    assert_eq!(line["asked_by"], "unique_in_site", "{line}");
    assert_eq!(line["removed"]["accounts"], 1, "{line}");
    let asked = line["asked"].as_str().unwrap();
    assert!(
        asked.len() >= 32 && asked != claims.unique_in_site,
        "{line}"
    );
    let after = store_bytes(&at);
    assert!(
        !contains(&after, &claims.ci_hash),
        "the person's hash is gone"
    );
    assert!(
        !contains(&after, &claims.unique_in_site),
        "the person's per-site id is gone"
    );

    // They may verify again at once (a session issued after the erasure opens), but their
    // signup is refused until the cooldown has passed, on either instance, saying until when.
    // Sessions are stamped in whole seconds and one issued in the second of the erasure
    // counts as before it: the new verification starts in the next second.
    wait_past(erased_at).await;
    let mut again = b_env.browser();
    let r = again
        .verify_redirect(a.sandbox, "/signup", &Person::named(&name))
        .await;
    assert_eq!(r.status(), 302);
    assert!(
        opens(&again, a.proxy).await,
        "a session after the erasure opens"
    );
    let req = again
        .client
        .post(again.url("/signup"))
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("user=x");
    let r = again.send(req).await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("rejoin_too_soon") && page.contains("data-until=\""),
        "{page}"
    );
    let mut api = again.clone();
    api.env_proxy = a.proxy;
    let req = api
        .client
        .post(api.url("/signup"))
        .header("accept", "application/json")
        .body("user=x");
    let r = api.send(req).await;
    assert_eq!(r.status(), 409);
    let refusal: serde_json::Value = r.json().await.unwrap();
    assert_eq!(refusal["error"], "rejoin_too_soon", "{refusal}");
    let until = refusal["until_unix"].as_i64().unwrap();
    assert_eq!(until, marked_until, "{refusal}");
    assert!(until >= erased_at + 3600, "{refusal}");
    assert!(
        refusal["until"].as_str().unwrap().ends_with('Z'),
        "{refusal}"
    );
    // Each route counts its own cooldown: once `/join`'s second has passed (a wait on the
    // clock, not on a component), the signup there goes through; `/signup` still refuses.
    wait_past(erased_at + 1).await;
    assert_eq!(again.post("/join", "user=x").await.status(), 201);
    assert_eq!(again.post("/signup", "user=x").await.status(), 409);
}

/// Wait until the wall clock's second is past `second`.
async fn wait_past(second: i64) {
    while chrono::Utc::now().timestamp() <= second {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path().join("state.db"));
    erasure_end_to_end(storage, StoreAt::Sqlite(dir.path().to_path_buf())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_api_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vg-erase-{}-{}:", std::process::id(), rand::random::<u32>());
    let storage = Storage::redis(&url).prefix(&prefix);
    erasure_end_to_end(storage, StoreAt::Redis(url.clone(), prefix.clone())).await;
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(keys).query(&mut c).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_api_is_closed_without_a_token() {
    let env = Env::with(Proxy::shop()).await;
    let (status, answer) = api_forget(
        env.admin,
        Some(TOKEN),
        serde_json::json!({ "unique_in_site": "anyone" }),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("admin.token_env"),
        "{answer}"
    );
}

#[test]
fn unauthenticated_record_api_only_on_a_loopback_listener() {
    let yaml = |listen: &str| {
        Proxy::shop()
            .set("admin_listen", serde_json::json!(listen))
            .set(
                "admin",
                serde_json::json!({ "allow_unauthenticated_loopback": true }),
            )
            .to_yaml(NO_SANDBOX, loopback())
    };
    let err = verigate::config::from_yaml_str(&yaml("0.0.0.0:0"), &secrets()).unwrap_err();
    assert!(
        err.problems()
            .iter()
            .any(|p| p.starts_with("admin.allow_unauthenticated_loopback: admin_listen 0.0.0.0:0")),
        "{err}"
    );
    let cfg = verigate::config::from_yaml_str(&yaml("127.0.0.1:0"), &secrets()).unwrap();
    assert_eq!(cfg.admin, verigate::config::AdminAccess::Loopback);
}

/// A rejoin marker goes by itself once its time has passed: a purge on SQLite (what the
/// background purge runs), a TTL on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejoin_markers_go_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let s =
        store::sqlite::SqliteStore::open(&dir.path().join("m.db").display().to_string()).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let ids = vec!["gone".to_string(), "live".to_string()];
    s.mark_rejoin("gone", now - 2000, now - 1000).await.unwrap();
    s.mark_rejoin("live", now - 500, now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        s.rejoin_since(&ids[..1]).await.unwrap(),
        None,
        "expired: not seen"
    );
    assert_eq!(s.rejoin_since(&ids).await.unwrap(), Some(now - 500));
    // The expired marker was swept by the later write already: write another expired one
    // (the last write, so nothing sweeps it) and purge.
    s.mark_rejoin("gone2", now - 3000, now - 1).await.unwrap();
    let keep = verigate::config::Retention::default();
    assert_eq!(s.purge(&keep).await.unwrap(), 1);
    assert_eq!(s.purge(&keep).await.unwrap(), 0);
    assert_eq!(s.rejoin_since(&ids).await.unwrap(), Some(now - 500));

    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-rejoin-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let r = store::redis::RedisStore::new(&url, &prefix).unwrap();
    r.mark_rejoin("live", now, now + 60_000).await.unwrap();
    assert_eq!(r.rejoin_since(&ids).await.unwrap(), Some(now));
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}rejoin:live"))
        .query(&mut c)
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "Redis expires it: {ttl}");
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}rejoin:live"))
        .query(&mut c)
        .unwrap();
}
