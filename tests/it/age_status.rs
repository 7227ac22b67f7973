//! Adult status that lasts (`session.age_status_ttl`, `require.age_status`): a person who
//! passed an age-only route carries a sealed age status, and such routes take it without a
//! session, telling the app the age and when it was checked, nothing else. Routes that need
//! the person still need a session. Logout and erasure revoke it; it opens on its own host
//! only, within its ttl and the route's max_session_age, and not when tampered with.

use crate::common::*;
use serde_json::{json, Value};

/// How long ago the sandbox says the person was verified: older than `/bar-fresh` accepts.
const VERIFIED_AGO: i64 = 120;

/// Iamport (results up to 10 minutes old), age statuses for a year, and:
/// `/bar` (19+, youth_act, age-only), `/bar-fresh` (the same, verified at most 60 s ago),
/// `/bar-birthday` (19+ by birthday, age-only), `/member` (the person: a session).
fn proxy() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport().max_result_age("10m"))
        .age_status_ttl("365d")
        .routes([
            Route::prefix("/bar-fresh")
                .providers(["iamport"])
                .min_age(19)
                .age_status()
                .max_session_age("60s"),
            Route::prefix("/bar-birthday")
                .providers(["iamport"])
                .min_age(19)
                .age_rule("birthday")
                .age_status(),
            Route::prefix("/bar")
                .providers(["iamport"])
                .min_age(19)
                .age_status(),
            Route::prefix("/member").providers(["iamport"]),
            Route::prefix("/"),
        ])
}

fn adult() -> Person {
    Person {
        certified_ago: VERIFIED_AGO,
        ..Person::named("성인손님")
    }
}

/// The year in Seoul now (the gate's `timezone`).
fn seoul_year() -> i32 {
    use chrono::Datelike;
    (chrono::Utc::now() + chrono::Duration::hours(9)).year()
}

/// Every `x-verified-*` header the app received on its last request, by name.
fn verified_headers(env: &Env) -> Vec<(String, String)> {
    let up = env.last_upstream();
    let mut out: Vec<(String, String)> = up["headers"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("x-verified-"))
        .map(|(k, v)| (k.clone(), v[0].as_str().unwrap_or("").to_string()))
        .collect();
    out.sort();
    out
}

/// A browser of `env` verified for `/bar` and back on it, holding a session and an age
/// status; the app saw only the two age headers.
async fn at_the_bar(env: &Env) -> Browser {
    let mut b = env.browser();
    let r = b.verify_redirect(env.sandbox, "/bar", &adult()).await;
    assert_eq!(r.status(), 302, "verified");
    assert!(b.jar.contains_key("vg") && !b.jar.contains_key("vg_age"));
    let r = b.get_html("/bar").await;
    assert_eq!(r.status(), 200, "the session passes the age-only route");
    let set: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let age = set
        .iter()
        .find(|c| c.starts_with("vg_age="))
        .unwrap_or_else(|| panic!("an age status is issued: {set:?}"));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(age.contains(attr), "{attr} in {age}");
    }
    assert!(!age.contains("Domain"), "{age}");
    assert!(b.jar.contains_key("vg_age"));
    b
}

