//! Guardian consent (개인정보보호법 제22조의2, 게임산업법 제12조의3): the pages and the checks
//! that turn a guardian's own verification into a consent record for a child's signup.
//!
//! The gate holds a child on a route with `require.guardian_consent` (`gate::guardian`) and
//! sends them to the handover page (`{flow_prefix}/guardian?return_to=...`). It offers a
//! guardian link ([`GuardianLink`], sealed, short-lived, bound to the child, the route, the
//! signup's address and the host) on this device or, as a link and a QR code, on the
//! guardian's own phone. The consent page shows what the child signs up for; the guardian
//! states the relation, consents, and verifies through one of the route's providers that
//! verify birth dates. That verification runs the provider's own flow with the link in its
//! flow claims ([`GuardianFlow`]): its result never becomes a session (the child's stays as it
//! was on a shared device); it becomes a [`ConsentRecord`] when the guardian is an adult (19,
//! by the birthday), another person than the child, and the link was live and never used.

use crate::answers::{escape, page, wants_html, Problem, Refusal, Reply, BACK_MARK};
use crate::clock::unix_now;
use crate::identity::ProviderId;
use crate::live::revoked::Revoked;
use crate::live::Live;
use crate::providers::web::{
    clear_flow_cookie, names_this_host, public_base, query_param, read_body, route_for,
    same_origin, verify_url, KEPT_MARK,
};
use crate::routing::path::safe_return_to;
use crate::routing::{GuardianRule, Route};
use crate::session::{Claims, GuardianFlow, GuardianLink, Purpose};
use crate::store::{ConsentRecord, Store};
use pingora::proxy::Session;
use std::sync::Arc;

/// The handover page's path under the flow prefix.
pub const HANDOVER: &str = "/guardian";
/// The consent page (GET) and its form (POST).
pub const CONSENT: &str = "/guardian/consent";
/// Where a guardian lands once the consent is recorded.
pub const DONE: &str = "/guardian/done";
/// Where a person without a session states a birth date (`children: stated_birth_date`).
pub const AGE: &str = "/guardian/age";

/// The relations a guardian may state (stated, never verified): (value, Korean, English).
const RELATIONS: [(&str, &str, &str); 2] = [
    ("parent", "부모", "Parent"),
    ("guardian", "법정대리인", "Legal guardian"),
];

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The handover page for a child held on `return_to`.
pub fn handover_url(prefix: &str, return_to: &str) -> String {
    format!("{prefix}{HANDOVER}?return_to={}", enc(return_to))
}

/// The birth-date page for `return_to` (`children: stated_birth_date`).
pub fn age_url(prefix: &str, return_to: &str) -> String {
    format!("{prefix}{AGE}?return_to={}", enc(return_to))
}

/// The child a consent is about, for a verified child: the keyed CI hash their session holds
/// (None: the provider gave no person id, and no consent can be bound to them).
pub fn child_of(claims: &Claims) -> Option<&str> {
    Some(claims.ci_hash.as_str()).filter(|h| !h.is_empty())
}

/// A consent record's id: `gc_` and 16 random bytes, base64url (22 characters).
fn fresh_consent_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    format!(
        "gc_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

fn fresh_link_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The route `return_to` leads to on this host, with its guardian rule: the route a GET there
/// meets, or else a POST (a signup route may take its form posts only: the kept post comes
/// back to it).
fn guarded<'a>(
    live: &'a Live,
    session: &Session,
    return_to: &str,
) -> Option<(&'a Route, &'a Arc<GuardianRule>)> {
    if let Some(found) = route_for(live, session, return_to)
        .and_then(|r| Some((r, r.require.as_ref()?.guardian.as_ref()?)))
    {
        return Some(found);
    }
    let host = crate::routing::host::request_host(session.req_header());
    let routes = &live.cfg.routes;
    let norm = crate::routing::path::normalize(return_to).ok()?;
    let i = routes
        .find(&[&http::Method::POST], host, &norm)
        .and_then(|f| f.route())?;
    let route = routes.get(i)?;
    Some((route, route.require.as_ref()?.guardian.as_ref()?))
}

