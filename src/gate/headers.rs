//! Identity headers: strip every client-sent one (any case, `_` for `-`), inject verigate's.
//! Cookies: read verigate's own, keep them from reaching the upstream app.

use crate::config::{Forward, IdentityHeaders};
use crate::session::Claims;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use pingora::http::RequestHeader;

/// Non-ASCII, controls and `%` are percent-encoded (UTF-8) in forwarded values.
const VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// Does a header name fall under the identity prefix? `prefix` is lower-case with `-`.
pub fn is_identity_header(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.bytes().zip(prefix.bytes()).all(|(a, p)| {
            let a = a.to_ascii_lowercase();
            a == p || (a == b'_' && p == b'-')
        })
}

/// Remove every identity header a client sent. Returns how many were removed.
pub fn strip_identity(req: &mut RequestHeader, prefix: &str) -> usize {
    // The common case (none sent) allocates nothing.
    if !req
        .headers
        .keys()
        .any(|k| is_identity_header(k.as_str(), prefix))
    {
        return 0;
    }
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|k| is_identity_header(k.as_str(), prefix))
        .cloned()
        .collect();
    for name in &doomed {
        req.remove_header(name);
    }
    doomed.len()
}

/// The value of cookie `name` in the request's Cookie header(s), if present (borrowed).
pub fn read_cookie<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// Remove verigate's cookies from what goes upstream; other cookies pass untouched.
pub fn strip_cookies(req: &mut RequestHeader, names: &[&str]) {
    take_cookie(req, "", names, |_| ());
}

/// Find cookie `name` and remove the cookies named in `strip` from the request, parsing the
/// Cookie header(s) once: `with` sees the value (borrowed) before the header changes. Other
/// cookies pass untouched; the header is rewritten only when a cookie has to go.
pub fn take_cookie<R>(
    req: &mut RequestHeader,
    name: &str,
    strip: &[&str],
    with: impl FnOnce(Option<&str>) -> R,
) -> R {
    let mut changed = false;
    let mut kept = String::new();
    let mut found = None;
    for c in req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
    {
        let Ok(c) = c else {
            changed = true;
            continue;
        };
        if found.is_none() && c.name() == name {
            found = c.value_raw();
        }
        if strip.contains(&c.name()) {
            changed = true;
        } else {
            if !kept.is_empty() {
                kept.push_str("; ");
            }
            kept.push_str(c.name());
            kept.push('=');
            kept.push_str(c.value());
        }
    }
    let out = with(found);
    if changed {
        req.remove_header(&http::header::COOKIE);
        if !kept.is_empty() {
            let _ = req.insert_header(http::header::COOKIE, kept);
        }
    }
    out
}

/// An opened session with the header values every verified request carries, computed once
/// per session cookie (see `Live::verified`). Names are kept as wire bytes: Pingora's
/// `insert_header` turns a `HeaderName` into its wire form (an allocation) on every call, a
/// `Bytes` it only clones.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    pub base: Vec<(bytes::Bytes, http::HeaderValue)>,
    age_ok: bytes::Bytes,
}

fn wire(name: &http::HeaderName) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(name.as_str().as_bytes())
}

impl Verified {
    pub fn new(claims: Claims, names: &IdentityHeaders) -> Self {
        let mut base = Vec::with_capacity(3);
        let mut push = |n: &http::HeaderName, v: &str| {
            if let Ok(v) = http::HeaderValue::from_str(&encode(v)) {
                base.push((wire(n), v));
            }
        };
        push(&names.unique_in_site, &claims.unique_in_site);
        push(&names.provider, claims.provider.as_str());
        if let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(claims.verified_at, 0) {
            push(
                &names.verified_at,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        Verified {
            claims,
            base,
            age_ok: wire(&names.age_ok),
        }
    }
}

/// What goes upstream for a verified request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub verified: std::sync::Arc<Verified>,
    pub age_ok: Option<bool>,
    pub forward: Forward,
}

fn encode(value: &str) -> std::borrow::Cow<'_, str> {
    utf8_percent_encode(value, VALUE).into()
}

