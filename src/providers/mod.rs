//! Identity providers: one folder per provider (`iamport/`, ...: its API client, flow
//! endpoints and simulator) and the kit they share: this file (a [`VerifiedPerson`], the HTTP
//! client with its circuit breaker and single-flight token cache), `flow`, `accept`, `registry`
//! and `sandbox`. Their settings are `config::providers`. The list of providers is
//! `identity::each_provider!`.

pub mod accept;
pub mod flow;
pub mod guardian;
pub mod registry;
pub mod sandbox;
pub mod web;

pub mod iamport;
pub mod ifree;
pub mod portone;
pub mod tomo;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use futures::future::{BoxFuture, FutureExt, WeakShared};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::identity::ProviderId;
use crate::live::provider::ProviderError;

/// A person as a provider vouched for them. `ci` lives only in memory, long enough to hash it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedPerson {
    pub provider: ProviderId,
    /// The provider's result id (Iamport `imp_uid`): the replay guard's key.
    pub result_id: String,
    /// The nonce the result was made for (Iamport `merchant_uid`).
    pub nonce: String,
    pub certified: bool,
    pub unique_in_site: Option<String>,
    pub ci: Option<String>,
    pub birth: Option<NaiveDate>,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub phone: Option<String>,
    /// Whether the person is a foreign national, as the provider verified it (None: not
    /// given, or typed by the person: KG이니시스 통합인증).
    pub foreigner: Option<bool>,
    /// The mobile carrier (`SKT`, `KT`, `LGU`, `SKT_MVNO`, ...), where the provider gives it.
    pub carrier: Option<String>,
    /// How the person verified, after the provider's name in `X-Verified-Method`: the PG or
    /// channel (`danal`, `inicis_unified`, `inicis`), or the provider's one method.
    pub method: String,
    pub verified_at: DateTime<Utc>,
}

/// PGs whose window lets the person type gender and the foreigner flag rather than verifying
/// them (KG이니시스 통합인증): those values are never passed on as verified.
pub fn typed_by_person(method: &str) -> bool {
    method == "inicis_unified"
}

impl std::fmt::Debug for VerifiedPerson {
    // Personal data never reaches logs, even through a stray `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPerson")
            .field("provider", &self.provider)
            .field("certified", &self.certified)
            .field("verified_at", &self.verified_at)
            .finish_non_exhaustive()
    }
}

/// A date of birth as a provider writes it (TomoIDV: format unconfirmed; ifree): exactly `YYYY-MM-DD` or
/// `YYYYMMDD`, a real date from 1900 on. Anything else (`1990-1-1`, `+1990-01-01`, year 1) is
/// unknown, so it never passes a `min_age` route.
pub fn parse_dob(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let (y, m, d) = match b.len() {
        10 if b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7) && digits(8..10) => {
            (&s[0..4], &s[5..7], &s[8..10])
        }
        8 if digits(0..8) => (&s[0..4], &s[4..6], &s[6..8]),
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    (date.year() >= 1900).then_some(date)
}

pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(3)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("verigate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ProviderError::Unavailable(format!("http client: {e}")))
}

pub(crate) fn transport_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() || e.is_connect() || e.is_request() {
        ProviderError::Unavailable(e.without_url().to_string())
    } else {
        ProviderError::BadResponse(e.without_url().to_string())
    }
}

