//! Opened session cookies, so that a verified request costs a lookup, not a decryption.
//!
//! Two levels, both keyed by a keyed digest of the cookie (`Digest`). Each worker thread has
//! a direct-mapped cache: a hit is one hash of the cookie, one 16-byte comparison and a few
//! cache lines, with no lock and no shared write. Behind it, one moka
//! cache shared by all threads bounds memory and keeps entries for `ttl`. A miss in both
//! opens the cookie. Entries are immutable (a cookie always opens to the same claims), so
//! the levels cannot disagree; expiry is checked on every hit. Per config: a reload builds a
//! new `Live`, and with it empty caches.

use crate::config::IdentityHeaders;
use crate::session::Claims;
use http::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use thread_local::ThreadLocal;

/// Non-ASCII, controls and `%` are percent-encoded (UTF-8) in forwarded values.
const VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// A value as it goes upstream in an identity header.
pub(crate) fn encode(value: &str) -> std::borrow::Cow<'_, str> {
    utf8_percent_encode(value, VALUE).into()
}

/// The identity headers every verified request of a session carries, in the order
/// [`Verified::headers`] gives them: which of `IdentityHeaders`' names each value goes under.
const BASE: usize = 5;

/// The bytes a session's requests read, in one allocation with the count that shares them
/// (`Bytes::from_owner`): the host the session was issued on, then the base identity header
/// values. A request then touches one or two cache lines of its session where it touched a
/// vector of headers and each value's own allocation (~30 cache misses a request with 10,000
/// sessions in turn, `benches/load.sh` with `CALLGRIND_CACHE=1`).
struct Packed {
    len: usize,
    buf: [u8; PACKED],
}

/// Room for the host and the values (a CI hash, a DI, the provider, the method, a time: ~200
/// bytes); a longer set goes into a vector of its own.
const PACKED: usize = 256;

