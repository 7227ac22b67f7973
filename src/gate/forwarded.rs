//! Who sent a request, as the app is told: `X-Forwarded-For`, `-Proto`, `-Host` and a request
//! id. What a client says about itself is believed only from `clients.trusted_proxies`
//! (then extended); from anyone else it is replaced. Decided once in `request_filter`, sent
//! upstream in `upstream_request_filter`.

use super::edit::Edit;
use crate::answers::RequestId;
use crate::config::RequestIdMode;
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

/// Is header `n` one the app must not get from this peer? Names are compared folded (letter
/// case and every byte that is no letter or digit left out, see [`super::names`]): a host
/// claim in any spelling, a client claim from an untrusted peer, and any spelling of
/// verigate's own names but the plain one. Judged with the app's names in one pass
/// ([`super::names::screen`], in `request_filter`), so names outside the header-name grammar,
/// such as `X_Forwarded_For`, are dropped as such before this.
pub fn doomed(n: &super::fold::Name, trusted: bool) -> bool {
    let name = n.text;
    let start = n.fold.start();
    // Every name below starts with one of these letters (folded), or ends with a role word
    // of the connection: most names are passed on their first letter.
    if !matches!(start.first(), Some(b'x' | b'f' | b't' | b'c')) && !n.roles.connection {
        return false;
    }
    // Any name that starts with `X-Forwarded-Host` or `X-Original-Host` names a host.
    let host_claim = (start.starts_with(b"xforwardedhost") || start.starts_with(b"xoriginalhost"))
        && name != "x-forwarded-host";
    if host_claim || (!trusted && super::fold::connection_claim(n)) {
        return true;
    }
    let Some(f) = n.fold.whole() else {
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
    /// The request id: a trusted proxy's (when it is a plain token), or a fresh one; none as
    /// `clients.request_id` says (`trust_from_proxy` without one, `off`).
    pub request_id: Option<HeaderValue>,
    /// Without an id of verigate's, the request's own `X-Request-Id` is removed (anyone's but
    /// a trusted proxy's under `request_id: off`).
    pub drop_sent_id: bool,
    /// The client reached verigate over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
    /// The client's address: the peer, or behind a trusted proxy the address that proxy
    /// says it took the request from (the last `X-Forwarded-For` entry; the peer when that
    /// is no address).
    pub client: Option<IpAddr>,
}

impl Origin {
    /// The request id's bytes, as the access line takes them (none: empty).
    pub fn request_id(&self) -> &[u8] {
        // Visible ASCII (`plain_id`, `fresh_id`); the access line checks it as it copies it.
        self.request_id.as_ref().map_or(&b""[..], |v| v.as_bytes())
    }

    /// Note this request's id on the request as received (`request_filter`), where
    /// verigate's own answers read it ([`RequestId`]). Its headers are left as sent: an
    /// extension costs a fraction of a header edit on Pingora's case-keeping map, and only
    /// the upstream request's headers matter ([`edit`]).
    pub fn mark(&self, req: &mut pingora::http::RequestHeader) {
        if let Some(id) = &self.request_id {
            req.extensions_mut().insert(RequestId(id.clone()));
        }
    }

    /// Put this request's id on the upstream request (or take the one it was sent away).
    fn mark_upstream(&self, req: &mut impl Edit) {
        match &self.request_id {
            Some(id) => req.insert(&REQUEST_ID, id.clone()),
            None if self.drop_sent_id => req.remove(&REQUEST_ID),
            None => {}
        }
    }

    /// The scheme the client used to reach verigate.
    fn proto(&self) -> HeaderValue {
        HeaderValue::from_static(if self.https { "https" } else { "http" })
    }
}

/// A request id as received from a trusted proxy: 1 to 128 visible ASCII characters, none of
/// them a quote or a backslash (it is echoed into pages and logs).
fn plain_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .copied()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A fresh request id: 32 hex digits, made once as a header value (the log and the app's
/// header share it). An id names a request; it is no secret. The first 16 digits are random
/// per thread, the last 16 a bijective mix (SplitMix64's finaliser) of the thread's count of
/// ids added to another random number: unique within a thread, random-looking, and without a
/// random number generator's work on every request.
pub fn fresh_id() -> HeaderValue {
    use std::cell::Cell;
    thread_local! {
        static NEXT: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
    }
    let (prefix, n) = NEXT.with(|c| {
        let (prefix, n) = c.get().unwrap_or_else(|| (rand::random(), rand::random()));
        c.set(Some((prefix, n.wrapping_add(1))));
        (prefix, n)
    });
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut hex = [0u8; 32];
    hex[..16].copy_from_slice(&hex16(prefix));
    hex[16..].copy_from_slice(&hex16(z));
    // Hex digits are a valid header value. Kept in a reference-counted owner from the start:
    // the id is cloned (the upstream request's header, an answer's), and a clone of bytes
    // copied into a `Vec` first moves them into a shared allocation of their own.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(hex))
        .unwrap_or(HeaderValue::from_static("-"))
}

/// `x` as 16 lowercase hex digits, most significant first, without a loop: each nibble is
/// spread into a byte of its own, then turned into its digit in all 16 bytes at once
/// (`'0' + d`, and 39 more for the digits `a`..`f`).
fn hex16(x: u64) -> [u8; 16] {
    // The nibbles' bytes in order: the high nibble of each byte of `x` first.
    let mut v = u128::from(x.swap_bytes());
    v = (v | (v << 32)) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    // Each byte of `x` is now in the low byte of its 16-bit lane: high nibble low, low high.
    let v = ((v & 0x00f0_00f0_00f0_00f0_00f0_00f0_00f0_00f0) >> 4)
        | ((v & 0x000f_000f_000f_000f_000f_000f_000f_000f) << 8);
    const ONES: u128 = 0x0101_0101_0101_0101_0101_0101_0101_0101;
    // 6 added to a nibble of 10 or more carries into bit 4 of its byte.
    let letters = ((v + ONES * 6) >> 4) & ONES;
    (v + ONES * u128::from(b'0') + letters * 39).to_le_bytes()
}

pub fn decide(
    req: &pingora::http::RequestHeader,
    peer: Option<IpAddr>,
    https: bool,
    trusted: &[ipnet::IpNet],
    mode: RequestIdMode,
) -> Origin {
    let trusted = peer.is_some_and(|ip| trusted.iter().any(|n| n.contains(&ip)));
    let request_id = match mode {
        RequestIdMode::Off => None,
        // Only a trusted proxy's header is looked up (a name lookup is no free lookup).
        RequestIdMode::Generate | RequestIdMode::TrustFromProxy => trusted
            .then(|| req.headers.get(&REQUEST_ID))
            .flatten()
            .filter(|v| plain_id(v.as_bytes()))
            .cloned()
            .or_else(|| (mode == RequestIdMode::Generate).then(fresh_id)),
    };
    let drop_sent_id = request_id.is_none() && !(trusted && mode == RequestIdMode::Off);
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
        drop_sent_id,
        https,
        client,
    }
}

/// The forwarding headers the app reads, and the request id, on a request [`super::names::screen`]
/// has screened for this peer. `X-Forwarded-Host` is always the
/// host verigate routed on, and no other header names a host. From a trusted proxy, its `X-Forwarded-For` is kept
/// and the peer appended (its `-Proto`, `X-Real-IP` and the `CLIENT_CLAIMS` kept); from anyone
/// else all of them are replaced by what verigate saw, or removed.
/// The caller reserves room for what it adds ([`ADDED`]).
pub fn edit(req: &mut impl Edit, o: &Origin, host: Option<HeaderValue>) {
    // The forwarding headers this peer may not send are gone already ([`doomed`], judged
    // with the app's names in `request_filter`).
    match host {
        Some(h) => req.insert(&XFH, h),
        None => req.remove(&XFH),
    }
    if o.trusted {
        let peer = o.peer.map(|p| p.to_string());
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
        match o.peer.and_then(address_value) {
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
    o.mark_upstream(req);
}

/// How many headers [`edit`] adds at most: `X-Forwarded-Host`, `-For`, `-Proto`, `X-Real-IP`
/// and `X-Request-Id`.
pub const ADDED: usize = 5;

/// An address as a header value. The value made last on this thread is kept and shared
/// when the next request comes from the same peer (a kept-alive connection, a load
/// balancer): a clone of it is a reference count, where a new one was formatted, checked and
/// allocated every request.
fn address_value(ip: IpAddr) -> Option<HeaderValue> {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<Option<(IpAddr, HeaderValue)>> = const { RefCell::new(None) };
    }
    let kept = LAST.with(|last| {
        let last = last.try_borrow().ok()?;
        last.as_ref()
            .filter(|(was, _)| *was == ip)
            .map(|(_, v)| v.clone())
    });
    if kept.is_some() {
        return kept;
    }
    let v = HeaderValue::from_str(crate::logwriter::AddrText::ip(ip).as_str()).ok()?;
    LAST.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((ip, v.clone()));
        }
    });
    Some(v)
}

