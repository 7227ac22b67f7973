//! The small pieces every page and flow under `flow_prefix` uses (addresses, the request's
//! query, body and origin, the flow cookie's end, the public base URL), below the flows that
//! use them: `flow` and `guardian` both build on this module, neither on the other's helpers.

use crate::cookies;
use crate::live::Live;
use crate::routing::path::normalize;
use crate::routing::Route;
use pingora::proxy::Session;
use pingora::Result;

/// How long a started flow may take (the flow cookie's life).
pub const FLOW_TTL_SECS: i64 = 600;

pub(crate) fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn verify_url(prefix: &str, return_to: &str) -> String {
    format!("{prefix}/verify?return_to={}", enc(return_to))
}

pub(crate) fn query_param(session: &Session, name: &str) -> Option<String> {
    let q = session.req_header().uri.query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The route a `return_to` on this request's host leads to (None: no route, or not a path).
pub(crate) fn route_for<'a>(
    live: &'a Live,
    session: &Session,
    return_to: &str,
) -> Option<&'a Route> {
    let host = crate::routing::host::request_host(session.req_header());
    let routes = &live.cfg.routes;
    let norm = normalize(return_to).ok()?;
    let i = routes
        .find(&[&http::Method::GET], host, &norm)
        .and_then(|f| f.route())?;
    routes.get(i)
}

pub(crate) fn clear_flow_cookie(live: &Live) -> String {
    cookies::clear_flow(&live.cfg.session, &live.cfg.flow_prefix)
}

/// Base URL for absolute links back to verigate (provider return URLs): the configured public
/// URL, the one configured for the request's host, or (none configured) the request's host
/// when a route names it (or no route names any host). None: a host verigate does not serve,
/// which never ends up in a return URL.
pub(crate) fn public_base(live: &Live, session: &Session) -> Option<String> {
    use crate::config::PublicUrls;
    let req = session.req_header();
    let host = crate::routing::host::request_host(req).filter(|h| {
        h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
    });
    match &live.cfg.public_url {
        PublicUrls::One(u) => Some(u.clone()),
        PublicUrls::PerHost(list) => {
            let h = host?;
            list.iter()
                .find(|p| p.host.matches(h))
                .map(|p| p.base_for(h))
        }
        PublicUrls::FromHost => {
            let h = host?;
            let routes = live.cfg.routes.routes();
            let named = routes.iter().any(|r| !r.rule.hosts().is_empty());
            if named
                && !routes
                    .iter()
                    .any(|r| r.rule.hosts().iter().any(|p| p.matches(h)))
            {
                return None;
            }
            // The port as the request named it (the request host has none).
            let authority = req
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .or_else(|| req.uri.authority().map(|a| a.as_str()))?;
            let ok = authority.len() <= 255
                && authority
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
            if !ok {
                return None;
            }
            let scheme = if live.cfg.session.secure || live.cfg.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Some(format!("{scheme}://{authority}"))
        }
    }
}

/// Read a small request body (JSON posts from the page or provider callbacks).
pub(crate) async fn read_body(session: &mut Session, limit: usize) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
        if body.len() > limit {
            return Ok(None);
        }
    }
    Ok(Some(body))
}

/// Where a page on the way to verifying (the choice page, a start page) says that this
/// browser's form is kept; filled in by [`kept_note`].
pub(crate) const KEPT_MARK: &str = "<!--verigate-kept-->";

/// Whether a request comes from this site's own pages: `Sec-Fetch-Site` (`same-origin`, or
/// `none` for a person's own action) when the browser sends it, else `Origin`'s host must be
/// the request's. A client that sends neither (not a browser) is not a cross-site form.
pub(crate) fn same_origin(session: &Session) -> bool {
    let h = &session.req_header().headers;
    let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    if text("origin").is_none() {
        return true;
    }
    names_this_host(session, "origin")
}

/// Whether the URL in the request's header `name` (`Origin`, `Referer`) names the request's
/// own host and port (`Host`, or the HTTP/2 authority), case aside.
pub(crate) fn names_this_host(session: &Session, name: &str) -> bool {
    let req = session.req_header();
    let text = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    let host = text("host").or_else(|| req.uri.authority().map(|a| a.as_str()));
    let named = text(name)
        .and_then(|u| u.parse::<http::Uri>().ok())
        .and_then(|u| u.authority().map(|a| a.as_str().to_ascii_lowercase()));
    matches!((named, host), (Some(n), Some(h)) if n == h.to_ascii_lowercase())
}