impl AsRef<[u8]> for Packed {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn packed(bytes: Vec<u8>) -> bytes::Bytes {
    if bytes.len() <= PACKED {
        let mut p = Packed {
            len: bytes.len(),
            buf: [0; PACKED],
        };
        p.buf[..bytes.len()].copy_from_slice(&bytes);
        bytes::Bytes::from_owner(p)
    } else {
        bytes::Bytes::from(bytes)
    }
}

/// An opened session with the header values every verified request carries, computed once
/// per session cookie (see `Live::verified`). The fields a request reads come first
/// (`repr(C)`), next to the reference count, in the cache line the lookup brings in.
#[derive(Debug)]
#[repr(C)]
pub struct Verified {
    /// The issued host, then the values (`Packed`).
    hot: bytes::Bytes,
    /// The issued host is `hot[..host_len]`; none when `has_host` is false.
    host_len: u16,
    has_host: bool,
    /// How many of `values` are sent ([`Verified::header_count`]).
    count: u8,
    /// A TomoIDV session of a person with a CI, by the config this session was opened under
    /// (`config::providers::tomo::Settings::has_ci`).
    pub has_ci: bool,
    /// `claims.provider`, and `claims.birth` where that provider verifies births: what every
    /// request's decision reads, here beside the count rather than in `claims`.
    provider: crate::identity::ProviderId,
    trusted_birth: Option<chrono::NaiveDate>,
    /// The base identity headers' values (`None`: not sent), each a slice of `hot`: a request
    /// clones them (one shared count), it does not build them.
    values: [Option<HeaderValue>; BASE],
    pub claims: Claims,
    /// The id a logout revokes (`live::session_id`); empty: not revocable (tests).
    pub revocation_id: String,
    /// The ids an erasure of this person revokes (`revoked::person_ids`).
    pub person_ids: Vec<String>,
    /// `X-Verified-Method` (`Claims::method_label`).
    pub method: String,
}

impl Verified {
    pub fn new(claims: Claims) -> Self {
        let method = claims.method_label();
        let verified_at = chrono::DateTime::<chrono::Utc>::from_timestamp(claims.verified_at, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        // The person: the keyed hash one-account records are kept under (of the CI, the
        // TomoIDV PPID or the ifree member code). The DI only where the provider gave one.
        let values: [Option<&str>; BASE] = [
            Some(claims.ci_hash.as_str()).filter(|h| !h.is_empty()),
            Some(claims.unique_in_site.as_str()).filter(|u| !u.is_empty()),
            Some(claims.provider.as_str()),
            Some(method.as_str()),
            verified_at.as_deref(),
        ];
        let mut bytes = Vec::with_capacity(PACKED);
        bytes.extend_from_slice(claims.host.as_deref().unwrap_or("").as_bytes());
        // A host too long to index is no host: the session opens nowhere.
        let host_len = u16::try_from(bytes.len())
            .ok()
            .filter(|_| claims.host.is_some());
        if host_len.is_none() {
            bytes.clear();
        }
        // Where each value sent lies in `bytes`.
        let mut spans: [Option<std::ops::Range<usize>>; BASE] = Default::default();
        for (span, v) in spans.iter_mut().zip(values) {
            let Some(v) = v.map(encode) else { continue };
            if HeaderValue::from_str(&v).is_ok() {
                let at = bytes.len();
                bytes.extend_from_slice(v.as_bytes());
                *span = Some(at..bytes.len());
            }
        }
        let hot = packed(bytes);
        let values = spans.map(|span| HeaderValue::from_maybe_shared(hot.slice(span?)).ok());
        let count = values.iter().flatten().count() as u8;
        Verified {
            count,
            provider: claims.provider,
            trusted_birth: claims.birth.filter(|_| claims.provider.verifies_birth()),
            values,
            host_len: host_len.unwrap_or(0),
            hot,
            has_host: host_len.is_some(),
            has_ci: false,
            claims,
            revocation_id: String::new(),
            person_ids: Vec::new(),
            method,
        }
    }

    pub fn revocable(mut self, id: String) -> Self {
        self.revocation_id = id;
        self
    }

    /// Who verified the person (`claims.provider`).
    pub fn provider(&self) -> crate::identity::ProviderId {
        self.provider
    }

    /// The person's birth date where their provider verifies it (`ProviderId::verifies_birth`):
    /// none when unknown or self-asserted.
    pub fn trusted_birth(&self) -> Option<chrono::NaiveDate> {
        self.trusted_birth
    }

    /// How many base identity headers [`Verified::headers`] gives.
    pub fn header_count(&self) -> usize {
        usize::from(self.count)
    }

    /// The base identity headers of every verified request of this session, under `names`:
    /// the person, the DI, the provider, the method and when the person verified (`None`: not
    /// sent). The values share this session's bytes (no copy, no check: they were checked
    /// when it opened); a plain loop over the pairs is what a request runs.
    pub fn headers<'a>(
        &'a self,
        names: &'a IdentityHeaders,
    ) -> [(&'a HeaderName, &'a Option<HeaderValue>); BASE] {
        let v = &self.values;
        [
            (&names.person, &v[0]),
            (&names.unique_in_site, &v[1]),
            (&names.provider, &v[2]),
            (&names.method, &v[3]),
            (&names.verified_at, &v[4]),
        ]
    }

