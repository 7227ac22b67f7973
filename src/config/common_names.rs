//! The header names most requests carry, numbered, with each name folded as `gate::names`
//! compares names ([`super::folded`]): a common name is then judged by one bit of
//! `IdentityHeaders::common_kept`, worked out here with the config.

/// Header names that browsers and HTTP clients send on nearly every request, each with its
/// folding: `gate::names` keeps them from any peer, unless the configured identity
/// prefix or assertion name folds over them (which [`common_kept`] works out with the config).
/// Looked up by length, then by name, instead of being folded and judged afresh on every request
/// (`common_names_are_kept_as_the_rules_keep_them` holds them to the rules). Each has its
/// number, its place in [`COMMON_NAMES`] and its bit in [`common_kept`].
pub(crate) fn common(name: &str) -> Option<(u32, &'static [u8])> {
    let found: (u32, &'static [u8]) = match name.len() {
        2 => match name {
            "te" => (0, b"te"),
            _ => return None,
        },
        3 => match name {
            "dnt" => (1, b"dnt"),
            _ => return None,
        },
        4 => match name {
            "host" => (2, b"host"),
            _ => return None,
        },
        5 => match name {
            "range" => (3, b"range"),
            _ => return None,
        },
        6 => match name {
            "accept" => (4, b"accept"),
            "cookie" => (5, b"cookie"),
            "origin" => (6, b"origin"),
            "pragma" => (7, b"pragma"),
            _ => return None,
        },
        7 => match name {
            "referer" => (8, b"referer"),
            _ => return None,
        },
        8 => match name {
            "priority" => (9, b"priority"),
            "if-match" => (10, b"ifmatch"),
            _ => return None,
        },
        9 => match name {
            "sec-ch-ua" => (11, b"secchua"),
            _ => return None,
        },
        10 => match name {
            "user-agent" => (12, b"useragent"),
            "connection" => (13, b"connection"),
            _ => return None,
        },
        12 => match name {
            "content-type" => (14, b"contenttype"),
            _ => return None,
        },
        13 => match name {
            "cache-control" => (15, b"cachecontrol"),
            "authorization" => (16, b"authorization"),
            "if-none-match" => (17, b"ifnonematch"),
            _ => return None,
        },
        14 => match name {
            "sec-fetch-dest" => (18, b"secfetchdest"),
            "sec-fetch-mode" => (19, b"secfetchmode"),
            "sec-fetch-site" => (20, b"secfetchsite"),
            "sec-fetch-user" => (21, b"secfetchuser"),
            "content-length" => (22, b"contentlength"),
            _ => return None,
        },
        15 => match name {
            "accept-encoding" => (23, b"acceptencoding"),
            "accept-language" => (24, b"acceptlanguage"),
            _ => return None,
        },
        16 => match name {
            "sec-ch-ua-mobile" => (25, b"secchuamobile"),
            "x-requested-with" => (26, b"xrequestedwith"),
            _ => return None,
        },
        17 => match name {
            "if-modified-since" => (27, b"ifmodifiedsince"),
            _ => return None,
        },
        18 => match name {
            "sec-ch-ua-platform" => (28, b"secchuaplatform"),
            _ => return None,
        },
        25 => match name {
            "upgrade-insecure-requests" => (29, b"upgradeinsecurerequests"),
            _ => return None,
        },
        _ => return None,
    };
    Some(found)
}

/// Which of [`common`]'s names no identity prefix or assertion name (both folded) folds over:
/// bit `i` for name `i`. Worked out once with the config (`IdentityHeaders::common_kept`), so
/// that a common name is judged by one bit.
pub fn common_kept(prefix_f: &[u8], assertion_f: &[u8]) -> u32 {
    let mut kept = 0;
    for name in COMMON_NAMES {
        if let Some((i, folded)) = common(name) {
            if !folded.starts_with(prefix_f) && folded != assertion_f {
                kept |= 1 << i;
            }
        }
    }
    kept
}

/// [`common`]'s names, in its order (32 at most: one bit each).
pub(crate) const COMMON_NAMES: [&str; 30] = [
    "te",
    "dnt",
    "host",
    "range",
    "accept",
    "cookie",
    "origin",
    "pragma",
    "referer",
    "priority",
    "if-match",
    "sec-ch-ua",
    "user-agent",
    "connection",
    "content-type",
    "cache-control",
    "authorization",
    "if-none-match",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "content-length",
    "accept-encoding",
    "accept-language",
    "sec-ch-ua-mobile",
    "x-requested-with",
    "if-modified-since",
    "sec-ch-ua-platform",
    "upgrade-insecure-requests",
];
