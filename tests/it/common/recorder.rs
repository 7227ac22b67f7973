//! An app that keeps every request it receives whole (method, target, headers, body): what a
//! kept form post became when it reached the app. Its pages hold the forms a person sends
//! (`GET /form`) and its answers are those of a legacy app: a redirect after a signup, a
//! page after a plain form, JSON to a page's fetch.

use super::proxy::Route;
use super::spawn_router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request as it reached the app.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-case names; repeated headers joined with `, `.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl Recorder {
    /// Start the app; answers on `127.0.0.1:0`.
    pub async fn spawn() -> (Arc<Recorder>, SocketAddr) {
        let r = Arc::new(Recorder::default());
        let addr = spawn_router(Recorder::router(&r)).await;
        (r, addr)
    }

    /// Start the app on `addr` (an app coming back where it was).
    pub async fn spawn_at(addr: SocketAddr) -> Arc<Recorder> {
        let r = Arc::new(Recorder::default());
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let router = Recorder::router(&r);
        tokio::spawn(async move {
            let _ = axum::serve(l, router).await;
        });
        r
    }

    fn router(r: &Arc<Recorder>) -> Router {
        Router::new().fallback(any(answer)).with_state(r.clone())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The requests of `method` to `path` (query ignored).
    pub fn of(&self, method: &str, path: &str) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == method && s.target.split('?').next() == Some(path))
            .collect()
    }
}

/// The page with the forms a person fills in: urlencoded, multipart with a file, and a
/// script that sends JSON (and goes to verify when told to).
pub const FORM_PAGE: &str = r#"<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Forms</title></head><body>
<form id="signup" method="post" action="/signup?from=form">
  <input name="nickname" value=""><textarea name="about"></textarea>
  <button id="send-signup" type="submit">Sign up</button>
</form>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
  <input name="title" value=""><input id="file" name="file" type="file">
  <button id="send-upload" type="submit">Upload</button>
</form>
<button id="send-json" type="button">Send JSON</button>
<p id="json-status"></p>
<script>
document.getElementById('send-json').addEventListener('click', function () {
  fetch('/api/items', { method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'Accept': 'application/json' },
    body: JSON.stringify({ item: '사과', count: 3 }) })
    .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
    .then(function (sj) {
      if (sj[0] === 401 && sj[1].verify_url) { location.href = sj[1].verify_url; return; }
      document.getElementById('json-status').textContent = 'sent: ' + sj[0];
    });
});
</script></body></html>"#;

async fn answer(
    State(r): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut h: HashMap<String, String> = HashMap::new();
    for (k, v) in &headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        h.entry(k.as_str().to_string())
            .and_modify(|old| {
                old.push_str(", ");
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let seen = Seen {
        method: method.as_str().to_string(),
        target: uri.to_string(),
        headers: h,
        body: body.to_vec(),
    };
    r.seen.lock().unwrap().push(seen.clone());
    let verified = seen
        .header("x-verified-unique-in-site")
        .unwrap_or("-")
        .to_string();
    match (method.as_str(), uri.path()) {
        ("GET", "/form") => Html(FORM_PAGE).into_response(),
        // A legacy signup: post, then redirect (and a session of the app's own).
        ("POST", "/signup") => (
            StatusCode::SEE_OTHER,
            [
                ("location", "/welcome"),
                ("set-cookie", "app_session=s1; Path=/"),
            ],
        )
            .into_response(),
        ("POST", "/upload") => (
            StatusCode::CREATED,
            Html(format!(
                "<h1 id=\"uploaded\">Uploaded {} bytes</h1><p id=\"who\">{verified}</p>",
                seen.body.len()
            )),
        )
            .into_response(),
        ("POST", _) => (
            StatusCode::CREATED,
            axum::Json(json!({ "created": true, "bytes": seen.body.len(), "verified": verified })),
        )
            .into_response(),
        ("GET", "/welcome") => Html(format!(
            "<h1 id=\"welcome\">Welcome</h1><p id=\"who\">{verified}</p>"
        ))
        .into_response(),
        _ => Html(format!("<h1 id=\"page\">{} {}</h1>", method, uri.path())).into_response(),
    }
}

/// The gated routes the recorder's forms post to, each on Iamport alone: a one-account adult
/// signup, an upload and a JSON API. The kept-request tests (`tests/kept.rs`,
/// `tests/browser.rs`) add their own routes after these.
pub fn kept_routes() -> Vec<Route> {
    vec![
        Route::path("/signup")
            .methods(["GET", "POST"])
            .providers(["iamport"])
            .min_age(19)
            .one_account(),
        Route::path("/upload").providers(["iamport"]),
        Route::prefix("/api").providers(["iamport"]),
    ]
}
