//! A bare Pingora proxy for `benches/load.sh --bare`: the engine verigate is built on, with no
//! filters, so that gated / bare says what verigate's own layer costs. The same Pingora
//! settings as verigate's defaults: the given worker threads, no work stealing, 128 pooled
//! upstream connections, one listener task, a 4 KiB read buffer per connection, no
//! downstream modules. Built with the same profile as the verigate it is compared with:
//! `cargo build --profile dist --example bare_pingora`.
//!
//! Usage: bare_pingora LISTEN UPSTREAM [THREADS]   (e.g. 127.0.0.1:8081 127.0.0.1:3000 1)

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::net::SocketAddr;
use std::process::ExitCode;

// The same allocator as verigate.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    /// No downstream modules, as in verigate (Pingora's default adds response compression).
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [listen, upstream, rest @ ..] if rest.len() <= 1 => (
            listen.parse::<SocketAddr>(),
            upstream.parse::<SocketAddr>(),
            rest.first().map_or(Ok(1), |t| t.parse::<usize>()),
        ),
        _ => {
            eprintln!("usage: bare_pingora LISTEN UPSTREAM [THREADS]");
            return ExitCode::from(2);
        }
    };
    let (Ok(listen), Ok(upstream), Ok(threads)) = parsed else {
        eprintln!("bare_pingora: LISTEN and UPSTREAM are addresses, THREADS a number");
        return ExitCode::from(2);
    };
    let conf = ServerConf {
        threads,
        work_stealing: false,
        upstream_keepalive_pool_size: 128,
        listener_tasks_per_fd: 1,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(5),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Bare { upstream });
    proxy.add_listener(
        pingora::listeners::ListenerConfig::tcp(listen.to_string())
            .l4_buffer(pingora::listeners::L4BufferSettings::default().read(4096)),
    );
    server.add_service(proxy);
    server.run_forever()
}
