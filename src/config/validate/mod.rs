//! File types -> runtime types, one file per area (each provider checks its own settings in
//! `providers::<name>::settings`). Collects every problem instead of stopping at the first.

mod admin;
mod records;
mod routes;
mod server;
mod session;
mod site;
mod store;

pub(in crate::config) use super::ctx::{Ctx, Secrets};
use super::file::*;
use super::*;
use crate::routing::Route;
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};

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

/// Parse and validate YAML text into a runtime config. An unknown key is reported with its
/// location and then set aside, so that the problems behind it are reported in the same run.
pub fn from_yaml_str(text: &str, secrets: &Secrets) -> Result<RuntimeConfig, ConfigError> {
    parse_and_build(text, secrets).map_err(|e| match e {
        ConfigError::Invalid(problems) => ConfigError::Invalid(
            problems
                .into_iter()
                .map(|p| match p.path.is_empty() {
                    // The YAML parser's own messages: hints, and no secret repeated.
                    true => Problem {
                        path: p.path,
                        message: with_hint(text, &redact_secret_value(&p.message)),
                    },
                    false => p,
                })
                .collect(),
        ),
        other => other,
    })
}

/// serde's "invalid type: integer `1234...`" repeats the value; at a `*_env` or `*_file` key
/// (where a pasted secret lands) or a store URL, the value is left out.
fn redact_secret_value(message: &str) -> String {
    let key = message.split(": ").next().unwrap_or("");
    let last = key.rsplit('.').next().unwrap_or(key);
    let secret_key = last.ends_with("_env") || last.ends_with("_file") || key == "store.url";
    match (secret_key, message.find('`')) {
        (true, Some(i)) => match message[i + 1..].find('`') {
            Some(j) => format!(
                "{}(value not shown){}",
                &message[..i],
                &message[i + 1 + j + 1..]
            ),
            None => message.to_string(),
        },
        _ => message.to_string(),
    }
}

/// A hint for the YAML mistakes people make: a tab in the indentation of the line the parser
/// stopped at (or the line before, where a tab makes the next line's token unexpected).
fn with_hint(text: &str, message: &str) -> String {
    let Some(line) = message
        .rfind(" at line ")
        .and_then(|i| message[i + 9..].split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
    else {
        return message.to_string();
    };
    let starts_with_tab = |n: usize| {
        n >= 1
            && text
                .lines()
                .nth(n - 1)
                .is_some_and(|l| l.trim_start_matches(' ').starts_with('\t'))
    };
    if let Some(n) = [line, line.saturating_sub(1)]
        .into_iter()
        .find(|&n| starts_with_tab(n))
    {
        return format!(
            "{message} (YAML does not allow tabs for indentation: line {n} is indented with a tab; use spaces)"
        );
    }
    message.to_string()
}

fn parse_and_build(text: &str, secrets: &Secrets) -> Result<RuntimeConfig, ConfigError> {
    let problem = |e: serde_yaml::Error| Problem {
        path: String::new(),
        message: e.to_string(),
    };
    let mut unknown = Vec::new();
    let file: FileConfig = match serde_yaml::from_str(text) {
        Ok(f) => f,
        Err(first) => {
            // Only unknown keys are set aside; any other shape error stands alone.
            let mut value: serde_yaml::Value =
                serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid(vec![problem(e)]))?;
            let mut err = first;
            loop {
                // The first problem's location is the file's; later ones would be the
                // rewritten text's, so they keep only their key path.
                let message = match unknown.is_empty() {
                    true => err.to_string(),
                    false => without_location(&err.to_string()),
                };
                let found = Problem {
                    path: String::new(),
                    message,
                };
                let Some((path, key)) = unknown_key(&err.to_string()) else {
                    unknown.push(found);
                    return Err(ConfigError::Invalid(unknown));
                };
                unknown.push(found);
                if unknown.len() >= 100 || !remove_key(&mut value, &path, &key) {
                    return Err(ConfigError::Invalid(unknown));
                }
                // Re-read without it: later errors name their key path; their line numbers
                // would be the rewritten text's, so they are left out.
                let rest = serde_yaml::to_string(&value).unwrap_or_default();
                match serde_yaml::from_str::<FileConfig>(&rest) {
                    Ok(f) => break f,
                    Err(e) => {
                        if unknown_key(&e.to_string()).is_none() {
                            unknown.push(Problem {
                                path: String::new(),
                                message: without_location(&e.to_string()),
                            });
                            return Err(ConfigError::Invalid(unknown));
                        }
                        err = e;
                    }
                }
            }
        }
    };
    let mut ctx = Ctx {
        problems: Vec::new(),
        warnings: Vec::new(),
        secrets,
    };
    let cfg = build(&mut ctx, file);
    match cfg {
        Some(cfg) if ctx.problems.is_empty() && unknown.is_empty() => Ok(cfg),
        _ => {
            unknown.append(&mut ctx.problems);
            Err(ConfigError::Invalid(unknown))
        }
    }
}

