//! A browser's form post kept across the verification detour.
//!
//! A POST from this site's own page to a gated route, without a session: its body is read (up
//! to the route's `keep_request.max_body`, checked as it arrives), sealed with keys derived
//! from the session keys and bound to a random id, and put in the store for the route's
//! `keep_request.ttl`; the id goes into a sealed cookie of this browser. After verifying, the
//! browser comes back to the address it posted to (a GET): with a session issued since, that
//! GET takes the kept request from the store (one atomic take: once, on any instance) and the
//! gate sends it upstream in its place, through the same rules as any request. The browser
//! gets the app's answer at the address it posted to, as if it had been verified before.

use super::headers::Edit;
use crate::answers::browser_page;
use crate::config::RuntimeConfig;
use crate::live::Live;
use crate::routing::KeepRule;
use crate::session::{KeptClaims, Purpose};
use crate::store::Store;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::sync::Arc;
use std::time::Duration;

/// A request kept for after its verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub method: http::Method,
    /// The path and query it was sent to.
    pub target: String,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// What the store holds (sealed): a JSON head, then the body as it came.
#[derive(serde::Serialize, serde::Deserialize)]
struct Head {
    #[serde(rename = "m")]
    method: String,
    #[serde(rename = "p")]
    target: String,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    content_type: Option<String>,
}

impl Kept {
    /// `u32` length of the head (big-endian), the head, the body.
    fn encode(&self) -> Vec<u8> {
        let head = serde_json::to_vec(&Head {
            method: self.method.as_str().to_string(),
            target: self.target.clone(),
            content_type: self.content_type.clone(),
        })
        .unwrap_or_default();
        let mut out = Vec::with_capacity(4 + head.len() + self.body.len());
        out.extend_from_slice(&(head.len() as u32).to_be_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Kept> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let rest = &bytes[4..];
        let head: Head = serde_json::from_slice(rest.get(..len)?).ok()?;
        Some(Kept {
            method: http::Method::from_bytes(head.method.as_bytes()).ok()?,
            target: head.target,
            content_type: head.content_type,
            body: Bytes::copy_from_slice(&rest[len..]),
        })
    }
}

/// Why a request that could have been kept was not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotKept {
    /// Its body is over the route's cap (or its address too long to come back to).
    TooLarge,
    /// `clients.max_kept_requests` are waiting already.
    Full,
    /// The store could not keep it.
    StoreUnavailable,
    /// This client has `clients.max_kept_per_client` kept already (one client must not
    /// fill the store for everyone).
    TooMany,
}

impl NotKept {
    pub fn outcome(self) -> &'static str {
        match self {
            NotKept::TooLarge => "too_large",
            NotKept::Full => "full",
            NotKept::StoreUnavailable => "store_unavailable",
            NotKept::TooMany => "too_many",
        }
    }
}

/// How many form posts each client has had kept in the last ten minutes, on this instance: a
/// fixed window from its first. Clients are IPv4 addresses and IPv6 /64 networks.
pub struct Quota {
    counts: moka::sync::Cache<std::net::IpAddr, Arc<std::sync::atomic::AtomicU32>>,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            counts: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
        }
    }
}

impl Quota {
    /// May `client` keep one more (counted when it may)? A request without a known client
    /// address is admitted (the store's own cap still holds).
    pub fn admit(&self, client: Option<std::net::IpAddr>, max: u32) -> bool {
        use std::sync::atomic::Ordering;
        let Some(ip) = client else {
            return true;
        };
        let key = match ip {
            std::net::IpAddr::V4(_) => ip,
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                std::net::IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        };
        let n = self.counts.get_with(key, Default::default);
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
            (c < max).then_some(c + 1)
        })
        .is_ok()
    }
}

/// Whether this request is one to keep on a route keeping with `rule`: a POST sent from this
/// site's own page (`Sec-Fetch-Site: same-origin`, or without it an `Origin` naming this
/// host), without a method-override header (only the method, target, content type and body
/// are kept). Another site's form is never kept: verifying must not send it on.
pub fn keepable(req: &RequestHeader, rule: Option<&KeepRule>) -> Option<KeepRule> {
    let rule = rule?;
    if req.method != http::Method::POST || super::target::has_method_override_header(&req.headers) {
        return None;
    }
    from_this_site(req).then_some(*rule)
}

