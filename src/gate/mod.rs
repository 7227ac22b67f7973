//! The proxy: Pingora's phases, each doing one job.
//! - `request_filter`: strip identity headers, normalise the path, serve verigate's own
//!   endpoints, match the route, check the session, age and account rules.
//! - `upstream_peer`: pick an address of the route's upstream (`crate::upstreams`).
//! - `fail_to_connect` / `connected_to_upstream`: passive health of that address;
//!   `connected_to_upstream` also keeps the connection's socket, on which `request_body_filter`
//!   (or, for a request with a body, `upstream_response_filter`) turns on prompt ACKs once the
//!   request is written (`ack`).
//! - `upstream_request_filter`: inject verified identity headers, keep verigate's cookies home.
//! - `upstream_response_filter`: note the upstream's status and time.
//! - `response_filter`: settle one-account reservations on the upstream's answer.
//! - `logging`: metrics and the access log.

pub mod ack;
mod age;
pub mod deadline;
pub mod decide;
pub mod edit;
pub mod fold;
pub mod forwarded;
pub mod guardian;
pub mod headers;
pub mod kept;
pub mod names;
pub mod target;
pub mod upgrade;

pub use crate::live::Live;

pub use crate::routing::{self as routes, path};

use crate::answers::Refusal;
use crate::answers::{wants_html, Problem, Reply};
use crate::store::{Reservation, Store};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use headers::Identity;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error, Result};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Gate {
    pub live: Arc<ArcSwap<Live>>,
    pub store: Arc<dyn Store>,
    /// Sessions ended by logout (on any instance sharing the store).
    pub revoked: Arc<crate::live::revoked::Revoked>,
    /// Form posts kept per client (`clients.max_kept_per_client`).
    kept_quota: kept::Quota,
    /// Rate limits on starting verifications and ifree key exchanges (`limits`).
    limiter: crate::ratelimit::Limiter,
}

/// A response header through which the app says a signup did not happen (`rejected`, e.g. a
/// form answered again with a validation error): the reservation is released whatever the
/// status. verigate removes it before the client sees the answer.
const SIGNUP_VERDICT: http::HeaderName = http::HeaderName::from_static("x-verigate-signup");

/// How long the body of a one-account signup may take to arrive, however steadily it drips:
/// the reservation must outlive the request that holds it.
const SIGNUP_BODY_DEADLINE: Duration = Duration::from_secs(60);

/// How long a one-account reservation may stay open before a crash is assumed: longer than
/// any request that holds it can live (its body's deadline, then the upstream's answer).
fn reservation_ttl(cfg: &crate::config::RuntimeConfig) -> Duration {
    SIGNUP_BODY_DEADLINE + cfg.longest_read_timeout() + Duration::from_secs(60)
}

#[derive(Default)]
pub struct Ctx {
    started: Option<Instant>,
    live: Option<Arc<Live>>,
    route: Option<usize>,
    decision: &'static str,
    identity: Option<Identity>,
    /// What goes upstream on an age-only route (`age`), in place of `identity`.
    age_only: Option<headers::AgeOnly>,
    /// A stated child's guardian consent (`guardian`): all that goes upstream for them.
    stated_guardian: Option<Box<headers::GuardianConsent>>,
    /// The session that passed an age-only route, if one did (a kept request it delivers is
    /// kept again for it when the app cannot be reached).
    age_session: Option<Arc<crate::live::sessions::Verified>>,
    /// Time spent in verigate's own filters (upstream excluded).
    gate_time: Duration,
    upstream_sent: Option<Instant>,
    /// The request's body has been read whole (or it had none).
    body_done: bool,
    upstream_time: Option<Duration>,
    upstream_status: Option<u16>,
    /// verigate's cookies are already gone from the request (see `check`).
    cookies_stripped: bool,
    /// The request's Cookie header, parsed once (`gatekeep`).
    jar: Option<crate::cookies::Jar>,
    flow_provider: Option<crate::identity::ProviderId>,
    /// (route name, person hash, what completes it) of a one-account reservation this
    /// request holds.
    reservation: Option<(String, String, routes::CommitOn)>,
    /// Where the request came from and its id (decided first thing).
    origin: Option<forwarded::Origin>,
    /// The upstream address this request was sent to.
    upstream_addr: Option<std::net::SocketAddr>,
    /// What this request does with kept form posts (`kept`).
    kept: kept::State,
    /// `Set-Cookie` lines that move a session read under its old name to its `__Host-` name
    /// (`crate::cookies`), added to the app's answer.
    reissue: Vec<String>,
    /// The route's upstream pool, once an address was picked from it.
    pool: Option<Arc<crate::upstreams::Pool>>,
    /// Addresses whose connect failed for this request (a retry goes elsewhere).
    tried: Vec<std::net::SocketAddr>,
    /// The upstream connection's socket, until quick ACKs are set on it (`ack`).
    upstream_fd: Option<std::os::fd::RawFd>,
    /// A WebSocket handshake whose body end is held past Pingora's upgrade race (`upgrade`).
    held_upgrade: bool,
    /// The request's Host header as `request_filter` left it (`Some(None)`: none), read once
    /// there (`target::host_and_header`) for the phases after it ([`kept_host`]). `None`: not
    /// kept, read again where needed (a request answered before, an HTTP/2 one: Pingora may
    /// give its upstream request a Host of its own).
    host: Option<Option<http::HeaderValue>>,
    /// What the last screening of the request's headers in `request_filter` found, kept with
    /// `host` (HTTP/1 only): which headers the upstream request may have.
    screened: Option<names::Screened>,
}

/// The Host header of `req` (the request as received), as `request_filter` kept it
/// (`Ctx::host`) or read again.
fn kept_host<'a>(
    kept: &'a Option<Option<http::HeaderValue>>,
    req: &'a RequestHeader,
) -> Option<&'a http::HeaderValue> {
    match kept {
        Some(h) => h.as_ref(),
        None => req.headers.get(http::header::HOST),
    }
}

/// The fields of one access-log line (public for the benchmark of writing one). Written by
/// hand ([`crate::logwriter::JsonFields`]); the serde form is the reference the tests hold
/// it to, and the way a line with a value to escape is written. Byte fields are header values
/// and addresses as they are: written when visible ASCII ([`crate::logwriter::header_text`],
/// the check `HeaderValue::to_str` makes), else as "".
#[derive(serde::Serialize)]
pub struct AccessLine<'a> {
    #[serde(serialize_with = "crate::logwriter::ser_text")]
    pub request_id: &'a [u8],
    pub route: &'a str,
    pub decision: &'a str,
    pub status: u16,
    pub method: &'a str,
    /// The Host header, else the request target's authority.
    #[serde(serialize_with = "crate::logwriter::ser_text")]
    pub host: &'a [u8],
    /// The path as received, never the query string.
    pub path: &'a str,
    /// As `access_log_client` says: the network (default), the address, or absent.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::logwriter::ser_opt_text"
    )]
    pub client: Option<&'a [u8]>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::logwriter::ser_opt_text"
    )]
    pub upstream: Option<&'a [u8]>,
    /// Durations are written in milliseconds ([`crate::logwriter::millis`]).
    #[serde(serialize_with = "crate::logwriter::ser_ms")]
    pub latency_ms: std::time::Duration,
    #[serde(serialize_with = "crate::logwriter::ser_ms")]
    pub gate_ms: std::time::Duration,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::logwriter::ser_opt_ms"
    )]
    pub upstream_ms: Option<std::time::Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    pub provider: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

