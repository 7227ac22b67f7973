//! The differential suite: verigate in front of twelve real app servers from six ecosystems
//! (tests/common/apps.rs, docs/dev/differential-suite.md), each routing `/signup`,
//! `/checkout/...` and a catch-all natively and reporting what it read. Every stack meets
//! the same families of requests:
//!
//! - **paths**: request-target forms, path spellings in every encoding, methods and their case
//!   (anonymous and with a verified session);
//! - **overrides**: method and path overrides (headers, `_method`);
//! - **hosts**: on a second verigate whose routes match by `match.host` (every path of
//!   `shop.example` gated, `open.example` open), Host spellings an app server may split, trim,
//!   unbracket, lower-case or take the last of, two Host headers, absolute-form targets that
//!   disagree with Host: the app must never see `shop.example` on a request verigate did not
//!   gate;
//! - **header names**: identity, forwarding and override headers spelled with `_`, `.`, case
//!   and odd bytes, each carrying a value unique to the request: the app must never read it;
//! - **environment**: headers that CGI/WSGI-style servers trust as environment values
//!   (`SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`, `X-Script-Name`, ...): the path the app
//!   routes on and the user it sees must not be the client's;
//! - **redirects**: the app answers 301/307/308 to a one-account signup; the person can still
//!   sign up afterwards (and 303 counts as the signup done).
//!
//! Verdicts: the handler the app ran must be one verigate's decision allowed (the app's
//! `signup` only on verigate's signup route, with its identity; `checkout` only on checkout;
//! never a gated handler or host without a session), and no client-chosen value may appear in
//! what the app read. A request counts as refused only when verigate's own refusal code is in
//! the answer; a timeout, an empty answer or a 5xx fails the test; an app server's own 4xx
//! (no handler ran) is neither. Every family's request count is asserted.

use crate::common::apps::{self, AppServer, Stack};
use crate::common::{Env, Person, Provider, Proxy, Route, Setup, Upstream};
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use verigate::answers::Refusal;

/// The route table, written as each app routes: `/signup` exactly where the framework
/// routes it exactly; a prefix where it routes the subtree too (the JDK's
/// `createContext("/signup")` is a string prefix, Rack::URLMap mounts `/signup/...`).
/// `/checkout` is a prefix everywhere.
fn routes(stack: Stack) -> [Route; 3] {
    let signup = match stack {
        Stack::Jdk | Stack::Puma => Route::prefix("/signup"),
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
            .methods(["GET", "POST"])
            .providers(["iamport"])
            .min_age(19)
            .max_session_age("10m")
            .forward(["gender"]),
        Route::prefix("/"),
    ]
}

/// The gated host of the host family, and the open one.
const SHOP: &str = "shop.example";
const OPEN: &str = "open.example";

