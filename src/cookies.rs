//! verigate's own cookies, in one place: their names (the `__Host-` prefix with
//! `session.secure`), their attributes, reading them from a request, writing them into an
//! answer, and keeping them from the app (out of what goes upstream, out of the app's
//! `Set-Cookie` lines).
//!
//! Four cookies, all HttpOnly and SameSite=Lax:
//! - the session (`session.cookie`, Path=/, for `session.ttl`);
//! - the flow (`<cookie>_flow`, Path=`flow_prefix`, a verification in progress, 10 minutes);
//! - the kept request (`<cookie>_kept`, Path=/, a form post kept across the verification);
//! - the age status (`<cookie>_age`, Path=/, what was verified about age, for
//!   `session.age_status_ttl` after the verification; only with that key set).
//!
//! With `session.secure` each name carries the `__Host-` prefix: browsers then take such a
//! cookie only with `Secure`, `Path=/` and no `Domain`, and only from this very host, so a
//! sibling host of the same site cannot plant one (RFC 6265bis §4.1.3.2). The flow cookie's
//! path is then `/`. A session issued under the old name (before `secure`, or before this
//! release) is still read under it while it lives, and the gate re-issues it under the new
//! name; a session issued under the new name is never read under the old one. The age status
//! has no old name: it is read under its current name only.

use crate::session::SessionConfig;
use http::{HeaderMap, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};

/// The prefix browsers hold to one host, `Secure`, `Path=/`, no `Domain`.
pub const HOST_PREFIX: &str = "__Host-";

/// The names of verigate's cookies for one `session.cookie` and `session.secure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub session: String,
    pub flow: String,
    pub kept: String,
    pub age: String,
    /// The session's name without the prefix, still read for sessions issued under it.
    pub legacy: Option<String>,
    /// Every name without the prefix (session, flow, kept): kept from the app.
    pub retired: Vec<String>,
}

impl Names {
    pub fn new(base: &str, secure: bool) -> Names {
        let prefixed = base.starts_with(HOST_PREFIX) || base.starts_with("__Secure-");
        let (prefix, legacy) = match (secure, prefixed) {
            (true, false) => (HOST_PREFIX, Some(base.to_string())),
            _ => ("", None),
        };
        let retired = match &legacy {
            Some(old) => vec![old.clone(), format!("{old}_flow"), format!("{old}_kept")],
            None => Vec::new(),
        };
        Names {
            session: format!("{prefix}{base}"),
            flow: format!("{prefix}{base}_flow"),
            kept: format!("{prefix}{base}_kept"),
            age: format!("{prefix}{base}_age"),
            legacy,
            retired,
        }
    }
}

/// A `Set-Cookie` value for one of verigate's cookies: HttpOnly, SameSite=Lax, `Secure` as
/// configured; a `__Host-` name always `Secure` with `Path=/`. Never a `Domain`. An empty
/// value with `max_age` 0 ends the cookie.
pub fn set(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let host_only = name.starts_with(HOST_PREFIX);
    cookie::Cookie::build((name.to_string(), value.to_string()))
        .path(if host_only { "/" } else { path }.to_string())
        .http_only(true)
        .secure(secure || host_only)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age))
        .build()
        .to_string()
}

/// The session cookie, for its whole life (`max_age` seconds).
pub fn session(s: &SessionConfig, sealed: &str, max_age: i64) -> String {
    set(&s.cookie, sealed, "/", max_age, s.secure)
}

/// What ends this browser's session: the cookie, and the one under the old name if any.
pub fn clear_session(s: &SessionConfig) -> Vec<String> {
    let mut out = vec![set(&s.cookie, "", "/", 0, s.secure)];
    if let Some(old) = &s.legacy_cookie {
        out.push(legacy_clear(s, old));
    }
    out
}

/// A session read under the old name, moved to the new one: the same sealed value under the
/// `__Host-` name for the rest of its life, and the old cookie ended.
pub fn reissue(s: &SessionConfig, sealed: &str, max_age: i64) -> Vec<String> {
    let mut out = vec![session(s, sealed, max_age.max(0))];
    if let Some(old) = &s.legacy_cookie {
        out.push(legacy_clear(s, old));
    }
    out
}

