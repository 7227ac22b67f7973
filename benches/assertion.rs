//! The signed identity assertion, once per verified request when assertions are on: one
//! ES256 token with its own `jti` and every identity claim, signed with the key parsed at
//! config load into ring's P-256 signer (`Signer::sign_claims`). Next to it, for comparison:
//! ring's ECDSA signature alone (the floor), the `p256` crate's (portable arithmetic, no
//! precomputed tables), and the way it was signed before, with jsonwebtoken (which turns its
//! stored PKCS#8 DER into a signing key again on every call).
//!
//! `cargo bench --bench assertion`; criterion's median per run is in
//! `target/criterion/assertion_*/new/estimates.json`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use p256::ecdsa::signature::Signer as _;
use verigate::assertion::{fresh_pem, Claims, Signer};

const NOW: i64 = 1_700_000_100;

/// A signup route's request: min_age, name and birth forwarded.
fn claims() -> Claims<'static> {
    Claims {
        sub: Some("MC0GCCqGSIb3DQIJAyEAdi9Jf1ohr3XkQeNzZxkVYv0CfE0="),
        unique_in_site: Some("MC0GCCqGSIb3DQIJAyEAdi9Jf1ohr3XkQeNzZxkVYv0CfE0"),
        provider: "iamport",
        method: "iamport:danal",
        verified_at: 1_700_000_000,
        age_ok: Some(true),
        age_checked_at: None,
        route: Some("signup"),
        min_age: Some(19),
        name: Some("홍길동"),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
        gender: None,
        phone: None,
        foreigner: None,
        carrier: None,
        guardian_consent: None,
        guardian_at: None,
        guardian_name: None,
        guardian_birth: None,
    }
}

/// The claims the old code signed (no route, nothing forwarded, no nbf).
#[derive(serde::Serialize)]
struct OldClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_ok: Option<bool>,
    provider: &'a str,
    verified_at: i64,
    iat: i64,
    exp: i64,
    jti: String,
}

fn assertion(c: &mut Criterion) {
    let pem = fresh_pem();
    let signer = Signer::from_pem(&pem, "verigate", "my-app", 60).unwrap();
    let claims = claims();
    let token = signer.sign_claims(&claims, NOW).unwrap();
    println!("token: {} bytes", token.len());

    c.bench_function("assertion_sign_token", |b| {
        b.iter(|| signer.sign_claims(black_box(&claims), black_box(NOW)))
    });

    let key = p256::ecdsa::SigningKey::from(
        <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&pem).unwrap(),
    );
    let input = token.rsplit_once('.').unwrap().0.to_string();
    c.bench_function("assertion_ecdsa_p256_only", |b| {
        b.iter(|| -> p256::ecdsa::Signature { key.sign(black_box(input.as_bytes())) })
    });

    let der = {
        use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
        p256::SecretKey::from_pkcs8_pem(&pem)
            .unwrap()
            .to_pkcs8_der()
            .unwrap()
    };
    let rng = ring::rand::SystemRandom::new();
    let ring_key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der.as_bytes(),
        &rng,
    )
    .unwrap();
    c.bench_function("assertion_ecdsa_ring_only", |b| {
        b.iter(|| ring_key.sign(&rng, black_box(input.as_bytes())).unwrap())
    });

    let old_key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
    let mut old_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    old_header.kid = Some(signer.public().kid.clone());
    c.bench_function("assertion_sign_jsonwebtoken_before", |b| {
        b.iter(|| {
            let claims = OldClaims {
                iss: "verigate",
                aud: "my-app",
                sub: black_box(claims.sub.unwrap_or_default()),
                age_ok: Some(true),
                provider: "iamport",
                verified_at: 1_700_000_000,
                iat: NOW,
                exp: NOW + 60,
                jti: uuid::Uuid::new_v4().to_string(),
            };
            jsonwebtoken::encode(&old_header, &claims, &old_key).unwrap()
        })
    });
}

criterion_group!(benches, assertion);
criterion_main!(benches);
