//! What every request reads: the validated config with the provider clients built from it and
//! the cache of opened sessions, swapped whole on reload. Below the gate and the flows.

pub mod sessions;

use crate::clock::unix_now;
use crate::config::RuntimeConfig;
use crate::providers::iamport::IamportClient;
use std::sync::Arc;
use std::time::Duration;

/// A config together with the provider clients built from it; swapped whole on reload.
pub struct Live {
    pub cfg: RuntimeConfig,
    pub iamport: Option<Arc<IamportClient>>,
    pub tomo: Option<Arc<crate::providers::tomo::TomoClient>>,
    pub ifree: Option<Arc<crate::providers::ifree::IfreeClient>>,
    pub portone: Option<Arc<crate::providers::portone::PortoneClient>>,
    /// Assertion keys rotated out by a reload, published until (UNIX seconds) their last
    /// tokens have expired.
    pub retired_keys: Vec<(crate::assertion::PublicJwk, i64)>,
    /// Opened session cookies with their precomputed header values, so that a verified
    /// request costs a lookup, not a decryption. Per config: a reload (new keys) starts empty.
    sessions: sessions::SessionCache,
    /// Per-route metric handles for the common path (no label lookups per request).
    route_metrics: Vec<crate::metrics::RouteMetrics>,
}

/// A provider client kept across a reload when its settings did not change (with its cached
/// token), else built anew.
fn client<C, F>(
    new: Option<&C::Config>,
    old: Option<&Arc<C>>,
    build: F,
) -> std::result::Result<Option<Arc<C>>, crate::providers::ProviderError>
where
    C: crate::providers::HasConfig,
    F: FnOnce(C::Config) -> std::result::Result<Arc<C>, crate::providers::ProviderError>,
{
    match (new, old) {
        (Some(n), Some(o)) if o.settings() == n => Ok(Some(o.clone())),
        (Some(n), _) => build(n.clone()).map(Some),
        (None, _) => Ok(None),
    }
}

impl Live {
    pub fn new(cfg: RuntimeConfig) -> std::result::Result<Self, crate::providers::ProviderError> {
        Live::build(cfg, None)
    }

    /// The next config after `old`: provider clients whose settings did not change are kept
    /// (with their cached tokens), and a replaced assertion key stays published a while.
    pub fn succeed(
        old: &Live,
        cfg: RuntimeConfig,
    ) -> std::result::Result<Self, crate::providers::ProviderError> {
        Live::build(cfg, Some(old))
    }

    fn build(
        cfg: RuntimeConfig,
        old: Option<&Live>,
    ) -> std::result::Result<Self, crate::providers::ProviderError> {
        use crate::providers::{ifree::IfreeClient, portone::PortoneClient, tomo::TomoClient};
        let p = &cfg.providers;
        let iamport = client(
            p.iamport.as_ref(),
            old.and_then(|o| o.iamport.as_ref()),
            IamportClient::new,
        )?;
        let tomo = client(
            p.tomo.as_ref(),
            old.and_then(|o| o.tomo.as_ref()),
            TomoClient::new,
        )?;
        let ifree = client(
            p.ifree.as_ref(),
            old.and_then(|o| o.ifree.as_ref()),
            IfreeClient::new,
        )?;
        let portone = client(
            p.portone.as_ref(),
            old.and_then(|o| o.portone.as_ref()),
            PortoneClient::new,
        )?;
        let now = unix_now();
        let mut retired_keys: Vec<_> = old
            .map(|o| {
                o.retired_keys
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(a) = old.and_then(|o| o.cfg.assertion.as_ref()) {
            let still = cfg
                .assertion
                .as_ref()
                .is_some_and(|n| n.published.iter().any(|p| p.kid == a.signer.public().kid));
            if !still {
                retired_keys.push((a.signer.public().clone(), now + a.signer.ttl_secs + 60));
            }
        }
        let route_metrics = cfg
            .routes
            .routes()
            .iter()
            .map(|r| crate::metrics::RouteMetrics::new(&r.name))
            .collect();
        Ok(Live {
            cfg,
            iamport,
            tomo,
            ifree,
            portone,
            retired_keys,
            sessions: sessions::SessionCache::new(100_000, Duration::from_secs(300)),
            route_metrics,
        })
    }

    /// The verified person behind a session cookie, or None (missing, tampered, expired,
    /// unknown key). Opened once per cookie value, then served from memory until it expires.
    pub fn verified(&self, cookie: &str, now: i64) -> Option<Arc<sessions::Verified>> {
        self.sessions.get(cookie, now, |c| {
            let claims = self.cfg.session.keys.open_session(c, now).ok()?;
            Some(sessions::Verified::new(claims, &self.cfg.identity))
        })
    }

    pub fn route_metrics(&self, idx: usize) -> Option<&crate::metrics::RouteMetrics> {
        self.route_metrics.get(idx)
    }

    /// Every public key an upstream may meet in a live assertion.
    pub fn jwks(&self) -> serde_json::Value {
        let now = unix_now();
        let mut keys: Vec<serde_json::Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let current = self.cfg.assertion.iter().flat_map(|a| a.published.iter());
        let retired = self
            .retired_keys
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(k, _)| k);
        for k in current.chain(retired) {
            if seen.insert(k.kid.clone()) {
                keys.push(k.to_json());
            }
        }
        serde_json::json!({ "keys": keys })
    }
}

/// The value of cookie `name` in the request's Cookie header(s), if present (borrowed).
pub fn read_cookie<'a>(req: &'a pingora::http::RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}
