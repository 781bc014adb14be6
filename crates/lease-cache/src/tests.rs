//! Behaviour of the whole cache: what is cached, served, evicted and renewed.
//!
//! The renewal tests use [`FakeRenewer`], a test double for Vault's renew endpoints. This is
//! the one stand-in in the crate and it is there by design: the crate does no I/O, renewals
//! reach Vault only through the [`Renewer`] trait, and the faults the scheduler must handle
//! (refusals, outages, max TTL at an exact second) cannot be produced on demand by a real
//! server. Time is tokio's paused clock throughout.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::{
    CacheSettings, ClearRequest, LeaseCache, Lookup, NotCached, Renewal, Renewer, RequestParts,
    ResponseParts, Revocation, SecretToken, StoreOutcome,
};

const AUTO: &str = "s.auto-auth";

// ---- fixtures -----------------------------------------------------------------------------

/// An owned request, turned into [`RequestParts`] on demand.
#[derive(Clone)]
struct Req {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: String,
    token: Option<String>,
    namespace: Option<String>,
}

impl Req {
    fn new(method: Method, path: &str, body: &str, token: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            headers: HeaderMap::new(),
            body: body.to_owned(),
            token: Some(token.to_owned()),
            namespace: None,
        }
    }

    fn create_token(token: &str, body: &str) -> Self {
        Self::new(Method::POST, "/v1/auth/token/create", body, token)
    }

    fn creds(token: &str, role: &str) -> Self {
        Self::new(Method::GET, &format!("/v1/db/creds/{role}"), "", token)
    }

    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.insert(name, HeaderValue::from_static(value));
        self
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path: &self.path,
            query: None,
            headers: &self.headers,
            body: self.body.as_bytes(),
            token: self.token.as_deref(),
            namespace: self.namespace.as_deref(),
        }
    }
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn json(body: String) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Self {
            status: StatusCode::OK,
            headers,
            body,
        }
    }

    fn lease(lease_id: &str, ttl: u64, renewable: bool) -> Self {
        Self::json(format!(
            r#"{{"request_id":"r","lease_id":"{lease_id}","renewable":{renewable},
                "lease_duration":{ttl},"data":{{"username":"u","password":"p"}},
                "wrap_info":null,"warnings":null,"auth":null}}"#
        ))
    }

    fn token(token: &str, ttl: u64, orphan: bool) -> Self {
        Self::json(format!(
            r#"{{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,
                "data":null,"wrap_info":null,"warnings":null,
                "auth":{{"client_token":"{token}","accessor":"acc-{token}","policies":["p"],
                "lease_duration":{ttl},"renewable":true,"orphan":{orphan}}}}}"#
        ))
    }

    fn parts(&self) -> ResponseParts<'_> {
        ResponseParts {
            status: self.status,
            headers: &self.headers,
            body: self.body.as_bytes(),
        }
    }
}

fn settings() -> CacheSettings {
    // A fixed grace fraction makes every renewal time exact.
    CacheSettings {
        grace_min_fraction: 0.1,
        grace_max_fraction: 0.1,
        ..CacheSettings::default()
    }
}

fn cache_with(settings: CacheSettings) -> LeaseCache {
    let cache = LeaseCache::new(settings);
    cache.register_auto_auth_token(SecretToken::new(AUTO), Duration::from_secs(86_400));
    cache
}

fn cache() -> LeaseCache {
    cache_with(settings())
}

/// Sends `req` through the cache the way the proxy does, with `resp` as Vault's answer.
async fn fill(cache: &LeaseCache, req: &Req, resp: &Resp) -> StoreOutcome {
    let key = LeaseCache::key(&req.parts());
    match cache.lookup(&key).await {
        Lookup::Miss(guard) => cache.store(guard, &req.parts(), &resp.parts()),
        Lookup::Hit(_) => panic!("expected a miss for {}", req.path),
    }
}

async fn is_hit(cache: &LeaseCache, req: &Req) -> bool {
    let key = LeaseCache::key(&req.parts());
    matches!(cache.lookup(&key).await, Lookup::Hit(_))
}

/// One call the fake renewer received.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Call {
    at: Duration,
    token: String,
    lease: Option<String>,
    namespace: String,
}

type Answer = Box<dyn Fn(&Call) -> Renewal + Send + Sync>;

/// Records every renewal and answers with a script.
#[derive(Clone)]
struct FakeRenewer {
    start: Instant,
    calls: Arc<Mutex<Vec<Call>>>,
    answer: Arc<Answer>,
}

impl FakeRenewer {
    fn new(answer: impl Fn(&Call) -> Renewal + Send + Sync + 'static) -> Self {
        Self {
            start: Instant::now(),
            calls: Arc::default(),
            answer: Arc::new(Box::new(answer)),
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().clone()
    }

    fn seconds(&self) -> Vec<u64> {
        self.calls().iter().map(|call| call.at.as_secs()).collect()
    }

    fn record(&self, token: &SecretToken, lease: Option<&str>, namespace: &str) -> Renewal {
        let call = Call {
            at: self.start.elapsed(),
            token: token.expose().to_owned(),
            lease: lease.map(str::to_owned),
            namespace: namespace.to_owned(),
        };
        let answer = (self.answer)(&call);
        self.calls.lock().push(call);
        answer
    }
}

impl Renewer for FakeRenewer {
    async fn renew_token(&self, token: &SecretToken, namespace: &str) -> Renewal {
        self.record(token, None, namespace)
    }

