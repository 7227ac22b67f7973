//! Configuration: YAML file types (`file`) are validated once (`validate`) into the immutable
//! runtime types below, shared behind an `Arc`. Every problem names its key path.

pub mod common_names;
pub(crate) mod ctx;
pub mod duration;
pub mod file;
pub mod limits;
pub mod providers;
mod validate;

use crate::identity::Forward;
use crate::routing::RouteTable;
use crate::session::SessionConfig;
use crate::store::{Retention, StoreConfig};
use chrono_tz::Tz;
use http::HeaderName;
use providers::Providers;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use ctx::Secrets;
pub use validate::{from_yaml_str, records_from_yaml_str};

/// One problem in a config file, located by its key path (`routes[2].require.min_age`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } => vec![self.to_string()],
            ConfigError::Invalid(p) => p.iter().map(|p| p.to_string()).collect(),
        }
    }
}

/// Load and validate a config file, reading secrets from the process environment and files.
pub fn load_file(path: &Path) -> Result<RuntimeConfig, ConfigError> {
    from_file_text(&read(path)?, &Secrets::from_process(), path)
}

/// Validate the text of the config file at `path` (`verigate run`, `check`, a reload): a
/// relative store path is the file's neighbour ([`anchor_store`]).
pub fn from_file_text(
    text: &str,
    secrets: &Secrets,
    path: &Path,
) -> Result<RuntimeConfig, ConfigError> {
    let mut cfg = from_yaml_str(text, secrets)?;
    anchor_store(&mut cfg.store, path).map_err(|p| ConfigError::Invalid(vec![p]))?;
    Ok(cfg)
}

/// Load only what the record commands need from the config file at `path` (see
/// [`records_from_yaml_str`]), the store anchored like the service's.
pub fn load_records(path: &Path) -> Result<RecordsConfig, ConfigError> {
    let mut cfg = records_from_yaml_str(&read(path)?, &Secrets::from_process())?;
    anchor_store(&mut cfg.store, path).map_err(|p| ConfigError::Invalid(vec![p]))?;
    Ok(cfg)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// A relative SQLite `store.path` is resolved against the directory of the config file that
/// names it, so the service and an operator's shell open the same file wherever they stand.
/// The one place this is decided: the service, `check`, a reload and `accounts` all call it.
///
/// Earlier versions resolved it against the working directory: a database found there, and
/// none next to the config, is refused (starting on a new empty store would silently release
/// every one-account record).
pub fn anchor_store(store: &mut StoreConfig, config_file: &Path) -> Result<(), Problem> {
    let StoreConfig::Sqlite { path } = store else {
        return Ok(());
    };
    if !Path::new(path.as_str()).is_relative() {
        return Ok(());
    }
    let dir = match config_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let anchored = dir.join(path.as_str());
    let old = std::path::absolute(path.as_str()).ok();
    if let Some(old) = old.filter(|o| o.is_file() && !anchored.exists()) {
        return Err(Problem {
            path: "store.path".into(),
            message: format!(
                "`{path}` is resolved against the config file's directory ({}), where there is \
                 no database, but one is at {} (where earlier versions looked): write that \
                 absolute path in store.path",
                anchored.display(),
                old.display()
            ),
        });
    }
    *path = anchored.display().to_string();
    Ok(())
}

/// `records`: retention and the verification ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Records {
    pub retention: Retention,
    /// `records.ledger`: keep a line per accepted verification.
    pub ledger: bool,
}

/// What the record commands (`verigate accounts`) work with.
#[derive(Clone)]
pub struct RecordsConfig {
    pub store: StoreConfig,
    /// The key of the keyed hashes (as `SessionConfig::hash_key`).
    pub hash_key: [u8; 32],
    /// The longer of `session.ttl` and `session.age_status_ttl`: no session or age status
    /// lives longer, so a person's revocation need not either.
    pub session_ttl: Duration,
    /// The longest `routes[].require.rejoin_after` (`RuntimeConfig::rejoin_max`).
    pub rejoin_max: Option<Duration>,
    /// The one-account routes by name, with their `rejoin_after` (an erasure limited to one).
    pub one_account_routes: Vec<(String, Option<Duration>)>,
    pub records: Records,
}

impl fmt::Debug for RecordsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordsConfig")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Where verigate listens: a fixed address, or port 0 for an ephemeral one (tests, demo).
#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: std::net::SocketAddr,
}

