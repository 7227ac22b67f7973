//! Every refusal page offers the next step: verify again, verify as someone else (the logout
//! that ends this session and starts a fresh verification back to the same page), and a way
//! back that stays on this site. The browser tests (tests/browser.rs) click the same steps.

use crate::common::*;

/// The action of the "verify as someone else" form on a page.
fn switch_action(html: &str) -> String {
    let at = html
        .find(r#"data-next="switch""#)
        .unwrap_or_else(|| panic!("no verify-as-someone-else step: {html}"));
    let form = html[..at].rfind("action=\"").expect("the step is a form") + 8;
    let end = html[form..].find('"').unwrap() + form;
    html[form..end].replace("&amp;", "&")
}

/// The href of the page's way back.
fn back_href(html: &str) -> String {
    let at = html
        .find(r#"data-next="back" href=""#)
        .unwrap_or_else(|| panic!("no way back: {html}"))
        + r#"data-next="back" href=""#.len();
    let end = html[at..].find('"').unwrap() + at;
    html[at..end].replace("&amp;", "&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_hands_over_and_an_adult_gets_through() {
    let env = Env::start().await;
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/checkout", &Person::born("20150505"))
        .await;
    assert_eq!(r.status(), 302);
    let minors_cookie = b.jar["vg"].clone();
    let page = b.get_html("/checkout").await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("403 · underage"), "{html}");
    // Verifying again as the same person cannot help: the step is someone else.
    assert!(!html.contains(r#"data-next="verify""#), "{html}");
    let action = switch_action(&html);
    assert_eq!(
        action,
        "/.verigate/logout?return_to=%2F.verigate%2Fverify%3Freturn_to%3D%252Fcheckout"
    );
    assert_eq!(back_href(&html), "/");
    // API clients keep their JSON, without the page's steps.
    let j = b.get_json("/checkout").await;
    assert_eq!(refusal(j).await, (403, "underage".into()));

    // The step is a logout, so only this site's own page may take it.
    let r = b
        .send(
            b.client
                .post(b.url(&action))
                .header("accept", "text/html")
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_eq!(refusal(r).await, (403, "cross_site".into()));
    assert_eq!(b.jar["vg"], minors_cookie, "a cross-site post ends nothing");

    // The button's post, as the browser sends it: the session ends, a fresh verification of
    // the same page starts.
    let r = b
        .send(
            b.client
                .post(b.url(&action))
                .header("accept", "text/html")
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/.verigate/verify?return_to=%2Fcheckout"
    );
    assert!(!b.jar.contains_key("vg"), "the session cookie is cleared");
    // Ended for good: the minor's cookie, presented again, is sent to verify.
    let r = env
        .client
        .get(env.url("/checkout"))
        .header("accept", "text/html")
        .header("cookie", format!("vg={minors_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    // One provider: the verify address goes on to its start page; an adult gets through.
    let r = b.get_html("/.verigate/verify?return_to=%2Fcheckout").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "/.verigate/iamport/start?return_to=%2Fcheckout"
    );
    let r = b
        .verify_redirect(env.sandbox, "/checkout", &Person::adult())
        .await;
    assert_eq!(r.headers()["location"], "/checkout");
    let hits = env.hits();
    assert_eq!(b.get_html("/checkout").await.status(), 200);
    assert_eq!(env.hits(), hits + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signup_by_form_shows_the_page_with_its_steps() {
    let env = Env::start().await;
    let mut b = env.browser();
    b.verify_redirect(env.sandbox, "/signup", &Person::adult())
        .await;
    let form = |b: &mut Browser| {
        b.client
            .post(b.url("/signup"))
            .header("accept", "text/html,application/xhtml+xml")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("referer", b.url("/signup"))
            .body("user=demo")
    };
    let req = form(&mut b);
    assert_eq!(b.send(req).await.status(), 201);
    let req = form(&mut b);
    let r = b.send(req).await;
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(html.contains("409 · duplicate_account"), "{html}");
    assert_eq!(
        switch_action(&html),
        "/.verigate/logout?return_to=%2F.verigate%2Fverify%3Freturn_to%3D%252Fsignup"
    );
    // Back to the form the post came from.
    assert_eq!(back_href(&html), "/signup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_way_back_stays_on_this_site() {
    let env = Env::with(
        Proxy::new()
            .provider(Provider::iamport())
            .provider(Provider::portone())
            .route(Route::path("/only").providers(["iamport"])),
    )
    .await;
    let here = env.proxy.to_string();
    let page = |method: &'static str, path: &'static str, referer: Option<String>| {
        let env = &env;
        async move {
            let mut req = env
                .client
                .request(method.parse().unwrap(), env.url(path))
                .header("accept", "text/html");
            if let Some(r) = referer {
                req = req.header("referer", r);
            }
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for (referer, want) in [
        (None, "/"),
        (
            Some(format!("http://{here}/shop/list?page=2")),
            "/shop/list?page=2",
        ),
        (Some(format!("https://{here}/a")), "/a"),
        (Some("http://elsewhere.example/shop".into()), "/"),
        (Some(format!("http://{here}//evil.example/")), "/"),
        (Some(format!("http://{here}/a\\b")), "/"),
        (Some("javascript:alert(1)".into()), "/"),
        (Some(format!("ftp://{here}/a")), "/"),
        // The page itself, asked for again: no loop.
        (Some(format!("http://{here}/nowhere")), "/"),
    ] {
        let (status, html) = page("GET", "/nowhere", referer.clone()).await;
        assert_eq!(status, 404);
        assert!(html.contains("404 · no_route"), "{html}");
        assert_eq!(back_href(&html), want, "{referer:?}");
    }
    // Written into the page escaped, whatever the path holds.
    let (_, html) = page(
        "GET",
        "/nowhere",
        Some(format!("http://{here}/q?x=%22%3E%3Cscript%3E&y=<b>")),
    )
    .await;
    assert!(
        !html.contains("<b>") && !html.contains("\"><script"),
        "{html}"
    );
    // A post goes back to the page it was sent from, even at its own address.
    let (status, html) = page("POST", "/nowhere", Some(format!("http://{here}/nowhere"))).await;
    assert_eq!(status, 404);
    assert_eq!(back_href(&html), "/nowhere");

    // A provider the page does not take: a step to the ways it does.
    let (status, html) = page("GET", "/.verigate/portone/start?return_to=%2Fonly", None).await;
    assert_eq!(status, 403);
    assert!(html.contains("403 · provider_not_accepted"), "{html}");
    assert!(
        html.contains(r#"data-next="verify" href="/.verigate/verify?return_to=%2Fonly""#),
        "{html}"
    );
}