/// One request to a provider through its circuit breaker: its status and whole body. Only
/// the transport can fail here (unreachable, timed out: `Unavailable`); what the provider
/// answered is for the caller to read.
pub(crate) async fn exchange(
    breaker: &Breaker,
    req: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, bytes::Bytes), ProviderError> {
    breaker
        .call(async {
            let resp = req.send().await.map_err(transport_error)?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(transport_error)?;
            Ok((status, body))
        })
        .await
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a few assignments that cannot leave a torn state.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Flight = BoxFuture<'static, Result<String, ProviderError>>;

#[derive(Default)]
struct TokenSlot {
    /// The token and when to stop using it.
    token: Option<(String, Instant)>,
    /// The fetch in flight, if any waiter still wants it (weak: when every waiter has gone,
    /// the fetch is dropped with them), and its number.
    flight: Option<(u64, WeakShared<Flight>)>,
    flights: u64,
}

/// A provider's cached access token: fetched once per lifetime whatever the concurrency, and
/// refreshed `margin` before it ends, dropped on a 401.
///
/// Single flight: the first caller that finds no valid token starts one fetch; every caller
/// that comes while it runs waits on that same fetch, and all of them get its one result, the
/// token or the error. A failure is not retried by each waiter in turn: the next fetch starts
/// only when a caller comes after this one ended. The lock is held only to look at the slot,
/// never across the fetch, so a provider that hangs holds every waiter for at most one call's
/// timeout. A fetch whose waiters have all gone (their clients disconnected) is dropped.
pub(crate) struct TokenCache {
    provider: &'static str,
    slot: Arc<Mutex<TokenSlot>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(provider: &'static str) -> Self {
        TokenCache {
            provider,
            slot: Default::default(),
            fetches: Default::default(),
        }
    }

    /// The cached token, or the one the fetch in flight gets, or a fresh one from `fetch`
    /// (which answers the token and its life). `fetch` is called only to start a fetch.
    pub(crate) async fn get<F, Fut>(
        &self,
        margin: Duration,
        fetch: F,
    ) -> Result<String, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(String, Duration), ProviderError>> + Send + 'static,
    {
        let flight = {
            let mut slot = lock(&self.slot);
            if let Some((value, until)) = slot.token.as_ref() {
                if Instant::now() < *until {
                    return Ok(value.clone());
                }
            }
            match slot.flight.as_ref().and_then(|(_, f)| f.upgrade()) {
                Some(joined) => joined,
                None => {
                    self.fetches
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    crate::metrics::provider_token_fetch(self.provider);
                    slot.flights += 1;
                    let number = slot.flights;
                    let fut = fetch();
                    let cache = self.slot.clone();
                    let flight: Flight = async move {
                        let got = fut.await;
                        let mut slot = lock(&cache);
                        if slot.flight.as_ref().is_some_and(|(n, _)| *n == number) {
                            slot.flight = None;
                        }
                        let (value, life) = got?;
                        let keep = life.saturating_sub(margin.min(life / 2));
                        slot.token = Some((value.clone(), Instant::now() + keep));
                        Ok(value)
                    }
                    .boxed();
                    let flight = flight.shared();
                    slot.flight = flight.downgrade().map(|w| (number, w));
                    flight
                }
            }
        };
        flight.await
    }

    /// Drop `value` if it is still the cached token (the provider refused it).
    pub(crate) fn forget(&self, value: &str) {
        let mut slot = lock(&self.slot);
        if slot.token.as_ref().is_some_and(|(v, _)| v == value) {
            slot.token = None;
        }
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Consecutive failed calls to a provider (unreachable or timed out) that open its circuit.
pub const BREAKER_FAILURES: u32 = 5;
/// How long an open circuit refuses calls before it lets one trial call through.
pub const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    /// Calls go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Calls fail fast until `until`; then one trial call goes through (`trial` while it runs).
    Open { until: Instant, trial: bool },
}

/// A provider's circuit breaker. After [`BREAKER_FAILURES`] calls in a row fail as
/// `Unavailable` (no connection, or no answer within the provider's `timeout`), the circuit
/// opens: for [`BREAKER_OPEN_FOR`] every call fails at once with `Unavailable` (`503
/// provider_unavailable`) without touching the network. Then it is half-open: one trial call
/// goes through while the others still fail fast; its success closes the circuit, its failure
/// opens it for another period. Any answer from the provider, even an error such as a 404 or a
/// refused token, counts as a success: the provider is there. A call dropped before it ended
/// (its client left) counts as neither.
pub(crate) struct Breaker {
    provider: &'static str,
    state: Mutex<Circuit>,
    open: prometheus::IntGauge,
    fast_failures: prometheus::IntCounter,
}

/// Leave to make one call; say how it went with [`Permit::done`].
pub(crate) struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    done: bool,
}

impl Breaker {
    pub(crate) fn new(provider: &'static str) -> Arc<Self> {
        Arc::new(Breaker {
            provider,
            state: Mutex::new(Circuit::Closed { failures: 0 }),
            open: crate::metrics::PROVIDER_CIRCUIT_OPEN.with_label_values(&[provider]),
            fast_failures: crate::metrics::PROVIDER_FAST_FAILURES.with_label_values(&[provider]),
        })
    }

    /// Run one provider call through the breaker: refused at once while the circuit is open.
    pub(crate) async fn call<T, Fut>(&self, call: Fut) -> Result<T, ProviderError>
    where
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let permit = self.admit(Instant::now())?;
        let r = call.await;
        permit.done(
            matches!(r, Err(ProviderError::Unavailable(_))),
            Instant::now(),
        );
        r
    }

    fn admit(&self, now: Instant) -> Result<Permit<'_>, ProviderError> {
        let mut state = lock(&self.state);
        let trial = match *state {
            Circuit::Closed { .. } => false,
            Circuit::Open {
                until,
                trial: false,
            } if now >= until => {
                *state = Circuit::Open { until, trial: true };
                true
            }
            Circuit::Open { .. } => {
                drop(state);
                self.fast_failures.inc();
                return Err(ProviderError::Unavailable(format!(
                    "{} circuit open after {BREAKER_FAILURES} failed calls in a row: \
                     refused without calling",
                    self.provider
                )));
            }
        };
        Ok(Permit {
            breaker: self,
            trial,
            done: false,
        })
    }

    #[cfg(test)]
    fn is_open(&self) -> bool {
        matches!(*lock(&self.state), Circuit::Open { .. })
    }
}

