//! What verigate listens to and forwards to: the upstream app, the runtime, slow clients.

use super::*;

pub(super) fn upstream(ctx: &mut Ctx, u: &FileUpstream) -> Upstream {
    if u.addrs.is_empty() {
        ctx.err("upstream.addrs", "list at least one upstream address");
    }
    let addrs: Vec<SocketAddr> = u
        .addrs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| socket_addr(ctx, &format!("upstream.addrs[{i}]"), a))
        .collect();
    if u.tls && u.sni.is_empty() {
        ctx.err(
            "upstream.sni",
            "set the upstream's TLS server name when tls is true",
        );
    }
    Upstream {
        addrs,
        tls: u.tls,
        sni: u.sni.clone(),
        connect_timeout: ctx.duration(
            "upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        read_timeout: ctx.duration(
            "upstream.read_timeout",
            u.read_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        preserve_header_case: u.preserve_header_case,
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
        max_kept_requests: c.and_then(|c| c.max_kept_requests).unwrap_or(1000),
    }
}
