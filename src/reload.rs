//! Hot reload: re-read the YAML, validate it, and swap it in atomically. In-flight requests keep
//! the config they started with; a config that does not validate is refused, logged with every
//! problem, and the old one keeps serving. Triggered by SIGHUP, `POST /reload` on the admin
//! listener, or `verigate reload -c FILE` (which calls that endpoint).

use crate::config::{from_yaml_str, RuntimeConfig, Secrets};
use crate::live::Live;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a reload reads its config from.
pub struct ReloadSource {
    pub path: PathBuf,
    pub secrets: Secrets,
}

pub struct Reloader {
    source: ReloadSource,
    live: Arc<ArcSwap<Live>>,
    lock: tokio::sync::Mutex<()>,
}

/// Settings that only take effect at start: a reload that changes them is refused.
fn fixed_changes(old: &RuntimeConfig, new: &RuntimeConfig) -> Vec<String> {
    let mut out = Vec::new();
    if old.listen_spec != new.listen_spec {
        out.push("listen: changing it needs a restart (or a graceful upgrade)".to_string());
    }
    if old.tls.is_some() != new.tls.is_some() {
        out.push(
            "tls: turning TLS on or off needs a restart (new certificate files are read on reload)"
                .to_string(),
        );
    }
    if let (Some(o), Some(n)) = (&old.tls, &new.tls) {
        if o.http2 != n.http2 {
            out.push("tls.http2: changing it needs a restart".to_string());
        }
    }
    if old.redirect_spec != new.redirect_spec {
        out.push("redirect_http_listen: changing it needs a restart".to_string());
    }
    if old.admin_spec != new.admin_spec {
        out.push("admin_listen: changing it needs a restart".to_string());
    }
    if old.threads != new.threads {
        out.push("threads: changing it needs a restart".to_string());
    }
    if old.tuning != new.tuning {
        out.push("tuning: changing it needs a restart".to_string());
    }
    if old.store != new.store {
        out.push("store: changing it needs a restart".to_string());
    }
    out
}

impl Reloader {
    pub fn new(source: ReloadSource, live: Arc<ArcSwap<Live>>) -> Self {
        Reloader {
            source,
            live,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Re-read, validate, swap. Returns every problem when the new config is refused.
    pub async fn reload(&self) -> Result<(), Vec<String>> {
        let _one_at_a_time = self.lock.lock().await;
        let result = self.try_reload();
        match &result {
            Ok(()) => {
                crate::metrics::reload(true);
                tracing::info!(path = %self.source.path.display(), "config reloaded");
            }
            Err(problems) => {
                crate::metrics::reload(false);
                tracing::error!(path = %self.source.path.display(), problems = ?problems, "config reload refused; the previous config keeps serving");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<(), Vec<String>> {
        let text = std::fs::read_to_string(&self.source.path)
            .map_err(|e| vec![format!("cannot read {}: {e}", self.source.path.display())])?;
        let cfg = from_yaml_str(&text, &self.source.secrets).map_err(|e| e.problems())?;
        let old = self.live.load_full();
        let fixed = fixed_changes(&old.cfg, &cfg);
        if !fixed.is_empty() {
            return Err(fixed);
        }
        let next =
            crate::providers::registry::succeed(&old, cfg).map_err(|e| vec![e.to_string()])?;
        self.live.store(Arc::new(next));
        Ok(())
    }
}

/// Reload on SIGHUP (only for `verigate run`: tests and the demo install no signal handler).
pub struct SighupService(pub Arc<Reloader>);

#[async_trait]
impl BackgroundService for SighupService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload via the admin listener");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = self.0.reload().await; }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// `verigate reload -c FILE`: ask the running verigate (its admin listener, as FILE names it)
/// to reload. Returns what it answered; Err when it refused or could not be reached.
pub fn request_reload(path: &std::path::Path, admin: Option<&str>) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let admin = match admin {
        Some(a) => a,
        None => doc
            .get("admin_listen")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                "admin_listen: reload goes through the admin listener; set it".to_string()
            })?,
    };
    let admin = admin
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let resp = reqwest::Client::new()
            .post(format!("http://{admin}/reload"))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("cannot reach verigate at {admin}: {e}"))?;
        let ok = resp.status().is_success();
        let body = resp.text().await.unwrap_or_default();
        if ok {
            Ok(body.trim().to_string())
        } else {
            Err(body.trim().to_string())
        }
    })
}