fn set(req: &mut RequestHeader, name: &http::HeaderName, value: &str) {
    let _ = req.insert_header(name.clone(), encode(value).into_owned());
}

pub fn inject(req: &mut RequestHeader, names: &IdentityHeaders, id: &Identity) {
    for (n, v) in &id.verified.base {
        let _ = req.insert_header(n.clone(), v.clone());
    }
    let c = &id.verified.claims;
    if let Some(ok) = id.age_ok {
        let v = http::HeaderValue::from_static(if ok { "true" } else { "false" });
        let _ = req.insert_header(id.verified.age_ok.clone(), v);
    }
    let f = id.forward;
    if f.name {
        if let Some(v) = &c.name {
            set(req, &names.name, v);
        }
    }
    if f.birth {
        if let Some(v) = &c.birth {
            set(req, &names.birth, &v.format("%Y-%m-%d").to_string());
        }
    }
    if f.gender {
        if let Some(v) = &c.gender {
            set(req, &names.gender, v);
        }
    }
    if f.phone {
        if let Some(v) = &c.phone {
            set(req, &names.phone, v);
        }
    }
}

/// International age on `today`: a birthday on the day counts; 29 February birthdays are
/// reached on 1 March in common years.
pub fn age_on(birth: chrono::NaiveDate, today: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    let mut age = today.year() - birth.year();
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn prefix_matching_folds_case_and_underscore() {
        let p = "x-verified-";
        for n in [
            "x-verified-age-ok",
            "X-VERIFIED-AGE-OK",
            "x_verified_age_ok",
            "X_Verified-x",
        ] {
            assert!(is_identity_header(n, p), "{n}");
        }
        for n in ["x-verifiedage", "x-verify-", "accept", "x-verified"] {
            assert!(!is_identity_header(n, p), "{n}");
        }
    }

    #[test]
    fn strips_every_variant() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("X-Verified-Age-Ok", "true").unwrap();
        r.append_header("x-verified-unique-in-site", "a").unwrap();
        r.append_header("x-verified-unique-in-site", "b").unwrap();
        r.append_header("X_VERIFIED_PROVIDER", "iamport").unwrap();
        r.append_header("Accept", "*/*").unwrap();
        assert_eq!(strip_identity(&mut r, "x-verified-"), 3);
        assert_eq!(r.headers.len(), 1);
    }

    #[test]
    fn cookies_read_and_stripped() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Cookie", "a=1; vg=SECRET; b=2").unwrap();
        r.append_header("Cookie", "vg_flow=X").unwrap();
        assert_eq!(read_cookie(&r, "vg"), Some("SECRET"));
        assert_eq!(read_cookie(&r, "vg_flow"), Some("X"));
        strip_cookies(&mut r, &["vg", "vg_flow"]);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");

        // One parse: the value is seen before the cookies go.
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Cookie", "a=1; vg=SECRET").unwrap();
        r.append_header("Cookie", "vg_flow=X; b=2").unwrap();
        let seen = take_cookie(&mut r, "vg", &["vg", "vg_flow"], |v| v.map(str::to_string));
        assert_eq!(seen.as_deref(), Some("SECRET"));
        assert_eq!(r.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        // Only verigate's cookies: the header goes; none of them: it stays as it was.
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Cookie", "vg=S").unwrap();
        assert_eq!(
            take_cookie(&mut r, "vg", &["vg"], |v| v.map(str::len)),
            Some(1)
        );
        assert!(r.headers.get("cookie").is_none());
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.append_header("Cookie", "a=1;b=2").unwrap();
        assert!(!take_cookie(&mut r, "vg", &["vg"], |v| v.is_some()));
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1;b=2");
    }

    #[test]
    fn birthday_boundaries() {
        assert_eq!(age_on(d(2007, 11, 24), d(2026, 11, 24)), 19);
        assert_eq!(age_on(d(2007, 11, 25), d(2026, 11, 24)), 18);
        assert_eq!(age_on(d(2008, 2, 29), d(2027, 2, 28)), 18);
        assert_eq!(age_on(d(2008, 2, 29), d(2027, 3, 1)), 19);
        assert_eq!(age_on(d(2008, 2, 29), d(2028, 2, 29)), 20);
    }
}
