//! Identity providers. Each file talks to one provider's real API and turns its answer into a
//! [`VerifiedPerson`]; the flow module decides whether to accept it.

pub mod iamport;
pub mod ifree;
pub mod portone;
pub mod tomo;

use chrono::{DateTime, NaiveDate, Utc};
use std::time::Duration;

pub use crate::identity::ProviderId;

/// A person as a provider vouched for them. `ci` lives only in memory, long enough to hash it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedPerson {
    pub provider: ProviderId,
    /// The provider's result id (Iamport `imp_uid`): the replay guard's key.
    pub result_id: String,
    /// The nonce the result was made for (Iamport `merchant_uid`).
    pub nonce: String,
    pub certified: bool,
    pub unique_in_site: Option<String>,
    pub ci: Option<String>,
    pub birth: Option<NaiveDate>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    pub verified_at: DateTime<Utc>,
}

impl std::fmt::Debug for VerifiedPerson {
    // Personal data never reaches logs, even through a stray `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPerson")
            .field("provider", &self.provider)
            .field("certified", &self.certified)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

/// Why a provider call failed, in terms the gate maps to an HTTP answer and a metric reason.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider unreachable or too slow: {0}")]
    Unavailable(String),
    #[error("provider answered something unexpected: {0}")]
    BadResponse(String),
    #[error("provider refused our credentials: {0}")]
    Unauthorized(String),
    #[error("provider has no such result")]
    NotFound,
    #[error("provider refused the request: {0}")]
    Rejected(String),
}

impl ProviderError {
    /// How verigate answers a person when this is why their verification failed.
    pub fn refusal(&self) -> crate::answers::Refusal {
        use crate::answers::Refusal;
        match self {
            ProviderError::Unavailable(_) => Refusal::ProviderUnavailable,
            ProviderError::BadResponse(_) => Refusal::ProviderBadResponse,
            ProviderError::Unauthorized(_) => Refusal::ProviderUnauthorized,
            ProviderError::NotFound => Refusal::ResultNotFound,
            ProviderError::Rejected(_) => Refusal::ProviderRejected,
        }
    }

    /// The refusal's stable code (logs and metrics).
    pub fn reason(&self) -> &'static str {
        self.refusal().code()
    }
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("verigate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Unavailable(format!("http client: {e}")))
}

pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() || e.is_connect() || e.is_request() {
        ProviderError::Unavailable(e.without_url().to_string())
    } else {
        ProviderError::BadResponse(e.without_url().to_string())
    }
}

/// A provider's cached access token: fetched once per lifetime whatever the concurrency (the
/// mutex is the single flight), refreshed `margin` before it ends, dropped on a 401.
pub(crate) struct TokenCache {
    provider: &'static str,
    slot: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(provider: &'static str) -> Self {
        TokenCache {
            provider,
            slot: tokio::sync::Mutex::new(None),
            fetches: Default::default(),
        }
    }

    /// The cached token, or a fresh one from `fetch` (which answers the token and its life).
    pub(crate) async fn get<F, Fut>(
        &self,
        margin: Duration,
        fetch: F,
    ) -> Result<String, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, Duration), ProviderError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((value, until)) = slot.as_ref() {
            if std::time::Instant::now() < *until {
                return Ok(value.clone());
            }
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::provider_token_fetch(self.provider);
        let (value, life) = fetch().await?;
        let keep = life.saturating_sub(margin.min(life / 2));
        *slot = Some((value.clone(), std::time::Instant::now() + keep));
        Ok(value)
    }

    /// Drop `value` if it is still the cached token (the provider refused it).
    pub(crate) async fn forget(&self, value: &str) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(v, _)| v == value) {
            *slot = None;
        }
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}
