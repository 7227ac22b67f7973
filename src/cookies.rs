//! verigate's own cookies, in one place: their names (the `__Host-` prefix with
//! `session.secure`), their attributes, reading them from a request, writing them into an
//! answer, and keeping them from the app (out of what goes upstream, out of the app's
//! `Set-Cookie` lines).
//!
//! Five cookies, all HttpOnly and SameSite=Lax:
//! - the session (`session.cookie`, Path=/, for `session.ttl`);
//! - the flow (`<cookie>_flow`, Path=`flow_prefix`, a verification in progress, 10 minutes);
//! - the kept request (`<cookie>_kept`, Path=/, a form post kept across the verification);
//! - the age status (`<cookie>_age`, Path=/, what was verified about age, for
//!   `session.age_status_ttl` after the verification; only with that key set);
//! - the stated child (`<cookie>_child`, Path=/, a child without a verification of their own
//!   who stated a birth date on a guardian-consent route: their random id).
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
    pub child: String,
    /// The session's name without the prefix, still read for sessions issued under it.
    pub legacy: Option<String>,
    /// Every name in the form not in use (without `__Host-` when it is used, with it when it
    /// is not): never read (but the legacy session's), and kept from the app all the same, so
    /// no spelling of verigate's cookies reaches it.
    pub retired: Vec<String>,
}

impl Names {
    pub fn new(base: &str, secure: bool) -> Names {
        let prefixed = base.starts_with(HOST_PREFIX) || base.starts_with("__Secure-");
        let (prefix, legacy) = match (secure, prefixed) {
            (true, false) => (HOST_PREFIX, Some(base.to_string())),
            _ => ("", None),
        };
        let other = match (&legacy, prefixed) {
            (Some(old), _) => Some(old.clone()),
            (None, false) => Some(format!("{HOST_PREFIX}{base}")),
            (None, true) => None,
        };
        let retired = match other {
            Some(o) => vec![
                o.clone(),
                format!("{o}_flow"),
                format!("{o}_kept"),
                format!("{o}_age"),
                format!("{o}_child"),
            ],
            None => Vec::new(),
        };
        Names {
            session: format!("{prefix}{base}"),
            flow: format!("{prefix}{base}_flow"),
            kept: format!("{prefix}{base}_kept"),
            age: format!("{prefix}{base}_age"),
            child: format!("{prefix}{base}_child"),
            legacy,
            retired,
        }
    }

