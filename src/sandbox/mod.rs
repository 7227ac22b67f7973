//! Local simulators of the providers' APIs (`verigate sandbox`), and the demo merchant app.
//! Sandbox credentials are fixed and valid nowhere else.

pub mod demo_app;
pub mod iamport;

use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;

pub const IAMPORT_KEY: &str = "sandbox_key";
pub const IAMPORT_SECRET: &str = "sandbox_secret";

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Lifetime of issued access tokens (Iamport: 30 minutes, like the real service).
    pub token_ttl: Duration,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token_ttl: Duration::from_secs(30 * 60),
        }
    }
}

/// All simulators, each under its provider's mount point.
pub fn router(opts: SandboxOptions) -> (Router, std::sync::Arc<iamport::IamportSim>) {
    let sim = iamport::IamportSim::new(opts.token_ttl);
    let r = Router::new().nest("/iamport", iamport::router(sim.clone()));
    (r, sim)
}

/// Serve a router on an already-bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

/// Bind `addr` (port 0 for an ephemeral one) and serve the sandbox in the background of the
/// current tokio runtime. Returns the bound address.
pub async fn spawn(addr: SocketAddr, opts: SandboxOptions) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (r, _) = router(opts);
    tokio::spawn(async move {
        if let Err(e) = serve(listener, r).await {
            tracing::error!(error = %e, "sandbox stopped");
        }
    });
    Ok(local)
}
