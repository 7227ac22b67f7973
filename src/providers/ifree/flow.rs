//! ifree login: the registration callbacks ifree's servers post (member-key exchange and
//! registration), and the login flow (SDK redirect or `POST /ifree/login` with a `ptn_token`),
//! bound by its `state` to the flow this browser started.

use crate::answers::Refusal;
use crate::answers::{Problem, Reply};
use crate::config::providers::ifree::Settings;
use crate::config::providers::Providers;
use crate::crypto::ifree_cipher;
use crate::identity::ProviderId;
use crate::live::provider::ProviderError;
use crate::live::provider::{Choice, ProviderFlow};
use crate::live::Live;
use crate::metrics;
use crate::providers::accept::{accept, Identity, Rules};
use crate::providers::flow::*;
use crate::providers::ifree::client::{encrypt_member_key, fresh_member_key, IfreeClient};
use crate::session::keyed_hash;
use crate::session::{Claims, FlowClaims, Purpose};
use crate::store::Store;
use crate::store::{KeyExchange, Registration};
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;
use subtle::ConstantTimeEq;

const PROVIDER: &str = "ifree";

/// The ifree flow, built from its settings.
pub(crate) struct Flow {
    client: Arc<IfreeClient>,
}

impl Flow {
    pub(crate) fn new(cfg: Settings) -> std::result::Result<Self, ProviderError> {
        Ok(Flow {
            client: IfreeClient::new(cfg)?,
        })
    }
}

/// The choice page's picture: a key.
const ICON: &str = r#"<svg class="icon" viewBox="0 0 24 24" aria-hidden="true"><circle cx="8" cy="12" r="4"/><path d="M12 12h9M18 12v3M21 12v2"/></svg>"#;

#[async_trait::async_trait]
impl ProviderFlow for Flow {
    fn id(&self) -> ProviderId {
        ProviderId::Ifree
    }

    fn choice(&self) -> Choice {
        Choice {
            label: ("ifree 로그인", "Log in with ifree"),
            via: "ifree",
            icon: ICON,
        }
    }

    fn built_from(&self, p: &Providers) -> bool {
        p.ifree.as_ref() == Some(self.client.config())
    }

    fn callback_path(&self) -> Option<&str> {
        Some(&self.client.config().callback_path)
    }

    async fn callback(
        &self,
        live: &Live,
        store: &dyn Store,
        session: &mut Session,
    ) -> Result<Reply> {
        callback(&self.client, live, store, session).await
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
            ("POST", "login") => login(c, live, store, session).await,
            _ => return None,
        })
    }
}

/// The store's name for a member: never the ptn_cd in clear.
fn member_id(live: &Live, ptn_cd: &str) -> String {
    keyed_hash(&live.cfg.session.hash_key, "ifree-member", ptn_cd)
}

/// Who a member is as verigate names people: the keyed CI hash (`X-Verified-Person`) and
/// the per-site id (`X-Verified-Unique-In-Site`), both from the ptn_cd.
fn person_of(live: &Live, ptn_cd: &str) -> (String, String) {
    let hash_key = &live.cfg.session.hash_key;
    (
        keyed_hash(hash_key, "ifree-person", ptn_cd),
        format!("ifree.{}", keyed_hash(hash_key, "ifree-site", ptn_cd)),
    )
}

/// A member record's owner as the store keeps it: the keyed CI hash and the per-site id's
/// keyed hash, what an erasure by either finds it under.
fn owner_of(live: &Live, ptn_cd: &str) -> (String, String) {
    let (ci_hash, uis) = person_of(live, ptn_cd);
    (
        ci_hash,
        crate::store::di_hash(&live.cfg.session.hash_key, &uis),
    )
}

fn answer(code: &str, message: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({ "code": code, "message": message }).to_string(),
    )
}