    /// [`Claims::for_host_bytes`], read from the session's packed bytes.
    pub fn for_host_bytes(&self, host: Option<&[u8]>) -> bool {
        let issued = self.hot.get(..usize::from(self.host_len));
        let issued = issued.filter(|_| self.has_host);
        crate::session::issued_for_bytes(issued, host)
    }
}

/// Slots per worker thread (a power of two), two to a bucket (`Bucket`): a cookie may sit in
/// either slot of the bucket its digest picks, the newest first. In a direct-mapped table of
/// 16,384 slots, ~45% of 10,000 sessions requested in turn shared their slot with another and
/// went to the shared level every time (a moka lookup: ~8 cache misses); here ~12% do (those
/// whose bucket three or more sessions pick). A slot is 32 bytes (a cookie's digest, its
/// deadline, the session), a bucket one cache line: 1 MiB per thread once full.
const SLOTS: usize = 32_768;

/// A session cookie as both levels know it: a keyed 128-bit digest of the whole cookie
/// (SipHash-1-3-128 under a key random per cache). A lookup then hashes the cookie once and
/// compares 16 bytes, where it hashed it twice and compared ~450 bytes in two places (and
/// kept a copy of each cookie in both levels). Two cookies meet on one digest by chance once
/// in 2^64 pairs; a digest is never shown, and without the key no cookie can be made to land
/// on another's. The digests are compared as integers, not in constant time: which digests
/// are cached says nothing about any cookie without the key.
type Digest = u128;

struct Slot {
    key: Digest,
    /// The slot answers until then (UNIX seconds): the session's expiry, or `ttl` after
    /// it was filled, whichever comes first.
    until: i64,
    verified: Arc<Verified>,
}

/// Two slots in one cache line: the newest first.
#[repr(align(64))]
#[derive(Default)]
struct Bucket([Option<Slot>; 2]);

/// The shared level's hasher: a digest is already a keyed hash, so its low 64 bits are the
/// hash (no second pass over it).
#[derive(Clone, Copy, Default)]
struct DigestHash;

#[derive(Default)]
struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only a `Digest` is hashed (`write_u128`); any other input is still mixed in.
        for (i, b) in bytes.iter().enumerate() {
            self.0 ^= u64::from(*b) << ((i % 8) * 8);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 ^= v as u64;
    }
}

impl BuildHasher for DigestHash {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher::default()
    }
}

pub struct SessionCache {
    shared: moka::sync::Cache<Digest, Arc<Verified>, DigestHash>,
    /// Per worker thread, direct-mapped by the digest's high bits.
    local: ThreadLocal<RefCell<Box<[Bucket]>>>,
    /// The digest's key, random per cache (per config: a reload draws another).
    key: (u64, u64),
    ttl_secs: i64,
}