/// Only what the record commands (`verigate accounts`) need: the store and the hash key (and
/// the session lifetime, how long a person's revocation must last). Provider secrets, TLS
/// files and upstreams are not read, so an operator's shell needs none of them.
pub fn records_from_yaml_str(text: &str, secrets: &Secrets) -> Result<RecordsConfig, ConfigError> {
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
    let store = match &file.store {
        None => StoreConfig::Sqlite {
            path: DEFAULT_SQLITE_PATH.into(),
        },
        Some(s) => store::store(&mut ctx, s),
    };
    let hash_key = session::hash_key_only(&mut ctx, &file.session);
    let records_cfg = records::records(&mut ctx, file.records.as_ref(), false, false);
    let session_ttl = ctx.duration(
        "session.ttl",
        file.session.ttl.as_deref(),
        Duration::from_secs(12 * 3600),
    );
    // An erasure revokes the person's age status too, which may outlive any session.
    let session_ttl =
        session_ttl.max(session::age_status_ttl(&mut ctx, &file.session).unwrap_or_default());
    let mut rejoin_max: Option<Duration> = None;
    let mut one_account_routes = Vec::new();
    for (i, r) in file.routes.iter().enumerate() {
        let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
        if r.require.as_ref().is_some_and(|q| q.one_account_per_person) {
            let after = r
                .require
                .as_ref()
                .and_then(|q| q.rejoin_after.as_deref())
                .map(|t| {
                    ctx.duration(
                        &format!("routes[{i}].require.rejoin_after"),
                        Some(t),
                        Duration::ZERO,
                    )
                })
                .filter(|d| !d.is_zero());
            one_account_routes.push((name, after));
        }
        let Some(text) = r.require.as_ref().and_then(|q| q.rejoin_after.as_deref()) else {
            continue;
        };
        let d = ctx.duration(
            &format!("routes[{i}].require.rejoin_after"),
            Some(text),
            Duration::ZERO,
        );
        rejoin_max = rejoin_max.max(Some(d).filter(|d| !d.is_zero()));
    }
    match hash_key {
        Some(hash_key) if ctx.problems.is_empty() => Ok(RecordsConfig {
            store,
            hash_key,
            session_ttl,
            rejoin_max,
            one_account_routes,
            records: records_cfg,
        }),
        _ => Err(ConfigError::Invalid(ctx.problems)),
    }
}

/// `(key path, key)` of serde_yaml's "unknown field" error: `routes[0].require: unknown field
/// `min_agee`, expected ...` (no path before the colon: the top level).
fn unknown_key(message: &str) -> Option<(String, String)> {
    let i = message.find("unknown field `")?;
    let key = message[i + 15..].split('`').next()?.to_string();
    let path = message[..i].trim_end().trim_end_matches(':').to_string();
    Some((path, key))
}

