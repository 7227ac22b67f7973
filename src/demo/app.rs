//! The demo merchant app: a legacy-style site that knows nothing of verification and simply
//! shows which `X-Verified-*` headers reached it.

use crate::answers::{escape, page};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::any;
use axum::Router;

pub fn router() -> Router {
    Router::new().fallback(any(handle))
}

fn received(headers: &HeaderMap) -> String {
    let mut rows = String::new();
    let mut names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("x-verified-"))
        .collect();
    names.sort();
    names.dedup();
    for n in names {
        for v in headers.get_all(n) {
            let v = v.to_str().unwrap_or("(binary)");
            let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            rows.push_str(&format!(
                "<dt><code>{}</code></dt><dd><code>{}</code></dd>",
                escape(n),
                escape(&decoded)
            ));
        }
    }
    if rows.is_empty() {
        return "<p><em>No X-Verified-* headers reached the app on this page (it is not gated).</em></p>".into();
    }
    // Name above value: a long value (the DI, the signed assertion) wraps within its own line
    // and never squeezes the names at a phone's width.
    format!(r#"<p>Headers the app received from verigate:</p><dl class="headers">{rows}</dl>"#)
}

const NAV: &str = r#"<p><a href="/">Home</a> · <a href="/signup">Sign up</a> · <a href="/kids/signup">Kids' signup</a> · <a href="/checkout">Checkout</a> · <a href="/whoami">Who am I</a></p>"#;

async fn handle(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let (status, title, body) = match (method.as_str(), path) {
        (_, "/") => (
            StatusCode::OK,
            "Demo shop",
            format!(
                r#"<h1>데모 상점 · Demo shop</h1><p>A legacy merchant app behind verigate. Sign-up and checkout need a verified adult (19+); children under 14 sign up with a parent's or guardian's consent; this page is open.</p>
<a class="button" href="/signup">회원가입 · Sign up</a><a class="button secondary" href="/kids/signup">어린이 회원가입 · Kids' signup</a><a class="button secondary" href="/checkout">결제 · Checkout</a><a class="button secondary" href="/whoami">Who am I?</a>
<form method="post" action="/.verigate/logout"><button class="secondary" type="submit">로그아웃 · Forget my verification</button></form>
{}"#,
                received(&headers)
            ),
        ),
        ("GET", "/signup") => (
            StatusCode::OK,
            "Sign up",
            format!(
                r#"{NAV}<h1>회원가입 · Sign up</h1><form method="post" action="/signup"><p><label>아이디 · User name <input name="user" value="demo"></label></p><button type="submit">가입 · Create account</button></form>{}"#,
                received(&headers)
            ),
        ),
        ("POST", "/signup") => (
            StatusCode::CREATED,
            "Welcome",
            format!(
                r#"{NAV}<h1>가입 완료 · Account created</h1><p>The app trusted these headers without any verification code of its own:</p>{}"#,
                received(&headers)
            ),
        ),
        ("GET", "/kids/signup") => (
            StatusCode::OK,
            "Kids' sign up",
            format!(
                r#"{NAV}<h1>어린이 회원가입 · Kids' signup</h1><p>만 14세 미만은 보호자 동의를 받은 뒤에 여기에 옵니다. 14세 이상은 바로 옵니다.</p><p class="en">Under 14, you get here once a parent or guardian has consented; from 14, straight away.</p><form method="post" action="/kids/signup"><p><label>아이디 · User name <input name="user" value="kid"></label></p><button type="submit">가입 · Create account</button></form>{}"#,
                received(&headers)
            ),
        ),
        ("POST", "/kids/signup") => (
            StatusCode::CREATED,
            "Welcome",
            format!(
                r#"{NAV}<h1>가입 완료 · Account created</h1><p data-kids-welcome>The app trusted these headers, the guardian's consent among them (<code>x-verified-guardian-consent</code>), without any code of its own:</p>{}"#,
                received(&headers)
            ),
        ),
        (_, p) if p.starts_with("/checkout") => (
            StatusCode::OK,
            "Checkout",
            format!(
                r#"{NAV}<h1>결제 · Checkout</h1><p>Only verified adults get here.</p>{}"#,
                received(&headers)
            ),
        ),
        (_, "/whoami") => (
            StatusCode::OK,
            "Who am I",
            format!("{NAV}<h1>Who am I</h1>{}", received(&headers)),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "Not found",
            format!("{NAV}<h1>Not found</h1>"),
        ),
    };
    (status, Html(page(title, &body))).into_response()
}
