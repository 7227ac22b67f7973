//! The Iamport flow end to end through the real proxy, the sandbox and an echoing upstream.

use crate::common::*;
use serde_json::Value;

fn header<'a>(upstream: &'a Value, name: &str) -> Option<&'a str> {
    upstream["headers"][name][0].as_str()
}

fn all_header_text(upstream: &Value) -> String {
    upstream["headers"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_end_to_end() {
    let env = Env::start().await;
    let mut b = env.browser();

    // Unverified browser navigation: sent to the choice page.
    let r = b.get_html("/signup?plan=gold").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.verigate/verify?return_to=%2Fsignup%3Fplan%3Dgold"
    );
    // The route takes Iamport alone: no choice to make, straight to its start page.
    let choice = b
        .get_html("/.verigate/verify?return_to=%2Fsignup%3Fplan%3Dgold")
        .await;
    assert_eq!(choice.status(), 302);
    assert_eq!(
        choice.headers()["location"],
        "/.verigate/iamport/start?return_to=%2Fsignup%3Fplan%3Dgold"
    );
    assert_eq!(env.hits(), 0);

    let flow = b.start_iamport("/signup?plan=gold").await;
    assert_eq!(flow.params["imp_code"], "imp12345678");
    assert!(flow.params["m_redirect_url"]
        .as_str()
        .unwrap()
        .ends_with("/.verigate/iamport/return"));
    let back = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let imp_uid = back["imp_uid"].as_str().unwrap().to_string();
    let r = b.open_html(back["location"].as_str().unwrap()).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/signup?plan=gold");
    assert!(b.jar.contains_key("vg"), "session cookie set");
    assert!(!b.jar.contains_key("vg_flow"), "flow cookie cleared");
    let set_cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session_cookie = set_cookies.iter().find(|c| c.starts_with("vg=")).unwrap();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    assert!(
        session_cookie.len() < 1024,
        "cookie is {} bytes",
        session_cookie.len()
    );

    // Verified: the app gets identity headers.
    let r = b.get_html("/signup?plan=gold").await;
    assert_eq!(r.status(), 200);
    let up = env.last_upstream();
    let cert = sandbox_certification(env.sandbox, &imp_uid).await;
    assert_eq!(
        header(&up, "x-verified-unique-in-site"),
        cert["unique_in_site"].as_str()
    );
    assert_eq!(header(&up, "x-verified-age-ok"), Some("true"));
    assert_eq!(header(&up, "x-verified-provider"), Some("iamport"));
    let at = header(&up, "x-verified-at").unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    // signup forwards name and birth; the name is percent-encoded UTF-8.
    assert_eq!(
        header(&up, "x-verified-name"),
        Some("%ED%99%8D%EA%B8%B8%EB%8F%99")
    );
    assert_eq!(header(&up, "x-verified-birth"), Some("1990-01-01"));
    assert_eq!(header(&up, "x-verified-phone"), None);
    // The CI never leaves verigate, and verigate's cookies stay home.
    let text = all_header_text(&up);
    assert!(!text.contains(cert["unique_key"].as_str().unwrap()));
    assert!(header(&up, "cookie").is_none());

    // Another gated route without `forward` gets no personal fields.
    let r = b.get_html("/member/home").await;
    assert_eq!(r.status(), 200);
    let up = env.last_upstream();
    assert_eq!(header(&up, "x-verified-name"), None);
    assert_eq!(header(&up, "x-verified-birth"), None);
    assert_eq!(
        header(&up, "x-verified-age-ok"),
        None,
        "no min_age on the route: no Age-Ok"
    );

    // /session shows claims without the CI; logout ends the session.
    let s: Value = b.get_json("/.verigate/session").await.json().await.unwrap();
    assert_eq!(s["provider"], "iamport");
    assert!(!s.to_string().contains(cert["unique_key"].as_str().unwrap()));
    let r = b.post("/.verigate/logout", "").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["ok"], true);
    assert!(!b.jar.contains_key("vg"));
    assert_eq!(b.get_html("/member/home").await.status(), 302);
    assert_eq!(b.get_json("/.verigate/session").await.status(), 401);

    // A browser's logout form is sent back to a same-site page.
    b.verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    let req = b
        .client
        .post(b.url("/.verigate/logout?return_to=%2Fmember"))
        .header("accept", "text/html");
    let r = b.send(req).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/member");
    assert!(!b.jar.contains_key("vg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_mode_end_to_end() {
    let env = Env::start().await;
    let mut b = env.browser();
    let r = b
        .verify_callback(env.sandbox, "/checkout/cart", &Person::adult())
        .await;
    assert_eq!(r.status(), 200);
    assert!(b.jar.contains_key("vg"));
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["redirect"], "/checkout/cart");
    let r = b.get_html("/checkout/cart").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&env.last_upstream(), "x-verified-age-ok"),
        Some("true")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clients_get_json_401() {
    let env = Env::start().await;
    let r = env
        .client
        .post(env.url("/signup"))
        .header("accept", "application/json")
        .body("x=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["error"], "verification_required");
    assert_eq!(j["verify_url"], "/.verigate/verify?return_to=%2Fsignup");
    // A GET that does not accept HTML is an API call too.
    let r = env.client.get(env.url("/member")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(env.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_imp_uid_is_refused() {
    let env = Env::start().await;
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let back = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let loc = back["location"].as_str().unwrap().to_string();
    let mut attacker = b.clone(); // same flow cookie, kept aside
    let r = b.open_html(&loc).await;
    assert_eq!(r.status(), 302);
    // Replay of the same return URL with the same (still unexpired) flow cookie.
    let r = attacker.open_html(&loc).await;
    assert_eq!(r.status(), 409);
    assert!(!attacker.jar.contains_key("vg") || attacker.jar.get("vg") == b.jar.get("vg"));
    let html = r.text().await.unwrap();
    assert!(html.contains("replayed_result"));
    // And in callback mode.
    let r = attacker
        .complete(&back["imp_uid"], &back["merchant_uid"])
        .await;
    assert_eq!(r.status(), 409);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["error"], "replayed_result");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_for_another_browsers_flow_is_refused() {
    let env = Env::start().await;
    let mut victim = env.browser();
    let mut attacker = env.browser();
    let _attacker_flow = attacker.start_iamport("/member").await;
    let victim_flow = victim.start_iamport("/member").await;
    let back = victim
        .certify(env.sandbox, &victim_flow, &Person::adult(), true)
        .await;
    // The attacker presents the victim's result with the attacker's own flow cookie.
    let r = attacker
        .complete(&back["imp_uid"], &back["merchant_uid"])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "flow_mismatch");
    // Even when lying about merchant_uid to match its own flow.
    let own = Value::String(_attacker_flow.merchant_uid());
    let r = attacker.complete(&back["imp_uid"], &own).await;
    assert_eq!(r.status(), 403);
    assert!(!attacker.jar.contains_key("vg"));
    // No flow cookie at all.
    let mut stranger = env.browser();
    let r = stranger
        .complete(&back["imp_uid"], &back["merchant_uid"])
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "flow_missing");
    // The victim's own completion still works (nothing was burnt by the attempts).
    let r = victim
        .complete(&back["imp_uid"], &back["merchant_uid"])
        .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncertified_cancelled_and_stale_results_are_refused() {
    let env = Env::start().await;
    for (outcome, ago, status, code) in [
        ("uncertified", 0, 403, "not_certified"),
        ("cancel", 0, 403, "not_certified"),
        ("certified", 3600, 403, "stale_result"),
    ] {
        let mut b = env.browser();
        let p = Person {
            outcome,
            certified_ago: ago,
            ..Person::adult()
        };
        let r = b.verify_redirect(env.sandbox, "/member", &p).await;
        assert_eq!(r.status(), status, "{outcome}");
        let html = r.text().await.unwrap();
        assert!(html.contains(code), "{outcome}: {html}");
        assert!(
            html.contains("/.verigate/verify?return_to=%2Fmember"),
            "retry link"
        );
        assert!(!b.jar.contains_key("vg"), "{outcome} gave a session");
    }
    let m = env.metrics().await;
    assert!(m.contains(r#"verigate_verifications_total{outcome="failed",provider="iamport",reason="stale_result"} 1"#), "{m}");
}

/// The date in `tz` now, once no midnight in `tz` is near: a birth date computed from it must
/// not meet a different date when the gate checks it a moment later.
async fn settled_today(tz: chrono_tz::Tz) -> chrono::NaiveDate {
    use chrono::Timelike;
    loop {
        let now = chrono::Utc::now().with_timezone(&tz);
        let left = 86_400 - i64::from(now.num_seconds_from_midnight());
        if left > 60 {
            return now.date_naive();
        }
        tokio::time::sleep(std::time::Duration::from_secs(left as u64 + 1)).await;
    }
}

/// The birth date, as YYYYMMDD, of someone who turns `years` on `today` (`days` later: on
/// that many days after). On 29 February with no such date `years` back, that person is the
/// one born on 28 February (already `years` old), and a day later is 1 March.
fn birth_turning(today: chrono::NaiveDate, years: i32, days: u64) -> String {
    use chrono::Datelike;
    let base = today
        .with_year(today.year() - years)
        .unwrap_or_else(|| chrono::NaiveDate::from_ymd_opt(today.year() - years, 2, 28).unwrap());
    (base + chrono::Days::new(days))
        .format("%Y%m%d")
        .to_string()
}

/// The shop with its adult area under `age_rule: birthday` (international age).
fn birthday_shop() -> Proxy {
    Proxy::new().provider(Provider::iamport()).routes(vec![
        Route::prefix("/adult")
            .providers(["iamport"])
            .min_age(19)
            .age_rule("birthday"),
        Route::prefix("/member").providers(["iamport"]),
        Route::prefix("/"),
    ])
}

/// Turning 19 on the gate's date in `env`'s time zone (`today` there) is allowed; turning 19
/// the next day is refused and nothing reaches the app.
async fn nineteen_today_not_tomorrow(env: &Env, today: chrono::NaiveDate) {
    let mut turned = env.browser();
    let r = turned
        .verify_redirect(
            env.sandbox,
            "/adult",
            &Person::born(&birth_turning(today, 19, 0)),
        )
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        turned.get_html("/adult").await.status(),
        200,
        "19 on {today}"
    );
    assert_eq!(
        header(&env.last_upstream(), "x-verified-age-ok"),
        Some("true")
    );
    let hits = env.hits();
    let mut tomorrow = env.browser();
    let r = tomorrow
        .verify_redirect(
            env.sandbox,
            "/adult",
            &Person::born(&birth_turning(today, 19, 1)),
        )
        .await;
    assert_eq!(r.status(), 302, "verification itself succeeds");
    let r = tomorrow.get_html("/adult").await;
    assert_eq!(r.status(), 403, "19 only the day after {today}");
    assert!(r.text().await.unwrap().contains("underage"));
    let r = tomorrow.get_json("/adult").await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "underage");
    assert_eq!(env.hits(), hits);
    // Routes without min_age still serve the minor.
    assert_eq!(tomorrow.get_html("/member").await.status(), 200);
}

/// The birth dates come from the test's own clock in the gate's zone, so the test holds at
/// any UTC hour. Seoul's date is UTC's from 00:00 to 15:00 UTC, when the Seoul part alone
/// would also pass with a gate that read the UTC date; so a second proxy runs in a zone whose
/// date differs from UTC's at this hour (UTC+14 from 10:00 UTC, UTC-12 before 12:00 UTC).
/// Every UTC hour against Seoul's midnight: `birthday_in_seoul_at_every_utc_hour` in
/// `src/gate/headers.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birthday_boundary_in_seoul() {
    use chrono::Timelike;
    let env = Env::with(birthday_shop()).await;
    let today = settled_today(chrono_tz::Asia::Seoul).await;
    nineteen_today_not_tomorrow(&env, today).await;

    let utc_today = settled_today(chrono_tz::UTC).await;
    let (zone, name) = if chrono::Utc::now().hour() >= 11 {
        (chrono_tz::Pacific::Kiritimati, "Pacific/Kiritimati")
    } else {
        (chrono_tz::Etc::GMTPlus12, "Etc/GMT+12")
    };
    let other = Env::with(birthday_shop().timezone(name)).await;
    let there = settled_today(zone).await;
    assert_ne!(there, utc_today, "{name}'s date differs from UTC's now");
    nineteen_today_not_tomorrow(&other, there).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_per_person() {
    let env = Env::start().await;
    let mut first = env.browser();
    first
        .verify_redirect(env.sandbox, "/signup", &Person::named("김하나"))
        .await;
    // Viewing the form reserves nothing.
    assert_eq!(first.get_html("/signup").await.status(), 200);
    assert_eq!(first.post("/signup", "user=a").await.status(), 201);
    // The same person from another browser: 409, never reaches the app.
    let mut second = env.browser();
    second
        .verify_redirect(env.sandbox, "/signup", &Person::named("김하나"))
        .await;
    let hits = env.hits();
    let r = second.post("/signup", "user=b").await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "duplicate_account"
    );
    assert_eq!(env.hits(), hits);
    // Another person is fine.
    let mut other = env.browser();
    other
        .verify_redirect(env.sandbox, "/signup", &Person::named("이둘"))
        .await;
    assert_eq!(other.post("/signup", "user=c").await.status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_signups_of_one_person_reach_the_app_once() {
    let env = Env::start().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/signup", &Person::named("박동시"))
        .await;
    let before = env.hits();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut bb = b.clone();
        tasks.push(tokio::spawn(async move {
            bb.post("/signup", &format!("user={i}"))
                .await
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(env.hits() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_session_age_sends_back_to_verify() {
    let env = Env::with(Proxy::shop().provider(Provider::iamport().max_result_age("1h"))).await;
    let mut b = env.browser();
    let p = Person {
        certified_ago: 20 * 60,
        ..Person::adult()
    };
    assert_eq!(
        b.verify_redirect(env.sandbox, "/member", &p).await.status(),
        302
    );
    assert_eq!(b.get_html("/member").await.status(), 200);
    // checkout wants a verification at most 10 minutes old.
    let r = b.get_html("/checkout").await;
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/.verigate/verify"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_once_under_concurrency() {
    // Alone in its process, so that the token-fetch counter moves with this test only.
    if !skip::alone("iamport_flow::token_is_fetched_once_under_concurrency") {
        return;
    }
    // 1,000 completions at once queue behind one getToken: give the provider time.
    let env = Env::with(Proxy::shop().provider(Provider::iamport().timeout("20s"))).await;
    let mut pending = Vec::new();
    // 1,000 completions at once, one getToken.
    for i in 0..1000 {
        let mut b = env.browser();
        let flow = b.start_iamport("/member").await;
        let data = b
            .certify(env.sandbox, &flow, &Person::named(&format!("p{i}")), false)
            .await;
        pending.push((b, data));
    }
    assert_eq!(env.sim.token_requests(), 0);
    let mut tasks = Vec::new();
    let fetches = r#"verigate_provider_token_fetches_total{provider="iamport"}"#;
    let before = metric(&env.metrics().await, fetches);
    for (mut b, data) in pending {
        tasks.push(tokio::spawn(async move {
            b.complete(&data["imp_uid"], &data["merchant_uid"])
                .await
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(env.sim.token_requests(), 1);
    let m = env.metrics().await;
    assert_eq!(metric(&m, fetches) - before, 1.0, "{fetches}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed() {
    let env = Env::start().await;
    let mut b = env.browser();
    assert_eq!(
        b.verify_redirect(env.sandbox, "/member", &Person::named("a"))
            .await
            .status(),
        302
    );
    assert_eq!(env.sim.token_requests(), 1);
    env.sim.expire_token();
    let mut c = env.browser();
    assert_eq!(
        c.verify_redirect(env.sandbox, "/member", &Person::named("b"))
            .await
            .status(),
        302
    );
    assert_eq!(
        env.sim.token_requests(),
        2,
        "a 401 on the cached token fetched a new one"
    );
}

/// The sandbox window's redirect back, with the result flag named `flag` (`success`, or
/// `imp_success` as the v1 SDK's mobile redirect names it) and the channel the page asked for.
async fn certify_as(
    env: &Env,
    flow: &Flow,
    p: &Person,
    flag: &str,
    channel: &[(&str, &str)],
) -> (String, String) {
    let mut form = vec![
        (
            "imp_code",
            flow.params["imp_code"].as_str().unwrap().to_string(),
        ),
        ("merchant_uid", flow.merchant_uid()),
        (
            "m_redirect_url",
            flow.params["m_redirect_url"].as_str().unwrap().to_string(),
        ),
        ("name", p.name.clone()),
        ("birth", p.birth.clone()),
        ("phone", p.phone.clone()),
        ("outcome", p.outcome.into()),
        ("redirect_flag", flag.into()),
    ];
    form.extend(channel.iter().map(|(k, v)| (*k, v.to_string())));
    let r = client()
        .post(format!("http://{}/iamport/certify", env.sandbox))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let q: std::collections::HashMap<String, String> = reqwest::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    (loc, q.get("imp_uid").cloned().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_sdks_imp_success_redirect_is_understood() {
    let env = Env::start().await;
    // A certified person, told `imp_success=true` and no `success`: signed in.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let (loc, _) = certify_as(&env, &flow, &Person::adult(), "imp_success", &[]).await;
    assert!(
        loc.contains("imp_success=true") && !loc.contains("&success="),
        "{loc}"
    );
    let r = b.open_html(&loc).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/member");
    assert_eq!(b.get_html("/member").await.status(), 200);

    // The person cancels: `imp_success=false` is refused with a way to try again.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let cancel = Person {
        outcome: "cancel",
        ..Person::adult()
    };
    let (loc, _) = certify_as(&env, &flow, &cancel, "imp_success", &[]).await;
    assert!(loc.contains("imp_success=false"), "{loc}");
    let r = b.open_html(&loc).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("403 · not_certified"), "{html}");
    assert!(
        html.contains("/.verigate/verify?return_to=%2Fmember"),
        "{html}"
    );

    // `imp_success=true` decides nothing: the server-side lookup says not certified.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let forged = Person {
        outcome: "uncertified",
        ..Person::adult()
    };
    let (loc, _) = certify_as(&env, &flow, &forged, "imp_success", &[]).await;
    let r = b.open_html(&loc).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("not_certified"));

    // No flag at all: the lookup decides (certified: signed in); no imp_uid: not certified.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let (_, imp_uid) = certify_as(&env, &flow, &Person::adult(), "success", &[]).await;
    let bare = format!(
        "{}?imp_uid={imp_uid}&merchant_uid={}",
        flow.params["m_redirect_url"].as_str().unwrap(),
        flow.merchant_uid()
    );
    assert_eq!(b.open_html(&bare).await.status(), 302);
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let nothing = format!(
        "{}?merchant_uid={}&imp_success=true",
        flow.params["m_redirect_url"].as_str().unwrap(),
        flow.merchant_uid()
    );
    assert_eq!(b.open_html(&nothing).await.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchants_certification_channel_reaches_the_sdk() {
    let iamport = Provider::iamport()
        .set("channel_key", serde_json::json!("channel-key-cert-2"))
        .set("pg", serde_json::json!("inicis_unified.MIIiasTest"));
    let env = Env::with(Proxy::shop().provider(iamport)).await;
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    assert_eq!(flow.params["channel_key"], "channel-key-cert-2");
    assert_eq!(flow.params["pg"], "inicis_unified.MIIiasTest");
    // The sandbox records the channel a certification was made on (the stand-in SDK passes
    // the page's `channelKey` and `pg` to the window, as the browser test shows).
    let channel = [
        ("channel_key", "channel-key-cert-2"),
        ("pg", "inicis_unified.MIIiasTest"),
    ];
    let (loc, imp_uid) = certify_as(&env, &flow, &Person::adult(), "success", &channel).await;
    let seen = env.sim.channel_of(&imp_uid).unwrap();
    assert_eq!(seen.channel_key.as_deref(), Some("channel-key-cert-2"));
    assert_eq!(seen.pg.as_deref(), Some("inicis_unified.MIIiasTest"));
    assert_eq!(b.open_html(&loc).await.status(), 302);
    // Without them, the page passes neither.
    let env = Env::start().await;
    let flow = env.browser().start_iamport("/member").await;
    assert!(flow.params["channel_key"].is_null() && flow.params["pg"].is_null());
}
