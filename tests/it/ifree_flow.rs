//! ifree: the member life cycle through the real proxy and the sandbox — key exchange,
//! registration, login — and every way it must fail. RSA and the cipher are proven against
//! OpenSSL's command line.

use crate::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// ifree alone: members' pages on ifree, the rest open.
fn ifree() -> Proxy {
    Proxy::new()
        .provider(Provider::ifree())
        .route(Route::prefix("/member").providers(["ifree"]))
        .route(Route::prefix("/"))
}

/// With an adult area too. A min_age route may take ifree (whose birth date is
/// self-asserted) only beside a provider that verifies birth dates: Iamport here.
fn with_adult_area() -> Proxy {
    ifree().provider(Provider::iamport()).route_before(
        "member",
        Route::prefix("/adult")
            .providers(["iamport", "ifree"])
            .min_age(19),
    )
}

async fn env() -> Env {
    Env::with(ifree()).await
}

fn callback_url(env: &Env) -> String {
    env.url("/.verigate/ifree/callback")
}

/// The scripted sandbox member registers with verigate (key exchange + registration).
async fn register(
    env: &Env,
    passcode: &str,
    login_passcode: Option<&str>,
    ubifill: Option<Value>,
) -> String {
    let mut body = json!({ "callback_url": callback_url(env), "passcode": passcode });
    if let Some(l) = login_passcode {
        body["login_passcode"] = json!(l);
    }
    if let Some(u) = ubifill {
        body["ubifill"] = u;
    }
    let r = env
        .client
        .post(format!("http://{}/ifree/sandbox/members", env.sandbox))
        .json(&body)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["ptn_cd"]
        .as_str()
        .unwrap_or_else(|| panic!("registration failed: {v}"))
        .to_string()
}

/// Open the ifree start page for `return_to`: its `verigate-flow` block (the `state` the SDK
/// gets) and the flow cookie.
async fn start(b: &mut Browser, return_to: &str) -> Value {
    let enc: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let r = b
        .get_html(&format!("/.verigate/ifree/start?return_to={enc}"))
        .await;
    assert_eq!(r.status(), 200);
    flow_json(&r.text().await.unwrap())
}

