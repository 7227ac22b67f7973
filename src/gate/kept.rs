//! A browser's form post kept across the verification detour.
//!
//! A POST from this site's own page to a gated route, without a session: its body is read (up
//! to the route's `keep_request.max_body`, checked as it arrives), sealed with keys derived
//! from the session keys and bound to a random id, and put in the store for the route's
//! `keep_request.ttl`; the id goes into a sealed cookie of this browser, bound to the host.
//! The `303` sends the browser to verify: the flow that starts there from this site's own
//! pages carries the kept id ([`crate::live::kept::for_flow`]) into the session it issues. After verifying, the
//! browser comes back to the address it posted to (a GET): with that session, and only with
//! it, the GET takes the kept request from the store (one atomic take: once, on any instance)
//! and the gate sends it upstream in its place, through the same rules as any request. The
//! browser gets the app's answer at the address it posted to, as if it had been verified
//! before. Logging out (or "verify as someone else") drops the browser's kept request.
//!
//! What one request does with kept requests is its own [`State`], owned here.

use super::edit::Edit;
use crate::answers::browser_page;
use crate::config::RuntimeConfig;
use crate::cookies;
use crate::live::kept::host_of;
use crate::live::Live;
use crate::routing::KeepRule;
use crate::session::{KeptClaims, Purpose};
use crate::store::Store;
use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::http::ResponseHeader;
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

/// How many form posts each client, and each client's network, has had kept in the last ten
/// minutes, on this instance: a fixed window from its first. Clients are IPv4 addresses and
/// IPv6 /64 networks; networks are IPv4 /24 and IPv6 /48 networks, so that a few networks
/// (many addresses each) cannot fill the store's `max_kept_requests` for everyone.
pub struct Quota {
    clients: Window,
    networks: Window,
}

type Window = moka::sync::Cache<std::net::IpAddr, Arc<std::sync::atomic::AtomicU32>>;

fn window() -> Window {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(600))
        .build()
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            clients: window(),
            networks: window(),
        }
    }
}

/// The first `v4` bits of an IPv4 address, or the first `v6` bits of an IPv6 one.
fn prefix(ip: std::net::IpAddr, v4: u32, v6: u32) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) & (u32::MAX << (32 - v4))).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & (u128::MAX << (128 - v6))).into()),
    }
}

/// Count one in `w` for `key` unless it has `max` already.
fn take(w: &Window, key: std::net::IpAddr, max: u32) -> bool {
    use std::sync::atomic::Ordering;
    w.get_with(key, Default::default)
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| {
            (c < max).then_some(c + 1)
        })
        .is_ok()
}

impl Quota {
    /// May `client` keep one more (counted, for the client and for its network, when it
    /// may)? A request without a known client address is admitted (the store's own cap still
    /// holds).
    pub fn admit(
        &self,
        client: Option<std::net::IpAddr>,
        per_client: u32,
        per_network: u32,
    ) -> bool {
        use std::sync::atomic::Ordering;
        let Some(ip) = client else {
            return true;
        };
        let client = prefix(ip, 32, 64);
        if !take(&self.clients, client, per_client) {
            return false;
        }
        if !take(&self.networks, prefix(ip, 24, 48), per_network) {
            // Not kept: the client's own count goes back.
            if let Some(n) = self.clients.get(&client) {
                let _ = n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1));
            }
            return false;
        }
        true
    }
}

#[cfg(test)]
mod quota_tests {
    use super::*;

