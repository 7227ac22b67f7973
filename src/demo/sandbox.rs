//! `verigate sandbox`: every provider's simulator (its `src/providers/<name>/sandbox.rs`)
//! under its mount point `/<name>`, for the provider list (`identity::each_provider!`).
//! Sandbox credentials are fixed and valid nowhere else.

use crate::identity::each_provider;
use crate::providers::sandbox::SandboxOptions;
use axum::Router;
use std::net::SocketAddr;

macro_rules! sims_of_each {
    ($($variant:ident $name:ident $facts:tt,)*) => {
        /// Handles on the simulators' state (tests count token fetches and expire tokens with
        /// them).
        #[derive(Clone)]
        pub struct Sims {
            $(pub $name: std::sync::Arc<crate::providers::$name::sandbox::Sim>,)*
        }

        /// All simulators, each under its provider's mount point.
        pub fn router(opts: SandboxOptions) -> (Router, Sims) {
            let sims = Sims {
                $($name: crate::providers::$name::sandbox::Sim::new(&opts),)*
            };
            let r = Router::new()
                $(.nest(
                    concat!("/", stringify!($name)),
                    crate::providers::$name::sandbox::router(sims.$name.clone()),
                ))*;
            (r, sims)
        }
    };
}
each_provider!(sims_of_each);

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
