//! ifree login settings: the file's shape, the runtime values and their check.

use crate::config::ctx::Ctx;
use crate::config::file::OneOrMany;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub client_id: String,
    #[serde(default)]
    pub secret_key_env: Option<String>,
    #[serde(default)]
    pub secret_key_file: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub sdk_url: Option<String>,
    #[serde(default)]
    pub callback_path: Option<String>,
    /// ifree's callback source addresses, or `any` (required: without it anyone could post
    /// member key exchanges and registrations).
    #[serde(default)]
    pub callback_allow_ips: Option<crate::config::file::OneOrMany>,
    #[serde(default)]
    pub cipher: Option<String>,
    #[serde(default)]
    pub store_ubifill: bool,
    /// How long a key exchange waits for its registration (default 10m).
    #[serde(default)]
    pub pending_ttl: Option<String>,
    /// How many members may wait between key exchange and registration (default 1000).
    #[serde(default)]
    pub max_pending: Option<u64>,
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Clone, PartialEq)]
pub struct Settings {
    pub client_id: String,
    pub secret_key: String,
    pub base_url: String,
    pub sdk_url: String,
    /// Where ifree's servers post the registration callbacks (normalised path).
    pub callback_path: String,
    /// Source addresses allowed to post the callbacks.
    pub callback_allow: CallbackAllow,
    pub cipher: crate::crypto::ifree_cipher::Cipher,
    pub store_ubifill: bool,
    pub pending_ttl: Duration,
    pub max_pending: u64,
    pub timeout: Duration,
}

/// Who may post ifree's callbacks (`callback_allow_ips`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackAllow {
    /// `any`: said explicitly.
    Any,
    Only(Vec<std::net::IpAddr>),
}

impl CallbackAllow {
    pub fn allows(&self, peer: Option<std::net::IpAddr>) -> bool {
        match self {
            CallbackAllow::Any => true,
            CallbackAllow::Only(list) => peer.is_some_and(|ip| list.contains(&ip)),
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("client_id", &self.client_id)
            .field("base_url", &self.base_url)
            .field("callback_path", &self.callback_path)
            .field("cipher", &self.cipher.name())
            .finish_non_exhaustive()
    }
}

pub(crate) fn validate(ctx: &mut Ctx, i: &File, flow_prefix: &str) -> Option<Settings> {
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
    // Without a source list anyone can post key exchanges and registrations for any member:
    // a config says which addresses, or that any may (`any`).
    let key = format!("{at}.callback_allow_ips");
    let callback_allow = match &i.callback_allow_ips {
        None => {
            ctx.err(
                &key,
                format!(
                    "missing: list ifree's callback source addresses (whoever reaches {callback_path} can post member key exchanges and registrations), or write `any` to let every address post"
                ),
            );
            CallbackAllow::Any
        }
        Some(OneOrMany::One(s)) if s == "any" => CallbackAllow::Any,
        Some(OneOrMany::One(s)) => {
            ctx.err(
                &key,
                format!("`{s}`: write a list of addresses (`[203.0.113.10]`) or `any`"),
            );
            CallbackAllow::Any
        }
        Some(OneOrMany::Many(list)) => {
            if list.is_empty() {
                ctx.err(
                    &key,
                    "empty: list ifree's callback source addresses, or write `any`",
                );
            }
            let mut ips = Vec::new();
            for (j, ip) in list.iter().enumerate() {
                match ip.parse() {
                    Ok(a) => ips.push(a),
                    Err(_) => ctx.err(
                        format!("{key}[{j}]"),
                        format!("`{ip}` is not an IP address"),
                    ),
                }
            }
            CallbackAllow::Only(ips)
        }
    };
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
    let pending_ttl = ctx.duration(
        &format!("{at}.pending_ttl"),
        i.pending_ttl.as_deref(),
        Duration::from_secs(600),
    );
    if pending_ttl.is_zero() || pending_ttl > Duration::from_secs(24 * 3600) {
        ctx.err(format!("{at}.pending_ttl"), "must be between 1s and 24h");
    }
    let max_pending = i.max_pending.unwrap_or(1000);
    if max_pending == 0 {
        ctx.err(format!("{at}.max_pending"), "must be at least 1");
    }
    let secret_key = ctx.secret(
        at,
        "secret_key",
        i.secret_key_env.as_deref(),
        i.secret_key_file.as_deref(),
        true,
    )?;
    Some(Settings {
        client_id: i.client_id.trim().to_string(),
        secret_key,
        base_url,
        sdk_url,
        callback_path,
        callback_allow,
        cipher,
        store_ubifill: i.store_ubifill,
        pending_ttl,
        max_pending,
        timeout,
    })
}
