//! What every request reads: the validated config with the provider clients built from it and
//! the cache of opened sessions, swapped whole on reload. Below the gate and the flows.

pub mod kept;
pub mod probe;
pub mod provider;
pub mod refresh;
pub mod revoked;
pub mod sessions;

use crate::clock::unix_now;
use crate::config::RuntimeConfig;
use crate::identity::ProviderId;
use provider::ProviderFlow;
use std::sync::Arc;
use std::time::Duration;

/// A config together with the provider flows built from it; swapped whole on reload.
pub struct Live {
    pub cfg: RuntimeConfig,
    /// The configured providers' flows, in [`ProviderId::ALL`] order.
    flows: Vec<Arc<dyn ProviderFlow>>,
    /// Assertion keys rotated out by a reload, published until (UNIX seconds) their last
    /// tokens have expired.
    pub retired_keys: Vec<(crate::assertion::PublicJwk, i64)>,
    /// Opened session cookies with their precomputed header values, so that a verified
    /// request costs a lookup, not a decryption. Per config: a reload (new keys) starts empty.
    sessions: sessions::SessionCache,
    /// Per-route metric handles for the common path (no label lookups per request).
    route_metrics: Vec<crate::metrics::RouteMetrics>,
    /// One pool per `cfg.upstreams` entry, same order.
    pools: Vec<Arc<crate::upstreams::Pool>>,
}

impl Live {
    /// A config and the flows built from it (`providers::registry` builds them).
    pub fn new(cfg: RuntimeConfig, flows: Vec<Arc<dyn ProviderFlow>>) -> Self {
        Live::build(cfg, flows, None)
    }

    /// The next config after `old`: a replaced assertion key stays published a while.
    pub fn succeed(old: &Live, cfg: RuntimeConfig, flows: Vec<Arc<dyn ProviderFlow>>) -> Self {
        Live::build(cfg, flows, Some(old))
    }

    fn build(cfg: RuntimeConfig, flows: Vec<Arc<dyn ProviderFlow>>, old: Option<&Live>) -> Self {
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
        // An upstream whose addresses did not change keeps its resolved set and its health;
        // a new one is resolved before it serves (bounded by resolver.timeout a name).
        let pools = cfg
            .upstreams
            .iter()
            .map(|spec| {
                let pool = crate::upstreams::Pool::new(spec.clone());
                let before = old.and_then(|o| {
                    o.pools
                        .iter()
                        .find(|p| p.spec.name == spec.name && p.spec.addrs == spec.addrs)
                });
                match before {
                    Some(b) => pool.inherit(b),
                    None if pool.has_names() => pool.refresh(&cfg.resolver),
                    None => {}
                }
                Arc::new(pool)
            })
            .collect();
        Live {
            cfg,
            flows,
            retired_keys,
            sessions: sessions::SessionCache::new(100_000, Duration::from_secs(300)),
            route_metrics,
            pools,
        }
    }

    /// The pool of upstream `idx` (`cfg.upstreams`).
    pub fn pool(&self, idx: usize) -> Option<&Arc<crate::upstreams::Pool>> {
        self.pools.get(idx)
    }

    /// Every upstream's pool.
    pub fn pools(&self) -> &[Arc<crate::upstreams::Pool>] {
        &self.pools
    }

    /// The flow of a configured provider.
    pub fn flow(&self, id: ProviderId) -> Option<&Arc<dyn ProviderFlow>> {
        self.flows.iter().find(|f| f.id() == id)
    }

    /// Every configured provider's flow, in the order the choice page offers them.
    pub fn flows(&self) -> &[Arc<dyn ProviderFlow>] {
        &self.flows
    }

    /// The verified person behind a session cookie, or None (missing, tampered, expired,
    /// unknown key). Opened once per cookie value, then served from memory until it expires.
    pub fn verified(
        &self,
        cookie: &(impl AsRef<[u8]> + ?Sized),
        now: i64,
    ) -> Option<Arc<sessions::Verified>> {
        self.sessions.get(cookie, now, |c| {
            let claims = self.cfg.session.keys.open_session(c, now).ok()?;
            let id = session_id(&self.cfg.session.hash_key, c);
            // Decided under this config (a reload opens sessions afresh), never when issued.
            let has_ci = claims.provider == ProviderId::Tomo
                && self
                    .cfg
                    .providers
                    .tomo
                    .as_ref()
                    .is_none_or(|t| t.has_ci(&claims.countries));
            let persons = revoked::person_ids(
                &self.cfg.session.hash_key,
                &claims.ci_hash,
                &claims.unique_in_site,
            );
            let mut v = sessions::Verified::new(claims).revocable(id);
            v.person_ids = persons;
            v.has_ci = has_ci;
            Some(v)
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

/// A session's id for revocation: a keyed hash of its sealed cookie (each cookie verigate seals
/// is unique), so the store never holds a cookie.
pub fn session_id(hash_key: &[u8; 32], cookie: &str) -> String {
    crate::session::keyed_hash(hash_key, "session", cookie)
}

/// An age status's id for revocation (logout): a keyed hash of its sealed cookie, as
/// [`session_id`] for sessions, in a domain of its own.
pub fn age_status_id(hash_key: &[u8; 32], cookie: &str) -> String {
    crate::session::keyed_hash(hash_key, "age-status", cookie)
}
