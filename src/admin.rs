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
        }
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
            "/metrics" => reply(200, "text/plain; version=0.0.4", crate::metrics::render()),
            "/healthz" => reply(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let _config = self.live.load();
                match self.store.ping().await {
                    Ok(()) => reply(200, "text/plain", b"ready\n".to_vec()),
                    Err(e) => reply(503, "text/plain", format!("store: {e}\n").into_bytes()),
                }
            }
            _ => reply(404, "text/plain", b"not found\n".to_vec()),
        }
    }
}
