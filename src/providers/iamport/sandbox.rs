//! Iamport (PortOne V1) simulator: `/users/getToken`, `/certifications/{imp_uid}`, the person
//! window (`/certify`) and a stand-in for the browser SDK (`/js/iamport.js`).
//!
//! Faithful where verigate depends on it: the `{code, message, response}` envelope, 401 for bad
//! credentials or tokens (both `Authorization: <token>` and `Bearer <token>`), 404 with
//! "인증결과가 존재하지 않습니다." for unknown results, 30-minute tokens that are returned
//! again while valid and extended by 5 minutes when asked for in their last minute.

use crate::answers::{escape, page};
use crate::providers::sandbox::SandboxOptions;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const API_KEY: &str = "sandbox_key";
pub const API_SECRET: &str = "sandbox_secret";

/// Deterministic "person" identities: the same name, birth and phone always give the same CI.
const PERSON_SEED: &[u8] = b"verigate-sandbox-person-seed-v1";

pub struct Sim {
    token_ttl: Duration,
    token: Mutex<Option<(String, i64)>>,
    certs: Mutex<HashMap<String, Value>>,
    /// The channel each certification was asked for (`channelKey`, `pg`), by imp_uid.
    channels: Mutex<HashMap<String, Channel>>,
    token_requests: std::sync::atomic::AtomicU64,
}

/// The certification channel the page asked `IMP.certification` for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    pub channel_key: Option<String>,
    pub pg: Option<String>,
}

impl Sim {
    pub fn new(opts: &SandboxOptions) -> Arc<Self> {
        Arc::new(Sim {
            token_ttl: opts.token_ttl,
            token: Mutex::new(None),
            certs: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            token_requests: Default::default(),
        })
    }

    /// Make the current token expire now, as the real one does after 30 minutes.
    pub fn expire_token(&self) {
        let mut slot = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, exp)) = slot.as_mut() {
            *exp = now() - 1;
        }
    }

    /// The channel the certification `imp_uid` was made on (what the page passed to the SDK).
    pub fn channel_of(&self, imp_uid: &str) -> Option<Channel> {
        self.channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(imp_uid)
            .cloned()
    }

    /// How many getToken calls succeeded (tests count token fetches with it).
    pub fn token_requests(&self) -> u64 {
        self.token_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn envelope(status: StatusCode, code: i64, message: Option<&str>, response: Value) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message, "response": response })),
    )
        .into_response()
}

fn unauthorized() -> Response {
    envelope(
        StatusCode::UNAUTHORIZED,
        -1,
        Some("Unauthorized"),
        Value::Null,
    )
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/users/getToken", post(get_token))
        .route(
            "/certifications/{imp_uid}",
            get(get_certification).delete(delete_certification),
        )
        .route("/certify", get(certify_form).post(certify_submit))
        .route("/js/iamport.js", get(sdk))
        .with_state(sim)
}

async fn get_token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields: HashMap<String, String> = if ctype.starts_with("application/json") {
        match serde_json::from_slice::<HashMap<String, Value>>(&body) {
            Ok(m) => m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
            Err(_) => HashMap::new(),
        }
    } else {
        form_urlencoded::parse(&body).into_owned().collect()
    };
    let (Some(key), Some(secret)) = (fields.get("imp_key"), fields.get("imp_secret")) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            -1,
            Some("imp_key, imp_secret 파라메터가 누락되었습니다."),
            Value::Null,
        );
    };
    if key != API_KEY || secret != API_SECRET {
        return unauthorized();
    }
    let t = now();
    let mut slot = sim.token.lock().unwrap_or_else(|p| p.into_inner());
    let (token, expired_at) = match slot.as_ref() {
        Some((tok, exp)) if *exp > t => {
            let exp = if exp - t <= 60 { exp + 300 } else { *exp };
            (tok.clone(), exp)
        }
        _ => {
            let tok: String = (0..40)
                .map(|_| format!("{:x}", rand::thread_rng().gen_range(0..16)))
                .collect();
            (tok, t + sim.token_ttl.as_secs() as i64)
        }
    };
    *slot = Some((token.clone(), expired_at));
    sim.token_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    envelope(
        StatusCode::OK,
        0,
        None,
        json!({ "access_token": token, "now": t, "expired_at": expired_at }),
    )
}

fn authorized(sim: &Sim, headers: &HeaderMap) -> bool {
    let Some(raw) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let presented = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    let slot = sim.token.lock().unwrap_or_else(|p| p.into_inner());
    matches!(slot.as_ref(), Some((tok, exp)) if tok == presented && *exp > now())
}

fn not_found() -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        -1,
        Some("인증결과가 존재하지 않습니다."),
        Value::Null,
    )
}

