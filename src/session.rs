//! Session and flow cookies: authenticated encryption (XChaCha20-Poly1305) with key rotation.
//!
//! A sealed value is `base64url(kid[4] || nonce[24] || ciphertext+tag)`. The key id is derived
//! from the key itself, so the first key of the ring seals and every key of the ring opens. The
//! purpose (`session` or `flow`) is bound as associated data: a flow cookie never opens as a session.

use crate::identity::ProviderId;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chrono::NaiveDate;
use rand::RngCore;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "no session keys given (comma-separated base64 32-byte keys; `verigate keygen` makes one)"
    )]
    Empty,
    #[error("key #{0} is not base64")]
    NotBase64(usize),
    #[error("key #{0} is {1} bytes; each key must be 32 bytes")]
    WrongLength(usize, usize),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum OpenError {
    #[error("malformed")]
    Malformed,
    #[error("sealed with a key this instance does not hold")]
    UnknownKey,
    #[error("tampered or wrong purpose")]
    Tampered,
    #[error("expired")]
    Expired,
}

/// Which kind of cookie a sealed value is; bound into the AEAD as associated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Session,
    Flow,
    /// Values a store keeps at rest (ifree member keys and passcodes).
    AtRest,
    /// A request kept across the verification detour: its cookie, and (under keys of its
    /// own, [`Keyring::derived`]) its record in the store.
    Kept,
    /// The age status cookie ([`AgeClaims`]): what was verified about a person's age, for
    /// routes that need nothing else (`require.age_status`).
    AgeStatus,
    /// A guardian link ([`GuardianLink`]): the token a guardian's consent page is opened
    /// with, on this device or the guardian's own phone.
    GuardianLink,
    /// A guardian's consent on its way to a provider's start page ([`GuardianFlow`]).
    GuardianStart,
    /// The stated child's cookie ([`StatedChild`]).
    StatedChild,
    /// A guardian's verified fields in the store, for the child's request (under the kept
    /// requests' keys, bound to the consent).
    GuardianFields,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"verigate/session/v1",
            Purpose::Flow => b"verigate/flow/v1",
            Purpose::AtRest => b"verigate/at-rest/v1",
            Purpose::Kept => b"verigate/kept/v1",
            Purpose::AgeStatus => b"verigate/age-status/v1",
            Purpose::GuardianLink => b"verigate/guardian-link/v1",
            Purpose::GuardianStart => b"verigate/guardian-start/v1",
            Purpose::StatedChild => b"verigate/stated-child/v1",
            Purpose::GuardianFields => b"verigate/guardian-fields/v1",
        }
    }
}

/// Decode one base64 32-byte key.
pub fn decode_key(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
        .map_err(|_| KeyError::NotBase64(1))?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength(1, bytes.len()))
}

#[derive(Clone)]
struct Key {
    id: [u8; 4],
    raw: [u8; 32],
    aead: XChaCha20Poly1305,
}

/// The session keys: the first seals, all open.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys, redacted)", self.keys.len())
    }
}

impl Keyring {
    pub fn new(raw_keys: &[[u8; 32]]) -> Result<Self, KeyError> {
        if raw_keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let keys = raw_keys
            .iter()
            .map(|raw| {
                let digest = Sha256::new()
                    .chain_update(b"verigate/kid")
                    .chain_update(raw)
                    .finalize();
                Key {
                    id: [digest[0], digest[1], digest[2], digest[3]],
                    raw: *raw,
                    aead: XChaCha20Poly1305::new(raw.into()),
                }
            })
            .collect();
        Ok(Keyring { keys })
    }