    #[test]
    fn a_network_of_many_addresses_has_its_own_cap() {
        let q = Quota::default();
        let ip = |s: &str| Some(s.parse::<std::net::IpAddr>().unwrap());
        // 34 addresses of one /24, 30 each: the network stops at 100.
        let mut kept = 0;
        for host in 10..44 {
            for _ in 0..30 {
                kept += q.admit(ip(&format!("198.51.100.{host}")), 30, 100) as u32;
            }
        }
        assert_eq!(kept, 100);
        // Another network, and an address of it, are not touched.
        assert!(q.admit(ip("198.51.101.7"), 30, 100));
        // IPv6: one /48 of many /64s.
        let mut kept = 0;
        for n in 0..50u32 {
            for _ in 0..5 {
                kept += q.admit(ip(&format!("2001:db8:7:{n:x}::1")), 30, 100) as u32;
            }
        }
        assert_eq!(kept, 100);
        assert!(q.admit(ip("2001:db8:8::1"), 30, 100));
        // The client cap still holds first.
        for _ in 0..3 {
            assert!(q.admit(ip("203.0.113.5"), 3, 100));
        }
        assert!(!q.admit(ip("203.0.113.5"), 3, 100));
        assert!(q.admit(ip("203.0.113.9"), 3, 100));
        assert!(q.admit(None, 0, 0));
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
/// store that still needs a verification). Answers the cookie that binds it to this browser,
/// to this host and to a verification still to come (only the session of a flow started for
/// it delivers it; with `for_session`, that session's revocation id: a held child's own session,
/// back after the guardian's consent). Every body it does not keep has been read to its end, or the connection
/// is not reused.
#[allow(clippy::too_many_arguments)]
pub async fn keep(
    session: &mut Session,
    live: &Live,
    store: &dyn Store,
    rule: KeepRule,
    resumed: Option<Bytes>,
    deadline: Duration,
    admitted: bool,
    for_session: Option<&str>,
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
    let host = host_of(session.req_header());
    Ok(put(live, store, &kept, rule, host, for_session).await)
}

/// Keep again a kept request that could not reach the app (it never connected), so that the
/// browser's reload sends it: the session that was delivering it (`session`, its revocation
/// id) delivers it.
pub async fn keep_again(
    live: &Live,
    store: &dyn Store,
    req: &RequestHeader,
    kept: &Kept,
    rule: KeepRule,
    session: &str,
) -> Result<String, NotKept> {
    put(live, store, kept, rule, host_of(req), Some(session)).await
}

/// Seal `kept` into the store under a fresh id: the cookie that names it.
async fn put(
    live: &Live,
    store: &dyn Store,
    kept: &Kept,
    rule: KeepRule,
    host: Option<String>,
    session: Option<&str>,
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
        host,
        expires_at: crate::clock::unix_now() + rule.ttl.as_secs() as i64,
        session: session.map(String::from),
    };
    let s = &cfg.session;
    Ok(cookies::kept(
        s,
        &s.keys.seal_json(Purpose::Kept, &claims),
        rule.ttl.as_secs() as i64,
    ))
}

/// The path and query a request was sent to.
fn target(req: &RequestHeader) -> &str {
    req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
}

/// What one request does with kept requests, from `request_filter` to its answer (the gate
/// holds one in its context; only this module reads or changes it).
#[derive(Debug, Default)]
pub struct State {
    /// The kept request this browser's GET delivers in its place (its body goes upstream in
    /// `request_body_filter`).
    delivering: Option<Kept>,
    /// The browser's kept-request cookie is spent (delivered or gone): the answer ends it.
    spent: bool,
    /// What became of a kept request here, for the metric (`kept`, `resumed`, `gone`, ...).
    outcome: Option<&'static str>,
}

impl State {
    /// What [`resume`] found, applied to the request: a taken kept request goes upstream in
    /// place of the GET. False when the store could not answer (the caller answers `503`).
    pub fn resumed(&mut self, found: Resume, req: &mut RequestHeader) -> bool {
        match found {
            Resume::Nothing => {}
            Resume::Taken(k) => {
                rewrite(req, &k);
                self.delivering = Some(k);
                self.spent = true;
                self.outcome = Some("resumed");
            }
            Resume::Gone => {
                self.spent = true;
                self.outcome = Some("gone");
            }
            Resume::StoreUnavailable => return false,
        }
        true
    }

    /// Whether this request delivers a kept one.
    pub fn delivering(&self) -> bool {
        self.delivering.is_some()
    }

    /// The kept request being delivered, taken back to be kept again (it still needs a
    /// verification): its body.
    pub fn take_back(&mut self) -> Option<Bytes> {
        self.delivering.take().map(|k| k.body)
    }

