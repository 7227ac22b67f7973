//! WebSocket handshakes past Pingora 0.9.1's upgrade race (its issue #946).
//!
//! For a request without a body, Pingora's downstream half queues the end of that (empty)
//! body for its upstream half before the app has answered. When the upstream half reads the
//! app's `101` first and that end second, it takes the end for the end of the upgraded tunnel
//! and closes it: the client gets its `101`, then nothing. Which of the two it reads first is
//! tokio's random pick whenever both are ready, so an app that answers at once loses about
//! one handshake in two (`tests/it/websocket.rs` `fast_101_and_large_frames`).
//!
//! verigate reads a WebSocket handshake that has no body as one whose chunked body is still
//! open: no body end is queued, and the `101` turns that reader into the tunnel's
//! pass-through (Pingora converts an unfinished request body on a successful upgrade). The app
//! gets the handshake with `Content-Length: 0`, as it came (no body). Only `GET` handshakes over
//! HTTP/1.1 with `Upgrade: websocket` and neither `Content-Length` nor `Transfer-Encoding`
//! are held this way; any other upgrade keeps Pingora's own handling.

use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// Hold the handshake's body end (see the module). Call before anything reads the request
/// body or asks whether it has one; returns whether it was held.
pub fn hold_body_end(session: &mut Session) -> bool {
    if !is_websocket_handshake(session.req_header()) {
        return false;
    }
    session
        .req_header_mut()
        .insert_header(http::header::TRANSFER_ENCODING, "chunked")
        .is_ok()
}

/// A `GET` over HTTP/1.1 asking for `Upgrade: websocket`, without body framing.
fn is_websocket_handshake(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req.method == http::Method::GET
        && req
            .headers
            .get(http::header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && !req.headers.contains_key(http::header::CONTENT_LENGTH)
        && !req.headers.contains_key(http::header::TRANSFER_ENCODING)
}

/// The handshake to the app: as it came from the client (no body), whatever the held reader.
pub fn restore_framing(upstream: &mut RequestHeader) -> pingora::Result<()> {
    upstream.remove_header(&http::header::TRANSFER_ENCODING);
    upstream.insert_header(http::header::CONTENT_LENGTH, "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, version: http::Version, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/live", None).expect("request");
        r.set_version(version);
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    #[test]
    fn only_bodiless_websocket_gets_over_http11_are_held() {
        let v11 = http::Version::HTTP_11;
        assert!(is_websocket_handshake(&req(
            "GET",
            v11,
            &[("Upgrade", "websocket")]
        )));
        assert!(is_websocket_handshake(&req(
            "GET",
            v11,
            &[("upgrade", "WebSocket")]
        )));
        assert!(!is_websocket_handshake(&req(
            "GET",
            v11,
            &[("Upgrade", "h2c")]
        )));
        assert!(!is_websocket_handshake(&req("GET", v11, &[])));
        assert!(!is_websocket_handshake(&req(
            "POST",
            v11,
            &[("Upgrade", "websocket")]
        )));
        assert!(!is_websocket_handshake(&req(
            "GET",
            http::Version::HTTP_10,
            &[("Upgrade", "websocket")]
        )));
        assert!(!is_websocket_handshake(&req(
            "GET",
            v11,
            &[("Upgrade", "websocket"), ("Content-Length", "0")]
        )));
        assert!(!is_websocket_handshake(&req(
            "GET",
            v11,
            &[("Upgrade", "websocket"), ("Transfer-Encoding", "chunked")]
        )));
    }

    #[test]
    fn the_app_gets_no_body_framing_but_a_zero_length() {
        let mut r = req(
            "GET",
            http::Version::HTTP_11,
            &[("Upgrade", "websocket"), ("Transfer-Encoding", "chunked")],
        );
        restore_framing(&mut r).expect("restore");
        assert!(r.headers.get("transfer-encoding").is_none());
        assert_eq!(
            r.headers.get("content-length").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
    }
}
