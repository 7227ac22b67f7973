//! A real headless Chromium clicks through the pages a person sees: the choice page, the
//! start page's own script, the stand-in Iamport SDK, the sandbox window, back to the demo shop.
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); without them the
//! tests print SKIPPED and return, or fail when CI=true.

mod common;
use common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The key under which WebDriver (W3C) returns a found element's id.
const W3C_ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    base: String,
    session: String,
    http: reqwest::Client,
    _child: tokio::process::Child,
}

fn tool(name: &str) -> Option<String> {
    ["/usr/bin/", "/usr/local/bin/"]
        .iter()
        .map(|d| format!("{d}{name}"))
        .find(|p| std::path::Path::new(p).exists())
}

impl Driver {
    /// A WebDriver session on headless Chromium. When that cannot be had (the tools are
    /// missing, chromedriver or Chromium fails to start) the test reports SKIPPED through
    /// `skip::missing`, which fails it under CI=true: never a silent pass.
    async fn start() -> Option<Driver> {
        let (Some(driver), Some(chromium)) = (tool("chromedriver"), tool("chromium")) else {
            skip::missing(
                "Chromium and chromedriver",
                "apt-get install chromium chromium-driver",
            );
            return None;
        };
        match Self::launch(&driver, &chromium).await {
            Ok(d) => Some(d),
            Err(why) => {
                skip::missing("a working headless Chromium", &why);
                None
            }
        }
    }

