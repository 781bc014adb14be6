//! [`LeaseCache`]: the handle the proxy and the binary share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::debug;

use crate::clear::{ClearError, ClearRequest, parse_clear_request};
use crate::key::{CacheKey, RequestParts, WRAP_TTL_HEADER, cache_key};
use crate::paths::{
    Revocation, classify_revocation, never_cached, request_namespace, split_api_path,
};
use crate::response::{
    CachedResponse, Envelope, Pending, ResponseParts, is_json, plainly_leaseless,
};
use crate::secret::SecretToken;
use crate::state::{NewEntry, State, Subject, Timing, millis};

/// How the cache behaves; [`Default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Most cached responses held (tokens and leases); beyond it the least recently used go,
    /// with what was created under them. Default 100,000.
    pub max_entries: usize,
    /// Most renewals waiting on Vault at once. Default 16.
    pub renew_concurrency: usize,
    /// A renewal not answered within this counts as a transient failure. Default 60 s.
    pub renew_timeout: Duration,
    /// Smallest grace period, as a fraction of the lease duration. Default 0.1.
    pub grace_min_fraction: f64,
    /// Largest grace period, as a fraction of the lease duration. Default 0.2.
    pub grace_max_fraction: f64,
    /// First wait after a failed renewal; doubled per failure. Default 10 s.
    pub backoff_initial: Duration,
    /// Longest wait between renewal attempts. Default 5 min.
    pub backoff_max: Duration,
    /// When set, an entry not served for this long is no longer renewed and runs out.
    /// Default none: clients may rely on the cache keeping a lease they hold alive.
    pub idle_timeout: Option<Duration>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            renew_concurrency: 16,
            renew_timeout: Duration::from_secs(60),
            grace_min_fraction: 0.1,
            grace_max_fraction: 0.2,
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            idle_timeout: None,
        }
    }
}

/// Counters and sizes, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Cached responses (tokens and leases).
    pub entries: usize,
    /// Cached token-creating responses.
    pub tokens: usize,
    /// Cached lease-creating responses.
    pub leases: usize,
    /// Registered auto-auth tokens (the current one and retired ones still alive).
    pub auto_auth_tokens: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups sent upstream.
    pub misses: u64,
    /// Responses stored.
    pub stored: u64,
    /// Cached responses dropped, for any reason.
    pub evictions: u64,
    /// Renewals Vault granted.
    pub renewals: u64,
    /// Renewals that failed and will be retried.
    pub renewal_failures: u64,
    /// Renewals Vault refused (the entry went).
    pub renewal_rejections: u64,
    /// Renewals waiting on Vault now.
    pub renewals_in_flight: usize,
    /// Items in the renewal schedule, stale ones included.
    pub scheduled: usize,
}

/// The answer to [`LeaseCache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// Serve this.
    Hit(CachedResponse),
    /// Ask Vault, then hand the response to [`LeaseCache::store`] with this guard.
    Miss(FillGuard),
}

/// What [`LeaseCache::store`] did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Cached and scheduled for renewal.
    Stored,
    /// Passed through only.
    NotCached(NotCached),
}

impl StoreOutcome {
    /// Whether the answer showed the request to be one whose answers have nothing to cache:
    /// a successful answer that created no token or lease, or none that can be renewed.
    /// Failures and refusals say nothing about the next answer.
    fn says_plain(self) -> bool {
        let plain = [
            NotCached::NoLease,
            NotCached::NotRenewable,
            NotCached::NotJson,
            NotCached::Wrapped,
        ];
        matches!(self, StoreOutcome::NotCached(reason) if plain.contains(&reason))
    }
}

/// Why a response was not cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCached {
    /// The request is never cached: method, route, or `X-Vault-Wrap-TTL`.
    RequestNotCacheable,
    /// The request's token is not one the cache manages.
    TokenNotManaged,
    /// The status was not 200.
    Status,
    /// The response was not `application/json`.
    NotJson,
    /// The body was not a Vault response envelope.
    Unparsable,
    /// The response was wrapped.
    Wrapped,
    /// The token or lease cannot be renewed, or has no TTL.
    NotRenewable,
    /// The response created neither a token nor a lease.
    NoLease,
    /// The same request, token or lease is already cached.
    AlreadyCached,
    /// The cache holds no entries (`max_entries` is 0).
    NoRoom,
}

