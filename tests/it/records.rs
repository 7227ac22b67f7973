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
pub(crate) fn cli(
    cwd: &Path,
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
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
pub(crate) fn shop_with_api(store: Storage, dir: &Path) -> Proxy {
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
        .name("join")
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

/// `GET path` (a log) on `admin` with `token`: status and JSON.
async fn api_log(
    admin: std::net::SocketAddr,
    token: Option<&str>,
    path: &str,
) -> (u16, serde_json::Value) {
    let mut req = client().get(format!("http://{admin}{path}"));
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
            // SQLite may fold its journal into the database and remove it between the listing
            // and the reads (a connection closing): the files are then read again, all of them,
            // so what is checked is one state of the directory, never a file that went missing.
            'listing: for _ in 0..50 {
                let mut out = Vec::new();
                for e in std::fs::read_dir(dir).unwrap() {
                    let p = e.unwrap().path();
                    if p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("state.db")
                    {
                        match std::fs::read(&p) {
                            Ok(b) => out.extend(b),
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue 'listing,
                            Err(e) => panic!("{}: {e}", p.display()),
                        }
                    }
                }
                return out;
            }
            panic!("the store's files kept changing under the reads");
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
        StoreAt::Redis(url, prefix) => store::redis::RedisStore::new(
            &verigate::store::RedisConfig::url(url.clone(), prefix.clone()),
        )
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
    // An id as no app received it (copied with a space, padded, quoted) matches no one: it is
    // refused, never answered as if the person were forgotten.
    for bad in [
        serde_json::json!({ "person": format!(" {}", claims.ci_hash) }),
        serde_json::json!({ "person": format!("{}=", claims.ci_hash) }),
        serde_json::json!({ "person": format!("\"{}\"", claims.ci_hash) }),
        serde_json::json!({ "unique_in_site": format!("{} ", claims.unique_in_site) }),
    ] {
        let (status, answer) = api_forget(a.admin, Some(TOKEN), bad.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("not_an_id")),
            "{bad}: {answer}"
        );
    }
    assert!(
        opens(&person, a.proxy).await,
        "a refused call forgets nothing"
    );

    let (status, answer) = api_forget(a.admin, Some(TOKEN), body).await;
    // The revocation is written before the answer, in this second or an earlier one.
    let answered_at = chrono::Utc::now().timestamp();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["accounts"], 1, "{answer}");
    assert_eq!(answer["forgot"]["ifree_members"], 0, "{answer}");
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
    // The same line through the admin API: JSON objects, the token needed, no identifier.
    let (status, log) = api_log(a.admin, None, "/audit").await;
    assert_eq!((status, log["error"].as_str()), (401, Some("unauthorized")));
    let (status, log) = api_log(a.admin, Some(TOKEN), "/audit").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["count"], 1, "{log}");
    assert_eq!(log["lines"][0]["asked"], line["asked"], "{log}");
    assert_eq!(log["lines"][0]["removed"]["accounts"], 1, "{log}");
    let text = log.to_string();
    assert!(
        !text.contains(&claims.unique_in_site) && !text.contains(&claims.ci_hash),
        "{text}"
    );
    let (_, later) = api_log(b_env.admin, Some(TOKEN), "/audit?since=1h").await;
    assert_eq!(
        later["count"], 1,
        "every instance reads the one trail: {later}"
    );
    let future = chrono::Utc::now().timestamp() + 3600;
    let (_, none) = api_log(a.admin, Some(TOKEN), &format!("/audit?since={future}")).await;
    assert_eq!(none["count"], 0, "{none}");
    // The scheme is case-insensitive (RFC 9110); the token is not.
    for (auth, want) in [
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER {TOKEN}"), 200),
        (format!("bearer {}", TOKEN.to_uppercase()), 401),
        (format!("bearer  {TOKEN}"), 401),
    ] {
        let r = client()
            .get(format!("http://{}/audit", a.admin))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{auth}");
    }
    let (status, bad) = api_log(a.admin, Some(TOKEN), "/audit?since=yesterday").await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("bad_request")));
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
    // Sessions are stamped in whole seconds and one issued in the second the erasure's
    // revocation was written counts as before it: the new verification starts in the second
    // after the answer (an erasure under load may take longer than the second it began in).
    wait_past(answered_at).await;
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
    let keep = verigate::store::Retention::default();
    assert_eq!(s.purge(&keep).await.unwrap(), 1);
    assert_eq!(s.purge(&keep).await.unwrap(), 0);
    assert_eq!(s.rejoin_since(&ids).await.unwrap(), Some(now - 500));

    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-rejoin-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let r = store::redis::RedisStore::new(&verigate::store::RedisConfig::url(
        url.clone(),
        prefix.clone(),
    ))
    .unwrap();
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

