//! TomoIDV simulator: the token endpoint verifies RFC 7523 client assertions for real
//! (signature against the registered public key, `aud`, `exp`, `iat` skew, `jti` replay) and
//! issues expiring tokens; `/v1/idv/start` and `/v1/idv/result` enforce Bearer auth and the
//! kyc_policy rules; `start_idv_uri` is a person window where a tester plays the visitor.

use crate::answers::{escape, page};
use crate::config::providers::tomo::policy::check_policy;
use crate::crypto::jwk::jwk_to_pem;
use crate::providers::sandbox::SandboxOptions;
use crate::providers::tomo::client::CLIENT_ASSERTION_TYPE;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::distributions::{Alphanumeric, DistString};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The sandbox client's secret, as the console would issue it (test material, see conf/sandbox).
pub const SANDBOX_CLIENT_ID: &str = "sandbox-client";
pub const SANDBOX_CLIENT_JWK: &str = include_str!("../../../conf/sandbox/tomo-sandbox-client.jwk");

const MAX_SKEW: i64 = 60;

/// A client assertion's claims as the token endpoint reads them. `aud` is not among them: the
/// validation checks it from the token itself, as a string or an array (RFC 7519 §4.1.3;
/// RFC 7523 §3 lets it be either).
#[derive(Debug, Deserialize)]
struct ReceivedClaims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
}

#[derive(Clone)]
struct IdvSession {
    client_id: String,
    user_id: String,
    policy_key: String,
    country: Option<String>,
    success: Option<String>,
    fail: Option<String>,
}

pub struct Sim {
    token_ttl: Duration,
    clients: Mutex<HashMap<String, DecodingKey>>,
    used_jti: Mutex<HashMap<String, i64>>,
    tokens: Mutex<HashMap<String, (String, i64)>>,
    sessions: Mutex<HashMap<String, IdvSession>>,
    results: Mutex<HashMap<String, Vec<Value>>>,
    signing: EncodingKey,
    token_requests: std::sync::atomic::AtomicU64,
    /// Answer `/v1/idv/start` with `idv_start_uri` (an older revision's name) instead.
    legacy_start_name: std::sync::atomic::AtomicBool,
    /// The `callback_url` each start request carried, by `user_id`.
    callbacks: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A public JWK (JSON) as a decoding key.
pub fn decoding_key(public_jwk: &str) -> Option<DecodingKey> {
    let pk = p256::PublicKey::from_jwk_str(public_jwk).ok()?;
    let pem = pk.to_public_key_pem(LineEnding::LF).ok()?;
    DecodingKey::from_ec_pem(pem.as_bytes()).ok()
}

fn sandbox_public_jwk() -> Option<String> {
    let pem = jwk_to_pem(SANDBOX_CLIENT_JWK).ok()?;
    let sk: p256::SecretKey = p256::pkcs8::DecodePrivateKey::from_pkcs8_pem(&pem).ok()?;
    Some(sk.public_key().to_jwk_string())
}

impl Sim {
    /// `clients`: extra (client_id, public JWK JSON) registrations besides `sandbox-client`.
    pub fn new(opts: &SandboxOptions) -> Arc<Self> {
        let (token_ttl, clients) = (opts.tomo_token_ttl, &opts.tomo_clients);
        let mut map = HashMap::new();
        if let Some(k) = sandbox_public_jwk().as_deref().and_then(decoding_key) {
            map.insert(SANDBOX_CLIENT_ID.to_string(), k);
        }
        for (id, jwk) in clients {
            match decoding_key(jwk) {
                Some(k) => {
                    map.insert(id.clone(), k);
                }
                None => tracing::error!(client = %id, "tomo sandbox: not a P-256 public JWK"),
            }
        }
        let sk = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let signing = sk
            .to_pkcs8_pem(LineEnding::LF)
            .ok()
            .and_then(|p| EncodingKey::from_ec_pem(p.as_bytes()).ok())
            .unwrap_or_else(|| EncodingKey::from_secret(b"unreachable"));
        Arc::new(Sim {
            token_ttl,
            clients: Mutex::new(map),
            used_jti: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            results: Mutex::new(HashMap::new()),
            signing,
            token_requests: Default::default(),
            legacy_start_name: Default::default(),
            callbacks: Mutex::new(HashMap::new()),
        })
    }

