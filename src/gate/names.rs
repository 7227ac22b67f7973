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
#[cfg_attr(not(test), allow(dead_code))] // The list as written: tests hold the match to it.
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
#[cfg_attr(not(test), allow(dead_code))] // The list as written: tests hold the match to it.
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
#[cfg_attr(not(test), allow(dead_code))] // The list as written: tests hold the match to it.
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

/// Which role words a name (folded, not `Sec-`) ends with, decided by its last letter: only
/// the few words that end with that letter are compared. The same decision as comparing the
/// name's end with every word of [`USER_AND_PATH_ENDS`] and [`CONNECTION_ENDS`] (a test holds
/// it to that). `tail` is the end of the folded name (at least the longest word's length, or
/// the whole name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles {
    /// It ends with a role word of a user or a mount point ([`USER_AND_PATH_ENDS`]).
    pub user_or_path: bool,
    /// It ends with a role word of the scheme or the client's address ([`CONNECTION_ENDS`]).
    pub connection: bool,
}

impl Roles {
    fn of(tail: &[u8]) -> Roles {
        let ends = |w: &[u8]| tail.ends_with(w);
        let (user_or_path, connection) = match tail.last() {
            Some(b'r') => (ends(b"user"), false),
            Some(b'n') => (ends(b"login") || ends(b"assertion"), false),
            Some(b't') => (ends(b"clientcert") || ends(b"context"), false),
            Some(b'e') => (ends(b"username") || ends(b"principalname"), ends(b"scheme")),
            Some(b'l') => (
                ends(b"email") || ends(b"principal") || ends(b"url"),
                ends(b"ssl"),
            ),
            Some(b's') => (ends(b"groups"), ends(b"https")),
            Some(b'd') => (ends(b"principalid"), false),
            Some(b'y') => (ends(b"identity"), false),
            Some(b'h') => (ends(b"path"), false),
            Some(b'x') => (ends(b"prefix"), false),
            Some(b'i') => (ends(b"uri"), false),
            Some(b'o') => (false, ends(b"proto")),
            Some(b'p') => (
                false,
                tail.strip_suffix(b"ip").is_some_and(|t| {
                    [
                        &b"originating"[..],
                        b"client",
                        b"user",
                        b"remote",
                        b"connecting",
                        b"real",
                    ]
                    .iter()
                    .any(|w| t.ends_with(w))
                }),
            ),
            _ => (false, false),
        };
        Roles {
            user_or_path,
            connection,
        }
    }
}

/// Browsers' own `Sec-` names (`Sec-Fetch-User`, `Sec-WebSocket-Protocol`) are no proxy's
/// claims: the role words do not apply to them.
fn browser_own(start: &[u8]) -> bool {
    start.starts_with(b"sec")
}

/// Does `core` (a folded name, an `x` taken off) start with a family of auth proxies' claims
/// ([`CLAIM_FAMILIES`])? Only the families of its first letter are compared.
fn claim_family(core: &[u8]) -> bool {
    let starts = |w: &[u8]| core.starts_with(w);
    match core.first() {
        Some(b'o') => starts(b"oidc"),
        Some(b'a') => starts(b"amznoidc") || starts(b"authrequest") || starts(b"accel"),
        Some(b'm') => starts(b"msclientprincipal"),
        Some(b'r') => starts(b"remote"),
        Some(b't') => starts(b"tailscale"),
        Some(b'c') => starts(b"cfaccess"),
        Some(b'p') => starts(b"pomerium"),
        Some(b's') => starts(b"sslclient") || starts(b"sendfile"),
        _ => false,
    }
}