/// The store of every backend: memory, SQLite (in `dir`) and Redis (a fresh prefix) when the
/// tests have one.
pub(crate) fn every_backend(
    dir: &Path,
) -> Vec<(&'static str, std::sync::Arc<dyn Store>, Option<String>)> {
    let mut out: Vec<(&'static str, std::sync::Arc<dyn Store>, Option<String>)> = vec![
        (
            "memory",
            std::sync::Arc::new(store::memory::MemoryStore::new()),
            None,
        ),
        (
            "sqlite",
            std::sync::Arc::new(
                store::sqlite::SqliteStore::open(&dir.join("r.db").display().to_string()).unwrap(),
            ),
            None,
        ),
    ];
    if let Some(url) = redis_url() {
        let prefix = format!("vg-keep-{}-{}:", std::process::id(), rand::random::<u32>());
        out.push((
            "redis",
            std::sync::Arc::new(
                store::redis::RedisStore::new(&verigate::store::RedisConfig::url(
                    url.clone(),
                    prefix.clone(),
                ))
                .unwrap(),
            ),
            Some(prefix),
        ));
    }
    out
}

pub(crate) fn drop_prefix(prefix: &str) {
    let Some(url) = redis_url() else { return };
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

pub(crate) async fn signup(s: &dyn Store, route: &str, ci: &str, uis: &str) {
    let p = store::Person {
        ci_hash: ci,
        unique_in_site: uis,
    };
    assert_eq!(
        s.reserve_account(route, p, Duration::from_secs(60))
            .await
            .unwrap(),
        store::Reservation::Reserved
    );
    s.commit_account(route, ci).await.unwrap();
}

async fn member(s: &dyn Store, id: &str, ci: &str, uis: &str) {
    assert_eq!(
        s.member_key(id, "sealed-key", Duration::from_secs(60), 100)
            .await
            .unwrap(),
        store::KeyExchange::Issued
    );
    let owner = store::Person {
        ci_hash: ci,
        unique_in_site: uis,
    };
    assert_eq!(
        s.member_register(id, "sealed-key", "sealed-pass", Some("sealed-ubi"), owner)
            .await
            .unwrap(),
        store::Registration::Registered
    );
}

/// An erasure limited to one route takes only that route's record; ifree members go by
/// their owner, including a member of before whose owner a later login recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_by_route_and_members_by_owner_on_every_backend() {
    use store::PersonRef::{CiHash, UniqueInSite};
    let dir = tempfile::tempdir().unwrap();
    for (name, s, prefix) in every_backend(dir.path()) {
        let s = s.as_ref();
        signup(s, "a", "ci-1", "uis-1").await;
        signup(s, "b", "ci-1", "uis-1").await;
        signup(s, "a", "ci-2", "uis-2").await;
        assert_eq!(
            s.forget(&CiHash("ci-1".into()), Some("a")).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!(s.count_accounts().await.unwrap(), 2, "{name}");
        assert_eq!(
            s.forget(&CiHash("ci-1".into()), Some("a")).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(
            s.forget(&UniqueInSite("uis-1".into()), Some("c"))
                .await
                .unwrap(),
            0,
            "{name}"
        );
        assert_eq!(
            s.forget(&UniqueInSite("uis-1".into()), None).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!(s.count_accounts().await.unwrap(), 1, "{name}");

        member(s, "m-3", "ci-3", "uis-3").await;
        // Registered without an owner (as before owners were recorded); a login names it.
        member(s, "m-4", "", "").await;
        assert_eq!(
            s.forget_members(&UniqueInSite("uis-4".into()))
                .await
                .unwrap(),
            0,
            "{name}"
        );
        let owner = store::Person {
            ci_hash: "ci-4",
            unique_in_site: "uis-4",
        };
        s.member_used("m-4", owner).await.unwrap();
        assert_eq!(
            s.forget_members(&UniqueInSite("uis-4".into()))
                .await
                .unwrap(),
            1,
            "{name}"
        );
        assert_eq!(s.member_get("m-4").await.unwrap(), None, "{name}");
        assert_eq!(
            s.forget_members(&CiHash("ci-3".into())).await.unwrap(),
            1,
            "{name}"
        );
        assert_eq!(
            s.forget_members(&CiHash("ci-3".into())).await.unwrap(),
            0,
            "{name}"
        );
        assert_eq!(s.member_get("m-3").await.unwrap(), None, "{name}");
        // An empty owner matches nothing.
        member(s, "m-5", "", "").await;
        assert_eq!(
            s.forget_members(&CiHash(String::new())).await.unwrap(),
            0,
            "{name}"
        );
        assert!(s.member_get("m-5").await.unwrap().is_some(), "{name}");
        if let Some(p) = prefix {
            drop_prefix(&p);
        }
    }
}

/// The purge keeps what is within its lifetime and drops the rest: one-account records and
/// ifree members by `records.retention` counted from their last use, the logs by theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_purge_enforces_retention_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    for (name, s, prefix) in every_backend(dir.path()) {
        let s = s.as_ref();
        signup(s, "a", "ci-1", "uis-1").await;
        member(s, "m-1", "ci-1", "uis-1").await;
        let now = chrono::Utc::now().timestamp_millis();
        s.log_append(
            store::Log::Audit,
            now - 2 * 3600 * 1000,
            r#"{"line":"old"}"#,
        )
        .await
        .unwrap();
        s.log_append(store::Log::Audit, now, r#"{"line":"new"}"#)
            .await
            .unwrap();
        s.log_append(store::Log::Ledger, now - 1000, r#"{"line":"ledger"}"#)
            .await
            .unwrap();
        assert_eq!(
            s.log_lines(store::Log::Audit, now - 1).await.unwrap(),
            vec![r#"{"line":"new"}"#.to_string()],
            "{name}: since"
        );
        // Until the app forgets them: the purge leaves the records; the old audit line goes.
        let until_forgotten = verigate::store::Retention {
            accounts: None,
            ifree_members: None,
            audit: hour,
            ledger: hour,
            consents: None,
        };
        assert_eq!(s.purge(&until_forgotten).await.unwrap(), 1, "{name}");
        assert_eq!(
            s.log_lines(store::Log::Audit, 0).await.unwrap(),
            vec![r#"{"line":"new"}"#.to_string()],
            "{name}"
        );
        assert_eq!(
            s.log_lines(store::Log::Ledger, 0).await.unwrap().len(),
            1,
            "{name}"
        );
        // Within an hour of their last use: kept.
        let hourly = verigate::store::Retention {
            accounts: Some(hour),
            ifree_members: Some(hour),
            ..until_forgotten
        };
        assert_eq!(s.purge(&hourly).await.unwrap(), 0, "{name}");
        assert_eq!(s.count_accounts().await.unwrap(), 1, "{name}");
        assert!(s.member_get("m-1").await.unwrap().is_some(), "{name}");
        // A lifetime already over (zero): gone.
        let none = verigate::store::Retention {
            accounts: Some(Duration::ZERO),
            ifree_members: Some(Duration::ZERO),
            audit: Duration::ZERO,
            ledger: Duration::ZERO,
            consents: Some(Duration::ZERO),
        };
        assert_eq!(s.purge(&none).await.unwrap(), 4, "{name}");
        assert_eq!(s.count_accounts().await.unwrap(), 0, "{name}");
        assert_eq!(s.member_get("m-1").await.unwrap(), None, "{name}");
        assert!(
            s.log_lines(store::Log::Audit, 0).await.unwrap().is_empty(),
            "{name}"
        );
        if let Some(p) = prefix {
            drop_prefix(&p);
        }
    }
}

/// The SQLite schema of the previous release (main at 6d07646), as it created its tables.
const SCHEMA_6D07646: &str = "
PRAGMA journal_mode=WAL;
CREATE TABLE used_results (key TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE accounts (
    route TEXT NOT NULL,
    person TEXT NOT NULL,
    unique_in_site TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('reserved', 'done')),
    expires_at INTEGER,
    PRIMARY KEY (route, person)
);
CREATE INDEX accounts_uis ON accounts (unique_in_site);
CREATE TABLE members (
    member TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    passcode TEXT,
    ubifill TEXT,
    pending_until INTEGER
);
CREATE TABLE revoked (id TEXT PRIMARY KEY, until INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX revoked_at ON revoked (at_ms);
CREATE TABLE kept (id TEXT PRIMARY KEY, sealed BLOB NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX kept_expiry ON kept (expires_at);
CREATE TABLE rejoin (id TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX rejoin_expiry ON rejoin (expires_at);
CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, line TEXT NOT NULL);
CREATE INDEX audit_at ON audit (at_ms);
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);
";

/// A per-site id as releases before the hashed DI kept it: in clear.
const CLEAR_DI: &str = "MC0GCCqGSIb3DQIJAyEAkzYR+legacy+clear+DI+value==";

pub(crate) fn hash_key() -> [u8; 32] {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(HASH_KEY)
        .unwrap()
        .try_into()
        .unwrap()
}

/// A store as the previous release left it: a signup of before the DI was hashed (clear), one
/// after (hashed), a registered ifree member without owner or times.
fn old_sqlite_store(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(SCHEMA_6D07646).unwrap();
    c.execute(
        "INSERT INTO accounts VALUES ('signup', 'ci-old', ?1, 'done', NULL)",
        [CLEAR_DI],
    )
    .unwrap();
    c.execute(
        "INSERT INTO accounts VALUES ('signup', 'ci-new', ?1, 'done', NULL)",
        [store::di_hash(&hash_key(), "di-new")],
    )
    .unwrap();
    c.execute_batch(
        "INSERT INTO members VALUES ('m-old', 'sealed-key', 'sealed-pass', NULL, NULL)",
    )
    .unwrap();
    c.execute(
        "INSERT INTO audit (at_ms, line) VALUES (?1, '{\"action\":\"forget\"}')",
        [chrono::Utc::now().timestamp_millis()],
    )
    .unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 0, "the previous release kept no version");
}

pub(crate) fn user_version(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A store the previous release wrote is migrated: columns and version at open, the clear
/// per-site ids hashed (and gone from the file's bytes) by the migration the service runs at
/// start; its records keep working; a store of a later release is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_of_the_previous_release_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    old_sqlite_store(&path);
    let s = store::sqlite::SqliteStore::open(&path.display().to_string()).unwrap();
    assert_eq!(user_version(&path), 1, "columns added at open");
    assert_eq!(
        s.migrate(&hash_key()).await.unwrap(),
        1,
        "one clear DI hashed"
    );
    assert_eq!(user_version(&path), store::sqlite::SCHEMA_VERSION);
    assert_eq!(s.migrate(&hash_key()).await.unwrap(), 0, "once");
    assert_eq!(s.count_accounts().await.unwrap(), 2);
    let hashed = store::di_hash(&hash_key(), CLEAR_DI);
    assert_eq!(
        s.account_persons(&hashed).await.unwrap(),
        vec!["ci-old".to_string()]
    );
    let bytes = store_bytes(&StoreAt::Sqlite(dir.path().to_path_buf()));
    assert!(
        !contains(&bytes, CLEAR_DI),
        "the clear DI is nowhere in the files"
    );
    // The migration's time is the records' creation: a lifetime counts from it.
    let hourly = verigate::store::Retention {
        accounts: Some(Duration::from_secs(3600)),
        ifree_members: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    assert_eq!(s.purge(&hourly).await.unwrap(), 0);
    assert!(s.member_get("m-old").await.unwrap().is_some());
    // A record the previous release writes while both share the file (an upgrade in
    // progress) has no time: its lifetime starts at the purge that finds it, not at the epoch.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO accounts (route, person, unique_in_site, state) VALUES ('signup', 'ci-late', '', 'done')",
            [],
        )
        .unwrap();
    assert_eq!(s.purge(&hourly).await.unwrap(), 0);
    assert_eq!(s.count_accounts().await.unwrap(), 3);
    assert_eq!(s.log_lines(store::Log::Audit, 0).await.unwrap().len(), 1);
    drop(s);

    let later = dir.path().join("later.db");
    old_sqlite_store(&later);
    rusqlite::Connection::open(&later)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let Err(e) = store::sqlite::SqliteStore::open(&later.display().to_string()) else {
        panic!("a later release's store opened");
    };
    assert!(e.to_string().contains("later verigate"), "{e}");
}

/// The service migrates the previous release's store at start, and the CLI before it acts:
/// an erasure by the clear per-site id the app kept finds the record under its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_and_the_cli_migrate_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    old_sqlite_store(&path);
    let env = Env::with(Proxy::shop().store(Storage::sqlite(&path))).await;
    let start = std::time::Instant::now();
    while user_version(&path) < store::sqlite::SCHEMA_VERSION {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not migrated at start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(env);
    let bytes = store_bytes(&StoreAt::Sqlite(dir.path().to_path_buf()));
    assert!(
        !contains(&bytes, CLEAR_DI),
        "the clear DI is nowhere in the files"
    );

    let other = tempfile::tempdir().unwrap();
    let old = other.path().join("state.db");
    old_sqlite_store(&old);
    let text = Proxy::shop()
        .store(Storage::sqlite("./state.db"))
        .to_yaml(NO_SANDBOX, loopback());
    let config = other.path().join("verigate.yaml");
    std::fs::write(&config, text).unwrap();
    let (code, out, err) = cli(
        dir.path(),
        &config,
        &["accounts", "forget", "--unique-in-site", CLEAR_DI],
        &[("VG_HASH", HASH_KEY)],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("forgot 1 account record(s)"), "{out}");
    assert_eq!(user_version(&old), store::sqlite::SCHEMA_VERSION);
}

/// Redis keys the previous release wrote (`done|{clear DI}`, members without times) take this
/// release's form; a key format of a later release is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keys_of_the_previous_release_are_migrated() {
    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-migrate-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut c = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let hashed_new = store::di_hash(&hash_key(), "di-new");
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}acct:signup:ci-old"))
        .arg(format!("done|{CLEAR_DI}"))
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}acct:signup:ci-new"))
        .arg(format!("done|{hashed_new}"))
        .query(&mut c)
        .unwrap();
    let _: i64 = redis::cmd("HSET")
        .arg(format!("{prefix}member:m-old"))
        .arg("key")
        .arg("sealed-key")
        .arg("passcode")
        .arg("sealed-pass")
        .query(&mut c)
        .unwrap();
    let s = store::redis::RedisStore::new(&verigate::store::RedisConfig::url(
        url.clone(),
        prefix.clone(),
    ))
    .unwrap();
    assert_eq!(s.migrate(&hash_key()).await.unwrap(), 3);
    assert_eq!(s.migrate(&hash_key()).await.unwrap(), 0, "once");
    let v: String = redis::cmd("GET")
        .arg(format!("{prefix}acct:signup:ci-old"))
        .query(&mut c)
        .unwrap();
    let hashed = store::di_hash(&hash_key(), CLEAR_DI);
    assert!(v.starts_with(&format!("done|{hashed}|")), "{v}");
    assert_eq!(v.split('|').count(), 4, "{v}");
    assert_eq!(s.count_accounts().await.unwrap(), 2);
    assert_eq!(
        s.account_persons(&hashed).await.unwrap(),
        vec!["ci-old".to_string()]
    );
    let bytes = store_bytes(&StoreAt::Redis(url.clone(), prefix.clone()));
    assert!(
        !contains(&bytes, CLEAR_DI),
        "the clear DI is nowhere under the prefix"
    );
    let created: Option<i64> = redis::cmd("HGET")
        .arg(format!("{prefix}member:m-old"))
        .arg("created")
        .query(&mut c)
        .unwrap();
    assert!(created.is_some());
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}schema"))
        .arg(99)
        .query(&mut c)
        .unwrap();
    let e = s.migrate(&hash_key()).await.unwrap_err();
    assert!(e.to_string().contains("later verigate"), "{e}");
    drop_prefix(&prefix);
}

/// An erasure limited to one route (the person leaves one service of the site): that route's
/// record goes and its cooldown applies; the person's session and their other records stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_limited_to_one_route() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path().join("state.db"));
    let env = Env::with(shop_with_api(storage, dir.path())).await;
    let mut person = env.browser();
    let r = person
        .verify_redirect(env.sandbox, "/signup", &Person::named("one-route"))
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(person.post("/signup", "user=x").await.status(), 201);
    assert_eq!(person.post("/join", "user=x").await.status(), 201);
    let claims = claims_of(&person);

    let (status, answer) = api_forget(
        env.admin,
        Some(TOKEN),
        serde_json::json!({ "person": claims.ci_hash, "route": "nowhere" }),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("unknown_route"))
    );

    let (status, answer) = api_forget(
        env.admin,
        Some(TOKEN),
        serde_json::json!({ "person": claims.ci_hash, "route": "join" }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["route"], "join", "{answer}");
    assert_eq!(answer["forgot"]["accounts"], 1, "{answer}");
    assert_eq!(answer["forgot"]["sessions_revoked"], false, "{answer}");
    let erased_at = answer["forgot"]["rejoin_marked_until"].as_i64().unwrap() - 1;
    assert!(opens(&person, env.proxy).await, "the session stays");
    // `/signup` still holds the person's record; `/join` refuses for its second, then takes
    // the signup again.
    assert_eq!(person.post("/signup", "user=x").await.status(), 409);
    let r = person
        .client
        .post(person.url("/join"))
        .header("accept", "application/json")
        .body("user=x");
    let r = person.send(r).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"],
        "rejoin_too_soon"
    );
    wait_past(erased_at + 1).await;
    assert_eq!(person.post("/join", "user=x").await.status(), 201);
    let s = store::sqlite::SqliteStore::open(&dir.path().join("state.db").display().to_string())
        .unwrap();
    assert_eq!(s.count_accounts().await.unwrap(), 2);
}