/// A client address as the access log keeps it (`access_log_client`): whole, its network
/// (/24, /48), or nothing.
pub fn for_log(
    ip: Option<IpAddr>,
    mode: crate::config::ClientLog,
) -> Option<crate::logwriter::AddrText> {
    use crate::config::ClientLog;
    use crate::logwriter::AddrText;
    let ip = ip?;
    match mode {
        ClientLog::Off => None,
        ClientLog::Full => Some(AddrText::ip(ip)),
        ClientLog::Truncated => Some(AddrText::net(ip, if ip.is_ipv4() { 24 } else { 48 })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digits_are_as_format_writes_them() {
        for x in [
            0,
            1,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0xa0b1_c2d3_e4f5_0f1e,
            1 << 63,
        ] {
            assert_eq!(hex16(x), format!("{x:016x}").as_bytes(), "{x:x}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..1000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            assert_eq!(hex16(x), format!("{x:016x}").as_bytes());
        }
    }

    #[test]
    fn every_doomed_name_starts_with_a_letter_of_the_quick_test() {
        for n in HOST_CLAIMS.iter().chain(&CLIENT_CLAIMS).chain(&OWN) {
            assert!(matches!(n.as_bytes()[0], b'x' | b'f' | b't' | b'c'), "{n}");
        }
    }

    fn id(o: &Origin) -> Option<&str> {
        o.request_id.as_ref().map(|v| v.to_str().unwrap())
    }

    #[test]
    fn ids_from_untrusted_peers_are_replaced_and_odd_ones_never_kept() {
        let g = RequestIdMode::Generate;
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-request-id", "abc-123").unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let nets = ["127.0.0.0/8".parse().unwrap()];
        assert_eq!(
            id(&decide(&req, Some(local), false, &nets, g)),
            Some("abc-123")
        );
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        let o = decide(&req, Some(stranger), false, &nets, g);
        let fresh = id(&o).unwrap();
        assert!(!o.trusted && fresh != "abc-123" && fresh.len() == 32);
        assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
        for odd in ["a\"b", "a b", &"x".repeat(129), "a\\b"] {
            req.insert_header("x-request-id", odd).unwrap();
            assert_ne!(id(&decide(&req, Some(local), false, &nets, g)), Some(odd));
        }
    }

    /// What the app gets in `X-Request-Id` for a request that was sent `sent`, from a peer
    /// trusted or not, under `mode`; and the id the access line writes.
    fn upstream_id(
        sent: Option<&str>,
        trusted: bool,
        mode: RequestIdMode,
    ) -> (Option<String>, String) {
        let mut req = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
        if let Some(v) = sent {
            req.insert_header("x-request-id", v).unwrap();
        }
        let peer: IpAddr = if trusted { "10.0.0.1" } else { "198.51.100.7" }
            .parse()
            .unwrap();
        let nets = ["10.0.0.0/8".parse().unwrap()];
        let o = decide(&req, Some(peer), false, &nets, mode);
        o.mark(&mut req);
        let noted = req.extensions.get::<RequestId>().map(|r| r.0.clone());
        assert_eq!(noted, o.request_id, "the id verigate's answers show");
        edit(&mut req, &o, Some(HeaderValue::from_static("shop.example")));
        let got = req
            .headers
            .get_all(&REQUEST_ID)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(got.len() <= 1, "one X-Request-Id at most: {got:?}");
        (
            got.into_iter().next(),
            String::from_utf8_lossy(o.request_id()).into_owned(),
        )
    }

    #[test]
    fn trust_from_proxy_keeps_a_trusted_id_and_makes_none() {
        let m = RequestIdMode::TrustFromProxy;
        let lb = Some("lb-7f3a".to_string());
        assert_eq!(
            upstream_id(Some("lb-7f3a"), true, m),
            (lb.clone(), "lb-7f3a".into())
        );
        // Nothing generated: no id from a trusted proxy that sent none, or an odd one.
        assert_eq!(upstream_id(None, true, m), (None, String::new()));
        assert_eq!(upstream_id(Some("a b"), true, m), (None, String::new()));
        // A client's own id never reaches the app, nor the log.
        assert_eq!(upstream_id(Some("forged"), false, m), (None, String::new()));
        assert_eq!(upstream_id(None, false, m), (None, String::new()));
    }

    #[test]
    fn off_makes_and_logs_no_id_and_lets_only_a_trusted_proxys_through() {
        let m = RequestIdMode::Off;
        assert_eq!(upstream_id(None, false, m), (None, String::new()));
        assert_eq!(upstream_id(Some("forged"), false, m), (None, String::new()));
        assert_eq!(upstream_id(None, true, m), (None, String::new()));
        // A trusted proxy's header reaches the app as it came; verigate logs none.
        assert_eq!(
            upstream_id(Some("lb 7f3a"), true, m),
            (Some("lb 7f3a".into()), String::new())
        );
    }

    #[test]
    fn generate_replaces_a_clients_id_upstream() {
        let m = RequestIdMode::Generate;
        let (up, logged) = upstream_id(Some("forged"), false, m);
        assert_eq!(up.as_deref(), Some(logged.as_str()));
        assert!(logged.len() == 32 && logged != "forged");
        assert_eq!(
            upstream_id(Some("lb-1"), true, m),
            (Some("lb-1".into()), "lb-1".into())
        );
    }

    #[test]
    fn client_addresses_in_logs() {
        use crate::config::ClientLog;
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().unwrap();
        assert_eq!(
            for_log(Some(v4), ClientLog::Truncated)
                .as_ref()
                .map(|a| a.as_str()),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            for_log(Some(v6), ClientLog::Truncated)
                .as_ref()
                .map(|a| a.as_str()),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(
            for_log(Some(v4), ClientLog::Full)
                .as_ref()
                .map(|a| a.as_str()),
            Some("203.0.113.77")
        );
        assert!(for_log(Some(v4), ClientLog::Off).is_none());
    }
}
