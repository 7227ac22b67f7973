//! The identity providers' settings: each provider's file here (`iamport.rs`, ...) holds its
//! section's YAML shape, its runtime values and their check; this file puts them together as the
//! config's `providers`. (Kept under `config`, below the flows that use them: a provider's
//! client, flow and sandbox are `providers::<name>`.)

use crate::config::ctx::Ctx;
use crate::identity::{each_provider, ProviderId};

pub mod iamport;
pub mod ifree;
pub mod portone;
pub mod tomo;
use serde::Deserialize;

/// The config's `providers` and its check, one part per provider of the list
/// (`identity::each_provider!`): each provider's `settings.rs` gives its section's shape (`File`), its
/// runtime values (`Settings`, with its `base_url`) and `validate`, their check.
macro_rules! settings_of_each {
    ($($variant:ident $name:ident $facts:tt,)*) => {
        /// `providers`: an optional section per provider.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileProviders {
            $(
                #[serde(default)]
                pub $name: Option<crate::config::providers::$name::File>,
            )*
        }

        impl FileProviders {
            /// Whether the file has a section for `id` (valid or not).
            pub fn declared(&self, id: ProviderId) -> bool {
                match id {
                    $(ProviderId::$variant => self.$name.is_some(),)*
                }
            }
        }

        /// The configured providers' checked settings.
        #[derive(Debug, Clone, Default)]
        pub struct Providers {
            $(pub $name: Option<crate::config::providers::$name::Settings>,)*
        }

        impl Providers {
            /// The API base URL of a configured provider.
            pub fn base_url(&self, id: ProviderId) -> Option<&str> {
                match id {
                    $(ProviderId::$variant => self.$name.as_ref().map(|c| c.base_url.as_str()),)*
                }
            }
        }

        /// Each provider's own check of its section.
        fn check_each(ctx: &mut Ctx, p: &FileProviders, flow_prefix: &str) -> Providers {
            Providers {
                $(
                    $name: p.$name.as_ref().and_then(|c| {
                        crate::config::providers::$name::validate(ctx, c, flow_prefix)
                    }),
                )*
            }
        }
    };
}
each_provider!(settings_of_each);

impl Providers {
    /// Whether `id` has settings.
    pub fn configured(&self, id: ProviderId) -> bool {
        self.base_url(id).is_some()
    }
}

/// `providers`, checked: each provider's own check, then the warnings they share.
pub(crate) fn validate(ctx: &mut Ctx, p: &FileProviders, flow_prefix: &str) -> Providers {
    let providers = check_each(ctx, p, flow_prefix);
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