    /// Comma-separated base64 keys, as `keys_env` holds them.
    pub fn from_base64_list(list: &str) -> Result<Self, KeyError> {
        let mut raw = Vec::new();
        for (i, part) in list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .enumerate()
        {
            let bytes = STANDARD
                .decode(part)
                .or_else(|_| URL_SAFE_NO_PAD.decode(part))
                .map_err(|_| KeyError::NotBase64(i + 1))?;
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| KeyError::WrongLength(i + 1, bytes.len()))?;
            raw.push(key);
        }
        Self::new(&raw)
    }

    /// A separate key for keyed hashes, derived from the first key (HKDF-SHA256).
    /// Set `session.hash_key_env` explicitly so that rotating session keys keeps hashes stable.
    pub fn derive_hash_key(&self) -> [u8; 32] {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"verigate"), &self.keys[0].raw);
        let mut out = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"verigate/hash-key/v1", &mut out);
        out
    }

    /// A keyring whose every key is derived from this one's (HKDF-SHA256, `info`): the same
    /// rotation (the first seals, all open), keys of their own for one use.
    pub fn derived(&self, info: &str) -> Keyring {
        let raw: Vec<[u8; 32]> = self.keys.iter().map(|k| derive_key(&k.raw, info)).collect();
        // Never empty: this ring is not.
        Keyring::new(&raw).unwrap_or_else(|_| self.clone())
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal_bytes(purpose, &[], plaintext))
    }

    /// Seal `plaintext` as bytes (`kid[4] || nonce[24] || ciphertext+tag`), bound to `purpose`
    /// and to `bind` (associated data: a value sealed for one `bind` never opens for another).
    pub fn seal_bytes(&self, purpose: Purpose, bind: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = [purpose.aad(), &key.id[..], bind].concat();
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let ct = key
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(4 + 24 + ct.len());
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > 4096 {
            return Err(OpenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed)?;
        self.open_bytes(purpose, &[], &bytes)
    }

    /// Open what [`Keyring::seal_bytes`] sealed for the same `purpose` and `bind`.
    pub fn open_bytes(
        &self,
        purpose: Purpose,
        bind: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < 4 + 24 + 16 {
            return Err(OpenError::Malformed);
        }
        let (id, rest) = sealed.split_at(4);
        let (nonce, ct) = rest.split_at(24);
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let aad = [purpose.aad(), id, bind].concat();
        key.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| OpenError::Tampered)
    }

    pub fn seal_json<T: Serialize>(&self, purpose: Purpose, value: &T) -> String {
        let json = serde_json::to_vec(value).unwrap_or_default();
        self.seal(purpose, &json)
    }

    pub fn open_json<T: DeserializeOwned>(
        &self,
        purpose: Purpose,
        sealed: &str,
    ) -> Result<T, OpenError> {
        let plain = self.open(purpose, sealed)?;
        serde_json::from_slice(&plain).map_err(|_| OpenError::Malformed)
    }
}

/// A purpose-bound key derived from another (HKDF-SHA256).
pub fn derive_key(from: &[u8; 32], info: &str) -> [u8; 32] {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"verigate"), from);
    let mut out = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hk.expand(info.as_bytes(), &mut out);
    out
}

/// Fresh random key, base64 (for `keygen` and the demo).
pub fn fresh_key_b64() -> String {
    let mut k = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut k);
    STANDARD.encode(k)
}

