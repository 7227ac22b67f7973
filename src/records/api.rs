//! The admin listener's record API: `POST /accounts/forget`, what the app's withdrawal handler
//! calls, `GET /audit` / `GET /ledger`, the logs, and `GET /consents/{id}` /
//! `GET /consents?child=`, the proof of a guardian's consent. Authenticated with the bearer token of `admin.token_env` / `token_file` (compared in
//! constant time), or open on a loopback-only listener when the config says so.

use super::{
    check_consent_child, check_consent_id, consent_json, forget_audited,
    forget_consent_child_audited, ForgetError, Keys, Via,
};
use crate::config::AdminAccess;
use crate::live::revoked::Revoked;
use crate::live::Live;
use crate::store::{Log, PersonRef, Store};
use arc_swap::ArcSwap;
use http::Response;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// A request body is a few identifiers: more is refused unread.
const MAX_BODY: usize = 4096;

/// What the record API works with (an admin sub-router).
pub struct RecordsApi {
    pub live: Arc<ArcSwap<Live>>,
    pub store: Arc<dyn Store>,
    pub revoked: Arc<Revoked>,
}

/// `POST /accounts/forget`'s body: the person as the app knows them, by exactly one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForgetRequest {
    /// `X-Verified-Unique-In-Site` as the app received it.
    #[serde(default)]
    unique_in_site: Option<String>,
    /// The person id the app received: the keyed CI hash kept in the records.
    #[serde(default)]
    person: Option<String>,
    /// Only this route's one-account records (and its cooldown).
    #[serde(default)]
    route: Option<String>,
    /// A stated child (`stated:…`, a child without a verification of their own): their
    /// guardian consent records.
    #[serde(default)]
    consent_child: Option<String>,
}

/// `since` as a log query gives it: RFC 3339 (`2026-12-01T00:00:00Z`), UNIX seconds, or a
/// duration back from now (`7d`); absent: from the first line. UNIX ms.
pub fn parse_since(v: Option<&str>, now_ms: i64) -> Result<i64, String> {
    let Some(v) = v.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(s) = v.parse::<i64>() {
        return Ok(s.saturating_mul(1000));
    }
    match crate::config::duration::parse(v) {
        Ok(d) => Ok(now_ms.saturating_sub(d.as_millis() as i64)),
        Err(_) => Err(format!(
            "since `{v}` is not a time: write RFC 3339 (2026-12-01T00:00:00Z), UNIX seconds, \
             or a duration back from now (7d)"
        )),
    }
}

