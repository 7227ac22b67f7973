//! WebSocket through verigate: the upgrade request is an ordinary request to the gate (the same
//! route match, session check, header strip and identity headers), and after a `101` the
//! connection carries frames both ways. A real WebSocket app (tokio-tungstenite) behind it
//! records the handshakes it accepted.

use crate::common::*;
use futures::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderMap;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo app on 127.0.0.1:0; every accepted handshake's headers land in the list.
async fn ws_app() -> (std::net::SocketAddr, Arc<Mutex<Vec<HeaderMap>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                // tungstenite's callback type fixes the error (an HTTP response) it returns.
                #[allow(clippy::result_large_err)]
                let cb = |req: &Request, resp: Response| {
                    log.lock().expect("lock").push(req.headers().clone());
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(s, cb).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let reply = match m {
                            Message::Text(t) => Message::text(format!("echo:{t}")),
                            other => other,
                        };
                        if ws.send(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

fn ws_request(
    env: &Env,
    path: &str,
    cookie: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}{path}", env.proxy)
        .into_client_request()
        .expect("ws request");
    let h = req.headers_mut();
    // A forged identity header, in the underscore spelling some app servers fold into dashes.
    h.insert(
        "x_verified_unique_in_site",
        "forged".parse().expect("value"),
    );
    h.insert("x-verified-age-ok", "true".parse().expect("value"));
    if let Some(c) = cookie {
        h.insert("cookie", format!("vg={c}").parse().expect("value"));
    }
    req
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Open a WebSocket through verigate (a `101` expected) and exchange one text frame. No retry:
/// a tunnel closed at its first frame fails the test (Pingora 0.9.1's upgrade race, which
/// verigate holds off: `src/gate/upgrade.rs`; `fast_101_and_large_frames` counts it).
async fn open_and_echo(env: &Env, path: &str, cookie: Option<&str>, text: &str) -> Ws {
    let (mut ws, resp) = tokio_tungstenite::connect_async(ws_request(env, path, cookie))
        .await
        .expect("the handshake is accepted");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text(text)).await.expect("send");
    let got = ws
        .next()
        .await
        .expect("a frame, not the end")
        .expect("a frame, not a close (the upgrade race?)");
    assert_eq!(got, Message::text(format!("echo:{text}")));
    ws
}

async fn verified(env: &Env) -> String {
    let mut b = env.browser();
    let back = b
        .verify_redirect(env.sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(back.status(), 302, "verification ends in a redirect");
    b.jar.get("vg").expect("a session cookie").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_meets_the_gate() {
    let (app, seen) = ws_app().await;
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(app))).await;

    // No session: the handshake is refused by verigate (401 for a script; a WebSocket client
    // never follows a redirect) and never reaches the app.
    let err = tokio_tungstenite::connect_async(ws_request(&env, "/member/live", None))
        .await
        .expect_err("a handshake without a session is refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => {
            assert_eq!(resp.status(), 401, "{resp:?}")
        }
        other => panic!("expected an HTTP refusal, got {other}"),
    }
    // A forged, unreadable or expired session cookie is no session.
    for bad in ["forged", "AAAA", ""] {
        let err = tokio_tungstenite::connect_async(ws_request(&env, "/member/live", Some(bad)))
            .await
            .expect_err("a handshake with a bad session is refused");
        assert!(
            matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 401),
            "{err}"
        );
    }
    assert!(
        seen.lock().expect("lock").is_empty(),
        "the app saw a handshake"
    );

    // With a session: 101, identity headers injected, forged ones and the session cookie
    // gone, and frames flow both ways.
    let vg = verified(&env).await;
    let mut ws = open_and_echo(&env, "/member/live", Some(&vg), "hello").await;
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let got = ws.next().await.expect("a frame").expect("a frame");
    assert_eq!(got, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await.expect("close");

    let handshakes = seen.lock().expect("lock").clone();
    assert_eq!(
        handshakes.len(),
        1,
        "the verified handshake reached the app"
    );
    for h in &handshakes {
        let unique: Vec<_> = h.get_all("x-verified-unique-in-site").iter().collect();
        assert_eq!(unique.len(), 1, "{h:?}");
        assert_ne!(unique[0], "forged");
        assert!(h.get("x_verified_unique_in_site").is_none(), "{h:?}");
        assert_eq!(
            h.get("x-verified-provider").map(|v| v.as_bytes()),
            Some(&b"iamport"[..]),
            "{h:?}"
        );
        let cookie = h
            .get("cookie")
            .map(|c| c.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        assert!(
            !cookie.contains(&vg),
            "the session cookie reached the app: {cookie}"
        );
        // The upgrade itself went through.
        assert_eq!(
            h.get("upgrade").map(|v| v.as_bytes().to_ascii_lowercase()),
            Some(b"websocket".to_vec())
        );
    }
}

/// A route whose rule the person does not meet refuses the handshake as it refuses any
/// request; a pass-through route lets a handshake through with identity headers stripped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_rules_and_pass_through() {
    let (app, seen) = ws_app().await;
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(app))).await;
    let mut b = env.browser();
    let back = b
        .verify_redirect(env.sandbox, "/member", &Person::born("20150101"))
        .await;
    assert_eq!(back.status(), 302);
    let child = b.jar.get("vg").expect("a session cookie").clone();

    // Under 19 on an adults-only route: 403, nothing reaches the app.
    let err = tokio_tungstenite::connect_async(ws_request(&env, "/adult/live", Some(&child)))
        .await
        .expect_err("under-age handshake refused");
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403),
        "{err}"
    );
    assert!(seen.lock().expect("lock").is_empty());

    // The pass-through route: the handshake goes through without a session, and the forged
    // identity headers are stripped there too.
    let _ws = open_and_echo(&env, "/public/live", None, "x").await;
    let handshakes = seen.lock().expect("lock").clone();
    assert_eq!(handshakes.len(), 1);
    let forged: Vec<_> = handshakes
        .iter()
        .flat_map(|h| h.keys())
        .filter(|k| {
            k.as_str()
                .to_ascii_lowercase()
                .replace('_', "-")
                .starts_with("x-verified-")
        })
        .collect();
    assert!(
        forged.is_empty(),
        "identity headers on a pass route: {forged:?}"
    );
}