/// The address a callback comes from: the peer itself (ifree's servers are named by the
/// address they connect from, never by a header).
pub(crate) fn callback_peer(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// `POST {callback_path}` from ifree's servers. Never mints a session; stores only what a
/// well-formed, decryptable request carries.
async fn callback(
    client: &IfreeClient,
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> Result<Reply> {
    let cfg = client.config();
    if !cfg.callback_allow.allows(callback_peer(session)) {
        return Ok(answer("9403", "source not allowed"));
    }
    let body = read_body(session, 16 * 1024).await?;
    let Some(v) = body.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) else {
        return Ok(answer("9003", "malformed request"));
    };
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
    if field("client_id") != Some(cfg.client_id.as_str()) {
        return Ok(answer("9001", "invalid client_id"));
    }
    let Some(ptn_cd) = field("ptn_cd") else {
        return Ok(answer("9003", "ptn_cd is required"));
    };
    let member = member_id(live, ptn_cd);
    let owner = owner_of(live, ptn_cd);
    let at_rest = &live.cfg.session.at_rest;
    match field("used_type") {
        Some("1") => {
            let Some(public_key) = field("public_key") else {
                return Ok(answer("9003", "public_key is required"));
            };
            let fresh = fresh_member_key();
            // Check the public key before anything is stored.
            let enc_fresh = match encrypt_member_key(public_key, &fresh) {
                Ok(e) => e,
                Err(_) => return Ok(answer("9003", "public_key is not an X.509 RSA public key")),
            };
            let sealed = at_rest.seal(Purpose::AtRest, fresh.as_bytes());
            // A fresh key every time: a re-sent exchange before registration replaces the
            // pending key (a registration made with the old one then fails 9004), so a race
            // is visible and the existing key is never handed to whoever asks.
            match store
                .member_key(&member, &sealed, cfg.pending_ttl, cfg.max_pending)
                .await
            {
                Ok(KeyExchange::Issued) => Ok(Reply::json(
                    200,
                    serde_json::json!({"code": "0000", "message": "", "result": {"enc_partner_key": enc_fresh}})
                        .to_string(),
                )),
                // A registered member's key is never handed out or replaced through this
                // public endpoint: that would let anyone who knows a ptn_cd take it over.
                Ok(KeyExchange::Registered) => Ok(answer("9005", "member already registered")),
                Ok(KeyExchange::Full) => {
                    metrics::verification(PROVIDER, "failed", "pending_full");
                    Ok(answer("9429", "too many pending registrations; try again later"))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "store unavailable during ifree key exchange");
                    Ok(answer("9500", "temporarily unavailable"))
                }
            }
        }
        Some("2") => {
            let Some(partner_sp) = field("partner_sp") else {
                return Ok(answer("9003", "partner_sp is required"));
            };
            let record = match store.member_get(&member).await {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(answer("9002", "unknown member (no key exchange)")),
                Err(e) => {
                    tracing::warn!(error = %e, "store unavailable during ifree registration");
                    return Ok(answer("9500", "temporarily unavailable"));
                }
            };
            if record.passcode.is_some() {
                return Ok(answer("9005", "member already registered"));
            }
            let Ok(key) = at_rest.open(Purpose::AtRest, &record.key) else {
                return Ok(answer("9500", "stored member key unreadable"));
            };
            let Ok(passcode) = ifree_cipher::decrypt(cfg.cipher, &key, partner_sp) else {
                return Ok(answer(
                    "9004",
                    "partner_sp does not decrypt under the member key",
                ));
            };
            let ubifill = match field("ubifill") {
                None => None,
                Some(u) => match ifree_cipher::decrypt(cfg.cipher, &key, u) {
                    Ok(plain) if std::str::from_utf8(&plain).is_ok() => Some(plain),
                    _ => {
                        return Ok(answer(
                            "9004",
                            "ubifill does not decrypt under the member key",
                        ))
                    }
                },
            };
            let sealed_pass = at_rest.seal(Purpose::AtRest, &passcode);
            let sealed_ubi = ubifill
                .filter(|_| cfg.store_ubifill)
                .map(|u| at_rest.seal(Purpose::AtRest, &u));
            match store
                .member_register(
                    &member,
                    &record.key,
                    &sealed_pass,
                    sealed_ubi.as_deref(),
                    crate::store::Person {
                        ci_hash: &owner.0,
                        unique_in_site: &owner.1,
                    },
                )
                .await
            {
                Ok(Registration::Registered) => Ok(answer("0000", "")),
                Ok(Registration::Unknown) => Ok(answer("9002", "unknown member (no key exchange)")),
                Ok(Registration::AlreadyRegistered) => {
                    Ok(answer("9005", "member already registered"))
                }
                Ok(Registration::KeyReplaced) => Ok(answer(
                    "9004",
                    "the member key was replaced by a later key exchange",
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "store unavailable during ifree registration");
                    Ok(answer("9500", "temporarily unavailable"))
                }
            }
        }
        _ => Ok(answer("9003", "used_type must be \"1\" or \"2\"")),
    }
}

fn refuse(r: Refusal, live: &Live, return_to: Option<&str>) -> Problem {
    crate::providers::flow::refuse(ProviderId::Ifree, r, live, return_to)
}

