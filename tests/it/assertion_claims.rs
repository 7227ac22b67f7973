//! The signed identity assertion, through the real proxy: every claim is a header the upstream
//! received for that request (and every identity header is a claim), each request has its own
//! `jti`, personal data is in it only where the route forwards it, and it verifies against the
//! published JWKS with an independent JWT library (jsonwebtoken) and with OpenSSL, while a
//! tampered one does not.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::decode_header;
use serde_json::{json, Value};
use std::collections::BTreeMap;

async fn env() -> Env {
    let assertion = json!({
        "prefix": "X-Verified-",
        "assertion": { "enabled": true, "key_env": "VG_ASSERT", "audience": "shop-app", "issuer": "verigate-test" },
    });
    Env::with(
        Proxy::shop()
            .routes([
                Route::path("/signup")
                    .methods(["GET", "POST"])
                    .providers(["iamport"])
                    .min_age(19)
                    .forward(["name", "birth"]),
                Route::prefix("/profile")
                    .providers(["iamport"])
                    .forward(["name", "birth", "gender", "phone"]),
                Route::prefix("/adult").providers(["iamport"]).min_age(19),
                Route::prefix("/bar")
                    .providers(["iamport"])
                    .min_age(19)
                    .age_status(),
                Route::prefix("/member").providers(["iamport"]),
                Route::prefix("/"),
            ])
            .age_status_ttl("365d")
            .set("identity_headers", assertion),
    )
    .await
}

