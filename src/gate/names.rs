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

use super::edit::Edit;
use http::HeaderName;

/// `name` folded (letters lower-cased, every byte that is no letter or digit left out) starts
/// with `word` folded: the rest of `name` after it. Allocates nothing; a name that differs
/// fails at its first differing letter.
pub fn fold_strip<'a>(name: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    for w in word.iter().filter(|w| w.is_ascii_alphanumeric()) {
        loop {
            let b = *name.get(i)?;
            i += 1;
            if b.is_ascii_alphanumeric() {
                if !b.eq_ignore_ascii_case(w) {
                    return None;
                }
                break;
            }
        }
    }
    Some(&name[i..])
}

/// `name` and `word` are one name once folded.
pub fn fold_eq(name: &[u8], word: &[u8]) -> bool {
    fold_strip(name, word).is_some_and(|rest| !rest.iter().any(u8::is_ascii_alphanumeric))
}

/// Is header `name`, folded, one of `names` (written folded: lower-case letters and digits)?
pub fn folds_to(name: &str, names: &[&str]) -> bool {
    match Fold::of(name.as_bytes()).whole() {
        Some(f) => names.iter().any(|n| n.as_bytes() == f),
        None => names.iter().any(|n| fold_eq(name.as_bytes(), n.as_bytes())),
    }
}

/// A header name of the grammar: ASCII letters, digits and `-`, at least one byte.
pub fn plain(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// Names (folded) through which app servers take a request's path, script prefix, user or
/// other server-set environment from a header, once an optional `x` and one of the words
/// `forwarded`, `original` or `rewrite` are taken off the front: the CGI meta-variables that no
/// header should set (RFC 3875 §4.1: `SCRIPT_NAME`, `PATH_INFO`, `REMOTE_USER`, ...; PHP's
/// `REQUEST_URI`; `PROXY`, which CGI hands over as `HTTP_PROXY`), and the prefix, path, URL and
/// user that proxies tell apps (`X-Forwarded-Prefix`, `X-Script-Name`, `X-Forwarded-Path`,
/// `X-Original-URL`, `X-Rewrite-URL`, `X-Remote-User`, `X-Forwarded-User`, ...). `core` is
/// folded; matched by length first, so most names are rejected at once.
fn environment_word(core: &[u8]) -> bool {
    let words: &[&[u8]] = match core.len() {
        3 => &[b"uri", b"url"],
        4 => &[b"path", b"user"],
        5 => &[b"proxy"],
        6 => &[b"prefix"],
        8 => &[b"authtype", b"authuser", b"pathinfo"],
        10 => &[
            b"remoteaddr",
            b"remotehost",
            b"remoteuser",
            b"requesturi",
            b"scriptname",
            b"servername",
            b"serverport",
        ],
        11 => &[
            b"contextpath",
            b"documenturi",
            b"querystring",
            b"remoteident",
        ],
        12 => &[b"documentroot"],
        13 => &[b"requestmethod"],
        14 => &[
            b"pathtranslated",
            b"scriptfilename",
            b"serverprotocol",
            b"serversoftware",
        ],
        16 => &[b"gatewayinterface"],
        _ => return false,
    };
    words.contains(&core)
}

/// Role words of a user or a mount point: a name (folded) that ends with one of them is an
/// authentication proxy's claim about the user (`X-Webauth-User`, `X-Forwarded-Email`,
/// `X-Forwarded-Groups`, `X-Ms-Client-Principal-Name`, `X-Amzn-Oidc-Identity`) or a proxy's
/// claim about the path or base the app is mounted under (`X-Ingress-Path`, `X-Path-Prefix`,
/// `X-Base-Url`, `X-Forwarded-Context`).
const USER_AND_PATH_ENDS: [&[u8]; 16] = [
    b"user",
    b"login",
    b"assertion",
    b"clientcert",
    b"username",
    b"email",
    b"groups",
    b"principal",
    b"principalname",
    b"principalid",
    b"identity",
    b"path",
    b"prefix",
    b"uri",
    b"url",
    b"context",
];

/// Families of claims of authentication proxies, by the start of the name (folded, an `x`
/// taken off): mod_auth_openidc's `OIDC_CLAIM_*`, AWS ALB's `X-Amzn-Oidc-*`, oauth2-proxy's
/// `X-Auth-Request-*`, Azure's `X-Ms-Client-Principal*`, Authelia's `Remote-*`, Tailscale's
/// `Tailscale-User-*`, Cloudflare Access's `Cf-Access-*`, Pomerium's `X-Pomerium-*`, client
/// certificates (`Ssl-Client-*`), and a front server's file and path control (`X-Accel-*`,
/// `X-Sendfile*`).
const CLAIM_FAMILIES: [&[u8]; 11] = [
    b"oidc",
    b"amznoidc",
    b"authrequest",
    b"msclientprincipal",
    b"remote",
    b"tailscale",
    b"cfaccess",
    b"pomerium",
    b"sslclient",
    b"accel",
    b"sendfile",
];

/// Role words of the scheme or the client's address: a name (folded) that ends with one of them
/// is a proxy's claim about the connection (`X-Scheme`, `Https`, `X-Forwarded-Ssl`,
/// `Client-Ip`, `X-ProxyUser-Ip`, `CF-Connecting-IP`).
const CONNECTION_ENDS: [&[u8]; 10] = [
    b"scheme",
    b"originatingip",
    b"https",
    b"ssl",
    b"proto",
    b"clientip",
    b"userip",
    b"remoteip",
    b"connectingip",
    b"realip",
];

/// The name ends with `word` (folded, lower case): on the folded `start` when it holds the
/// whole name (`whole`), else by walking `name` from its end. Allocates nothing.
fn ends_with_word(start: &[u8], whole: bool, name: &[u8], word: &[u8]) -> bool {
    if whole {
        start.ends_with(word)
    } else {
        fold_ends(name, word)
    }
}

/// `name` folded ends with `word` (folded, lower case). Allocates nothing.
fn fold_ends(name: &[u8], word: &[u8]) -> bool {
    let mut letters = name
        .iter()
        .rev()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase);
    word.iter().rev().all(|w| letters.next() == Some(*w))
}

