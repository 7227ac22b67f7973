//! Pages a shop can own, in a real headless Chromium at a phone's width (390 px) and a
//! desktop's: the shop's name, logo and contact on the choice, start, duplicate-account and
//! underage pages; the duplicate page's first button is the route's `on_duplicate`; the
//! underage page names the age and its rule; nothing is wider than the screen. Skips (or fails
//! under CI=true) as `browser` does without Chromium.

use crate::browser::{eighteen_today, fill_sandbox_form, href, sign_up_twice, Driver};
use crate::common::*;
use crate::pages::shop_with_site;
use serde_json::Value;

/// What the page shows of the site, read from the rendered page: the heading's text, the
/// logo's `alt` and `src`, the contact's text, and whether each lies inside the screen.
const FRAME_CHECK: &str = r#"
var w = window.innerWidth, out = {};
var h = document.querySelector('header.site[data-site]');
var img = h && h.querySelector('img');
var f = document.querySelector('footer.support');
function inside(e) { var r = e.getBoundingClientRect(); return r.width > 0 && r.left >= 0 && r.right <= w; }
out.name = h ? h.textContent : null;
out.alt = img ? img.getAttribute('alt') : null;
out.src = img ? img.getAttribute('src') : null;
out.support = f ? f.innerText : null;
out.tel = f && f.querySelector('a[href^="tel:"]') ? f.querySelector('a[href^="tel:"]').getAttribute('href') : null;
out.inside = !!(h && f && img && inside(h) && inside(f) && inside(img));
out.first = !!(h && document.querySelector('main').firstElementChild === h);
return out;
"#;

const NAME: &str = "예시쇼핑 <Shop> & \"Co\"";

pub(crate) async fn assert_framed_in_browser(d: &Driver, what: &str) {
    let v = d.exec(FRAME_CHECK).await;
    assert_eq!(v["name"], Value::from(NAME), "{what}: {v}");
    assert_eq!(v["alt"], Value::from(NAME), "{what}: {v}");
    assert_eq!(
        v["src"],
        Value::from("https://cdn.shop.test/logo.png?v=1&s=2"),
        "{what}: {v}"
    );
    let support = v["support"].as_str().unwrap_or("");
    for want in [
        "고객센터 평일 10:00-18:00 <b>",
        "+82 1588-0000",
        "help@shop.test",
        "고객센터 · Help",
    ] {
        assert!(support.contains(want), "{what}: {want} not in {support:?}");
    }
    assert_eq!(v["tel"], Value::from("tel:+8215880000"), "{what}: {v}");
    assert_eq!(
        v["first"],
        Value::Bool(true),
        "{what}: the name heads the card"
    );
    assert_eq!(v["inside"], Value::Bool(true), "{what}: {v}");
    assert_eq!(d.layout_problems().await, Vec::<String>::new(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shops_pages_read_well_on_a_phone_and_a_desktop() {
    for phone in [true, false] {
        let tag = if phone { "phone" } else { "desktop" };
        let started = match phone {
            true => Driver::phone().await,
            false => Driver::start().await,
        };
        let Some(d) = started else {
            return;
        };
        let env = Env::with(Setup::new(shop_with_site()).upstream(Upstream::DemoShop)).await;
        // The choice page (two providers).
        d.go(&env.url("/member")).await;
        d.find("a[data-provider=tomo]").await;
        let width = d.exec("return window.innerWidth;").await;
        if phone {
            assert_eq!(width, Value::from(390), "a phone's screen");
        }
        assert_framed_in_browser(&d, &format!("{tag}: choice")).await;
        d.shot(&format!("site-choice-{tag}")).await;

        // Sign up: the start page (a desktop's; a phone's opens the window by itself).
        d.go(&env.url("/signup")).await;
        if !phone {
            d.wait_for("the Iamport start page", |u, _| {
                u.contains("/.verigate/iamport/start")
            })
            .await;
            d.find("#verigate-start").await;
            assert_framed_in_browser(&d, "desktop: start").await;
            d.shot("site-start-desktop").await;
            d.click("#verigate-start").await;
        }
        // Again: the duplicate page leads with the shop's sign-in / find-ID page.
        sign_up_twice(&d, &env).await;
        assert_framed_in_browser(&d, &format!("{tag}: duplicate")).await;
        d.shot(&format!("site-duplicate-{tag}")).await;
        assert_eq!(href(&d, "[data-next=primary]").await, "/login?find=id");
        assert_eq!(d.attr("[data-next=primary]", "class").await, "button");
        assert_eq!(
            d.attr("[data-next=switch]", "class").await,
            "button secondary",
            "{tag}: verify as someone else comes second"
        );
        let order = d
            .exec("return Array.from(document.querySelectorAll('[data-next]')).map(function (e) { return e.getAttribute('data-next'); });")
            .await;
        assert_eq!(
            order,
            serde_json::json!(["primary", "switch", "back"]),
            "{tag}"
        );
        let label = d
            .exec("return document.querySelector('[data-next=primary]').textContent;")
            .await;
        assert_eq!(label, Value::from("로그인 · 아이디 찾기"));
        // The button is the page's: it leads where the shop said.
        d.click("[data-next=primary]").await;
        d.wait_for("the shop's login page", |u, _| {
            u.ends_with("/login?find=id")
        })
        .await;

        // A minor at checkout: the underage page names the age and the rule.
        d.delete_cookies().await;
        d.go(&env.url("/checkout")).await;
        if !phone {
            d.click("#verigate-start").await;
        }
        fill_sandbox_form(&d, "김아이", &eighteen_today()).await;
        d.wait_for("the underage page", |u, s| {
            u.ends_with("/checkout") && s.contains("403 · underage")
        })
        .await;
        assert_framed_in_browser(&d, &format!("{tag}: underage")).await;
        d.shot(&format!("site-underage-{tag}")).await;
        let rule = d
            .exec("return Array.from(document.querySelectorAll('.rule')).map(function (e) { return e.innerText; });")
            .await;
        assert_eq!(
            rule,
            serde_json::json!([
                "만 19세 이상 (청소년보호법 기준: 19세가 되는 해의 1월 1일부터)",
                "Age 19 or over (Youth Protection Act rule: from 1 January of the year you turn 19)"
            ]),
            "{tag}"
        );
        d.quit().await;
    }
}