/// The cache: cheap to clone, shared by the proxy's request handlers and the scheduler.
#[derive(Clone)]
pub struct LeaseCache {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) state: Mutex<State>,
    /// Time zero of the millisecond clock the state keeps.
    epoch: Instant,
    /// Wakes the scheduler when something falls due before it planned to wake.
    pub(crate) wake: Notify,
    pub(crate) renew_concurrency: usize,
    pub(crate) renew_timeout: Duration,
    pub(crate) scheduler_running: AtomicBool,
}

impl std::fmt::Debug for LeaseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl LeaseCache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> Self {
        let timing = Timing {
            max_entries: settings.max_entries,
            grace_min: settings.grace_min_fraction,
            grace_max: settings.grace_max_fraction,
            backoff_initial: settings.backoff_initial,
            backoff_max: settings.backoff_max,
            idle_timeout: settings.idle_timeout.map(millis),
        };
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(timing)),
                epoch: Instant::now(),
                wake: Notify::new(),
                renew_concurrency: settings.renew_concurrency.max(1),
                renew_timeout: settings.renew_timeout,
                scheduler_running: AtomicBool::new(false),
            }),
        }
    }

    /// The cache key of a request (see [`crate::key`] for the rule).
    pub fn key(parts: &RequestParts<'_>) -> CacheKey {
        cache_key(parts)
    }

    /// Quick check before [`LeaseCache::lookup`]: could this request's response be cached?
    ///
    /// Yes when the method can create a lease, the route is not one that is never cached,
    /// there is no `X-Vault-Wrap-TTL`, and the token is managed by the cache.
    pub fn cacheable_request(&self, parts: &RequestParts<'_>) -> bool {
        let Some(token) = parts.token.filter(|token| !token.is_empty()) else {
            return false;
        };
        request_may_be_cached(parts) && self.inner.state.lock().is_managed(token)
    }

    /// Looks `key` up. Of several identical requests missing at once, one gets the
    /// [`Lookup::Miss`]; the others wait for its [`FillGuard`] to be stored or dropped and
    /// look again. When the filled response turned out not cacheable, the waiters all go
    /// upstream at once instead of one after the other.
    ///
    /// Requests whose last answer had nothing to cache (a plain read, such as a KV secret, or
    /// a lease that cannot be renewed) do not wait for one another at all: there is no answer
    /// to share, so waiting would only delay them and send them upstream in a burst.
    pub async fn lookup(&self, key: &CacheKey) -> Lookup {
        loop {
            let flight = {
                let mut state = self.inner.state.lock();
                let now = self.now();
                if let Some((response, stored)) = state.hit(key, now) {
                    return Lookup::Hit(response.serve(self.instant_at(stored)));
                }
                if state.is_plain(key, now) {
                    state.count_miss();
                    let mut guard = self.guard(*key, None);
                    guard.plain = true;
                    return Lookup::Miss(guard);
                }
                match state.flight(key) {
                    Some(flight) => flight.clone(),
                    None => {
                        let flight = Arc::new(InFlight::default());
                        state.start_flight(*key, flight.clone());
                        state.count_miss();
                        return Lookup::Miss(self.guard(*key, Some(flight)));
                    }
                }
            };

            // Created before the outcome is read, so a fill finishing in between still wakes it.
            let finished = flight.notify.notified();
            if flight.outcome() == InFlight::PENDING {
                finished.await;
            }
            if flight.outcome() == InFlight::NOT_CACHEABLE {
                self.inner.state.lock().count_miss();
                return Lookup::Miss(self.guard(*key, None));
            }
        }
    }

    /// Stores `response` when it is cacheable (see the crate documentation) and releases the
    /// requests waiting on `guard`. `request` must be the request `guard`'s key was made from.
    pub fn store(
        &self,
        guard: FillGuard,
        request: &RequestParts<'_>,
        response: &ResponseParts<'_>,
    ) -> StoreOutcome {
        let mut guard = guard;
        let prepared = prepare(guard.key, request, response);

        let now = self.now();
        let mut state = self.inner.state.lock();
        let outcome = match prepared {
            Ok(new) => match state.insert(new, now) {
                Ok(_) => StoreOutcome::Stored,
                Err(reason) => StoreOutcome::NotCached(reason),
            },
            Err(reason) => StoreOutcome::NotCached(reason),
        };
        state.note_fill(&guard.key, outcome.says_plain(), now);
        let flight = guard.detach(&mut state);
        let wake = state.take_wake_needed();
        drop(state);

        debug!(path = request.path, outcome = ?outcome, "response offered to the cache");
        if let Some(flight) = flight {
            let settled = match outcome {
                StoreOutcome::Stored | StoreOutcome::NotCached(NotCached::AlreadyCached) => {
                    InFlight::STORED
                }
                StoreOutcome::NotCached(_) => InFlight::NOT_CACHEABLE,
            };
            flight.finish(settled);
        }
        if wake {
            self.inner.wake.notify_one();
        }
        outcome
    }

    /// Makes `token` (the auto-auth token, valid for `ttl`; zero for no expiry) a managed
    /// token: requests made with it become cacheable. The cache never renews it.
    ///
    /// A different token registered before is retired: what was created under it stays until
    /// that token's own TTL ends (from its registration or last
    /// [`LeaseCache::auto_auth_token_renewed`]), or until a renewal under it is refused.
    pub fn register_auto_auth_token(&self, token: SecretToken, ttl: Duration) {
        self.with_state(|state, now| state.register_auto_auth(token, millis(ttl), now));
        tracing::info!(
            ttl_secs = ttl.as_secs(),
            "auto-auth token registered with the cache"
        );
    }

    /// Tells the cache that auto-auth renewed `token` for `ttl` more.
    ///
    /// The binary must call this on every auto-auth renewal: without it the cache takes the
    /// token for expired at the end of the TTL it last heard of, and drops what was created
    /// under it (the token itself stays registered).
    pub fn auto_auth_token_renewed(&self, token: &SecretToken, ttl: Duration) {
        self.with_state(|state, now| state.auto_auth_renewed(token, millis(ttl), now));
    }

    /// Recognises a revocation request (pure); see [`classify_revocation`].
    pub fn classify_revocation(parts: &RequestParts<'_>) -> Option<Revocation> {
        classify_revocation(parts)
    }

    /// Drops what Vault just revoked (the proxy calls this after a `204`, or the `202` of a
    /// revocation Vault queued); returns how many cached responses went.
    pub fn on_revoked(&self, revocation: Revocation) -> usize {
        let evicted = self.with_state(|state, _| state.revoke(&revocation));
        debug!(evicted, "revocation applied to the cache");
        evicted
    }

    /// Parses a cache-clear body; see [`parse_clear_request`].
    pub fn parse_clear_request(body: &[u8]) -> Result<ClearRequest, ClearError> {
        parse_clear_request(body)
    }

    /// Drops what `request` names; returns how many cached responses went.
    ///
    /// Cannot fail: every check happened in [`LeaseCache::parse_clear_request`]. `All` keeps
    /// the current auto-auth token registered, so caching resumes at once.
    pub fn clear(&self, request: ClearRequest) -> usize {
        let evicted = self.with_state(|state, _| state.clear(&request));
        tracing::info!(evicted, "cache cleared");
        evicted
    }

    /// Counters and sizes.
    pub fn stats(&self) -> CacheStats {
        self.inner.state.lock().stats()
    }

    // ---- helpers shared with the scheduler ------------------------------------------------

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Milliseconds since the cache's epoch.
    pub(crate) fn now(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    pub(crate) fn ms_at(&self, instant: Instant) -> u64 {
        millis(instant.saturating_duration_since(self.inner.epoch))
    }

    pub(crate) fn instant_at(&self, ms: u64) -> Instant {
        self.inner.epoch + Duration::from_millis(ms)
    }

    fn with_state<T>(&self, change: impl FnOnce(&mut State, u64) -> T) -> T {
        let now = self.now();
        let mut state = self.inner.state.lock();
        let result = change(&mut state, now);
        let wake = state.take_wake_needed();
        drop(state);
        if wake {
            self.inner.wake.notify_one();
        }
        result
    }

    fn guard(&self, key: CacheKey, flight: Option<Arc<InFlight>>) -> FillGuard {
        FillGuard {
            cache: self.clone(),
            key,
            flight,
            plain: false,
        }
    }
}

