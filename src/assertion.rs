//! The signed identity assertion (`X-Verified-Assertion`): an ES256 JWT verigate signs for every
//! verified request, so an upstream can check the identity headers cryptographically. Public
//! keys are served at `{flow_prefix}/jwks.json`, each with a key id (its RFC 7638 thumbprint).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::SecretKey;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an EC P-256 private key in PEM (PKCS#8 `BEGIN PRIVATE KEY` or SEC1 `BEGIN EC PRIVATE KEY`)")]
    NotP256,
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

/// Signs assertions with one key; publishes it with any previous keys still in use.
pub struct Signer {
    key: EncodingKey,
    current: PublicJwk,
    pub issuer: String,
    pub audience: String,
    pub ttl_secs: i64,
    /// Recently signed assertions by their claims: an ES256 signature costs about half a
    /// millisecond here, so a token is reused for the same claims for half its lifetime.
    recent: moka::sync::Cache<String, (String, i64)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer(kid {})", self.current.kid)
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
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

impl Signer {
    pub fn from_pem(
        pem: &str,
        issuer: &str,
        audience: &str,
        ttl_secs: i64,
    ) -> Result<Self, KeyError> {
        let sk = parse_pem(pem)?;
        let pkcs8 = sk
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| KeyError::NotP256)?;
        let key = EncodingKey::from_ec_pem(pkcs8.as_bytes()).map_err(|_| KeyError::NotP256)?;
        Ok(Signer {
            key,
            current: public_jwk(&sk),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl_secs,
            recent: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs((ttl_secs / 2).max(1) as u64))
                .build(),
        })
    }

    pub fn public(&self) -> &PublicJwk {
        &self.current
    }

    /// An assertion for a verified person: a recent one for the same claims while it has at
    /// least half its lifetime left, else a freshly signed one.
    pub fn assertion(
        &self,
        sub: &str,
        age_ok: Option<bool>,
        provider: &str,
        verified_at: i64,
        now: i64,
    ) -> Option<String> {
        let key = format!("{sub}\u{1f}{age_ok:?}\u{1f}{provider}\u{1f}{verified_at}");
        if let Some((token, iat)) = self.recent.get(&key) {
            if now - iat <= self.ttl_secs / 2 {
                return Some(token);
            }
        }
        let token = self.sign(sub, age_ok, provider, verified_at, now)?;
        self.recent.insert(key, (token.clone(), now));
        Some(token)
    }

    /// A freshly signed assertion for a verified person.
    pub fn sign(
        &self,
        sub: &str,
        age_ok: Option<bool>,
        provider: &str,
        verified_at: i64,
        now: i64,
    ) -> Option<String> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.current.kid.clone());
        let claims = AssertionClaims {
            iss: &self.issuer,
            aud: &self.audience,
            sub,
            age_ok,
            provider,
            verified_at,
            iat: now,
            exp: now + self.ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key).ok()
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
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn signs_and_verifies_with_published_key() {
        let pem = fresh_pem();
        let s = Signer::from_pem(&pem, "verigate", "my-app", 60).unwrap();
        let now = chrono::Utc::now().timestamp();
        let t = s.sign("DI", Some(true), "iamport", now - 5, now).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some(s.public().kid.as_str()));
        let k = DecodingKey::from_ec_components(&s.public().x, &s.public().y).unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["my-app"]);
        v.set_issuer(&["verigate"]);
        let d = jsonwebtoken::decode::<serde_json::Value>(&t, &k, &v).unwrap();
        assert_eq!(d.claims["sub"], "DI");
        assert_eq!(d.claims["age_ok"], true);
        assert!(d.claims["exp"].as_i64().unwrap() - d.claims["iat"].as_i64().unwrap() <= 60);
        // Reused for the same claims within half its life; re-signed after, or for other claims.
        let a = s
            .assertion("DI", Some(true), "iamport", now - 5, now)
            .unwrap();
        assert_eq!(
            s.assertion("DI", Some(true), "iamport", now - 5, now + 30)
                .unwrap(),
            a
        );
        assert_ne!(
            s.assertion("DI", Some(true), "iamport", now - 5, now + 31)
                .unwrap(),
            a
        );
        assert_ne!(
            s.assertion("DI", Some(false), "iamport", now - 5, now)
                .unwrap(),
            a
        );
        let mut wrong = Validation::new(Algorithm::ES256);
        wrong.set_audience(&["other-app"]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(&t, &k, &wrong).is_err());
    }

    #[test]
    fn thumbprint_is_stable_and_sec1_accepted() {
        let pem = fresh_pem();
        let a = public_of(&pem).unwrap();
        let sk = SecretKey::from_pkcs8_pem(&pem).unwrap();
        let sec1 = sk.to_sec1_pem(LineEnding::LF).unwrap();
        assert_eq!(public_of(&sec1).unwrap(), a);
        assert!(public_of("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }
}
