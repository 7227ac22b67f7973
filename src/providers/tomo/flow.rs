//! The TomoIDV flow: start a verification for a per-flow `user_id` and send the person to
//! TomoIDV; on return, accept the result only for this flow, once, under the configured policy,
//! with a PPID the provider's API confirms.

use crate::answers::script_json;
use crate::answers::Refusal;
use crate::answers::{escape, page, wants_html, Problem, Reply};
use crate::clock::unix_now;
use crate::config::providers::tomo::Settings;
use crate::config::providers::Providers;
use crate::identity::ProviderId;
use crate::live::provider::ProviderError;
use crate::live::provider::{Choice, ProviderFlow};
use crate::live::Live;
use crate::metrics;
use crate::providers::accept::{accept, this_flow, Identity, Rules};
use crate::providers::flow::*;
use crate::providers::tomo::client::{to_person, token_subject, TomoClient};
use crate::session::keyed_hash;
use crate::session::{Claims, FlowClaims};
use crate::store::Store;
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

const PROVIDER: &str = "tomo";

/// The TomoIDV flow, built from its settings.
pub(crate) struct Flow {
    client: Arc<TomoClient>,
}

impl Flow {
    pub(crate) fn new(cfg: Settings) -> std::result::Result<Self, ProviderError> {
        Ok(Flow {
            client: TomoClient::new(cfg)?,
        })
    }
}

/// The choice page's picture: an ID card.
const ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><rect x="2.5" y="5" width="19" height="14" rx="2"/><circle cx="8.5" cy="11" r="2.2"/><path d="M5.5 16c.6-1.6 1.7-2.3 3-2.3s2.4.7 3 2.3M14 10h4.5M14 13.5h3"/></svg>"#;

#[async_trait::async_trait]
impl ProviderFlow for Flow {
    fn id(&self) -> ProviderId {
        ProviderId::Tomo
    }

    fn choice(&self) -> Choice {
        Choice {
            label: (
                "외국인 신분증 인증",
                "Foreign visitor? Verify with your passport / ID",
            ),
            via: "TomoIDV",
            icon: ICON,
        }
    }

    fn built_from(&self, p: &Providers) -> bool {
        p.tomo.as_ref() == Some(self.client.config())
    }

    async fn probe(&self) -> Option<Result<(), crate::live::provider::ProviderError>> {
        Some(self.client.probe().await)
    }

    fn has_probe(&self) -> bool {
        true
    }

    async fn endpoint(
        &self,
        live: &Live,
        store: &dyn Store,
        session: &mut Session,
        method: &http::Method,
        endpoint: &str,
    ) -> Option<Result<Reply>> {
        let c = &self.client;
        Some(Ok(match (method.as_str(), endpoint) {
            ("GET" | "HEAD", "start") => start(c, live, session).await,
            ("GET" | "HEAD", "return") => on_return(c, live, store, session).await,
            _ => return None,
        }))
    }
}

fn refuse(r: Refusal, live: &Live, return_to: Option<&str>) -> Problem {
    crate::providers::flow::refuse(ProviderId::Tomo, r, live, return_to)
}

fn provider_problem(e: &ProviderError, live: &Live, rt: &str) -> Problem {
    crate::providers::flow::provider_problem(ProviderId::Tomo, e, live, rt)
}

/// `GET {prefix}/tomo/start?return_to=`: 302 to TomoIDV's `start_idv_uri`. The body carries the
/// flow parameters in the `verigate-flow` block, like every start page.
async fn start(client: &TomoClient, live: &Live, session: &Session) -> Reply {
    let (return_to, base) = match start_checks(live, session, ProviderId::Tomo) {
        Ok(ok) => ok,
        Err(refusal) => return refusal,
    };
    let prefix = &live.cfg.flow_prefix;
    let user_id = fresh_nonce();
    let back = format!("{base}{prefix}/tomo/return?state={user_id}");
    let fail = format!("{back}&failed=1");
    metrics::verification(PROVIDER, "started", "");
    let uri = match client.start(&user_id, &back, &fail).await {
        Ok(u) => u,
        Err(e) => {
            return Reply::problem(&provider_problem(&e, live, &return_to), wants_html(session))
        }
    };
    let flow = new_flow(live, session, ProviderId::Tomo, user_id.clone(), return_to);
    let params = serde_json::json!({
        "provider": PROVIDER,
        "user_id": user_id,
        "start_idv_uri": uri,
        "redirect_url_success": back,
        "redirect_url_fail": fail,
    });
    let body = format!(
        r#"<h1>신분증 인증</h1><p class="en"><strong>ID verification</strong></p>
<p><a class="button" href="{href}">계속 · Continue to TomoIDV</a></p>
<script id="verigate-flow" type="application/json">{json}</script>"#,
        href = escape(&uri),
        json = script_json(&params),
    );
    Reply::html(302, page("본인인증 · Verification", &body))
        .header(http::header::LOCATION, uri)
        .cookie(flow_cookie(live, &flow))
}

