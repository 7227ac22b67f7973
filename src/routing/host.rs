//! Hosts: the one grammar verigate accepts for a `Host` header, an HTTP/2 `:authority`, an
//! absolute-form target's authority and the hosts of its config, and the one reading of a
//! request's host that routes match.
//!
//! ```text
//! authority = host [ ":" port ]
//! host      = dns-name / ipv4 / "[" ipv6 "]"
//! dns-name  = label *( "." label )      ; 1-253 bytes, no trailing dot
//! label     = 1-63 of ALPHA / DIGIT / "-", not starting or ending with "-";
//!             the last label starts with a letter (so a name is never read as a number)
//! ipv4      = four decimal octets 0-255, without leading zeros
//! ipv6      = an IPv6 address in its canonical text (RFC 5952; any letter case), no zone
//! port      = 1-65535 in decimal, without leading zeros
//! ```
//!
//! Anything else (whitespace, `,`, `@`, `_`, `%`, `\`, userinfo, a trailing dot, a zone id,
//! a bare IPv6 address, non-ASCII) is no host. One spelling per host: an app stack that trims,
//! splits, unbrackets or decodes a host reads the same name verigate routed on. Letter case is
//! the only freedom, and matching ignores it.

/// An authority that passed [`parse_authority`]: its host (brackets kept for IPv6; letter case
/// as sent) and its port, if it named one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Why a text is no authority (or no host) of the grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("not a host: a DNS name (letters, digits, - and .), an IPv4 address or a bracketed IPv6 address")]
    Host,
    #[error("not a port: 1 to 65535 in decimal, without leading zeros")]
    Port,
}

/// `host[:port]` of the grammar above, or why not. Allocates nothing.
pub fn parse_authority(text: &[u8]) -> Result<Authority<'_>, HostError> {
    let (host, port) = if text.first() == Some(&b'[') {
        let close = text
            .iter()
            .position(|b| *b == b']')
            .ok_or(HostError::Host)?;
        match &text[close + 1..] {
            [] => (&text[..=close], None),
            [b':', port @ ..] => (&text[..=close], Some(port)),
            _ => return Err(HostError::Host),
        }
    } else {
        match text.iter().rposition(|b| *b == b':') {
            Some(i) => (&text[..i], Some(&text[i + 1..])),
            None => (text, None),
        }
    };
    if !is_host(host) {
        return Err(HostError::Host);
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or(HostError::Port)?),
    };
    // Only ASCII got through `is_host`.
    let host = std::str::from_utf8(host).map_err(|_| HostError::Host)?;
    Ok(Authority { host, port })
}

/// A host of the grammar, without a port.
pub fn is_host(host: &[u8]) -> bool {
    match host {
        [b'[', inner @ .., b']'] => is_ipv6(inner),
        _ => is_ipv4(host) || is_dns_name(host),
    }
}

/// A port of the grammar: 1 to 65535 in decimal, without leading zeros.
pub fn parse_port(p: &[u8]) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || p[0] == b'0' || !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = p.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    u16::try_from(n).ok()
}

/// A DNS name as the grammar has it (see the module).
pub fn is_dns_name(name: &[u8]) -> bool {
    name.len() <= 253
        && labels(name)
        && name
            .rsplit(|b| *b == b'.')
            .next()
            .and_then(|l| l.first())
            .is_some_and(u8::is_ascii_alphabetic)
}

/// One or more labels (1 to 63 letters, digits and `-`, not starting or ending with `-`)
/// joined by single dots.
fn labels(name: &[u8]) -> bool {
    name.split(|b| *b == b'.').all(|label| {
        (1..=63).contains(&label.len())
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && label[0] != b'-'
            && label[label.len() - 1] != b'-'
    })
}

fn is_ipv4(host: &[u8]) -> bool {
    let mut n = 0;
    for octet in host.split(|b| *b == b'.') {
        n += 1;
        let ok = (1..=3).contains(&octet.len())
            && octet.iter().all(u8::is_ascii_digit)
            && (octet.len() == 1 || octet[0] != b'0')
            && octet.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0')) <= 255;
        if !ok {
            return false;
        }
    }
    n == 4
}

/// An IPv6 address written as Rust (RFC 5952) writes it, in any letter case: one spelling
/// per address, no zone id.
fn is_ipv6(inner: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(inner) else {
        return false;
    };
    if text.len() > 45
        || !text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return false;
    }
    let Ok(addr) = text.parse::<std::net::Ipv6Addr>() else {
        return false;
    };
    let mut canon = [0u8; 45];
    let mut w = std::io::Cursor::new(&mut canon[..]);
    if std::io::Write::write_fmt(&mut w, format_args!("{addr}")).is_err() {
        return false;
    }
    let len = usize::try_from(w.position()).unwrap_or(0);
    canon[..len].eq_ignore_ascii_case(inner)
}

