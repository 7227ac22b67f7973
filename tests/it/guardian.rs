//! Guardian consent for children's signups (`require.guardian_consent`, PIPA 제22조의2): a
//! child is held until an adult guardian, another person, verifies through a provider that
//! verifies birth dates, on the child's device or with the link on their own phone; then the
//! signup (a GET, or the form post kept across the detour) reaches the app once, with the
//! consent headers. Refused: a minor guardian, the child as their own guardian (through
//! either provider), a replayed or expired link, a consent for another child; a client-sent
//! `X-Verified-Guardian-*` header never reaches the app.
//!
//! The store is a parameter: most tests run on `memory`; the main path (`guardian_on`) runs on
//! every backend (memory, SQLite, Redis with a prefix of its own), and the admin API reads the
//! record and the child's erasure takes it.

use crate::common::recorder::{Recorder, Seen};
use crate::common::*;
use chrono::Datelike;
use serde_json::{json, Value};
use std::sync::Arc;

const FORM: &str = "application/x-www-form-urlencoded";

/// The consent text the route shows the guardian.
const TEXT_KO: &str = "자녀의 회원가입과 개인정보 수집·이용에 동의합니다.";
const TEXT_EN: &str = "I consent to the signup of my child and the collection of their data.";

fn guardian_rule(extra: Value) -> Value {
    let mut v = json!({
        "under": 14,
        "age_rule": "birthday",
        "children": "verified",
        "text_version": "2026-12-01",
        "text": { "ko": TEXT_KO, "en": TEXT_EN },
    });
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in extra {
            v.insert(k.clone(), x.clone());
        }
    }
    v
}

/// Signed assertions for the app (`shop-app`).
fn assertions() -> Value {
    json!({
        "prefix": "X-Verified-",
        "assertion": { "enabled": true, "key_env": "VG_ASSERT", "audience": "shop-app", "issuer": "verigate-test" },
    })
}

