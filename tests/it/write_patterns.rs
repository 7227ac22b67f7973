//! Apps that write their answer in pieces with Nagle's algorithm on (headers, then body;
//! chunk by chunk; line by line), on a kept-alive upstream connection: every answer arrives
//! whole, the connection is reused, and verigate's end of it is out of delayed-ACK "pingpong"
//! mode once the request is written, so that each piece is ACKed as soon as verigate reads it
//! and the app's next piece is not held back for the 40 ms of a delayed ACK. No time is
//! asserted: the mechanism is read from the kernel (`/proc/net/tcp`), and the latency is in
//! `benches/load.sh` ("real apps").

use crate::common::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// `/proc/net/tcp`'s address form: the IPv4 address as the kernel's u32 in hex (bytes
/// reversed on little-endian machines), the port in hex.
fn proc_addr(a: SocketAddr) -> String {
    let SocketAddr::V4(v4) = a else {
        panic!("IPv4 only: {a}")
    };
    let ip = u32::from_ne_bytes(v4.ip().octets());
    format!("{ip:08X}:{:04X}", v4.port())
}

/// Whether the socket `local` → `remote` is in delayed-ACK pingpong mode: `/proc/net/tcp`
/// prints `(quick << 1) | pingpong` after the ATO of every connected socket. None when no
/// such socket is listed.
fn pingpong(local: SocketAddr, remote: SocketAddr) -> Option<bool> {
    let (l, r) = (proc_addr(local), proc_addr(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 14 && f[1] == l && f[2] == r)
            .then(|| f[14].parse::<u32>().ok().map(|v| v & 1 == 1))?
    })
}

/// What the app saw: connections accepted, and each reused-connection request on which
/// verigate's socket stayed in pingpong mode (it must not).
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    stuck: Mutex<Vec<String>>,
    checked: AtomicUsize,
}

/// The answer to `path`, written in pieces (each piece one `write` with Nagle on).
fn pieces(path: &str, body: &str) -> Vec<String> {
    match path {
        // Headers in one send, the body in another (Python's http.server, many CGI bridges).
        "/split" => vec![
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
                body.len()
            ),
            body.to_string(),
        ],
        // Chunked, a send per chunk and one for the end.
        "/chunked" => {
            let mut v = vec!["HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_string()];
            for part in body.split_inclusive(' ') {
                v.push(format!("{:x}\r\n{part}\r\n", part.len()));
            }
            v.push("0\r\n\r\n".to_string());
            v
        }
        // The status line, each header line, the blank line and the body, each its own send:
        // the head itself arrives in pieces.
        _ => vec![
            "HTTP/1.1 200 OK\r\n".to_string(),
            "content-type: text/plain\r\n".to_string(),
            format!("content-length: {}\r\n", body.len()),
            "\r\n".to_string(),
            body.to_string(),
        ],
    }
}

/// The app: keep-alive, Nagle on (tokio's default). Before answering a bodiless request on a
/// reused connection it waits (up to 3 s, within the proxy's 5 s read timeout) for verigate's end to leave pingpong mode.
async fn spawn_app(seen: Arc<Seen>) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            seen.connections.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let (ours, theirs) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
                let mut conn = RawConn::new(s);
                let mut n = 0;
                while let Some(head) = conn.head().await {
                    n += 1;
                    let len = content_length(&head);
                    let got = conn.body(len).await;
                    let line = head.lines().next().unwrap_or("").to_string();
                    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                    if n > 1 && len == 0 {
                        seen.checked.fetch_add(1, Ordering::SeqCst);
                        let deadline = Instant::now() + Duration::from_secs(3);
                        while pingpong(theirs, ours) != Some(false) {
                            if Instant::now() > deadline {
                                let state = pingpong(theirs, ours);
                                seen.stuck
                                    .lock()
                                    .unwrap()
                                    .push(format!("{line} (request {n}): {state:?}"));
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    let body = format!("{path} answered {n} with {got} bytes read ");
                    for p in pieces(&path, &body) {
                        if conn.s.write_all(p.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_written_in_pieces_arrive_whole_on_a_reused_connection_acked_at_once() {
    let seen = Arc::new(Seen::default());
    let app = spawn_app(seen.clone()).await;
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(app))).await;
    let c = client();
    let mut n = 0;
    for round in 0..3 {
        for path in ["/split", "/chunked", "/lines"] {
            n += 1;
            let r = c.get(env.url(path)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            let text = r.text().await.unwrap();
            assert_eq!(
                text,
                format!("{path} answered {n} with 0 bytes read "),
                "round {round}"
            );
        }
        // A request with a body: its answer, in pieces too, arrives whole.
        n += 1;
        let r = c
            .post(env.url("/split"))
            .body("form=1&x=2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.text().await.unwrap(),
            format!("/split answered {n} with 10 bytes read ")
        );
    }
    // One upstream connection served them all (the pool's benefit is kept) ...
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    // ... and on every bodiless request after the first, verigate's end left pingpong mode
    // before the answer was written.
    assert_eq!(seen.checked.load(Ordering::SeqCst), 8);
    let stuck = seen.stuck.lock().unwrap().clone();
    assert!(stuck.is_empty(), "still in pingpong mode: {stuck:#?}");
}
