//! verigate's own endpoints under `flow_prefix`: the provider choice page, provider flows,
//! the session endpoint, logout and the JWKS.

use crate::answers::Refusal;
use crate::answers::{escape, page, wants_html, Problem, Reply, Why, BACK_MARK};
use crate::clock::unix_now;
use crate::cookies;
use crate::identity::ChannelMethod;
use crate::identity::ProviderId;
use crate::live::provider::ProviderFlow;
use crate::live::revoked::Revoked;
use crate::live::{session_id, Live};
use crate::providers::guardian;
use crate::routing::path::safe_return_to;
use crate::session::{Claims, FlowClaims, Purpose};
use crate::store::Store;
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

use super::web::enc;
pub(crate) use super::web::{
    clear_flow_cookie, public_base, query_param, read_body, route_for, same_origin, KEPT_MARK,
};
pub use super::web::{verify_url, FLOW_TTL_SECS};

/// The remainder of a normalised path under the flow prefix (`/verify`), if it is under it.
pub fn under_prefix<'a>(normalized: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = normalized.strip_prefix(prefix)?;
    if rest.is_empty() || rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// The verify address, saying why the person is asked again (`why=`): the pages on the way
/// read the details (the route's `max_session_age`) from the route, never from the address.
pub fn verify_url_for(prefix: &str, return_to: &str, why: Option<Why>) -> String {
    let url = verify_url(prefix, return_to);
    match why {
        Some(w) => format!("{url}&why={}", w.code()),
        None => url,
    }
}

/// Why this request (a verify or start page for `return_to`) asks to verify again: its `why=`,
/// checked against the route (a `session_too_old` of a route without `max_session_age` says
/// nothing).
fn why_of(live: &Live, session: &Session, return_to: &str) -> Option<Why> {
    match query_param(session, "why")?.as_str() {
        "session_too_old" => route_for(live, session, return_to)?
            .require
            .as_ref()?
            .max_session_age
            .map(Why::TooOld),
        "provider_not_accepted" => Some(Why::OtherProvider),
        _ => None,
    }
}

/// Where "verify as someone else" posts: the logout, which ends this browser's session and then
/// sends it to a fresh verification back to `return_to`.
pub fn switch_action(prefix: &str, return_to: &str) -> String {
    format!(
        "{prefix}/logout?return_to={}",
        enc(&verify_url(prefix, return_to))
    )
}

/// The choice page's picture of a channel's method (trusted SVG).
pub fn method_icon(m: ChannelMethod) -> &'static str {
    match m {
        ChannelMethod::Phone => PHONE_ICON,
        ChannelMethod::Unified => UNIFIED_ICON,
        ChannelMethod::Card => CARD_ICON,
    }
}

/// A refused verification: counted by provider and reason, with a retry link when the flow's
/// `return_to` is known.
pub(crate) fn refuse(
    provider: ProviderId,
    r: Refusal,
    live: &Live,
    return_to: Option<&str>,
) -> Problem {
    crate::metrics::verification(provider.as_str(), "failed", r.code());
    let p = Problem::new(r);
    match return_to {
        Some(rt) => p.with_next(verify_url(&live.cfg.flow_prefix, rt)),
        None => p,
    }
}

/// How a failed provider call is answered: down or slow is 503, an unknown result 400, and
/// anything else 502.
pub(crate) fn provider_problem(
    provider: ProviderId,
    e: &crate::live::provider::ProviderError,
    live: &Live,
    rt: &str,
) -> Problem {
    use crate::live::provider::ProviderError;
    match e {
        ProviderError::Unavailable(_) => {
            refuse(provider, Refusal::ProviderUnavailable, live, Some(rt))
        }
        ProviderError::NotFound => refuse(provider, Refusal::ResultNotFound, live, Some(rt)),
        other => {
            tracing::warn!(provider = provider.as_str(), reason = other.reason(), error = %other, "provider call failed");
            refuse(provider, other.refusal(), live, Some(rt))
        }
    }
}