fn request_host(session: &Session) -> Option<String> {
    crate::routing::host::request_host(session.req_header()).map(str::to_ascii_lowercase)
}

/// Pages that carry a guardian link are never cached nor sent on as a referrer.
fn private(reply: Reply) -> Reply {
    reply
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(http::header::REFERRER_POLICY, "no-referrer")
}

/// The child's session on this host, if it opens and is not revoked.
fn child_session(live: &Live, revoked: &Revoked, session: &Session) -> Option<Claims> {
    let cfg = &live.cfg;
    let now = unix_now();
    let (c, named) = crate::cookies::read_session(session.req_header(), &cfg.session)?;
    let v = live.verified(c, now)?;
    let host = crate::routing::host::request_host(session.req_header());
    let ok = !revoked.session_revoked(&v)
        && crate::cookies::name_fits(named, &v.claims)
        && v.claims.for_host(host);
    ok.then(|| v.claims.clone())
}

/// `GET {flow_prefix}/guardian?return_to=...`: the child's device. Why a guardian is needed,
/// and the two ways for the guardian to confirm: on this device, or on their own phone with
/// the link or its QR code.
pub fn handover(live: &Live, revoked: &Revoked, session: &Session) -> Reply {
    let html = wants_html(session);
    let cfg = &live.cfg;
    let prefix = &cfg.flow_prefix;
    let Some(return_to) = safe_return_to(query_param(session, "return_to").as_deref()) else {
        return Reply::problem(&Problem::new(Refusal::BadReturnTo), html);
    };
    let Some((route, rule)) = guarded(live, session, &return_to) else {
        // Nothing to consent to there: the page itself says what it needs.
        return Reply::redirect(&return_to);
    };
    let now = unix_now();
    let today = crate::clock::today(cfg.timezone, now);
    // The child: their session's, or (where children state a birth date) their stated id.
    let (child, birth, stated) = match child_session(live, revoked, session) {
        Some(claims) => {
            let birth = claims.birth.filter(|_| claims.provider.verifies_birth());
            match (birth, child_of(&claims)) {
                (Some(b), Some(c)) => (c.to_string(), b, false),
                // The gate answers what this session lacks (age_unknown, ci_unavailable).
                _ => return Reply::redirect(&return_to),
            }
        }
        None if rule.children == crate::routing::Children::StatedBirthDate => {
            match stated_child(live, session, now) {
                Some(c) => (c.id, c.birth, true),
                None => return Reply::redirect(&age_url(prefix, &return_to)),
            }
        }
        None => return Reply::redirect(&verify_url(prefix, &return_to)),
    };
    if !rule.is_child(birth, today) {
        return Reply::redirect(&return_to);
    }
    let link = GuardianLink {
        id: fresh_link_id(),
        child,
        stated_birth: stated.then(|| birth.format("%Y-%m-%d").to_string()),
        route: route.name.clone(),
        return_to: return_to.clone(),
        host: request_host(session),
        expires_at: now + rule.link_ttl.as_secs() as i64,
    };
    let token = cfg.session.keys.seal_json(Purpose::GuardianLink, &link);
    let here = format!("{prefix}{CONSENT}?t={token}&d=same");
    let other_path = format!("{prefix}{CONSENT}?t={token}");
    let other = match public_base(live, session) {
        Some(base) => format!("{base}{other_path}"),
        None => return Reply::problem(&Problem::new(Refusal::UnknownHost), html),
    };
    if !html {
        // An app's own client shows the link or its QR code itself.
        let v = serde_json::json!({
            "guardian_url": other,
            "expires_at": link.expires_at,
            "continue_url": return_to,
        });
        return private(Reply::json(200, v.to_string()));
    }
    let minutes = rule.link_ttl.as_secs().div_ceil(60);
    let under = rule.under;
    let body = format!(
        r#"<h1>보호자 동의가 필요합니다</h1><p class="en"><strong>A parent or guardian must confirm</strong></p>
<p>개인정보보호법 제22조의2에 따라 만 {under}세 미만이 가입하려면 부모님이나 법정대리인의 동의가 필요합니다. 보호자가 직접 본인인증을 해서 동의해 주세요.</p>
<p class="en">Under {under}, signing up needs the consent of a parent or legal guardian (Korean Personal Information Protection Act, article 22-2). Your guardian confirms it by verifying their own identity.</p>{KEPT_MARK}
<h2>보호자가 이 기기에서 · Guardian on this device</h2>
<a class="button" data-next="guardian-here" href="{here}">보호자가 여기서 인증하기 · Guardian verifies here</a>
<h2>보호자 휴대폰으로 · On the guardian's own phone</h2>
<p>보호자 휴대폰 카메라로 QR 코드를 찍거나, 아래 링크를 보내 주세요. 링크는 {minutes}분 동안 한 번만 쓸 수 있습니다.</p>
<p class="en">Scan the QR code with the guardian's phone camera, or send them the link below. It works once, for {minutes} minutes.</p>
<div class="qr" data-guardian-qr>{qr}</div>
<p class="code" data-guardian-link>{other_text}</p>
<button type="button" class="secondary" data-copy-link>링크 복사 · Copy the link</button>{COPY_SCRIPT}
<p>보호자가 동의를 마치면 계속하세요.</p><p class="en">Once your guardian has confirmed, continue.</p>
<a class="button secondary" data-next="continue" href="{cont}">보호자 동의를 마쳤어요, 계속하기 · My guardian has confirmed: continue</a>
<a class="button secondary" data-next="new-link" href="{again}">새 링크 받기 · Get a new link</a>{BACK_MARK}"#,
        here = escape(&here),
        qr = qr_svg(&other),
        other_text = escape(&other),
        cont = escape(&return_to),
        again = escape(&handover_url(prefix, &return_to)),
    );
    crate::metrics::guardian("handover", &route.name);
    private(Reply::html(
        200,
        page("보호자 동의 · Guardian consent", &body),
    ))
}

