//! Test harness: the real proxy, the sandbox and an echoing upstream, all on 127.0.0.1:0.
//! One builder per role: the proxy under test (`Proxy`, with `Route`, `Provider`, `Storage`;
//! proxy.rs), the upstream app (`Upstream`; upstream.rs) and the provider sandbox (`Sandbox`);
//! `Setup` puts them together and `Env::with` starts them.
#![allow(dead_code)]
pub mod apps;
pub mod proxy;
pub mod recorder;
pub mod skip;
pub mod tls;
pub mod upstream;

pub use proxy::*;
pub use upstream::*;

use axum::Router;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use verigate::demo::sandbox;
use verigate::providers::sandbox::SandboxOptions;

pub fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

pub async fn spawn_router(r: Router) -> SocketAddr {
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, r).await;
    });
    a
}

/// A refusal's status and its stable code: the `error` of a JSON answer, or the code a
/// refusal page shows (`<p class="code">403 · not_certified</p>`).
pub async fn refusal(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let code = match serde_json::from_str::<Value>(&body) {
        Ok(v) => v["error"].as_str().map(String::from),
        Err(_) => body
            .split(r#"<p class="code">"#)
            .nth(1)
            .and_then(|s| s.split("</p>").next())
            .and_then(|s| s.split(" · ").nth(1))
            .map(String::from),
    };
    (
        status,
        code.unwrap_or_else(|| format!("no error code in: {body}")),
    )
}

/// Send `head` as written (any case, underscores, odd request lines) and read the whole answer.
pub async fn raw_request(addr: SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP forwarder in front of Redis that can be cut and restored: an outage on demand.
pub struct Cut {
    pub addr: std::net::SocketAddr,
    /// Set false to cut every connection (and refuse new ones), true to restore.
    pub up: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn cuttable(target: std::net::SocketAddr) -> Cut {
    use std::sync::atomic::Ordering;
    let l = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                return;
            };
            if !flag.load(Ordering::SeqCst) {
                drop(inbound);
                continue;
            }
            let flag = flag.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let (mut ri, mut wi) = inbound.split();
                let (mut ro, mut wo) = outbound.split();
                let watch = async {
                    while flag.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! {
                    _ = tokio::io::copy(&mut ri, &mut wo) => {}
                    _ = tokio::io::copy(&mut ro, &mut wi) => {}
                    _ = watch => {}
                }
            });
        }
    });
    Cut { addr, up }
}

/// The provider sandbox: one server for all four providers' stand-ins.
#[derive(Clone, Debug)]
pub struct Sandbox {
    token_ttl: Duration,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox {
            token_ttl: Duration::from_secs(1800),
        }
    }
}

impl Sandbox {
    /// How long the Iamport stand-in's access tokens live (30 minutes unless set).
    pub fn token_ttl(mut self, ttl: Duration) -> Sandbox {
        self.token_ttl = ttl;
        self
    }
}

/// A stack to start: the proxy under test, the upstream app behind it, the provider sandbox.
#[derive(Clone, Debug)]
pub struct Setup {
    pub proxy: Proxy,
    pub upstream: Upstream,
    pub sandbox: Sandbox,
}

impl Setup {
    /// `proxy` in front of the echo app, on a sandbox of its own.
    pub fn new(proxy: Proxy) -> Setup {
        Setup {
            proxy,
            upstream: Upstream::Echo,
            sandbox: Sandbox::default(),
        }
    }

    pub fn upstream(mut self, upstream: Upstream) -> Setup {
        self.upstream = upstream;
        self
    }

    pub fn sandbox(mut self, sandbox: Sandbox) -> Setup {
        self.sandbox = sandbox;
        self
    }
}

impl Default for Setup {
    /// The default stack: `Proxy::shop()` in front of the echo app.
    fn default() -> Self {
        Setup::new(Proxy::shop())
    }
}

impl From<Proxy> for Setup {
    fn from(proxy: Proxy) -> Setup {
        Setup::new(proxy)
    }
}