/// Accept a provider result (or token) once: the replay guard in the store. A replay is
/// `409 replayed_result`; a store that cannot answer fails closed with `503`.
pub(crate) async fn use_once(
    store: &dyn Store,
    provider: ProviderId,
    key: &str,
    ttl: std::time::Duration,
    live: &Live,
    rt: &str,
) -> std::result::Result<(), Problem> {
    match store
        .claim_once(&format!("{}:{key}", provider.as_str()), ttl)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(provider, Refusal::ReplayedResult, live, Some(rt))),
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable during verification");
            Err(refuse(provider, Refusal::StoreUnavailable, live, Some(rt)))
        }
    }
}

/// The session of a person a provider vouched for: only the personal fields some route
/// forwards are kept. Counts the verification as completed and the session as issued.
pub(crate) fn session_claims(
    live: &Live,
    person: crate::providers::VerifiedPerson,
    unique_in_site: String,
    ci_hash: String,
    session: bool,
) -> Claims {
    let keep = live.cfg.keep_in_session;
    let issued = unix_now();
    let provider = person.provider.as_str();
    crate::metrics::verification(provider, "completed", "");
    // A guardian's verification issues no session.
    if session {
        crate::metrics::session_issued(provider);
    }
    Claims {
        unique_in_site,
        ci_hash,
        birth: person.birth,
        provider: person.provider,
        verified_at: person.verified_at.timestamp(),
        issued_at: issued,
        expires_at: issued + live.cfg.session.ttl.as_secs() as i64,
        // A guardian's name, only for a route that forwards it (it goes to the store sealed,
        // for the child's request, never into a session).
        name: person
            .name
            .filter(|_| keep.name || (!session && keep.guardian_name)),
        gender: person.gender.filter(|_| keep.gender),
        phone: person.phone.filter(|_| keep.phone),
        foreigner: person.foreigner.filter(|_| keep.foreigner),
        carrier: person.carrier.filter(|_| keep.carrier),
        method: person.method,
        countries: Vec::new(),
        host: None,
        host_only: false,
        kept: None,
    }
}

/// For providers that give a CI and a DI (Iamport, PortOne): `(unique_in_site, ci_hash)`.
/// The DI may be missing (KG이니시스 통합인증 never gives one): then `unique_in_site` is empty
/// and `X-Verified-Unique-In-Site` is left out, never invented.
pub(crate) fn ci_identity(live: &Live, ci: &str, di: Option<&str>) -> (String, String) {
    let hash_key = &live.cfg.session.hash_key;
    (
        di.unwrap_or_default().to_string(),
        crate::session::keyed_hash(hash_key, "ci", ci),
    )
}

/// A verification accepted: the session cookie (bound to this request's host), the flow cookie
/// cleared, and the browser sent on to `return_to` (a redirect, or `{"redirect": ...}` for the
/// page's own script).
pub(crate) async fn signed_in(
    live: &Live,
    store: &dyn Store,
    session: &Session,
    claims: &Claims,
    return_to: &str,
    json: bool,
) -> Reply {
    let flow = read_flow(live, session).filter(|f| f.return_to == return_to);
    // A guardian's verification: a consent for the child, never a session (the child's
    // session on a shared device stays).
    if let Some(g) = flow.as_ref().and_then(|f| f.guardian.as_ref()) {
        return guardian::accept(live, store, g, claims, json).await;
    }
    let mut claims = claims.clone();
    claims.host =
        crate::routing::host::request_host(session.req_header()).map(str::to_ascii_lowercase);
    claims.host_only = live.cfg.session.cookie.starts_with(cookies::HOST_PREFIX);
    // The kept request the flow was started for (the flow cookie this return carries, which
    // the provider's result was just matched to): this session, and only it, delivers it.
    claims.kept = flow.and_then(|f| f.kept);
    let reply = if json {
        Reply::json(
            200,
            serde_json::json!({ "redirect": return_to }).to_string(),
        )
    } else {
        Reply::redirect(return_to)
    };
    reply
        .cookie(session_cookie(live, &claims))
        .cookie(clear_flow_cookie(live))
}