/// The handover page's copy button: it selects the link (so that a phone's own "copy" is one
/// tap away, whatever the browser allows a page) and copies it where the browser lets it.
const COPY_SCRIPT: &str = r#"<script>
(function () {
  var b = document.querySelector('[data-copy-link]'), p = document.querySelector('[data-guardian-link]');
  if (!b || !p) { return; }
  b.addEventListener('click', function () {
    var r = document.createRange(); r.selectNodeContents(p);
    var s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
    var done = function () { b.textContent = '복사했습니다 · Copied'; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(p.textContent).then(done, function () {});
    } else { try { if (document.execCommand('copy')) { done(); } } catch (e) {} }
  });
})();
</script>"#;

/// This browser's stated child on this host, if its cookie opens and lives.
fn stated_child(live: &Live, session: &Session, now: i64) -> Option<crate::session::StatedChild> {
    let s = &live.cfg.session;
    let raw = crate::cookies::read(session.req_header(), &s.child_cookie)?;
    let host = crate::routing::host::request_host(session.req_header());
    crate::session::StatedChild::open(&s.keys, raw, now, host)
}

/// `GET {flow_prefix}/guardian/age?return_to=...`: a person without a session on a route
/// whose children state a birth date: the form.
pub fn age_page(live: &Live, session: &Session) -> Reply {
    let html = wants_html(session);
    let Some(return_to) = safe_return_to(query_param(session, "return_to").as_deref()) else {
        return Reply::problem(&Problem::new(Refusal::BadReturnTo), html);
    };
    let Some((_, rule)) = guarded(live, session, &return_to)
        .filter(|(_, r)| r.children == crate::routing::Children::StatedBirthDate)
    else {
        return Reply::redirect(&verify_url(&live.cfg.flow_prefix, &return_to));
    };
    let body = format!(
        r#"<h1>생년월일을 입력해 주세요</h1><p class="en"><strong>Enter your date of birth</strong></p>
<p>만 {under}세 미만은 보호자 동의가 있어야 가입할 수 있습니다. {under}세 이상은 다음 화면에서 본인인증을 합니다.</p>
<p class="en">Under {under}, signing up needs a parent's or guardian's consent; from {under}, you verify your identity on the next page.</p>{KEPT_MARK}
<form method="post" action="{action}">
<input type="hidden" name="return_to" value="{rt}">
<label>생년월일 · Date of birth<br><input type="date" name="birth" required min="1900-01-01" max="{today}" autocomplete="bday"></label>
<button type="submit">계속 · Continue</button>
</form>{BACK_MARK}"#,
        under = rule.under,
        action = escape(&format!("{}{AGE}", live.cfg.flow_prefix)),
        rt = escape(&return_to),
        today = crate::clock::today(live.cfg.timezone, unix_now()),
    );
    Reply::html(200, page("생년월일 · Date of birth", &body))
        .header(http::header::CACHE_CONTROL, "no-store")
}