    async fn renew_lease(&self, token: &SecretToken, lease_id: &str, namespace: &str) -> Renewal {
        self.record(token, Some(lease_id), namespace)
    }
}

/// Runs the scheduler in the background until the returned sender is dropped.
fn start_scheduler(cache: &LeaseCache, renewer: &FakeRenewer) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let cache = cache.clone();
    let renewer = renewer.clone();
    tokio::spawn(async move {
        cache
            .run_renewals(renewer, async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

fn extended(secs: u64) -> Renewal {
    Renewal::Extended {
        ttl: Duration::from_secs(secs),
        renewable: true,
    }
}

async fn sleep_secs(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

// ---- what is cached -----------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn decides_what_is_cached() {
    let cache = cache();
    let lease = || Resp::lease("db/creds/app/abc", 300, true);
    let check = |name: &'static str, req: Req, resp: Resp, expected: StoreOutcome| {
        let cache = cache.clone();
        async move {
            let outcome = fill(&cache, &req, &resp).await;
            assert_eq!(outcome, expected, "{name}");
        }
    };
    let not = StoreOutcome::NotCached;

    check(
        "renewable lease",
        Req::creds(AUTO, "a"),
        lease(),
        StoreOutcome::Stored,
    )
    .await;
    check(
        "token created by the auto-auth token",
        Req::create_token(AUTO, "{}"),
        Resp::token("s.child", 600, false),
        StoreOutcome::Stored,
    )
    .await;
    check(
        "non-renewable lease is passed through",
        Req::creds(AUTO, "b"),
        Resp::lease("db/creds/b/1", 300, false),
        not(NotCached::NotRenewable),
    )
    .await;
    check(
        "kv read without lease",
        Req::new(Method::GET, "/v1/secret/data/x", "", AUTO),
        Resp::json(r#"{"lease_id":"","renewable":false,"lease_duration":0,"data":{}}"#.into()),
        not(NotCached::NoLease),
    )
    .await;
    check(
        "unmanaged token",
        Req::creds("s.stranger", "c"),
        Resp::lease("db/creds/c/1", 300, true),
        not(NotCached::TokenNotManaged),
    )
    .await;
    check(
        "error status",
        Req::creds(AUTO, "d"),
        Resp {
            status: StatusCode::BAD_GATEWAY,
            ..Resp::lease("db/creds/d/1", 300, true)
        },
        not(NotCached::Status),
    )
    .await;
    let mut text = Resp::lease("db/creds/e/1", 300, true);
    text.headers
        .insert("content-type", HeaderValue::from_static("text/plain"));
    check(
        "not json",
        Req::creds(AUTO, "e"),
        text,
        not(NotCached::NotJson),
    )
    .await;
    check(
        "garbage body",
        Req::creds(AUTO, "f"),
        Resp::json("<html>".into()),
        not(NotCached::Unparsable),
    )
    .await;
    check(
        "wrapped response",
        Req::creds(AUTO, "g"),
        Resp::json(r#"{"wrap_info":{"token":"s.wrap","ttl":60}}"#.into()),
        not(NotCached::Wrapped),
    )
    .await;
    check(
        "wrap-ttl request",
        Req::creds(AUTO, "h").header("x-vault-wrap-ttl", "60s"),
        Resp::lease("db/creds/h/1", 300, true),
        not(NotCached::RequestNotCacheable),
    )
    .await;
    check(
        "delete cannot create a lease",
        Req::new(Method::DELETE, "/v1/db/creds/i", "", AUTO),
        Resp::lease("db/creds/i/1", 300, true),
        not(NotCached::RequestNotCacheable),
    )
    .await;
    check(
        "renewable with zero ttl",
        Req::creds(AUTO, "j"),
        Resp::lease("db/creds/j/1", 0, true),
        not(NotCached::NotRenewable),
    )
    .await;

    assert_eq!(cache.stats().entries, 2);
}

/// Vault caches renewal responses (they carry a lease id) and serves the stale copy on the
/// next renewal. Renewals and lookups are never cached here, whatever they contain.
#[tokio::test(start_paused = true)]
async fn renewal_and_lookup_responses_are_never_cached_unlike_vault() {
    let cache = cache();
    let lease = || Resp::lease("db/creds/app/abc", 300, true);
    let body = r#"{"lease_id":"db/creds/app/abc"}"#;

    for path in [
        "/v1/sys/leases/renew",
        "/v1/sys/renew/db/creds/app/abc",
        "/v1/sys/leases/lookup",
        "/v1/auth/token/renew-self",
        "/v1/auth/token/renew",
        "/v1/auth/token/lookup-self",
        "/v1/ns1/auth/token/renew-self",
        "/v1/ns1/ns2/sys/leases/renew",
    ] {
        let req = Req::new(Method::PUT, path, body, AUTO);
        assert!(!cache.cacheable_request(&req.parts()), "{path}");
        assert_eq!(
            fill(&cache, &req, &lease()).await,
            StoreOutcome::NotCached(NotCached::RequestNotCacheable),
            "{path}"
        );
    }
}

/// Vault caches login responses and hands the same token to a second caller. Logins are
/// never cached here (our rule), not even when made with a managed token.
#[tokio::test(start_paused = true)]
async fn logins_are_never_cached_unlike_vault() {
    let cache = cache();
    let login = Req::new(
        Method::PUT,
        "/v1/auth/approle/login",
        r#"{"role_id":"r"}"#,
        AUTO,
    );
    let user = Req::new(Method::PUT, "/v1/auth/userpass/login/alice", "{}", AUTO);

    for req in [&login, &user] {
        assert!(!cache.cacheable_request(&req.parts()));
        let outcome = fill(&cache, req, &Resp::token("s.login", 600, true)).await;
        assert_eq!(
            outcome,
            StoreOutcome::NotCached(NotCached::RequestNotCacheable)
        );
        assert!(
            !is_hit(&cache, req).await,
            "a second caller must get its own login"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn only_managed_tokens_make_requests_cacheable() {
    let cache = cache();
    let create = |token: &str| Req::create_token(token, "{}");

    assert!(cache.cacheable_request(&create(AUTO).parts()));
    assert!(!cache.cacheable_request(&create("s.stranger").parts()));
    assert!(
        !cache.cacheable_request(
            &Req {
                token: None,
                ..create(AUTO)
            }
            .parts()
        )
    );

    // A token the cache stored is managed in turn: what it creates is cached under it.
    fill(&cache, &create(AUTO), &Resp::token("s.child", 600, false)).await;
    assert!(cache.cacheable_request(&create("s.child").parts()));
    let grandchild = Req::creds("s.child", "a");
    let outcome = fill(&cache, &grandchild, &Resp::lease("db/creds/a/1", 300, true)).await;
    assert_eq!(outcome, StoreOutcome::Stored);
}

// ---- serving ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn serves_a_stored_response_with_its_age() {
    let cache = cache();
    let req = Req::create_token(AUTO, r#"{"policies":["a"],"ttl":"1h"}"#);
    let resp = Resp::token("s.child", 3_600, false);
    fill(&cache, &req, &resp).await;

    sleep_secs(42).await;
    // Same request, other JSON key order and noise headers: same entry.
    let again = Req::create_token(AUTO, r#"{ "ttl": "1h", "policies": ["a"] }"#)
        .header("user-agent", "other/1.0");
    let Lookup::Hit(hit) = cache.lookup(&LeaseCache::key(&again.parts())).await else {
        panic!("expected a hit");
    };

    assert_eq!(hit.status(), StatusCode::OK);
    assert_eq!(hit.body(), resp.body.as_bytes());
    assert_eq!(hit.age_secs(), 42);
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.entries, stats.tokens),
        (1, 1, 1, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_is_never_served_to_another_token() {
    let cache = cache();
    fill(
        &cache,
        &Req::create_token(AUTO, "{}"),
        &Resp::token("s.child", 600, false),
    )
    .await;

    // Both tokens are managed; the same request made with each is two entries.
    let by_auto = Req::creds(AUTO, "app");
    let by_child = Req::creds("s.child", "app");
    fill(&cache, &by_auto, &Resp::lease("db/creds/app/1", 300, true)).await;

    assert!(is_hit(&cache, &by_auto).await);
    assert!(!is_hit(&cache, &by_child).await);
}

#[tokio::test(start_paused = true)]
async fn a_wrap_ttl_request_is_never_stored_or_served() {
    let cache = cache();
    let plain = Req::creds(AUTO, "app");
    let wrapped = Req::creds(AUTO, "app").header("x-vault-wrap-ttl", "5m");
    fill(&cache, &plain, &Resp::lease("db/creds/app/1", 300, true)).await;

    assert!(!cache.cacheable_request(&wrapped.parts()));
    assert!(
        !is_hit(&cache, &wrapped).await,
        "a wrapped request must not get the plain entry"
    );
}

#[tokio::test(start_paused = true)]
async fn stops_serving_an_entry_inside_its_grace_period() {
    let cache = cache();
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 100, true)).await;

    // No scheduler runs: the lookup itself refuses a lease about to end (grace 10 s).
    sleep_secs(89).await;
    assert!(is_hit(&cache, &req).await);
    sleep_secs(1).await;
    assert!(!is_hit(&cache, &req).await);
    assert_eq!(cache.stats().entries, 0);
}

// ---- in-flight de-duplication -------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn identical_concurrent_misses_make_one_fill() {
    let cache = cache();
    let req = Req::creds(AUTO, "app");
    let key = LeaseCache::key(&req.parts());
    let Lookup::Miss(guard) = cache.lookup(&key).await else {
        panic!("first lookup must miss")
    };

    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { matches!(cache.lookup(&key).await, Lookup::Hit(_)) })
        })
        .collect();
    tokio::task::yield_now().await;
    assert!(
        waiters.iter().all(|waiter| !waiter.is_finished()),
        "waiters must wait for the fill"
    );

    let outcome = cache.store(
        guard,
        &req.parts(),
        &Resp::lease("db/creds/app/1", 300, true).parts(),
    );
    assert_eq!(outcome, StoreOutcome::Stored);
    for waiter in waiters {
        assert!(waiter.await.unwrap(), "every waiter is served the one fill");
    }
    assert_eq!(cache.stats().misses, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_fill_hands_the_miss_to_one_waiter() {
    let cache = cache();
    let key = LeaseCache::key(&Req::creds(AUTO, "app").parts());
    let Lookup::Miss(guard) = cache.lookup(&key).await else {
        panic!("first lookup must miss")
    };

    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                match cache.lookup(&key).await {
                    // Hold the new guard long enough for the others to see it in flight.
                    Lookup::Miss(guard) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        drop(guard);
                        1
                    }
                    Lookup::Hit(_) => 0,
                }
            })
        })
        .collect();
    tokio::task::yield_now().await;
    drop(guard);

    let mut misses = 0;
    for waiter in waiters {
        misses += waiter.await.unwrap();
    }
    // Each upstream attempt failed, so each waiter in turn became the filler: one at a time.
    assert_eq!(misses, 3);
    assert_eq!(cache.stats().misses, 4);
}

#[tokio::test(start_paused = true)]
async fn waiters_go_upstream_together_when_the_fill_is_not_cacheable() {
    let cache = cache();
    let req = Req::creds(AUTO, "app");
    let key = LeaseCache::key(&req.parts());
    let Lookup::Miss(guard) = cache.lookup(&key).await else {
        panic!("first lookup must miss")
    };

    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                // Each holds its miss: if misses were handed out one at a time this would hang.
                let lookup = cache.lookup(&key).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
                matches!(lookup, Lookup::Miss(_))
            })
        })
        .collect();
    tokio::task::yield_now().await;
    cache.store(
        guard,
        &req.parts(),
        &Resp::lease("db/creds/app/1", 300, false).parts(),
    );

    let all = tokio::time::timeout(Duration::from_millis(1_500), async {
        let mut missed = 0;
        for waiter in waiters {
            missed += usize::from(waiter.await.unwrap());
        }
        missed
    });
    assert_eq!(all.await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn plain_reads_do_not_wait_for_one_another() {
    let cache = cache();
    let req = Req::new(Method::GET, "/v1/secret/data/app", "", AUTO);
    let key = LeaseCache::key(&req.parts());
    let kv = || Resp::json(r#"{"lease_id":"","data":{"password":"p"},"auth":null}"#.into());

    // Misses while a fill of the same key is in flight, with none of them waiting; and all
    // the misses, the first included, know the key for plain.
    async fn misses_at_once(cache: &LeaseCache, key: crate::CacheKey, n: usize) -> bool {
        let Lookup::Miss(filling) = cache.lookup(&key).await else {
            panic!("a plain read must miss")
        };
        let others = (0..n).map(|_| cache.lookup(&key));
        let all = futures_util::future::join_all(others);
        let looked = tokio::time::timeout(Duration::from_millis(1), all).await;
        let plain = |lookup: &Lookup| matches!(lookup, Lookup::Miss(guard) if guard.is_plain());
        filling.is_plain() && looked.is_ok_and(|found| found.iter().all(plain))
    }

    assert!(
        !misses_at_once(&cache, key, 3).await,
        "unknown keys wait for the fill"
    );
    assert_eq!(
        fill(&cache, &req, &kv()).await,
        StoreOutcome::NotCached(NotCached::NoLease)
    );
    assert!(misses_at_once(&cache, key, 3).await, "a plain key does not");

    // Believed for a while, then waiting again until an answer says so anew.
    sleep_secs(31).await;
    assert!(!misses_at_once(&cache, key, 3).await);

    // An answer that is cached ends it at once.
    fill(&cache, &req, &kv()).await;
    let lease = Resp::lease("secret/app/1", 300, true);
    assert_eq!(fill(&cache, &req, &lease).await, StoreOutcome::Stored);
    assert!(is_hit(&cache, &req).await);
}

// ---- revocation ---------------------------------------------------------------------------

/// Stores, under the auto-auth token, a child token `s.child` holding the lease `db/creds/app/1`,
/// and a lease `db/creds/top/1` held by the auto-auth token itself.
async fn family(cache: &LeaseCache) -> (Req, Req, Req) {
    let child = Req::create_token(AUTO, "{}");
    let child_lease = Req::creds("s.child", "app");
    let top_lease = Req::creds(AUTO, "top");
    fill(cache, &child, &Resp::token("s.child", 600, false)).await;
    fill(
        cache,
        &child_lease,
        &Resp::lease("db/creds/app/1", 300, true),
    )
    .await;
    fill(cache, &top_lease, &Resp::lease("db/creds/top/1", 300, true)).await;
    (child, child_lease, top_lease)
}

#[tokio::test(start_paused = true)]
async fn a_revoked_lease_is_never_served_again() {
    let shown = format!(
        "{:?}",
        Revocation::Token(SecretToken::new("s.secret-in-debug"))
    );
    assert!(!shown.contains("secret-in-debug"), "{shown}");

    let check = |name: &'static str, revocation: Revocation, gone: [bool; 3]| async move {
        let cache = cache();
        let reqs = family(&cache).await;
        cache.on_revoked(revocation);
        let mut got = [false; 3];
        for (i, req) in [&reqs.0, &reqs.1, &reqs.2].into_iter().enumerate() {
            got[i] = !is_hit(&cache, req).await;
        }
        assert_eq!(
            got, gone,
            "{name}: which of [child token, its lease, top lease] went"
        );
    };

    check(
        "lease",
        Revocation::Lease("db/creds/app/1".into()),
        [false, true, false],
    )
    .await;
    check(
        "prefix",
        Revocation::LeasePrefix {
            prefix: "db/creds/".into(),
            namespace: "root/".into(),
        },
        [false, true, true],
    )
    .await;
    check(
        "prefix in another namespace",
        Revocation::LeasePrefix {
            prefix: "db/creds/".into(),
            namespace: "ns1/".into(),
        },
        [false, false, false],
    )
    .await;
    check(
        "token cascades",
        Revocation::Token(SecretToken::new("s.child")),
        [true, true, false],
    )
    .await;
    check(
        "accessor",
        Revocation::TokenAccessor("acc-s.child".into()),
        [true, true, false],
    )
    .await;
    check(
        "auto-auth token",
        Revocation::Token(SecretToken::new(AUTO)),
        [true, true, true],
    )
    .await;
}

/// Vault's cache misses the legacy `sys/revoke*` routes; they are honoured here.
#[tokio::test(start_paused = true)]
async fn legacy_revoke_routes_evict_unlike_vault() {
    let cache = cache();
    let (_, child_lease, top_lease) = family(&cache).await;

    for (path, gone) in [
        ("/v1/sys/revoke/db/creds/app/1", &child_lease),
        ("/v1/sys/revoke-prefix/db/creds/top", &top_lease),
    ] {
        let revoke = Req::new(Method::PUT, path, "", AUTO);
        let revocation = LeaseCache::classify_revocation(&revoke.parts()).unwrap();
        cache.on_revoked(revocation);
        assert!(!is_hit(&cache, gone).await, "{path}");
    }
}

#[tokio::test(start_paused = true)]
async fn revoke_orphan_drops_the_leases_and_keeps_the_child_tokens() {
    let cache = cache();
    let (child, child_lease, _) = family(&cache).await;
    let grandchild = Req::create_token("s.child", "{}");
    fill(
        &cache,
        &grandchild,
        &Resp::token("s.grandchild", 600, false),
    )
    .await;

    cache.on_revoked(Revocation::TokenOrphan(SecretToken::new("s.child")));

    assert!(!is_hit(&cache, &child).await);
    assert!(!is_hit(&cache, &child_lease).await);
    assert!(
        is_hit(&cache, &grandchild).await,
        "the child token lives on"
    );
    assert!(cache.cacheable_request(&Req::creds("s.grandchild", "x").parts()));
    // Now top-level: revoking the auto-auth token no longer takes it along.
    cache.on_revoked(Revocation::Token(SecretToken::new(AUTO)));
    assert!(is_hit(&cache, &grandchild).await);
}

#[tokio::test(start_paused = true)]
async fn an_orphan_token_stands_on_its_own() {
    let cache = cache();
    let orphan = Req::new(Method::POST, "/v1/auth/token/create-orphan", "{}", AUTO);
    assert_eq!(
        fill(&cache, &orphan, &Resp::token("s.orphan", 600, true)).await,
        StoreOutcome::Stored
    );

    cache.on_revoked(Revocation::Token(SecretToken::new(AUTO)));

    assert!(is_hit(&cache, &orphan).await);
}

// ---- cache-clear --------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn clears_what_the_request_names() {
    let check = |name: &'static str, request: ClearRequest, evicted: usize| async move {
        let cache = cache();
        family(&cache).await;
        assert_eq!(cache.clear(request), evicted, "{name}");
        assert_eq!(cache.stats().entries, 3 - evicted, "{name}");
    };

    let path = |prefix: &str, namespace: &str| ClearRequest::RequestPath {
        prefix: prefix.into(),
        namespace: namespace.into(),
    };
    check("request path prefix", path("/v1/db/creds/", "root/"), 2).await;
    check("request path cascades", path("/v1/auth/token/", "root/"), 2).await;
    check(
        "request path in another namespace",
        path("/v1/db/", "ns1/"),
        0,
    )
    .await;
    check("token", ClearRequest::Token(SecretToken::new("s.child")), 2).await;
    check(
        "accessor",
        ClearRequest::TokenAccessor("acc-s.child".into()),
        2,
    )
    .await;
    check("lease", ClearRequest::Lease("db/creds/top/1".into()), 1).await;
    check("all", ClearRequest::All, 3).await;
    check(
        "unknown token",
        ClearRequest::Token(SecretToken::new("s.none")),
        0,
    )
    .await;
}