/// ifree's refusals of a login are about the person: 403 not_certified.
fn provider_problem(e: &ProviderError, live: &Live, rt: &str) -> Problem {
    match e {
        ProviderError::Rejected(_) => refuse(Refusal::NotCertified, live, Some(rt)),
        other => crate::providers::flow::provider_problem(ProviderId::Ifree, other, live, rt),
    }
}

/// `GET {prefix}/ifree/start?return_to=`: the page that runs the ifree SDK.
fn start(client: &IfreeClient, live: &Live, session: &Session) -> Reply {
    let (return_to, base) = match start_checks(live, session, ProviderId::Ifree) {
        Ok(ok) => ok,
        Err(refusal) => return refusal,
    };
    let cfg = client.config();
    let prefix = &live.cfg.flow_prefix;
    let state = fresh_nonce();
    let flow = new_flow(live, session, ProviderId::Ifree, state.clone(), return_to);
    let params = serde_json::json!({
        "provider": PROVIDER,
        "client_id": cfg.client_id,
        "state": state,
        "redirect_uri": format!("{base}{prefix}/ifree/return"),
        "callback_url": format!("{base}{}", cfg.callback_path),
        "login_url": format!("{prefix}/ifree/login"),
        "sdk_url": cfg.sdk_url,
    });
    metrics::verification(PROVIDER, "started", "");
    SdkPage {
        title: "ifree 로그인 · Login",
        heading: "ifree 로그인",
        heading_en: "Log in with ifree",
        intro: "",
        button: "ifree로 계속 · Continue with ifree",
        failed: "로그인에 실패했습니다 · Login failed",
        sdk_global: "IfreeLogin",
        call: r#"    IfreeLogin.login({ client_id: flow.client_id, redirect_uri: flow.redirect_uri, state: flow.state,
                       callback_url: flow.callback_url }, function (res) {
      if (!res || !res.ptn_token) { fail(res && res.message); return; }
      finish(flow.login_url, { ptn_token: res.ptn_token, state: res.state || flow.state });
    });"#,
        redirects_on_phones: true,
    }
    .reply(live, &flow, &params, &cfg.sdk_url)
}

/// `GET {prefix}/ifree/return?code=&state=&ptn_token=&ptn_cd=` (the SDK's redirect).
async fn on_return(
    client: &IfreeClient,
    live: &Live,
    store: &dyn Store,
    session: &Session,
) -> Reply {
    let html = true;
    let flow = match this_browsers_flow(live, session, query_param(session, "state").as_deref()) {
        Ok(flow) => flow,
        Err(p) => return Reply::problem(&p, html),
    };
    let token = query_param(session, "ptn_token").filter(|t| !t.is_empty());
    let (Some("0000"), Some(token)) = (query_param(session, "code").as_deref(), token) else {
        return Reply::problem(
            &refuse(Refusal::NotCertified, live, Some(&flow.return_to)),
            html,
        );
    };
    match verify(client, live, store, &flow, &token).await {
        Ok(claims) => signed_in(live, store, session, &claims, &flow.return_to, false).await,
        Err(p) => Reply::problem(&p, html),
    }
}

/// The ifree flow this browser started, if `state` (what the SDK hands back: the redirect's
/// query, or the page's post) is its nonce: `flow_missing` without a flow cookie,
/// `flow_mismatch` for any other state or none. Checked before the `ptn_token` is used, so a
/// token presented with another browser's state is not burnt. ifree's `/process/token` does not
/// say which flow a token came from: the binding is this state, which only this browser's page
/// and its sealed flow cookie know.
fn this_browsers_flow(
    live: &Live,
    session: &Session,
    state: Option<&str>,
) -> std::result::Result<FlowClaims, Problem> {
    let flow = crate::providers::accept::this_flow(live, session, ProviderId::Ifree)?;
    let nonce = flow.nonce.as_bytes();
    let same =
        state.is_some_and(|s| s.len() == nonce.len() && bool::from(s.as_bytes().ct_eq(nonce)));
    if !same {
        return Err(refuse(Refusal::FlowMismatch, live, Some(&flow.return_to)));
    }
    Ok(flow)
}