/// Keyed hash (HMAC-SHA256, base64url) of an identifier that must never be kept in clear.
pub fn keyed_hash(key: &[u8; 32], domain: &str, value: &str) -> String {
    use hmac::{Mac, SimpleHmac};
    let mut mac = <SimpleHmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(domain.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    URL_SAFE_NO_PAD.encode(&mac.finalize().into_bytes()[..24])
}

/// What the session cookie carries. Never the CI in clear: only its keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The provider's per-site identifier (DI, PPID, ...).
    #[serde(rename = "s")]
    pub unique_in_site: String,
    /// Keyed hash of the CI (for one-account-per-person rules).
    #[serde(rename = "h")]
    pub ci_hash: String,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<NaiveDate>,
    #[serde(rename = "p")]
    pub provider: ProviderId,
    /// UNIX seconds of the verification at the provider.
    #[serde(rename = "v")]
    pub verified_at: i64,
    #[serde(rename = "i")]
    pub issued_at: i64,
    #[serde(rename = "e")]
    pub expires_at: i64,
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Verified foreign-national flag (kept only if some route forwards it).
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub foreigner: Option<bool>,
    /// Mobile carrier (kept only if some route forwards it).
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<String>,
    /// How the person verified (`danal`, `inicis_unified`, `idv`, ...): `X-Verified-Method`
    /// is the provider and this. Empty in sessions from before it was kept.
    #[serde(rename = "m", default, skip_serializing_if = "String::is_empty")]
    pub method: String,
    /// The countries a TomoIDV result names (its own and the document's), as the provider
    /// wrote them: each request decides with the config of the moment whether this person
    /// has a CI (`providers.tomo.ci_countries`; `403 korean_national` where a CI provider is
    /// accepted). Empty for other providers.
    #[serde(rename = "k", default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    /// The host the session was issued on (lower case, no port, no trailing dot): it opens
    /// on that host only (`Claims::for_host`), so a cookie tossed onto a sibling host by a
    /// `Domain` attribute or an app's `Set-Cookie` is no session there. None: no host.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Issued under the `__Host-` cookie name: never read under the old name
    /// (`crate::cookies::name_fits`).
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    pub host_only: bool,
    /// The kept request (its id) that the flow which issued this session was started for:
    /// the one kept request this session delivers (`gate::kept`).
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

impl Claims {
    /// `X-Verified-Method`: the provider and how the person verified (`iamport:danal`,
    /// `portone:inicis_unified`, `tomo:idv`); the provider alone in older sessions.
    pub fn method_label(&self) -> String {
        match self.method.as_str() {
            "" => self.provider.as_str().to_string(),
            m => format!("{}:{m}", self.provider.as_str()),
        }
    }

    /// Was this session issued on `host` (as `routing::host::request_host` reads it)? A
    /// session without a host is valid on none.
    pub fn for_host(&self, host: Option<&str>) -> bool {
        self.for_host_bytes(host.map(str::as_bytes))
    }

    /// [`Claims::for_host`] of the host's bytes as the request has them
    /// (`routing::host::HostAt::get_bytes`): bytes that are no text equal no host.
    pub fn for_host_bytes(&self, host: Option<&[u8]>) -> bool {
        issued_for(self.host.as_deref(), host)
    }
}

/// Whether a cookie issued on `issued` (none: on no host) may open on `host`.
fn issued_for(issued: Option<&str>, host: Option<&[u8]>) -> bool {
    issued_for_bytes(issued.map(str::as_bytes), host)
}

/// [`issued_for`] of the issued host's bytes (`live::sessions::Verified` keeps them packed).
pub(crate) fn issued_for_bytes(issued: Option<&[u8]>, host: Option<&[u8]>) -> bool {
    // The same bytes (the browser sends the host as it was sent when issued) compared at
    // once; letter case byte by byte only when they differ.
    matches!((issued, host), (Some(a), Some(b)) if a == b || a.eq_ignore_ascii_case(b))
}

/// A flow in progress, bound to the browser that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowClaims {
    /// The nonce sent to the provider (Iamport `merchant_uid`).
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "p")]
    pub provider: ProviderId,
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// The kept request this flow was started for (its id): the browser's kept post, for this
    /// `return_to` and host, when the start page was reached from this site's own pages.
    /// The session the flow issues delivers it (and no other session does).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
    /// A guardian's verification (not the person's own): its result records a consent for
    /// the child its link names and never becomes a session (the child's, on a shared device,
    /// stays as it was).
    #[serde(rename = "g", default, skip_serializing_if = "Option::is_none")]
    pub guardian: Option<GuardianFlow>,
}

