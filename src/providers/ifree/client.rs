//! ifree login (Rowem): the member-key exchange helpers for the registration callbacks, and the
//! login calls `POST /process/token` and `POST /process/authenticate`.

use crate::config::providers::ifree::Settings;
use crate::live::provider::ProviderError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::distributions::{Alphanumeric, DistString};
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;

/// A fresh per-member key: 32 random characters.
pub fn fresh_member_key() -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RsaError {
    #[error("public_key is not base64 of an X.509 SubjectPublicKeyInfo RSA key")]
    BadKey,
    #[error("RSA encryption failed")]
    Encrypt,
}

/// Encrypt the member key with the member's RSA public key: RSA/ECB/PKCS1Padding, base64.
pub fn encrypt_member_key(public_key_b64: &str, member_key: &str) -> Result<String, RsaError> {
    let der = STANDARD
        .decode(public_key_b64.trim())
        .map_err(|_| RsaError::BadKey)?;
    let key = RsaPublicKey::from_public_key_der(&der).map_err(|_| RsaError::BadKey)?;
    let ct = key
        .encrypt(
            &mut rand::thread_rng(),
            Pkcs1v15Encrypt,
            member_key.as_bytes(),
        )
        .map_err(|_| RsaError::Encrypt)?;
    Ok(STANDARD.encode(ct))
}

#[derive(Debug, Deserialize)]
struct Answer<T> {
    code: String,
    message: Option<String>,
    result: Option<T>,
}

#[derive(Debug, Deserialize)]
pub struct TokenResult {
    pub acs_token: String,
    #[serde(default)]
    pub expire_dt: Option<String>,
    pub ptn_cd: String,
}

#[derive(Debug, Deserialize)]
struct AuthResult {
    ptn_sp: String,
}

pub struct IfreeClient {
    cfg: Settings,
    http: reqwest::Client,
    breaker: Arc<crate::providers::Breaker>,
}

impl IfreeClient {
    pub fn new(cfg: Settings) -> Result<Arc<Self>, ProviderError> {
        let http = crate::providers::http_client(cfg.timeout)?;
        Ok(Arc::new(IfreeClient {
            cfg,
            http,
            breaker: crate::providers::Breaker::new("ifree"),
        }))
    }

    pub fn config(&self) -> &Settings {
        &self.cfg
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        endpoint: &'static str,
        body: serde_json::Value,
    ) -> Result<T, ProviderError> {
        let started = Instant::now();
        let req = self
            .http
            .post(format!("{}/process/{endpoint}", self.cfg.base_url))
            .json(&body);
        let (status, bytes) = crate::providers::exchange(&self.breaker, req).await?;
        crate::metrics::provider_call("ifree", endpoint, started.elapsed());
        let a: Answer<T> = serde_json::from_slice(&bytes).map_err(|_| {
            ProviderError::BadResponse(format!(
                "{endpoint}: HTTP {status} without ifree's answer shape"
            ))
        })?;
        if a.code != "0000" {
            return Err(ProviderError::Rejected(format!(
                "{endpoint}: code {} {}",
                a.code,
                a.message.unwrap_or_default()
            )));
        }
        a.result
            .ok_or_else(|| ProviderError::BadResponse(format!("{endpoint}: no result")))
    }

    /// `ptn_token` from the SDK -> access token and the member's `ptn_cd`.
    pub async fn token(&self, ptn_token: &str) -> Result<TokenResult, ProviderError> {
        self.post(
            "token",
            serde_json::json!({
                "client_id": self.cfg.client_id,
                "secret_key": self.cfg.secret_key,
                "ptn_token": ptn_token,
            }),
        )
        .await
    }

    /// The member's super passcode, encrypted with the member key (`ptn_sp`).
    pub async fn authenticate(&self, acs_token: &str) -> Result<String, ProviderError> {
        let r: AuthResult = self
            .post(
                "authenticate",
                serde_json::json!({
                    "client_id": self.cfg.client_id,
                    "secret_key": self.cfg.secret_key,
                    "acs_token": acs_token,
                }),
            )
            .await?;
        Ok(r.ptn_sp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs8::EncodePublicKey;
    use rsa::RsaPrivateKey;

    #[test]
    fn member_key_round_trips_through_rsa_pkcs1() {
        let sk = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let der = sk.to_public_key().to_public_key_der().unwrap();
        let b64 = STANDARD.encode(der.as_bytes());
        let key = fresh_member_key();
        assert_eq!(key.len(), 32);
        let ct = encrypt_member_key(&b64, &key).unwrap();
        let plain = sk
            .decrypt(Pkcs1v15Encrypt, &STANDARD.decode(ct).unwrap())
            .unwrap();
        assert_eq!(plain, key.as_bytes());
        assert_eq!(
            encrypt_member_key("bm90IGEga2V5", &key),
            Err(RsaError::BadKey)
        );
        assert_eq!(encrypt_member_key("%%%", &key), Err(RsaError::BadKey));
    }
}
