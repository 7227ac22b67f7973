//! The YAML shape ops write. Every struct denies unknown keys; values stay as written
//! (strings for durations, addresses, ...) and are checked in `validate`.

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::config::providers::FileProviders;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: String,
    /// TLS on `listen` (HTTPS, and HTTP/2 through ALPN).
    #[serde(default)]
    pub tls: Option<FileTls>,
    /// A plain-HTTP listener that sends every request to the HTTPS one (needs `tls`).
    #[serde(default)]
    pub redirect_http_listen: Option<String>,
    /// The HTTPS port the redirects name (default: `listen`'s; 443 is left out of the URL).
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
    #[serde(default)]
    pub admin_listen: Option<String>,
    /// Who may call the admin listener's record API (`POST /accounts/forget`).
    #[serde(default)]
    pub admin: Option<FileAdmin>,
    /// The default upstream (routes that name none go there).
    #[serde(default)]
    pub upstream: Option<FileUpstream>,
    /// Named upstreams (`upstreams: {shop: {...}, admin: {...}}`), chosen by `routes[].upstream`.
    #[serde(default)]
    pub upstreams: BTreeMap<String, FileUpstream>,
    /// How upstream names are resolved.
    #[serde(default)]
    pub resolver: Option<FileResolver>,
    #[serde(default)]
    pub flow_prefix: Option<String>,
    /// One URL (every host's flow returns there) or a list (one per host the flows serve).
    #[serde(default)]
    pub public_url: Option<OneOrMany>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub threads: Option<usize>,
    #[serde(default)]
    pub access_log: Option<bool>,
    /// How the access line keeps a client's address: `truncated` (default), `full`, `off`.
    #[serde(default)]
    pub access_log_client: Option<String>,
    #[serde(default)]
    pub tuning: Option<FileTuning>,
    #[serde(default)]
    pub clients: Option<FileClients>,
    /// Rate limits on starting verifications and ifree key exchanges.
    #[serde(default)]
    pub limits: Option<crate::config::limits::FileLimits>,
    pub session: FileSession,
    #[serde(default)]
    pub identity_headers: Option<FileIdentityHeaders>,
    #[serde(default)]
    pub providers: FileProviders,
    #[serde(default)]
    pub store: Option<FileStore>,
    #[serde(default)]
    pub routes: Vec<FileRoute>,
    /// The service as providers' windows name it.
    #[serde(default)]
    pub site: Option<FileSite>,
    /// What verigate remembers about people, and for how long (docs/operations/privacy-facts.md).
    #[serde(default)]
    pub records: Option<FileRecords>,
}

/// `records`: what verigate keeps about people.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRecords {
    #[serde(default)]
    pub retention: Option<FileRetention>,
    /// Keep a verification ledger (proof that age was checked): off unless set.
    #[serde(default)]
    pub ledger: Option<bool>,
}

/// `records.retention`: each a duration (`1095d`) or `until_forgotten`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRetention {
    #[serde(default)]
    pub accounts: Option<String>,
    #[serde(default)]
    pub ifree_members: Option<String>,
    #[serde(default)]
    pub audit: Option<String>,
    #[serde(default)]
    pub ledger: Option<String>,
    /// Guardian consent records, counted from the consent.
    #[serde(default)]
    pub consents: Option<String>,
}

/// `site`: the service verigate stands in front of, named on the providers' windows and on
/// every page verigate shows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSite {
    /// The service name the verification windows show (Iamport `company`, PortOne V2 Danal
    /// `CPTITLE`), and the heading of verigate's pages.
    #[serde(default)]
    pub name: Option<String>,
    /// An `https://` image shown beside the name on every page (its `alt` is the name).
    #[serde(default)]
    pub logo_url: Option<String>,
    /// How a person reaches the shop, at the foot of every page.
    #[serde(default)]
    pub support: Option<FileSupport>,
}

