//! Hot reload: re-read the YAML, validate it, and swap it in atomically. In-flight requests keep
//! the config they started with; a config that does not validate is refused, logged with every
//! problem, and the old one keeps serving. Triggered by SIGHUP, `POST /reload` on the admin
//! listener, or `verigate reload -c FILE` (which calls that endpoint after checking that FILE
//! is the served file, `GET /config-file`). systemd hears `RELOADING=1` and `READY=1`.

use crate::config::{from_file_text, RuntimeConfig, Secrets};
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
    probes: Option<Arc<crate::live::probe::Board>>,
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
            probes: None,
        }
    }

    /// After each reload, the providers' credentials are tried again (rebuilt flows).
    pub fn probing(mut self, board: Arc<crate::live::probe::Board>) -> Self {
        self.probes = Some(board);
        self
    }

    /// The file this server serves (and every reload re-reads).
    pub fn path(&self) -> &std::path::Path {
        &self.source.path
    }

    /// Re-read, validate, swap. Returns the new config's warnings (those `check` prints) when
    /// it is taken, every problem when it is refused. The service manager hears `RELOADING=1`
    /// before and `READY=1` after.
    pub async fn reload(&self) -> Result<Vec<String>, Vec<String>> {
        let _one_at_a_time = self.lock.lock().await;
        crate::notify::reloading();
        let result = match self.try_reload() {
            Ok(live) => {
                crate::listen::tls::export_expiry(live.cfg.tls.as_ref());
                // Name resolution (warnings for names that do not resolve) may block.
                let warned = tokio::task::spawn_blocking(move || warnings(&live.cfg))
                    .await
                    .unwrap_or_default();
                Ok(warned)
            }
            Err(problems) => Err(problems),
        };
        match &result {
            Ok(warned) => {
                crate::metrics::reload(true);
                if let Some(b) = &self.probes {
                    b.poke();
                }
                tracing::info!(path = %self.source.path.display(), warnings = ?warned, "config reloaded");
            }
            Err(problems) => {
                crate::metrics::reload(false);
                tracing::error!(path = %self.source.path.display(), problems = ?problems, "config reload refused; the previous config keeps serving");
            }
        }
        crate::notify::reloaded(result.is_ok());
        result
    }

    fn try_reload(&self) -> Result<Arc<Live>, Vec<String>> {
        let text = std::fs::read_to_string(&self.source.path)
            .map_err(|e| vec![format!("cannot read {}: {e}", self.source.path.display())])?;
        let cfg = from_file_text(&text, &self.source.secrets, &self.source.path)
            .map_err(|e| e.problems())?;
        let old = self.live.load_full();
        let fixed = fixed_changes(&old.cfg, &cfg);
        if !fixed.is_empty() {
            return Err(fixed);
        }
        let next =
            crate::providers::registry::succeed(&old, cfg).map_err(|e| vec![e.to_string()])?;
        let next = Arc::new(next);
        self.live.store(next.clone());
        Ok(next)
    }
}

/// What `check` warns about in a config that validates: its own warnings and upstream names
/// that do not resolve now. `verigate reload` prints the same.
pub fn warnings(cfg: &RuntimeConfig) -> Vec<String> {
    cfg.warnings
        .iter()
        .chain(&crate::upstreams::check_names(cfg))
        .map(|w| w.to_string())
        .collect()
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

/// Why `verigate reload` did not report a reload.
#[derive(Debug, thiserror::Error)]
pub enum ReloadRequestError {
    #[error("{0}")]
    Admin(#[from] crate::admin_client::AdminClientError),
    #[error("verigate at {addr} serves {served}, not {given}: a reload always re-reads the served file. Edit {served}, or give -c {served}")]
    NotServed {
        addr: String,
        served: String,
        given: String,
    },
    #[error("verigate at {0} was started without a config file, so it cannot reload")]
    NoFile(String),
    /// The server refused the new config: its problems, one a line.
    #[error("{0}")]
    Refused(String),
}

/// `verigate reload -c FILE`: ask the running verigate (its admin listener, as FILE names it)
/// to reload, after making sure FILE is the file it serves. Returns what it answered (the
/// warnings `check` prints, then `ok`).
pub fn request_reload(
    path: &std::path::Path,
    admin: Option<&str>,
) -> Result<String, ReloadRequestError> {
    use crate::admin_client;
    let addr = admin_client::admin_addr(path, admin)?;
    let timeout = std::time::Duration::from_secs(30);
    let (status, served) = admin_client::call(&addr, http::Method::GET, "/config-file", timeout)?;
    if status != 200 {
        return Err(ReloadRequestError::NoFile(addr));
    }
    let served = served.trim().to_string();
    let given = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if given != std::path::Path::new(&served) {
        return Err(ReloadRequestError::NotServed {
            addr,
            served,
            given: path.display().to_string(),
        });
    }
    let (status, body) = admin_client::call(&addr, http::Method::POST, "/reload", timeout)?;
    if (200..300).contains(&status) {
        Ok(body.trim().to_string())
    } else {
        Err(ReloadRequestError::Refused(body.trim().to_string()))
    }
}
