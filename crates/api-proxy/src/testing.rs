//! Test support: a recording upstream and ready-made proxy states.
//!
//! [`Upstream`] is a small HTTP server on a loopback port that stands in for Vault only to
//! observe the exact bytes the proxy sends (method, request target, headers, body), which a
//! real Vault does not echo back. It answers with whatever the test scripts. How a real Vault
//! answers, and caching, revocation and real clients against it, are covered end to end in the
//! workspace's `tests/` crate.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use lease_cache::LeaseCache;
use parking_lot::Mutex;
use tower::ServiceExt;
use vault_client::{Client, ClientSettings, RetryPolicy};

use crate::metrics::Metrics;
use crate::proxy::{ProxySettings, ProxyState};
use crate::router::Routes;
use crate::router::{QuitSignal, router};
use crate::settings::{ListenerKind, ListenerSettings, UseAutoAuthToken};
use crate::token::AutoAuthSlot;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) method: Method,
    /// Path and query exactly as sent.
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

type Script = dyn Fn(&Received) -> Response<Body> + Send + Sync;

/// A recording upstream; see the module documentation.
#[derive(Clone)]
pub(crate) struct Upstream {
    pub(crate) address: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    /// Starts an upstream that answers every request with `script`.
    pub(crate) async fn start(
        script: impl Fn(&Received) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);

        let log = received.clone();
        let app = Router::new().fallback(move |request: Request<Body>| {
            let log = log.clone();
            let script = script.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let seen = Received {
                    method: parts.method.clone(),
                    target: target.to_owned(),
                    headers: parts.headers.clone(),
                    body,
                };
                let response = script(&seen);
                log.lock().push(seen);
                response
            }
        });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, received }
    }

    /// An upstream answering `200 {}` as JSON.
    pub(crate) async fn ok() -> Self {
        Self::start(|_| json_response(StatusCode::OK, "{}")).await
    }

    pub(crate) fn count(&self) -> usize {
        self.received.lock().len()
    }

    pub(crate) fn last(&self) -> Received {
        self.received
            .lock()
            .last()
            .cloned()
            .expect("no request reached the upstream")
    }
}

pub(crate) fn json_response(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// A proxy client for `address`.
pub(crate) fn client(address: &str, retry: RetryPolicy) -> Client {
    Client::new(&ClientSettings {
        address: address.to_owned(),
        retry,
        ..ClientSettings::default()
    })
    .unwrap()
}

/// The pieces a test varies.
pub(crate) struct Setup {
    pub(crate) cache: Option<LeaseCache>,
    pub(crate) mode: UseAutoAuthToken,
    pub(crate) namespace: Option<String>,
    pub(crate) auto_auth: AutoAuthSlot,
    /// None by default, so that tests see every attempt.
    pub(crate) retry: RetryPolicy,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            cache: None,
            mode: UseAutoAuthToken::Disabled,
            namespace: None,
            auto_auth: AutoAuthSlot::new(),
            retry: RetryPolicy::NONE,
        }
    }
}

impl Setup {
    pub(crate) fn state(self, address: &str) -> ProxyState {
        ProxyState::new(
            client(address, self.retry),
            self.cache,
            self.auto_auth,
            Metrics::default(),
            ProxySettings {
                use_auto_auth_token: self.mode,
                namespace: self.namespace,
                ..ProxySettings::default()
            },
        )
        .unwrap()
    }
}

/// A default-role TCP listener's settings (the address is not bound by router tests).
pub(crate) fn listener() -> ListenerSettings {
    ListenerSettings::new(ListenerKind::Tcp {
        address: "127.0.0.1:0".to_owned(),
        tls: None,
    })
}

/// The routes of a default listener over `state`.
pub(crate) fn app(state: &ProxyState) -> Routes {
    router(state, &listener(), QuitSignal::new(Default::default()))
}

/// Sends one request through `app`, returning status, headers and the whole body.
pub(crate) async fn send(app: &Routes, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

pub(crate) fn get(target: &str) -> Request<Body> {
    Request::get(target).body(Body::empty()).unwrap()
}
