//! Iamport (PortOne V1) identity verification: `/users/getToken` and `/certifications/{imp_uid}`.

use crate::config::providers::iamport::Settings;
use crate::live::provider::ProviderError;
use crate::providers::{transport_error, ProviderId, VerifiedPerson};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Refresh a cached token this long before the provider says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    code: i64,
    message: Option<String>,
    response: Option<T>,
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
    now: i64,
    expired_at: i64,
}

/// The fields of a certification verigate reads (see PROVIDERS.md).
#[derive(Debug, Deserialize)]
pub struct Certification {
    pub imp_uid: String,
    pub merchant_uid: Option<String>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub birth: Option<i64>,
    pub phone: Option<String>,
    pub certified: bool,
    pub certified_at: Option<i64>,
    pub unique_key: Option<String>,
    pub unique_in_site: Option<String>,
    #[serde(default)]
    pub foreigner: Option<bool>,
    #[serde(default)]
    pub carrier: Option<String>,
    #[serde(default)]
    pub pg_provider: Option<String>,
}

/// An Iamport API client with a shared token cache (one getToken per token lifetime, whatever
/// the concurrency: see [`crate::providers::TokenCache`]) and a circuit breaker ([`crate::providers::Breaker`]).
pub struct IamportClient {
    cfg: Settings,
    http: reqwest::Client,
    token: crate::providers::TokenCache,
    breaker: Arc<crate::providers::Breaker>,
}

/// `imp_uid`s are short ASCII identifiers; anything else never reaches the provider's URL.
pub fn valid_imp_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl IamportClient {
    pub fn new(cfg: Settings) -> Result<Arc<Self>, ProviderError> {
        let http = crate::providers::http_client(cfg.timeout)?;
        Ok(Arc::new(IamportClient {
            cfg,
            http,
            token: crate::providers::TokenCache::new("iamport"),
            breaker: crate::providers::Breaker::new("iamport"),
        }))
    }

    pub fn config(&self) -> &Settings {
        &self.cfg
    }

    /// How many times a token was fetched (for metrics and tests).
    pub fn token_fetches(&self) -> u64 {
        self.token.fetches()
    }

    async fn token(&self) -> Result<String, ProviderError> {
        self.token
            .get(TOKEN_MARGIN, || {
                let req = self
                    .http
                    .post(format!("{}/users/getToken", self.cfg.base_url))
                    .json(&serde_json::json!({
                        "imp_key": self.cfg.api_key,
                        "imp_secret": self.cfg.api_secret,
                    }));
                let breaker = self.breaker.clone();
                async move { breaker.call(fetch_token(req)).await }
            })
            .await
    }

    /// The credentials work: a token is issued for them (`POST /users/getToken`).
    pub async fn probe(&self) -> Result<(), ProviderError> {
        self.token().await.map(|_| ())
    }

    /// `GET /certifications/{imp_uid}`, retrying once with a fresh token on 401.
    pub async fn certification(&self, imp_uid: &str) -> Result<Certification, ProviderError> {
        if !valid_imp_uid(imp_uid) {
            return Err(ProviderError::NotFound);
        }
        for attempt in 0..2 {
            let token = self.token().await?;
            let started = Instant::now();
            let req = self
                .http
                .get(format!("{}/certifications/{}", self.cfg.base_url, imp_uid))
                .header("Authorization", format!("Bearer {token}"));
            let (status, body) = crate::providers::exchange(&self.breaker, req).await?;
            crate::metrics::provider_call("iamport", "certifications", started.elapsed());
            match status.as_u16() {
                401 if attempt == 0 => {
                    self.token.forget(&token);
                    continue;
                }
                401 => {
                    return Err(ProviderError::Unauthorized(
                        "certifications refused a fresh token".into(),
                    ))
                }
                404 => return Err(ProviderError::NotFound),
                _ => {}
            }
            let env: Envelope<Certification> = parse_envelope(status, &body)?;
            let cert = env.response.ok_or_else(|| {
                ProviderError::BadResponse("certification answer without a response".into())
            })?;
            if cert.imp_uid != imp_uid {
                return Err(ProviderError::BadResponse(
                    "certification answer is for another imp_uid".into(),
                ));
            }
            return Ok(cert);
        }
        Err(ProviderError::Unauthorized("token refused".into()))
    }

    /// Fetch a certification and read it as a person (not yet accepted: see `flow`).
    pub async fn verify(&self, imp_uid: &str) -> Result<VerifiedPerson, ProviderError> {
        let c = self.certification(imp_uid).await?;
        to_person(c)
    }
}

