//! Routes: what each matches, what it requires, what it forwards.

use super::*;
use crate::config::providers::FileProviders;
use crate::identity::{AgeRule, ProviderId};
use crate::routing::{KeepRule, MatchRule, Require};

pub(super) fn route(
    ctx: &mut Ctx,
    i: usize,
    r: &FileRoute,
    providers: &FileProviders,
    upstream: usize,
) -> Option<Route> {
    let at = format!("routes[{i}]");
    let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        ctx.err(
            format!("{at}.name"),
            format!("`{name}` may hold only letters, digits, - and _"),
        );
    }
    let rule = match &r.matcher {
        None => {
            ctx.err(
                format!("{at}.match"),
                "every route needs a match (path or path_prefix)",
            );
            None
        }
        Some(m) => matcher(ctx, &format!("{at}.match"), m),
    };
    let require = r.require.as_ref().map(|q| require(ctx, &at, q, providers));
    let mut forward = Forward::default();
    for (j, field) in r.forward.iter().enumerate() {
        match field.as_str() {
            "name" => forward.name = true,
            "birth" => forward.birth = true,
            "gender" => forward.gender = true,
            "phone" => forward.phone = true,
            "foreigner" => forward.foreigner = true,
            "carrier" => forward.carrier = true,
            "guardian_name" | "guardian_birth" => {
                if r
                    .require
                    .as_ref()
                    .is_none_or(|q| q.guardian_consent.is_none())
                {
                    ctx.err(
                        format!("{at}.forward[{j}]"),
                        format!("`{field}` only on a route with require.guardian_consent"),
                    );
                }
                match field.as_str() {
                    "guardian_name" => forward.guardian_name = true,
                    _ => forward.guardian_birth = true,
                }
            }
            other => ctx.err(
                format!("{at}.forward[{j}]"),
                format!(
                    "unknown field `{other}` (expected name, birth, gender, phone, foreigner, carrier, guardian_name, guardian_birth)"
                ),
            ),
        }
    }
    if forward.any() && r.require.as_ref().is_some_and(|q| q.age_status) {
        ctx.err(
            format!("{at}.require.age_status"),
            "an age status carries no person, so it cannot forward identity fields: drop age_status (the route then needs a session) or forward",
        );
    }
    if forward.any() && r.require.is_none() {
        ctx.err(
            format!("{at}.forward"),
            "forwarding identity fields needs a `require` on the route",
        );
    }
    Some(Route {
        name,
        rule: rule?,
        require: match require {
            Some(q) => Some(q?),
            None => None,
        },
        forward,
        upstream,
    })
}