/// Every path of `shop.example` is gated; `open.example` is open.
fn host_routes() -> [Route; 2] {
    [
        Route::prefix("/")
            .name("shop")
            .host([SHOP])
            .providers(["iamport"])
            .forward(["gender"]),
        Route::prefix("/").name("open").host([OPEN]),
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
    "/signup%3f",
    "/signup%3Fx",
    "/signup%3f.json",
    "/signup%3F/x",
    "/signup%3F?a=1",
    "/signup%23",
    "/signup%23x",
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

/// Identity, forwarding and override headers (the names every app reads, see
/// tests/common/apps.rs): the header-name family sends each in every spelling below.
const PROTECTED: &[&str] = &[
    "X-Verified-Unique-In-Site",
    "X-Verified-Birth",
    "X-Verified-Gender",
    "X-Verified-Age-Ok",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Real-IP",
    "Forwarded",
    "X-Host",
    "X-Original-Host",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Original-URL",
    "X-Rewrite-URL",
];

/// The method-override names among them (verigate decides with the method they name).
const METHOD_OVERRIDES: &[&str] = &[
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];

/// How a client may spell a header name so that some server folds it into the real one:
/// CGI-style servers (PHP, Rack, WSGI) turn `-` into `_` and so read `_` as `-`; others
/// fold case, or trim what they do not expect.
fn spellings(name: &str) -> Vec<String> {
    let mut v = vec![
        name.to_string(),
        name.to_ascii_lowercase(),
        name.to_ascii_uppercase(),
        name.replace('-', "_"),
        name.to_ascii_uppercase().replace('-', "_"),
        name.replace('-', "."),
        name.replacen('-', "_", 1),
        match name.rfind('-') {
            Some(i) => format!("{}_{}", &name[..i], &name[i + 1..]),
            None => format!("{name}_"),
        },
        format!("{name}_"),
        format!("_{name}"),
        format!("{name}-"),
        format!("{name}."),
        format!("{name}~"),
        format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_")),
    ];
    let mut seen = std::collections::HashSet::new();
    v.retain(|s| seen.insert(s.clone()));
    v
}

/// Header names that CGI/WSGI-style servers may take as the path prefix the app is mounted
/// at: sent with the target `/open/...` and the value `/open`, so that a server that believes
/// one routes the rest (`/signup`) as the app's own path.
const PREFIX_NAMES: &[&str] = &[
    "SCRIPT_NAME",
    "Script-Name",
    "SCRIPT-NAME",
    "script_name",
    "X-Script-Name",
    "X_Script_Name",
    "X-Forwarded-Prefix",
    "X_Forwarded_Prefix",
    "X-Forwarded-Path",
    "X-Envoy-Original-Path",
];
/// Targets for the prefix names: the part after the prefix is a gated handler's path.
const PREFIXED: &[(&str, &str)] = &[
    ("/open/signup", "/open"),
    ("/open/checkout/x", "/open"),
    ("/open/x/signup", "/open/x"),
];
/// Header names a server may take as the path itself (sent to `/open` with a gated path).
const PATH_NAMES: &[&str] = &[
    "PATH_INFO",
    "Path-Info",
    "PATH-INFO",
    "path_info",
    "X-Path-Info",
    "REQUEST_URI",
    "Request-Uri",
    "X-Request-Uri",
    "X-Original-Uri",
    "X_Original_URI",
];
const PATH_VALUES: &[&str] = &["/signup", "/checkout/x"];
/// Header names a server may take as the authenticated user (`REMOTE_USER`).
const USER_NAMES: &[&str] = &[
    "REMOTE_USER",
    "Remote-User",
    "REMOTE-USER",
    "remote_user",
    "X-Remote-User",
    "X_Remote_User",
    "X-Forwarded-User",
    "X-Auth-Request-User",
    "Auth-User",
    "PHP_AUTH_USER",
    "Php-Auth-User",
    "AUTH_TYPE",
];

/// Host header spellings (HOST stands for the gated host) that some app server may split,
/// trim, unbracket, lower-case, decode or take the last of.
const HOST_SPELLINGS: &[&str] = &[
    "HOST",
    "Shop.Example",
    "HOST.",
    "HOST..",
    "HOST:80",
    "HOST:",
    "HOST:0080",
    "HOST:8o",
    "HOST:80:80",
    "HOST.:80",
    " HOST",
    "HOST ",
    "HOST\t",
    "HOST,open.example",
    "open.example,HOST",
    "open.example, HOST",
    "open.example HOST",
    "HOST open.example",
    "[HOST]",
    "[HOST]:80",
    "shop%2eexample",
    "%73hop.example",
    "HOST%00",
    "HOST%20",
    "user@HOST",
    "open.example@HOST",
    "HOST@open.example",
    "user:pw@HOST:80",
    "HOST:80@open.example",
    "HOST_",
    "_HOST",
    "shop_example",
    "HOST/",
    "HOST/x",
    "HOST\\",
    "HOST?",
    "HOST#",
    "HOST;",
    "HOST;open.example",
    "shop\u{3002}example",
    "shop\u{ff0e}example",
    "\u{17f}hop.example",
    "SHOP.EXAMPLE.",
    "open.example:80,HOST:80",
];
/// Targets sent with each Host spelling.
const HOST_TARGETS: &[&str] = &["/", "/signup", "/checkout/x"];
/// Absolute-form authorities sent with a Host header that names another host.
const DISAGREEING: &[(&str, &str)] = &[
    (OPEN, SHOP),
    (SHOP, OPEN),
    ("open.example:80", SHOP),
    ("user@open.example", SHOP),
    (OPEN, "shop.example."),
];
/// Host claims a client may add (verigate routes on the Host; the app must not see these).
const HOST_CLAIMS: &[&str] = &["X-Forwarded-Host", "X-Host", "X-Original-Host", "Forwarded"];

/// What became of one request.
enum Verdict {
    /// The app ran a handler (its JSON body, when it sent one).
    Ran {
        handler: String,
        status: u16,
        json: Value,
    },
    /// verigate refused it with its own code (or, for HEAD, a bodiless 4xx), or answered
    /// `OPTIONS *` itself.
    Refused,
    /// The app server answered 3xx, 4xx or 501 (a method it does not implement) itself: no
    /// handler ran.
    ServerAnswered,
}

#[derive(Default)]
struct Outcome {
    requests: usize,
    reached_app: usize,
    refused: usize,
    /// Requests that let the app run a handler or read a value it must not have.
    bypasses: Vec<String>,
    /// Requests that got no verdict: a timeout, an empty answer, a 5xx.
    failures: Vec<String>,
    /// Requests sent by each family (asserted: a family that silently sends nothing fails).
    families: Vec<(&'static str, usize, usize)>,
    /// `reached_app` when the current family began.
    family_reached: usize,
    /// What the app read on the last judged request that reached it.
    last_read: Option<Value>,
    /// verigate's refusals by code.
    codes: std::collections::BTreeMap<&'static str, usize>,
}

/// verigate's refusal codes that say a request was refused (the upstream's failures are not
/// refusals: a dead app fails the test).
fn refusal_codes() -> Vec<&'static str> {
    Refusal::ALL
        .iter()
        .filter(|r| !matches!(r, Refusal::UpstreamUnavailable | Refusal::UpstreamTimeout))
        .map(|r| r.code())
        .collect()
}

/// The refusal code `body` carries (JSON `error` or the page's code line), if any.
fn refusal_code(body: &str) -> Option<&'static str> {
    refusal_codes().into_iter().find(|c| {
        body.contains(&format!("\"error\":\"{c}\"")) || body.contains(&format!(" · {c}</p>"))
    })
}

/// A value unique to one request, so a report names the spelling that leaked it.
fn canary(n: usize) -> String {
    format!("cnry{n}z")
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

/// The request as sent, for reports.
fn show(req: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(req).trim_end())
}

impl Outcome {
    /// Send one request through verigate and classify the answer; `None` when it got no
    /// verdict (recorded in `failures`).
    fn send(&mut self, proxy: SocketAddr, label: &str, req: &[u8]) -> Option<Verdict> {
        self.requests += 1;
        let (status, headers, body) = apps::raw_http(proxy, req);
        if let Some(handler) = apps::header(&headers, "x-handler") {
            self.reached_app += 1;
            if status >= 500 {
                self.failures
                    .push(format!("{label}: app `{handler}` answered {status}"));
                return None;
            }
            let mut json = serde_json::from_str(&body).unwrap_or(Value::Null);
            if json.is_null() {
                // A bodiless answer (HEAD, a redirect): what the app received, from the
                // names in `X-Identity` (never a client's: `identity_from_names`).
                let names = apps::header(&headers, "x-identity").unwrap_or_default();
                json = serde_json::json!({ "read": identity_from_names(&names) });
            }
            return Some(Verdict::Ran {
                handler,
                status,
                json,
            });
        }
        let head = req.starts_with(b"HEAD ");
        if status == 0 {
            self.failures.push(format!(
                "{label}: no answer ({:?}) to {}",
                headers.chars().take(200).collect::<String>(),
                show(req)
            ));
            None
        } else if let Some(code) = refusal_code(&body) {
            self.refused += 1;
            *self.codes.entry(code).or_default() += 1;
            Some(Verdict::Refused)
        } else if status >= 500 && status != 501 {
            self.failures.push(format!(
                "{label}: {status} {:?}",
                body.chars().take(200).collect::<String>()
            ));
            None
        } else if (head && (400..500).contains(&status))
            || (req.starts_with(b"OPTIONS * ") && status == 204)
        {
            self.refused += 1;
            *self.codes.entry("(bodiless)").or_default() += 1;
            Some(Verdict::Refused)
        } else if (300..500).contains(&status) || status == 501 {
            Some(Verdict::ServerAnswered)
        } else {
            self.failures.push(format!(
                "{label}: {status} without a handler or a refusal code: {headers:?} {:?}",
                body.chars().take(200).collect::<String>()
            ));
            None
        }
    }

    /// Send, then judge the handler the app ran against verigate's decision, and that none
    /// of `canaries` appears in what the app read.
    fn judge(&mut self, proxy: SocketAddr, label: &str, req: &[u8], canaries: &[&str]) {
        self.last_read = None;
        let Some(Verdict::Ran {
            handler,
            status,
            json,
        }) = self.send(proxy, label, req)
        else {
            return;
        };
        let decision = decided(&json["read"]);
        self.last_read = Some(json["read"].clone());
        // The method the app acted on (after its own method-override), else the request's.
        let method = json["method"]
            .as_str()
            .map(str::to_string)
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
            self.bypasses.push(format!(
                "{label}: app ran `{handler}` ({status}) on verigate's `{decision}` decision; sent {}; app read {json}",
                show(req)
            ));
            return;
        }
        // What the app read (everything but the request target it echoes).
        let mut seen = json.clone();
        if let Some(o) = seen.as_object_mut() {
            o.remove("raw");
        }
        let seen = seen.to_string();
        if let Some(c) = canaries.iter().find(|c| seen.contains(**c)) {
            self.bypasses.push(format!(
                "{label}: app `{handler}` read the client's value {c:?}; sent {}; app read {json}",
                show(req)
            ));
        }
    }

    /// Record that family `family` sent `planned` requests since `before`.
    fn family(&mut self, family: &'static str, before: usize, planned: usize) {
        let sent = self.requests - before;
        assert!(sent > 0, "family {family} sent nothing");
        assert_eq!(
            sent, planned,
            "family {family}: sent {sent}, planned {planned}"
        );
        self.families
            .push((family, sent, self.reached_app - self.family_reached));
        self.family_reached = self.reached_app;
    }
}