    async fn launch(driver: &str, chromium: &str) -> Result<Driver, String> {
        let mut child = tokio::process::Command::new(driver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("chromedriver ({driver}) did not start: {e}"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or("chromedriver's stdout was not captured")?;
        let mut lines = BufReader::new(stdout).lines();
        let said = async move {
            let mut seen = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    if let Ok(port) = rest.trim_end_matches('.').parse::<u16>() {
                        return Ok(port);
                    }
                }
                seen.push(line);
            }
            Err(format!("it exited, having said {seen:?}"))
        };
        let port = match tokio::time::timeout(Duration::from_secs(30), said).await {
            Ok(Ok(port)) => port,
            Ok(Err(why)) => return Err(format!("chromedriver ({driver}) reported no port: {why}")),
            Err(_) => {
                return Err(format!(
                    "chromedriver ({driver}) reported no port within 30s"
                ))
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        let profile = tempfile::tempdir()
            .map_err(|e| format!("no temporary profile directory for Chromium: {e}"))?
            .keep();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=900,1000",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .map_err(|e| format!("chromedriver at {base} did not answer: {e}"))?
            .json()
            .await
            .map_err(|e| format!("chromedriver at {base} answered without JSON: {e}"))?;
        let Some(session) = v["value"]["sessionId"].as_str().map(String::from) else {
            // WebDriver's error message, without its stack trace of bare addresses.
            let why = v["value"]["message"]
                .as_str()
                .map_or_else(|| v.to_string(), String::from);
            return Err(format!(
                "chromedriver could not start Chromium ({chromium}): {why}"
            ));
        };
        Ok(Driver {
            base,
            session,
            http,
            _child: child,
        })
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Poll until an element is there (pages load asynchronously), then return its id.
    async fn find(&self, css: &str) -> String {
        for _ in 0..300 {
            let v = self
                .cmd(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": css}),
                )
                .await;
            // Only a found element carries this key: an error answer (`no such element`
            // while the next page is still on its way) is an object too, and taking its
            // first value as an id used to lose the next click.
            if let Some(id) = v.get(W3C_ELEMENT).and_then(|v| v.as_str()) {
                return id.to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no element {css} on {}:\n{}",
            self.url().await,
            self.source().await
        );
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn select(&self, css: &str, value: &str) {
        let script = format!("document.querySelector('{css}').value = '{value}';");
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await;
    }

    async fn wait_for(&self, what: &str, cond: impl Fn(&str, &str) -> bool) {
        for _ in 0..300 {
            let (u, s) = (self.url().await, self.source().await);
            if cond(&u, &s) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "timed out waiting for {what}: at {}\n{}",
            self.url().await,
            self.source().await
        );
    }

    async fn screenshot(&self, path: &str) {
        use base64::Engine;
        let v = self
            .cmd(reqwest::Method::GET, "/screenshot", json!({}))
            .await;
        if let Some(b) = v.as_str() {
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b) {
                let _ = std::fs::write(path, bytes);
            }
        }
    }

    async fn windows(&self) -> Vec<String> {
        let v = self
            .cmd(reqwest::Method::GET, "/window/handles", json!({}))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }

    async fn switch(&self, handle: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/window",
            json!({ "handle": handle }),
        )
        .await;
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

/// The demo shop behind verigate, with `/whoami` gated on `providers` (only those configured).
async fn whoami_env(providers: &[Provider]) -> Env {
    let mut proxy = Proxy::new()
        .route(Route::path("/whoami").providers(providers.iter().map(Provider::id)))
        .route(Route::prefix("/"));
    for p in providers {
        proxy = proxy.provider(p.clone());
    }
    Env::with(Setup::new(proxy).upstream(Upstream::DemoShop)).await
}

async fn fill_sandbox_form(d: &Driver, name: &str, birth: &str) {
    d.find("form[action='certify']").await;
    d.fill("input[name=name]", name).await;
    d.fill("input[name=birth]", birth).await;
    d.select("select[name=gender]", "female").await;
    d.click("button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_up_through_the_pages_redirect_mode() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let env = Env::with(Setup::default().upstream(Upstream::DemoShop)).await;
    d.go(&env.url("/signup")).await;
    // The choice page, then the start page whose script opens the sandbox window.
    d.click("a[data-provider=iamport]").await;
    d.click("#verigate-start").await;
    fill_sandbox_form(&d, "김철수", "19900101").await;
    d.wait_for("the demo shop's signup page", |u, s| {
        u.ends_with("/signup") && s.contains("x-verified-unique-in-site")
    })
    .await;
    let page = d.source().await;
    assert!(page.contains("x-verified-age-ok"), "{page}");
    assert!(page.contains("<code>true</code>"), "{page}");
    assert!(
        page.contains("김철수"),
        "forwarded name shown decoded: {page}"
    );
    d.screenshot(
        &std::env::temp_dir()
            .join("verigate-signup.png")
            .display()
            .to_string(),
    )
    .await;
    // Sign up: the app answers 201; a second signup of the same person would be refused.
    d.click("button[type=submit]").await;
    d.wait_for("account created", |_, s| s.contains("Account created"))
        .await;
    d.go(&env.url("/signup")).await;
    d.click("button[type=submit]").await;
    d.wait_for("duplicate refused", |_, s| s.contains("duplicate_account"))
        .await;
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_is_refused_and_popup_mode_works() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let proxy = Proxy::shop().provider(Provider::iamport().popup(true));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::DemoShop)).await;
    d.go(&env.url("/checkout")).await;
    d.click("a[data-provider=iamport]").await;
    let main = d.windows().await[0].clone();
    d.click("#verigate-start").await;
    // The SDK opens the certification popup; the person fills it in there.
    let mut popup = None;
    for _ in 0..300 {
        let w = d.windows().await;
        if w.len() > 1 {
            popup = w.into_iter().find(|h| *h != main);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let popup = popup.expect("certification popup opened");
    d.switch(&popup).await;
    fill_sandbox_form(&d, "어린이", "20150505").await;
    d.switch(&main).await;
    // The callback posts to /complete, the page follows the redirect, the gate refuses the minor.
    d.wait_for("the underage page", |_, s| s.contains("underage"))
        .await;
    assert!(d.source().await.contains("이용 가능한 나이가 아닙니다"));
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_visitor_and_an_ifree_member_use_the_pages() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let env = whoami_env(&[Provider::iamport(), Provider::tomo(), Provider::ifree()]).await;
    // TomoIDV: the choice page, the redirect to the TomoIDV window, and back.
    d.go(&env.url("/whoami")).await;
    d.click("a[data-provider=tomo]").await;
    d.find("form input[name=full_name]").await;
    d.fill("input[name=full_name]", "Jane Visitor").await;
    d.fill("input[name=date_of_birth]", "1985-07-14").await;
    d.click("button[type=submit]").await;
    d.wait_for("the demo shop's whoami page", |u, s| {
        u.ends_with("/whoami") && s.contains("x-verified-provider")
    })
    .await;
    assert!(d.source().await.contains("<code>tomo</code>"));
    assert!(d.source().await.contains("ppid."));
    // Forget it, then ifree: the start page's script runs the (stand-in) SDK; the member
    // registers with verigate through the sandbox, then logs in.
    d.go(&env.url("/")).await;
    // The logout post navigates on its own: mark this document, click, and wait for a new,
    // fully loaded one before going on (going earlier would cancel the logout).
    let run = |script: &'static str| {
        let d = &d;
        async move {
            d.cmd(
                reqwest::Method::POST,
                "/execute/sync",
                json!({"script": script, "args": []}),
            )
            .await
        }
    };
    run("window.__vgOld = true;").await;
    d.click("form[action='/.verigate/logout'] button").await;
    let mut landed = false;
    for _ in 0..300 {
        let v =
            run("return window.__vgOld === undefined && document.readyState === 'complete';").await;
        if v == Value::Bool(true) {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed, "the logout navigation finished");
    d.go(&env.url("/whoami")).await;
    assert!(
        d.url().await.contains("/.verigate/verify"),
        "logout ended the session"
    );
    d.click("a[data-provider=ifree]").await;
    d.click("#verigate-start").await;
    d.click("#register").await;
    d.click("button[data-member]").await;
    d.wait_for("whoami as an ifree member", |u, s| {
        u.ends_with("/whoami") && s.contains("<code>ifree</code>")
    })
    .await;
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_verifies_with_portone_through_the_page() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let env = whoami_env(&[Provider::portone()]).await;
    d.go(&env.url("/whoami")).await;
    d.click("a[data-provider=portone]").await;
    d.click("#verigate-start").await;
    d.find("form input[name=birthDate]").await;
    d.click("button[type=submit]").await;
    d.wait_for("whoami as a PortOne-verified person", |u, s| {
        u.ends_with("/whoami") && s.contains("<code>portone</code>")
    })
    .await;
    d.quit().await;
}

// ---- A form kept across the verification detour (README "Kept requests") ----------------

/// The recording app behind verigate: its `/form` page (open) posts to gated routes.
async fn kept_env() -> (Env, std::sync::Arc<recorder::Recorder>) {
    let (app, addr) = recorder::Recorder::spawn().await;
    let proxy = Proxy::new().provider(Provider::iamport()).routes([
        Route::path("/signup")
            .methods(["GET", "POST"])
            .providers(["iamport"])
            .min_age(19)
            .one_account(),
        Route::path("/upload").providers(["iamport"]),
        Route::prefix("/api").providers(["iamport"]),
        Route::prefix("/"),
    ]);
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    (env, app)
}

impl Driver {
    /// Size the window (390×844: a phone) and answer the page's own idea of its width.
    async fn size(&self, width: u32, height: u32) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
        self.run("return window.innerWidth;").await
    }

    /// Forget every cookie of 127.0.0.1 (cookies do not tell ports apart: a session of an
    /// earlier stack would be sent to the next one).
    async fn forget_cookies(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", json!({}))
            .await;
    }

    async fn run(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }
}

/// From verigate's choice page through the sandbox window (redirect mode), as a person.
async fn verify_on_the_pages(d: &Driver, name: &str, birth: &str) {
    d.click("a[data-provider=iamport]").await;
    d.click("#verigate-start").await;
    fill_sandbox_form(d, name, birth).await;
}

fn shot(name: &str) -> String {
    std::env::temp_dir()
        .join(format!("verigate-kept-{name}.png"))
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_without_a_session_arrives_once_after_verifying_phone_and_desktop() {
    let Some(d) = Driver::start().await else {
        return;
    };
    for (width, height, tag) in [(390, 844, "phone"), (1280, 900, "desktop")] {
        let (env, app) = kept_env().await;
        let inner = d.size(width, height).await;
        assert!(
            inner.as_u64().is_some_and(|w| w <= u64::from(width)),
            "window {inner}"
        );
        d.go(&env.url("/form")).await;
        d.forget_cookies().await;
        d.fill("#signup input[name=nickname]", "홍길동").await;
        d.fill("#signup textarea[name=about]", "keep this, please")
            .await;
        d.click("#send-signup").await;
        // Sent to verify, the form kept.
        d.find("a[data-provider=iamport]").await;
        assert!(d.url().await.contains("/.verigate/verify?return_to="));
        assert!(d.source().await.contains("Your form is kept"));
        d.screenshot(&shot(&format!("chooser-{tag}"))).await;
        verify_on_the_pages(&d, "김철수", "19900101").await;
        // The app's answer to the post: its redirect, followed by the browser.
        d.wait_for("the app's welcome page", |u, s| {
            u.ends_with("/welcome") && s.contains("id=\"welcome\"")
        })
        .await;
        d.screenshot(&shot(&format!("landed-{tag}"))).await;
        let posts = app.of("POST", "/signup");
        assert_eq!(posts.len(), 1, "{tag}");
        let body = String::from_utf8_lossy(&posts[0].body).into_owned();
        assert!(
            body.contains("nickname=%ED%99%8D%EA%B8%B8%EB%8F%99"),
            "{tag}: {body}"
        );
        assert!(body.contains("about=keep+this%2C+please"), "{tag}: {body}");
        assert!(posts[0].header("x-verified-unique-in-site").is_some());
        assert_eq!(posts[0].header("x-verified-age-ok"), Some("true"));
        // Reload, and the address it was posted to in a second tab: GETs, never the post.
        d.run("location.reload();").await;
        d.find("#welcome").await;
        let first = d.windows().await[0].clone();
        d.cmd(
            reqwest::Method::POST,
            "/window/new",
            json!({ "type": "tab" }),
        )
        .await;
        let tab = d
            .windows()
            .await
            .into_iter()
            .find(|h| *h != first)
            .expect("a second tab");
        d.switch(&tab).await;
        d.go(&env.url("/signup?from=form")).await;
        d.find("#page").await;
        d.cmd(reqwest::Method::DELETE, "/window", json!({})).await;
        d.switch(&first).await;
        assert_eq!(app.of("POST", "/signup").len(), 1, "{tag}: never twice");
        assert!(!app.of("GET", "/signup").is_empty(), "{tag}");
    }
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_upload_and_a_pages_json_are_kept_and_a_form_over_the_cap_is_not() {
    let Some(d) = Driver::start().await else {
        return;
    };
    d.size(390, 844).await;
    let (env, app) = kept_env().await;
    // Multipart with a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("photo.bin");
    let bytes: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    d.go(&env.url("/form")).await;
    d.fill("#upload input[name=title]", "사진").await;
    let input = d.find("#file").await;
    d.cmd(
        reqwest::Method::POST,
        &format!("/element/{input}/value"),
        json!({ "text": file.display().to_string() }),
    )
    .await;
    d.click("#send-upload").await;
    verify_on_the_pages(&d, "이영희", "19851212").await;
    d.wait_for("the app's upload answer", |u, s| {
        u.ends_with("/upload") && s.contains("id=\"uploaded\"")
    })
    .await;
    d.screenshot(&shot("upload-phone")).await;
    let posts = app.of("POST", "/upload");
    assert_eq!(posts.len(), 1);
    let body = &posts[0].body;
    assert!(
        body.windows(bytes.len()).any(|w| w == bytes.as_slice()),
        "the file, byte for byte"
    );
    assert!(posts[0]
        .header("content-type")
        .is_some_and(|c| c.starts_with("multipart/form-data; boundary=")));
    // The page shows the app's answer at the address it was posted to; a reload is a GET.
    d.run("location.reload();").await;
    d.find("#page").await;
    assert_eq!(app.of("POST", "/upload").len(), 1);

    // JSON sent by the page's own script: told to verify (the request kept), it goes there.
    let (env, app) = kept_env().await;
    d.go(&env.url("/form")).await;
    d.forget_cookies().await;
    d.click("#send-json").await;
    verify_on_the_pages(&d, "박민수", "19770303").await;
    d.wait_for("the app's JSON answer", |u, s| {
        u.ends_with("/api/items") && s.contains("\"created\":true")
    })
    .await;
    let posts = app.of("POST", "/api/items");
    assert_eq!(posts.len(), 1);
    let v: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(v, json!({ "item": "사과", "count": 3 }));

    // Over the cap (256 KB by default): the page says to verify, then send the form again.
    d.go(&env.url("/form")).await;
    d.forget_cookies().await;
    d.run("document.querySelector('#signup textarea').value = 'x'.repeat(300 * 1024);")
        .await;
    d.click("#send-signup").await;
    d.wait_for("the form-not-kept page", |_, s| s.contains("form_not_kept"))
        .await;
    d.screenshot(&shot("over-cap-phone")).await;
    let page = d.source().await;
    assert!(page.contains("양식을 다시 보내 주세요"), "{page}");
    d.click("a.button").await;
    d.find("a[data-provider=iamport]").await;
    assert!(app.of("POST", "/signup").is_empty());
    d.quit().await;
}
