//! A client that stops reading an answer must not pin the app's worker: verigate's write to it
//! gives up after `clients.send_timeout`, and closes the app's connection with it, so the
//! app's write fails and its worker takes the next request (docs/operations/faults.md, "A
//! client that stops reading").

use crate::common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// What the app's workers did, in the order they did it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// A worker took a request for this path.
    Took(String),
    /// A worker finished with it: `true` when the whole answer was written.
    Done(String, bool),
}

/// The big answer's length: far more than every socket buffer between the app and a client
/// that reads nothing (written in 64 KiB pieces as the connection takes them).
const BIG: usize = 1 << 30;

/// An app with `workers` workers, each serving one connection at a time (a pre-fork app
/// server): `/public/big` streams `BIG` bytes, anything else answers `small`. Every answer
/// closes its connection, so no worker waits on an idle keep-alive one.
async fn worker_limited_app(workers: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Event>) {
    let listener = Arc::new(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    );
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    for _ in 0..workers {
        let listener = listener.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let mut c = RawConn::new(s);
                let Some(head) = c.head().await else { continue };
                let path = head.split(' ').nth(1).unwrap_or("").to_string();
                let _ = tx.send(Event::Took(path.clone()));
                let whole = if path == "/public/big" {
                    let piece = vec![b'x'; 64 * 1024];
                    let mut ok = c
                        .s
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await
                        .is_ok();
                    let mut sent = 0;
                    while ok && sent < BIG {
                        ok = c.s.write_all(&piece).await.is_ok();
                        sent += piece.len();
                    }
                    ok
                } else {
                    c.s.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nsmall",
                    )
                    .await
                    .is_ok()
                };
                let _ = tx.send(Event::Done(path, whole));
            }
        });
    }
    (addr, rx)
}

/// Two workers, two clients that ask for the big answer and never read it, then an ordinary
/// client: it is answered once verigate has given up on the stalled two (a 1 s
/// `send_timeout` here), and the app saw both big answers fail before it took the small one.
/// Without the deadline the stalled clients hold both workers until they go away, and the
/// ordinary request ends in the upstream's read timeout (504).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_readers_release_the_apps_workers() {
    const WORKERS: usize = 2;
    let (app, mut events) = worker_limited_app(WORKERS).await;
    let env = Env::with(
        Setup::new(Proxy::shop().set("clients", json!({ "send_timeout": "1s" })))
            .upstream(Upstream::At(app)),
    )
    .await;

    // The stalled readers: a request each, then nothing read.
    let mut stalled = Vec::new();
    for _ in 0..WORKERS {
        let mut s = tokio::net::TcpStream::connect(env.proxy)
            .await
            .expect("connect");
        s.write_all(b"GET /public/big HTTP/1.1\r\nHost: shop.test\r\n\r\n")
            .await
            .expect("send");
        stalled.push(s);
    }
    for _ in 0..WORKERS {
        assert_eq!(events.recv().await, Some(Event::Took("/public/big".into())));
    }

    // Every worker is busy with a stalled reader: the ordinary request waits for one.
    let resp = env
        .client
        .get(format!("http://{}/public/small", env.proxy))
        .send()
        .await
        .expect("an answer");
    assert_eq!(resp.status(), 200, "the ordinary client is served");
    assert_eq!(resp.text().await.expect("body"), "small");

    // What the app saw: both big answers broke off (the app's write failed) and the small
    // one was taken only after a worker was freed that way, then written whole.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(events.recv().await.expect("an event"));
    }
    let broke = Event::Done("/public/big".into(), false);
    assert_eq!(seen.iter().filter(|e| **e == broke).count(), 2, "{seen:?}");
    let first_freed = seen.iter().position(|e| *e == broke);
    let took_small = seen
        .iter()
        .position(|e| *e == Event::Took("/public/small".into()));
    assert!(
        matches!((first_freed, took_small), (Some(f), Some(t)) if f < t),
        "{seen:?}"
    );
    assert!(
        seen.contains(&Event::Done("/public/small".into(), true)),
        "{seen:?}"
    );

    // The stalled clients' connections were closed by verigate: what they have is a part of
    // the answer, then the end.
    for s in stalled {
        use tokio::io::AsyncReadExt;
        let mut s = s;
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        assert!(got.starts_with(b"HTTP/1.1 200"), "a head first");
        assert!(got.len() < BIG, "the whole answer reached a stalled reader");
    }
}
