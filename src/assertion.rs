//! The signed identity assertion (`X-Verified-Assertion`): an ES256 JWT verigate signs for every
//! verified request, so an upstream can check the identity headers cryptographically. Public
//! keys are served at `{flow_prefix}/jwks.json`, each with a key id (its RFC 7638 thumbprint).
//!
//! Each request gets its own token (its own `jti`), carrying every identity header that request
//! sends upstream. The key is read with `p256` (PEM, JWK) and parsed once, when the config is
//! loaded, into ring's P-256 signer: a token then costs one ES256 signature over a few hundred
//! bytes of JSON.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::SecretKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an EC P-256 private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`)")]
    NotP256,
    #[error("the P-256 key cannot be used for signing: {0}")]
    Unusable(String),
}

/// A P-256 key's public half, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub kid: String,
    pub x: String,
    pub y: String,
}

impl PublicJwk {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": self.x, "y": self.y,
            "kid": self.kid, "use": "sig", "alg": "ES256"
        })
    }
}

fn parse_pem(pem: &str) -> Result<SecretKey, KeyError> {
    SecretKey::from_pkcs8_pem(pem)
        .or_else(|_| SecretKey::from_sec1_pem(pem))
        .map_err(|_| KeyError::NotP256)
}

fn public_jwk(sk: &SecretKey) -> PublicJwk {
    let point = sk.public_key().to_encoded_point(false);
    let x = URL_SAFE_NO_PAD.encode(point.x().map(|c| c.as_slice()).unwrap_or_default());
    let y = URL_SAFE_NO_PAD.encode(point.y().map(|c| c.as_slice()).unwrap_or_default());
    // RFC 7638: the thumbprint of the required members in lexicographic order.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    PublicJwk { kid, x, y }
}

/// The public key of a PEM private key (for `previous_key_files`).
pub fn public_of(pem: &str) -> Result<PublicJwk, KeyError> {
    parse_pem(pem).map(|sk| public_jwk(&sk))
}

/// What one assertion says about one request: the values of the identity headers it carries
/// upstream (unencoded: `name` is `홍길동` where the header says `%ED%99%8D...`), and the route
/// that let it through. `None` fields are left out of the token. The CI has no place here: it
/// never leaves verigate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Claims<'a> {
    /// `X-Verified-Person`: absent when the provider gave no CI.
    pub sub: Option<&'a str>,
    /// `X-Verified-Unique-In-Site`: absent when the provider gave no DI.
    pub unique_in_site: Option<&'a str>,
    /// `X-Verified-Provider` (empty, and left out, on an age-only route).
    pub provider: &'a str,
    /// `X-Verified-Method`.
    pub method: &'a str,
    /// `X-Verified-At`, as UNIX seconds (0, and left out, on an age-only route).
    pub verified_at: i64,
    /// `X-Verified-Age-Ok`: present exactly when the route sets `min_age`.
    pub age_ok: Option<bool>,
    /// `X-Verified-Age-Checked-At`, as UNIX seconds: on age-only routes (`age_status`).
    pub age_checked_at: Option<i64>,
    /// The route's name (always set for a request verigate sends upstream).
    pub route: Option<&'a str>,
    /// The route's `min_age`.
    pub min_age: Option<u32>,
    /// `X-Verified-Name`, `-Birth`, `-Gender`, `-Phone`: only where the route forwards them.
    pub name: Option<&'a str>,
    pub birth: Option<chrono::NaiveDate>,
    pub gender: Option<&'a str>,
    pub phone: Option<&'a str>,
    /// `X-Verified-Foreigner`, `-Carrier`: only where the route forwards them.
    pub foreigner: Option<bool>,
    pub carrier: Option<&'a str>,
    /// `X-Verified-Guardian-Consent`: the guardian consent record's id (guardian-consent
    /// routes, for a child).
    pub guardian_consent: Option<&'a str>,
    /// `X-Verified-Guardian-At`, as UNIX seconds.
    pub guardian_at: Option<i64>,
    /// `X-Verified-Guardian-Name`, `-Birth`: only where the route forwards them.
    pub guardian_name: Option<&'a str>,
    pub guardian_birth: Option<chrono::NaiveDate>,
}

/// The JWT payload: the request's claims and the token's own.
#[derive(Serialize)]
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unique_in_site: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    provider: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    method: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    verified_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_ok: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_checked_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_age: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// `YYYY-MM-DD`, as in `X-Verified-Birth`.
    #[serde(skip_serializing_if = "Option::is_none")]
    birth: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gender: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    foreigner: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    carrier: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardian_consent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardian_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardian_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    guardian_birth: Option<chrono::NaiveDate>,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: &'a str,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Signs assertions with one key; publishes it with any previous keys still in use.