impl crate::logwriter::JsonFields for AccessLine<'_> {
    fn plain_len(&self) -> usize {
        // Keys, quotes and separators (under 200 bytes), numbers (at most 24 bytes each).
        200 + 5 * 24
            + self.request_id.len()
            + self.route.len()
            + self.decision.len()
            + self.method.len()
            + self.host.len()
            + self.path.len()
            + self.client.map_or(0, <[u8]>::len)
            + self.upstream.map_or(0, <[u8]>::len)
            + self.provider.len()
            + self.error.map_or(0, str::len)
    }

    fn write_plain(&self, o: &mut crate::logwriter::JsonLine<'_>) {
        use crate::json_key;
        o.open();
        o.text(json_key!("request_id"), self.request_id)
            .str(json_key!("route"), self.route)
            .str(json_key!("decision"), self.decision)
            .u16(json_key!("status"), self.status)
            .str(json_key!("method"), self.method)
            .text(json_key!("host"), self.host)
            .str(json_key!("path"), self.path);
        if let Some(c) = self.client {
            o.text(json_key!("client"), c);
        }
        if let Some(u) = self.upstream {
            o.text(json_key!("upstream"), u);
        }
        o.ms(json_key!("latency_ms"), self.latency_ms)
            .ms(json_key!("gate_ms"), self.gate_ms);
        if let Some(ms) = self.upstream_ms {
            o.ms(json_key!("upstream_ms"), ms);
        }
        if let Some(s) = self.upstream_status {
            o.u16(json_key!("upstream_status"), s);
        }
        o.str(json_key!("provider"), self.provider);
        if let Some(e) = self.error {
            o.str(json_key!("error"), e);
        }
        o.close();
    }
}

/// What `gatekeep` worked out that `check` reads again.
#[derive(Clone, Copy)]
struct Checked {
    route_idx: usize,
    /// The request carries a method other than GET, HEAD and OPTIONS.
    state_changing: bool,
    /// The request's start, in Unix seconds.
    now: i64,
    /// Where the host the route was chosen by is (`routing::host::request_host`).
    host_at: Option<crate::routing::host::HostAt>,
}

impl Gate {
    pub fn new(
        live: Arc<ArcSwap<Live>>,
        store: Arc<dyn Store>,
        revoked: Arc<crate::live::revoked::Revoked>,
    ) -> Self {
        Gate {
            live,
            store,
            revoked,
            kept_quota: kept::Quota::default(),
            limiter: crate::ratelimit::Limiter::default(),
        }
    }