/// A route's (or a public URL's) host: exact, or `*.example.com` (any name under it, one
/// label or more; not `example.com` itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// The suffix with its leading dot (`.example.com`).
    Under(String),
}

/// Why a host pattern is refused (config validation names the key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    #[error("`{0}` is not a host name (letters, digits, - and . with no trailing dot; an IPv4 or bracketed IPv6 address; or *.name for the names under it; no port)")]
    NotAHost(String),
}

impl HostPattern {
    /// `shop.example.com` or `*.example.com` (a DNS name of the grammar after `*.`), an IPv4
    /// address or a bracketed IPv6 address: the host grammar, without a port. Any letter case
    /// (kept in lower case).
    pub fn parse(text: &str) -> Result<HostPattern, HostPatternError> {
        let bad = || HostPatternError::NotAHost(text.to_string());
        let lower = text.to_ascii_lowercase();
        match lower.strip_prefix("*.") {
            Some(rest) if is_dns_name(rest.as_bytes()) => {
                Ok(HostPattern::Under(format!(".{rest}")))
            }
            Some(_) => Err(bad()),
            None if is_host(lower.as_bytes()) => Ok(HostPattern::Exact(lower)),
            None => Err(bad()),
        }
    }

    /// Does `host` (as [`request_host`] reads it: no port, no trailing dot; any case) match?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Under(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && labels(&host.as_bytes()[..host.len() - suffix.len()])
            }
        }
    }

    /// Every host `other` matches is matched by `self` too.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (_, HostPattern::Exact(h)) => self.matches(h),
            (HostPattern::Under(a), HostPattern::Under(b)) => b.ends_with(a.as_str()),
            (HostPattern::Exact(_), HostPattern::Under(_)) => false,
        }
    }

    pub fn as_written(&self) -> String {
        match self {
            HostPattern::Exact(h) => h.clone(),
            HostPattern::Under(s) => format!("*{s}"),
        }
    }
}

/// The host of an authority the gate has let through (`Host` header value or a URI's
/// authority): its port taken off; IPv6 literals keep their brackets. Text outside the
/// grammar comes back as it is (and matches no route pattern).
pub fn host_of(authority: &str) -> &str {
    parse_authority(authority.as_bytes())
        .map(|a| a.host)
        .unwrap_or(authority)
}

/// The one host a request is routed by: its Host header, or (HTTP/2 without one, HTTP/1.0)
/// the authority of its target. The gate has already refused a request whose Host or
/// authority is outside the grammar, and one whose Host and target authority disagree.
pub fn request_host(req: &http::request::Parts) -> Option<&str> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri.authority()?.as_str(),
    };
    let h = host_of(raw);
    (!h.is_empty()).then_some(h)
}

/// Where [`request_host`] found a request's host: in its Host header or in its target's
/// authority, of which it is the start. Found once (`find`, one parse); read back (`get`)
/// without parsing again, while the request's head is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAt {
    header: bool,
    len: usize,
}

impl HostAt {
    /// [`request_host`], and where it was found.
    pub fn find(req: &http::request::Parts) -> Option<(&str, HostAt)> {
        let (raw, header) = match req.headers.get(http::header::HOST) {
            Some(h) => (h.to_str().ok()?, true),
            None => (req.uri.authority()?.as_str(), false),
        };
        let h = host_of(raw);
        (!h.is_empty()).then_some((
            h,
            HostAt {
                header,
                len: h.len(),
            },
        ))
    }

    /// The host `host` of an authority of the grammar ([`parse_authority`]) that is the
    /// request's Host header.
    pub fn in_header(host: &str) -> HostAt {
        HostAt {
            header: true,
            len: host.len(),
        }
    }

    /// The same, of the authority of the request's target (no Host header).
    pub fn in_target(host: &str) -> HostAt {
        HostAt {
            header: false,
            len: host.len(),
        }
    }

    /// Found in the Host header (not in the target, which a rewritten target loses).
    pub fn is_in_header(self) -> bool {
        self.header
    }

    /// The host found, read again from the request it was found in, as bytes, not checked
    /// again for text (for a comparison with a host that is text, which bytes that are not
    /// text never equal).
    pub fn get_bytes(self, req: &http::request::Parts) -> Option<&[u8]> {
        let host = match self.header {
            true => req.headers.get(http::header::HOST),
            false => None,
        };
        self.get_bytes_of(host, &req.uri)
    }

