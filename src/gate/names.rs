//! Header names as the app may receive them. One grammar and one folding, instead of lists of
//! spellings:
//!
//! - **Grammar**: a request header whose name has any byte besides ASCII letters, digits and
//!   `-` never reaches the app (as nginx's `ignore_invalid_headers on`). App servers fold
//!   `_`, `.` and other bytes into `-` or `_` in different ways (CGI and WSGI servers turn
//!   `-` into `_`), so such a name can be read as a protected one.
//! - **Folding**: protected names are compared after lower-casing and leaving out every byte
//!   that is no letter or digit, so `X_Verified-Name`, `x.verified.name` and `XVerifiedName`
//!   are one name.
//! - **Protected**: the identity prefix and the assertion header (verigate's own), and the
//!   names through which app servers take the path, the script prefix or the user from their
//!   proxy ([`environment`]), dropped from every peer. Forwarding headers are judged in
//!   [`super::forwarded`] and method overrides in [`super::target`], with the same folding.
//!
//! Dropped names are counted in `verigate_dropped_headers_total{why}` and, with
//! `clients.log_dropped_headers`, logged by name (never a value).

use super::headers::Edit;
use http::HeaderName;

/// The longest folded name compared; longer names are folded only as far as this.
const FOLD_MAX: usize = 64;

/// A name folded: letters lower-cased, every byte that is no letter or digit left out (up to
/// [`FOLD_MAX`] bytes of it).
#[derive(Clone, Copy)]
pub struct Folded {
    buf: [u8; FOLD_MAX],
    len: usize,
    /// The whole name fitted.
    whole: bool,
}

impl Folded {
    pub fn of(name: &[u8]) -> Folded {
        let mut f = Folded {
            buf: [0; FOLD_MAX],
            len: 0,
            whole: true,
        };
        for b in name {
            if b.is_ascii_alphanumeric() {
                if f.len == FOLD_MAX {
                    f.whole = false;
                    break;
                }
                f.buf[f.len] = b.to_ascii_lowercase();
                f.len += 1;
            }
        }
        f
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The whole name was folded (it was not cut at [`FOLD_MAX`]).
    pub fn is_whole(&self) -> bool {
        self.whole
    }

    /// The same name as `other` once both are folded.
    pub fn is(&self, other: &Folded) -> bool {
        self.whole && other.whole && self.as_bytes() == other.as_bytes()
    }

    /// Starts with `prefix` once both are folded.
    pub fn starts_with(&self, prefix: &Folded) -> bool {
        prefix.whole && self.as_bytes().starts_with(prefix.as_bytes())
    }
}

/// Is header `name`, folded, one of `names` (written folded)?
pub fn folds_to(name: &str, names: &[&str]) -> bool {
    let f = Folded::of(name.as_bytes());
    f.whole && names.iter().any(|n| f.as_bytes() == n.as_bytes())
}

/// A header name of the grammar: ASCII letters, digits and `-`, at least one byte.
pub fn plain(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Names (folded) through which app servers take a request's path, script prefix, user or
/// other server-set environment from a header, once optional `x` and `forwarded`, `original`
/// or `rewrite` words are taken off the front: the CGI meta-variables that no header should
/// set (RFC 3875 §4.1: `SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`, ...; PHP's `REQUEST_URI`;
/// `PROXY`, which CGI hands over as `HTTP_PROXY`), and the prefix, path, URL and user that
/// proxies tell apps (`X-Forwarded-Prefix`, `X-Script-Name`, `X-Forwarded-Path`,
/// `X-Original-URL`, `X-Rewrite-URL`, `X-Remote-User`, `X-Forwarded-User`, ...).
const ENVIRONMENT: [&[u8]; 27] = [
    b"authtype",
    b"gatewayinterface",
    b"pathinfo",
    b"pathtranslated",
    b"querystring",
    b"remoteaddr",
    b"remotehost",
    b"remoteident",
    b"remoteuser",
    b"requestmethod",
    b"scriptname",
    b"servername",
    b"serverport",
    b"serverprotocol",
    b"serversoftware",
    b"requesturi",
    b"scriptfilename",
    b"documentroot",
    b"documenturi",
    b"contextpath",
    b"proxy",
    b"prefix",
    b"path",
    b"uri",
    b"url",
    b"user",
    b"authuser",
];

/// Is a (folded) name one of the [`ENVIRONMENT`] class?
pub fn environment(folded: &[u8]) -> bool {
    let mut core = folded.strip_prefix(b"x").unwrap_or(folded);
    for word in [&b"forwarded"[..], b"original", b"rewrite"] {
        if let Some(rest) = core.strip_prefix(word) {
            core = rest;
            break;
        }
    }
    ENVIRONMENT.contains(&core)
}

/// Why a header is kept from the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// A byte besides letters, digits and `-` in its name.
    InvalidName,
    /// Under the identity prefix, or the assertion's name, in any spelling.
    Identity,
    /// A name app servers read as their environment (path, prefix, user).
    Environment,
}

impl Why {
    pub fn label(self) -> &'static str {
        match self {
            Why::InvalidName => "invalid_name",
            Why::Identity => "identity",
            Why::Environment => "environment",
        }
    }
}

/// What the app must never receive from a client: verigate's own names, folded.
pub struct Protected {
    prefix: Folded,
    assertion: Folded,
}