/// A start page that runs a provider's browser SDK. The page's own script reads the
/// `verigate-flow` block into `flow`, and offers `fail(message)` and `finish(url, payload)`
/// (post the SDK's result, then follow the `redirect` verigate answers) to `call`, the
/// provider's SDK call, run when the person presses the button.
pub(crate) struct SdkPage<'a> {
    pub title: &'a str,
    pub heading: &'a str,
    pub heading_en: &'a str,
    /// A trusted HTML paragraph before the button (may be empty).
    pub intro: &'a str,
    pub button: &'a str,
    pub failed: &'a str,
    /// The global the SDK defines (`IMP`, `PortOne`, `IfreeLogin`).
    pub sdk_global: &'a str,
    pub call: &'a str,
    /// On a phone the SDK goes by redirection (no popup a browser would block without a
    /// click): the page then opens the provider by itself.
    pub redirects_on_phones: bool,
}

impl SdkPage<'_> {
    pub(crate) fn reply(
        &self,
        live: &Live,
        flow: &FlowClaims,
        params: &serde_json::Value,
        sdk_url: &str,
    ) -> Reply {
        const SCRIPT: &str = r#"<script>
(function () {
  var flow = JSON.parse(document.getElementById('verigate-flow').textContent);
  var status = document.getElementById('verigate-status');
  function fail(msg) { status.textContent = msg || '__FAILED__'; }
  function finish(url, payload) {
    fetch(url, { method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
      body: JSON.stringify(payload) })
      .then(function (r) { return r.json(); })
      .then(function (j) { if (j.redirect) { location.href = j.redirect; } else { fail(j.message); } })
      .catch(function () { fail(); });
  }
  function start() {
    if (!window.__GLOBAL__) { fail('인증 모듈을 불러오지 못했습니다 · The verification script did not load'); return; }
__CALL__
  }
  document.getElementById('verigate-start').addEventListener('click', start);
  // A phone needs no click: the SDK redirects there. Not when the person came back to this
  // page with the back button (they would be sent forward again at once).
  var nav = window.performance && performance.getEntriesByType ? performance.getEntriesByType('navigation')[0] : null;
  var phone = /Android|iPhone|iPad|iPod|Mobile/i.test(navigator.userAgent);
  if (flow.autostart && phone && !(nav && nav.type === 'back_forward')) { start(); }
})();
</script>"#;
        let script = SCRIPT
            .replace("__FAILED__", self.failed)
            .replace("__GLOBAL__", self.sdk_global)
            .replace("__CALL__", self.call);
        let mut params = params.clone();
        params["autostart"] = serde_json::Value::Bool(self.redirects_on_phones);
        let body = format!(
            r#"<h1>{}</h1><p class="en"><strong>{}</strong></p>{WHY_MARK}{}{KEPT_MARK}
<button id="verigate-start" type="button">{}</button>
<p id="verigate-status" role="status"></p>{BACK_MARK}
<script id="verigate-flow" type="application/json">{}</script>
<script src="{}"></script>
{script}"#,
            escape(self.heading),
            escape(self.heading_en),
            self.intro,
            escape(self.button),
            crate::answers::script_json(&params),
            escape(sdk_url),
        );
        Reply::html(200, page(self.title, &body)).cookie(flow_cookie(live, flow))
    }
}

/// What every provider's start endpoint checks first (the provider is configured: the caller
/// is its flow): `return_to` is a same-site path whose route accepts the provider, and there
/// is a base URL for the return. Answers `(return_to, base)`, or the reply that refuses it.
pub(crate) fn start_checks(
    live: &Live,
    session: &Session,
    provider: ProviderId,
) -> std::result::Result<(String, String), Reply> {
    let html = wants_html(session);
    let Some(return_to) = safe_return_to(query_param(session, "return_to").as_deref()) else {
        return Err(Reply::problem(&Problem::new(Refusal::BadReturnTo), html));
    };
    if !providers_for(live, session, &return_to).contains(&provider) {
        // The page's own ways to verify are one step away.
        let p = Problem::new(Refusal::ProviderNotAccepted)
            .with_next(verify_url(&live.cfg.flow_prefix, &return_to));
        return Err(Reply::problem(&p, html));
    }
    let Some(base) = public_base(live, session) else {
        return Err(Reply::problem(&Problem::new(Refusal::UnknownHost), html));
    };
    Ok((return_to, base))
}

/// A fresh flow nonce (Iamport `merchant_uid`, TomoIDV `user_id`, ifree `state`).
pub(crate) fn fresh_nonce() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "vg_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 24)
    )
}