/// The identity values standing for the `x-verified-*` names an app reported in
/// `X-Identity` (for answers without a JSON body).
fn identity_from_names(names: &str) -> Value {
    let mut read = serde_json::Map::new();
    for n in names.split(',').filter(|n| n.starts_with("x-verified-")) {
        read.insert(n.to_string(), Value::String("set".into()));
    }
    Value::Object(read)
}

/// The route verigate decided on, from the identity the app read (values verigate set; a
/// client's value carries a canary and never counts).
fn decided(read: &Value) -> &'static str {
    let set = |n: &str| {
        read[n]
            .as_str()
            .is_some_and(|v| !v.is_empty() && !v.contains("cnry"))
    };
    if set("x-verified-birth") {
        "signup"
    } else if set("x-verified-gender") {
        "checkout"
    } else if set("x-verified-unique-in-site") {
        "verified-other"
    } else {
        "open"
    }
}

/// The host a host-routing app would compare with its hosts: the framework's value, trimmed,
/// lower-cased, without brackets, port and trailing dots.
fn routed_host(h: &str) -> String {
    let mut h = h.trim().to_ascii_lowercase();
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.split_once(']')) {
        h = inner.0.to_string();
    }
    if let Some((name, port)) = h.rsplit_once(':') {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h = name.to_string();
        }
    }
    h.trim_end_matches('.').to_string()
}

