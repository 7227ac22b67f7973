//! Sessions ended by logout, on every instance: each instance keeps the revoked ids in memory
//! (a verified request checks a set, never the store) and polls the store for revocations
//! other instances recorded, so a logged-out cookie stops opening gated routes everywhere
//! within a poll interval.

use crate::clock::unix_now;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

/// How often an instance asks the store for new revocations.
pub const POLL: Duration = Duration::from_millis(250);
/// How far back each poll looks again, for clocks of instances that disagree a little.
const OVERLAP_MS: i64 = 5_000;

#[derive(Default)]
pub struct Revoked {
    /// Revoked session id -> when the session would have expired (UNIX seconds).
    ids: RwLock<HashMap<String, i64>>,
    /// True while `ids` is empty: the common request pays one atomic load.
    empty: AtomicBool,
    /// The newest revocation seen (UNIX ms of the store's record).
    cursor: AtomicI64,
}

impl Revoked {
    pub fn new() -> Self {
        Revoked {
            empty: AtomicBool::new(true),
            ..Default::default()
        }
    }

    /// Whether session `id` was revoked (an empty id, a session opened without one, never is).
    pub fn contains(&self, id: &str) -> bool {
        if self.empty.load(Ordering::Acquire) || id.is_empty() {
            return false;
        }
        self.ids.read().map(|m| m.contains_key(id)).unwrap_or(true)
    }

    pub fn insert(&self, id: &str, until: i64) {
        if let Ok(mut m) = self.ids.write() {
            m.insert(id.to_string(), until);
            self.empty.store(false, Ordering::Release);
        }
    }

    fn prune(&self, now: i64) {
        if let Ok(mut m) = self.ids.write() {
            m.retain(|_, until| *until > now);
            self.empty.store(m.is_empty(), Ordering::Release);
        }
    }

    /// Take in the revocations the store recorded since the last poll.
    pub async fn refresh(&self, store: &dyn Store) -> Result<usize, crate::store::StoreError> {
        let since = self
            .cursor
            .load(Ordering::Acquire)
            .saturating_sub(OVERLAP_MS);
        let new = store.revocations(since.max(0)).await?;
        let n = new.len();
        for r in &new {
            self.insert(&r.id, r.until);
        }
        if let Some(last) = new.iter().map(|r| r.at_ms).max() {
            self.cursor.fetch_max(last, Ordering::AcqRel);
        }
        self.prune(unix_now());
        Ok(n)
    }
}

/// The background task that keeps [`Revoked`] current.
pub struct Poller {
    pub revoked: std::sync::Arc<Revoked>,
    pub store: std::sync::Arc<dyn Store>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Poller {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut failing = false;
        loop {
            match self.revoked.refresh(self.store.as_ref()).await {
                Ok(_) => failing = false,
                Err(e) => {
                    // Logged once per outage, not four times a second.
                    if !failing {
                        tracing::warn!(error = %e, "cannot read session revocations from the store");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