/// Vault's `all` also forgets the auto-auth token, so nothing is cached until the next
/// login. Here the auto-auth token stays registered and caching resumes at once.
#[tokio::test(start_paused = true)]
async fn clear_all_keeps_the_auto_auth_token_usable_unlike_vault() {
    let cache = cache();
    family(&cache).await;

    cache.clear(ClearRequest::All);
    let again = Req::creds(AUTO, "after");

    assert!(cache.cacheable_request(&again.parts()));
    assert_eq!(
        fill(&cache, &again, &Resp::lease("db/creds/after/1", 300, true)).await,
        StoreOutcome::Stored
    );
    assert_eq!(cache.stats().auto_auth_tokens, 1);
}

/// OpenBao's `all` flushes the entries but leaves the renewers of what hangs under the
/// auto-auth token running. Here nothing cleared is renewed again.
#[tokio::test(start_paused = true)]
async fn clear_all_stops_every_renewal() {
    let cache = cache();
    let renewer = FakeRenewer::new(|_| extended(300));
    let _stop = start_scheduler(&cache, &renewer);
    family(&cache).await;

    cache.clear(ClearRequest::All);
    sleep_secs(2_000).await;

    assert!(renewer.calls().is_empty(), "{:?}", renewer.calls());
    assert_eq!(cache.stats().renewals_in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn clearing_the_auto_auth_token_keeps_it_registered() {
    let cache = cache();
    family(&cache).await;

    assert_eq!(cache.clear(ClearRequest::Token(SecretToken::new(AUTO))), 3);
    assert!(cache.cacheable_request(&Req::creds(AUTO, "x").parts()));
}

// ---- capacity -----------------------------------------------------------------------------

/// Vault's cache has no size limit. Here `max_entries` holds, least recently used first.
#[tokio::test(start_paused = true)]
async fn the_lru_bound_holds_and_takes_children_with_their_parent() {
    let cache = cache_with(CacheSettings {
        max_entries: 3,
        ..settings()
    });
    let a = Req::creds(AUTO, "a");
    let b = Req::creds(AUTO, "b");
    let c = Req::create_token(AUTO, "{}");
    let c_lease = Req::creds("s.c", "c");
    fill(&cache, &a, &Resp::lease("db/creds/a/1", 300, true)).await;
    fill(&cache, &b, &Resp::lease("db/creds/b/1", 300, true)).await;
    fill(&cache, &c, &Resp::token("s.c", 600, false)).await;

    // `a` is used, so `b` is now the least recent and goes for the fourth entry.
    assert!(is_hit(&cache, &a).await);
    fill(&cache, &c_lease, &Resp::lease("db/creds/c/1", 300, true)).await;
    assert_eq!(cache.stats().entries, 3);
    assert!(!is_hit(&cache, &b).await);

    // Using the lease refreshes its token too; `a` is the oldest and makes room for `d`.
    assert!(is_hit(&cache, &c_lease).await);
    fill(
        &cache,
        &Req::creds(AUTO, "d"),
        &Resp::lease("db/creds/d/1", 300, true),
    )
    .await;
    assert!(!is_hit(&cache, &a).await);
    assert!(is_hit(&cache, &c).await && is_hit(&cache, &c_lease).await);
    assert_eq!(cache.stats().entries, 3);

    // A token is never older than what was created under it, so its lease goes first and the
    // token never leaves an entry behind without its owner.
    fill(
        &cache,
        &Req::creds(AUTO, "e"),
        &Resp::lease("db/creds/e/1", 300, true),
    )
    .await;
    fill(
        &cache,
        &Req::creds(AUTO, "f"),
        &Resp::lease("db/creds/f/1", 300, true),
    )
    .await;
    assert_eq!(cache.stats().entries, 3);
    assert!(cache.cacheable_request(&Req::creds("s.c", "x").parts()));
    assert!(!is_hit(&cache, &c_lease).await);
}

// ---- renewal ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn renews_at_two_thirds_of_the_ttl_plus_a_third_of_grace() {
    let cache = cache();
    let renewer = FakeRenewer::new(|_| extended(300));
    let _stop = start_scheduler(&cache, &renewer);
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 300, true)).await;

    sleep_secs(1_000).await;

    // 300 s with 30 s grace: 200 + 10 s after each grant.
    assert_eq!(renewer.seconds(), [210, 420, 630, 840]);
    let first = &renewer.calls()[0];
    assert_eq!(
        (first.token.as_str(), first.lease.as_deref()),
        (AUTO, Some("db/creds/app/1"))
    );
    assert_eq!(first.namespace, "root/");
    assert!(is_hit(&cache, &req).await);
    assert_eq!(cache.stats().renewals, 4);
}

