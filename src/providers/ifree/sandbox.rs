//! ifree simulator: `/process/token` and `/process/authenticate` with the documented shapes and
//! codes, a scripted member that drives the real key exchange and registration against
//! verigate's callback (RSA PKCS#1 v1.5 and the member-key cipher, both directions), a login
//! window, and a stand-in SDK.

use crate::answers::{escape, page};
use crate::crypto::ifree_cipher::{self, Cipher};
use crate::providers::sandbox::SandboxOptions;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use rsa::pkcs8::EncodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "sandbox-client";
pub const SECRET_KEY: &str = "sandbox_secret";

#[derive(Clone)]
struct Member {
    key: String,
    /// What `/process/authenticate` hands back (normally the registered passcode).
    login_passcode: String,
}

pub struct Sim {
    cipher: Cipher,
    members: Mutex<HashMap<String, Member>>,
    ptn_tokens: Mutex<HashMap<String, (String, bool)>>,
    acs_tokens: Mutex<HashMap<String, (String, i64)>>,
    acs_ttl: Mutex<i64>,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn code(code: &str, message: &str) -> Response {
    Json(json!({ "code": code, "message": message })).into_response()
}

impl Sim {
    pub fn new(_opts: &SandboxOptions) -> Arc<Self> {
        Arc::new(Sim {
            cipher: Cipher::DEFAULT,
            members: Mutex::new(HashMap::new()),
            ptn_tokens: Mutex::new(HashMap::new()),
            acs_tokens: Mutex::new(HashMap::new()),
            acs_ttl: Mutex::new(600),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        })
    }

    /// Lifetime of access tokens in seconds (0 or less: issued already expired, for tests).
    pub fn set_acs_ttl(&self, secs: i64) {
        *lock(&self.acs_ttl) = secs;
    }

    /// Sandbox-only: know a member registered by someone else (an interop test's own client).
    pub fn adopt_member(&self, ptn_cd: &str, key: &str, passcode: &str) {
        lock(&self.members).insert(
            ptn_cd.to_string(),
            Member {
                key: key.to_string(),
                login_passcode: passcode.to_string(),
            },
        );
    }

    /// A login token for a member, as the SDK would receive after the person logs in.
    pub fn issue_ptn_token(&self, ptn_cd: &str) -> String {
        let t = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        lock(&self.ptn_tokens).insert(t.clone(), (ptn_cd.to_string(), false));
        t
    }