    fn route_name<'a>(&self, ctx: &'a Ctx) -> &'a str {
        match (&ctx.live, ctx.route) {
            (Some(l), Some(i)) => l.cfg.routes.get(i).map(|r| r.name.as_str()).unwrap_or("-"),
            _ => "-",
        }
    }

    /// The gate proper, for a request already stripped and matched to a gated route.
    async fn check(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        c: Checked,
    ) -> Result<bool> {
        let Checked {
            route_idx,
            state_changing,
            now,
            host_at,
        } = c;
        let cfg = &live.cfg;
        let Some(route) = cfg.routes.get(route_idx) else {
            return Ok(false);
        };
        let Some(req) = &route.require else {
            // An open route: no cookie to read (the upstream phase drops verigate's).
            ctx.decision = "passed";
            return Ok(false);
        };
        if req.age_status {
            // An age-only route: a session or an age status, and only the age upstream.
            return self
                .check_age_only(live, session, ctx, route, state_changing)
                .await;
        }
        // The session cookie is read from the header parsed once (`gatekeep`), and
        // verigate's cookies dropped; the upstream request is built from this header, so
        // upstream_request_filter need not.
        let s = &cfg.session;
        let jar = ctx
            .jar
            .get_or_insert_with(|| crate::cookies::Jar::parse(&session.req_header().headers, s));
        let mut reissue = Vec::new();
        let opened = self
            .open_session(live, jar, now, &mut reissue)
            // A session opens only on the host it was issued on.
            .filter(|v| {
                v.for_host_bytes(host_at.and_then(|h| {
                    let req = session.req_header();
                    h.get_bytes_of(kept_host(&ctx.host, req), &req.uri)
                }))
            });
        jar.strip(session.req_header_mut());
        if opened.is_some() {
            ctx.reissue = reissue;
        }
        ctx.cookies_stripped = true;
        ctx.body_done = session.is_body_empty();
        let today = || crate::clock::today(cfg.timezone, now);
        let (age_ok, reserve) =
            match decide::decide(route, opened.as_deref(), now, today, state_changing) {
                decide::Decision::Open => {
                    ctx.decision = "passed";
                    return Ok(false);
                }
                decide::Decision::Verify(why) => {
                    if let (None, Some(rule)) = (&opened, req.guardian.as_deref()) {
                        if rule.children == routes::Children::StatedBirthDate {
                            return self
                                .stated_child(live, session, ctx, route, rule, state_changing)
                                .await;
                        }
                    }
                    return self.send_to_verify(live, session, ctx, route, why).await;
                }
                decide::Decision::Refuse(r) => {
                    let p = session_refusal(session, cfg, route, r);
                    return refuse(session, ctx, p).await;
                }
                decide::Decision::Admit { age_ok, reserve } => (age_ok, reserve),
            };
        let Some(verified) = opened else {
            return Ok(false);
        };
        let claims = &verified.claims;
        // Children on a guardian-consent route: on only with their guardian's consent.
        let guardian = match req.guardian.as_deref() {
            None => None,
            Some(rule) => {
                let keys = &cfg.session.kept;
                let outcome = guardian::check(
                    self.store.as_ref(),
                    keys,
                    route,
                    rule,
                    claims,
                    today(),
                    state_changing,
                )
                .await;
                match outcome {
                    guardian::Outcome::NotChild => None,
                    guardian::Outcome::Consented(c) => Some(Box::new(c)),
                    guardian::Outcome::Held => {
                        let d = Detour::guardian(live, session, verified.revocation_id.clone());
                        return self.detour(live, session, ctx, route, d).await;
                    }
                    guardian::Outcome::Refused(Refusal::StoreUnavailable) => {
                        return refuse(session, ctx, Problem::new(Refusal::StoreUnavailable)).await;
                    }
                    guardian::Outcome::Refused(r) => {
                        let p = session_refusal(session, cfg, route, r);
                        return refuse(session, ctx, p).await;
                    }
                }
            }
        };
        if let (true, Some(after)) = (reserve, route.require.as_ref().and_then(|r| r.rejoin_after))
        {
            if let Some(p) = self
                .rejoin_refusal(session, cfg, route, claims, after)
                .await
            {
                return refuse(session, ctx, p).await;
            }
        }
        if reserve {
            // The DI is kept only as a keyed hash (none: the provider gave no DI).
            let di_hash = crate::store::di_hash(&cfg.session.hash_key, &claims.unique_in_site);
            match self
                .store
                .reserve_account(
                    &route.name,
                    crate::store::Person {
                        ci_hash: &claims.ci_hash,
                        unique_in_site: &di_hash,
                    },
                    reservation_ttl(cfg),
                )
                .await
            {
                Ok(Reservation::Reserved) => {
                    let commit_on = route
                        .require
                        .as_ref()
                        .map(|r| r.commit_on)
                        .unwrap_or_default();
                    ctx.reservation = Some((route.name.clone(), claims.ci_hash.clone(), commit_on));
                }
                Ok(Reservation::Taken) | Ok(Reservation::InProgress) => {
                    let p = session_refusal(session, cfg, route, Refusal::DuplicateAccount);
                    return refuse(session, ctx, p).await;
                }
                Err(e) => {
                    tracing::warn!(route = %route.name, error = %e, "store unavailable; failing closed");
                    return refuse(session, ctx, Problem::new(Refusal::StoreUnavailable)).await;
                }
            }
        }

        ctx.identity = Some(Identity {
            verified: verified.clone(),
            age_ok,
            forward: route.forward,
            guardian,
        });
        ctx.decision = "passed";
        Ok(false)
    }

    /// The session in `jar`, if it opens now: sealed by a key in force, not revoked (by its
    /// cookie or with its person), and read under a name it may open under. One under the old
    /// name is re-issued under the new one (`reissue`). Whether it is for this host is the
    /// caller's to check.
    fn open_session(
        &self,
        live: &Live,
        jar: &crate::cookies::Jar,
        now: i64,
        reissue: &mut Vec<String>,
    ) -> Option<std::sync::Arc<crate::live::sessions::Verified>> {
        let (c, named) = jar.session_bytes()?;
        let v = live.verified(c, now).filter(|v| {
            !self.revoked.session_revoked(v) && crate::cookies::name_fits(named, &v.claims)
        })?;
        if named == crate::cookies::Named::Legacy {
            // It opened, so it is text.
            let c = std::str::from_utf8(c).ok()?;
            *reissue = crate::cookies::reissue(&live.cfg.session, c, v.claims.expires_at - now);
        }
        Some(v)
    }

    /// No acceptable session: the person is sent to verify (a redirect for a page, the
    /// `401` with the way to verify for an API client), or their form post is kept for
    /// after the verification.
    async fn send_to_verify(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &routes::Route,
        why: Option<crate::answers::Why>,
    ) -> Result<bool> {
        let d = Detour::verify(live, session, why);
        self.detour(live, session, ctx, route, d).await
    }

    /// A person without a session on a route whose children state a birth date: the birth-date
    /// page, held for a guardian, on with the guardian's consent, or the normal verification.
    async fn stated_child(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &routes::Route,
        rule: &routes::GuardianRule,
        state_changing: bool,
    ) -> Result<bool> {
        let cfg = &live.cfg;
        let now = crate::clock::unix_secs_at(ctx.started.unwrap_or_else(Instant::now));
        let host = crate::routing::host::request_host(session.req_header());
        let child = ctx
            .jar
            .as_ref()
            .and_then(|j| j.child())
            .and_then(|c| crate::session::StatedChild::open(&cfg.session.keys, c, now, host));
        let today = crate::clock::today(cfg.timezone, now);
        let keys = &cfg.session.kept;
        let store = self.store.as_ref();
        let d = match guardian::stated(store, keys, route, rule, child, today, state_changing).await
        {
            guardian::Stated::Ask => Detour::stated(live, session),
            guardian::Stated::Verify => Detour::verify(live, session, None),
            guardian::Stated::Held(id) => Detour::guardian(live, session, id),
            guardian::Stated::Consented(c) => {
                ctx.stated_guardian = Some(Box::new(c));
                ctx.decision = "passed";
                return Ok(false);
            }
            guardian::Stated::Refused(r) => return refuse(session, ctx, Problem::new(r)).await,
        };
        self.detour(live, session, ctx, route, d).await
    }

    /// Send the person on a detour (to verify, or a child to their guardian's consent): a
    /// redirect for a page, the refusal with the way on for an API client, or their form post
    /// kept for after it.
    async fn detour(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        route: &routes::Route,
        d: Detour,
    ) -> Result<bool> {
        note_id(session, ctx);
        // A form post from this site's page (or a kept one still unverified) is
        // kept for after the verification.
        let rule = route.require.as_ref().and_then(|r| r.keep.as_ref());
        let rule = match ctx.kept.delivering() {
            true => rule.copied(),
            false => kept::keepable(session.req_header(), rule),
        };
        if let Some(rule) = rule {
            return self.keep(live, session, ctx, rule, d).await;
        }
        if crate::answers::navigation(session) {
            ctx.decision = d.redirected;
            Reply::redirect(&d.next)
                .send(session, &live.cfg.frame)
                .await?;
        } else {
            // A browser's form post gets the page with the way on; an API client the JSON
            // with `verify_url`.
            ctx.decision = d.refused;
            Reply::problem(&d.problem(), wants_html(session))
                .send(session, &live.cfg.frame)
                .await?;
        }
        Ok(true)
    }

    /// A signup on a route with `rejoin_after` by a person forgotten less than that long ago:
    /// the `409 rejoin_too_soon` that says until when. Fails closed when the store cannot say.
    async fn rejoin_refusal(
        &self,
        session: &Session,
        cfg: &crate::config::RuntimeConfig,
        route: &routes::Route,
        claims: &crate::session::Claims,
        after: std::time::Duration,
    ) -> Option<Problem> {
        // The person's markers, and those of an erasure limited to this route.
        let ci = [claims.ci_hash.as_str()];
        let mut ids =
            crate::records::rejoin_ids(&cfg.session.hash_key, None, &ci, &claims.unique_in_site);
        ids.extend(crate::records::rejoin_ids(
            &cfg.session.hash_key,
            Some(&route.name),
            &ci,
            &claims.unique_in_site,
        ));
        match self.store.rejoin_since(&ids).await {
            Ok(Some(at_ms)) => {
                let until = at_ms.div_euclid(1000) + after.as_secs() as i64;
                (crate::clock::unix_now() < until).then(|| {
                    session_refusal(session, cfg, route, Refusal::RejoinTooSoon).with_until(until)
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable; failing closed");
                Some(Problem::new(Refusal::StoreUnavailable))
            }
        }
    }

    /// Keep a form post for after its verification (or a child's guardian consent) and send
    /// the person on (`303` for a page, the refusal with `"kept": true` for a page's own
    /// fetch); or, when it cannot be kept, the `401 form_not_kept` page that says to send it
    /// again afterwards.
    async fn keep(
        &self,
        live: &Live,
        session: &mut Session,
        ctx: &mut Ctx,
        rule: routes::KeepRule,
        d: Detour,
    ) -> Result<bool> {
        note_id(session, ctx);
        let resumed = ctx.kept.take_back();
        let html = wants_html(session);
        // A body kept before and coming back is no new one for its client.
        let clients = &live.cfg.clients;
        let admitted = resumed.is_some()
            || self.kept_quota.admit(
                ctx.origin.as_ref().and_then(|o| o.client),
                clients.max_kept_per_client,
                clients.max_kept_per_network,
            );
        let kept = kept::keep(
            session,
            live,
            self.store.as_ref(),
            rule,
            resumed,
            SIGNUP_BODY_DEADLINE,
            admitted,
            d.session.as_deref(),
        )
        .await?;
        let reply = match kept {
            Ok(cookie) => {
                ctx.decision = "kept";
                ctx.kept.kept();
                let reply = if html {
                    Reply::new(303).header(http::header::LOCATION, d.next)
                } else {
                    let p = d.problem();
                    let mut v: serde_json::Value =
                        serde_json::from_str(&p.json()).unwrap_or_default();
                    v["kept"] = serde_json::Value::Bool(true);
                    Reply::json(p.status, v.to_string())
                };
                reply.cookie(cookie)
            }
            Err(why) => {
                ctx.decision = "form_not_kept";
                ctx.kept.not_kept(why);
                let p = Problem::new(Refusal::FormNotKept)
                    .with_next(d.next)
                    .with_why(d.why);
                let reply = Reply::problem(&p, html);
                match ctx.kept.ending_cookie(&live.cfg) {
                    Some(c) => reply.cookie(c),
                    None => reply,
                }
            }
        };
        reply.send(session, &live.cfg.frame).await?;
        Ok(true)
    }

    /// Everything `request_filter` decides (timed by it).
    async fn gatekeep(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let live = self.live.load_full();
        ctx.live = Some(live.clone());
        let cfg = &live.cfg;
        // A body that stops arriving ends the request (Pingora times each read of it).
        session.set_read_timeout(Some(cfg.clients.body_idle_timeout));
        // A client that stops reading ends its request once one write to it has waited this
        // long (Pingora times each write); the app's connection closes with it.
        session.set_write_timeout(Some(cfg.clients.send_timeout));
        // 0. Who sent it and its id (pages, logs, upstream; see `note_id` for pages).
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let https = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let origin = forwarded::decide(
            session.req_header(),
            peer,
            https,
            &cfg.clients.trusted_proxies,
            cfg.clients.request_id,
        );
        let trusted = origin.trusted;
        ctx.origin = Some(origin);
        // 1. No header outside the name grammar, no client-sent identity header and no
        // server-environment header survives, on any route; nor a forwarding header this peer
        // may not send. Each name is judged once.
        let protected = names::Protected::of(&cfg.identity);
        let mut screened = names::screen(
            session.req_header_mut(),
            &protected,
            trusted,
            cfg.clients.log_dropped_headers,
        );

        // 2. One reading of the request line: the method's spelling, the target's form (and
        // where the host is that routes it).
        let mut host_at = None;
        let mut host = None;
        let refused = match target::method(session.req_header())
            .and_then(|()| target::host_and_header(session.req_header()))
            .and_then(|(at, value)| {
                host_at = at;
                host = value.cloned();
                target::classify(session.req_header())
            }) {
            Ok(target::Target::Origin) => None,
            Ok(target::Target::Absolute(origin)) => {
                // Decided on, and forwarded as, its origin-form path (a host that was only in
                // the target is no more).
                session.req_header_mut().set_uri(origin);
                host_at = host_at.filter(|h| h.is_in_header());
                None
            }
            Ok(target::Target::Asterisk) => {
                ctx.decision = "options_asterisk";
                note_id(session, ctx);
                Reply::new(204)
                    .header(
                        http::header::ALLOW,
                        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
                    )
                    .send(session, &cfg.frame)
                    .await?;
                return Ok(true);
            }
            Err(target::TargetError::BadTarget) => Some(Refusal::BadRequestTarget),
            Err(target::TargetError::BadMethod) => Some(Refusal::BadMethod),
        };
        if let Some(r) = refused {
            return refuse(session, ctx, Problem::new(r)).await;
        }
        // 2b. A browser back from verifying, at the address its kept form post went to: the
        // kept request goes on in place of this GET, through the same rules as any request.
        let now = crate::clock::unix_secs_at(ctx.started.unwrap_or_else(Instant::now));
        // The Cookie header, parsed once: the kept request's cookie, the session's, and the
        // header without verigate's cookies for the app.
        let jar = ctx.jar.insert(crate::cookies::Jar::parse(
            &session.req_header().headers,
            &cfg.session,
        ));
        let found = kept::resume(&live, self.store.as_ref(), session, jar, now).await;
        if !ctx.kept.resumed(found, session.req_header_mut()) {
            let p = Problem::new(Refusal::StoreUnavailable)
                .with_note(&crate::answers::KEPT_TAKE_UNANSWERED);
            return refuse(session, ctx, p).await;
        }
        if ctx.kept.delivering() {
            // The kept request's headers took the place of this GET's: the same screening,
            // and its host read afresh.
            screened = names::screen(session.req_header_mut(), &protected, trusted, false);
            host_at = crate::routing::host::HostAt::find(session.req_header()).map(|(_, at)| at);
            host = session
                .req_header()
                .headers
                .get(http::header::HOST)
                .cloned();
        }
        // The Host header is not changed after this: the later phases read it from here
        // (HTTP/1 only: for an HTTP/2 request Pingora may set the upstream request's Host).
        if session.req_header().version < http::Version::HTTP_2 {
            ctx.host = Some(host);
            ctx.screened = Some(screened);
        }
        // 3. One canonical path, from the bytes that go upstream.
        let normalized = match std::str::from_utf8(session.req_header().raw_path())
            .ok()
            .and_then(|raw| path::normalize(raw).ok())
        {
            Some(p) => p,
            None => return refuse(session, ctx, Problem::new(Refusal::BadPath)).await,
        };

        // A provider's own servers posting to its callback path (ifree's registrations):
        // server to server, never a gated route.
        if let Some(flow) = crate::providers::flow::callback_of(&live, &normalized) {
            ctx.decision = "flow";
            ctx.flow_provider = Some(flow.id());
            if let Err(l) = self.limit_callback(&live, ctx, session).await {
                return rate_limited(session, ctx, l).await;
            }
            note_id(session, ctx);
            // Boxed, as the flows below: a flow's future (its provider's HTTP calls) is many
            // times the size of the gate's, which every request would otherwise allocate and copy.
            Box::pin(crate::providers::flow::callback(
                flow.as_ref(),
                &live,
                self.store.as_ref(),
                session,
            ))
            .await?;
            return Ok(true);
        }
        if let Some(rest) = crate::providers::flow::under_prefix(&normalized, &cfg.flow_prefix) {
            ctx.decision = "flow";
            let rest = rest.to_string();
            ctx.flow_provider = crate::identity::ProviderId::parse(
                rest.trim_start_matches('/').split('/').next().unwrap_or(""),
            );
            if let Err(l) = self.limit_start(&live, ctx, session, &rest).await {
                return rate_limited(session, ctx, l).await;
            }
            note_id(session, ctx);
            Box::pin(crate::providers::flow::handle(
                &live,
                self.store.as_ref(),
                &self.revoked,
                session,
                &rest,
            ))
            .await?;
            return Ok(true);
        }

        // Every method the app may act on: the request's and any override header's.
        let overrides =
            match target::override_methods_of(session.req_header(), screened.method_override) {
                Ok(o) => o,
                Err(_) => return refuse(session, ctx, Problem::new(Refusal::BadMethod)).await,
            };
        let method = session.req_header().method.clone();
        let one = [&method];
        let all: Vec<&http::Method>;
        let methods: &[&http::Method] = if overrides.is_empty() {
            &one
        } else {
            all = one.into_iter().chain(&overrides).collect();
            &all
        };
        // One reading of the host (the Host header, which an absolute-form target was made to
        // agree with above) chooses the route, and goes upstream unchanged.
        let host = host_at.and_then(|h| {
            let req = session.req_header();
            h.get_of(kept_host(&ctx.host, req), &req.uri)
        });
        let idx = match cfg.routes.find(methods, host, &normalized) {
            Some(routes::Found::Route(idx)) => idx,
            Some(routes::Found::MethodNotAllowed(idx)) => {
                ctx.route = Some(idx);
                ctx.decision = "method_not_allowed";
                let allow = cfg
                    .routes
                    .get(idx)
                    .map(|r| r.rule.allow())
                    .unwrap_or_default();
                let html = wants_html(session);
                note_id(session, ctx);
                Reply::problem(&Problem::new(Refusal::MethodNotAllowed), html)
                    .header(http::header::ALLOW, allow)
                    .send(session, &cfg.frame)
                    .await?;
                return Ok(true);
            }
            None => return refuse(session, ctx, Problem::new(Refusal::NoRoute)).await,
        };
        ctx.route = Some(idx);
        // Before anything looks at the body: a WebSocket handshake's stays open (`upgrade`).
        ctx.held_upgrade =
            screened.may_have(&http::header::UPGRADE) && upgrade::hold_body_end(session);
        let state_changing = methods.iter().any(|m| !is_safe(m));
        self.check(
            &live,
            session,
            ctx,
            Checked {
                route_idx: idx,
                state_changing,
                now,
                host_at,
            },
        )
        .await
    }

    /// A kept request whose delivery failed (`kept::State::after_failure`): the `Set-Cookie`
    /// for the failure's answer, if any.
    async fn kept_after_failure(&self, session: &Session, ctx: &mut Ctx) -> Option<String> {
        let live = ctx.live.clone()?;
        let rule = ctx
            .route
            .and_then(|i| live.cfg.routes.get(i))
            .and_then(|r| r.require.as_ref())
            .and_then(|r| r.keep);
        let delivering = ctx
            .identity
            .as_ref()
            .map(|i| &i.verified)
            .or(ctx.age_session.as_ref())
            .map(|v| v.revocation_id.as_str());
        ctx.kept
            .after_failure(
                &live,
                self.store.as_ref(),
                session.req_header(),
                rule,
                delivering,
                ctx.upstream_sent.is_some(),
            )
            .await
    }

    async fn settle(&self, ctx: &mut Ctx, success: bool) {
        if let Some((route, person, _)) = ctx.reservation.take() {
            let r = if success {
                self.store.commit_account(&route, &person).await
            } else {
                self.store.release_account(&route, &person).await
            };
            if let Err(e) = r {
                tracing::warn!(route = %route, error = %e, "could not settle an account reservation");
            }
        }
    }
}

/// An upstream with no address to try: answered as an app that cannot be reached (502).
fn no_address(why: &'static str) -> Box<Error> {
    let mut e = Error::explain(pingora::ErrorType::ConnectNoRoute, why);
    e.esource = pingora::ErrorSource::Upstream;
    e
}

/// Quick ACKs on the request's upstream connection, once (`ack`). A failure (the connection
/// already gone) changes nothing for the request: its read will say so.
fn quick_acks(ctx: &mut Ctx) {
    if let Some(fd) = ctx.upstream_fd.take() {
        if let Err(e) = ack::quickack(fd) {
            tracing::debug!(error = %e, "could not set TCP_QUICKACK on the upstream connection");
        }
    }
}

/// GET, HEAD and OPTIONS: the methods that never sign anyone up.
fn is_safe(m: &http::Method) -> bool {
    m == http::Method::GET || m == http::Method::HEAD || m == http::Method::OPTIONS
}

/// A refusal of the person a valid session names (under age, already signed up, ...): the page
/// offers "verify as someone else" (end this session, verify afresh, back to this address) and,
/// where another verification of the same person can pass (another method), "verify again".
///
/// The underage page names the route's age and rule; the duplicate-account page leads with the
/// route's `on_duplicate` (sign in, find my ID), "verify as someone else" second.
fn session_refusal(
    session: &Session,
    cfg: &crate::config::RuntimeConfig,
    route: &routes::Route,
    r: Refusal,
) -> Problem {
    let here = here(session);
    let mut p = Problem::new(r).with_switch(crate::providers::flow::switch_action(
        &cfg.flow_prefix,
        here,
    ));
    let require = route.require.as_ref();
    match (r, require) {
        (Refusal::Underage, Some(q)) => {
            if let Some(min) = q.min_age {
                p = p.with_age(min, q.age_rule);
            }
        }
        (Refusal::DuplicateAccount, Some(q)) => {
            if let Some((url, label)) = &q.on_duplicate {
                p = p.with_primary(url, label);
            }
        }
        _ => {}
    }
    match r {
        Refusal::AgeUnknown | Refusal::KoreanNational | Refusal::CiUnavailable => {
            p.with_next(crate::providers::flow::verify_url(&cfg.flow_prefix, here))
        }
        _ => p,
    }
}

/// The address this request asked for (path and query): where a verification returns to.
fn here(session: &Session) -> &str {
    session
        .req_header()
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
}

/// Answer a refusal (its `error` code is also the decision the access line and metrics name).
impl Gate {
    /// A provider's start page (`/{provider}/start`) counts against the start limits: it is
    /// where a verification (and what a merchant pays for) begins.
    async fn limit_start(
        &self,
        live: &Live,
        ctx: &Ctx,
        session: &Session,
        rest: &str,
    ) -> std::result::Result<(), crate::ratelimit::Limited> {
        let get = matches!(
            session.req_header().method,
            http::Method::GET | http::Method::HEAD
        );
        let Some(provider) = ctx
            .flow_provider
            .filter(|p| get && rest == format!("/{}/start", p.as_str()) && live.flow(*p).is_some())
        else {
            return Ok(());
        };
        let client = ctx.origin.as_ref().and_then(|o| o.client);
        let cfg = &live.cfg;
        self.limiter
            .start(
                self.store.as_ref(),
                &cfg.limits,
                &cfg.session.hash_key,
                client,
                provider.as_str(),
            )
            .await
    }

    /// ifree's callback posts (key exchanges, registrations) from an allowed source count
    /// against the key-exchange limits; others are refused by the callback itself, and
    /// never spend the limit of ifree's own servers.
    async fn limit_callback(
        &self,
        live: &Live,
        ctx: &Ctx,
        session: &Session,
    ) -> std::result::Result<(), crate::ratelimit::Limited> {
        let cfg = &live.cfg;
        let Some(ifree) = cfg.providers.ifree.as_ref() else {
            return Ok(());
        };
        let peer = ctx.origin.as_ref().and_then(|o| o.peer);
        if ctx.flow_provider != Some(crate::identity::ProviderId::Ifree)
            || session.req_header().method != http::Method::POST
            || !ifree.callback_allow.allows(peer)
        {
            return Ok(());
        }
        self.limiter
            .key_exchange(
                self.store.as_ref(),
                &cfg.limits,
                &cfg.session.hash_key,
                peer,
            )
            .await
    }
}

/// A refusal's future, boxed: refusals are rare, and their answer's future held inline would
/// make every request's gate future (allocated and copied per request) that much larger.
type Refused<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>>;

/// `429 rate_limited` with `Retry-After`.
fn rate_limited<'a>(
    session: &'a mut Session,
    ctx: &'a mut Ctx,
    l: crate::ratelimit::Limited,
) -> Refused<'a> {
    Box::pin(rate_limited_answer(session, ctx, l))
}