    /// [`HostAt::get_bytes`] of a request whose Host header (`headers.get(HOST)`, read
    /// before and kept) is `host` and whose target is `uri`.
    pub fn get_bytes_of<'a>(
        self,
        host: Option<&'a http::HeaderValue>,
        uri: &'a http::Uri,
    ) -> Option<&'a [u8]> {
        let raw = if self.header {
            host?.as_bytes()
        } else {
            uri.authority()?.as_str().as_bytes()
        };
        raw.get(..self.len)
    }

    /// [`HostAt::get_bytes_of`] as text, as [`HostAt::get`].
    pub fn get_of<'a>(
        self,
        host: Option<&'a http::HeaderValue>,
        uri: &'a http::Uri,
    ) -> Option<&'a str> {
        std::str::from_utf8(self.get_bytes_of(host, uri)?).ok()
    }

    /// [`HostAt::get_bytes`] as text (only the host's bytes are checked: the port after it is
    /// no part of it).
    pub fn get(self, req: &http::request::Parts) -> Option<&str> {
        std::str::from_utf8(self.get_bytes(req)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_found_is_read_back_as_request_host_reads_it() {
        for (host, target) in [
            (Some("shop.example"), "/a"),
            (Some("Shop.Example:8443"), "/a"),
            (Some("[::1]:80"), "/"),
            (Some("127.0.0.1"), "http://127.0.0.1/x"),
            (None, "http://shop.example:81/x"),
            (None, "/x"),
            (Some(""), "/x"),
        ] {
            let mut b = http::Request::builder().uri(target);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            let (req, ()) = b.body(()).unwrap().into_parts();
            let found = HostAt::find(&req);
            assert_eq!(
                found.map(|(h, _)| h),
                request_host(&req),
                "{host:?} {target}"
            );
            assert_eq!(
                found.and_then(|(_, at)| at.get(&req)),
                request_host(&req),
                "{host:?} {target}"
            );
            assert_eq!(
                found.and_then(|(_, at)| at.get_bytes(&req)),
                request_host(&req).map(str::as_bytes),
                "{host:?} {target}"
            );
        }
    }

    #[test]
    fn exact_and_wildcard() {
        let shop = HostPattern::parse("Shop.Example.com").unwrap();
        assert_eq!(shop, HostPattern::Exact("shop.example.com".into()));
        assert!(shop.matches("shop.example.com"));
        assert!(shop.matches("SHOP.example.COM"));
        assert!(!shop.matches("shop.example.com.evil"));
        assert!(!shop.matches("xshop.example.com"));
        let any = HostPattern::parse("*.example.com").unwrap();
        assert!(any.matches("a.example.com"));
        assert!(any.matches("a-b.c1.example.com"));
        assert!(any.matches("1.example.com"));
        for odd in [
            "a..example.com",
            "-.example.com",
            "a-.example.com",
            ".example.com",
            "a b.example.com",
            "c_d.example.com",
        ] {
            assert!(!any.matches(odd), "{odd}");
        }
        assert!(any.matches("a.b.Example.com"));
        assert!(!any.matches("example.com"));
        assert!(!any.matches("aexample.com"));
        assert!(any.covers(&shop));
        assert!(!shop.covers(&any));
        assert!(any.covers(&HostPattern::parse("*.b.example.com").unwrap()));
        assert!(!HostPattern::parse("*.b.example.com").unwrap().covers(&any));
        for bad in [
            "",
            "*",
            "*.",
            "shop.example.com:443",
            "shop.example.com.",
            " shop.example.com",
            "a/b",
            "a b",
            "a..b",
            "a_b.example.com",
            "*.*.x",
            "x.*.y",
            "é.x",
            "[::1%eth0]",
            "::1",
            "1.2.3",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(HostPattern::parse("[::1]").is_ok());
        assert!(HostPattern::parse("127.0.0.1")
            .unwrap()
            .matches("127.0.0.1"));
    }

    #[test]
    fn hosts_of_authorities() {
        assert_eq!(host_of("shop.example.com:8080"), "shop.example.com");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
    }

    #[test]
    fn the_grammar() {
        let ok = |t: &str, host: &str, port: Option<u16>| {
            assert_eq!(
                parse_authority(t.as_bytes()),
                Ok(Authority { host, port }),
                "{t}"
            )
        };
        ok("shop.example", "shop.example", None);
        ok("Shop.Example:8080", "Shop.Example", Some(8080));
        ok("localhost:65535", "localhost", Some(65535));
        ok("a-b.c1.example", "a-b.c1.example", None);
        ok("127.0.0.1:1", "127.0.0.1", Some(1));
        ok("0.0.0.0", "0.0.0.0", None);
        ok("255.255.255.255", "255.255.255.255", None);
        ok("[::1]", "[::1]", None);
        ok("[2001:db8::1]:443", "[2001:db8::1]", Some(443));
        ok("[2001:DB8::A]", "[2001:DB8::A]", None);
        ok("[::ffff:1.2.3.4]", "[::ffff:1.2.3.4]", None);
        let long = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long.len(), 253);
        ok(&long, &long, None);
        for bad in [
            "",
            ":80",
            "shop.example:",
            "shop.example:0",
            "shop.example:080",
            "shop.example:65536",
            "shop.example:123456",
            "shop.example:+80",
            "shop.example:80:80",
            "shop.example.",
            "shop.example.:80",
            ".shop.example",
            "shop..example",
            "-shop.example",
            "shop-.example",
            "shop_x.example",
            "shop.example,admin.example",
            "shop.example admin.example",
            " shop.example",
            "shop.example\t",
            "shop.example\\admin",
            "user@shop.example",
            "shop.example@admin.example",
            "shop%2eexample",
            "shop.example/x",
            "shop.example?x",
            "shop.example#x",
            "ädmin.example",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "256.1.1.1",
            "0x7f.0.0.1",
            "127.1",
            "2130706433",
            "a.123",
            "::1",
            "[::1",
            "::1]",
            "[::1]x",
            "[::1]:",
            "[fe80::1%25eth0]",
            "[fe80::1%eth0]",
            "[0:0::1]",
            "[::0001]",
            "[v1.x]",
            "[127.0.0.1]",
            "[shop.example]",
        ] {
            assert!(parse_authority(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse_authority(format!("{long}a").as_bytes()).is_err());
        assert!(parse_authority(format!("{}.x", "a".repeat(64)).as_bytes()).is_err());
    }

    proptest::proptest! {
        /// Whatever bytes: an accepted authority is ASCII letters, digits, `-`, `.`, `:`, `[`
        /// and `]` only, its host is a prefix of it, and the port is what its digits say.
        #[test]
        fn accepted_authorities_are_plain(bytes in proptest::collection::vec(proptest::sample::select(
            b"aZ09-.:[]_@%, \\/\t\xc3\xa4f".to_vec()), 0..24)) {
            if let Ok(a) = parse_authority(&bytes) {
                proptest::prop_assert!(bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(b)));
                proptest::prop_assert!(bytes.starts_with(a.host.as_bytes()));
                let rest = &bytes[a.host.len()..];
                match a.port {
                    None => proptest::prop_assert!(rest.is_empty()),
                    Some(p) => {
                        let want = format!(":{p}");
                        proptest::prop_assert_eq!(rest, want.as_bytes());
                    }
                }
                proptest::prop_assert!(!a.host.ends_with('.'));
            }
        }

        /// Names built of the grammar's parts are accepted exactly when the rules say.
        #[test]
        fn dns_names_by_their_rules(labels in proptest::collection::vec("[a-z0-9-]{0,5}", 1..5), port in proptest::option::of(0u32..70000)) {
            let name = labels.join(".");
            let good_labels = labels.iter().all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'));
            let letter_last = labels.last().and_then(|l| l.bytes().next()).is_some_and(|b| b.is_ascii_alphabetic());
            let text = match port { Some(p) => format!("{name}:{p}"), None => name.clone() };
            let want = good_labels && letter_last && port.is_none_or(|p| (1..=65535).contains(&p));
            proptest::prop_assert_eq!(parse_authority(text.as_bytes()).is_ok(), want, "{}", text);
        }

        /// Every IPv4 address in its dotted-quad spelling is accepted; every IPv6 address in
        /// its canonical spelling, bracketed, too.
        #[test]
        fn ip_literals(v4 in proptest::num::u32::ANY, v6 in proptest::num::u128::ANY, port in 1u16..) {
            let v4 = std::net::Ipv4Addr::from(v4).to_string();
            proptest::prop_assert_eq!(parse_authority(v4.as_bytes()), Ok(Authority { host: &v4, port: None }));
            let v6 = format!("[{}]", std::net::Ipv6Addr::from(v6));
            let with_port = format!("{v6}:{port}");
            proptest::prop_assert_eq!(parse_authority(with_port.as_bytes()), Ok(Authority { host: &v6, port: Some(port) }));
        }
    }
}