/// TLS on the proxy listener. The certificate is read when the config is (at start, by `check`
/// and on every reload), so a reload serves renewed files to new connections.
#[derive(Clone)]
pub struct ListenerTls {
    pub cert_file: std::path::PathBuf,
    pub key_file: std::path::PathBuf,
    /// ALPN offers h2 before http/1.1.
    pub http2: bool,
    /// The chain and key, checked to belong together.
    pub certified: Arc<rustls::sign::CertifiedKey>,
}

impl std::fmt::Debug for ListenerTls {
    // The key never reaches a log: only where it came from.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerTls")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

/// One entry of an upstream's `addrs`: an address, or a name resolved at start and again in
/// the background (`crate::upstreams`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamAddr {
    Ip(std::net::SocketAddr),
    Name { host: String, port: u16 },
}

impl std::fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamAddr::Ip(a) => write!(f, "{a}"),
            UpstreamAddr::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// The name the top-level `upstream:` goes by (metrics, `/readyz`).
pub const DEFAULT_UPSTREAM: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its key under `upstreams`, or `default` for the top-level `upstream`.
    pub name: String,
    pub addrs: Vec<UpstreamAddr>,
    /// Consecutive failed connects after which an address is skipped for `eject_for`.
    pub eject_after: u32,
    pub eject_for: Duration,
    pub tls: bool,
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Send header names upstream spelled as the client sent them (`upstream.preserve_header_case`).
    /// Off by default: names go in canonical case, which HTTP says is the same header.
    pub preserve_header_case: bool,
    /// HTTP/2 to the app (`upstream.http2`): offered by ALPN with `tls` (HTTP/1.1 if the app
    /// declines), spoken outright without (h2c, prior knowledge: the app must speak it).
    pub http2: bool,
}

/// Signed identity assertions (`identity_headers.assertion`).
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    pub signer: Arc<crate::assertion::Signer>,
    /// Public keys published in the JWKS: the signing key first, then previous ones.
    pub published: Vec<crate::assertion::PublicJwk>,
}

#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub assertion: HeaderName,
    /// Lower-case prefix, with `-`; client headers are matched against it folded (see
    /// `gate::names`).
    pub prefix: String,
    pub unique_in_site: HeaderName,
    /// `X-Verified-Person`: the keyed hash of the person's CI (or PPID, member code).
    pub person: HeaderName,
    pub method: HeaderName,
    pub foreigner: HeaderName,
    pub carrier: HeaderName,
    pub age_ok: HeaderName,
    /// `X-Verified-Age-Checked-At`: on age-only routes, when the age was verified.
    pub age_checked_at: HeaderName,
    pub provider: HeaderName,
    pub verified_at: HeaderName,
    pub name: HeaderName,
    pub birth: HeaderName,
    pub gender: HeaderName,
    pub phone: HeaderName,
    /// `X-Verified-Guardian-Consent`: the consent record's id, on guardian-consent routes.
    pub guardian_consent: HeaderName,
    /// `X-Verified-Guardian-At`: when the guardian consented (RFC 3339 UTC).
    pub guardian_at: HeaderName,
    /// `X-Verified-Guardian-Name`, `-Birth`: where the route forwards them.
    pub guardian_name: HeaderName,
    pub guardian_birth: HeaderName,
    /// `prefix` and `assertion` folded as client header names are compared with them
    /// ([`folded`]): worked out once here, not on every request.
    pub prefix_folded: Box<[u8]>,
    pub assertion_folded: Box<[u8]>,
    /// Which common header names neither folds over ([`common_names::common_kept`]).
    pub common_kept: u32,
}

/// A header name folded as `gate::names` compares names: letters in lower case and digits,
/// every other byte left out (`X_Verified-` and `xverified` are one prefix).
pub fn folded(name: &str) -> Box<[u8]> {
    name.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase())
        .collect()
}

