//! The request line as verigate accepts it: the method's spelling, the request-target's form,
//! and the headers some frameworks read in place of either. Everything here is decided before
//! the path is read, so that the path verigate matches is the path the app is sent.

use http::{HeaderName, Method, Uri};
use pingora::http::RequestHeader;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not origin-form, not absolute-form http(s), or `*` with a method other than OPTIONS.
    #[error("request target is neither a path nor an http(s) URL of this host")]
    BadTarget,
    /// A method spelled in lower case, CONNECT, or a method-override header that is no method.
    #[error("method spelling verigate does not accept")]
    BadMethod,
}

/// The accepted forms of a request target (RFC 9112 §3.2).
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `/path?query`: read and forwarded as sent.
    Origin,
    /// `OPTIONS *`: answered by verigate.
    Asterisk,
    /// `http://host/path?query` whose authority agrees with Host: decided on, and forwarded
    /// as, this origin-form target.
    Absolute(Uri),
}

/// Headers through which Express's method-override, Symfony, Laravel and others let a client
/// change the method the app acts on (lower case; `_` for `-` counts too: servers that turn
/// underscores into dashes read `X_HTTP_Method_Override` as the same header). verigate
/// decides on every method a request carries.
const METHOD_OVERRIDES: [&str; 3] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers through which IIS URL Rewrite and Symfony (behind some proxies) let a client change
/// the path the app routes on (any spelling with `_` too). Never forwarded.
const PATH_OVERRIDES: [&str; 3] = ["x-original-url", "x-rewrite-url", "x-original-uri"];

/// The query parameter through which Express's method-override (`methodOverride('_method')`)
/// reads the method.
const METHOD_PARAM: &str = "_method";

/// Does header `name` (lower case, as `http` keeps it) spell one of `names`, `_` for `-`?
pub(crate) fn spells(name: &str, names: &[&str]) -> bool {
    names.iter().any(|n| {
        n.len() == name.len()
            && n.bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
    })
}

/// The names of the path-override headers a request carries, to remove before the app.
pub fn path_overrides(headers: &http::HeaderMap) -> Vec<HeaderName> {
    headers
        .keys()
        .filter(|k| spells(k.as_str(), &PATH_OVERRIDES))
        .cloned()
        .collect()
}

/// Whether a request carries a method-override header (any spelling).
pub fn has_method_override_header(headers: &http::HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| spells(k.as_str(), &METHOD_OVERRIDES))
}

/// The request method, refused when spelled with a lower-case letter (a router may upper-case
/// it; waitress does) or when it is CONNECT (verigate is not a tunnel).
pub fn method(req: &RequestHeader) -> Result<(), TargetError> {
    let m = req.method.as_str();
    if m.bytes().any(|b| b.is_ascii_lowercase()) || req.method == Method::CONNECT {
        return Err(TargetError::BadMethod);
    }
    Ok(())
}

/// The methods named by method-override headers and a `_method` query parameter (trimmed, as
/// frameworks read them; a value in lower case names the method in capitals, as Express's
/// method-override upper-cases it).
pub fn override_methods(req: &RequestHeader) -> Result<Vec<Method>, TargetError> {
    let mut out = Vec::new();
    let mut add = |v: &str| {
        if v.trim().is_empty() {
            // An empty override (an empty hidden form field) names no method: apps ignore it.
            return Ok(());
        }
        for one in v.split(',') {
            let up = one.trim().to_ascii_uppercase();
            match Method::from_bytes(up.as_bytes()) {
                Ok(m) if !up.is_empty() && m != Method::CONNECT => out.push(m),
                _ => return Err(TargetError::BadMethod),
            }
        }
        Ok(())
    };
    for (name, v) in &req.headers {
        if spells(name.as_str(), &METHOD_OVERRIDES) {
            add(v.to_str().map_err(|_| TargetError::BadMethod)?)?;
        }
    }
    // Only a query that spells `method`, or escapes something, can name the parameter.
    if let Some(q) = req
        .uri
        .query()
        .filter(|q| q.contains("method") || q.contains('%'))
    {
        // Keys as the app reads them: percent-decoded (Express), and with PHP's renaming of
        // `.`, ` ` and `[` in parameter names to `_` (Laravel, Symfony).
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let php: String = k
                .chars()
                .map(|c| if matches!(c, '.' | ' ' | '[') { '_' } else { c })
                .collect();
            if k == METHOD_PARAM || php == METHOD_PARAM {
                add(&v)?;
            }
        }
    }
    Ok(out)
}