    /// Kept (anew): its cookie takes the place of a spent one.
    pub fn kept(&mut self) {
        self.outcome = Some("kept");
        self.spent = false;
    }

    pub fn not_kept(&mut self, why: NotKept) {
        self.outcome = Some(why.outcome());
    }

    pub fn outcome(&self) -> Option<&'static str> {
        self.outcome
    }

    /// The `Set-Cookie` that ends the browser's kept-request cookie, when this answer must.
    pub fn ending_cookie(&self, cfg: &RuntimeConfig) -> Option<String> {
        self.spent.then(|| cookies::clear_kept(&cfg.session))
    }

    /// The body going upstream: a delivered kept request's in place of the GET's none (again
    /// on a retry).
    pub fn body(&self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if let Some(k) = &self.delivering {
            if end_of_stream && body.as_ref().is_none_or(|b| b.is_empty()) {
                *body = Some(k.body.clone());
            }
        }
    }

    /// The app's answer: the kept cookie ends with it, and the answer to a POST, shown at the
    /// address of a GET, is never cached there.
    pub fn answer(&self, cfg: &RuntimeConfig, resp: &mut ResponseHeader) {
        if let Some(c) = self.ending_cookie(cfg) {
            let _ = resp.append_header(http::header::SET_COOKIE, c);
        }
        if self.delivering.is_some() {
            let _ = resp.insert_header(http::header::CACHE_CONTROL, "no-store");
        }
    }

    /// A delivery that failed: when the app never had any of it (`connected` false: no
    /// connection was made), it is kept again for the session that was delivering it
    /// (`session`, its revocation id) and a reload sends it; otherwise it is gone (the app may
    /// have acted on it: never twice). The `Set-Cookie` for the failure's answer, if any.
    pub async fn after_failure(
        &mut self,
        live: &Live,
        store: &dyn Store,
        req: &RequestHeader,
        rule: Option<KeepRule>,
        session: Option<&str>,
        connected: bool,
    ) -> Option<String> {
        if !self.spent {
            return None;
        }
        if let (Some(k), false, Some(rule), Some(session)) =
            (&self.delivering, connected, rule, session)
        {
            if let Ok(cookie) = keep_again(live, store, req, k, rule, session).await {
                self.outcome = Some("kept_for_retry");
                return Some(cookie);
            }
        }
        self.ending_cookie(&live.cfg)
    }
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
/// `jar`: the request's Cookie header, parsed.
pub async fn resume(
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
    jar: &cookies::Jar,
    now: i64,
) -> Resume {
    let cfg = &live.cfg;
    let req = session.req_header();
    if req.method != http::Method::GET {
        return Resume::Nothing;
    }
    let Some(raw) = jar.kept() else {
        return Resume::Nothing;
    };
    if !browser_page(req) {
        return Resume::Nothing;
    }
    let Ok(claims) = cfg.session.keys.open_kept(raw, now) else {
        return Resume::Gone;
    };
    if claims.return_to != target(req) || claims.host.is_none() || claims.host != host_of(req) {
        return Resume::Nothing;
    }
    // Only the session it is bound to delivers it: the one issued by the flow started for it
    // (or, kept again after a failed delivery, the one that was delivering it).
    let host = crate::routing::host::request_host(req);
    let verified_since = jar
        .session()
        .and_then(|(c, named)| {
            live.verified(c, now)
                .filter(|v| cookies::name_fits(named, &v.claims) && v.claims.for_host(host))
        })
        .is_some_and(|v| {
            v.claims.kept.as_deref() == Some(claims.id.as_str())
                || claims.session.as_deref() == Some(v.revocation_id.as_str())
        });
    // A child without a session who stated a birth date: the one their kept post was bound
    // to when they did (guardian consent).
    let stated = || {
        claims.session.as_deref().is_some_and(|id| {
            id.starts_with("stated:")
                && jar
                    .child()
                    .and_then(|c| {
                        crate::session::StatedChild::open(&cfg.session.keys, c, now, host)
                    })
                    .is_some_and(|c| c.id == id)
        })
    };
    // The body of a GET (none) must be read as it came before the head is rewritten.
    if !(verified_since || stated()) || !session.is_body_empty() {
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