/// With `records.ledger`, each accepted verification leaves a line (provider, route, age
/// found and whether the route's rule admits it, result id; no name, no CI, no DI) that the
/// admin API and `verigate ledger` read; an erasure removes the person's lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_verification_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path().join("state.db"));
    let proxy =
        shop_with_api(storage, dir.path()).set("records", serde_json::json!({ "ledger": true }));
    let env = Env::with(proxy).await;
    let name = format!("ledgered-{}", std::process::id());
    let mut person = env.browser();
    let r = person
        .verify_redirect(env.sandbox, "/signup", &Person::named(&name))
        .await;
    assert_eq!(r.status(), 302);
    let claims = claims_of(&person);
    let (status, log) = api_log(env.admin, Some(TOKEN), "/ledger").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["count"], 1, "{log}");
    let line = &log["lines"][0];
    assert_eq!(line["provider"], "iamport", "{line}");
    assert_eq!(line["route"], "signup", "{line}");
    assert_eq!(line["min_age"], 19, "{line}");
    assert_eq!(line["admitted"], true, "{line}");
    assert!(line["age"].as_i64().unwrap() >= 19, "{line}");
    assert!(!line["result_id"].as_str().unwrap().is_empty(), "{line}");
    assert!(line["at"].as_str().unwrap().ends_with('Z'), "{line}");
    assert_eq!(line["age_rule"], "youth_act", "{line}");
    // A route without an age limit: no limit, no rule, no verdict.
    let mut other = env.browser();
    let r = other
        .verify_redirect(env.sandbox, "/join", &Person::named(&format!("{name}-2")))
        .await;
    assert_eq!(r.status(), 302);
    let (_, both) = api_log(env.admin, Some(TOKEN), "/ledger").await;
    assert_eq!(both["count"], 2, "{both}");
    let join = both["lines"]
        .as_array()
        .unwrap()
        .iter()
        // (The line names the route its return path matches for GET: none for POST-only /join.)
        .find(|l| l["person"] != line["person"])
        .unwrap_or_else(|| panic!("the /join verification's line: {both}"));
    for key in ["min_age", "age_rule", "admitted"] {
        assert!(join[key].is_null(), "{key}: {join}");
    }
    let text = log.to_string();
    for clear in [name.as_str(), &claims.ci_hash, &claims.unique_in_site] {
        assert!(!text.contains(clear), "{clear} in {text}");
    }
    let (status, _) = api_log(env.admin, None, "/ledger").await;
    assert_eq!(status, 401);
    let config = dir.path().join("verigate.yaml");
    std::fs::write(
        &config,
        shop_with_api(Storage::sqlite(dir.path().join("state.db")), dir.path())
            .to_yaml(NO_SANDBOX, loopback()),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let env_vars = [("VG_HASH", HASH_KEY)];
    let (code, out, err) = cli(
        elsewhere.path(),
        &config,
        &["ledger", "--since", "1d"],
        &env_vars,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("2 ledger line(s) in SQLite file "), "{out}");

    let (status, answer) = api_forget(
        env.admin,
        Some(TOKEN),
        serde_json::json!({ "unique_in_site": claims.unique_in_site }),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["ledger_lines"], 1, "{answer}");
    // The other person's line stays.
    let (_, log) = api_log(env.admin, Some(TOKEN), "/ledger").await;
    assert_eq!(log["count"], 1, "{log}");
    assert_ne!(log["lines"][0]["person"], line["person"], "{log}");
}

