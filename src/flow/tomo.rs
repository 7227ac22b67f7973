//! The TomoIDV flow: start a verification for a per-flow `user_id` and send the person to
//! TomoIDV; on return, accept the result only for this flow, once, under the configured policy,
//! with a PPID the provider's API confirms.

use super::*;
use crate::answers::script_json;
use crate::answers::Refusal;
use crate::metrics;
use crate::providers::tomo::{to_person, token_subject};
use crate::providers::ProviderError;
use crate::session::keyed_hash;

const PROVIDER: &str = "tomo";

fn refuse(r: Refusal, live: &Live, return_to: Option<&str>) -> Problem {
    super::refuse(ProviderId::Tomo, r, live, return_to)
}

fn provider_problem(e: &ProviderError, live: &Live, rt: &str) -> Problem {
    super::provider_problem(ProviderId::Tomo, e, live, rt)
}

/// `GET {prefix}/tomo/start?return_to=`: 302 to TomoIDV's `start_idv_uri`. The body carries the
/// flow parameters in the `verigate-flow` block, like every start page.
pub(super) async fn start(live: &Live, session: &Session) -> Reply {
    let (return_to, base, client) =
        match start_checks(live, session, ProviderId::Tomo, live.tomo.as_ref()) {
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
    let flow = FlowClaims {
        nonce: user_id.clone(),
        return_to,
        provider: ProviderId::Tomo,
        expires_at: unix_now() + FLOW_TTL_SECS,
    };
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
pub(super) async fn on_return(live: &Live, store: &dyn Store, session: &Session) -> Reply {
    let html = true;
    let Some(flow) = read_flow(live, session).filter(|f| f.provider == ProviderId::Tomo) else {
        return Reply::problem(&refuse(Refusal::FlowMissing, live, None), html);
    };
    let rt = flow.return_to.clone();
    if query_param(session, "state").as_deref() != Some(flow.nonce.as_str()) {
        return Reply::problem(&refuse(Refusal::FlowMismatch, live, Some(&rt)), html);
    }
    if query_param(session, "failed").is_some() {
        return Reply::problem(&refuse(Refusal::NotCertified, live, Some(&rt)), html);
    }
    match accept(live, store, session, &flow).await {
        Ok(claims) => signed_in(live, &claims, &flow.return_to, false),
        Err(p) => Reply::problem(&p, html),
    }
}

async fn accept(
    live: &Live,
    store: &dyn Store,
    session: &Session,
    flow: &FlowClaims,
) -> std::result::Result<Claims, Problem> {
    let rt = flow.return_to.as_str();
    let Some(client) = &live.tomo else {
        return Err(refuse(Refusal::ProviderNotConfigured, live, None));
    };
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
    let ttl = std::time::Duration::from_secs(FLOW_TTL_SECS as u64 * 2);
    use_once(store, ProviderId::Tomo, &result.auth_id, ttl, live, rt).await?;
    // No CI for foreign visitors: the PPID's keyed hash keys one-account rules.
    let ci_hash = keyed_hash(&live.cfg.session.hash_key, "ppid", &ppid);
    let claims = session_claims(live, person, ppid, ci_hash);
    Ok(claims)
}
