//! The PortOne V2 flow: a start page that runs the browser SDK with this flow's nonce as the
//! `identityVerificationId`; the redirect return and the callback's complete; a result is
//! accepted only for that id, verified, fresh and once.

use crate::answers::Refusal;
use crate::answers::{Problem, Reply};
use crate::config::providers::portone::Settings;
use crate::config::providers::Providers;
use crate::identity::ProviderId;
use crate::live::provider::ProviderError;
use crate::live::provider::{Choice, ProviderFlow};
use crate::live::Live;
use crate::metrics;
use crate::providers::accept::{accept, this_flow, Identity, Rules};
use crate::providers::flow::*;
use crate::providers::portone::client::PortoneClient;
use crate::session::{Claims, FlowClaims};
use crate::store::Store;
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

const PROVIDER: &str = "portone";

/// The PortOne V2 flow, built from its settings.
pub(crate) struct Flow {
    client: Arc<PortoneClient>,
}

impl Flow {
    pub(crate) fn new(cfg: Settings) -> std::result::Result<Self, ProviderError> {
        Ok(Flow {
            client: PortoneClient::new(cfg)?,
        })
    }
}

#[async_trait::async_trait]
impl ProviderFlow for Flow {
    fn id(&self) -> ProviderId {
        ProviderId::Portone
    }

    fn choice(&self) -> Choice {
        let m = self.client.config().method;
        Choice {
            label: m.label(),
            via: "포트원 · PortOne",
            icon: crate::providers::flow::method_icon(m),
        }
    }

    fn built_from(&self, p: &Providers) -> bool {
        p.portone.as_ref() == Some(self.client.config())
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

fn refuse(r: Refusal, live: &Live, return_to: Option<&str>) -> Problem {
    crate::providers::flow::refuse(ProviderId::Portone, r, live, return_to)
}

fn provider_problem(e: &ProviderError, live: &Live, rt: &str) -> Problem {
    crate::providers::flow::provider_problem(ProviderId::Portone, e, live, rt)
}

fn start(client: &PortoneClient, live: &Live, session: &Session) -> Reply {
    let (return_to, base) = match start_checks(live, session, ProviderId::Portone) {
        Ok(ok) => ok,
        Err(refusal) => return refusal,
    };
    let cfg = client.config();
    let prefix = &live.cfg.flow_prefix;
    let id = fresh_nonce();
    let flow = new_flow(live, session, ProviderId::Portone, id.clone(), return_to);
    let params = serde_json::json!({
        "provider": PROVIDER,
        "store_id": cfg.store_id,
        "channel_key": cfg.channel_key,
        "identity_verification_id": id,
        "redirect_url": format!("{base}{prefix}/portone/return"),
        "complete_url": format!("{prefix}/portone/complete"),
        "sdk_url": cfg.sdk_url,
        "bypass": danal_bypass(age_hint(live, session, &flow.return_to), live.cfg.site_name.as_deref()),
    });
    metrics::verification(PROVIDER, "started", "");
    let (heading, heading_en) = cfg.method.heading();
    SdkPage {
        title: "본인인증 · Verification",
        heading,
        heading_en,
        intro: "",
        button: "본인인증 시작 · Start verification",
        failed: "인증에 실패했습니다 · Verification failed",
        sdk_global: "PortOne",
        call: r#"    PortOne.requestIdentityVerification({ storeId: flow.store_id, identityVerificationId: flow.identity_verification_id,
      channelKey: flow.channel_key, redirectUrl: flow.redirect_url,
      windowType: { pc: 'POPUP', mobile: 'REDIRECTION' }, bypass: flow.bypass || undefined })
      .then(function (res) {
        if (!res || res.code) { fail(res && res.message); return; }
        finish(flow.complete_url, { identityVerificationId: res.identityVerificationId });
      })
      .catch(function () { fail(); });"#,
        redirects_on_phones: true,
    }
    .reply(live, &flow, &params, &cfg.sdk_url)
}

/// The Danal options of `requestIdentityVerification` (`bypass.danal`): the international age
/// the window requires (`AGELIMIT`) and the service name it shows (`CPTITLE`); None when there
/// is neither. Other channels ignore them.
fn danal_bypass(age: Option<u32>, site: Option<&str>) -> Option<serde_json::Value> {
    let mut danal = serde_json::Map::new();
    if let Some(age) = age {
        danal.insert("AGELIMIT".into(), age.into());
    }
    if let Some(site) = site {
        danal.insert("CPTITLE".into(), site.into());
    }
    (!danal.is_empty()).then(|| serde_json::json!({ "danal": danal }))
}

async fn verify(
    client: &PortoneClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
    id: &str,
) -> std::result::Result<(Claims, FlowClaims), Problem> {
    let flow = this_flow(live, session, ProviderId::Portone)?;
    let rt = flow.return_to.clone();
    // The id is this flow's own nonce: a result for any other id is another browser's.
    if id != flow.nonce {
        return Err(refuse(Refusal::FlowMismatch, live, Some(&rt)));
    }
    let person = client
        .verify(id)
        .await
        .map_err(|e| provider_problem(&e, live, &rt))?;
    let cfg = client.config();
    let rules = Rules {
        max_age: Some(cfg.max_result_age),
        once: Some((id, cfg.max_result_age + std::time::Duration::from_secs(120))),
        identity: Identity::Ci,
    };
    let claims = accept(live, store, &flow, person, rules).await?;
    Ok((claims, flow))
}

/// Redirect mode: `GET {redirectUrl}?identityVerificationId=..&identityVerificationTxId=..`
/// (with `code` and `message` when it failed).
async fn on_return(
    client: &PortoneClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
) -> Reply {
    if query_param(session, "code").is_some() {
        let rt = read_flow(live, session).map(|f| f.return_to);
        return Reply::problem(&refuse(Refusal::NotCertified, live, rt.as_deref()), true);
    }
    let id = query_param(session, "identityVerificationId").unwrap_or_default();
    match verify(client, live, store, session, &id).await {
        Ok((claims, flow)) => {
            signed_in(live, store, session, &claims, &flow.return_to, false).await
        }
        Err(p) => Reply::problem(&p, true),
    }
}

/// Callback mode: the page posts `{identityVerificationId}`; answers `{"redirect": ...}`.
async fn complete(
    client: &PortoneClient,
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> Result<Reply> {
    let body = read_body(session, 8 * 1024).await?;
    let id = body
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.get("identityVerificationId")
                .and_then(|i| i.as_str())
                .map(String::from)
        });
    let Some(id) = id else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), false));
    };
    Ok(match verify(client, live, store, session, &id).await {
        Ok((claims, flow)) => signed_in(live, store, session, &claims, &flow.return_to, true).await,
        Err(p) => Reply::problem(&p, false),
    })
}