impl SessionCache {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        SessionCache {
            shared: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build_with_hasher(DigestHash),
            local: ThreadLocal::new(),
            key: rand::random(),
            ttl_secs: ttl.as_secs() as i64,
        }
    }

    fn digest(&self, cookie: &[u8]) -> Digest {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(cookie);
        h.finish128().as_u128()
    }

    /// The verified person behind `cookie` at `now` (UNIX seconds): cached, or `open`ed and
    /// cached. None when it does not open or has expired. The digest is of the cookie's bytes;
    /// only a cookie that is UTF-8 is `open`ed (and so cached).
    pub fn get(
        &self,
        cookie: &(impl AsRef<[u8]> + ?Sized),
        now: i64,
        open: impl FnOnce(&str) -> Option<Verified>,
    ) -> Option<Arc<Verified>> {
        let cookie = cookie.as_ref();
        let local = self
            .local
            .get_or(|| RefCell::new((0..SLOTS / 2).map(|_| Bucket::default()).collect()));
        let key = self.digest(cookie);
        let i = (key >> 64) as usize & (SLOTS / 2 - 1);
        if let Ok(buckets) = local.try_borrow() {
            for s in buckets[i].0.iter().flatten() {
                if s.key == key && now < s.until {
                    return Some(s.verified.clone());
                }
            }
        }
        let v = match self.shared.get(&key) {
            Some(v) => v,
            None => {
                let v = Arc::new(open(std::str::from_utf8(cookie).ok()?)?);
                self.shared.insert(key, v.clone());
                v
            }
        };
        let until = v.claims.expires_at.min(now + self.ttl_secs);
        if now >= until {
            return None;
        }
        if let Ok(mut buckets) = local.try_borrow_mut() {
            let ways = &mut buckets[i].0;
            // The newest first; the other way keeps the one before it (or, when this cookie
            // was already first, its own slot is refreshed in place).
            if ways[0].as_ref().is_some_and(|s| s.key != key) {
                ways.swap(0, 1);
            }
            ways[0] = Some(Slot {
                key,
                until,
                verified: v.clone(),
            });
        }
        Some(v)
    }

    #[cfg(test)]
    fn shared_len(&self) -> u64 {
        self.shared.run_pending_tasks();
        self.shared.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Claims;
    use std::cell::Cell;

    fn verified(expires_at: i64) -> Verified {
        let claims = Claims {
            unique_in_site: "site-id".into(),
            ci_hash: "ci-hash".into(),
            birth: None,
            provider: crate::identity::ProviderId::Iamport,
            verified_at: 0,
            issued_at: 0,
            expires_at,
            name: None,
            gender: None,
            phone: None,
            countries: Vec::new(),
            foreigner: None,
            carrier: None,
            method: String::new(),
            host: Some("shop.example".into()),
            host_only: false,
            kept: None,
        };
        Verified::new(claims)
    }

    fn headers_of(v: &Verified) -> Vec<(String, String)> {
        let names = crate::config::IdentityHeaders::default();
        v.headers(&names)
            .into_iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.as_ref()?.to_str().unwrap().to_string())))
            .collect()
    }

    #[test]
    fn a_session_sends_its_base_headers_from_its_packed_bytes() {
        let mut v = verified(1_000);
        v = Verified::new(Claims {
            verified_at: 1_700_000_000,
            method: "danal".into(),
            ..v.claims
        });
        let want = [
            ("x-verified-person", "ci-hash"),
            ("x-verified-unique-in-site", "site-id"),
            ("x-verified-provider", "iamport"),
            ("x-verified-method", "iamport:danal"),
            ("x-verified-at", "2023-11-14T22:13:20Z"),
        ];
        let got = headers_of(&v);
        let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
        assert_eq!(v.header_count(), 5);
        // The host it was issued on, in any letter case; no other host, nor none.
        assert!(v.for_host_bytes(Some(b"shop.example")));
        assert!(v.for_host_bytes(Some(b"SHOP.Example")));
        assert!(!v.for_host_bytes(Some(b"shop.example.evil")));
        assert!(!v.for_host_bytes(Some(b"")));
        assert!(!v.for_host_bytes(None));
    }

    #[test]
    fn what_a_session_lacks_is_no_header_and_no_host_opens_nowhere() {
        let base = verified(1_000).claims;
        let v = Verified::new(Claims {
            ci_hash: String::new(),
            unique_in_site: String::new(),
            host: None,
            ..base
        });
        let names: Vec<String> = headers_of(&v).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["x-verified-provider", "x-verified-method", "x-verified-at"]
        );
        assert_eq!(v.header_count(), 3);
        assert!(!v.for_host_bytes(Some(b"shop.example")) && !v.for_host_bytes(Some(b"")));
        // An empty issued host is a host: it matches only an empty one (as `Claims::for_host`).
        let base = verified(1_000).claims;
        let c = Claims {
            host: Some(String::new()),
            ..base
        };
        let empty = Verified::new(c.clone());
        for host in [Some(&b""[..]), Some(b"shop.example"), None] {
            assert_eq!(empty.for_host_bytes(host), c.for_host_bytes(host));
        }
    }

    #[test]
    fn values_longer_than_the_packed_room_are_sent_whole() {
        // Over `PACKED` bytes (a long host and values): kept in a vector, every byte sent.
        let base = verified(1_000).claims;
        let long_host = format!("{}.example", "h".repeat(200));
        let v = Verified::new(Claims {
            ci_hash: "c".repeat(100),
            unique_in_site: "d é\u{1}".repeat(30),
            host: Some(long_host.clone()),
            ..base
        });
        let got = headers_of(&v);
        assert_eq!(got[0], ("x-verified-person".into(), "c".repeat(100)));
        // Non-ASCII and controls percent-encoded, as ever.
        assert_eq!(got[1].1, "d %C3%A9%01".repeat(30));
        assert!(v.for_host_bytes(Some(long_host.as_bytes())));
        assert!(!v.for_host_bytes(Some(b"shop.example")));
    }

    #[test]
    fn a_value_past_64_kib_is_still_sent_whole() {
        // No bound of the packing's own: every byte of every value goes upstream.
        let base = verified(1_000).claims;
        let v = Verified::new(Claims {
            unique_in_site: "d".repeat(70_000),
            ..base
        });
        assert_eq!(headers_of(&v)[1].1, "d".repeat(70_000));
        assert_eq!(v.header_count(), 5);
        assert!(v.for_host_bytes(Some(b"shop.example")));
    }

    #[test]
    fn opens_once_then_serves_from_memory_until_expiry() {
        let c = SessionCache::new(100, Duration::from_secs(300));
        let opened = Cell::new(0);
        let open = |_: &str| {
            opened.set(opened.get() + 1);
            Some(verified(1_000))
        };
        for now in [10, 11, 500, 999] {
            assert!(c.get("cookie-a", now, open).is_some(), "at {now}");
        }
        assert_eq!(opened.get(), 1);
        // Expired: neither level answers, whatever the other holds.
        assert!(c.get("cookie-a", 1_000, open).is_none());
        assert_eq!(opened.get(), 1);
        // A cookie that does not open is not cached.
        assert!(c.get("cookie-b", 10, |_| None).is_none());
        assert!(c.get("cookie-b", 10, |_| None).is_none());
        assert_eq!(c.shared_len(), 1);
    }

    #[test]
    fn slots_shared_by_two_cookies_never_mix_them_up() {
        let c = SessionCache::new(10_000, Duration::from_secs(300));
        // More cookies than slots: collisions are certain; each must still get its own.
        for round in 0..2 {
            for n in 0..(SLOTS * 2) {
                let cookie = format!("cookie-{n}");
                let v = c
                    .get(&cookie, 10, |_| Some(verified(10_000 + n as i64)))
                    .unwrap();
                assert_eq!(v.claims.expires_at, 10_000 + n as i64, "round {round}");
            }
        }
    }

    #[test]
    fn a_cookie_one_byte_off_is_another_cookie() {
        // Cached under its digest, a session answers only the cookie it was opened from:
        // every byte of the cookie counts, a prefix or an extension of it is another one.
        let c = SessionCache::new(100, Duration::from_secs(300));
        let cookie = "v1.".to_string() + &"a".repeat(450);
        assert!(c.get(&cookie, 10, |_| Some(verified(10_000))).is_some());
        let mut others = vec![cookie[..cookie.len() - 1].to_string(), cookie.clone() + "a"];
        for at in [0, 3, 200, cookie.len() - 1] {
            let mut b = cookie.clone().into_bytes();
            b[at] = b'b';
            others.push(String::from_utf8(b).unwrap());
        }
        for other in &others {
            assert!(c.get(other, 10, |_| None).is_none(), "{}", &other[..8]);
        }
        // The cookie itself is still served without opening it again.
        assert!(c.get(&cookie, 10, |_| None).is_some());
        // Another cache (another config) keys the same cookie differently.
        let d = SessionCache::new(100, Duration::from_secs(300));
        assert_ne!(c.digest(cookie.as_bytes()), d.digest(cookie.as_bytes()));
    }

    #[test]
    fn a_slot_is_refreshed_from_the_shared_level_after_ttl() {
        let c = SessionCache::new(100, Duration::from_secs(60));
        let opened = Cell::new(0);
        let open = |_: &str| {
            opened.set(opened.get() + 1);
            Some(verified(10_000))
        };
        assert!(c.get("k", 0, open).is_some());
        // Past the slot's ttl the lookup goes to the shared level (whose own TTL runs on
        // real time, so it still holds the entry here): not opened again.
        assert!(c.get("k", 61, open).is_some());
        assert_eq!(opened.get(), 1);
    }
}