/// The right to fill one key: hand it to [`LeaseCache::store`] with the upstream response, or
/// drop it (upstream failed); either way the requests waiting on the same key go on.
pub struct FillGuard {
    cache: LeaseCache,
    key: CacheKey,
    flight: Option<Arc<InFlight>>,
    plain: bool,
}

impl FillGuard {
    /// The key being filled.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// Whether the key's last answer, less than 30 s ago, had nothing to cache (a plain
    /// read, such as a KV secret). The caller may then relay the answer as it comes instead
    /// of reading it to offer it: an answer that would now be cacheable is only seen once
    /// that belief lapses, while a lease- or token-creating request is never plain.
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// Removes the in-flight record (under the caller's lock) and hands it back to settle.
    fn detach(&mut self, state: &mut State) -> Option<Arc<InFlight>> {
        let flight = self.flight.take()?;
        state.end_flight(&self.key, &flight);
        Some(flight)
    }
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        // Not stored: upstream failed or the proxy gave up. A waiter takes over the fill.
        let Some(flight) = self.flight.take() else {
            return;
        };
        self.cache.inner.state.lock().end_flight(&self.key, &flight);
        flight.finish(InFlight::ABANDONED);
    }
}

impl std::fmt::Debug for FillGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FillGuard")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One request being filled upstream, and how it ended.
#[derive(Default)]
pub(crate) struct InFlight {
    notify: Notify,
    outcome: AtomicU8,
}