pub(super) fn matcher(ctx: &mut Ctx, at: &str, m: &FileMatch) -> Option<MatchRule> {
    let (pattern, exact) = match (&m.path, &m.path_prefix) {
        (Some(p), None) => (p.clone(), true),
        (None, Some(p)) => (p.clone(), false),
        (Some(_), Some(_)) => {
            ctx.err(at, "set either path or path_prefix, not both");
            return None;
        }
        (None, None) => {
            ctx.err(at, "needs path or path_prefix");
            return None;
        }
    };
    let key = if exact { "path" } else { "path_prefix" };
    if !pattern.starts_with('/') || pattern.contains(['?', '#']) {
        ctx.err(
            format!("{at}.{key}"),
            format!("`{pattern}` must be a path starting with / (no query)"),
        );
        return None;
    }
    let canonical = match crate::routing::path::normalize(&pattern) {
        Ok(c) => c.into_owned(),
        Err(e) => {
            ctx.err(
                format!("{at}.{key}"),
                format!("`{pattern}` is refused in requests ({e}), so no request could match it"),
            );
            return None;
        }
    };
    let mut methods = Vec::new();
    for (j, meth) in m.methods.iter().enumerate() {
        let up = meth.to_ascii_uppercase();
        if STANDARD_METHODS.contains(&up.as_str()) {
            if let Ok(mm) = http::Method::from_bytes(up.as_bytes()) {
                methods.push(mm);
            }
        } else {
            ctx.err(
                format!("{at}.methods[{j}]"),
                format!(
                    "`{meth}` is not a standard HTTP method ({}); list an extension method under extension_methods",
                    STANDARD_METHODS.join(", ")
                ),
            );
        }
    }
    for (j, meth) in m.extension_methods.iter().enumerate() {
        let token = is_token(meth) && meth.bytes().all(|b| !b.is_ascii_lowercase());
        match http::Method::from_bytes(meth.as_bytes()) {
            Ok(mm) if token && !STANDARD_METHODS.contains(&meth.as_str()) => methods.push(mm),
            _ => ctx.err(
                format!("{at}.extension_methods[{j}]"),
                format!(
                    "`{meth}` must be a method token in capitals that is not a standard method"
                ),
            ),
        }
    }
    let mut hosts = Vec::new();
    for (j, h) in m.host.iter().flat_map(|h| h.as_slice()).enumerate() {
        let key = match &m.host {
            Some(OneOrMany::Many(_)) => format!("{at}.host[{j}]"),
            _ => format!("{at}.host"),
        };
        match crate::routing::HostPattern::parse(h) {
            Ok(p) => hosts.push(p),
            Err(e) => ctx.err(key, e.to_string()),
        }
    }
    if matches!(&m.host, Some(OneOrMany::Many(l)) if l.is_empty()) {
        ctx.err(
            format!("{at}.host"),
            "list at least one host, or leave host out",
        );
    }
    let fall_through = match m.other_methods.as_deref() {
        None | Some("refuse") => false,
        Some("next_route") => true,
        Some(other) => {
            ctx.err(
                format!("{at}.other_methods"),
                format!("`{other}` is not one of refuse, next_route"),
            );
            false
        }
    };
    Some(
        MatchRule::new(&canonical, exact, methods, m.case_sensitive, fall_through)
            .with_hosts(hosts),
    )
}

/// The methods of RFC 9110 and PATCH (RFC 5789). CONNECT is left out: verigate refuses it.
const STANDARD_METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH",
];