/// A provider's start page for `return_to` (saying why the person verifies again, if so).
fn start_url(prefix: &str, provider: ProviderId, return_to: &str, why: Option<Why>) -> String {
    let url = format!(
        "{prefix}/{}/start?return_to={}",
        provider.as_str(),
        enc(return_to)
    );
    match why {
        Some(w) => format!("{url}&why={}", w.code()),
        None => url,
    }
}

/// The international age a provider's window may be told to require for `return_to` (Iamport
/// `min_age`, PortOne V2 Danal `AGELIMIT`): the route's `min_age` lowered so that the window
/// never refuses someone the route's rule admits (`AgeRule::hint`). The window's answer is
/// never trusted: the gate checks every result against the rule itself.
pub(crate) fn age_hint(live: &Live, session: &Session, return_to: &str) -> Option<u32> {
    let req = route_for(live, session, return_to)?.require.as_ref()?;
    let min = req.min_age?;
    Some(req.age_rule.hint(min)).filter(|h| *h > 0)
}

/// The providers a `return_to` on this request's host accepts: its route's list, or every
/// configured one.
fn providers_for(live: &Live, session: &Session, return_to: &str) -> Vec<ProviderId> {
    match route_for(live, session, return_to).and_then(|r| r.require.as_ref()) {
        Some(req) => req.providers.clone(),
        None => live.flows().iter().map(|f| f.id()).collect(),
    }
}

pub(crate) fn flow_cookie(live: &Live, flow: &FlowClaims) -> String {
    let s = &live.cfg.session;
    let sealed = s.keys.seal_json(Purpose::Flow, flow);
    cookies::flow(s, &live.cfg.flow_prefix, &sealed, FLOW_TTL_SECS)
}

pub(crate) fn session_cookie(live: &Live, claims: &Claims) -> String {
    let s = &live.cfg.session;
    let sealed = s.keys.seal_json(Purpose::Session, claims);
    cookies::session(s, &sealed, s.ttl.as_secs() as i64)
}

/// A flow starting for `return_to` on this request: its nonce, and the kept request it is
/// started for, if any. That is this browser's kept post ([`crate::live::kept::for_flow`]):
/// for the same address and host, and only when the start page was reached from this site's
/// own pages, as the kept post's `303` leads there.
pub(crate) fn new_flow(
    live: &Live,
    session: &Session,
    provider: ProviderId,
    nonce: String,
    return_to: String,
) -> FlowClaims {
    // A guardian's verification (its start page sent on from the consent page): never the
    // child's kept post, which the child's own session delivers.
    let guardian = guardian::start_of(live, session, &return_to);
    let kept = match guardian {
        Some(_) => None,
        None => crate::live::kept::for_flow(live, session.req_header(), &return_to, unix_now()),
    };
    FlowClaims {
        nonce,
        return_to,
        provider,
        expires_at: unix_now() + FLOW_TTL_SECS,
        kept,
        guardian,
    }
}

/// The flow cookie of this browser, if valid.
pub(crate) fn read_flow(live: &Live, session: &Session) -> Option<FlowClaims> {
    let raw = cookies::read_flow(session.req_header(), &live.cfg.session)?;
    live.cfg.session.keys.open_flow(raw, unix_now()).ok()
}

