//! The one interface every provider's flow offers: the flow endpoints, the choice page, the
//! gate and reload reach a provider only through it, so none of them names a provider.
//! Implemented by each provider's `src/providers/<name>/flow.rs`; built by
//! `providers::registry`.

use crate::answers::Reply;
use crate::identity::ProviderId;
use crate::live::Live;
use crate::providers::settings::Providers;
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
    async fn probe(&self) -> Option<Result<(), crate::providers::ProviderError>> {
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
