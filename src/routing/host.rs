//! Hosts as routes match them: one reading of a request's host (the Host header, or the
//! authority of a request without one), compared without its port, without a trailing dot and
//! in any letter case, so that `Admin.Example.com.:443` is `admin.example.com`.

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
    #[error("`{0}` is not a host name (letters, digits, - and ., or *.name for the names under it; no port)")]
    NotAHost(String),
}

impl HostPattern {
    /// `shop.example.com` or `*.example.com`, in any case (kept in lower case).
    pub fn parse(text: &str) -> Result<HostPattern, HostPatternError> {
        let bad = || HostPatternError::NotAHost(text.to_string());
        let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        let ipv6 = !wild && name.starts_with('[') && name.ends_with(']') && {
            name[1..name.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok()
        };
        if !ipv6 && (name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok)) {
            return Err(bad());
        }
        Ok(if wild {
            HostPattern::Under(format!(".{name}"))
        } else {
            HostPattern::Exact(name.to_string())
        })
    }

    /// Does `host` (as [`request_host`] reads it: no port, no trailing dot; any case) match?
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Under(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && host[..host.len() - suffix.len()].split('.').all(label)
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

/// The host of an authority (`Host` header value or a URI's authority): the port and one
/// trailing dot taken off; IPv6 literals keep their brackets.
/// A DNS label as a wildcard may stand for it: 1 to 63 letters, digits, `-` or `_`, not
/// starting or ending with `-` (so `*.example.com` never matches `a..example.com` or
/// `-.example.com`, which would go into return URLs).
fn label(l: &str) -> bool {
    (1..=63).contains(&l.len())
        && l.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

pub fn host_of(authority: &str) -> &str {
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => &authority[..=i],
            None => authority,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// The one host a request is routed by: its Host header, or (HTTP/2 without one, HTTP/1.0)
/// the authority of its target. The gate has already refused a request whose Host and target
/// authority disagree, and a Host that is not a plain `host[:port]`.
pub fn request_host(req: &http::request::Parts) -> Option<&str> {
    let raw = match req.headers.get(http::header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri.authority()?.as_str(),
    };
    let h = host_of(raw);
    (!h.is_empty()).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard() {
        let shop = HostPattern::parse("Shop.Example.com.").unwrap();
        assert_eq!(shop, HostPattern::Exact("shop.example.com".into()));
        assert!(shop.matches("shop.example.com"));
        assert!(shop.matches("SHOP.example.COM"));
        assert!(!shop.matches("shop.example.com.evil"));
        assert!(!shop.matches("xshop.example.com"));
        let any = HostPattern::parse("*.example.com").unwrap();
        assert!(any.matches("a.example.com"));
        assert!(any.matches("a-b.c_d.example.com"));
        for odd in [
            "a..example.com",
            "-.example.com",
            "a-.example.com",
            ".example.com",
            "a b.example.com",
        ] {
            assert!(!any.matches(odd), "{odd}");
        }
        assert!(any.matches("a.b.Example.com"));
        assert!(!any.matches("example.com"));
        assert!(!any.matches("aexample.com"));
        assert!(!any.matches(".example.com"));
        assert!(any.covers(&shop));
        assert!(!shop.covers(&any));
        assert!(any.covers(&HostPattern::parse("*.b.example.com").unwrap()));
        assert!(!HostPattern::parse("*.b.example.com").unwrap().covers(&any));
        for bad in [
            "",
            "*",
            "*.",
            "shop.example.com:443",
            "a/b",
            "a b",
            "a..b",
            "*.*.x",
            "x.*.y",
            "é.x",
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
        assert_eq!(host_of("shop.example.com."), "shop.example.com");
        assert_eq!(host_of("shop.example.com.:443"), "shop.example.com");
        assert_eq!(host_of("[::1]:80"), "[::1]");
        assert_eq!(host_of("[::1]"), "[::1]");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
    }
}
