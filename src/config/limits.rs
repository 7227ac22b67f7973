//! `limits`: the file's shape and its check into the runtime values (`ratelimit::Limits`).

use crate::config::ctx::Ctx;
use crate::ratelimit::settings::{Bucket, Limits};
use serde::Deserialize;

/// One token bucket as written: `{ burst, per_minute }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBucket {
    /// How many may come at once (the bucket's size).
    #[serde(default)]
    pub burst: Option<u32>,
    /// How many a minute on average (the bucket's refill).
    #[serde(default)]
    pub per_minute: Option<u32>,
}

/// Limits on starting verifications (`limits.verification_starts`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStarts {
    /// One client: an IPv4 address, an IPv6 /64.
    #[serde(default)]
    pub per_client: Option<FileBucket>,
    /// Every client together, for one provider.
    #[serde(default)]
    pub per_provider: Option<FileBucket>,
}

/// Limits on ifree key exchanges (`limits.ifree_key_exchanges`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileExchanges {
    #[serde(default)]
    pub per_client: Option<FileBucket>,
    /// Every caller together.
    #[serde(default)]
    pub overall: Option<FileBucket>,
}

/// `limits` (docs/guide/rate-limits-and-pages.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    #[serde(default)]
    pub verification_starts: Option<FileStarts>,
    #[serde(default)]
    pub ifree_key_exchanges: Option<FileExchanges>,
}

fn bucket(ctx: &mut Ctx, at: &str, b: Option<&FileBucket>, default: Bucket) -> Bucket {
    let Some(b) = b else { return default };
    let mut one = |key: &str, v: Option<u32>, d: u32| match v {
        None => d,
        Some(0) => {
            ctx.err(format!("{at}.{key}"), "must be at least 1");
            d
        }
        Some(n) => n,
    };
    Bucket {
        burst: one("burst", b.burst, default.burst),
        per_minute: one("per_minute", b.per_minute, default.per_minute),
    }
}

pub(crate) fn validate(ctx: &mut Ctx, f: Option<&FileLimits>) -> Limits {
    let d = Limits::default();
    let Some(f) = f else { return d };
    let s = f.verification_starts.as_ref();
    let e = f.ifree_key_exchanges.as_ref();
    Limits {
        start_per_client: bucket(
            ctx,
            "limits.verification_starts.per_client",
            s.and_then(|s| s.per_client.as_ref()),
            d.start_per_client,
        ),
        start_per_provider: bucket(
            ctx,
            "limits.verification_starts.per_provider",
            s.and_then(|s| s.per_provider.as_ref()),
            d.start_per_provider,
        ),
        exchange_per_client: bucket(
            ctx,
            "limits.ifree_key_exchanges.per_client",
            e.and_then(|e| e.per_client.as_ref()),
            d.exchange_per_client,
        ),
        exchange_overall: bucket(
            ctx,
            "limits.ifree_key_exchanges.overall",
            e.and_then(|e| e.overall.as_ref()),
            d.exchange_overall,
        ),
    }
}