    /// Name the start URL `idv_start_uri`, as an older revision of the API does.
    pub fn use_legacy_start_name(&self, on: bool) {
        self.legacy_start_name
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The `callback_url` the start request for `user_id` carried.
    pub fn callback_url(&self, user_id: &str) -> Option<String> {
        lock(&self.callbacks).get(user_id).cloned()
    }

    /// How many verification sessions were started (tests count provider calls with it).
    pub fn started(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// Successful token issues (tests count fetches with it).
    pub fn token_requests(&self) -> u64 {
        self.token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Make every issued token expire now.
    pub fn expire_tokens(&self) {
        for (_, exp) in lock(&self.tokens).values_mut() {
            *exp = now() - 1;
        }
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/v1/oauth2/token", post(token))
        .route("/v1/idv/start", post(start))
        .route("/v1/idv/result", post(result))
        .route("/idv/{sid}", get(window).post(window_submit))
        .with_state(sim)
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string()
}

async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    if f.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion_type must be jwt-bearer",
        );
    }
    let Some(assertion) = f.get("client_assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_assertion is missing",
        );
    };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) if h.alg == Algorithm::ES256 => h,
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_assertion must be an ES256 JWT",
            )
        }
    };
    let _ = header;
    let Ok(unverified) = jsonwebtoken::dangerous::insecure_decode::<ReceivedClaims>(assertion)
    else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_assertion claims are malformed",
        );
    };
    let client_id = unverified.claims.iss.clone();
    let key = lock(&sim.clients).get(&client_id).cloned();
    let Some(key) = key else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    };
    let audience = format!("http://{}/tomo/v1/oauth2/token", host(&headers));
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[audience.as_str()]);
    v.set_issuer(&[client_id.as_str()]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    v.leeway = 0;
    let claims = match jsonwebtoken::decode::<ReceivedClaims>(assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("client_assertion rejected: {e}"),
            )
        }
    };
    let t = now();
    if claims.sub != client_id {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "sub must equal iss",
        );
    }
    if claims.iat > t + MAX_SKEW || claims.exp - claims.iat > 300 + MAX_SKEW {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "iat/exp out of range",
        );
    }
    if claims.jti.is_empty() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "jti is required",
        );
    }
    {
        let mut used = lock(&sim.used_jti);
        used.retain(|_, exp| *exp > t - MAX_SKEW);
        if used.contains_key(&claims.jti) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "jti already used",
            );
        }
        used.insert(claims.jti.clone(), claims.exp);
    }
    let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 40);
    let ttl = sim.token_ttl.as_secs() as i64;
    lock(&sim.tokens).insert(token.clone(), (client_id, t + ttl));
    sim.token_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": "idv.read" }))
        .into_response()
}

/// The client whose live access token the `Authorization` header carries. The scheme's name
/// is case-insensitive (RFC 7235 §2.1; RFC 6750 §2.1 uses it so): `bearer` counts too.
fn bearer(sim: &Sim, headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, tok) = raw.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let tok = tok.trim_start_matches(' ');
    match lock(&sim.tokens).get(tok) {
        Some((client, exp)) if *exp > now() => Some(client.clone()),
        _ => None,
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "unauthorized" })),
    )
        .into_response()
}

async fn start(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(client_id) = bearer(&sim, &headers) else {
        return unauthorized();
    };
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid JSON" })),
        )
            .into_response();
    };
    let policy = b
        .get("kyc_policy")
        .cloned()
        .unwrap_or(json!({ "preset": "basic" }));
    let Ok(policy_key) = check_policy(&policy) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "Unsupported kyc_policy" })),
        )
            .into_response();
    };
    let s = |k: &str| b.get(k).and_then(|v| v.as_str()).map(String::from);
    if let Some(c) = s("country") {
        if c.len() != 2 || c.chars().any(|ch| !ch.is_ascii_lowercase()) {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "country must be lowercase ISO" })),
            )
                .into_response();
        }
    }
    let sid = Alphanumeric.sample_string(&mut rand::thread_rng(), 20);
    let user_id = s("user_id").unwrap_or_else(|| format!("anon_{sid}"));
    let callback = s("callback_url");
    if let Some(c) = &callback {
        lock(&sim.callbacks).insert(user_id.clone(), c.clone());
    }
    // An older revision returns the person through `callback_url` alone.
    let session = IdvSession {
        client_id,
        user_id,
        policy_key,
        country: s("country"),
        success: s("redirect_url_success").or_else(|| callback.clone()),
        fail: s("redirect_url_fail").or(callback),
    };
    lock(&sim.sessions).insert(sid.clone(), session);
    let name = if sim
        .legacy_start_name
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        "idv_start_uri"
    } else {
        "start_idv_uri"
    };
    Json(json!({ name: format!("http://{}/tomo/idv/{sid}", host(&headers)) })).into_response()
}