impl Default for IdentityHeaders {
    /// The names under the default prefix, `x-verified-`.
    fn default() -> Self {
        let h = HeaderName::from_static;
        IdentityHeaders {
            assertion: h("x-verified-assertion"),
            prefix: "x-verified-".into(),
            unique_in_site: h("x-verified-unique-in-site"),
            person: h("x-verified-person"),
            method: h("x-verified-method"),
            foreigner: h("x-verified-foreigner"),
            carrier: h("x-verified-carrier"),
            age_ok: h("x-verified-age-ok"),
            age_checked_at: h("x-verified-age-checked-at"),
            provider: h("x-verified-provider"),
            verified_at: h("x-verified-at"),
            name: h("x-verified-name"),
            birth: h("x-verified-birth"),
            gender: h("x-verified-gender"),
            phone: h("x-verified-phone"),
            prefix_folded: folded("x-verified-"),
            assertion_folded: folded("x-verified-assertion"),
            common_kept: common_names::common_kept(
                &folded("x-verified-"),
                &folded("x-verified-assertion"),
            ),
            guardian_consent: h("x-verified-guardian-consent"),
            guardian_at: h("x-verified-guardian-at"),
            guardian_name: h("x-verified-guardian-name"),
            guardian_birth: h("x-verified-guardian-birth"),
        }
    }
}

/// Where the embedded store lives when the config names none.
pub const DEFAULT_SQLITE_PATH: &str = "./verigate-state.db";

/// How upstream names are resolved (`resolver:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    pub interval: Duration,
    pub timeout: Duration,
    pub hosts_file: Option<std::path::PathBuf>,
    pub system: bool,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            hosts_file: None,
            system: true,
        }
    }
}

/// Where provider return URLs point (`public_url`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PublicUrls {
    /// Not set: the request's host, if a route names it (or no route names any host).
    #[default]
    FromHost,
    /// One URL for every request.
    One(String),
    /// One per host; a request for another host gets no return URL (400).
    PerHost(Vec<PublicUrl>),
}

/// One entry of a `public_url` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub host: crate::routing::HostPattern,
    /// `https`, `http`.
    pub scheme: String,
    /// `:8443`, or empty for the scheme's port.
    pub port: String,
    /// Any path after the host, without a trailing `/`.
    pub path: String,
}

impl PublicUrl {
    /// The base URL for a request to `host` (which this entry's pattern matches).
    pub fn base_for(&self, host: &str) -> String {
        let host = match &self.host {
            crate::routing::HostPattern::Exact(h) => h.as_str(),
            crate::routing::HostPattern::Under(_) => host,
        };
        format!(
            "{}://{}{}{}",
            self.scheme,
            host.to_ascii_lowercase(),
            self.port,
            self.path
        )
    }
}

/// Deadlines for slow clients and whom to believe about forwarding (a reload changes them for
/// new requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clients {
    /// From a request's first byte to the end of its headers.
    pub header_timeout: Duration,
    /// The longest pause while a request body arrives.
    pub body_idle_timeout: Duration,
    /// The longest one write to a client may wait (`clients.send_timeout`).
    pub send_timeout: Duration,
    /// Peers whose forwarding headers and request id are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where a request's id comes from (`clients.request_id`).
    pub request_id: RequestIdMode,
    /// How many kept requests may be live at once in the store (`clients.max_kept_requests`).
    pub max_kept_requests: u64,
    /// How many form posts one client (an IPv4 address, an IPv6 /64) may have kept within
    /// ten minutes, on this instance (`clients.max_kept_per_client`).
    pub max_kept_per_client: u32,
    /// How many form posts one network (an IPv4 /24, an IPv6 /48) may have kept within ten
    /// minutes, on this instance (`clients.max_kept_per_network`).
    pub max_kept_per_network: u32,
    /// Log the names (never the values) of request headers kept from the app
    /// (`clients.log_dropped_headers`).
    pub log_dropped_headers: bool,
}

/// Where a request's id (`X-Request-Id`, the access line's `request_id`, the id on
/// verigate's pages) comes from (`clients.request_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RequestIdMode {
    /// A trusted proxy's id when it sends a plain one, otherwise a fresh random one.
    #[default]
    Generate,
    /// A trusted proxy's id when it sends a plain one, otherwise none (nothing generated).
    TrustFromProxy,
    /// No request id: none generated, logged or shown. A trusted proxy's `X-Request-Id`
    /// reaches the app as it came.
    Off,
}

/// How the access line keeps a client's address (it is personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientLog {
    /// Its network: /24 for IPv4, /48 for IPv6.
    #[default]
    Truncated,
    Full,
    Off,
}