/// `POST /users/getToken`: the token and its life on the provider's own clock.
async fn fetch_token(req: reqwest::RequestBuilder) -> Result<(String, Duration), ProviderError> {
    let started = Instant::now();
    let resp = req.send().await.map_err(transport_error)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(transport_error)?;
    crate::metrics::provider_call("iamport", "getToken", started.elapsed());
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(ProviderError::Unauthorized(
            "getToken refused imp_key/imp_secret".into(),
        ));
    }
    let env: Envelope<TokenResponse> = parse_envelope(status, &body)?;
    let t = env
        .response
        .ok_or_else(|| ProviderError::BadResponse("getToken answered without a response".into()))?;
    if t.access_token.is_empty() || t.expired_at <= t.now {
        return Err(ProviderError::BadResponse(
            "getToken answered an empty or expired token".into(),
        ));
    }
    Ok((
        t.access_token,
        Duration::from_secs((t.expired_at - t.now) as u64),
    ))
}

fn parse_envelope<T: for<'de> Deserialize<'de>>(
    status: reqwest::StatusCode,
    body: &[u8],
) -> Result<Envelope<T>, ProviderError> {
    let env: Envelope<T> = serde_json::from_slice(body).map_err(|_| {
        ProviderError::BadResponse(format!(
            "HTTP {status} with a body that is not Iamport's envelope"
        ))
    })?;
    if env.code != 0 {
        // Business failures may come as HTTP 200 with a non-zero code.
        return Err(ProviderError::Rejected(format!(
            "code {}: {}",
            env.code,
            env.message.as_deref().unwrap_or("")
        )));
    }
    if !status.is_success() {
        return Err(ProviderError::BadResponse(format!("HTTP {status}")));
    }
    Ok(env)
}

/// Birth date: `birthday` (YYYY-MM-DD) first; the legacy `birth` (UNIX seconds at KST
/// midnight) as a fallback.
fn birth_date(c: &Certification) -> Option<NaiveDate> {
    if let Some(b) = c.birthday.as_deref() {
        if let Ok(d) = NaiveDate::parse_from_str(b, "%Y-%m-%d") {
            return Some(d);
        }
    }
    c.birth.and_then(|secs| {
        DateTime::<Utc>::from_timestamp(secs, 0)
            .map(|t| t.with_timezone(&chrono_tz::Asia::Seoul).date_naive())
    })
}

pub fn to_person(c: Certification) -> Result<VerifiedPerson, ProviderError> {
    let verified_at = c
        .certified_at
        .and_then(|s| DateTime::<Utc>::from_timestamp(s, 0))
        .ok_or_else(|| ProviderError::BadResponse("certification without certified_at".into()))?;
    let method = c
        .pg_provider
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or("unknown")
        .to_ascii_lowercase();
    let typed = crate::providers::typed_by_person(&method);
    Ok(VerifiedPerson {
        provider: ProviderId::Iamport,
        birth: birth_date(&c),
        foreigner: c.foreigner.filter(|_| !typed),
        carrier: c.carrier.filter(|s| !s.is_empty()),
        method,
        result_id: c.imp_uid,
        nonce: c.merchant_uid.unwrap_or_default(),
        certified: c.certified,
        unique_in_site: c.unique_in_site.filter(|s| !s.is_empty()),
        ci: c.unique_key.filter(|s| !s.is_empty()),
        name: c.name,
        gender: c.gender.filter(|_| !typed),
        phone: c.phone,
        verified_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imp_uid_shape() {
        assert!(valid_imp_uid("imp_429704826404"));
        for bad in ["", "../x", "imp 1", "imp/1", "imp%2f", &"a".repeat(65)] {
            assert!(!valid_imp_uid(bad), "{bad}");
        }
    }

    #[test]
    fn birth_prefers_birthday_then_legacy() {
        let mut c: Certification = serde_json::from_value(serde_json::json!({
            "imp_uid": "imp_1", "certified": true, "certified_at": 1,
            "birthday": "2000-02-29", "birth": 0
        }))
        .unwrap();
        assert_eq!(birth_date(&c), NaiveDate::from_ymd_opt(2000, 2, 29));
        c.birthday = None;
        // 1999-12-31T15:00:00Z is 2000-01-01 00:00 KST
        c.birth = Some(946_652_400);
        assert_eq!(birth_date(&c), NaiveDate::from_ymd_opt(2000, 1, 1));
    }

    #[test]
    fn non_zero_code_is_a_rejection_even_on_200() {
        let body = br#"{"code":-1,"message":"nope","response":null}"#;
        let r: Result<Envelope<TokenResponse>, _> = parse_envelope(reqwest::StatusCode::OK, body);
        assert!(matches!(r, Err(ProviderError::Rejected(_))));
        let r: Result<Envelope<TokenResponse>, _> =
            parse_envelope(reqwest::StatusCode::OK, b"<html>");
        assert!(matches!(r, Err(ProviderError::BadResponse(_))));
    }
}