async fn get_certification(
    State(sim): State<Arc<Sim>>,
    Path(imp_uid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let certs = sim.certs.lock().unwrap_or_else(|p| p.into_inner());
    match certs.get(&imp_uid) {
        Some(c) => envelope(StatusCode::OK, 0, None, c.clone()),
        None => not_found(),
    }
}

async fn delete_certification(
    State(sim): State<Arc<Sim>>,
    Path(imp_uid): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&sim, &headers) {
        return unauthorized();
    }
    let mut certs = sim.certs.lock().unwrap_or_else(|p| p.into_inner());
    match certs.remove(&imp_uid) {
        Some(c) => envelope(StatusCode::OK, 0, None, c),
        None => not_found(),
    }
}

#[derive(Deserialize)]
struct FormQuery {
    #[serde(default)]
    imp_code: String,
    #[serde(default)]
    merchant_uid: String,
    #[serde(default)]
    m_redirect_url: Option<String>,
    #[serde(default)]
    channel_key: Option<String>,
    #[serde(default)]
    pg: Option<String>,
    /// The merchant page's `min_age` and `company`.
    #[serde(default)]
    min_age: Option<String>,
    #[serde(default)]
    company: Option<String>,
}

async fn certify_form(Query(q): Query<FormQuery>) -> Html<String> {
    let hidden = |name: &str, v: Option<&str>| {
        v.filter(|v| !v.is_empty())
            .map(|v| {
                format!(
                    r#"<input type="hidden" name="{name}" value="{}">"#,
                    escape(v)
                )
            })
            .unwrap_or_default()
    };
    let redirect = hidden("m_redirect_url", q.m_redirect_url.as_deref())
        + &hidden("channel_key", q.channel_key.as_deref())
        + &hidden("pg", q.pg.as_deref())
        + &hidden("min_age", q.min_age.as_deref());
    let company = q
        .company
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            format!(
                r#"<p>서비스 · Service: <strong id="company">{}</strong></p>"#,
                escape(c)
            )
        })
        .unwrap_or_default();
    let limit = crate::providers::sandbox::age_limit(q.min_age.as_deref())
        .map(|m| format!(r#"<p id="min-age">만 {m}세 이상만 인증할 수 있습니다 · Only people aged {m} or more can verify here.</p>"#))
        .unwrap_or_default();
    let channel = match (q.channel_key.as_deref(), q.pg.as_deref()) {
        (None | Some(""), None | Some("")) => String::new(),
        (k, pg) => format!(
            r#"<p class="en">채널 · Channel: <code id="channel">{}</code></p>"#,
            escape(k.filter(|k| !k.is_empty()).or(pg).unwrap_or(""))
        ),
    };
    Html(page(
        "Iamport sandbox · 본인인증",
        &format!(
            r#"<h1>본인인증 (샌드박스)</h1><p class="en"><strong>Iamport sandbox certification</strong> — no real verification happens here.</p>{company}{limit}{channel}
<form method="post" action="certify">
<input type="hidden" name="imp_code" value="{imp_code}">
<input type="hidden" name="merchant_uid" value="{merchant_uid}">
{redirect}
{presets}
<p><label>이름 · Name<br><input name="name" value="홍길동" required></label></p>
<p><label>생년월일 · Birth (YYYYMMDD)<br><input name="birth" value="19900101" pattern="[0-9]{{8}}" required></label></p>
<p><label>성별 · Gender <select name="gender"><option>male</option><option>female</option></select></label></p>
<p><label>휴대폰 · Phone<br><input name="phone" value="01012345678" required></label></p>
<p><label>통신사 · Carrier <select name="carrier"><option>SKT</option><option>KT</option><option>LGT</option><option>SKT_MVNO</option><option>KT_MVNO</option><option>LGT_MVNO</option></select></label></p>
<p><label>외국인 · Foreigner <select name="foreigner"><option>false</option><option>true</option></select></label></p>
<p><label>결과 · Outcome (sandbox only) <select name="outcome"><option value="certified">certified</option><option value="uncertified">certified: false</option><option value="cancel">cancel</option></select></label></p>
<p><label>결과 전달 방식 · Redirect flag (sandbox only) <select name="redirect_flag"><option value="success">success</option><option value="imp_success">imp_success (v1 SDK, mobile)</option></select></label></p>
<button type="submit">인증하기 · Certify</button>
</form>"#,
            imp_code = escape(&q.imp_code),
            merchant_uid = escape(&q.merchant_uid),
            presets = crate::providers::sandbox::people_presets("name", "birth", "%Y%m%d", "phone"),
        ),
    ))
}

#[derive(Deserialize)]
struct CertifyForm {
    #[serde(default)]
    imp_code: String,
    #[serde(default)]
    merchant_uid: String,
    #[serde(default)]
    m_redirect_url: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    birth: String,
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    carrier: Option<String>,
    #[serde(default)]
    foreigner: Option<String>,
    /// Sandbox-only: `certified` (default), `uncertified` (the result says certified: false
    /// while the browser is told success=true, as a forged callback would) or `cancel`.
    #[serde(default)]
    outcome: Option<String>,
    /// Sandbox-only: pretend the certification happened this many seconds ago.
    #[serde(default)]
    certified_ago: Option<i64>,
    /// Sandbox-only: the name of the result flag on the redirect back, `success` (default)
    /// or `imp_success` (what the v1 SDK's mobile redirect carries).
    #[serde(default)]
    redirect_flag: Option<String>,
    #[serde(default)]
    channel_key: Option<String>,
    #[serde(default)]
    pg: Option<String>,
    /// The merchant page's `min_age`: the window refuses anyone younger (international age).
    #[serde(default)]
    min_age: Option<String>,
    /// Inside KG이니시스 통합인증 (`pg: inicis_unified`), the app the person chose: `kakao`
    /// gives no CI (as without a separate contract). That channel never gives a DI.
    #[serde(default)]
    app: Option<String>,
}

fn keyed(alg_len: usize, parts: &[&str]) -> String {
    let msg = parts.join("\u{1f}");
    if alg_len == 64 {
        let mut m =
            <SimpleHmac<sha2::Sha512> as Mac>::new_from_slice(PERSON_SEED).expect("any key length");
        m.update(msg.as_bytes());
        STANDARD.encode(m.finalize().into_bytes())
    } else {
        let mut m =
            <SimpleHmac<sha2::Sha384> as Mac>::new_from_slice(PERSON_SEED).expect("any key length");
        m.update(msg.as_bytes());
        STANDARD.encode(m.finalize().into_bytes())
    }
}

fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{q}")
}

