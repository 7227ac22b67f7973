//! TomoIDV end to end through the real proxy and the sandbox, and the sandbox's own checks of
//! client assertions (which prove verigate's assertion correct).

use crate::common::*;
use serde_json::{json, Value};
use verigate::crypto::jwk::jwk_to_pem;
use verigate::providers::tomo::client::{client_assertion, CLIENT_ASSERTION_TYPE};

/// Tomo alone (at `tomo`): an adult area on it, the rest open.
fn tomo_only(tomo: Provider) -> Proxy {
    Proxy::new()
        .provider(tomo)
        .route(Route::prefix("/adult").providers(["tomo"]).min_age(19))
        .route(Route::prefix("/"))
}

async fn env() -> Env {
    Env::with(tomo_only(Provider::tomo())).await
}

struct Visitor {
    name: &'static str,
    dob: &'static str,
    nationality: &'static str,
    outcome: &'static str,
}

const JANE: Visitor = Visitor {
    name: "Jane Doe",
    dob: "1990-04-01",
    nationality: "us",
    outcome: "success",
};

/// Start a Tomo flow; returns the start_idv_uri verigate redirected to.
async fn start(b: &mut Browser, return_to: &str) -> (String, Value) {
    let enc: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    let r = b
        .get_html(&format!("/.verigate/tomo/start?return_to={enc}"))
        .await;
    assert_eq!(r.status(), 302, "start redirects to TomoIDV");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let flow = flow_json(&r.text().await.unwrap());
    assert_eq!(flow["start_idv_uri"], loc.as_str());
    assert!(b.jar.contains_key("vg_flow"));
    (loc, flow)
}