#[tokio::test(start_paused = true)]
async fn tokens_renew_themselves_in_their_namespace() {
    let cache = cache();
    let renewer = FakeRenewer::new(|_| extended(600));
    let _stop = start_scheduler(&cache, &renewer);
    let mut create = Req::new(Method::POST, "/v1/team/auth/token/create", "{}", AUTO);
    create.namespace = Some("org".into());
    fill(&cache, &create, &Resp::token("s.child", 600, false)).await;

    sleep_secs(500).await;

    let calls = renewer.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].token.as_str(), calls[0].lease.as_deref()),
        ("s.child", None)
    );
    assert_eq!(calls[0].namespace, "org/team/");
}

#[tokio::test(start_paused = true)]
async fn stops_renewing_at_max_ttl_and_evicts_inside_the_grace_period() {
    let cache = cache();
    // Vault caps the lease at 600 s after it was issued.
    let renewer = FakeRenewer::new(move |call| extended(300.min(600 - call.at.as_secs())));
    let _stop = start_scheduler(&cache, &renewer);
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 300, true)).await;

    sleep_secs(581).await;
    assert!(is_hit(&cache, &req).await);
    sleep_secs(2).await;

    // 210: +300 → 510. 420: 180 left → 600, grace 18 s. 546: 54 left, not extended → end at
    // 600 − 18 = 582, and no renewal in a loop.
    assert_eq!(renewer.seconds(), [210, 420, 546]);
    assert!(!is_hit(&cache, &req).await);
    sleep_secs(1_000).await;
    assert_eq!(renewer.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn backs_off_on_failure_until_the_lease_would_end() {
    let cache = cache();
    let renewer = FakeRenewer::new(|_| Renewal::Failed);
    let _stop = start_scheduler(&cache, &renewer);
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 300, true)).await;

    sleep_secs(269).await;
    assert!(
        is_hit(&cache, &req).await,
        "still served while retries go on"
    );
    sleep_secs(2).await;

    let at: Vec<f64> = renewer
        .calls()
        .iter()
        .map(|call| call.at.as_secs_f64())
        .collect();
    assert_eq!(at[0], 210.0);
    for (i, pair) in at.windows(2).enumerate() {
        // 10 s doubling, jittered down by at most half.
        let full = 10.0 * f64::from(1 << i);
        let gap = pair[1] - pair[0];
        assert!(
            gap >= full / 2.0 - 0.01 && gap <= full + 0.01,
            "retry {i}: {gap} s"
        );
    }
    assert!(*at.last().unwrap() < 270.0, "{at:?}");
    assert!(at.len() >= 3, "{at:?}");
    // Served until the grace period (300 − 30 s), then dropped.
    assert!(!is_hit(&cache, &req).await);
    assert_eq!(cache.stats().renewal_failures, at.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_success_after_failures_resets_the_backoff() {
    let cache = cache();
    let renewer = FakeRenewer::new(|call| {
        if call.at < Duration::from_secs(215) {
            Renewal::Failed
        } else {
            extended(300)
        }
    });
    let _stop = start_scheduler(&cache, &renewer);
    fill(
        &cache,
        &Req::creds(AUTO, "app"),
        &Resp::lease("db/creds/app/1", 300, true),
    )
    .await;

    sleep_secs(700).await;

    let at = renewer.seconds();
    assert_eq!(at[0], 210);
    assert!((215..=220).contains(&at[1]), "{at:?}");
    // Renewed at at[1]: the next one is 210 s later, not after a longer backoff.
    assert_eq!(at[2], at[1] + 210, "{at:?}");
}

#[tokio::test(start_paused = true)]
async fn a_rejected_renewal_evicts_at_once() {
    let cache = cache();
    let renewer = FakeRenewer::new(|_| Renewal::Rejected);
    let _stop = start_scheduler(&cache, &renewer);
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 300, true)).await;

    sleep_secs(211).await;

    assert_eq!(renewer.seconds(), [210]);
    assert!(!is_hit(&cache, &req).await);
    assert_eq!(cache.stats().renewal_rejections, 1);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_renewed_after_its_parent_is_gone() {
    let cache = cache();
    let renewer = FakeRenewer::new(|call| {
        if call.lease.is_none() {
            Renewal::Rejected
        } else {
            extended(3_000)
        }
    });
    let _stop = start_scheduler(&cache, &renewer);
    let (child, child_lease, _) = family(&cache).await;
    // The lease under the child lives long: its own renewal would be at 2,100 s.
    let long = Req::creds("s.child", "long");
    fill(&cache, &long, &Resp::lease("db/creds/long/1", 3_000, true)).await;

    sleep_secs(5_000).await;

    // The child token's renewal (at 420 s) is refused: it goes, and with it both its leases,
    // which are never renewed again. The auto-auth token's own lease renews on.
    let calls = renewer.calls();
    let by_child: Vec<_> = calls
        .iter()
        .filter(|call| call.token == "s.child")
        .collect();
    assert_eq!(by_child.len(), 2, "{calls:?}");
    assert!(
        by_child
            .iter()
            .all(|call| call.at <= Duration::from_secs(420)),
        "{calls:?}"
    );
    assert!(!is_hit(&cache, &child).await && !is_hit(&cache, &child_lease).await);
    assert!(!is_hit(&cache, &long).await);
    assert!(
        calls
            .iter()
            .any(|call| call.lease.as_deref() == Some("db/creds/top/1"))
    );
}