async fn result(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if bearer(&sim, &headers).is_none() {
        return unauthorized();
    }
    let user_id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("user_id").and_then(|v| v.as_str()).map(String::from));
    let Some(user_id) = user_id.filter(|u| !u.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "user_id is required" })),
        )
            .into_response();
    };
    match lock(&sim.results).get(&user_id) {
        Some(rs) if !rs.is_empty() => {
            Json(json!({ "result": rs.last(), "results": rs })).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no result for user_id" })),
        )
            .into_response(),
    }
}

async fn window(State(sim): State<Arc<Sim>>, Path(sid): Path<String>) -> Response {
    let Some(s) = lock(&sim.sessions).get(&sid).cloned() else {
        return (
            StatusCode::NOT_FOUND,
            Html(page("TomoIDV sandbox", "<h1>Unknown session</h1>")),
        )
            .into_response();
    };
    let country = s.country.clone().unwrap_or_else(|| "us".into());
    Html(page(
        "TomoIDV sandbox",
        &format!(
            r#"<h1>TomoIDV (sandbox)</h1><p class="en">Play the foreign visitor: no real ID is checked here.</p>
<form method="post" action="{sid}">
<p><label>Nationality (ISO) <input name="nationality" value="{country}" required></label></p>
<p><label>Document <select name="document"><option>passport</option><option>national_id</option><option>drivers_license</option></select></label></p>
<p><label>Full name <input name="full_name" value="Jane Doe" required></label></p>
<p><label>Date of birth <input name="date_of_birth" value="1990-01-01" required></label></p>
<p><label>Outcome <select name="outcome"><option value="success">success</option><option value="failure">failure</option></select></label></p>
<button type="submit">Submit</button>
</form>"#,
            sid = escape(&sid),
            country = escape(&country),
        ),
    ))
    .into_response()
}

#[derive(Deserialize)]
struct WindowForm {
    nationality: String,
    document: String,
    full_name: String,
    date_of_birth: String,
    #[serde(default)]
    outcome: Option<String>,
}

fn ppid(client_id: &str, f: &WindowForm) -> String {
    let mut m = <SimpleHmac<sha2::Sha256> as Mac>::new_from_slice(b"verigate-sandbox-tomo-ppid")
        .expect("any key length");
    for part in [
        client_id,
        &f.nationality,
        &f.document,
        f.full_name.trim(),
        &f.date_of_birth,
    ] {
        m.update(part.as_bytes());
        m.update(&[0x1f]);
    }
    format!(
        "ppid.{}",
        URL_SAFE_NO_PAD.encode(&m.finalize().into_bytes()[..18])
    )
}

fn with_param(url: &str, k: &str, v: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}{k}={}",
        form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
    )
}

async fn window_submit(
    State(sim): State<Arc<Sim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    Form(f): Form<WindowForm>,
) -> Response {
    let Some(s) = lock(&sim.sessions).remove(&sid) else {
        return (
            StatusCode::NOT_FOUND,
            Html(page(
                "TomoIDV sandbox",
                "<h1>Unknown or finished session</h1>",
            )),
        )
            .into_response();
    };
    if f.outcome.as_deref() == Some("failure") {
        return match s.fail {
            Some(u) => Redirect::to(&u).into_response(),
            None => Html(page("TomoIDV sandbox", "<h1>Verification failed</h1>")).into_response(),
        };
    }
    let person = ppid(&s.client_id, &f);
    let auth_id = format!(
        "auth_{}",
        Alphanumeric.sample_string(&mut rand::thread_rng(), 16)
    );
    let (given, family) = f
        .full_name
        .trim()
        .split_once(' ')
        .map(|(g, fam)| (g.to_string(), fam.to_string()))
        .unwrap_or_else(|| (f.full_name.trim().to_string(), String::new()));
    let r = json!({
        "auth_id": auth_id,
        "policy_key": s.policy_key,
        "country": f.nationality,
        "result": {
            "full_name": f.full_name.trim(),
            "given_name": given,
            "family_name": family,
            "date_of_birth": f.date_of_birth.trim(),
            "country": f.nationality,
            "full_address": "",
        }
    });
    {
        let mut results = lock(&sim.results);
        results
            .entry(s.user_id.clone())
            .or_default()
            .push(r.clone());
        results.entry(person.clone()).or_default().push(r);
    }
    let t = now();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    let token = jsonwebtoken::encode(
        &header,
        &json!({ "iss": format!("http://{}/tomo", host(&headers)), "sub": person, "aud": s.client_id, "iat": t, "exp": t + 300 }),
        &sim.signing,
    )
    .unwrap_or_default();
    match s.success {
        Some(u) => Redirect::to(&with_param(&u, "token", &token)).into_response(),
        None => Json(json!({ "token": token })).into_response(),
    }
}
