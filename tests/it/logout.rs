//! Logout ends a session everywhere: the old cookie, replayed, opens nothing on any instance
//! sharing the store (within a poll); only this site's own pages can log a person out.

use crate::common::*;
use std::time::{Duration, Instant};

/// A browser of `env` with a verified session (cookie `vg`) for `/member`, certified in the
/// sandbox `env`'s Iamport uses.
async fn verified(env: &Env, sandbox: std::net::SocketAddr) -> Browser {
    let mut b = env.browser();
    let r = b
        .verify_redirect(sandbox, "/member", &Person::adult())
        .await;
    assert_eq!(r.status(), 302);
    assert!(b.jar.contains_key("vg"));
    assert_eq!(b.get_html("/member").await.status(), 200);
    b
}

/// Whether `b`'s cookies open the gated `/member` and `/session` on the instance at `proxy`.
async fn opens(b: &Browser, proxy: std::net::SocketAddr) -> bool {
    let mut b = b.clone();
    b.env_proxy = proxy;
    let page = b.get_html("/member").await.status();
    let info = b.get_json("/.verigate/session").await.status();
    assert_eq!(
        page == 200,
        info == 200,
        "the gate and /session agree ({page}, {info})"
    );
    page == 200
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_cookie_opens_nothing_on_any_instance() {
    let Some(url) = redis_url() else { return };
    let prefix = format!("vg-logout-{}:", std::process::id());
    let store = Storage::redis(&url).prefix(&prefix);
    let a = Env::with(Proxy::shop().store(store.clone())).await;
    let b_env = Env::with(
        Proxy::shop()
            .store(store)
            .provider(Provider::iamport().on_sandbox(a.sandbox)),
    )
    .await;
    let mut person = verified(&a, a.sandbox).await;
    let stolen = person.clone();
    assert!(opens(&stolen, a.proxy).await && opens(&stolen, b_env.proxy).await);

    let r = person.post("/.verigate/logout", "").await;
    assert_eq!(r.status(), 200);
    assert!(!person.jar.contains_key("vg"));
    let revoked_at = Instant::now();
    assert!(
        !opens(&stolen, a.proxy).await,
        "refused at once where the logout happened"
    );
    // The other instance learns it from the store: poll until it refuses (bounded).
    let mut delay = None;
    while revoked_at.elapsed() < Duration::from_secs(5) {
        // The gate alone here: /session, asked a moment later, may already have learnt it.
        let mut probe = stolen.clone();
        probe.env_proxy = b_env.proxy;
        if probe.get_html("/member").await.status() != 200 {
            delay = Some(revoked_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delay = delay.expect("the other instance still opens the revoked cookie after 5 s");
    println!("revocation reached the other instance after {delay:?}");
    // Stays refused; a fresh verification of the same person works again.
    assert!(!opens(&stolen, a.proxy).await && !opens(&stolen, b_env.proxy).await);
    let again = verified(&b_env, a.sandbox).await;
    assert!(opens(&again, a.proxy).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_this_sites_pages_can_log_a_person_out() {
    let env = Env::start().await;
    let mut b = verified(&env, env.sandbox).await;
    let host = env.proxy.to_string();
    let cross = [
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
        ("origin", "http://evil.example".to_string()),
        ("origin", format!("http://{host}.evil.example")),
        ("origin", "null".to_string()),
    ];
    for (name, value) in &cross {
        for accept in ["text/html", "application/json"] {
            let req = b
                .client
                .post(b.url("/.verigate/logout"))
                .header(*name, value)
                .header("accept", accept);
            let r = b.send(req).await;
            assert_eq!(
                refusal(r).await,
                (403, "cross_site".into()),
                "{name}: {value}"
            );
            assert!(b.jar.contains_key("vg"), "{name}: {value}");
            assert!(
                opens(&b, env.proxy).await,
                "{name}: {value} ended the session"
            );
        }
    }
    // The logout page: a GET shows the button, which posts from this site.
    let page = b.get_html("/.verigate/logout?return_to=%2Fmember").await;
    assert_eq!(page.status(), 200);
    // Never framed: its button cannot be clicked through another site's frame.
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(
        page.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/.verigate/logout?return_to=%2Fmember">"#),
        "{html}"
    );
    assert!(opens(&b, env.proxy).await, "a GET never logs out");
    let stolen = b.clone();
    let req = b
        .client
        .post(b.url("/.verigate/logout?return_to=%2Fmember"))
        .header("origin", format!("http://{host}"))
        .header("sec-fetch-site", "same-origin")
        .header("accept", "text/html");
    let r = b.send(req).await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/member");
    assert!(!opens(&stolen, env.proxy).await);
}