/// Vault keeps an old auto-auth token registered forever, and leases under it renew with
/// `permission denied` until each gives up. Here they end with the old token.
#[tokio::test(start_paused = true)]
async fn leases_under_a_retired_auto_auth_token_end_with_it_unlike_vault() {
    let cache = LeaseCache::new(settings());
    let renewer = FakeRenewer::new(|_| extended(1_000));
    let _stop = start_scheduler(&cache, &renewer);
    cache.register_auto_auth_token(SecretToken::new("s.old"), Duration::from_secs(100));
    let old = Req::creds("s.old", "app");
    fill(&cache, &old, &Resp::lease("db/creds/app/1", 1_000, true)).await;

    // Auto-auth renewed the old token once, then logged in again with a new one.
    sleep_secs(50).await;
    cache.auto_auth_token_renewed(&SecretToken::new("s.old"), Duration::from_secs(100));
    cache.register_auto_auth_token(SecretToken::new("s.new"), Duration::from_secs(3_600));
    sleep_secs(99).await;
    assert!(
        is_hit(&cache, &old).await,
        "still valid while the old token lives"
    );
    sleep_secs(2).await;

    assert!(!is_hit(&cache, &old).await);
    assert!(!cache.cacheable_request(&old.parts()));
    assert!(cache.cacheable_request(&Req::creds("s.new", "app").parts()));
    sleep_secs(2_000).await;
    assert!(renewer.calls().is_empty(), "no renewal under a dead token");
}

