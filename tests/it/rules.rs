//! Korean rules end to end through the real proxy, the sandbox and an echoing upstream: the age
//! rule named per route, the provider hints, the person id, missing identifiers and the fields
//! merchants use.

use crate::common::*;
use serde_json::Value;

fn header<'a>(upstream: &'a Value, name: &str) -> Option<&'a str> {
    upstream["headers"][name][0].as_str()
}

/// The date in `tz`, at least a minute before its midnight, so a person chosen by it does
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

/// An adult area under each rule, on Iamport.
fn two_rules() -> Proxy {
    Proxy::new().provider(Provider::iamport()).routes(vec![
        Route::prefix("/act").providers(["iamport"]).min_age(19),
        Route::prefix("/intl")
            .providers(["iamport"])
            .min_age(19)
            .age_rule("birthday"),
        Route::prefix("/"),
    ])
}

/// Under `youth_act` everyone born in the year of turning 19 is of age all year, before their
/// birthday too; under `birthday` only from the birthday. Both from the date in Seoul.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn youth_act_admits_the_whole_birth_year_birthday_waits_for_the_day() {
    use chrono::Datelike;
    let env = Env::with(two_rules()).await;
    let today = settled_today(chrono_tz::Asia::Seoul).await;
    let year = today.year();
    // Born on the last day of the year of turning 19: of age under the Act since 1 January.
    let last = format!("{}1231", year - 19);
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/act", &Person::born(&last))
        .await;
    assert_eq!(b.get_html("/act").await.status(), 200, "born {last}");
    assert_eq!(
        header(&env.last_upstream(), "x-verified-age-ok"),
        Some("true")
    );
    let hits = env.hits();
    let r = b.get_json("/intl").await;
    if (today.month(), today.day()) == (12, 31) {
        assert_eq!(r.status(), 200, "19 on its birthday, {today}");
    } else {
        assert_eq!(refusal(r).await, (403, "underage".into()), "{today}");
        assert_eq!(env.hits(), hits, "nothing reaches the app");
    }
    // Born on 1 January of the next year: a youth under both rules all year.
    let first = format!("{}0101", year - 18);
    let mut y = env.browser();
    y.verify_redirect(env.sandbox, "/act", &Person::born(&first))
        .await;
    let hits = env.hits();
    assert_eq!(
        refusal(y.get_json("/act").await).await,
        (403, "underage".into())
    );
    assert_eq!(
        refusal(y.get_json("/intl").await).await,
        (403, "underage".into())
    );
    assert_eq!(env.hits(), hits);
}

const SITE: &str = "예시쇼핑";

/// Iamport and PortOne, an adult area under each rule, a members' area without an age, and
/// the service's name.
fn hinted() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::portone())
        .set("site", serde_json::json!({ "name": SITE }))
        .routes(vec![
            Route::prefix("/act")
                .providers(["iamport", "portone"])
                .min_age(19),
            Route::prefix("/intl")
                .providers(["iamport", "portone"])
                .min_age(19)
                .age_rule("birthday"),
            Route::prefix("/member").providers(["iamport", "portone"]),
            Route::prefix("/"),
        ])
}

