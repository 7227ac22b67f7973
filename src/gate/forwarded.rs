//! Who sent a request, as the app is told: `X-Forwarded-For`, `-Proto`, `-Host` and a request
//! id. What a client says about itself is believed only from `clients.trusted_proxies`
//! (then extended); from anyone else it is replaced. Decided once in `request_filter`, sent
//! upstream in `upstream_request_filter`.

use super::headers::Edit;
use http::{HeaderName, HeaderValue};
use std::net::IpAddr;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
const XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
const XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Names that tell an app which host a request was for. The app must read the host verigate
/// routed on, so whoever sends these (a trusted load balancer too) they never reach it;
/// `X-Forwarded-Host` is then set to that host. (`Forwarded` carries `host=`.)
const HOST_CLAIMS: [&str; 3] = ["forwarded", "xhost", "xoriginalhost"];

/// Names (folded) through which frameworks read the client's address, scheme, port or
/// certificate when they trust their proxy (Werkzeug's ProxyFix, Symfony, Laravel, Spring,
/// Rails, IIS, CDNs). From a peer outside `clients.trusted_proxies` they are removed. (A path
/// prefix, such as `X-Forwarded-Prefix`, is removed from every peer: [`super::names`].)
const CLIENT_CLAIMS: [&str; 16] = [
    "xforwardedport",
    "xforwardedserver",
    "xforwardedscheme",
    "xforwardedssl",
    "xforwardedprotocol",
    "xurlscheme",
    "frontendhttps",
    "xforwarded",
    "forwardedfor",
    "trueclientip",
    "xclientip",
    "xclusterclientip",
    "cfconnectingip",
    "fastlyclientip",
    "xforwardedclientcert",
    "xclientcert",
];

/// The names verigate sets itself (folded); spelled in any other way than [`PLAIN_OWN`] they
/// are removed whoever sent them.
const OWN: [&str; 5] = [
    "xforwardedfor",
    "xforwardedproto",
    "xforwardedhost",
    "xrealip",
    "xrequestid",
];

/// Verigate's own names as it sends them.
const PLAIN_OWN: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// Is header `name` (lower case) one the app must not get from this peer? Names are compared
/// folded (letter case and every byte that is no letter or digit left out, see
/// [`super::names`]): a host claim in any spelling, a client claim from an untrusted peer, and
/// any spelling of verigate's own names but the plain one. (Names outside the header-name
/// grammar, such as `X_Forwarded_For`, are gone before this.)
fn doomed(name: &str, trusted: bool) -> bool {
    // Every name of these lists starts with one of these letters (folded).
    let first = name.bytes().find(u8::is_ascii_alphanumeric);
    if !matches!(first, Some(b'x' | b'f' | b't' | b'c')) {
        return false;
    }
    let folded = super::names::Fold::of(name.as_bytes());
    let Some(f) = folded.whole() else {
        return false;
    };
    let is = |names: &[&str]| names.iter().any(|n| n.as_bytes() == f);
    is(&HOST_CLAIMS) || (!trusted && is(&CLIENT_CLAIMS)) || (is(&OWN) && !PLAIN_OWN.contains(&name))
}

/// What this request says about where it came from, once decided.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The peer verigate accepted the connection from.
    pub peer: Option<IpAddr>,
    /// The peer is one of `clients.trusted_proxies`: its forwarding headers are believed.
    pub trusted: bool,
    /// The request id: a trusted proxy's (when it is a plain token), or a fresh one.
    pub request_id: String,
    /// The client reached verigate over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The client's address: the peer, or behind a trusted proxy the address that proxy
    /// says it took the request from (the last `X-Forwarded-For` entry; the peer when that
    /// is no address).
    pub client: Option<IpAddr>,
}

impl Origin {
    /// The scheme the client used to reach verigate.
    fn proto(&self) -> HeaderValue {
        HeaderValue::from_static(if self.https { "https" } else { "http" })
    }
}

/// A request id as received from a trusted proxy: 1 to 128 visible ASCII characters, none of
/// them a quote or a backslash (it is echoed into pages and logs).
fn plain_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A fresh request id: 16 random bytes in hex.
pub fn fresh_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    let mut s = String::with_capacity(32);
    for x in b {
        s.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(x & 15)]));
    }
    s
}

