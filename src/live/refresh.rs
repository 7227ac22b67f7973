//! The background task that resolves upstream names again every `resolver.interval`, for the
//! config live at the time (a reload's new names were resolved when it was built).

use super::Live;
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// How often the task looks for a pool whose resolution is due.
const TICK: Duration = Duration::from_millis(250);

pub struct Refresher {
    pub live: Arc<ArcSwap<Live>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for Refresher {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            let live = self.live.load_full();
            let interval = live.cfg.resolver.interval;
            for pool in live.pools().iter().filter(|p| p.due(interval)) {
                let (pool, cfg) = (pool.clone(), live.cfg.resolver.clone());
                // getaddrinfo blocks: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || pool.refresh(&cfg)).await;
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }
}