impl Permit<'_> {
    /// The call ended: `failed` when the provider was unreachable or too slow.
    fn done(mut self, failed: bool, now: Instant) {
        self.done = true;
        let b = self.breaker;
        let mut state = lock(&b.state);
        let before = *state;
        *state = match (before, failed) {
            (_, false) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, true) if failures + 1 >= BREAKER_FAILURES => {
                Circuit::Open {
                    until: now + BREAKER_OPEN_FOR,
                    trial: false,
                }
            }
            (Circuit::Closed { failures }, true) => Circuit::Closed {
                failures: failures + 1,
            },
            // The trial failed: open for another period.
            (Circuit::Open { .. }, true) if self.trial => Circuit::Open {
                until: now + BREAKER_OPEN_FOR,
                trial: false,
            },
            // A call let through before the circuit opened: it is open already.
            (open @ Circuit::Open { .. }, true) => open,
        };
        let after = *state;
        drop(state);
        match (before, after) {
            (Circuit::Closed { .. }, Circuit::Open { .. }) => {
                b.open.inc();
                tracing::warn!(
                    provider = b.provider,
                    failures = BREAKER_FAILURES,
                    open_for_s = BREAKER_OPEN_FOR.as_secs(),
                    "provider circuit opened: calls fail fast until a trial call succeeds"
                );
            }
            (Circuit::Open { .. }, Circuit::Closed { .. }) => {
                b.open.dec();
                tracing::info!(provider = b.provider, "provider circuit closed");
            }
            _ => {}
        }
    }
}