async fn certify_submit(State(sim): State<Arc<Sim>>, Form(f): Form<CertifyForm>) -> Response {
    let birthday = chrono::NaiveDate::parse_from_str(&f.birth, "%Y%m%d");
    let (Ok(birthday), false, false, false) = (
        birthday,
        f.name.trim().is_empty(),
        f.phone.trim().is_empty(),
        f.merchant_uid.is_empty(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(page(
                "Iamport sandbox",
                "<h1>입력 오류 · Invalid input</h1><p>name, birth (YYYYMMDD), phone and merchant_uid are required.</p>",
            )),
        )
            .into_response();
    };
    let outcome = f.outcome.as_deref().unwrap_or("certified");
    let flag = match f.redirect_flag.as_deref() {
        Some("imp_success") => "imp_success",
        _ => "success",
    };
    let too_young = crate::providers::sandbox::under_age_limit(
        crate::providers::sandbox::age_limit(f.min_age.as_deref()),
        birthday,
    );
    if too_young {
        // As the real window: refused inside it, and no result exists.
        let pairs = [
            ("imp_uid", ""),
            ("merchant_uid", f.merchant_uid.as_str()),
            (flag, "false"),
            ("error_code", "F0000"),
            (
                "error_msg",
                "본인인증 제한 연령에 해당합니다 · under the age limit",
            ),
        ];
        return finish(f.m_redirect_url.as_deref(), &pairs);
    }
    if outcome == "cancel" {
        let pairs = [
            ("imp_uid", ""),
            ("merchant_uid", f.merchant_uid.as_str()),
            (flag, "false"),
            ("error_msg", "사용자가 본인인증을 취소하였습니다"),
        ];
        return finish(f.m_redirect_url.as_deref(), &pairs);
    }
    let imp_uid = format!(
        "imp_{:012}",
        rand::thread_rng().gen_range(0..1_000_000_000_000u64)
    );
    let name = f.name.trim();
    let phone: String = f.phone.chars().filter(|c| c.is_ascii_digit()).collect();
    let birth_s = birthday.format("%Y%m%d").to_string();
    let unique_key = crate::providers::sandbox::person_ci(name, birthday, &phone);
    let unique_in_site = keyed(48, &["di", &f.imp_code, name, &birth_s, &phone]);
    let certified_at = now() - f.certified_ago.unwrap_or(0);
    let pg_provider =
        f.pg.as_deref()
            .and_then(|p| p.split('.').next())
            .filter(|p| !p.is_empty())
            .unwrap_or("danal")
            .to_string();
    let unified = pg_provider == "inicis_unified";
    let unique_in_site = Some(unique_in_site).filter(|_| !unified);
    let unique_key = Some(unique_key).filter(|_| !(unified && f.app.as_deref() == Some("kakao")));
    let kst_midnight = birthday
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp() - 9 * 3600);
    let cert = json!({
        "imp_uid": imp_uid,
        "merchant_uid": f.merchant_uid,
        "pg_tid": format!("sandbox{}", rand::thread_rng().gen_range(0..u32::MAX)),
        // `pg` names a channel as `provider.mid` (`danal.im0001`).
        "pg_provider": pg_provider,
        "name": name,
        "gender": f.gender.as_deref().filter(|g| *g == "male" || *g == "female"),
        "birthday": birthday.format("%Y-%m-%d").to_string(),
        "birth": kst_midnight,
        "foreigner": f.foreigner.as_deref() == Some("true"),
        "foreigner_v2": f.foreigner.as_deref() == Some("true"),
        "phone": phone,
        // KG 통합인증 gives no carrier.
        "carrier": if unified { None } else { Some(f.carrier.as_deref().unwrap_or("SKT")) },
        "certified": outcome != "uncertified",
        "certified_at": certified_at,
        "unique_key": unique_key,
        "unique_in_site": unique_in_site,
        "origin": f.m_redirect_url.clone().unwrap_or_default(),
    });
    sim.certs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(imp_uid.clone(), cert);
    let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    sim.channels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            imp_uid.clone(),
            Channel {
                channel_key: nonempty(&f.channel_key),
                pg: nonempty(&f.pg),
            },
        );
    let pairs = [
        ("imp_uid", imp_uid.as_str()),
        ("merchant_uid", f.merchant_uid.as_str()),
        (flag, "true"),
    ];
    finish(f.m_redirect_url.as_deref(), &pairs)
}