/// Browsers' own `Sec-` names (`Sec-Fetch-User`, `Sec-WebSocket-Protocol`) are no proxy's
/// claims: the role words do not apply to them.
fn browser_own(start: &[u8]) -> bool {
    start.starts_with(b"sec")
}

/// Is the name of the server-environment class? `start` is its folding (or, past
/// [`FOLD_MAX`], the start of it), `name` the name as sent. Dropped from every peer:
/// - after an optional `x` and one of `forwarded`, `original`, `rewrite`, a CGI
///   meta-variable or a path, prefix, URL or user ([`environment_word`]);
/// - a name (not `Sec-`) that ends with a role word of a user or a mount point
///   ([`USER_AND_PATH_ENDS`]), or is `base` after the same optional words (`X-Forwarded-Base`);
/// - a name that starts, after an optional `x`, with a family of auth proxies' claims
///   ([`CLAIM_FAMILIES`]).
fn environment_of(start: &[u8], whole: bool, name: &[u8]) -> bool {
    let core = start.strip_prefix(b"x").unwrap_or(start);
    if CLAIM_FAMILIES.iter().any(|w| core.starts_with(w)) {
        return true;
    }
    if !browser_own(start)
        && USER_AND_PATH_ENDS
            .iter()
            .any(|w| ends_with_word(start, whole, name, w))
    {
        return true;
    }
    if !whole {
        return false;
    }
    let core = core
        .strip_prefix(b"forwarded")
        .or_else(|| core.strip_prefix(b"original"))
        .or_else(|| core.strip_prefix(b"rewrite"))
        .unwrap_or(core);
    core == b"base" || environment_word(core)
}

/// Is `folded` (a name folded: lower-case letters and digits only) of the server-environment
/// class ([`environment_of`])?
#[cfg(test)]
fn environment_folded(folded: &[u8]) -> bool {
    environment_of(folded, true, folded)
}

/// Is the name a claim about the connection, which only a trusted proxy may make? `start` as
/// in [`environment_of`]. After an optional `x`: anything that starts with `forwarded` or
/// `original` (verigate writes its own `X-Forwarded-For`, `-Proto`, `-Host`), or a name (not
/// `Sec-`) that ends with a role word of the scheme or the client's address
/// ([`CONNECTION_ENDS`]).
pub fn connection_claim(start: &[u8], whole: bool, name: &[u8]) -> bool {
    start.starts_with(b"xforwarded")
        || start.starts_with(b"xoriginal")
        || (!browser_own(start)
            && CONNECTION_ENDS
                .iter()
                .any(|w| ends_with_word(start, whole, name, w)))
}