/// Is the name of the server-environment class? Dropped from every peer:
/// - after an optional `x` and one of `forwarded`, `original`, `rewrite`, a CGI
///   meta-variable or a path, prefix, URL or user ([`environment_word`]);
/// - a name (not `Sec-`) that ends with a role word of a user or a mount point
///   ([`USER_AND_PATH_ENDS`]), or is `base` after the same optional words (`X-Forwarded-Base`);
/// - a name that starts, after an optional `x`, with a family of auth proxies' claims
///   ([`CLAIM_FAMILIES`]).
fn environment_of(n: &Name) -> bool {
    let start = n.fold.start();
    let core = start.strip_prefix(b"x").unwrap_or(start);
    if claim_family(core) || n.roles.user_or_path {
        return true;
    }
    if n.fold.whole().is_none() {
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
    let name = std::str::from_utf8(folded).unwrap_or("");
    environment_of(&Name::of(name))
}

/// Is the name a claim about the connection, which only a trusted proxy may make? After an
/// optional `x`: anything that starts with `forwarded` or `original` (verigate writes its own
/// `X-Forwarded-For`, `-Proto`, `-Host`), or a name (not `Sec-`) that ends with a role word of
/// the scheme or the client's address ([`CONNECTION_ENDS`]).
pub fn connection_claim(n: &Name) -> bool {
    let start = n.fold.start();
    start.starts_with(b"xforwarded") || start.starts_with(b"xoriginal") || n.roles.connection
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
/// role words, by its end (no exact environment name is that long).
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

/// The longest role word (`originatingip`, `principalname`) fits in the end kept of a name
/// past [`FOLD_MAX`].
const TAIL: usize = 16;

/// A header name as every rule reads it, worked out in one pass: its folding and the role words
/// it ends with. [`Protected::judge_name`], [`super::forwarded::doomed`] and the method
/// overrides all decide on it.
pub struct Name<'a> {
    /// The name as it is in the map (lower case).
    pub text: &'a str,
    pub fold: Fold,
    /// The role words it ends with (none for browsers' own `Sec-` names).
    pub roles: Roles,
}

impl<'a> Name<'a> {
    pub fn of(text: &'a str) -> Name<'a> {
        let bytes = text.as_bytes();
        let fold = Fold::of(bytes);
        let roles = if browser_own(fold.start()) {
            Roles::default()
        } else if !fold.long {
            Roles::of(fold.start())
        } else {
            // Past FOLD_MAX: the end of the name folded, walked from its last byte.
            let mut tail = [0u8; TAIL];
            let mut n = 0;
            for b in bytes.iter().rev().filter(|b| b.is_ascii_alphanumeric()) {
                if n == TAIL {
                    break;
                }
                n += 1;
                tail[TAIL - n] = b.to_ascii_lowercase();
            }
            Roles::of(&tail[TAIL - n..])
        };
        Name { text, fold, roles }
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
        self.judge_name(&Name::of(name))
    }

    /// [`Protected::judge`] of a name already worked out.
    pub fn judge_name(&self, n: &Name) -> Option<Why> {
        let f = &n.fold;
        if f.invalid {
            return Some(Why::InvalidName);
        }
        let bytes = n.text.as_bytes();
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
        environment_of(n).then_some(Why::Environment)
    }
}

/// What one header of a request becomes on its way to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It goes on.
    Keep,
    /// It goes on, and names a method the app may act on (a method-override header).
    Override,
    /// Kept from the app ([`Protected::judge`]): counted, and logged by name when asked.
    Drop(Why),
    /// A forwarding header this peer may not send ([`super::forwarded::doomed`]): removed,
    /// and verigate's own put in its place.
    Forwarding,
}

/// Each header name decided once: the app's names ([`Protected::judge`]), then what this
/// peer may say about the connection ([`super::forwarded::doomed`]), then the method
/// overrides ([`super::target`]).
pub fn verdict(protected: &Protected, name: &str, trusted: bool) -> Verdict {
    let n = Name::of(name);
    if let Some(why) = protected.judge_name(&n) {
        return Verdict::Drop(why);
    }
    if super::forwarded::doomed(&n, trusted) {
        return Verdict::Forwarding;
    }
    if super::target::method_override(&n) {
        return Verdict::Override;
    }
    Verdict::Keep
}

/// What [`screen`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Screened {
    /// Headers removed by [`Protected::judge`] (forwarding headers not counted).
    pub dropped: usize,
    /// A method-override header stays on the request.
    pub method_override: bool,
}