/// `site.support`: at least one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSupport {
    /// A line of plain text (`고객센터 평일 10-18시`).
    #[serde(default)]
    pub text: Option<String>,
    /// The shop's help page, `https://`.
    #[serde(default)]
    pub url: Option<String>,
    /// A telephone number (`1588-0000`, `+82 2-123-4567`).
    #[serde(default)]
    pub phone: Option<String>,
    /// An e-mail address.
    #[serde(default)]
    pub email: Option<String>,
}

/// `tls.hsts`: `Strict-Transport-Security` on the HTTPS listener's answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHsts {
    /// How long browsers remember to use HTTPS only (`180d`; `0s` makes them forget).
    pub max_age: String,
    /// Also for every subdomain of the host (default false).
    #[serde(default)]
    pub include_subdomains: bool,
}

/// The listener's certificate (docs/guide/tls-and-http2.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTls {
    /// PEM: the certificate, then its intermediates.
    pub cert_file: String,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Offer HTTP/2 through ALPN (default true); false offers HTTP/1.1 only.
    #[serde(default)]
    pub http2: Option<bool>,
    /// `Strict-Transport-Security` on HTTPS answers (none by default).
    #[serde(default)]
    pub hsts: Option<FileHsts>,
}

/// Deadlines for slow clients, trusted proxies and kept-post limits (docs/reference/config.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileClients {
    /// From the first byte of a request to the end of its headers.
    #[serde(default)]
    pub header_timeout: Option<String>,
    /// The longest pause while a request body arrives.
    #[serde(default)]
    pub body_idle_timeout: Option<String>,
    /// The longest a write to a client may wait while the client reads nothing (nginx's
    /// `send_timeout`): a stalled reader is dropped, and the app's connection with it.
    #[serde(default)]
    pub send_timeout: Option<String>,
    /// Networks (CIDR) whose X-Forwarded-* and X-Request-Id are believed (a load balancer).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The request id: `generate` (default), `trust_from_proxy` or `off`.
    #[serde(default)]
    pub request_id: Option<String>,
    /// How many kept requests (form posts waiting for their verification) may be live at
    /// once, across every instance sharing the store.
    #[serde(default)]
    pub max_kept_requests: Option<u64>,
    /// How many form posts one client address may have kept in `kept_window` (per instance).
    #[serde(default)]
    pub max_kept_per_client: Option<u32>,
    /// How many form posts one network (IPv4 /24, IPv6 /48) may have kept in ten minutes
    /// (per instance): a few networks cannot fill `max_kept_requests` for everyone.
    #[serde(default)]
    pub max_kept_per_network: Option<u32>,
    /// Log the names (never the values) of request headers kept from the app: names outside
    /// the header-name grammar, identity and server-environment names.
    #[serde(default)]
    pub log_dropped_headers: bool,
}

/// Pingora settings (docs/performance.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTuning {
    #[serde(default)]
    pub work_stealing: Option<bool>,
    #[serde(default)]
    pub upstream_keepalive_pool: Option<usize>,
    #[serde(default)]
    pub listener_tasks: Option<usize>,
}

