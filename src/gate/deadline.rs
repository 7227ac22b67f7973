//! A total deadline for request headers. Pingora times each read of a request head on its own
//! (and does not time the head of a second request on a kept-alive connection at all), so a
//! client that drips one byte a second would hold a connection and a task forever. This
//! wrapper reads the head of every HTTP/1 request itself, under `clients.header_timeout` from
//! the request's first byte (and an idle bound before it), then hands the bytes to Pingora's
//! parser as they arrived: Pingora still parses and refuses exactly as before.
//!
//! It reads from the connection before Pingora's session for the request exists (it runs the
//! connection's loop of requests in Pingora's place, [`ServerApp`]): a session is made once
//! per request and moved once, as without the deadline. Taking the connection back out of a
//! session Pingora had made, and making another, cost every request a second session and
//! five copies of it (~16,000 instructions).
//!
//! Both bounds are Pingora's timer-thread timeouts (`pingora::time::timeout`, 10 ms buckets), not
//! Tokio's: a Tokio timer armed while the runtime's timer wheel is empty unparks the runtime's
//! driver, which cost every kept-alive request one `write` to the runtime's eventfd (strace:
//! 1.00 per request) and an extra epoll event.

use super::Live;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a kept-alive connection may sit idle before its next request starts. Pingora's own
/// keep-alive bound is never shorter (60 s for a connection's first request, none after a
/// request that asked for keep-alive), so this one bound is the idle bound.
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

/// Whether a buffer that only grows holds a whole request head yet: a request line, then
/// headers, then an empty line. Empty lines before the request line (which servers skip, RFC
/// 9112 section 2.2) are not a head: they neither end the deadline nor count as one. A line
/// ends at LF, with or without CR before it, as Pingora's parser reads it.
///
/// Each call reads only the bytes that arrived since the last one (and the two before them,
/// where an end of head may have begun): the work is linear in the bytes received, however
/// they are split.
#[derive(Debug, Default)]
struct HeadScan {
    /// Where the request line starts, once a byte other than CR or LF arrived.
    start: Option<usize>,
    /// How far the buffer has been read.
    scanned: usize,
    /// The head's end was seen.
    found: bool,
}

impl HeadScan {
    /// `buf` is the buffer of the last call with more bytes appended.
    fn complete(&mut self, buf: &[u8]) -> bool {
        if self.found {
            return true;
        }
        let start = match self.start {
            Some(s) => s,
            None => match buf[self.scanned..]
                .iter()
                .position(|b| *b != b'\r' && *b != b'\n')
            {
                Some(i) => {
                    let s = self.scanned + i;
                    self.start = Some(s);
                    self.scanned = s;
                    s
                }
                None => {
                    self.scanned = buf.len();
                    return false;
                }
            },
        };
        // Most heads arrive whole, their end the buffer's last bytes: no scan for them. (An
        // end of head anywhere from the request line on completes it, the first or not.)
        let tail = |end: &[u8]| buf.ends_with(end) && buf.len() - end.len() >= start;
        if tail(b"\n\r\n") || tail(b"\n\n") {
            self.scanned = buf.len();
            self.found = true;
            return true;
        }
        // An end of head (LF LF, LF CR LF) that began in the last two bytes read before.
        let from = self.scanned.saturating_sub(2).max(start);
        self.scanned = buf.len();
        let rest = &buf[from..];
        let mut at = 0;
        while let Some(i) = memchr::memchr(b'\n', &rest[at..]) {
            let lf = at + i;
            match rest.get(lf + 1..) {
                Some([b'\n', ..]) | Some([b'\r', b'\n', ..]) => {
                    self.found = true;
                    return true;
                }
                _ => at = lf + 1,
            }
        }
        false
    }
}

/// Whether `buf` holds a whole request head ([`HeadScan`] on the whole buffer at once).
#[cfg(test)]
fn head_complete(buf: &[u8]) -> bool {
    HeadScan::default().complete(buf)
}