/// A guardian link: the child a guardian is asked to consent for, on which route, back to
/// which address and on which host, until when. Sealed ([`Purpose::GuardianLink`]); used once
/// (its `id` in `Store::claim_once`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianLink {
    /// The link's random id (its one-use key).
    #[serde(rename = "i")]
    pub id: String,
    /// The child: their keyed CI hash, or `stated:<random>`.
    #[serde(rename = "c")]
    pub child: String,
    /// The birth date a child without a verification stated (`YYYY-MM-DD`).
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub stated_birth: Option<String>,
    /// The route's name.
    #[serde(rename = "n")]
    pub route: String,
    /// The child's pending address (the signup).
    #[serde(rename = "r")]
    pub return_to: String,
    /// The host the child's signup is on (lower case): the link opens on it only.
    #[serde(rename = "h")]
    pub host: Option<String>,
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// What a guardian's verification flow carries besides the flow itself: the link it was
/// started from, the relation the guardian stated, and whether it runs on the child's device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianFlow {
    #[serde(rename = "l")]
    pub link: GuardianLink,
    /// `parent` or `guardian`, as the guardian stated it.
    #[serde(rename = "s")]
    pub relation: String,
    /// Started on the child's own device (the done page continues to the signup there).
    #[serde(rename = "d", default)]
    pub same_device: bool,
}

/// A child without a verification of their own, on a route with `guardian_consent.children:
/// stated_birth_date`: the random id their guardian's consent is bound to, and the birth date
/// they stated (re-evaluated by the route's rule on each request). The stated child's cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatedChild {
    /// `stated:` and 16 random bytes, base64url.
    #[serde(rename = "i")]
    pub id: String,
    /// `YYYY-MM-DD`, as stated.
    #[serde(rename = "b")]
    pub birth: NaiveDate,
    /// The host it was stated on (lower case): read there only.
    #[serde(rename = "h")]
    pub host: Option<String>,
    #[serde(rename = "e")]
    pub expires_at: i64,
}

impl StatedChild {
    /// Open a stated child's cookie: sealed by these keys, live at `now`, for `host`.
    pub fn open(keys: &Keyring, sealed: &str, now: i64, host: Option<&str>) -> Option<StatedChild> {
        let c: StatedChild = keys.open_json(Purpose::StatedChild, sealed).ok()?;
        (c.expires_at > now && issued_for(c.host.as_deref(), host.map(str::as_bytes))).then_some(c)
    }
}

/// A guardian's verified fields a route forwards (`forward: [guardian_name, guardian_birth]`),
/// kept sealed in the store for the child's next state-changing request, as long as the link
/// lived: never in clear at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardianFields {
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub birth: Option<NaiveDate>,
}

impl GuardianFields {
    /// The store key of a consent's fields.
    pub fn key(consent: &str) -> String {
        format!("guardian-{consent}")
    }
}

/// What the kept-request cookie carries: which kept request is this browser's, for which
/// path and host, and who may have it delivered. The request itself is in the store
/// ([`Keyring::seal_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptClaims {
    /// The kept request's random id (its key in the store).
    #[serde(rename = "i")]
    pub id: String,
    /// The path and query it was sent to (where the browser comes back after verifying).
    #[serde(rename = "r")]
    pub return_to: String,
    /// The host it was posted to (lower case, no port): delivered on that host only.
    #[serde(rename = "h", default)]
    pub host: Option<String>,
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// Kept again for the session that was delivering it when the app could not be reached
    /// (its revocation id): that session delivers it. Otherwise only the session issued by
    /// the flow started for it does ([`Claims::kept`]).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// What the age status cookie carries: what was verified about a person's age, by which