/// The member logs in at ifree's window, which the SDK opened with this flow's parameters.
/// Returns where ifree sends the browser back (the SDK's redirect, with `code`, `state`,
/// `ptn_token` and `ptn_cd`), without going there.
async fn ifree_window(env: &Env, flow: &Value, ptn_cd: &str) -> String {
    let r = env
        .client
        .post(format!("http://{}/ifree/login", env.sandbox))
        .form(&[
            ("redirect_uri", flow["redirect_uri"].as_str().unwrap()),
            ("state", flow["state"].as_str().unwrap()),
            ("ptn_cd", ptn_cd),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    r.headers()["location"].to_str().unwrap().to_string()
}

fn query(url: &str, name: &str) -> String {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// Log in through the SDK's redirect: start page, sandbox login window, return.
async fn login_redirect(
    env: &Env,
    b: &mut Browser,
    return_to: &str,
    ptn_cd: &str,
) -> reqwest::Response {
    let flow = start(b, return_to).await;
    assert_eq!(flow["callback_url"], callback_url(env));
    let back = ifree_window(env, &flow, ptn_cd).await;
    b.open_html(&back).await
}

/// `POST /ifree/login` with this body, as the start page's script posts it.
async fn post_login(b: &mut Browser, body: &Value) -> reqwest::Response {
    let req = b
        .client
        .post(b.url("/.verigate/ifree/login"))
        .header("accept", "application/json")
        .json(body);
    b.send(req).await
}

/// Log in through the SDK's callback: `POST /ifree/login {ptn_token, state}`.
async fn login_post(b: &mut Browser, token: &str) -> reqwest::Response {
    let flow = start(b, "/member").await;
    post_login(b, &json!({ "ptn_token": token, "state": flow["state"] })).await
}

/// A refusal sets no session cookie (the flow cookie may stay).
fn no_session_cookie(r: &reqwest::Response) {
    for v in r.headers().get_all("set-cookie") {
        let v = v.to_str().unwrap();
        assert!(
            !v.starts_with("vg=") || v.starts_with("vg=;"),
            "a refusal set a session: {v}"
        );
    }
}

async fn post_callback(env: &Env, body: Value) -> reqwest::Response {
    env.client
        .post(callback_url(env))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_life_cycle_end_to_end() {
    let env = Env::with(with_adult_area()).await;
    let ptn_cd = register(&env, "246810", None, None).await;
    let mut b = env.browser();
    let r = login_redirect(&env, &mut b, "/member/home", &ptn_cd).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/member/home");
    assert_eq!(b.get_html("/member/home").await.status(), 200);
    let up = env.last_upstream();
    assert_eq!(up["headers"]["x-verified-provider"][0], "ifree");
    let uis = up["headers"]["x-verified-unique-in-site"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uis.starts_with("ifree.") && !uis.contains(&ptn_cd), "{uis}");
    // ifree's birth date is self-asserted: a min_age route that accepts ifree refuses its
    // members with age_unknown, and nothing goes upstream.
    let hits = env.hits();
    let r = b.get_json("/adult").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "age_unknown");
    assert_eq!(env.hits(), hits);
    // Stable per site: the next login of the same member has the same identifier.
    let mut again = env.browser();
    let token = env.ifree.issue_ptn_token(&ptn_cd);
    let r = login_post(&mut again, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["redirect"], "/member");
    again.get_html("/member").await;
    assert_eq!(
        env.last_upstream()["headers"]["x-verified-unique-in-site"][0],
        uis.as_str()
    );
}

/// Login CSRF: someone logs in at ifree as their own member and makes another browser present
/// that login, so the victim acts as the attacker's member. A `ptn_token` counts only with the
/// `state` of the flow this browser started, on both return paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_bound_to_the_flow_this_browser_started() {
    let env = env().await;
    let attackers_member = register(&env, "424242", None, None).await;
    // Browser A runs its own flow; ifree hands A's page a token for A's state.
    let mut a = env.browser();
    let a_flow = start(&mut a, "/member").await;
    let back = ifree_window(&env, &a_flow, &attackers_member).await;
    let (token, a_state) = (query(&back, "ptn_token"), query(&back, "state"));
    assert_eq!(a_state, a_flow["state"].as_str().unwrap());
    // Browser B starts its own flow, then is made to present A's login.
    let mut b = env.browser();
    let b_flow = start(&mut b, "/member").await;
    assert_ne!(b_flow["state"], a_flow["state"]);
    let hits = env.hits();
    for body in [
        json!({ "ptn_token": token, "state": a_state }),
        json!({ "ptn_token": token }),
        json!({ "ptn_token": token, "state": "" }),
        json!({ "ptn_token": token, "state": format!("{a_state}x") }),
    ] {
        let r = post_login(&mut b, &body).await;
        no_session_cookie(&r);
        assert_eq!(refusal(r).await, (403, "flow_mismatch".into()), "{body}");
    }
    // The SDK's redirect path refuses the same.
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let forged = format!(
        "/.verigate/ifree/return?code=0000&state={}&ptn_token={}&ptn_cd={}",
        enc(&a_state),
        enc(&token),
        enc(&attackers_member)
    );
    let r = b.get_html(&forged).await;
    no_session_cookie(&r);
    assert_eq!(refusal(r).await, (403, "flow_mismatch".into()));
    // Without any flow cookie: flow_missing, on both paths.
    let mut c = env.browser();
    let r = post_login(&mut c, &json!({ "ptn_token": token, "state": a_state })).await;
    no_session_cookie(&r);
    assert_eq!(refusal(r).await, (400, "flow_missing".into()));
    let r = c.get_html(&forged).await;
    no_session_cookie(&r);
    assert_eq!(refusal(r).await, (400, "flow_missing".into()));
    // B has no session and nothing reached the app.
    assert!(!b.jar.contains_key("vg") && !c.jar.contains_key("vg"));
    assert_eq!(b.get_json("/member").await.status(), 401);
    assert_eq!(env.hits(), hits);
    // The token was not burnt: the browser whose flow it belongs to still logs in.
    let r = post_login(&mut a, &json!({ "ptn_token": token, "state": a_state })).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(a.jar.contains_key("vg"));
    assert_eq!(a.get_html("/member").await.status(), 200);
    assert_eq!(env.hits(), hits + 1);
    assert_eq!(
        env.last_upstream()["headers"]["x-verified-provider"][0],
        "ifree"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ubifill_birth_never_satisfies_min_age() {
    // ubifill is written by the member's own client: a birth date in it is self-asserted, so
    // a min_age route refuses the member with age_unknown, whatever the date says.
    let env = Env::with(with_adult_area()).await;
    let ptn_cd = register(&env, "1111", None, Some(json!({"name": "박지수", "phone": "01055556666", "email": "a@b.c", "birth": "19800101"}))).await;
    let mut b = env.browser();
    assert_eq!(
        login_redirect(&env, &mut b, "/adult", &ptn_cd)
            .await
            .status(),
        302
    );
    let hits = env.hits();
    let r = b.get_json("/adult").await;
    assert_eq!(refusal(r).await, (403, "age_unknown".into()));
    assert_eq!(env.hits(), hits, "nothing upstream");
    // Routes without min_age still take the member.
    assert_eq!(b.get_html("/member").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passcode_unknown_member_replay_and_expiry() {
    let env = env().await;
    // ifree answers a passcode other than the registered one.
    let liar = register(&env, "123456", Some("654321"), None).await;
    let mut b = env.browser();
    let r = login_redirect(&env, &mut b, "/member", &liar).await;
    assert_eq!(refusal(r).await, (403, "passcode_mismatch".into()));
    assert!(!b.jar.contains_key("vg"));

    // A member registered with another site (another verigate, same ifree) is unknown here.
    let other = Env::with(ifree().provider(Provider::ifree().on_sandbox(env.sandbox))).await;
    let stranger = env
        .ifree
        .register_member(&callback_url(&other), "999999", None, None)
        .await
        .unwrap();
    let mut s = env.browser();
    let r = login_post(&mut s, &env.ifree.issue_ptn_token(&stranger)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unknown_member");

    // A ptn_token is good once.
    let ok = register(&env, "777777", None, None).await;
    let token = env.ifree.issue_ptn_token(&ok);
    let mut first = env.browser();
    assert_eq!(login_post(&mut first, &token).await.status(), 200);
    let mut second = env.browser();
    let r = login_post(&mut second, &token).await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "replayed_result");

    // An expired access token: ifree refuses authenticate; no session.
    env.ifree.set_acs_ttl(-1);
    let mut late = env.browser();
    let r = login_post(&mut late, &env.ifree.issue_ptn_token(&ok)).await;
    assert_eq!(refusal(r).await, (403, "not_certified".into()));
    assert!(!late.jar.contains_key("vg"));
    env.ifree.set_acs_ttl(600);

    // A cancelled login and a login without a flow.
    let mut c = env.browser();
    let r = c
        .get_html("/.verigate/ifree/start?return_to=%2Fmember")
        .await;
    let flow = flow_json(&r.text().await.unwrap());
    let back = format!(
        "/.verigate/ifree/return?code=E900&state={}",
        flow["state"].as_str().unwrap()
    );
    assert_eq!(
        refusal(c.get_html(&back).await).await,
        (403, "not_certified".into())
    );
    let mut nobody = env.browser();
    let req = nobody
        .client
        .post(nobody.url("/.verigate/ifree/login"))
        .json(&json!({"ptn_token": env.ifree.issue_ptn_token(&ok)}));
    assert_eq!(
        refusal(nobody.send(req).await).await,
        (400, "flow_missing".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_between_registration_and_login_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Storage::sqlite(dir.path().join("m.db"));
    let first = Env::with(ifree().store(store.clone())).await;
    let ptn_cd = register(&first, "135790", None, None).await;
    let sandbox = first.sandbox;
    let token = first.ifree.issue_ptn_token(&ptn_cd);
    drop(first);
    let second = Env::with(
        ifree()
            .store(store)
            .provider(Provider::ifree().on_sandbox(sandbox)),
    )
    .await;
    let mut b = second.browser();
    let r = login_post(&mut b, &token).await;
    assert_eq!(
        r.status(),
        200,
        "member key and passcode survived the restart"
    );
}

fn rsa_keypair() -> (rsa::RsaPrivateKey, String) {
    use rsa::pkcs8::EncodePublicKey;
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let der = sk.to_public_key().to_public_key_der().unwrap();
    (sk, STANDARD.encode(der.as_bytes()))
}

fn open_key(sk: &rsa::RsaPrivateKey, answer: &Value) -> String {
    let ct = STANDARD
        .decode(answer["result"]["enc_partner_key"].as_str().unwrap())
        .unwrap();
    String::from_utf8(sk.decrypt(rsa::Pkcs1v15Encrypt, &ct).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_hostile_callbacks_store_nothing() {
    use verigate::crypto::ifree_cipher::{encrypt, Cipher};
    let env = env().await;
    let (sk, public) = rsa_keypair();
    let code = |v: &Value| v["code"].as_str().unwrap_or("").to_string();
    let call = |body: Value| async {
        post_callback(&env, body)
            .await
            .json::<Value>()
            .await
            .unwrap()
    };

    assert_eq!(
        code(
            &call(
                json!({"client_id": "evil", "used_type": "1", "ptn_cd": "P1", "public_key": public})
            )
            .await
        ),
        "9001"
    );
    assert_eq!(
        code(
            &call(json!({"client_id": "sandbox-client", "used_type": "1", "public_key": public}))
                .await
        ),
        "9003"
    );
    assert_eq!(code(&call(json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P1", "public_key": "bm90IGEga2V5"})).await), "9003");
    assert_eq!(
        code(&call(json!({"client_id": "sandbox-client", "used_type": "7", "ptn_cd": "P1"})).await),
        "9003"
    );
    let r = env
        .client
        .post(callback_url(&env))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers().get("set-cookie").is_none(),
        "callbacks never set cookies"
    );
    assert_eq!(code(&r.json::<Value>().await.unwrap()), "9003");
    // The bad public key stored nothing: registration finds no member.
    assert_eq!(code(&call(json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P1", "partner_sp": "AAAA"})).await), "9002");

    // A real key exchange; a re-sent one (a lost answer, or someone racing the member) gets a
    // fresh key that replaces the pending one: a registration made with the first key fails
    // 9004 and stores nothing, so the race is visible and the first key is never handed out.
    let one = call(json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P2", "public_key": public})).await;
    assert_eq!(code(&one), "0000", "{one}");
    let first = open_key(&sk, &one);
    assert_eq!(first.len(), 32);
    let (sk2, public2) = rsa_keypair();
    let again = call(json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P2", "public_key": public2})).await;
    let key = open_key(&sk2, &again);
    assert_eq!(key.len(), 32);
    assert_ne!(
        key, first,
        "a re-sent key exchange never hands out the pending key"
    );
    let superseded = json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P2", "partner_sp": encrypt(Cipher::DEFAULT, first.as_bytes(), b"6666").unwrap()});
    assert_eq!(code(&call(superseded).await), "9004");
    // A partner_sp under another key does not decrypt: refused, nothing stored.
    let wrong = encrypt(
        Cipher::DEFAULT,
        b"0123456789abcdefghijklmnopqrstuv",
        b"1234",
    )
    .unwrap();
    assert_eq!(code(&call(json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P2", "partner_sp": wrong})).await), "9004");
    let bad_ubifill = json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P2",
        "partner_sp": encrypt(Cipher::DEFAULT, key.as_bytes(), b"1234").unwrap(), "ubifill": "AAAA"});
    assert_eq!(code(&call(bad_ubifill).await), "9004");
    env.ifree.adopt_member("P2", &key, "1234");
    let mut b = env.browser();
    let r = login_post(&mut b, &env.ifree.issue_ptn_token("P2")).await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "unknown_member",
        "no passcode was stored"
    );
    // Registration, then login works; then the public callback no longer hands out the key.
    let good = json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P2", "partner_sp": encrypt(Cipher::DEFAULT, key.as_bytes(), b"1234").unwrap()});
    assert_eq!(code(&call(good).await), "0000");
    let mut b = env.browser();
    assert_eq!(
        login_post(&mut b, &env.ifree.issue_ptn_token("P2"))
            .await
            .status(),
        200
    );
    let takeover = call(json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P2", "public_key": public2})).await;
    assert_eq!(code(&takeover), "9005");
    assert!(takeover.get("result").is_none());
    // A second registration changes nothing either (it would reset the passcode and, with
    // ubifill, the birth date): 9005, and the registered passcode still logs in.
    let ubi = encrypt(Cipher::DEFAULT, key.as_bytes(), br#"{"birth":"19500101"}"#).unwrap();
    let rewrite = json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P2",
        "partner_sp": encrypt(Cipher::DEFAULT, key.as_bytes(), b"9999").unwrap(), "ubifill": ubi});
    assert_eq!(code(&call(rewrite).await), "9005");
    let mut b = env.browser();
    assert_eq!(
        login_post(&mut b, &env.ifree.issue_ptn_token("P2"))
            .await
            .status(),
        200,
        "the first registration's passcode still holds"
    );
}

/// Unauthenticated key exchanges are bounded: of 5,000 for distinct members, `max_pending`
/// are kept and the rest answered 9429 (Redis store: its keys are counted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_exchanges_cannot_grow_the_store_without_bound() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vg-flood-{}:", std::process::id());
    let env = Env::with(
        ifree()
            .provider(Provider::ifree().set("max_pending", json!(300)))
            .store(Storage::redis(&url).prefix(&prefix))
            // The rate limits would stop the flood first: this is about the store's bound.
            .set(
                "limits",
                json!({ "ifree_key_exchanges": {
                    "per_client": { "burst": 10000, "per_minute": 10000 },
                    "overall": { "burst": 10000, "per_minute": 10000 } } }),
            ),
    )
    .await;
    let (_sk, public) = rsa_keypair();
    let codes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, url, public) = (env.client.clone(), callback_url(&env), public.clone());
        let (codes, next) = (codes.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= 5000 {
                    return;
                }
                let body = json!({"client_id": "sandbox-client", "used_type": "1",
                    "ptn_cd": format!("FLOOD{i}"), "public_key": public});
                let v: Value = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let c = v["code"].as_str().unwrap().to_string();
                *codes.lock().unwrap().entry(c).or_insert(0usize) += 1;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let codes = codes.lock().unwrap().clone();
    println!("5,000 key exchanges answered: {codes:?}");
    assert_eq!(codes.get("0000"), Some(&300), "{codes:?}");
    assert_eq!(codes.get("9429"), Some(&4700), "{codes:?}");
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap();
    let members = keys.iter().filter(|k| k.contains("member:")).count();
    println!(
        "store after 5,000 key exchanges: {members} member records, {} keys",
        keys.len()
    );
    assert_eq!(
        members, 300,
        "the store holds at most max_pending pending members"
    );
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut con).unwrap();
    }
    // Every refused exchange is counted (the 4,700 and those refused while waiting above).
    let sample =
        r#"verigate_verifications_total{outcome="failed",provider="ifree",reason="pending_full"} "#;
    let m = env.metrics_until(|m| m.contains(sample)).await;
    assert!(metric(&m, sample.trim_end()) >= 4700.0, "{m}");
}

/// Pending members expire (`pending_ttl`), which frees the room, and leave the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_members_expire() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("members.db");
    let env = Env::with(
        ifree()
            .provider(
                Provider::ifree()
                    .set("max_pending", json!(3))
                    .set("pending_ttl", json!("1s")),
            )
            .store(Storage::sqlite(&db)),
    )
    .await;
    let (_sk, public) = rsa_keypair();
    let exchange = |ptn: &str| json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": ptn, "public_key": public});
    for ptn in ["E1", "E2", "E3"] {
        let v: Value = post_callback(&env, exchange(ptn))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["code"], "0000");
    }
    let rows = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM members", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(rows(), 3);
    // Full until they expire; then a new member gets in and the expired ones are gone.
    let mut answers = Vec::new();
    loop {
        let v: Value = post_callback(&env, exchange("LATE"))
            .await
            .json()
            .await
            .unwrap();
        answers.push(v["code"].as_str().unwrap().to_string());
        if v["code"] != "9429" || answers.len() > 400 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        answers.first().map(String::as_str),
        Some("9429"),
        "{answers:?}"
    );
    assert_eq!(
        answers.last().map(String::as_str),
        Some("0000"),
        "{answers:?}"
    );
    // The first to expire made the room (the others may still be pending): the bound holds.
    assert!(rows() <= 3, "expired pending members are removed");
    // An expired member's registration finds nothing: 9002.
    let late = json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "E1",
        "partner_sp": verigate::crypto::ifree_cipher::encrypt(
            verigate::crypto::ifree_cipher::Cipher::DEFAULT, b"0123456789abcdefghijklmnopqrstuv", b"1").unwrap()});
    let v: Value = post_callback(&env, late).await.json().await.unwrap();
    assert_eq!(v["code"], "9002");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_and_cipher_interoperate_with_openssl() {
    let Ok(v) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        skip::missing(
            "the openssl command",
            "it is not installed: apt-get install openssl",
        );
        return;
    };
    assert!(v.status.success());
    let env = env().await;
    let dir = tempfile::tempdir().unwrap();
    let key_pem = dir.path().join("member.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        key_pem.to_str().unwrap(),
    ]);
    let der = run(&[
        "pkey",
        "-in",
        key_pem.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    let one = post_callback(&env, json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "OSSL1", "public_key": STANDARD.encode(&der)}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(one["code"], "0000");
    // OpenSSL decrypts verigate's RSA/ECB/PKCS1Padding ciphertext.
    let ct = dir.path().join("enc_partner_key.bin");
    std::fs::write(
        &ct,
        STANDARD
            .decode(one["result"]["enc_partner_key"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let key = run(&[
        "pkeyutl",
        "-decrypt",
        "-inkey",
        key_pem.to_str().unwrap(),
        "-pkeyopt",
        "rsa_padding_mode:pkcs1",
        "-in",
        ct.to_str().unwrap(),
    ]);
    let key = String::from_utf8(key).unwrap();
    assert_eq!(key.len(), 32);
    // OpenSSL encrypts the passcode with the member key (AES-256-CBC, IV = key[..16]).
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let plain = dir.path().join("pass.txt");
    std::fs::write(&plain, "8642").unwrap();
    let sp = run(&[
        "enc",
        "-aes-256-cbc",
        "-K",
        &hex(key.as_bytes()),
        "-iv",
        &hex(&key.as_bytes()[..16]),
        "-a",
        "-A",
        "-in",
        plain.to_str().unwrap(),
    ]);
    let sp = String::from_utf8(sp).unwrap();
    let two = post_callback(&env, json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "OSSL1", "partner_sp": sp.trim()}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(two["code"], "0000", "{two}");
    // The member logs in: verigate compared what it decrypted from OpenSSL with ifree's answer.
    env.ifree.adopt_member("OSSL1", &key, "8642");
    let mut b = env.browser();
    assert_eq!(
        login_post(&mut b, &env.ifree.issue_ptn_token("OSSL1"))
            .await
            .status(),
        200
    );
    env.ifree.adopt_member("OSSL1", &key, "0000");
    let mut c = env.browser();
    assert_eq!(
        login_post(&mut c, &env.ifree.issue_ptn_token("OSSL1"))
            .await
            .status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_api_shapes() {
    let env = env().await;
    let c = client();
    let base = format!("http://{}/ifree/process", env.sandbox);
    let v: Value = c
        .post(format!("{base}/token"))
        .json(&json!({"client_id": "sandbox-client", "secret_key": "x", "ptn_token": "t"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], "E001");
    let v: Value = c.post(format!("{base}/token")).json(&json!({"client_id": "sandbox-client", "secret_key": "sandbox_secret", "ptn_token": "nope"})).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["code"], "E101");
    let ptn_cd = register(&env, "1", None, None).await;
    let t = env.ifree.issue_ptn_token(&ptn_cd);
    let v: Value = c
        .post(format!("{base}/token"))
        .json(
            &json!({"client_id": "sandbox-client", "secret_key": "sandbox_secret", "ptn_token": t}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], "0000");
    assert_eq!(v["result"]["ptn_cd"], ptn_cd.as_str());
    assert_eq!(v["result"]["expire_dt"].as_str().unwrap().len(), 14);
    let v2: Value = c.post(format!("{base}/authenticate")).json(&json!({"client_id": "sandbox-client", "secret_key": "sandbox_secret", "acs_token": v["result"]["acs_token"]})).send().await.unwrap().json().await.unwrap();
    assert_eq!(v2["code"], "0000");
    assert!(v2["result"]["ptn_sp"].as_str().unwrap().len() >= 24);
}

/// `callback_allow_ips` names ifree's servers: a callback from any other address is answered
/// `9403` before its body is read, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_from_a_source_not_allowed_is_9403() {
    let env = Env::with(ifree().reloadable()).await;
    // As started, the file lets callbacks come from loopback (the sandbox's servers).
    let original: Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.config_path.as_ref().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        original["providers"]["ifree"]["callback_allow_ips"],
        json!(["127.0.0.1", "::1"]),
        "{original}"
    );
    let allow = |ips: &'static [&'static str]| {
        let env = &env;
        async move {
            env.write_config(&ifree().provider(Provider::ifree().callback_allow_ips(ips)));
            let (status, body) = env.reload().await;
            assert_eq!(status, 200, "{body}");
        }
    };
    let (sk, public) = rsa_keypair();
    let exchange = json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P403", "public_key": public});
    let registration = |key: &str| {
        json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P403",
            "partner_sp": verigate::crypto::ifree_cipher::encrypt(
                verigate::crypto::ifree_cipher::Cipher::DEFAULT, key.as_bytes(), b"4030").unwrap()})
    };

    // Only ifree's (documentation) address may call; this test calls from 127.0.0.1.
    allow(&["203.0.113.10"]).await;
    for body in [
        exchange.clone(),
        registration("0123456789abcdefghijklmnopqrstuv"),
    ] {
        let r = post_callback(&env, body).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("set-cookie").is_none());
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "9403", "{v}");
        assert_eq!(v["message"], "source not allowed");
        assert!(v.get("result").is_none(), "no member key handed out: {v}");
    }
    // The scripted member's whole registration is refused the same way.
    let e = env
        .ifree
        .register_member(&callback_url(&env), "4030", None, None)
        .await
        .unwrap_err();
    assert!(e.contains("9403"), "{e}");

    // Once loopback is allowed, the refused key exchange turns out to have stored nothing.
    allow(&["203.0.113.10", "127.0.0.1"]).await;
    let v: Value = post_callback(&env, registration("0123456789abcdefghijklmnopqrstuv"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["code"], "9002", "{v}");
    let one: Value = post_callback(&env, exchange).await.json().await.unwrap();
    assert_eq!(one["code"], "0000", "{one}");
    let two: Value = post_callback(&env, registration(&open_key(&sk, &one)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(two["code"], "0000", "{two}");
}

/// A Redis that answers PING and fails every other command: a store that is reachable but
/// cannot serve (a failover, an out-of-memory Redis). `/readyz` probes a write, so verigate
/// starts not ready in front of it.
async fn failing_redis() -> std::net::SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = s.into_split();
                let mut r = BufReader::new(r);
                let mut line = String::new();
                // Each command: `*N`, then N bulk strings (`$len`, the bytes).
                let mut read_line = async |r: &mut BufReader<_>| {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(n) if n > 0 => Some(line.trim_end().to_string()),
                        _ => None,
                    }
                };
                loop {
                    let Some(n) = read_line(&mut r)
                        .await
                        .and_then(|l| l.strip_prefix('*').and_then(|n| n.parse::<usize>().ok()))
                    else {
                        return;
                    };
                    let mut args = Vec::new();
                    for _ in 0..n {
                        let Some(len) = read_line(&mut r).await.and_then(|l| {
                            l.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
                        }) else {
                            return;
                        };
                        let mut arg = vec![0; len + 2];
                        if r.read_exact(&mut arg).await.is_err() {
                            return;
                        }
                        arg.truncate(len);
                        args.push(String::from_utf8_lossy(&arg).to_ascii_uppercase());
                    }
                    let answer = match args.first().map(String::as_str) {
                        Some("PING") => "+PONG\r\n",
                        Some("CLIENT") => "+OK\r\n",
                        _ => "-ERR simulated outage\r\n",
                    };
                    if w.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A store that fails: the callback answers `9500` (ifree retries later), hands out no member
/// key, and a login fails closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_with_the_store_failing_is_9500() {
    let redis = failing_redis().await;
    let env = Env::with(
        ifree()
            .store(Storage::redis(&format!("redis://{redis}")))
            .may_start_unready(),
    )
    .await;
    let readyz = env
        .client
        .get(format!("http://{}/readyz", env.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        readyz.status(),
        503,
        "a store that cannot write is not ready"
    );
    let (_sk, public) = rsa_keypair();
    let key = "0123456789abcdefghijklmnopqrstuv";
    for body in [
        json!({"client_id": "sandbox-client", "used_type": "1", "ptn_cd": "P500", "public_key": public}),
        json!({"client_id": "sandbox-client", "used_type": "2", "ptn_cd": "P500",
            "partner_sp": verigate::crypto::ifree_cipher::encrypt(
                verigate::crypto::ifree_cipher::Cipher::DEFAULT, key.as_bytes(), b"5000").unwrap()}),
    ] {
        let r = post_callback(&env, body).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], "9500", "{v}");
        assert_eq!(v["message"], "temporarily unavailable");
        assert!(v.get("result").is_none(), "no member key handed out: {v}");
    }
    // The scripted member cannot register either; a login fails closed, nothing upstream.
    let e = env
        .ifree
        .register_member(&callback_url(&env), "5000", None, None)
        .await
        .unwrap_err();
    assert!(e.contains("9500"), "{e}");
    env.ifree.adopt_member("P500", key, "5000");
    let hits = env.hits();
    let mut b = env.browser();
    let r = login_post(&mut b, &env.ifree.issue_ptn_token("P500")).await;
    no_session_cookie(&r);
    assert_eq!(refusal(r).await, (503, "store_unavailable".into()));
    assert_eq!(env.hits(), hits);
}

/// ifree members with the record API behind `records::TOKEN` (a token file in `dir`).
fn ifree_with_api(store: Storage, dir: &std::path::Path) -> Proxy {
    let file = dir.join("admin-token");
    std::fs::write(&file, format!("{}\n", crate::records::TOKEN)).unwrap();
    ifree()
        .store(store)
        .set("admin", json!({ "token_file": file.display().to_string() }))
}

/// A registered member who logged in is forgotten by the app (by the person id it got, or by
/// the per-site id): the member record (sealed key, passcode, ubifill) is gone from the store's
/// bytes, the session stops, and the member's next login is `unknown_member`.
async fn a_forgotten_member_is_gone(storage: Storage, at: crate::records::StoreAt, by: &str) {
    use crate::records::{api_forget, contains, store_bytes, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(ifree_with_api(storage, dir.path())).await;
    let ubifill = json!({"name": "지워질사람", "phone": "01099998888"});
    let ptn_cd = register(&env, "5550123", None, Some(ubifill)).await;
    let mut b = env.browser();
    let r = login_redirect(&env, &mut b, "/member/home", &ptn_cd).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(b.get_html("/member/home").await.status(), 200);
    let up = env.last_upstream();
    let header = |n: &str| up["headers"][n][0].as_str().unwrap().to_string();
    let (person, uis) = (
        header("x-verified-person"),
        header("x-verified-unique-in-site"),
    );
    let hash_key: [u8; 32] = STANDARD.decode(HASH_KEY).unwrap().try_into().unwrap();
    let member = verigate::session::keyed_hash(&hash_key, "ifree-member", &ptn_cd);
    assert!(
        contains(&store_bytes(&at), &member),
        "the scan finds the member"
    );

    let body = match by {
        "person" => json!({ "person": person }),
        _ => json!({ "unique_in_site": uis }),
    };
    let (status, answer) = api_forget(env.admin, Some(TOKEN), body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["ifree_members"], 1, "{answer}");
    assert_eq!(answer["forgot"]["accounts"], 0, "{answer}");
    assert_eq!(answer["forgot"]["sessions_revoked"], true, "{answer}");
    assert_ne!(
        b.get_html("/member/home").await.status(),
        200,
        "the session stopped"
    );
    let after = store_bytes(&at);
    assert!(!contains(&after, &member), "the member record is gone");
    assert!(!contains(&after, &person), "the person's hash is gone");
    // A second erasure finds nothing more.
    let (_, again) = api_forget(env.admin, Some(TOKEN), json!({ "person": person })).await;
    assert_eq!(again["forgot"]["ifree_members"], 0, "{again}");
    // The member's next login: unknown here (they may register again with ifree).
    let mut c = env.browser();
    let token = env.ifree.issue_ptn_token(&ptn_cd);
    let r = login_post(&mut c, &token).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unknown_member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_member_on_sqlite_by_person() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::sqlite(dir.path().join("state.db"));
    a_forgotten_member_is_gone(
        storage,
        crate::records::StoreAt::Sqlite(dir.path().to_path_buf()),
        "person",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgotten_member_on_redis_by_unique_in_site() {
    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-ifree-erase-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    let storage = Storage::redis(&url).prefix(&prefix);
    a_forgotten_member_is_gone(
        storage,
        crate::records::StoreAt::Redis(url.clone(), prefix.clone()),
        "unique_in_site",
    )
    .await;
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