impl<A> HeaderDeadline<A> {
    /// Read the head of the connection's next request into a buffer, under the idle bound and
    /// then `deadline` from its first byte. None: the connection ends (closed, idle too long,
    /// or the deadline passed, after a 408 to the client).
    async fn read_head(&self, stream: &mut Stream, idle: &mut Idle) -> Option<BytesMut> {
        let mut buf = BytesMut::with_capacity(4096);
        // The wait for a request's first byte is idle time, not the client's head.
        match idle.wait(stream.read_buf(&mut buf)).await {
            Some(Ok(n)) if n > 0 => {}
            _ => return None,
        }
        let mut scan = HeadScan::default();
        // Most heads arrive whole in their first read: no deadline is armed for them
        // (Pingora's timeout arms its timer on the first poll that is not ready).
        if scan.complete(&buf) {
            return Some(buf);
        }
        let deadline = self.live.load().cfg.clients.header_timeout;
        let head = pingora::time::timeout(deadline, async {
            while !scan.complete(&buf) && buf.len() < HEAD_LIMIT {
                match stream.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
        match head {
            Ok(true) => Some(buf),
            Ok(false) => None,
            Err(_) => {
                crate::metrics::request("-", "header_timeout");
                let _ = pingora::time::timeout(Duration::from_secs(1), async {
                    let _ = stream.write_all(TIMEOUT_ANSWER).await;
                    let _ = stream.flush().await;
                })
                .await;
                None
            }
        }
    }
}

/// The idle bound ([`IDLE`]) of one connection's waits for a request's first byte, on one
/// timer: armed by the first wait that has to wait, and kept across the connection's requests.
/// A timer that fires before the wait in progress has lasted [`IDLE`] (it was armed for an
/// earlier one) is armed again for the rest. Arming a timer for every wait cost each
/// kept-alive request ~2,000 instructions (Pingora's timer tree, two `Arc`s).
#[derive(Default)]
struct Idle {
    timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Idle {
    /// `read` to its end, or None once it has waited [`IDLE`].
    async fn wait<F: Future>(&mut self, read: F) -> Option<F::Output> {
        let since = Instant::now();
        let mut read = std::pin::pin!(read);
        std::future::poll_fn(|cx| {
            if let Poll::Ready(v) = read.as_mut().poll(cx) {
                return Poll::Ready(Some(v));
            }
            loop {
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(pingora::time::sleep(IDLE)));
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => {
                        let waited = since.elapsed();
                        if waited >= IDLE {
                            return Poll::Ready(None);
                        }
                        self.timer = Some(Box::pin(pingora::time::sleep(IDLE - waited)));
                    }
                }
            }
        })
        .await
    }
}

/// Whether Pingora would serve `stream` as plain HTTP/1 (its `ServerApp::process_new`): no
/// ALPN, or ALPN `http/1.1`, and neither h2c nor a custom protocol configured.
fn plain_h1(stream: &Stream, options: Option<&HttpServerOptions>) -> bool {
    let h2c = options.is_some_and(|o| o.h2c) && stream.get_ssl_digest().is_none();
    let custom = options.is_some_and(|o| o.force_custom);
    !h2c && !custom && matches!(stream.selected_alpn_proto(), None | Some(ALPN::H1))
}

/// The connection loop of Pingora's `ServerApp` for HTTP apps, with each request's head read
/// first (under the deadline) from the connection itself, before Pingora's session for the
/// request is made: one session per request, moved once, as without the deadline. HTTP/2,
/// h2c and custom protocols are Pingora's own loop (`inner`'s), unchanged.
#[async_trait]
impl<A> ServerApp for HeaderDeadline<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if !plain_h1(&stream, self.inner.server_options()) {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let mut stream = stream;
        // What the previous request on this connection left for the next (none: the first).
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut idle = Idle::default();
        loop {
            let head = self.read_head(&mut stream, &mut idle).await?;
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                None => {
                    // As Pingora's loop: keep-alive unless the service is shutting down.
                    session.set_keepalive((!*shutdown.borrow()).then_some(60));
                    session.set_keepalive_reuses_remaining(
                        self.inner
                            .server_options()
                            .and_then(|o| o.keepalive_request_limit),
                    );
                }
            }
            let ServerSession::H1(h1) = &mut session else {
                return None;
            };
            // verigate turns no HTTP/1.1 pipelining on, so no session carries bytes of its
            // own (they would come before these).
            if h1.pipelining_enabled() {
                return None;
            }
            h1.set_pipelined_prefix(head);
            let (next, left) = self
                .inner
                .process_new_http(session, shutdown)
                .await?
                .consume();
            stream = next;
            settings = left;
        }
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::{head_complete, HeadScan, HEAD_LIMIT};

    /// The rule as first written (whole buffer, every time): what the scan must answer.
    fn reference(buf: &[u8]) -> bool {
        let start = buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(buf.len());
        let head = &buf[start..];
        head.windows(2).any(|w| w == b"\n\n") || head.windows(3).any(|w| w == b"\n\r\n")
    }

    /// `buf` fed to one scan in pieces ending at `cuts`: the answer after each piece.
    fn in_pieces(buf: &[u8], cuts: &[usize]) -> Vec<bool> {
        let mut scan = HeadScan::default();
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
        ends.push(buf.len());
        ends.sort_unstable();
        ends.dedup();
        ends.iter().map(|e| scan.complete(&buf[..*e])).collect()
    }

    #[test]
    fn heads_over_4_kib_and_near_the_limit() {
        for size in [4096 + 1, 64 * 1024, HEAD_LIMIT - 200] {
            let mut head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: ".to_vec();
            head.resize(size - 4, b'x');
            head.extend_from_slice(b"\r\n");
            assert!(!head_complete(&head), "{size}: no empty line yet");
            let cuts: Vec<usize> = (1..head.len()).step_by(1000).collect();
            assert!(in_pieces(&head, &cuts).iter().all(|c| !c), "{size}");
            head.extend_from_slice(b"\r\n");
            assert_eq!(head.len(), size);
            assert!(head_complete(&head), "{size}");
            let mut cuts: Vec<usize> = (1..head.len()).step_by(1000).collect();
            // The last CR LF CR LF split between two reads, each way.
            cuts.extend([head.len() - 1, head.len() - 2, head.len() - 3]);
            let answers = in_pieces(&head, &cuts);
            assert_eq!(answers.last(), Some(&true), "{size}");
            assert_eq!(
                answers.iter().filter(|c| **c).count(),
                1,
                "{size}: complete only at the end"
            );
        }
    }

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

        /// Arbitrary bytes, split at arbitrary points: after every piece the scan answers
        /// what the rule answers for the whole buffer so far.
        #[test]
        fn any_split_answers_as_the_whole_buffer(
            bytes in proptest::collection::vec(proptest::sample::select(vec![b'G', b'\r', b'\n', b'x', b':', 0u8, 0xff]), 0..64),
            cuts in proptest::collection::vec(0usize..65, 0..8),
        ) {
            let mut ends: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            ends.push(bytes.len());
            ends.sort_unstable();
            ends.dedup();
            let got = in_pieces(&bytes, &cuts);
            let want: Vec<bool> = ends.iter().map(|e| reference(&bytes[..*e])).collect();
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(head_complete(&bytes), reference(&bytes));
        }
    }
}
