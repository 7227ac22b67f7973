//! The apps behind verigate, as the proxy reaches them: each configured upstream is a [`Pool`]
//! of addresses. Names (`app:8080`) are resolved at start and again every
//! `resolver.interval` (all their addresses used); a name that stops resolving keeps its last
//! good addresses. An address whose connects fail is skipped for `eject_for` (passive health);
//! when every address is skipped they are all tried anyway: health fails open, the gate never
//! does. Below the live config: imports config types and metrics only.

pub mod resolve;

use crate::config::{ResolverConfig, Upstream, UpstreamAddr};
use arc_swap::ArcSwap;
use prometheus::{IntCounter, IntGauge};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One address of a pool, with its passive-health state.
#[derive(Debug)]
struct Backend {
    addr: SocketAddr,
    /// Skipped until this time (ms on the pool's clock; 0: not skipped).
    ejected_until: AtomicU64,
    /// Failed connects in a row.
    failures: AtomicU32,
}

impl Backend {
    fn new(addr: SocketAddr) -> Arc<Backend> {
        Arc::new(Backend {
            addr,
            ejected_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
        })
    }

    fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }
}

/// What the last resolution of one `addrs` entry gave.
#[derive(Debug, Clone, Default)]
struct EntryState {
    /// The last good addresses (an IP entry: itself).
    addrs: Vec<SocketAddr>,
    /// Why the last resolution failed (None: it succeeded, or it is an address).
    failing: Option<String>,
}

/// Metric handles of one pool (looked up once, not per request).
struct PoolMetrics {
    addresses: IntGauge,
    unresolved: IntGauge,
    ejected: IntGauge,
    resolve_failures: IntCounter,
    connect_failures: IntCounter,
    ejections: IntCounter,
    skipped: IntCounter,
}

impl PoolMetrics {
    fn new(name: &str) -> PoolMetrics {
        use crate::metrics as m;
        let l = [name];
        PoolMetrics {
            addresses: m::UPSTREAM_ADDRESSES.with_label_values(&l),
            unresolved: m::UPSTREAM_UNRESOLVED.with_label_values(&l),
            ejected: m::UPSTREAM_EJECTED.with_label_values(&l),
            resolve_failures: m::UPSTREAM_RESOLVE_FAILURES.with_label_values(&l),
            connect_failures: m::UPSTREAM_CONNECT_FAILURES.with_label_values(&l),
            ejections: m::UPSTREAM_EJECTIONS.with_label_values(&l),
            skipped: m::UPSTREAM_SKIPPED.with_label_values(&l),
        }
    }
}

/// How a pool stands, for `/readyz` and `verigate check`.
#[derive(Debug, Clone)]
pub struct PoolStatus {
    pub name: String,
    pub addresses: usize,
    pub ejected: usize,
    /// `(entry, why)` of each name whose last resolution failed.
    pub failing: Vec<(String, String)>,
}

impl PoolStatus {
    /// No address at all: requests for it get `502 upstream_unavailable`.
    pub fn ready(&self) -> bool {
        self.addresses > 0
    }
}

pub struct Pool {
    pub spec: Upstream,
    backends: ArcSwap<Vec<Arc<Backend>>>,
    entries: Mutex<Vec<EntryState>>,
    next: AtomicUsize,
    /// When the names were last resolved (ms on the pool's clock + 1; 0: never).
    resolved_at: AtomicU64,
    metrics: PoolMetrics,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("spec", &self.spec).finish()
    }
}

impl Pool {
    /// A pool for `spec`; its IP addresses are ready at once, its names after [`Pool::refresh`].
    pub fn new(spec: Upstream) -> Pool {
        let entries: Vec<EntryState> = spec
            .addrs
            .iter()
            .map(|a| match a {
                UpstreamAddr::Ip(ip) => EntryState {
                    addrs: vec![*ip],
                    failing: None,
                },
                UpstreamAddr::Name { .. } => EntryState {
                    addrs: Vec::new(),
                    failing: Some("not resolved yet".into()),
                },
            })
            .collect();
        let metrics = PoolMetrics::new(&spec.name);
        let pool = Pool {
            spec,
            backends: ArcSwap::from_pointee(Vec::new()),
            entries: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            resolved_at: AtomicU64::new(0),
            metrics,
        };
        pool.install(entries);
        pool
    }

