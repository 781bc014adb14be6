//! The proxy handler: every request that is not an agent endpoint goes to Vault through here.
//!
//! The common case (no cache, or a request the cache cannot take) costs a path check, a
//! body read, a few header edits and the forward itself; the answer streams back untouched.
//! Only requests the cache may take, revocations, and token lookups made with the auto-auth
//! token cost more (a key, a copy of the request, a parsed answer).

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, AGE, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode};
use lease_cache::{FillGuard, LeaseCache, Lookup, RequestParts, ResponseParts, cache_key};
use serde_json::Value;
use tracing::debug;
use vault_client::{Client, ForwardBody, NAMESPACE_HEADER, RetryPolicy, TOKEN_HEADER};

use crate::body::{Bounded, Prefixed, read_bounded, read_request_body};
use crate::error::ProxyError;
use crate::metrics::{Counter, Metrics};
use crate::paths::{
    TokenRoute, canonical_uri, check_path, may_revoke, needs_namespace_header,
    strip_request_headers, strip_response_headers, token_route,
};
use crate::settings::UseAutoAuthToken;
use crate::token::{AutoAuthSlot, AutoAuthToken};

/// `X-Cache`: whether an answer came from the cache.
pub(crate) const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// Largest answer the proxy reads into memory to offer to the cache, when nothing is set.
pub const DEFAULT_MAX_CACHED_RESPONSE: usize = 1024 * 1024;

/// How the proxy treats requests, beyond the Vault client it forwards with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// Whether and how requests get the auto-auth token.
    pub use_auto_auth_token: UseAutoAuthToken,
    /// The agent's namespace, added as `X-Vault-Namespace` to requests that name none
    /// (see the crate documentation for the exact rule).
    pub namespace: Option<String>,
    /// Largest answer read into memory to be cached; larger ones stream through uncached.
    pub max_cached_response: usize,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            use_auto_auth_token: UseAutoAuthToken::Disabled,
            namespace: None,
            max_cached_response: DEFAULT_MAX_CACHED_RESPONSE,
        }
    }
}

/// The configured namespace cannot be an HTTP header value.
#[derive(Debug, thiserror::Error)]
#[error("the namespace {namespace:?} is not a valid HTTP header value")]
pub struct InvalidNamespace {
    /// The namespace as configured.
    pub namespace: String,
}

/// What every listener's proxy handler shares: the Vault client, the cache, the auto-auth
/// token and the metrics. Cheap to clone.
#[derive(Clone)]
pub struct ProxyState {
    inner: Arc<Shared>,
}

struct Shared {
    client: Client,
    /// The same client without retries, for `sys/health`: a standby's 429 or a sealed node's
    /// 503 is the answer a health check wants at once, not a reason to retry for minutes.
    health_client: Client,
    cache: Option<LeaseCache>,
    auto_auth: AutoAuthSlot,
    mode: UseAutoAuthToken,
    namespace: Option<Namespace>,
    metrics: Metrics,
    max_cached_response: usize,
}

struct Namespace {
    header: HeaderValue,
    /// Without surrounding `/`, to compare with a path.
    trimmed: String,
}

impl ProxyState {
    /// Builds the shared state. `client` is the proxy's own client (its retry policy is
    /// `vault.retry`); `cache` is `None` without a `cache {}` block.
    pub fn new(
        client: Client,
        cache: Option<LeaseCache>,
        auto_auth: AutoAuthSlot,
        metrics: Metrics,
        settings: ProxySettings,
    ) -> Result<Self, InvalidNamespace> {
        let namespace = match settings.namespace.as_deref().map(|ns| ns.trim_matches('/')) {
            None | Some("") => None,
            Some(trimmed) => {
                let header = HeaderValue::from_str(trimmed).map_err(|_| InvalidNamespace {
                    namespace: trimmed.to_owned(),
                })?;
                Some(Namespace {
                    header,
                    trimmed: trimmed.to_owned(),
                })
            }
        };
        if let Some(cache) = &cache {
            metrics.watch_cache(cache);
        }

        Ok(Self {
            inner: Arc::new(Shared {
                health_client: client.with_retry(RetryPolicy::NONE),
                client,
                cache,
                auto_auth,
                mode: settings.use_auto_auth_token,
                namespace,
                metrics,
                max_cached_response: settings.max_cached_response,
            }),
        })
    }

    /// The metrics registry the proxy records into.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The lease cache, when there is one.
    pub fn cache(&self) -> Option<&LeaseCache> {
        self.inner.cache.as_ref()
    }

    /// The auto-auth token slot.
    pub fn auto_auth(&self) -> &AutoAuthSlot {
        &self.inner.auto_auth
    }