pub async fn handle(
    live: &Live,
    store: &dyn Store,
    revoked: &Revoked,
    session: &mut Session,
    rest: &str,
) -> Result<()> {
    let method = session.req_header().method.clone();
    let html = wants_html(session);
    let no_route = || Reply::problem(&Problem::new(Refusal::NoRoute), html);
    let reply = match (method.as_str(), rest) {
        ("GET" | "HEAD", "/verify") => choice_page(live, session),
        ("GET" | "HEAD", "/session") => session_info(live, revoked, session),
        ("POST", "/logout") => logout(live, store, revoked, session).await,
        ("GET" | "HEAD", "/logout") => logout_page(live, session),
        ("GET" | "HEAD", "/jwks.json") => Reply::json(200, live.jwks().to_string())
            .header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ("GET" | "HEAD", guardian::HANDOVER) => guardian::handover(live, revoked, session),
        ("GET" | "HEAD", guardian::CONSENT) => guardian::consent_page(live, session),
        ("POST", guardian::CONSENT) => guardian::consent_post(live, store, session).await?,
        ("GET" | "HEAD", guardian::DONE) => guardian::done(session),
        ("GET" | "HEAD", guardian::AGE) => guardian::age_page(live, session),
        ("POST", guardian::AGE) => guardian::age_post(live, session).await?,
        // `/{provider}/{endpoint}`: the provider's own flow answers.
        _ => match rest.strip_prefix('/').and_then(|r| r.split_once('/')) {
            Some((name, endpoint)) => match ProviderId::parse(name) {
                None => no_route(),
                Some(id) => match live.flow(id).cloned() {
                    None => Reply::problem(&Problem::new(Refusal::ProviderNotConfigured), html),
                    Some(flow) => {
                        // A provider call may last its whole timeout: not for a client gone.
                        let gone = crate::providers::client_gone(session, id);
                        tokio::select! {
                            biased;
                            reply = flow.endpoint(live, store, session, &method, endpoint) => {
                                match reply {
                                    Some(reply) => reply?,
                                    None => no_route(),
                                }
                            }
                            left = gone => return Err(left),
                        }
                    }
                },
            },
            None => no_route(),
        },
    };
    kept_note(live, session, reply)
        .send(session, &live.cfg.frame)
        .await
}

/// Where such a page says why the person is asked to verify again; filled in by [`kept_note`].
const WHY_MARK: &str = "<!--verigate-why-->";

/// The page's word that the form is kept, where its `return_to` is the address of this
/// browser's kept form post (its kept-request cookie), and why the person verifies again
/// (`why=`); nothing otherwise.
fn kept_note(live: &Live, session: &Session, reply: Reply) -> Reply {
    let mut reply = kept_only(live, session, reply);
    let mark = WHY_MARK.as_bytes();
    let Some(at) = reply.body.windows(mark.len()).position(|w| w == mark) else {
        return reply;
    };
    let line = safe_return_to(query_param(session, "return_to").as_deref())
        .and_then(|rt| why_of(live, session, &rt))
        .map(Why::html)
        .unwrap_or_default();
    let mut body = Vec::with_capacity(reply.body.len() + line.len());
    body.extend_from_slice(&reply.body[..at]);
    body.extend_from_slice(line.as_bytes());
    body.extend_from_slice(&reply.body[at + mark.len()..]);
    reply.body = body.into();
    reply
}

fn kept_only(live: &Live, session: &Session, mut reply: Reply) -> Reply {
    let mark = KEPT_MARK.as_bytes();
    let Some(at) = reply.body.windows(mark.len()).position(|w| w == mark) else {
        return reply;
    };
    let kept = safe_return_to(query_param(session, "return_to").as_deref())
        .is_some_and(|rt| has_kept(live, session, &rt));
    let note = match kept {
        true => {
            r#"<p class="kept">보내신 양식은 보관해 두었습니다. 인증을 마치면 바로 전송됩니다.</p><p class="en kept">Your form is kept: it is sent as soon as you have verified.</p>"#
        }
        false => "",
    };
    let mut body = Vec::with_capacity(reply.body.len() + note.len());
    body.extend_from_slice(&reply.body[..at]);
    body.extend_from_slice(note.as_bytes());
    body.extend_from_slice(&reply.body[at + mark.len()..]);
    reply.body = body.into();
    reply
}

/// The provider whose own callback path (outside the flow prefix) `normalized` is.
pub fn callback_of(live: &Live, normalized: &str) -> Option<Arc<dyn ProviderFlow>> {
    live.flows()
        .iter()
        .find(|f| f.callback_path() == Some(normalized))
        .cloned()
}

