//! The one interface every provider's flow offers: the flow endpoints, the choice page, the
//! gate and reload reach a provider only through it, so none of them names a provider.
//! Implemented by each provider's `src/providers/<name>/flow.rs`; built by
//! `providers::registry`. A provider call's failure, as every caller sees it, is a
//! [`ProviderError`].

use crate::answers::Reply;
use crate::config::providers::Providers;
use crate::identity::ProviderId;
use crate::live::Live;
use crate::store::Store;
use async_trait::async_trait;
use pingora::proxy::Session;

/// How the choice page offers a provider.
pub struct Choice {
    /// What it is (Korean, English).
    pub label: (&'static str, &'static str),
    /// Who runs it: two ways of the same kind (Iamport's and PortOne's mobile phone
    /// verification) are told apart by it.
    pub via: &'static str,
    /// A small picture of the kind of verification (a phone, an ID card, a key), so two ways
    /// look different at a glance (trusted SVG).
    pub icon: &'static str,
}

#[async_trait]
pub trait ProviderFlow: Send + Sync {
    fn id(&self) -> ProviderId;

    /// How the choice page offers it.
    fn choice(&self) -> Choice;

    /// Whether this flow was built from exactly these settings: a reload then keeps it (and
    /// its client's cached token).
    fn built_from(&self, providers: &Providers) -> bool;

    /// Try this provider's credentials with the cheapest call that needs them (a token, a
    /// lookup of an id that does not exist); `live::probe` runs it at start, after reloads
    /// and, while it fails, with backoff. `None`: the provider has no call to try.
    async fn probe(&self) -> Option<Result<(), ProviderError>> {
        None
    }

    /// Whether [`ProviderFlow::probe`] makes a call (ifree's has none: its keys are exchanged
    /// with each person's device, never with verigate's credentials up front).
    fn has_probe(&self) -> bool {
        false
    }

    /// A normalised path outside the flow prefix where the provider's own servers post
    /// (ifree's registration callback); never a gated route.
    fn callback_path(&self) -> Option<&str> {
        None
    }

    /// Answer a post to [`ProviderFlow::callback_path`].
    async fn callback(
        &self,
        _live: &Live,
        _store: &dyn Store,
        _session: &mut Session,
    ) -> pingora::Result<Reply> {
        Ok(Reply::problem(
            &crate::answers::Problem::new(crate::answers::Refusal::NoRoute),
            false,
        ))
    }

    /// Answer `{flow_prefix}/{id}/{endpoint}` (`endpoint` without a slash: `start`,
    /// `return`, ...), or None when this provider has no such endpoint for `method`.
    async fn endpoint(
        &self,
        live: &Live,
        store: &dyn Store,
        session: &mut Session,
        method: &http::Method,
        endpoint: &str,
    ) -> Option<pingora::Result<Reply>>;
}

/// Why a provider call failed, in terms the gate maps to an HTTP answer and a metric reason.
/// Clone: every waiter on one shared token fetch gets the same failure.
#[derive(Debug, Clone, thiserror::Error)]
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