/// A running stack: the proxy (in this process), its admin listener, the sandbox, the upstream.
pub struct Env {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    /// The plain-HTTP listener that redirects to HTTPS, when the config has one.
    pub redirect: Option<SocketAddr>,
    pub sandbox: SocketAddr,
    pub upstream: SocketAddr,
    pub echo: Arc<Echo>,
    pub sim: Arc<verigate::providers::iamport::sandbox::Sim>,
    pub tomo: Arc<verigate::providers::tomo::sandbox::Sim>,
    pub ifree: Arc<verigate::providers::ifree::sandbox::Sim>,
    pub client: reqwest::Client,
    /// The config file, when `Proxy::reloadable`.
    pub config_path: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Env {
    /// The default stack (`Setup::default()`).
    pub async fn start() -> Env {
        Env::with(Setup::default()).await
    }

    /// Start a stack: a `Setup`, or just a `Proxy` (in front of the echo app).
    pub async fn with(setup: impl Into<Setup>) -> Env {
        let setup = setup.into();
        let (router, sims) = sandbox::router(SandboxOptions {
            token_ttl: setup.sandbox.token_ttl,
            ..SandboxOptions::default()
        });
        let sim = sims.iamport.clone();
        let tomo = sims.tomo.clone();
        let ifree = sims.ifree.clone();
        let sandbox = spawn_router(router).await;
        let echo = Arc::new(Echo::default());
        let upstream = setup.upstream.spawn(&echo).await;
        let text = in_process_yaml(&setup.proxy, sandbox, upstream);
        let secrets = setup.proxy.secrets();
        let cfg = verigate::config::from_yaml_str(&text, &secrets)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n{text}"));
        let dir = tempfile::tempdir().unwrap();
        let mut opts = verigate::BuildOptions::default();
        let mut config_path = None;
        if setup.proxy.reloadable {
            let path = dir.path().join("verigate.yaml");
            std::fs::write(&path, &text).unwrap();
            opts.reload = Some(verigate::reload::ReloadSource {
                path: path.clone(),
                secrets,
            });
            config_path = Some(path);
        }
        let built = verigate::build(cfg, opts).unwrap();
        let proxy = built.proxy_addr;
        let admin = built.admin_addr.unwrap();
        let redirect = built.redirect_addr;
        let stop = verigate::spawn(built.server);
        let client = client();
        if setup.proxy.start_unready {
            wait_path(&client, admin, "/healthz").await;
        } else {
            wait_ready(&client, admin).await;
        }
        Env {
            proxy,
            admin,
            redirect,
            sandbox,
            upstream,
            echo,
            sim,
            tomo,
            ifree,
            client,
            config_path,
            _dir: dir,
            _stop: stop,
        }
    }

    /// `proxy` as this stack's config file would hold it (this sandbox, this upstream).
    pub fn config_text(&self, proxy: &Proxy) -> String {
        in_process_yaml(proxy, self.sandbox, self.upstream)
    }

    /// Write `proxy` to the config file for the next reload (`Proxy::reloadable`).
    pub fn write_config(&self, proxy: &Proxy) {
        self.write_config_text(&self.config_text(proxy));
    }

    /// Write this text to the config file, as it is (a broken config, say).
    pub fn write_config_text(&self, text: &str) {
        let path = self.config_path.as_ref().expect("Proxy::reloadable");
        std::fs::write(path, text).unwrap();
    }

    /// `POST /reload` on the admin listener: its status and body.
    pub async fn reload(&self) -> (u16, String) {
        let r = self
            .client
            .post(format!("http://{}/reload", self.admin))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    pub fn hits(&self) -> usize {
        self.echo.hits.load(Ordering::SeqCst)
    }

    /// The last request head the raw upstream received (`Upstream::Raw`).
    pub fn last_head(&self) -> String {
        self.echo
            .last_head
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_default()
    }

    pub fn last_upstream(&self) -> Value {
        self.echo
            .last
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(Value::Null)
    }

    pub fn browser(&self) -> Browser {
        Browser {
            env_proxy: self.proxy,
            client: self.client.clone(),
            jar: HashMap::new(),
            origin: None,
        }
    }

    /// Poll /metrics until `ok` holds (counters move in the logging phase, just after the
    /// response is sent); returns the last scrape either way.
    pub async fn metrics_until(&self, ok: impl Fn(&str) -> bool) -> String {
        let mut m = self.metrics().await;
        for _ in 0..300 {
            if ok(&m) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            m = self.metrics().await;
        }
        m
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The config of a proxy started in this process. Many servers start and stop in one test
/// process. Pingora finds a no-steal runtime's pool through a thread-local keyed by thread ids,
/// which are recycled, so a later server's thread can inherit a stopped server's pool and hang
/// (cloudflare/pingora#981, fix proposed in #982). In-process servers therefore use the
/// work-stealing runtime; the binary tests (one server per process, `start_binary`) run the
/// default no-steal one.
fn in_process_yaml(proxy: &Proxy, sandbox: SocketAddr, upstream: SocketAddr) -> String {
    let mut v = proxy.to_value(sandbox, upstream);
    v["tuning"]["work_stealing"] = json!(true);
    serde_yaml::to_string(&v).unwrap()
}

/// Poll until the proxy's admin listener answers (readiness, not a sleep).
pub async fn wait_ready(client: &reqwest::Client, admin: SocketAddr) {
    wait_path(client, admin, "/readyz").await
}

/// Poll until `path` on the admin listener answers 200.
pub async fn wait_path(client: &reqwest::Client, admin: SocketAddr, path: &str) {
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("http://{admin}{path}")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("verigate did not become ready");
}

/// A person in the sandbox's certification window.
#[derive(Clone)]
pub struct Person {
    pub name: String,
    pub birth: String,
    pub phone: String,
    pub outcome: &'static str,
    pub certified_ago: i64,
}

impl Person {
    pub fn adult() -> Self {
        Person {
            name: "홍길동".into(),
            birth: "19900101".into(),
            phone: "01012345678".into(),
            outcome: "certified",
            certified_ago: 0,
        }
    }
    pub fn named(name: &str) -> Self {
        Person {
            name: name.into(),
            ..Person::adult()
        }
    }
    pub fn born(birth: &str) -> Self {
        Person {
            birth: birth.into(),
            name: format!("person-{birth}"),
            ..Person::adult()
        }
    }
}

/// A browser: remembers cookies (by name, one host), never follows redirects by itself.
#[derive(Clone)]
pub struct Browser {
    pub env_proxy: SocketAddr,
    pub client: reqwest::Client,
    pub jar: HashMap<String, String>,
    /// Where paths are sent (`https://shop.test:PORT`, say); `http://{env_proxy}` when None.
    pub origin: Option<String>,
}

/// What a started Iamport flow exposes on its page.
#[derive(Debug, Clone)]
pub struct Flow {
    pub params: Value,
    pub flow_cookie: String,
}

impl Flow {
    pub fn merchant_uid(&self) -> String {
        self.params["merchant_uid"].as_str().unwrap().to_string()
    }
}

pub fn flow_json(html: &str) -> Value {
    let start = html
        .find(r#"<script id="verigate-flow" type="application/json">"#)
        .expect("flow script block");
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</script>").unwrap();
    serde_json::from_str(&rest[open..close]).expect("flow JSON")
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn absorb(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let c = cookie::Cookie::parse(v.to_str().unwrap().to_string()).unwrap();
            let expired = c.max_age().is_some_and(|m| m.is_zero()) || c.value().is_empty();
            if expired {
                self.jar.remove(c.name());
            } else {
                self.jar.insert(c.name().to_string(), c.value().to_string());
            }
        }
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let req = if self.jar.is_empty() {
            req
        } else {
            req.header("cookie", self.cookie_header())
        };
        let resp = req.send().await.unwrap();
        self.absorb(&resp);
        resp
    }

    pub fn url(&self, path: &str) -> String {
        match &self.origin {
            Some(o) => format!("{o}{path}"),
            None => format!("http://{}{}", self.env_proxy, path),
        }
    }

    pub async fn get_html(&mut self, path: &str) -> reqwest::Response {
        self.open_html(&self.url(path)).await
    }

    /// A page navigation to an absolute URL (a provider's return URL, say).
    pub async fn open_html(&mut self, url: &str) -> reqwest::Response {
        let req = self.client.get(url).header("accept", "text/html");
        self.send(req).await
    }

    pub async fn get_json(&mut self, path: &str) -> reqwest::Response {
        let req = self
            .client
            .get(self.url(path))
            .header("accept", "application/json");
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, body: &str) -> reqwest::Response {
        let req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        self.send(req).await
    }

    /// Open the Iamport start page for `return_to`.
    pub async fn start_iamport(&mut self, return_to: &str) -> Flow {
        let enc: String = form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let r = self
            .get_html(&format!("/.verigate/iamport/start?return_to={enc}"))
            .await;
        assert_eq!(r.status(), 200, "start page");
        let html = r.text().await.unwrap();
        Flow {
            params: flow_json(&html),
            flow_cookie: ["vg_flow", "__Host-vg_flow"]
                .iter()
                .find_map(|n| self.jar.get(*n).cloned())
                .expect("flow cookie set"),
        }
    }

    /// The person fills in the sandbox window. Returns the Location the sandbox sends the
    /// browser to (redirect mode) or the popup page's data (callback mode).
    pub async fn certify(
        &self,
        sandbox: SocketAddr,
        flow: &Flow,
        p: &Person,
        redirect_mode: bool,
    ) -> Value {
        let mut form = vec![
            (
                "imp_code",
                flow.params["imp_code"].as_str().unwrap().to_string(),
            ),
            ("merchant_uid", flow.merchant_uid()),
            ("name", p.name.clone()),
            ("birth", p.birth.clone()),
            ("gender", "female".into()),
            ("phone", p.phone.clone()),
            ("carrier", "SKT".into()),
            ("foreigner", "false".into()),
            ("outcome", p.outcome.into()),
            ("certified_ago", p.certified_ago.to_string()),
        ];
        if redirect_mode {
            form.push((
                "m_redirect_url",
                flow.params["m_redirect_url"].as_str().unwrap().to_string(),
            ));
        }
        let r = self
            .client
            .post(format!("http://{sandbox}/iamport/certify"))
            .form(&form)
            .send()
            .await
            .unwrap();
        if redirect_mode {
            assert!(r.status().is_redirection(), "sandbox redirects back");
            let loc = r.headers()["location"].to_str().unwrap().to_string();
            let u = reqwest::Url::parse(&loc).unwrap();
            let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
            json!({ "location": loc, "imp_uid": q.get("imp_uid"), "merchant_uid": q.get("merchant_uid"), "success": q.get("success") })
        } else {
            let html = r.text().await.unwrap();
            let start = html.find("var d=").unwrap() + 6;
            let end = html[start..].find(";if(").unwrap() + start;
            serde_json::from_str(&html[start..end]).unwrap()
        }
    }

    /// Redirect mode, end to end: start, certify, return. Returns the return response.
    pub async fn verify_redirect(
        &mut self,
        sandbox: SocketAddr,
        return_to: &str,
        p: &Person,
    ) -> reqwest::Response {
        let flow = self.start_iamport(return_to).await;
        let back = self.certify(sandbox, &flow, p, true).await;
        let loc = back["location"].as_str().unwrap().to_string();
        let req = self.client.get(loc).header("accept", "text/html");
        self.send(req).await
    }

    /// Callback mode, end to end: start, certify in the popup, POST complete.
    pub async fn verify_callback(
        &mut self,
        sandbox: SocketAddr,
        return_to: &str,
        p: &Person,
    ) -> reqwest::Response {
        let flow = self.start_iamport(return_to).await;
        let data = self.certify(sandbox, &flow, p, false).await;
        self.complete(&data["imp_uid"], &data["merchant_uid"]).await
    }

    pub async fn complete(&mut self, imp_uid: &Value, merchant_uid: &Value) -> reqwest::Response {
        let req = self
            .client
            .post(self.url("/.verigate/iamport/complete"))
            .header("accept", "application/json")
            .json(&json!({ "imp_uid": imp_uid, "merchant_uid": merchant_uid }));
        self.send(req).await
    }
}

/// The value of one sample (`name{labels}`) in Prometheus text, 0 when it is not there yet.
pub fn metric(m: &str, sample: &str) -> f64 {
    m.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What an upstream app does with an assertion: find the key by `kid` in the JWKS, verify the
/// signature, `iss`, `aud`, `exp` and `nbf` (no leeway), with an independent JWT library.
pub fn verify_assertion(token: &str, jwks: &Value, audience: &str) -> Result<Value, String> {
    verify_assertion_of(token, jwks, audience, true)
}

/// [`verify_assertion`], `sub` required or not (an age-only route's assertion names no one).
pub fn verify_assertion_of(
    token: &str,
    jwks: &Value,
    audience: &str,
    with_sub: bool,
) -> Result<Value, String> {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let kid = decode_header(token)
        .map_err(|e| e.to_string())?
        .kid
        .ok_or("no kid")?;
    let set: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set.find(&kid).ok_or("kid not published")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[audience]);
    v.set_issuer(&["verigate-test"]);
    let required = ["exp", "nbf", "iat", "iss", "aud", "sub"];
    v.set_required_spec_claims(&required[..if with_sub { 6 } else { 5 }]);
    v.validate_nbf = true;
    v.leeway = 0;
    decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// The Redis to test against; without one, the test reports SKIPPED (fails under CI=true).
#[track_caller]
pub fn redis_url() -> Option<String> {
    match std::env::var("VERIGATE_TEST_REDIS") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            skip::missing(
                "Redis",
                "set VERIGATE_TEST_REDIS=redis://127.0.0.1:6379 with a Redis running there",
            );
            None
        }
    }
}

/// The address of the test Redis at `url` (`redis://HOST:PORT[/db]`), for tests that put a
/// proxy of their own between verigate and it.
pub fn redis_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("redis://")
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("VERIGATE_TEST_REDIS is not redis://HOST:PORT: {url}"))
}

/// Delete every key a test wrote under its prefix.
pub fn redis_cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut con) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut con)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query(&mut con);
    }
}