/// The two age headers, and only them; the age checked when the sandbox verified.
fn assert_age_only(env: &Env) -> String {
    let seen = verified_headers(env);
    let names: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["x-verified-age-checked-at", "x-verified-age-ok"],
        "{seen:?}"
    );
    assert_eq!(seen[1].1, "true");
    let at = chrono::DateTime::parse_from_rfc3339(&seen[0].1).unwrap();
    let ago = chrono::Utc::now().timestamp() - at.timestamp();
    assert!(
        (VERIFIED_AGO..VERIFIED_AGO + 60).contains(&ago),
        "checked {ago}s ago"
    );
    seen[0].1.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adult_comes_back_without_a_session_and_the_app_learns_only_the_age() {
    let env = Env::with(proxy()).await;
    let mut b = at_the_bar(&env).await;
    let checked_at = assert_age_only(&env);
    // A second visit with the session: the status is not issued again.
    let r = b.get_html("/bar").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none());
    // The session gone (ended, expired): the status alone opens the age-only route, with the
    // same two headers, the age checked at the same time.
    b.jar.remove("vg");
    let hits = env.hits();
    let r = b.get_html("/bar").await;
    assert_eq!(r.status(), 200);
    assert_eq!(env.hits(), hits + 1);
    assert_eq!(assert_age_only(&env), checked_at);
    assert!(r.headers().get("set-cookie").is_none());
    // The status never reaches the app.
    let cookies = env.last_upstream()["headers"]["cookie"].clone();
    assert!(
        !cookies.to_string().contains("vg_age"),
        "verigate's cookies stay home: {cookies}"
    );
    // A route that needs the person asks for a verification.
    let r = b.get_html("/member").await;
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/.verigate/verify?return_to=%2Fmember"));
    // max_session_age applies to the status: verified 120 s ago, this route takes 60 s.
    let r = b.get_html("/bar-fresh").await;
    assert_eq!(r.status(), 302, "too old for /bar-fresh");
    // The same cookie on another host opens nothing.
    let r = b
        .send(
            b.client
                .get(b.url("/bar"))
                .header("host", "other.example")
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(r.status(), 302, "bound to the host it was issued on");
    // Tampered with, anywhere: refused, and the app never sees it.
    let good = b.jar["vg_age"].clone();
    for i in [0, good.len() / 2, good.len() - 1] {
        let mut bytes = good.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        b.jar
            .insert("vg_age".into(), String::from_utf8(bytes).unwrap());
        let hits = env.hits();
        assert_eq!(b.get_html("/bar").await.status(), 302, "flipped at {i}");
        assert_eq!(env.hits(), hits);
    }
    // Sent as the session cookie, it is no session either.
    b.jar.remove("vg_age");
    b.jar.insert("vg".into(), good.clone());
    assert_eq!(b.get_html("/bar").await.status(), 302);
    b.jar.remove("vg");
    b.jar.insert("vg_age".into(), good);
    assert_eq!(b.get_html("/bar").await.status(), 200, "intact again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_age_status_with_or_without_a_session() {
    let env = Env::with(proxy()).await;
    // With the session: both end; the status replayed opens nothing.
    let mut b = at_the_bar(&env).await;
    let stolen = b.jar["vg_age"].clone();
    let r = b.post("/.verigate/logout", "").await;
    assert_eq!(r.status(), 200);
    assert!(!b.jar.contains_key("vg") && !b.jar.contains_key("vg_age"));
    assert_eq!(b.get_html("/bar").await.status(), 302);
    let mut replay = env.browser();
    replay.jar.insert("vg_age".into(), stolen);
    assert_eq!(replay.get_html("/bar").await.status(), 302, "revoked");
    // Only the status left (the session long gone): the logout still ends it.
    let mut c = at_the_bar(&env).await;
    c.jar.remove("vg");
    assert_eq!(c.get_html("/bar").await.status(), 200);
    let stolen = c.jar["vg_age"].clone();
    let r = c.post("/.verigate/logout", "").await;
    assert_eq!(r.status(), 200);
    assert!(!c.jar.contains_key("vg_age"));
    let mut replay = env.browser();
    replay.jar.insert("vg_age".into(), stolen);
    assert_eq!(replay.get_html("/bar").await.status(), 302, "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_ttl_applies_at_once_to_statuses_already_issued() {
    let env = Env::with(proxy().reloadable()).await;
    let mut b = at_the_bar(&env).await;
    b.jar.remove("vg");
    assert_eq!(b.get_html("/bar").await.status(), 200);
    // Issued for a year; the operator shortens age statuses to a minute: this one, checked
    // 120 s ago, has expired.
    env.write_config(&proxy().reloadable().age_status_ttl("60s"));
    let (status, body) = env.reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.get_html("/bar").await.status(), 302, "past the ttl");
    // Age statuses turned off: the route may not take them (check refuses), so it goes.
    let off = proxy()
        .reloadable()
        .session_set("age_status_ttl", Value::Null);
    env.write_config(&off);
    let (status, body) = env.reload().await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("session.age_status_ttl"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_age_is_counted_again_on_the_day_of_use() {
    let env = Env::with(proxy()).await;
    // Turning 19 on the last day of this year: of age under the Youth Protection Act from
    // 1 January, not yet by the birthday. The status keeps the birth year, and each route
    // counts it with its own rule on the day of use.
    let year = seoul_year() - 19;
    let p = Person {
        certified_ago: VERIFIED_AGO,
        ..Person::born(&format!("{year}1231"))
    };
    let mut b = env.browser();
    let r = b.verify_redirect(env.sandbox, "/bar", &p).await;
    assert_eq!(r.status(), 302);
    assert_eq!(b.get_html("/bar").await.status(), 200);
    assert!(b.jar.contains_key("vg_age"));
    b.jar.remove("vg");
    assert_eq!(b.get_html("/bar").await.status(), 200, "youth_act: of age");
    // Under the birthday rule the year alone cannot say: verify (the session would).
    assert_eq!(b.get_html("/bar-birthday").await.status(), 302);
    // A person under age is refused with a session and is given no status.
    let minor = Person {
        certified_ago: VERIFIED_AGO,
        ..Person::born(&format!("{}0101", seoul_year() - 18))
    };
    let mut m = env.browser();
    let r = m.verify_redirect(env.sandbox, "/bar", &minor).await;
    assert_eq!(r.status(), 302);
    let (status, code) = refusal(m.get_json("/bar").await).await;
    assert_eq!((status, code.as_str()), (403, "underage"));
    assert!(!m.jar.contains_key("vg_age"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_revokes_the_persons_age_status() {
    let dir = tempfile::tempdir().unwrap();
    let token = "admin-token-0123456789abcdef";
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let env =
        Env::with(proxy().set("admin", json!({ "token_file": file.display().to_string() }))).await;
    let mut b = at_the_bar(&env).await;
    let di = verigate::session::Keyring::from_base64_list(SESSION_KEY)
        .unwrap()
        .open_session(&b.jar["vg"], chrono::Utc::now().timestamp())
        .unwrap()
        .unique_in_site;
    b.jar.remove("vg");
    assert_eq!(b.get_html("/bar").await.status(), 200);
    let r = client()
        .post(format!("http://{}/accounts/forget", env.admin))
        .bearer_auth(token)
        .json(&json!({ "unique_in_site": di }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        b.get_html("/bar").await.status(),
        302,
        "revoked with the person"
    );
    // Someone else's status is untouched.
    let mut other = env.browser();
    let someone = Person {
        certified_ago: VERIFIED_AGO,
        ..Person::named("다른손님")
    };
    assert_eq!(
        other
            .verify_redirect(env.sandbox, "/bar", &someone)
            .await
            .status(),
        302
    );
    assert_eq!(other.get_html("/bar").await.status(), 200);
    other.jar.remove("vg");
    assert_eq!(other.get_html("/bar").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_secure_cookies_the_status_is_a_host_cookie() {
    let env = Env::with(proxy().secure_cookies()).await;
    let mut b = env.browser();
    let flow = b.start_iamport("/bar").await;
    let back = b.certify(env.sandbox, &flow, &adult(), true).await;
    // (Its return URL says https: secure cookies mean TLS in front; this proxy speaks HTTP.)
    let ret = back["location"]
        .as_str()
        .unwrap()
        .replace("https://", "http://");
    assert_eq!(b.open_html(&ret).await.status(), 302);
    let r = b.get_html("/bar").await;
    assert_eq!(r.status(), 200);
    let age = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("__Host-vg_age="))
        .expect("the age status under the __Host- name");
    assert!(
        age.contains("Secure") && age.contains("Path=/") && !age.contains("Domain"),
        "{age}"
    );
    b.jar.remove("__Host-vg");
    assert_eq!(b.get_html("/bar").await.status(), 200);
    // Under the name without the prefix (a sibling host could plant that one): nothing.
    let v = b.jar.remove("__Host-vg_age").unwrap();
    b.jar.insert("vg_age".into(), v.clone());
    assert_eq!(b.get_html("/bar").await.status(), 302);
    // Nor does the status reach an app under any form of verigate's names (a log of the app's
    // cookies would collect adult tokens): each form of each name stays home, on an open route.
    b.jar.clear();
    for name in [
        "vg",
        "vg_flow",
        "vg_kept",
        "vg_age",
        "__Host-vg_age",
        "__Host-vg_kept",
    ] {
        b.jar.insert(name.into(), v.clone());
    }
    b.jar.insert("theirs".into(), "kept".into());
    assert_eq!(b.get_html("/open").await.status(), 200);
    let cookies = env.last_upstream()["headers"]["cookie"].to_string();
    assert!(
        cookies.contains("theirs=kept") && !cookies.contains("vg"),
        "only the app's own cookie goes on: {cookies}"
    );
}

/// Without secure cookies, the `__Host-` forms of verigate's names are verigate's too: a
/// status copied under one never reaches the app.
#[tokio::test]
async fn no_form_of_verigates_cookie_names_reaches_the_app() {
    let env = Env::with(proxy()).await;
    let mut b = env.browser();
    for name in [
        "__Host-vg",
        "__Host-vg_flow",
        "__Host-vg_kept",
        "__Host-vg_age",
        "vg_age",
    ] {
        b.jar.insert(name.into(), "x".into());
    }
    b.jar.insert("theirs".into(), "kept".into());
    assert_eq!(b.get_html("/open").await.status(), 200);
    let cookies = env.last_upstream()["headers"]["cookie"].to_string();
    assert!(
        cookies.contains("theirs=kept") && !cookies.contains("vg"),
        "only the app's own cookie goes on: {cookies}"
    );
}
