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
/// The prefix of a person's revocation id in the store (a session's id never has it).
const PERSON: &str = "p.";

/// The ids under which a person's sessions are revoked (`records::forget`): one per thing the
/// app may name the person by (the keyed CI hash, the per-site identifier), each a keyed hash
/// of its own, so the store's revocation list never holds the hash the records were kept under.
pub fn person_ids(hash_key: &[u8; 32], ci_hash: &str, unique_in_site: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(2);
    if !ci_hash.is_empty() {
        out.push(person_id(hash_key, "ci", ci_hash));
    }
    if !unique_in_site.is_empty() {
        out.push(person_id(hash_key, "uis", unique_in_site));
    }
    out
}

/// One of [`person_ids`]: `kind` is `ci` or `uis`.
pub fn person_id(hash_key: &[u8; 32], kind: &str, value: &str) -> String {
    format!(
        "{PERSON}{}",
        crate::session::keyed_hash(hash_key, &format!("revoke-person/{kind}"), value)
    )
}

/// How far back each poll looks again, for clocks of instances that disagree a little.
const OVERLAP_MS: i64 = 5_000;

#[derive(Default)]
pub struct Revoked {
    /// Revoked session id -> when the session would have expired (UNIX seconds).
    ids: RwLock<HashMap<String, i64>>,
    /// Revoked person id -> (when it was revoked, UNIX ms; until when it matters, UNIX s):
    /// every session of that person issued at or before the revocation is refused.
    persons: RwLock<HashMap<String, (i64, i64)>>,
    /// True while `ids` and `persons` are empty: the common request pays one atomic load.
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

    /// Whether anything is revoked at all (one atomic load): lets a caller skip computing an
    /// id to look up.
    pub fn any(&self) -> bool {
        !self.empty.load(Ordering::Acquire)
    }

    /// Whether session `id` was revoked (an empty id, a session opened without one, never is).
    pub fn contains(&self, id: &str) -> bool {
        if self.empty.load(Ordering::Acquire) || id.is_empty() {
            return false;
        }
        self.ids.read().map(|m| m.contains_key(id)).unwrap_or(true)
    }

    /// Whether `v` was revoked, itself (a logout) or with its person (an erasure). With
    /// nothing revoked, nothing of the session is read (it may be far from any cache).
    pub fn session_revoked(&self, v: &super::sessions::Verified) -> bool {
        if self.empty.load(Ordering::Acquire) {
            return false;
        }
        self.contains(&v.revocation_id) || self.person_revoked(&v.person_ids, v.claims.issued_at)
    }

    /// Whether a session issued at `issued_at` (UNIX s) to a person named by one of
    /// `person_ids` was revoked with its person (an erasure).
    pub fn person_revoked(&self, person_ids: &[String], issued_at: i64) -> bool {
        if self.empty.load(Ordering::Acquire) || person_ids.is_empty() {
            return false;
        }
        let Ok(m) = self.persons.read() else {
            return true;
        };
        person_ids.iter().any(|p| {
            m.get(p)
                .is_some_and(|(at_ms, _)| issued_at.saturating_mul(1000) <= *at_ms)
        })
    }

    pub fn insert(&self, id: &str, until: i64) {
        self.insert_at(id, until, crate::clock::unix_now().saturating_mul(1000));
    }

    /// Record a revocation made at `at_ms` (a person's revocation needs its time).
    pub fn insert_at(&self, id: &str, until: i64, at_ms: i64) {
        if id.starts_with(PERSON) {
            if let Ok(mut m) = self.persons.write() {
                let e = m.entry(id.to_string()).or_insert((at_ms, until));
                *e = (e.0.max(at_ms), e.1.max(until));
                self.empty.store(false, Ordering::Release);
            }
        } else if let Ok(mut m) = self.ids.write() {
            m.insert(id.to_string(), until);
            self.empty.store(false, Ordering::Release);
        }
    }

    fn prune(&self, now: i64) {
        let (Ok(mut ids), Ok(mut persons)) = (self.ids.write(), self.persons.write()) else {
            return;
        };
        ids.retain(|_, until| *until > now);
        persons.retain(|_, (_, until)| *until > now);
        self.empty
            .store(ids.is_empty() && persons.is_empty(), Ordering::Release);
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
            self.insert_at(&r.id, r.until, r.at_ms);
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
