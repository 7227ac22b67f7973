//! Where replay guards, one-account claims and ifree members are kept.

use super::*;

pub(super) fn store(ctx: &mut Ctx, s: &FileStore) -> StoreConfig {
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
