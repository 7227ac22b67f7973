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

/// An opened session with the header values every verified request carries, computed once
/// per session cookie (see `Live::verified`).
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    /// The id a logout revokes (`live::session_id`); empty: not revocable (tests).
    pub revocation_id: String,
    /// The ids an erasure of this person revokes (`revoked::person_ids`).
    pub person_ids: Vec<String>,
    /// A TomoIDV session of a person with a CI, by the config this session was opened under
    /// (`config::providers::tomo::Settings::has_ci`).
    pub has_ci: bool,
    pub base: Vec<(HeaderName, HeaderValue)>,
    /// `X-Verified-Method` (`Claims::method_label`).
    pub method: String,
    pub(crate) age_ok: HeaderName,
}

impl Verified {
    pub fn new(claims: Claims, names: &IdentityHeaders) -> Self {
        let mut base = Vec::with_capacity(5);
        let mut push = |n: &HeaderName, v: &str| {
            if let Ok(v) = HeaderValue::from_str(&encode(v)) {
                base.push((n.clone(), v));
            }
        };
        // The person: the keyed hash one-account records are kept under (of the CI, the
        // TomoIDV PPID or the ifree member code). The DI only where the provider gave one.
        if !claims.ci_hash.is_empty() {
            push(&names.person, &claims.ci_hash);
        }
        if !claims.unique_in_site.is_empty() {
            push(&names.unique_in_site, &claims.unique_in_site);
        }
        push(&names.provider, claims.provider.as_str());
        let method = claims.method_label();
        push(&names.method, &method);
        if let Some(t) = chrono::DateTime::<chrono::Utc>::from_timestamp(claims.verified_at, 0) {
            push(
                &names.verified_at,
                &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        Verified {
            claims,
            revocation_id: String::new(),
            person_ids: Vec::new(),
            has_ci: false,
            base,
            method,
            age_ok: names.age_ok.clone(),
        }
    }

    pub fn revocable(mut self, id: String) -> Self {
        self.revocation_id = id;
        self
    }
}

/// Slots per worker thread (a power of two). A slot is 32 bytes (a cookie's digest, its
/// deadline, the session): 512 KiB per thread once full, two slots to a cache line.
const SLOTS: usize = 16_384;

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
    local: ThreadLocal<RefCell<Box<[Option<Slot>]>>>,
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
            .get_or(|| RefCell::new((0..SLOTS).map(|_| None).collect()));
        let key = self.digest(cookie);
        let i = (key >> 64) as usize & (SLOTS - 1);
        if let Ok(slots) = local.try_borrow() {
            if let Some(s) = &slots[i] {
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
        if let Ok(mut slots) = local.try_borrow_mut() {
            slots[i] = Some(Slot {
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
        let names = crate::config::IdentityHeaders::default();
        Verified::new(claims, &names)
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