/// One pass over the request's header names: remove every header [`Protected::judge`] keeps
/// from the app (counted, and with `log` logged by name) and every forwarding header this
/// peer (`trusted`: one of `clients.trusted_proxies`) may not send, and note whether a
/// method-override header stays. The common case (nothing to remove) allocates nothing.
pub fn screen(req: &mut impl Edit, protected: &Protected, trusted: bool, log: bool) -> Screened {
    let mut out = Screened::default();
    let mut doomed: Vec<(HeaderName, Verdict)> = Vec::new();
    for k in req.map().keys() {
        match verdict(protected, k.as_str(), trusted) {
            Verdict::Keep => {}
            Verdict::Override => out.method_override = true,
            v => doomed.push((k.clone(), v)),
        }
    }
    for (name, v) in &doomed {
        if let Verdict::Drop(why) = v {
            crate::metrics::DROPPED_HEADERS
                .with_label_values(&[why.label()])
                .inc();
            out.dropped += 1;
        }
        req.remove(name);
    }
    if log && out.dropped > 0 {
        let names: Vec<&str> = doomed
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Drop(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        tracing::info!(names = ?names, "dropped request headers");
    }
    out
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
        assert_eq!(screen(&mut h, &p(), true, false).dropped, 4);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-custom"]);
        assert_eq!(screen(&mut h, &p(), true, true), Screened::default());
    }

    #[test]
    fn one_pass_drops_forwarding_claims_by_peer_and_notes_overrides() {
        let sent = [
            ("accept", Verdict::Keep),
            ("x-verified-name", Verdict::Drop(Why::Identity)),
            ("x-forwarded-for", Verdict::Forwarding),
            ("x-forwarded-host", Verdict::Forwarding),
            ("x-forwarded-host-2", Verdict::Forwarding),
            ("x-host", Verdict::Forwarding),
            ("xforwardedfor", Verdict::Forwarding),
            ("x-real-ip", Verdict::Forwarding),
            ("cf-connecting-ip", Verdict::Forwarding),
            ("x-scheme", Verdict::Forwarding),
            ("x-http-method-override", Verdict::Override),
            ("xhttpmethod", Verdict::Override),
        ];
        let mut h = http::HeaderMap::new();
        for (n, _) in sent {
            h.append(HeaderName::from_static(n), "1".parse().unwrap());
        }
        for (n, v) in sent {
            assert_eq!(verdict(&p(), n, false), v, "{n}");
        }
        // From a trusted proxy its claims about the connection stay; odd spellings of
        // verigate's own names and host claims go all the same.
        for (n, v) in [
            ("x-forwarded-for", Verdict::Keep),
            ("x-forwarded-host", Verdict::Keep),
            ("x-forwarded-host-2", Verdict::Forwarding),
            ("x-real-ip", Verdict::Keep),
            ("cf-connecting-ip", Verdict::Keep),
            ("xforwardedfor", Verdict::Forwarding),
            ("x-host", Verdict::Forwarding),
            ("x-verified-name", Verdict::Drop(Why::Identity)),
        ] {
            assert_eq!(verdict(&p(), n, true), v, "{n}");
        }
        let s = screen(&mut h, &p(), false, false);
        assert_eq!(
            s,
            Screened {
                dropped: 1,
                method_override: true
            }
        );
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-http-method-override", "xhttpmethod"]);
    }

    /// The role words as lists, compared one by one: what [`Roles::of`] decides by last letter.
    fn roles_by_lists(folded: &[u8]) -> Roles {
        Roles {
            user_or_path: USER_AND_PATH_ENDS.iter().any(|w| folded.ends_with(w)),
            connection: CONNECTION_ENDS.iter().any(|w| folded.ends_with(w)),
        }
    }

    #[test]
    fn role_words_by_last_letter_are_the_lists() {
        for w in USER_AND_PATH_ENDS.iter().chain(CONNECTION_ENDS.iter()) {
            for pre in [&b""[..], b"x", b"xforwarded", b"a"] {
                let name = [pre, *w].concat();
                assert_eq!(Roles::of(&name), roles_by_lists(&name), "{name:?}");
                // One letter short of the word, and the word with a letter after it.
                assert_eq!(Roles::of(&name[1..]), roles_by_lists(&name[1..]));
                let more = [&name[..], b"s"].concat();
                assert_eq!(Roles::of(&more), roles_by_lists(&more), "{more:?}");
            }
        }
        for w in CLAIM_FAMILIES {
            for name in [
                w.to_vec(),
                [w, &b"-x"[..]].concat(),
                w[..w.len() - 1].to_vec(),
            ] {
                let by_list = CLAIM_FAMILIES.iter().any(|f| name.starts_with(f));
                assert_eq!(claim_family(&name), by_list, "{name:?}");
            }
        }
        // A long name's end is read from its bytes.
        let long = "x-a-very-long-header-name-of-some-vendor-which-ends-with-Client-IP";
        let n = Name::of(long);
        assert!(n.fold.whole().is_none() && n.roles.connection && !n.roles.user_or_path);
        assert_eq!(Name::of("sec-websocket-user").roles, Roles::default());
    }

    proptest::proptest! {
        /// Any name made of the role words' letters: the role words by last letter are the
        /// lists', for a name held whole and for one past FOLD_MAX (read from its end).
        #[test]
        fn role_words_of_any_name(
            name in proptest::collection::vec(proptest::sample::select(
                b"userloginasrtcmpdyhfxlxontgpi".to_vec()), 0..20),
            pad in 0usize..60,
        ) {
            proptest::prop_assert_eq!(Roles::of(&name), roles_by_lists(&name));
            let long: Vec<u8> = std::iter::repeat_n(b'a', pad).chain(name.iter().copied()).collect();
            let text = std::str::from_utf8(&long).unwrap_or("");
            let expect = if text.starts_with("sec") { Roles::default() } else { roles_by_lists(&long) };
            proptest::prop_assert_eq!(Name::of(text).roles, expect);
        }

        /// The families by first letter are the list's.
        #[test]
        fn claim_families_of_any_name(
            name in proptest::collection::vec(proptest::sample::select(
                b"oidcamznuthrqeslpfx".to_vec()), 0..20),
        ) {
            let by_list = CLAIM_FAMILIES.iter().any(|f| name.starts_with(f));
            proptest::prop_assert_eq!(claim_family(&name), by_list);
        }

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