/// `POST {flow_prefix}/guardian/age`: a child by the stated date gets the stated child's
/// cookie (a random id, never the person) and goes to the handover page, their kept form post
/// now theirs to deliver; anyone else goes to the normal verification.
pub async fn age_post(live: &Live, session: &mut Session) -> pingora::Result<Reply> {
    let html = wants_html(session);
    if !same_origin(session) {
        return Ok(Reply::problem(&Problem::new(Refusal::CrossSite), html));
    }
    let Some(body) = read_body(session, 4 * 1024).await? else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), html));
    };
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let Some(return_to) = safe_return_to(form.get("return_to").map(String::as_str)) else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadReturnTo), html));
    };
    let cfg = &live.cfg;
    let prefix = &cfg.flow_prefix;
    let Some((_, rule)) = guarded(live, session, &return_to)
        .filter(|(_, r)| r.children == crate::routing::Children::StatedBirthDate)
    else {
        return Ok(Reply::new(303).header(http::header::LOCATION, verify_url(prefix, &return_to)));
    };
    let now = unix_now();
    let today = crate::clock::today(cfg.timezone, now);
    let birth = form
        .get("birth")
        .and_then(|b| crate::providers::parse_dob(b))
        .filter(|b| *b <= today);
    let Some(birth) = birth else {
        let p = Problem::new(Refusal::BadRequest)
            .with_primary(&age_url(prefix, &return_to), "다시 입력 · Enter it again");
        return Ok(Reply::problem(&p, html));
    };
    if !rule.is_child(birth, today) {
        return Ok(Reply::new(303).header(http::header::LOCATION, verify_url(prefix, &return_to)));
    }
    let s = &cfg.session;
    let child = crate::session::StatedChild {
        id: format!("stated:{}", fresh_link_id()),
        birth,
        host: request_host(session),
        expires_at: now + s.ttl.as_secs() as i64,
    };
    let mut reply = Reply::new(303)
        .header(http::header::LOCATION, handover_url(prefix, &return_to))
        .cookie(crate::cookies::child(
            s,
            &s.keys.seal_json(Purpose::StatedChild, &child),
            s.ttl.as_secs() as i64,
        ));
    // This browser's form post kept for the signup: the stated child delivers it.
    if let Some(mut kept) = crate::live::kept::cookie_of(live, session.req_header(), now)
        .filter(|k| k.return_to == return_to && k.host == request_host(session))
    {
        kept.session = Some(child.id.clone());
        let left = (kept.expires_at - now).max(1);
        reply = reply.cookie(crate::cookies::kept(
            s,
            &s.keys.seal_json(Purpose::Kept, &kept),
            left,
        ));
    }
    Ok(reply)
}

/// The QR code of `url` as inline SVG (no image request, no outside service); empty if the
/// address is too long for one.
fn qr_svg(url: &str) -> String {
    use qrcode::render::svg;
    let Ok(code) = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // The renderer starts with an XML declaration: not for HTML.
    let svg = match svg.find("<svg") {
        Some(at) => &svg[at..],
        None => return String::new(),
    };
    svg.replacen(
        "<svg",
        r#"<svg role="img" aria-label="QR code" style="max-width:100%;height:auto""#,
        1,
    )
}

/// The next step of a guardian refused on their own phone: the handover page (a new link) is
/// on the child's device, not here (it would send the guardian to verify as the child).
const NEW_LINK_THERE: (&str, &str) = (
    "다시 하려면 가입하는 분의 화면에서 '새 링크 받기'를 눌러 새 링크를 받아 주세요.",
    "To try again, press “Get a new link” on the screen of the person signing up.",
);