/// Paths × methods, absolute forms and odd targets; then `_method` and override headers.
/// Anonymous and with a session.
fn paths_and_overrides(out: &mut Outcome, proxy: SocketAddr, name: &str, cookie: &str) {
    let host = proxy.to_string();
    for auth in [None, Some(cookie)] {
        let with: Vec<&str> = auth.into_iter().collect();
        let who = if auth.is_some() {
            "session"
        } else {
            "anonymous"
        };
        let before = out.requests;
        for p in PATHS {
            for m in METHODS {
                let label = format!("{name} paths {who} {m} {p}");
                out.judge(proxy, &label, &request(m, p, &host, &with), &[]);
            }
            // Absolute-form of the same path, plain and in capitals.
            for scheme in ["http", "HTTP"] {
                for m in ["GET", "POST"] {
                    let t = format!("{scheme}://{host}{p}");
                    let label = format!("{name} paths {who} {m} {t}");
                    out.judge(proxy, &label, &request(m, &t, &host, &with), &[]);
                }
            }
        }
        for t in ODD_TARGETS {
            let t = t.replace("HOST", &host);
            for m in METHODS {
                let label = format!("{name} paths {who} {m} {t}");
                out.judge(proxy, &label, &request(m, &t, &host, &with), &[]);
            }
        }
        out.family(
            if auth.is_some() {
                "paths (session)"
            } else {
                "paths (anonymous)"
            },
            before,
            PATHS.len() * (METHODS.len() + 4) + ODD_TARGETS.len() * METHODS.len(),
        );
        let before = out.requests;
        for p in PATHS {
            // Express's method-override reads `_method` from the query.
            for m in ["POST", "GET"] {
                let sep = if p.contains('?') { '&' } else { '?' };
                let t = format!("{p}{sep}%5Fmethod=DELETE");
                let label = format!("{name} overrides {who} {m} {t}");
                out.judge(proxy, &label, &request(m, &t, &host, &with), &[]);
            }
            for (m, h) in OVERRIDES {
                let mut extra = with.clone();
                extra.push(h);
                let label = format!("{name} overrides {who} {m} {p} [{h}]");
                out.judge(proxy, &label, &request(m, p, &host, &extra), &[]);
            }
        }
        out.family(
            if auth.is_some() {
                "overrides (session)"
            } else {
                "overrides (anonymous)"
            },
            before,
            PATHS.len() * (2 + OVERRIDES.len()),
        );
    }
}