/// The visitor fills in the TomoIDV window; returns where TomoIDV sends the browser.
async fn window(b: &Browser, uri: &str, v: &Visitor) -> String {
    let page = b.client.get(uri).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let r = b
        .client
        .post(uri)
        .form(&[
            ("nationality", v.nationality),
            ("document", "passport"),
            ("full_name", v.name),
            ("date_of_birth", v.dob),
            ("outcome", v.outcome),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_visitor_verifies_end_to_end() {
    // Alone in its process, so that the verification counters move with this test only.
    if !skip::alone("tomo_flow::a_foreign_visitor_verifies_end_to_end") {
        return;
    }
    // Tomo beside Iamport: the choice page offers Tomo to foreign visitors, and a route that
    // takes only Iamport refuses a Tomo session.
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .provider(Provider::tomo())
            .route(
                Route::prefix("/adult")
                    .providers(["iamport", "tomo"])
                    .min_age(19),
            )
            .route(
                Route::prefix("/korean")
                    .name("korean-only")
                    .providers(["iamport"]),
            )
            .route(Route::prefix("/")),
    )
    .await;
    let before = env.metrics().await;
    let mut b = env.browser();
    let r = b.get_html("/.verigate/verify?return_to=%2Fadult").await;
    let html = r.text().await.unwrap();
    assert!(
        html.contains("data-provider=\"tomo\"") && html.contains("Foreign visitor?"),
        "{html}"
    );
    let (uri, flow) = start(&mut b, "/adult/area").await;
    assert!(flow["user_id"].as_str().unwrap().starts_with("vg_"));
    let ret = window(&b, &uri, &JANE).await;
    assert!(
        ret.contains("/.verigate/tomo/return?state=") && ret.contains("token="),
        "{ret}"
    );
    let r = b.open_html(&ret).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/adult/area");
    assert_eq!(b.get_html("/adult/area").await.status(), 200);
    let up = env.last_upstream();
    assert_eq!(up["headers"]["x-verified-provider"][0], "tomo");
    let ppid = up["headers"]["x-verified-unique-in-site"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ppid.starts_with("ppid."), "{ppid}");
    assert_eq!(up["headers"]["x-verified-age-ok"][0], "true");
    // Same visitor again: same PPID.
    let mut again = env.browser();
    let (uri, _) = start(&mut again, "/adult").await;
    let ret = window(&again, &uri, &JANE).await;
    assert_eq!(again.open_html(&ret).await.status(), 302);
    again.get_html("/adult").await;
    assert_eq!(
        env.last_upstream()["headers"]["x-verified-unique-in-site"][0],
        ppid.as_str()
    );
    // A route that accepts only Korean verification does not take a Tomo session.
    assert_eq!(b.get_html("/korean").await.status(), 302);
    // Two visits: two flows started, two completed, two sessions issued.
    let m = env.metrics().await;
    for sample in [
        r#"verigate_verifications_total{outcome="started",provider="tomo",reason=""}"#,
        r#"verigate_verifications_total{outcome="completed",provider="tomo",reason=""}"#,
        r#"verigate_sessions_issued_total{provider="tomo"}"#,
    ] {
        assert_eq!(
            metric(&m, sample) - metric(&before, sample),
            2.0,
            "{sample}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_minor_and_replay() {
    let env = env().await;
    // The visitor fails verification: TomoIDV sends them to redirect_url_fail.
    let mut b = env.browser();
    let (uri, _) = start(&mut b, "/adult").await;
    let ret = window(
        &b,
        &uri,
        &Visitor {
            outcome: "failure",
            ..JANE
        },
    )
    .await;
    assert!(ret.contains("failed=1"));
    let r = b.open_html(&ret).await;
    assert_eq!(refusal(r).await, (403, "not_certified".into()));
    assert!(!b.jar.contains_key("vg"));

    // A minor by date of birth: verified, but refused at the age gate.
    let mut kid = env.browser();
    let (uri, _) = start(&mut kid, "/adult").await;
    let ret = window(
        &kid,
        &uri,
        &Visitor {
            name: "Kid",
            dob: "2015-06-01",
            ..JANE
        },
    )
    .await;
    assert_eq!(kid.open_html(&ret).await.status(), 302);
    assert_eq!(
        refusal(kid.get_html("/adult").await).await,
        (403, "underage".into())
    );

    // Replayed return URL with the same flow cookie.
    let mut v = env.browser();
    let (uri, _) = start(&mut v, "/adult").await;
    let ret = window(
        &v,
        &uri,
        &Visitor {
            name: "Replay Person",
            ..JANE
        },
    )
    .await;
    let mut attacker = v.clone();
    assert_eq!(v.open_html(&ret).await.status(), 302);
    let r = attacker.open_html(&ret).await;
    assert_eq!(refusal(r).await, (409, "replayed_result".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_flows_result_or_ppid_is_refused() {
    let env = env().await;
    let mut victim = env.browser();
    let (vuri, _) = start(&mut victim, "/adult").await;
    let vret = window(
        &victim,
        &vuri,
        &Visitor {
            name: "Victim Person",
            ..JANE
        },
    )
    .await;
    // The attacker's own browser presents the victim's return URL: the state is not its flow.
    let mut attacker = env.browser();
    let (auri, _) = start(&mut attacker, "/adult").await;
    let r = attacker.open_html(&vret).await;
    assert_eq!(refusal(r).await, (403, "flow_mismatch".into()));
    // The attacker finishes its own verification but swaps in the victim's token (PPID).
    let aret = window(
        &attacker,
        &auri,
        &Visitor {
            name: "Attacker Person",
            ..JANE
        },
    )
    .await;
    let victim_token = reqwest::Url::parse(&vret)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let mut forged = reqwest::Url::parse(&aret).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            if k == "token" {
                (k.into_owned(), victim_token.clone())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let r = attacker.open_html(forged.as_str()).await;
    assert_eq!(
        refusal(r).await,
        (403, "flow_mismatch".into()),
        "a PPID not bound to this flow's result is refused"
    );
    assert!(!attacker.jar.contains_key("vg"));
    // A token whose subject is the flow's own user_id instead of a PPID (a fresh identity per
    // flow would slip past one-account rules) is refused too.
    let mut sneaky = env.browser();
    let (suri, sflow) = start(&mut sneaky, "/adult").await;
    let sret = window(
        &sneaky,
        &suri,
        &Visitor {
            name: "Sneaky Person",
            ..JANE
        },
    )
    .await;
    let fake = {
        use base64::Engine;
        let enc =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let now = chrono::Utc::now().timestamp();
        format!(
            "{}.{}.{}",
            enc(&json!({"alg": "ES256", "typ": "JWT"})),
            enc(&json!({"sub": sflow["user_id"], "aud": "sandbox-client", "exp": now + 60})),
            "c2ln"
        )
    };
    let mut u = reqwest::Url::parse(&sret).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            if k == "token" {
                (k.into_owned(), fake.clone())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(
        refusal(sneaky.open_html(u.as_str()).await).await,
        (403, "flow_mismatch".into())
    );
    // No flow cookie at all.
    let mut stranger = env.browser();
    assert_eq!(
        refusal(stranger.open_html(&vret).await).await,
        (400, "flow_missing".into())
    );
    // The victim's own return still works.
    assert_eq!(victim.open_html(&vret).await.status(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed_once() {
    let env = env().await;
    let mut b = env.browser();
    let (uri, _) = start(&mut b, "/adult").await;
    assert_eq!(env.tomo.token_requests(), 1);
    let ret = window(&b, &uri, &JANE).await;
    assert_eq!(b.open_html(&ret).await.status(), 302);
    assert_eq!(
        env.tomo.token_requests(),
        1,
        "the cached token served start and both results"
    );
    env.tomo.expire_tokens();
    let mut c = env.browser();
    let (uri, _) = start(&mut c, "/adult").await;
    assert_eq!(
        env.tomo.token_requests(),
        2,
        "a 401 on the cached token fetched a new one"
    );
    let ret = window(&c, &uri, &JANE).await;
    assert_eq!(c.open_html(&ret).await.status(), 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_checks_client_assertions_for_real() {
    let env = env().await;
    let c = client();
    let token_url = format!("http://{}/tomo/v1/oauth2/token", env.sandbox);
    let pem = jwk_to_pem(verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let now = chrono::Utc::now().timestamp();
    let ask = |assertion: String| {
        let env = &env;
        async move { ask_token(env, &assertion).await }
    };
    // The client's own assertion is accepted: the claims verigate signs are right.
    let good = client_assertion(&key, "sandbox-client", &token_url, now).unwrap();
    let (s, body) = ask(good.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    // Replayed jti.
    assert_eq!(ask(good).await.0, 401);
    // Wrong audience, expired, issued in the future, unknown client, wrong key.
    assert_eq!(
        ask(client_assertion(
            &key,
            "sandbox-client",
            "https://elsewhere/v1/oauth2/token",
            now
        )
        .unwrap())
        .await
        .0,
        401
    );
    assert_eq!(
        ask(client_assertion(&key, "sandbox-client", &token_url, now - 600).unwrap())
            .await
            .0,
        401
    );
    assert_eq!(
        ask(client_assertion(&key, "sandbox-client", &token_url, now + 600).unwrap())
            .await
            .0,
        401
    );
    assert_eq!(
        ask(client_assertion(&key, "someone-else", &token_url, now).unwrap())
            .await
            .0,
        401
    );
    let (other, _) = verigate::providers::tomo::client::fresh_jwk_pair();
    let other_key =
        jsonwebtoken::EncodingKey::from_ec_pem(jwk_to_pem(&other).unwrap().as_bytes()).unwrap();
    let (s, body) =
        ask(client_assertion(&other_key, "sandbox-client", &token_url, now).unwrap()).await;
    assert_eq!(s, 401);
    assert_eq!(body["error"], "invalid_client");
    // Not a JWT at all, wrong grant.
    assert_eq!(ask("garbage".into()).await.0, 401);
    let r = c
        .post(&token_url)
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The API wants the Bearer token and enforces the kyc_policy rules.
    let (_, body) = ask(client_assertion(&key, "sandbox-client", &token_url, now).unwrap()).await;
    let token = body["access_token"].as_str().unwrap();
    let start = format!("http://{}/tomo/v1/idv/start", env.sandbox);
    let r = c
        .post(&start)
        .json(&json!({"user_id": "u1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&start)
        .bearer_auth(token)
        .json(&json!({"user_id": "u1", "kyc_policy": {"preset": "platinum"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Unsupported kyc_policy"
    );
    let r = c
        .post(&start)
        .bearer_auth(token)
        .json(&json!({"user_id": "u1", "kyc_policy": {"preset": "basic"}, "country": "us"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["start_idv_uri"]
        .as_str()
        .unwrap()
        .contains("/tomo/idv/"));
    let result = format!("http://{}/tomo/v1/idv/result", env.sandbox);
    let r = c
        .post(&result)
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&result)
        .bearer_auth(token)
        .json(&json!({"user_id": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_at_start_is_a_clear_503() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let env = Env::with(tomo_only(
        Provider::tomo().base_url(format!("http://{dead}/tomo")),
    ))
    .await;
    let mut b = env.browser();
    let r = b.get_html("/.verigate/tomo/start?return_to=%2Fadult").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("provider_unavailable"));
    assert!(!b.jar.contains_key("vg_flow"));
    assert_eq!(
        env.client
            .get(env.url("/open"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// A Korean national has a CI: where a route also accepts Iamport, a TomoIDV verification with
/// a Korean passport would be a second identity (a second account). Refused there, whichever
/// route the TomoIDV session was made on; a foreign visitor is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_korean_passport_is_not_a_second_identity_beside_iamport() {
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .provider(Provider::tomo())
            .route(
                Route::path("/signup")
                    .methods(["GET", "POST"])
                    .providers(["iamport", "tomo"])
                    .one_account()
                    .one_account_scope("per_provider"),
            )
            .route(Route::prefix("/foreign").providers(["tomo"]))
            .route(Route::prefix("/")),
    )
    .await;
    // The person signs up once with mobile verification.
    let mut korean = env.browser();
    korean
        .verify_redirect(env.sandbox, "/signup", &Person::adult())
        .await;
    assert_eq!(korean.post("/signup", "name=kim").await.status(), 201);
    let hits = env.hits();

    for nationality in ["kr", "KR", "kor", "", "410", "Korea", "ＫＲ"] {
        let visitor = Visitor {
            name: "Kim Minsu",
            dob: "1990-04-01",
            nationality,
            outcome: "success",
        };
        // TomoIDV from the signup page itself, and from a TomoIDV-only page, then the signup.
        for return_to in ["/signup", "/foreign/home"] {
            let mut b = env.browser();
            let (uri, _) = start(&mut b, return_to).await;
            let back = window(&b, &uri, &visitor).await;
            let r = b.open_html(&back).await;
            assert_eq!(
                r.status(),
                302,
                "{nationality}: {}",
                r.text().await.unwrap()
            );
            if return_to == "/foreign/home" {
                assert_eq!(
                    b.get_html("/foreign/home").await.status(),
                    200,
                    "TomoIDV-only page"
                );
            }
            for method in ["GET", "POST"] {
                let req = b
                    .client
                    .request(method.parse().unwrap(), b.url("/signup"))
                    .header("accept", "application/json")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("name=kim");
                let r = b.send(req).await;
                assert_eq!(
                    refusal(r).await,
                    (403, "korean_national".into()),
                    "{nationality:?} via {return_to}, {method}"
                );
            }
            let page = b.get_html("/signup").await;
            assert_eq!(page.status(), 403);
            let page = page.text().await.unwrap();
            assert!(page.contains("휴대폰 본인인증"));
            // Its ways on: verify again (by phone), or as someone else.
            assert!(
                page.contains(r#"data-next="verify" href="/.verigate/verify?return_to=%2Fsignup""#),
                "{page}"
            );
            assert!(page.contains(r#"data-next="switch""#), "{page}");
        }
    }
    // Only the TomoIDV-only page (once per nationality) reached the app; no signup did.
    assert_eq!(env.hits(), hits + 7, "no refused request reached the app");

    // A session made where the rule is off (another instance, or before a reload) does not
    // pass here: each request decides under this instance's settings.
    let lax = Env::with(
        Proxy::new()
            .provider(Provider::tomo().set("ci_countries", json!([])))
            .route(Route::prefix("/foreign").providers(["tomo"]))
            .route(Route::prefix("/")),
    )
    .await;
    let mut b = lax.browser();
    let (uri, _) = start(&mut b, "/foreign/home").await;
    let kim = Visitor {
        name: "Kim Minsu",
        dob: "1990-04-01",
        nationality: "kr",
        outcome: "success",
    };
    let back = window(&b, &uri, &kim).await;
    assert_eq!(b.open_html(&back).await.status(), 302);
    b.env_proxy = env.proxy;
    let r = b
        .send(
            b.client
                .post(b.url("/signup"))
                .header("accept", "application/json")
                .body("name=kim"),
        )
        .await;
    assert_eq!(refusal(r).await, (403, "korean_national".into()));
    assert_eq!(env.hits(), hits + 7);

    // A foreign visitor signs up through TomoIDV.
    let mut b = env.browser();
    let (uri, _) = start(&mut b, "/signup").await;
    let back = window(&b, &uri, &JANE).await;
    assert_eq!(b.open_html(&back).await.status(), 302);
    assert_eq!(b.post("/signup", "name=jane").await.status(), 201);
}

/// Ask the sandbox's token endpoint for a token with this client assertion.
async fn ask_token(env: &Env, assertion: &str) -> (u16, Value) {
    let r = client()
        .post(format!("http://{}/tomo/v1/oauth2/token", env.sandbox))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "idv.read"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

/// Ask the sandbox's token endpoint with `claims` signed by the sandbox client's key.
async fn token_for(env: &Env, claims: &Value) -> (u16, Value) {
    let pem = jwk_to_pem(verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("JWT".into());
    ask_token(env, &jsonwebtoken::encode(&header, claims, &key).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_takes_an_array_aud_and_any_case_of_bearer() {
    let env = env().await;
    let token_url = format!("http://{}/tomo/v1/oauth2/token", env.sandbox);
    let now = chrono::Utc::now().timestamp();
    let claims = |aud: Value| {
        json!({ "iss": "sandbox-client", "sub": "sandbox-client", "aud": aud, "iat": now,
                "exp": now + 300, "jti": uuid::Uuid::new_v4().to_string() })
    };
    // RFC 7523 §3: `aud` may be an array holding the token endpoint.
    let (s, body) = token_for(&env, &claims(json!(["https://other.example/", token_url]))).await;
    assert_eq!(s, 200, "{body}");
    // As README says: tokens live 1800 s in the sandbox.
    assert_eq!(body["expires_in"], 1800);
    // An array without the token endpoint is still refused.
    let (s, body) = token_for(&env, &claims(json!(["https://other.example/"]))).await;
    assert_eq!((s, body["error"].as_str()), (401, Some("invalid_client")));

    // RFC 6750 / RFC 7235: the scheme's name is case-insensitive.
    let (_, body) = token_for(&env, &claims(json!(token_url))).await;
    let token = body["access_token"].as_str().unwrap();
    let start = format!("http://{}/tomo/v1/idv/start", env.sandbox);
    let c = client();
    for (auth, want) in [
        (format!("bearer {token}"), 200),
        (format!("BEARER {token}"), 200),
        (format!("Bearer {token}"), 200),
        (format!("Basic {token}"), 401),
        (format!("Bearer{token}"), 401),
        ("bearer nope".to_string(), 401),
    ] {
        let r = c
            .post(&start)
            .header("authorization", &auth)
            .json(&json!({"user_id": "u1", "kyc_policy": {"preset": "basic"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{auth}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_start_answer_is_followed_and_callback_url_is_sent() {
    let env = env().await;
    // The API revision that names the start URL `idv_start_uri`.
    env.tomo.use_legacy_start_name(true);
    let mut b = env.browser();
    let (uri, flow) = start(&mut b, "/adult").await;
    assert!(uri.contains("/tomo/idv/"), "{uri}");
    // callback_url went with the start request: the flow's own return URL.
    let user_id = flow["user_id"].as_str().unwrap();
    let callback = env.tomo.callback_url(user_id).expect("callback_url sent");
    assert_eq!(callback, flow["redirect_url_success"].as_str().unwrap());
    assert!(
        callback.ends_with(&format!("/.verigate/tomo/return?state={user_id}")),
        "{callback}"
    );
    let ret = window(&b, &uri, &JANE).await;
    let r = b.open_html(&ret).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["location"], "/adult");
    assert_eq!(b.get_html("/adult").await.status(), 200);
}
