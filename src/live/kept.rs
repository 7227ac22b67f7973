//! The kept-request cookie as the flows and the gate read it: opened for this request's host,
//! carried into a verification flow, dropped at logout (the kept requests themselves: `gate::kept`).

use crate::cookies;
use crate::live::Live;
use crate::session::KeptClaims;
use crate::store::Store;
use pingora::http::RequestHeader;

/// The host a request names, as sessions and kept requests are bound to it.
pub fn host_of(req: &RequestHeader) -> Option<String> {
    crate::routing::host::request_host(req).map(str::to_ascii_lowercase)
}

/// This browser's kept-request cookie, opened (valid, unexpired, for this request's host).
pub fn cookie_of(live: &Live, req: &RequestHeader, now: i64) -> Option<KeptClaims> {
    let s = &live.cfg.session;
    let raw = cookies::read_kept(req, s)?;
    s.keys
        .open_kept(raw, now)
        .ok()
        .filter(|k| k.host.is_some() && k.host == host_of(req))
}

/// The kept request a verification flow starting on `req` for `return_to` is started for:
/// this browser's kept post for that address and host, when the start page was reached from
/// this site's own pages (`Sec-Fetch-Site: same-origin`, as the kept post's `303` leads
/// there; a browser that does not send the header is taken at its word). A start reached from
/// elsewhere (a link on another site, an address typed in) carries none: a kept cookie planted
/// in this browser is then never delivered with its person's identity.
pub fn for_flow(live: &Live, req: &RequestHeader, return_to: &str, now: i64) -> Option<String> {
    let site = req
        .headers
        .get("sec-fetch-site")
        .map(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    if site == Some(false) {
        return None;
    }
    cookie_of(live, req, now)
        .filter(|k| k.return_to == return_to)
        .map(|k| k.id)
}

/// Logout (and "verify as someone else"): this browser's kept request is dropped from the
/// store, never to be sent under the next person's identity. True when the browser has a
/// kept-request cookie to end.
pub async fn drop_for_logout(
    live: &Live,
    store: &dyn Store,
    req: &RequestHeader,
    now: i64,
) -> bool {
    let s = &live.cfg.session;
    let Some(raw) = cookies::read_kept(req, s) else {
        return false;
    };
    if let Ok(k) = s.keys.open_kept(raw, now) {
        if let Err(e) = store.take_request(&k.id).await {
            // The cookie still goes: without it nothing delivers the kept request, which
            // expires in the store by itself.
            tracing::warn!(error = %e, "store unavailable: a kept request left to expire");
        }
    }
    true
}