    /// Does this pool hold any name to resolve?
    pub fn has_names(&self) -> bool {
        self.spec
            .addrs
            .iter()
            .any(|a| matches!(a, UpstreamAddr::Name { .. }))
    }

    /// Milliseconds on the process's clock for pools (shared, so a pool that inherits
    /// another's state after a reload reads its times as they were meant).
    fn now_ms(&self) -> u64 {
        static EPOCH: once_cell::sync::Lazy<Instant> = once_cell::sync::Lazy::new(Instant::now);
        EPOCH.elapsed().as_millis() as u64 + 1
    }

    /// Is a resolution due (never resolved, or `interval` since the last)?
    pub fn due(&self, interval: Duration) -> bool {
        let at = self.resolved_at.load(Ordering::Relaxed);
        self.has_names() && (at == 0 || self.now_ms() >= at + interval.as_millis() as u64)
    }

    /// Resolve every name now (blocking: file reads and getaddrinfo, each bounded by
    /// `resolver.timeout`). A name that fails keeps its last good addresses.
    pub fn refresh(&self, cfg: &ResolverConfig) {
        let previous = self.entries.lock().map(|e| e.clone()).unwrap_or_default();
        let mut entries = Vec::with_capacity(self.spec.addrs.len());
        for (i, a) in self.spec.addrs.iter().enumerate() {
            let last = previous.get(i).cloned().unwrap_or_default();
            let state = match a {
                UpstreamAddr::Ip(ip) => EntryState {
                    addrs: vec![*ip],
                    failing: None,
                },
                UpstreamAddr::Name { host, port } => match resolve_within(cfg, host, *port) {
                    Ok(addrs) => {
                        if last.failing.is_some() && !last.addrs.is_empty() {
                            tracing::info!(upstream = %self.spec.name, name = %a, "upstream name resolves again");
                        }
                        EntryState {
                            addrs,
                            failing: None,
                        }
                    }
                    Err(e) => {
                        self.metrics.resolve_failures.inc();
                        // Logged when it starts failing, not at every interval.
                        if last.failing.is_none() || self.resolved_at.load(Ordering::Relaxed) == 0 {
                            tracing::warn!(upstream = %self.spec.name, name = %a, error = %e, kept = last.addrs.len(), "upstream name does not resolve; keeping its last good addresses");
                        }
                        EntryState {
                            addrs: last.addrs,
                            failing: Some(e.to_string()),
                        }
                    }
                },
            };
            entries.push(state);
        }
        self.install(entries);
        self.resolved_at.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Make `entries` the pool's addresses; an address already there keeps its health.
    fn install(&self, entries: Vec<EntryState>) {
        let old = self.backends.load();
        let mut list: Vec<Arc<Backend>> = Vec::new();
        for a in entries.iter().flat_map(|e| e.addrs.iter()) {
            if list.iter().any(|b| b.addr == *a) {
                continue;
            }
            let kept = old.iter().find(|b| b.addr == *a).cloned();
            list.push(kept.unwrap_or_else(|| Backend::new(*a)));
        }
        self.metrics.addresses.set(list.len() as i64);
        self.metrics
            .unresolved
            .set(entries.iter().filter(|e| e.failing.is_some()).count() as i64);
        self.backends.store(Arc::new(list));
        if let Ok(mut e) = self.entries.lock() {
            *e = entries;
        }
    }

    /// Carry the addresses and health of `old` (the same upstream before a reload) over.
    pub fn inherit(&self, old: &Pool) {
        if old.spec.addrs != self.spec.addrs {
            return;
        }
        let entries = old.entries.lock().map(|e| e.clone()).unwrap_or_default();
        self.backends.store(old.backends.load_full());
        self.install(entries);
        self.resolved_at
            .store(old.resolved_at.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The address for the next attempt: round robin over the addresses not skipped and not
    /// yet tried by this request; failing that, any not yet tried; failing that, any (health
    /// fails open). None when the pool has no address at all.
    pub fn pick(&self, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let list = self.backends.load();
        let n = list.len();
        if n == 0 {
            return None;
        }
        // The clock is read only when some address has been set aside.
        let mut now = None;
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let nth = |k: usize| &list[(start + k) % n];
        let mut skipped = false;
        for k in 0..n {
            let b = nth(k);
            if tried.contains(&b.addr) {
                continue;
            }
            let until = b.ejected_until.load(Ordering::Relaxed);
            if until != 0 && until > *now.get_or_insert_with(|| self.now_ms()) {
                skipped = true;
                continue;
            }
            if skipped {
                self.metrics.skipped.inc();
            }
            return Some(b.addr);
        }
        let fallback = (0..n)
            .map(nth)
            .find(|b| !tried.contains(&b.addr))
            .unwrap_or_else(|| nth(0));
        Some(fallback.addr)
    }

    /// Is there an address this request has not tried yet?
    pub fn untried(&self, tried: &[SocketAddr]) -> bool {
        self.backends
            .load()
            .iter()
            .any(|b| !tried.contains(&b.addr))
    }

    /// A connect to `addr` failed: after `eject_after` in a row it is skipped for `eject_for`.
    pub fn connect_failed(&self, addr: SocketAddr) {
        self.metrics.connect_failures.inc();
        let list = self.backends.load();
        let Some(b) = list.iter().find(|b| b.addr == addr) else {
            return;
        };
        let n = b.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.spec.eject_after {
            b.failures.store(0, Ordering::Relaxed);
            let until = self.now_ms() + self.spec.eject_for.as_millis() as u64;
            b.ejected_until.store(until, Ordering::Relaxed);
            self.metrics.ejections.inc();
            tracing::warn!(upstream = %self.spec.name, addr = %addr, skipped_for_s = self.spec.eject_for.as_secs(), "upstream address refused a connection; skipping it for a while");
        }
    }

    /// A connect to `addr` succeeded: its count of failures starts over.
    pub fn connect_ok(&self, addr: SocketAddr) {
        let list = self.backends.load();
        if let Some(b) = list.iter().find(|b| b.addr == addr) {
            if b.failures.load(Ordering::Relaxed) != 0 {
                b.failures.store(0, Ordering::Relaxed);
            }
            if b.ejected_until.load(Ordering::Relaxed) != 0 {
                b.ejected_until.store(0, Ordering::Relaxed);
            }
        }
    }

    /// The pool as it stands (also sets the `verigate_upstream_ejected` gauge).
    pub fn status(&self) -> PoolStatus {
        let now = self.now_ms();
        let list = self.backends.load();
        let ejected = list.iter().filter(|b| b.ejected(now)).count();
        self.metrics.ejected.set(ejected as i64);
        let entries = self.entries.lock().map(|e| e.clone()).unwrap_or_default();
        let failing = self
            .spec
            .addrs
            .iter()
            .zip(entries.iter())
            .filter_map(|(a, e)| e.failing.clone().map(|why| (a.to_string(), why)))
            .collect();
        PoolStatus {
            name: self.spec.name.clone(),
            addresses: list.len(),
            ejected,
            failing,
        }
    }

    /// The addresses in use, in order (tests, `/readyz`).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.backends.load().iter().map(|b| b.addr).collect()
    }
}

/// For `verigate check`: every upstream name that does not resolve now, with its key path (a
/// warning, not an error: verigate starts anyway and keeps trying).
pub fn check_names(cfg: &crate::config::RuntimeConfig) -> Vec<crate::config::Problem> {
    let mut out = Vec::new();
    for (k, u) in cfg.upstreams.iter().enumerate() {
        let at = match (k, u.name.as_str()) {
            (0, crate::config::DEFAULT_UPSTREAM) => "upstream".to_string(),
            _ => format!("upstreams.{}", u.name),
        };
        for (i, a) in u.addrs.iter().enumerate() {
            if let UpstreamAddr::Name { host, port } = a {
                if let Err(e) = resolve_within(&cfg.resolver, host, *port) {
                    out.push(crate::config::Problem {
                        path: format!("{at}.addrs[{i}]"),
                        message: format!(
                            "{e}: requests for this upstream get 502 until it resolves"
                        ),
                    });
                }
            }
        }
    }
    out
}

/// [`resolve::resolve`], given up after `cfg.timeout` (the lookup's thread is left to end
/// by itself: getaddrinfo cannot be cancelled).
pub fn resolve_within(
    cfg: &ResolverConfig,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, resolve::ResolveError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (c, h) = (cfg.clone(), host.to_string());
    let spawned = std::thread::Builder::new()
        .name("verigate-resolve".into())
        .spawn(move || {
            let _ = tx.send(resolve::resolve(&c, &h, port));
        });
    if spawned.is_err() {
        return resolve::resolve(cfg, host, port);
    }
    rx.recv_timeout(cfg.timeout)
        .unwrap_or_else(|_| Err(resolve::ResolveError::Timeout(host.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addrs: &[&str]) -> Upstream {
        Upstream {
            name: "t".into(),
            addrs: addrs
                .iter()
                .map(|a| match a.parse() {
                    Ok(ip) => UpstreamAddr::Ip(ip),
                    Err(_) => {
                        let (h, p) = a.rsplit_once(':').unwrap();
                        UpstreamAddr::Name {
                            host: h.into(),
                            port: p.parse().unwrap(),
                        }
                    }
                })
                .collect(),
            eject_after: 2,
            eject_for: Duration::from_secs(60),
            tls: false,
            sni: String::new(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            preserve_header_case: false,
            http2: false,
        }
    }

    #[test]
    fn failed_addresses_are_skipped_until_none_is_left() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let p = Pool::new(spec(&["127.0.0.1:1", "127.0.0.1:2"]));
        let mut seen: Vec<SocketAddr> = (0..4).filter_map(|_| p.pick(&[])).collect();
        seen.sort();
        assert_eq!(seen, vec![a, a, b, b]);
        // One failure is not yet enough (eject_after: 2); two in a row are.
        p.connect_failed(a);
        assert!((0..4).filter_map(|_| p.pick(&[])).any(|x| x == a));
        p.connect_failed(a);
        assert!((0..4).filter_map(|_| p.pick(&[])).all(|x| x == b));
        assert_eq!(p.status().ejected, 1);
        // A retry of the same request goes elsewhere; both skipped: still tried.
        assert_eq!(p.pick(&[b]), Some(a));
        p.connect_failed(b);
        p.connect_failed(b);
        assert_eq!(p.status().ejected, 2);
        assert!(p.pick(&[]).is_some());
        p.connect_ok(a);
        assert!((0..4).filter_map(|_| p.pick(&[])).all(|x| x == a));
    }

    #[test]
    fn names_keep_their_last_good_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        let cfg = ResolverConfig {
            hosts_file: Some(hosts.clone()),
            system: false,
            ..ResolverConfig::default()
        };
        let p = Pool::new(spec(&["app:80", "10.0.0.9:80"]));
        assert_eq!(p.addresses(), vec!["10.0.0.9:80".parse().unwrap()]);
        assert_eq!(p.status().failing.len(), 1);
        std::fs::write(&hosts, "127.0.0.5 app\n127.0.0.6 app\n").unwrap();
        p.refresh(&cfg);
        let want: Vec<SocketAddr> = ["127.0.0.5:80", "127.0.0.6:80", "10.0.0.9:80"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(p.addresses(), want);
        assert!(p.status().failing.is_empty());
        std::fs::write(&hosts, "").unwrap();
        p.refresh(&cfg);
        assert_eq!(p.addresses(), want, "last good set kept");
        assert_eq!(p.status().failing.len(), 1);
        std::fs::write(&hosts, "127.0.0.7 app\n").unwrap();
        p.refresh(&cfg);
        assert_eq!(
            p.addresses(),
            vec![
                "127.0.0.7:80".parse::<SocketAddr>().unwrap(),
                "10.0.0.9:80".parse().unwrap()
            ]
        );
    }
}
