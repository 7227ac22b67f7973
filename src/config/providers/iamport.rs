//! Iamport (PortOne V1) settings: the file's shape, the runtime values and their check.

use crate::config::ctx::Ctx;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub imp_code: String,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_key_file: Option<String>,
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
    #[serde(default)]
    pub popup: Option<bool>,
    /// The certification channel (`channelKey` of `IMP.certification`), for merchants with
    /// several; without it the SDK takes the merchant's first certification channel.
    #[serde(default)]
    pub channel_key: Option<String>,
    /// The older way to pick a channel (`pg` of `IMP.certification`, e.g. `danal.im0001`).
    #[serde(default)]
    pub pg: Option<String>,
    /// How the channel verifies (`danal`, `inicis_unified`, `inicis`), for the pages: by
    /// default `pg`'s prefix, else `danal`.
    #[serde(default)]
    pub method: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub imp_code: String,
    pub api_key: String,
    pub api_secret: String,
    pub base_url: String,
    pub sdk_url: String,
    pub timeout: Duration,
    pub max_result_age: Duration,
    pub popup: bool,
    pub channel_key: Option<String>,
    pub pg: Option<String>,
    /// How the channel verifies, as the choice and start pages say it.
    pub method: crate::identity::ChannelMethod,
}

/// `providers.iamport`, checked; every problem under its key path.
pub(crate) fn validate(ctx: &mut Ctx, i: &File, _flow_prefix: &str) -> Option<Settings> {
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
    Some(Settings {
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
        channel_key: optional(
            ctx,
            "providers.iamport.channel_key",
            i.channel_key.as_deref(),
        ),
        method: method(ctx, i),
        pg: optional(ctx, "providers.iamport.pg", i.pg.as_deref()),
    })
}

/// `providers.iamport.method`, else what `pg` names, else Danal's phone verification.
fn method(ctx: &mut Ctx, i: &File) -> crate::identity::ChannelMethod {
    use crate::identity::ChannelMethod;
    let from_pg =
        i.pg.as_deref()
            .and_then(|pg| ChannelMethod::of_pg(pg.trim()));
    let Some(text) = i.method.as_deref() else {
        return from_pg.unwrap_or_default();
    };
    let Some(m) = ChannelMethod::parse(text.trim()) else {
        ctx.err(
            "providers.iamport.method",
            format!(
                "`{text}` is not one of {} (how the certification channel verifies: phone, 통합인증, credit card)",
                ChannelMethod::NAMES.join(", ")
            ),
        );
        return ChannelMethod::default();
    };
    if from_pg.is_some_and(|p| p != m) {
        ctx.err(
            "providers.iamport.method",
            format!("`{text}` is not what pg names; leave method out, or set pg to its channel"),
        );
    }
    m
}

/// An optional text setting: absent is None, present must say something.
fn optional(ctx: &mut Ctx, path: &str, v: Option<&str>) -> Option<String> {
    let v = v?.trim();
    if v.is_empty() {
        ctx.err(path, "must not be empty (leave the key out instead)");
        return None;
    }
    Some(v.to_string())
}