/// A string, or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// How upstream names (`app:8080`) are turned into addresses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileResolver {
    /// How often names are resolved again (default 30s).
    #[serde(default)]
    pub interval: Option<String>,
    /// How long one resolution may take (default 5s).
    #[serde(default)]
    pub timeout: Option<String>,
    /// A file in /etc/hosts form read first, afresh at each resolution.
    #[serde(default)]
    pub hosts_file: Option<String>,
    /// Ask the system's resolver (getaddrinfo) for names the hosts file does not hold
    /// (default true).
    #[serde(default)]
    pub system: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpstream {
    pub addrs: Vec<String>,
    /// Consecutive failed connects after which an address is skipped (default 1).
    #[serde(default)]
    pub eject_after: Option<u32>,
    /// How long a failed address is skipped (default 10s).
    #[serde(default)]
    pub eject_for: Option<String>,
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub sni: String,
    #[serde(default)]
    pub connect_timeout: Option<String>,
    #[serde(default)]
    pub read_timeout: Option<String>,
    #[serde(default)]
    pub preserve_header_case: bool,
    /// Speak HTTP/2 to the app: by ALPN over TLS, prior knowledge (h2c) without.
    #[serde(default)]
    pub http2: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSession {
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub secure: Option<bool>,
    #[serde(default)]
    pub keys_env: Option<String>,
    #[serde(default)]
    pub keys_file: Option<String>,
    #[serde(default)]
    pub hash_key_env: Option<String>,
    #[serde(default)]
    pub hash_key_file: Option<String>,
    /// How long an age status lasts after the verification it comes from (`365d`); unset:
    /// no age status is issued or accepted (`require.age_status`).
    #[serde(default)]
    pub age_status_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIdentityHeaders {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub assertion: Option<FileAssertion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAssertion {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub key_file: Option<String>,
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub ttl: Option<String>,
    /// Keys rotated out: still published in the JWKS until their tokens have expired.
    #[serde(default)]
    pub previous_key_files: Vec<String>,
}

/// The admin listener's record API (docs/operations/erasure.md).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAdmin {
    /// The bearer token `POST /accounts/forget` needs, from this environment variable...
    #[serde(default)]
    pub token_env: Option<String>,
    /// ...or from this file.
    #[serde(default)]
    pub token_file: Option<String>,
    /// Without a token, answer the record API anyway: only on a loopback `admin_listen`.
    #[serde(default)]
    pub allow_unauthenticated_loopback: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStore {
    pub kind: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub url_file: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// Redis behind Sentinel: the master is asked of the sentinels (instead of `url`).
    #[serde(default)]
    pub sentinel: Option<FileSentinel>,
    /// Decisions that must survive a failover wait for replicas (`WAIT`).
    #[serde(default)]
    pub wait: Option<FileStoreWait>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSentinel {
    /// The master's name in the sentinels' configuration (`sentinel monitor NAME ...`).
    #[serde(default)]
    pub master: Option<String>,
    /// The sentinels, `host:port` each.
    #[serde(default)]
    pub addrs: Option<Vec<String>>,
    /// The sentinels' password (`requirepass` of the sentinels), when they have one.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// The password of the master and its replicas, when they have one.
    #[serde(default)]
    pub redis_password_env: Option<String>,
    #[serde(default)]
    pub redis_password_file: Option<String>,
    /// The database number on the master (0 by default).
    #[serde(default)]
    pub db: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStoreWait {
    /// How many replicas must acknowledge a decision (0: none, no `WAIT`).
    #[serde(default)]
    pub replicas: Option<u32>,
    /// How long to wait for them (`500ms`); past it, the decision fails closed.
    #[serde(default)]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRoute {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matcher: Option<FileMatch>,
    #[serde(default)]
    pub require: Option<FileRequire>,
    #[serde(default)]
    pub forward: Vec<String>,
    /// The upstream (a key of `upstreams`) this route's requests go to; the default
    /// `upstream` when absent.
    #[serde(default)]
    pub upstream: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMatch {
    /// The request's host: `shop.example.com`, `*.example.com`, or a list of them.
    #[serde(default)]
    pub host: Option<OneOrMany>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    /// Methods outside RFC 9110's and RFC 5789's list, spelled in capitals (`PURGE`).
    #[serde(default)]
    pub extension_methods: Vec<String>,
    /// `refuse` (default): a method the route does not list gets 405; `next_route`: the
    /// request goes on to the next route.
    #[serde(default)]
    pub other_methods: Option<String>,
    #[serde(default)]
    pub case_sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequire {
    #[serde(default)]
    pub providers: Vec<String>,
    /// Kept as a YAML value so that `-1`, `"nineteen"` or `19.5` get a message naming the key.
    #[serde(default)]
    pub min_age: Option<serde_yaml::Value>,
    /// `youth_act` or `birthday`: how age counts against `min_age` (required with it).
    #[serde(default)]
    pub age_rule: Option<String>,
    #[serde(default)]
    pub one_account_per_person: bool,
    /// `person` (default: every accepted provider must give the same kind of identity) or
    /// `per_provider` (the merchant accepts one account per identity kind).
    #[serde(default)]
    pub one_account_scope: Option<String>,
    /// Which upstream answers complete a one-account signup: `2xx`, `3xx` or both (default:
    /// 2xx, 302 and 303; a 301, 307 or 308 was moved, not processed).
    #[serde(default)]
    pub commit_on: Option<Vec<String>>,
    #[serde(default)]
    pub max_session_age: Option<String>,
    /// After a person is forgotten (`POST /accounts/forget`), refuse their signup here for
    /// this long (`30d`): `409 rejoin_too_soon`.
    #[serde(default)]
    pub rejoin_after: Option<String>,
    /// A browser's form post that meets verification is kept and sent on after it: `true`
    /// (default), `false`, or `{ max_body: 256KB, ttl: 10m }`.
    #[serde(default)]
    pub keep_request: Option<FileKeep>,
    /// The duplicate-account page's primary button (`{ url: /login, label: 로그인 }`); "verify
    /// as someone else" comes second.
    #[serde(default)]
    pub on_duplicate: Option<FileOnDuplicate>,
    /// The route needs an age only: it also takes the age status (`session.age_status_ttl`)
    /// in place of a session, and tells the app the age and when it was checked, nothing else.
    #[serde(default)]
    pub age_status: bool,
    /// Children under an age need their guardian's consent here (PIPA 제22조의2,
    /// 게임산업법 제12조의3): `{ under: 14, age_rule: birthday, children: verified, ... }`.
    #[serde(default)]
    pub guardian_consent: Option<FileGuardianConsent>,
}

/// `require.guardian_consent`: who is a child here, how children come, and what the guardian
/// consents to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileGuardianConsent {
    /// Children under this age (1 to 19) need a guardian's consent. Kept as a YAML value so
    /// that `-1` or `"14"` get a message naming the key.
    #[serde(default)]
    pub under: Option<serde_yaml::Value>,
    /// `birthday` (PIPA: 만 나이) or `youth_act` (by year of birth).
    #[serde(default)]
    pub age_rule: Option<String>,
    /// `verified` (the child verifies first) or `stated_birth_date` (a child without a
    /// verification of their own states a birth date on verigate's page).
    #[serde(default)]
    pub children: Option<String>,
    /// The version of the merchant's consent text (recorded with each consent).
    #[serde(default)]
    pub text_version: Option<String>,
    /// What the child signs up for, shown to the guardian: `{ ko: ..., en: ... }`.
    #[serde(default)]
    pub text: Option<FileConsentText>,
    /// How long a guardian link lives (default 10m, 1m to 1h).
    #[serde(default)]
    pub link_ttl: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConsentText {
    #[serde(default)]
    pub ko: Option<String>,
    #[serde(default)]
    pub en: Option<String>,
}

/// `require.on_duplicate`: where a person who already has an account goes next.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOnDuplicate {
    /// `https://...` or a path on this site (`/login`).
    pub url: String,
    /// The button's text.
    pub label: String,
}

/// `require.keep_request`: `false` turns keeping off on the route; `true` or a map keeps.
#[derive(Debug)]
pub enum FileKeep {
    Off,
    On(FileKeepSettings),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileKeepSettings {
    /// The largest body kept (`256KB`, `1MB` or a number of bytes).
    #[serde(default)]
    pub max_body: Option<serde_yaml::Value>,
    /// How long a kept request waits for its verification.
    #[serde(default)]
    pub ttl: Option<String>,
}

impl<'de> Deserialize<'de> for FileKeep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = FileKeep;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a map with max_body and ttl")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<FileKeep, E> {
                Ok(match on {
                    true => FileKeep::On(FileKeepSettings::default()),
                    false => FileKeep::Off,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FileKeep, A::Error> {
                FileKeepSettings::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(FileKeep::On)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// Lets tests and `check` see the raw map when they need to.
pub type Extra = BTreeMap<String, serde_yaml::Value>;