impl InFlight {
    const PENDING: u8 = 0;
    const STORED: u8 = 1;
    const NOT_CACHEABLE: u8 = 2;
    const ABANDONED: u8 = 3;

    fn outcome(&self) -> u8 {
        self.outcome.load(Ordering::SeqCst)
    }

    fn finish(&self, outcome: u8) {
        self.outcome.store(outcome, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// The request-side rules: a method that can create a lease, a route that is not on the
/// never-cached list, no response wrapping.
fn request_may_be_cached(parts: &RequestParts<'_>) -> bool {
    let method_fits = [Method::GET, Method::POST, Method::PUT].contains(parts.method)
        || parts.method.as_str() == "LIST";
    method_fits
        && !parts.headers.contains_key(WRAP_TTL_HEADER)
        && split_api_path(parts.path).is_some_and(|api| !never_cached(api.route))
}

/// Checks a response against the caching rules and builds the entry, outside the lock.
fn prepare<'a>(
    key: CacheKey,
    request: &'a RequestParts<'a>,
    response: &ResponseParts<'_>,
) -> Result<NewEntry<'a>, NotCached> {
    if !request_may_be_cached(request) {
        return Err(NotCached::RequestNotCacheable);
    }
    let token = request
        .token
        .filter(|t| !t.is_empty())
        .ok_or(NotCached::TokenNotManaged)?;
    if response.status != StatusCode::OK {
        return Err(NotCached::Status);
    }
    if !is_json(response.headers) {
        return Err(NotCached::NotJson);
    }
    if plainly_leaseless(response.body) {
        return Err(NotCached::NoLease);
    }
    let envelope: Envelope<'_> =
        serde_json::from_slice(response.body).map_err(|_| NotCached::Unparsable)?;
    if envelope.wrap_info.is_some() {
        return Err(NotCached::Wrapped);
    }

    let created_token = envelope.auth.filter(|auth| {
        auth.client_token
            .as_ref()
            .is_some_and(|token| !token.is_empty())
    });
    let (subject, renewable, ttl, orphan, lease_id) = if let Some(auth) = created_token {
        let client_token = auth.client_token.unwrap_or_default();
        let subject = Subject::Token {
            token: SecretToken::from(client_token.into_owned()),
            accessor: Box::from(auth.accessor.as_deref().unwrap_or("")),
        };
        let orphan = auth.orphan.unwrap_or(false);
        (subject, auth.renewable, auth.lease_duration, orphan, None)
    } else {
        let lease_id = envelope
            .lease_id
            .filter(|id| !id.is_empty())
            .ok_or(NotCached::NoLease)?;
        let subject = Subject::Lease {
            lease_id: Box::from(lease_id.as_ref()),
        };
        (
            subject,
            envelope.renewable,
            envelope.lease_duration,
            false,
            Some(lease_id),
        )
    };
    let ttl = ttl.unwrap_or(0);
    if renewable != Some(true) || ttl == 0 {
        return Err(NotCached::NotRenewable);
    }

    Ok(NewEntry {
        subject,
        key,
        response: Pending::new(response),
        request_path: request.path,
        namespace: request_namespace(request, lease_id.as_deref()),
        request_token: token,
        orphan,
        ttl: ttl.saturating_mul(1_000),
    })
}