async fn rate_limited_answer(
    session: &mut Session,
    ctx: &mut Ctx,
    l: crate::ratelimit::Limited,
) -> Result<bool> {
    let p = Problem::new(Refusal::RateLimited);
    ctx.decision = p.code;
    note_id(session, ctx);
    Reply::problem(&p, wants_html(session))
        .header(http::header::RETRY_AFTER, l.retry_after_secs().to_string())
        .send(session, frame_of(ctx))
        .await?;
    Ok(true)
}

fn refuse<'a>(session: &'a mut Session, ctx: &'a mut Ctx, p: Problem) -> Refused<'a> {
    Box::pin(refusal(session, ctx, p))
}

async fn refusal(session: &mut Session, ctx: &mut Ctx, p: Problem) -> Result<bool> {
    ctx.decision = p.code;
    note_id(session, ctx);
    let html = wants_html(session);
    let mut reply = Reply::problem(&p, html);
    if let Some(c) = ctx
        .live
        .as_ref()
        .and_then(|l| ctx.kept.ending_cookie(&l.cfg))
    {
        reply = reply.cookie(c);
    }
    reply.send(session, frame_of(ctx)).await?;
    Ok(true)
}

/// Note the request's id (decided in `request_filter`) where verigate's own answers read it
/// ([`forwarded::Origin::mark`]): just before verigate answers a request itself, not on every
/// request (the extension costs each request ~750 instructions). Every answer of verigate's
/// comes after it: `refuse`, `rate_limited`, `send_to_verify`, `keep`, the provider flows,
/// `fail_to_proxy` and the answers of `gatekeep`.
fn note_id(session: &mut Session, ctx: &Ctx) {
    if let Some(o) = &ctx.origin {
        o.mark(session.req_header_mut());
    }
}