/// A refusal's next step: on the child's device, the handover page (`label`); on the
/// guardian's own phone, where to get a new link.
fn next_step(p: Problem, live: &Live, link: &GuardianLink, same: bool, label: &str) -> Problem {
    if same {
        p.with_primary(&handover_url(&live.cfg.flow_prefix, &link.return_to), label)
    } else {
        p.with_note(&NEW_LINK_THERE)
    }
}

/// Whether the guardian's consent form was posted from this site's own page: the browser says
/// so (`Sec-Fetch-Site`, `Origin`), or, where it sends neither, its `Referer` names this host
/// (a post without any of the three is refused: the consent spends the link).
fn posted_from_this_site(session: &Session) -> bool {
    let h = &session.req_header().headers;
    if h.contains_key("sec-fetch-site") || h.contains_key("origin") {
        return same_origin(session);
    }
    names_this_host(session, "referer")
}

/// Why a guardian link is no good here, as the problem to show (a link that opens: also its
/// next step, on this device (`same`) or on the guardian's own phone).
fn open_link(
    live: &Live,
    session: &Session,
    token: Option<&str>,
    same: bool,
) -> Result<GuardianLink, Problem> {
    let expired = || Problem::new(Refusal::GuardianLinkExpired);
    let cfg = &live.cfg;
    let link: GuardianLink = token
        .and_then(|t| cfg.session.keys.open_json(Purpose::GuardianLink, t).ok())
        .ok_or_else(expired)?;
    if link.host.is_none() || link.host != request_host(session) {
        return Err(expired());
    }
    if unix_now() >= link.expires_at {
        crate::metrics::guardian("link_expired", &link.route);
        return Err(next_step(
            expired(),
            live,
            &link,
            same,
            "새 링크 받기 · Get a new link",
        ));
    }
    Ok(link)
}