pub(super) fn require(
    ctx: &mut Ctx,
    at: &str,
    q: &FileRequire,
    providers: &FileProviders,
) -> Option<Require> {
    let at = format!("{at}.require");
    if q.providers.is_empty() {
        ctx.err(
            format!("{at}.providers"),
            "list the providers this route accepts (e.g. [iamport])",
        );
    }
    let mut ids = Vec::new();
    for (j, p) in q.providers.iter().enumerate() {
        match ProviderId::parse(p) {
            None => ctx.err(
                format!("{at}.providers[{j}]"),
                format!(
                    "unknown provider `{p}` (known: {})",
                    ProviderId::ALL.map(ProviderId::as_str).join(", ")
                ),
            ),
            Some(id) => {
                // A section with a problem (a missing secret, say) has reported it already.
                if !providers.declared(id) {
                    ctx.err(
                        format!("{at}.providers[{j}]"),
                        format!("provider `{p}` is not configured under providers.{p}"),
                    );
                }
                ids.push(id);
            }
        }
    }
    let min_age = match &q.min_age {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 150 => Some(n as u32),
            _ => {
                ctx.err(
                    format!("{at}.min_age"),
                    format!(
                        "`{}` is not an age (a whole number from 0 to 150)",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ),
                );
                None
            }
        },
    };
    let age_rule = age_rule(ctx, &at, min_age.is_some(), q);
    let max_session_age = q
        .max_session_age
        .as_deref()
        .map(|d| ctx.duration(&format!("{at}.max_session_age"), Some(d), Duration::ZERO));
    if min_age.is_some() && !ids.is_empty() && !ids.iter().any(|p| p.verifies_birth()) {
        ctx.err(
            format!("{at}.min_age"),
            "ifree's birth date is self-asserted (the member's own client writes it): no one could pass; add a provider that verifies birth dates",
        );
    }
    // One account per person holds only within one identity namespace.
    let per_provider = match q.one_account_scope.as_deref() {
        None | Some("person") => false,
        Some("per_provider") => true,
        Some(other) => {
            ctx.err(
                format!("{at}.one_account_scope"),
                format!("`{other}` is not one of person, per_provider"),
            );
            false
        }
    };
    if q.one_account_scope.is_some() && !q.one_account_per_person {
        ctx.err(
            format!("{at}.one_account_scope"),
            "only means something with one_account_per_person: true",
        );
    }
    let mut spaces: Vec<crate::identity::Namespace> = Vec::new();
    for id in &ids {
        if !spaces.contains(&id.namespace()) {
            spaces.push(id.namespace());
        }
    }
    if q.one_account_per_person && spaces.len() > 1 && !per_provider {
        let kinds: Vec<String> = ids
            .iter()
            .map(|p| format!("{} ({})", p.as_str(), p.namespace().as_str()))
            .collect();
        ctx.err(
            format!("{at}.providers"),
            format!(
                "one_account_per_person cannot hold across {}: these identities cannot be linked, so one person could sign up once with each; accept providers of one kind, or say one_account_scope: per_provider",
                kinds.join(", ")
            ),
        );
    }
    let mut commit_on = crate::routing::CommitOn::default();
    if let Some(list) = &q.commit_on {
        commit_on = crate::routing::CommitOn {
            success: false,
            redirection: crate::routing::Redirects::None,
        };
        for (j, c) in list.iter().enumerate() {
            match c.as_str() {
                "2xx" => commit_on.success = true,
                "3xx" => commit_on.redirection = crate::routing::Redirects::All,
                other => ctx.err(
                    format!("{at}.commit_on[{j}]"),
                    format!("`{other}` is not one of 2xx, 3xx"),
                ),
            }
        }
        if list.is_empty() {
            ctx.err(format!("{at}.commit_on"), "list 2xx, 3xx or both");
        }
        if !q.one_account_per_person {
            ctx.err(
                format!("{at}.commit_on"),
                "only means something with one_account_per_person: true",
            );
        }
    }
    if q.age_status {
        let key = format!("{at}.age_status");
        if min_age.is_none() && q.min_age.is_none() {
            ctx.err(
                key.clone(),
                "only means something with min_age (an age status says a person's age, nothing else)",
            );
        }
        if q.one_account_per_person {
            ctx.err(
                key,
                "an age status carries no person, so it cannot hold one account per person: drop age_status (the route then needs a session) or one_account_per_person",
            );
        }
    }
    let guardian = q
        .guardian_consent
        .as_ref()
        .and_then(|g| guardian_consent(ctx, &at, g, &ids, q));
    Some(Require {
        providers: ids,
        min_age,
        age_rule,
        one_account_per_person: q.one_account_per_person,
        commit_on,
        max_session_age: max_session_age.filter(|d| !d.is_zero()),
        rejoin_after: rejoin_after(ctx, &at, q),
        keep: keep(ctx, &format!("{at}.keep_request"), q.keep_request.as_ref()),
        on_duplicate: on_duplicate(ctx, &at, q),
        age_status: q.age_status,
        guardian: guardian.map(std::sync::Arc::new),
    })
}

/// The longest and shortest life of a guardian link (`guardian_consent.link_ttl`).
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(3600));

