//! PortOne V2 end to end through the real proxy and the sandbox.

use crate::common::*;
use serde_json::{json, Value};

/// PortOne alone: an adult area on it, the rest open.
async fn env() -> Env {
    Env::with(
        Proxy::new()
            .provider(Provider::portone())
            .route(Route::prefix("/adult").providers(["portone"]).min_age(19))
            .route(Route::prefix("/")),
    )
    .await
}

async fn start(b: &mut Browser) -> Value {
    let r = b
        .get_html("/.verigate/portone/start?return_to=%2Fadult")
        .await;
    assert_eq!(r.status(), 200);
    flow_json(&r.text().await.unwrap())
}

/// The person in the PortOne window; returns where the sandbox sends the browser.
async fn window(env: &Env, flow: &Value, birth: &str, outcome: &str, ago: i64) -> String {
    let r = client()
        .post(format!("http://{}/portone/verify", env.sandbox))
        .form(&[
            ("storeId", flow["store_id"].as_str().unwrap()),
            (
                "identityVerificationId",
                flow["identity_verification_id"].as_str().unwrap(),
            ),
            ("redirectUrl", flow["redirect_url"].as_str().unwrap()),
            ("name", "김포트"),
            ("birthDate", birth),
            ("phoneNumber", "01022223333"),
            ("gender", "FEMALE"),
            ("outcome", outcome),
            ("verified_ago", &ago.to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_and_callback_modes() {
    let env = env().await;
    let mut b = env.browser();
    let flow = start(&mut b).await;
    assert_eq!(flow["store_id"], "store-sandbox");
    let ret = window(&env, &flow, "1990-03-04", "verified", 0).await;
    let r = b.open_html(&ret).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(b.get_html("/adult").await.status(), 200);
    let up = env.last_upstream();
    assert_eq!(up["headers"]["x-verified-provider"][0], "portone");
    assert_eq!(up["headers"]["x-verified-age-ok"][0], "true");
    assert_eq!(
        up["headers"]["x-verified-unique-in-site"][0]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // Callback mode: the page posts the id it got from the SDK.
    let mut c = env.browser();
    let flow = start(&mut c).await;
    window(&env, &flow, "1990-03-04", "verified", 0).await;
    let req = c
        .client
        .post(c.url("/.verigate/portone/complete"))
        .json(&json!({ "identityVerificationId": flow["identity_verification_id"] }));
    let r = c.send(req).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["redirect"], "/adult");
    // Same person, same DI.
    c.get_html("/adult").await;
    assert_eq!(
        env.last_upstream()["headers"]["x-verified-unique-in-site"],
        up["headers"]["x-verified-unique-in-site"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_stale_minor_replayed_and_foreign_results_are_refused() {
    let env = env().await;
    // FAILED status (the SDK's redirect carries a code).
    let mut b = env.browser();
    let flow = start(&mut b).await;
    let ret = window(&env, &flow, "1990-03-04", "failed", 0).await;
    assert_eq!(
        refusal(b.open_html(&ret).await).await,
        (403, "not_certified".into())
    );
    // The same FAILED result presented without the code: the API says it is not verified.
    let id = flow["identity_verification_id"].clone();
    let r = b
        .send(
            b.client
                .post(b.url("/.verigate/portone/complete"))
                .json(&json!({ "identityVerificationId": id })),
        )
        .await;
    assert_eq!(refusal(r).await, (403, "not_certified".into()));
    // Stale.
    let mut s = env.browser();
    let flow = start(&mut s).await;
    let ret = window(&env, &flow, "1990-03-04", "verified", 3600).await;
    let r = s.open_html(&ret).await;
    assert_eq!(refusal(r).await, (403, "stale_result".into()));
    // A minor: verified, refused at the age gate.
    let mut kid = env.browser();
    let flow = start(&mut kid).await;
    let ret = window(&env, &flow, "2016-01-01", "verified", 0).await;
    assert_eq!(kid.open_html(&ret).await.status(), 302);
    assert_eq!(
        refusal(kid.get_html("/adult").await).await,
        (403, "underage".into())
    );
    // Replay with the same flow cookie.
    let mut v = env.browser();
    let flow = start(&mut v).await;
    let ret = window(&env, &flow, "1990-03-04", "verified", 0).await;
    let mut replay = v.clone();
    assert_eq!(v.open_html(&ret).await.status(), 302);
    assert_eq!(
        refusal(replay.open_html(&ret).await).await,
        (409, "replayed_result".into())
    );
    // Another browser's id with this browser's flow cookie.
    let mut other = env.browser();
    start(&mut other).await;
    let r = other.open_html(&ret).await;
    assert_eq!(refusal(r).await, (403, "flow_mismatch".into()));
    // Unknown id within a valid flow: the provider has no such verification.
    let mut u = env.browser();
    let flow = start(&mut u).await;
    let r = u
        .send(
            u.client
                .post(u.url("/.verigate/portone/complete"))
                .json(&json!({ "identityVerificationId": flow["identity_verification_id"] })),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "result_not_found"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_api_shapes() {
    let env = env().await;
    let c = client();
    let url = format!("http://{}/portone/identity-verifications/nope", env.sandbox);
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "UNAUTHORIZED");
    let r = c
        .get(&url)
        .header("authorization", "PortOne sandbox_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["type"],
        "IDENTITY_VERIFICATION_NOT_FOUND"
    );
    let mut b = env.browser();
    let flow = start(&mut b).await;
    let ret = window(&env, &flow, "1990-03-04", "verified", 0).await;
    let fetched: Value = c
        .get(format!(
            "http://{}/portone/identity-verifications/{}?storeId=store-sandbox",
            env.sandbox,
            flow["identity_verification_id"].as_str().unwrap()
        ))
        .header("authorization", "PortOne sandbox_secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["status"], "VERIFIED");
    assert_eq!(
        fetched["verifiedCustomer"]["ci"].as_str().unwrap().len(),
        88
    );
    assert!(chrono::DateTime::parse_from_rfc3339(fetched["verifiedAt"].as_str().unwrap()).is_ok());
    assert_eq!(b.open_html(&ret).await.status(), 302);
}

/// The choice and start pages name each provider's method: a 통합인증 channel and a card
/// channel are not offered as "휴대폰 본인인증", and the phone stays the phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_name_each_channels_method() {
    let page = |env: &Env, path: &str| {
        let mut b = env.browser();
        let path = path.to_string();
        async move {
            let r = b.get_html(&path).await;
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    // Iamport's card channel named by its `pg`, PortOne's 통합인증 channel by `method`.
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport().set("pg", json!("inicis.MIIiasTest")))
            .provider(Provider::portone().set("method", json!("inicis_unified")))
            .route(Route::prefix("/member").providers(["iamport", "portone"]))
            .route(Route::prefix("/")),
    )
    .await;
    let choice = page(&env, "/.verigate/verify?return_to=%2Fmember").await;
    assert!(!choice.contains("휴대폰"), "{choice}");
    for want in [
        r#"data-provider="iamport""#,
        "신용카드 본인인증",
        "Credit card verification",
        r#"data-provider="portone""#,
        "간편인증 · 인증서 (통합인증)",
        "PASS, Naver, Kakao, Toss",
    ] {
        assert!(choice.contains(want), "{want} in {choice}");
    }
    let iamport = page(&env, "/.verigate/iamport/start?return_to=%2Fmember").await;
    assert!(
        iamport.contains("<h1>신용카드 본인인증</h1>") && !iamport.contains("휴대폰"),
        "{iamport}"
    );
    let portone = page(&env, "/.verigate/portone/start?return_to=%2Fmember").await;
    assert!(
        portone.contains("<h1>통합인증</h1>") && !portone.contains("휴대폰"),
        "{portone}"
    );
    // Nothing said: Danal's phone verification, as before; `method` over a bare channel key.
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport().set("method", json!("inicis_unified")))
            .provider(Provider::portone())
            .route(Route::prefix("/member").providers(["iamport", "portone"]))
            .route(Route::prefix("/")),
    )
    .await;
    let choice = page(&env, "/.verigate/verify?return_to=%2Fmember").await;
    let iamport_at = choice.find(r#"data-provider="iamport""#).unwrap();
    let portone_at = choice.find(r#"data-provider="portone""#).unwrap();
    let (first, second) = choice.split_at(portone_at.max(iamport_at));
    let (iamport_link, portone_link) = match iamport_at < portone_at {
        true => (&first[iamport_at..], second),
        false => (second, &first[portone_at..]),
    };
    assert!(
        iamport_link.contains("통합인증") && !iamport_link.contains("휴대폰"),
        "{choice}"
    );
    assert!(portone_link.contains("휴대폰 본인인증"), "{choice}");
    let portone = page(&env, "/.verigate/portone/start?return_to=%2Fmember").await;
    assert!(portone.contains("<h1>휴대폰 본인인증</h1>"), "{portone}");
}

/// The person id (`X-Verified-Person`, the keyed hash of the CI) is one per person through
/// Iamport and PortOne alike (the sandbox, as the real services, gives one CI per person);
/// the DI (`X-Verified-Unique-In-Site`) is the channel's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_person_id_through_iamport_and_portone() {
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .provider(Provider::portone())
            .route(Route::prefix("/adult").providers(["iamport", "portone"]))
            .route(Route::prefix("/")),
    )
    .await;
    let mut p = env.browser();
    let flow = start(&mut p).await;
    let ret = window(&env, &flow, "1990-03-04", "verified", 0).await;
    assert_eq!(p.open_html(&ret).await.status(), 302);
    assert_eq!(p.get_html("/adult").await.status(), 200);
    let through_portone = env.last_upstream()["headers"].clone();
    let mut i = env.browser();
    let same = Person {
        name: "김포트".into(),
        birth: "19900304".into(),
        phone: "010-2222-3333".into(),
        ..Person::adult()
    };
    assert_eq!(
        i.verify_redirect(env.sandbox, "/adult", &same)
            .await
            .status(),
        302
    );
    assert_eq!(i.get_html("/adult").await.status(), 200);
    let through_iamport = env.last_upstream()["headers"].clone();
    assert_eq!(through_iamport["x-verified-provider"][0], "iamport");
    assert_eq!(
        through_iamport["x-verified-person"], through_portone["x-verified-person"],
        "one person, one id"
    );
    assert_ne!(
        through_iamport["x-verified-unique-in-site"],
        through_portone["x-verified-unique-in-site"]
    );
    // Another person through Iamport: another id.
    let mut o = env.browser();
    let other = Person {
        phone: "01099998888".into(),
        ..same
    };
    assert_eq!(
        o.verify_redirect(env.sandbox, "/adult", &other)
            .await
            .status(),
        302
    );
    assert_eq!(o.get_html("/adult").await.status(), 200);
    assert_ne!(
        env.last_upstream()["headers"]["x-verified-person"],
        through_portone["x-verified-person"]
    );
}
