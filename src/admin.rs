//! The admin listener: `/metrics`, `/healthz`, `/readyz`.

use crate::live::Live;
use crate::reload::Reloader;
use crate::store::Store;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct AdminApp {
    live: Arc<ArcSwap<Live>>,
    store: Arc<dyn Store>,
    reloader: Option<Arc<Reloader>>,
    /// `/accounts/...`: the record API (`crate::records::api`).
    records: Option<Arc<crate::records::api::RecordsApi>>,
}

impl AdminApp {
    pub fn new(
        live: Arc<ArcSwap<Live>>,
        store: Arc<dyn Store>,
        reloader: Option<Arc<Reloader>>,
    ) -> Self {
        AdminApp {
            live,
            store,
            reloader,
            records: None,
        }
    }

    /// Serve the record API under `/accounts/`.
    pub fn with_records(mut self, api: crate::records::api::RecordsApi) -> Self {
        self.records = Some(Arc::new(api));
        self
    }
}

fn reply(status: u16, ctype: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, ctype)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        if let (Some(api), true) = (&self.records, path.starts_with("/accounts/")) {
            return api.response(session).await;
        }
        match path.as_str() {
            "/reload" if method == http::Method::POST => match &self.reloader {
                None => reply(
                    409,
                    "text/plain",
                    b"reload needs a config file (verigate run -c FILE)\n".to_vec(),
                ),
                Some(r) => match r.reload().await {
                    Ok(()) => reply(200, "text/plain", b"ok\n".to_vec()),
                    Err(problems) => reply(
                        400,
                        "text/plain",
                        format!("{}\n", problems.join("\n")).into_bytes(),
                    ),
                },
            },
            "/metrics" => {
                // Gauges read at scrape time (addresses set aside right now).
                for p in self.live.load().pools() {
                    p.status();
                }
                reply(200, "text/plain; version=0.0.4", crate::metrics::render())
            }
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let live = self.live.load_full();
                let (ready, upstreams) = upstream_report(&live);
                match self.store.ping().await {
                    Ok(()) if ready => reply(
                        200,
                        "text/plain",
                        format!("ready\n{upstreams}").into_bytes(),
                    ),
                    Ok(()) => reply(
                        503,
                        "text/plain",
                        format!("not ready\n{upstreams}").into_bytes(),
                    ),
                    Err(e) => reply(
                        503,
                        "text/plain",
                        format!("store: {e}\n{upstreams}").into_bytes(),
                    ),
                }
            }
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}

/// One line per upstream for `/readyz`, and whether every upstream has an address to send
/// requests to (a name that stopped resolving but kept its last good addresses still does).
fn upstream_report(live: &Live) -> (bool, String) {
    let mut ready = true;
    let mut out = String::new();
    for p in live.pools() {
        let s = p.status();
        ready &= s.ready();
        out.push_str(&format!(
            "upstream {}: {} address{}",
            s.name,
            s.addresses,
            if s.addresses == 1 { "" } else { "es" }
        ));
        if s.ejected > 0 {
            out.push_str(&format!(", {} set aside after failed connects", s.ejected));
        }
        for (name, why) in &s.failing {
            out.push_str(&format!("; {name} does not resolve ({why})"));
            if s.addresses > 0 {
                out.push_str(", last good addresses kept");
            }
        }
        if !s.ready() {
            out.push_str(" (not ready)");
        }
        out.push('\n');
    }
    (ready, out)
}
