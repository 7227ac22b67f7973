//! `verigate demo` and `verigate sandbox`: the embedded default, needing no secrets or network.

pub mod app;
pub mod sandbox;

use crate::config::{from_yaml_str, Secrets};
use crate::providers::sandbox::SandboxOptions;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The demo's config; `__LISTEN__`, `__SANDBOX__` and `__APP__` are filled in at start.
pub const DEMO_YAML: &str = include_str!("../../conf/demo.yaml");

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("config: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Build(#[from] crate::BuildError),
}

/// The demo's secrets: fresh random session keys and the sandbox's fixed credentials.
pub fn demo_secrets() -> Secrets {
    let mut m = HashMap::new();
    m.insert(
        "VERIGATE_SESSION_KEYS".into(),
        crate::session::fresh_key_b64(),
    );
    m.insert("VERIGATE_HASH_KEY".into(), crate::session::fresh_key_b64());
    m.insert(
        "VERIGATE_ASSERTION_KEY".into(),
        crate::assertion::fresh_pem(),
    );
    m.insert(
        "IAMPORT_API_KEY".into(),
        crate::providers::iamport::sandbox::API_KEY.into(),
    );
    m.insert(
        "IFREE_SECRET_KEY".into(),
        crate::providers::ifree::sandbox::SECRET_KEY.into(),
    );
    m.insert(
        "PORTONE_API_SECRET".into(),
        crate::providers::portone::sandbox::API_SECRET.into(),
    );
    m.insert(
        "TOMO_PRIVATE_KEY".into(),
        crate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK
            .trim()
            .into(),
    );
    m.insert(
        "IAMPORT_API_SECRET".into(),
        crate::providers::iamport::sandbox::API_SECRET.into(),
    );
    Secrets::from_map(m)
}

pub fn demo_yaml(listen: SocketAddr, sandbox: SocketAddr, app: SocketAddr) -> String {
    DEMO_YAML
        .replace("__LISTEN__", &listen.to_string())
        .replace("__SANDBOX__", &sandbox.to_string())
        .replace("__APP__", &app.to_string())
}

/// Start the sandbox and the demo app on a background runtime; returns their addresses.
fn start_backends() -> Result<(SocketAddr, SocketAddr), DemoError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(DemoError::Io(e)));
                return;
            }
        };
        rt.block_on(async move {
            let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
            let started = async {
                let sb = sandbox::spawn(loopback, SandboxOptions::default()).await?;
                let app_listener = tokio::net::TcpListener::bind(loopback).await?;
                let app = app_listener.local_addr()?;
                tokio::spawn(sandbox::serve(app_listener, app::router()));
                Ok::<_, std::io::Error>((sb, app))
            }
            .await;
            let _ = tx.send(started.map_err(DemoError::Io));
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .map_err(|_| DemoError::Io(std::io::Error::other("demo backends did not start")))?
}

pub fn run(listen: SocketAddr) -> Result<(), DemoError> {
    let (sb, app) = start_backends()?;
    let built = match build_demo(listen, sb, app) {
        Ok(b) => b,
        Err(DemoError::Build(crate::BuildError::Listen { .. })) => {
            build_demo(SocketAddr::new(listen.ip(), 0), sb, app)?
        }
        Err(e) => return Err(e),
    };
    println!();
    println!("  verigate demo is running.");
    println!("  Open http://{}/ in a browser.", built.proxy_addr);
    println!();
    println!("  (sandbox providers at http://{sb}, demo app at http://{app}, metrics at http://{}/metrics)",
        built.admin_addr.map(|a| a.to_string()).unwrap_or_default());
    println!("  Press Ctrl-C to stop.");
    built.server.run_forever()
}

fn build_demo(
    listen: SocketAddr,
    sb: SocketAddr,
    app: SocketAddr,
) -> Result<crate::Built, DemoError> {
    let cfg = from_yaml_str(&demo_yaml(listen, sb, app), &demo_secrets())?;
    Ok(crate::build(cfg, crate::BuildOptions::default())?)
}

pub fn sandbox_forever(
    listen: SocketAddr,
    token_ttl_secs: u64,
    tomo_clients: Vec<(String, String)>,
) -> Result<(), DemoError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let ttl = Duration::from_secs(token_ttl_secs.max(1));
        let opts = SandboxOptions {
            token_ttl: ttl,
            tomo_token_ttl: ttl,
            tomo_clients,
        };
        let addr = sandbox::spawn(listen, opts).await?;
        println!("verigate sandbox listening on http://{addr} (iamport at http://{addr}/iamport, tomo at http://{addr}/tomo)");
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}

pub fn keygen_text() -> String {
    format!(
        "# Fresh secrets for verigate. Keep them out of the YAML: put them in the environment.\n\
         # session.keys_env: comma-separated; the first key seals, all keys open (rotate by prepending).\n\
         VERIGATE_SESSION_KEYS={}\n\
         # session.hash_key_env: keys the hashes of CI; keep it stable for the life of your data.\n\
         VERIGATE_HASH_KEY={}\n\
         # admin.token_env: the bearer token of the admin listener's record API.\n\
         VERIGATE_ADMIN_TOKEN={}\n\
         # identity_headers.assertion.key_file: `verigate keygen --assertion-key > assertion.pem`",
        crate::session::fresh_key_b64(),
        crate::session::fresh_key_b64(),
        crate::session::fresh_key_b64()
    )
}
