//! EC P-256 private keys as JWKs (the TomoIDV console's client secret format).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::pkcs8::{EncodePrivateKey, LineEnding};

#[derive(Debug, thiserror::Error)]
pub enum JwkError {
    #[error("not a base64url-encoded EC P-256 private JWK (the TomoIDV console's secret)")]
    Invalid,
}

/// The console's secret: a base64url-encoded JWK (EC P-256, with `d`). Raw JWK JSON is accepted
/// too. Returns the key as PKCS#8 PEM for `jsonwebtoken`.
pub fn jwk_to_pem(secret: &str) -> Result<String, JwkError> {
    let s = secret.trim();
    let json = if s.starts_with('{') {
        s.to_string()
    } else {
        let bytes = URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| JwkError::Invalid)?;
        String::from_utf8(bytes).map_err(|_| JwkError::Invalid)?
    };
    let sk = p256::SecretKey::from_jwk_str(&json).map_err(|_| JwkError::Invalid)?;
    sk.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|_| JwkError::Invalid)
}