/// Where a request that cannot go on yet is sent first, and how it is told.
struct Detour {
    /// Where it goes (a verify page, a guardian handover page).
    next: String,
    /// What an API client is told (with `next` as its `verify_url`).
    refusal: Refusal,
    /// Why the person verifies again.
    why: Option<crate::answers::Why>,
    /// The session (revocation id) that delivers a kept form post: a held child's own, which
    /// comes back after the guardian's consent. None: the session of the flow started for it.
    session: Option<String>,
    /// The access log's decision for a redirected page and for a refused request.
    redirected: &'static str,
    refused: &'static str,
}

impl Detour {
    fn verify(live: &Live, session: &Session, why: Option<crate::answers::Why>) -> Detour {
        Detour {
            next: crate::providers::flow::verify_url_for(&live.cfg.flow_prefix, here(session), why),
            refusal: Refusal::VerificationRequired,
            why,
            session: None,
            redirected: "redirected_to_verify",
            refused: "unauthenticated_api",
        }
    }

    /// A child held for their guardian's consent: the handover page; a kept post is this
    /// child's to deliver (`child`: their session's revocation id, or their stated id).
    fn guardian(live: &Live, session: &Session, child: String) -> Detour {
        Detour {
            next: crate::providers::guardian::handover_url(&live.cfg.flow_prefix, here(session)),
            refusal: Refusal::GuardianConsentRequired,
            why: None,
            session: Some(child),
            redirected: "held_for_guardian",
            refused: "held_for_guardian",
        }
    }