/// Redirect mode: back to `m_redirect_url`. Popup mode: hand the result to the opener page.
fn finish(m_redirect_url: Option<&str>, pairs: &[(&str, &str)]) -> Response {
    if let Some(url) = m_redirect_url.filter(|u| !u.is_empty()) {
        return Redirect::to(&with_query(url, pairs)).into_response();
    }
    let mut data = serde_json::Map::new();
    data.insert("type".into(), json!("iamport-certification"));
    for (k, v) in pairs {
        // The popup's callback always says `success` (the redirect flag is a URL's name).
        match *k {
            "success" | "imp_success" => data.insert("success".into(), json!(*v == "true")),
            k => data.insert(k.into(), json!(v)),
        };
    }
    let data = crate::answers::script_json(&Value::Object(data));
    Html(page(
        "Iamport sandbox",
        &format!(
            r#"<h1>완료 · Done</h1><p>이 창은 곧 닫힙니다. · This window closes by itself.</p>
<script>(function(){{var d={data};if(window.opener){{window.opener.postMessage(d,'*');window.close();}}else{{document.body.insertAdjacentText('beforeend',JSON.stringify(d));}}}})();</script>"#
        ),
    ))
    .into_response()
}

const SDK: &str = r#"/* verigate sandbox stand-in for https://cdn.iamport.kr/v1/iamport.js (IMP.init, IMP.certification) */
(function () {
  var me = document.currentScript && document.currentScript.src;
  var base = me ? me.replace(/\/js\/iamport\.js(\?.*)?$/, '') : '';
  var origin = me ? new URL(me).origin : '*';
  function enc(v) { return encodeURIComponent(v == null ? '' : String(v)); }
  var IMP = {
    _code: null,
    init: function (code) { this._code = code; },
    certification: function (params, callback) {
      params = params || {};
      callback = callback || function () {};
      var url = base + '/certify?imp_code=' + enc(this._code) + '&merchant_uid=' + enc(params.merchant_uid);
      if (params.channelKey) { url += '&channel_key=' + enc(params.channelKey); }
      if (params.pg) { url += '&pg=' + enc(params.pg); }
      if (params.min_age) { url += '&min_age=' + enc(params.min_age); }
      if (params.company) { url += '&company=' + enc(params.company); }
      if (params.popup === false && params.m_redirect_url) {
        location.href = url + '&m_redirect_url=' + enc(params.m_redirect_url);
        return;
      }
      var w = window.open(url, 'imp_certification', 'width=480,height=760');
      if (!w) {
        if (params.m_redirect_url) { location.href = url + '&m_redirect_url=' + enc(params.m_redirect_url); return; }
        callback({ success: false, error_code: 'F0000', error_msg: 'popup blocked', merchant_uid: params.merchant_uid });
        return;
      }
      window.addEventListener('message', function onMessage(ev) {
        if (origin !== '*' && ev.origin !== origin) { return; }
        var d = ev.data;
        if (!d || d.type !== 'iamport-certification') { return; }
        window.removeEventListener('message', onMessage);
        callback({ success: !!d.success, imp_uid: d.imp_uid || null, merchant_uid: d.merchant_uid, error_code: d.success ? null : 'F0000', error_msg: d.error_msg || null });
      });
    }
  };
  window.IMP = IMP;
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