    /// The scripted member: key exchange and registration against `callback_url`, for real.
    pub async fn register_member(
        &self,
        callback_url: &str,
        passcode: &str,
        login_passcode: Option<&str>,
        ubifill: Option<&Value>,
    ) -> Result<String, String> {
        let ptn_cd = format!(
            "PTN{:012}",
            rand::thread_rng().gen_range(0..1_000_000_000_000u64)
        );
        let sk = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| e.to_string())?;
        let der = sk
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| e.to_string())?;
        let one: Value = self
            .http
            .post(callback_url)
            .json(&json!({
                "client_id": CLIENT_ID, "used_type": "1", "ptn_cd": ptn_cd,
                "public_key": STANDARD.encode(der.as_bytes()),
            }))
            .send()
            .await
            .map_err(|e| format!("key exchange: {e}"))?
            .json()
            .await
            .map_err(|e| format!("key exchange answer: {e}"))?;
        if one["code"] != "0000" {
            return Err(format!("key exchange refused: {one}"));
        }
        let enc = one["result"]["enc_partner_key"].as_str().unwrap_or("");
        let ct = STANDARD
            .decode(enc)
            .map_err(|_| "enc_partner_key is not base64".to_string())?;
        let key_bytes = sk
            .decrypt(Pkcs1v15Encrypt, &ct)
            .map_err(|_| "enc_partner_key does not decrypt".to_string())?;
        let key = String::from_utf8(key_bytes).map_err(|_| "member key is not text".to_string())?;
        if key.len() != 32 {
            return Err(format!("member key has {} characters, not 32", key.len()));
        }
        let partner_sp = ifree_cipher::encrypt(self.cipher, key.as_bytes(), passcode.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut two = json!({ "client_id": CLIENT_ID, "used_type": "2", "ptn_cd": ptn_cd, "partner_sp": partner_sp });
        if let Some(u) = ubifill {
            two["ubifill"] =
                json!(
                    ifree_cipher::encrypt(self.cipher, key.as_bytes(), u.to_string().as_bytes())
                        .map_err(|e| e.to_string())?
                );
        }
        let two: Value = self
            .http
            .post(callback_url)
            .json(&two)
            .send()
            .await
            .map_err(|e| format!("registration: {e}"))?
            .json()
            .await
            .map_err(|e| format!("registration answer: {e}"))?;
        if two["code"] != "0000" {
            return Err(format!("registration refused: {two}"));
        }
        lock(&self.members).insert(
            ptn_cd.clone(),
            Member {
                key,
                login_passcode: login_passcode.unwrap_or(passcode).to_string(),
            },
        );
        Ok(ptn_cd)
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/process/token", post(token))
        .route("/process/authenticate", post(authenticate))
        .route("/sandbox/members", post(members))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/register", post(login_register))
        .route("/js/ifree.js", get(sdk))
        .with_state(sim)
}

fn creds_ok(b: &Value) -> bool {
    b["client_id"] == CLIENT_ID && b["secret_key"] == SECRET_KEY
}

async fn token(State(sim): State<Arc<Sim>>, Json(b): Json<Value>) -> Response {
    if !creds_ok(&b) {
        return code("E001", "invalid client_id or secret_key");
    }
    let Some(t) = b["ptn_token"].as_str() else {
        return code("E002", "ptn_token is required");
    };
    let ptn_cd = {
        let mut tokens = lock(&sim.ptn_tokens);
        match tokens.get_mut(t) {
            Some((cd, used)) if !*used => {
                *used = true;
                cd.clone()
            }
            _ => return code("E101", "invalid or used ptn_token"),
        }
    };
    let acs = Alphanumeric.sample_string(&mut rand::thread_rng(), 40);
    let exp = now() + *lock(&sim.acs_ttl);
    lock(&sim.acs_tokens).insert(acs.clone(), (ptn_cd.clone(), exp));
    let expire_dt = chrono::DateTime::<chrono::Utc>::from_timestamp(exp, 0)
        .map(|t| {
            t.with_timezone(&chrono_tz::Asia::Seoul)
                .format("%Y%m%d%H%M%S")
                .to_string()
        })
        .unwrap_or_default();
    Json(json!({ "code": "0000", "message": "", "result": { "acs_token": acs, "expire_dt": expire_dt, "ptn_cd": ptn_cd } }))
        .into_response()
}

async fn authenticate(State(sim): State<Arc<Sim>>, Json(b): Json<Value>) -> Response {
    if !creds_ok(&b) {
        return code("E001", "invalid client_id or secret_key");
    }
    let Some(acs) = b["acs_token"].as_str() else {
        return code("E002", "acs_token is required");
    };
    let Some((ptn_cd, exp)) = lock(&sim.acs_tokens).get(acs).cloned() else {
        return code("E102", "invalid acs_token");
    };
    if exp <= now() {
        return code("E103", "expired acs_token");
    }
    let Some(m) = lock(&sim.members).get(&ptn_cd).cloned() else {
        return code("E104", "unknown member");
    };
    match ifree_cipher::encrypt(sim.cipher, m.key.as_bytes(), m.login_passcode.as_bytes()) {
        Ok(sp) => Json(json!({ "code": "0000", "message": "", "result": { "ptn_sp": sp } }))
            .into_response(),
        Err(_) => code("E999", "internal error"),
    }
}

#[derive(Deserialize)]
struct NewMember {
    callback_url: String,
    passcode: String,
    #[serde(default)]
    login_passcode: Option<String>,
    #[serde(default)]
    ubifill: Option<Value>,
}

/// Sandbox-only: create a member that registers with verigate through its callback.
async fn members(State(sim): State<Arc<Sim>>, Json(m): Json<NewMember>) -> Response {
    match sim
        .register_member(
            &m.callback_url,
            &m.passcode,
            m.login_passcode.as_deref(),
            m.ubifill.as_ref(),
        )
        .await
    {
        Ok(ptn_cd) => Json(json!({ "ptn_cd": ptn_cd })).into_response(),
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": e }))).into_response(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    callback_url: String,
}

fn login_html(q: &LoginQuery, members: &[String], note: &str) -> String {
    let hidden = format!(
        r#"<input type="hidden" name="redirect_uri" value="{}"><input type="hidden" name="state" value="{}"><input type="hidden" name="callback_url" value="{}">"#,
        escape(&q.redirect_uri),
        escape(&q.state),
        escape(&q.callback_url)
    );
    let mut list = String::new();
    for m in members {
        list.push_str(&format!(
            r#"<form method="post" action="/ifree/login">{hidden}<input type="hidden" name="ptn_cd" value="{m}"><button type="submit" data-member="{m}">Log in as {m}</button></form>"#,
            m = escape(m)
        ));
    }
    page(
        "ifree sandbox",
        &format!(
            r#"<h1>ifree (sandbox)</h1><p class="en">{note}</p>{list}
<form method="post" action="/ifree/login/register">{hidden}<p><label>New member passcode <input name="passcode" value="000000"></label></p>
<button type="submit" class="secondary" id="register">Register a new sandbox member</button></form>
<form method="post" action="/ifree/login">{hidden}<input type="hidden" name="ptn_cd" value=""><input type="hidden" name="outcome" value="cancel"><button type="submit" id="cancel">Cancel</button></form>"#
        ),
    )
}

async fn login_page(State(sim): State<Arc<Sim>>, Query(q): Query<LoginQuery>) -> Html<String> {
    let members: Vec<String> = lock(&sim.members).keys().cloned().collect();
    Html(login_html(
        &q,
        &members,
        "Pick a member to log in as, or register a new one with this site.",
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    ptn_cd: String,
    #[serde(default)]
    outcome: Option<String>,
}

fn with_params(url: &str, pairs: &[(&str, &str)]) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{q}")
}

async fn login_submit(State(sim): State<Arc<Sim>>, Form(f): Form<LoginForm>) -> Response {
    if f.redirect_uri.is_empty() {
        return (StatusCode::BAD_REQUEST, "redirect_uri is required").into_response();
    }
    let known = lock(&sim.members).contains_key(&f.ptn_cd);
    if f.outcome.as_deref() == Some("cancel") || !known {
        return Redirect::to(&with_params(
            &f.redirect_uri,
            &[("code", "E900"), ("state", &f.state)],
        ))
        .into_response();
    }
    let t = sim.issue_ptn_token(&f.ptn_cd);
    Redirect::to(&with_params(
        &f.redirect_uri,
        &[
            ("code", "0000"),
            ("state", &f.state),
            ("ptn_token", &t),
            ("ptn_cd", &f.ptn_cd),
        ],
    ))
    .into_response()
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    callback_url: String,
    passcode: String,
}

async fn login_register(State(sim): State<Arc<Sim>>, Form(f): Form<RegisterForm>) -> Html<String> {
    let note = match sim
        .register_member(&f.callback_url, &f.passcode, None, None)
        .await
    {
        Ok(cd) => format!("Registered member {cd} with the site."),
        Err(e) => format!("Registration failed: {e}"),
    };
    let q = LoginQuery {
        redirect_uri: f.redirect_uri,
        state: f.state,
        callback_url: f.callback_url,
    };
    let members: Vec<String> = lock(&sim.members).keys().cloned().collect();
    Html(login_html(&q, &members, &escape(&note)))
}

const SDK: &str = r#"/* verigate sandbox stand-in for the ifree login SDK (IfreeLogin.login) */
(function () {
  var me = document.currentScript && document.currentScript.src;
  var base = me ? me.replace(/\/js\/ifree\.js(\?.*)?$/, '') : '';
  function enc(v) { return encodeURIComponent(v == null ? '' : String(v)); }
  window.IfreeLogin = {
    login: function (p) {
      p = p || {};
      location.href = base + '/login?client_id=' + enc(p.client_id) + '&redirect_uri=' + enc(p.redirect_uri) +
        '&state=' + enc(p.state) + '&callback_url=' + enc(p.callback_url);
    }
  };
})();
"#;

async fn sdk() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/javascript; charset=utf-8",
        )],
        SDK,
    )
        .into_response()
}