/// Is `name` (any spelling) of the server-environment class?
#[cfg(test)]
fn environment(name: &[u8]) -> bool {
    let folded: Vec<u8> = name
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect();
    environment_folded(&folded)
}

/// A byte of a header name folded: a letter in lower case, a digit as it is, [`DASH`] for
/// `-` (left out), [`INVALID`] for any other byte (outside the grammar).
const FOLD: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            t[b] = c.to_ascii_lowercase();
        } else if c == b'-' {
            t[b] = DASH;
        }
        b += 1;
    }
    t
};
const INVALID: u8 = 0xff;
const DASH: u8 = 0;

/// The longest name folded on the stack; a longer one is judged by its start and, for the
/// role words, by [`fold_ends`] (no exact environment name is that long).
const FOLD_MAX: usize = 40;

/// A name folded on the stack (letters in lower case and digits, up to [`FOLD_MAX`] of them).
#[derive(Clone, Copy)]
pub struct Fold {
    buf: [u8; FOLD_MAX],
    len: usize,
    /// Longer than [`FOLD_MAX`] (only its start is kept).
    long: bool,
    /// A byte outside the header-name grammar.
    invalid: bool,
}

impl Fold {
    /// One pass over `name`.
    pub fn of(name: &[u8]) -> Fold {
        let mut f = Fold {
            buf: [0; FOLD_MAX],
            len: 0,
            long: false,
            invalid: name.is_empty(),
        };
        for b in name {
            match FOLD[usize::from(*b)] {
                INVALID => f.invalid = true,
                DASH => {}
                c if f.len < FOLD_MAX => {
                    f.buf[f.len] = c;
                    f.len += 1;
                }
                _ => f.long = true,
            }
        }
        f
    }

    /// The folded name, when it is of the grammar and fitted whole.
    pub fn whole(&self) -> Option<&[u8]> {
        (!self.invalid && !self.long).then_some(&self.buf[..self.len])
    }

    /// The folded name, or its first [`FOLD_MAX`] bytes when it is longer.
    pub fn start(&self) -> &[u8] {
        &self.buf[..self.len]
    }
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

/// What the app must never receive from a client: verigate's own names, in any spelling.
pub struct Protected<'a> {
    prefix: &'a str,
    assertion: &'a str,
    prefix_f: Fold,
    assertion_f: Fold,
}

impl<'a> Protected<'a> {
    /// From the identity prefix (`x-verified-`) and the assertion's header name.
    pub fn new(prefix: &'a str, assertion: &'a str) -> Protected<'a> {
        Protected {
            prefix,
            assertion,
            prefix_f: Fold::of(prefix.as_bytes()),
            assertion_f: Fold::of(assertion.as_bytes()),
        }
    }

    /// Why `name` may not reach the app, if it may not. One pass over the name checks the
    /// grammar and folds it (on the stack); the rest compares short slices.
    pub fn judge(&self, name: &str) -> Option<Why> {
        let bytes = name.as_bytes();
        let f = Fold::of(bytes);
        if f.invalid {
            return Some(Why::InvalidName);
        }
        let identity = match (f.whole(), self.prefix_f.whole(), self.assertion_f.whole()) {
            (Some(n), Some(p), Some(a)) => n.starts_with(p) || n == a,
            // A name or a configured name past FOLD_MAX: compared byte by byte.
            _ => {
                fold_strip(bytes, self.prefix.as_bytes()).is_some()
                    || fold_eq(bytes, self.assertion.as_bytes())
            }
        };
        if identity {
            return Some(Why::Identity);
        }
        environment_of(f.start(), f.whole().is_some(), bytes).then_some(Why::Environment)
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

    fn p() -> Protected<'static> {
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
            "sec-fetch-user",
            "x-requested-with",
            "x-csrf-token",
            "x-database",
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
            "x-webauth-user",
            "x-forwarded-email",
            "x-forwarded-preferred-username",
            "x-ms-client-principal-name",
            "oidc-claim-sub",
            "x-amzn-oidc-data",
            "x-auth-request-access-token",
            "x-forwarded-base",
            "x-base-url",
            "x-envoy-original-path",
            "x-a-very-long-header-name-of-some-vendor-which-ends-with-user",
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
            let folded: Vec<u8> = text.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_lowercase()).collect();
            if !plain(text.as_bytes()) {
                proptest::prop_assert_eq!(verdict, Some(Why::InvalidName));
            } else if folded.starts_with(b"xverified") {
                proptest::prop_assert_eq!(verdict, Some(Why::Identity));
            } else if environment(&folded) {
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
