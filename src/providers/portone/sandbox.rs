//! PortOne V2 simulator: `GET /identity-verifications/{id}` (`Authorization: PortOne <secret>`,
//! the documented status-selected objects and `{type, message}` errors), a person window, and a
//! stand-in for the browser SDK's `PortOne.requestIdentityVerification`.

use crate::answers::{escape, page};
use crate::providers::sandbox::SandboxOptions;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Mac, SimpleHmac};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const API_SECRET: &str = "sandbox_secret";

#[derive(Default)]
pub struct Sim {
    records: Mutex<HashMap<String, (String, Value)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sim {
    pub fn new(_opts: &SandboxOptions) -> Arc<Self> {
        Arc::new(Sim::default())
    }
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/identity-verifications/{id}", get(get_verification))
        .route("/verify", get(window).post(submit))
        .route("/js/browser-sdk.js", get(sdk))
        .with_state(sim)
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({ "type": kind, "message": message }))).into_response()
}

async fn get_verification(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("PortOne {API_SECRET}")) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "invalid API secret",
        );
    }
    match lock(&sim.records).get(&id) {
        Some((store, v)) if q.get("storeId").is_none_or(|s| s == store) => {
            Json(v.clone()).into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "IDENTITY_VERIFICATION_NOT_FOUND",
            "identity verification not found",
        ),
    }
}

#[derive(Deserialize)]
struct WindowQuery {
    #[serde(default, rename = "storeId")]
    store_id: String,
    #[serde(default, rename = "identityVerificationId")]
    id: String,
    #[serde(default, rename = "redirectUrl")]
    redirect_url: String,
    /// `bypass.danal.AGELIMIT` and `CPTITLE` of the merchant's request.
    #[serde(default, rename = "AGELIMIT")]
    age_limit: Option<String>,
    #[serde(default, rename = "CPTITLE")]
    cp_title: Option<String>,
}