pub struct Signer {
    /// Parsed once, at config load, into ring's P-256 signer (ring: ~20 µs a signature here,
    /// p256 0.13's portable arithmetic ~170 µs; `benches/assertion.rs`).
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    /// The token's first segment and its dot (`base64url({"typ":"JWT","alg":"ES256","kid":..}).`):
    /// the same for every token of this key.
    header: String,
    current: PublicJwk,
    pub issuer: String,
    pub audience: String,
    pub ttl_secs: i64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(kid {})", self.current.kid)
    }
}

impl Signer {
    pub fn from_pem(
        pem: &str,
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
    ) -> Result<Self, KeyError> {
        let sk = parse_pem(pem)?;
        let current = public_jwk(&sk);
        // As jsonwebtoken wrote it before (the kid is base64url: nothing to escape).
        let header = format!(r#"{{"typ":"JWT","alg":"ES256","kid":"{}"}}"#, current.kid);
        let mut header = URL_SAFE_NO_PAD.encode(header);
        header.push('.');
        let der = sk
            .to_pkcs8_der()
            .map_err(|e| KeyError::Unusable(e.to_string()))?;
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der.as_bytes(),
            &rng,
        )
        .map_err(|e| KeyError::Unusable(e.to_string()))?;
        Ok(Signer {
            key,
            rng,
            header,
            current,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl_secs,
        })
    }

    pub fn public(&self) -> &PublicJwk {
        &self.current
    }

    /// A freshly signed assertion of `c` at `now` (UNIX seconds), with a `jti` of its own:
    /// `iat` = `nbf` = `now`, `exp` = `now + ttl`. None only if signing fails (the gate then
    /// fails closed).
    pub fn sign_claims(&self, c: &Claims<'_>, now: i64) -> Option<String> {
        let mut jti = uuid::Uuid::encode_buffer();
        let jti = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut jti);
        let payload = Payload {
            iss: &self.issuer,
            aud: &self.audience,
            sub: c.sub,
            unique_in_site: c.unique_in_site,
            provider: c.provider,
            method: c.method,
            verified_at: c.verified_at,
            age_ok: c.age_ok,
            age_checked_at: c.age_checked_at,
            route: c.route,
            min_age: c.min_age,
            name: c.name,
            birth: c.birth,
            gender: c.gender,
            phone: c.phone,
            foreigner: c.foreigner,
            carrier: c.carrier,
            guardian_consent: c.guardian_consent,
            guardian_at: c.guardian_at,
            guardian_name: c.guardian_name,
            guardian_birth: c.guardian_birth,
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            jti,
        };
        let json = serde_json::to_vec(&payload).ok()?;
        // header. + payload + . + 86 characters of signature
        let mut token = String::with_capacity(self.header.len() + json.len().div_ceil(3) * 4 + 88);
        token.push_str(&self.header);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        // JWS ES256 (RFC 7518 §3.4): SHA-256, then the fixed-size r || s, 64 bytes.
        let sig = self.key.sign(&self.rng, token.as_bytes()).ok()?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Some(token)
    }

    /// An assertion about a person alone (no route, nothing forwarded): for tools and tests
    /// that need a token of this key, e.g. a backdated one. The gate signs with
    /// [`Signer::sign_claims`].
    pub fn sign(
        &self,
        sub: &str,
        age_ok: Option<bool>,
        provider: &str,
        verified_at: i64,
        now: i64,
    ) -> Option<String> {
        let c = Claims {
            sub: Some(sub),
            provider,
            verified_at,
            age_ok,
            ..Claims::default()
        };
        self.sign_claims(&c, now)
    }
}

