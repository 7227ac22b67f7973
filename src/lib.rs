//! verigate: a Pingora reverse proxy that puts Korean identity verification in front of web
//! apps. `build` turns a validated config into a ready-to-run Pingora server.

pub mod admin;
pub mod admin_client;
pub mod answers;
pub mod assertion;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod crypto;
pub mod demo;
pub mod gate;
pub mod identity;
pub mod listen;
pub mod live;
pub mod logwriter;
pub mod metrics;
pub mod notify;
pub mod providers;
pub mod ratelimit;
pub mod readiness;
pub mod records;
pub mod reload;
pub mod routing;
pub mod secretfile;
pub mod session;
pub mod store;
pub mod upstreams;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use config::RuntimeConfig;
use gate::{Gate, Live};
use pingora::server::configuration::ServerConf;
use pingora::server::{
    ListenFds, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch,
};
use pingora::services::Service;
use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("provider client: {0}")]
    Provider(#[from] live::provider::ProviderError),
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Tls(#[from] listen::tls::TlsSetupError),
}

/// A built server and what a caller needs to reach it.
pub struct Built {
    pub server: Server,
    pub proxy_addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// The plain-HTTP listener that redirects to HTTPS (`redirect_http_listen`).
    pub redirect_addr: Option<SocketAddr>,
    pub live: Arc<ArcSwap<Live>>,
}

#[derive(Default)]
pub struct BuildOptions {
    /// Take the listening sockets over from a running verigate (Pingora graceful upgrade)
    /// instead of binding them.
    pub upgrade: bool,
    /// The file the config came from: enables reload (admin `POST /reload`).
    pub reload: Option<reload::ReloadSource>,
    /// Also reload on SIGHUP (for `verigate run`; tests and the demo leave signals alone).
    pub sighup: bool,
    /// Tell the service manager (`$NOTIFY_SOCKET`) when serving and when stopping.
    pub notify: bool,
    /// Try the providers' credentials at start, after reloads and with backoff while they
    /// fail (`live::probe`; for `verigate run` and the demo: tests that count provider calls
    /// leave it off).
    pub probe_credentials: bool,
}

/// A listening service whose socket was bound before the server started, so that the
/// caller knows the address (port 0 included) and bind errors surface before anything runs.
struct Prebound<S> {
    inner: S,
    key: String,
    fd: RawFd,
}

#[async_trait]
impl<S: Service> Service for Prebound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(table) = &fds {
            table.lock().add(self.key.clone(), self.fd);
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }
}

fn prebind(what: &'static str, addr: SocketAddr) -> Result<(SocketAddr, RawFd), BuildError> {
    let err = |source| BuildError::Listen { what, addr, source };
    let l = std::net::TcpListener::bind(addr).map_err(err)?;
    l.set_nonblocking(true).map_err(err)?;
    let actual = l.local_addr().map_err(err)?;
    Ok((actual, l.into_raw_fd()))
}

/// A TCP listener with a 4 KiB read buffer per client connection instead of Pingora's 64 KiB:
/// every connection, idle ones too, held one (~87 KiB of RSS per idle keep-alive connection
/// with it). A request head is read straight into the deadline reader's own 4 KiB buffer (a
/// read that large bypasses this one). No read buffer at all breaks Pingora's WebSocket
/// pass-through (`tests/it/websocket.rs`: the client's first frame meets a reset). A TLS listener
/// keeps Pingora's default (TLS reads whole 16 KiB records through it).
fn listener(addr: String) -> pingora::listeners::ListenerConfig {
    pingora::listeners::ListenerConfig::tcp(addr)
        .l4_buffer(pingora::listeners::L4BufferSettings::default().read(4096))
}

/// Listen on `addr` (TLS on it when `tls` is given), bound now unless the sockets are taken
/// over from a running verigate.
fn add_listening<A>(
    server: &mut Server,
    mut svc: pingora::services::listening::Service<A>,
    what: &'static str,
    addr: SocketAddr,
    tls: Option<pingora::listeners::tls::TlsSettings>,
    opts: &BuildOptions,
) -> Result<SocketAddr, BuildError>
where
    A: pingora::apps::ServerApp + Send + Sync + 'static,
{
    let endpoint = |svc: &mut pingora::services::listening::Service<A>, key: &str| match tls {
        Some(t) => svc.add_tls_with_settings(key, None, t),
        None => svc.add_listener(listener(key.to_string())),
    };
    if opts.upgrade {
        endpoint(&mut svc, &addr.to_string());
        server.add_service(svc);
        return Ok(addr);
    }
    let (actual, fd) = prebind(what, addr)?;
    let key = actual.to_string();
    endpoint(&mut svc, &key);
    server.add_service(Prebound {
        inner: svc,
        key,
        fd,
    });
    Ok(actual)
}