    /// Forwards one request and records its outcome; never fails, errors become answers.
    pub(crate) async fn handle(&self, request: Request<Body>, limit: usize) -> Response {
        let started = Instant::now();
        let metrics = &self.inner.metrics;

        let response = match self.forward(request, limit).await {
            Ok(response) => {
                let counter = if response.status().as_u16() < 400 {
                    Counter::ProxySuccess
                } else {
                    Counter::ProxyClientError
                };
                metrics.count(counter);
                response
            }
            Err(error) => {
                let counter = if error.status().is_server_error() {
                    Counter::ProxyError
                } else {
                    Counter::ProxyClientError
                };
                metrics.count(counter);
                error.into_response()
            }
        };

        metrics.observe_latency(started.elapsed());
        response
    }

    async fn forward(&self, request: Request<Body>, limit: usize) -> Result<Response, ProxyError> {
        let (mut parts, body) = request.into_parts();
        let refused = |reason| ProxyError::PathRefused { reason };
        check_path(parts.uri.path()).map_err(refused)?;
        if let Some(uri) = canonical_uri(&parts.uri).map_err(refused)? {
            parts.uri = uri;
        }
        let body = read_request_body(body, &parts.headers, limit).await?;

        strip_request_headers(&mut parts.headers);
        self.select_token(&mut parts.headers);
        self.add_namespace(&mut parts.headers, parts.uri.path());
        debug!(method = %parts.method, path = parts.uri.path(), "forwarding request to Vault");

        if let Some(cache) = &self.inner.cache
            && self.cache_may_take(cache, &mut parts, &body)
        {
            return self.through_cache(cache, parts, body).await;
        }
        // Boxed, like the cache's miss path: hyper moves each request's future whole, and
        // the forwarding futures are most of its size.
        Box::pin(self.pass_through(parts, body)).await
    }

    /// Sends a request the cache does not take to Vault, and relays the answer.
    async fn pass_through(&self, parts: Parts, body: Bytes) -> Result<Response, ProxyError> {
        let mut parts = parts;
        let sanitise = self.sanitise_plan(&mut parts.headers, parts.uri.path(), &body);
        let revocation = self.revocation_watch(&parts, &body);

        let client = self.client_for(parts.uri.path());
        let upstream = client.forward(Request::from_parts(parts, body)).await?;
        let (mut head, upstream_body) = upstream.into_parts();
        strip_response_headers(&mut head.headers);

        if let Some((request, body)) = revocation
            && revoked(head.status)
        {
            self.apply_revocation(&request, &body);
        }
        if let Some(route) = sanitise
            && head.status == StatusCode::OK
        {
            return sanitised(head, upstream_body, route).await;
        }

        self.mark_miss(&mut head.headers, head.status);
        Ok(Response::from_parts(head, Body::new(upstream_body)))
    }

    /// Token selection (see the crate documentation): the client's token, or the auto-auth
    /// token when the mode says so.
    fn select_token(&self, headers: &mut HeaderMap) {
        let use_auto_auth = match self.inner.mode {
            UseAutoAuthToken::Disabled => false,
            UseAutoAuthToken::Enabled => headers
                .get(TOKEN_HEADER)
                .is_none_or(|token| token.is_empty()),
            UseAutoAuthToken::Force => true,
        };

        if use_auto_auth {
            match self.inner.auto_auth.current() {
                Some(token) => {
                    headers.insert(TOKEN_HEADER, token.header().clone());
                }
                None => {
                    headers.remove(TOKEN_HEADER);
                }
            }
        }
        if let Some(token) = headers.get_mut(TOKEN_HEADER) {
            token.set_sensitive(true);
        }
    }

    fn add_namespace(&self, headers: &mut HeaderMap, path: &str) {
        let Some(namespace) = &self.inner.namespace else {
            return;
        };
        if !headers.contains_key(NAMESPACE_HEADER)
            && needs_namespace_header(path, &namespace.trimmed)
        {
            headers.insert(NAMESPACE_HEADER, namespace.header.clone());
        }
    }

    /// Whether the cache may take this request; if so, asks Vault for an uncompressed answer,
    /// which the cache has to read.
    fn cache_may_take(&self, cache: &LeaseCache, parts: &mut Parts, body: &Bytes) -> bool {
        let token = sent_token(&parts.headers);
        let may = cache.cacheable_request(&RequestParts::from_request(parts, body, token));
        if may {
            parts.headers.remove(ACCEPT_ENCODING);
        }
        may
    }