#[tokio::test(start_paused = true)]
async fn the_current_auto_auth_token_expiring_drops_its_leases_but_stays_registered() {
    let cache = LeaseCache::new(settings());
    cache.register_auto_auth_token(SecretToken::new(AUTO), Duration::from_secs(100));
    let renewer = FakeRenewer::new(|_| extended(1_000));
    let _stop = start_scheduler(&cache, &renewer);
    let req = Req::creds(AUTO, "app");
    fill(&cache, &req, &Resp::lease("db/creds/app/1", 1_000, true)).await;

    sleep_secs(101).await;

    assert!(!is_hit(&cache, &req).await);
    assert!(cache.cacheable_request(&req.parts()));
}

/// Vault renews everything it cached until max TTL, used or not. With `idle_timeout` set, an
/// entry nobody asked for in that time is no longer renewed and runs out.
#[tokio::test(start_paused = true)]
async fn idle_entries_are_left_to_run_out() {
    let idle = CacheSettings {
        idle_timeout: Some(Duration::from_secs(300)),
        ..settings()
    };
    let cache = cache_with(idle);
    let renewer = FakeRenewer::new(|_| extended(300));
    let _stop = start_scheduler(&cache, &renewer);
    let used = Req::creds(AUTO, "used");
    let unused = Req::creds(AUTO, "unused");
    fill(&cache, &used, &Resp::lease("db/creds/used/1", 300, true)).await;
    fill(
        &cache,
        &unused,
        &Resp::lease("db/creds/unused/1", 300, true),
    )
    .await;

    for _ in 0..8 {
        sleep_secs(100).await;
        assert!(is_hit(&cache, &used).await);
    }

    let renewed = |lease: &str| {
        renewer
            .calls()
            .iter()
            .filter(|call| call.lease.as_deref() == Some(lease))
            .count()
    };
    // Renewed at 210 (idle 210 s < 300 s), not at 420: then served until 510 − 30 s.
    assert_eq!(renewed("db/creds/unused/1"), 1);
    assert_eq!(renewed("db/creds/used/1"), 3);
    assert!(!is_hit(&cache, &unused).await);
}

