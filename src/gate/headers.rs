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

/// The value of cookie `name` in the request's Cookie header(s), if present.
pub fn read_cookie(req: &RequestHeader, name: &str) -> Option<String> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// Remove verigate's cookies from what goes upstream; other cookies pass untouched.
pub fn strip_cookies(req: &mut RequestHeader, names: &[&str]) {
    let values: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    if values.is_empty() {
        return;
    }
    let mut changed = false;
    let mut kept = Vec::new();
    for c in values
        .iter()
        .flat_map(|v| cookie::Cookie::split_parse(v.as_str()))
    {
        match c {
            Ok(c) if names.contains(&c.name()) => changed = true,
            Ok(c) => kept.push(format!("{}={}", c.name(), c.value())),
            Err(_) => changed = true,
        }
    }
    if !changed {
        return;
    }
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::COOKIE, kept.join("; "));
    }
}

/// What goes upstream for a verified request.
#[derive(Debug, Clone)]
pub struct Identity {
    pub claims: Claims,
    pub age_ok: Option<bool>,
    pub forward: Forward,
}

fn set(req: &mut RequestHeader, name: &http::HeaderName, value: &str) {
    let encoded = utf8_percent_encode(value, VALUE).to_string();
    let _ = req.insert_header(name.clone(), encoded);
}

pub fn inject(req: &mut RequestHeader, names: &IdentityHeaders, id: &Identity) {
    let c = &id.claims;
    set(req, &names.unique_in_site, &c.unique_in_site);
    set(req, &names.provider, c.provider.as_str());
    if let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(c.verified_at, 0) {
        set(
            req,
            &names.verified_at,
            &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
    }
    if let Some(ok) = id.age_ok {
        set(req, &names.age_ok, if ok { "true" } else { "false" });
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
        assert_eq!(read_cookie(&r, "vg").as_deref(), Some("SECRET"));
        assert_eq!(read_cookie(&r, "vg_flow").as_deref(), Some("X"));
        strip_cookies(&mut r, &["vg", "vg_flow"]);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
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
