//! Answers verigate gives itself: readable bilingual HTML for browsers, JSON with a stable
//! `error` code for API clients, redirects. Written straight to the downstream session.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// The id of the request whose extensions hold it (`gate::forwarded` notes it there), for
/// verigate's own answers: their `X-Request-Id` and pages. None when `clients.request_id`
/// made none.
#[derive(Debug, Clone)]
pub struct RequestId(pub http::HeaderValue);

/// Does this request come from a browser navigation (GET/HEAD accepting HTML)?
pub fn wants_html(session: &Session) -> bool {
    browser_page(session.req_header())
}

/// Whether a request is a browser's navigation or form submission, whatever its method: it
/// accepts HTML, or says `Sec-Fetch-Mode: navigate`. Such a request is answered with a page;
/// anything else (an API client, a page's own fetch) with JSON.
pub fn browser_page(req: &pingora::http::RequestHeader) -> bool {
    let header = |n: http::header::HeaderName| req.headers.get(n).and_then(|v| v.to_str().ok());
    header(http::header::ACCEPT).is_some_and(|a| a.contains("text/html"))
        || req
            .headers
            .get("sec-fetch-mode")
            .is_some_and(|m| m.as_bytes().eq_ignore_ascii_case(b"navigate"))
}

/// A navigation that can simply be sent elsewhere: a browser page fetched with GET or HEAD.
pub fn navigation(session: &Session) -> bool {
    let req = session.req_header();
    (req.method == http::Method::GET || req.method == http::Method::HEAD) && wants_html(session)
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: no `<`, `>` or `&` can end the script.
pub fn script_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// verigate's icon (a shield with a check), inline so a page needs no second request and
/// the browser asks the app for no `/favicon.ico`.
const FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Cpath d='M16 2 4 7v8c0 7.5 5.1 13.4 12 15 6.9-1.6 12-7.5 12-15V7z' fill='%232a5bd7'/%3E%3Cpath d='m10 16 4.2 4.2L22.5 12' fill='none' stroke='%23fff' stroke-width='3' stroke-linecap='round' stroke-linejoin='round'/%3E%3C/svg%3E";

/// The look of every page verigate (and its sandbox and demo) shows: phone first. Korean
/// breaks between words only (`keep-all`), long codes anywhere; the card keeps a margin at
/// any width; one primary button, outlined secondary ones, a plain link back. One typeface
/// for Korean and Latin alike: the system's Korean face comes before any generic one.
const STYLE: &str = r#"*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;padding:1rem;background:#f3f5f9;color:#1d2330;font-family:-apple-system,BlinkMacSystemFont,"Apple SD Gothic Neo","Malgun Gothic","Noto Sans KR","Noto Sans CJK KR",NanumGothic,"Nanum Gothic",system-ui,sans-serif;font-size:1rem;line-height:1.6;word-break:keep-all;overflow-wrap:break-word}
main{max-width:32rem;margin:6vh auto;background:#fff;border-radius:14px;padding:1.75rem;box-shadow:0 2px 14px rgba(20,30,60,.08)}
@media (max-width:30rem){body{padding:.75rem}main{margin:.25rem auto;padding:1.25rem 1.1rem}}
h1{font-size:1.35rem;line-height:1.35;margin:0 0 .25rem}
h2{font-size:1.05rem;line-height:1.4;margin:1.5rem 0 .25rem;padding-top:1rem;border-top:1px solid #e6e9f0}
p{margin:.6rem 0}.en{color:#5b6475}h1+.en{margin-top:0}
a{color:#2a5bd7}
code,.code,kbd,pre{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,D2Coding,NanumGothicCoding,"DejaVu Sans Mono",monospace}
.button,button{display:block;width:100%;min-height:3rem;margin:.75rem 0;padding:.8rem 1rem;border:2px solid #2a5bd7;border-radius:10px;background:#2a5bd7;color:#fff;font:inherit;font-weight:600;line-height:1.35;text-align:center;text-decoration:none;cursor:pointer}
.button.secondary,button.secondary{background:#fff;color:#2a5bd7}
.button:focus-visible,button:focus-visible,.choice:focus-visible,a.back:focus-visible{outline:3px solid #9db7f5;outline-offset:2px}
form{margin:0}
a.back{display:inline-block;margin:.25rem 0;padding:.5rem 0;color:#5b6475;text-decoration:none}
a.back:hover{text-decoration:underline}
.choice{display:flex;gap:.85rem;align-items:center;margin:.75rem 0;padding:.9rem 1rem;border:1.5px solid #d5dbe7;border-radius:12px;background:#fff;color:#1d2330;text-decoration:none;line-height:1.35}
.choice:hover{border-color:#2a5bd7;background:#f6f8fe}
.choice strong,.choice span span{display:block}.choice .en{font-size:.9rem}.choice .via{margin-top:.15rem;color:#8a93a5;font-size:.8rem}
button .via{display:block;font-size:.85rem;font-weight:400;opacity:.85}
.icon{flex:none;width:2.25rem;height:2.25rem;padding:.35rem;border-radius:9px;background:#eaf0fd;fill:none;stroke:#2a5bd7;stroke-width:1.7;stroke-linecap:round;stroke-linejoin:round}
.code,.rid{color:#8a93a5;font-size:.8rem;overflow-wrap:anywhere}
label{display:block}
input,select{font:inherit;max-width:100%;padding:.5rem .6rem;border:1px solid #c5ccda;border-radius:8px;background:#fff;color:inherit}
input:not([type=checkbox]):not([type=radio]){width:100%}
dl.headers{margin:.5rem 0;font-size:.85rem}dl.headers dt{margin-top:.6rem;color:#5b6475}dl.headers dd{margin:0;overflow-wrap:anywhere}
.site{display:flex;gap:.6rem;align-items:center;margin:0 0 1rem;padding:0 0 .75rem;border-bottom:1px solid #e6e9f0;font-weight:600;line-height:1.3}
.site img{display:block;flex:none;max-width:45%;max-height:2.5rem;width:auto;height:auto}
.site span{min-width:0;overflow-wrap:anywhere}
.why{padding:.6rem .8rem;border-left:3px solid #2a5bd7;background:#f6f8fe}
.qr{margin:.75rem 0;text-align:center}.qr svg{display:inline-block;width:15rem;max-width:100%;height:auto;vertical-align:top}
.rule{font-weight:600}
.support{margin:1rem 0 0;padding:.75rem 0 0;border-top:1px solid #e6e9f0;color:#5b6475;font-size:.875rem;overflow-wrap:anywhere}
.support p{margin:.2rem 0}.support a{margin-right:.75rem}"#;

/// A full HTML page in verigate's look. `body` is trusted HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="ko"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="{FAVICON}">
<style>
{STYLE}
</style></head><body><main>
{SITE_MARK}{body}{SUPPORT_MARK}
</main></body></html>"#,
        title = escape(title),
    )
}

/// Where a page shows the shop's name and logo, and how to reach it (filled in when the reply
/// is sent, from [`Frame`]).
const SITE_MARK: &str = "<!--verigate-site-->";
const SUPPORT_MARK: &str = "<!--verigate-support-->";

/// What every page verigate shows carries of the shop (`site`), rendered once when the
/// config is read, and the `Strict-Transport-Security` of a TLS listener (`tls.hsts`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Trusted HTML at the top of the card: the logo and the name (empty: no `site.name`).
    pub header: String,
    /// Trusted HTML at the foot of the card: how to reach the shop (empty: no `site.support`).
    pub footer: String,
    /// `Strict-Transport-Security` for answers over TLS.
    pub hsts: Option<http::HeaderValue>,
}

/// No frame: a page without the shop's name (before any config was read).
pub static PLAIN: Frame = Frame {
    header: String::new(),
    footer: String::new(),
    hsts: None,
};

/// `site.support`, validated: at least one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Support {
    pub text: Option<String>,
    /// `https://` (checked).
    pub url: Option<String>,
    /// Digits, spaces, `+`, `-`, `(`, `)` (checked).
    pub phone: Option<String>,
    /// `local@domain` (checked).
    pub email: Option<String>,
}

impl Frame {
    /// The header and footer for `site` (every value escaped; the URLs were checked to be
    /// `https://` when the config was read). The logo is an `<img>`: an image never runs a
    /// script, not even an SVG's, and it is fetched without a `Referer` (the page's address
    /// carries where the person is going).
    pub fn new(name: Option<&str>, logo_url: Option<&str>, support: Option<&Support>) -> Frame {
        let header = match name {
            None => String::new(),
            Some(name) => {
                let logo = logo_url
                    .map(|u| {
                        format!(
                            r#"<img src="{}" alt="{}" referrerpolicy="no-referrer">"#,
                            escape(u),
                            escape(name)
                        )
                    })
                    .unwrap_or_default();
                // With a logo the name is its alt text, and is not said twice to a screen reader.
                let hidden = if logo.is_empty() {
                    ""
                } else {
                    r#" aria-hidden="true""#
                };
                format!(
                    r#"<header class="site" data-site>{logo}<span{hidden}>{}</span></header>"#,
                    escape(name)
                )
            }
        };
        let footer = match support {
            None => String::new(),
            Some(s) => {
                let mut ways = String::new();
                if let Some(t) = &s.text {
                    ways.push_str(&format!("<p>{}</p>", escape(t)));
                }
                let mut links = Vec::new();
                if let Some(p) = &s.phone {
                    let dial: String = p
                        .chars()
                        .filter(|c| c.is_ascii_digit() || *c == '+')
                        .collect();
                    links.push(format!(
                        r#"<a data-support="phone" href="tel:{}">☎ {}</a>"#,
                        escape(&dial),
                        escape(p)
                    ));
                }
                if let Some(e) = &s.email {
                    links.push(format!(
                        r#"<a data-support="email" href="mailto:{e}">{e}</a>"#,
                        e = escape(e)
                    ));
                }
                if let Some(u) = &s.url {
                    links.push(format!(
                        r#"<a data-support="url" href="{}" rel="noopener noreferrer">고객센터 · Help</a>"#,
                        escape(u)
                    ));
                }
                if !links.is_empty() {
                    ways.push_str(&format!("<p>{}</p>", links.join(" ")));
                }
                format!(
                    r#"<footer class="support" data-support><p>문의 · Contact{}</p>{ways}</footer>"#,
                    name.map(|n| format!(": {}", escape(n))).unwrap_or_default()
                )
            }
        };
        Frame {
            header,
            footer,
            hsts: None,
        }
    }
}

/// Why a person is asked to verify again: one line on the page that asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Their verification is older than the route's `max_session_age` (that long).
    TooOld(std::time::Duration),
    /// They verified with a provider the route does not accept.
    OtherProvider,
}

impl Why {
    /// The code a verify address carries (`why=`): the page reads the details from the route.
    pub fn code(self) -> &'static str {
        match self {
            Why::TooOld(_) => "session_too_old",
            Why::OtherProvider => "provider_not_accepted",
        }
    }

    /// The line, in Korean and English (trusted HTML).
    pub fn html(self) -> String {
        let (ko, en) = match self {
            Why::TooOld(max) => {
                let (ko, en) = span_text(max);
                (
                    format!("이 페이지는 {ko} 이내에 한 본인인증만 받습니다. 인증한 지 그보다 오래되어 다시 인증이 필요합니다."),
                    format!("This page accepts only a verification made within the last {en}; yours is older, so please verify again."),
                )
            }
            Why::OtherProvider => (
                "이 페이지는 이전에 사용하신 인증 수단을 받지 않습니다. 이 페이지가 받는 수단으로 다시 인증해 주세요.".to_string(),
                "This page does not accept the method you verified with before: please verify again with one it accepts.".to_string(),
            ),
        };
        format!(
            r#"<p class="why" data-why="{}">{} <span class="en">{}</span></p>"#,
            self.code(),
            escape(&ko),
            escape(&en)
        )
    }
}

/// A span of time as a person reads it, Korean and English: the largest whole unit.
pub fn span_text(d: std::time::Duration) -> (String, String) {
    let s = d.as_secs();
    let (n, ko, en) = if s >= 86_400 && s.is_multiple_of(86_400) {
        (s / 86_400, "일", "day")
    } else if s >= 3600 && s.is_multiple_of(3600) {
        (s / 3600, "시간", "hour")
    } else if s >= 60 && s.is_multiple_of(60) {
        (s / 60, "분", "minute")
    } else {
        (s, "초", "second")
    };
    let plural = if n == 1 { "" } else { "s" };
    (format!("{n}{ko}"), format!("{n} {en}{plural}"))
}

/// The age a route requires and how it counts, as the underage page says it.
fn age_rule_html(min: u32, rule: crate::identity::AgeRule) -> String {
    use crate::identity::AgeRule;
    let (ko, en) = match rule {
        AgeRule::YouthAct => (
            format!("만 {min}세 이상 (청소년보호법 기준: {min}세가 되는 해의 1월 1일부터)"),
            format!("Age {min} or over (Youth Protection Act rule: from 1 January of the year you turn {min})"),
        ),
        AgeRule::Birthday => (
            format!("만 {min}세 이상 (생일 기준: 만 {min}세 생일부터)"),
            format!("Age {min} or over (birthday rule: from the birthday on which you turn {min})"),
        ),
    };
    format!(
        r#"<p class="rule" data-rule="{}" data-min-age="{min}">{}</p><p class="en rule">{}</p>"#,
        rule.as_str(),
        escape(&ko),
        escape(&en)
    )
}

/// A refusal or failure, in both forms.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: u16,
    /// Stable machine-readable code (`verification_required`, `underage`, ...).
    pub code: &'static str,
    /// Which refusal: its page texts.
    refusal: Refusal,
    /// Where a person can go next (a retry link), also given as `verify_url` in JSON.
    pub next: Option<String>,
    /// Where the "verify as someone else" button posts: the logout that ends this session and
    /// goes on to a fresh verification back to the same page (for refusals of a person's
    /// session: under age, already signed up, ...).
    pub switch: Option<String>,
    /// Until when the refusal holds (UNIX seconds; `rejoin_too_soon`): on the page as a
    /// date, in JSON as `until` (RFC 3339) and `until_unix`.
    pub until: Option<i64>,
    /// The age the route requires and how it counts (`underage`): named on the page and in
    /// JSON (`min_age`, `age_rule`).
    pub age: Option<(u32, crate::identity::AgeRule)>,
    /// The route's own next step (`require.on_duplicate`: url, label): the primary button,
    /// before "verify again" and "verify as someone else".
    pub primary: Option<Box<(String, String)>>,
    /// Why the person is asked to verify again (one line on the page; `reason` in JSON).
    pub why: Option<Box<Why>>,
    /// A sentence more about this case, Korean and English (on the page only).
    pub note: Option<&'static (&'static str, &'static str)>,
}

/// The note of a `503 store_unavailable` where a kept form post was being taken: the store's
/// answer never came, so it was not sent, and it may or may not still be kept (the store may
/// have taken it before its answer was lost). Never "kept for a reload": at most once.
pub const KEPT_TAKE_UNANSWERED: (&str, &str) = (
    "보내신 양식은 전송되지 않았습니다. 다시 시도했을 때 아직 보관되어 있으면 전송되지만, 이미 사라졌을 수 있습니다. 그때는 양식을 다시 보내 주세요.",
    "Your form was not sent. Trying again sends it if it is still kept, but it may be gone: then send the form again.",
);

impl Problem {
    pub fn new(r: Refusal) -> Self {
        Problem {
            status: r.status(),
            code: r.code(),
            refusal: r,
            next: None,
            switch: None,
            until: None,
            age: None,
            note: None,
            primary: None,
            why: None,
        }
    }

    pub fn with_age(mut self, min: u32, rule: crate::identity::AgeRule) -> Self {
        self.age = Some((min, rule));
        self
    }

    pub fn with_primary(mut self, url: &str, label: &str) -> Self {
        self.primary = Some(Box::new((url.to_string(), label.to_string())));
        self
    }

    pub fn with_why(mut self, why: Option<Why>) -> Self {
        self.why = why.map(Box::new);
        self
    }

    pub fn with_note(mut self, note: &'static (&'static str, &'static str)) -> Self {
        self.note = Some(note);
        self
    }

    pub fn with_until(mut self, until: i64) -> Self {
        self.until = Some(until);
        self
    }

    /// `until` as an RFC 3339 UTC time, whole seconds.
    fn until_text(&self) -> Option<String> {
        let t = chrono::DateTime::from_timestamp(self.until?, 0)?;
        Some(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }

    pub fn with_next(mut self, next: String) -> Self {
        self.next = Some(next);
        self
    }

    pub fn with_switch(mut self, logout_action: String) -> Self {
        self.switch = Some(logout_action);
        self
    }

    /// The page: what happened, in Korean and English, then the next steps: verify again,
    /// verify as someone else, and always a way back (filled in when sent, see [`Reply::send`]).
    /// The first step is the primary button.
    pub fn html(&self) -> String {
        let mut steps = Vec::new();
        if let Some((url, label)) = self.primary.as_deref() {
            steps.push(format!(
                r#"<a class="button{{class}}" data-next="primary" href="{}">{}</a>"#,
                escape(url),
                escape(label)
            ));
        }
        if let Some(n) = &self.next {
            steps.push(format!(
                r#"<a class="button{{class}}" data-next="verify" href="{}">다시 인증하기 · Verify again</a>"#,
                escape(n)
            ));
        }
        if let Some(action) = &self.switch {
            steps.push(format!(
                r#"<form method="post" action="{}"><button class="button{{class}}" data-next="switch" type="submit">다른 사람으로 인증하기 · Verify as someone else</button></form>"#,
                escape(action)
            ));
        }
        let steps: String = steps
            .iter()
            .enumerate()
            .map(|(i, s)| s.replace("{class}", if i == 0 { "" } else { " secondary" }))
            .collect();
        let (title_ko, title_en, detail_ko, detail_en) = self.refusal.texts();
        let rule = self
            .age
            .map(|(min, rule)| age_rule_html(min, rule))
            .unwrap_or_default();
        let why = self
            .why
            .as_deref()
            .copied()
            .map(Why::html)
            .unwrap_or_default();
        let until = match self.until_text() {
            Some(t) => format!(
                r#"<p data-until="{t}">다시 가입할 수 있는 때 · You may sign up again from: <strong>{t}</strong></p>"#,
                t = escape(&t)
            ),
            None => String::new(),
        };
        let note = match self.note {
            Some((ko, en)) => format!(
                r#"<p data-note>{}</p><p class="en" data-note>{}</p>"#,
                escape(ko),
                escape(en)
            ),
            None => String::new(),
        };
        page(
            title_en,
            &format!(
                r#"<h1>{}</h1><p class="en"><strong>{}</strong></p>{why}<p>{}</p><p class="en">{}</p>{rule}{note}{until}{steps}{BACK_MARK}<p class="code">{} · {}</p>{REQUEST_ID_MARK}"#,
                escape(title_ko),
                escape(title_en),
                escape(detail_ko),
                escape(detail_en),
                self.status,
                self.code
            ),
        )
    }

    pub fn json(&self) -> String {
        let mut v = serde_json::json!({ "error": self.code, "message": self.refusal.texts().3 });
        if let Some(n) = &self.next {
            v["verify_url"] = serde_json::Value::String(n.clone());
        }
        if let Some((min, rule)) = self.age {
            v["min_age"] = serde_json::json!(min);
            v["age_rule"] = serde_json::json!(rule.as_str());
        }
        if let Some(why) = self.why.as_deref().copied() {
            v["reason"] = serde_json::json!(why.code());
        }
        if let (Some(text), Some(unix)) = (self.until_text(), self.until) {
            v["until"] = serde_json::Value::String(text);
            v["until_unix"] = serde_json::json!(unix);
        }
        v.to_string()
    }
}

/// Where a refusal page shows the request's id (filled in when the reply is sent, from the
/// request's `X-Request-Id`, which the gate decides first thing).
const REQUEST_ID_MARK: &str = "<!--verigate-request-id-->";

/// Where a page offers the way back (filled in when the reply is sent: the page this browser
/// came from on this site, else the site's home).
pub const BACK_MARK: &str = "<!--verigate-back-->";

/// The way back from a page answering `req`: the path of its `Referer` when that is a page of
/// this same site (scheme `http(s)`, the request's own host) and not the address this very GET
/// asked for (a form posted to its own address goes back to the form), else the site's home
/// page. Never another site: the link stays on this origin.
fn back_link(req: &pingora::http::RequestHeader) -> String {
    let text = |n: http::header::HeaderName| req.headers.get(n).and_then(|v| v.to_str().ok());
    let host = text(http::header::HOST).or_else(|| req.uri.authority().map(|a| a.as_str()));
    let here = match req.method {
        http::Method::GET | http::Method::HEAD => req.uri.path_and_query().map(|p| p.as_str()),
        _ => None,
    };
    let from = text(http::header::REFERER)
        .and_then(|r| r.parse::<http::Uri>().ok())
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
        .filter(|u| {
            matches!((u.authority(), host), (Some(a), Some(h)) if a.as_str().eq_ignore_ascii_case(h))
        })
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
        .filter(|p| {
            p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 2048
                && !p.contains('\\')
                && !p.chars().any(|c| c.is_control())
                && Some(p.as_str()) != here
        });
    match from {
        Some(p) => format!(
            r#"<a class="back" data-next="back" href="{}">← 이전 페이지로 · Go back</a>"#,
            escape(&p)
        ),
        None => {
            r#"<a class="back" data-next="back" href="/">← 처음 화면으로 · Go to the home page</a>"#
                .to_string()
        }
    }
}

/// Every refusal verigate answers itself: one status, one stable `error` code and one page
/// text each, so a code cannot have two statuses or a missing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    VerificationRequired,
    Underage,
    AgeUnknown,
    KoreanNational,
    CiUnavailable,
    DuplicateAccount,
    RejoinTooSoon,
    BadPath,
    BadRequestTarget,
    BadMethod,
    MethodNotAllowed,
    NoRoute,
    BadReturnTo,
    FlowMissing,
    FlowMismatch,
    NotCertified,
    StaleResult,
    ReplayedResult,
    ResultNotFound,
    ProviderUnavailable,
    ProviderBadResponse,
    ProviderUnauthorized,
    ProviderRejected,
    UnknownMember,
    PasscodeMismatch,
    PolicyMismatch,
    ProviderNotAccepted,
    ProviderNotConfigured,
    StoreUnavailable,
    BadRequest,
    NotLoggedIn,
    CrossSite,
    UpstreamUnavailable,
    UpstreamTimeout,
    FormNotKept,
    UnknownHost,
    RateLimited,
    GuardianConsentRequired,
    GuardianUnderage,
    GuardianIsChild,
    GuardianLinkExpired,
    GuardianLinkUsed,
    GuardianVerificationFailed,
}

impl Refusal {
    /// Every refusal, for tests and documentation.
    pub const ALL: [Refusal; 43] = [
        Refusal::VerificationRequired,
        Refusal::Underage,
        Refusal::AgeUnknown,
        Refusal::KoreanNational,
        Refusal::CiUnavailable,
        Refusal::DuplicateAccount,
        Refusal::RejoinTooSoon,
        Refusal::BadPath,
        Refusal::BadRequestTarget,
        Refusal::BadMethod,
        Refusal::MethodNotAllowed,
        Refusal::NoRoute,
        Refusal::BadReturnTo,
        Refusal::FlowMissing,
        Refusal::FlowMismatch,
        Refusal::NotCertified,
        Refusal::StaleResult,
        Refusal::ReplayedResult,
        Refusal::ResultNotFound,
        Refusal::ProviderUnavailable,
        Refusal::ProviderBadResponse,
        Refusal::ProviderUnauthorized,
        Refusal::ProviderRejected,
        Refusal::UnknownMember,
        Refusal::PasscodeMismatch,
        Refusal::PolicyMismatch,
        Refusal::ProviderNotAccepted,
        Refusal::ProviderNotConfigured,
        Refusal::StoreUnavailable,
        Refusal::BadRequest,
        Refusal::NotLoggedIn,
        Refusal::CrossSite,
        Refusal::UpstreamUnavailable,
        Refusal::UpstreamTimeout,
        Refusal::FormNotKept,
        Refusal::UnknownHost,
        Refusal::RateLimited,
        Refusal::GuardianConsentRequired,
        Refusal::GuardianUnderage,
        Refusal::GuardianIsChild,
        Refusal::GuardianLinkExpired,
        Refusal::GuardianLinkUsed,
        Refusal::GuardianVerificationFailed,
    ];

    pub fn status(self) -> u16 {
        match self {
            Refusal::VerificationRequired => 401,
            Refusal::Underage => 403,
            Refusal::AgeUnknown => 403,
            Refusal::KoreanNational => 403,
            Refusal::CiUnavailable => 403,
            Refusal::DuplicateAccount => 409,
            Refusal::RejoinTooSoon => 409,
            Refusal::BadPath => 400,
            Refusal::BadRequestTarget => 400,
            Refusal::BadMethod => 400,
            Refusal::MethodNotAllowed => 405,
            Refusal::NoRoute => 404,
            Refusal::BadReturnTo => 400,
            Refusal::FlowMissing => 400,
            Refusal::FlowMismatch => 403,
            Refusal::NotCertified => 403,
            Refusal::StaleResult => 403,
            Refusal::ReplayedResult => 409,
            Refusal::ResultNotFound => 400,
            Refusal::ProviderUnavailable => 503,
            Refusal::ProviderBadResponse => 502,
            Refusal::ProviderUnauthorized => 502,
            Refusal::ProviderRejected => 502,
            Refusal::UnknownMember => 403,
            Refusal::PasscodeMismatch => 403,
            Refusal::PolicyMismatch => 403,
            Refusal::ProviderNotAccepted => 403,
            Refusal::ProviderNotConfigured => 404,
            Refusal::StoreUnavailable => 503,
            Refusal::BadRequest => 400,
            Refusal::NotLoggedIn => 401,
            Refusal::CrossSite => 403,
            Refusal::UpstreamUnavailable => 502,
            Refusal::UpstreamTimeout => 504,
            Refusal::FormNotKept => 401,
            Refusal::UnknownHost => 421,
            Refusal::RateLimited => 429,
            Refusal::GuardianConsentRequired => 403,
            Refusal::GuardianUnderage => 403,
            Refusal::GuardianIsChild => 403,
            Refusal::GuardianLinkExpired => 410,
            Refusal::GuardianLinkUsed => 409,
            Refusal::GuardianVerificationFailed => 403,
        }
    }

    /// The stable machine-readable code (`error` in JSON).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::VerificationRequired => "verification_required",
            Refusal::Underage => "underage",
            Refusal::AgeUnknown => "age_unknown",
            Refusal::KoreanNational => "korean_national",
            Refusal::CiUnavailable => "ci_unavailable",
            Refusal::DuplicateAccount => "duplicate_account",
            Refusal::RejoinTooSoon => "rejoin_too_soon",
            Refusal::BadPath => "bad_path",
            Refusal::BadRequestTarget => "bad_request_target",
            Refusal::BadMethod => "bad_method",
            Refusal::MethodNotAllowed => "method_not_allowed",
            Refusal::NoRoute => "no_route",
            Refusal::BadReturnTo => "bad_return_to",
            Refusal::FlowMissing => "flow_missing",
            Refusal::FlowMismatch => "flow_mismatch",
            Refusal::NotCertified => "not_certified",
            Refusal::StaleResult => "stale_result",
            Refusal::ReplayedResult => "replayed_result",
            Refusal::ResultNotFound => "result_not_found",
            Refusal::ProviderUnavailable => "provider_unavailable",
            Refusal::ProviderBadResponse => "provider_bad_response",
            Refusal::ProviderUnauthorized => "provider_unauthorized",
            Refusal::ProviderRejected => "provider_rejected",
            Refusal::UnknownMember => "unknown_member",
            Refusal::PasscodeMismatch => "passcode_mismatch",
            Refusal::PolicyMismatch => "policy_mismatch",
            Refusal::ProviderNotAccepted => "provider_not_accepted",
            Refusal::ProviderNotConfigured => "provider_not_configured",
            Refusal::StoreUnavailable => "store_unavailable",
            Refusal::BadRequest => "bad_request",
            Refusal::NotLoggedIn => "not_logged_in",
            Refusal::CrossSite => "cross_site",
            Refusal::UpstreamUnavailable => "upstream_unavailable",
            Refusal::UpstreamTimeout => "upstream_timeout",
            Refusal::FormNotKept => "form_not_kept",
            Refusal::UnknownHost => "unknown_host",
            Refusal::RateLimited => "rate_limited",
            Refusal::GuardianConsentRequired => "guardian_consent_required",
            Refusal::GuardianUnderage => "guardian_underage",
            Refusal::GuardianIsChild => "guardian_is_child",
            Refusal::GuardianLinkExpired => "guardian_link_expired",
            Refusal::GuardianLinkUsed => "guardian_link_used",
            Refusal::GuardianVerificationFailed => "guardian_verification_failed",
        }
    }

    /// (title in Korean, title in English, detail in Korean, detail in English).
    fn texts(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Refusal::VerificationRequired => (
                "본인인증이 필요합니다",
                "Identity verification required",
                "이 페이지를 이용하려면 먼저 본인인증을 해 주세요.",
                "Please verify your identity to use this page.",
            ),
            Refusal::Underage => (
                "이용 가능한 나이가 아닙니다",
                "Age requirement not met",
                "이 서비스는 법정 연령 이상만 이용할 수 있습니다.",
                "This service is only available to people above the required age.",
            ),
            Refusal::AgeUnknown => (
                "나이를 확인할 수 없습니다",
                "Age could not be confirmed",
                "인증 결과에 확인된 생년월일이 없어 이 페이지를 이용할 수 없습니다. 생년월일을 확인하는 인증 수단으로 다시 인증해 주세요.",
                "Your verification carries no confirmed birth date, so this page is not available. Please verify with a method that confirms it.",
            ),
            Refusal::KoreanNational => (
                "휴대폰 본인인증을 이용해 주세요",
                "Please verify with your mobile phone",
                "이 페이지에서 외국인 신분증 인증은 외국 국적인 분만 이용할 수 있습니다. 대한민국 국민은 휴대폰 본인인증으로 다시 인증해 주세요.",
                "On this page, ID verification for foreign visitors is for foreign nationals only. Korean nationals, please verify again by mobile phone.",
            ),
            Refusal::CiUnavailable => (
                "이 인증수단으로는 확인할 수 없습니다",
                "Please use another method",
                "이 페이지는 한 분을 한 번만 받기 위해 연계정보(CI)가 필요하지만, 사용하신 인증수단은 이를 주지 않았습니다. 다른 인증수단으로 다시 인증해 주세요.",
                "This page needs a person identifier (CI) that the method you used does not give. Please verify again with another method.",
            ),
            Refusal::DuplicateAccount => (
                "이미 가입된 분입니다",
                "Already signed up",
                "같은 분의 가입이 이미 완료되었거나 진행 중입니다.",
                "An account for this person already exists or is being created.",
            ),
            Refusal::RejoinTooSoon => (
                "아직 다시 가입할 수 없습니다",
                "Too soon to sign up again",
                "탈퇴 후 일정 기간 동안은 다시 가입할 수 없습니다.",
                "After leaving, signing up again is possible only once a waiting period has passed.",
            ),
            Refusal::BadPath => (
                "잘못된 요청 주소입니다",
                "Malformed request path",
                "요청 주소를 해석할 수 없습니다.",
                "The request path could not be interpreted safely.",
            ),
            Refusal::BadRequestTarget => (
                "잘못된 요청 형식입니다",
                "Malformed request target",
                "요청 대상은 이 사이트의 경로여야 합니다.",
                "The request target must be a path on this site (or an http URL of this host).",
            ),
            Refusal::BadMethod => (
                "잘못된 요청 방식입니다",
                "Malformed request method",
                "요청 방식(메서드)은 대문자로 된 올바른 HTTP 메서드여야 합니다.",
                "The request method must be a valid HTTP method in capitals.",
            ),
            Refusal::MethodNotAllowed => (
                "허용되지 않는 요청 방식입니다",
                "Method not allowed",
                "이 주소는 이 요청 방식을 받지 않습니다.",
                "This address does not accept this request method.",
            ),
            Refusal::NoRoute => (
                "페이지를 찾을 수 없습니다",
                "Not found",
                "이 주소는 설정된 경로가 아닙니다.",
                "No configured route serves this address.",
            ),
            Refusal::BadReturnTo => (
                "잘못된 돌아갈 주소입니다",
                "Invalid return address",
                "인증 후 돌아갈 주소는 이 사이트의 경로여야 합니다.",
                "The return address must be a path on this site.",
            ),
            Refusal::FlowMissing => (
                "인증 세션이 만료되었습니다",
                "Verification expired",
                "인증을 시작한 브라우저에서 처음부터 다시 시도해 주세요.",
                "Please start again in the browser where you began verifying.",
            ),
            Refusal::FlowMismatch => (
                "인증 정보가 일치하지 않습니다",
                "Verification does not match",
                "이 브라우저에서 시작한 인증 결과가 아닙니다.",
                "This result does not belong to the verification started in this browser.",
            ),
            Refusal::NotCertified => (
                "본인인증이 완료되지 않았습니다",
                "Verification not completed",
                "인증이 완료되지 않았거나 취소되었습니다.",
                "The verification was not completed or was cancelled.",
            ),
            Refusal::StaleResult => (
                "인증 결과가 만료되었습니다",
                "Verification result too old",
                "인증 결과가 오래되었습니다. 다시 인증해 주세요.",
                "The verification result is too old. Please verify again.",
            ),
            Refusal::ReplayedResult => (
                "이미 사용된 인증 결과입니다",
                "Verification already used",
                "한 번 사용된 인증 결과는 다시 사용할 수 없습니다.",
                "A verification result can only be used once.",
            ),
            Refusal::ResultNotFound => (
                "인증 결과를 찾을 수 없습니다",
                "Verification result not found",
                "인증 기관에서 결과를 찾을 수 없습니다.",
                "The provider has no such verification result.",
            ),
            Refusal::ProviderUnavailable => (
                "인증 기관에 연결할 수 없습니다",
                "Verification provider unavailable",
                "잠시 후 다시 시도해 주세요.",
                "The verification provider cannot be reached right now. Please try again shortly.",
            ),
            Refusal::ProviderBadResponse => (
                "인증 기관 응답 오류",
                "Verification provider error",
                "인증 기관이 올바르지 않은 응답을 보냈습니다. 잠시 후 다시 시도해 주세요.",
                "The verification provider gave an unusable answer. Please try again shortly.",
            ),
            // The merchant's credentials were refused: waiting will not help the shopper.
            Refusal::ProviderUnauthorized => (
                "이 사이트의 본인인증을 지금 사용할 수 없습니다",
                "This site's verification is not available",
                "사이트의 인증 설정에 문제가 있어 지금은 본인인증을 할 수 없습니다. 사이트 운영자(고객센터)에 이 화면을 알려 주세요.",
                "The site's verification setup has a problem, so verification cannot be done right now. Please tell the site's operator (customer support) about this page.",
            ),
            Refusal::ProviderRejected => (
                "인증 기관 응답 오류",
                "Verification provider error",
                "인증 기관이 올바르지 않은 응답을 보냈습니다. 잠시 후 다시 시도해 주세요.",
                "The verification provider gave an unusable answer. Please try again shortly.",
            ),
            Refusal::UnknownMember => (
                "등록되지 않은 회원입니다",
                "Unknown ifree member",
                "이 사이트에 ifree 등록을 먼저 완료해 주세요.",
                "Please complete your ifree registration with this site first.",
            ),
            Refusal::PasscodeMismatch => (
                "인증 정보가 일치하지 않습니다",
                "Passcode does not match",
                "등록된 정보와 일치하지 않습니다.",
                "The ifree passcode does not match the one registered with this site.",
            ),
            Refusal::PolicyMismatch => (
                "인증 정책이 일치하지 않습니다",
                "Verification policy mismatch",
                "요구한 인증 방식과 다른 결과입니다.",
                "The result was not made under the verification policy this site requires.",
            ),
            Refusal::ProviderNotAccepted => (
                "이 인증 수단은 사용할 수 없습니다",
                "Provider not accepted here",
                "이 페이지는 다른 인증 수단을 요구합니다.",
                "This page does not accept that verification method.",
            ),
            Refusal::ProviderNotConfigured => (
                "사용할 수 없는 인증 수단입니다",
                "Verification method not available",
                "이 사이트에는 이 인증 수단이 설정되어 있지 않습니다.",
                "This site has not set up this verification method.",
            ),
            Refusal::StoreUnavailable => (
                "일시적인 오류입니다",
                "Temporarily unavailable",
                "잠시 후 다시 시도해 주세요.",
                "verigate cannot reach its state store. Please try again shortly.",
            ),
            Refusal::BadRequest => (
                "잘못된 요청입니다",
                "Bad request",
                "요청 형식이 올바르지 않습니다.",
                "The request is malformed.",
            ),
            Refusal::NotLoggedIn => (
                "인증 세션이 없습니다",
                "No verification session",
                "현재 인증된 세션이 없습니다.",
                "There is no verified session.",
            ),
            Refusal::CrossSite => (
                "다른 사이트에서 온 요청입니다",
                "Request from another site",
                "이 요청은 이 사이트의 페이지에서만 보낼 수 있습니다.",
                "This request can only be sent from this site's own pages.",
            ),
            Refusal::UpstreamUnavailable => (
                "서비스에 연결할 수 없습니다",
                "Service unavailable",
                "지금 이 사이트의 서비스에 연결할 수 없습니다. 잠시 후 다시 시도해 주세요.",
                "The site's service cannot be reached right now. Please try again shortly.",
            ),
            Refusal::UpstreamTimeout => (
                "서비스 응답이 늦어지고 있습니다",
                "Service took too long",
                "이 사이트의 서비스가 제때 응답하지 않았습니다. 잠시 후 다시 시도해 주세요.",
                "The site's service did not answer in time. Please try again shortly.",
            ),
            Refusal::FormNotKept => (
                "본인인증 후 양식을 다시 보내 주세요",
                "Verify, then send the form again",
                "이 페이지는 본인인증이 필요합니다. 보내신 내용은 너무 크거나 지금은 보관할 수 없어, 인증 후 자동으로 전송되지 않습니다.",
                "This page needs identity verification. What you sent is too large to keep (or cannot be kept right now), so it will not be sent on for you after verifying.",
            ),
            Refusal::UnknownHost => (
                "이 주소에서는 본인인증을 할 수 없습니다",
                "Verification is not served at this address",
                "이 사이트의 주소로 다시 접속해 주세요.",
                "Open the site at its own address and try again.",
            ),
            Refusal::RateLimited => (
                "잠시 후 다시 시도해 주세요",
                "Please try again in a moment",
                "짧은 시간에 본인인증 요청이 너무 많았습니다. 잠시 기다린 뒤 다시 시도해 주세요.",
                "Too many verifications were started in a short time. Please wait a moment, then try again.",
            ),
            Refusal::GuardianConsentRequired => (
                "보호자 동의가 필요합니다",
                "A parent or guardian must confirm",
                "만 나이가 기준에 미치지 않는 분이 가입하려면 부모님이나 법정대리인의 동의가 필요합니다. 보호자가 본인인증으로 동의하면 계속할 수 있습니다.",
                "Signing up below the age this service sets needs the consent of a parent or legal guardian. You can continue once they have confirmed it by verifying their identity.",
            ),
            Refusal::GuardianUnderage => (
                "보호자는 성인이어야 합니다",
                "The guardian must be an adult",
                "본인인증으로 확인된 나이가 만 19세 미만이어서 보호자로 동의할 수 없습니다. 성인인 부모님이나 법정대리인이 인증해 주세요.",
                "The verified age is under 19, so this person cannot consent as a guardian. A parent or legal guardian who is an adult must verify.",
            ),
            Refusal::GuardianIsChild => (
                "본인이 보호자로 동의할 수 없습니다",
                "You cannot be your own guardian",
                "보호자로 인증한 분이 가입하려는 분과 같은 사람입니다. 부모님이나 법정대리인이 직접 인증해 주세요.",
                "The person who verified as the guardian is the person signing up. A parent or legal guardian must verify themselves.",
            ),
            Refusal::GuardianLinkExpired => (
                "보호자 동의 링크가 만료되었습니다",
                "The guardian link has expired",
                "이 링크는 유효 시간이 지났거나 올바르지 않습니다. 가입하는 분의 화면에서 새 링크를 받아 주세요.",
                "This link is past its time or not valid. Get a new one from the screen of the person signing up.",
            ),
            Refusal::GuardianLinkUsed => (
                "이미 사용된 보호자 동의 링크입니다",
                "The guardian link was already used",
                "보호자 동의 링크는 한 번만 사용할 수 있습니다. 가입하는 분의 화면에서 새 링크를 받아 주세요.",
                "A guardian link works once. Get a new one from the screen of the person signing up.",
            ),
            Refusal::GuardianVerificationFailed => (
                "보호자 인증을 확인할 수 없습니다",
                "The guardian's verification could not be confirmed",
                "보호자의 인증 결과에 확인된 생년월일이나 연계정보가 없어 동의로 받을 수 없습니다. 생년월일을 확인하는 휴대폰 본인인증으로 다시 인증해 주세요.",
                "The guardian's verification carries no confirmed birth date or person identifier (CI), so it cannot count as consent. Please verify again by mobile phone, which confirms them.",
            ),
        }
    }
}

/// A response to write: status, headers and body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(http::HeaderName, String)>,
    pub body: Bytes,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn html(status: u16, html: String) -> Self {
        Reply::new(status)
            .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(html)
    }

    pub fn json(status: u16, json: String) -> Self {
        Reply::new(status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(json)
    }

    pub fn redirect(location: &str) -> Self {
        Reply::new(302).header(http::header::LOCATION, location)
    }

    pub fn problem(p: &Problem, html: bool) -> Self {
        if html {
            Reply::html(p.status, p.html())
        } else {
            Reply::json(p.status, p.json())
        }
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn cookie(self, set_cookie: String) -> Self {
        self.header(http::header::SET_COOKIE, set_cookie)
    }

    /// Write the reply, its pages dressed in `frame` (the shop's name, logo and contact), with
    /// the listener's `Strict-Transport-Security` when the connection is TLS.
    pub async fn send(self, session: &mut Session, frame: &Frame) -> Result<()> {
        let mut resp = ResponseHeader::build(self.status, Some(self.headers.len() + 6))?;
        for (k, v) in self.headers {
            resp.append_header(k, v)?;
        }
        resp.insert_header(http::header::CONTENT_LENGTH, self.body.len().to_string())?;
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        resp.insert_header("x-content-type-options", "nosniff")?;
        // verigate's pages are never framed: a framed logout button (or start page) would be
        // clicked "from this site" by a person who sees another (clickjacking).
        resp.insert_header("x-frame-options", "DENY")?;
        resp.insert_header("content-security-policy", "frame-ancestors 'none'")?;
        if let Some(hsts) = frame.hsts.as_ref().filter(|_| over_tls(session)) {
            resp.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
        }
        // The request's id, for the person to quote and ops to find in the access log (as
        // `request_filter` decided it; none before that, or under `clients.request_id: off`).
        let id = session
            .req_header()
            .extensions
            .get::<RequestId>()
            .and_then(|r| r.0.to_str().ok())
            .map(String::from);
        let mut body = self.body;
        if let Some(id) = &id {
            resp.insert_header("x-request-id", id.as_str())?;
        }
        let marked = [REQUEST_ID_MARK, BACK_MARK, SITE_MARK, SUPPORT_MARK]
            .iter()
            .any(|m| find(&body, m.as_bytes()).is_some());
        if marked {
            let shown = id
                .map(|id| {
                    format!(
                        r#"<p class="rid">요청 번호 · Request id: {}</p>"#,
                        escape(&id)
                    )
                })
                .unwrap_or_default();
            body = fill(&body, REQUEST_ID_MARK, &shown);
            body = fill(&body, BACK_MARK, &back_link(session.req_header()));
            body = fill(&body, SITE_MARK, &frame.header);
            body = fill(&body, SUPPORT_MARK, &frame.footer);
            resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
        }
        let head_only = session.req_header().method == http::Method::HEAD;
        let empty = body.is_empty() || head_only;
        session.write_response_header(Box::new(resp), empty).await?;
        if !empty {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}

/// Whether this request came over TLS to verigate's own listener (never a plain-HTTP one: a
/// `Strict-Transport-Security` there is meaningless, and browsers ignore it).
pub fn over_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// `body` with the first `mark` in it replaced by `text`.
fn fill(body: &Bytes, mark: &str, text: &str) -> Bytes {
    match find(body, mark.as_bytes()) {
        None => body.clone(),
        Some(at) => {
            let mut b = Vec::with_capacity(body.len() + text.len());
            b.extend_from_slice(&body[..at]);
            b.extend_from_slice(text.as_bytes());
            b.extend_from_slice(&body[at + mark.len()..]);
            b.into()
        }
    }
}

/// Where `needle` first stands in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_one_code_one_status_and_its_own_text() {
        let mut codes = std::collections::HashSet::new();
        for r in Refusal::ALL {
            assert!(codes.insert(r.code()), "{r:?}: code {} twice", r.code());
            assert!((400..600).contains(&r.status()), "{r:?}");
            let (ko, en, dko, den) = r.texts();
            for t in [ko, en, dko, den] {
                assert!(!t.is_empty(), "{r:?}");
            }
            let p = Problem::new(r);
            assert_eq!((p.status, p.code), (r.status(), r.code()));
            assert!(p.html().contains(&format!("{} · {}", r.status(), r.code())));
        }
        // No two refusals share a page title: a person can tell them apart.
        let titles: std::collections::HashSet<_> =
            Refusal::ALL.iter().map(|r| r.texts().1).collect();
        assert!(titles.len() >= Refusal::ALL.len() - 4, "{titles:?}");
        // The reference page lists every code, in the row of its status.
        let page = include_str!("../docs/reference/refusals.md");
        for r in Refusal::ALL {
            let row = format!("| {} |", r.status());
            let code = format!("`{}`", r.code());
            assert!(
                page.lines()
                    .any(|l| l.starts_with(&row) && l.contains(&code)),
                "docs/reference/refusals.md misses {} in its {} row",
                r.code(),
                r.status()
            );
        }
    }

    #[test]
    fn escapes_html_and_script_json() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        let j = script_json(&serde_json::json!({"x": "</script><script>"}));
        assert!(!j.contains('<'));
    }

    #[test]
    fn the_frame_escapes_every_value_and_is_empty_without_a_site() {
        assert_eq!(Frame::new(None, None, None), Frame::default());
        let support = Support {
            text: Some("<script>x</script>".into()),
            url: Some("https://shop.example/help?a=1&b=\"".into()),
            phone: Some("+82 (2) 123-4567".into()),
            email: Some("help@shop.example".into()),
        };
        let f = Frame::new(
            Some("<b>가게</b>"),
            Some("https://cdn.example/l.png?a=1&b=2"),
            Some(&support),
        );
        assert!(
            f.header.contains(r#"alt="&lt;b&gt;가게&lt;/b&gt;""#),
            "{}",
            f.header
        );
        assert!(f
            .header
            .contains(r#"src="https://cdn.example/l.png?a=1&amp;b=2""#));
        assert!(f.header.contains(r#"referrerpolicy="no-referrer""#));
        assert!(!f.header.contains("<b>") && !f.footer.contains("<script>"));
        assert!(
            f.footer.contains(r#"href="tel:+8221234567""#),
            "{}",
            f.footer
        );
        assert!(f.footer.contains("&amp;b=&quot;"), "{}", f.footer);
        // A name without a logo is said once, as text.
        let f = Frame::new(Some("가게"), None, None);
        assert!(!f.header.contains("<img") && f.header.contains("<span>가게</span>"));
        assert!(f.footer.is_empty());
        // The page carries the marks the reply fills.
        let p = page("t", "<h1>x</h1>");
        assert!(p.contains(SITE_MARK) && p.contains(SUPPORT_MARK));
    }

    #[test]
    fn spans_read_in_their_largest_whole_unit() {
        use std::time::Duration;
        let t = |s| span_text(Duration::from_secs(s));
        assert_eq!(t(600), ("10분".into(), "10 minutes".into()));
        assert_eq!(t(3600), ("1시간".into(), "1 hour".into()));
        assert_eq!(t(5400), ("90분".into(), "90 minutes".into()));
        assert_eq!(t(172_800), ("2일".into(), "2 days".into()));
        assert_eq!(t(45), ("45초".into(), "45 seconds".into()));
    }

    #[test]
    fn the_duplicate_page_leads_with_the_routes_step_and_the_underage_page_names_its_rule() {
        let p = Problem::new(Refusal::DuplicateAccount)
            .with_switch("/.verigate/logout".into())
            .with_primary("/login", "로그인");
        let html = p.html();
        let primary =
            html.find(r#"<a class="button" data-next="primary" href="/login">로그인</a>"#);
        let switch = html.find(r#"<button class="button secondary" data-next="switch""#);
        assert!(
            primary.is_some() && switch.is_some() && primary < switch,
            "{html}"
        );
        let p = Problem::new(Refusal::Underage).with_age(19, crate::identity::AgeRule::YouthAct);
        assert!(p.html().contains("만 19세 이상"));
        let v: serde_json::Value = serde_json::from_str(&p.json()).unwrap();
        assert_eq!(
            (v["min_age"].as_u64(), v["age_rule"].as_str()),
            (Some(19), Some("youth_act"))
        );
    }

    #[test]
    fn problem_json_is_stable() {
        let p = Problem::new(Refusal::VerificationRequired).with_next("/v?x".into());
        let v: serde_json::Value = serde_json::from_str(&p.json()).unwrap();
        assert_eq!(v["error"], "verification_required");
        assert_eq!(v["verify_url"], "/v?x");
    }
}
