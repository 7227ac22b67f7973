//! In-process store: correct for one instance, forgotten on restart.

use super::{Reservation, Store, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
enum Account {
    Reserved(Instant),
    Done,
}

#[derive(Default)]
pub struct MemoryStore {
    used: Mutex<HashMap<String, Instant>>,
    accounts: Mutex<HashMap<(String, String), Account>>,
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
        if used.len() > 10_000 {
            used.retain(|_, until| *until > now);
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
        person: &str,
        ttl: Duration,
    ) -> Result<Reservation, StoreError> {
        let now = Instant::now();
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        let key = (route.to_string(), person.to_string());
        match acc.get(&key) {
            Some(Account::Done) => Ok(Reservation::Taken),
            Some(Account::Reserved(until)) if *until > now => Ok(Reservation::InProgress),
            _ => {
                acc.insert(key, Account::Reserved(now + ttl));
                Ok(Reservation::Reserved)
            }
        }
    }

    async fn commit_account(&self, route: &str, person: &str) -> Result<(), StoreError> {
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        acc.insert((route.to_string(), person.to_string()), Account::Done);
        Ok(())
    }

    async fn release_account(&self, route: &str, person: &str) -> Result<(), StoreError> {
        let mut acc = self.accounts.lock().map_err(poisoned)?;
        let key = (route.to_string(), person.to_string());
        if matches!(acc.get(&key), Some(Account::Reserved(_))) {
            acc.remove(&key);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claim_once_then_refuse() {
        let s = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        assert!(s.claim_once("a", ttl).await.unwrap());
        assert!(!s.claim_once("a", ttl).await.unwrap());
        assert!(s.claim_once("b", ttl).await.unwrap());
    }

    #[tokio::test]
    async fn account_lifecycle() {
        let s = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(
            s.reserve_account("r", "p", ttl).await.unwrap(),
            Reservation::Reserved
        );
        assert_eq!(
            s.reserve_account("r", "p", ttl).await.unwrap(),
            Reservation::InProgress
        );
        s.release_account("r", "p").await.unwrap();
        assert_eq!(
            s.reserve_account("r", "p", ttl).await.unwrap(),
            Reservation::Reserved
        );
        s.commit_account("r", "p").await.unwrap();
        assert_eq!(
            s.reserve_account("r", "p", ttl).await.unwrap(),
            Reservation::Taken
        );
        s.release_account("r", "p").await.unwrap();
        assert_eq!(
            s.reserve_account("r", "p", ttl).await.unwrap(),
            Reservation::Taken
        );
        assert_eq!(
            s.reserve_account("other", "p", ttl).await.unwrap(),
            Reservation::Reserved
        );
    }

    #[tokio::test]
    async fn crashed_reservation_expires() {
        let s = MemoryStore::new();
        assert_eq!(
            s.reserve_account("r", "p", Duration::from_millis(1))
                .await
                .unwrap(),
            Reservation::Reserved
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            s.reserve_account("r", "p", Duration::from_secs(1))
                .await
                .unwrap(),
            Reservation::Reserved
        );
    }
}
