//! PortOne V2 settings: the file's shape, the runtime values and their check.

use crate::config::ctx::Ctx;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub store_id: String,
    #[serde(default)]
    pub channel_key: Option<String>,
    #[serde(default)]
    pub api_secret_env: Option<String>,
    #[serde(default)]
    pub api_secret_file: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub sdk_url: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub max_result_age: Option<String>,
    /// How the channel verifies (`danal` or `inicis_unified`), for the pages (default `danal`).
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    pub store_id: String,
    pub channel_key: String,
    pub api_secret: String,
    pub base_url: String,
    pub sdk_url: String,
    pub timeout: Duration,
    pub max_result_age: Duration,
    /// How the channel verifies, as the choice and start pages say it.
    pub method: crate::identity::ChannelMethod,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("store_id", &self.store_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn validate(ctx: &mut Ctx, p: &File, _flow_prefix: &str) -> Option<Settings> {
    let at = "providers.portone";
    if p.store_id.trim().is_empty() {
        ctx.err(format!("{at}.store_id"), "must not be empty");
    }
    // The browser SDK refuses `requestIdentityVerification` without a channel (it takes no
    // default one): without it no person could ever finish a PortOne verification.
    let channel_key = p.channel_key.as_deref().map(str::trim).unwrap_or("");
    if channel_key.is_empty() {
        ctx.err(
            format!("{at}.channel_key"),
            "required: the PortOne browser SDK refuses an identity verification without the \
             channel key of an identity-verification channel (PortOne console, channel settings)",
        );
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
    use crate::identity::ChannelMethod;
    let method = match p.method.as_deref().map(str::trim) {
        None => ChannelMethod::default(),
        Some(text) => match ChannelMethod::parse(text) {
            Some(m @ (ChannelMethod::Phone | ChannelMethod::Unified)) => m,
            _ => {
                ctx.err(
                    format!("{at}.method"),
                    format!("`{text}` is not one of danal, inicis_unified (PortOne V2's identity-verification channels; card verification is Iamport's, pg: inicis)"),
                );
                ChannelMethod::default()
            }
        },
    };
    Some(Settings {
        method,
        store_id: p.store_id.trim().to_string(),
        channel_key: channel_key.to_string(),
        api_secret,
        base_url,
        sdk_url,
        timeout,
        max_result_age,
    })
}
