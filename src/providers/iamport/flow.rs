//! The Iamport flow: a start page that opens the certification window (both SDK modes), the
//! redirect-mode return, the callback-mode complete, and the checks that accept a result.

use crate::answers::Refusal;
use crate::answers::{Problem, Reply};
use crate::config::providers::iamport::Settings;
use crate::config::providers::Providers;
use crate::identity::ProviderId;
use crate::live::provider::ProviderError;
use crate::live::provider::{Choice, ProviderFlow};
use crate::live::Live;
use crate::metrics;
use crate::providers::accept::{accept, this_flow, Identity, Rules};
use crate::providers::flow::*;
use crate::providers::iamport::client::IamportClient;
use crate::providers::VerifiedPerson;
use crate::session::{Claims, FlowClaims};
use crate::store::Store;
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

const PROVIDER: &str = "iamport";

/// The Iamport flow, built from its settings.
pub(crate) struct Flow {
    client: Arc<IamportClient>,
}

impl Flow {
    pub(crate) fn new(cfg: Settings) -> std::result::Result<Self, ProviderError> {
        Ok(Flow {
            client: IamportClient::new(cfg)?,
        })
    }
}

#[async_trait::async_trait]
impl ProviderFlow for Flow {
    fn id(&self) -> ProviderId {
        ProviderId::Iamport
    }

    fn choice(&self) -> Choice {
        let m = self.client.config().method;
        Choice {
            label: m.label(),
            via: "아임포트 · Iamport",
            icon: crate::providers::flow::method_icon(m),
        }
    }

    fn built_from(&self, p: &Providers) -> bool {
        p.iamport.as_ref() == Some(self.client.config())
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
        Some(match (method.as_str(), endpoint) {
            ("GET" | "HEAD", "start") => Ok(start(c, live, session)),
            ("GET" | "HEAD", "return") => Ok(on_return(c, live, store, session).await),
            ("POST", "complete") => complete(c, live, store, session).await,
            _ => return None,
        })
    }
}

fn start(client: &IamportClient, live: &Live, session: &Session) -> Reply {
    let (return_to, base) = match start_checks(live, session, ProviderId::Iamport) {
        Ok(ok) => ok,
        Err(refusal) => return refusal,
    };
    let prefix = &live.cfg.flow_prefix;
    let nonce = fresh_nonce();
    let flow = new_flow(live, session, ProviderId::Iamport, nonce.clone(), return_to);
    let cfg = client.config();
    let params = serde_json::json!({
        "provider": PROVIDER,
        "imp_code": cfg.imp_code,
        "merchant_uid": nonce,
        "m_redirect_url": format!("{base}{prefix}/iamport/return"),
        "popup": cfg.popup,
        "complete_url": format!("{prefix}/iamport/complete"),
        "sdk_url": cfg.sdk_url,
        "channel_key": cfg.channel_key,
        "pg": cfg.pg,
        "min_age": age_hint(live, session, &flow.return_to),
        "company": live.cfg.site_name,
    });
    metrics::verification(PROVIDER, "started", "");
    let (heading, heading_en) = cfg.method.heading();
    SdkPage {
        title: "본인인증 · Verification",
        heading,
        heading_en,
        intro: "\n<p>버튼을 누르면 본인인증 창이 열립니다.</p><p class=\"en\">The verification window opens when you press the button.</p>",
        button: "본인인증 시작 · Start verification",
        failed: "인증에 실패했습니다 · Verification failed",
        sdk_global: "IMP",
        call: r#"    IMP.init(flow.imp_code);
    var params = { merchant_uid: flow.merchant_uid, m_redirect_url: flow.m_redirect_url, popup: flow.popup };
    if (flow.channel_key) { params.channelKey = flow.channel_key; }
    if (flow.pg) { params.pg = flow.pg; }
    if (flow.min_age) { params.min_age = flow.min_age; }
    if (flow.company) { params.company = flow.company; }
    IMP.certification(params,
      function (rsp) {
        if (!rsp || !rsp.success) { fail(rsp && rsp.error_msg); return; }
        finish(flow.complete_url, { imp_uid: rsp.imp_uid, merchant_uid: rsp.merchant_uid });
      });"#,
        redirects_on_phones: !cfg.popup,
    }
    .reply(live, &flow, &params, &cfg.sdk_url)
}

/// Why a result was not accepted, as the HTTP problem to show.
fn refuse(r: Refusal, live: &Live, return_to: Option<&str>) -> Problem {
    crate::providers::flow::refuse(ProviderId::Iamport, r, live, return_to)
}