    async fn through_cache(
        &self,
        cache: &LeaseCache,
        parts: Parts,
        body: Bytes,
    ) -> Result<Response, ProxyError> {
        let metrics = &self.inner.metrics;
        let request = RequestParts::from_request(&parts, &body, sent_token(&parts.headers));
        let key = cache_key(&request);

        let guard = match cache.lookup(&key).await {
            Lookup::Hit(stored) => {
                metrics.count(Counter::CacheHit);
                debug!(path = request.path, "answered from the cache");
                return Ok(hit(&stored));
            }
            Lookup::Miss(guard) => guard,
        };
        metrics.count(Counter::CacheMiss);

        // Boxed, so that the future of a hit, which hyper moves whole, stays small.
        Box::pin(self.fill(cache, guard, parts, body)).await
    }

    /// Sends a request the cache missed to Vault and offers the answer to the cache.
    async fn fill(
        &self,
        cache: &LeaseCache,
        guard: FillGuard,
        parts: Parts,
        body: Bytes,
    ) -> Result<Response, ProxyError> {
        if guard.is_plain() {
            // A plain read's answer goes as it comes: the cache has lately seen this request
            // create nothing, and will look again once that belief lapses. Nothing is
            // offered, so the request goes uncopied.
            let (head, upstream_body) = self.upstream(parts, body).await?;
            return Ok(Response::from_parts(head, Body::new(upstream_body)));
        }
        let request = RequestParts::from_request(&parts, &body, sent_token(&parts.headers));

        // The guard goes with an early return, which lets identical requests waiting on it go on.
        let (head, upstream_body) = self.upstream(parts.clone(), body.clone()).await?;

        let bound = self.inner.max_cached_response;
        let offered =
            head.status == StatusCode::OK && declared_length(&head.headers) <= bound as u64;
        if !offered {
            return Ok(Response::from_parts(head, Body::new(upstream_body)));
        }

        let expected = declared_length(&head.headers) as usize;
        let read = read_bounded(upstream_body, bound, expected).await;
        match read.map_err(|error| ProxyError::UpstreamBody {
            reason: error.to_string(),
        })? {
            Bounded::Complete(bytes) => {
                let response = ResponseParts {
                    status: head.status,
                    headers: &head.headers,
                    body: &bytes,
                };
                let outcome = cache.store(guard, &request, &response);
                debug!(
                    path = request.path,
                    ?outcome,
                    "offered the answer to the cache"
                );
                Ok(Response::from_parts(head, Body::from(bytes)))
            }
            Bounded::Over { head: read, rest } => {
                let body = Body::new(Prefixed::new(read, rest));
                Ok(Response::from_parts(head, body))
            }
        }
    }

    /// Sends a request the cache took to Vault; the answer's head comes stripped of what
    /// must not be relayed, and marked as a miss.
    async fn upstream(
        &self,
        parts: Parts,
        body: Bytes,
    ) -> Result<(http::response::Parts, ForwardBody), ProxyError> {
        let client = self.client_for(parts.uri.path());
        let upstream = client.forward(Request::from_parts(parts, body)).await?;
        let (mut head, upstream_body) = upstream.into_parts();
        strip_response_headers(&mut head.headers);
        self.mark_miss(&mut head.headers, head.status);
        Ok((head, upstream_body))
    }

    /// Whether the answer must be stripped of the auto-auth token's identity, so that a
    /// local caller cannot learn it: only when the token sent is the auto-auth token.
    fn sanitise_plan(
        &self,
        headers: &mut HeaderMap,
        path: &str,
        body: &[u8],
    ) -> Option<TokenRoute> {
        let route = token_route(path)?;
        let auto_auth = self.inner.auto_auth.current()?;
        if sent_token(headers) != Some(auto_auth.expose()) {
            return None;
        }

        let about_auto_auth = match route {
            TokenRoute::LookupSelf | TokenRoute::RenewSelf => true,
            TokenRoute::Lookup | TokenRoute::Renew => body_token_is(body, &auto_auth),
        };
        if about_auto_auth {
            headers.remove(ACCEPT_ENCODING);
        }
        about_auto_auth.then_some(route)
    }

    /// A copy of a request that may be a revocation, to tell the cache once Vault agreed.
    fn revocation_watch(&self, parts: &Parts, body: &Bytes) -> Option<(Parts, Bytes)> {
        let watch = self.inner.cache.is_some()
            && (parts.method == Method::PUT || parts.method == Method::POST)
            && may_revoke(parts.uri.path());
        watch.then(|| (parts.clone(), body.clone()))
    }

