//! Provider credentials tried before a shopper needs them: at start, after every reload that
//! builds a provider's flow anew, again with backoff while they fail, and now and then while
//! they work. Reported per provider on `/readyz` and as `verigate_provider_credentials_ok`.
//!
//! The state belongs to one server (tests run several in one process): a [`Board`] keyed by
//! provider, remembering which flow it tried, so a reload that rebuilt a flow (new secret)
//! shows `unchecked` until its first try.

use super::{Live, ProviderFlow};
use crate::identity::ProviderId;
use crate::live::provider::ProviderError;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use once_cell::sync::Lazy;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// First retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Working credentials are tried again this often (a secret revoked at the console).
pub const RECHECK: Duration = Duration::from_secs(3600);

static GAUGE: Lazy<prometheus::IntGaugeVec> = Lazy::new(|| {
    let g = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "verigate_provider_credentials_ok",
            "1 when the provider accepted verigate's credentials at the last try, 0 when it refused them or could not be reached",
        ),
        &["provider"],
    )
    .unwrap_or_else(|e| panic!("metric verigate_provider_credentials_ok is malformed: {e}"));
    let _ = crate::metrics::REGISTRY.register(Box::new(g.clone()));
    g
});

/// One provider's last try.
#[derive(Debug, Clone)]
pub enum Outcome {
    Ok,
    Failing { error: ProviderError, failures: u32 },
}

struct Entry {
    /// The flow that was tried (a rebuilt flow is another one).
    flow: Weak<dyn ProviderFlow>,
    outcome: Outcome,
    next_try: Instant,
}

/// The last outcome per provider, for one server.
#[derive(Default)]
pub struct Board {
    entries: Mutex<HashMap<ProviderId, Entry>>,
    wake: tokio::sync::Notify,
}

impl Board {
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    /// A reload happened: try the rebuilt flows now.
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProviderId, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outcome recorded for exactly this flow, if it was tried.
    pub fn outcome(&self, flow: &Arc<dyn ProviderFlow>) -> Option<Outcome> {
        let entries = self.lock();
        let e = entries.get(&flow.id())?;
        let same = e.flow.upgrade().is_some_and(|f| Arc::ptr_eq(&f, flow));
        same.then(|| e.outcome.clone())
    }

    fn due(&self, flow: &Arc<dyn ProviderFlow>, now: Instant) -> bool {
        let entries = self.lock();
        match entries.get(&flow.id()) {
            None => true,
            Some(e) => {
                let same = e.flow.upgrade().is_some_and(|f| Arc::ptr_eq(&f, flow));
                !same || now >= e.next_try
            }
        }
    }

    fn record(&self, flow: &Arc<dyn ProviderFlow>, result: Result<(), ProviderError>) {
        let id = flow.id();
        let mut entries = self.lock();
        let before = entries.get(&id).and_then(|e| {
            let same = e.flow.upgrade().is_some_and(|f| Arc::ptr_eq(&f, flow));
            match (&e.outcome, same) {
                (Outcome::Failing { failures, .. }, true) => Some(*failures),
                _ => None,
            }
        });
        let now = Instant::now();
        let (outcome, next_try) = match result {
            Ok(()) => {
                GAUGE.with_label_values(&[id.as_str()]).set(1);
                if before.is_some() {
                    tracing::info!(
                        provider = id.as_str(),
                        "provider credentials accepted again"
                    );
                }
                (Outcome::Ok, now + RECHECK)
            }
            Err(error) => {
                GAUGE.with_label_values(&[id.as_str()]).set(0);
                let failures = before.unwrap_or(0) + 1;
                let wait = backoff(failures);
                tracing::error!(provider = id.as_str(), error = %error, retry_in_s = wait.as_secs(), "provider credentials not accepted: verifications with this provider will fail");
                (Outcome::Failing { error, failures }, now + wait)
            }
        };
        entries.insert(
            id,
            Entry {
                flow: Arc::downgrade(flow),
                outcome,
                next_try,
            },
        );
    }

    /// When the next try is due (the earliest over all providers), if any.
    fn next_due(&self) -> Option<Instant> {
        self.lock().values().map(|e| e.next_try).min()
    }
}

/// The wait after `failures` consecutive failures: 5 s, 10 s, 20 s, ... up to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1))
        .unwrap_or(u32::MAX);
    FIRST_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Try every flow whose turn it is; returns when all are tried.
pub async fn try_due(board: &Board, live: &Live) {
    let now = Instant::now();
    let due: Vec<Arc<dyn ProviderFlow>> = live
        .flows()
        .iter()
        .filter(|f| board.due(f, now))
        .cloned()
        .collect();
    let tries = due.iter().map(|f| async move {
        if let Some(result) = f.probe().await {
            board.record(f, result);
        }
    });
    futures::future::join_all(tries).await;
}

/// The background service: tries at start, when poked (reload), and when a retry is due.
pub struct Prober {
    pub board: Arc<Board>,
    pub live: Arc<ArcSwap<Live>>,
}

#[async_trait]
impl BackgroundService for Prober {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let live = self.live.load_full();
            try_due(&self.board, &live).await;
            let wait = self
                .board
                .next_due()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(RECHECK)
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.board.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `verigate check --online`: try every configured provider's credentials once. One line per
/// provider (`provider iamport: credentials ok`), and whether all that make a call passed.
/// `live` is the config made live (`providers::registry::live`).
pub fn check_online(live: Live) -> (Vec<String>, bool) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (vec![format!("cannot start the check: {e}")], false),
    };
    rt.block_on(async {
        let mut lines = Vec::new();
        let mut all_ok = true;
        for f in live.flows() {
            let id = f.id().as_str();
            match f.probe().await {
                None => lines.push(format!(
                    "provider {id}: no call to try credentials with (checked when a person verifies)"
                )),
                Some(Ok(())) => lines.push(format!("provider {id}: credentials ok")),
                Some(Err(e)) => {
                    all_ok = false;
                    lines.push(format!("provider {id}: {e}"));
                }
            }
        }
        (lines, all_ok)
    })
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_to_five_minutes() {
        let s: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(40), Duration::from_secs(300));
    }
}
