//! The one reading of a request path. verigate decides on the canonical form computed here and
//! forwards the path exactly as the client sent it, so the rules are chosen such that every
//! reading an app server or router may make of the forwarded bytes lands on a route at most as
//! protected as the one verigate matched:
//!
//! - Anything whose meaning depends on the reader is refused (`400 bad_path`): dot segments in
//!   any spelling (`.`, `..`, `%2e`, `%2E`, `..;`, `.;x`), a leading `//` (a host to some
//!   readers), double percent-encoding (`%25`
//!   followed by two hex digits), encoded separators (`%2F`, `%5C`), escaped delimiters that
//!   end the path for a reader that decodes before it splits (`%3F` `?`, `%23` `#`: h3 on
//!   Node reads `/signup%3F` as `/signup`), backslashes, control
//!   characters, raw bytes outside visible ASCII, fragments, malformed escapes, and escapes
//!   that do not decode to UTF-8 (overlong `%c0%ae`).
//! - What remains is folded for matching only: one round of percent-decoding, repeated slashes,
//!   `;params`, a trailing slash (and letter case, in [`super`]). Each fold can only
//!   make verigate match a more specific route than a reader that does not fold: the canonical
//!   form keeps every segment the client sent.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("malformed percent escape")]
    BadEscape,
    #[error("encoded path separator or control character")]
    EncodedSeparator,
    /// `%3F` or `%23`: a reader that decodes before it splits ends the path there.
    #[error("encoded query or fragment delimiter")]
    EncodedDelimiter,
    #[error("backslash, control character, fragment or raw byte outside visible ASCII")]
    BadCharacter,
    #[error("path does not start with /")]
    NotAbsolute,
    /// `//host/path` is a network-path reference: the JDK's HttpServer (java.net.URI) reads
    /// `host` as an authority and routes on `/path`.
    #[error("path starts with //")]
    NetworkPath,
    #[error("dot segment")]
    DotSegment,
    #[error("double percent-encoding")]
    DoubleEncoding,
    #[error("percent-escapes that are not UTF-8")]
    NotUtf8,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Bytes a request path may carry as they are: visible ASCII less `\` and `#`.
fn plain_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && b != b'\\' && b != b'#'
}

/// One round of percent-decoding, refusing escapes of separators and control characters.
fn decode(input: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'%' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let (Some(h), Some(l)) = (
            input.get(i + 1).copied().and_then(hex),
            input.get(i + 2).copied().and_then(hex),
        ) else {
            return Err(PathError::BadEscape);
        };
        let b = h * 16 + l;
        if b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f {
            return Err(PathError::EncodedSeparator);
        }
        // The other gen-delims of RFC 3986 end no reader's path: `:`, `@`, `[`, `]` mean
        // something only in an authority, and `;` is cut below as readers cut it.
        if b == b'?' || b == b'#' {
            return Err(PathError::EncodedDelimiter);
        }
        out.push(b);
        i += 3;
    }
    Ok(out)
}

/// Whether `b` holds a percent escape (`%` and two hex digits).
pub fn has_escape(b: &[u8]) -> bool {
    b.windows(3)
        .any(|w| w[0] == b'%' && hex(w[1]).is_some() && hex(w[2]).is_some())
}

/// The part of a segment routers match on: `;params` cut off (Tomcat, Spring, Jetty).
fn segment_core(seg: &str) -> &str {
    seg.split(';').next().unwrap_or("")
}

/// Canonical form of a request path (a query after `?` is ignored): refused as described in
/// the module's documentation, else decoded once, with empty segments, `;params` and a
/// trailing slash removed (`/` stays `/`). A path already canonical is returned as it is.
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let path = raw.split_once('?').map_or(raw, |(p, _)| p);
    if is_canonical(path) {
        return Ok(Cow::Borrowed(path));
    }
    normalize_slow(path).map(Cow::Owned)
}

/// Plain ASCII segments, none empty or a dot segment, nothing to decode or strip: what
/// `normalize_slow` gives back unchanged (the common case, checked without allocating).
fn is_canonical(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let b = path.as_bytes();
    if b.first() != Some(&b'/') || b.last() == Some(&b'/') {
        return false;
    }
    // One walk over the bytes after the first `/`: each byte plain, each segment (ended by a
    // `/` or the end) neither empty nor a dot segment.
    let mut start = 1;
    for i in 1..=b.len() {
        let c = b.get(i).copied().unwrap_or(b'/');
        if c == b'/' {
            if matches!(b.get(start..i), Some(b"" | b"." | b"..") | None) {
                return false;
            }
            start = i + 1;
        } else if !plain_byte(c) || matches!(c, b'%' | b';' | b'?') {
            return false;
        }
    }
    true
}

