//! A real headless Chromium clicks through the pages a person sees: the choice page, the
//! start page's own script, the stand-in Iamport SDK, the sandbox window, back to the demo shop.
//! Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); without them the
//! tests print SKIPPED and return, or fail when CI=true.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The key under which WebDriver (W3C) returns a found element's id.
const W3C_ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The layout check run in a page (see `Driver::layout_problems`). Korean words are runs of
/// Hangul up to the next space: each must lie on one line (`word-break: keep-all`).
const LAYOUT_CHECK: &str = r#"
var out = [], w = window.innerWidth;
if (document.documentElement.scrollWidth > w) { out.push('page wider than the screen: ' + document.documentElement.scrollWidth + ' > ' + w); }
var main = document.querySelector('main');
if (main) {
  var r = main.getBoundingClientRect();
  if (r.left < 8 || w - r.right < 8) { out.push('card touches the edge: left ' + r.left + ', right ' + (w - r.right)); }
}
var walker = document.createTreeWalker(main || document.body, NodeFilter.SHOW_TEXT), n;
while ((n = walker.nextNode())) {
  var re = /[가-힣][^\s]*/g, m;
  while ((m = re.exec(n.textContent))) {
    var range = document.createRange();
    range.setStart(n, m.index); range.setEnd(n, m.index + m[0].length);
    var tops = {};
    Array.prototype.forEach.call(range.getClientRects(), function (c) { if (c.width > 0) { tops[Math.round(c.top)] = 1; } });
    if (Object.keys(tops).length > 1) { out.push('Korean word broken over lines: ' + m[0]); }
  }
}
document.querySelectorAll('dl.headers dt').forEach(function (dt) {
  var lh = parseFloat(getComputedStyle(dt).lineHeight) || 20;
  if (dt.getBoundingClientRect().height > 2.5 * lh) { out.push('header name over several lines: ' + dt.textContent); }
});
return out;
"#;

/// A phone's browser, as the pages see it.
const PHONE_UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";

pub(crate) struct Driver {
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
    pub(crate) async fn start() -> Option<Driver> {
        Self::start_as(None).await
    }

    /// The same on a phone: a 390×844 screen, touch, and a phone's user agent (Chromium's
    /// device emulation), so pages take their phone paths.
    pub(crate) async fn phone() -> Option<Driver> {
        Self::start_as(Some(json!({
            "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true },
            "userAgent": PHONE_UA
        })))
        .await
    }

    pub(crate) async fn start_as(mobile: Option<Value>) -> Option<Driver> {
        let (Some(driver), Some(chromium)) = (tool("chromedriver"), tool("chromium")) else {
            skip::missing(
                "Chromium and chromedriver",
                "apt-get install chromium chromium-driver",
            );
            return None;
        };
        match Self::launch(&driver, &chromium, mobile).await {
            Ok(d) => Some(d),
            Err(why) => {
                skip::missing("a working headless Chromium", &why);
                None
            }
        }
    }

