//! File types -> runtime types. Collects every problem instead of stopping at the first.

use super::duration;
use super::file::*;
use super::*;
use crate::identity::ProviderId;
use crate::routing::{MatchRule, Require, Route};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where secrets come from: environment variables (by name) and files (by path).
pub struct Secrets {
    env: Lookup,
}

impl Secrets {
    pub fn from_process() -> Self {
        Secrets {
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }

    /// For tests and the demo: a fixed map instead of the process environment.
    pub fn from_map(map: HashMap<String, String>) -> Self {
        Secrets {
            env: Box::new(move |k| map.get(k).cloned()),
        }
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }
}

struct Ctx<'a> {
    problems: Vec<Problem>,
    /// Valid, but probably not meant: printed by `check`, logged at start; never refuse.
    warnings: Vec<Problem>,
    secrets: &'a Secrets,
}

impl Ctx<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) => match duration::parse(v) {
                Ok(d) => d,
                Err(e) => {
                    self.err(path, e);
                    default
                }
            },
        }
    }

    /// A secret named either by `<base>_env` or `<base>_file`; exactly one must be set.
    fn secret(
        &mut self,
        path: &str,
        base: &str,
        env: Option<&str>,
        file: Option<&str>,
        required: bool,
    ) -> Option<String> {
        match (env, file) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.{base}_env"),
                    format!("set either {base}_env or {base}_file, not both"),
                );
                None
            }
            (Some(var), None) => match self.secrets.env(var) {
                Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                _ => {
                    self.err(
                        format!("{path}.{base}_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            },
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
                Ok(_) => {
                    self.err(format!("{path}.{base}_file"), format!("{f} is empty"));
                    None
                }
                Err(e) => {
                    self.err(
                        format!("{path}.{base}_file"),
                        format!("cannot read {f}: {e}"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.err(
                        path,
                        format!(
                            "missing {base}_env or {base}_file (secrets never live in the YAML)"
                        ),
                    );
                }
                None
            }
        }
    }

    fn url(&mut self, path: &str, value: Option<&str>, default: &str) -> String {
        let v = value.unwrap_or(default).trim_end_matches('/').to_string();
        if !(v.starts_with("https://") || v.starts_with("http://")) || v.len() < 10 {
            self.err(path, format!("`{v}` is not an http(s) URL"));
        }
        v
    }
}

fn socket_addr(ctx: &mut Ctx, path: &str, value: &str) -> Option<SocketAddr> {
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Some(a);
    }
    match value.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Some(a),
        _ => {
            ctx.err(
                path,
                format!("`{value}` is not an address (write host:port, e.g. 127.0.0.1:8080)"),
            );
            None
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parse and validate YAML text into a runtime config.
pub fn from_yaml_str(text: &str, secrets: &Secrets) -> Result<RuntimeConfig, ConfigError> {
    let file: FileConfig = serde_yaml::from_str(text).map_err(|e| {
        ConfigError::Invalid(vec![Problem {
            path: String::new(),
            message: e.to_string(),
        }])
    })?;
    let mut ctx = Ctx {
        problems: Vec::new(),
        warnings: Vec::new(),
        secrets,
    };
    let cfg = build(&mut ctx, file);
    match cfg {
        Some(cfg) if ctx.problems.is_empty() => Ok(cfg),
        _ => Err(ConfigError::Invalid(ctx.problems)),
    }
}

fn header(ctx: &mut Ctx, prefix: &str, suffix: &str) -> HeaderName {
    HeaderName::from_bytes(format!("{prefix}{suffix}").as_bytes()).unwrap_or_else(|_| {
        ctx.err(
            "identity_headers.prefix",
            format!("`{prefix}` does not make valid header names"),
        );
        HeaderName::from_static("x-verified-invalid")
    })
}

fn build(ctx: &mut Ctx, f: FileConfig) -> Option<RuntimeConfig> {
    let listen = socket_addr(ctx, "listen", &f.listen);
    let admin_listen = f
        .admin_listen
        .as_deref()
        .and_then(|a| socket_addr(ctx, "admin_listen", a))
        .map(|addr| Listen { addr });

    // upstream
    if f.upstream.addrs.is_empty() {
        ctx.err("upstream.addrs", "list at least one upstream address");
    }
    let addrs: Vec<SocketAddr> = f
        .upstream
        .addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| socket_addr(ctx, &format!("upstream.addrs[{i}]"), a))
        .collect();
    if f.upstream.tls && f.upstream.sni.is_empty() {
        ctx.err(
            "upstream.sni",
            "set the upstream's TLS server name when tls is true",
        );
    }
    let upstream = Upstream {
        addrs,
        tls: f.upstream.tls,
        sni: f.upstream.sni.clone(),
        connect_timeout: ctx.duration(
            "upstream.connect_timeout",
            f.upstream.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        read_timeout: ctx.duration(
            "upstream.read_timeout",
            f.upstream.read_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        preserve_header_case: f.upstream.preserve_header_case,
    };

    // flow prefix
    let flow_prefix = f.flow_prefix.unwrap_or_else(|| "/.verigate".into());
    if !flow_prefix.starts_with('/')
        || flow_prefix.len() < 2
        || flow_prefix.ends_with('/')
        || flow_prefix.contains(['?', '#', '%', ' '])
        || flow_prefix.contains("//")
    {
        ctx.err(
            "flow_prefix",
            format!("`{flow_prefix}` must be a path like /.verigate (leading /, no trailing /)"),
        );
    }
    let public_url = f
        .public_url
        .as_deref()
        .map(|u| ctx.url("public_url", Some(u), u));

    let timezone: Tz = match f.timezone.as_deref().unwrap_or("Asia/Seoul").parse() {
        Ok(tz) => tz,
        Err(_) => {
            ctx.err(
                "timezone",
                format!(
                    "`{}` is not an IANA time zone (e.g. Asia/Seoul)",
                    f.timezone.as_deref().unwrap_or_default()
                ),
            );
            chrono_tz::Asia::Seoul
        }
    };
    let threads = match f.threads {
        Some(0) => {
            ctx.err("threads", "must be at least 1");
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    };

    let tuning = {
        let t = f.tuning.as_ref();
        let pool = t.and_then(|t| t.upstream_keepalive_pool).unwrap_or(128);
        let tasks = t.and_then(|t| t.listener_tasks).unwrap_or(1);
        if tasks == 0 {
            ctx.err("tuning.listener_tasks", "must be at least 1");
        }
        Tuning {
            work_stealing: t.and_then(|t| t.work_stealing).unwrap_or(false),
            upstream_keepalive_pool: pool,
            listener_tasks: tasks.max(1),
        }
    };
    let clients = {
        let c = f.clients.as_ref();
        let mut limit = |key: &str, v: Option<&str>, default: u64| {
            let d = ctx.duration(&format!("clients.{key}"), v, Duration::from_secs(default));
            if d.is_zero() {
                ctx.err(format!("clients.{key}"), "must be longer than 0s");
            }
            d
        };
        Clients {
            header_timeout: limit(
                "header_timeout",
                c.and_then(|c| c.header_timeout.as_deref()),
                10,
            ),
            body_idle_timeout: limit(
                "body_idle_timeout",
                c.and_then(|c| c.body_idle_timeout.as_deref()),
                30,
            ),
        }
    };
    let session = session(ctx, &f.session);
    let identity = identity(ctx, f.identity_headers.as_ref());
    let assertion = f
        .identity_headers
        .as_ref()
        .and_then(|h| h.assertion.as_ref())
        .filter(|a| a.enabled)
        .and_then(|a| assertion(ctx, a));
    let providers = providers(ctx, &f.providers, &flow_prefix);
    sandbox_hosts(ctx, &providers);

    let store = match &f.store {
        None => StoreConfig::Sqlite {
            path: DEFAULT_SQLITE_PATH.into(),
        },
        Some(s) => store(ctx, s),
    };

    let mut keep = Forward::default();
    let mut routes = Vec::new();
    let mut names = HashSet::new();
    for (i, r) in f.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
        if !names.insert(name.clone()) {
            ctx.err(
                format!("routes[{i}].name"),
                format!("`{name}` is used by an earlier route"),
            );
        }
        if let Some(route) = route(ctx, i, r, &providers) {
            keep = keep.union(route.forward);
            routes.push((i, route));
        }
    }
    let (indices, routes): (Vec<usize>, Vec<Route>) = routes.into_iter().unzip();
    let routes = RouteTable::new(routes);
    for (later, earlier) in routes.shadowed() {
        let (Some(li), Some(ei)) = (indices.get(later), indices.get(earlier)) else {
            continue;
        };
        ctx.err(
            format!("routes[{li}].match"),
            format!(
                "route `{}` can never match: route `{}` (routes[{ei}]) above it takes all its requests",
                routes.routes()[later].name,
                routes.routes()[earlier].name
            ),
        );
    }

    let session = session?;
    Some(RuntimeConfig {
        listen: Listen { addr: listen? },
        admin_listen,
        listen_spec: f.listen.clone(),
        admin_spec: f.admin_listen.clone(),
        upstream,
        flow_prefix,
        public_url,
        timezone,
        threads,
        tuning,
        clients,
        session,
        identity,
        assertion,
        access_log: f.access_log.unwrap_or(true),
        providers,
        store,
        routes,
        keep_in_session: keep,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

fn assertion(ctx: &mut Ctx, a: &FileAssertion) -> Option<AssertionConfig> {
    let at = "identity_headers.assertion";
    let audience = match a.audience.as_deref().map(str::trim) {
        Some(aud) if !aud.is_empty() => aud.to_string(),
        _ => {
            ctx.err(
                format!("{at}.audience"),
                "name the audience the upstream app checks (e.g. my-app)",
            );
            String::new()
        }
    };
    let issuer = a.issuer.clone().unwrap_or_else(|| "verigate".into());
    let ttl = ctx.duration(
        &format!("{at}.ttl"),
        a.ttl.as_deref(),
        Duration::from_secs(60),
    );
    if ttl > Duration::from_secs(60) {
        ctx.err(format!("{at}.ttl"), "assertions live at most 60s");
    }
    let pem = ctx.secret(at, "key", a.key_env.as_deref(), a.key_file.as_deref(), true)?;
    let signer = match crate::assertion::Signer::from_pem(
        &pem,
        &issuer,
        &audience,
        ttl.as_secs().min(60) as i64,
    ) {
        Ok(s) => s,
        Err(e) => {
            let which = if a.key_env.is_some() {
                "key_env"
            } else {
                "key_file"
            };
            ctx.err(format!("{at}.{which}"), e.to_string());
            return None;
        }
    };
    let mut published = vec![signer.public().clone()];
    for (i, f) in a.previous_key_files.iter().enumerate() {
        let key = format!("{at}.previous_key_files[{i}]");
        match std::fs::read_to_string(f) {
            Err(e) => ctx.err(key, format!("cannot read {f}: {e}")),
            Ok(text) => match crate::assertion::public_of(&text) {
                Ok(p) => published.push(p),
                Err(e) => ctx.err(key, e.to_string()),
            },
        }
    }
    Some(AssertionConfig {
        signer: std::sync::Arc::new(signer),
        published,
    })
}

fn store(ctx: &mut Ctx, s: &FileStore) -> StoreConfig {
    let has_url = s.url.is_some() || s.url_env.is_some() || s.url_file.is_some();
    match s.kind.as_str() {
        "memory" => {
            if s.path.is_some() || has_url || s.prefix.is_some() {
                ctx.err("store", "kind memory takes no path, url or prefix");
            }
            StoreConfig::Memory
        }
        "sqlite" => {
            if has_url || s.prefix.is_some() {
                ctx.err("store", "kind sqlite takes a path, not a url or prefix");
            }
            let path = s.path.clone().unwrap_or_else(|| DEFAULT_SQLITE_PATH.into());
            if path.trim().is_empty() {
                ctx.err("store.path", "must not be empty");
            }
            StoreConfig::Sqlite { path }
        }
        "redis" => {
            if s.path.is_some() {
                ctx.err("store.path", "kind redis takes a url, not a path");
            }
            // A URL with a password is a secret: url_env / url_file keep it out of the YAML.
            let url = match (&s.url, &s.url_env, &s.url_file) {
                (Some(u), None, None) => Some(u.clone()),
                (None, env, file) if env.is_some() || file.is_some() => {
                    ctx.secret("store", "url", env.as_deref(), file.as_deref(), true)
                }
                (None, None, None) => {
                    ctx.err("store.url", "kind redis needs url (or url_env / url_file)");
                    None
                }
                _ => {
                    ctx.err("store.url", "set only one of url, url_env, url_file");
                    None
                }
            };
            let url = url.unwrap_or_default();
            if !url.is_empty() && redis::Client::open(url.as_str()).is_err() {
                ctx.err(
                    "store.url",
                    "not a Redis URL (redis://[:password@]host:port[/db], or rediss:// for TLS)",
                );
            }
            let prefix = s.prefix.clone().unwrap_or_else(|| "verigate:".into());
            if prefix.contains(char::is_whitespace) {
                ctx.err("store.prefix", "must not contain spaces");
            }
            StoreConfig::Redis { url, prefix }
        }
        other => {
            ctx.err(
                "store.kind",
                format!("unknown store `{other}` (expected sqlite, redis or memory)"),
            );
            StoreConfig::Memory
        }
    }
}

fn session(ctx: &mut Ctx, s: &FileSession) -> Option<SessionConfig> {
    let cookie = s
        .cookie
        .clone()
        .unwrap_or_else(|| "verigate_session".into());
    if !is_token(&cookie) || cookie.contains(['=', ';', ',']) {
        ctx.err(
            "session.cookie",
            format!("`{cookie}` is not a valid cookie name"),
        );
    }
    let ttl = ctx.duration(
        "session.ttl",
        s.ttl.as_deref(),
        Duration::from_secs(12 * 3600),
    );
    let raw = ctx.secret(
        "session",
        "keys",
        s.keys_env.as_deref(),
        s.keys_file.as_deref(),
        true,
    );
    let keys = match raw {
        None => None,
        Some(raw) => match Keyring::from_base64_list(&raw) {
            Ok(k) => Some(k),
            Err(e) => {
                let which = if s.keys_env.is_some() {
                    "keys_env"
                } else {
                    "keys_file"
                };
                ctx.err(format!("session.{which}"), e.to_string());
                None
            }
        },
    };
    let hash_raw = ctx.secret(
        "session",
        "hash_key",
        s.hash_key_env.as_deref(),
        s.hash_key_file.as_deref(),
        false,
    );
    let hash_key = match (&hash_raw, &keys) {
        (Some(raw), _) => match crate::session::decode_key(raw) {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.err("session.hash_key_env", e.to_string());
                None
            }
        },
        (None, Some(k)) => Some(k.derive_hash_key()),
        (None, None) => None,
    };
    let hash_key = hash_key?;
    let at_rest =
        Keyring::new(&[crate::session::derive_key(&hash_key, "verigate/at-rest/v1")]).ok()?;
    Some(SessionConfig {
        at_rest,
        flow_cookie: format!("{cookie}_flow"),
        cookie,
        ttl,
        secure: s.secure.unwrap_or(true),
        keys: keys?,
        hash_key,
    })
}

fn identity(ctx: &mut Ctx, h: Option<&FileIdentityHeaders>) -> IdentityHeaders {
    let prefix = h
        .and_then(|h| h.prefix.clone())
        .unwrap_or_else(|| "X-Verified-".into())
        .to_ascii_lowercase();
    if prefix.len() < 3 || !is_token(&prefix) {
        ctx.err(
            "identity_headers.prefix",
            format!("`{prefix}` must be a header-name prefix like X-Verified-"),
        );
    }
    let folded = prefix.replace('_', "-");
    IdentityHeaders {
        assertion: header(ctx, &folded, "assertion"),
        unique_in_site: header(ctx, &folded, "unique-in-site"),
        age_ok: header(ctx, &folded, "age-ok"),
        provider: header(ctx, &folded, "provider"),
        verified_at: header(ctx, &folded, "at"),
        name: header(ctx, &folded, "name"),
        birth: header(ctx, &folded, "birth"),
        gender: header(ctx, &folded, "gender"),
        phone: header(ctx, &folded, "phone"),
        prefix: folded,
    }
}

fn providers(ctx: &mut Ctx, p: &FileProviders, flow_prefix: &str) -> Providers {
    let iamport = p.iamport.as_ref().map(|i| {
        if i.imp_code.trim().is_empty() {
            ctx.err("providers.iamport.imp_code", "must not be empty");
        }
        let api_key = ctx.secret(
            "providers.iamport",
            "api_key",
            i.api_key_env.as_deref(),
            i.api_key_file.as_deref(),
            true,
        );
        let api_secret = ctx.secret(
            "providers.iamport",
            "api_secret",
            i.api_secret_env.as_deref(),
            i.api_secret_file.as_deref(),
            true,
        );
        IamportConfig {
            imp_code: i.imp_code.trim().to_string(),
            api_key: api_key.unwrap_or_default(),
            api_secret: api_secret.unwrap_or_default(),
            base_url: ctx.url(
                "providers.iamport.base_url",
                i.base_url.as_deref(),
                "https://api.iamport.kr",
            ),
            sdk_url: ctx.url(
                "providers.iamport.sdk_url",
                i.sdk_url.as_deref(),
                "https://cdn.iamport.kr/v1/iamport.js",
            ),
            timeout: ctx.duration(
                "providers.iamport.timeout",
                i.timeout.as_deref(),
                Duration::from_secs(5),
            ),
            max_result_age: ctx.duration(
                "providers.iamport.max_result_age",
                i.max_result_age.as_deref(),
                Duration::from_secs(300),
            ),
            popup: i.popup.unwrap_or(false),
        }
    });
    let tomo = p.tomo.as_ref().and_then(|t| tomo(ctx, t));
    let ifree = p.ifree.as_ref().and_then(|i| ifree(ctx, i, flow_prefix));
    let portone = p.portone.as_ref().and_then(|q| portone(ctx, q));
    Providers {
        iamport,
        tomo,
        ifree,
        portone,
    }
}

fn portone(ctx: &mut Ctx, p: &FilePortone) -> Option<PortoneConfig> {
    let at = "providers.portone";
    if p.store_id.trim().is_empty() {
        ctx.err(format!("{at}.store_id"), "must not be empty");
    }
    let base_url = ctx.url(
        &format!("{at}.base_url"),
        p.base_url.as_deref(),
        "https://api.portone.io",
    );
    let sdk_url = ctx.url(
        &format!("{at}.sdk_url"),
        p.sdk_url.as_deref(),
        "https://cdn.portone.io/v2/browser-sdk.js",
    );
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        p.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let max_result_age = ctx.duration(
        &format!("{at}.max_result_age"),
        p.max_result_age.as_deref(),
        Duration::from_secs(300),
    );
    let api_secret = ctx.secret(
        at,
        "api_secret",
        p.api_secret_env.as_deref(),
        p.api_secret_file.as_deref(),
        true,
    )?;
    Some(PortoneConfig {
        store_id: p.store_id.trim().to_string(),
        channel_key: p.channel_key.clone().unwrap_or_default(),
        api_secret,
        base_url,
        sdk_url,
        timeout,
        max_result_age,
    })
}

fn ifree(ctx: &mut Ctx, i: &FileIfree, flow_prefix: &str) -> Option<IfreeConfig> {
    use crate::crypto::ifree_cipher::Cipher;
    let at = "providers.ifree";
    if i.client_id.trim().is_empty() {
        ctx.err(format!("{at}.client_id"), "must not be empty");
    }
    let base_url = ctx.url(
        &format!("{at}.base_url"),
        i.base_url.as_deref(),
        "https://partner-auth.ifree.world",
    );
    let sdk_url = ctx.url(
        &format!("{at}.sdk_url"),
        i.sdk_url.as_deref(),
        "https://partner-auth.ifree.world/js/ifree-login.js",
    );
    let callback_path = match &i.callback_path {
        None => format!("{flow_prefix}/ifree/callback"),
        Some(p) => match crate::routing::path::normalize(p) {
            Ok(n) if n == *p => n.into_owned(),
            _ => {
                ctx.err(
                    format!("{at}.callback_path"),
                    format!("`{p}` must be a plain absolute path like /ifree/callback"),
                );
                String::new()
            }
        },
    };
    let mut callback_allow = Vec::new();
    for (j, ip) in i.callback_allow_ips.iter().enumerate() {
        match ip.parse() {
            Ok(a) => callback_allow.push(a),
            Err(_) => ctx.err(
                format!("{at}.callback_allow_ips[{j}]"),
                format!("`{ip}` is not an IP address"),
            ),
        }
    }
    let cipher = match i.cipher.as_deref() {
        None => Cipher::DEFAULT,
        Some(c) => Cipher::parse(c).unwrap_or_else(|| {
            ctx.err(
                format!("{at}.cipher"),
                format!("unknown cipher `{c}` (aes-256-cbc-key-iv, aes-256-cbc-iv-prefix)"),
            );
            Cipher::DEFAULT
        }),
    };
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        i.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let secret_key = ctx.secret(
        at,
        "secret_key",
        i.secret_key_env.as_deref(),
        i.secret_key_file.as_deref(),
        true,
    )?;
    Some(IfreeConfig {
        client_id: i.client_id.trim().to_string(),
        secret_key,
        base_url,
        sdk_url,
        callback_path,
        callback_allow,
        cipher,
        store_ubifill: i.store_ubifill,
        timeout,
    })
}

const TOMO_PRODUCTION: &str = "https://api.tomopayment.com";
const TOMO_SANDBOX: &str = "https://test.tomopayment.com";

/// Providers' own sandbox or test hosts: valid in a config, but what they verify is not real.
/// (The providers' public material names no separate test host for Iamport, PortOne V2 or
/// ifree.)
const SANDBOX_HOSTS: &[(&str, &str)] = &[(
    "test.tomopayment.com",
    "TomoIDV's sandbox host: its verifications are test data, not people (production: https://api.tomopayment.com)",
)];

/// A warning for every provider `base_url` on a known sandbox host.
fn sandbox_hosts(ctx: &mut Ctx, p: &Providers) {
    let urls = [
        ("iamport", p.iamport.as_ref().map(|c| c.base_url.as_str())),
        ("portone", p.portone.as_ref().map(|c| c.base_url.as_str())),
        ("tomo", p.tomo.as_ref().map(|c| c.base_url.as_str())),
        ("ifree", p.ifree.as_ref().map(|c| c.base_url.as_str())),
    ];
    for (provider, url) in urls {
        let host = url.and_then(|u| u.parse::<http::Uri>().ok()).and_then(|u| {
            u.host()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        });
        let Some(host) = host else { continue };
        if let Some((_, what)) = SANDBOX_HOSTS.iter().find(|(h, _)| *h == host) {
            ctx.warn(
                format!("providers.{provider}.base_url"),
                format!("`{}` is {what}", url.unwrap_or_default()),
            );
        }
    }
}

fn tomo(ctx: &mut Ctx, t: &FileTomo) -> Option<TomoConfig> {
    let at = "providers.tomo";
    if t.client_id.trim().is_empty() {
        ctx.err(format!("{at}.client_id"), "must not be empty");
    }
    // No default: a client id works only on its own console's host, and a default would
    // silently pick one of the two (it used to be the sandbox).
    let base_url = match t.base_url.as_deref() {
        Some(u) => ctx.url(&format!("{at}.base_url"), Some(u), u),
        None => {
            ctx.err(
                format!("{at}.base_url"),
                format!(
                    "required: {TOMO_PRODUCTION} in production ({TOMO_SANDBOX} is TomoIDV's sandbox)"
                ),
            );
            String::new()
        }
    };
    let timeout = ctx.duration(
        &format!("{at}.timeout"),
        t.timeout.as_deref(),
        Duration::from_secs(5),
    );
    let policy: serde_json::Value = match &t.kyc_policy {
        None => serde_json::json!({ "preset": "basic" }),
        Some(v) => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
    };
    let derived = match super::tomo_policy::check_policy(&policy) {
        Ok(k) => k,
        Err(_) => {
            ctx.err(
                format!("{at}.kyc_policy"),
                "unsupported: use { preset: basic } or { subject: { kind: personal_info | document, id_type }, method: personal_info_verf, owner_assurance: { kind: owner_verf | owner_check, type: sms_otp } or { kind: no_owner_assurance } }",
            );
            String::new()
        }
    };
    if let Some(c) = &t.country {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_lowercase()) {
            ctx.err(
                format!("{at}.country"),
                format!("`{c}` is not a lowercase ISO country code (e.g. us)"),
            );
        }
    }
    let secret = ctx.secret(
        at,
        "private_key",
        t.private_key_env.as_deref(),
        t.private_key_file.as_deref(),
        true,
    )?;
    let pem = match crate::crypto::jwk::jwk_to_pem(&secret) {
        Ok(p) => p,
        Err(e) => {
            let which = if t.private_key_env.is_some() {
                "private_key_env"
            } else {
                "private_key_file"
            };
            ctx.err(format!("{at}.{which}"), e.to_string());
            return None;
        }
    };
    Some(TomoConfig {
        client_id: t.client_id.trim().to_string(),
        private_key_pem: pem,
        base_url,
        kyc_policy: policy,
        policy_key: t.policy_key.clone().unwrap_or(derived),
        country: t.country.clone(),
        timeout,
    })
}

fn route(ctx: &mut Ctx, i: usize, r: &FileRoute, providers: &Providers) -> Option<Route> {
    let at = format!("routes[{i}]");
    let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        ctx.err(
            format!("{at}.name"),
            format!("`{name}` may hold only letters, digits, - and _"),
        );
    }
    let rule = match &r.matcher {
        None => {
            ctx.err(
                format!("{at}.match"),
                "every route needs a match (path or path_prefix)",
            );
            None
        }
        Some(m) => matcher(ctx, &format!("{at}.match"), m),
    };
    let require = r.require.as_ref().map(|q| require(ctx, &at, q, providers));
    let mut forward = Forward::default();
    for (j, field) in r.forward.iter().enumerate() {
        match field.as_str() {
            "name" => forward.name = true,
            "birth" => forward.birth = true,
            "gender" => forward.gender = true,
            "phone" => forward.phone = true,
            other => ctx.err(
                format!("{at}.forward[{j}]"),
                format!("unknown field `{other}` (expected name, birth, gender, phone)"),
            ),
        }
    }
    if forward.any() && r.require.is_none() {
        ctx.err(
            format!("{at}.forward"),
            "forwarding identity fields needs a `require` on the route",
        );
    }
    Some(Route {
        name,
        rule: rule?,
        require: match require {
            Some(q) => Some(q?),
            None => None,
        },
        forward,
    })
}

fn matcher(ctx: &mut Ctx, at: &str, m: &FileMatch) -> Option<MatchRule> {
    let (pattern, exact) = match (&m.path, &m.path_prefix) {
        (Some(p), None) => (p.clone(), true),
        (None, Some(p)) => (p.clone(), false),
        (Some(_), Some(_)) => {
            ctx.err(at, "set either path or path_prefix, not both");
            return None;
        }
        (None, None) => {
            ctx.err(at, "needs path or path_prefix");
            return None;
        }
    };
    let key = if exact { "path" } else { "path_prefix" };
    if !pattern.starts_with('/') || pattern.contains(['?', '#']) {
        ctx.err(
            format!("{at}.{key}"),
            format!("`{pattern}` must be a path starting with / (no query)"),
        );
        return None;
    }
    let canonical = match crate::routing::path::normalize(&pattern) {
        Ok(c) => c.into_owned(),
        Err(e) => {
            ctx.err(
                format!("{at}.{key}"),
                format!("`{pattern}` is refused in requests ({e}), so no request could match it"),
            );
            return None;
        }
    };
    let mut methods = Vec::new();
    for (j, meth) in m.methods.iter().enumerate() {
        let up = meth.to_ascii_uppercase();
        if STANDARD_METHODS.contains(&up.as_str()) {
            if let Ok(mm) = http::Method::from_bytes(up.as_bytes()) {
                methods.push(mm);
            }
        } else {
            ctx.err(
                format!("{at}.methods[{j}]"),
                format!(
                    "`{meth}` is not a standard HTTP method ({}); list an extension method under extension_methods",
                    STANDARD_METHODS.join(", ")
                ),
            );
        }
    }
    for (j, meth) in m.extension_methods.iter().enumerate() {
        let token = is_token(meth) && meth.bytes().all(|b| !b.is_ascii_lowercase());
        match http::Method::from_bytes(meth.as_bytes()) {
            Ok(mm) if token && !STANDARD_METHODS.contains(&meth.as_str()) => methods.push(mm),
            _ => ctx.err(
                format!("{at}.extension_methods[{j}]"),
                format!(
                    "`{meth}` must be a method token in capitals that is not a standard method"
                ),
            ),
        }
    }
    let fall_through = match m.other_methods.as_deref() {
        None | Some("refuse") => false,
        Some("next_route") => true,
        Some(other) => {
            ctx.err(
                format!("{at}.other_methods"),
                format!("`{other}` is not one of refuse, next_route"),
            );
            false
        }
    };
    Some(MatchRule::new(
        &canonical,
        exact,
        methods,
        m.case_sensitive,
        fall_through,
    ))
}

/// The methods of RFC 9110 and PATCH (RFC 5789). CONNECT is left out: verigate refuses it.
const STANDARD_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
];

fn require(ctx: &mut Ctx, at: &str, q: &FileRequire, providers: &Providers) -> Option<Require> {
    let at = format!("{at}.require");
    if q.providers.is_empty() {
        ctx.err(
            format!("{at}.providers"),
            "list the providers this route accepts (e.g. [iamport])",
        );
    }
    let mut ids = Vec::new();
    for (j, p) in q.providers.iter().enumerate() {
        match ProviderId::parse(p) {
            None => ctx.err(
                format!("{at}.providers[{j}]"),
                format!("unknown provider `{p}` (known: iamport, portone, tomo, ifree)"),
            ),
            Some(id) => {
                let configured = match id {
                    ProviderId::Iamport => providers.iamport.is_some(),
                    ProviderId::Tomo => providers.tomo.is_some(),
                    ProviderId::Ifree => providers.ifree.is_some(),
                    ProviderId::Portone => providers.portone.is_some(),
                };
                if !configured {
                    ctx.err(
                        format!("{at}.providers[{j}]"),
                        format!("provider `{p}` is not configured under providers.{p}"),
                    );
                }
                ids.push(id);
            }
        }
    }
    let min_age = match &q.min_age {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 150 => Some(n as u32),
            _ => {
                ctx.err(
                    format!("{at}.min_age"),
                    format!(
                        "`{}` is not an age (a whole number from 0 to 150)",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ),
                );
                None
            }
        },
    };
    let max_session_age = q
        .max_session_age
        .as_deref()
        .map(|d| ctx.duration(&format!("{at}.max_session_age"), Some(d), Duration::ZERO));
    if min_age.is_some() && !ids.is_empty() && ids.iter().all(|p| *p == ProviderId::Ifree) {
        ctx.err(
            format!("{at}.min_age"),
            "ifree's birth date is self-asserted (the member's own client writes it): no one could pass; add a provider that verifies birth dates",
        );
    }
    let mut commit_on = crate::routing::CommitOn::default();
    if let Some(list) = &q.commit_on {
        commit_on = crate::routing::CommitOn {
            success: false,
            redirection: false,
        };
        for (j, c) in list.iter().enumerate() {
            match c.as_str() {
                "2xx" => commit_on.success = true,
                "3xx" => commit_on.redirection = true,
                other => ctx.err(
                    format!("{at}.commit_on[{j}]"),
                    format!("`{other}` is not one of 2xx, 3xx"),
                ),
            }
        }
        if list.is_empty() {
            ctx.err(format!("{at}.commit_on"), "list 2xx, 3xx or both");
        }
        if !q.one_account_per_person {
            ctx.err(
                format!("{at}.commit_on"),
                "only means something with one_account_per_person: true",
            );
        }
    }
    Some(Require {
        providers: ids,
        min_age,
        one_account_per_person: q.one_account_per_person,
        commit_on,
        max_session_age: max_session_age.filter(|d| !d.is_zero()),
    })
}
