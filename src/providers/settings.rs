//! The identity providers' settings: one file per provider holds its YAML shape, its runtime
//! values and their check; this file is the config's one list of them.

use crate::config::ctx::Ctx;
use crate::identity::ProviderId;
use crate::providers::iamport::settings::{self as iamport, FileIamport, IamportConfig};
use crate::providers::ifree::settings::{self as ifree, FileIfree, IfreeConfig};
use crate::providers::portone::settings::{self as portone, FilePortone, PortoneConfig};
use crate::providers::tomo::settings::{self as tomo, FileTomo, TomoConfig};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProviders {
    #[serde(default)]
    pub iamport: Option<FileIamport>,
    #[serde(default)]
    pub tomo: Option<FileTomo>,
    #[serde(default)]
    pub ifree: Option<FileIfree>,
    #[serde(default)]
    pub portone: Option<FilePortone>,
}

impl FileProviders {
    /// Whether the file has a section for `id` (valid or not).
    pub fn declared(&self, id: ProviderId) -> bool {
        match id {
            ProviderId::Iamport => self.iamport.is_some(),
            ProviderId::Tomo => self.tomo.is_some(),
            ProviderId::Ifree => self.ifree.is_some(),
            ProviderId::Portone => self.portone.is_some(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Providers {
    pub iamport: Option<IamportConfig>,
    pub tomo: Option<TomoConfig>,
    pub ifree: Option<IfreeConfig>,
    pub portone: Option<PortoneConfig>,
}

impl Providers {
    /// Whether `id` has settings. Matches every provider, so a new one cannot be forgotten.
    pub fn configured(&self, id: ProviderId) -> bool {
        self.base_url(id).is_some()
    }

    /// The API base URL of a configured provider.
    pub fn base_url(&self, id: ProviderId) -> Option<&str> {
        match id {
            ProviderId::Iamport => self.iamport.as_ref().map(|c| c.base_url.as_str()),
            ProviderId::Tomo => self.tomo.as_ref().map(|c| c.base_url.as_str()),
            ProviderId::Ifree => self.ifree.as_ref().map(|c| c.base_url.as_str()),
            ProviderId::Portone => self.portone.as_ref().map(|c| c.base_url.as_str()),
        }
    }
}

/// `providers`, checked: each provider's own check, then the warnings they share.
pub(crate) fn validate(ctx: &mut Ctx, p: &FileProviders, flow_prefix: &str) -> Providers {
    let providers = Providers {
        iamport: p.iamport.as_ref().and_then(|c| iamport::validate(ctx, c)),
        tomo: p.tomo.as_ref().and_then(|c| tomo::validate(ctx, c)),
        ifree: p
            .ifree
            .as_ref()
            .and_then(|c| ifree::validate(ctx, c, flow_prefix)),
        portone: p.portone.as_ref().and_then(|c| portone::validate(ctx, c)),
    };
    sandbox_hosts(ctx, &providers);
    providers
}

/// Providers' own sandbox or test hosts: valid in a config, but what they verify is not real.
/// (The providers' public material names no separate test host for Iamport, PortOne V2 or
/// ifree.)
const SANDBOX_HOSTS: &[(&str, &str)] = &[(
    "test.tomopayment.com",
    "TomoIDV's sandbox host: its verifications are test data, not people (production: https://api.tomopayment.com)",
)];

/// A warning for every provider `base_url` on a known sandbox host.
fn sandbox_hosts(ctx: &mut Ctx, p: &Providers) {
    for id in ProviderId::ALL {
        let (provider, url) = (id.as_str(), p.base_url(id));
        let host = url.and_then(|u| u.parse::<http::Uri>().ok()).and_then(|u| {
            u.host()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        });
        let Some(host) = host else { continue };
        if let Some((_, what)) = SANDBOX_HOSTS.iter().find(|(h, _)| *h == host) {
            ctx.warn(
                format!("providers.{provider}.base_url"),
                format!("`{}` is {what}", url.unwrap_or_default()),
            );
        }
    }
}
