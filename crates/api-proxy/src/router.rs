//! The routes of one listener: the agent endpoints under `/agent/v1/`, and the proxy for
//! everything else.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use lease_cache::LeaseCache;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info};

use crate::body::read_request_body;
use crate::error::{ProxyError, vault_error};
use crate::metrics::PROMETHEUS_DISABLED;
use crate::proxy::ProxyState;
use crate::settings::{ListenerRole, ListenerSettings};

/// The agent API's paths.
pub const METRICS_PATH: &str = "/agent/v1/metrics";
/// See [`METRICS_PATH`].
pub const CACHE_CLEAR_PATH: &str = "/agent/v1/cache-clear";
/// See [`METRICS_PATH`].
pub const QUIT_PATH: &str = "/agent/v1/quit";

const REQUEST_HEADER: HeaderName = HeaderName::from_static("x-vault-request");

/// Asks the agent to shut down; what `POST /agent/v1/quit` triggers.
///
/// Cloning shares the signal. Triggering it more than once is harmless: only the first call
/// cancels the token.
#[derive(Clone, Debug)]
pub struct QuitSignal {
    token: CancellationToken,
    fired: Arc<AtomicBool>,
}

impl QuitSignal {
    /// A signal that cancels `token` (the binary's shutdown token, or a child of it).
    pub fn new(token: CancellationToken) -> Self {
        Self {
            token,
            fired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Triggers the shutdown; true on the first call only.
    pub fn trigger(&self) -> bool {
        if self.fired.swap(true, Ordering::AcqRel) {
            return false;
        }
        info!("shutdown requested through the quit endpoint");
        self.token.cancel();
        true
    }

    /// Whether the signal was triggered.
    pub fn is_triggered(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// The token the signal cancels.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// Builds the routes of one listener.
///
/// Default role: `/agent/v1/metrics`, `/agent/v1/cache-clear`, `/agent/v1/quit` (404 unless
/// `enable_quit`), and everything else to Vault through the proxy; with
/// `require_request_header`, every route first checks `X-Vault-Request: true`. Metrics-only
/// role: the metrics route, and `404 page not found` for anything else.
pub fn router(state: &ProxyState, listener: &ListenerSettings, quit: QuitSignal) -> Routes {
    let shared = Arc::new(ListenerState {
        proxy: state.clone(),
        max_request_size: listener.max_request_size,
        enable_quit: listener.enable_quit,
        quit,
    });

    let metrics = get(metrics).fallback(metrics_wrong_method);
    if listener.role == ListenerRole::MetricsOnly {
        let agent = Router::new()
            .route(METRICS_PATH, metrics)
            .fallback(not_found)
            .with_state(shared);
        return Routes::from(agent);
    }

    let agent = Router::new()
        .route(METRICS_PATH, metrics)
        .route(CACHE_CLEAR_PATH, any(cache_clear))
        .route(QUIT_PATH, any(quit_handler))
        .fallback(proxy)
        .with_state(shared.clone());
    Routes {
        agent,
        proxy: Some(shared),
        require_request_header: listener.require_request_header,
    }
}

/// The routes of one listener, as [`router`] builds them: a tower service, which
/// [`BoundListener::serve`](crate::BoundListener::serve) runs.
///
/// The agent endpoints go through an axum router; every other request goes straight to the
/// proxy handler, the hot path, without routing or extractors in between. An axum router
/// of one's own converts into routes that are that router alone.
#[derive(Clone)]
pub struct Routes {
    agent: Router,
    /// The proxy, for a listener that has one (not metrics-only).
    proxy: Option<Arc<ListenerState>>,
    require_request_header: bool,
}

impl Routes {
    /// Answers one request; never fails, errors become answers.
    pub(crate) async fn answer(self, request: Request) -> Response {
        if self.require_request_header && !has_request_header(&request) {
            return ProxyError::MissingRequestHeader.into_response();
        }

        let path = request.uri().path();
        let agent_endpoint = path == METRICS_PATH || path == CACHE_CLEAR_PATH || path == QUIT_PATH;
        match &self.proxy {
            Some(listener) if !agent_endpoint => {
                listener
                    .proxy
                    .handle(request, listener.max_request_size)
                    .await
            }
            _ => match self.agent.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
        }
    }
}

impl From<Router> for Routes {
    fn from(agent: Router) -> Self {
        Self {
            agent,
            proxy: None,
            require_request_header: false,
        }
    }
}

impl tower::Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let routes = self.clone();
        Box::pin(async move { Ok(routes.answer(request).await) })
    }
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("proxy", &self.proxy.is_some())
            .field("require_request_header", &self.require_request_header)
            .finish_non_exhaustive()
    }
}

struct ListenerState {
    proxy: ProxyState,
    max_request_size: usize,
    enable_quit: bool,
    quit: QuitSignal,
}

type Shared = State<Arc<ListenerState>>;

async fn proxy(State(listener): Shared, request: Request) -> Response {
    listener
        .proxy
        .handle(request, listener.max_request_size)
        .await
}

async fn metrics(State(listener): Shared, request: Request) -> Response {
    let metrics = listener.proxy.metrics();
    if !wants_prometheus(&request) {
        return with_content_type(metrics.render_json(), "application/json");
    }

    match metrics.render_prometheus() {
        Some(text) => with_content_type(text, "text/plain; version=0.0.4; charset=utf-8"),
        None => vault_error(StatusCode::BAD_REQUEST, &[PROMETHEUS_DISABLED]),
    }
}

async fn metrics_wrong_method() -> Response {
    vault_error(StatusCode::METHOD_NOT_ALLOWED, &[])
}

/// `?format=prometheus`, or an `Accept` header asking for OpenMetrics or plain text.
fn wants_prometheus(request: &Request) -> bool {
    let by_query = request
        .uri()
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "format=prometheus"));
    let by_accept = request
        .headers()
        .get(ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| {
            accept.starts_with("application/openmetrics-text") || accept.starts_with("text/plain")
        });
    by_query || by_accept
}

/// `POST|PUT /agent/v1/cache-clear`; any other method, or no cache, is a no-op answered 200.
async fn cache_clear(State(listener): Shared, request: Request) -> Response {
    let writes = request.method() == Method::POST || request.method() == Method::PUT;
    let Some(cache) = listener.proxy.cache().filter(|_| writes) else {
        return StatusCode::OK.into_response();
    };

    let (parts, body) = request.into_parts();
    let body = match read_request_body(body, &parts.headers, listener.max_request_size).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };

    match LeaseCache::parse_clear_request(&body) {
        Ok(clear) => {
            let evicted = cache.clear(clear);
            debug!(evicted, "cache-clear request served");
            StatusCode::OK.into_response()
        }
        Err(error) => {
            debug!(%error, "cache-clear request refused");
            vault_error(error.status(), &[error.to_string().as_str()])
        }
    }
}

async fn quit_handler(State(listener): Shared, method: Method) -> Response {
    if !listener.enable_quit {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    listener.quit.trigger();
    StatusCode::OK.into_response()
}

/// Go's `404 page not found`, as Vault's metrics-only listener answers.
async fn not_found() -> Response {
    let mut response = with_content_type(
        "404 page not found\n".to_owned(),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// Whether a request carries exactly one `X-Vault-Request: true`, which a listener with
/// `require_request_header` demands before anything else runs.
fn has_request_header(request: &Request) -> bool {
    let mut values = request.headers().get_all(REQUEST_HEADER).iter();
    matches!(
        (values.next(), values.next()),
        (Some(value), None) if value == "true"
    )
}

fn with_content_type(body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests;
