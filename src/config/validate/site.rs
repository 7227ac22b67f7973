//! `site` (the shop's name, logo and contact on every page), `tls.hsts`, and the URLs and
//! labels pages show (`routes[].require.on_duplicate`).

use super::*;
use crate::answers::{Frame, Support};

/// The longest URL a page may carry.
const MAX_URL: usize = 2048;

/// `site`: the name given to the providers' windows, and the frame of every page.
pub(super) fn site(ctx: &mut Ctx, site: Option<&FileSite>) -> (Option<String>, Frame) {
    let Some(site) = site else {
        return (None, Frame::default());
    };
    let name = site_name(ctx, site);
    let logo = site
        .logo_url
        .as_deref()
        .and_then(|u| https_url(ctx, "site.logo_url", u));
    if logo.is_some() && site.name.is_none() {
        ctx.err(
            "site.logo_url",
            "needs site.name: the name is the logo's alternative text (what a screen reader says, and what shows when the image does not load)",
        );
    }
    let support = site.support.as_ref().and_then(|s| support(ctx, s));
    let frame = Frame::new(name.as_deref(), logo.as_deref(), support.as_ref());
    (name, frame)
}

/// `site.name`: shown in the providers' windows, so short plain text.
fn site_name(ctx: &mut Ctx, site: &FileSite) -> Option<String> {
    let name = site.name.as_deref()?.trim();
    if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
        ctx.err(
            "site.name",
            "must be 1 to 50 characters of plain text (the service name the verification windows show)",
        );
        return None;
    }
    Some(name.to_string())
}

/// `site.support`: plain text, an `https://` page, a phone number, an e-mail address.
fn support(ctx: &mut Ctx, s: &FileSupport) -> Option<Support> {
    if s.text.is_none() && s.url.is_none() && s.phone.is_none() && s.email.is_none() {
        ctx.err(
            "site.support",
            "say how a person reaches the shop: text, url, phone or email (at least one)",
        );
        return None;
    }
    let text = s
        .text
        .as_deref()
        .and_then(|t| plain(ctx, "site.support.text", t, 200));
    let url = s
        .url
        .as_deref()
        .and_then(|u| https_url(ctx, "site.support.url", u));
    let phone = s.phone.as_deref().and_then(|p| {
        let p = p.trim();
        let digits = p.chars().filter(char::is_ascii_digit).count();
        let ok = (3..=20).contains(&digits)
            && p.len() <= 30
            && p.chars().enumerate().all(|(i, c)| {
                c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0)
            });
        if !ok {
            ctx.err(
                "site.support.phone",
                format!("`{p}` is not a telephone number (digits, spaces, - ( ) . and a leading +; e.g. 1588-0000 or +82 2-123-4567)"),
            );
        }
        ok.then(|| p.to_string())
    });
    let email = s.email.as_deref().and_then(|e| {
        let e = e.trim();
        let ok = e.len() <= 254
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && local
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&*+-/=?^_`{|}~.".contains(&b))
                    && domain
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            });
        if !ok {
            ctx.err(
                "site.support.email",
                format!("`{e}` is not an e-mail address (write e.g. help@shop.example)"),
            );
        }
        ok.then(|| e.to_string())
    });
    Some(Support {
        text,
        url,
        phone,
        email,
    })
}

/// One line of plain text, at most `max` characters.
pub(super) fn plain(ctx: &mut Ctx, key: &str, text: &str, max: usize) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        ctx.err(
            key,
            format!("must be 1 to {max} characters of plain text on one line"),
        );
        return None;
    }
    Some(t.to_string())
}

/// An absolute `https://` URL with a host, no user name or password, and nothing a page
/// would have to repair (spaces, quotes, angle brackets: percent-encode them).
pub(super) fn https_url(ctx: &mut Ctx, key: &str, value: &str) -> Option<String> {
    let ok = value.len() <= MAX_URL
        && value.starts_with("https://")
        && value.parse::<http::Uri>().is_ok_and(|u| {
            u.scheme_str() == Some("https")
                && u.authority()
                    .is_some_and(|a| !a.as_str().contains('@') && !a.host().is_empty())
        })
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`".contains(c));
    if !ok {
        ctx.err(
            key,
            format!("`{value}` is not an https:// URL (absolute, with a host, no user name, no spaces or quotes)"),
        );
    }
    ok.then(|| value.to_string())
}

/// An `https://` URL, or a path on this site (`/login?from=verigate`): never `//host`, `/\`,
/// another scheme, or control characters.
pub(super) fn https_or_path(ctx: &mut Ctx, key: &str, value: &str) -> Option<String> {
    if value.starts_with("https://") {
        return https_url(ctx, key, value);
    }
    let ok = value.len() <= MAX_URL
        && value.starts_with('/')
        && crate::routing::path::safe_return_to(Some(value)).is_some()
        && value.parse::<http::Uri>().is_ok()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || "\"'<>`".contains(c));
    if !ok {
        ctx.err(
            key,
            format!("`{value}` is neither an https:// URL nor a path on this site (starting with one /)"),
        );
    }
    ok.then(|| value.to_string())
}

/// The longest `max-age` HSTS is given: two years (browsers' preload lists ask for one).
const MAX_HSTS: Duration = Duration::from_secs(2 * 365 * 86_400);

/// `tls.hsts`: the `Strict-Transport-Security` value.
pub(super) fn hsts(ctx: &mut Ctx, h: &FileHsts) -> Option<http::HeaderValue> {
    let age = match duration::parse(&h.max_age) {
        Ok(d) => d,
        Err(e) => {
            ctx.err("tls.hsts.max_age", e);
            return None;
        }
    };
    if age > MAX_HSTS {
        ctx.err(
            "tls.hsts.max_age",
            "is longer than two years (730d): a mistake would be remembered that long",
        );
        return None;
    }
    let mut v = format!("max-age={}", age.as_secs());
    if h.include_subdomains {
        v.push_str("; includeSubDomains");
    }
    http::HeaderValue::from_str(&v).ok()
}
