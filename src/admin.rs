//! The admin listener: `/metrics`, `/healthz`, `/readyz` (and `/readyz/upstream/<name>`; the
//! rule is in `readiness`), `POST /reload`, `/config-file`.

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
    probes: Option<Arc<crate::live::probe::Board>>,
    /// `/accounts/...`, `/audit`, `/ledger`, `/consents...`: the record API
    /// (`crate::records::api`).
    records: Option<Arc<crate::records::api::RecordsApi>>,
    /// The last write probe of the store and when it ran (`WRITE_PROBE_FOR`).
    write_probe: tokio::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
}

/// How long one write probe of the store answers `/readyz`: a load balancer polling every
/// instance often never makes more than one store write a second per instance.
pub const WRITE_PROBE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

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
            probes: None,
            records: None,
            write_probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Report the providers' credential tries from this board on `/readyz`.
    pub fn probes(mut self, board: Arc<crate::live::probe::Board>) -> Self {
        self.probes = Some(board);
        self
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

impl AdminApp {
    async fn readiness(&self) -> crate::readiness::Readiness {
        let live = self.live.load_full();
        let upstreams = crate::readiness::upstreams(&live);
        let providers = crate::readiness::providers(self.probes.as_deref(), &live);
        let store = self.store_writes().await;
        crate::readiness::assess(store, upstreams, providers)
    }

    /// Whether the store can write, probed at most once per `WRITE_PROBE_FOR` (concurrent
    /// readiness requests wait for the one probe in flight).
    async fn store_writes(&self) -> Result<(), String> {
        let mut last = self.write_probe.lock().await;
        if let Some((at, r)) = last.as_ref() {
            if at.elapsed() < WRITE_PROBE_FOR {
                return r.clone();
            }
        }
        let r = self.store.probe_write().await.map_err(|e| e.to_string());
        *last = Some((std::time::Instant::now(), r.clone()));
        r
    }

    /// Plain text by default; JSON for `Accept: application/json` or `?format=json`.
    fn answer_readiness(
        &self,
        session: &ServerSession,
        status: u16,
        r: &crate::readiness::Readiness,
    ) -> Response<Vec<u8>> {
        let req = session.req_header();
        let json = req
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "format=json"))
            || req
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("application/json"));
        match json {
            true => reply(
                status,
                "application/json",
                serde_json::to_vec(r).unwrap_or_default(),
            ),
            false => reply(status, "text/plain", r.text().into_bytes()),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        let records = path.starts_with("/accounts/")
            || path == "/audit"
            || path == "/ledger"
            || path == "/consents"
            || path.starts_with("/consents/");
        if let (Some(api), true) = (&self.records, records) {
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
                    Ok(warnings) => {
                        let mut body = String::new();
                        for w in warnings {
                            body.push_str(&format!("warning: {w}\n"));
                        }
                        body.push_str("ok\n");
                        reply(200, "text/plain", body.into_bytes())
                    }
                    Err(problems) => reply(
                        400,
                        "text/plain",
                        format!("{}\n", problems.join("\n")).into_bytes(),
                    ),
                },
            },
            // The file this server serves, for `verigate reload -c FILE` to compare with FILE.
            "/config-file" => match &self.reloader {
                Some(r) => reply(
                    200,
                    "text/plain",
                    format!("{}\n", r.path().display()).into_bytes(),
                ),
                None => reply(
                    404,
                    "text/plain",
                    b"started without a config file\n".to_vec(),
                ),
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
                let r = self.readiness().await;
                let status = if r.ready { 200 } else { 503 };
                self.answer_readiness(session, status, &r)
            }
            p if p.starts_with("/readyz/upstream/") => {
                let name = &p["/readyz/upstream/".len()..];
                let r = self.readiness().await;
                match r.upstreams.iter().find(|u| u.name == name) {
                    None => reply(
                        404,
                        "text/plain",
                        format!("no upstream named {name}\n").into_bytes(),
                    ),
                    Some(u) => {
                        let ready = r.store.ok && u.ready;
                        let one = crate::readiness::Readiness {
                            ready,
                            store: r.store.clone(),
                            upstreams: vec![u.clone()],
                            providers: r.providers.clone(),
                        };
                        self.answer_readiness(session, if ready { 200 } else { 503 }, &one)
                    }
                }
            }
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