fn legacy_clear(s: &SessionConfig, old: &str) -> String {
    set(old, "", "/", 0, s.secure)
}

/// The flow cookie, under `flow_prefix` (or `/` for a `__Host-` name).
pub fn flow(s: &SessionConfig, flow_prefix: &str, sealed: &str, max_age: i64) -> String {
    set(&s.flow_cookie, sealed, flow_prefix, max_age, s.secure)
}

pub fn clear_flow(s: &SessionConfig, flow_prefix: &str) -> String {
    set(&s.flow_cookie, "", flow_prefix, 0, s.secure)
}

/// The kept-request cookie, as long as the kept request lives.
pub fn kept(s: &SessionConfig, sealed: &str, max_age: i64) -> String {
    set(&s.kept_cookie, sealed, "/", max_age, s.secure)
}

pub fn clear_kept(s: &SessionConfig) -> String {
    set(&s.kept_cookie, "", "/", 0, s.secure)
}

/// The age status cookie, until `expires_at` (`max_age` seconds from now).
pub fn age_status(s: &SessionConfig, sealed: &str, max_age: i64) -> String {
    set(&s.age_cookie, sealed, "/", max_age.max(0), s.secure)
}

pub fn clear_age_status(s: &SessionConfig) -> String {
    set(&s.age_cookie, "", "/", 0, s.secure)
}

/// The age status cookie's value.
pub fn read_age_status<'a>(req: &'a RequestHeader, s: &SessionConfig) -> Option<&'a str> {
    read(req, &s.age_cookie)
}

/// The value of cookie `name` in the request's Cookie header(s), if present (borrowed).
pub fn read<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
}

/// Under which name a session cookie came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Current,
    /// The name before the `__Host-` prefix: read only for a session issued under it
    /// ([`crate::session::Claims::host_only`] unset), and re-issued under the current one.
    Legacy,
}

/// The session cookie of this request: under its name, or else under the old one.
pub fn read_session<'a>(req: &'a RequestHeader, s: &SessionConfig) -> Option<(&'a str, Named)> {
    if let Some(v) = read(req, &s.cookie) {
        return Some((v, Named::Current));
    }
    let old = s.legacy_cookie.as_deref()?;
    read(req, old).map(|v| (v, Named::Legacy))
}

/// The session cookie of a request going on to the app, read and every one of verigate's
/// cookies removed in one parse of the Cookie header: `with` sees the session's value and the
/// name it came under (the current one preferred) before the header changes.
pub fn take_session<R>(
    req: &mut impl CookieLines,
    s: &SessionConfig,
    with: impl FnOnce(Option<(&str, Named)>) -> R,
) -> R {
    let names = [s.cookie.as_str(), s.legacy_cookie.as_deref().unwrap_or("")];
    let wanted = &names[..if s.legacy_cookie.is_some() { 2 } else { 1 }];
    take_also(req, wanted, None, &all_names(s), |found, _| {
        with(found.map(|(v, i)| (v, named(i))))
    })
}

fn named(i: usize) -> Named {
    if i == 0 {
        Named::Current
    } else {
        Named::Legacy
    }
}

/// As [`take_session`], and the age status cookie's value too, in the same parse (for the
/// routes that take an age status, `require.age_status`).
pub fn take_session_and_age<R>(
    req: &mut impl CookieLines,
    s: &SessionConfig,
    with: impl FnOnce(Option<(&str, Named)>, Option<&str>) -> R,
) -> R {
    let names = [s.cookie.as_str(), s.legacy_cookie.as_deref().unwrap_or("")];
    let wanted = &names[..if s.legacy_cookie.is_some() { 2 } else { 1 }];
    take_also(
        req,
        wanted,
        Some(&s.age_cookie),
        &all_names(s),
        |found, age| with(found.map(|(v, i)| (v, named(i))), age),
    )
}

/// The kept-request cookie's value. `quick`: first a plain search of the Cookie header for
/// its name (every GET asks; most have none), parsed only when it may be there.
pub fn read_kept<'a>(req: &'a RequestHeader, s: &SessionConfig, quick: bool) -> Option<&'a str> {
    let name = s.kept_cookie.as_str();
    if quick
        && !req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.contains(name)))
    {
        return None;
    }
    read(req, name)
}