/// provider and when, and nothing that names the person. No name, no CI or DI (not even
/// hashed), no birth date: only the birth year, from which every route's `min_age` is
/// re-evaluated on the day of use (`AgeRule::admits_year`), and the ids under which an erasure
/// of the person revokes it (keyed hashes of keyed hashes, `live::revoked::person_ids`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgeClaims {
    /// The year of birth the provider verified.
    #[serde(rename = "y")]
    pub birth_year: i32,
    #[serde(rename = "p")]
    pub provider: ProviderId,
    /// UNIX seconds of the verification at the provider (`X-Verified-Age-Checked-At`; what
    /// `max_session_age` and `session.age_status_ttl` count from).
    #[serde(rename = "v")]
    pub verified_at: i64,
    #[serde(rename = "i")]
    pub issued_at: i64,
    /// `verified_at` + `session.age_status_ttl` when it was issued.
    #[serde(rename = "e")]
    pub expires_at: i64,
    /// The host it was issued on (as [`Claims::host`]): it opens on that host only.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The person's revocation ids (`live::revoked::person_ids`): an erasure revokes it.
    #[serde(rename = "r", default, skip_serializing_if = "Vec::is_empty")]
    pub person_ids: Vec<String>,
}

impl AgeClaims {
    /// Was this status issued on `host`? One without a host is valid on none.
    pub fn for_host(&self, host: Option<&str>) -> bool {
        issued_for(self.host.as_deref(), host.map(str::as_bytes))
    }
}

impl Keyring {
    /// Open an age status cookie; `Expired` past its `expires_at`, or issued in the future.
    pub fn open_age_status(&self, sealed: &str, now: i64) -> Result<AgeClaims, OpenError> {
        let c: AgeClaims = self.open_json(Purpose::AgeStatus, sealed)?;
        if now >= c.expires_at || c.issued_at > now + 60 {
            return Err(OpenError::Expired);
        }
        Ok(c)
    }

    pub fn open_kept(&self, sealed: &str, now: i64) -> Result<KeptClaims, OpenError> {
        let c: KeptClaims = self.open_json(Purpose::Kept, sealed)?;
        if now >= c.expires_at {
            return Err(OpenError::Expired);
        }
        Ok(c)
    }

    pub fn open_session(&self, sealed: &str, now: i64) -> Result<Claims, OpenError> {
        let c: Claims = self.open_json(Purpose::Session, sealed)?;
        if now >= c.expires_at || c.issued_at > now + 60 {
            return Err(OpenError::Expired);
        }
        Ok(c)
    }

    pub fn open_flow(&self, sealed: &str, now: i64) -> Result<FlowClaims, OpenError> {
        let c: FlowClaims = self.open_json(Purpose::Flow, sealed)?;
        if now >= c.expires_at {
            return Err(OpenError::Expired);
        }
        Ok(c)
    }
}