/// `require.guardian_consent`: every key checked, each problem under its key path.
fn guardian_consent(
    ctx: &mut Ctx,
    at: &str,
    g: &crate::config::file::FileGuardianConsent,
    ids: &[ProviderId],
    q: &FileRequire,
) -> Option<crate::routing::GuardianRule> {
    use crate::routing::{Children, GuardianRule};
    let at = format!("{at}.guardian_consent");
    let mut ok = true;
    let under = match &g.under {
        None => {
            ctx.err(
                format!("{at}.under"),
                "required: children under this age need a guardian's consent (14 for PIPA 제22조의2, 18 for 게임산업법 제12조의3)",
            );
            None
        }
        Some(v) => match v.as_u64() {
            Some(n) if (1..=19).contains(&n) => Some(n as u32),
            _ => {
                ctx.err(
                    format!("{at}.under"),
                    format!(
                        "`{}` is not an age from 1 to 19",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ),
                );
                None
            }
        },
    };
    let age_rule = match g.age_rule.as_deref() {
        None => {
            ctx.err(format!("{at}.age_rule"), format!("required: {AGE_RULES}"));
            None
        }
        Some(r) => match AgeRule::parse(r) {
            Some(rule) => Some(rule),
            None => {
                ctx.err(
                    format!("{at}.age_rule"),
                    format!("`{r}` is not one of {AGE_RULES}"),
                );
                None
            }
        },
    };
    let children = match g.children.as_deref() {
        None => {
            ctx.err(
                format!("{at}.children"),
                "required: verified (a child verifies first, through a provider that verifies birth dates) or stated_birth_date (a child without a verification of their own states a birth date on verigate's page)",
            );
            None
        }
        Some("verified") => Some(Children::Verified),
        Some("stated_birth_date") => Some(Children::StatedBirthDate),
        Some(other) => {
            ctx.err(
                format!("{at}.children"),
                format!("`{other}` is not one of verified, stated_birth_date"),
            );
            None
        }
    };
    let text_version = match g.text_version.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() && v.len() <= 64 && !v.chars().any(char::is_control) => {
            Some(v.to_string())
        }
        Some(_) => {
            ctx.err(
                format!("{at}.text_version"),
                "must be 1 to 64 characters on one line (the version of your consent text, e.g. \"2026-12-01\")",
            );
            None
        }
        None => {
            ctx.err(
                format!("{at}.text_version"),
                "required: the version of your consent text (recorded with each consent)",
            );
            None
        }
    };
    let text = match &g.text {
        None => {
            ctx.err(
                format!("{at}.text"),
                "required: what the child signs up for, shown to the guardian: { ko: ..., en: ... }",
            );
            None
        }
        Some(t) => {
            let mut one = |lang: &str, v: &Option<String>| match v.as_deref().map(str::trim) {
                Some(v) if !v.is_empty() && v.len() <= 4000 => Some(v.to_string()),
                _ => {
                    ctx.err(
                        format!("{at}.text.{lang}"),
                        "required: 1 to 4,000 characters of the consent text in this language",
                    );
                    None
                }
            };
            let ko = one("ko", &t.ko);
            let en = one("en", &t.en);
            ko.zip(en)
        }
    };
    let link_ttl = ctx.duration(
        &format!("{at}.link_ttl"),
        g.link_ttl.as_deref(),
        Duration::from_secs(600),
    );
    if link_ttl < LINK_TTL.0 || link_ttl > LINK_TTL.1 {
        ctx.err(
            format!("{at}.link_ttl"),
            "must be from 1m to 1h (the guardian opens the link on their own phone now, not later)",
        );
        ok = false;
    }
    if !ids.is_empty() && !ids.iter().any(|p| p.verifies_birth()) {
        ctx.err(
            at.clone(),
            "none of this route's providers verifies birth dates: no child's age and no guardian's adulthood could be known; add one that does (iamport, portone, tomo)",
        );
        ok = false;
    }
    if children == Some(Children::StatedBirthDate) && q.one_account_per_person {
        ctx.err(
            format!("{at}.children"),
            "a child who only states a birth date has no person id (CI) to hold one account to: use children: verified with one_account_per_person, or drop one_account_per_person",
        );
        ok = false;
    }
    if q.age_status {
        ctx.err(
            at.clone(),
            "an age status carries no person, so no consent can be bound to the child: drop age_status",
        );
        ok = false;
    }
    let rule = GuardianRule {
        under: under?,
        age_rule: age_rule?,
        children: children?,
        text_version: text_version?,
        text: text?,
        link_ttl,
    };
    ok.then_some(rule)
}

/// What `check` says when a route's `min_age` has no `age_rule`: both rules and what each is for.
const AGE_RULES: &str = "youth_act (청소년보호법: of age from 1 January of the year of turning min_age, whatever the birthday; for 19+ content, alcohol and tobacco) or birthday (international age 만 나이, reached on the birthday; for PIPA's under-14 consent and other statutes that count it)";