/// The handshake key every client of the fast app sends (RFC 6455's example).
const FIXED_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket echo app that writes its `101` the moment it accepts a connection, before the
/// handshake's head has arrived (its clients all send `FIXED_KEY`), then reads that head and
/// echoes frames of any size. The answer is on verigate's side of the socket before verigate
/// has written the request: the ordering under which Pingora 0.9.1's upgrade race fires.
async fn fast_101_app() -> std::net::SocketAddr {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(FIXED_KEY.as_bytes())
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let mut c = RawConn::new(s);
                if c.head().await.is_none() {
                    return;
                }
                let mut ws =
                    tokio_tungstenite::WebSocketStream::from_raw_socket(c.s, Role::Server, None)
                        .await;
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Handshakes against the fast app, each followed by frames larger than the listener's 4 KiB
/// read buffer both ways (64 KiB, then 1 MiB). Without verigate's hold on the handshake's body
/// end, Pingora 0.9.1's upgrade race (its issue #946) tore down 10 to 19 of these 40 tunnels
/// at their first frame. The test counts tunnels closed at the first frame, prints the count
/// and fails above `MAX_TORN`; any other failure fails it at once. The metric agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_101_and_large_frames() {
    if !skip::alone("websocket::fast_101_and_large_frames") {
        return;
    }
    const HANDSHAKES: usize = 40;
    const MAX_TORN: usize = 0;
    let app = fast_101_app().await;
    let env = Env::with(Setup::new(Proxy::shop()).upstream(Upstream::At(app))).await;
    let mut torn = 0;
    for _ in 0..HANDSHAKES {
        let mut req = ws_request(&env, "/public/live", None);
        req.headers_mut()
            .insert("sec-websocket-key", FIXED_KEY.parse().expect("value"));
        let (mut ws, resp) = tokio_tungstenite::connect_async(req)
            .await
            .expect("the handshake is accepted");
        assert_eq!(resp.status(), 101);
        let first = Message::binary(vec![7u8; 64 * 1024]);
        ws.send(first.clone()).await.expect("send");
        match ws.next().await.expect("a frame or the close") {
            Ok(got) => assert_eq!(got, first),
            Err(tokio_tungstenite::tungstenite::Error::Protocol(
                tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => {
                torn += 1;
                continue;
            }
            Err(other) => panic!("a frame: {other}"),
        }
        let big = Message::binary((0..1 << 20).map(|i| i as u8).collect::<Vec<u8>>());
        ws.send(big.clone()).await.expect("send");
        assert_eq!(ws.next().await.expect("a frame").expect("a frame"), big);
        ws.close(None).await.expect("close");
        // The app's close answers ours; the tunnel ends with it.
        while let Some(Ok(_)) = ws.next().await {}
    }
    eprintln!(
        "fast 101: {torn} of {HANDSHAKES} tunnels torn down at the first frame (bound {MAX_TORN})"
    );
    let carried = |m: &str| {
        metric(
            m,
            r#"verigate_upgraded_tunnels_total{end="carried",route="everything-else"}"#,
        )
    };
    let m = env
        .metrics_until(|m| carried(m) as usize == HANDSHAKES - torn)
        .await;
    assert_eq!(carried(&m) as usize, HANDSHAKES - torn, "{m}");
    assert_eq!(
        metric(
            &m,
            r#"verigate_upgraded_tunnels_total{end="torn_down",route="everything-else"}"#
        ) as usize,
        torn
    );
    // The bound is stated above, whatever its value.
    #[allow(clippy::absurd_extreme_comparisons)]
    let within = torn <= MAX_TORN;
    assert!(within, "{torn} of {HANDSHAKES} tunnels torn down");
}

/// An app that answers a handshake with something other than `101` (here the echo app's
/// `200`): the client gets that answer, the app got the handshake without body framing of
/// verigate's (`Content-Length: 0`, no `Transfer-Encoding`), and the
/// next request is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_the_app_refuses() {
    let env = Env::start().await;
    let err = tokio_tungstenite::connect_async(ws_request(&env, "/public/refused", None))
        .await
        .expect_err("no 101");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 200),
        other => panic!("expected the app's answer, got {other}"),
    }
    let seen = env.last_upstream();
    assert_eq!(seen["headers"]["upgrade"][0], "websocket", "{seen}");
    assert_eq!(seen["headers"]["content-length"][0], "0", "{seen}");
    assert!(seen["headers"].get("transfer-encoding").is_none(), "{seen}");
    let next = env
        .client
        .get(format!("http://{}/public/after", env.proxy))
        .send()
        .await
        .expect("an answer");
    assert_eq!(next.status(), 200);
}