impl Protected {
    /// From the identity prefix (`x-verified-`) and the assertion's header name.
    pub fn new(prefix: &str, assertion: &str) -> Protected {
        Protected {
            prefix: Folded::of(prefix.as_bytes()),
            assertion: Folded::of(assertion.as_bytes()),
        }
    }

    /// Why `name` may not reach the app, if it may not.
    pub fn judge(&self, name: &str) -> Option<Why> {
        let bytes = name.as_bytes();
        if !plain(bytes) {
            return Some(Why::InvalidName);
        }
        let f = Folded::of(bytes);
        if f.starts_with(&self.prefix) || f.is(&self.assertion) {
            return Some(Why::Identity);
        }
        if f.whole && environment(f.as_bytes()) {
            return Some(Why::Environment);
        }
        None
    }
}

/// Remove every header [`Protected::judge`] keeps from the app; count them, and with `log`
/// log their names. Returns how many were removed. The common case (none) allocates nothing.
pub fn screen(req: &mut impl Edit, protected: &Protected, log: bool) -> usize {
    if !req
        .map()
        .keys()
        .any(|k| protected.judge(k.as_str()).is_some())
    {
        return 0;
    }
    let doomed: Vec<(HeaderName, Why)> = req
        .map()
        .keys()
        .filter_map(|k| protected.judge(k.as_str()).map(|w| (k.clone(), w)))
        .collect();
    for (name, why) in &doomed {
        crate::metrics::DROPPED_HEADERS
            .with_label_values(&[why.label()])
            .inc();
        req.remove(name);
    }
    if log {
        let names: Vec<&str> = doomed.iter().map(|(n, _)| n.as_str()).collect();
        tracing::info!(names = ?names, "dropped request headers");
    }
    doomed.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Protected {
        Protected::new("x-verified-", "x-verified-assertion")
    }

    #[test]
    fn the_grammar_and_the_folding() {
        let p = p();
        for ok in [
            "accept",
            "content-type",
            "x-custom-1",
            "x-forwarded-for",
            "x-http-method-override",
            "user-agent",
        ] {
            assert_eq!(p.judge(ok), None, "{ok}");
        }
        for bad in [
            "x_custom", "foo.bar", "a!b", "a#b", "a$b", "a'b", "a|b", "a~b", "a^b", "a`b", "a*b",
            "a+b", "a&b", "a%b",
        ] {
            assert_eq!(p.judge(bad), Some(Why::InvalidName), "{bad}");
        }
        for id in [
            "x-verified-name",
            "xverified-name",
            "x-verifiedname",
            "xverifiedname",
            "x-verified-assertion",
            "x-verifiedish",
        ] {
            assert_eq!(p.judge(id), Some(Why::Identity), "{id}");
        }
        for env in [
            "script-name",
            "path-info",
            "remote-user",
            "x-forwarded-prefix",
            "x-script-name",
            "x-forwarded-path",
            "x-forwarded-uri",
            "x-original-url",
            "x-rewrite-url",
            "x-original-uri",
            "x-forwarded-script-name",
            "x-remote-user",
            "x-forwarded-user",
            "proxy",
            "request-uri",
            "xoriginalurl",
        ] {
            assert_eq!(p.judge(env), Some(Why::Environment), "{env}");
        }
        // Another assertion name outside the prefix is protected too.
        let q = Protected::new("x-id-", "x-app-proof");
        assert_eq!(q.judge("x-app-proof"), Some(Why::Identity));
        assert_eq!(q.judge("xapp-proof"), Some(Why::Identity));
        assert_eq!(q.judge("x-verified-name"), None);
    }

    #[test]
    fn screening_removes_and_keeps() {
        let mut h = http::HeaderMap::new();
        for (n, v) in [
            ("accept", "*/*"),
            ("x_verified_name", "forged"),
            ("x.verified.name", "forged"),
            ("script_name", "/signup"),
            ("x-script-name", "/signup"),
            ("x-custom", "1"),
        ] {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert_eq!(screen(&mut h, &p(), false), 4);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-custom"]);
        assert_eq!(screen(&mut h, &p(), true), 0);
    }

    proptest::proptest! {
        /// Whatever a name's bytes: it reaches the app only when it is of the grammar, and a
        /// name that folds to a protected one never does, whatever bytes it is spelled with.
        #[test]
        fn names_by_grammar_and_folding(
            name in proptest::collection::vec(proptest::sample::select(
                b"aXvVerifiedNnSsCcrRiptTpPhHx-_.!#$%&'*+^`|~09".to_vec()), 1..24),
        ) {
            let Ok(hn) = HeaderName::from_bytes(&name) else { return Ok(()); };
            let text = hn.as_str();
            let verdict = p().judge(text);
            let f = Folded::of(text.as_bytes());
            if !plain(text.as_bytes()) {
                proptest::prop_assert_eq!(verdict, Some(Why::InvalidName));
            } else if f.as_bytes().starts_with(b"xverified") {
                proptest::prop_assert_eq!(verdict, Some(Why::Identity));
            } else if environment(f.as_bytes()) {
                proptest::prop_assert_eq!(verdict, Some(Why::Environment));
            } else {
                proptest::prop_assert_eq!(verdict, None);
            }
            // The same name spelled with `-` for every other byte is of the grammar, and is
            // judged by its folding alone: a protected name stays protected in any spelling.
            let dashed: String = text.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
            let d = p().judge(&dashed);
            proptest::prop_assert_ne!(d, Some(Why::InvalidName));
            if verdict != Some(Why::InvalidName) {
                proptest::prop_assert_eq!(d, verdict);
            }
        }
    }
}