pub fn decide(
    req: &pingora::http::RequestHeader,
    peer: Option<IpAddr>,
    https: bool,
    trusted: &[ipnet::IpNet],
) -> Origin {
    let trusted = peer.is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
    let request_id = req
        .headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| trusted && plain_id(v))
        .map(String::from)
        .unwrap_or_else(fresh_id);
    let client = if trusted {
        req.headers
            .get_all(&XFF)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|a| a.trim().parse().ok())
            .or(peer)
    } else {
        peer
    };
    Origin {
        peer,
        trusted,
        request_id,
        https,
        client,
    }
}

/// The forwarding headers the app reads. `X-Forwarded-Host` is always the host verigate routed
/// on, and no other header names a host. From a trusted proxy, its `X-Forwarded-For` is kept
/// and the peer appended (its `-Proto`, `X-Real-IP` and the `CLIENT_CLAIMS` kept); from anyone
/// else all of them are replaced by what verigate saw, or removed.
pub fn edit(req: &mut impl Edit, o: &Origin, host: Option<&str>) {
    // The common case (none of them sent) allocates nothing.
    if req.map().keys().any(|k| doomed(k.as_str(), o.trusted)) {
        let names: Vec<HeaderName> = req
            .map()
            .keys()
            .filter(|k| doomed(k.as_str(), o.trusted))
            .cloned()
            .collect();
        for n in &names {
            req.remove(n);
        }
    }
    match host.and_then(|h| HeaderValue::try_from(h).ok()) {
        Some(h) => req.insert(&XFH, h),
        None => req.remove(&XFH),
    }
    let peer = o.peer.map(|p| p.to_string());
    if o.trusted {
        let chain = match (req.map().get(&XFF).and_then(|v| v.to_str().ok()), &peer) {
            (Some(prior), Some(p)) => Some(format!("{prior}, {p}")),
            (None, Some(p)) => Some(p.clone()),
            (Some(prior), None) => Some(prior.to_string()),
            (None, None) => None,
        };
        if let Some(v) = chain.and_then(|c| HeaderValue::try_from(c).ok()) {
            req.insert(&XFF, v);
        }
        if req.map().get(&XFP).is_none() {
            req.insert(&XFP, o.proto());
        }
    } else {
        // `insert` replaces every value the client sent; a header with nothing to put in
        // its place is removed.
        match peer.as_deref().and_then(|p| HeaderValue::try_from(p).ok()) {
            Some(v) => {
                req.insert(&XFF, v.clone());
                req.insert(&X_REAL_IP, v);
            }
            None => {
                req.remove(&XFF);
                req.remove(&X_REAL_IP);
            }
        }
        req.insert(&XFP, o.proto());
    }
    if let Ok(v) = HeaderValue::try_from(o.request_id.as_str()) {
        req.insert(&REQUEST_ID, v);
    }
}

/// A client address as the access log keeps it (`access_log_client`): whole, its network
/// (/24, /48), or nothing.
pub fn for_log(ip: Option<IpAddr>, mode: crate::config::ClientLog) -> Option<String> {
    use crate::config::ClientLog;
    let ip = ip?;
    match mode {
        ClientLog::Off => None,
        ClientLog::Full => Some(ip.to_string()),
        ClientLog::Truncated => {
            let prefix = if ip.is_ipv4() { 24 } else { 48 };
            ipnet::IpNet::new(ip, prefix)
                .ok()
                .map(|n| n.trunc().to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_untrusted_peers_are_replaced_and_odd_ones_never_kept() {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-request-id", "abc-123").unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let nets = ["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            decide(&req, Some(local), false, &nets).request_id,
            "abc-123"
        );
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let o = decide(&req, Some(stranger), false, &nets);
        assert!(!o.trusted && o.request_id != "abc-123" && o.request_id.len() == 32);
        for odd in ["a\"b", "a b", &"x".repeat(129), "a\\b"] {
            req.insert_header("x-request-id", odd).unwrap();
            assert_ne!(decide(&req, Some(local), false, &nets).request_id, odd);
        }
    }

    #[test]
    fn client_addresses_in_logs() {
        use crate::config::ClientLog;
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(
            for_log(Some(v4), ClientLog::Truncated).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            for_log(Some(v6), ClientLog::Truncated).as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(
            for_log(Some(v4), ClientLog::Full).as_deref(),
            Some("203.0.113.77")
        );
        assert_eq!(for_log(Some(v4), ClientLog::Off), None);
    }
}