async fn jwks(env: &Env) -> Value {
    let r = env
        .client
        .get(env.url("/.verigate/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn verify(token: &str, jwks: &Value) -> Result<Value, String> {
    verify_assertion(token, jwks, "shop-app")
}

/// The identity headers the upstream received (lower-case names, one value each), without
/// the assertion, and the assertion.
fn received(up: &Value) -> (BTreeMap<String, String>, String) {
    let mut ids = BTreeMap::new();
    let mut token = None;
    for (k, v) in up["headers"].as_object().expect("upstream saw headers") {
        if !k.starts_with("x-verified-") {
            continue;
        }
        let vals = v.as_array().unwrap();
        assert_eq!(vals.len(), 1, "{k} sent once");
        let v = vals[0].as_str().unwrap().to_string();
        if k == "x-verified-assertion" {
            token = Some(v);
        } else {
            ids.insert(k.clone(), v);
        }
    }
    (ids, token.expect("the upstream received an assertion"))
}

/// The claims a request's identity headers call for, computed from the headers alone: the
/// same values (percent-decoded; `X-Verified-At` as UNIX seconds, `X-Verified-Age-Ok` as a
/// boolean). An identity header without a claim fails the test.
fn claims_of_headers(headers: &BTreeMap<String, String>) -> BTreeMap<String, Value> {
    let decoded = |v: &str| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    headers
        .iter()
        .map(|(k, v)| {
            let claim = match k.as_str() {
                "x-verified-person" => ("sub", json!(decoded(v))),
                "x-verified-unique-in-site" => ("unique_in_site", json!(decoded(v))),
                "x-verified-provider" => ("provider", json!(decoded(v))),
                "x-verified-method" => ("method", json!(decoded(v))),
                "x-verified-at" => (
                    "verified_at",
                    json!(chrono::DateTime::parse_from_rfc3339(v).unwrap().timestamp()),
                ),
                "x-verified-age-ok" => ("age_ok", json!(v.parse::<bool>().unwrap())),
                "x-verified-age-checked-at" => (
                    "age_checked_at",
                    json!(chrono::DateTime::parse_from_rfc3339(v).unwrap().timestamp()),
                ),
                "x-verified-name" => ("name", json!(decoded(v))),
                "x-verified-birth" => ("birth", json!(decoded(v))),
                "x-verified-gender" => ("gender", json!(decoded(v))),
                "x-verified-phone" => ("phone", json!(decoded(v))),
                other => panic!("identity header {other} has no claim in the assertion"),
            };
            (claim.0.to_string(), claim.1)
        })
        .collect()
}

/// Through the proxy to `path`: the upstream's identity headers, the assertion's claims
/// (verified), the raw token, and the wall-clock second before and after.
async fn through(
    env: &Env,
    b: &mut Browser,
    path: &str,
) -> (BTreeMap<String, String>, Value, String, i64, i64) {
    let before = chrono::Utc::now().timestamp();
    let r = b.get_html(path).await;
    let after = chrono::Utc::now().timestamp();
    assert_eq!(r.status(), 200, "{path}");
    let up = env.last_upstream();
    assert_eq!(up["uri"], path);
    let (headers, token) = received(&up);
    let claims = verify(&token, &jwks(env).await)
        .unwrap_or_else(|e| panic!("{path}: assertion does not verify: {e}"));
    (headers, claims, token, before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_claim_is_a_header_the_upstream_received() {
    let env = env().await;
    let mut b = env.browser();
    // Verify by hand to learn the certification's CI (which must appear nowhere).
    let flow = b.start_iamport("/member").await;
    let back = b.certify(env.sandbox, &flow, &Person::adult(), true).await;
    let imp_uid = back["imp_uid"].as_str().unwrap().to_string();
    let loc = back["location"].as_str().unwrap().to_string();
    let req = b.client.get(loc).header("accept", "text/html");
    assert!(b.send(req).await.status().is_redirection());
    let ci = sandbox_certification(env.sandbox, &imp_uid).await["unique_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ci.len() > 20);

    // (path, route, min_age, forwarded headers)
    let cases: [(&str, &str, Option<u32>, &[&str]); 4] = [
        ("/signup", "signup", Some(19), &["name", "birth"]),
        (
            "/profile/me",
            "profile",
            None,
            &["name", "birth", "gender", "phone"],
        ),
        ("/adult/x", "adult", Some(19), &[]),
        ("/member", "member", None, &[]),
    ];
    for (path, route, min_age, forwarded) in cases {
        let (headers, claims, token, before, after) = through(&env, &mut b, path).await;
        // The headers the route sends, no more, no less.
        let mut want: Vec<String> = ["person", "unique-in-site", "provider", "method", "at"]
            .iter()
            .chain(min_age.iter().map(|_| &"age-ok"))
            .chain(forwarded)
            .map(|h| format!("x-verified-{h}"))
            .collect();
        want.sort();
        assert_eq!(headers.keys().cloned().collect::<Vec<_>>(), want, "{path}");

        // Every claim: the headers', then the route's, then the token's own.
        let mut expected = claims_of_headers(&headers);
        expected.insert("route".into(), json!(route));
        if let Some(m) = min_age {
            expected.insert("min_age".into(), json!(m));
        }
        expected.insert("iss".into(), json!("verigate-test"));
        expected.insert("aud".into(), json!("shop-app"));
        let iat = claims["iat"].as_i64().unwrap();
        assert!((before..=after).contains(&iat), "{path}: iat {iat}");
        expected.insert("iat".into(), json!(iat));
        expected.insert("nbf".into(), json!(iat));
        expected.insert("exp".into(), json!(iat + 60));
        let jti = claims["jti"].as_str().unwrap();
        assert!(uuid::Uuid::parse_str(jti).is_ok(), "{path}: jti {jti}");
        expected.insert("jti".into(), json!(jti));
        let got: BTreeMap<String, Value> = claims
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, expected, "{path}");

        // The values themselves, spelled out once.
        assert_eq!(claims["provider"], "iamport");
        if forwarded.contains(&"name") {
            assert_eq!(claims["name"], "홍길동");
            assert_eq!(headers["x-verified-name"], "%ED%99%8D%EA%B8%B8%EB%8F%99");
            assert_eq!(claims["birth"], "1990-01-01");
        }
        if forwarded.contains(&"phone") {
            assert_eq!(claims["gender"], "female");
            assert_eq!(claims["phone"], "01012345678");
        }
        if min_age.is_some() {
            assert_eq!(claims["age_ok"], true);
        }
        // The CI is in no token, signed or not.
        let payload = token.split('.').nth(1).unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(!payload.contains(&ci), "{path}: the CI is in the assertion");
        assert!(!token.contains(&ci));
    }
}

/// On an age-only route the assertion says what the two age headers say, with a session and
/// with the age status alone: no person, provider, method or time of the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_age_only_route_asserts_the_age_and_nothing_else() {
    let env = env().await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/bar", &Person::adult())
        .await;
    assert!(r.status().is_redirection());
    for with_session in [true, false] {
        if !with_session {
            b.jar.remove("vg");
            assert!(b.jar.contains_key("vg_age"));
        }
        assert_eq!(b.get_html("/bar").await.status(), 200);
        let (headers, token) = received(&env.last_upstream());
        let claims = verify_assertion_of(&token, &jwks(&env).await, "shop-app", false).unwrap();
        assert!(claims.get("sub").is_none(), "{claims}");
        assert_eq!(
            headers.keys().collect::<Vec<_>>(),
            ["x-verified-age-checked-at", "x-verified-age-ok"],
            "session: {with_session}"
        );
        let mut expected = claims_of_headers(&headers);
        for k in ["iss", "aud", "route", "min_age", "iat", "nbf", "exp", "jti"] {
            expected.insert(k.into(), claims[k].clone());
        }
        assert_eq!(
            (
                claims["route"].as_str(),
                claims["min_age"].as_u64(),
                claims["aud"].as_str()
            ),
            (Some("bar"), Some(19), Some("shop-app"))
        );
        let got: BTreeMap<String, Value> = claims
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, expected, "session: {with_session}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_gets_its_own_jti() {
    let env = env().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/adult", &Person::adult())
        .await;
    let mut jtis = std::collections::HashSet::new();
    let mut sub = None;
    // Same session, same route, same second or not: a new token every time.
    for i in 0..10 {
        let path = if i % 2 == 0 { "/adult" } else { "/member" };
        let (_, claims, _, _, _) = through(&env, &mut b, path).await;
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_string()),
            "jti reused on request {i}"
        );
        let s = claims["sub"].clone();
        assert_eq!(sub.get_or_insert(s.clone()), &s);
    }
    assert_eq!(jtis.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_goes_only_where_a_route_forwards_it() {
    let env = env().await;
    let mut b = env.browser();
    let p = Person::adult();
    b.verify_redirect(env.sandbox, "/member", &p).await;
    for path in ["/adult", "/member", "/anything/else/gated-nowhere"] {
        let r = b.get_html(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let up = env.last_upstream();
        if path.starts_with("/anything") {
            // An open route: no identity, no assertion.
            assert!(up["headers"]["x-verified-assertion"].is_null());
            continue;
        }
        let (headers, token) = received(&up);
        let claims = verify(&token, &jwks(&env).await).unwrap();
        for field in ["name", "birth", "gender", "phone"] {
            assert!(
                claims.get(field).is_none(),
                "{path}: {field} in the assertion"
            );
            assert!(!headers.contains_key(&format!("x-verified-{field}")));
        }
        let payload = token.split('.').nth(1).unwrap();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        for value in [
            p.name.as_str(),
            "1990-01-01",
            "19900101",
            "female",
            &p.phone,
        ] {
            assert!(!payload.contains(value), "{path}: {value} in {payload}");
        }
    }
    // Where the route forwards them, they are all there.
    let (_, claims, _, _, _) = through(&env, &mut b, "/profile").await;
    for field in ["name", "birth", "gender", "phone"] {
        assert!(claims.get(field).is_some(), "/profile: {field} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_assertion_fails() {
    let env = env().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/signup", &Person::adult())
        .await;
    let (_, _, token, _, _) = through(&env, &mut b, "/signup").await;
    let keys = jwks(&env).await;
    verify(&token, &keys).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);

    // One bit of the signature.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    assert_eq!(sig.len(), 64, "JWS ES256: raw r || s");
    sig[20] ^= 0x01;
    let t = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert!(verify(&t, &keys).is_err());
    // A claim (another person, another route), signature kept.
    for (claim, value) in [
        ("sub", json!("someone-else")),
        ("route", json!("admin")),
        ("min_age", json!(0)),
    ] {
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload[claim] = value;
        let t = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert!(
            verify(&t, &keys).is_err(),
            "{claim} changed, still verifies"
        );
    }
    // Signed by an unpublished key, under the published key's kid.
    let other =
        verigate::assertion::Signer::from_pem(&assertion_keys().1, "verigate-test", "shop-app", 60)
            .unwrap();
    let forged = other
        .sign(
            "x",
            Some(true),
            "iamport",
            0,
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
    assert!(verify(&forged, &keys)
        .unwrap_err()
        .contains("kid not published"));
    let forged = format!("{}.{}", parts[0], forged.split_once('.').unwrap().1);
    assert!(verify(&forged, &keys).is_err());
    // `alg: none` with the claims and no signature.
    let none = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT","alg":"none"}"#);
    assert!(verify(&format!("{none}.{}.", parts[1]), &keys).is_err());
    verify(&token, &keys).unwrap();
}

/// A second, unrelated implementation of ECDSA: OpenSSL checks a token the proxy sent with the
/// key from the JWKS (the raw r || s turned into DER, as OpenSSL wants it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_verifies_the_signature() {
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        skip::missing("the openssl command", "apt-get install openssl");
        return;
    }
    let env = env().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/profile", &Person::adult())
        .await;
    let (_, _, token, _, _) = through(&env, &mut b, "/profile").await;
    let keys = jwks(&env).await;
    let kid = decode_header(&token).unwrap().kid.unwrap();
    let jwk = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid published");
    assert_eq!(
        (
            jwk["kty"].as_str(),
            jwk["crv"].as_str(),
            jwk["alg"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    let mut sec1 = vec![4u8];
    for c in ["x", "y"] {
        sec1.extend(URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap());
    }
    let public = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("pub.pem");
    std::fs::write(&pem, public.to_public_key_pem(LineEnding::LF).unwrap()).unwrap();

    let check = |input: &str, sig: &[u8]| {
        let der = p256::ecdsa::Signature::from_slice(sig).unwrap().to_der();
        let (data, sigf) = (dir.path().join("data"), dir.path().join("sig.der"));
        std::fs::write(&data, input).unwrap();
        std::fs::write(&sigf, der.as_bytes()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-verify"])
            .arg(&pem)
            .arg("-signature")
            .arg(&sigf)
            .arg(&data)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success() && said.contains("Verified OK")
    };
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert!(check(input, &sig), "OpenSSL refuses the proxy's signature");
    let mut bad = sig.clone();
    bad[40] ^= 0x80;
    assert!(!check(input, &bad), "OpenSSL accepts a tampered signature");
    assert!(
        !check(&format!("{input}x"), &sig),
        "OpenSSL accepts a changed input"
    );
}