/// Identity, forwarding and override headers in every spelling, each with a value of its
/// own: the app must never read one.
fn header_names(out: &mut Outcome, proxy: SocketAddr, name: &str, cookie: &str) {
    let host = proxy.to_string();
    let before = out.requests;
    let mut planned = 0;
    for base in PROTECTED {
        if METHOD_OVERRIDES.contains(base) {
            continue;
        }
        for spelled in spellings(base) {
            for (who, target, auth) in [
                ("anonymous", "/open", None),
                ("anonymous", "/signup", None),
                ("session", "/signup", Some(cookie)),
                ("session", "/checkout/x", Some(cookie)),
            ] {
                planned += 1;
                let c = canary(out.requests);
                // A path override carries a path (with the canary in it).
                let value = if base.ends_with("URL") {
                    format!("/{c}")
                } else {
                    c.clone()
                };
                let line = format!("{spelled}: {value}");
                let mut extra: Vec<&str> = auth.into_iter().collect();
                extra.push(&line);
                let label = format!("{name} header-names {who} GET {target} [{spelled}]");
                out.judge(proxy, &label, &request("GET", target, &host, &extra), &[&c]);
            }
        }
    }
    // Method overrides: verigate decides with the method they name (and forwards them), so
    // the value the app may read is one verigate saw. On the checkout route (GET and POST
    // only) a POST that names DELETE is refused; a spelling verigate misses must not bring
    // DELETE to the app.
    for base in METHOD_OVERRIDES {
        for spelled in spellings(base) {
            planned += 1;
            let line = format!("{spelled}: DELETE");
            let label = format!("{name} header-names session POST /checkout/x [{spelled}]");
            let req = request("POST", "/checkout/x", &host, &[cookie, &line]);
            out.judge(proxy, &label, &req, &[]);
            if let Some(bad) = out.last_read.as_ref().and_then(|read| {
                METHOD_OVERRIDES
                    .iter()
                    .map(|n| n.to_ascii_lowercase())
                    .find(|n| {
                        read[n.as_str()]
                            .as_str()
                            .is_some_and(|v| v.contains("DELETE"))
                    })
            }) {
                out.bypasses.push(format!(
                    "{label}: the app read {bad}: DELETE, a method the route does not allow; sent {}",
                    show(&req)
                ));
            }
        }
    }
    out.family("header names", before, planned);
}

