//! In-process store: correct for one instance, forgotten on restart.

use super::{
    now_ms, ConsentRecord, KeyExchange, Log, MemberRecord, Person, PersonRef, Registration,
    Reservation, Retention, Revocation, Store, StoreError,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum State {
    Reserved(Instant),
    Done,
}

#[derive(Debug, Clone)]
struct Account {
    state: State,
    unique_in_site: String,
    /// The later of its creation and its last use (UNIX ms).
    last_ms: i64,
}

/// A registered member's owner (keyed CI hash, per-site id's hash) and last use (UNIX ms).
#[derive(Debug, Clone, Default)]
struct Owner {
    person: String,
    uis: String,
    last_ms: i64,
}

#[derive(Default)]
pub struct MemoryStore {
    used: Mutex<HashMap<String, Instant>>,
    /// Claims since the last sweep of expired ones.
    since_sweep: std::sync::atomic::AtomicUsize,
    accounts: Mutex<HashMap<(String, String), Account>>,
    /// Registered members, and pending ones (with the instant their key exchange expires).
    members: Mutex<HashMap<String, (MemberRecord, Option<Instant>)>>,
    revoked: Mutex<Vec<Revocation>>,
    /// Kept requests, with the instant each expires.
    kept: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    /// Rejoin markers: id -> (forgotten at, expires at), UNIX ms.
    rejoin: Mutex<HashMap<String, (i64, i64)>>,
    /// Registered members' owners.
    owners: Mutex<HashMap<String, Owner>>,
    /// Audit lines with their time (UNIX ms).
    audit: Mutex<Vec<(i64, String)>>,
    /// Ledger lines with their time (UNIX ms).
    ledger: Mutex<Vec<(i64, String)>>,
    /// Guardian consent records, oldest first.
    consents: Mutex<Vec<ConsentRecord>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory store lock poisoned".into())
}

#[async_trait]
impl Store for MemoryStore {
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut used = self.used.lock().map_err(poisoned)?;
        // Sweep expired claims now and then, not on every call: amortised O(1).
        let n = self
            .since_sweep
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n >= 4096 && n >= used.len() / 2 {
            used.retain(|_, until| *until > now);
            self.since_sweep
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        match used.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                used.insert(key.to_string(), now + ttl);
                Ok(true)
            }
        }
    }

    async fn reserve_account(
        &self,
        route: &str,
        person: Person<'_>,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let now = Instant::now();
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        let key = (route.to_string(), person.ci_hash.to_string());
        match acc.get_mut(&key) {
            Some(a) if matches!(a.state, State::Done) => {
                a.last_ms = now_ms();
                return Ok(Reservation::Taken);
            }
            _ => {}
        }
        match acc.get(&key).map(|a| &a.state) {
            Some(State::Done) => Ok(Reservation::Taken),
            Some(State::Reserved(until)) if *until > now => Ok(Reservation::InProgress),
            _ => {
                acc.insert(
                    key,
                    Account {
                        state: State::Reserved(now + ttl),
                        unique_in_site: person.unique_in_site.to_string(),
                        last_ms: now_ms(),
                    },
                );
                Ok(Reservation::Reserved)
            }
        }
    }

    async fn commit_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        if let Some(a) = acc.get_mut(&(route.to_string(), ci_hash.to_string())) {
            a.state = State::Done;
            a.last_ms = now_ms();
        }
        Ok(())
    }

    async fn release_account(&self, route: &str, ci_hash: &str) -> Result<(), StoreError> {
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        let key = (route.to_string(), ci_hash.to_string());
        if matches!(acc.get(&key).map(|a| &a.state), Some(State::Reserved(_))) {
            acc.remove(&key);
        }
        Ok(())
    }

    async fn forget(&self, who: &PersonRef, route: Option<&str>) -> Result<u64, StoreError> {
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        let before = acc.len();
        acc.retain(|(r, ci), a| {
            route.is_some_and(|want| want != r)
                || match who {
                    PersonRef::CiHash(h) => ci != h,
                    PersonRef::UniqueInSite(u) => &a.unique_in_site != u,
                }
        });
        Ok((before - acc.len()) as u64)
    }

    async fn consent_put(&self, rec: &ConsentRecord) -> Result<(), StoreError> {
        let mut c = self.consents.lock().map_err(poisoned)?;
        if c.iter().any(|r| r.id == rec.id) {
            return Err(StoreError::Unavailable("consent record id exists".into()));
        }
        c.push(rec.clone());
        Ok(())
    }

    async fn consent_get(&self, id: &str) -> Result<Option<ConsentRecord>, StoreError> {
        let c = self.consents.lock().map_err(poisoned)?;
        Ok(c.iter().find(|r| r.id == id).cloned())
    }

    async fn consents_of(&self, child: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let c = self.consents.lock().map_err(poisoned)?;
        let mut of: Vec<ConsentRecord> = c.iter().filter(|r| r.child == child).cloned().collect();
        // Oldest first, as the trait says (kept in the order they came; a stable sort keeps
        // that order among records of one time).
        of.sort_by_key(|r| r.at_ms);
        Ok(of)
    }

    async fn consent_forget(&self, child: &str) -> Result<u64, StoreError> {
        let mut c = self.consents.lock().map_err(poisoned)?;
        let b = c.len();
        c.retain(|r| r.child != child);
        Ok((b - c.len()) as u64)
    }

    async fn forget_members(&self, who: &PersonRef) -> Result<u64, StoreError> {
        let mut owners = self.owners.lock().map_err(poisoned)?;
        let mut members = self.members.lock().map_err(poisoned)?;
        let gone: Vec<String> = owners
            .iter()
            .filter(|(_, o)| match who {
                PersonRef::CiHash(h) => !h.is_empty() && &o.person == h,
                PersonRef::UniqueInSite(u) => !u.is_empty() && &o.uis == u,
            })
            .map(|(m, _)| m.clone())
            .collect();
        for m in &gone {
            owners.remove(m);
            members.remove(m);
        }
        Ok(gone.len() as u64)
    }

    async fn member_used(&self, member: &str, owner: Person<'_>) -> Result<(), StoreError> {
        let members = self.members.lock().map_err(poisoned)?;
        if members
            .get(member)
            .is_some_and(|(r, _)| r.passcode.is_some())
        {
            self.owners.lock().map_err(poisoned)?.insert(
                member.to_string(),
                Owner {
                    person: owner.ci_hash.to_string(),
                    uis: owner.unique_in_site.to_string(),
                    last_ms: now_ms(),
                },
            );
        }
        Ok(())
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let acc = self.accounts.lock().map_err(poisoned)?;
        Ok(acc
            .values()
            .filter(|a| matches!(a.state, State::Done))
            .count() as u64)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn account_persons(&self, unique_in_site: &str) -> Result<Vec<String>, StoreError> {
        let acc = self.accounts.lock().map_err(poisoned)?;
        let mut out: Vec<String> = acc
            .iter()
            .filter(|(_, a)| a.unique_in_site == unique_in_site)
            .map(|((_, ci), _)| ci.clone())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn mark_rejoin(&self, id: &str, at_ms: i64, until_ms: i64) -> Result<(), StoreError> {
        let mut m = self.rejoin.lock().map_err(poisoned)?;
        m.retain(|_, (_, until)| *until > at_ms);
        m.insert(id.to_string(), (at_ms, until_ms));
        Ok(())
    }

    async fn rejoin_since(&self, ids: &[String]) -> Result<Option<i64>, StoreError> {
        let m = self.rejoin.lock().map_err(poisoned)?;
        let now = now_ms();
        Ok(ids
            .iter()
            .filter_map(|id| m.get(id))
            .filter(|(_, until)| *until > now)
            .map(|(at, _)| *at)
            .max())
    }

    async fn log_append(&self, log: Log, at_ms: i64, line: &str) -> Result<(), StoreError> {
        let lines = match log {
            Log::Audit => &self.audit,
            Log::Ledger => &self.ledger,
        };
        lines
            .lock()
            .map_err(poisoned)?
            .push((at_ms, line.to_string()));
        Ok(())
    }

    async fn log_forget(&self, log: Log, person: &str) -> Result<u64, StoreError> {
        let lines = match log {
            Log::Audit => &self.audit,
            Log::Ledger => &self.ledger,
        };
        let needle = super::person_field(person);
        let mut l = lines.lock().map_err(poisoned)?;
        let before = l.len();
        l.retain(|(_, line)| !line.contains(&needle));
        Ok((before - l.len()) as u64)
    }

    async fn log_lines(&self, log: Log, since_ms: i64) -> Result<Vec<String>, StoreError> {
        let lines = match log {
            Log::Audit => &self.audit,
            Log::Ledger => &self.ledger,
        };
        Ok(lines
            .lock()
            .map_err(poisoned)?
            .iter()
            .filter(|(t, _)| *t >= since_ms)
            .map(|(_, l)| l.clone())
            .collect())
    }

    async fn purge(&self, retention: &Retention) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut n = 0;
        let mut count = |before: usize, after: usize| n += (before - after) as u64;
        {
            let mut m = self.rejoin.lock().map_err(poisoned)?;
            let b = m.len();
            m.retain(|_, (_, until)| *until > now);
            count(b, m.len());
        }
        for (log, keep) in [
            (&self.audit, retention.audit),
            (&self.ledger, retention.ledger),
        ] {
            let mut l = log.lock().map_err(poisoned)?;
            let b = l.len();
            l.retain(|(t, _)| *t > now - keep.as_millis() as i64);
            count(b, l.len());
        }
        if let Some(keep) = retention.consents {
            let mut c = self.consents.lock().map_err(poisoned)?;
            let b = c.len();
            c.retain(|r| r.at_ms > now - keep.as_millis() as i64);
            count(b, c.len());
        }
        if let Some(keep) = retention.accounts {
            let mut acc = self.accounts.lock().map_err(poisoned)?;
            let b = acc.len();
            acc.retain(|_, a| {
                !matches!(a.state, State::Done) || a.last_ms > now - keep.as_millis() as i64
            });
            count(b, acc.len());
        }
        if let Some(keep) = retention.ifree_members {
            let mut owners = self.owners.lock().map_err(poisoned)?;
            let mut members = self.members.lock().map_err(poisoned)?;
            let gone: Vec<String> = owners
                .iter()
                .filter(|(_, o)| o.last_ms <= now - keep.as_millis() as i64)
                .map(|(m, _)| m.clone())
                .collect();
            for m in &gone {
                owners.remove(m);
                members.remove(m);
            }
            count(gone.len(), 0);
        }
        Ok(n)
    }

    async fn migrate(&self, _hash_key: &[u8; 32]) -> Result<u64, StoreError> {
        // Nothing outlives the process: nothing was written by an earlier release.
        Ok(0)
    }

    async fn member_key(
        &self,
        member: &str,
        sealed_key: &str,
        ttl: Duration,
        max_pending: u64,
    ) -> Result<KeyExchange, StoreError> {
        let mut m = self.members.lock().map_err(poisoned)?;
        let now = Instant::now();
        if m.get(member).is_some_and(|(r, _)| r.passcode.is_some()) {
            return Ok(KeyExchange::Registered);
        }
        m.retain(|_, (_, until)| until.is_none_or(|u| u > now));
        let pending = m.values().filter(|(_, until)| until.is_some()).count() as u64;
        if !m.contains_key(member) && pending >= max_pending {
            return Ok(KeyExchange::Full);
        }
        let record = MemberRecord {
            key: sealed_key.to_string(),
            passcode: None,
            ubifill: None,
        };
        m.insert(member.to_string(), (record, Some(now + ttl)));
        Ok(KeyExchange::Issued)
    }

    async fn member_register(
        &self,
        member: &str,
        sealed_key: &str,
        sealed_passcode: &str,
        sealed_ubifill: Option<&str>,
        owner: Person<'_>,
    ) -> Result<Registration, StoreError> {
        let mut m = self.members.lock().map_err(poisoned)?;
        let now = Instant::now();
        match m.get_mut(member) {
            Some((r, _)) if r.passcode.is_some() => Ok(Registration::AlreadyRegistered),
            Some((r, until)) if until.is_some_and(|u| u > now) => {
                if r.key != sealed_key {
                    return Ok(Registration::KeyReplaced);
                }
                r.passcode = Some(sealed_passcode.to_string());
                r.ubifill = sealed_ubifill.map(str::to_string);
                *until = None;
                self.owners.lock().map_err(poisoned)?.insert(
                    member.to_string(),
                    Owner {
                        person: owner.ci_hash.to_string(),
                        uis: owner.unique_in_site.to_string(),
                        last_ms: now_ms(),
                    },
                );
                Ok(Registration::Registered)
            }
            _ => Ok(Registration::Unknown),
        }
    }

    async fn member_get(&self, member: &str) -> Result<Option<MemberRecord>, StoreError> {
        let m = self.members.lock().map_err(poisoned)?;
        let now = Instant::now();
        Ok(m.get(member)
            .filter(|(_, until)| until.is_none_or(|u| u > now))
            .map(|(r, _)| r.clone()))
    }

    async fn revoke(&self, id: &str, until: i64) -> Result<(), StoreError> {
        let mut r = self.revoked.lock().map_err(poisoned)?;
        let now = now_ms();
        r.retain(|x| x.until * 1000 > now);
        r.push(Revocation {
            id: id.to_string(),
            until,
            at_ms: now,
        });
        Ok(())
    }

    async fn revocations(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let now = now_ms();
        Ok(self
            .revoked
            .lock()
            .map_err(poisoned)?
            .iter()
            .filter(|x| x.at_ms >= since_ms && x.until * 1000 > now)
            .cloned()
            .collect())
    }

    async fn keep_request(
        &self,
        id: &str,
        sealed: &[u8],
        ttl: Duration,
        max_live: u64,
    ) -> Result<bool, StoreError> {
        let mut kept = self.kept.lock().map_err(poisoned)?;
        let now = Instant::now();
        kept.retain(|_, (_, until)| *until > now);
        if !kept.contains_key(id) && kept.len() as u64 >= max_live {
            return Ok(false);
        }
        kept.insert(id.to_string(), (sealed.to_vec(), now + ttl));
        Ok(true)
    }

    async fn take_request(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut kept = self.kept.lock().map_err(poisoned)?;
        Ok(kept
            .remove(id)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v))
    }
}
