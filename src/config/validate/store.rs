//! Where replay guards, one-account claims and ifree members are kept.

use super::*;
use crate::store::{RedisConfig, RedisTarget, RedisWait, SentinelConfig};

pub(super) fn store(ctx: &mut Ctx, s: &FileStore) -> StoreConfig {
    let has_url = s.url.is_some() || s.url_env.is_some() || s.url_file.is_some();
    match s.kind.as_str() {
        "memory" => {
            if s.path.is_some() || has_url || s.prefix.is_some() {
                ctx.err("store", "kind memory takes no path, url or prefix");
            }
            redis_only(ctx, s, "memory");
            StoreConfig::Memory
        }
        "sqlite" => {
            if has_url || s.prefix.is_some() {
                ctx.err("store", "kind sqlite takes a path, not a url or prefix");
            }
            redis_only(ctx, s, "sqlite");
            let path = s.path.clone().unwrap_or_else(|| DEFAULT_SQLITE_PATH.into());
            if path.trim().is_empty() {
                ctx.err("store.path", "must not be empty");
            } else if path.ends_with('/') {
                ctx.err(
                    "store.path",
                    format!("`{path}` names a directory; name the database file"),
                );
            }
            StoreConfig::Sqlite { path }
        }
        "redis" => {
            if s.path.is_some() {
                ctx.err(
                    "store.path",
                    "kind redis takes a url or sentinel, not a path",
                );
            }
            let target = match (has_url, &s.sentinel) {
                (true, Some(_)) => {
                    ctx.err(
                        "store.sentinel",
                        "set either url (url_env, url_file) or sentinel, not both",
                    );
                    RedisTarget::Url(String::new())
                }
                (false, Some(sentinel)) => RedisTarget::Sentinel(sentinel_config(ctx, sentinel)),
                (_, None) => RedisTarget::Url(redis_url(ctx, s)),
            };
            let prefix = s.prefix.clone().unwrap_or_else(|| "verigate:".into());
            if prefix.contains(char::is_whitespace) {
                ctx.err("store.prefix", "must not contain spaces");
            }
            let wait = redis_wait(
                ctx,
                s.wait.as_ref(),
                matches!(target, RedisTarget::Sentinel(_)),
            );
            StoreConfig::Redis(RedisConfig {
                target,
                prefix,
                wait,
            })
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

/// What `WAIT` defaults to with sentinels: one replica, half a second.
pub(crate) const SENTINEL_WAIT: RedisWait = RedisWait {
    replicas: 1,
    timeout: Duration::from_millis(500),
};

/// The longest `store.wait.timeout`: a decision's command and its `WAIT` share the 2 s bound
/// of one Redis call.
const MAX_WAIT: Duration = Duration::from_secs(1);

fn redis_only(ctx: &mut Ctx, s: &FileStore, kind: &str) {
    if s.sentinel.is_some() {
        ctx.err(
            "store.sentinel",
            format!("kind {kind} takes no sentinel (kind redis does)"),
        );
    }
    if s.wait.is_some() {
        ctx.err(
            "store.wait",
            format!("kind {kind} takes no wait (kind redis does)"),
        );
    }
}

fn redis_url(ctx: &mut Ctx, s: &FileStore) -> String {
    // A URL with a password is a secret: url_env / url_file keep it out of the YAML.
    let url = match (&s.url, &s.url_env, &s.url_file) {
        (Some(u), None, None) => Some(u.clone()),
        (None, env, file) if env.is_some() || file.is_some() => {
            ctx.secret("store", "url", env.as_deref(), file.as_deref(), true)
        }
        (None, None, None) => {
            ctx.err(
                "store.url",
                "kind redis needs url (or url_env / url_file), or sentinel",
            );
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
    url
}

fn sentinel_config(ctx: &mut Ctx, s: &FileSentinel) -> SentinelConfig {
    let master = s.master.clone().unwrap_or_default();
    if s.master.is_none() {
        ctx.err(
            "store.sentinel.master",
            "missing: the master's name in the sentinels' configuration (sentinel monitor NAME ...)",
        );
    } else if master.trim().is_empty() || master.contains(char::is_whitespace) {
        ctx.err("store.sentinel.master", "must be a name without spaces");
    }
    let mut addrs = Vec::new();
    match &s.addrs {
        None => ctx.err(
            "store.sentinel.addrs",
            "missing: the sentinels, host:port each",
        ),
        Some(list) if list.is_empty() => {
            ctx.err("store.sentinel.addrs", "must name at least one sentinel")
        }
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                match a.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                    Some((h, Ok(p))) if !h.is_empty() && p != 0 => {
                        // `[::1]:26379`: the host without its brackets.
                        let h = h.trim_start_matches('[').trim_end_matches(']');
                        addrs.push((h.to_string(), p));
                    }
                    _ => ctx.err(
                        format!("store.sentinel.addrs[{i}]"),
                        format!("`{a}` is not host:port"),
                    ),
                }
            }
        }
    }
    let password = ctx.secret(
        "store.sentinel",
        "password",
        s.password_env.as_deref(),
        s.password_file.as_deref(),
        false,
    );
    let redis_password = ctx.secret(
        "store.sentinel",
        "redis_password",
        s.redis_password_env.as_deref(),
        s.redis_password_file.as_deref(),
        false,
    );
    let db = s.db.unwrap_or(0);
    if db < 0 {
        ctx.err("store.sentinel.db", "must be 0 or more");
    }
    SentinelConfig {
        master,
        addrs,
        password,
        redis_password,
        db,
    }
}

fn redis_wait(ctx: &mut Ctx, w: Option<&FileStoreWait>, sentinel: bool) -> Option<RedisWait> {
    let Some(w) = w else {
        return sentinel.then_some(SENTINEL_WAIT);
    };
    let replicas = w
        .replicas
        .unwrap_or(if sentinel { SENTINEL_WAIT.replicas } else { 1 });
    // Milliseconds (`500ms`) here, where a second is the most; or a duration as elsewhere.
    let millis = w
        .timeout
        .as_deref()
        .and_then(|t| t.trim().strip_suffix("ms"))
        .and_then(|n| n.parse::<u64>().ok());
    let timeout = match millis {
        Some(ms) => Duration::from_millis(ms),
        None => ctx.duration(
            "store.wait.timeout",
            w.timeout.as_deref(),
            SENTINEL_WAIT.timeout,
        ),
    };
    if timeout.is_zero() {
        // `WAIT n 0` would block for ever.
        ctx.err("store.wait.timeout", "must be more than 0");
    } else if timeout > MAX_WAIT {
        ctx.err(
            "store.wait.timeout",
            "at most 1s (a decision and its WAIT share one 2 s Redis call)",
        );
    }
    (replicas > 0).then_some(RedisWait { replicas, timeout })
}
