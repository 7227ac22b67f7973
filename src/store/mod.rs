//! What verigate remembers between requests: accepted provider results (replay guard) and
//! one-account-per-person reservations. One trait; backends live beside it.

pub mod memory;

use async_trait::async_trait;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// The outcome of reserving a person's account on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// This request holds the reservation; commit on success, release otherwise.
    Reserved,
    /// The person's signup on this route already succeeded.
    Taken,
    /// Another request of the same person is in flight.
    InProgress,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Record `key` as used; true the first time, false on every later call within `ttl`.
    async fn claim_once(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
    /// Reserve `(route, person)` before the request goes upstream. A reservation not
    /// committed or released within `ttl` expires (a crash mid-request).
    async fn reserve_account(
        &self,
        route: &str,
        person: &str,
        ttl: Duration,
    ) -> Result<Reservation, StoreError>;
    async fn commit_account(&self, route: &str, person: &str) -> Result<(), StoreError>;
    async fn release_account(&self, route: &str, person: &str) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
}