/// `require.age_rule`: required wherever `min_age` is set (`valid_min_age`: set and an age; a
/// bad one has its own message), meaningless without it.
fn age_rule(ctx: &mut Ctx, at: &str, valid_min_age: bool, q: &FileRequire) -> AgeRule {
    match (q.age_rule.as_deref(), valid_min_age) {
        (None, false) => AgeRule::Birthday,
        (None, true) => {
            ctx.err(
                format!("{at}.age_rule"),
                format!("min_age needs an age_rule: {AGE_RULES}"),
            );
            AgeRule::Birthday
        }
        (Some(name), _) => {
            let Some(rule) = AgeRule::parse(name) else {
                ctx.err(
                    format!("{at}.age_rule"),
                    format!("`{name}` is not an age rule: write {AGE_RULES}"),
                );
                return AgeRule::Birthday;
            };
            if q.min_age.is_none() {
                ctx.err(
                    format!("{at}.age_rule"),
                    "only means something with min_age",
                );
            }
            rule
        }
    }
}

/// The largest body a route may keep: kept bodies are held whole, in memory while they
/// arrive and in the store until their verification.
const MAX_KEPT_BODY: usize = 16 * 1024 * 1024;

/// `require.keep_request`: on by default (256 KB, 10 minutes), `false` turns it off.
fn keep(ctx: &mut Ctx, at: &str, k: Option<&FileKeep>) -> Option<KeepRule> {
    let s = match k {
        None => return Some(KeepRule::default()),
        Some(FileKeep::Off) => return None,
        Some(FileKeep::On(s)) => s,
    };
    let default = KeepRule::default();
    let max_body = match &s.max_body {
        None => default.max_body,
        Some(v) => match size(v) {
            Some(n) if (1..=MAX_KEPT_BODY).contains(&n) => n,
            _ => {
                ctx.err(
                    format!("{at}.max_body"),
                    format!(
                        "`{}` is not a size from 1 byte to 16MB (write 256KB, 1MB or a number of bytes)",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ),
                );
                default.max_body
            }
        },
    };
    let ttl = ctx.duration(&format!("{at}.ttl"), s.ttl.as_deref(), default.ttl);
    if ttl.is_zero() || ttl > Duration::from_secs(3600) {
        ctx.err(
            format!("{at}.ttl"),
            "must be from 1s to 1h (a kept request waits for one verification)",
        );
    }
    Some(KeepRule { max_body, ttl })
}

/// A size in bytes: a number, or a number with `B`, `KB` or `MB` (powers of 1024).
fn size(v: &serde_yaml::Value) -> Option<usize> {
    if let Some(n) = v.as_u64() {
        return usize::try_from(n).ok();
    }
    let text = v.as_str()?.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let unit = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "KIB" => 1024,
        "MB" | "MIB" => 1024 * 1024,
        _ => return None,
    };
    number.parse::<usize>().ok()?.checked_mul(unit)
}

/// `require.rejoin_after`: only on a one-account route (the refusal is of a signup).
fn rejoin_after(ctx: &mut Ctx, at: &str, q: &FileRequire) -> Option<Duration> {
    let text = q.rejoin_after.as_deref()?;
    let key = format!("{at}.rejoin_after");
    let d = ctx.duration(&key, Some(text), Duration::ZERO);
    if !q.one_account_per_person {
        ctx.err(
            key,
            "only means something with one_account_per_person: true",
        );
        return None;
    }
    (!d.is_zero()).then_some(d)
}

/// The longest `on_duplicate.label`: one button's text.
const MAX_LABEL: usize = 40;

/// `require.on_duplicate`: only on a one-account route (the page is its refusal).
fn on_duplicate(ctx: &mut Ctx, at: &str, q: &FileRequire) -> Option<(String, String)> {
    let d = q.on_duplicate.as_ref()?;
    let key = format!("{at}.on_duplicate");
    let url = super::site::https_or_path(ctx, &format!("{key}.url"), d.url.trim());
    let label = super::site::plain(ctx, &format!("{key}.label"), &d.label, MAX_LABEL);
    if !q.one_account_per_person {
        ctx.err(
            key,
            "only means something with one_account_per_person: true (it is the duplicate-account page's button)",
        );
        return None;
    }
    Some((url?, label?))
}
