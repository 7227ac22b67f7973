//! Local simulators of the providers' APIs (`verigate sandbox`), and the demo merchant app.
//! Sandbox credentials are fixed and valid nowhere else.

use crate::providers::{iamport, ifree, portone, tomo};

use axum::Router;
use std::net::SocketAddr;
use std::time::Duration;

pub const IAMPORT_KEY: &str = "sandbox_key";
pub const IAMPORT_SECRET: &str = "sandbox_secret";

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Lifetime of issued access tokens (Iamport: 30 minutes, like the real service).
    pub token_ttl: Duration,
    /// Lifetime of TomoIDV access tokens (`expires_in`; unconfirmed upstream: 30 minutes
    /// here, as Iamport's and as `verigate sandbox --token-ttl` defaults to).
    pub tomo_token_ttl: Duration,
    /// Extra TomoIDV clients: (client_id, public JWK JSON).
    pub tomo_clients: Vec<(String, String)>,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            token_ttl: Duration::from_secs(30 * 60),
            tomo_token_ttl: Duration::from_secs(30 * 60),
            tomo_clients: Vec::new(),
        }
    }
}

/// Handles on the simulators' state (tests count token fetches and expire tokens with them).
#[derive(Clone)]
pub struct Sims {
    pub iamport: std::sync::Arc<iamport::sandbox::IamportSim>,
    pub tomo: std::sync::Arc<tomo::sandbox::TomoSim>,
    pub ifree: std::sync::Arc<ifree::sandbox::IfreeSim>,
    pub portone: std::sync::Arc<portone::sandbox::PortoneSim>,
}

/// All simulators, each under its provider's mount point.
pub fn router(opts: SandboxOptions) -> (Router, Sims) {
    let sims = Sims {
        iamport: iamport::sandbox::IamportSim::new(opts.token_ttl),
        tomo: tomo::sandbox::TomoSim::new(opts.tomo_token_ttl, &opts.tomo_clients),
        ifree: ifree::sandbox::IfreeSim::new(),
        portone: portone::sandbox::PortoneSim::new(),
    };
    let r = Router::new()
        .nest("/iamport", iamport::sandbox::router(sims.iamport.clone()))
        .nest("/tomo", tomo::sandbox::router(sims.tomo.clone()))
        .nest("/ifree", ifree::sandbox::router(sims.ifree.clone()))
        .nest("/portone", portone::sandbox::router(sims.portone.clone()));
    (r, sims)
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
