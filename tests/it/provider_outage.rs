//! A provider that hangs: concurrent completions share one token fetch and its failure instead
//! of queueing behind one another, the circuit breaker then fails calls fast without touching
//! the network, and a client that leaves takes its provider call with it.

use crate::common::*;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the hung provider saw on one of its connections.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Accepted,
    /// verigate closed the connection (gave up, or dropped the call).
    Closed,
}

// The metrics are the test process's: these tests run at once, so each reads only what no
// other test here moves (or its own provider's connections).

/// A provider that accepts connections and never answers: it reads whatever comes until the
/// other side closes.
async fn hung_provider() -> (SocketAddr, Arc<AtomicUsize>, mpsc::UnboundedReceiver<Seen>) {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(Seen::Accepted);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                let _ = tx.send(Seen::Closed);
            });
        }
    });
    (addr, accepted, rx)
}

const CIRCUIT_OPEN: &str = r#"verigate_provider_circuit_open{provider="iamport"}"#;
const FAST_FAILURES: &str = r#"verigate_provider_fast_failures_total{provider="iamport"}"#;
const GONE: &str = r#"verigate_flow_clients_gone_total{provider="iamport"}"#;

/// 40 browsers, each with its own started flow, post their completion at once while the
/// token endpoint hangs: all are answered `503 provider_unavailable` within the provider's
/// timeout + 1 s (before: the k-th waited about timeout × k behind one lock), through one
/// token fetch whose failure they all share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_completions_while_the_token_endpoint_hangs() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    const BROWSERS: usize = 40;
    let (hung, accepted, mut seen) = hung_provider().await;
    let env = Env::with(
        Proxy::shop().provider(
            Provider::iamport()
                .base_url(format!("http://{hung}"))
                .timeout(&format!("{}s", TIMEOUT.as_secs())),
        ),
    )
    .await;
    let mut browsers = Vec::new();
    for _ in 0..BROWSERS {
        let mut b = env.browser();
        let flow = b.start_iamport("/member").await;
        browsers.push((b, flow));
    }
    let go = Arc::new(tokio::sync::Barrier::new(BROWSERS));
    let mut tasks = Vec::new();
    for (mut b, flow) in browsers {
        let go = go.clone();
        tasks.push(tokio::spawn(async move {
            let imp = Value::String("imp_123456789012".into());
            let nonce = Value::String(flow.merchant_uid());
            go.wait().await;
            let t = Instant::now();
            let r = b.complete(&imp, &nonce).await;
            let answer = refusal(r).await;
            (answer, t.elapsed(), b.jar.contains_key("vg"))
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let ((status, code), took, session) = t.await.unwrap();
        assert_eq!((status, code.as_str()), (503, "provider_unavailable"));
        assert!(!session, "no session from a failed verification");
        slowest = slowest.max(took);
    }
    eprintln!(
        "{BROWSERS} concurrent completions, token endpoint hung, timeout {TIMEOUT:?}: \
         slowest answer {slowest:?}"
    );
    assert!(
        slowest <= TIMEOUT + Duration::from_secs(1),
        "slowest of {BROWSERS} answered after {slowest:?}"
    );
    // One fetch for all of them, and verigate gave it up (no work left running).
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one getToken in flight");
    assert_eq!(seen.recv().await, Some(Seen::Accepted));
    assert_eq!(seen.recv().await, Some(Seen::Closed));
    let r = env.client.get(env.url("/open")).send().await.unwrap();
    assert_eq!(r.status(), 200, "proxy keeps serving");
}

fn token_ok() -> Json<Value> {
    let now = chrono::Utc::now().timestamp();
    Json(json!({"code": 0, "message": null,
        "response": {"access_token": "t", "now": now, "expired_at": now + 1800}}))
}

/// Five certification calls in a row time out: the circuit opens, and the next completion is
/// refused `503 provider_unavailable` without a request to the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_opens_after_failures_in_a_row_and_fails_fast() {
    // It reads the process-wide gauge of open iamport circuits: alone, only its own.
    if !skip::alone("provider_outage::circuit_opens_after_failures_in_a_row_and_fails_fast") {
        return;
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let fake = Router::new()
        .route("/users/getToken", post(|| async { token_ok() }))
        .route(
            "/certifications/{id}",
            get(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<&'static str>().await
                }
            }),
        );
    let addr = spawn_router(fake).await;
    let env =
        Env::with(Proxy::shop().provider(Provider::iamport().base_url(format!("http://{addr}"))))
            .await;
    let before = env.metrics().await;
    let failures = verigate::providers::BREAKER_FAILURES as usize;
    let mut browsers = Vec::new();
    for _ in 0..failures + 1 {
        let mut b = env.browser();
        let flow = b.start_iamport("/member").await;
        browsers.push((b, flow));
    }
    let last = browsers.pop().unwrap();
    let complete = |(mut b, flow): (Browser, Flow)| async move {
        let imp = Value::String("imp_123456789012".into());
        refusal(b.complete(&imp, &Value::String(flow.merchant_uid())).await).await
    };
    // Concurrent, so the test waits one timeout, not five.
    let answers = futures::future::join_all(browsers.into_iter().map(complete)).await;
    for (status, code) in answers {
        assert_eq!((status, code.as_str()), (503, "provider_unavailable"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), failures);
    let m = env.metrics().await;
    assert_eq!(metric(&m, CIRCUIT_OPEN), 1.0, "circuit open");
    // Open: refused without touching the provider.
    let (status, code) = complete(last).await;
    assert_eq!((status, code.as_str()), (503, "provider_unavailable"));
    assert_eq!(hits.load(Ordering::SeqCst), failures, "no call while open");
    let m = env.metrics().await;
    assert_eq!(
        metric(&m, FAST_FAILURES) - metric(&before, FAST_FAILURES),
        1.0
    );
    assert_eq!(metric(&m, CIRCUIT_OPEN), 1.0);
}

/// A browser posts its completion and leaves while the token endpoint hangs: verigate notices,
/// drops the provider call (the provider sees its connection closed) long before the call's
/// 60 s timeout, and counts the request as gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_takes_its_provider_call_with_it() {
    // It counts every iamport client that left in the process: alone, only its own.
    if !skip::alone("provider_outage::a_client_that_leaves_takes_its_provider_call_with_it") {
        return;
    }
    use tokio::io::AsyncWriteExt;
    let (hung, accepted, mut seen) = hung_provider().await;
    let env = Env::with(
        Proxy::shop().provider(
            Provider::iamport()
                .base_url(format!("http://{hung}"))
                .timeout("60s"),
        ),
    )
    .await;
    let before = metric(&env.metrics().await, GONE);
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let body =
        json!({"imp_uid": "imp_123456789012", "merchant_uid": flow.merchant_uid()}).to_string();
    let cookies = b
        .jar
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let head = format!(
        "POST /.verigate/iamport/complete HTTP/1.1\r\nhost: {}\r\naccept: application/json\r\n\
         content-type: application/json\r\ncookie: {cookies}\r\ncontent-length: {}\r\n\r\n",
        env.proxy,
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    // verigate is waiting on getToken for this request: the browser goes away.
    assert_eq!(seen.recv().await, Some(Seen::Accepted));
    drop(s);
    assert_eq!(
        seen.recv().await,
        Some(Seen::Closed),
        "the call was dropped"
    );
    let m = env.metrics_until(|m| metric(m, GONE) - before >= 1.0).await;
    assert_eq!(metric(&m, GONE) - before, 1.0);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // Nothing stuck: the next completion starts a fetch of its own.
    let mut b = env.browser();
    let flow = b.start_iamport("/member").await;
    let next = {
        let imp = Value::String("imp_123456789012".into());
        let nonce = Value::String(flow.merchant_uid());
        tokio::spawn(async move { b.complete(&imp, &nonce).await.status() })
    };
    assert_eq!(seen.recv().await, Some(Seen::Accepted));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    next.abort();
}
