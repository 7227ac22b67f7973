//! Builds each configured provider's flow from its settings (keeping an unchanged one across a
//! reload, with its cached token), for every provider of the list (`identity::each_provider!`).

use crate::config::providers::Providers;
use crate::config::RuntimeConfig;
use crate::identity::{each_provider, ProviderId};
use crate::live::provider::ProviderError;
use crate::live::provider::ProviderFlow;
use crate::live::Live;
use std::sync::Arc;

/// The flow of a provider of the list (`identity::each_provider!`): its `flow.rs`'s `Flow`, built from
/// its settings.
macro_rules! flow_of_each {
    ($($variant:ident $name:ident $facts:tt,)*) => {
        /// The flow of provider `id`, if it has settings.
        fn build(
            id: ProviderId,
            p: &Providers,
        ) -> Result<Option<Arc<dyn ProviderFlow>>, ProviderError> {
            Ok(match id {
                $(ProviderId::$variant => p
                    .$name
                    .clone()
                    .map(|c| wrap(crate::providers::$name::flow::Flow::new(c)))
                    .transpose()?,)*
            })
        }
    };
}
each_provider!(flow_of_each);

fn wrap<F: ProviderFlow + 'static>(
    f: Result<F, ProviderError>,
) -> Result<Arc<dyn ProviderFlow>, ProviderError> {
    f.map(|f| Arc::new(f) as Arc<dyn ProviderFlow>)
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