/// The guardian's choices of provider: the route's, configured here, that verify birth dates.
fn guardian_providers(live: &Live, route: &Route) -> Vec<ProviderId> {
    route
        .require
        .as_ref()
        .map(|r| {
            r.providers
                .iter()
                .copied()
                .filter(|p| p.verifies_birth() && live.flow(*p).is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET {flow_prefix}/guardian/consent?t=...`: the guardian's consent page.
pub fn consent_page(live: &Live, session: &Session) -> Reply {
    let html = wants_html(session);
    let token = query_param(session, "t");
    let same = query_param(session, "d").as_deref() == Some("same");
    let link = match open_link(live, session, token.as_deref(), same) {
        Ok(l) => l,
        Err(p) => return Reply::problem(&p, html),
    };
    let Some((route, rule)) = guarded(live, session, &link.return_to) else {
        return Reply::problem(&Problem::new(Refusal::NoRoute), html);
    };
    let cfg = &live.cfg;
    let shop = cfg.site_name.as_deref().unwrap_or("이 사이트 · this site");
    let relations: String = RELATIONS
        .iter()
        .map(|(v, ko, en)| {
            format!(
                r#"<label class="choice"><input type="radio" name="relation" value="{v}" required> <span><strong>{ko}</strong><span class="en">{en}</span></span></label>"#
            )
        })
        .collect();
    let buttons: String = guardian_providers(live, route)
        .iter()
        .filter_map(|p| Some((p, live.flow(*p)?.choice())))
        .enumerate()
        .map(|(i, (p, c))| {
            format!(
                r#"<button type="submit" name="provider" value="{id}" data-provider="{id}"{class}>{ko} · {en}<span class="via">{via}</span></button>"#,
                id = p.as_str(),
                class = if i == 0 { "" } else { r#" class="secondary""# },
                ko = escape(c.label.0),
                en = escape(c.label.1),
                via = escape(c.via),
            )
        })
        .collect();
    let (text_ko, text_en) = &rule.text;
    let body = format!(
        r#"<h1>보호자 동의</h1><p class="en"><strong>Guardian consent</strong></p>
<p><strong>{shop}</strong>에 만 {under}세 미만인 분이 가입하려고 합니다. 부모님이나 법정대리인으로서 아래 내용에 동의하시면, 보호자 본인의 휴대폰 본인인증으로 확인해 주세요.</p>
<p class="en">Someone under {under} is signing up with <strong>{shop}</strong>. If you are their parent or legal guardian and agree to the following, confirm it by verifying your own identity.</p>
<div class="why" data-consent-text><p>{text_ko}</p><p class="en">{text_en}</p></div>
<p class="code" data-text-version="{version}">동의 문서 버전 · Consent text version: {version}</p>
<form method="post" action="{action}">
<input type="hidden" name="t" value="{token}"><input type="hidden" name="d" value="{device}">
<fieldset style="border:0;margin:0;padding:0"><legend>가입하는 분과의 관계 (직접 선택) · Your relation to them (as you state it)</legend>{relations}</fieldset>
<label class="choice"><input type="checkbox" name="agree" value="yes" required> <span><strong>위 내용에 보호자로서 동의합니다</strong><span class="en">As their guardian, I consent to the above</span></span></label>
{buttons}
</form>
<p>이 동의는 기록으로 보관됩니다: 동의한 분의 식별값 (이름이나 휴대폰 번호가 아닌 암호화된 값), 밝힌 관계, 시각, 동의 문서 버전.</p>
<p class="en">verigate keeps a record of this consent for {shop}: who consented (a keyed identifier, never your name or number), the relation you stated, when, and the text version.</p>{BACK_MARK}"#,
        shop = escape(shop),
        under = rule.under,
        text_ko = escape(text_ko),
        text_en = escape(text_en),
        version = escape(&rule.text_version),
        action = escape(&format!("{}{CONSENT}", cfg.flow_prefix)),
        token = escape(token.as_deref().unwrap_or_default()),
        device = if same { "same" } else { "other" },
    );
    private(Reply::html(
        200,
        page("보호자 동의 · Guardian consent", &body),
    ))
}

/// `POST {flow_prefix}/guardian/consent`: the guardian consented and chose a provider. The link
/// is spent here (used once), and the guardian goes to the provider's start page with the
/// guardian flow sealed in its address.
pub async fn consent_post(
    live: &Live,
    store: &dyn Store,
    session: &mut Session,
) -> pingora::Result<Reply> {
    let html = wants_html(session);
    if !posted_from_this_site(session) {
        return Ok(Reply::problem(&Problem::new(Refusal::CrossSite), html));
    }
    let Some(body) = read_body(session, 8 * 1024).await? else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), html));
    };
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(&body).into_owned().collect();
    let same = form.get("d").is_some_and(|d| d == "same");
    let link = match open_link(live, session, form.get("t").map(String::as_str), same) {
        Ok(l) => l,
        Err(p) => return Ok(Reply::problem(&p, html)),
    };
    let Some((route, _)) = guarded(live, session, &link.return_to) else {
        return Ok(Reply::problem(&Problem::new(Refusal::NoRoute), html));
    };
    let relation = form
        .get("relation")
        .filter(|r| RELATIONS.iter().any(|(v, _, _)| v == r));
    let provider = form
        .get("provider")
        .and_then(|p| ProviderId::parse(p))
        .filter(|p| guardian_providers(live, route).contains(p));
    let agreed = form.get("agree").is_some_and(|a| a == "yes");
    let (Some(relation), Some(provider), true) = (relation, provider, agreed) else {
        return Ok(Reply::problem(&Problem::new(Refusal::BadRequest), html));
    };
    let left = (link.expires_at - unix_now()).max(1) as u64;
    let used = store
        .claim_once(
            &format!("guardian-link:{}", link.id),
            std::time::Duration::from_secs(left + 60),
        )
        .await;
    match used {
        Ok(true) => {}
        Ok(false) => {
            crate::metrics::guardian("link_used", &route.name);
            return Ok(Reply::problem(&used_problem(live, &link, same), html));
        }
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable: a guardian link cannot be spent");
            return Ok(Reply::problem(
                &Problem::new(Refusal::StoreUnavailable),
                html,
            ));
        }
    }
    let flow = GuardianFlow {
        relation: relation.clone(),
        same_device: same,
        link,
    };
    let sealed = live
        .cfg
        .session
        .keys
        .seal_json(Purpose::GuardianStart, &flow);
    let start = format!(
        "{}/{}/start?return_to={}&guardian={sealed}",
        live.cfg.flow_prefix,
        provider.as_str(),
        enc(&flow.link.return_to)
    );
    Ok(Reply::new(303).header(http::header::LOCATION, start))
}

fn used_problem(live: &Live, link: &GuardianLink, same: bool) -> Problem {
    next_step(
        Problem::new(Refusal::GuardianLinkUsed),
        live,
        link,
        same,
        "새 링크 받기 · Get a new link",
    )
}

/// The guardian flow a provider's start page was sent with (`guardian=`), for `return_to`
/// on this host: it goes into the new flow's claims.
pub(crate) fn start_of(live: &Live, session: &Session, return_to: &str) -> Option<GuardianFlow> {
    let sealed = query_param(session, "guardian")?;
    let flow: GuardianFlow = live
        .cfg
        .session
        .keys
        .open_json(Purpose::GuardianStart, &sealed)
        .ok()?;
    let fits = flow.link.return_to == return_to
        && flow.link.host.is_some()
        && flow.link.host == request_host(session);
    fits.then_some(flow)
}

/// The refusal of a guardian's verification: counted, with its next step (a new link on the
/// child's device; on the guardian's own phone, the page says to get one there).
fn refuse(live: &Live, flow: &GuardianFlow, r: Refusal, outcome: &str) -> Problem {
    crate::metrics::guardian(outcome, &flow.link.route);
    next_step(
        Problem::new(r),
        live,
        &flow.link,
        flow.same_device,
        "보호자 동의 처음부터 · Start the guardian's consent again",
    )
}

/// A guardian's verification came back through a provider's flow (`claims`: what it
/// verified). Accept it as consent, or refuse it; never a session.
pub(crate) async fn accept(
    live: &Live,
    store: &dyn Store,
    g: &GuardianFlow,
    claims: &Claims,
    json: bool,
) -> Reply {
    let done = match consent(live, store, g, claims).await {
        Ok(url) => url,
        Err(p) => {
            return Reply::problem(&p, !json).cookie(clear_flow_cookie(live));
        }
    };
    let reply = if json {
        Reply::json(200, serde_json::json!({ "redirect": done }).to_string())
    } else {
        Reply::redirect(&done)
    };
    reply.cookie(clear_flow_cookie(live))
}

/// The rules a guardian must meet, then the consent record: the done page's address.
async fn consent(
    live: &Live,
    store: &dyn Store,
    g: &GuardianFlow,
    claims: &Claims,
) -> Result<String, Problem> {
    let cfg = &live.cfg;
    let link = &g.link;
    let today = crate::clock::today(cfg.timezone, unix_now());
    let birth = claims.birth.filter(|_| claims.provider.verifies_birth());
    let Some(birth) = birth.filter(|_| !claims.ci_hash.is_empty()) else {
        return Err(refuse(
            live,
            g,
            Refusal::GuardianVerificationFailed,
            "verification_failed",
        ));
    };
    // The child verifying as their own guardian is told so (not only that they are young).
    if claims.ci_hash == link.child {
        return Err(refuse(live, g, Refusal::GuardianIsChild, "is_child"));
    }
    if !crate::routing::adult(birth, today) {
        return Err(refuse(live, g, Refusal::GuardianUnderage, "underage"));
    }
    // The link must still be live when the guardian's verification comes back, not only when
    // the consent form was posted: a consent is never recorded past `link_ttl`.
    if unix_now() >= link.expires_at {
        crate::metrics::guardian("link_expired", &link.route);
        return Err(refuse(
            live,
            g,
            Refusal::GuardianLinkExpired,
            "link_expired",
        ));
    }
    // The route as configured now (a reload may have changed or dropped its rule).
    let route = cfg.routes.routes().iter().find(|r| r.name == link.route);
    let rule = route.and_then(|r| r.require.as_ref()?.guardian.clone());
    let (Some(route), Some(rule)) = (route, rule) else {
        return Err(Problem::new(Refusal::NoRoute));
    };
    // One consent per link, whatever happens to the start address it was sent on with.
    match store
        .claim_once(
            &format!("guardian-consent:{}", link.id),
            std::time::Duration::from_secs(crate::providers::web::FLOW_TTL_SECS as u64 + 60),
        )
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            crate::metrics::guardian("link_used", &link.route);
            return Err(used_problem(live, link, g.same_device));
        }
        Err(e) => {
            tracing::warn!(error = %e, "store unavailable: a guardian's consent is not recorded");
            return Err(Problem::new(Refusal::StoreUnavailable));
        }
    }
    let id = fresh_consent_id();
    // The guardian's fields the route forwards: sealed in the store for the child's request,
    // as long as the link lived (the consent is not recorded without them).
    if route.forward.guardian() {
        let fields = crate::session::GuardianFields {
            name: claims.name.clone().filter(|_| route.forward.guardian_name),
            birth: Some(birth).filter(|_| route.forward.guardian_birth),
        };
        let key = crate::session::GuardianFields::key(&id);
        let plain = serde_json::to_vec(&fields).unwrap_or_default();
        let sealed = cfg
            .session
            .kept
            .seal_bytes(Purpose::GuardianFields, key.as_bytes(), &plain);
        match store
            .keep_request(&key, &sealed, rule.link_ttl, cfg.clients.max_kept_requests)
            .await
        {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                tracing::warn!("store unavailable: a guardian's fields cannot be kept");
                return Err(Problem::new(Refusal::StoreUnavailable));
            }
        }
    }
    let rec = ConsentRecord {
        id,
        child: link.child.clone(),
        child_stated_birth: link.stated_birth.clone(),
        guardian: claims.ci_hash.clone(),
        provider: claims.provider.as_str().to_string(),
        stated_relation: Some(g.relation.clone()),
        route: link.route.clone(),
        text_version: rule.text_version.clone(),
        at_ms: chrono::Utc::now().timestamp_millis(),
    };
    if let Err(e) = store.consent_put(&rec).await {
        tracing::warn!(error = %e, "store unavailable: a guardian's consent is not recorded");
        return Err(Problem::new(Refusal::StoreUnavailable));
    }
    crate::metrics::guardian("accepted", &link.route);
    tracing::info!(route = %link.route, consent = %rec.id, "guardian consent recorded");
    Ok(format!(
        "{}{DONE}?return_to={}&d={}",
        cfg.flow_prefix,
        enc(&link.return_to),
        if g.same_device { "same" } else { "other" }
    ))
}

/// `GET {flow_prefix}/guardian/done`: the consent is recorded. On the child's device, continue
/// to the signup; on the guardian's own phone, go back to the child's device.
pub fn done(session: &Session) -> Reply {
    let return_to =
        safe_return_to(query_param(session, "return_to").as_deref()).unwrap_or_else(|| "/".into());
    let same = query_param(session, "d").as_deref() == Some("same");
    let next = if same {
        format!(
            r#"<p>가입을 계속하세요.</p><p class="en">Continue with the signup.</p>
<a class="button" data-next="continue" href="{}">계속하기 · Continue</a>"#,
            escape(&return_to)
        )
    } else {
        r#"<p>가입하는 분의 기기로 돌아가 <strong>계속하기</strong>를 눌러 주세요. 이 창은 닫아도 됩니다.</p>
<p class="en">Go back to the device of the person signing up and press <strong>Continue</strong> there. You may close this page.</p>"#
            .to_string()
    };
    Reply::html(
        200,
        page(
            "보호자 동의 완료 · Consent recorded",
            &format!(
                r#"<h1>보호자 동의가 완료되었습니다</h1><p class="en"><strong>Your consent is recorded</strong></p>
<p data-guardian-done>보호자 본인인증으로 동의를 확인했습니다.</p><p class="en">Your identity verification confirmed your consent.</p>{next}"#
            ),
        ),
    )
    .header(http::header::CACHE_CONTROL, "no-store")
}