/// The assertion `seen` carries, checked against the proxy's published keys.
async fn assertion_of(env: &Env, seen: &Seen) -> Value {
    let jwks: Value = env
        .client
        .get(env.url("/.verigate/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = seen.header("x-verified-assertion").expect("an assertion");
    // A stated child's names no one (`sub`): required only where the app got a person.
    let with_sub = seen.header("x-verified-person").is_some();
    verify_assertion_of(token, &jwks, "shop-app", with_sub).unwrap()
}

/// A one-account signup for children under 14 with their guardian's consent, on Iamport and
/// PortOne; everything else open.
fn proxy(storage: Storage, rule: Value) -> Proxy {
    Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::portone())
        .store(storage)
        .set("site", json!({ "name": "테스트 게임즈" }))
        .set("identity_headers", assertions())
        .route(
            Route::path("/signup")
                .name("signup")
                .methods(["GET", "POST"])
                .providers(["iamport", "portone"])
                .one_account()
                .require_set("guardian_consent", rule)
                .forward(["guardian_name", "guardian_birth"]),
        )
        .route(Route::prefix("/"))
}

async fn start(storage: Storage, rule: Value) -> (Env, Arc<Recorder>) {
    let (app, addr) = Recorder::spawn().await;
    let env = Env::with(Setup::new(proxy(storage, rule)).upstream(Upstream::At(addr))).await;
    (env, app)
}

/// Someone `years` old today (their birthday a month ago), in the Iamport window's form.
fn aged(years: i32, name: &str) -> Person {
    let today = chrono::Local::now().date_naive();
    let birth = (today - chrono::Duration::days(31))
        .with_year(today.year() - years)
        .or_else(|| (today - chrono::Duration::days(33)).with_year(today.year() - years))
        .unwrap();
    Person {
        name: name.into(),
        birth: birth.format("%Y%m%d").to_string(),
        ..Person::adult()
    }
}

fn child() -> Person {
    aged(12, "김아이")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn attr(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..];
    let key = format!("{attr}=\"");
    let v = tag.find(&key).unwrap() + key.len();
    let end = tag[v..].find('"').unwrap();
    tag[v..v + end].replace("&amp;", "&")
}

/// A same-origin form post from `b` to `path`, accepting `accept`.
async fn post_form(b: &mut Browser, path: &str, accept: &str, body: &str) -> reqwest::Response {
    let req = b
        .client
        .post(b.url(path))
        .header("accept", accept)
        .header("origin", format!("http://{}", b.env_proxy))
        .header("content-type", FORM)
        .body(body.to_string());
    b.send(req).await
}

/// The child verifies (Iamport, redirect mode) for `/signup`.
async fn child_verifies(env: &Env, b: &mut Browser, p: &Person) {
    let r = b.verify_redirect(env.sandbox, "/signup", p).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/signup");
}

/// The handover page the child is held on: (the link for this device, the link for the
/// guardian's own phone).
async fn handover(b: &mut Browser) -> (String, String) {
    let r = b.get_html("/.verigate/guardian?return_to=%2Fsignup").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("보호자 동의가 필요합니다"), "{html}");
    assert!(html.contains("A parent or guardian must confirm"));
    assert!(html.contains("<svg"), "a QR code inline");
    let here = attr(&html, r#"data-next="guardian-here""#, "href");
    let start = html.find("data-guardian-link>").unwrap() + "data-guardian-link>".len();
    let end = html[start..].find('<').unwrap();
    let other = html[start..start + end].replace("&amp;", "&");
    (here, other)
}

/// The guardian opens the consent page (`url`: a path, or the absolute link), consents as
/// `relation` and picks `provider`: the start page's address.
async fn consent(b: &mut Browser, url: &str, provider: &str) -> reqwest::Response {
    let r = if url.starts_with('/') {
        b.get_html(url).await
    } else {
        b.open_html(url).await
    };
    if r.status() != 200 {
        return r;
    }
    let html = r.text().await.unwrap();
    assert!(html.contains(TEXT_KO) && html.contains(TEXT_EN), "{html}");
    assert!(html.contains("테스트 게임즈"), "the shop's name");
    assert!(html.contains("2026-12-01"), "the text version");
    let t = attr(&html, r#"name="t""#, "value");
    let d = attr(&html, r#"name="d""#, "value");
    post_consent(b, &t, &d, provider).await
}

async fn post_consent(b: &mut Browser, t: &str, d: &str, provider: &str) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("t", t)
        .append_pair("d", d)
        .append_pair("relation", "parent")
        .append_pair("agree", "yes")
        .append_pair("provider", provider)
        .finish();
    post_form(b, "/.verigate/guardian/consent", "text/html", &body).await
}

/// The guardian verifies on the start page `start` (Iamport, redirect mode): the return's
/// answer.
async fn guardian_iamport(
    env: &Env,
    b: &mut Browser,
    start: &str,
    p: &Person,
) -> reqwest::Response {
    let r = b.get_html(start).await;
    assert_eq!(r.status(), 200, "start page");
    let html = r.text().await.unwrap();
    let flow = Flow {
        params: flow_json(&html),
        flow_cookie: b.jar.get("vg_flow").cloned().expect("flow cookie"),
    };
    let back = b.certify(env.sandbox, &flow, p, true).await;
    b.open_html(back["location"].as_str().unwrap()).await
}

/// The guardian verifies on PortOne's start page as `p` (same name, birth and phone: the
/// same CI as through Iamport).
async fn guardian_portone(
    env: &Env,
    b: &mut Browser,
    start: &str,
    p: &Person,
) -> reqwest::Response {
    let r = b.get_html(start).await;
    assert_eq!(r.status(), 200, "start page");
    let flow = flow_json(&r.text().await.unwrap());
    let birth = format!("{}-{}-{}", &p.birth[0..4], &p.birth[4..6], &p.birth[6..8]);
    let r = client()
        .post(format!("http://{}/portone/verify", env.sandbox))
        .form(&[
            ("storeId", flow["store_id"].as_str().unwrap()),
            (
                "identityVerificationId",
                flow["identity_verification_id"].as_str().unwrap(),
            ),
            ("redirectUrl", flow["redirect_url"].as_str().unwrap()),
            ("name", p.name.as_str()),
            ("birthDate", birth.as_str()),
            ("phoneNumber", p.phone.as_str()),
            ("gender", "FEMALE"),
            ("outcome", "verified"),
            ("verified_ago", "0"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let ret = r.headers()["location"].to_str().unwrap().to_string();
    b.open_html(&ret).await
}

fn signups(app: &Recorder) -> Vec<Seen> {
    app.seen()
        .into_iter()
        .filter(|s| s.target == "/signup")
        .collect()
}

/// What a refusal page says: (status, its code).
async fn refused(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let html = r.text().await.unwrap();
    let code = html
        .rsplit("<p class=\"code\">")
        .next()
        .and_then(|t| t.split(" · ").nth(1))
        .and_then(|t| t.split('<').next())
        .unwrap_or_default()
        .to_string();
    (status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_signup_is_held_until_an_adult_guardian_verifies_on_the_same_device() {
    guardian_on(Storage::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    guardian_on(Storage::sqlite(dir.path().join("state.db"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_on_redis() {
    let Some(url) = redis_url() else { return };
    let prefix = format!(
        "vg-guardian-{}-{}:",
        std::process::id(),
        rand::random::<u32>()
    );
    guardian_on(Storage::redis(&url).prefix(&prefix)).await;
    redis_cleanup(&url, &prefix);
}

/// The whole suite's main path on `storage`.
pub async fn guardian_on(storage: Storage) {
    let (env, app) = start(storage, guardian_rule(json!({}))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let child_session = b.jar.get("vg").cloned().expect("child's session");
    // Held: to the handover page, nothing reaches the app.
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    assert!(signups(&app).is_empty());
    let (here, _) = handover(&mut b).await;
    let r = consent(&mut b, &here, "iamport").await;
    assert_eq!(r.status(), 303);
    let start = location(&r);
    assert!(start.starts_with("/.verigate/iamport/start?return_to=%2Fsignup&guardian="));
    let r = guardian_iamport(&env, &mut b, &start, &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let done = location(&r);
    assert!(done.starts_with("/.verigate/guardian/done?"), "{done}");
    // The guardian's verification never took the child's session's place.
    assert_eq!(b.jar.get("vg"), Some(&child_session));
    let page = b.get_html(&done).await.text().await.unwrap();
    assert!(
        page.contains(r#"data-next="continue" href="/signup""#),
        "{page}"
    );
    // Now the signup reaches the app, with the consent.
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    let seen = signups(&app);
    assert_eq!(seen.len(), 1);
    let consent_id = seen[0].header("x-verified-guardian-consent").unwrap();
    assert!(
        consent_id.starts_with("gc_") && consent_id.len() == 25,
        "{consent_id}"
    );
    let at = seen[0].header("x-verified-guardian-at").unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    assert!(at.ends_with('Z'));
    // The guardian's fields go with the signup itself (a state-changing request), not a GET.
    assert!(seen[0].header("x-verified-guardian-name").is_none());
    // The signed assertion says the same, with the child's identity.
    let claims = assertion_of(&env, &seen[0]).await;
    assert_eq!(claims["guardian_consent"], consent_id);
    assert_eq!(
        claims["guardian_at"].as_i64(),
        Some(
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp()
        )
    );
    assert_eq!(claims["sub"].as_str(), seen[0].header("x-verified-person"));
    assert_eq!(claims["route"], "signup");
    let m = env.metrics().await;
    // Other tests in this process count on the same route: at least this one.
    assert!(
        m.contains(r#"verigate_guardian_consents_total{outcome="accepted",route="signup"}"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_signup_post_reaches_the_app_once_after_the_guardian_consents_on_their_own_phone() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let child_session = b.jar.get("vg").cloned().expect("child's session");
    let r = post_form(&mut b, "/signup", "text/html", "nick=kid&agree=1").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    assert!(signups(&app).is_empty());
    // Coming back before the guardian: held again, the post still kept.
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 303, "held again");
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    assert!(signups(&app).is_empty());
    let (_, link) = handover(&mut b).await;
    assert!(link.starts_with(&format!(
        "http://{}/.verigate/guardian/consent?t=",
        env.proxy
    )));
    // The guardian, on their own phone (another browser).
    let mut g = env.browser();
    let r = consent(&mut g, &link, "iamport").await;
    assert_eq!(r.status(), 303);
    let r = guardian_iamport(&env, &mut g, &location(&r), &aged(45, "김아빠")).await;
    assert_eq!(r.status(), 302);
    let done = location(&r);
    let page = g.get_html(&done).await.text().await.unwrap();
    assert!(page.contains("가입하는 분의 기기로 돌아가"), "{page}");
    assert!(!g.jar.contains_key("vg"), "no session for the guardian");
    // The child continues: the kept post reaches the app, once, with the consent.
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/welcome", "the app's answer to the signup");
    let seen = signups(&app);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].body, b"nick=kid&agree=1");
    assert!(seen[0]
        .header("x-verified-guardian-consent")
        .is_some_and(|c| c.starts_with("gc_")));
    assert!(seen[0].header("x-verified-guardian-at").is_some());
    // The guardian's verified fields the route forwards, with the signup, in the assertion too.
    let dad = aged(45, "김아빠");
    assert_eq!(
        seen[0].header("x-verified-guardian-name"),
        Some("%EA%B9%80%EC%95%84%EB%B9%A0")
    );
    let birth = format!(
        "{}-{}-{}",
        &dad.birth[0..4],
        &dad.birth[4..6],
        &dad.birth[6..8]
    );
    assert_eq!(
        seen[0].header("x-verified-guardian-birth"),
        Some(birth.as_str())
    );
    let claims = assertion_of(&env, &seen[0]).await;
    assert_eq!(claims["guardian_name"], "김아빠");
    assert_eq!(claims["guardian_birth"], birth.as_str());
    // The child's own name is not forwarded here (only the guardian's was asked for).
    assert!(seen[0].header("x-verified-name").is_none());
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    let seen = signups(&app);
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].header("x-verified-guardian-name").is_none(),
        "taken once"
    );
    assert_eq!(seen[1].method, "GET", "the post went once");
    assert_eq!(b.jar.get("vg"), Some(&child_session));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_guardian_and_the_child_as_their_own_guardian_are_refused() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut b = env.browser();
    let kid = child();
    child_verifies(&env, &mut b, &kid).await;
    // A 17-year-old "guardian".
    let (here, _) = handover(&mut b).await;
    let r = consent(&mut b, &here, "iamport").await;
    let r = guardian_iamport(&env, &mut b, &location(&r), &aged(17, "김언니")).await;
    assert_eq!(refused(r).await, (403, "guardian_underage".into()));
    // The child again, through Iamport.
    let (here, _) = handover(&mut b).await;
    let r = consent(&mut b, &here, "iamport").await;
    let r = guardian_iamport(&env, &mut b, &location(&r), &kid).await;
    assert_eq!(refused(r).await, (403, "guardian_is_child".into()));
    // And through PortOne: the same person's CI.
    let (here, _) = handover(&mut b).await;
    let r = consent(&mut b, &here, "portone").await;
    assert_eq!(r.status(), 303);
    let r = guardian_portone(&env, &mut b, &location(&r), &kid).await;
    assert_eq!(refused(r).await, (403, "guardian_is_child".into()));
    // Still held.
    assert_eq!(b.get_html("/signup").await.status(), 302);
    assert!(signups(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_link_is_refused() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let (_, link) = handover(&mut b).await;
    let mut g = env.browser();
    let r = consent(&mut g, &link, "iamport").await;
    let start = location(&r);
    let r = guardian_iamport(&env, &mut g, &start, &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    // The same link again, in another browser: spent.
    let mut other = env.browser();
    let r = consent(&mut other, &link, "iamport").await;
    assert_eq!(refused(r).await, (409, "guardian_link_used".into()));
    // The provider's start address it was sent on with, again: one consent per link.
    let r = guardian_iamport(&env, &mut other, &start, &aged(41, "김삼촌")).await;
    assert_eq!(refused(r).await, (409, "guardian_link_used".into()));
    assert_eq!(b.get_html("/signup").await.status(), 200);
    assert_eq!(signups(&app).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_or_forged_link_is_refused() {
    let (env, app) = start(
        Storage::memory(),
        guardian_rule(json!({ "link_ttl": "1m" })),
    )
    .await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let (_, link) = handover(&mut b).await;
    let t = link.split("t=").nth(1).unwrap().to_string();
    let keys = verigate::session::Keyring::from_base64_list(SESSION_KEY).unwrap();
    let mut claims: Value = serde_json::from_slice(
        &keys
            .open(verigate::session::Purpose::GuardianLink, &t)
            .unwrap(),
    )
    .unwrap();
    // What a link sealed a minute ago says now: past its time (the clock is not faked: the
    // link's own expiry is set to a second ago, sealed with the proxy's keys).
    claims["e"] = json!(chrono::Utc::now().timestamp() - 1);
    let expired = keys.seal_json(verigate::session::Purpose::GuardianLink, &claims);
    let mut g = env.browser();
    let r = consent(
        &mut g,
        &format!("/.verigate/guardian/consent?t={expired}"),
        "iamport",
    )
    .await;
    assert_eq!(refused(r).await, (410, "guardian_link_expired".into()));
    let r = post_consent(&mut g, &expired, "other", "iamport").await;
    assert_eq!(refused(r).await, (410, "guardian_link_expired".into()));
    // Tampered, or sealed for another purpose (a session's): no link.
    let mut bad = t.clone().into_bytes();
    let i = bad.len() / 2;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    let r = consent(
        &mut g,
        &format!("/.verigate/guardian/consent?t={bad}"),
        "iamport",
    )
    .await;
    assert_eq!(refused(r).await, (410, "guardian_link_expired".into()));
    let wrong = keys.seal_json(verigate::session::Purpose::Flow, &claims);
    let r = consent(
        &mut g,
        &format!("/.verigate/guardian/consent?t={wrong}"),
        "iamport",
    )
    .await;
    assert_eq!(refused(r).await, (410, "guardian_link_expired".into()));
    assert!(signups(&app).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_for_one_child_never_admits_another() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut a = env.browser();
    child_verifies(&env, &mut a, &child()).await;
    let (here, _) = handover(&mut a).await;
    let r = consent(&mut a, &here, "iamport").await;
    let r = guardian_iamport(&env, &mut a, &location(&r), &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(a.get_html("/signup").await.status(), 200);
    // Another child, same age, same browser or not: held.
    let mut b = env.browser();
    child_verifies(&env, &mut b, &aged(12, "이아이")).await;
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    // Child B's link used by child A's guardian records a consent for B, not A's for B.
    assert_eq!(signups(&app).len(), 1);
    // An adult is never held.
    let mut c = env.browser();
    child_verifies(&env, &mut c, &aged(30, "박어른")).await;
    let r = c.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    let seen = signups(&app);
    assert_eq!(seen.len(), 2);
    assert!(seen[1].header("x-verified-guardian-consent").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sent_guardian_headers_never_reach_the_app() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    // An adult (no consent of their own) and an open page, each with forged headers.
    let mut c = env.browser();
    child_verifies(&env, &mut c, &aged(30, "박어른")).await;
    for (path, b) in [("/signup", &mut c), ("/open", &mut env.browser())] {
        for name in [
            "X-Verified-Guardian-Consent",
            "x-verified-guardian-at",
            "X_Verified_Guardian_Consent",
            "x-verifiedguardian-consent",
        ] {
            let req = b
                .client
                .get(b.url(path))
                .header("accept", "text/html")
                .header(name, "gc_forged");
            let r = b.send(req).await;
            assert!(r.status().is_success(), "{path} {name}: {}", r.status());
            let seen = app.seen().pop().unwrap();
            assert!(
                !seen.headers.keys().any(|k| k.contains("guardian")),
                "{path} {name}: {:?}",
                seen.headers
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_client_gets_json_with_the_way_on() {
    let (env, app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let r = b.get_json("/signup").await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "guardian_consent_required");
    assert_eq!(v["verify_url"], "/.verigate/guardian?return_to=%2Fsignup");
    // The handover, asked for JSON: the link an app's own screen shows.
    let r = b.get_json("/.verigate/guardian?return_to=%2Fsignup").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["guardian_url"]
        .as_str()
        .unwrap()
        .contains("/.verigate/guardian/consent?t="));
    assert_eq!(v["continue_url"], "/signup");
    // A page's own fetch of a form post: kept, and told so.
    let r = post_form(&mut b, "/signup", "application/json", "nick=kid").await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "guardian_consent_required");
    assert_eq!(v["kept"], true);
    assert!(signups(&app).is_empty());
}

/// Where children state a birth date: no one-account rule (a stated child has no person id).
async fn start_stated() -> (Env, Arc<Recorder>) {
    let (app, addr) = Recorder::spawn().await;
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .store(Storage::memory())
        .set("site", json!({ "name": "테스트 게임즈" }))
        .set("identity_headers", assertions())
        .route(
            Route::path("/signup")
                .name("signup")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .require_set(
                    "guardian_consent",
                    guardian_rule(json!({ "children": "stated_birth_date" })),
                ),
        )
        .route(Route::prefix("/"));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    (env, app)
}

async fn state_birth(b: &mut Browser, years: i32) -> reqwest::Response {
    let p = aged(years, "-");
    let birth = format!("{}-{}-{}", &p.birth[0..4], &p.birth[4..6], &p.birth[6..8]);
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", "/signup")
        .append_pair("birth", &birth)
        .finish();
    post_form(b, "/.verigate/guardian/age", "text/html", &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stated_child_is_held_until_a_guardian_consents_and_an_adult_verifies_as_usual() {
    let (env, app) = start_stated().await;
    let mut b = env.browser();
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/.verigate/guardian/age?return_to=%2Fsignup");
    let page = b.get_html(&location(&r)).await.text().await.unwrap();
    assert!(page.contains(r#"name="birth""#), "{page}");
    // A 12-year-old states their birth date: a random id, held for a guardian.
    let r = state_birth(&mut b, 12).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    assert!(b.jar.contains_key("vg_child"));
    assert!(!b.jar.contains_key("vg"), "no session for a stated child");
    let r = b.get_html("/signup").await;
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    let (_, link) = handover(&mut b).await;
    let mut g = env.browser();
    let r = consent(&mut g, &link, "iamport").await;
    let r = guardian_iamport(&env, &mut g, &location(&r), &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    let seen = signups(&app);
    assert_eq!(seen.len(), 1);
    assert!(seen[0]
        .header("x-verified-guardian-consent")
        .is_some_and(|c| c.starts_with("gc_")));
    assert!(seen[0].header("x-verified-guardian-at").is_some());
    // Nothing about a person was verified: no identity header but the consent's.
    let identity: Vec<&String> = seen[0]
        .headers
        .keys()
        .filter(|k| {
            k.starts_with("x-verified-")
                && !k.starts_with("x-verified-guardian-")
                && *k != "x-verified-assertion"
        })
        .collect();
    assert!(identity.is_empty(), "{identity:?}");
    // Its assertion: the route and the consent, nothing about a person.
    let mut claims = assertion_of(&env, &seen[0]).await;
    for own in ["iss", "aud", "iat", "nbf", "exp", "jti"] {
        claims.as_object_mut().unwrap().remove(own);
    }
    assert_eq!(
        claims,
        json!({
            "route": "signup",
            "guardian_consent": seen[0].header("x-verified-guardian-consent"),
            "guardian_at": claims["guardian_at"],
        })
    );
    assert!(claims["guardian_at"].is_i64());
    assert!(!seen[0]
        .headers
        .get("cookie")
        .is_some_and(|c| c.contains("vg_child")));
    // Someone who states an adult's birth date verifies as anyone does.
    let mut a = env.browser();
    let r = state_birth(&mut a, 30).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/.verigate/verify?return_to=%2Fsignup");
    assert!(!a.jar.contains_key("vg_child"));
    // Logging out ends the stated child's id with the browser's session.
    let req = b
        .client
        .post(b.url("/.verigate/logout?return_to=%2F"))
        .header("accept", "text/html")
        .header("origin", format!("http://{}", b.env_proxy));
    let r = b.send(req).await;
    assert_eq!(r.status(), 303);
    assert!(!b.jar.contains_key("vg_child"));
    assert_eq!(
        location(&b.get_html("/signup").await),
        "/.verigate/guardian/age?return_to=%2Fsignup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stated_childs_kept_post_reaches_the_app_once_after_the_consent() {
    let (env, app) = start_stated().await;
    let mut b = env.browser();
    let r = post_form(&mut b, "/signup", "text/html", "nick=kid").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/.verigate/guardian/age?return_to=%2Fsignup");
    let r = state_birth(&mut b, 11).await;
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fsignup");
    let (_, link) = handover(&mut b).await;
    let mut g = env.browser();
    let r = consent(&mut g, &link, "iamport").await;
    let r = guardian_iamport(&env, &mut g, &location(&r), &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 303, "the app's answer to the post");
    assert_eq!(location(&r), "/welcome");
    let seen = signups(&app);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body.as_slice()),
        ("POST", &b"nick=kid"[..])
    );
    assert!(seen[0].header("x-verified-guardian-consent").is_some());
    let r = b.get_html("/signup").await;
    assert_eq!(r.status(), 200);
    assert_eq!(signups(&app)[1].method, "GET");
}

#[test]
fn config_errors_name_their_key_paths() {
    let secrets = Proxy::new().provider(Provider::iamport()).secrets();
    let base = |require: &str| {
        format!(
            r#"
listen: 127.0.0.1:0
upstream: {{ addrs: ["127.0.0.1:3000"] }}
session: {{ keys_env: VG_KEYS }}
providers:
  iamport: {{ imp_code: imp1, api_key_env: IMP_KEY, api_secret_env: IMP_SECRET }}
routes:
  - name: signup
    match: {{ path: /signup }}
    require: {require}
"#
        )
    };
    let problems = |y: String| match verigate::config::from_yaml_str(&y, &secrets) {
        Ok(_) => vec![],
        Err(e) => e.problems(),
    };
    let ok = base(
        r#"{ providers: [iamport], guardian_consent: { under: 14, age_rule: birthday, children: verified, text_version: v1, text: { ko: 가, en: a } } }"#,
    );
    assert_eq!(problems(ok), Vec::<String>::new());
    let ps = problems(base(r#"{ providers: [iamport], guardian_consent: {} }"#));
    for key in ["under", "age_rule", "children", "text_version", "text"] {
        let path = format!("routes[0].require.guardian_consent.{key}: required");
        assert!(ps.iter().any(|p| p.starts_with(&path)), "{path} in {ps:?}");
    }
    let ps = problems(base(
        r#"{ providers: [iamport], one_account_per_person: true, guardian_consent: { under: 20, age_rule: birth, children: stated_birth_date, text_version: v1, text: { ko: 가 }, link_ttl: 2h } }"#,
    ));
    for p in [
        "routes[0].require.guardian_consent.under: `20` is not an age from 1 to 19",
        "routes[0].require.guardian_consent.age_rule: `birth` is not one of",
        "routes[0].require.guardian_consent.text.en: required",
        "routes[0].require.guardian_consent.link_ttl: must be from 1m to 1h",
        "routes[0].require.guardian_consent.children: a child who only states a birth date has no person id",
    ] {
        assert!(ps.iter().any(|q| q.starts_with(p)), "{p} in {ps:?}");
    }
    let ps = problems(base(
        r#"{ providers: [iamport], guardian_consent: { under: 14, age_rule: birthday, children: verified, text_version: v1, text: { ko: 가, en: a }, shoe: 1 } }"#,
    ));
    assert!(
        ps.iter().any(|p| p.contains("unknown field `shoe`")),
        "{ps:?}"
    );
    let ps = problems(base(
        "{ providers: [iamport] }\n    forward: [guardian_name]",
    ));
    assert_eq!(
        ps,
        ["routes[0].forward[0]: `guardian_name` only on a route with require.guardian_consent"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_windows_offer_a_child_an_adult_guardian_and_a_minor_guardian() {
    let env = Env::start().await;
    for url in [
        format!(
            "http://{}/iamport/certify?imp_code=imp&merchant_uid=m",
            env.sandbox
        ),
        format!(
            "http://{}/portone/verify?storeId=s&identityVerificationId=i&redirectUrl=%2F",
            env.sandbox
        ),
    ] {
        let html = client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for (preset, years) in [("child", 12), ("guardian", 45), ("minor", 17)] {
            let birth: String = attr(&html, &format!(r#"data-preset="{preset}""#), "data-birth")
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            let p = aged(years, "-");
            assert_eq!(birth, p.birth, "{preset} in {url}");
        }
    }
}

/// The consent is the merchant's proof: read by the admin API as recorded (the child as the
/// app knows them, the guardian another keyed id, the stated relation, the text version, no
/// name); the child's erasure takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_reads_the_consent_and_the_childs_erasure_takes_it() {
    use crate::records::{api_forget, TOKEN};
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let (app, addr) = Recorder::spawn().await;
    let proxy = proxy(
        Storage::sqlite(dir.path().join("state.db")),
        guardian_rule(json!({})),
    )
    .set(
        "admin",
        json!({ "token_file": token.display().to_string() }),
    );
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let (here, _) = handover(&mut b).await;
    let r = consent(&mut b, &here, "iamport").await;
    let r = guardian_iamport(&env, &mut b, &location(&r), &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    assert_eq!(b.get_html("/signup").await.status(), 200);
    let seen = signups(&app).pop().unwrap();
    let id = seen
        .header("x-verified-guardian-consent")
        .unwrap()
        .to_string();
    let person = seen.header("x-verified-person").unwrap().to_string();
    let r = client()
        .get(format!("http://{}/consents/{id}", env.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains("김엄마") && !text.contains("김아이"),
        "{text}"
    );
    let rec: Value = serde_json::from_str(&text).unwrap();
    let rec = if rec.get("consent").is_some() {
        rec["consent"].clone()
    } else {
        rec
    };
    assert_eq!(rec["id"], id.as_str(), "{rec}");
    assert_eq!(rec["child"], person.as_str());
    assert_ne!(rec["guardian"], person.as_str());
    assert_eq!(rec["stated_relation"], "parent");
    assert_eq!(rec["route"], "signup");
    assert_eq!(rec["text_version"], "2026-12-01");
    assert_eq!(rec["provider"], "iamport");
    let (status, answer) = api_forget(env.admin, Some(TOKEN), json!({ "person": person })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forgot"]["consents"], 1, "{answer}");
    // The record is gone: nothing left to admit the child with.
    let r = client()
        .get(format!("http://{}/consents/{id}", env.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A signup route that takes form posts only: the handover finds it by the post, and the kept
/// post reaches it after the consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_only_signup_route_is_held_and_delivered_too() {
    let (app, addr) = Recorder::spawn().await;
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .set("site", json!({ "name": "테스트 게임즈" }))
        .route(
            Route::path("/join")
                .name("join")
                .methods(["POST"])
                .providers(["iamport"])
                .require_set("guardian_consent", guardian_rule(json!({}))),
        )
        .route(Route::prefix("/"));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    let mut b = env.browser();
    let r = b.verify_redirect(env.sandbox, "/", &child()).await;
    assert_eq!(r.status(), 302);
    let r = post_form(&mut b, "/join", "text/html", "nick=kid").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/.verigate/guardian?return_to=%2Fjoin");
    let r = b.get_html("/.verigate/guardian?return_to=%2Fjoin").await;
    assert_eq!(r.status(), 200, "the handover page, not a redirect");
    let html = r.text().await.unwrap();
    let here = attr(&html, r#"data-next="guardian-here""#, "href");
    let r = consent(&mut b, &here, "iamport").await;
    assert_eq!(r.status(), 303);
    let r = guardian_iamport(&env, &mut b, &location(&r), &aged(40, "김엄마")).await;
    assert_eq!(r.status(), 302);
    let r = b.get_html("/join").await;
    assert!(r.status().is_success(), "{}", r.status());
    let seen: Vec<Seen> = app
        .seen()
        .into_iter()
        .filter(|s| s.target == "/join")
        .collect();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].body.as_slice()),
        ("POST", &b"nick=kid"[..])
    );
    assert!(seen[0].header("x-verified-guardian-consent").is_some());
}

/// The consent post spends the link: a post that no browser signal ties to this site (no
/// `Sec-Fetch-Site`, no `Origin`, a foreign `Referer`) is refused and leaves the link unspent;
/// one whose only signal is this site's `Referer` is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_post_from_another_site_is_refused_and_leaves_the_link() {
    let (env, _app) = start(Storage::memory(), guardian_rule(json!({}))).await;
    let mut b = env.browser();
    child_verifies(&env, &mut b, &child()).await;
    let (_, link) = handover(&mut b).await;
    let mut g = env.browser();
    let r = g.open_html(&link).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let t = attr(&html, r#"name="t""#, "value");
    let d = attr(&html, r#"name="d""#, "value");
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("t", &t)
        .append_pair("d", &d)
        .append_pair("relation", "parent")
        .append_pair("agree", "yes")
        .append_pair("provider", "iamport")
        .finish();
    let post = |g: &Browser, referer: String| {
        g.client
            .post(g.url("/.verigate/guardian/consent"))
            .header("accept", "text/html")
            .header("referer", referer)
            .header("content-type", FORM)
            .body(body.clone())
    };
    for foreign in ["http://evil.example/x".to_string(), "null".to_string()] {
        let r = g.send(post(&g, foreign)).await;
        assert_eq!(refused(r).await, (403, "cross_site".into()));
    }
    let own = format!("http://{}/.verigate/guardian/consent", g.env_proxy);
    let r = g.send(post(&g, own)).await;
    assert_eq!(
        r.status(),
        303,
        "the link was not spent by the refused posts"
    );
}