/// Build the proxy (and its admin listener) from a validated config.
pub fn build(cfg: RuntimeConfig, mut opts: BuildOptions) -> Result<Built, BuildError> {
    let conf = ServerConf {
        threads: cfg.threads,
        work_stealing: cfg.tuning.work_stealing,
        upstream_keepalive_pool_size: cfg.tuning.upstream_keepalive_pool,
        listener_tasks_per_fd: cfg.tuning.listener_tasks,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(
        pingora::server::configuration::Opt {
            upgrade: opts.upgrade,
            ..Default::default()
        },
        conf,
    );
    if opts.upgrade {
        server.bootstrap();
    }
    let listen = cfg.listen.addr;
    let admin_listen = cfg.admin_listen.as_ref().map(|l| l.addr);
    let redirect_listen = cfg.redirect_http.as_ref().map(|l| l.addr);
    let http2 = cfg.tls.as_ref().map(|t| t.http2);
    listen::tls::export_expiry(cfg.tls.as_ref());
    let store = store::open(&cfg.store)?;
    let live = Arc::new(ArcSwap::from_pointee(providers::registry::live(cfg)?));

    let revoked = Arc::new(live::revoked::Revoked::new());
    server.add_service(pingora::services::background::background_service(
        "session revocations",
        live::revoked::Poller {
            revoked: revoked.clone(),
            store: store.clone(),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "record purge",
        records::Purger {
            store: store.clone(),
            live: live.clone(),
        },
    ));
    server.add_service(pingora::services::background::background_service(
        "upstream names",
        live::refresh::Refresher { live: live.clone() },
    ));
    let gate = Gate::new(live.clone(), store.clone(), revoked.clone());
    let mut http = pingora::proxy::http_proxy(&server.configuration, gate);
    // An HTTP/2 connection with no stream open is closed after the idle time an HTTP/1
    // connection gets between requests.
    let mut server_options = pingora::apps::HttpServerOptions::default();
    server_options.h2_idle_timeout = Some(gate::deadline::IDLE);
    http.server_options = Some(server_options);
    let proxy = pingora::services::listening::Service::new(
        "verigate proxy".into(),
        gate::deadline::HeaderDeadline::new(http, live.clone()),
    );
    let tls = match http2 {
        Some(h2) => Some(listen::tls::settings(live.clone(), h2)?),
        None => None,
    };
    let proxy_addr = add_listening(&mut server, proxy, "listen", listen, tls, &opts)?;
    let mut redirect_addr = None;
    if let Some(addr) = redirect_listen {
        let app = listen::redirect::RedirectToHttps {
            live: live.clone(),
            bound_port: proxy_addr.port(),
        };
        let svc = pingora::services::listening::Service::new(
            "verigate redirect to https".into(),
            gate::deadline::HeaderDeadline::new(
                pingora::apps::http_app::HttpServer::new_app(app),
                live.clone(),
            ),
        );
        redirect_addr = Some(add_listening(
            &mut server,
            svc,
            "redirect_http_listen",
            addr,
            None,
            &opts,
        )?);
    }
    let probes = live::probe::Board::new();
    if opts.probe_credentials {
        server.add_service(pingora::services::background::background_service(
            "provider credentials",
            live::probe::Prober {
                board: probes.clone(),
                live: live.clone(),
            },
        ));
    }
    let reloader = opts
        .reload
        .take()
        .map(|src| Arc::new(reload::Reloader::new(src, live.clone()).probing(probes.clone())));
    if let (true, Some(r)) = (opts.sighup, &reloader) {
        server.add_service(pingora::services::background::background_service(
            "sighup",
            reload::SighupService(r.clone()),
        ));
    }

    if opts.notify {
        server.add_service(pingora::services::background::background_service(
            "service manager notification",
            NotifyService,
        ));
    }

    let admin_addr = match admin_listen {
        None => None,
        Some(a) => {
            let app = admin::AdminApp::new(live.clone(), store.clone(), reloader)
                .probes(probes)
                .with_records(records::api::RecordsApi {
                    live: live.clone(),
                    store: store.clone(),
                    revoked,
                });
            let svc = pingora::services::listening::Service::new("verigate admin".into(), app);
            Some(add_listening(
                &mut server,
                svc,
                "admin_listen",
                a,
                None,
                &opts,
            )?)
        }
    };
    Ok(Built {
        server,
        proxy_addr,
        admin_addr,
        redirect_addr,
        live,
    })
}

/// `READY=1` once the server runs (its listeners were bound before it started), `STOPPING=1`
/// when it shuts down.
struct NotifyService;

#[async_trait]
impl pingora::services::background::BackgroundService for NotifyService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        notify::ready();
        let _ = shutdown.changed().await;
        notify::stopping();
    }
}

/// A shutdown signal from a channel instead of Unix signals (tests, the demo).
pub struct ChannelShutdown(pub tokio::sync::Mutex<tokio::sync::oneshot::Receiver<()>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.lock().await;
        let _ = (&mut *rx).await;
        ShutdownSignal::FastShutdown
    }
}

/// Run a built server on its own thread until the returned sender is dropped or fired.
pub fn spawn(server: Server) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        server.run(RunArgs {
            shutdown_signal: Box::new(ChannelShutdown(tokio::sync::Mutex::new(rx))),
        });
    });
    tx
}
