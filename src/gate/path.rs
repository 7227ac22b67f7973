//! Path normalisation for route matching. The goal is that no spelling of a path lets a request
//! reach a gated route's handler while verigate matches it against another route: percent
//! escapes (also double ones), dot segments, repeated slashes, `;params` and trailing slashes all
//! fold to one canonical form. Encoded separators and control characters are refused outright,
//! because upstream stacks disagree on what they mean.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("malformed percent escape")]
    BadEscape,
    #[error("encoded path separator or control character")]
    EncodedSeparator,
    #[error("backslash or control character in path")]
    BadCharacter,
    #[error("path does not start with /")]
    NotAbsolute,
}

const MAX_ROUNDS: usize = 4;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One round of percent-decoding. Returns None when there was nothing to decode.
fn decode_round(input: &[u8]) -> Result<Option<Vec<u8>>, PathError> {
    if !input.contains(&b'%') {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            let (h, l) = match (input.get(i + 1), input.get(i + 2)) {
                (Some(&h), Some(&l)) => (hex(h), hex(l)),
                _ => return Err(PathError::BadEscape),
            };
            let (Some(h), Some(l)) = (h, l) else {
                return Err(PathError::BadEscape);
            };
            let b = h * 16 + l;
            if b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f {
                return Err(PathError::EncodedSeparator);
            }
            out.push(b);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    Ok(Some(out))
}

/// Canonical form of a request path (without the query): fully percent-decoded, dot segments
/// resolved, empty segments and `;params` removed, no trailing slash (except `/`).
/// A path already in canonical form is returned as it is, without a copy.
pub fn normalize(raw: &str) -> Result<std::borrow::Cow<'_, str>, PathError> {
    if is_canonical(raw) {
        return Ok(std::borrow::Cow::Borrowed(raw));
    }
    normalize_slow(raw).map(std::borrow::Cow::Owned)
}

/// Plain ASCII segments, none empty or a dot segment, nothing to decode or strip: what
/// `normalize_slow` would give back unchanged (the common case, checked without allocating).
fn is_canonical(raw: &str) -> bool {
    if raw == "/" {
        return true;
    }
    let b = raw.as_bytes();
    if b.first() != Some(&b'/') || b.last() == Some(&b'/') {
        return false;
    }
    let plain =
        |c: &u8| (0x21..0x7f).contains(c) && !matches!(c, b'%' | b'\\' | b';' | b'?' | b'#');
    b.iter().all(plain)
        && raw[1..]
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

fn normalize_slow(raw: &str) -> Result<String, PathError> {
    let raw = raw.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut bytes = raw.as_bytes().to_vec();
    for round in 0..=MAX_ROUNDS {
        if bytes.iter().any(|&b| b == b'\\' || b < 0x20 || b == 0x7f) {
            return Err(PathError::BadCharacter);
        }
        match decode_round(&bytes)? {
            None => break,
            Some(next) if round == MAX_ROUNDS => {
                let _ = next;
                return Err(PathError::BadEscape);
            }
            Some(next) => bytes = next,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut segments: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{is_canonical, normalize, normalize_slow};

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        let pieces = [
            "a", "B", ".", "..", "", "%73", "%2e", ";x", "x;y", "~", "-_", "\\", "?q", "#f", "한",
            "a.b", "...", "%", "\t",
        ];
        let mut checked = 0;
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for tail in ["", "/"] {
                        let raw = format!("/{a}/{b}/{c}{tail}");
                        if is_canonical(&raw) {
                            checked += 1;
                            assert_eq!(normalize_slow(&raw).as_deref(), Ok(raw.as_str()), "{raw}");
                        }
                        assert_eq!(
                            normalize(&raw).map(|c| c.into_owned()),
                            normalize_slow(&raw),
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
            ("//signup", "/signup"),
            ("/./signup", "/signup"),
            ("/x/../signup", "/signup"),
            ("/../../signup", "/signup"),
            ("/%73ignup", "/signup"),
            ("/%2573ignup", "/signup"),
            ("/signup;jsessionid=1", "/signup"),
            ("/signup/;x", "/signup"),
            ("/%2e%2e/signup", "/signup"),
            ("/x/%2e%2e/signup", "/signup"),
            ("/signup?x=/open", "/signup"),
            ("/", "/"),
            ("/%ED%95%9C", "/한"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_ambiguous() {
        for raw in [
            "/sign%2fup",
            "/open%2F..%2Fsignup",
            "/signup%5c",
            "/a\\b",
            "/a%00",
            "/a%zz",
            "/a%2",
            "signup",
            "/%25252525252573",
        ] {
            assert!(normalize(raw).is_err(), "{raw} accepted");
        }
    }
}
