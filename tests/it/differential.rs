//! The differential suite: verigate in front of real app servers (Flask on waitress and on
//! werkzeug, Express 4 on Node, the JDK's HttpServer), each routing `/signup`, `/checkout/...`
//! and a catch-all natively. Every request family (request-target forms, path spellings in
//! every encoding, methods and their case, method overrides, format suffixes, slashes, `;`,
//! letter case) goes through with and without a verified session, and the assertion is that
//! the handler the app ran is one verigate's decision allowed (the Express app also runs the
//! `method-override` middleware on the header and on `_method`, as legacy apps do):
//!
//! - the app's `signup` handler ran only when verigate decided on the `signup` route (its
//!   identity headers, `x-verified-birth` among them, reached the app) with a method the route
//!   lists; `checkout` only when verigate decided on `checkout` (`x-verified-gender`);
//! - without a session, no gated handler ran at all.
//!
//! The apps report the handler in `X-Handler` and the identity headers they received in
//! `X-Identity`; verigate's own answers carry neither.

use crate::common::apps::{self, AppServer, Stack};
use crate::common::{Env, Person, Provider, Proxy, Route, Setup, Upstream};
use std::io::Write;

/// The route table, written as each app routes: Flask and Express route `/signup` exactly,
/// the JDK's `createContext("/signup")` is a string prefix (so is `/checkout` everywhere).
fn routes(stack: Stack) -> [Route; 3] {
    let signup = match stack {
        Stack::Jdk => Route::prefix("/signup"),
        _ => Route::path("/signup"),
    };
    [
        signup
            .methods(["GET", "POST"])
            .providers(["iamport"])
            .min_age(19)
            .one_account()
            .forward(["birth"]),
        Route::prefix("/checkout")
            .providers(["iamport"])
            .min_age(19)
            .max_session_age("10m")
            .forward(["gender"]),
        Route::prefix("/"),
    ]
}

/// Path spellings aimed at the gated handlers (and a few that must stay open).
const PATHS: &[&str] = &[
    "/signup",
    "/signup/",
    "/SIGNUP",
    "/SignUp/",
    "//signup",
    "///signup",
    "/signup//",
    "/%73ignup",
    "/sign%75p",
    "/%53IGNUP",
    "/signup;x",
    "/signup;jsessionid=1/",
    "/;x/signup",
    "/signup.json",
    "/signup.",
    "/signupX",
    "/signup~",
    "/signup%20",
    "/signup%3b",
    "/signup%3F",
    "/signup%23",
    "/signup%e2%80%8b",
    "/signup%2f",
    "/%2fsignup",
    "/signup%00",
    "/signup%09",
    "/signup\\",
    "/signup#frag",
    "/signup?x=1",
    "/x/../signup",
    "/./signup",
    "/signup/.",
    "/signup/..",
    "/open/../signup",
    "/open/%2e%2e/signup",
    "/open/%2E%2E/signup",
    "/open/.%2e/signup",
    "/open/..;/signup",
    "/open/%252e%252e/signup",
    "/open/%c0%ae%c0%ae/signup",
    "/%2573ignup",
    "/checkout",
    "/checkout/",
    "/checkout/x",
    "/Checkout/x",
    "/CHECKOUT",
    "/checkoutX",
    "/checkout;/x",
    "/checkout//x",
    "//checkout/x",
    "/checkout%00/x",
    "/checkout/..",
    "/checkout/../",
    "/checkout/%2e%2e",
    "/checkout/..;/",
    "/checkout/x/..",
    "/checkout\\..\\signup",
    "/checkout%2f..%2fsignup",
    "/open",
    "/open?next=/signup",
    "/",
];

/// Request targets that are not origin-form paths (HOST is the proxy's address).
const ODD_TARGETS: &[&str] = &[
    "x:/signup",
    "http:/signup",
    "x:signup",
    "signup",
    "*",
    "HOST",
    "HOST:80",
    "//HOST/signup",
    "mailto:signup",
];

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO",
    "CONNECT", "post", "Post", "get", "pUT",
];

/// Headers that let a client change the method or path an app acts on.
const OVERRIDES: &[(&str, &str)] = &[
    ("POST", "X-HTTP-Method-Override: PUT"),
    ("POST", "X-HTTP-Method-Override: delete"),
    ("GET", "X-HTTP-Method-Override: POST"),
    ("POST", "X-HTTP-Method: PATCH"),
    ("POST", "X-Method-Override: PUT"),
    ("POST", "X_HTTP_Method_Override: DELETE"),
    ("GET", "X-Original-URL: /signup"),
    ("GET", "X-Rewrite-URL: /signup"),
    ("GET", "X_Original_URL: /signup"),
];

/// Spoofed identity headers, each as some client could spell it.
const SPOOFS: &[&str] = &[
    "X-Verified-Unique-In-Site: evil",
    "x-verified-unique-in-site: evil",
    "X_Verified_Unique_In_Site: evil",
    "X-Verified-Unique-In-Site : evil",
    "X-Verified-Unique-In-Site:evil",
    "X-Verified-Birth: 1900-01-01",
];

struct Outcome {
    requests: usize,
    reached_app: usize,
    bypasses: Vec<String>,
}

/// The route verigate decided on, read from the identity headers the app received.
fn decided(identity: &str) -> &'static str {
    let names: Vec<&str> = identity.split(',').collect();
    if names.contains(&"x-verified-birth") {
        "signup"
    } else if names.contains(&"x-verified-gender") {
        "checkout"
    } else if names.contains(&"x-verified-unique-in-site") {
        "verified-other"
    } else {
        "open"
    }
}