/// A fresh P-256 private key as PKCS#8 PEM (for `verigate keygen`).
pub fn fresh_pem() -> String {
    let sk = SecretKey::random(&mut rand::rngs::OsRng);
    sk.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use p256::ecdsa::signature::Verifier as _;

    fn signer() -> Signer {
        Signer::from_pem(&fresh_pem(), "verigate", "my-app", 60).unwrap()
    }

    /// Verified by another implementation (jsonwebtoken) with the published key alone.
    fn verify(s: &Signer, t: &str) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
        let k = DecodingKey::from_ec_components(&s.public().x, &s.public().y).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["my-app"]);
        v.set_issuer(&["verigate"]);
        v.validate_nbf = true;
        v.leeway = 0;
        jsonwebtoken::decode::<serde_json::Value>(t, &k, &v).map(|d| d.claims)
    }

    fn full() -> Claims<'static> {
        Claims {
            sub: Some("MC0GCCqGSIb3DQIJAyEAdi"),
            unique_in_site: Some("DI-of-this-site"),
            provider: "iamport",
            method: "iamport:danal",
            verified_at: 1_700_000_000,
            age_ok: Some(true),
            age_checked_at: None,
            route: Some("signup"),
            min_age: Some(19),
            name: Some("홍길동 \"Gil-dong\" \\ </script>"),
            birth: chrono::NaiveDate::from_ymd_opt(1990, 1, 1),
            gender: Some("female"),
            phone: Some("01012345678"),
            foreigner: Some(false),
            carrier: Some("SKT"),
            guardian_consent: Some("gc_AAAAAAAAAAAAAAAAAAAAAA"),
            guardian_at: Some(1_700_000_100),
            guardian_name: Some("김보호"),
            guardian_birth: chrono::NaiveDate::from_ymd_opt(1981, 5, 5),
        }
    }

    #[test]
    fn signs_every_claim_and_verifies_with_the_published_key() {
        let s = signer();
        let now = chrono::Utc::now().timestamp();
        let t = s.sign_claims(&full(), now).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some(s.public().kid.as_str()));
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        let c = verify(&s, &t).unwrap();
        let want = serde_json::json!({
            "iss": "verigate", "aud": "my-app",
            "sub": "MC0GCCqGSIb3DQIJAyEAdi", "unique_in_site": "DI-of-this-site",
            "provider": "iamport", "method": "iamport:danal", "verified_at": 1_700_000_000,
            "age_ok": true, "route": "signup", "min_age": 19,
            "name": "홍길동 \"Gil-dong\" \\ </script>", "birth": "1990-01-01",
            "gender": "female", "phone": "01012345678", "foreigner": false, "carrier": "SKT",
            "guardian_consent": "gc_AAAAAAAAAAAAAAAAAAAAAA", "guardian_at": 1_700_000_100,
            "guardian_name": "김보호", "guardian_birth": "1981-05-05",
            "iat": now, "nbf": now, "exp": now + 60, "jti": c["jti"],
        });
        assert_eq!(c, want);
        assert_eq!(c["jti"].as_str().unwrap().len(), 36);
        // Another audience, a token not yet valid, an expired one: refused.
        let mut other = Validation::new(Algorithm::ES256);
        other.set_audience(&["other-app"]);
        let k = DecodingKey::from_ec_components(&s.public().x, &s.public().y).unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &k, &other).is_err());
        assert!(verify(&s, &s.sign_claims(&full(), now + 30).unwrap()).is_err());
        assert!(verify(&s, &s.sign_claims(&full(), now - 61).unwrap()).is_err());
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let s = signer();
        let now = chrono::Utc::now().timestamp();
        let jtis: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                let t = s.sign_claims(&full(), now).unwrap();
                verify(&s, &t).unwrap()["jti"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(jtis.len(), 50);
    }

    #[test]
    fn claims_not_given_are_left_out() {
        let s = signer();
        let now = chrono::Utc::now().timestamp();
        let t = s.sign("DI", None, "tomo", now - 5, now).unwrap();
        let c = verify(&s, &t).unwrap();
        let mut keys: Vec<&str> = c.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "aud",
                "exp",
                "iat",
                "iss",
                "jti",
                "nbf",
                "provider",
                "sub",
                "verified_at"
            ]
        );
        let t = s.sign("DI", Some(true), "iamport", now - 5, now).unwrap();
        assert_eq!(verify(&s, &t).unwrap()["age_ok"], true);
    }

    /// JWS ES256: base64url of the 64-byte r || s (not DER), over `header.payload`, checked
    /// here with p256's verifier and the published x and y.
    #[test]
    fn signature_is_raw_r_and_s_over_the_signing_input() {
        let s = signer();
        let t = s.sign_claims(&full(), 1_700_000_100).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(&s.public().x).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(&s.public().y).unwrap());
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&sig).unwrap();
        vk.verify(input.as_bytes(), &sig).unwrap();
        assert!(vk.verify(b"something else", &sig).is_err());
    }

    #[test]
    fn tampered_tokens_fail() {
        let s = signer();
        let now = chrono::Utc::now().timestamp();
        let t = s.sign_claims(&full(), now).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        // A claim changed (min_age), the signature kept.
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["min_age"] = 0.into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert!(verify(&s, &forged).is_err());
        // One signature byte changed.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(verify(&s, &forged).is_err());
        // Another key's signature.
        let other = signer().sign_claims(&full(), now).unwrap();
        assert!(verify(&s, &other).is_err());
        assert!(verify(&s, &t).is_ok());
    }

    /// The header upstream apps saw from jsonwebtoken, byte for byte.
    #[test]
    fn header_is_what_jsonwebtoken_wrote() {
        let pem = fresh_pem();
        let s = Signer::from_pem(&pem, "verigate", "my-app", 60).unwrap();
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.kid = Some(s.public().kid.clone());
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let old = jsonwebtoken::encode(&h, &serde_json::json!({}), &key).unwrap();
        let new = s.sign("DI", None, "iamport", 0, 0).unwrap();
        assert_eq!(old.split('.').next(), new.split('.').next());
    }

    #[test]
    fn thumbprint_is_stable_and_sec1_accepted() {
        let pem = fresh_pem();
        let a = public_of(&pem).unwrap();
        let sk = SecretKey::from_pkcs8_pem(&pem).unwrap();
        let sec1 = sk.to_sec1_pem(LineEnding::LF).unwrap();
        assert_eq!(public_of(&sec1).unwrap(), a);
        assert_eq!(Signer::from_pem(&sec1, "i", "a", 60).unwrap().public(), &a);
        assert!(public_of("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }
}
