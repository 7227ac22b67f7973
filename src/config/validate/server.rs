//! What verigate listens to and forwards to: the upstream app, the runtime, slow clients.

use super::*;

/// One upstream: `at` is its key path (`upstream`, `upstreams.shop`).
pub(super) fn upstream(ctx: &mut Ctx, at: &str, name: &str, u: &FileUpstream) -> Upstream {
    if u.addrs.is_empty() {
        ctx.err(format!("{at}.addrs"), "list at least one upstream address");
    }
    let addrs: Vec<UpstreamAddr> = u
        .addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| upstream_addr(ctx, &format!("{at}.addrs[{i}]"), a))
        .collect();
    if u.tls && u.sni.is_empty() {
        ctx.err(
            format!("{at}.sni"),
            "set the upstream's TLS server name when tls is true",
        );
    }
    let eject_after = u.eject_after.unwrap_or(1);
    if eject_after == 0 {
        ctx.err(format!("{at}.eject_after"), "must be at least 1");
    }
    Upstream {
        name: name.to_string(),
        addrs,
        eject_after: eject_after.max(1),
        eject_for: ctx.duration(
            &format!("{at}.eject_for"),
            u.eject_for.as_deref(),
            Duration::from_secs(10),
        ),
        tls: u.tls,
        sni: u.sni.clone(),
        connect_timeout: ctx.duration(
            &format!("{at}.connect_timeout"),
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        read_timeout: ctx.duration(
            &format!("{at}.read_timeout"),
            u.read_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        preserve_header_case: u.preserve_header_case,
        http2: u.http2,
    }
}

/// `tls`: the files are read and the key checked against the certificate now, so that `check`
/// and a reload refuse what the listener could not serve.
pub(super) fn tls(ctx: &mut Ctx, t: &FileTls) -> Option<ListenerTls> {
    use crate::crypto::tls::{load, TlsFile};
    let mut missing = false;
    for (key, value) in [
        ("tls.cert_file", &t.cert_file),
        ("tls.key_file", &t.key_file),
    ] {
        if value.trim().is_empty() {
            ctx.err(key, "name a PEM file");
            missing = true;
        }
    }
    if missing {
        return None;
    }
    let (cert_file, key_file) = (
        std::path::PathBuf::from(&t.cert_file),
        std::path::PathBuf::from(&t.key_file),
    );
    match load(&cert_file, &key_file) {
        Ok(certified) => Some(ListenerTls {
            cert_file,
            key_file,
            http2: t.http2.unwrap_or(true),
            certified,
        }),
        Err(e) => {
            let key = match e.file() {
                TlsFile::Cert => "tls.cert_file",
                TlsFile::Key => "tls.key_file",
            };
            ctx.err(key, e.to_string());
            None
        }
    }
}

/// `10.0.0.5:8080`, `[::1]:8080`, or `name:port` (resolved at start and in the background:
/// never here, so a name that does not resolve yet does not make the config invalid).
fn upstream_addr(ctx: &mut Ctx, path: &str, value: &str) -> Option<UpstreamAddr> {
    if let Ok(a) = value.parse::<SocketAddr>() {
        return Some(UpstreamAddr::Ip(a));
    }
    let named = value.rsplit_once(':').and_then(|(host, port)| {
        let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
        match crate::routing::HostPattern::parse(host) {
            Ok(crate::routing::HostPattern::Exact(h)) if !h.starts_with('[') => {
                Some(UpstreamAddr::Name { host: h, port })
            }
            _ => None,
        }
    });
    if named.is_none() {
        ctx.err(
            path,
            format!(
                "`{value}` is not an address (write host:port, e.g. 127.0.0.1:8080 or app:8080)"
            ),
        );
    }
    named
}

pub(super) fn resolver(ctx: &mut Ctx, r: Option<&FileResolver>) -> ResolverConfig {
    let d = ResolverConfig::default();
    let Some(r) = r else {
        return d;
    };
    let mut positive = |key: &str, v: Option<&str>, default: Duration| {
        let t = ctx.duration(&format!("resolver.{key}"), v, default);
        if t.is_zero() {
            ctx.err(format!("resolver.{key}"), "must be longer than 0s");
        }
        t
    };
    let interval = positive("interval", r.interval.as_deref(), d.interval);
    let timeout = positive("timeout", r.timeout.as_deref(), d.timeout);
    let system = r.system.unwrap_or(true);
    if !system && r.hosts_file.is_none() {
        ctx.err(
            "resolver.system",
            "with system: false, names come only from resolver.hosts_file: set it",
        );
    }
    ResolverConfig {
        interval,
        timeout,
        hosts_file: r.hosts_file.as_ref().map(std::path::PathBuf::from),
        system,
    }
}

pub(super) fn tuning(ctx: &mut Ctx, t: Option<&FileTuning>) -> Tuning {
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
}

pub(super) fn clients(ctx: &mut Ctx, c: Option<&FileClients>) -> Clients {
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
        send_timeout: limit(
            "send_timeout",
            c.and_then(|c| c.send_timeout.as_deref()),
            60,
        ),
        trusted_proxies: c
            .map(|c| c.trusted_proxies.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                // A bare address is its own /32 or /128.
                let parsed = n
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
                match parsed {
                    Ok(net) => Some(net.trunc()),
                    Err(_) => {
                        ctx.err(
                            format!("clients.trusted_proxies[{i}]"),
                            format!("`{n}` is not an address or a network like 10.0.0.0/8"),
                        );
                        None
                    }
                }
            })
            .collect(),
        request_id: match c.and_then(|c| c.request_id.as_deref()) {
            None | Some("generate") => RequestIdMode::Generate,
            Some("trust_from_proxy") => RequestIdMode::TrustFromProxy,
            Some("off") => RequestIdMode::Off,
            Some(other) => {
                ctx.err(
                    "clients.request_id",
                    format!("`{other}` is not generate, trust_from_proxy or off"),
                );
                RequestIdMode::Generate
            }
        },
        max_kept_requests: c.and_then(|c| c.max_kept_requests).unwrap_or(1000),
        max_kept_per_client: c.and_then(|c| c.max_kept_per_client).unwrap_or(30),
        max_kept_per_network: c.and_then(|c| c.max_kept_per_network).unwrap_or(100),
        log_dropped_headers: c.is_some_and(|c| c.log_dropped_headers),
    }
}