/// Sent from this site's own page: what the browser says (`Sec-Fetch-Site`), or else the
/// `Origin` every browser sends with a POST. Neither: not a browser's form.
fn from_this_site(req: &RequestHeader) -> bool {
    let text = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return site.eq_ignore_ascii_case("same-origin");
    }
    let Some(origin) = text("origin") else {
        return false;
    };
    let host = text("host").or_else(|| req.uri.authority().map(|a| a.as_str()));
    let origin_host = origin
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.as_str().to_ascii_lowercase()));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h.to_ascii_lowercase())
}

/// The body length a request declares (`Content-Length`), if any.
fn declared_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// The body of a request to keep, read as it arrives: `None` as soon as it passes `cap` (a
/// declared `Content-Length` over it is not read at all).
async fn read_capped(session: &mut Session, cap: usize) -> pingora::Result<Option<Bytes>> {
    let declared = declared_length(session);
    if declared.is_some_and(|n| n > cap as u64) {
        return Ok(None);
    }
    let mut body = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > cap {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// The longest path and query kept (as long as a `return_to` may be).
const MAX_TARGET: usize = 2048;

/// How much of an over-cap body is read and dropped before answering, so that the browser
/// reads the page instead of a reset connection; past it the connection is closed.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// How long the rest of such a body may take to be read and dropped.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Read and drop the rest of a body that will not be kept (up to [`DRAIN_LIMIT`] and
/// [`DRAIN_TIME`]). False when some is left unread: the connection must not be reused.
async fn drain(session: &mut Session) -> bool {
    let declared = declared_length(session);
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return false;
    }
    tokio::time::timeout(DRAIN_TIME, drain_all(session))
        .await
        .unwrap_or(false)
}

async fn drain_all(session: &mut Session) -> bool {
    let mut dropped = 0usize;
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                dropped += chunk.len();
                if dropped > DRAIN_LIMIT {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// A fresh kept request's id: 16 random bytes, base64url.
fn fresh_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Keep this request (its body read from the client, or `resumed`: one taken back from the
/// store that still needs a verification). Answers the cookie that binds it to this browser
/// and to a verification still to come (`prior`: the session it carried, if any, which will
/// not deliver it). Every body it does not keep has been read to its end, or the connection
/// is not reused.
#[allow(clippy::too_many_arguments)]
pub async fn keep(
    session: &mut Session,
    live: &Live,
    store: &dyn Store,
    rule: KeepRule,
    resumed: Option<Bytes>,
    prior: Option<&str>,
    deadline: Duration,
    admitted: bool,
) -> pingora::Result<Result<String, NotKept>> {
    if !admitted {
        if resumed.is_none() && !drain(session).await {
            session.set_keepalive(None);
        }
        return Ok(Err(NotKept::TooMany));
    }
    // The address it returns to rides in the kept cookie and in `return_to` (at most 2,048
    // bytes there): a longer one cannot come back.
    let body = match resumed {
        _ if target(session.req_header()).len() > MAX_TARGET => None,
        Some(b) => Some(b),
        None => match tokio::time::timeout(deadline, read_capped(session, rule.max_body)).await {
            // Reading the client's body failed (it paused too long, or broke off): its doing.
            Ok(read) => read.map_err(|e| e.into_down())?,
            Err(_) => {
                // The client's doing: answered `408`, counted as a client error.
                return Err(pingora::Error::explain(
                    pingora::ErrorType::ReadTimedout,
                    "a body to keep past its deadline",
                )
                .into_down());
            }
        },
    };
    let Some(body) = body else {
        if !drain(session).await {
            session.set_keepalive(None);
        }
        return Ok(Err(NotKept::TooLarge));
    };
    let req = session.req_header();
    let kept = Kept {
        method: req.method.clone(),
        target: target(req).to_string(),
        content_type: req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        body,
    };
    let now = crate::clock::unix_now();
    Ok(put(live, store, &kept, rule, now, prior).await)
}

/// Keep again a kept request that could not reach the app (it never connected), so that the
/// browser's reload sends it: any session of this browser issued since `since` delivers it.
pub async fn keep_again(
    live: &Live,
    store: &dyn Store,
    kept: &Kept,
    rule: KeepRule,
    since: i64,
) -> Result<String, NotKept> {
    put(live, store, kept, rule, since, None).await
}

/// Seal `kept` into the store under a fresh id: the cookie that names it.
async fn put(
    live: &Live,
    store: &dyn Store,
    kept: &Kept,
    rule: KeepRule,
    kept_at: i64,
    prior: Option<&str>,
) -> Result<String, NotKept> {
    let cfg = &live.cfg;
    let id = fresh_id();
    let sealed = cfg
        .session
        .kept
        .seal_bytes(Purpose::Kept, id.as_bytes(), &kept.encode());
    match store
        .keep_request(&id, &sealed, rule.ttl, cfg.clients.max_kept_requests)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(NotKept::Full),
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable: a form post was not kept");
            return Err(NotKept::StoreUnavailable);
        }
    }
    let claims = KeptClaims {
        id,
        return_to: kept.target.clone(),
        kept_at,
        expires_at: crate::clock::unix_now() + rule.ttl.as_secs() as i64,
        prior: prior.map(String::from),
    };
    Ok(cookie(cfg, &claims, rule.ttl))
}

/// The path and query a request was sent to.
fn target(req: &RequestHeader) -> &str {
    req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
}

fn cookie(cfg: &RuntimeConfig, claims: &KeptClaims, ttl: Duration) -> String {
    let s = &cfg.session;
    crate::providers::flow::cookie_header(
        &s.kept_cookie,
        &s.keys.seal_json(Purpose::Kept, claims),
        "/",
        ttl.as_secs() as i64,
        s.secure,
    )
}

/// The `Set-Cookie` that ends this browser's kept-request cookie.
pub fn clear_cookie(cfg: &RuntimeConfig) -> String {
    crate::providers::flow::cookie_header(&cfg.session.kept_cookie, "", "/", 0, cfg.session.secure)
}

/// What a browser's GET finds of a kept request.
#[derive(Debug)]
pub enum Resume {
    /// Nothing to do here: no kept request, another address, or no session issued since.
    Nothing,
    /// Its kept request, taken from the store: it goes upstream in place of the GET.
    Taken(Kept),
    /// Its cookie names one that is gone (delivered, expired, unreadable): clear the cookie.
    Gone,
    /// The store could not answer: the kept request stays for a retry.
    StoreUnavailable,
}

/// A browser's GET of the address its kept request was sent to, with a session issued since
/// it was kept: the kept request, taken (once) from the store.
pub async fn resume(live: &Live, store: &dyn Store, session: &mut Session, now: i64) -> Resume {
    let cfg = &live.cfg;
    let req = session.req_header();
    // Every GET passes here: a search of the Cookie header for the name, no parse, until a
    // kept cookie may be there.
    let name = cfg.session.kept_cookie.as_str();
    if req.method != http::Method::GET
        || !req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(name)))
        || !browser_page(req)
    {
        return Resume::Nothing;
    }
    let Some(raw) = crate::live::read_cookie(req, &cfg.session.kept_cookie) else {
        return Resume::Nothing;
    };
    let Ok(claims) = cfg.session.keys.open_kept(raw, now) else {
        return Resume::Gone;
    };
    if claims.return_to != target(req) {
        return Resume::Nothing;
    }
    // Only a verification since it was kept delivers it: a session issued since, other than
    // the one the post carried.
    let verified_since = crate::live::read_cookie(req, &cfg.session.cookie)
        .and_then(|c| live.verified(c, now))
        .is_some_and(|v| {
            v.claims.issued_at >= claims.kept_at
                && claims.prior.as_deref() != Some(v.revocation_id.as_str())
        });
    // The body of a GET (none) must be read as it came before the head is rewritten.
    if !verified_since || !session.is_body_empty() {
        return Resume::Nothing;
    }
    match store.take_request(&claims.id).await {
        Ok(Some(sealed)) => cfg
            .session
            .kept
            .open_bytes(Purpose::Kept, claims.id.as_bytes(), &sealed)
            .ok()
            .and_then(|plain| Kept::decode(&plain))
            .filter(|k| k.target == claims.return_to)
            .map_or(Resume::Gone, Resume::Taken),
        Ok(None) => Resume::Gone,
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable: a kept request waits");
            Resume::StoreUnavailable
        }
    }
}

