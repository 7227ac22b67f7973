//! `redirect_http_listen`: a plain-HTTP listener that answers every request with a
//! `308 Permanent Redirect` to the same host and path over HTTPS (308 keeps the method and
//! body, so a form post is sent again to the HTTPS address). Nothing is proxied from it.

use crate::live::Live;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct RedirectToHttps {
    pub live: Arc<ArcSwap<Live>>,
    /// The port the HTTPS listener is bound to (when `redirect_https_port` does not say
    /// another).
    pub bound_port: u16,
}

/// Where a request to the plain listener is sent: `https://HOST[:PORT]PATH?QUERY`, from the
/// request's Host (its port replaced) and its target, or None when either is not one verigate
/// reads (no Host, a Host outside the host grammar, a target that is not a path).
pub fn location(req: &pingora::http::RequestHeader, port: u16) -> Option<String> {
    // The gate's host grammar and agreement rules, on this listener too.
    crate::gate::target::host(req).ok()?;
    let host =
        crate::routing::host::parse_authority(req.headers.get(http::header::HOST)?.as_bytes())
            .ok()?;
    let target = match crate::gate::target::classify(req).ok()? {
        crate::gate::target::Target::Origin => std::str::from_utf8(req.raw_path()).ok()?,
        crate::gate::target::Target::Absolute(_) => req.uri.path_and_query()?.as_str(),
        crate::gate::target::Target::Asterisk => return None,
    };
    let port = if port == 443 {
        String::new()
    } else {
        format!(":{port}")
    };
    Some(format!("https://{}{port}{target}", host.host))
}

#[async_trait]
impl ServeHttp for RedirectToHttps {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let port = self
            .live
            .load()
            .cfg
            .redirect_https_port
            .unwrap_or(self.bound_port);
        let to =
            location(session.req_header(), port).and_then(|l| http::HeaderValue::try_from(l).ok());
        let mut resp = Response::builder();
        let body = match to {
            Some(to) => {
                crate::metrics::request("-", "redirected_to_https");
                resp = resp.status(308).header(http::header::LOCATION, to);
                Vec::new()
            }
            None => {
                crate::metrics::request("-", "bad_request_target");
                resp = resp
                    .status(400)
                    .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8");
                b"400 bad_request_target: this address only redirects to HTTPS\n".to_vec()
            }
        };
        resp.header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::location;

    fn req(target: &str, host: Option<&str>) -> pingora::http::RequestHeader {
        let mut r = pingora::http::RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        if let Some(h) = host {
            r.insert_header("host", h).unwrap();
        }
        r
    }

    #[test]
    fn same_host_and_target_over_https() {
        for (target, host, port, want) in [
            (
                "/signup?a=1",
                "shop.example",
                443,
                "https://shop.example/signup?a=1",
            ),
            (
                "/x",
                "shop.example:8080",
                8443,
                "https://shop.example:8443/x",
            ),
            ("/", "[::1]:80", 443, "https://[::1]/"),
            (
                "http://shop.example/y?q",
                "shop.example",
                443,
                "https://shop.example/y?q",
            ),
        ] {
            assert_eq!(
                location(&req(target, Some(host)), port).as_deref(),
                Some(want)
            );
        }
    }

    #[test]
    fn nothing_for_what_verigate_would_not_read() {
        for (target, host) in [
            ("/x", None),
            ("/x", Some("user@shop.example")),
            ("/x", Some("shop.example/evil")),
            ("*", Some("shop.example")),
            ("http://other.example/x", Some("shop.example")),
            ("/x", Some("shop.example,evil.example")),
            ("/x", Some("shop_x.example")),
            ("/x", Some("shop.example.")),
            ("/x", Some("shop.example:0443")),
            ("/x", Some("::1")),
        ] {
            assert_eq!(location(&req(target, host), 443), None, "{target} {host:?}");
        }
    }
}