    /// A person without a session where children state a birth date: the birth-date page
    /// (which goes on to the guardian or to the verification, and rebinds a kept post).
    fn stated(live: &Live, session: &Session) -> Detour {
        Detour {
            next: crate::providers::guardian::age_url(&live.cfg.flow_prefix, here(session)),
            refusal: Refusal::VerificationRequired,
            why: None,
            session: None,
            redirected: "redirected_to_verify",
            refused: "unauthenticated_api",
        }
    }

    fn problem(&self) -> Problem {
        Problem::new(self.refusal)
            .with_next(self.next.clone())
            .with_why(self.why)
    }
}

/// The frame of this request's pages (its config's `site` and `tls.hsts`).
fn frame_of(ctx: &Ctx) -> &crate::answers::Frame {
    ctx.live
        .as_ref()
        .map_or(&crate::answers::PLAIN, |l| &l.cfg.frame)
}

/// The Cookie lines of a request being edited for the upstream, as `crate::cookies` edits them.
struct EditLines<'a, E>(&'a mut E);

impl<E: edit::Edit> crate::cookies::CookieLines for EditLines<'_, E> {
    fn lines(&self) -> &http::HeaderMap {
        self.0.map()
    }
    fn replace(&mut self, with: Option<http::HeaderValue>) {
        self.0.remove(&http::header::COOKIE);
        if let Some(v) = with {
            self.0.insert(&http::header::COOKIE, v);
        }
    }
}

/// Does `req` go upstream through [`headers::edit_plain`] (its header names without their
/// original letter case)? Yes unless its route's upstream preserves the case, or its target
/// is not in origin form ([`headers::origin_form`]).
fn plain_upstream(cfg: &crate::config::RuntimeConfig, ctx: &Ctx, req: &RequestHeader) -> bool {
    let preserve = ctx
        .route
        .and_then(|r| cfg.upstream_of(r))
        .is_some_and(|u| u.preserve_header_case);
    !preserve && headers::origin_form(req)
}

