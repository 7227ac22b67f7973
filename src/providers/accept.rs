//! The steps every provider's result goes through before it becomes a session, written once:
//! the browser's own flow, the result made for that flow, certified, fresh, used once, and the
//! person's identity keyed. A provider's file only says how to get its result.

use crate::answers::{Problem, Refusal};
use crate::live::Live;
use crate::providers::flow::{ci_identity, read_flow, refuse, session_claims, use_once};
use crate::providers::{ProviderId, VerifiedPerson};
use crate::session::{Claims, FlowClaims};
use crate::store::Store;
use pingora::proxy::Session;
use std::time::Duration;

/// The flow this browser started with `provider` (its sealed flow cookie): `flow_missing`
/// without one.
pub(crate) fn this_flow(
    live: &Live,
    session: &Session,
    provider: ProviderId,
) -> Result<FlowClaims, Problem> {
    read_flow(live, session)
        .filter(|f| f.provider == provider)
        .ok_or_else(|| refuse(provider, Refusal::FlowMissing, live, None))
}

/// How a person is told apart, for the session's `unique_in_site` and one-account rules.
pub(crate) enum Identity {
    /// From the result's CI (and DI when the provider gives one): Iamport, PortOne. A result
    /// without a CI (KG이니시스 통합인증 with Kakao, absent a separate contract) is a person
    /// without a person id: routes that need one refuse it (`ci_unavailable`), others take it
    /// with what was verified.
    Ci,
    /// Already keyed by the provider's file: `(unique_in_site, ci_hash)`.
    Keyed(String, String),
}

/// What a provider's result must satisfy besides being this flow's.
pub(crate) struct Rules<'a> {
    /// A result older than this is `stale_result` (None: the provider's result is live).
    pub max_age: Option<Duration>,
    /// The result's one-use key and how long it is remembered (None: the provider's file has
    /// claimed its token itself).
    pub once: Option<(&'a str, Duration)>,
    pub identity: Identity,
}

/// Accept `person` for `flow`: certified, made for this flow's nonce, fresh, never used before.
/// Answers the session's claims, or the problem to show.
pub(crate) async fn accept(
    live: &Live,
    store: &dyn Store,
    flow: &FlowClaims,
    person: VerifiedPerson,
    rules: Rules<'_>,
) -> Result<Claims, Problem> {
    let provider = person.provider;
    let rt = Some(flow.return_to.as_str());
    if !person.certified {
        return Err(refuse(provider, Refusal::NotCertified, live, rt));
    }
    if person.nonce != flow.nonce {
        return Err(refuse(provider, Refusal::FlowMismatch, live, rt));
    }
    if let Some(max) = rules.max_age {
        let age = chrono::Utc::now()
            .signed_duration_since(person.verified_at)
            .num_seconds();
        if age > max.as_secs() as i64 || age < -60 {
            return Err(refuse(provider, Refusal::StaleResult, live, rt));
        }
    }
    let (unique_in_site, ci_hash) = match rules.identity {
        Identity::Keyed(u, h) => (u, h),
        Identity::Ci => match person.ci.as_deref() {
            Some(ci) => ci_identity(live, ci, person.unique_in_site.as_deref()),
            None => {
                tracing::info!(provider = provider.as_str(), "verified without a CI");
                (
                    person.unique_in_site.clone().unwrap_or_default(),
                    String::new(),
                )
            }
        },
    };
    if let Some((key, ttl)) = rules.once {
        use_once(store, provider, key, ttl, live, &flow.return_to).await?;
    }
    if live.cfg.records.ledger {
        let line = ledger_line(live, &flow.return_to, &person, &ci_hash, &unique_in_site);
        let at_ms = chrono::Utc::now().timestamp_millis();
        if let Err(e) = store
            .log_append(crate::store::Log::Ledger, at_ms, &line.to_string())
            .await
        {
            // The ledger is the merchant's proof that age was checked: no line, no session.
            tracing::warn!(error = %e, "store unavailable: the ledger line cannot be written");
            return Err(refuse(provider, Refusal::StoreUnavailable, live, rt));
        }
    }
    Ok(session_claims(
        live,
        person,
        unique_in_site,
        ci_hash,
        flow.guardian.is_none(),
    ))
}

/// The ledger's id of a person: a keyed hash of its own (never the hash other records are
/// kept under), of the keyed CI hash, or of the per-site id when there is no CI.
pub fn ledger_person(hash_key: &[u8; 32], ci_hash: &str, unique_in_site: &str) -> Option<String> {
    if !ci_hash.is_empty() {
        Some(crate::session::keyed_hash(hash_key, "ledger/ci", ci_hash))
    } else if !unique_in_site.is_empty() {
        Some(crate::session::keyed_hash(
            hash_key,
            "ledger/uis",
            unique_in_site,
        ))
    } else {
        None
    }
}

/// A verification ledger line: when, which provider, the route `return_to` leads to (as its
/// path names it), the person's ledger id, what age was found and whether the route's age
/// rule admits it, the provider's result id. No name, no CI, no DI, no birth date.
fn ledger_line(
    live: &Live,
    return_to: &str,
    person: &VerifiedPerson,
    ci_hash: &str,
    unique_in_site: &str,
) -> serde_json::Value {
    let cfg = &live.cfg;
    let route = crate::routing::path::normalize(return_to)
        .ok()
        .and_then(|n| cfg.routes.find(&[&http::Method::GET], None, &n))
        .and_then(|f| f.route())
        .and_then(|i| cfg.routes.get(i));
    let today = crate::clock::today(cfg.timezone, crate::clock::unix_now());
    let age = person
        .birth
        .map(|b| crate::identity::international_age(b, today));
    let min_age = route.and_then(|r| r.require.as_ref()?.min_age);
    let admitted = match (route.and_then(|r| r.require.as_ref()), person.birth) {
        (Some(q), Some(b)) => q.min_age.map(|min| q.age_rule.admits(min, b, today)),
        _ => None,
    };
    serde_json::json!({
        "at": person_time(),
        "provider": person.provider.as_str(),
        "route": route.map(|r| r.name.as_str()),
        "person": ledger_person(&cfg.session.hash_key, ci_hash, unique_in_site),
        // The per-site id's ledger id too: an erasure by either finds the line.
        "site_person": (!ci_hash.is_empty())
            .then(|| ledger_person(&cfg.session.hash_key, "", unique_in_site))
            .flatten(),
        "age": age,
        "min_age": min_age,
        // The rule only where the route has an age limit (`min_age`): none, no rule.
        "age_rule": route
            .and_then(|r| r.require.as_ref())
            .filter(|q| q.min_age.is_some())
            .map(|q| q.age_rule.as_str()),
        "admitted": admitted,
        "result_id": (!person.result_id.is_empty()).then_some(person.result_id.as_str()),
    })
}

fn person_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