fn json(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = format!("{body}\n").into_bytes();
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn refused(status: u16, code: &str, message: &str) -> Response<Vec<u8>> {
    json(
        status,
        serde_json::json!({ "error": code, "message": message }),
    )
}

/// Whether the request may use the record API under `access`: `None` when it may, else the
/// refusal to answer.
fn refusal(access: &AdminAccess, session: &ServerSession) -> Option<Response<Vec<u8>>> {
    match access {
        AdminAccess::Loopback => None,
        AdminAccess::Closed => Some(refused(
            401,
            "unauthorized",
            "no admin token is configured: set admin.token_env or admin.token_file",
        )),
        AdminAccess::Token(expected) => {
            let given = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                // The scheme's name is case-insensitive (RFC 9110 §11.1); one space, then the token.
                .and_then(|v| {
                    v.split_at_checked(7)
                        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer "))
                        .map(|(_, token)| token)
                })
                .unwrap_or("");
            // Digests of equal length, compared in constant time: neither the token's bytes
            // nor its length show in the time an answer takes.
            let a = Sha256::digest(given.as_bytes());
            let b = Sha256::digest(expected.as_bytes());
            if !given.is_empty() && bool::from(a.ct_eq(&b)) {
                None
            } else {
                Some(refused(
                    401,
                    "unauthorized",
                    "give the admin token as Authorization: Bearer TOKEN",
                ))
            }
        }
    }
}

impl RecordsApi {
    /// Answer a request under `/accounts/`.
    pub async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let live = self.live.load_full();
        if let Some(r) = refusal(&live.cfg.admin, session) {
            return r;
        }
        let path = session.req_header().uri.path().to_string();
        let method = session.req_header().method.clone();
        match (method, path.as_str()) {
            (http::Method::POST, "/accounts/forget") => self.forget(&live, session).await,
            (_, "/accounts/forget") => refused(405, "method_not_allowed", "use POST"),
            (http::Method::GET, "/audit") => self.log(Log::Audit, session).await,
            (http::Method::GET, "/ledger") => self.log(Log::Ledger, session).await,
            (_, "/audit" | "/ledger") => refused(405, "method_not_allowed", "use GET"),
            (http::Method::GET, "/consents") => self.consents_of(session).await,
            (http::Method::GET, p) if p.starts_with("/consents/") => {
                self.consent(&p["/consents/".len()..]).await
            }
            (_, p) if p == "/consents" || p.starts_with("/consents/") => {
                refused(405, "method_not_allowed", "use GET")
            }
            _ => refused(404, "not_found", "no such record API"),
        }
    }

    /// `GET /audit` or `/ledger` (`?since=`): the lines as JSON objects, oldest first.
    async fn log(&self, log: Log, session: &ServerSession) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query().unwrap_or("");
        let mut since = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "since" => since = Some(v.into_owned()),
                other => {
                    return refused(
                        400,
                        "bad_request",
                        &format!("unknown parameter `{other}` (only since)"),
                    )
                }
            }
        }
        let since = match parse_since(since.as_deref(), chrono::Utc::now().timestamp_millis()) {
            Ok(s) => s,
            Err(m) => return refused(400, "bad_request", &m),
        };
        match self.store.log_lines(log, since).await {
            Ok(lines) => {
                let lines: Vec<serde_json::Value> = lines
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null))
                    .collect();
                json(
                    200,
                    serde_json::json!({ "log": log.name(), "count": lines.len(), "lines": lines }),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "records: cannot read a log");
                refused(
                    503,
                    "store_unavailable",
                    "the store is unavailable; call again",
                )
            }
        }
    }

    /// `GET /consents/{id}`: one consent record, every field (404 when none has this id).
    async fn consent(&self, id: &str) -> Response<Vec<u8>> {
        if let Err(ForgetError::NotAnId(why)) = check_consent_id(id) {
            return refused(400, "not_an_id", why);
        }
        match self.store.consent_get(id).await {
            Ok(Some(r)) => json(200, serde_json::json!({ "consent": consent_json(&r) })),
            Ok(None) => refused(404, "not_found", "no consent record has this id"),
            Err(e) => {
                tracing::warn!(error = %e, "records: cannot read a consent record");
                refused(
                    503,
                    "store_unavailable",
                    "the store is unavailable; call again",
                )
            }
        }
    }

    /// `GET /consents?child=`: a child's consent records, oldest first (none: an empty list).
    async fn consents_of(&self, session: &ServerSession) -> Response<Vec<u8>> {
        let query = session.req_header().uri.query().unwrap_or("");
        let mut child = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "child" => child = Some(v.into_owned()),
                other => {
                    return refused(
                        400,
                        "bad_request",
                        &format!("unknown parameter `{other}` (only child)"),
                    )
                }
            }
        }
        let Some(child) = child else {
            return refused(
                400,
                "bad_request",
                "give the child: /consents?child=PERSON or /consents?child=stated:…; one record: /consents/ID",
            );
        };
        if let Err(ForgetError::NotAnId(why)) = check_consent_child(&child) {
            return refused(400, "not_an_id", why);
        }
        match self.store.consents_of(&child).await {
            Ok(records) => {
                let records: Vec<serde_json::Value> = records.iter().map(consent_json).collect();
                json(
                    200,
                    serde_json::json!({ "child": child, "count": records.len(), "consents": records }),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "records: cannot read consent records");
                refused(
                    503,
                    "store_unavailable",
                    "the store is unavailable; call again",
                )
            }
        }
    }

    async fn forget(&self, live: &Live, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_BODY {
                        return refused(413, "too_large", "the body is a few identifiers");
                    }
                }
                Ok(None) => break,
                Err(_) => return refused(400, "bad_request", "the body could not be read"),
            }
        }
        let req: ForgetRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return refused(
                    400,
                    "bad_request",
                    &format!("a JSON object with unique_in_site, person or consent_child: {e}"),
                )
            }
        };
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let operator = match &live.cfg.admin {
            AdminAccess::Token(_) => "admin token",
            _ => "loopback, no token",
        };
        let who = match (
            nonempty(req.unique_in_site),
            nonempty(req.person),
            nonempty(req.consent_child),
        ) {
            (Some(u), None, None) => PersonRef::UniqueInSite(u),
            (None, Some(p), None) => PersonRef::CiHash(p),
            (None, None, Some(child)) => {
                if req.route.is_some_and(|r| !r.is_empty()) {
                    return refused(
                        400,
                        "bad_request",
                        "route limits a person's erasure; a stated child's has none",
                    );
                }
                let done = forget_consent_child_audited(
                    self.store.as_ref(),
                    &live.cfg.session.hash_key,
                    &child,
                    Via::Api(operator),
                )
                .await;
                return self.forgot(done);
            }
            _ => {
                return refused(
                    400,
                    "bad_request",
                    "give exactly one of unique_in_site, person and consent_child",
                )
            }
        };
        let route = req.route.filter(|r| !r.is_empty());
        let s = &live.cfg.session;
        let routes = live.cfg.one_account_routes();
        let keys = Keys {
            hash_key: &s.hash_key,
            session_ttl: s.ttl.max(s.age_status_ttl.unwrap_or_default()),
            rejoin_max: live.cfg.rejoin_max(),
            routes: &routes,
        };
        let now = crate::clock::unix_now();
        let done = forget_audited(
            self.store.as_ref(),
            keys,
            &who,
            route.as_deref(),
            now,
            Via::Api(operator),
        )
        .await;
        self.forgot(done)
    }

    /// The answer to an erasure: what went, or why nothing did.
    fn forgot(&self, done: Result<super::Forgotten, ForgetError>) -> Response<Vec<u8>> {
        match done {
            Ok(f) => {
                let at = chrono::Utc::now().timestamp_millis();
                for (id, until) in &f.revocations {
                    self.revoked.insert_at(id, *until, at);
                }
                tracing::info!(
                    accounts = f.accounts,
                    ifree_members = f.ifree_members,
                    consents = f.consents,
                    sessions_revoked = f.sessions_revoked,
                    "records: a person was forgotten through the admin API"
                );
                json(200, serde_json::json!({ "forgot": f }))
            }
            Err(ForgetError::NotAnId(why)) => refused(400, "not_an_id", why),
            Err(ForgetError::UnknownRoute(r)) => refused(
                400,
                "unknown_route",
                &format!("route `{r}` is not a route with one_account_per_person"),
            ),
            Err(ForgetError::Store(e)) => {
                tracing::warn!(error = %e, "records: erasure failed");
                refused(
                    503,
                    "store_unavailable",
                    "the store is unavailable: nothing may have been forgotten; call again",
                )
            }
        }
    }
}