fn request(method: &str, target: &str, host: &str, extra: &[&str]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !matches!(method, "GET" | "HEAD") {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// Send one request through verigate and judge what the app ran.
fn judge(out: &mut Outcome, proxy: std::net::SocketAddr, label: &str, req: &[u8]) {
    out.requests += 1;
    let (status, headers, body) = apps::raw_http(proxy, req);
    let Some(handler) = apps::header(&headers, "x-handler") else {
        return; // verigate answered itself
    };
    out.reached_app += 1;
    let identity = apps::header(&headers, "x-identity").unwrap_or_default();
    let decision = decided(&identity);
    // The method the app acted on (after its own method-override), else the request's.
    let method = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["method"].as_str().map(str::to_string))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(req)
                .split(' ')
                .next()
                .unwrap_or("")
                .to_string()
        });
    let ok = match handler.as_str() {
        "signup" => decision == "signup" && matches!(method.as_str(), "GET" | "HEAD" | "POST"),
        "checkout" => decision == "checkout",
        "catchall" => true,
        _ => false,
    };
    if !ok {
        out.bypasses.push(format!(
            "{label}: app ran `{handler}` ({status}) on verigate's `{decision}` decision [{identity}]"
        ));
    }
}

async fn run(stack: Stack) {
    let app: AppServer = match apps::start(stack) {
        Ok(a) => a,
        Err(why) => {
            crate::common::skip::missing(
                &format!("differential suite on {}: {why}", stack.name()),
                "bash tests/apps/setup.sh",
            );
            return;
        }
    };
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .routes(routes(stack));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(app.addr))).await;
    // A verified adult (for the session runs), born 2000-01-01.
    let mut b = env.browser();
    let r = b
        .verify_redirect(env.sandbox, "/checkout/x", &Person::adult())
        .await;
    assert_eq!(r.status(), 302, "verification completes");
    let cookie = format!("Cookie: vg={}", b.jar["vg"]);
    let proxy = env.proxy;
    let host = proxy.to_string();
    let name = stack.name();

    let out = tokio::task::spawn_blocking(move || {
        let mut out = Outcome {
            requests: 0,
            reached_app: 0,
            bypasses: Vec::new(),
        };
        let mut families = 0;
        for auth in [None, Some(cookie.as_str())] {
            let with: Vec<&str> = auth.into_iter().collect();
            let who = if auth.is_some() {
                "session"
            } else {
                "anonymous"
            };
            // Paths × methods, origin-form.
            for p in PATHS {
                for m in METHODS {
                    let label = format!("{name} {who} {m} {p}");
                    judge(&mut out, proxy, &label, &request(m, p, &host, &with));
                }
                // Absolute-form of the same path, plain and in capitals.
                for scheme in ["http", "HTTP"] {
                    for m in ["GET", "POST"] {
                        let t = format!("{scheme}://{host}{p}");
                        let label = format!("{name} {who} {m} {t}");
                        judge(&mut out, proxy, &label, &request(m, &t, &host, &with));
                    }
                }
                // Express's method-override reads `_method` from the query.
                for m in ["POST", "GET"] {
                    let sep = if p.contains('?') { '&' } else { '?' };
                    let t = format!("{p}{sep}%5Fmethod=DELETE");
                    let label = format!("{name} {who} {m} {t}");
                    judge(&mut out, proxy, &label, &request(m, &t, &host, &with));
                }
                // Overrides of method and path.
                for (m, h) in OVERRIDES {
                    let mut extra = with.clone();
                    extra.push(h);
                    let label = format!("{name} {who} {m} {p} [{h}]");
                    judge(&mut out, proxy, &label, &request(m, p, &host, &extra));
                }
            }
            families += 4;
            for t in ODD_TARGETS {
                let t = t.replace("HOST", &host);
                for m in METHODS {
                    let label = format!("{name} {who} {m} {t}");
                    judge(&mut out, proxy, &label, &request(m, &t, &host, &with));
                }
            }
            families += 1;
        }
        // Spoofed identity headers never reach the app, on any route.
        for p in ["/open", "/signup", "/checkout/x"] {
            for s in SPOOFS {
                out.requests += 1;
                let (status, headers, _) = apps::raw_http(proxy, &request("GET", p, &host, &[s]));
                if let Some(handler) = apps::header(&headers, "x-handler") {
                    out.reached_app += 1;
                    let identity = apps::header(&headers, "x-identity").unwrap_or_default();
                    if identity != "-" {
                        out.bypasses.push(format!(
                            "{name} GET {p} [{s}]: app `{handler}` ({status}) saw {identity}"
                        ));
                    }
                }
            }
        }
        families += 1;
        (out, families)
    })
    .await
    .unwrap();
    let (out, families) = out;
    let _ = writeln!(
        std::io::stderr(),
        "differential {name}: {} requests in {families} families, {} reached the app, {} bypasses",
        out.requests,
        out.reached_app,
        out.bypasses.len()
    );
    assert!(
        out.reached_app > 100,
        "{name}: only {} requests reached the app: is the suite sending what it should?",
        out.reached_app
    );
    assert!(
        out.bypasses.is_empty(),
        "{name}: {} bypasses:\n{}",
        out.bypasses.len(),
        out.bypasses.join("\n")
    );
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waitress() {
    run(Stack::Waitress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn werkzeug() {
    run(Stack::Werkzeug).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express() {
    run(Stack::Express).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdk() {
    run(Stack::Jdk).await;
}