/// Where a merchant must choose a lifetime, leaving it out is warned about (naming the key and
/// the lifetime that applies), never silent; a choice settles it; a lifetime out of bounds is
/// an error naming its key.
#[test]
fn retention_is_chosen_or_warned_about() {
    let yaml = |records: Option<serde_json::Value>| {
        Proxy::shop()
            .set("records", records.unwrap_or(serde_json::Value::Null))
            .to_yaml(NO_SANDBOX, loopback())
    };
    let cfg = verigate::config::from_yaml_str(&yaml(None), &secrets()).unwrap();
    let warned: Vec<String> = cfg.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warned
            .iter()
            .any(|w| w.starts_with("records.retention.accounts: not set")
                && w.contains("until the app forgets")),
        "{warned:?}"
    );
    assert_eq!(cfg.records.retention.accounts, None);

    let chosen = serde_json::json!({ "retention": { "accounts": "1095d", "audit": "400d" } });
    let cfg = verigate::config::from_yaml_str(&yaml(Some(chosen)), &secrets()).unwrap();
    assert!(
        !cfg.warnings
            .iter()
            .any(|w| w.to_string().contains("records.")),
        "{:?}",
        cfg.warnings
    );
    assert_eq!(
        cfg.records.retention.accounts,
        Some(Duration::from_secs(1095 * 86_400))
    );
    assert_eq!(
        cfg.records.retention.audit,
        Duration::from_secs(400 * 86_400)
    );
    let forever = serde_json::json!({ "retention": { "accounts": "until_forgotten" } });
    let cfg = verigate::config::from_yaml_str(&yaml(Some(forever)), &secrets()).unwrap();
    assert!(!cfg
        .warnings
        .iter()
        .any(|w| w.to_string().contains("records.")));

    for (bad, key) in [
        (
            serde_json::json!({ "retention": { "accounts": "12h" } }),
            "records.retention.accounts",
        ),
        (
            serde_json::json!({ "retention": { "ifree_members": "forever" } }),
            "records.retention.ifree_members",
        ),
        (
            serde_json::json!({ "retention": { "audit": "30d" } }),
            "records.retention.audit",
        ),
        (
            serde_json::json!({ "retention": { "ledger": "0d" } }),
            "records.retention.ledger",
        ),
    ] {
        let err = verigate::config::from_yaml_str(&yaml(Some(bad)), &secrets()).unwrap_err();
        assert!(
            err.problems()
                .iter()
                .any(|p| p.starts_with(&format!("{key}: "))),
            "{err}"
        );
    }
}