    pub(crate) async fn launch(
        driver: &str,
        chromium: &str,
        mobile: Option<Value>,
    ) -> Result<Driver, String> {
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
        let mut caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     format!("--user-data-dir={}", profile.display())]
        }}}});
        if let Some(m) = mobile {
            caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"]["mobileEmulation"] = m;
        }
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

    pub(crate) async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{}", self.base, self.session, path);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    pub(crate) async fn go(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub(crate) async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub(crate) async fn source(&self) -> String {
        self.cmd(reqwest::Method::GET, "/source", json!({}))
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Poll until an element is there (pages load asynchronously), then return its id.
    pub(crate) async fn find(&self, css: &str) -> String {
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

    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
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

    pub(crate) async fn select(&self, css: &str, value: &str) {
        let script = format!("document.querySelector('{css}').value = '{value}';");
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await;
    }

    pub(crate) async fn wait_for(&self, what: &str, cond: impl Fn(&str, &str) -> bool) {
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

    pub(crate) async fn screenshot(&self, path: &str) {
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

    pub(crate) async fn windows(&self) -> Vec<String> {
        let v = self
            .cmd(reqwest::Method::GET, "/window/handles", json!({}))
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }

    pub(crate) async fn switch(&self, handle: &str) {
        self.cmd(
            reqwest::Method::POST,
            "/window",
            json!({ "handle": handle }),
        )
        .await;
    }

    /// Run `script` (a function body; `return` gives the value) in the page.
    pub(crate) async fn exec(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Click something that navigates on its own (a form's button) and wait until a new
    /// document has fully loaded: going anywhere earlier would cancel the navigation.
    pub(crate) async fn click_and_wait_new_page(&self, css: &str) {
        self.exec("window.__vgOld = true;").await;
        self.click(css).await;
        for _ in 0..300 {
            let v = self
                .exec("return window.__vgOld === undefined && document.readyState === 'complete';")
                .await;
            if v == Value::Bool(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("clicking {css} loaded no new page: at {}", self.url().await);
    }

    /// An attribute of the first element matching `css`.
    pub(crate) async fn attr(&self, css: &str, name: &str) -> String {
        let id = self.find(css).await;
        self.cmd(
            reqwest::Method::GET,
            &format!("/element/{id}/attribute/{name}"),
            json!({}),
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_string()
    }

    pub(crate) async fn delete_cookies(&self) {
        self.cmd(reqwest::Method::DELETE, "/cookie", json!({}))
            .await;
    }

    /// Save a screenshot for a person to look at (under `VERIGATE_SHOTS`, else the temp dir).
    pub(crate) async fn shot(&self, name: &str) {
        let dir = std::env::var_os("VERIGATE_SHOTS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let _ = std::fs::create_dir_all(&dir);
        self.screenshot(&dir.join(format!("{name}.png")).display().to_string())
            .await;
    }

    /// What a person would see wrong with this page's layout: the page wider than the
    /// screen, the card touching a screen edge (less than 8 px), a Korean word broken across
    /// two lines, a header name of the demo split over lines. Empty when all is well.
    pub(crate) async fn layout_problems(&self) -> Vec<String> {
        let v = self.exec(LAYOUT_CHECK).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("layout check failed: {v}")])
    }

    pub(crate) async fn quit(&self) {
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

/// In the sandbox's window: verify as 김철수 (an adult), sign up at the demo shop, then sign up
/// again and land on the duplicate-account page.
pub(crate) async fn sign_up_twice(d: &Driver, env: &Env) {
    fill_sandbox_form(d, "김철수", "19900101").await;
    d.wait_for("the demo shop's signup page", |u, s| {
        u.ends_with("/signup") && s.contains("x-verified-unique-in-site")
    })
    .await;
    d.click("button[type=submit]").await;
    d.wait_for("account created", |_, s| s.contains("Account created"))
        .await;
    d.go(&env.url("/signup")).await;
    d.click("form[action='/signup'] button[type=submit]").await;
    d.wait_for("the duplicate page", |_, s| {
        s.contains("409 · duplicate_account")
    })
    .await;
}

pub(crate) async fn fill_sandbox_form(d: &Driver, name: &str, birth: &str) {
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
    // The route takes Iamport alone: no choice page, its start page at once, whose script
    // opens the sandbox window on the one click.
    d.wait_for("the Iamport start page", |u, _| {
        u.contains("/.verigate/iamport/start")
    })
    .await;
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

/// A birth date (YYYYMMDD) whose 18th birthday is today in Seoul: old enough for the window's
/// age hint (`youth_act` at 19 sends the international age 18), still a youth under the Youth
/// Protection Act (born in this year − 18), so the gate's own `underage` page answers. A
/// younger child is stopped inside the provider's window before any result exists.
pub(crate) fn eighteen_today() -> String {
    use chrono::Datelike;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Seoul)
        .date_naive();
    let born = today
        .with_year(today.year() - 18)
        .or_else(|| {
            today
                .pred_opt()
                .and_then(|d| d.with_year(today.year() - 18))
        })
        .expect("a date 18 years ago");
    born.format("%Y%m%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minor_is_refused_and_popup_mode_works() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let proxy = Proxy::shop().provider(Provider::iamport().popup(true));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::DemoShop)).await;
    d.go(&env.url("/checkout")).await;
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
    fill_sandbox_form(&d, "어린이", &eighteen_today()).await;
    d.switch(&main).await;
    // The callback posts to /complete, the page follows the redirect, the gate refuses the minor.
    d.wait_for("the underage page", |_, s| s.contains("underage"))
        .await;
    assert!(d.source().await.contains("이용 가능한 나이가 아닙니다"));
    d.find("[data-next=switch]").await;
    d.shot("desktop-underage").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
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
    d.find("a[data-provider=tomo]").await;
    d.shot("desktop-choice").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
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
    // The logout post navigates on its own: wait for it before going on.
    d.click_and_wait_new_page("form[action='/.verigate/logout'] button")
        .await;
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
    // One provider: its start page at once.
    d.click("#verigate-start").await;
    d.find("form input[name=birthDate]").await;
    d.click("button[type=submit]").await;
    d.wait_for("whoami as a PortOne-verified person", |u, s| {
        u.ends_with("/whoami") && s.contains("<code>portone</code>")
    })
    .await;
    d.quit().await;
}

// ---- A form post kept across the verification (README) ------------------------------

/// The recording app behind verigate: its `/form` page (open) posts to gated routes, each
/// on Iamport alone.
async fn kept_env() -> (Env, std::sync::Arc<recorder::Recorder>) {
    let (app, addr) = recorder::Recorder::spawn().await;
    let routes = recorder::kept_routes()
        .into_iter()
        .chain([Route::prefix("/")]);
    let proxy = Proxy::new().provider(Provider::iamport()).routes(routes);
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(addr))).await;
    (env, app)
}

/// Sent to verify with the form kept: one provider, so its start page at once. On a desktop
/// it says the form is kept and one click opens the sandbox window; on a phone the page
/// opens the window by itself.
async fn verify_kept(d: &Driver, phone: bool, name: &str, birth: &str) {
    if !phone {
        d.wait_for("the Iamport start page", |u, _| {
            u.contains("/.verigate/iamport/start")
        })
        .await;
        assert!(d.source().await.contains("Your form is kept"));
        d.shot("kept-start-desktop").await;
        assert_eq!(d.layout_problems().await, Vec::<String>::new());
        d.click("#verigate-start").await;
    }
    fill_sandbox_form(d, name, birth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_posted_without_a_session_arrives_once_after_verifying_phone_and_desktop() {
    for phone in [true, false] {
        let tag = if phone { "phone" } else { "desktop" };
        let started = match phone {
            true => Driver::phone().await,
            false => Driver::start().await,
        };
        let Some(d) = started else {
            return;
        };
        let (env, app) = kept_env().await;
        d.go(&env.url("/form")).await;
        d.fill("#signup input[name=nickname]", "홍길동").await;
        d.fill("#signup textarea[name=about]", "keep this, please")
            .await;
        d.click("#send-signup").await;
        verify_kept(&d, phone, "김철수", "19900101").await;
        // The app's answer to the post: its redirect, followed by the browser.
        d.wait_for("the app's welcome page", |u, s| {
            u.ends_with("/welcome") && s.contains("id=\"welcome\"")
        })
        .await;
        d.shot(&format!("kept-landed-{tag}")).await;
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
        d.exec("location.reload();").await;
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
        d.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_a_file_upload_and_a_pages_json_are_kept_and_a_form_over_the_cap_is_not() {
    let Some(d) = Driver::phone().await else {
        return;
    };
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
    verify_kept(&d, true, "이영희", "19851212").await;
    d.wait_for("the app's upload answer", |u, s| {
        u.ends_with("/upload") && s.contains("id=\"uploaded\"")
    })
    .await;
    let posts = app.of("POST", "/upload");
    assert_eq!(posts.len(), 1);
    assert!(
        posts[0]
            .body
            .windows(bytes.len())
            .any(|w| w == bytes.as_slice()),
        "the file, byte for byte"
    );
    assert!(posts[0]
        .header("content-type")
        .is_some_and(|c| c.starts_with("multipart/form-data; boundary=")));
    // The page shows the app's answer at the address it was posted to; a reload is a GET.
    d.exec("location.reload();").await;
    d.find("#page").await;
    assert_eq!(app.of("POST", "/upload").len(), 1);

    // JSON sent by the page's own script: told to verify (the request kept), it goes there.
    let (env, app) = kept_env().await;
    d.go(&env.url("/form")).await;
    // Cookies do not tell ports apart: the last stack's session would open this one.
    d.delete_cookies().await;
    d.click("#send-json").await;
    verify_kept(&d, true, "박민수", "19770303").await;
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
    d.delete_cookies().await;
    d.exec("document.querySelector('#signup textarea').value = 'x'.repeat(300 * 1024);")
        .await;
    d.click("#send-signup").await;
    d.wait_for("the form-not-kept page", |_, s| {
        s.contains("401 · form_not_kept")
    })
    .await;
    d.shot("kept-over-cap-phone").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    let page = d.source().await;
    assert!(page.contains("양식을 다시 보내 주세요"), "{page}");
    assert_eq!(
        href(&d, "[data-next=verify]").await,
        "/.verigate/verify?return_to=%2Fsignup%3Ffrom%3Dform"
    );
    d.click("[data-next=verify]").await;
    d.find("form[action='certify']").await;
    assert!(app.of("POST", "/signup").is_empty());
    d.quit().await;
}

/// The `href` of the first element matching `css`, as written in the page.
pub(crate) async fn href(d: &Driver, css: &str) -> String {
    d.find(css).await;
    d.exec(&format!(
        "return document.querySelector(\"{css}\").getAttribute('href');"
    ))
    .await
    .as_str()
    .unwrap_or("")
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_a_minor_hands_over_to_an_adult_and_no_click_opens_the_provider() {
    let Some(d) = Driver::phone().await else {
        return;
    };
    let env = Env::with(Setup::default().upstream(Upstream::DemoShop)).await;
    d.go(&env.url("/checkout")).await;
    // One provider, a phone: the verify address, the start page and its script bring the
    // person to the provider's window with no click at all.
    d.find("form[action='certify']").await;
    assert!(
        d.url().await.contains("/iamport/certify"),
        "{}",
        d.url().await
    );
    d.shot("phone-provider-window").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    fill_sandbox_form(&d, "김아이", &eighteen_today()).await;
    d.wait_for("the underage page", |u, s| {
        u.ends_with("/checkout") && s.contains("403 · underage")
    })
    .await;
    d.shot("phone-underage").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    // A way on: verify as someone else (the primary button here), and a way back.
    assert_eq!(href(&d, "[data-next=back]").await, "/");
    assert_eq!(
        d.attr("[data-next=switch]", "class").await,
        "button",
        "verify as someone else is the page's primary step"
    );
    d.click_and_wait_new_page("[data-next=switch]").await;
    // The minor's session has ended and a fresh verification back to /checkout has started:
    // again straight to the provider's window.
    d.find("form[action='certify']").await;
    fill_sandbox_form(&d, "김어른", "19800101").await;
    d.wait_for("the checkout page", |u, s| {
        u.ends_with("/checkout") && s.contains("Only verified adults")
    })
    .await;
    assert!(d.source().await.contains("x-verified-age-ok"));
    d.shot("phone-checkout").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_desktop_one_provider_is_one_click_away_and_form_refusals_are_pages() {
    let Some(d) = Driver::start().await else {
        return;
    };
    let iamport = Provider::iamport().set("channel_key", json!("channel-key-cert-2"));
    // The signup route opts out of keeping a form posted without a session, so that such a
    // post meets the 401 page (a kept one goes straight to verify: the kept tests below).
    let mut routes = shop_routes();
    routes[0] = Route::path("/signup")
        .methods(["GET", "POST"])
        .providers(["iamport"])
        .min_age(19)
        .one_account()
        .forward(["name", "birth"])
        .keep_request(json!(false));
    let proxy = Proxy::shop().provider(iamport).routes(routes);
    let env = Env::with(Setup::new(proxy).upstream(Upstream::DemoShop)).await;
    d.go(&env.url("/signup")).await;
    d.wait_for("the Iamport start page", |u, _| {
        u.contains("/.verigate/iamport/start")
    })
    .await;
    d.shot("desktop-start").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    // A desktop needs the click (the real SDK opens a popup there): one, and the provider's
    // window is open, on the merchant's own certification channel.
    d.click("#verigate-start").await;
    d.find("form[action='certify']").await;
    assert_eq!(
        d.exec("return document.getElementById('channel').textContent;")
            .await,
        "channel-key-cert-2"
    );
    // The same person signs up again: the 409 page, not JSON, with its ways on.
    sign_up_twice(&d, &env).await;
    let page = d.source().await;
    assert!(page.contains("이미 가입된 분입니다"), "{page}");
    assert!(!page.contains(r#"{"error""#), "{page}");
    d.find("[data-next=switch]").await;
    assert_eq!(
        href(&d, "[data-next=back]").await,
        "/signup",
        "back goes to the form"
    );
    d.shot("desktop-duplicate").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());

    // The session ends while the form is open: the post gets the 401 page with the way to
    // verify, which leads to the start page again.
    d.go(&env.url("/signup")).await;
    d.find("form[action='/signup']").await;
    d.delete_cookies().await;
    d.click("form[action='/signup'] button[type=submit]").await;
    d.wait_for("the verification-required page", |_, s| {
        s.contains("401 · verification_required")
    })
    .await;
    assert!(!d.source().await.contains(r#"{"error""#));
    assert_eq!(
        href(&d, "[data-next=verify]").await,
        "/.verigate/verify?return_to=%2Fsignup"
    );
    d.shot("desktop-verification-required").await;
    d.click("[data-next=verify]").await;
    d.wait_for("the start page", |u, _| {
        u.contains("/.verigate/iamport/start?return_to=%2Fsignup")
    })
    .await;
    d.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_choice_page_the_demo_and_logout_read_well() {
    let Some(d) = Driver::phone().await else {
        return;
    };
    let env = whoami_env(&[
        Provider::iamport(),
        Provider::portone(),
        Provider::tomo(),
        Provider::ifree(),
    ])
    .await;
    d.go(&env.url("/whoami")).await;
    d.find("a[data-provider=portone]").await;
    d.shot("phone-choice").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    // Two ways of the same kind (mobile phone) are told apart.
    let via = d
        .exec("return Array.from(document.querySelectorAll('.choice .via')).map(function (e) { return e.textContent; });")
        .await;
    let via: Vec<&str> = via
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(via.len(), 4, "{via:?}");
    let distinct: std::collections::HashSet<_> = via.iter().collect();
    assert_eq!(distinct.len(), 4, "{via:?}");
    // Chosen on a phone: the start page opens the window by itself.
    d.click("a[data-provider=iamport]").await;
    d.find("form[action='certify']").await;
    fill_sandbox_form(&d, "김철수", "19900101").await;
    d.wait_for("whoami", |u, s| {
        u.ends_with("/whoami") && s.contains("x-verified-provider")
    })
    .await;
    d.shot("phone-whoami").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    d.go(&env.url("/.verigate/logout?return_to=%2Fwhoami"))
        .await;
    d.find("form button[type=submit]").await;
    assert_eq!(href(&d, "[data-next=back]").await, "/whoami");
    d.shot("phone-logout").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    d.go(&env.url("/")).await;
    d.shot("phone-demo-home").await;
    assert_eq!(d.layout_problems().await, Vec::<String>::new());
    d.quit().await;
}