/// Headers that CGI/WSGI-style servers trust as environment values: the routed path and
/// the user the app sees must not be the client's.
fn environment(out: &mut Outcome, proxy: SocketAddr, name: &str, cookie: &str) {
    let host = proxy.to_string();
    let before = out.requests;
    for h in PREFIX_NAMES {
        for (target, prefix) in PREFIXED {
            let line = format!("{h}: {prefix}");
            let label = format!("{name} environment anonymous GET {target} [{line}]");
            out.judge(proxy, &label, &request("GET", target, &host, &[&line]), &[]);
        }
    }
    for h in PATH_NAMES {
        for v in PATH_VALUES {
            let line = format!("{h}: {v}");
            let label = format!("{name} environment anonymous GET /open [{line}]");
            out.judge(
                proxy,
                &label,
                &request("GET", "/open", &host, &[&line]),
                &[],
            );
        }
    }
    for h in USER_NAMES {
        for (who, target, auth) in [
            ("anonymous", "/open", None),
            ("session", "/checkout/x", Some(cookie)),
        ] {
            let c = canary(out.requests);
            let line = format!("{h}: {c}");
            let mut extra: Vec<&str> = auth.into_iter().collect();
            extra.push(&line);
            let label = format!("{name} environment {who} GET {target} [{h}]");
            out.judge(proxy, &label, &request("GET", target, &host, &extra), &[&c]);
        }
    }
    out.family(
        "environment",
        before,
        PREFIX_NAMES.len() * PREFIXED.len()
            + PATH_NAMES.len() * PATH_VALUES.len()
            + USER_NAMES.len() * 2,
    );
}

/// Send one request of the host family: the app must not see the gated host on a request
/// verigate let through ungated.
fn judge_host(out: &mut Outcome, proxy: SocketAddr, label: &str, req: &[u8]) {
    let Some(Verdict::Ran {
        handler,
        status,
        json,
    }) = out.send(proxy, label, req)
    else {
        return;
    };
    let seen = json["host"].as_str().unwrap_or_default();
    let gated = decided(&json["read"]) != "open";
    if routed_host(seen) == SHOP && !gated {
        out.bypasses.push(format!(
            "{label}: app `{handler}` ({status}) served host {seen:?} ungated; sent {}; app read {json}",
            show(req)
        ));
    }
}