    fn apply_revocation(&self, parts: &Parts, body: &[u8]) {
        let Some(cache) = &self.inner.cache else {
            return;
        };
        let request = RequestParts::from_request(parts, body, sent_token(&parts.headers));
        if let Some(revocation) = LeaseCache::classify_revocation(&request) {
            let evicted = cache.on_revoked(revocation);
            debug!(
                path = request.path,
                evicted, "revocation applied to the cache"
            );
        }
    }

    fn client_for(&self, path: &str) -> &Client {
        if path == "/v1/sys/health" {
            &self.inner.health_client
        } else {
            &self.inner.client
        }
    }

    /// `X-Cache: MISS` on a proxied success, only when there is a cache to miss. Vault adds
    /// it even without a cache, which tells the caller nothing.
    fn mark_miss(&self, headers: &mut HeaderMap, status: StatusCode) {
        if self.inner.cache.is_some() && status.as_u16() < 400 {
            headers.insert(X_CACHE, HeaderValue::from_static("MISS"));
        }
    }
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("client", &self.inner.client)
            .field("cache", &self.inner.cache.is_some())
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

/// The token the request goes with, if any.
fn sent_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(TOKEN_HEADER)
        .and_then(|token| token.to_str().ok())
        .filter(|token| !token.is_empty())
}

/// Whether Vault agreed to a revocation: done (`204`), or accepted to be done shortly
/// (`202`, a lease revocation with `sync=false`, which is what `bao lease revoke` sends).
/// Either way the lease is going, so the cache must stop serving it now.
fn revoked(status: StatusCode) -> bool {
    status == StatusCode::NO_CONTENT || status == StatusCode::ACCEPTED
}

fn declared_length(headers: &HeaderMap) -> u64 {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

/// A cached answer, as stored, with `X-Cache: HIT` and its `Age`; the server adds `Date`.
fn hit(stored: &lease_cache::CachedResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body()));
    *response.status_mut() = stored.status();

    // The stored headers come ready to serve, with room for the two added here.
    let headers = response.headers_mut();
    *headers = stored.headers().clone();
    headers.insert(X_CACHE, HeaderValue::from_static("HIT"));
    headers.insert(AGE, HeaderValue::from(stored.age_secs()));
    response
}

/// Whether the `token` in a lookup or renew body is the auto-auth token (or absent, which
/// makes Vault use the calling token).
fn body_token_is(body: &[u8], auto_auth: &AutoAuthToken) -> bool {
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(default, borrow)]
        token: Option<std::borrow::Cow<'a, str>>,
    }

    if body.iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    match serde_json::from_slice::<Body<'_>>(body) {
        Ok(parsed) => parsed
            .token
            .is_none_or(|token| token.is_empty() || token == auto_auth.expose()),
        Err(_) => false,
    }
}

/// Largest token lookup or renewal answer the proxy rewrites.
const MAX_SANITISED_RESPONSE: usize = 1024 * 1024;

/// Removes the token and its accessor from a lookup or renewal answer.
async fn sanitised(
    mut head: http::response::Parts,
    body: ForwardBody,
    route: TokenRoute,
) -> Result<Response, ProxyError> {
    let read = read_bounded(body, MAX_SANITISED_RESPONSE, 0)
        .await
        .map_err(|error| ProxyError::UpstreamBody {
            reason: error.to_string(),
        })?;
    let Bounded::Complete(bytes) = read else {
        return Err(ProxyError::Sanitise {
            reason: "the answer is too large",
        });
    };

    let rewritten = strip_token_identity(&bytes, route)?;
    head.headers.remove(CONTENT_LENGTH);
    head.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(Response::from_parts(head, Body::from(rewritten)))
}

fn strip_token_identity(body: &[u8], route: TokenRoute) -> Result<Vec<u8>, ProxyError> {
    let unparsable = || ProxyError::Sanitise {
        reason: "the answer is not a JSON object",
    };
    let mut answer: Value = serde_json::from_slice(body).map_err(|_| unparsable())?;
    let object = answer.as_object_mut().ok_or_else(unparsable)?;

    match route {
        TokenRoute::LookupSelf | TokenRoute::Lookup => {
            if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
                data.remove("id");
                data.remove("accessor");
            }
        }
        TokenRoute::RenewSelf | TokenRoute::Renew => {
            if let Some(auth) = object.get_mut("auth").and_then(Value::as_object_mut) {
                for field in ["client_token", "accessor"] {
                    if auth.contains_key(field) {
                        auth.insert(field.to_owned(), Value::String(String::new()));
                    }
                }
            }
        }
    }
    serde_json::to_vec(&answer).map_err(|_| unparsable())
}

#[cfg(test)]
mod tests;
