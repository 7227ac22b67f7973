//! The proxy under test, as a config built from typed values: `Proxy` (top-level keys, the
//! upstream options, the session), `Route`, `Provider` and `Storage`. A `Proxy` becomes a
//! `serde_json::Value` tree, then YAML text, which `verigate::config::from_yaml_str` (or the
//! binary) reads as it reads an operator's file.

use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;

pub const SESSION_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
pub const HASH_KEY: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// The discard port, where nothing answers: the "sandbox" of binary tests that never verify.
pub const NO_SANDBOX: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    9,
));

/// Two assertion signing keys, made once per test process.
pub fn assertion_keys() -> &'static (String, String) {
    static KEYS: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        (
            verigate::assertion::fresh_pem(),
            verigate::assertion::fresh_pem(),
        )
    })
}

/// The secrets every test config names (`*_env` keys), as the binary gets them from its
/// environment (`start_binary`).
fn sandbox_secrets() -> HashMap<String, String> {
    [
        ("VG_ASSERT", assertion_keys().0.as_str()),
        ("VG_ASSERT2", assertion_keys().1.as_str()),
        ("VG_KEYS", SESSION_KEY),
        ("VG_HASH", HASH_KEY),
        ("IMP_KEY", "sandbox_key"),
        ("IMP_SECRET", "sandbox_secret"),
        ("IFREE_SECRET", "sandbox_secret"),
        ("PORTONE_SECRET", "sandbox_secret"),
        (
            "TOMO_KEY",
            verigate::providers::tomo::sandbox::SANDBOX_CLIENT_JWK.trim(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One route of the table. Its name defaults to its path (`/checkout` → `checkout`,
/// `/` → `everything-else`); `name` sets another.
#[derive(Clone, Debug)]
pub struct Route {
    name: String,
    matcher: Map<String, Value>,
    require: Option<Map<String, Value>>,
    forward: Vec<String>,
    upstream: Option<String>,
}

impl Route {
    fn new(key: &str, path: &str) -> Route {
        let name = match path.trim_matches('/') {
            "" => "everything-else".to_string(),
            p => p.replace('/', "-"),
        };
        let mut matcher = Map::new();
        matcher.insert(key.into(), json!(path));
        Route {
            name,
            matcher,
            require: None,
            forward: Vec::new(),
            upstream: None,
        }
    }

    /// `match: { path: ... }`: this path exactly.
    pub fn path(path: &str) -> Route {
        Route::new("path", path)
    }

    /// `match: { path_prefix: ... }`.
    pub fn prefix(path: &str) -> Route {
        Route::new("path_prefix", path)
    }

    pub fn name(mut self, name: &str) -> Route {
        self.name = name.into();
        self
    }

    /// `match.host`: only requests for these hosts (`shop.example`, `*.example.com`).
    pub fn host<const N: usize>(mut self, hosts: [&str; N]) -> Route {
        let v = match hosts.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        self.matcher.insert("host".into(), v);
        self
    }

    /// `upstream`: the named upstream (`Proxy::named_upstream`) its requests go to.
    pub fn upstream(mut self, name: &str) -> Route {
        self.upstream = Some(name.into());
        self
    }

    /// `match.methods`.
    pub fn methods<const N: usize>(mut self, methods: [&str; N]) -> Route {
        self.matcher
            .insert("methods".into(), json!(methods.as_slice()));
        self
    }

    /// `match.other_methods: next_route`: a method the route does not list goes on to the
    /// next route instead of a 405.
    pub fn other_methods_next_route(mut self) -> Route {
        self.matcher
            .insert("other_methods".into(), json!("next_route"));
        self
    }

    fn require(mut self, key: &str, value: Value) -> Route {
        self.require
            .get_or_insert_with(Map::new)
            .insert(key.into(), value);
        self
    }

    /// Any `require` key (`on_duplicate`, say).
    pub fn require_set(self, key: &str, value: Value) -> Route {
        self.require(key, value)
    }

    /// `require.providers`: the route is gated, on these providers.
    pub fn providers<S: AsRef<str>>(self, providers: impl IntoIterator<Item = S>) -> Route {
        let ids: Vec<String> = providers
            .into_iter()
            .map(|p| p.as_ref().to_string())
            .collect();
        self.require("providers", json!(ids))
    }

    /// `require.min_age`, counted under `age_rule: youth_act` (as the reference config does
    /// for 19); `.age_rule("birthday")` after it counts the international age instead.
    pub fn min_age(self, years: u32) -> Route {
        self.require("min_age", json!(years))
            .require("age_rule", json!("youth_act"))
    }

    /// `require.age_rule` (`youth_act`, `birthday`).
    pub fn age_rule(self, rule: &str) -> Route {
        self.require("age_rule", json!(rule))
    }

    /// `require.age_status: true`: an age-only route, which also takes an age status
    /// (`session.age_status_ttl`, `Proxy::age_status_ttl`).
    pub fn age_status(self) -> Route {
        self.require("age_status", json!(true))
    }

    /// `require.one_account_per_person: true`.
    pub fn one_account(self) -> Route {
        self.require("one_account_per_person", json!(true))
    }

    /// `require.one_account_scope` (`person`, `per_provider`).
    pub fn one_account_scope(self, scope: &str) -> Route {
        self.require("one_account_scope", json!(scope))
    }

    /// `require.commit_on` (`2xx`, `3xx`).
    pub fn commit_on<const N: usize>(self, classes: [&str; N]) -> Route {
        self.require("commit_on", json!(classes.as_slice()))
    }

    /// `require.max_session_age` (`10m`).
    pub fn max_session_age(self, age: &str) -> Route {
        self.require("max_session_age", json!(age))
    }

    /// `require.rejoin_after` (`30d`).
    pub fn rejoin_after(self, after: &str) -> Route {
        self.require("rejoin_after", json!(after))
    }

    /// `require.keep_request`: `false`, `true` or `{ max_body, ttl }`.
    pub fn keep_request(self, keep: Value) -> Route {
        self.require("keep_request", keep)
    }

    /// `forward`: the identity fields sent upstream beyond the defaults.
    pub fn forward<const N: usize>(mut self, fields: [&str; N]) -> Route {
        self.forward = fields.iter().map(|f| f.to_string()).collect();
        self
    }

    fn to_value(&self) -> Value {
        let mut r = json!({ "name": self.name, "match": self.matcher });
        if let Some(q) = &self.require {
            r["require"] = json!(q);
        }
        if !self.forward.is_empty() {
            r["forward"] = json!(self.forward);
        }
        if let Some(u) = &self.upstream {
            r["upstream"] = json!(u);
        }
        r
    }
}

/// The default test routes: a one-account signup (forwarding name and birth), a checkout
/// wanting a verification at most 10 minutes old, an adult area, members' pages, all on
/// Iamport, and everything else open.
pub fn shop_routes() -> Vec<Route> {
    vec![
        Route::path("/signup")
            .methods(["GET", "POST"])
            .providers(["iamport"])
            .min_age(19)
            .one_account()
            .forward(["name", "birth"]),
        Route::prefix("/checkout")
            .providers(["iamport"])
            .min_age(19)
            .max_session_age("10m"),
        Route::prefix("/adult").providers(["iamport"]).min_age(19),
        Route::prefix("/member").providers(["iamport"]),
        Route::prefix("/"),
    ]
}

/// One `providers.<id>` entry, pointed at the sandbox (`http://<sandbox>/<id>`) unless told
/// otherwise, with its SDK from there too and a 1 s timeout (the slow-provider tests stay
/// quick; a test may set its own).
#[derive(Clone, Debug)]
pub struct Provider {
    id: &'static str,
    /// Where the SDK is, under the base URL.
    sdk_path: Option<&'static str>,
    base_url: Option<String>,
    sandbox: Option<SocketAddr>,
    keys: Map<String, Value>,
    /// Secret values this provider's `*_env` keys name, beyond the sandbox's own.
    secrets: Vec<(&'static str, String)>,
}

impl Provider {
    fn new(id: &'static str, sdk_path: Option<&'static str>, keys: Value) -> Provider {
        let Value::Object(mut keys) = keys else {
            unreachable!()
        };
        keys.insert("timeout".into(), json!("1s"));
        Provider {
            id,
            sdk_path,
            base_url: None,
            sandbox: None,
            keys,
            secrets: Vec::new(),
        }
    }

    pub fn iamport() -> Provider {
        Provider::new(
            "iamport",
            Some("/js/iamport.js"),
            json!({ "imp_code": "imp12345678", "api_key_env": "IMP_KEY", "api_secret_env": "IMP_SECRET" }),
        )
    }

    pub fn tomo() -> Provider {
        Provider::new(
            "tomo",
            None,
            json!({ "client_id": "sandbox-client", "private_key_env": "TOMO_KEY" }),
        )
    }

    pub fn portone() -> Provider {
        Provider::new(
            "portone",
            Some("/js/browser-sdk.js"),
            json!({ "store_id": "store-sandbox", "channel_key": "channel-key-sandbox", "api_secret_env": "PORTONE_SECRET" }),
        )
    }

    pub fn ifree() -> Provider {
        Provider::new(
            "ifree",
            Some("/js/ifree.js"),
            json!({ "client_id": "sandbox-client", "secret_key_env": "IFREE_SECRET", "store_ubifill": true,
                "callback_allow_ips": ["127.0.0.1", "::1"] }),
        )
    }

    /// The id routes name it by (`iamport`, `tomo`, `portone`, `ifree`).
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Another base URL (a fake or dead provider); the SDK URL follows it.
    pub fn base_url(mut self, url: impl Into<String>) -> Provider {
        self.base_url = Some(url.into());
        self
    }

    /// Another running sandbox than the test's own (one a previous proxy used, say).
    pub fn on_sandbox(mut self, sandbox: SocketAddr) -> Provider {
        self.sandbox = Some(sandbox);
        self
    }

    pub fn timeout(self, t: &str) -> Provider {
        self.set("timeout", json!(t))
    }

    /// Iamport: the SDK opens a popup instead of redirecting.
    pub fn popup(self, on: bool) -> Provider {
        self.set("popup", json!(on))
    }

    /// Iamport: how old a certification may be when it is completed.
    pub fn max_result_age(self, age: &str) -> Provider {
        self.set("max_result_age", json!(age))
    }

    /// ifree: the only addresses whose callbacks are read.
    pub fn callback_allow_ips(self, ips: &[&str]) -> Provider {
        self.set("callback_allow_ips", json!(ips))
    }

    /// Iamport: the API secret verigate is given (the sandbox's is `sandbox_secret`).
    pub fn api_secret(mut self, secret: &str) -> Provider {
        self.secrets.push(("IMP_SECRET", secret.into()));
        self
    }

    /// Any other key of this provider's section.
    pub fn set(mut self, key: &str, value: Value) -> Provider {
        self.keys.insert(key.into(), value);
        self
    }

    fn to_value(&self, sandbox: SocketAddr) -> Value {
        let base = self
            .base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}/{}", self.sandbox.unwrap_or(sandbox), self.id));
        let mut v = Map::new();
        if let Some(sdk) = self.sdk_path {
            v.insert("sdk_url".into(), json!(format!("{base}{sdk}")));
        }
        v.insert("base_url".into(), json!(base));
        v.extend(self.keys.clone());
        Value::Object(v)
    }
}

/// The `store:` section.
#[derive(Clone, Debug)]
pub struct Storage(Value);

impl Storage {
    pub fn memory() -> Storage {
        Storage(json!({ "kind": "memory" }))
    }

    pub fn sqlite(path: impl AsRef<std::path::Path>) -> Storage {
        Storage(json!({ "kind": "sqlite", "path": path.as_ref().display().to_string() }))
    }

    /// `url` is `redis://host:port`.
    pub fn redis(url: &str) -> Storage {
        Storage(json!({ "kind": "redis", "url": url }))
    }

    /// Redis behind Sentinel: the master named `master`, asked of the sentinels at `addrs`.
    pub fn sentinel<S: AsRef<str>>(master: &str, addrs: impl IntoIterator<Item = S>) -> Storage {
        let addrs: Vec<String> = addrs.into_iter().map(|a| a.as_ref().to_string()).collect();
        Storage(json!({ "kind": "redis", "sentinel": { "master": master, "addrs": addrs } }))
    }

    /// `store.wait`: replicas that must acknowledge a decision, within `timeout`.
    pub fn wait(mut self, replicas: u32, timeout: &str) -> Storage {
        self.0["wait"] = json!({ "replicas": replicas, "timeout": timeout });
        self
    }

    /// The key prefix (Redis).
    pub fn prefix(mut self, prefix: &str) -> Storage {
        self.0["prefix"] = json!(prefix);
        self
    }
}

/// The proxy's whole config: providers, routes, store, upstream options and top-level keys.
/// Its upstream and sandbox addresses are filled in when it is started (`Env::with`) or
/// written for the binary (`to_yaml`).
#[derive(Clone, Debug)]
pub struct Proxy {
    providers: Vec<Provider>,
    routes: Vec<Route>,
    store: Storage,
    upstream: Map<String, Value>,
    /// `upstreams:` by name (each with its `addrs` already).
    named: Map<String, Value>,
    /// The default upstream's `addrs` as written (a name, say) instead of the stack's app.
    upstream_addrs: Option<Vec<String>>,
    session: Map<String, Value>,
    top: Map<String, Value>,
    /// Write the config to a file and enable reload (admin `POST /reload`).
    pub(super) reloadable: bool,
    /// Started, it may answer `/readyz` with 503 (an upstream without addresses yet): the
    /// stack waits for `/healthz` instead.
    pub(super) start_unready: bool,
}

impl Proxy {
    /// No providers, no routes, the memory store.
    pub fn new() -> Proxy {
        Proxy {
            providers: Vec::new(),
            routes: Vec::new(),
            store: Storage::memory(),
            upstream: json!({ "read_timeout": "5s" })
                .as_object()
                .unwrap()
                .clone(),
            session: json!({ "cookie": "vg", "ttl": "12h", "secure": false, "keys_env": "VG_KEYS", "hash_key_env": "VG_HASH" })
                .as_object()
                .unwrap()
                .clone(),
            named: Map::new(),
            upstream_addrs: None,
            // Tests start many verifications from 127.0.0.1: the start limit would refuse
            // them (tests/it/ratelimit.rs sets its own `limits`).
            top: json!({ "limits": { "verification_starts": {
                "per_client": { "burst": 100000, "per_minute": 100000 },
                "per_provider": { "burst": 100000, "per_minute": 100000 } } } })
            .as_object()
            .unwrap()
            .clone(),
            reloadable: false,
            start_unready: false,
        }
    }

    /// The default stack's proxy: Iamport and the shop's routes (`shop_routes`).
    pub fn shop() -> Proxy {
        Proxy::new()
            .provider(Provider::iamport())
            .routes(shop_routes())
    }

    /// Configure a provider, in place of any of the same id.
    pub fn provider(mut self, p: Provider) -> Proxy {
        self.providers.retain(|q| q.id != p.id);
        self.providers.push(p);
        self
    }

    pub fn route(mut self, r: Route) -> Proxy {
        self.routes.push(r);
        self
    }

    /// Replace the whole route table.
    pub fn routes(mut self, routes: impl IntoIterator<Item = Route>) -> Proxy {
        self.routes = routes.into_iter().collect();
        self
    }

    /// Insert `r` just before the route named `name`.
    pub fn route_before(mut self, name: &str, r: Route) -> Proxy {
        let at = self
            .routes
            .iter()
            .position(|q| q.name == name)
            .unwrap_or_else(|| panic!("no route named {name}"));
        self.routes.insert(at, r);
        self
    }

    pub fn store(mut self, s: Storage) -> Proxy {
        self.store = s;
        self
    }

    /// `upstream.preserve_header_case: true`.
    pub fn preserve_header_case(mut self) -> Proxy {
        self.upstream
            .insert("preserve_header_case".into(), json!(true));
        self
    }

    /// `upstream.http2: true`.
    pub fn upstream_http2(mut self) -> Proxy {
        self.upstream.insert("http2".into(), json!(true));
        self
    }

    /// `session.ttl` (12h unless set).
    pub fn session_ttl(mut self, ttl: &str) -> Proxy {
        self.session.insert("ttl".into(), json!(ttl));
        self
    }

    /// Any `session.<key>`, over what is there (`Value::Null` removes it: `keys_env` to use
    /// `keys_file` instead, `hash_key_env` to derive the hash key from the session keys).
    pub fn session_set(mut self, key: &str, value: Value) -> Proxy {
        match value {
            Value::Null => self.session.remove(key),
            v => self.session.insert(key.into(), v),
        };
        self
    }

    /// `session.age_status_ttl` (`365d`): age statuses are issued and accepted.
    pub fn age_status_ttl(mut self, ttl: &str) -> Proxy {
        self.session.insert("age_status_ttl".into(), json!(ttl));
        self
    }

    /// `session.secure`: verigate's cookies get the `__Host-` prefix (`__Host-vg`, ...).
    pub fn secure_cookies(mut self) -> Proxy {
        self.session.insert("secure".into(), json!(true));
        self
    }

    /// `timezone` (the gate's, for ages).
    pub fn timezone(self, tz: &str) -> Proxy {
        self.set("timezone", json!(tz))
    }

    /// `clients: { header_timeout, body_idle_timeout }`.
    pub fn client_timeouts(self, header: &str, body_idle: &str) -> Proxy {
        self.set(
            "clients",
            json!({ "header_timeout": header, "body_idle_timeout": body_idle }),
        )
    }

    /// `upstreams.<name>`: a named upstream at these addresses (`host:port`), with any other
    /// keys of `extra` (`eject_for`, ...). Routes choose it with `Route::upstream`.
    pub fn named_upstream<S: AsRef<str>>(
        mut self,
        name: &str,
        addrs: impl IntoIterator<Item = S>,
        extra: Value,
    ) -> Proxy {
        let addrs: Vec<String> = addrs.into_iter().map(|a| a.as_ref().to_string()).collect();
        let mut u = json!({ "addrs": addrs, "read_timeout": "5s" });
        if let Value::Object(m) = extra {
            u.as_object_mut().unwrap().extend(m);
        }
        self.named.insert(name.into(), u);
        self
    }

    /// The default upstream's `addrs` as written (names, dead addresses), in place of the
    /// stack's own app.
    pub fn upstream_addrs<S: AsRef<str>>(mut self, addrs: impl IntoIterator<Item = S>) -> Proxy {
        self.upstream_addrs = Some(addrs.into_iter().map(|a| a.as_ref().to_string()).collect());
        self
    }

    /// Any other key of the default upstream (`eject_for`, `eject_after`, ...).
    pub fn upstream_set(mut self, key: &str, value: Value) -> Proxy {
        self.upstream.insert(key.into(), value);
        self
    }

    /// The stack may start with an upstream that has no address yet (`/readyz` 503).
    pub fn may_start_unready(mut self) -> Proxy {
        self.start_unready = true;
        self
    }

    /// Write the config to a file and enable reload (`Env::config_path`, `Env::reload`).
    pub fn reloadable(mut self) -> Proxy {
        self.reloadable = true;
        self
    }

    /// Any other top-level key (`identity_headers`, `threads`, ...), over what is there.
    pub fn set(mut self, key: &str, value: Value) -> Proxy {
        self.top.insert(key.into(), value);
        self
    }

    /// `upstream.read_timeout` (default here `5s`).
    pub fn upstream_read_timeout(mut self, t: &str) -> Proxy {
        self.upstream.insert("read_timeout".into(), json!(t));
        self
    }

    /// The config tree for a proxy in front of `upstream`, its providers on `sandbox`.
    pub fn to_value(&self, sandbox: SocketAddr, upstream: SocketAddr) -> Value {
        let mut up = self.upstream.clone();
        let addrs = match &self.upstream_addrs {
            Some(a) => json!(a),
            None => json!([upstream.to_string()]),
        };
        up.insert("addrs".into(), addrs);
        let providers: Map<String, Value> = self
            .providers
            .iter()
            .map(|p| (p.id.to_string(), p.to_value(sandbox)))
            .collect();
        let routes: Vec<Value> = self.routes.iter().map(Route::to_value).collect();
        let mut v = json!({
            "listen": "127.0.0.1:0",
            "admin_listen": "127.0.0.1:0",
            "upstream": up,
            "threads": 2,
            "session": self.session,
            "providers": providers,
            "store": self.store.0,
            "routes": routes,
            // The lifetimes a merchant must choose, chosen (`set("records", null)` leaves them
            // out, and `check` warns).
            "records": { "retention": {
                "accounts": "until_forgotten",
                "ifree_members": "until_forgotten",
            } },
        });
        if !self.named.is_empty() {
            v["upstreams"] = json!(self.named);
        }
        v.as_object_mut().unwrap().extend(self.top.clone());
        v
    }

    /// The config file the binary reads (`start_binary`), as YAML.
    pub fn to_yaml(&self, sandbox: SocketAddr, upstream: SocketAddr) -> String {
        serde_yaml::to_string(&self.to_value(sandbox, upstream)).unwrap()
    }

    /// The secrets the config's `*_env` keys name.
    pub fn secrets(&self) -> verigate::config::Secrets {
        let mut m = sandbox_secrets();
        for p in &self.providers {
            for (k, v) in &p.secrets {
                m.insert(k.to_string(), v.clone());
            }
        }
        verigate::config::Secrets::from_map(m)
    }
}

impl Default for Proxy {
    /// `Proxy::new()`: nothing configured yet.
    fn default() -> Proxy {
        Proxy::new()
    }
}