/// The session settings, validated from the config file's `session` section.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The session cookie's name: `session.cookie` (the config key), under the `__Host-` prefix with
    /// `session.secure` (see `crate::cookies`).
    pub cookie: String,
    /// The session cookie's name before the `__Host-` prefix (`session.cookie` as written):
    /// still read, for a session issued under it before the upgrade (`crate::cookies`).
    pub legacy_cookie: Option<String>,
    /// Every name before the `__Host-` prefix (session, flow, kept): kept from the app.
    pub retired_cookies: Vec<String>,
    pub flow_cookie: String,
    pub ttl: std::time::Duration,
    pub secure: bool,
    pub keys: Keyring,
    /// Key for the keyed hashes of CI (and other identifiers that must never be stored in clear).
    pub hash_key: [u8; 32],
    /// Seals what the store keeps at rest (ifree member keys, passcodes); derived from hash_key.
    pub at_rest: Keyring,
    /// Seals kept requests in the store: derived from the session keys (so it rotates with
    /// them), one key for each.
    pub kept: Keyring,
    /// The kept-request cookie's name (`<cookie>_kept`, prefixed like `cookie`).
    pub kept_cookie: String,
    /// The age status cookie's name (`<cookie>_age`, prefixed like `cookie`).
    pub age_cookie: String,
    /// The stated child's cookie's name (`<cookie>_child`, prefixed like `cookie`).
    pub child_cookie: String,
    /// `session.age_status_ttl`: how long an age status lasts after the verification it
    /// comes from. None (the default): no age status is issued or accepted.
    pub age_status_ttl: Option<std::time::Duration>,
    /// Every name of verigate's cookies, in use and retired, and the other forms of each (the
    /// old ones after the upgrade to `__Host-`, the `__Host-` ones without it), the legacy
    /// session's among them: none of them reaches the app, and the app sets none. Made once
    /// with the config.
    pub all_cookies: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(n: u8) -> Keyring {
        Keyring::new(&[[n; 32]]).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            unique_in_site: "MC0GCCqGSIb3DQIJAyEAdi+di+di+di+di+di+di+di+di+di+di+di+di+di+di+c="
                .into(),
            ci_hash: "abcdefghijklmnopqrstuvwxyzABCDEF".into(),
            birth: NaiveDate::from_ymd_opt(1990, 1, 2),
            provider: ProviderId::Iamport,
            verified_at: 1_700_000_000,
            issued_at: 1_700_000_000,
            expires_at: 1_700_043_200,
            name: Some("홍길동".into()),
            gender: Some("male".into()),
            phone: Some("01012345678".into()),
            countries: Vec::new(),
            foreigner: None,
            carrier: None,
            method: String::new(),
            host: Some("shop.example".into()),
            host_only: false,
            kept: None,
        }
    }

    #[test]
    fn round_trip_and_small() {
        let r = ring(1);
        let sealed = r.seal_json(Purpose::Session, &claims());
        assert!(sealed.len() < 600, "cookie is {} bytes", sealed.len());
        assert_eq!(r.open_session(&sealed, 1_700_000_100).unwrap(), claims());
    }

    #[test]
    fn expired_is_refused() {
        let r = ring(1);
        let sealed = r.seal_json(Purpose::Session, &claims());
        assert_eq!(
            r.open_session(&sealed, 1_700_043_200),
            Err(OpenError::Expired)
        );
    }

    #[test]
    fn tampering_any_byte_is_refused() {
        let r = ring(1);
        let sealed = r.seal_json(Purpose::Session, &claims());
        let bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 4..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let t = URL_SAFE_NO_PAD.encode(&b);
            assert!(
                r.open(Purpose::Session, &t).is_err(),
                "flip at {i} accepted"
            );
        }
    }

    #[test]
    fn rotation_first_seals_all_open() {
        let old = ring(1);
        let sealed_old = old.seal(Purpose::Session, b"x");
        let rotated = Keyring::new(&[[2; 32], [1; 32]]).unwrap();
        assert_eq!(rotated.open(Purpose::Session, &sealed_old).unwrap(), b"x");
        let sealed_new = rotated.seal(Purpose::Session, b"y");
        assert_eq!(
            old.open(Purpose::Session, &sealed_new),
            Err(OpenError::UnknownKey)
        );
        assert_eq!(
            ring(3).open(Purpose::Session, &sealed_old),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn purposes_do_not_mix() {
        let r = ring(1);
        let flow = r.seal(Purpose::Flow, b"{}");
        assert_eq!(r.open(Purpose::Session, &flow), Err(OpenError::Tampered));
    }

    #[test]
    fn garbage_is_malformed() {
        let r = ring(1);
        for g in ["", "!!!", "abc", &"A".repeat(5000)] {
            assert_eq!(
                r.open(Purpose::Session, g),
                Err(OpenError::Malformed),
                "{} characters",
                g.len()
            );
        }
    }

    #[test]
    fn sealed_values_over_4096_bytes_are_refused_unopened() {
        let r = ring(1);
        // 4 bytes of key id, 24 of nonce and 16 of tag around the plaintext, in unpadded
        // base64: 3,028 plaintext bytes seal to exactly 4,096 characters, one more to 4,098.
        let at_limit = r.seal(Purpose::Session, &[b'x'; 3028]);
        assert_eq!(at_limit.len(), 4096);
        assert_eq!(
            r.open(Purpose::Session, &at_limit).map(|p| p.len()),
            Ok(3028)
        );
        // Sealed with this ring's own key and intact, so only the size guard refuses it.
        let over = r.seal(Purpose::Session, &[b'x'; 3029]);
        assert_eq!(over.len(), 4098);
        assert_eq!(
            r.open(Purpose::Session, &over).map(|p| p.len()),
            Err(OpenError::Malformed)
        );
    }

    #[test]
    fn bytes_are_bound_to_what_they_were_sealed_for() {
        let r = ring(1);
        let big = vec![7u8; 300 * 1024];
        let sealed = r.seal_bytes(Purpose::Kept, b"id-1", &big);
        assert_eq!(r.open_bytes(Purpose::Kept, b"id-1", &sealed).unwrap(), big);
        // Another id, another purpose, another ring: never opens.
        assert_eq!(
            r.open_bytes(Purpose::Kept, b"id-2", &sealed),
            Err(OpenError::Tampered)
        );
        assert_eq!(
            r.open_bytes(Purpose::AtRest, b"id-1", &sealed),
            Err(OpenError::Tampered)
        );
        let derived = r.derived("verigate/kept-store/v1");
        assert_eq!(
            derived.open_bytes(Purpose::Kept, b"id-1", &sealed),
            Err(OpenError::UnknownKey)
        );
        // A derived ring rotates like its source: the first key seals, every key opens.
        let by_old = ring(1).derived("x").seal_bytes(Purpose::Kept, b"", b"old");
        let rotated = Keyring::new(&[[2; 32], [1; 32]]).unwrap().derived("x");
        assert_eq!(
            rotated.open_bytes(Purpose::Kept, b"", &by_old).unwrap(),
            b"old"
        );
        // Sealing without `bind` is the string form's.
        let s = r.seal(Purpose::Kept, b"v");
        let raw = URL_SAFE_NO_PAD.decode(&s).unwrap();
        assert_eq!(r.open_bytes(Purpose::Kept, b"", &raw).unwrap(), b"v");
    }

    #[test]
    fn an_age_status_opens_only_as_one_and_until_it_expires() {
        let r = ring(1);
        let c = AgeClaims {
            birth_year: 2008,
            provider: ProviderId::Portone,
            verified_at: 1_700_000_000,
            issued_at: 1_700_000_100,
            expires_at: 1_731_536_000,
            host: Some("shop.example".into()),
            person_ids: vec!["p.abc".into()],
        };
        let sealed = r.seal_json(Purpose::AgeStatus, &c);
        assert!(sealed.len() < 300, "cookie is {} bytes", sealed.len());
        assert_eq!(r.open_age_status(&sealed, 1_700_000_200).unwrap(), c);
        assert_eq!(
            r.open_age_status(&sealed, 1_731_536_000),
            Err(OpenError::Expired)
        );
        // Neither a session nor a flow opens as an age status, nor the other way round.
        assert_eq!(
            r.open_session(&sealed, 1_700_000_200),
            Err(OpenError::Tampered)
        );
        let session = r.seal_json(Purpose::Session, &claims());
        assert_eq!(
            r.open_age_status(&session, 1_700_000_200),
            Err(OpenError::Tampered)
        );
        assert!(c.for_host(Some("SHOP.example")) && !c.for_host(Some("other.example")));
        assert!(!c.for_host(None));
    }

    #[test]
    fn key_list_parsing() {
        assert!(Keyring::from_base64_list("").is_err());
        assert_eq!(
            Keyring::from_base64_list("AAAA").unwrap_err(),
            KeyError::WrongLength(1, 3)
        );
        let k = fresh_key_b64();
        let two = format!("{k}, {}", fresh_key_b64());
        assert_eq!(Keyring::from_base64_list(&two).unwrap().keys.len(), 2);
    }

    #[test]
    fn keyed_hash_is_stable_and_keyed() {
        let a = keyed_hash(&[1; 32], "ci", "X");
        assert_eq!(a, keyed_hash(&[1; 32], "ci", "X"));
        assert_ne!(a, keyed_hash(&[2; 32], "ci", "X"));
        assert_ne!(a, keyed_hash(&[1; 32], "ptn", "X"));
    }
}
