//! Arbitrary HTTP requests through a listener's whole router, as a service with no socket:
//! the agent endpoints (cache-clear bodies included), `require_request_header`, the path and
//! body rules, token selection, the cache lookup and the forward, which fails fast against a
//! closed port. Any panic is a bug; every answer must be a well-formed response.
#![no_main]

use std::sync::OnceLock;

use api_proxy::{
    AutoAuthSlot, CancellationToken, ListenerKind, ListenerSettings, Metrics, MetricsSettings,
    ProxySettings, ProxyState, QuitSignal, UseAutoAuthToken,
};
use axum::body::Body;
use http::{Method, Request};
use lease_cache::{CacheSettings, LeaseCache};
use tower::ServiceExt;
use vault_client::{Client, ClientSettings, RetryPolicy, Token};

struct World {
    runtime: tokio::runtime::Runtime,
    routers: Vec<api_proxy::Routes>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let routers = runtime.block_on(async {
            let client = Client::new(&ClientSettings {
                address: "http://127.0.0.1:1".into(),
                retry: RetryPolicy::NONE,
                timeout: std::time::Duration::from_secs(1),
                ..ClientSettings::default()
            })
            .expect("a client");
            let slot = AutoAuthSlot::new();
            slot.set(Token::new("s.fuzz-auto-auth")).expect("a token");
            let state = ProxyState::new(
                client,
                Some(LeaseCache::new(CacheSettings::default())),
                slot,
                Metrics::new(MetricsSettings::default()),
                ProxySettings {
                    use_auto_auth_token: UseAutoAuthToken::Enabled,
                    ..ProxySettings::default()
                },
            )
            .expect("a proxy state");
            let plain = ListenerSettings::new(ListenerKind::Tcp {
                address: "127.0.0.1:0".into(),
                tls: None,
            });
            let mut strict = plain.clone();
            strict.require_request_header = true;
            strict.enable_quit = true;
            strict.max_request_size = 4096;
            [plain, strict]
                .iter()
                .map(|l| api_proxy::router(&state, l, QuitSignal::new(CancellationToken::new())))
                .collect()
        });
        World { runtime, routers }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Layout: selector, then method, URI, header lines and body split by 0xFF.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.split(|b| *b == 0xFF);
    let method = Method::from_bytes(parts.next().unwrap_or_default()).unwrap_or(Method::GET);
    let uri = parts.next().unwrap_or_default();
    let uri = if selector & 1 == 0 {
        [b"/agent/v1/cache-clear".as_slice(), uri].concat()
    } else {
        [b"/v1/".as_slice(), uri].concat()
    };
    let Ok(uri) = http::Uri::try_from(uri) else {
        return;
    };
    let mut request = Request::builder().method(method).uri(uri);
    for line in parts.next().unwrap_or_default().split(|b| *b == b'\n') {
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            request = request.header(&line[..colon], &line[colon + 1..]);
        }
    }
    let body = parts.next().unwrap_or_default().to_vec();
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };

    let world = world();
    let router = world.routers[usize::from(selector >> 7)].clone();
    world.runtime.block_on(async move {
        let response = router.oneshot(request).await.expect("the router is infallible");
        let _ = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    });
});
