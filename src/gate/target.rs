//! The request line as verigate accepts it: the method's spelling, the request-target's form,
//! and the headers some frameworks read in place of either. Everything here is decided before
//! the path is read, so that the path verigate matches is the path the app is sent.

use crate::routing::host::{parse_authority, Authority, HostAt};
use http::{Method, Uri};
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

/// Headers (folded: letter case and every byte that is no letter or digit left out, see
/// [`super::names`]) through which Express's method-override, Symfony, Laravel and others let
/// a client change the method the app acts on. verigate decides on every method a request
/// carries. (Path-override headers such as `X-Original-URL` never reach the app: they are of
/// the environment class of [`super::names`].)
const METHOD_OVERRIDES: [&str; 3] = ["xhttpmethodoverride", "xhttpmethod", "xmethodoverride"];

/// The query parameter through which Express's method-override (`methodOverride('_method')`)
/// reads the method.
const METHOD_PARAM: &str = "_method";

/// Whether a request carries a method-override header (any spelling).
pub fn has_method_override_header(headers: &http::HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| super::fold::folds_to(k.as_str(), &METHOD_OVERRIDES))
}

/// Is this header (worked out by [`super::fold::Name::of`], of the grammar) a method-override
/// header?
pub fn method_override(n: &super::fold::Name) -> bool {
    n.fold
        .whole()
        .is_some_and(|f| METHOD_OVERRIDES.iter().any(|m| m.as_bytes() == f))
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
    override_methods_of(req, has_method_override_header(&req.headers))
}

/// [`override_methods`] of a request whose headers were screened ([`super::names::screen`]):
/// `headers` says whether a method-override header stayed on it, so that a request without
/// one is not read again for them.
pub fn override_methods_of(req: &RequestHeader, headers: bool) -> Result<Vec<Method>, TargetError> {
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
    if headers {
        for (name, v) in &req.headers {
            if super::fold::folds_to(name.as_str(), &METHOD_OVERRIDES) {
                add(v.to_str().map_err(|_| TargetError::BadMethod)?)?;
            }
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

/// The host a request names, where the request line needs one: exactly one Host header on
/// HTTP/1.1 (RFC 9112 §3.2), and every host it names (its Host header, an absolute-form
/// target's authority, HTTP/2's `:authority`) of the one grammar of
/// [`crate::routing::host::parse_authority`], all naming the same host and port (an absent
/// port being the scheme's default). Routes are chosen by one reading of it: where it is, as
/// [`crate::routing::host::request_host`] would find it in this head (none: the request names
/// no host), so that it is not parsed again.
pub fn host(req: &RequestHeader) -> Result<Option<HostAt>, TargetError> {
    host_and_header(req).map(|(at, _)| at)
}

/// [`host`], and the Host header it read (the value `req.headers.get(HOST)` gives), for a
/// caller that keeps it rather than look it up again.
pub fn host_and_header(
    req: &RequestHeader,
) -> Result<(Option<HostAt>, Option<&http::HeaderValue>), TargetError> {
    let (header, value) = match host_header_value(req)? {
        Some((a, v)) => (Some(a), Some(v)),
        None => (None, None),
    };
    let target = req
        .uri
        .authority()
        .map(|a| parse_authority(a.as_str().as_bytes()))
        .transpose()
        .map_err(|_| TargetError::BadTarget)?;
    agree(header, target, &req.uri)?;
    let at = match (header, target) {
        (Some(h), _) => Some(HostAt::in_header(h.host)),
        (None, Some(t)) => Some(HostAt::in_target(t.host)),
        (None, None) => None,
    };
    Ok((at, value))
}

/// The Host header: exactly one on HTTP/1.1 (none or one before), of the grammar.
fn host_header(req: &RequestHeader) -> Result<Option<Authority<'_>>, TargetError> {
    host_header_value(req).map(|h| h.map(|(a, _)| a))
}

/// [`host_header`], and the header's value.
fn host_header_value(
    req: &RequestHeader,
) -> Result<Option<(Authority<'_>, &http::HeaderValue)>, TargetError> {
    let mut hosts = req.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version == http::Version::HTTP_11 => Err(TargetError::BadTarget),
        (Some(_), Some(_)) => Err(TargetError::BadTarget),
        (None, _) => Ok(None),
        (Some(h), None) => parse_authority(h.as_bytes())
            .map(|a| Some((a, h)))
            .map_err(|_| TargetError::BadTarget),
    }
}

/// Two readings of a request's host name the same host and port (an absent port being the
/// default of `uri`'s scheme).
fn agree(a: Option<Authority>, b: Option<Authority>, uri: &Uri) -> Result<(), TargetError> {
    let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    };
    match (a, b) {
        (Some(a), Some(b))
            if !a.host.eq_ignore_ascii_case(b.host)
                || a.port.unwrap_or(default_port) != b.port.unwrap_or(default_port) =>
        {
            Err(TargetError::BadTarget)
        }
        _ => Ok(()),
    }
}

/// The host the request names, as its bytes (the access line checks them as it copies them):
/// its Host header, or on HTTP/2 (where a client may send only
/// `:authority`) the URI's authority. Pingora refuses an HTTP/2 request whose Host and
/// `:authority` differ, so the two never disagree here.
pub fn authority(req: &RequestHeader) -> &[u8] {
    authority_of(req.headers.get(http::header::HOST), req)
}

/// [`authority`] of a request whose Host header (`req.headers.get(HOST)`) is `host`, read
/// before.
pub fn authority_of<'a>(host: Option<&'a http::HeaderValue>, req: &'a RequestHeader) -> &'a [u8] {
    match host {
        Some(h) => h.as_bytes(),
        None => req
            .uri
            .authority()
            .map_or(&b""[..], |a| a.as_str().as_bytes()),
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
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let uri: Uri = text.parse().ok()?;
    // The authority is the Host header's, both of the host grammar (one Host header, same
    // host, same port).
    let target = parse_authority(uri.authority()?.as_str().as_bytes()).ok()?;
    let header = host_header(req).ok()??;
    agree(Some(header), Some(target), &uri).ok()?;
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
        // Where the routing host is: the start of the Host header.
        assert_eq!(
            host(&req("GET", b"/", Some("shop.example:8080"))),
            Ok(Some(HostAt::in_header("shop.example")))
        );
        assert_eq!(
            host(&req("GET", b"/", Some("[::1]:80"))),
            Ok(Some(HostAt::in_header("[::1]")))
        );
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
        assert_eq!(host(&old), Ok(None));
        // HTTP/1.0 without Host: the host is the start of the target's authority.
        let mut old_absolute = req("GET", b"/", None);
        old_absolute.set_version(http::Version::HTTP_10);
        old_absolute.set_uri(Uri::from_static("http://shop.example:81/x"));
        assert_eq!(
            host(&old_absolute),
            Ok(Some(HostAt::in_target("shop.example")))
        );
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
        assert_eq!(
            host(&h2("Shop.example", "shop.example:443")),
            Ok(Some(HostAt::in_header("shop.example")))
        );
        assert_eq!(
            host(&h2("admin.example", "shop.example")),
            Err(TargetError::BadTarget)
        );
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
        r.insert_header("X-MethodOverride", "DELETE").unwrap();
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
