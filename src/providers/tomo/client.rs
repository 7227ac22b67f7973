//! TomoIDV eKYC for foreign visitors: OAuth2 client credentials with a private_key_jwt client
//! assertion (RFC 7523, ES256), `POST /v1/idv/start` and `POST /v1/idv/result`.

use crate::config::providers::tomo::Settings;
use crate::live::provider::ProviderError;
use crate::providers::{parse_dob, transport_error, ProviderId, VerifiedPerson};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh a cached token this long before `expires_in` says it ends.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A fresh key pair: (base64url private JWK for the client config, public JWK JSON for the
/// provider's registration).
pub fn fresh_jwk_pair() -> (String, String) {
    let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let private = URL_SAFE_NO_PAD.encode(sk.to_jwk_string().as_bytes());
    (private, sk.public_key().to_jwk_string())
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The RFC 7523 client assertion for the token endpoint.
pub fn client_assertion(
    key: &EncodingKey,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<String, ProviderError> {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    let claims = AssertionClaims {
        iss: client_id.into(),
        sub: client_id.into(),
        aud: token_url.into(),
        iat: now,
        exp: now + 300,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    jsonwebtoken::encode(&header, &claims, key)
        .map_err(|e| ProviderError::Rejected(format!("cannot sign client assertion: {e}")))
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `/v1/idv/start`'s answer: the person's start URL, named `start_idv_uri` (current) or
/// `idv_start_uri` (an older public revision of the API).
#[derive(Debug, Deserialize)]
struct StartResponse {
    #[serde(default)]
    start_idv_uri: Option<String>,
    #[serde(default)]
    idv_start_uri: Option<String>,
}

/// One result (`R` in the API).
#[derive(Debug, Clone, Deserialize)]
pub struct IdvResult {
    pub auth_id: String,
    #[serde(default)]
    pub policy_key: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    pub result: IdvPerson,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdvPerson {
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub date_of_birth: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub sex: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResultResponse {
    #[serde(default)]
    result: Option<IdvResult>,
    #[serde(default)]
    results: Option<Vec<IdvResult>>,
}

impl ResultResponse {
    fn all(self) -> Vec<IdvResult> {
        let mut v = self.results.unwrap_or_default();
        if let Some(r) = self.result {
            if !v.iter().any(|x| x.auth_id == r.auth_id) {
                v.insert(0, r);
            }
        }
        v
    }
}

pub struct TomoClient {
    cfg: Settings,
    key: EncodingKey,
    http: reqwest::Client,
    token: crate::providers::TokenCache,
    breaker: Arc<crate::providers::Breaker>,
}

impl TomoClient {
    pub fn new(cfg: Settings) -> Result<Arc<Self>, ProviderError> {
        let key = EncodingKey::from_ec_pem(cfg.private_key_pem.as_bytes())
            .map_err(|_| ProviderError::Rejected("TomoIDV key is not usable".into()))?;
        let http = crate::providers::http_client(cfg.timeout)?;
        Ok(Arc::new(TomoClient {
            cfg,
            key,
            http,
            token: crate::providers::TokenCache::new("tomo"),
            breaker: crate::providers::Breaker::new("tomo"),
        }))
    }

    pub fn config(&self) -> &Settings {
        &self.cfg
    }

    pub fn token_fetches(&self) -> u64 {
        self.token.fetches()
    }

    fn token_url(&self) -> String {
        format!("{}/v1/oauth2/token", self.cfg.base_url)
    }

    async fn token(&self) -> Result<String, ProviderError> {
        self.token
            .get(TOKEN_MARGIN, || {
                // A fresh client assertion for each fetch.
                let req = client_assertion(
                    &self.key,
                    &self.cfg.client_id,
                    &self.token_url(),
                    chrono::Utc::now().timestamp(),
                )
                .map(|assertion| {
                    self.http.post(self.token_url()).form(&[
                        ("grant_type", "client_credentials"),
                        ("scope", "idv.read"),
                        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                        ("client_assertion", assertion.as_str()),
                    ])
                });
                let breaker = self.breaker.clone();
                async move { breaker.call(fetch_token(req?)).await }
            })
            .await
    }

    /// The client assertion works: a token is issued for it.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        self.token().await.map(|_| ())
    }

    /// POST with the bearer token; one retry with a fresh token on 401.
    async fn call(
        &self,
        endpoint: &'static str,
        body: &serde_json::Value,
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), ProviderError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let started = Instant::now();
            let req = self
                .http
                .post(format!("{}/v1/idv/{endpoint}", self.cfg.base_url))
                .bearer_auth(&token)
                .json(body);
            let (status, bytes) = crate::providers::exchange(&self.breaker, req).await?;
            crate::metrics::provider_call("tomo", endpoint, started.elapsed());
            if status == 401 && attempt == 0 {
                self.token.forget(&token);
                continue;
            }
            if status == 401 {
                return Err(ProviderError::Unauthorized(format!(
                    "{endpoint} refused a fresh token"
                )));
            }
            return Ok((status, bytes));
        }
        Err(ProviderError::Unauthorized("token refused".into()))
    }

    /// Start a verification for this flow's `user_id`; returns where to send the person.
    pub async fn start(
        &self,
        user_id: &str,
        success_url: &str,
        fail_url: &str,
    ) -> Result<String, ProviderError> {
        // `callback_url` is how an older revision returns the person: sent too, as the
        // success URL (a failure there carries no token and is refused as not certified).
        let mut body = serde_json::json!({
            "user_id": user_id,
            "kyc_policy": self.cfg.kyc_policy,
            "callback_url": success_url,
            "redirect_url_success": success_url,
            "redirect_url_fail": fail_url,
        });
        if let Some(c) = &self.cfg.country {
            body["country"] = serde_json::Value::String(c.clone());
        }
        let (status, bytes) = self.call("start", &body).await?;
        if status == 400 {
            return Err(ProviderError::Rejected(format!(
                "start refused: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        if !status.is_success() {
            return Err(ProviderError::BadResponse(format!("start HTTP {status}")));
        }
        let uri = serde_json::from_slice::<StartResponse>(&bytes)
            .ok()
            .and_then(|s| s.start_idv_uri.or(s.idv_start_uri))
            .ok_or_else(|| {
                ProviderError::BadResponse("start answer without start_idv_uri".into())
            })?;
        if !(uri.starts_with("https://") || uri.starts_with("http://")) {
            return Err(ProviderError::BadResponse(
                "start_idv_uri is not a URL".into(),
            ));
        }
        Ok(uri)
    }

    /// Every result the provider holds for `user_id` (a flow's id, or a PPID).
    pub async fn results(&self, user_id: &str) -> Result<Vec<IdvResult>, ProviderError> {
        let (status, bytes) = self
            .call("result", &serde_json::json!({ "user_id": user_id }))
            .await?;
        if status == 404 {
            return Err(ProviderError::NotFound);
        }
        if !status.is_success() {
            return Err(ProviderError::BadResponse(format!("result HTTP {status}")));
        }
        let r: ResultResponse = serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::BadResponse("result answer is not in the documented shape".into())
        })?;
        Ok(r.all())
    }
}

/// The token endpoint's answer to `req`: the token and its life.
async fn fetch_token(req: reqwest::RequestBuilder) -> Result<(String, Duration), ProviderError> {
    let started = Instant::now();
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(transport_error)?;
    crate::metrics::provider_call("tomo", "token", started.elapsed());
    if status == 400 || status == 401 {
        return Err(ProviderError::Unauthorized(format!(
            "token endpoint refused the client assertion (HTTP {status})"
        )));
    }
    if !status.is_success() {
        return Err(ProviderError::BadResponse(format!(
            "token endpoint HTTP {status}"
        )));
    }
    let t: TokenResponse = serde_json::from_slice(&body)
        .map_err(|_| ProviderError::BadResponse("token answer is not JSON".into()))?;
    if t.access_token.is_empty() {
        return Err(ProviderError::BadResponse("empty access token".into()));
    }
    // expires_in is unconfirmed: without it, assume a short 5 minutes.
    Ok((
        t.access_token,
        Duration::from_secs(t.expires_in.unwrap_or(300)),
    ))
}

/// Read a result as a person. `ppid` is the person's persistent per-client id.
pub fn to_person(r: &IdvResult, ppid: &str, flow_user_id: &str) -> VerifiedPerson {
    VerifiedPerson {
        provider: ProviderId::Tomo,
        result_id: r.auth_id.clone(),
        nonce: flow_user_id.to_string(),
        certified: true,
        unique_in_site: Some(ppid.to_string()),
        ci: None,
        birth: r.result.date_of_birth.as_deref().and_then(parse_dob),
        name: r.result.full_name.clone(),
        gender: r.result.sex.clone(),
        phone: r.result.phone_number.clone(),
        foreigner: None,
        carrier: None,
        method: "idv".into(),
        verified_at: chrono::Utc::now(),
    }
}

/// The `sub` (PPID), `aud` and `exp` of the return URL's token, read without verifying its
/// signature (TomoIDV's signing keys are not published): verigate uses the PPID only after the
/// provider's API confirms that it belongs to this flow's result.
pub fn token_subject(token: &str) -> Option<(String, Option<String>, Option<i64>)> {
    let data = jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token).ok()?;
    let v = data.claims;
    let sub = v.get("sub")?.as_str()?.to_string();
    let aud = match v.get("aud") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(a)) => a.first().and_then(|x| x.as_str()).map(String::from),
        _ => None,
    };
    let exp = v.get("exp").and_then(|e| e.as_i64());
    Some((sub, aud, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::providers::tomo::policy::check_policy;
    use crate::crypto::jwk::jwk_to_pem;
    use chrono::NaiveDate;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn assertion_claims_are_rfc7523() {
        let (private, public) = fresh_jwk_pair();
        let pem = jwk_to_pem(&private).unwrap();
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let now = 1_800_000_000;
        let t = client_assertion(
            &key,
            "client-1",
            "https://test.tomopayment.com/v1/oauth2/token",
            now,
        )
        .unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.alg, Algorithm::ES256);
        assert_eq!(h.typ.as_deref(), Some("JWT"));
        let pk = p256::PublicKey::from_jwk_str(&public).unwrap();
        let dk = DecodingKey::from_ec_pem(
            p256::pkcs8::EncodePublicKey::to_public_key_pem(&pk, p256::pkcs8::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://test.tomopayment.com/v1/oauth2/token"]);
        v.validate_exp = false;
        let c = jsonwebtoken::decode::<AssertionClaims>(&t, &dk, &v)
            .unwrap()
            .claims;
        assert_eq!((c.iss.as_str(), c.sub.as_str()), ("client-1", "client-1"));
        assert_eq!(c.exp - c.iat, 300);
        assert_eq!(c.iat, now);
        assert!(uuid::Uuid::parse_str(&c.jti).is_ok());
        let t2 = client_assertion(&key, "client-1", "aud", now).unwrap();
        let c2 = jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(&t2)
            .unwrap()
            .claims;
        assert_ne!(c.jti, c2.jti, "a fresh jti every time");
    }

    #[test]
    fn jwk_secret_forms() {
        let (private, _) = fresh_jwk_pair();
        assert!(jwk_to_pem(&private).is_ok());
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(&private).unwrap()).unwrap();
        assert!(jwk_to_pem(&raw).is_ok());
        assert!(jwk_to_pem("bm90IGEgandr").is_err());
        assert!(jwk_to_pem("").is_err());
    }

    #[test]
    fn policies() {
        use serde_json::json;
        assert_eq!(check_policy(&json!({"preset": "basic"})).unwrap(), "basic");
        let full = json!({"subject": {"kind": "personal_info"}, "method": "personal_info_verf",
                          "owner_assurance": {"kind": "owner_verf", "type": "sms_otp"}});
        assert_eq!(check_policy(&full).unwrap(), "personal_info_verf");
        for bad in [
            json!({"preset": "gold"}),
            json!({"preset": "basic", "extra": 1}),
            json!({"subject": {"kind": "document"}, "method": "personal_info_verf", "owner_assurance": {"kind": "no_owner_assurance"}}),
            json!({"subject": {"kind": "personal_info"}, "method": "face", "owner_assurance": {"kind": "no_owner_assurance"}}),
            json!({"subject": {"kind": "personal_info"}, "method": "personal_info_verf", "owner_assurance": {"kind": "owner_check"}}),
            json!("basic"),
        ] {
            assert!(check_policy(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dob_formats() {
        assert_eq!(parse_dob("1990-01-02"), NaiveDate::from_ymd_opt(1990, 1, 2));
        assert_eq!(parse_dob("19900102"), NaiveDate::from_ymd_opt(1990, 1, 2));
        assert_eq!(parse_dob("02/01/1990"), None);
        // Loose spellings and impossible or ancient dates are unknown, never an adult.
        for loose in [
            "1990-1-1",
            "+1990-01-01",
            "0001-01-01",
            "-001-01-01",
            "1990-02-30",
            "1899-12-31",
            "１９９０-01-01",
            "1990-01-01T00:00:00",
            "",
        ] {
            assert_eq!(parse_dob(loose), None, "{loose}");
        }
    }
}
