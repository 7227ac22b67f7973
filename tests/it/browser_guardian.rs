//! Guardian consent (`require.guardian_consent`) in a real headless Chromium, at a phone's
//! width (390 px) and a desktop's: a 12-year-old verifies, is held on the handover page, and
//! their guardian consents on the same device or on their own phone (the link, the QR code);
//! the sandbox windows' people (a child, an adult guardian, a minor guardian) are one press
//! each. Every page of the way carries the shop's name, logo and contact and reads well
//! (nothing wider than the screen, Korean broken between words only); each guardian refusal
//! page has its next step; the signup reaches the app once, with the consent headers. Skips
//! (or fails under CI=true) as `browser` does without Chromium.

use crate::browser::{href, Driver};
use crate::browser_pages::assert_framed_in_browser;
use crate::common::recorder::Recorder;
use crate::common::*;
use crate::pages::site;
use serde_json::{json, Value};

const TEXT_KO: &str = "자녀의 회원가입과 개인정보 수집·이용에 동의합니다.";
const TEXT_EN: &str = "I consent to the signup of my child and the collection of their data.";

/// The shop (with its name, logo and contact) whose signup at `path` takes children under 14
/// with their guardian's consent, on Iamport and PortOne; everything else open.
fn proxy(path: &str) -> Proxy {
    Proxy::new()
        .provider(Provider::iamport())
        .provider(Provider::portone())
        .route(
            Route::path(path)
                .name("kids-signup")
                .methods(["GET", "POST"])
                .providers(["iamport", "portone"])
                .one_account()
                .require_set(
                    "guardian_consent",
                    json!({
                        "under": 14,
                        "age_rule": "birthday",
                        "children": "verified",
                        "text_version": "2026-12-01",
                        "text": { "ko": TEXT_KO, "en": TEXT_EN },
                    }),
                ),
        )
        .route(Route::prefix("/"))
        .set("site", site())
}

