//! What README promises about personal data, checked on the real binary after a full flow:
//! a person verified through the Iamport sandbox (a distinctive name, phone and birth date,
//! and the CI the sandbox derives from them), a signup on a one-account route, requests with
//! query strings, from a client address of its own (127.0.0.2). Then every byte verigate
//! kept is scanned: the SQLite file (and its -wal and -shm) or every Redis key and value
//! under the run's prefix, and every line the binary logged. None may hold the CI, the name
//! (UTF-8 or percent-encoded), the phone, the birth date (YYYYMMDD or YYYY-MM-DD), a query
//! value or the client's address (a form post kept across the verification carries them all:
//! it is sealed); the logs not the DI or a cookie either. And the session
//! cookie, where no route forwards name, gender or phone, carries none of them; the age status
//! (an age-only route, logged out afterwards so its revocation is in the store too) carries the
//! birth year and nothing else of the person.

use crate::common::*;
use std::net::SocketAddr;
use std::time::Duration;

const NAME: &str = "비밀스런가명";
const BIRTH: &str = "19830917";
const BIRTH_ISO: &str = "1983-09-17";
const PHONE: &str = "01055501234";
/// Query values the requests carry (`@` goes as `%40`).
const EMAIL: &str = "secret-mail@example.com";
const TOKEN: &str = "QryT0kenZ9";
/// The client's address: a loopback address of its own, so that the listen address in the
/// start-up line (127.0.0.1) cannot be mistaken for it.
const CLIENT_IP: [u8; 4] = [127, 0, 0, 2];

/// Iamport; no route forwards name, gender or phone; the signup route forwards the birth date;
/// `/adult` is age-only (age statuses for a year).
fn proxy() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport())
        .age_status_ttl("365d")
        .routes([
            Route::prefix("/adult")
                .providers(["iamport"])
                .min_age(19)
                .age_status(),
            Route::path("/signup")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .min_age(19)
                .one_account()
                .forward(["birth"]),
            Route::prefix("/member").providers(["iamport"]),
            Route::prefix("/"),
        ])
}

