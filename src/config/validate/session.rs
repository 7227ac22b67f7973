//! The session, its cookies and keys, the identity headers and the signed assertion.

use super::*;
use crate::session::Keyring;

pub(super) fn assertion(ctx: &mut Ctx, a: &FileAssertion) -> Option<AssertionConfig> {
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

/// `session.keys_env` / `keys_file`: the keys that sign sessions.
fn session_keys(ctx: &mut Ctx, s: &FileSession) -> Option<Keyring> {
    let raw = ctx.secret(
        "session",
        "keys",
        s.keys_env.as_deref(),
        s.keys_file.as_deref(),
        true,
    )?;
    match Keyring::from_base64_list(&raw) {
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
    }
}

/// The key of the keyed hashes: `session.hash_key_env` / `hash_key_file`, else derived from
/// the session keys.
fn hash_key(ctx: &mut Ctx, s: &FileSession, keys: Option<&Keyring>) -> Option<[u8; 32]> {
    let hash_raw = ctx.secret(
        "session",
        "hash_key",
        s.hash_key_env.as_deref(),
        s.hash_key_file.as_deref(),
        false,
    );
    match (&hash_raw, keys) {
        (Some(raw), _) => match crate::session::decode_key(raw) {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.err("session.hash_key_env", e.to_string());
                None
            }
        },
        (None, Some(k)) => Some(k.derive_hash_key()),
        (None, None) => None,
    }
}

/// Only the hash key, for the record commands: the session keys are read only when no
/// explicit hash key is set (the hash key is then derived from them).
pub(super) fn hash_key_only(ctx: &mut Ctx, s: &FileSession) -> Option<[u8; 32]> {
    if s.hash_key_env.is_some() || s.hash_key_file.is_some() {
        return hash_key(ctx, s, None);
    }
    let keys = session_keys(ctx, s);
    hash_key(ctx, s, keys.as_ref())
}

pub(super) fn session(ctx: &mut Ctx, s: &FileSession) -> Option<SessionConfig> {
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
    let keys = session_keys(ctx, s);
    let hash_key = hash_key(ctx, s, keys.as_ref());
    let hash_key = hash_key?;
    let at_rest =
        Keyring::new(&[crate::session::derive_key(&hash_key, "verigate/at-rest/v1")]).ok()?;
    let keys = keys?;
    let age_status_ttl = age_status_ttl(ctx, s);
    let secure = s.secure.unwrap_or(true);
    let names = crate::cookies::Names::new(&cookie, secure);
    Some(SessionConfig {
        all_cookies: names.all(),
        at_rest,
        kept: keys.derived("verigate/kept-store/v1"),
        kept_cookie: names.kept,
        age_cookie: names.age,
        child_cookie: names.child,
        age_status_ttl,
        flow_cookie: names.flow,
        cookie: names.session,
        legacy_cookie: names.legacy,
        retired_cookies: names.retired,
        ttl,
        secure,
        keys,
        hash_key,
    })
}

/// The longest an age status may last: adult checks are asked at least once a year.
const MAX_AGE_STATUS_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// `session.age_status_ttl`: unset (the default) issues and accepts no age status.
pub(super) fn age_status_ttl(ctx: &mut Ctx, s: &FileSession) -> Option<Duration> {
    let text = s.age_status_ttl.as_deref()?;
    let ttl = match crate::config::duration::parse(text) {
        Ok(d) => d,
        Err(e) => {
            ctx.err("session.age_status_ttl", e);
            return None;
        }
    };
    if ttl.is_zero() || ttl > MAX_AGE_STATUS_TTL {
        ctx.err(
            "session.age_status_ttl",
            "must be from 1s to 366d (an adult check is asked at least once a year); leave it out for no age status",
        );
        return None;
    }
    Some(ttl)
}

pub(super) fn identity(ctx: &mut Ctx, h: Option<&FileIdentityHeaders>) -> IdentityHeaders {
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
    let assertion = header(ctx, &folded, "assertion");
    let prefix_folded = crate::config::folded(&folded);
    let assertion_folded = crate::config::folded(assertion.as_str());
    IdentityHeaders {
        common_kept: crate::config::common_names::common_kept(&prefix_folded, &assertion_folded),
        prefix_folded,
        assertion_folded,
        assertion,
        unique_in_site: header(ctx, &folded, "unique-in-site"),
        person: header(ctx, &folded, "person"),
        method: header(ctx, &folded, "method"),
        foreigner: header(ctx, &folded, "foreigner"),
        carrier: header(ctx, &folded, "carrier"),
        age_ok: header(ctx, &folded, "age-ok"),
        age_checked_at: header(ctx, &folded, "age-checked-at"),
        provider: header(ctx, &folded, "provider"),
        verified_at: header(ctx, &folded, "at"),
        name: header(ctx, &folded, "name"),
        birth: header(ctx, &folded, "birth"),
        gender: header(ctx, &folded, "gender"),
        phone: header(ctx, &folded, "phone"),
        guardian_consent: header(ctx, &folded, "guardian-consent"),
        guardian_at: header(ctx, &folded, "guardian-at"),
        guardian_name: header(ctx, &folded, "guardian-name"),
        guardian_birth: header(ctx, &folded, "guardian-birth"),
        prefix: folded,
    }
}