/// The Host header, where the request line needs one: exactly one on HTTP/1.1 (RFC 9112
/// §3.2), and any that is present must be a plain `host[:port]` (no path, no userinfo).
pub fn host(req: &RequestHeader) -> Result<(), TargetError> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == http::Version::HTTP_11 => Err(TargetError::BadTarget),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(TargetError::BadTarget),
        (Some(h), None) => {
            let plain = h
                .to_str()
                .ok()
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .is_some_and(|a| {
                    !a.as_str().contains('@')
                        && !a.host().is_empty()
                        && (a.port_u16().is_some() || a.as_str() == a.host())
                });
            // A target with an authority (absolute form; HTTP/2's `:authority`) must name the
            // same host: routes are chosen by one reading of it.
            let agrees = match (h.to_str(), req.uri.authority()) {
                (Ok(h), Some(a)) => crate::routing::host::host_of(h)
                    .eq_ignore_ascii_case(crate::routing::host::host_of(a.as_str())),
                _ => true,
            };
            if plain && agrees {
                Ok(())
            } else {
                Err(TargetError::BadTarget)
            }
        }
    }
}

/// The host the request names: its Host header, or on HTTP/2 (where a client may send only
/// `:authority`) the URI's authority. Pingora refuses an HTTP/2 request whose Host and
/// `:authority` differ, so the two never disagree here.
pub fn authority(req: &RequestHeader) -> Option<&str> {
    match req.headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri.authority().map(|a| a.as_str()),
    }
}

/// Classify the request-target as it arrived on the wire (Pingora keeps the bytes).
pub fn classify(req: &RequestHeader) -> Result<Target, TargetError> {
    let raw = req.raw_path();
    match raw.first() {
        Some(b'/') => return Ok(Target::Origin),
        Some(b'*') if raw == b"*" => {
            return if req.method == Method::OPTIONS {
                Ok(Target::Asterisk)
            } else {
                Err(TargetError::BadTarget)
            };
        }
        _ => {}
    }
    absolute(req, raw).ok_or(TargetError::BadTarget)
}

