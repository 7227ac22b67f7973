//! A total deadline for request headers. Pingora times each read of a request head on its own
//! (and does not time the head of a second request on a kept-alive connection at all), so a
//! client that drips one byte a second would hold a connection and a task forever. This
//! wrapper reads the head of every HTTP/1 request itself, under `clients.header_timeout` from
//! the request's first byte (and an idle bound before it), then hands the bytes to Pingora's
//! parser as they arrived: Pingora still parses and refuses exactly as before.
//!
//! Both bounds are Pingora's timer-thread timeouts (`pingora::time::timeout`, 10 ms buckets), not
//! Tokio's: a Tokio timer armed while the runtime's timer wheel is empty unparks the runtime's
//! driver, which cost every kept-alive request one `write` to the runtime's eventfd (strace:
//! 1.00 per request) and an extra epoll event.

use super::Live;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora::protocols::http::v1::server::HttpSession as H1Session;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a kept-alive connection may sit idle before its next request starts.
pub const IDLE: Duration = Duration::from_secs(60);
/// Past this many bytes without the end of the head, Pingora's own limit (and answer) applies.
const HEAD_LIMIT: usize = 1024 * 1024 + 1;

const TIMEOUT_ANSWER: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

pub struct HeaderDeadline<A> {
    inner: Arc<A>,
    live: Arc<ArcSwap<Live>>,
}

impl<A> HeaderDeadline<A> {
    pub fn new(inner: A, live: Arc<ArcSwap<Live>>) -> Self {
        HeaderDeadline {
            inner: Arc::new(inner),
            live,
        }
    }
}

/// Whether `buf` holds a whole request head: a request line, then headers, then an empty line.
/// Empty lines before the request line (which servers skip, RFC 9112 section 2.2) are not a
/// head: they neither end the deadline nor count as one. A line ends at LF, with or without CR
/// before it, as Pingora's parser reads it.
fn head_complete(buf: &[u8]) -> bool {
    let start = buf
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(buf.len());
    let head = &buf[start..];
    head.windows(2).any(|w| w == b"\n\n") || head.windows(3).any(|w| w == b"\n\r\n")
}

#[async_trait]
impl<A> HttpServerApp for HeaderDeadline<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        // HTTP/2 streams arrive parsed; a pipelining session carries bytes of its own.
        let mut h1 = match session {
            ServerSession::H1(h) if !h.pipelining_enabled() => h,
            other => return self.inner.process_new_http(other, shutdown).await,
        };
        let deadline = self.live.load().cfg.clients.header_timeout;
        let keepalive = h1.get_keepalive_timeout();
        let reuses = h1.get_keepalive_reuses_remaining();
        let user = h1.take_connection_user_context();
        let idle = match keepalive {
            Some(s) if s > 0 => Duration::from_secs(s).min(IDLE),
            _ => IDLE,
        };
        let mut stream = h1.into_inner();
        let mut buf = BytesMut::with_capacity(4096);
        // The wait for a request's first byte is idle time, not the client's head.
        match pingora::time::timeout(idle, stream.read_buf(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
        let head = pingora::time::timeout(deadline, async {
            while !head_complete(&buf) && buf.len() < HEAD_LIMIT {
                match stream.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
        match head {
            Ok(true) => {}
            Ok(false) => return None,
            Err(_) => {
                crate::metrics::request("-", "header_timeout");
                let _ = pingora::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(TIMEOUT_ANSWER).await;
                    let _ = stream.flush().await;
                })
                .await;
                return None;
            }
        }
        let mut h1 = H1Session::new(stream);
        h1.set_server_keepalive(keepalive);
        h1.set_keepalive_reuses_remaining(reuses);
        h1.set_connection_user_context(user);
        h1.set_pipelined_prefix(buf);
        self.inner
            .process_new_http(ServerSession::H1(h1), shutdown)
            .await
    }

    fn h2_options(&self) -> Option<pingora::protocols::http::v2::server::H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }

    async fn http_cleanup(&self) {
        self.inner.http_cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::head_complete;

    #[test]
    fn heads_end_at_the_blank_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\n"));
        // LF, then CRLF, ends a head too.
        assert!(head_complete(b"GET / HTTP/1.1\nHost: a\n\r\n"));
        // Empty lines before the request line are no head, however many.
        for prefix in [
            &b"\r\n"[..],
            b"\n",
            b"\r\n\r\n",
            b"\n\n",
            b"\r\n\n",
            b"\n\r\n",
        ] {
            assert!(!head_complete(prefix), "{prefix:?}");
            let mut partial = prefix.to_vec();
            partial.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n");
            assert!(!head_complete(&partial), "{prefix:?} then a partial head");
            partial.extend_from_slice(b"\r\n");
            assert!(head_complete(&partial), "{prefix:?} then a whole head");
        }
    }

    proptest::proptest! {
        /// Whatever empty lines come before a request line, the head is complete exactly when
        /// the same head without them is; empty lines alone are never a head. (A head that
        /// starts with its request line's first byte: every input of this alphabet is such
        /// a head after some empty lines, or empty lines only.)
        #[test]
        fn leading_empty_lines_never_complete_a_head(
            prefix in proptest::collection::vec(proptest::sample::select(vec![b'\r', b'\n']), 0..12),
            rest in proptest::collection::vec(proptest::sample::select(vec![b'G', b' ', b':', b'\r', b'\n']), 0..24),
        ) {
            let mut head = vec![b'G'];
            head.extend_from_slice(&rest);
            let mut both = prefix.clone();
            both.extend_from_slice(&head);
            proptest::prop_assert_eq!(head_complete(&both), head_complete(&head));
            proptest::prop_assert!(!head_complete(&prefix));
        }
    }
}