/// Answer a post of a provider's own servers to its callback path.
pub async fn callback(
    flow: &dyn ProviderFlow,
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> Result<()> {
    let reply = if session.req_header().method == http::Method::POST {
        flow.callback(live, store, session).await?
    } else {
        Reply::problem(
            &Problem::new(Refusal::MethodNotAllowed),
            wants_html(session),
        )
        .header(http::header::ALLOW, "POST")
    };
    reply.send(session, &live.cfg.frame).await
}

fn choice_page(live: &Live, session: &Session) -> Reply {
    let html = wants_html(session);
    let Some(return_to) = safe_return_to(query_param(session, "return_to").as_deref()) else {
        return Reply::problem(&Problem::new(Refusal::BadReturnTo), html);
    };
    let prefix = &live.cfg.flow_prefix;
    let providers = providers_for(live, session, &return_to);
    let why = why_of(live, session, &return_to);
    // One way to verify: no choice to make, straight to its start page.
    if let [only] = providers.as_slice() {
        return Reply::redirect(&start_url(prefix, *only, &return_to, why));
    }
    let mut links = String::new();
    for p in &providers {
        let Some(choice) = live.flow(*p).map(|f| f.choice()) else {
            continue;
        };
        let (ko, en) = choice.label;
        links.push_str(&format!(
            r#"<a class="choice" data-provider="{id}" href="{href}">{icon}<span><strong>{ko}</strong><span class="en">{en}</span><span class="via">{via}</span></span></a>"#,
            id = p.as_str(),
            href = escape(&start_url(prefix, *p, &return_to, why)),
            icon = choice.icon,
            ko = escape(ko),
            en = escape(en),
            via = escape(choice.via),
        ));
    }
    if providers.is_empty() {
        links.push_str("<p>이 페이지에 설정된 인증 수단이 없습니다.</p><p class=\"en\">No verification method is configured for this page.</p>");
    }
    Reply::html(
        200,
        page(
            "본인인증 · Verify your identity",
            &format!(
                r#"<h1>본인인증</h1><p class="en"><strong>Verify your identity</strong></p>
{WHY_MARK}<p>계속하려면 인증 수단을 선택하세요.</p><p class="en">Choose how to verify to continue.</p>{KEPT_MARK}{links}{BACK_MARK}"#
            ),
        ),
    )
}

/// Whether this browser has a form post kept for `return_to` (its kept-request cookie).
fn has_kept(live: &Live, session: &Session, return_to: &str) -> bool {
    crate::live::kept::cookie_of(live, session.req_header(), unix_now())
        .is_some_and(|k| k.return_to == return_to)
}

/// The choice page's picture of a mobile phone verification (Iamport's, PortOne's).
pub(crate) const PHONE_ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><rect x="6" y="2" width="12" height="20" rx="2.5"/><path d="M10 18.5h4"/></svg>"#;

/// ... of KG이니시스 통합인증 (an app or certificate: a shield with a check).
const UNIFIED_ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z"/><path d="M8.5 12l2.5 2.5 4.5-5"/></svg>"#;

/// ... of a credit card verification.
const CARD_ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><rect x="2" y="5" width="20" height="14" rx="2"/><path d="M2 10h20M6 15h4"/></svg>"#;

/// Ends the session and the age status, on every instance sharing the store: their ids are
/// revoked (refused here at once, elsewhere within a poll). Only from this site's own pages. A browser form post is sent
/// on to `return_to` (or `/`); API clients get JSON.
async fn logout(live: &Live, store: &dyn Store, revoked: &Revoked, session: &Session) -> Reply {
    let html = wants_html(session);
    if !same_origin(session) {
        return Reply::problem(&Problem::new(Refusal::CrossSite), html);
    }
    let cfg = &live.cfg;
    let now = unix_now();
    // The browser's kept form post goes with the session: the next person to verify here
    // ("verify as someone else") must never have it sent under their identity.
    let dropped = crate::live::kept::drop_for_logout(live, store, session.req_header(), now).await;
    let open = cookies::read_session(session.req_header(), &cfg.session)
        .and_then(|(c, _)| Some((c, cfg.session.keys.open_session(c, now).ok()?)))
        .map(|(c, claims)| (session_id(&cfg.session.hash_key, c), claims.expires_at));
    // The age status goes with it, whether or not a session came along.
    let age = cookies::read_age_status(session.req_header(), &cfg.session)
        .and_then(|c| Some((c, cfg.session.keys.open_age_status(c, now).ok()?)))
        .map(|(c, st)| {
            (
                crate::live::age_status_id(&cfg.session.hash_key, c),
                st.expires_at,
            )
        });
    for (id, until) in open.into_iter().chain(age) {
        revoked.insert(&id, until);
        if let Err(e) = store.revoke(&id, until).await {
            tracing::warn!(error = %e, "store unavailable: logout revoked the session on this instance only");
            return clear_session(
                live,
                session.req_header(),
                Reply::problem(&Problem::new(Refusal::StoreUnavailable), html),
                dropped,
            );
        }
    }
    let accepts_html = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let reply = if accepts_html {
        let to = safe_return_to(query_param(session, "return_to").as_deref())
            .unwrap_or_else(|| "/".into());
        Reply::new(303).header(http::header::LOCATION, to)
    } else {
        Reply::json(200, r#"{"ok":true}"#.into())
    };
    clear_session(live, session.req_header(), reply, dropped)
}

/// `reply` with the cookies that end this browser's session (under either name), its stated
/// child's id if any, and, when `kept` says so, its kept-request cookie.
fn clear_session(
    live: &Live,
    req: &pingora::http::RequestHeader,
    reply: Reply,
    kept: bool,
) -> Reply {
    let s = &live.cfg.session;
    let mut reply = cookies::clear_session(s)
        .into_iter()
        .fold(reply, |r, c| r.cookie(c));
    if s.age_status_ttl.is_some() {
        reply = reply.cookie(cookies::clear_age_status(s));
    }
    if kept {
        reply = reply.cookie(cookies::clear_kept(s));
    }
    // A stated child's id goes with the browser's session: the next person here states their own.
    if cookies::read(req, &s.child_cookie).is_some() {
        reply = reply.cookie(cookies::clear_child(s));
    }
    reply
}

/// `GET {flow_prefix}/logout`: a page with the button that posts the logout.
fn logout_page(live: &Live, session: &Session) -> Reply {
    let to =
        safe_return_to(query_param(session, "return_to").as_deref()).unwrap_or_else(|| "/".into());
    let action = format!("{}/logout?return_to={}", live.cfg.flow_prefix, enc(&to));
    Reply::html(
        200,
        page(
            "로그아웃 · Log out",
            &format!(
                r#"<h1>로그아웃</h1><p class="en"><strong>Log out</strong></p>
<p>이 브라우저의 본인인증을 끝냅니다.</p><p class="en">This ends your verification in this browser.</p>
<form method="post" action="{}"><button type="submit">로그아웃 · Log out</button></form>
<a class="back" data-next="back" href="{}">← 취소 · Cancel</a>"#,
                escape(&action),
                escape(&to),
            ),
        ),
    )
}

fn session_info(live: &Live, revoked: &Revoked, session: &Session) -> Reply {
    let cfg = &live.cfg;
    let claims = cookies::read_session(session.req_header(), &cfg.session)
        .filter(|(c, _)| !revoked.contains(&session_id(&cfg.session.hash_key, c)))
        .and_then(|(c, named)| {
            let claims = cfg.session.keys.open_session(c, unix_now()).ok()?;
            cookies::name_fits(named, &claims).then_some(claims)
        })
        .filter(|c| {
            let persons = crate::live::revoked::person_ids(
                &cfg.session.hash_key,
                &c.ci_hash,
                &c.unique_in_site,
            );
            !revoked.person_revoked(&persons, c.issued_at)
        })
        .filter(|c| c.for_host(crate::routing::host::request_host(session.req_header())));
    match claims {
        None => Reply::problem(&Problem::new(Refusal::NotLoggedIn), false),
        Some(c) => Reply::json(
            200,
            serde_json::json!({
                "provider": c.provider.as_str(),
                "unique_in_site": c.unique_in_site,
                "verified_at": c.verified_at,
                "issued_at": c.issued_at,
                "expires_at": c.expires_at,
            })
            .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_same_site_only() {
        assert_eq!(safe_return_to(None).as_deref(), Some("/"));
        assert_eq!(
            safe_return_to(Some("/signup?a=b")).as_deref(),
            Some("/signup?a=b")
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "javascript:alert(1)",
            "evil",
            "/%2F%2Fevil.example",
            "/%5Cevil",
            "/a\r\nSet-Cookie:x",
            "/%0d%0aX:1",
        ] {
            assert!(safe_return_to(Some(bad)).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn prefix_split() {
        assert_eq!(
            under_prefix("/.verigate/verify", "/.verigate"),
            Some("/verify")
        );
        assert_eq!(under_prefix("/.verigate", "/.verigate"), Some(""));
        assert_eq!(under_prefix("/.verigatex", "/.verigate"), None);
    }
}