/// Who may call the admin listener's record API (`POST /accounts/forget`).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum AdminAccess {
    /// Nobody: no token is configured (the API answers 401).
    #[default]
    Closed,
    /// A client presenting this bearer token (`admin.token_env` / `token_file`).
    Token(String),
    /// Anyone who reaches the loopback-only listener (`admin.allow_unauthenticated_loopback`).
    Loopback,
}

impl fmt::Debug for AdminAccess {
    // The token never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAccess::Closed => write!(f, "Closed"),
            AdminAccess::Token(_) => write!(f, "Token(..)"),
            AdminAccess::Loopback => write!(f, "Loopback"),
        }
    }
}

/// Pingora runtime settings; they take effect at start (a reload may not change them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    pub work_stealing: bool,
    pub upstream_keepalive_pool: usize,
    pub listener_tasks: usize,
}

/// The validated configuration every request reads. Immutable; reload builds a new one.
#[derive(Debug)]
pub struct RuntimeConfig {
    pub listen: Listen,
    /// TLS (and HTTP/2) on `listen`.
    pub tls: Option<ListenerTls>,
    /// The plain-HTTP listener that redirects to HTTPS (`redirect_http_listen`).
    pub redirect_http: Option<Listen>,
    /// The port redirects to HTTPS name, when not the listener's own (`redirect_https_port`).
    pub redirect_https_port: Option<u16>,
    pub admin_listen: Option<Listen>,
    /// Who may call the admin listener's record API (`admin`).
    pub admin: AdminAccess,
    /// `listen` / `admin_listen` as written (what a reload may not change).
    pub listen_spec: String,
    pub admin_spec: Option<String>,
    pub redirect_spec: Option<String>,
    /// Every upstream: the top-level `upstream` (if any) first, then `upstreams` by name.
    /// Routes name theirs by index.
    pub upstreams: Vec<Upstream>,
    pub resolver: ResolverConfig,
    pub flow_prefix: String,
    pub public_url: PublicUrls,
    pub timezone: Tz,
    /// `site.name`: the service name given to the providers' windows.
    pub site_name: Option<String>,
    /// What every page verigate shows carries of the shop (`site`), and the HSTS header of
    /// the TLS listener (`tls.hsts`).
    pub frame: crate::answers::Frame,
    pub threads: usize,
    pub tuning: Tuning,
    pub clients: Clients,
    /// Rate limits (`limits`).
    pub limits: crate::ratelimit::settings::Limits,
    pub session: SessionConfig,
    pub identity: IdentityHeaders,
    pub assertion: Option<AssertionConfig>,
    /// One JSON access-log line per request.
    pub access_log: bool,
    pub access_log_client: ClientLog,
    pub providers: Providers,
    pub store: StoreConfig,
    pub routes: RouteTable,
    /// What any route forwards: the session keeps only these personal fields.
    pub keep_in_session: Forward,
    /// `records`: retention and the ledger.
    pub records: Records,
    /// What is valid but probably not meant (a provider's sandbox host, say), each with its
    /// key path: `verigate check` prints them, `verigate run` logs them at start.
    pub warnings: Vec<Problem>,
}

pub type SharedConfig = Arc<RuntimeConfig>;

impl RuntimeConfig {
    /// The longest `require.rejoin_after` of any route: how long an erasure's rejoin marker
    /// must live.
    pub fn rejoin_max(&self) -> Option<Duration> {
        self.routes
            .routes()
            .iter()
            .filter_map(|r| r.require.as_ref()?.rejoin_after)
            .max()
    }

    /// The one-account routes by name, with their `rejoin_after`.
    pub fn one_account_routes(&self) -> Vec<(String, Option<Duration>)> {
        self.routes
            .routes()
            .iter()
            .filter_map(|r| {
                let q = r.require.as_ref()?;
                q.one_account_per_person
                    .then(|| (r.name.clone(), q.rejoin_after))
            })
            .collect()
    }

    /// The upstream route `idx` sends its requests to.
    pub fn upstream_of(&self, route: usize) -> Option<&Upstream> {
        let i = self.routes.get(route).map_or(0, |r| r.upstream);
        self.upstreams.get(i)
    }

    /// The longest `read_timeout` of any upstream.
    pub fn longest_read_timeout(&self) -> Duration {
        self.upstreams
            .iter()
            .map(|u| u.read_timeout)
            .max()
            .unwrap_or_default()
    }
}