/// The person fills in the Iamport sandbox window opened with the page's own parameters, as
/// the SDK passes them (`min_age`, `company`). Returns the sandbox's redirect back.
async fn iamport_window(env: &Env, flow: &Flow, birth: &str) -> reqwest::Url {
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
        ("name", format!("person-{birth}")),
        ("birth", birth.to_string()),
        ("phone", "01012345678".into()),
    ];
    if let Some(min) = flow.params["min_age"].as_u64() {
        form.push(("min_age", min.to_string()));
    }
    let r = client()
        .post(format!("http://{}/iamport/certify", env.sandbox))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(u: &reqwest::Url, key: &str) -> Option<String> {
    u.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The route's age limit and the service name go to the window, lowered by one under
/// `youth_act`; the sandbox's window refuses a minor before any result exists, and lets through
/// everyone the route's rule admits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iamport_window_gets_the_age_hint_and_the_site_name() {
    use chrono::Datelike;
    let env = Env::with(hinted()).await;
    let mut b = env.browser();
    let act = b.start_iamport("/act").await;
    assert_eq!(act.params["min_age"], 18, "youth_act: one less");
    assert_eq!(act.params["company"], SITE);
    assert_eq!(b.start_iamport("/intl").await.params["min_age"], 19);
    assert!(b.start_iamport("/member").await.params["min_age"].is_null());
    // The page passes them to IMP.certification.
    let html = b
        .get_html("/.verigate/iamport/start?return_to=%2Fact")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("params.min_age = flow.min_age")
            && html.contains("params.company = flow.company")
    );

    let today = settled_today(chrono_tz::Asia::Seoul).await;
    // Born on 31 December of the year of turning 19: 18 internationally (but on that day), of
    // age under the Act. The window (limit 18) lets them through; the gate admits them.
    let mut adult = env.browser();
    let flow = adult.start_iamport("/act").await;
    let back = iamport_window(&env, &flow, &format!("{}1231", today.year() - 19)).await;
    assert_eq!(query(&back, "success").as_deref(), Some("true"));
    let r = adult
        .send(
            adult
                .client
                .get(back.as_str())
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(r.status(), 302);
    assert_eq!(adult.get_html("/act").await.status(), 200);

    // Born in the year of turning 17: refused inside the window, no result to look up.
    let mut kid = env.browser();
    let flow = kid.start_iamport("/act").await;
    let back = iamport_window(&env, &flow, &format!("{}0101", today.year() - 17)).await;
    assert_eq!(query(&back, "success").as_deref(), Some("false"));
    assert_eq!(query(&back, "imp_uid").as_deref(), Some(""));
    let hits = env.hits();
    let r = kid
        .send(
            kid.client
                .get(back.as_str())
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(refusal(r).await, (403, "not_certified".into()));
    assert_eq!(
        refusal(kid.get_json("/act").await).await.0,
        401,
        "no session"
    );
    assert_eq!(env.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portone_window_gets_agelimit_and_cptitle() {
    use chrono::Datelike;
    let env = Env::with(hinted()).await;
    let b = env.browser();
    let start = |path: &'static str| {
        let mut b = b.clone();
        async move {
            let r = b
                .get_html(&format!("/.verigate/portone/start?return_to=%2F{path}"))
                .await;
            assert_eq!(r.status(), 200);
            (flow_json(&r.text().await.unwrap()), b)
        }
    };
    let (act, _) = start("act").await;
    assert_eq!(act["bypass"]["danal"]["AGELIMIT"], 18);
    assert_eq!(act["bypass"]["danal"]["CPTITLE"], SITE);
    assert_eq!(start("intl").await.0["bypass"]["danal"]["AGELIMIT"], 19);
    let (member, _) = start("member").await;
    assert!(member["bypass"]["danal"]["AGELIMIT"].is_null());
    assert_eq!(member["bypass"]["danal"]["CPTITLE"], SITE);

    // The window with AGELIMIT refuses a 17-year-old: the browser comes back with a code and
    // the provider holds no verification under the id.
    let today = settled_today(chrono_tz::Asia::Seoul).await;
    let (flow, mut kid) = start("act").await;
    let limit = flow["bypass"]["danal"]["AGELIMIT"].to_string();
    let r = client()
        .post(format!("http://{}/portone/verify", env.sandbox))
        .form(&[
            ("storeId", flow["store_id"].as_str().unwrap()),
            (
                "identityVerificationId",
                flow["identity_verification_id"].as_str().unwrap(),
            ),
            ("redirectUrl", flow["redirect_url"].as_str().unwrap()),
            ("name", "김어린"),
            ("birthDate", &format!("{}-01-01", today.year() - 17)),
            ("phoneNumber", "01022223333"),
            ("AGELIMIT", &limit),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    let back = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(query(&back, "code").as_deref(), Some("FAILURE_TYPE_PG"));
    assert_eq!(
        refusal(kid.open_html(back.as_str()).await).await,
        (403, "not_certified".into())
    );
    let r = kid
        .send(
            kid.client
                .post(kid.url("/.verigate/portone/complete"))
                .json(&serde_json::json!({ "identityVerificationId": flow["identity_verification_id"] })),
        )
        .await;
    assert_eq!(refusal(r).await, (400, "result_not_found".into()));
}

/// Iamport on KG이니시스 통합인증 (`pg: inicis_unified`): a one-account signup, an adult area
/// forwarding the foreigner flag and carrier, and a members' area.
fn unified() -> Proxy {
    Proxy::new()
        .provider(Provider::iamport().set("pg", serde_json::json!("inicis_unified")))
        .routes(vec![
            Route::path("/signup")
                .methods(["GET", "POST"])
                .providers(["iamport"])
                .one_account(),
            Route::prefix("/act")
                .providers(["iamport"])
                .min_age(19)
                .forward(["foreigner", "carrier", "gender"]),
            Route::prefix("/"),
        ])
}

async fn unified_window(env: &Env, flow: &Flow, app: &str, name: &str) -> reqwest::Url {
    let form = vec![
        (
            "imp_code",
            flow.params["imp_code"].as_str().unwrap().to_string(),
        ),
        ("merchant_uid", flow.merchant_uid()),
        (
            "m_redirect_url",
            flow.params["m_redirect_url"].as_str().unwrap().to_string(),
        ),
        ("pg", flow.params["pg"].as_str().unwrap().to_string()),
        ("app", app.into()),
        ("name", name.into()),
        ("birth", "19900101".into()),
        ("phone", "01099998888".into()),
        ("gender", "male".into()),
        ("foreigner", "true".into()),
    ];
    let r = client()
        .post(format!("http://{}/iamport/certify", env.sandbox))
        .form(&form)
        .send()
        .await
        .unwrap();
    reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

/// KG 통합인증 gives no DI: `X-Verified-Unique-In-Site` is absent, `X-Verified-Person` is there
/// and equals the person's through Danal; typed gender and foreigner never go as verified.
/// Through Kakao without a CI: `403 ci_unavailable` on the one-account route, age only elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_di_no_ci_and_the_person_id_across_channels() {
    let env = Env::with(unified()).await;
    // Through PASS in KG 통합인증: CI, no DI.
    let mut b = env.browser();
    let flow = b.start_iamport("/act").await;
    let back = unified_window(&env, &flow, "pass", "김통합").await;
    assert_eq!(b.open_html(back.as_str()).await.status(), 302);
    assert_eq!(b.get_html("/act").await.status(), 200);
    let up = env.last_upstream();
    assert_eq!(header(&up, "x-verified-unique-in-site"), None, "{up}");
    let person = header(&up, "x-verified-person")
        .expect("person id")
        .to_string();
    assert_eq!(
        header(&up, "x-verified-method"),
        Some("iamport:inicis_unified")
    );
    // Typed by the person: never forwarded as verified, though the route asks.
    assert_eq!(header(&up, "x-verified-foreigner"), None, "{up}");
    assert_eq!(header(&up, "x-verified-gender"), None, "{up}");
    assert_eq!(header(&up, "x-verified-carrier"), None, "{up}");

    // The same person through Danal (another proxy, same keys): the same X-Verified-Person,
    // now with a DI, a verified foreigner flag and the carrier.
    let danal = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .route(
                Route::prefix("/act")
                    .providers(["iamport"])
                    .min_age(19)
                    .forward(["foreigner", "carrier"]),
            )
            .route(Route::prefix("/")),
    )
    .await;
    let mut d = danal.browser();
    let p = Person {
        phone: "01099998888".into(),
        ..Person::named("김통합")
    };
    assert_eq!(
        d.verify_redirect(danal.sandbox, "/act", &p).await.status(),
        302
    );
    assert_eq!(d.get_html("/act").await.status(), 200);
    let up = danal.last_upstream();
    assert_eq!(header(&up, "x-verified-person"), Some(person.as_str()));
    assert!(header(&up, "x-verified-unique-in-site").is_some());
    assert_eq!(header(&up, "x-verified-method"), Some("iamport:danal"));
    assert_eq!(header(&up, "x-verified-foreigner"), Some("false"));
    assert_eq!(header(&up, "x-verified-carrier"), Some("SKT"));

    // Through Kakao: no CI. The one-account route refuses with a way to use another method;
    // the adult area takes the verified age alone.
    let mut k = env.browser();
    let flow = k.start_iamport("/signup").await;
    let back = unified_window(&env, &flow, "kakao", "이카카").await;
    assert_eq!(k.open_html(back.as_str()).await.status(), 302);
    let hits = env.hits();
    assert_eq!(
        refusal(k.post("/signup", "user=k").await).await,
        (403, "ci_unavailable".into())
    );
    let r = k.get_html("/signup").await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("ci_unavailable") && page.contains("이 인증수단으로는 확인할 수 없습니다"),
        "{page}"
    );
    assert!(page.contains("/verify?return_to="), "verify again: {page}");
    let r = k.get_json("/signup").await;
    assert_eq!(r.status(), 403);
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["error"], "ci_unavailable");
    assert!(j["verify_url"].is_string(), "{j}");
    assert_eq!(env.hits(), hits, "nothing reaches the app");
    assert_eq!(k.get_html("/act").await.status(), 200);
    let up = env.last_upstream();
    assert_eq!(header(&up, "x-verified-person"), None);
    assert_eq!(header(&up, "x-verified-unique-in-site"), None);
    assert_eq!(header(&up, "x-verified-age-ok"), Some("true"));
}
