//! Rate limits on what costs a provider call or fills the store for everyone: starting a
//! verification (per client and per provider) and ifree key exchanges (per client and
//! overall). Token buckets: `burst` at once, refilled at `per_minute`. Shared by every
//! instance when the store is Redis ([`Store::take_token`]); counted in this process
//! otherwise, and while Redis cannot be reached (a limit must not take verification down).
//!
//! Clients are IPv4 addresses and IPv6 /64 networks (as the kept-post quota counts them),
//! named in the buckets only by a keyed hash: an address is personal data.

pub mod settings;

use crate::store::{Store, Token};
use settings::Bucket;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use settings::Limits;

/// A limit that said no: which one (the metric's `what`) and when to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub what: &'static str,
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_millis().div_ceil(1000).max(1) as u64
    }
}

/// A bucket counted in this process: tokens left at an instant.
struct Local {
    tokens: f64,
    at: Instant,
}

/// The buckets counted in this process (one per gate; kept across reloads).
pub struct Limiter {
    local: moka::sync::Cache<String, Arc<Mutex<Local>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            local: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

/// The client as the limits count it: an IPv4 address or an IPv6 /64, keyed-hashed.
fn client_key(hash_key: &[u8; 32], client: Option<IpAddr>) -> String {
    let c = match client {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => {
            let net = u128::from(a) & (u128::MAX << 64);
            std::net::Ipv6Addr::from(net).to_string()
        }
        None => "none".to_string(),
    };
    crate::session::keyed_hash(hash_key, "rate-limit-client", &c)
}

impl Limiter {
    /// May `client` start a verification with `provider` now?
    pub async fn start(
        &self,
        store: &dyn Store,
        limits: &Limits,
        hash_key: &[u8; 32],
        client: Option<IpAddr>,
        provider: &str,
    ) -> Result<(), Limited> {
        let c = client_key(hash_key, client);
        self.take(
            store,
            &format!("start:client:{c}"),
            limits.start_per_client,
            "start_per_client",
        )
        .await?;
        self.take(
            store,
            &format!("start:provider:{provider}"),
            limits.start_per_provider,
            "start_per_provider",
        )
        .await
    }

    /// May `client` post an ifree key exchange now?
    pub async fn key_exchange(
        &self,
        store: &dyn Store,
        limits: &Limits,
        hash_key: &[u8; 32],
        client: Option<IpAddr>,
    ) -> Result<(), Limited> {
        let c = client_key(hash_key, client);
        self.take(
            store,
            &format!("ifree-exchange:client:{c}"),
            limits.exchange_per_client,
            "ifree_exchange_per_client",
        )
        .await?;
        self.take(
            store,
            "ifree-exchange:all",
            limits.exchange_overall,
            "ifree_exchange_overall",
        )
        .await
    }

    async fn take(
        &self,
        store: &dyn Store,
        key: &str,
        b: Bucket,
        what: &'static str,
    ) -> Result<(), Limited> {
        let refused = |retry_after| {
            crate::metrics::rate_limited(what);
            Err(Limited { what, retry_after })
        };
        match store.take_token(key, b.burst, b.per_minute).await {
            Ok(Token::Taken) => return Ok(()),
            Ok(Token::Refused(wait)) => return refused(wait),
            Ok(Token::Local) => {}
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable for a rate limit; counting on this instance")
            }
        }
        match self.take_local(key, b, Instant::now()) {
            None => Ok(()),
            Some(wait) => refused(wait),
        }
    }

    /// Take a token from this process's bucket `key` at `now`: `None`, or how long until one.
    fn take_local(&self, key: &str, b: Bucket, now: Instant) -> Option<Duration> {
        let cell = self.local.get_with(key.to_string(), || {
            Arc::new(Mutex::new(Local {
                tokens: f64::from(b.burst),
                at: now,
            }))
        });
        let mut l = cell.lock().unwrap_or_else(|p| p.into_inner());
        let per_sec = f64::from(b.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(l.at).as_secs_f64();
        l.tokens = (l.tokens + elapsed * per_sec).min(f64::from(b.burst));
        l.at = now.max(l.at);
        if l.tokens >= 1.0 {
            l.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - l.tokens) / per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let l = Limiter::default();
        let b = Bucket {
            burst: 3,
            per_minute: 60,
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.take_local("k", b, t0), None);
        }
        let wait = l.take_local("k", b, t0).expect("empty");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        // One second later, one token (and only one).
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.take_local("k", b, t1), None);
        assert!(l.take_local("k", b, t1).is_some());
        // Another key has its own bucket.
        assert_eq!(l.take_local("other", b, t1), None);
        // Never more than the burst, however long it rested.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.take_local("k", b, t2), None);
        }
        assert!(l.take_local("k", b, t2).is_some());
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let k = [7u8; 32];
        let a = client_key(&k, "2001:db8:1:2:aaaa::1".parse().ok());
        let b = client_key(&k, "2001:db8:1:2:bbbb::9".parse().ok());
        let c = client_key(&k, "2001:db8:1:3::1".parse().ok());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(
            client_key(&k, "192.0.2.1".parse().ok()),
            client_key(&k, "192.0.2.2".parse().ok())
        );
    }
}