/// The flow cookie's value.
pub fn read_flow<'a>(req: &'a RequestHeader, s: &SessionConfig) -> Option<&'a str> {
    read(req, &s.flow_cookie)
}

/// Whether a session read under `named` may open: one issued under the `__Host-` name never
/// opens under the old name (a sibling host could have planted it there).
pub fn name_fits(named: Named, claims: &crate::session::Claims) -> bool {
    named == Named::Current || !claims.host_only
}

/// Every name of verigate's cookies: none of them reaches the app, and the app sets none.
pub fn all_names(s: &SessionConfig) -> Vec<&str> {
    let mut v = vec![
        s.cookie.as_str(),
        s.flow_cookie.as_str(),
        s.kept_cookie.as_str(),
        s.age_cookie.as_str(),
    ];
    if let Some(old) = &s.legacy_cookie {
        v.push(old.as_str());
        // The old flow and kept names: gone with the upgrade, kept from the app all the same.
    }
    v
}

/// A request's Cookie header(s), as the gate edits them (Pingora's request head, or the plain
/// map of the upstream request).
pub trait CookieLines {
    fn lines(&self) -> &HeaderMap;
    /// Replace every Cookie line with `with` (none: no Cookie header).
    fn replace(&mut self, with: Option<HeaderValue>);
}

impl CookieLines for RequestHeader {
    fn lines(&self) -> &HeaderMap {
        &self.headers
    }
    fn replace(&mut self, with: Option<HeaderValue>) {
        self.remove_header(&http::header::COOKIE);
        if let Some(v) = with {
            let _ = self.insert_header(http::header::COOKIE, v);
        }
    }
}

impl CookieLines for HeaderMap {
    fn lines(&self) -> &HeaderMap {
        self
    }
    fn replace(&mut self, with: Option<HeaderValue>) {
        self.remove(http::header::COOKIE);
        if let Some(v) = with {
            self.insert(http::header::COOKIE, v);
        }
    }
}

/// Remove verigate's cookies from what goes upstream; other cookies pass untouched.
pub fn strip(req: &mut impl CookieLines, names: &[&str]) {
    take(req, &[], names, |_| ());
}

/// Find the first of the cookies `wanted` (in that order of preference) and remove the
/// cookies named in `strip` from the request, parsing the Cookie header(s) once: `with` sees
/// the value found (borrowed) and its index in `wanted` before the header changes. Other
/// cookies pass untouched; the header is rewritten only when a cookie has to go.
pub fn take<R>(
    req: &mut impl CookieLines,
    wanted: &[&str],
    strip: &[&str],
    with: impl FnOnce(Option<(&str, usize)>) -> R,
) -> R {
    take_also(req, wanted, None, strip, |found, _| with(found))
}