/// Host spellings on a verigate whose routes match by host.
fn hosts(out: &mut Outcome, proxy: SocketAddr, name: &str) {
    let before = out.requests;
    for spelled in HOST_SPELLINGS {
        let h = spelled.replace("HOST", SHOP);
        for t in HOST_TARGETS {
            let label = format!("{name} hosts GET {t} [Host: {h:?}]");
            judge_host(out, proxy, &label, &request("GET", t, &h, &[]));
        }
    }
    for t in HOST_TARGETS {
        // Two Host headers, in both orders.
        for (a, b) in [(OPEN, SHOP), (SHOP, OPEN)] {
            let label = format!("{name} hosts GET {t} [Host: {a}] [Host: {b}]");
            let second = format!("Host: {b}");
            judge_host(out, proxy, &label, &request("GET", t, a, &[&second]));
        }
        // A Host line folded onto a second line.
        let label = format!("{name} hosts GET {t} [Host: {OPEN} folded {SHOP}]");
        let folded = format!("{OPEN}\r\n {SHOP}");
        judge_host(out, proxy, &label, &request("GET", t, &folded, &[]));
        // Absolute-form targets that disagree with Host.
        for (authority, host) in DISAGREEING {
            for scheme in ["http", "https"] {
                let target = format!("{scheme}://{authority}{t}");
                let label = format!("{name} hosts GET {target} [Host: {host}]");
                judge_host(out, proxy, &label, &request("GET", &target, host, &[]));
            }
        }
        // HTTP/1.0 without a Host, the open host in the target.
        let req = format!("GET http://{OPEN}{t} HTTP/1.0\r\n\r\n").into_bytes();
        judge_host(
            out,
            proxy,
            &format!("{name} hosts HTTP/1.0 GET http://{OPEN}{t}"),
            &req,
        );
        // Host claims from the client.
        for claim in HOST_CLAIMS {
            let line = if *claim == "Forwarded" {
                format!("{claim}: host={SHOP}")
            } else {
                format!("{claim}: {SHOP}")
            };
            let label = format!("{name} hosts GET {t} [Host: {OPEN}] [{line}]");
            judge_host(out, proxy, &label, &request("GET", t, OPEN, &[&line]));
        }
    }
    out.family(
        "hosts",
        before,
        HOST_TARGETS.len()
            * (HOST_SPELLINGS.len() + 2 + 1 + 2 * DISAGREEING.len() + 1 + HOST_CLAIMS.len()),
    );
}

/// One POST of the redirect family: `want` is the app's status the person must get, or
/// `None` when verigate must refuse (a second signup).
fn signup_post(
    out: &mut Outcome,
    proxy: SocketAddr,
    name: &str,
    target: &str,
    cookie: &str,
    want: Option<u16>,
) {
    let host = proxy.to_string();
    let label = format!("{name} redirects POST {target}");
    let req = request("POST", target, &host, &[cookie]);
    match (out.send(proxy, &label, &req), want) {
        (
            Some(Verdict::Ran {
                handler,
                status,
                json,
            }),
            Some(w),
        ) => {
            let identity_ok = w != 200 || decided(&json["read"]) == "signup";
            if handler != "signup" || status != w || !identity_ok {
                out.bypasses.push(format!(
                    "{label}: want the signup handler's {w}, got `{handler}` {status} {json}"
                ));
            }
        }
        (Some(Verdict::Refused), None) => {}
        (
            Some(Verdict::Ran {
                handler, status, ..
            }),
            None,
        ) => out.bypasses.push(format!(
            "{label}: a second signup of the same person reached `{handler}` ({status})"
        )),
        (Some(Verdict::ServerAnswered), None) => out
            .failures
            .push(format!("{label}: the app server refused, not verigate")),
        (Some(_), Some(w)) => out.failures.push(format!(
            "{label}: the person cannot sign up (want the app's {w}): {}",
            show(&req)
        )),
        (None, _) => {}
    }
}