/// `message` without serde_yaml's trailing ` at line L column C`.
fn without_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Remove `key` from the mapping at `path` (`a.b[2].c`); false when there is no such key.
fn remove_key(root: &mut serde_yaml::Value, path: &str, key: &str) -> bool {
    let mut node = root;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            match node.get_mut(name) {
                Some(n) => node = n,
                None => return false,
            }
        }
        for idx in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            match idx.parse::<usize>().ok().and_then(|i| node.get_mut(i)) {
                Some(n) => node = n,
                None => return false,
            }
        }
    }
    node.as_mapping_mut().and_then(|m| m.remove(key)).is_some()
}

/// `public_url`: one URL (kept as written, for every host), or a list of them, one per host
/// (or `*.example.com`) that the flows serve.
fn public_urls(ctx: &mut Ctx, v: Option<&OneOrMany>) -> PublicUrls {
    let list = match v {
        None => return PublicUrls::FromHost,
        Some(OneOrMany::One(u)) => return PublicUrls::One(ctx.url("public_url", Some(u), u)),
        Some(OneOrMany::Many(list)) => list,
    };
    if list.is_empty() {
        ctx.err(
            "public_url",
            "list at least one URL, or leave public_url out",
        );
    }
    let mut out: Vec<PublicUrl> = Vec::new();
    for (i, u) in list.iter().enumerate() {
        let at = format!("public_url[{i}]");
        let bad = |ctx: &mut Ctx| {
            ctx.err(
                &at,
                format!("`{u}` is not an http(s) URL like https://shop.example.com (or https://*.example.com)"),
            )
        };
        // `*` is no URI character: read the wildcard's host on its own.
        let text = u.trim().trim_end_matches('/');
        let Some((scheme, rest)) = text.split_once("://") else {
            bad(ctx);
            continue;
        };
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = match rest.find('/') {
            Some(k) => (&rest[..k], &rest[k..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !authority.ends_with(']') => (h, Some(p)),
            _ => (authority, None),
        };
        let port_ok = port.is_none_or(|p| crate::routing::host::parse_port(p.as_bytes()).is_some());
        let path_ok = path.is_empty()
            || path
                .parse::<http::uri::PathAndQuery>()
                .is_ok_and(|p| p.query().is_none());
        let host = crate::routing::HostPattern::parse(host);
        match host {
            Ok(host)
                if (scheme == "http" || scheme == "https")
                    && port_ok
                    && path_ok
                    && !authority.contains('@') =>
            {
                if let Some(prev) = out.iter().position(|p| p.host.covers(&host)) {
                    ctx.err(&at, format!("public_url[{prev}] already covers this host"));
                }
                out.push(PublicUrl {
                    host,
                    scheme,
                    port: port.map(|p| format!(":{p}")).unwrap_or_default(),
                    path: path.to_string(),
                });
            }
            _ => bad(ctx),
        }
    }
    PublicUrls::PerHost(out)
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
    let admin = admin::access(ctx, f.admin.as_ref(), admin_listen.as_ref());
    let tls = f.tls.as_ref().map(|t| server::tls(ctx, t));
    let redirect_http = f.redirect_http_listen.as_deref().and_then(|a| {
        if f.tls.is_none() {
            ctx.err(
                "redirect_http_listen",
                "redirects to HTTPS, so `tls` must be set on `listen`",
            );
        }
        socket_addr(ctx, "redirect_http_listen", a).map(|addr| Listen { addr })
    });
    match f.redirect_https_port {
        Some(0) => ctx.err("redirect_https_port", "must be a port from 1 to 65535"),
        Some(_) if f.redirect_http_listen.is_none() => ctx.err(
            "redirect_https_port",
            "names the port of redirects to HTTPS: set `redirect_http_listen` too",
        ),
        _ => {}
    }

    // The default upstream first, then the named ones: routes keep indices into this list.
    let mut upstreams = Vec::new();
    if let Some(u) = &f.upstream {
        upstreams.push(server::upstream(ctx, "upstream", DEFAULT_UPSTREAM, u));
    }
    for (name, u) in &f.upstreams {
        let at = format!("upstreams.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            ctx.err(
                &at,
                format!("`{name}` may hold only letters, digits, - and _"),
            );
        }
        if name == DEFAULT_UPSTREAM && f.upstream.is_some() {
            ctx.err(
                &at,
                "`default` is the top-level upstream's name: rename this one",
            );
        }
        upstreams.push(server::upstream(ctx, &at, name, u));
    }
    if upstreams.is_empty() {
        ctx.err(
            "upstream",
            "set upstream (the app) or upstreams (named apps that routes choose)",
        );
    }
    // Routes without `upstream:` go to the top-level one, or to the only named one.
    let default_upstream = (f.upstream.is_some() || f.upstreams.len() == 1).then_some(0);
    let resolver = server::resolver(ctx, f.resolver.as_ref());

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
    let public_url = public_urls(ctx, f.public_url.as_ref());

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

    let tuning = server::tuning(ctx, f.tuning.as_ref());
    let clients = server::clients(ctx, f.clients.as_ref());
    let limits = crate::config::limits::validate(ctx, f.limits.as_ref());
    let session = session::session(ctx, &f.session);
    let identity = session::identity(ctx, f.identity_headers.as_ref());
    let assertion = f
        .identity_headers
        .as_ref()
        .and_then(|h| h.assertion.as_ref())
        .filter(|a| a.enabled)
        .and_then(|a| session::assertion(ctx, a));
    let providers = crate::config::providers::validate(ctx, &f.providers, &flow_prefix);

    let store = match &f.store {
        None => StoreConfig::Sqlite {
            path: DEFAULT_SQLITE_PATH.into(),
        },
        Some(s) => store::store(ctx, s),
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
        let upstream = match &r.upstream {
            Some(name) => match upstreams
                .iter()
                .position(|u| &u.name == name && (f.upstream.is_none() || name != DEFAULT_UPSTREAM))
            {
                Some(i) => Some(i),
                None if name == DEFAULT_UPSTREAM && f.upstream.is_some() => Some(0),
                None => {
                    let known: Vec<&str> = f.upstreams.keys().map(String::as_str).collect();
                    ctx.err(
                        format!("routes[{i}].upstream"),
                        format!(
                            "no upstream named `{name}` (upstreams: {})",
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    None
                }
            },
            None if default_upstream.is_none() && !upstreams.is_empty() => {
                ctx.err(
                    format!("routes[{i}].upstream"),
                    "name this route's upstream (there is no top-level upstream to default to)",
                );
                None
            }
            None => default_upstream,
        };
        if let Some(route) = routes::route(ctx, i, r, &f.providers, upstream.unwrap_or(0)) {
            keep = keep.union(route.forward);
            routes.push((i, route));
        }
    }
    hash_key_rotation(ctx, &f.session, &routes, providers.ifree.is_some());
    let records_cfg = records::records(
        ctx,
        f.records.as_ref(),
        routes
            .iter()
            .any(|(_, r)| r.require.as_ref().is_some_and(|q| q.one_account_per_person)),
        providers.ifree.is_some(),
    );
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

    for (k, u) in upstreams.iter().enumerate() {
        if !routes.routes().iter().any(|r| r.upstream == k) && !routes.routes().is_empty() {
            let at = match f.upstream.is_some() && k == 0 {
                true => "upstream".to_string(),
                false => format!("upstreams.{}", u.name),
            };
            ctx.warn(at, "no route sends requests here");
        }
    }
    if let PublicUrls::PerHost(list) = &public_url {
        for (route, i) in routes.routes().iter().zip(&indices) {
            for h in route.rule.hosts() {
                if !list.iter().any(|p| p.host.covers(h)) {
                    ctx.warn(
                        format!("routes[{i}].match.host"),
                        format!(
                            "`{}` has no public_url entry: verification flows on it are refused",
                            h.as_written()
                        ),
                    );
                }
            }
        }
    }

    let session = session?;
    for (route, i) in routes.routes().iter().zip(&indices) {
        let age_only = route.require.as_ref().is_some_and(|q| q.age_status);
        if age_only && session.age_status_ttl.is_none() {
            ctx.err(
                format!("routes[{i}].require.age_status"),
                "needs session.age_status_ttl (how long an age check lasts, e.g. 365d)",
            );
        }
        let max = route.require.as_ref().and_then(|q| q.max_session_age);
        // On an age-only route it also bounds age statuses, which outlive sessions.
        let lives = match age_only {
            true => session.ttl.max(session.age_status_ttl.unwrap_or_default()),
            false => session.ttl,
        };
        if let Some(max) = max.filter(|m| *m > lives) {
            ctx.warn(
                format!("routes[{i}].require.max_session_age"),
                match age_only {
                    false => format!(
                        "{}s is longer than session.ttl ({}s): sessions end first, so it never applies",
                        max.as_secs(),
                        session.ttl.as_secs()
                    ),
                    true => format!(
                        "{}s is longer than session.ttl and session.age_status_ttl ({}s): both end first, so it never applies",
                        max.as_secs(),
                        lives.as_secs()
                    ),
                },
            );
        }
    }
    let (site_name, mut frame) = site::site(ctx, f.site.as_ref());
    frame.hsts = f
        .tls
        .as_ref()
        .and_then(|t| t.hsts.as_ref())
        .and_then(|h| site::hsts(ctx, h));
    Some(RuntimeConfig {
        listen: Listen { addr: listen? },
        tls: tls.flatten(),
        redirect_http,
        redirect_https_port: f.redirect_https_port,
        admin_listen,
        admin,
        listen_spec: f.listen.clone(),
        admin_spec: f.admin_listen.clone(),
        redirect_spec: f.redirect_http_listen.clone(),
        upstreams,
        resolver,
        flow_prefix,
        public_url,
        timezone,
        site_name,
        frame,
        threads,
        tuning,
        clients,
        limits,
        session,
        identity,
        assertion,
        access_log: f.access_log.unwrap_or(true),
        access_log_client: match f.access_log_client.as_deref() {
            None | Some("truncated") => ClientLog::Truncated,
            Some("full") => ClientLog::Full,
            Some("off") => ClientLog::Off,
            Some(other) => {
                ctx.err(
                    "access_log_client",
                    format!("`{other}` is not one of truncated, full, off"),
                );
                ClientLog::Truncated
            }
        },
        providers,
        store,
        routes,
        keep_in_session: keep,
        records: records_cfg,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

/// Without an explicit hash key, the hash key is derived from the first session key: rotating
/// the session keys (new key first) then changes every person's keyed CI hash and the key that
/// seals ifree members at rest. One-account records stop matching (people can sign up again),
/// ifree members become unreadable, and revoked sessions are no longer found. Warned loudly,
/// with what depends on it, whenever something does.
fn hash_key_rotation(ctx: &mut Ctx, s: &FileSession, routes: &[(usize, Route)], ifree: bool) {
    if s.hash_key_env.is_some() || s.hash_key_file.is_some() {
        return;
    }
    let mut depends: Vec<String> = routes
        .iter()
        .filter(|(_, r)| r.require.as_ref().is_some_and(|q| q.one_account_per_person))
        .map(|(i, _)| format!("one-account records of routes[{i}]"))
        .collect();
    if ifree {
        depends.push("ifree members (sealed at rest)".into());
    }
    if depends.is_empty() {
        return;
    }
    ctx.warn(
        "session.hash_key_env",
        format!(
            "not set: the hash key is derived from the first session key, so rotating \
             session.keys_env changes it and silently loses {} (and un-revokes logged-out \
             sessions); set session.hash_key_env (or hash_key_file) to a key of its own \
             before the first rotation",
            depends.join(", ")
        ),
    );
}
