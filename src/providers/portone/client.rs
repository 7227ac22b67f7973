//! PortOne V2 identity verification: `GET /identity-verifications/{id}` with
//! `Authorization: PortOne <API secret>`.

use crate::config::providers::portone::Settings;
use crate::live::provider::ProviderError;
use crate::providers::{ProviderId, VerifiedPerson};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    status: String,
    id: String,
    #[serde(default)]
    verified_customer: Option<Customer>,
    #[serde(default)]
    verified_at: Option<String>,
    #[serde(default)]
    channel: Option<Channel>,
}

/// The channel a verification ran on (`pgProvider`: `DANAL`, `INICIS_UNIFIED`, ...).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Channel {
    #[serde(default)]
    pg_provider: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Customer {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    phone_number: Option<String>,
    #[serde(default)]
    birth_date: Option<String>,
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    ci: Option<String>,
    #[serde(default)]
    di: Option<String>,
    #[serde(default)]
    is_foreigner: Option<bool>,
    #[serde(default)]
    operator: Option<String>,
}

/// Identity verification ids are chosen by verigate (the flow nonce); nothing else reaches
/// the provider's URL.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The identity verification id [`PortoneClient::probe`] looks up: never issued by verigate
/// (its ids are random), so the lookup finds nothing.
const PROBE_ID: &str = "verigate-credential-probe";

pub struct PortoneClient {
    cfg: Settings,
    http: reqwest::Client,
    breaker: Arc<crate::providers::Breaker>,
}

impl PortoneClient {
    pub fn new(cfg: Settings) -> Result<Arc<Self>, ProviderError> {
        let http = crate::providers::http_client(cfg.timeout)?;
        Ok(Arc::new(PortoneClient {
            cfg,
            http,
            breaker: crate::providers::Breaker::new("portone"),
        }))
    }

    pub fn config(&self) -> &Settings {
        &self.cfg
    }

    /// The API secret works: looking up an id that does not exist answers 404 (a wrong secret
    /// gets 401 first). PortOne V2 has no token to fetch.
    pub async fn probe(&self) -> Result<(), ProviderError> {
        match self.verify(PROBE_ID).await {
            Ok(_) | Err(ProviderError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub async fn verify(&self, id: &str) -> Result<VerifiedPerson, ProviderError> {
        if !valid_id(id) {
            return Err(ProviderError::NotFound);
        }
        let started = Instant::now();
        let req = self
            .http
            .get(format!("{}/identity-verifications/{id}", self.cfg.base_url))
            .query(&[("storeId", self.cfg.store_id.as_str())])
            .header("Authorization", format!("PortOne {}", self.cfg.api_secret));
        let (status, body) = crate::providers::exchange(&self.breaker, req).await?;
        crate::metrics::provider_call("portone", "identity-verifications", started.elapsed());
        match status.as_u16() {
            401 | 403 => return Err(ProviderError::Unauthorized(format!("HTTP {status}"))),
            404 => return Err(ProviderError::NotFound),
            s if !(200..300).contains(&s) => {
                return Err(ProviderError::BadResponse(format!("HTTP {status}")))
            }
            _ => {}
        }
        let v: Verification = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::BadResponse("not an identity verification".into()))?;
        if v.id != id {
            return Err(ProviderError::BadResponse(
                "answer is for another id".into(),
            ));
        }
        let verified = v.status == "VERIFIED";
        let c = v.verified_customer;
        let verified_at = match (&v.verified_at, verified) {
            (Some(t), _) => DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ProviderError::BadResponse("verifiedAt is not RFC 3339".into()))?,
            (None, false) => Utc::now(),
            (None, true) => {
                return Err(ProviderError::BadResponse(
                    "VERIFIED without verifiedAt".into(),
                ))
            }
        };
        let field = |f: fn(&Customer) -> &Option<String>| c.as_ref().and_then(|c| f(c).clone());
        let method = v
            .channel
            .as_ref()
            .and_then(|ch| ch.pg_provider.as_deref())
            .map(|p| {
                p.trim()
                    .trim_start_matches("PG_PROVIDER_")
                    .to_ascii_lowercase()
            })
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let typed = crate::providers::typed_by_person(&method);
        Ok(VerifiedPerson {
            foreigner: c.as_ref().and_then(|c| c.is_foreigner).filter(|_| !typed),
            carrier: field(|c| &c.operator).filter(|s| !s.is_empty()),
            provider: ProviderId::Portone,
            result_id: v.id.clone(),
            nonce: v.id,
            certified: verified,
            unique_in_site: field(|c| &c.di).filter(|s| !s.is_empty()),
            ci: field(|c| &c.ci).filter(|s| !s.is_empty()),
            birth: field(|c| &c.birth_date)
                .and_then(|b| NaiveDate::parse_from_str(&b, "%Y-%m-%d").ok()),
            name: field(|c| &c.name),
            gender: field(|c| &c.gender)
                .map(|g| g.to_ascii_lowercase())
                .filter(|_| !typed),
            phone: field(|c| &c.phone_number),
            method,
            verified_at,
        })
    }
}