/// Turn the browser's GET into its kept request: method, content type and length (the body
/// goes in `request_body_filter`). Everything else is the GET's (cookies, the browser's
/// `Accept` for the page it will show).
pub fn rewrite(req: &mut RequestHeader, kept: &Kept) {
    req.set_method(kept.method.clone());
    req.remove(&http::header::TRANSFER_ENCODING);
    req.remove(&http::header::CONTENT_TYPE);
    if let Some(ct) = kept
        .content_type
        .as_deref()
        .and_then(|c| http::HeaderValue::from_str(c).ok())
    {
        req.insert(&http::header::CONTENT_TYPE, ct);
    }
    req.insert(
        &http::header::CONTENT_LENGTH,
        http::HeaderValue::from(kept.body.len()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_request_reads_back_as_it_was_written() {
        let k = Kept {
            method: http::Method::POST,
            target: "/signup?x=1".into(),
            content_type: Some("multipart/form-data; boundary=--x".into()),
            body: Bytes::from_static(b"\x00\xffbody"),
        };
        assert_eq!(Kept::decode(&k.encode()), Some(k.clone()));
        let bare = Kept {
            content_type: None,
            body: Bytes::new(),
            ..k
        };
        assert_eq!(Kept::decode(&bare.encode()), Some(bare));
        for broken in [
            &b""[..],
            b"\x00\x00",
            b"\x00\x00\x00\x09{}",
            b"\xff\xff\xff\xff{}",
        ] {
            assert_eq!(Kept::decode(broken), None);
        }
    }

    fn post(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/signup", None).unwrap();
        r.insert_header("host", "shop.example:8080").unwrap();
        for (k, v) in headers {
            r.insert_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn only_a_post_from_this_sites_own_page_is_kept() {
        let rule = KeepRule::default();
        let keeps = |r: &RequestHeader| keepable(r, Some(&rule)).is_some();
        assert!(keeps(&post(&[("sec-fetch-site", "same-origin")])));
        assert!(keeps(&post(&[("origin", "http://shop.example:8080")])));
        assert!(keeps(&post(&[("origin", "https://SHOP.example:8080")])));
        for refused in [
            post(&[]),
            post(&[("sec-fetch-site", "cross-site")]),
            post(&[("sec-fetch-site", "same-site")]),
            post(&[("sec-fetch-site", "none")]),
            // Sec-Fetch-Site speaks for the browser: a matching Origin does not overrule it.
            post(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://shop.example:8080"),
            ]),
            post(&[("origin", "http://evil.example")]),
            post(&[("origin", "http://shop.example")]),
            post(&[("origin", "null")]),
            post(&[
                ("sec-fetch-site", "same-origin"),
                ("x-http-method-override", "DELETE"),
            ]),
        ] {
            assert!(!keeps(&refused), "{:?}", refused.headers);
        }
        let mut put = post(&[("sec-fetch-site", "same-origin")]);
        put.set_method(http::Method::PUT);
        assert!(!keeps(&put));
        // A route that opts out keeps nothing.
        assert!(keepable(&post(&[("sec-fetch-site", "same-origin")]), None).is_none());
    }

    #[test]
    fn the_get_becomes_the_kept_request() {
        let mut r = RequestHeader::build("GET", b"/signup?x=1", None).unwrap();
        r.insert_header("accept", "text/html").unwrap();
        r.insert_header("content-type", "text/plain").unwrap();
        let k = Kept {
            method: http::Method::POST,
            target: "/signup?x=1".into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            body: Bytes::from_static(b"a=1&b=2"),
        };
        rewrite(&mut r, &k);
        assert_eq!(r.method, http::Method::POST);
        assert_eq!(r.raw_path(), b"/signup?x=1");
        assert_eq!(
            r.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(r.headers["content-length"], "7");
        assert_eq!(r.headers["accept"], "text/html");
    }
}