/// What every proxied request gets before it goes upstream: no header outside the name
/// grammar, no client-sent identity or environment header (screened in `request_filter`, and
/// again here when a kept request put its headers back), none of verigate's
/// cookies, and for a verified request the identity headers and, when configured, their
/// signed assertion.
fn upstream_edits(
    req: &mut impl edit::Edit,
    cfg: &crate::config::RuntimeConfig,
    ctx: &Ctx,
    route: &str,
    now: Instant,
) -> Result<()> {
    // `request_filter` screened the client's headers; a kept request put its own back since.
    if ctx.kept.delivering() {
        let protected = names::Protected::of(&cfg.identity);
        let trusted = ctx.origin.as_ref().is_some_and(|o| o.trusted);
        names::screen(req, &protected, trusted, false);
    }
    // Only a request that came with a Content-Length has one: nothing on the way adds one
    // (a kept request's own headers, put back since, are looked at whatever the screening saw).
    if ctx.kept.delivering()
        || ctx
            .screened
            .is_none_or(|s| s.may_have(&http::header::CONTENT_LENGTH))
    {
        headers::single_content_length(req);
    }
    // Room for every header added below at once: the map grows (rehashes) once at most.
    let identity = match (&ctx.age_only, &ctx.identity, &ctx.stated_guardian) {
        (Some(_), _, _) => headers::AGE_HEADERS,
        (None, Some(id), _) => id.count(),
        (None, None, Some(_)) => headers::GUARDIAN_HEADERS,
        (None, None, None) => 0,
    };
    let forwarding = if ctx.origin.is_some() {
        forwarded::ADDED
    } else {
        0
    };
    let assertion = usize::from(identity > 0 && cfg.assertion.is_some());
    req.reserve(forwarding + identity + assertion);
    if let Some(o) = &ctx.origin {
        // The upstream request's Host is the one kept in `request_filter`, unless a kept
        // request's headers were screened again here.
        let host = match (&ctx.host, ctx.kept.delivering()) {
            (Some(h), false) => h.clone(),
            _ => req.map().get(http::header::HOST).cloned(),
        };
        forwarded::edit(req, o, host);
    }
    if !ctx.cookies_stripped {
        match &ctx.jar {
            Some(jar) => jar.strip(&mut EditLines(req)),
            None => crate::cookies::strip(&mut EditLines(req), &cfg.session.all_cookies),
        }
    }
    let age_only = ctx.age_only.as_ref();
    if let Some(a) = age_only {
        headers::inject_age(req, &cfg.identity, a);
    } else if let Some(id) = &ctx.identity {
        headers::inject(req, &cfg.identity, id);
    } else if let Some(g) = &ctx.stated_guardian {
        headers::inject_guardian(req, &cfg.identity, g);
    } else {
        return Ok(());
    }
    if let Some(a) = &cfg.assertion {
        // Signed afresh for this request (its own jti), with what `inject` just sent.
        let jwt = ctx
            .route
            .and_then(|i| cfg.routes.get(i))
            .and_then(|r| {
                let claims = match (age_only, &ctx.identity, &ctx.stated_guardian) {
                    (Some(age), _, _) => headers::age_assertion_claims(age, r),
                    (None, Some(id), _) => headers::assertion_claims(id, r),
                    (None, None, Some(g)) => headers::guardian_assertion_claims(g, r),
                    (None, None, None) => return None,
                };
                a.signer
                    .sign_claims(&claims, crate::clock::unix_secs_at(now))
            })
            .and_then(|jwt| http::HeaderValue::try_from(jwt).ok());
        match jwt {
            Some(jwt) => {
                req.insert(&cfg.identity.assertion, jwt);
                crate::metrics::ASSERTIONS.with_label_values(&[route]).inc();
            }
            None => {
                // Fail closed: the app must never see identity headers without the
                // assertion it was told to expect.
                return Err(Error::explain(
                    pingora::ErrorType::InternalError,
                    "could not sign the identity assertion",
                ));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = Ctx;

    /// No downstream modules. Pingora's default adds its response compression module, turned
    /// off, which still costs every request a context of its own and a call per phase;
    /// verigate compresses nothing.
    fn init_downstream_modules(&self, _modules: &mut pingora::modules::http::HttpModules) {}

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Some(Instant::now()),
            decision: "none",
            ..Default::default()
        }
    }

    /// How Pingora's own error lines ("Fail to proxy: ...") name the request. Its default is
    /// the request line and Host (`GET /path?query, Host: ...`), but paths and query strings
    /// stay out of logs (they carry personal data; `tests/it/privacy.rs`): method and route.
    fn request_summary(&self, session: &Session, ctx: &Ctx) -> String {
        format!(
            "{} on route {}",
            session.req_header().method,
            self.route_name(ctx)
        )
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        // The context was made just before this phase: its instant starts the gate's clock.
        let t = *ctx.started.get_or_insert_with(Instant::now);
        let answered = self.gatekeep(session, ctx).await;
        ctx.gate_time += t.elapsed();
        answered
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let live = match &ctx.live {
            Some(l) => l.clone(),
            None => self.live.load_full(),
        };
        let idx = ctx
            .route
            .and_then(|r| live.cfg.routes.get(r))
            .map_or(0, |r| r.upstream);
        let (Some(pool), Some(up)) = (live.pool(idx), live.cfg.upstreams.get(idx)) else {
            return Err(no_address("no upstream configured"));
        };
        // A name that has never resolved leaves the pool empty: 502, as for an app down.
        let Some(addr) = pool.pick(&ctx.tried) else {
            return Err(no_address("the upstream's names resolve to no address"));
        };
        ctx.upstream_addr = Some(addr);
        ctx.pool = Some(pool.clone());
        let mut peer = HttpPeer::new(addr, up.tls, up.sni.clone());
        peer.options.connection_timeout = Some(up.connect_timeout);
        peer.options.read_timeout = Some(up.read_timeout);
        if up.http2 {
            // Over TLS the app may still choose HTTP/1.1 by ALPN; in the clear there is no
            // negotiation, so HTTP/2 it is.
            let min = if up.tls { 1 } else { 2 };
            peer.options.set_http_version(2, min);
        }
        Ok(Box::new(peer))
    }

    /// A connect that failed sets its address aside (after `eject_after` in a row) and, while
    /// the pool has an address this request has not tried, the request is tried there: nothing
    /// of it reached the app, so even a POST may go again.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let (Some(pool), Some(addr)) = (&ctx.pool, ctx.upstream_addr) {
            pool.connect_failed(addr);
            ctx.tried.push(addr);
            let again = pool.untried(&ctx.tried);
            e.set_retry(again);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let (false, Some(pool), Some(addr)) = (reused, &ctx.pool, ctx.upstream_addr) {
            pool.connect_ok(addr);
        }
        // Reused or new: every request re-enters delayed-ACK pingpong mode when it is written.
        ctx.upstream_fd = Some(fd);
        // Pingora copies the request as received into the upstream request next: where that
        // goes through `edit_plain`, the copy is made without the case map it would drop.
        if let Some(live) = ctx.live.as_deref() {
            if session.req_header().has_case()
                && plain_upstream(&live.cfg, ctx, session.req_header())
            {
                headers::drop_case(session.req_header_mut());
            }
        }
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let t = Instant::now();
        let Some(live) = ctx.live.clone() else {
            return Ok(());
        };
        let cfg = &live.cfg;
        let route = self.route_name(ctx);
        if plain_upstream(cfg, ctx, upstream) {
            headers::edit_plain(upstream, |h| upstream_edits(h, cfg, ctx, route, t))?;
        } else {
            upstream_edits(upstream, cfg, ctx, route, t)?;
        }
        if ctx.held_upgrade {
            upgrade::restore_framing(upstream)?;
        }
        let sent = Instant::now();
        ctx.gate_time += sent - t;
        ctx.upstream_sent = Some(sent);
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        ctx.upstream_time = ctx.upstream_sent.map(|t| t.elapsed());
        // A request with a body: its last bytes were written after `request_body_filter`,
        // so quick ACKs start here (this also sends the ACK of these headers at once).
        quick_acks(ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // The app's own word on a signup, never shown to the client.
        let rejected = match upstream_response.headers.get(&SIGNUP_VERDICT) {
            None => false,
            Some(v) => {
                let rejected = v.as_bytes().eq_ignore_ascii_case(b"rejected");
                upstream_response.remove_header(&SIGNUP_VERDICT);
                rejected
            }
        };
        // An interim answer (100 Continue) settles nothing: the final one follows.
        if upstream_response.status.is_informational() {
            return Ok(());
        }
        if let Some(live) = &ctx.live {
            // The listener's HSTS on the app's answers over TLS too (the whole host is
            // HTTPS-only, not verigate's pages alone); an app's own header is left as it is.
            if let Some(hsts) = live.cfg.frame.hsts.as_ref() {
                let tls = ctx.origin.as_ref().is_some_and(|o| o.https);
                let sts = http::header::STRICT_TRANSPORT_SECURITY;
                if tls && !upstream_response.headers.contains_key(&sts) {
                    upstream_response.insert_header(sts, hsts.clone())?;
                }
            }
            // Most answers set no cookie: then no list of names is made.
            if upstream_response
                .headers
                .contains_key(http::header::SET_COOKIE)
            {
                crate::cookies::drop_set_cookies(upstream_response, &live.cfg.session.all_cookies);
            }
        }
        if let Some((_, _, commit_on)) = &ctx.reservation {
            let ok = !rejected && commit_on.takes(upstream_response.status);
            self.settle(ctx, ok).await;
        }
        if let Some(live) = &ctx.live {
            ctx.kept.answer(&live.cfg, upstream_response);
        }
        for c in ctx.reissue.drain(..) {
            let _ = upstream_response.append_header(http::header::SET_COOKIE, c);
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // A delivered kept request: its body in place of the GET's none (again on a retry).
        ctx.kept.body(body, end_of_stream);
        if end_of_stream {
            ctx.body_done = true;
            // A request without a body (nor a kept one in its place) is all written now (its
            // head went before this phase): the app's answer is ACKed as it is read, whatever
            // its write pattern. Otherwise its last bytes go after this phase, and
            // `upstream_response_filter` does it.
            if session.is_body_empty() && body.as_ref().is_none_or(|b| b.is_empty()) {
                quick_acks(ctx);
            }
        } else if ctx.reservation.is_some()
            && ctx
                .started
                .is_some_and(|t| t.elapsed() > SIGNUP_BODY_DEADLINE)
        {
            // A signup whose body drips past the deadline is dropped before the app has all
            // of it, so that its reservation cannot expire under it.
            return Err(Error::explain(
                pingora::ErrorType::ReadTimedout,
                "signup body past its deadline",
            ));
        }
        Ok(())
    }

    /// The app could not be reached or did not answer in time: a readable bilingual page for a
    /// browser, JSON for an API client (Pingora's own answer is an empty body).
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Ctx,
    ) -> pingora::proxy::FailToProxy {
        use pingora::{ErrorSource, ErrorType};
        let refusal = match (e.esource(), e.etype()) {
            (ErrorSource::Upstream, ErrorType::ConnectTimedout)
            | (ErrorSource::Upstream, ErrorType::ReadTimedout)
            | (ErrorSource::Upstream, ErrorType::WriteTimedout) => Some(Refusal::UpstreamTimeout),
            (ErrorSource::Upstream, ErrorType::HTTPStatus(_)) => None,
            (ErrorSource::Upstream, _) => Some(Refusal::UpstreamUnavailable),
            _ => None,
        };
        let code = match (refusal, e.etype()) {
            (Some(r), _) => r.status(),
            (None, ErrorType::HTTPStatus(code)) => *code,
            (None, ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed)
                if e.esource() == &ErrorSource::Downstream =>
            {
                0
            }
            // A client too slow with its body: 408, as for a head too slow.
            (None, ErrorType::ReadTimedout) if e.esource() == &ErrorSource::Downstream => 408,
            (None, _) if e.esource() == &ErrorSource::Downstream => 400,
            (None, _) => 500,
        };
        // Once the app's answer has begun, nothing more can be said: the connection ends.
        // It is not reused after a failed attempt either, and the answer says so
        // (`Connection: close`), so that a client does not send its next request into it.
        session.set_keepalive(None);
        // A reservation is settled before the answer (not after it, in `logging`): a reload
        // right after the failure page must not find its own signup still in progress.
        let app_had_it = ctx.body_done && ctx.upstream_sent.is_some();
        self.settle(ctx, app_had_it).await;
        if code > 0 && session.response_written().is_none() {
            let kept_cookie = match refusal {
                Some(_) => self.kept_after_failure(session, ctx).await,
                None => None,
            };
            note_id(session, ctx);
            let sent = match refusal {
                Some(r) => {
                    let reply = Reply::problem(&Problem::new(r), wants_html(session));
                    let live = ctx.live.clone().unwrap_or_else(|| self.live.load_full());
                    match kept_cookie {
                        Some(c) => reply.cookie(c),
                        None => reply,
                    }
                    .send(session, &live.cfg.frame)
                    .await
                }
                None => session.respond_error(code).await,
            };
            if let Err(e) = sent {
                tracing::debug!(error = %e, "could not answer a failed proxy attempt");
            }
        }
        pingora::proxy::FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // A reservation still open here means no final answer came from the upstream. If the
        // app had the whole request, it may have signed the person up (it timed out, or the
        // connection broke): that counts, fail closed. Otherwise the app never had it all.
        let app_had_it = ctx.body_done && ctx.upstream_sent.is_some();
        self.settle(ctx, app_had_it).await;
        // A request that failed after the gate let it through: the client's doing (a stalled
        // body, data after the request) or the app's. Only the app's feeds upstream alerts.
        let decision = match e {
            Some(e)
                if e.esource() == &pingora::ErrorSource::Downstream
                    && (ctx.decision == "passed" || ctx.decision == "none") =>
            {
                "client_error"
            }
            Some(_) if ctx.decision == "passed" => "upstream_error",
            _ => ctx.decision,
        };
        let route = self.route_name(ctx);
        if ctx.upstream_status == Some(101) {
            // A tunnel that ended before any byte of the client's reached the app: what
            // Pingora's upgrade race leaves (or a client that went without a word).
            let carried = session.upstream_body_bytes_sent().is_some_and(|n| n > 0);
            crate::metrics::upgraded_tunnel(route, carried);
        } else if ctx.held_upgrade {
            // Refused (by verigate or the app): the held body never ends, so the connection
            // is not kept for another request.
            session.set_keepalive(None);
        }
        if let Some(outcome) = ctx.kept.outcome() {
            crate::metrics::kept(route, outcome);
        }
        let end = Instant::now();
        let total = ctx.started.map(|s| end - s).unwrap_or_default();
        let handles = match (&ctx.live, ctx.route) {
            (Some(l), Some(i)) => l.route_metrics(i),
            _ => None,
        };
        match handles {
            Some(h) => h.record(
                decision,
                total,
                ctx.upstream_status.map(|s| (s, ctx.gate_time)),
            ),
            None => crate::metrics::request(route, decision),
        }
        let access_log = ctx.live.as_ref().is_none_or(|l| l.cfg.access_log);
        if access_log && crate::logwriter::access_enabled() {
            let status = session
                .response_written()
                .map(|r| r.status.as_u16())
                .unwrap_or(0);
            let provider = ctx
                .identity
                .as_ref()
                .map(|i| i.verified.claims.provider.as_str())
                .or(ctx.age_only.map(|a| a.provider.as_str()))
                .or(ctx.flow_provider.map(|p| p.as_str()))
                .unwrap_or("");
            // Never query strings, cookies or identities; the client as configured.
            let req = session.req_header();
            let client = ctx.origin.as_ref().and_then(|o| {
                let mode = ctx
                    .live
                    .as_ref()
                    .map(|l| l.cfg.access_log_client)
                    .unwrap_or_default();
                forwarded::for_log(o.peer, mode)
            });
            let upstream = ctx.upstream_addr.map(crate::logwriter::AddrText::socket);
            crate::logwriter::access(
                end,
                &AccessLine {
                    request_id: ctx.origin.as_ref().map_or(&b""[..], |o| o.request_id()),
                    route,
                    decision,
                    status,
                    method: req.method.as_str(),
                    host: target::authority_of(kept_host(&ctx.host, req), req),
                    path: req.uri.path(),
                    client: client.as_ref().map(|a| a.as_bytes()),
                    upstream: upstream.as_ref().map(|a| a.as_bytes()),
                    latency_ms: total,
                    gate_ms: ctx.gate_time,
                    upstream_ms: ctx.upstream_time,
                    upstream_status: ctx.upstream_status,
                    provider,
                    error: e.map(|e| e.etype().as_str()),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AccessLine;

    #[test]
    fn durations_are_written_as_exact_milliseconds() {
        use std::time::Duration;
        for (d, want) in [
            (Duration::from_nanos(1_234_567), "1.234567"),
            (Duration::from_nanos(123_456), "0.123456"),
            (Duration::from_nanos(100_000), "0.1"),
            (Duration::from_millis(1), "1.0"),
            (
                Duration::from_secs(3) + Duration::from_nanos(7_000),
                "3000.007",
            ),
            (Duration::from_nanos(12), "0.000012"),
            (Duration::from_nanos(5), "5e-6"),
            (Duration::ZERO, "0.0"),
        ] {
            let ms = crate::logwriter::millis(d);
            assert_eq!(serde_json::to_string(&ms).unwrap(), want, "{d:?}");
        }
    }

    #[test]
    fn access_lines_are_written_exactly_as_serde_json_writes_them() {
        use std::time::Duration;
        let full = AccessLine {
            request_id: b"5f0c3a9d2e7b4c1a8f6e0d9c7b5a3e1f",
            route: "signup",
            decision: "passed",
            status: 200,
            method: "POST",
            host: b"shop.example",
            path: "/signup/x",
            client: Some(b"203.0.113.0/24"),
            upstream: Some(b"10.0.0.5:8080"),
            latency_ms: Duration::from_nanos(1_234_567),
            gate_ms: Duration::from_micros(1),
            upstream_ms: Some(Duration::from_millis(1)),
            upstream_status: Some(201),
            provider: "iamport",
            error: Some("ConnectTimedout"),
        };
        // (line, written by the fast path)
        let lines = [
            (AccessLine { ..full }, true),
            (
                AccessLine {
                    client: None,
                    upstream: None,
                    upstream_ms: None,
                    upstream_status: None,
                    error: None,
                    provider: "",
                    status: 0,
                    ..full
                },
                true,
            ),
            (
                AccessLine {
                    route: "quote\" back\\ nl\n tab\t ctl\u{1} 한글 \u{7f}",
                    upstream_ms: None,
                    upstream_status: None,
                    error: None,
                    ..full
                },
                false,
            ),
            (
                AccessLine {
                    path: "/signup/\"x\"",
                    ..full
                },
                false,
            ),
            (
                AccessLine {
                    host: "shöp.example".as_bytes(),
                    ..full
                },
                false,
            ),
            (
                AccessLine {
                    latency_ms: Duration::MAX,
                    gate_ms: Duration::from_secs(1 << 40),
                    upstream_ms: Some(Duration::from_nanos(5)),
                    provider: "",
                    status: 0,
                    ..full
                },
                true,
            ),
            (
                AccessLine {
                    latency_ms: Duration::ZERO,
                    gate_ms: Duration::from_nanos(123_456_789_125_000),
                    upstream_ms: Some(Duration::from_nanos(12)),
                    ..full
                },
                true,
            ),
        ];
        for (l, fast) in &lines {
            let mut ours = Vec::new();
            assert_eq!(crate::logwriter::write_json(l, &mut ours), *fast);
            let reference = serde_json::to_vec(l).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
        let mut out = Vec::new();
        crate::logwriter::write_json(&lines[4].0, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["host"], "",
            "a host that is not visible ASCII is left out"
        );
    }
}