/// The app answers a one-account signup with a redirect: after 301, 307 and 308 the person
/// can still sign up; a 2xx signs them up (a second signup is refused); for another person a
/// 303 (post/redirect/get) counts as the signup done.
fn redirects(out: &mut Outcome, proxy: SocketAddr, name: &str, fresh: &str, other: &str) {
    let before = out.requests;
    for code in [301, 307, 308] {
        let target = format!("/signup?status={code}");
        signup_post(out, proxy, name, &target, fresh, Some(code));
    }
    signup_post(out, proxy, name, "/signup", fresh, Some(200));
    signup_post(out, proxy, name, "/signup", fresh, None);
    signup_post(out, proxy, name, "/signup?status=303", other, Some(303));
    signup_post(out, proxy, name, "/signup", other, None);
    out.family("redirects", before, 7);
}

/// A verified session cookie for `person`, verified through the sandbox on `env`.
async fn session(env: &Env, person: &Person) -> String {
    let mut b = env.browser();
    let r = b.verify_redirect(env.sandbox, "/checkout/x", person).await;
    assert_eq!(r.status(), 302, "verification completes");
    format!("Cookie: vg={}", b.jar["vg"])
}

async fn run(stack: Stack) {
    let name = stack.name();
    let app: AppServer = match apps::start(stack) {
        Ok(a) => a,
        Err(why) => {
            crate::common::skip::missing(
                &format!("differential suite on {name}: {why}"),
                "bash tests/apps/setup.sh",
            );
            return;
        }
    };
    let started = std::time::Instant::now();
    let proxy = Proxy::new()
        .provider(Provider::iamport())
        .routes(routes(stack));
    let env = Env::with(Setup::new(proxy).upstream(Upstream::At(app.addr))).await;
    let by_host = Proxy::new()
        .provider(Provider::iamport())
        .routes(host_routes());
    let host_env = Env::with(Setup::new(by_host).upstream(Upstream::At(app.addr))).await;
    // Three verified adults: one for the session runs, two for the redirect family.
    let cookie = session(&env, &Person::adult()).await;
    let fresh = session(&env, &Person::born("19920202")).await;
    let other = session(&env, &Person::born("19930303")).await;
    let (proxy, host_proxy) = (env.proxy, host_env.proxy);

    let out = tokio::task::spawn_blocking(move || {
        let mut out = Outcome::default();
        redirects(&mut out, proxy, name, &fresh, &other);
        paths_and_overrides(&mut out, proxy, name, &cookie);
        header_names(&mut out, proxy, name, &cookie);
        environment(&mut out, proxy, name, &cookie);
        hosts(&mut out, host_proxy, name);
        out
    })
    .await
    .unwrap();
    let families: Vec<String> = out
        .families
        .iter()
        .map(|(f, n, reached)| format!("{f} {n}/{reached}"))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "differential {name}: {} requests (family sent/reached the app: {}) in {:.1} s; {} reached the app, {} refused by verigate ({}), {} bypasses, {} without a verdict",
        out.requests,
        families.join(", "),
        started.elapsed().as_secs_f64(),
        out.reached_app,
        out.refused,
        out.codes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        out.bypasses.len(),
        out.failures.len()
    );
    assert!(
        out.reached_app > 100,
        "{name}: only {} requests reached the app: is the suite sending what it should?",
        out.reached_app
    );
    let mut problems = Vec::new();
    if !out.bypasses.is_empty() {
        problems.push(format!(
            "{} bypasses:\n{}",
            out.bypasses.len(),
            out.bypasses.join("\n")
        ));
    }
    if !out.failures.is_empty() {
        problems.push(format!(
            "{} requests without a verdict:\n{}",
            out.failures.len(),
            out.failures.join("\n")
        ));
    }
    assert!(problems.is_empty(), "{name}: {}", problems.join("\n"));
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
async fn gunicorn() {
    run(Stack::Gunicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uvicorn() {
    run(Stack::Uvicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express() {
    run(Stack::Express).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastify() {
    run(Stack::Fastify).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koa() {
    run(Stack::Koa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdk() {
    run(Stack::Jdk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetty() {
    run(Stack::Jetty).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php() {
    run(Stack::Php).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go() {
    run(Stack::Go).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puma() {
    run(Stack::Puma).await;
}