#[tokio::test(start_paused = true)]
async fn renewals_in_flight_are_bounded() {
    let cache = cache_with(CacheSettings {
        renew_concurrency: 4,
        ..settings()
    });
    let in_flight = Arc::new(Mutex::new((0_usize, 0_usize)));
    let renewer = SlowRenewer(in_flight.clone());
    let (_stop, stopped) = oneshot::channel::<()>();
    let runner = cache.clone();
    tokio::spawn(async move {
        runner
            .run_renewals(renewer, async {
                let _ = stopped.await;
            })
            .await;
    });
    for i in 0..20 {
        let req = Req::creds(AUTO, &format!("r{i}"));
        fill(
            &cache,
            &req,
            &Resp::lease(&format!("db/creds/r{i}/1"), 300, true),
        )
        .await;
    }

    sleep_secs(260).await;

    let (_, peak) = *in_flight.lock();
    assert_eq!(peak, 4);
    assert_eq!(cache.stats().renewals, 20);
}

/// Takes 5 s per renewal and records the peak of renewals in flight.
struct SlowRenewer(Arc<Mutex<(usize, usize)>>);

impl SlowRenewer {
    async fn renew(&self) -> Renewal {
        {
            let mut counts = self.0.lock();
            counts.0 += 1;
            counts.1 = counts.1.max(counts.0);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.0.lock().0 -= 1;
        extended(300)
    }
}

impl Renewer for SlowRenewer {
    async fn renew_token(&self, _: &SecretToken, _: &str) -> Renewal {
        self.renew().await
    }