/// Fetch a certification straight from the sandbox API (what the real service holds).
pub async fn sandbox_certification(sandbox: SocketAddr, imp_uid: &str) -> Value {
    let c = client();
    let t: Value = c
        .post(format!("http://{sandbox}/iamport/users/getToken"))
        .json(&json!({"imp_key": "sandbox_key", "imp_secret": "sandbox_secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["response"]["access_token"].as_str().unwrap().to_string();
    let v: Value = c
        .get(format!("http://{sandbox}/iamport/certifications/{imp_uid}"))
        .header("authorization", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["response"].clone()
}

/// The verigate binary itself, as ops run it (so it can be killed with SIGKILL or sent SIGHUP).
pub struct Proc {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    /// Everything it wrote to stderr (its JSON logs), as it arrives.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_binary(config: &std::path::Path) -> Proc {
    start_binary_with(config, &[])
}

/// `start_binary` with more environment (`NOTIFY_SOCKET`, ...).
pub fn start_binary_with(config: &std::path::Path, extra_env: &[(&str, &str)]) -> Proc {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_verigate"))
        .args(["run", "-c"])
        .envs(extra_env.iter().copied())
        .arg(config)
        .env("VG_KEYS", SESSION_KEY)
        .env("VG_HASH", HASH_KEY)
        .env("IMP_KEY", "sandbox_key")
        .env("IMP_SECRET", "sandbox_secret")
        .env(
            "TOMO_KEY",
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK.trim(),
        )
        .env("IFREE_SECRET", "sandbox_secret")
        .env("PORTONE_SECRET", "sandbox_secret")
        .env("VG_ASSERT", &assertion_keys().0)
        .env("VG_ASSERT2", &assertion_keys().1)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (addr, admin) = loop {
        let line = lines
            .next()
            .expect("verigate exited before serving")
            .unwrap();
        log.lock().unwrap().push(line.clone());
        if line.contains("verigate serving") {
            let v: Value = serde_json::from_str(&line).unwrap();
            let addr = v["fields"]["listen"].as_str().unwrap().parse().unwrap();
            let admin = v["fields"]["admin"].as_str().and_then(|a| {
                a.trim_start_matches("Some(")
                    .trim_end_matches(')')
                    .parse()
                    .ok()
            });
            break (addr, admin);
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Proc {
        child,
        addr,
        admin,
        log,
    }
}