/// From the choice page (Iamport) or a provider's start page (a desktop clicks; a phone's
/// opens the window by itself) into the sandbox window, and verify there as the sandbox's
/// person `who` (`child`, `guardian`, `minor`: its button fills the form in).
async fn verify_as(d: &Driver, who: &str) {
    let button = format!("button[data-preset='{who}']");
    for _ in 0..300 {
        let at = d
            .exec(&format!(
                "if (document.readyState !== 'complete') {{ return ''; }} \
                 if (document.querySelector(\"{button}\")) {{ return 'window'; }} \
                 if (document.querySelector('a.choice[data-provider=iamport]')) {{ return 'choice'; }} \
                 var s = document.getElementById('verigate-start'); \
                 if (s && !/Mobile/.test(navigator.userAgent)) {{ return 'start'; }} \
                 return '';"
            ))
            .await;
        match at.as_str() {
            Some("window") => break,
            Some("choice") => {
                d.click_and_wait_new_page("a.choice[data-provider=iamport]")
                    .await
            }
            Some("start") => {
                d.click("#verigate-start").await;
                d.find(&button).await;
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    d.click(&button).await;
    d.click_and_wait_new_page("form button[type=submit]").await;
}

/// Screenshots of the whole page, a screen at a time (`NAME-1.png`, `NAME-2.png`, ...; at
/// most four), then back to its top.
async fn shots(d: &Driver, name: &str) {
    let screens = d
        .exec("return Math.ceil(document.documentElement.scrollHeight / window.innerHeight);")
        .await
        .as_u64()
        .unwrap_or(1)
        .clamp(1, 4);
    for i in 0..screens {
        d.exec(&format!("window.scrollTo(0, {i} * window.innerHeight);"))
            .await;
        d.shot(&format!("{name}-{}", i + 1)).await;
    }
    d.exec("window.scrollTo(0, 0);").await;
}

/// The page's one `<h1>`.
async fn heading(d: &Driver) -> String {
    d.exec("var h = document.querySelector('main h1'); return h ? h.textContent : '';")
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// On the handover page: the guardian verifies here, states the relation, consents and picks
/// `provider` on the consent page (checked as it goes).
async fn consent_here(d: &Driver, tag: &str, provider: &str) {
    d.click_and_wait_new_page("[data-next=guardian-here]").await;
    consent_on_page(d, tag, provider).await;
}

/// On the consent page: it reads well and says what the child signs up for, with the shop's
/// name; the guardian states the relation, consents and picks `provider`.
async fn consent_on_page(d: &Driver, tag: &str, provider: &str) {
    d.find("form input[name=agree]").await;
    let page = d.source().await;
    assert!(page.contains(TEXT_KO) && page.contains(TEXT_EN), "{page}");
    assert!(page.contains("2026-12-01"), "the text version");
    assert_framed_in_browser(d, &format!("{tag}: consent page")).await;
    shots(d, &format!("guardian-consent-{tag}")).await;
    d.click("input[name=relation][value=parent]").await;
    d.click("input[name=agree]").await;
    d.click_and_wait_new_page(&format!("button[data-provider={provider}]"))
        .await;
}

/// A guardian refusal page: its code, it reads well, and its first step starts the guardian's
/// consent again on this device (the handover page, a fresh link).
async fn refused_here(d: &Driver, tag: &str, code: &str, title: &str) {
    d.wait_for(code, |_, s| s.contains(&format!("· {code}<")))
        .await;
    assert_eq!(heading(d).await, title, "{tag}");
    assert_framed_in_browser(d, &format!("{tag}: {code}")).await;
    shots(d, &format!("guardian-{code}-{tag}")).await;
    assert_eq!(
        href(d, "[data-next=primary]").await,
        "/.verigate/guardian?return_to=%2Fkids%2Fsignup",
        "{tag}: {code}"
    );
    d.click_and_wait_new_page("[data-next=primary]").await;
    d.find("[data-guardian-qr]").await;
}

/// What the page shows of the guardian link and the QR code: their boxes, the link's text, and
/// whether each lies inside the screen.
const LINK_CHECK: &str = r#"
var w = window.innerWidth, out = {};
var p = document.querySelector('[data-guardian-link]');
var svg = document.querySelector('[data-guardian-qr] svg');
function box(e) { var r = e.getBoundingClientRect(); return { left: r.left, right: r.right, width: r.width, height: r.height, inside: r.width > 0 && r.left >= 0 && r.right <= w }; }
out.text = p ? p.textContent : null;
out.link = p ? box(p) : null;
out.select = p ? getComputedStyle(p).userSelect : null;
out.qr = svg ? box(svg) : null;
out.qr_visible = svg ? getComputedStyle(svg).visibility === 'visible' && getComputedStyle(svg).display !== 'none' : false;
return out;
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_demo_shop_a_child_signs_up_once_a_guardian_consents_on_the_same_device_phone_and_desktop(
) {
    for phone in [true, false] {
        let tag = if phone { "phone" } else { "desktop" };
        let started = match phone {
            true => Driver::phone().await,
            false => Driver::start().await,
        };
        let Some(d) = started else {
            return;
        };
        let env = Env::with(Setup::new(proxy("/kids/signup")).upstream(Upstream::DemoShop)).await;
        // The demo shop's kids' signup, verified as the sandbox's 12-year-old.
        d.go(&env.url("/")).await;
        d.click("a[href='/kids/signup']").await;
        verify_as(&d, "child").await;
        d.wait_for("the handover page", |u, s| {
            u.contains("/.verigate/guardian?return_to=%2Fkids%2Fsignup")
                && s.contains("data-guardian-qr")
        })
        .await;
        assert_eq!(heading(&d).await, "보호자 동의가 필요합니다", "{tag}");
        assert_framed_in_browser(&d, &format!("{tag}: handover")).await;
        shots(&d, &format!("guardian-handover-{tag}")).await;
        // The link for the guardian's own phone: all of it inside the screen, selectable, and
        // the copy button selects exactly it.
        let v = d.exec(LINK_CHECK).await;
        let link = v["text"].as_str().unwrap_or("").to_string();
        assert!(
            link.starts_with(&format!(
                "http://{}/.verigate/guardian/consent?t=",
                env.proxy
            )),
            "{tag}: {v}"
        );
        assert_eq!(v["link"]["inside"], Value::Bool(true), "{tag}: {v}");
        assert_ne!(v["select"], Value::from("none"), "{tag}: {v}");
        d.click("[data-copy-link]").await;
        let selected = d.exec("return window.getSelection().toString();").await;
        assert_eq!(selected, Value::from(link.as_str()), "{tag}");
        assert_eq!(v["qr"]["inside"], Value::Bool(true), "{tag}: {v}");

        // A 17-year-old as the guardian.
        consent_here(&d, tag, "iamport").await;
        verify_as(&d, "minor").await;
        refused_here(&d, tag, "guardian_underage", "보호자는 성인이어야 합니다").await;
        // The child as their own guardian.
        consent_here(&d, tag, "iamport").await;
        verify_as(&d, "child").await;
        refused_here(
            &d,
            tag,
            "guardian_is_child",
            "본인이 보호자로 동의할 수 없습니다",
        )
        .await;
        // A verification without the person's CI (KG이니시스 통합인증 through Kakao, in the
        // sandbox: the window's own fields for the channel and the app).
        consent_here(&d, tag, "iamport").await;
        let button = "button[data-preset='guardian']";
        if !phone {
            d.click("#verigate-start").await;
        }
        d.find(button).await;
        d.exec(
            "var f = document.querySelector(\"form[action='certify']\"); \
             [['pg', 'inicis_unified'], ['app', 'kakao']].forEach(function (p) { \
               var i = document.createElement('input'); i.type = 'hidden'; i.name = p[0]; i.value = p[1]; f.appendChild(i); });",
        )
        .await;
        d.click(button).await;
        d.click_and_wait_new_page("form button[type=submit]").await;
        refused_here(
            &d,
            tag,
            "guardian_verification_failed",
            "보호자 인증을 확인할 수 없습니다",
        )
        .await;
        // Still held: the signup page is the handover page.
        d.go(&env.url("/kids/signup")).await;
        d.find("[data-guardian-qr]").await;

        // An adult guardian: consent recorded, and on to the signup.
        consent_here(&d, tag, "iamport").await;
        verify_as(&d, "guardian").await;
        d.wait_for("the done page", |u, _| {
            u.contains("/.verigate/guardian/done")
        })
        .await;
        assert_eq!(heading(&d).await, "보호자 동의가 완료되었습니다", "{tag}");
        assert_framed_in_browser(&d, &format!("{tag}: done")).await;
        shots(&d, &format!("guardian-done-{tag}")).await;
        d.click_and_wait_new_page("[data-next=continue]").await;
        d.wait_for("the demo shop's kids' signup", |u, s| {
            u.ends_with("/kids/signup") && s.contains("x-verified-guardian-consent")
        })
        .await;
        let page = d.source().await;
        assert!(page.contains("x-verified-guardian-at"), "{page}");
        assert_eq!(d.layout_problems().await, Vec::<String>::new(), "{tag}");
        d.shot(&format!("guardian-demo-signup-{tag}")).await;
        d.click_and_wait_new_page("form[action='/kids/signup'] button[type=submit]")
            .await;
        d.wait_for("account created", |_, s| {
            s.contains("data-kids-welcome") && s.contains("<code>gc_")
        })
        .await;
        assert_eq!(d.layout_problems().await, Vec::<String>::new(), "{tag}");
        d.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_signup_waits_on_a_desktop_while_the_guardian_consents_on_their_own_phone() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let Some(g) = Driver::phone().await else {
        return;
    };
    let (app, addr) = Recorder::spawn().await;
    let env = Env::with(Setup::new(proxy("/signup")).upstream(Upstream::At(addr))).await;
    // The child's signup form, posted before any verification: kept.
    d.go(&env.url("/form")).await;
    d.fill("#signup input[name=nickname]", "어린이").await;
    d.click("#send-signup").await;
    verify_as(&d, "child").await;
    d.wait_for("the handover page", |u, s| {
        u.contains("/.verigate/guardian?") && s.contains("data-guardian-qr")
    })
    .await;
    assert!(app.of("POST", "/signup").is_empty(), "held");
    // The QR code: visible, whole, and big enough for a phone's camera.
    let v = d.exec(LINK_CHECK).await;
    assert_eq!(v["qr_visible"], Value::Bool(true), "{v}");
    assert_eq!(v["qr"]["inside"], Value::Bool(true), "{v}");
    let (w, h) = (
        v["qr"]["width"].as_f64().unwrap_or(0.0),
        v["qr"]["height"].as_f64().unwrap_or(0.0),
    );
    assert!(w >= 160.0 && h >= 160.0, "the QR code is {w}×{h} px: {v}");
    eprintln!("guardian QR code on a 1280 px desktop: {w}×{h} px");
    let link = v["text"].as_str().unwrap_or("").to_string();
    assert_framed_in_browser(&d, "desktop: handover (kept post)").await;
    shots(&d, "guardian-handover-kept-desktop").await;

    // A minor opens the link on their phone: refused, and told where a new link is (not a
    // button to the handover page, which is the child's).
    g.go(&link).await;
    consent_on_page(&g, "own-phone", "portone").await;
    verify_as(&g, "minor").await;
    g.wait_for("the underage guardian page", |_, s| {
        s.contains("· guardian_underage<")
    })
    .await;
    assert_framed_in_browser(&g, "guardian's phone: guardian_underage").await;
    shots(&g, "guardian-guardian_underage-own-phone").await;
    let steps = g
        .exec("return Array.from(document.querySelectorAll('[data-next]')).map(function (e) { return e.getAttribute('data-next'); });")
        .await;
    assert_eq!(
        steps,
        json!(["back"]),
        "no handover button on the guardian's phone"
    );
    let note = g
        .exec("return Array.from(document.querySelectorAll('[data-note]')).map(function (e) { return e.textContent; }).join(' ');")
        .await;
    assert!(
        note.as_str()
            .is_some_and(|n| n.contains("새 링크 받기") && n.contains("Get a new link")),
        "{note}"
    );
    // The child's screen gives a new link; the adult guardian opens it: the consent page,
    // PortOne (its window by redirection on a phone).
    d.click_and_wait_new_page("[data-next=new-link]").await;
    let v = d.exec(LINK_CHECK).await;
    let fresh = v["text"].as_str().unwrap_or("").to_string();
    assert!(
        fresh.contains("/.verigate/guardian/consent?t=") && fresh != link,
        "{v}"
    );
    let link = fresh;
    g.go(&link).await;
    consent_on_page(&g, "own-phone", "portone").await;
    verify_as(&g, "guardian").await;
    g.wait_for("the done page", |u, _| {
        u.contains("/.verigate/guardian/done")
    })
    .await;
    let page = g.source().await;
    assert!(page.contains("가입하는 분의 기기로 돌아가"), "{page}");
    assert!(!page.contains("data-next=\"continue\""), "{page}");
    assert_framed_in_browser(&g, "own-phone: done").await;
    shots(&g, "guardian-done-own-phone").await;
    // The link again: its consent page still opens (a link is spent by the consent), and
    // consenting again is refused, the page saying where to get a new one.
    g.go(&link).await;
    consent_on_page(&g, "own-phone-again", "portone").await;
    g.wait_for("the used-link page", |_, s| {
        s.contains("· guardian_link_used<")
    })
    .await;
    assert_framed_in_browser(&g, "guardian's phone: link used").await;
    assert!(
        g.source().await.contains("data-note"),
        "where a new link is"
    );
    shots(&g, "guardian-link-used-phone").await;

    // The child continues on the desktop: the kept post reaches the app, once.
    d.click_and_wait_new_page("[data-next=continue]").await;
    d.wait_for("the app's welcome page", |u, s| {
        u.ends_with("/welcome") && s.contains("id=\"welcome\"")
    })
    .await;
    let posts = app.of("POST", "/signup");
    assert_eq!(posts.len(), 1);
    let body = String::from_utf8_lossy(&posts[0].body).into_owned();
    assert!(
        body.contains("nickname=%EC%96%B4%EB%A6%B0%EC%9D%B4"),
        "{body}"
    );
    assert!(posts[0]
        .header("x-verified-guardian-consent")
        .is_some_and(|c| c.starts_with("gc_")));
    assert!(posts[0].header("x-verified-guardian-at").is_some());
    d.exec("location.reload();").await;
    d.find("#welcome").await;
    assert_eq!(app.of("POST", "/signup").len(), 1, "never twice");
    d.quit().await;
    g.quit().await;
}