fn provider_problem(e: &ProviderError, live: &Live, rt: &str) -> Problem {
    crate::providers::flow::provider_problem(ProviderId::Iamport, e, live, rt)
}

/// Accept a result only for this browser's flow, only if certified, fresh and never used.
async fn verify(
    client: &IamportClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
    imp_uid: &str,
    claimed_nonce: Option<&str>,
) -> std::result::Result<(Claims, FlowClaims), Problem> {
    let flow = this_flow(live, session, ProviderId::Iamport)?;
    let rt = flow.return_to.clone();
    if claimed_nonce.is_some_and(|n| n != flow.nonce) {
        return Err(refuse(Refusal::FlowMismatch, live, Some(&rt)));
    }
    let person: VerifiedPerson = client
        .verify(imp_uid)
        .await
        .map_err(|e| provider_problem(&e, live, &rt))?;
    let cfg = client.config();
    let key = person.result_id.clone();
    let rules = Rules {
        max_age: Some(cfg.max_result_age),
        once: Some((
            &key,
            cfg.max_result_age + std::time::Duration::from_secs(120),
        )),
        identity: Identity::Ci,
    };
    let claims = accept(live, store, &flow, person, rules).await?;
    Ok((claims, flow))
}

/// Whether the SDK's redirect says the person gave up: an explicit `false` in `success` or in
/// `imp_success` (the v1 SDK's mobile redirect names it so). Anything else leaves the decision
/// to the server-side lookup of the result, which is what counts either way.
fn said_failed(success: Option<&str>, imp_success: Option<&str>) -> bool {
    [success, imp_success]
        .into_iter()
        .flatten()
        .any(|v| v.trim().eq_ignore_ascii_case("false"))
}

/// Redirect mode: `GET {m_redirect_url}?imp_uid=..&merchant_uid=..&success=true|false` (or
/// `imp_success=`).
async fn on_return(
    client: &IamportClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
) -> Reply {
    let html = true;
    let imp_uid = query_param(session, "imp_uid").unwrap_or_default();
    let merchant_uid = query_param(session, "merchant_uid");
    let failed = said_failed(
        query_param(session, "success").as_deref(),
        query_param(session, "imp_success").as_deref(),
    );
    // Without an imp_uid there is no result to look up: the person did not finish.
    if failed || imp_uid.trim().is_empty() {
        let rt = read_flow(live, session).map(|f| f.return_to);
        let p = refuse(Refusal::NotCertified, live, rt.as_deref());
        return Reply::problem(&p, html);
    }
    match verify(
        client,
        live,
        store,
        session,
        &imp_uid,
        merchant_uid.as_deref(),
    )
    .await
    {
        Ok((claims, flow)) => {
            signed_in(live, store, session, &claims, &flow.return_to, false).await
        }
        Err(p) => Reply::problem(&p, html),
    }
}

#[derive(serde::Deserialize)]
struct CompleteBody {
    imp_uid: String,
    #[serde(default)]
    merchant_uid: Option<String>,
}

/// Callback mode: the page posts `{imp_uid, merchant_uid}`; answers `{"redirect": ...}`.
async fn complete(
    client: &IamportClient,
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> Result<Reply> {
    let body = read_body(session, 8 * 1024).await?;
    let parsed: Option<CompleteBody> = body.and_then(|b| serde_json::from_slice(&b).ok());
    let Some(b) = parsed else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), false));
    };
    Ok(
        match verify(
            client,
            live,
            store,
            session,
            &b.imp_uid,
            b.merchant_uid.as_deref(),
        )
        .await
        {
            Ok((claims, flow)) => {
                signed_in(live, store, session, &claims, &flow.return_to, true).await
            }
            Err(p) => Reply::problem(&p, false),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::said_failed;

    #[test]
    fn only_an_explicit_false_is_a_failure() {
        for (success, imp_success) in [
            (Some("false"), None),
            (None, Some("false")),
            (Some("true"), Some("false")),
            (Some("false"), Some("true")),
            (Some("FALSE"), None),
        ] {
            assert!(
                said_failed(success, imp_success),
                "{success:?} {imp_success:?}"
            );
        }
        for (success, imp_success) in [
            (Some("true"), None),
            (None, Some("true")),
            (None, None),
            (Some(""), None),
        ] {
            assert!(
                !said_failed(success, imp_success),
                "{success:?} {imp_success:?}"
            );
        }
    }
}