/// `POST {prefix}/ifree/login` with `{ptn_token, state}` from the SDK's callback.
async fn login(
    client: &IfreeClient,
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> Result<Reply> {
    let body = read_body(session, 8 * 1024).await?;
    let Some(v) = body.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()) else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), false));
    };
    let text = |k: &str| v.get(k).and_then(|t| t.as_str());
    let flow = match this_browsers_flow(live, session, text("state")) {
        Ok(flow) => flow,
        Err(p) => return Ok(Reply::problem(&p, false)),
    };
    let Some(token) = text("ptn_token").filter(|t| !t.is_empty()) else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), false));
    };
    Ok(match verify(client, live, store, &flow, token).await {
        Ok(claims) => signed_in(live, store, session, &claims, &flow.return_to, true).await,
        Err(p) => Reply::problem(&p, false),
    })
}

/// A birth date from ubifill, when it carries one (its JSON is unconfirmed: `birth`,
/// `birthday` or `birth_date`, as YYYYMMDD or YYYY-MM-DD).
fn ubifill_birth(u: &serde_json::Value) -> Option<chrono::NaiveDate> {
    ["birth", "birthday", "birth_date"]
        .iter()
        .find_map(|k| u.get(*k).and_then(|v| v.as_str()))
        .and_then(crate::providers::parse_dob)
}

async fn verify(
    client: &IfreeClient,
    live: &Live,
    store: &dyn Store,
    flow: &FlowClaims,
    ptn_token: &str,
) -> std::result::Result<Claims, Problem> {
    let rt = flow.return_to.as_str();
    let cfg = client.config();
    let hash_key = &live.cfg.session.hash_key;
    // A ptn_token is used once.
    let token_key = keyed_hash(hash_key, "ifree-token", ptn_token);
    let ttl = std::time::Duration::from_secs(3600);
    use_once(store, ProviderId::Ifree, &token_key, ttl, live, rt).await?;
    let t = client
        .token(ptn_token)
        .await
        .map_err(|e| provider_problem(&e, live, rt))?;
    let ptn_sp = client
        .authenticate(&t.acs_token)
        .await
        .map_err(|e| provider_problem(&e, live, rt))?;
    let record = match store.member_get(&member_id(live, &t.ptn_cd)).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(refuse(Refusal::UnknownMember, live, Some(rt))),
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable during verification");
            return Err(refuse(Refusal::StoreUnavailable, live, Some(rt)));
        }
    };
    let at_rest = &live.cfg.session.at_rest;
    let (Some(sealed_pass), Ok(key)) = (
        record.passcode.as_deref(),
        at_rest.open(Purpose::AtRest, &record.key),
    ) else {
        return Err(refuse(Refusal::UnknownMember, live, Some(rt)));
    };
    let Ok(registered) = at_rest.open(Purpose::AtRest, sealed_pass) else {
        return Err(refuse(Refusal::UnknownMember, live, Some(rt)));
    };
    let presented = ifree_cipher::decrypt(cfg.cipher, &key, &ptn_sp).unwrap_or_default();
    let same: bool =
        presented.len() == registered.len() && bool::from(presented.ct_eq(&registered));
    if !same {
        return Err(refuse(Refusal::PasscodeMismatch, live, Some(rt)));
    }
    let ubifill: Option<serde_json::Value> = record
        .ubifill
        .as_deref()
        .and_then(|u| at_rest.open(Purpose::AtRest, u).ok())
        .and_then(|u| serde_json::from_slice(&u).ok());
    let text = |k: &str| {
        ubifill
            .as_ref()
            .and_then(|u| u.get(k))
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let person = crate::providers::VerifiedPerson {
        provider: ProviderId::Ifree,
        result_id: String::new(),
        nonce: flow.nonce.clone(),
        certified: true,
        unique_in_site: None,
        ci: None,
        birth: ubifill.as_ref().and_then(ubifill_birth),
        name: text("name"),
        gender: None,
        phone: text("phone"),
        foreigner: None,
        carrier: None,
        method: "member".into(),
        verified_at: chrono::Utc::now(),
    };
    let (ci_hash, unique_in_site) = person_of(live, &t.ptn_cd);
    // The member's last use is this login (its retention counts from it); a member registered
    // before owners were recorded gets its owner here.
    let owner = owner_of(live, &t.ptn_cd);
    if let Err(e) = store
        .member_used(
            &member_id(live, &t.ptn_cd),
            crate::store::Person {
                ci_hash: &owner.0,
                unique_in_site: &owner.1,
            },
        )
        .await
    {
        tracing::warn!(error = %e, "store unavailable during verification");
        return Err(refuse(Refusal::StoreUnavailable, live, Some(rt)));
    }
    // The token was claimed once above, before the provider saw it.
    let rules = Rules {
        max_age: None,
        once: None,
        identity: Identity::Keyed(unique_in_site, ci_hash),
    };
    accept(live, store, flow, person, rules).await
}
