//! The one place that knows which providers exist: it builds each configured provider's flow
//! from its settings (keeping an unchanged one across a reload, with its cached token).

use crate::config::RuntimeConfig;
use crate::identity::ProviderId;
use crate::live::{Live, ProviderFlow};
use crate::providers::settings::Providers;
use crate::providers::ProviderError;
use crate::providers::{iamport, ifree, portone, tomo};
use std::sync::Arc;

/// The flow of provider `id`, if it has settings (a new provider is one arm here).
fn build(id: ProviderId, p: &Providers) -> Result<Option<Arc<dyn ProviderFlow>>, ProviderError> {
    fn wrap<F: ProviderFlow + 'static>(
        f: Result<F, ProviderError>,
    ) -> Result<Arc<dyn ProviderFlow>, ProviderError> {
        f.map(|f| Arc::new(f) as Arc<dyn ProviderFlow>)
    }
    Ok(match id {
        ProviderId::Iamport => p
            .iamport
            .clone()
            .map(|c| wrap(iamport::flow::Flow::new(c)))
            .transpose()?,
        ProviderId::Portone => p
            .portone
            .clone()
            .map(|c| wrap(portone::flow::Flow::new(c)))
            .transpose()?,
        ProviderId::Tomo => p
            .tomo
            .clone()
            .map(|c| wrap(tomo::flow::Flow::new(c)))
            .transpose()?,
        ProviderId::Ifree => p
            .ifree
            .clone()
            .map(|c| wrap(ifree::flow::Flow::new(c)))
            .transpose()?,
    })
}

/// Every configured provider's flow, in [`ProviderId::ALL`] order; a flow of `old` built from
/// the same settings is kept.
pub fn flows(
    p: &Providers,
    old: Option<&Live>,
) -> Result<Vec<Arc<dyn ProviderFlow>>, ProviderError> {
    let mut out = Vec::new();
    for id in ProviderId::ALL {
        match old.and_then(|o| o.flow(id)).filter(|f| f.built_from(p)) {
            Some(kept) => out.push(kept.clone()),
            None => out.extend(build(id, p)?),
        }
    }
    Ok(out)
}

/// A config made live: its providers' flows built.
pub fn live(cfg: RuntimeConfig) -> Result<Live, ProviderError> {
    let flows = flows(&cfg.providers, None)?;
    Ok(Live::new(cfg, flows))
}

/// The config after `old`, keeping the flows whose settings did not change.
pub fn succeed(old: &Live, cfg: RuntimeConfig) -> Result<Live, ProviderError> {
    let flows = flows(&cfg.providers, Some(old))?;
    Ok(Live::succeed(old, cfg, flows))
}