/// An upstream app that answers every request (201 to a POST) and closes the connection,
/// except under `/member/broken`, where it closes without answering: the proxy fails.
async fn upstream() -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut conn = crate::common::RawConn::new(s);
                let Some(head) = conn.head().await.map(|h| h.to_ascii_lowercase()) else {
                    return;
                };
                let length = crate::common::content_length(&head);
                if conn.body(length).await < length {
                    return;
                }
                if head.contains(" /member/broken") {
                    return;
                }
                let status = if head.starts_with("post ") {
                    "201 Created"
                } else {
                    "200 OK"
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = conn.s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

/// Everything a run leaves to scan.
struct Run {
    /// Every line the binary wrote.
    log: String,
    /// The CI and the DI the provider gave for the person.
    ci: String,
    di: String,
    session_cookie: String,
    flow_cookie: String,
    /// The age status `/adult` issued, and what it holds (opened with the test's key).
    age_cookie: String,
    age: verigate::session::AgeClaims,
    /// The session the browser holds, opened with the test's session key.
    claims: verigate::session::Claims,
    /// The binary, still running (it stops when the run is dropped).
    _proc: Proc,
}

/// Start the binary with `store` (its files in `dir`), run the flow, and collect its log; the
/// binary still runs when the caller reads what the store kept (it stops with `Run`).
async fn run(dir: &std::path::Path, store: Storage) -> Run {
    let (router, _sims) =
        verigate::demo::sandbox::router(verigate::providers::sandbox::SandboxOptions::default());
    let sandbox = spawn_router(router).await;
    let cfg = dir.join("verigate.yaml");
    std::fs::write(
        &cfg,
        proxy().store(store).to_yaml(sandbox, upstream().await),
    )
    .unwrap();
    let proc = start_binary(&cfg);
    let from_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from(CLIENT_IP))
        .build()
        .unwrap();
    let mut b = Browser {
        env_proxy: proc.addr,
        client: from_client.clone(),
        jar: Default::default(),
        origin: None,
    };
    let person = Person {
        name: NAME.into(),
        birth: BIRTH.into(),
        phone: PHONE.into(),
        ..Person::adult()
    };
    let q = format!(
        "email={}&token={TOKEN}",
        form_urlencoded::byte_serialize(EMAIL.as_bytes()).collect::<String>()
    );
    // A form posted from another browser of the same person without a session: kept across
    // the verification (that never comes), sealed in the store with its personal fields.
    let mut other = Browser {
        env_proxy: proc.addr,
        client: from_client.clone(),
        jar: Default::default(),
        origin: None,
    };
    let form = format!(
        "name={}&raw={NAME}&phone={PHONE}&birth={BIRTH}&email={}",
        percent(NAME),
        form_urlencoded::byte_serialize(EMAIL.as_bytes()).collect::<String>()
    );
    let req = other
        .client
        .post(other.url(&format!("/signup?{q}")))
        .header("accept", "text/html")
        .header("origin", format!("http://{}", proc.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    assert_eq!(other.send(req).await.status(), 303, "kept");
    assert!(other.jar.contains_key("vg_kept"));
    // Unverified, with a query string: sent to verify (the query rides in return_to).
    assert_eq!(b.get_html(&format!("/member?{q}")).await.status(), 302);
    // One provider: the verify address goes straight on to its start page, query and all.
    let to_start = b
        .get_html(&format!("/.verigate/verify?return_to=%2Fsignup%3F{q}"))
        .await;
    assert_eq!(to_start.status(), 302);
    assert!(to_start.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/.verigate/iamport/start?return_to=%2Fsignup%3F"));
    let flow = b.start_iamport(&format!("/signup?{q}")).await;
    let back = b.certify(sandbox, &flow, &person, true).await;
    let r = b
        .send(b.client.get(back["location"].as_str().unwrap()))
        .await;
    assert_eq!(r.status(), 302, "verified");
    let cert = sandbox_certification(sandbox, back["imp_uid"].as_str().unwrap()).await;
    assert_eq!(cert["name"], NAME, "the sandbox certified our person");
    // The signup (with a query string), and a second one of the same person.
    assert_eq!(
        b.post(&format!("/signup?{q}"), "user=x").await.status(),
        201
    );
    assert_eq!(
        b.post(&format!("/signup?{q}"), "user=y").await.status(),
        409
    );
    // Verified, open and refused requests with query strings.
    assert_eq!(b.get_html(&format!("/member?{q}")).await.status(), 200);
    assert_eq!(b.get_html(&format!("/open?{q}")).await.status(), 200);
    assert_eq!(b.get_json(&format!("/x%2Fy?{q}")).await.status(), 400);
    assert_eq!(
        b.get_json(&format!("/.verigate/session?{q}"))
            .await
            .status(),
        200
    );
    // The age-only route: an age status, then used alone, then logged out (from a copy of
    // the browser that holds only the status, so the session goes on), so that its
    // revocation is in the store too.
    assert_eq!(b.get_html(&format!("/adult?{q}")).await.status(), 200);
    let age_cookie = b.jar.get("vg_age").expect("an age status").clone();
    let mut only_age = Browser {
        env_proxy: proc.addr,
        client: from_client.clone(),
        jar: [("vg_age".to_string(), age_cookie.clone())].into(),
        origin: None,
    };
    assert_eq!(only_age.get_html("/adult").await.status(), 200);
    assert_eq!(only_age.post("/.verigate/logout", "").await.status(), 200);
    assert_eq!(only_age.get_html("/adult").await.status(), 302);
    // A request the upstream drops: the proxy's own error path logs too.
    assert_eq!(
        b.get_html(&format!("/member/broken?{q}")).await.status(),
        502
    );
    // Every line of this traffic is out (the access log is batched, every 100 ms): the
    // dropped request's line comes last.
    let mut log = proc.log_text();
    for _ in 0..300 {
        if log.contains("\"decision\":\"upstream_error\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        log = proc.log_text();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = proc.log_text();
    let access = log.matches("\"target\":\"verigate::access\"").count();
    assert!(access >= 10, "{access} access lines:\n{log}");
    assert!(
        log.contains("Fail to proxy"),
        "the proxy's error line for the dropped request:\n{log}"
    );
    let session_cookie = b.jar.get("vg").expect("a session").clone();
    let claims = verigate::session::Keyring::from_base64_list(SESSION_KEY)
        .unwrap()
        .open_session(&session_cookie, chrono::Utc::now().timestamp())
        .unwrap();
    let age = verigate::session::Keyring::from_base64_list(SESSION_KEY)
        .unwrap()
        .open_age_status(&age_cookie, chrono::Utc::now().timestamp())
        .unwrap();
    Run {
        log,
        age_cookie,
        age,
        ci: cert["unique_key"].as_str().unwrap().to_string(),
        di: cert["unique_in_site"].as_str().unwrap().to_string(),
        session_cookie,
        flow_cookie: flow.flow_cookie,
        claims,
        _proc: proc,
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What must never be kept or logged, by what it is.
fn personal(run: &Run) -> Vec<(&'static str, String)> {
    vec![
        ("the CI", run.ci.clone()),
        ("the CI's first 24 characters", run.ci[..24].to_string()),
        ("the CI percent-encoded", percent(&run.ci)),
        // The DI only as a keyed hash at rest (one-account records), never in clear.
        ("the DI", run.di.clone()),
        ("the DI percent-encoded", percent(&run.di)),
        ("the name", NAME.to_string()),
        ("the name percent-encoded", percent(NAME)),
        (
            "the name percent-encoded (lower case)",
            percent(NAME).to_lowercase(),
        ),
        ("the phone", PHONE.to_string()),
        ("the phone with dashes", "010-5550-1234".to_string()),
        ("the birth date", BIRTH.to_string()),
        ("the birth date (ISO)", BIRTH_ISO.to_string()),
        ("a query value (email)", "secret-mail".to_string()),
        ("a query value (token)", TOKEN.to_string()),
        (
            "the client address",
            std::net::Ipv4Addr::from(CLIENT_IP).to_string(),
        ),
    ]
}

/// Fail with every hit: what leaked, where, with the bytes around it.
fn assert_clean(place: &str, bytes: &[u8], needles: &[(&'static str, String)]) {
    let mut hits = Vec::new();
    for (what, needle) in needles {
        let n = needle.as_bytes();
        if let Some(i) = bytes.windows(n.len()).position(|w| w == n) {
            let from = i.saturating_sub(120);
            let to = (i + n.len() + 120).min(bytes.len());
            hits.push(format!(
                "{what} ({needle}) in {place}: ...{}...",
                String::from_utf8_lossy(&bytes[from..to])
            ));
        }
    }
    assert!(hits.is_empty(), "personal data found:\n{}", hits.join("\n"));
    eprintln!(
        "{place}: {} bytes, none of {} needles",
        bytes.len(),
        needles.len()
    );
}

/// The logs: the personal data, and also the DI and both cookies (README: none in any log).
fn assert_log_clean(run: &Run) {
    let mut needles = personal(run);
    needles.push(("the DI", run.di.clone()));
    needles.push(("the session cookie", run.session_cookie.clone()));
    needles.push(("the flow cookie", run.flow_cookie.clone()));
    needles.push(("the age status cookie", run.age_cookie.clone()));
    assert_clean("the binary's log", run.log.as_bytes(), &needles);
}

/// The age status: the birth year, no more of the birth date, and nothing that names the
/// person, not even the hashes the session holds.
fn assert_age_status_minimal(run: &Run) {
    let a = &run.age;
    assert_eq!(a.birth_year, 1983, "the opened status is this person's");
    let text = serde_json::to_string(a).unwrap();
    let mut needles = personal(run);
    needles.push(("the keyed CI hash", run.claims.ci_hash.clone()));
    needles.push(("the birth month and day", "09-17".to_string()));
    needles.push(("the birth month and day", "0917".to_string()));
    assert_clean("the opened age status", text.as_bytes(), &needles);
    assert_clean("the age status cookie", run.age_cookie.as_bytes(), &needles);
}

/// The session keeps name, gender and phone only if some route forwards them: here none does.
fn assert_session_minimal(run: &Run) {
    let c = &run.claims;
    assert_eq!(
        (&c.name, &c.gender, &c.phone, &c.foreigner, &c.carrier),
        (&None, &None, &None, &None, &None),
        "the session keeps fields no route forwards"
    );
    assert_eq!(c.method, "danal", "how the person verified, always kept");
    // The birth date stays (routes check the age), and the CI only as its keyed hash.
    assert_eq!(
        c.birth,
        chrono::NaiveDate::from_ymd_opt(1983, 9, 17),
        "the opened session is this person's"
    );
    assert_eq!(c.unique_in_site, run.di);
    assert!(!c.ci_hash.contains(&run.ci) && c.ci_hash.len() < run.ci.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_logs_and_session_keep_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let run = run(dir.path(), Storage::sqlite(&db)).await;
    let mut kept = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let f = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&f) {
            kept.push((f.display().to_string(), bytes));
        }
    }
    assert!(
        kept.iter().map(|(_, b)| b.len()).sum::<usize>() > 0,
        "the store wrote its file"
    );
    // The store did record this person's signup (so the scan looked at the right bytes).
    let s = verigate::store::sqlite::SqliteStore::open(&db.display().to_string()).unwrap();
    use verigate::store::Store;
    assert_eq!(s.count_accounts().await.unwrap(), 1);
    // ...and kept the form post (sealed) that waits for its verification.
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM kept", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the kept form post is in the store");
    for (file, bytes) in &kept {
        assert_clean(file, bytes, &personal(&run));
    }
    assert_log_clean(&run);
    assert_session_minimal(&run);
    assert_age_status_minimal(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_logs_and_session_keep_no_personal_data() {
    let url = match std::env::var("VERIGATE_TEST_REDIS") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            skip::missing(
                "Redis",
                "set VERIGATE_TEST_REDIS=redis://127.0.0.1:6379 with a Redis running there",
            );
            return;
        }
    };
    use rand::Rng;
    let prefix = format!(
        "vgtest:privacy:{}:{:08x}:",
        std::process::id(),
        rand::thread_rng().gen::<u32>()
    );
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), Storage::redis(&url).prefix(&prefix)).await;
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap();
    // Every key with every value, whatever its type, as one text.
    let mut kept = String::new();
    let mut accounts = 0;
    for k in &keys {
        let kind: String = redis::cmd("TYPE").arg(k).query(&mut con).unwrap();
        let values: Vec<String> = match kind.as_str() {
            // Sealed values are bytes, not text.
            "string" => {
                let v: Vec<u8> = redis::cmd("GET").arg(k).query(&mut con).unwrap();
                vec![String::from_utf8_lossy(&v).into_owned()]
            }
            "hash" => redis::cmd("HGETALL").arg(k).query(&mut con).unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query(&mut con)
                .unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(k).query(&mut con).unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(k)
                .arg(0)
                .arg(-1)
                .query(&mut con)
                .unwrap(),
            other => panic!("{k} is a {other}"),
        };
        if k.contains(":acct:") && values.iter().any(|v| v.starts_with("done|")) {
            accounts += 1;
        }
        kept.push_str(&format!("{k} => {values:?}\n"));
    }
    let _: Result<i64, _> = if keys.is_empty() {
        Ok(0)
    } else {
        redis::cmd("DEL").arg(&keys).query(&mut con)
    };
    assert!(keys.len() >= 2, "a claim and an account were kept:\n{kept}");
    assert_eq!(accounts, 1, "this person's signup is recorded:\n{kept}");
    assert!(
        keys.iter().any(|k| k.contains(":kept:")),
        "the kept form post is in the store:\n{kept}"
    );
    assert_clean("Redis", kept.as_bytes(), &personal(&run));
    assert_log_clean(&run);
    assert_session_minimal(&run);
    assert_age_status_minimal(&run);
}

/// The other side of "only if some route forwards them": with a route that forwards the
/// name (the default test routes: `forward: [name, birth]`), the session keeps the name, and
/// still neither gender nor phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keeps_exactly_the_forwarded_fields() {
    let env = Env::start().await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/member", &Person::named(NAME))
        .await;
    assert_eq!(r.status(), 302);
    let claims = verigate::session::Keyring::from_base64_list(SESSION_KEY)
        .unwrap()
        .open_session(&b.jar["vg"], chrono::Utc::now().timestamp())
        .unwrap();
    assert_eq!(claims.name.as_deref(), Some(NAME));
    assert_eq!((claims.gender, claims.phone), (None, None));
}