async fn window(Query(q): Query<WindowQuery>) -> Html<String> {
    let title = q
        .cp_title
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            format!(
                r#"<p>서비스 · Service: <strong id="company">{}</strong></p>"#,
                escape(c)
            )
        })
        .unwrap_or_default();
    let limit = crate::providers::sandbox::age_limit(q.age_limit.as_deref());
    let limit_note = limit
        .map(|m| format!(r#"<p id="min-age">만 {m}세 이상만 인증할 수 있습니다 · Only people aged {m} or more can verify here.</p><input type="hidden" name="AGELIMIT" value="{m}">"#))
        .unwrap_or_default();
    Html(page(
        "PortOne sandbox",
        &format!(
            r#"<h1>본인인증 (PortOne 샌드박스)</h1><p class="en">PortOne V2 sandbox: no real verification happens here.</p>{title}
<form method="post" action="/portone/verify">{limit_note}
<input type="hidden" name="storeId" value="{store}"><input type="hidden" name="identityVerificationId" value="{id}"><input type="hidden" name="redirectUrl" value="{redirect}">
{presets}
<p><label>이름 · Name <input name="name" value="홍길동"></label></p>
<p><label>생년월일 · Birth date <input name="birthDate" value="1990-01-01"></label></p>
<p><label>휴대폰 · Phone <input name="phoneNumber" value="01012345678"></label></p>
<p><label>성별 · Gender <select name="gender"><option>MALE</option><option>FEMALE</option></select></label></p>
<p><label>결과 · Outcome <select name="outcome"><option value="verified">verified</option><option value="failed">failed</option></select></label></p>
<button type="submit">인증하기 · Verify</button></form>"#,
            store = escape(&q.store_id),
            id = escape(&q.id),
            redirect = escape(&q.redirect_url),
            presets = crate::providers::sandbox::people_presets(
                "name",
                "birthDate",
                "%Y-%m-%d",
                "phoneNumber"
            ),
        ),
    ))
}

#[derive(Deserialize)]
struct SubmitForm {
    #[serde(rename = "storeId")]
    store_id: String,
    #[serde(rename = "identityVerificationId")]
    id: String,
    #[serde(rename = "redirectUrl")]
    redirect_url: String,
    name: String,
    #[serde(rename = "birthDate")]
    birth_date: String,
    #[serde(rename = "phoneNumber")]
    phone_number: String,
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    outcome: Option<String>,
    /// Sandbox-only: pretend the verification happened this many seconds ago.
    #[serde(default)]
    verified_ago: Option<i64>,
    /// The request's `bypass.danal.AGELIMIT`: the window refuses anyone younger.
    #[serde(default, rename = "AGELIMIT")]
    age_limit: Option<String>,
}

fn keyed(parts: &[&str], len: usize) -> String {
    let mut m = <SimpleHmac<sha2::Sha512> as Mac>::new_from_slice(b"verigate-sandbox-portone")
        .expect("any key length");
    m.update(parts.join("\u{1f}").as_bytes());
    STANDARD.encode(&m.finalize().into_bytes()[..len])
}

async fn submit(State(sim): State<Arc<Sim>>, Form(f): Form<SubmitForm>) -> Response {
    if f.id.is_empty() || f.redirect_url.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "identityVerificationId and redirectUrl are required",
        )
            .into_response();
    }
    let now = chrono::Utc::now();
    let at = (now - chrono::Duration::seconds(f.verified_ago.unwrap_or(0))).to_rfc3339();
    let too_young =
        chrono::NaiveDate::parse_from_str(&f.birth_date, "%Y-%m-%d").is_ok_and(|birth| {
            crate::providers::sandbox::under_age_limit(
                crate::providers::sandbox::age_limit(f.age_limit.as_deref()),
                birth,
            )
        });
    if too_young {
        // As the real window: refused inside it, and no result exists.
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("transactionType", "IDENTITY_VERIFICATION"),
                ("identityVerificationId", f.id.as_str()),
                ("code", "FAILURE_TYPE_PG"),
                (
                    "message",
                    "본인인증 제한 연령에 해당합니다 · under the age limit",
                ),
            ])
            .finish();
        let sep = if f.redirect_url.contains('?') {
            '&'
        } else {
            '?'
        };
        return Redirect::to(&format!("{}{sep}{q}", f.redirect_url)).into_response();
    }
    let failed = f.outcome.as_deref() == Some("failed");
    let requested = json!({ "name": f.name });
    let record = if failed {
        json!({ "status": "FAILED", "id": f.id, "requestedCustomer": requested, "requestedAt": at,
                "updatedAt": at, "statusChangedAt": at, "version": "V2",
                "failure": { "reason": "사용자가 인증을 취소했습니다", "pgCode": "CANCEL" } })
    } else {
        json!({ "status": "VERIFIED", "id": f.id, "requestedCustomer": requested, "requestedAt": at,
                "updatedAt": at, "statusChangedAt": at, "version": "V2", "verifiedAt": at,
                "pgTxId": format!("sandbox-{}", f.id), "pgRawResponse": "{}",
                "channel": { "type": "LIVE", "id": "sandbox-channel", "key": "channel-key-sandbox", "name": "다날 본인인증", "pgProvider": "DANAL", "pgMerchantId": "sandbox" },
                "verifiedCustomer": {
                    "name": f.name, "phoneNumber": f.phone_number, "birthDate": f.birth_date,
                    "gender": f.gender.as_deref().unwrap_or("MALE"), "isForeigner": false, "operator": "SKT",
                    "ci": chrono::NaiveDate::parse_from_str(&f.birth_date, "%Y-%m-%d").ok().map(|b| crate::providers::sandbox::person_ci(&f.name, b, &f.phone_number)),
                    "di": keyed(&["di", &f.store_id, &f.name, &f.birth_date, &f.phone_number], 48),
                } })
    };
    lock(&sim.records).insert(f.id.clone(), (f.store_id.clone(), record));
    let mut pairs: Vec<(&str, String)> = vec![
        ("transactionType", "IDENTITY_VERIFICATION".into()),
        ("identityVerificationId", f.id.clone()),
        ("identityVerificationTxId", format!("sandbox-tx-{}", f.id)),
    ];
    if failed {
        pairs.push(("code", "FAILURE_TYPE_PG".into()));
        pairs.push(("message", "verification failed".into()));
    }
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let sep = if f.redirect_url.contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!("{}{sep}{q}", f.redirect_url)).into_response()
}

const SDK: &str = r#"/* verigate sandbox stand-in for https://cdn.portone.io/v2/browser-sdk.js (redirection only) */
(function () {
  var me = document.currentScript && document.currentScript.src;
  var base = me ? me.replace(/\/js\/browser-sdk\.js(\?.*)?$/, '') : '';
  function enc(v) { return encodeURIComponent(v == null ? '' : String(v)); }
  window.PortOne = {
    requestIdentityVerification: function (p) {
      p = p || {};
      var danal = (p.bypass && p.bypass.danal) || {};
      location.href = base + '/verify?storeId=' + enc(p.storeId) + '&identityVerificationId=' +
        enc(p.identityVerificationId) + '&redirectUrl=' + enc(p.redirectUrl) +
        (danal.AGELIMIT != null ? '&AGELIMIT=' + enc(danal.AGELIMIT) : '') +
        (danal.CPTITLE != null ? '&CPTITLE=' + enc(danal.CPTITLE) : '');
      return new Promise(function () {});
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