fn absolute(req: &RequestHeader, raw: &[u8]) -> Option<Target> {
    let text = std::str::from_utf8(raw).ok()?;
    let scheme_end = text.find("://")?;
    let scheme = &text[..scheme_end];
    let https = if scheme.eq_ignore_ascii_case("http") {
        false
    } else if scheme.eq_ignore_ascii_case("https") {
        true
    } else {
        return None;
    };
    let uri: Uri = text.parse().ok()?;
    let authority = uri.authority()?;
    // No userinfo (`http://user@host/`): readers disagree on where the host starts.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let default_port = if https { 443 } else { 80 };
    // The authority must name the host the Host header names: one Host header, same host,
    // same port (an absent port being the scheme's default).
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    let host = hosts.next()?;
    if hosts.next().is_some() {
        return None;
    }
    let host: http::uri::Authority = host.to_str().ok()?.parse().ok()?;
    if host.as_str().contains('@')
        || !host.host().eq_ignore_ascii_case(authority.host())
        || host.port_u16().unwrap_or(default_port) != authority.port_u16().unwrap_or(default_port)
    {
        return None;
    }
    let pq = match uri.path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
        Some(_) => return None,
        None => http::uri::PathAndQuery::from_static("/"),
    };
    Some(Target::Absolute(Uri::from(pq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, target: &[u8], host: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build(method, target, None).unwrap();
        if let Some(h) = host {
            r.insert_header("host", h).unwrap();
        }
        r
    }

    #[test]
    fn origin_and_asterisk() {
        assert_eq!(
            classify(&req("GET", b"/signup?x=1", Some("a"))),
            Ok(Target::Origin)
        );
        assert_eq!(
            classify(&req("OPTIONS", b"*", Some("a"))),
            Ok(Target::Asterisk)
        );
        assert_eq!(
            classify(&req("GET", b"*", Some("a"))),
            Err(TargetError::BadTarget)
        );
    }

    #[test]
    fn absolute_form_is_decided_on_its_path() {
        for (target, host, want) in [
            (
                "http://shop.example/signup?a=1",
                "shop.example",
                "/signup?a=1",
            ),
            ("HTTP://Shop.Example:80/signup", "shop.example", "/signup"),
            ("https://shop.example/x", "shop.example:443", "/x"),
            ("http://shop.example", "shop.example", "/"),
            (
                "http://127.0.0.1:8080/checkout",
                "127.0.0.1:8080",
                "/checkout",
            ),
        ] {
            match classify(&req("GET", target.as_bytes(), Some(host))) {
                Ok(Target::Absolute(u)) => assert_eq!(u.to_string(), want, "{target}"),
                other => panic!("{target}: {other:?}"),
            }
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for (target, host) in [
            ("x:/signup", Some("a")),
            ("signup", Some("a")),
            ("a:443", Some("a")),
            ("ftp://a/signup", Some("a")),
            ("//a/signup", Some("a")),
            ("http://other/signup", Some("a")),
            ("http://a:81/signup", Some("a")),
            ("http://a/signup", None),
            ("http://user@a/signup", Some("a")),
            ("http:/signup", Some("a")),
            ("foo:bar://a/signup", Some("a")),
            ("http://a?q=1", Some("a")),
        ] {
            let r = req("GET", target.as_bytes(), host);
            if r.raw_path().first() == Some(&b'/') {
                // `//a/signup` is origin-form (a path with an empty first segment).
                assert_eq!(classify(&r), Ok(Target::Origin), "{target}");
                continue;
            }
            assert_eq!(classify(&r), Err(TargetError::BadTarget), "{target}");
        }
        let mut two = req("GET", b"http://a/signup", Some("a"));
        two.append_header("host", "b").unwrap();
        assert_eq!(classify(&two), Err(TargetError::BadTarget));
    }

    #[test]
    fn hosts() {
        assert_eq!(host(&req("GET", b"/", Some("shop.example:8080"))), Ok(()));
        assert_eq!(host(&req("GET", b"/", Some("[::1]:80"))), Ok(()));
        for bad in ["a/signup", "user@a", "a b", "", "a:port"] {
            assert_eq!(
                host(&req("GET", b"/", Some(bad))),
                Err(TargetError::BadTarget),
                "{bad}"
            );
        }
        assert_eq!(host(&req("GET", b"/", None)), Err(TargetError::BadTarget));
        let mut old = req("GET", b"/", None);
        old.set_version(http::Version::HTTP_10);
        assert_eq!(host(&old), Ok(()));
        let mut two = req("GET", b"/", Some("a"));
        two.append_header("host", "a").unwrap();
        assert_eq!(host(&two), Err(TargetError::BadTarget));
        // A target's authority (HTTP/2's `:authority`) and the Host header name one host.
        let h2 = |authority: &str, host: &str| {
            let mut r = req("GET", b"/x", Some(host));
            r.set_uri(
                Uri::builder()
                    .scheme("https")
                    .authority(authority)
                    .path_and_query("/x")
                    .build()
                    .unwrap(),
            );
            r
        };
        assert_eq!(host(&h2("Shop.example", "shop.example:443")), Ok(()));
        assert_eq!(
            host(&h2("admin.example", "shop.example")),
            Err(TargetError::BadTarget)
        );
    }

    #[test]
    fn path_override_headers_in_any_spelling() {
        let mut r = req("GET", b"/", None);
        r.insert_header("X-Original-URL", "/signup").unwrap();
        r.insert_header("x_rewrite_url", "/signup").unwrap();
        r.insert_header("X_Original_Uri", "/signup").unwrap();
        r.insert_header("X-Original-URLs", "/signup").unwrap();
        let mut names: Vec<String> = path_overrides(&r.headers)
            .iter()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["x-original-url", "x_original_uri", "x_rewrite_url"]);
    }

    #[test]
    fn methods() {
        assert!(method(&req("POST", b"/", None)).is_ok());
        assert!(method(&req("PROPFIND", b"/", None)).is_ok());
        assert_eq!(
            method(&req("post", b"/", None)),
            Err(TargetError::BadMethod)
        );
        assert_eq!(
            method(&req("Post", b"/", None)),
            Err(TargetError::BadMethod)
        );
        let mut r = req("POST", b"/?a=1&_method=patch", None);
        r.insert_header("x-http-method-override", " put ").unwrap();
        r.insert_header("X_Method_Override", "DELETE").unwrap();
        let mut got = override_methods(&r).unwrap();
        got.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        assert_eq!(got, vec![Method::DELETE, Method::PATCH, Method::PUT]);
        // An empty override names no method (apps ignore it); a value that is no method is
        // refused.
        r.insert_header("x-http-method", "").unwrap();
        assert_eq!(override_methods(&r).map(|m| m.len()), Ok(3));
        r.insert_header("x-http-method", "no way").unwrap();
        assert_eq!(override_methods(&r), Err(TargetError::BadMethod));
        // `_method` as Express (percent-decoded) and PHP (`.`, ` `, `[` read as `_`) read it.
        for q in [
            "%5Fmethod=DELETE",
            "_me%74hod=DELETE",
            ".method=DELETE",
            "+method=DELETE",
            "[method=DELETE",
        ] {
            let r = req("POST", format!("/?a=1&{q}").as_bytes(), None);
            assert_eq!(override_methods(&r), Ok(vec![Method::DELETE]), "{q}");
        }
        let r = req("POST", b"/?%5Fmethod=x%20y", None);
        assert_eq!(override_methods(&r), Err(TargetError::BadMethod));
        let r = req("POST", b"/?_methods=PUT&method=PUT", None);
        assert_eq!(override_methods(&r), Ok(vec![]));
    }
}
