//! Header names folded, and the classes of names a folded name falls in: the one folding
//! (letters lower-cased, every byte that is no letter or digit left out, so `X_Verified-Name`,
//! `x.verified.name` and `XVerifiedName` are one name) and the role words and families
//! [`super::names`] (the app's names), [`super::forwarded`] (forwarding claims) and
//! [`super::target`] (method overrides) judge a name by. A [`Name`] is worked out once per
//! header.

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
pub(super) fn environment_word(core: &[u8]) -> bool {
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
pub(super) const USER_AND_PATH_ENDS: [&[u8]; 16] = [
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
pub(super) const CLAIM_FAMILIES: [&[u8]; 11] = [
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
pub(super) const CONNECTION_ENDS: [&[u8]; 10] = [
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
    pub(super) fn of(tail: &[u8]) -> Roles {
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
pub(super) fn browser_own(start: &[u8]) -> bool {
    start.starts_with(b"sec")
}

/// Does `core` (a folded name, an `x` taken off) start with a family of auth proxies' claims
/// ([`CLAIM_FAMILIES`])? Only the families of its first letter are compared.
pub(super) fn claim_family(core: &[u8]) -> bool {
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
pub(super) fn environment_of(n: &Name) -> bool {
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
pub(super) fn environment_folded(folded: &[u8]) -> bool {
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
pub(super) fn environment(name: &[u8]) -> bool {
    let folded: Vec<u8> = name
        .iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_lowercase)
        .collect();
    environment_folded(&folded)
}

/// A byte of a header name folded: a letter in lower case, a digit as it is, [`DASH`] for
/// `-` (left out), [`INVALID`] for any other byte (outside the grammar).
pub(super) const FOLD: [u8; 256] = {
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
pub(super) const INVALID: u8 = 0xff;
pub(super) const DASH: u8 = 0;

/// The longest name folded on the stack; a longer one is judged by its start and, for the
/// role words, by its end (no exact environment name is that long).
pub(super) const FOLD_MAX: usize = 40;

/// A name folded on the stack (letters in lower case and digits, up to [`FOLD_MAX`] of them).
#[derive(Clone, Copy)]
pub struct Fold {
    pub(super) buf: [u8; FOLD_MAX],
    pub(super) len: usize,
    /// Longer than [`FOLD_MAX`] (only its start is kept).
    pub(super) long: bool,
    /// A byte outside the header-name grammar.
    pub(super) invalid: bool,
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
pub(super) const TAIL: usize = 16;

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