/// [`take`], and also the value of the cookie `also` (the first of that name), if asked.
fn take_also<R>(
    req: &mut impl CookieLines,
    wanted: &[&str],
    also: Option<&str>,
    strip: &[&str],
    with: impl FnOnce(Option<(&str, usize)>, Option<&str>) -> R,
) -> R {
    let mut changed = false;
    let mut kept = String::new();
    let mut found: Option<(&str, usize)> = None;
    let mut also_found: Option<&str> = None;
    for c in req
        .lines()
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
    {
        let Ok(c) = c else {
            changed = true;
            continue;
        };
        if let Some(i) = wanted.iter().position(|w| *w == c.name()) {
            if found.is_none_or(|(_, j)| i < j) {
                if let Some(v) = c.value_raw() {
                    found = Some((v, i));
                }
            }
        } else if also.is_some_and(|a| a == c.name()) && also_found.is_none() {
            also_found = c.value_raw();
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
    let out = with(found, also_found);
    if changed {
        // Kept cookies came out of a valid header value, so they make one again.
        let v = HeaderValue::try_from(kept).ok().filter(|v| !v.is_empty());
        req.replace(v);
    }
    out
}

/// Remove the app's `Set-Cookie` lines that set one of verigate's own cookies (`names`): only
/// verigate issues its session and kept requests, so an app (or whoever controls one of
/// several apps behind one verigate) cannot plant one, with a `Domain` for sibling hosts or
/// otherwise. Other cookies pass untouched, in order.
pub fn drop_set_cookies(resp: &mut ResponseHeader, names: &[&str]) {
    let ours = |v: &HeaderValue| {
        let Ok(text) = std::str::from_utf8(v.as_bytes()) else {
            return false;
        };
        // The name as a browser reads it (RFC 6265 §5.2, spaces trimmed).
        cookie::Cookie::parse(text).is_ok_and(|c| names.contains(&c.name()))
    };
    let set = &http::header::SET_COOKIE;
    if !resp.headers.get_all(set).iter().any(ours) {
        return;
    }
    let keep: Vec<HeaderValue> = resp
        .headers
        .get_all(set)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    resp.remove_header(set);
    for v in keep {
        let _ = resp.append_header(set, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_names_carry_the_host_prefix_and_remember_the_old_one() {
        let n = Names::new("vg", true);
        assert_eq!(n.session, "__Host-vg");
        assert_eq!(n.flow, "__Host-vg_flow");
        assert_eq!(n.kept, "__Host-vg_kept");
        assert_eq!(n.legacy.as_deref(), Some("vg"));
        assert_eq!(n.retired, ["vg", "vg_flow", "vg_kept"]);
        let plain = Names::new("vg", false);
        assert_eq!((plain.session.as_str(), plain.legacy), ("vg", None));
        // A name already prefixed is taken as written.
        let own = Names::new("__Host-s", true);
        assert_eq!((own.session.as_str(), own.legacy), ("__Host-s", None));
    }

    #[test]
    fn a_host_prefixed_cookie_is_secure_at_the_root_without_a_domain() {
        let c = set("__Host-vg_flow", "x", "/.verigate", 600, false);
        for attr in [
            "__Host-vg_flow=x",
            "Path=/;",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
        ] {
            assert!(c.contains(attr), "{attr} in {c}");
        }
        assert!(!c.contains("Domain"), "{c}");
        let plain = set("vg_flow", "x", "/.verigate", 600, false);
        assert!(
            plain.contains("Path=/.verigate") && !plain.contains("Secure"),
            "{plain}"
        );
    }

    #[test]
    fn read_take_and_strip() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("cookie", "a=1; vg=OLD; __Host-vg=NEW; vg_flow=X; b=2")
            .unwrap();
        assert_eq!(read(&r, "vg"), Some("OLD"));
        assert_eq!(read(&r, "vg_flow"), Some("X"));
        // The first wanted name wins wherever it stands; the value is seen before the strip.
        let seen = take(
            &mut r,
            &["__Host-vg", "vg"],
            &["__Host-vg", "vg", "vg_flow"],
            |v| v.map(|(v, i)| (v.to_string(), i)),
        );
        assert_eq!(seen, Some(("NEW".to_string(), 0)));
        assert_eq!(r.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("cookie", "vg=OLD").unwrap();
        let seen = take(&mut r, &["__Host-vg", "vg"], &["vg"], |v| v.map(|(_, i)| i));
        assert_eq!(seen, Some(1));
        assert!(r.headers.get("cookie").is_none());
        // None of them: the header stays as it was.
        let mut m = HeaderMap::new();
        m.insert("cookie", HeaderValue::from_static("a=1;b=2"));
        strip(&mut m, &["vg"]);
        assert_eq!(m.get("cookie").unwrap(), "a=1;b=2");
    }

    #[test]
    fn the_apps_set_cookies_never_set_verigates_cookies() {
        let mut r = pingora::http::ResponseHeader::build(200, None).unwrap();
        for v in [
            "app=1; Path=/",
            "verigate_session=planted; Domain=example.com; Path=/",
            " verigate_session_flow = x",
            "verigate_sessionx=2",
            "other=3",
        ] {
            r.append_header("set-cookie", v).unwrap();
        }
        drop_set_cookies(&mut r, &["verigate_session", "verigate_session_flow"]);
        let left: Vec<&str> = r
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["app=1; Path=/", "verigate_sessionx=2", "other=3"]);
        // Nothing of ours: nothing changes.
        drop_set_cookies(&mut r, &["verigate_session"]);
        assert_eq!(r.headers.get_all("set-cookie").iter().count(), 3);
    }
}