fn normalize_slow(path: &str) -> Result<String, PathError> {
    let raw = path.as_bytes();
    if raw.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    if raw.starts_with(b"//") {
        return Err(PathError::NetworkPath);
    }
    if !raw.iter().all(|&b| plain_byte(b)) {
        return Err(PathError::BadCharacter);
    }
    // Dot segments are refused as sent and as decoded (`%2e%2e`, `.%2E`).
    let dot = |s: &str| matches!(segment_core(s), "." | "..");
    if path.split('/').any(dot) {
        return Err(PathError::DotSegment);
    }
    let decoded = decode(raw)?;
    // What decodes to another escape (`%2573`, `%25%37%33`) reads differently to an app that
    // decodes twice.
    if has_escape(&decoded) {
        return Err(PathError::DoubleEncoding);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)?;
    if decoded.split('/').any(dot) {
        return Err(PathError::DotSegment);
    }
    let mut out = String::with_capacity(decoded.len());
    for seg in decoded
        .split('/')
        .map(segment_core)
        .filter(|s| !s.is_empty())
    {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// `return_to` is accepted only as a same-site path: `/...`, never `//`, `/\`, a scheme or
/// control characters (also once percent-decoded).
pub fn safe_return_to(raw: Option<&str>) -> Option<String> {
    let rt = match raw {
        None | Some("") => return Some("/".into()),
        Some(r) => r,
    };
    if rt.len() > 2048 || !rt.starts_with('/') {
        return None;
    }
    let decoded: String = percent_encoding::percent_decode_str(rt)
        .decode_utf8_lossy()
        .into_owned();
    for s in [rt, decoded.as_str()] {
        if s.starts_with("//")
            || s.starts_with("/\\")
            || s.contains('\\')
            || s.chars().any(|c| c.is_control())
        {
            return None;
        }
    }
    Some(rt.to_string())
}

#[cfg(test)]
mod tests {
    use super::{is_canonical, normalize, normalize_slow, PathError};

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        let pieces = [
            "a", "B", ".", "..", "", "%73", "%2e", ";x", "x;y", "~", "-_", "\\", "?q", "#f", "한",
            "a.b", "...", "%", "\t", "%25", "%2573",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for tail in ["", "/"] {
                        let raw = format!("/{a}/{b}/{c}{tail}");
                        let path = raw.split_once('?').map_or(raw.as_str(), |(p, _)| p);
                        if is_canonical(path) {
                            checked += 1;
                            assert_eq!(normalize_slow(path).as_deref(), Ok(path), "{raw}");
                        }
                        assert_eq!(
                            normalize(&raw).map(|c| c.into_owned()),
                            normalize_slow(path),
                            "{raw}"
                        );
                    }
                }
            }
        }
        assert!(checked > 100, "only {checked} canonical samples");
        assert!(is_canonical("/"));
        assert!(!is_canonical(""));
    }

    #[test]
    fn canonical_forms() {
        for (raw, want) in [
            ("/signup", "/signup"),
            ("/signup/", "/signup"),
            ("/signup//", "/signup"),
            ("/a//signup", "/a/signup"),
            ("/%73ignup", "/signup"),
            ("/signup;jsessionid=1", "/signup"),
            ("/signup/;x", "/signup"),
            ("/;x/signup", "/signup"),
            ("/signup?x=/open/../%2f", "/signup"),
            ("/", "/"),
            ("/%ED%95%9C", "/한"),
            ("/50%25", "/50%"),
            ("/a.b/...", "/a.b/..."),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_what_readers_disagree_on() {
        use PathError::*;
        for (raw, why) in [
            ("/sign%2fup", EncodedSeparator),
            ("/open%2F..%2Fsignup", EncodedSeparator),
            ("/signup%5c", EncodedSeparator),
            ("/signup%3F", EncodedDelimiter),
            ("/signup%3fx", EncodedDelimiter),
            ("/signup%3F/x", EncodedDelimiter),
            ("/signup%3F?a=1", EncodedDelimiter),
            ("/signup%23", EncodedDelimiter),
            ("/open/%23/signup", EncodedDelimiter),
            ("/a\\b", BadCharacter),
            ("/a%00", EncodedSeparator),
            ("/a%zz", BadEscape),
            ("/a%2", BadEscape),
            ("signup", NotAbsolute),
            ("/%2573ignup", DoubleEncoding),
            ("/%252e%252e/signup", DoubleEncoding),
            ("/%25%37%33ignup", DoubleEncoding),
            ("/checkout/..", DotSegment),
            ("/checkout/.", DotSegment),
            ("/./signup", DotSegment),
            ("/x/../signup", DotSegment),
            ("/checkout/%2e%2e", DotSegment),
            ("/checkout/%2E%2e/", DotSegment),
            ("/checkout/.%2E", DotSegment),
            ("/checkout/..;/admin", DotSegment),
            ("/checkout/.;x", DotSegment),
            ("/checkout/%2e%2e%3Bx", DotSegment),
            ("/checkout/%c0%ae%c0%ae", NotUtf8),
            ("/a%ff", NotUtf8),
            ("/a b", BadCharacter),
            ("/a#b", BadCharacter),
            ("//signup", NetworkPath),
            ("//host/signup", NetworkPath),
            ("///signup", NetworkPath),
            ("/한", BadCharacter),
        ] {
            assert_eq!(normalize(raw).map(|c| c.into_owned()), Err(why), "{raw}");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::normalize;
    use proptest::prelude::*;

    /// RFC 3986 §5.2.4 remove_dot_segments, as a reference reader.
    fn remove_dot_segments(path: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        let n = segs.len();
        for (i, s) in segs.into_iter().enumerate() {
            match s {
                "." => {
                    if i + 1 == n {
                        out.push("");
                    }
                }
                ".." => {
                    out.pop();
                    if i + 1 == n {
                        out.push("");
                    }
                }
                s => out.push(s),
            }
        }
        format!("/{}", out.join("/"))
    }

    fn percent_decode(s: &str) -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just("..;x".to_string()),
            Just("signup".to_string()),
            Just("checkout".to_string()),
            Just("%73ignup".to_string()),
            Just("%2573".to_string()),
            Just("a;b".to_string()),
            Just("%25".to_string()),
            Just("%c0%ae".to_string()),
            Just("%ED%95%9C".to_string()),
            Just("a%3Fb".to_string()),
            Just("%23".to_string()),
            Just("a%3a%40%5B%5d".to_string()),
            "[a-zA-Z0-9._~;%-]{0,6}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        (prop::collection::vec(segment(), 0..6), any::<bool>()).prop_map(|(segs, slash)| {
            let mut p = format!("/{}", segs.join("/"));
            if slash {
                p.push('/');
            }
            p
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The one walk of `is_canonical` decides as its two passes (bytes, then segments) did.
        #[test]
        fn is_canonical_in_one_walk(
            p in proptest::collection::vec(proptest::sample::select(
                vec!['/', '.', 'a', '%', ';', '?', '#', ' ', '\\']), 0..12),
        ) {
            let p: String = p.into_iter().collect();
            let b = p.as_bytes();
            let two_passes = p == "/"
                || (b.first() == Some(&b'/')
                    && b.last() != Some(&b'/')
                    && b.iter().all(|&c| super::plain_byte(c) && !matches!(c, b'%' | b';' | b'?'))
                    && p[1..].split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
            prop_assert_eq!(super::is_canonical(&p), two_passes, "{:?}", p);
        }

        #[test]
        fn canonical_form_is_a_fixed_point(p in path()) {
            if let Ok(c) = normalize(&p) {
                let c = c.into_owned();
                // Idempotent, where the canonical form is still a valid request path.
                if c.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'%') {
                    prop_assert_eq!(normalize(&c).map(|x| x.into_owned()), Ok(c.clone()));
                }
            }
        }

        #[test]
        fn accepted_paths_mean_the_same_to_every_reader(p in path()) {
            if let Ok(c) = normalize(&p) {
                // A reader that resolves dot segments before or after decoding sees exactly
                // the segments verigate matched on (less empties and ;params, which only
                // ever make verigate's reading more specific).
                let fold = |s: &str| -> String {
                    let mut out = String::new();
                    for seg in s.split('/').map(|x| x.split(';').next().unwrap_or("")) {
                        if !seg.is_empty() {
                            out.push('/');
                            out.push_str(seg);
                        }
                    }
                    if out.is_empty() { "/".into() } else { out }
                };
                // A reader that decodes, then ends the path at `?` or `#` (h3), sees it too.
                let decoded = percent_decode(&p);
                let cut = decoded.split(['?', '#']).next().unwrap_or("");
                prop_assert_eq!(fold(&remove_dot_segments(cut)), c.as_ref());
                let before = fold(&percent_decode(&remove_dot_segments(&p)));
                let after = fold(&remove_dot_segments(&percent_decode(&p)));
                prop_assert_eq!(&before, c.as_ref());
                prop_assert_eq!(&after, c.as_ref());
                // A reader that decodes once more sees the same path.
                prop_assert!(!super::has_escape(c.as_bytes()));
                prop_assert_eq!(percent_decode(&c), c.as_ref());
            }
        }
    }
}
