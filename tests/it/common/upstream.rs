//! The upstream app behind the proxy under test: the echo app (what reached it, as JSON), a
//! raw-socket app that keeps request heads byte for byte, the demo shop, or an app of the
//! test's own.

use super::{loopback, spawn_router};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which app the proxy forwards to.
#[derive(Clone, Copy, Debug, Default)]
pub enum Upstream {
    /// Answers every request with what reached it as JSON (`Env::last_upstream`, `Env::hits`);
    /// 201 to a POST, 200 otherwise.
    #[default]
    Echo,
    /// Keeps each request head as it arrived on the wire (`Env::last_head`).
    Raw,
    /// verigate's demo shop (browser tests).
    DemoShop,
    /// An app server of the test's own, already listening.
    At(SocketAddr),
}

impl Upstream {
    /// Start the app (unless it runs already); what reaches the echo and raw apps goes to `e`.
    pub async fn spawn(self, e: &Arc<Echo>) -> SocketAddr {
        match self {
            Upstream::Echo => {
                spawn_router(Router::new().fallback(any(echo)).with_state(e.clone())).await
            }
            Upstream::Raw => spawn_raw_upstream(e.clone()).await,
            Upstream::DemoShop => spawn_router(verigate::demo::app::router()).await,
            Upstream::At(addr) => addr,
        }
    }
}

/// What reached the upstream app.
#[derive(Default)]
pub struct Echo {
    pub hits: AtomicUsize,
    pub last: Mutex<Option<Value>>,
    /// The last request head as it arrived on the wire (the raw upstream only).
    pub last_head: Mutex<Option<String>>,
}

/// One upstream connection read as a raw app would: request heads byte for byte, then
/// bodies by length. Bytes read past a head stay buffered for the body or the next request.
pub struct RawConn {
    pub s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    pub fn new(s: tokio::net::TcpStream) -> Self {
        RawConn { s, buf: Vec::new() }
    }

    /// The next request head as sent (through the blank line), or None when the connection
    /// ends first.
    pub async fn head(&mut self) -> Option<String> {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        // Each byte looked at once (heads near 1 MiB arrive in hundreds of reads).
        let mut from = 0;
        let end = loop {
            if let Some(i) = self.buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                break from + i + 4;
            }
            from = self.buf.len().saturating_sub(3);
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        Some(head)
    }

    /// Read a body of `len` bytes; returns how many arrived before the connection ended.
    pub async fn body(&mut self, len: usize) -> usize {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        while self.buf.len() < len {
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
        let got = self.buf.len().min(len);
        self.buf.drain(..got);
        got
    }
}

/// The Content-Length a request head declares (0 when none).
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case("content-length").then_some(v)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An upstream that keeps each request head byte for byte (header names as spelled on the
/// wire, which an HTTP library would lower-case) and answers 200 with an empty body.
/// Bodies are not expected: requests with one are answered and the connection closed.
async fn spawn_raw_upstream(e: Arc<Echo>) -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let e = e.clone();
            tokio::spawn(async move {
                let mut conn = RawConn::new(s);
                while let Some(head) = conn.head().await {
                    let has_body = head.lines().any(|l| {
                        let l = l.to_ascii_lowercase();
                        l.starts_with("content-length:") && l.trim_end() != "content-length: 0"
                            || l.starts_with("transfer-encoding:")
                    });
                    e.hits.fetch_add(1, Ordering::SeqCst);
                    *e.last_head.lock().unwrap() = Some(head);
                    let close = if has_body {
                        "connection: close\r\n"
                    } else {
                        ""
                    };
                    let resp = format!("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n{close}\r\n");
                    if conn.s.write_all(resp.as_bytes()).await.is_err() || has_body {
                        return;
                    }
                }
            });
        }
    });
    a
}

async fn echo(
    State(e): State<Arc<Echo>>,
    method: Method,
    version: axum::http::Version,
    uri: Uri,
    headers: HeaderMap,
) -> impl IntoResponse {
    e.hits.fetch_add(1, Ordering::SeqCst);
    let mut h: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in &headers {
        h.entry(k.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let v = json!({ "method": method.as_str(), "uri": uri.to_string(), "headers": h, "version": format!("{version:?}") });
    *e.last.lock().unwrap() = Some(v.clone());
    let status = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(v))
}

/// The echo app on `addr` (another loopback address, a port another test freed): what reaches
/// it goes to `e`.
pub async fn spawn_echo_at(e: &Arc<Echo>, addr: SocketAddr) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    let r = Router::new().fallback(any(echo)).with_state(e.clone());
    tokio::spawn(async move {
        let _ = axum::serve(l, r).await;
    });
    a
}

/// An address where nothing listens (a port just bound and let go): connects are refused.
pub fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind(loopback()).unwrap();
    l.local_addr().unwrap()
}