impl Drop for Breaker {
    fn drop(&mut self) {
        // The gauge counts open circuits of live clients (a reload may replace one).
        if matches!(*lock(&self.state), Circuit::Open { .. }) {
            self.open.dec();
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // A trial dropped before it ended (its client left) frees the place for the next one.
        if self.trial && !self.done {
            let mut state = lock(&self.breaker.state);
            if let Circuit::Open { until, trial: true } = *state {
                *state = Circuit::Open {
                    until,
                    trial: false,
                };
            }
        }
    }
}

/// How often a flow request waiting on a provider looks whether its client is still there.
pub const CLIENT_CHECK_EVERY: Duration = Duration::from_millis(200);

/// Resolves, with the error to end the request with, once the client of `session` has closed
/// its connection (FIN or RST). Pingora does not watch the downstream connection while
/// `request_filter` runs, so without this a provider call would go on after its client left,
/// until the provider answered or the call timed out. It reads the kernel's TCP state of the
/// connection every [`CLIENT_CHECK_EVERY`] (one `getsockopt`); where that state is unknown
/// (not TCP, or not Linux) it never resolves and the provider's `timeout` bounds the call.
pub fn client_gone(
    session: &pingora::proxy::Session,
    provider: ProviderId,
) -> impl Future<Output = Box<pingora::Error>> + Send + 'static {
    // Linux's tcp_states.h: the peer sent FIN (CLOSE_WAIT) or RST (CLOSE).
    const TCP_CLOSE: u8 = 7;
    const TCP_CLOSE_WAIT: u8 = 8;
    let socket = session.digest().and_then(|d| d.socket_digest.clone());
    async move {
        let Some(socket) = socket else {
            return std::future::pending().await;
        };
        let mut every = tokio::time::interval(CLIENT_CHECK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match socket.tcp_info().map(|i| i.tcpi_state) {
                Some(TCP_CLOSE | TCP_CLOSE_WAIT) => break,
                Some(_) => {}
                None => return std::future::pending().await,
            }
        }
        crate::metrics::client_gone(provider.as_str());
        pingora::Error::explain(
            pingora::ErrorType::ConnectionClosed,
            "the client left while verigate waited on the provider",
        )
        .into_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(b: &Breaker) -> bool {
        !b.is_open()
    }

    #[test]
    fn breaker_opens_after_failures_in_a_row_and_closes_on_a_trial_success() {
        let b = Breaker::new("test-breaker");
        let t0 = Instant::now();
        // Failures short of the threshold, then a success: the count starts again.
        for _ in 0..BREAKER_FAILURES - 1 {
            b.admit(t0).unwrap().done(true, t0);
        }
        b.admit(t0).unwrap().done(false, t0);
        for _ in 0..BREAKER_FAILURES - 1 {
            b.admit(t0).unwrap().done(true, t0);
            assert!(closed(&b));
        }
        b.admit(t0).unwrap().done(true, t0);
        assert!(b.is_open());
        assert_eq!(b.open.get(), 1, "the one open circuit of this label");
        // Open: refused without a call, counted.
        let before = b.fast_failures.get();
        let just_before = t0 + BREAKER_OPEN_FOR - Duration::from_millis(1);
        assert!(matches!(
            b.admit(just_before),
            Err(ProviderError::Unavailable(_))
        ));
        assert_eq!(b.fast_failures.get(), before + 1);
        // Half-open: one trial at a time.
        let t1 = t0 + BREAKER_OPEN_FOR;
        let trial = b.admit(t1).unwrap();
        assert!(b.admit(t1).is_err(), "only one trial call");
        // A failed trial opens it for another period.
        trial.done(true, t1);
        assert!(b.admit(t1 + Duration::from_secs(1)).is_err());
        let t2 = t1 + BREAKER_OPEN_FOR;
        // A trial dropped unfinished (its client left) lets the next caller try.
        drop(b.admit(t2).unwrap());
        let trial = b.admit(t2).unwrap();
        trial.done(false, t2);
        assert!(closed(&b));
        assert_eq!(b.open.get(), 0, "closed again");
        b.admit(t2).unwrap().done(false, t2);
    }

    #[test]
    fn answers_that_are_errors_are_not_breaker_failures() {
        let b = Breaker::new("test-breaker-answers");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..BREAKER_FAILURES * 2 {
                let r: Result<(), _> = b.call(async { Err(ProviderError::NotFound) }).await;
                assert!(matches!(r, Err(ProviderError::NotFound)));
                let r: Result<(), _> = b
                    .call(async { Err(ProviderError::BadResponse("x".into())) })
                    .await;
                assert!(r.is_err());
            }
            assert!(closed(&b));
            for _ in 0..BREAKER_FAILURES {
                let _ = b
                    .call(async { Err::<(), _>(ProviderError::Unavailable("t".into())) })
                    .await;
            }
            assert!(b.is_open());
            // Fails fast: the call is never polled.
            let called = std::sync::atomic::AtomicBool::new(false);
            let r = b
                .call(async {
                    called.store(true, std::sync::atomic::Ordering::SeqCst);
                    Ok(())
                })
                .await;
            assert!(matches!(r, Err(ProviderError::Unavailable(_))));
            assert!(!called.load(std::sync::atomic::Ordering::SeqCst));
        });
    }

    /// 40 callers while a token fetch is in flight: one fetch, and every caller gets its
    /// one failure; the next caller after it starts a new fetch.
    #[tokio::test]
    async fn token_single_flight_shares_the_failure() {
        let cache = TokenCache::new("test-single-flight");
        let (fail, failed) = tokio::sync::oneshot::channel::<()>();
        let failed = Mutex::new(Some(failed));
        let started = std::sync::atomic::AtomicUsize::new(0);
        let get = || {
            cache.get(Duration::from_secs(60), || {
                started.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let failed = lock(&failed).take();
                async move {
                    if let Some(f) = failed {
                        let _ = f.await;
                    }
                    Err(ProviderError::Unavailable("timed out".into()))
                }
            })
        };
        let waiters = futures::future::join_all((0..40).map(|_| get()));
        // join! polls the waiters (each joins the flight) before the release.
        let (results, ()) = futures::join!(waiters, async {
            fail.send(()).unwrap();
        });
        assert_eq!(started.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(cache.fetches(), 1);
        assert_eq!(results.len(), 40);
        for r in results {
            assert!(matches!(r, Err(ProviderError::Unavailable(m)) if m == "timed out"));
        }
        // The failure is not cached: the next caller fetches again (and this time succeeds).
        let ok = cache
            .get(Duration::from_secs(60), || async {
                Ok(("t".to_string(), Duration::from_secs(1800)))
            })
            .await;
        assert_eq!(ok.unwrap(), "t");
        assert_eq!(cache.fetches(), 2);
        let cached = cache
            .get(Duration::from_secs(60), || async {
                Err::<(String, Duration), _>(ProviderError::NotFound)
            })
            .await;
        assert_eq!(cached.unwrap(), "t");
        assert_eq!(cache.fetches(), 2);
    }

    /// A fetch whose every waiter has gone is dropped, and the next caller starts afresh.
    #[tokio::test]
    async fn token_fetch_is_dropped_when_its_waiters_are() {
        let cache = TokenCache::new("test-dropped");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        {
            let waiter = cache.get(Duration::from_secs(60), move || async move {
                // Holds `tx` until dropped; never ends by itself.
                let _tx = tx;
                std::future::pending::<Result<(String, Duration), ProviderError>>().await
            });
            let mut waiter = Box::pin(waiter);
            assert!(futures::poll!(waiter.as_mut()).is_pending());
        }
        // The fetch future (and with it `tx`) was dropped with its only waiter.
        assert!(rx.await.is_err());
        let ok = cache
            .get(Duration::from_secs(60), || async {
                Ok(("fresh".to_string(), Duration::from_secs(1800)))
            })
            .await;
        assert_eq!(ok.unwrap(), "fresh");
        assert_eq!(cache.fetches(), 2);
    }
}