    /// Every name (`SessionConfig::all_cookies`): session, flow, kept, age, stated child, then
    /// the retired ones.
    pub fn all(&self) -> Vec<String> {
        [
            &self.session,
            &self.flow,
            &self.kept,
            &self.age,
            &self.child,
        ]
        .into_iter()
        .chain(&self.retired)
        .cloned()
        .collect()
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

/// The stated child's cookie, until `expires_at` (`max_age` seconds from now).
pub fn child(s: &SessionConfig, sealed: &str, max_age: i64) -> String {
    set(&s.child_cookie, sealed, "/", max_age.max(0), s.secure)
}

pub fn clear_child(s: &SessionConfig) -> String {
    set(&s.child_cookie, "", "/", 0, s.secure)
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

/// The kept-request cookie's value.
pub fn read_kept<'a>(req: &'a RequestHeader, s: &SessionConfig) -> Option<&'a str> {
    read(req, &s.kept_cookie)
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

/// Remove the cookies named in `names` from what goes upstream, parsing the Cookie header(s)
/// once; other cookies pass untouched, and the header is rewritten only when a cookie has to go.
pub fn strip(req: &mut impl CookieLines, names: &[impl AsRef<str>]) {
    let mut changed = false;
    let mut kept = String::new();
    // A line that is not text is outside the cookie grammar (RFC 6265's cookie-octets are
    // ASCII): it is not read, and it does not go upstream either, or a session cookie hidden
    // in it beside a non-ASCII cookie would reach the app.
    let lines = req.lines().get_all(http::header::COOKIE);
    let mut text = Vec::new();
    for v in lines.iter() {
        match v.to_str() {
            Ok(t) => text.push(t),
            Err(_) => changed = true,
        }
    }
    for c in text.into_iter().flat_map(cookie::Cookie::split_parse) {
        let Ok(c) = c else {
            changed = true;
            continue;
        };
        if names.iter().any(|n| n.as_ref() == c.name()) {
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
    if changed {
        // Kept cookies came out of a valid header value, so they make one again.
        let v = HeaderValue::try_from(kept).ok().filter(|v| !v.is_empty());
        req.replace(v);
    }
}

/// The cookies of one Cookie line, as `cookie::Cookie::split_parse` reads them: the pieces
/// between `;`, blank ones skipped, each trimmed and cut at its first `=` into a name and a
/// value (both trimmed; nothing decoded); `None` for a piece without `=` or with an empty
/// name. One scan for the `;`s, where the cookie crate scans a ~450-byte session cookie
/// three times and builds a whole `Cookie` for it (`split_cookies_as_the_cookie_crate`
/// holds it to the crate). `text` is a line [`visible`] let through (visible ASCII and tab):
/// each byte is a character, and its whitespace is ASCII (no vertical tab, nothing beyond
/// ASCII), so `trim_ascii` trims what the crate's `trim` does, without decoding characters.
fn split_cookies(text: &[u8]) -> impl Iterator<Item = Option<(&[u8], &[u8])>> {
    let mut rest = Some(text);
    std::iter::from_fn(move || loop {
        let line = rest?;
        let (piece, next) = match memchr::memchr(b';', line) {
            Some(i) => (line.get(..i)?, line.get(i + 1..)),
            None => (line, None),
        };
        rest = next;
        let piece = piece.trim_ascii();
        if piece.is_empty() {
            continue;
        }
        return Some(memchr::memchr(b'=', piece).and_then(|i| {
            let name = piece.get(..i)?.trim_ascii();
            let value = piece.get(i + 1..)?.trim_ascii();
            (!name.is_empty()).then_some((name, value))
        }));
    })
}

/// A request's Cookie header(s), parsed once (`request_filter`): where verigate's cookies are
/// in it, and what the header becomes without them. It holds the header's values (shared, not
/// copied), so the request may change meanwhile; every read agrees with [`read`],
/// [`read_session`], [`read_kept`] and [`strip`] on the header it was parsed from.
#[derive(Debug, Default)]
pub struct Jar {
    /// The Cookie lines that are text (visible ASCII), in order: [`read`] skips the others.
    first: Option<HeaderValue>,
    more: Vec<HeaderValue>,
    session: Option<(Spot, Named)>,
    kept: Option<Spot>,
    flow: Option<Spot>,
    /// The age status cookie (`session.age_status_ttl`).
    age: Option<Spot>,
    /// The stated child's cookie (guardian consent).
    child: Option<Spot>,
    /// The header without verigate's cookies (and without what does not parse), when it has
    /// to change: `Some(None)` when nothing is left of it.
    without: Option<Option<HeaderValue>>,
}

/// `v`'s bytes when it is visible ASCII or tab, as [`HeaderValue::to_str`] takes it. A header
/// value holds only tab, `0x20`..=`0x7e` and `0x80`..=`0xff` (the `http` crate's invariant: its
/// checked constructors refuse anything else, and its unchecked ones require it of their
/// callers), so its ASCII bytes are exactly those `to_str` takes: one `is_ascii` (a word at a
/// time, where a session cookie is ~450 bytes) decides, and the bytes are read as they are
/// (ASCII: each byte a character) without a second pass to make them a `str`.
fn visible(v: &HeaderValue) -> Option<&[u8]> {
    let bytes = v.as_bytes();
    bytes.is_ascii().then_some(bytes)
}

/// Where a cookie's value is: its line in [`Jar`] and its bytes there.
#[derive(Debug, Clone, Copy)]
struct Spot {
    line: usize,
    start: usize,
    end: usize,
}

impl Jar {
    /// One parse of `headers`' Cookie lines, for the names of `s`.
    pub fn parse(headers: &HeaderMap, s: &SessionConfig) -> Jar {
        let mut jar = Jar::default();
        let legacy = s.legacy_cookie.as_deref();
        let strip = &s.all_cookies;
        let mut changed = false;
        let mut kept = Vec::new();
        let mut line = 0;
        for v in headers.get_all(http::header::COOKIE) {
            let Some(text) = visible(v) else {
                // Not text: not read, and dropped from what goes upstream (as `strip` does).
                changed = true;
                continue;
            };
            for c in split_cookies(text) {
                let Some((name, value)) = c else {
                    changed = true;
                    continue;
                };
                let spot = || {
                    // A cookie's value is a part of `text`.
                    let start = (value.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
                    Spot {
                        line,
                        start,
                        end: start + value.len(),
                    }
                };
                // The first cookie of each name; the current session name before the old one.
                if name == s.cookie.as_bytes() {
                    if !matches!(jar.session, Some((_, Named::Current))) {
                        jar.session = Some((spot(), Named::Current));
                    }
                } else if legacy.is_some_and(|l| l.as_bytes() == name) {
                    if jar.session.is_none() {
                        jar.session = Some((spot(), Named::Legacy));
                    }
                } else if name == s.kept_cookie.as_bytes() {
                    jar.kept = jar.kept.or_else(|| Some(spot()));
                } else if name == s.flow_cookie.as_bytes() {
                    jar.flow = jar.flow.or_else(|| Some(spot()));
                } else if name == s.age_cookie.as_bytes() {
                    jar.age = jar.age.or_else(|| Some(spot()));
                } else if name == s.child_cookie.as_bytes() {
                    jar.child = jar.child.or_else(|| Some(spot()));
                }
                if strip.iter().any(|n| n.as_bytes() == name) {
                    changed = true;
                } else {
                    if !kept.is_empty() {
                        kept.extend_from_slice(b"; ");
                    }
                    kept.extend_from_slice(name);
                    kept.push(b'=');
                    kept.extend_from_slice(value);
                }
            }
            match line {
                0 => jar.first = Some(v.clone()),
                _ => jar.more.push(v.clone()),
            }
            line += 1;
        }
        if changed {
            // Kept cookies came out of a valid header value, so they make one again.
            // Nothing kept (the usual case: only verigate's cookies): no header, without
            // making an empty value first.
            jar.without = Some(match kept.is_empty() {
                true => None,
                false => HeaderValue::try_from(kept).ok(),
            });
        }
        jar
    }

    /// A cookie's value as bytes: visible ASCII (the line was text when parsed), cut at the
    /// cookie's bounds.
    fn bytes(&self, spot: Spot) -> Option<&[u8]> {
        let line = match spot.line {
            0 => self.first.as_ref(),
            n => self.more.get(n - 1),
        }?;
        line.as_bytes().get(spot.start..spot.end)
    }

    fn value(&self, spot: Option<Spot>) -> Option<&str> {
        std::str::from_utf8(self.bytes(spot?)?).ok()
    }

    /// The session cookie: under its name, or else under the old one ([`read_session`]).
    pub fn session(&self) -> Option<(&str, Named)> {
        let (bytes, named) = self.session_bytes()?;
        Some((std::str::from_utf8(bytes).ok()?, named))
    }

    /// [`Jar::session`] as the bytes of its value (what [`crate::live::Live::verified`]
    /// digests), read without checking again that they are text.
    pub fn session_bytes(&self) -> Option<(&[u8], Named)> {
        let (spot, named) = self.session?;
        Some((self.bytes(spot)?, named))
    }

    /// The kept-request cookie's value ([`read_kept`]).
    pub fn kept(&self) -> Option<&str> {
        self.value(self.kept)
    }

    /// The flow cookie's value ([`read_flow`]).
    pub fn flow(&self) -> Option<&str> {
        self.value(self.flow)
    }

    /// The age status cookie's value ([`read_age_status`]).
    pub fn age(&self) -> Option<&str> {
        self.value(self.age)
    }

    /// The stated child's cookie's value.
    pub fn child(&self) -> Option<&str> {
        self.value(self.child)
    }

    /// Remove verigate's cookies from `req` (the request this jar was parsed from, or the one
    /// going upstream built from it), as [`strip`] does.
    pub fn strip(&self, req: &mut impl CookieLines) {
        if let Some(without) = &self.without {
            req.replace(without.clone());
        }
    }
}

/// Remove the app's `Set-Cookie` lines that set one of verigate's own cookies (`names`): only
/// verigate issues its session and kept requests, so an app (or whoever controls one of
/// several apps behind one verigate) cannot plant one, with a `Domain` for sibling hosts or
/// otherwise. Other cookies pass untouched, in order.
pub fn drop_set_cookies(resp: &mut ResponseHeader, names: &[impl AsRef<str>]) {
    let ours = |v: &HeaderValue| {
        let Ok(text) = std::str::from_utf8(v.as_bytes()) else {
            return false;
        };
        // The name as a browser reads it (RFC 6265 §5.2, spaces trimmed).
        cookie::Cookie::parse(text).is_ok_and(|c| names.iter().any(|n| n.as_ref() == c.name()))
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
        assert_eq!(
            n.retired,
            ["vg", "vg_flow", "vg_kept", "vg_age", "vg_child"]
        );
        let plain = Names::new("vg", false);
        assert_eq!((plain.session.as_str(), plain.legacy), ("vg", None));
        // Without `__Host-`, its forms are verigate's all the same: kept from the app.
        assert_eq!(
            plain.retired,
            [
                "__Host-vg",
                "__Host-vg_flow",
                "__Host-vg_kept",
                "__Host-vg_age",
                "__Host-vg_child"
            ]
        );
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
    fn read_and_strip() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("cookie", "a=1; vg=OLD; __Host-vg=NEW; vg_flow=X; b=2")
            .unwrap();
        assert_eq!(read(&r, "vg"), Some("OLD"));
        assert_eq!(read(&r, "vg_flow"), Some("X"));
        // The current name wins wherever it stands (the jar reads it before the strip).
        let s = session_config(true);
        let jar = Jar::parse(&r.headers, &s);
        assert_eq!(jar.session(), Some(("NEW", Named::Current)));
        strip(&mut r, &["__Host-vg", "vg", "vg_flow"]);
        assert_eq!(r.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(r.headers.get("cookie").unwrap(), "a=1; b=2");
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        r.insert_header("cookie", "vg=OLD").unwrap();
        assert_eq!(
            Jar::parse(&r.headers, &s).session(),
            Some(("OLD", Named::Legacy))
        );
        strip(&mut r, &["vg"]);
        assert!(r.headers.get("cookie").is_none());
        // A line that is not text goes, with whatever it hides: never read, never forwarded.
        let mut m = HeaderMap::new();
        m.append(
            "cookie",
            HeaderValue::from_bytes(b"vg=S; x=\xc3\xa9").unwrap(),
        );
        m.append("cookie", HeaderValue::from_static("a=1"));
        assert_eq!(Jar::parse(&m, &s).session(), None);
        let mut j = m.clone();
        Jar::parse(&m, &s).strip(&mut j);
        strip(&mut m, &["vg"]);
        assert_eq!(m.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1"]);
        assert_eq!(j.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1"]);
        let mut m = HeaderMap::new();
        m.insert(
            "cookie",
            HeaderValue::from_bytes(b"vg=S; x=\xc3\xa9").unwrap(),
        );
        strip(&mut m, &["vg"]);
        assert!(m.get("cookie").is_none());
        // None of them: the header stays as it was.
        let mut m = HeaderMap::new();
        m.insert("cookie", HeaderValue::from_static("a=1;b=2"));
        strip(&mut m, &["vg"]);
        assert_eq!(m.get("cookie").unwrap(), "a=1;b=2");
    }

    fn session_config(secure: bool) -> SessionConfig {
        let n = Names::new("vg", secure);
        let all_cookies = n.all();
        let ring = crate::session::Keyring::new(&[[7; 32]]).unwrap();
        SessionConfig {
            cookie: n.session,
            legacy_cookie: n.legacy,
            retired_cookies: n.retired,
            flow_cookie: n.flow,
            ttl: std::time::Duration::from_secs(60),
            secure,
            keys: ring.clone(),
            hash_key: [1; 32],
            at_rest: ring.clone(),
            kept: ring,
            kept_cookie: n.kept,
            child_cookie: n.child,
            age_status_ttl: None,
            all_cookies,
            age_cookie: n.age,
        }
    }

    /// One parse reads what `read`, `read_session`, `read_kept`, `read_flow` read, and strips
    /// what `strip` strips, whatever the lines.
    #[test]
    fn the_jar_reads_and_strips_as_each_reading_does() {
        let lines: [&[&[u8]]; 11] = [
            &[],
            &[b"a=1; b=2"],
            &[b"vg=S"],
            &[b"a=1; vg=OLD; __Host-vg=NEW; vg_flow=X; b=2; __Host-vg=LATER"],
            &[
                b"vg=OLD",
                b"a=1",
                b"__Host-vg=NEW",
                b"__Host-vg_kept=K; vg_kept=k",
            ],
            &[b"broken; vg=S; =x; c=3"],
            &[b"\xc3\xa9=1; vg=HIDDEN", b"vg=SEEN; d=4"],
            &[b"  ;; vg_flow=F ; vg=\"q\" ;"],
            &[b"vg_kept=K1; vg_kept=K2; vg=S1; vg=S2"],
            &[b"a=1", b"b=2"],
            &[b"vg_age=A1; __Host-vg_age=A2; vg=S", b"vg_age=A3"],
        ];
        for secure in [false, true] {
            let s = session_config(secure);
            for ls in lines {
                let mut r = RequestHeader::build("GET", b"/", None).unwrap();
                for l in ls {
                    r.append_header("cookie", HeaderValue::from_bytes(l).unwrap())
                        .unwrap();
                }
                let jar = Jar::parse(&r.headers, &s);
                let what = format!("{ls:?} secure {secure}");
                assert_eq!(jar.session(), read_session(&r, &s), "{what}");
                assert_eq!(jar.kept(), read_kept(&r, &s), "{what}");
                assert_eq!(jar.flow(), read_flow(&r, &s), "{what}");
                assert_eq!(jar.age(), read_age_status(&r, &s), "{what}");
                let mut one = r.headers.clone();
                strip(&mut one, &s.all_cookies);
                let mut other = r.headers.clone();
                jar.strip(&mut other);
                let cookies = |m: &HeaderMap| {
                    m.get_all("cookie")
                        .iter()
                        .map(|v| v.as_bytes().to_vec())
                        .collect::<Vec<_>>()
                };
                assert_eq!(cookies(&other), cookies(&one), "{what}");
            }
        }
    }

    proptest::proptest! {
        /// Whatever the text of a line [`visible`] lets through (visible ASCII and tab;
        /// a newline besides): the cookies the cookie crate's `split_parse` reads, the same
        /// names and values (and a `None` where it finds no cookie).
        #[test]
        fn split_cookies_as_the_cookie_crate(
            text in proptest::collection::vec(proptest::sample::select(
                vec![' ', '\t', ';', '=', '"', 'a', 'b', '%', ',', '\n']), 0..40),
        ) {
            let text: String = text.into_iter().collect();
            let str_of = |b: &[u8]| std::str::from_utf8(b).unwrap_or("?").to_string();
            let ours: Vec<Option<(String, String)>> = split_cookies(text.as_bytes())
                .map(|c| c.map(|(n, v)| (str_of(n), str_of(v))))
                .collect();
            let crates: Vec<Option<(String, String)>> = cookie::Cookie::split_parse(text.as_str())
                .map(|c| c.ok().map(|c| (
                    c.name_raw().unwrap_or("?").to_string(),
                    c.value_raw().unwrap_or("?").to_string(),
                )))
                .collect();
            proptest::prop_assert_eq!(ours, crates);
        }

        /// Whatever a header value's bytes: read as text exactly when `to_str` reads it.
        #[test]
        fn visible_is_to_str(
            bytes in proptest::collection::vec(proptest::sample::select(
                vec![b'\t', b' ', b'a', b'~', 0x7f, 0x80, 0xff, 0x00, 0x1f, b';', b'=']), 0..40),
        ) {
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                proptest::prop_assert_eq!(visible(&v), v.to_str().ok().map(str::as_bytes));
            }
        }
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