    async fn renew_lease(&self, _: &SecretToken, _: &str, _: &str) -> Renewal {
        self.renew().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_renewal_times_out_as_a_failure() {
    let cache = cache_with(CacheSettings {
        renew_timeout: Duration::from_secs(5),
        ..settings()
    });
    let (_stop, stopped) = oneshot::channel::<()>();
    let runner = cache.clone();
    tokio::spawn(async move {
        runner
            .run_renewals(HungRenewer, async {
                let _ = stopped.await;
            })
            .await;
    });
    fill(
        &cache,
        &Req::creds(AUTO, "app"),
        &Resp::lease("db/creds/app/1", 300, true),
    )
    .await;

    sleep_secs(216).await;

    assert_eq!(cache.stats().renewal_failures, 1);
}

struct HungRenewer;

impl Renewer for HungRenewer {
    async fn renew_token(&self, _: &SecretToken, _: &str) -> Renewal {
        std::future::pending().await
    }

    async fn renew_lease(&self, _: &SecretToken, _: &str, _: &str) -> Renewal {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stopped_scheduler_resumes_interrupted_renewals() {
    let cache = cache();
    fill(
        &cache,
        &Req::creds(AUTO, "app"),
        &Resp::lease("db/creds/app/1", 300, true),
    )
    .await;
    let (stop, stopped) = oneshot::channel::<()>();
    let runner = cache.clone();
    let first = tokio::spawn(async move {
        runner
            .run_renewals(HungRenewer, async {
                let _ = stopped.await;
            })
            .await;
    });
    sleep_secs(211).await;
    assert_eq!(cache.stats().renewals_in_flight, 1);

    drop(stop);
    first.await.unwrap();
    let renewer = FakeRenewer::new(|_| extended(300));
    let _stop = start_scheduler(&cache, &renewer);
    sleep_secs(1).await;

    assert_eq!(renewer.calls().len(), 1);
    assert_eq!(cache.stats().renewals, 1);
}

#[tokio::test(start_paused = true)]
async fn a_second_scheduler_does_not_start() {
    let cache = cache();
    let first = FakeRenewer::new(|_| extended(300));
    let _stop = start_scheduler(&cache, &first);
    tokio::task::yield_now().await;

    let second = FakeRenewer::new(|_| extended(300));
    let returned = tokio::time::timeout(
        Duration::from_secs(1),
        cache.run_renewals(second, std::future::pending()),
    );
    assert!(returned.await.is_ok());
}

/// The proxy and the binary run these on a multi-threaded runtime.
#[test]
fn futures_and_handles_can_cross_threads() {
    fn send<T: Send>(_: &T) {}
    fn shared<T: Send + Sync + Clone>() {}

    let cache = LeaseCache::new(CacheSettings::default());
    let key = LeaseCache::key(&Req::creds(AUTO, "app").parts());
    send(&cache.lookup(&key));
    send(&cache.run_renewals(
        FakeRenewer::new(|_| Renewal::Failed),
        std::future::pending(),
    ));
    shared::<LeaseCache>();
}

#[tokio::test(start_paused = true)]
async fn a_mass_expiry_is_handled_in_short_passes() {
    let cache = cache();
    for i in 0..3_000 {
        let req = Req::creds(AUTO, &format!("r{i}"));
        fill(
            &cache,
            &req,
            &Resp::lease(&format!("db/creds/r{i}/1"), 100, true),
        )
        .await;
    }
    // Every renewal at 70 s reaches max TTL: all 3,000 leases end at 90 − 10 s, together.
    let renewer = FakeRenewer::new(|_| Renewal::Extended {
        ttl: Duration::from_secs(20),
        renewable: false,
    });
    let _stop = start_scheduler(&cache, &renewer);

    sleep_secs(79).await;
    assert_eq!(cache.stats().entries, 3_000);
    sleep_secs(2).await;

    assert_eq!(renewer.calls().len(), 3_000);
    assert_eq!(cache.stats().entries, 0);
}