/// `GET {prefix}/tomo/return?state=..&token=..` (success) or `&failed=1`.
async fn on_return(
    client: &TomoClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
) -> Reply {
    let html = true;
    let flow = match this_flow(live, session, ProviderId::Tomo) {
        Ok(flow) => flow,
        Err(p) => return Reply::problem(&p, html),
    };
    let rt = flow.return_to.clone();
    if query_param(session, "state").as_deref() != Some(flow.nonce.as_str()) {
        return Reply::problem(&refuse(Refusal::FlowMismatch, live, Some(&rt)), html);
    }
    if query_param(session, "failed").is_some() {
        return Reply::problem(&refuse(Refusal::NotCertified, live, Some(&rt)), html);
    }
    match verify(client, live, store, session, &flow).await {
        Ok(claims) => signed_in(live, store, session, &claims, &flow.return_to, false).await,
        Err(p) => Reply::problem(&p, html),
    }
}

async fn verify(
    client: &TomoClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
    flow: &FlowClaims,
) -> std::result::Result<Claims, Problem> {
    let rt = flow.return_to.as_str();
    let cfg = client.config();
    let Some((ppid, aud, exp)) = query_param(session, "token")
        .as_deref()
        .and_then(token_subject)
    else {
        return Err(refuse(Refusal::NotCertified, live, Some(rt)));
    };
    let now = unix_now();
    // Only a PPID identifies a person; a flow's own user_id in `sub` would mint a fresh
    // identity per flow (and slip past one-account rules).
    if !ppid.starts_with("ppid.") || ppid.len() < 10 || ppid == flow.nonce {
        return Err(refuse(Refusal::FlowMismatch, live, Some(rt)));
    }
    if aud.is_some_and(|a| a != cfg.client_id) || exp.is_some_and(|e| e < now) {
        return Err(refuse(Refusal::FlowMismatch, live, Some(rt)));
    }
    // The result made for this flow's user_id...
    let mine = client
        .results(&flow.nonce)
        .await
        .map_err(|e| provider_problem(&e, live, rt))?;
    let Some(result) = mine.into_iter().next() else {
        return Err(refuse(Refusal::NotCertified, live, Some(rt)));
    };
    if result.policy_key.as_deref() != Some(cfg.policy_key.as_str()) {
        return Err(refuse(Refusal::PolicyMismatch, live, Some(rt)));
    }
    // ...and the PPID's results must include that same verification: the PPID is the person
    // this flow verified, not one a client wrote into the URL.
    let theirs = client.results(&ppid).await.map_err(|e| match e {
        ProviderError::NotFound => refuse(Refusal::FlowMismatch, live, Some(rt)),
        other => provider_problem(&other, live, rt),
    })?;
    if !theirs.iter().any(|r| r.auth_id == result.auth_id) {
        return Err(refuse(Refusal::FlowMismatch, live, Some(rt)));
    }
    let person = to_person(&result, &ppid, &flow.nonce);
    // No CI for foreign visitors: the PPID's keyed hash keys one-account rules.
    let ci_hash = keyed_hash(&live.cfg.session.hash_key, "ppid", &ppid);
    let rules = Rules {
        max_age: None,
        once: Some((
            &result.auth_id,
            std::time::Duration::from_secs(FLOW_TTL_SECS as u64 * 2),
        )),
        identity: Identity::Keyed(ppid, ci_hash),
    };
    let mut claims = accept(live, store, flow, person, rules).await?;
    claims.countries = [result.country.as_deref(), result.result.country.as_deref()]
        .into_iter()
        .flatten()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    claims.countries.dedup();
    Ok(claims)
}
