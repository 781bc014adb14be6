//! What the proxy sends upstream and hands back, observed through the recording upstream of
//! [`crate::testing`].

use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use lease_cache::{CacheSettings, LeaseCache, SecretToken};
use vault_client::Token;

use super::*;
use crate::metrics::Counter;
use crate::testing::{Setup, Upstream, app, get, json_response, send};

const AUTO: &str = "hvs.auto-auth-token";
const CLIENT: &str = "hvs.client-token";

fn slot_with_auto_token() -> AutoAuthSlot {
    let slot = AutoAuthSlot::new();
    slot.set(Token::new(AUTO)).unwrap();
    slot
}

fn cache_managing_auto_token() -> LeaseCache {
    let cache = LeaseCache::new(CacheSettings::default());
    cache.register_auto_auth_token(SecretToken::new(AUTO), Duration::from_secs(3600));
    cache
}

#[tokio::test]
async fn token_selection() {
    async fn check(mode: UseAutoAuthToken, client_token: Option<&str>, sent: Option<&str>) {
        let upstream = Upstream::ok().await;
        let state = Setup {
            mode,
            auto_auth: slot_with_auto_token(),
            ..Setup::default()
        }
        .state(&upstream.address);

        let mut request = Request::get("/v1/secret/data/app");
        if let Some(token) = client_token {
            request = request.header("x-vault-token", token);
        }
        let (status, _, _) = send(&app(&state), request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);

        let received = upstream.last();
        let tokens: Vec<_> = received.headers.get_all("x-vault-token").iter().collect();
        let got = tokens.first().map(|value| value.to_str().unwrap());
        assert!(tokens.len() <= 1, "{mode:?}: one token header at most");
        assert_eq!(got, sent, "{mode:?} with client token {client_token:?}");
    }

    use UseAutoAuthToken::{Disabled, Enabled, Force};
    check(Disabled, None, None).await;
    check(Disabled, Some(CLIENT), Some(CLIENT)).await;
    check(Enabled, None, Some(AUTO)).await;
    check(Enabled, Some(""), Some(AUTO)).await;
    check(Enabled, Some(CLIENT), Some(CLIENT)).await;
    check(Force, None, Some(AUTO)).await;
    check(Force, Some(CLIENT), Some(AUTO)).await;
}

#[tokio::test]
async fn before_the_first_login_requests_go_without_a_token() {
    let upstream = Upstream::ok().await;
    let state = Setup {
        mode: UseAutoAuthToken::Force,
        ..Setup::default()
    }
    .state(&upstream.address);

    let request = Request::get("/v1/sys/mounts")
        .header("x-vault-token", CLIENT)
        .body(Body::empty())
        .unwrap();
    send(&app(&state), request).await;

    assert!(upstream.last().headers.get("x-vault-token").is_none());
}

#[test]
fn the_token_header_is_marked_sensitive() {
    let state = Setup {
        mode: UseAutoAuthToken::Enabled,
        auto_auth: slot_with_auto_token(),
        ..Setup::default()
    }
    .state("http://127.0.0.1:1");

    for client_token in [None, Some(CLIENT)] {
        let mut headers = HeaderMap::new();
        if let Some(token) = client_token {
            headers.insert(TOKEN_HEADER, HeaderValue::from_static(token));
        }
        state.select_token(&mut headers);

        let value = headers.get(TOKEN_HEADER).unwrap();
        assert!(value.is_sensitive(), "{client_token:?}");
        assert!(!format!("{headers:?}").contains("hvs."), "{headers:?}");
    }
    assert!(!format!("{state:?}").contains("hvs."));
}

/// B04: the query goes upstream byte for byte, repeated keys and encoding included, and a
/// health status that is not 200 comes back as it is, after a single attempt.
#[tokio::test]
async fn query_strings_are_kept_byte_for_byte() {
    let upstream = Upstream::start(|received| {
        let health = received.target.starts_with("/v1/sys/health");
        if health && !received.target.contains("standbyok=true") {
            json_response(StatusCode::TOO_MANY_REQUESTS, r#"{"standby":true}"#)
        } else {
            json_response(StatusCode::OK, r#"{"standby":true}"#)
        }
    })
    .await;
    // One retry allowed: were the health answer retried, the count below would show it.
    let app = app(&Setup {
        retry: vault_client::RetryPolicy::new(1),
        ..Setup::default()
    }
    .state(&upstream.address));

    for target in [
        "/v1/sys/health?standbyok=true&perfstandbyok=true",
        "/v1/secret/data/app?a=1&a=2&b=x%2Fy",
        "/v1/secret/data/app?b=2&a=1&a=1&c=%7E%20+&d",
        "/v1/secret/metadata/?list=true",
    ] {
        let (status, _, _) = send(&app, get(target)).await;
        assert_eq!(status, StatusCode::OK, "{target}");
        assert_eq!(upstream.last().target, target);
    }

    let before = upstream.count();
    let (status, _, body) = send(&app, get("/v1/sys/health")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, r#"{"standby":true}"#);
    assert_eq!(
        upstream.count(),
        before + 1,
        "a health status is never retried"
    );
}

#[tokio::test]
async fn methods_and_bodies_are_forwarded_as_sent() {
    let upstream = Upstream::ok().await;
    let app = app(&Setup::default().state(&upstream.address));

    for method in ["LIST", "GET", "PUT", "POST", "DELETE", "PATCH"] {
        let body = format!("{{\"m\":\"{method}\"}}");
        let request = Request::builder()
            .method(method)
            .uri("/v1/secret/metadata/app")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        send(&app, request).await;

        let received = upstream.last();
        assert_eq!(received.method.as_str(), method);
        assert_eq!(received.body, body.as_bytes(), "{method}");
        assert_eq!(received.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let upstream = Upstream::start(|_| {
        http::Response::builder()
            .header("content-type", "application/json")
            .header("connection", "x-upstream-hop")
            .header("x-upstream-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("x-vault-thing", "kept")
            .body(Body::from("{}"))
            .unwrap()
    })
    .await;
    let app = app(&Setup::default().state(&upstream.address));

    let request = Request::get("/v1/secret/data/app")
        .header("connection", "keep-alive, x-client-hop")
        .header("keep-alive", "timeout=5")
        .header("x-client-hop", "1")
        .header("proxy-authorization", "Basic eA==")
        .header("te", "trailers")
        .header("upgrade", "h2c")
        .header("host", "agent.local:8200")
        .header("x-vault-request", "true")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(&app, request).await;

    let received = upstream.last();
    for gone in [
        "keep-alive",
        "x-client-hop",
        "proxy-authorization",
        "te",
        "upgrade",
    ] {
        assert!(!received.headers.contains_key(gone), "{gone} reached Vault");
    }
    assert_ne!(received.headers["host"], "agent.local:8200");
    assert_eq!(received.headers["x-vault-request"], "true");

    assert!(!headers.contains_key("connection"));
    assert!(!headers.contains_key("x-upstream-hop"));
    assert!(!headers.contains_key("keep-alive"));
    assert_eq!(headers["x-vault-thing"], "kept");
}

#[tokio::test]
async fn path_tricks_are_refused_without_forwarding() {
    let upstream = Upstream::ok().await;
    let app = app(&Setup::default().state(&upstream.address));

    for target in [
        "/v1/secret/../sys/seal",
        "/v1/secret/%2e%2e/sys/seal",
        "/v1/secret/%2E%2E/sys/seal",
        "/v1/secret%2f..%2fsys/seal",
        "/v1/./sys/health",
    ] {
        let (status, headers, body) = send(&app, get(target)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(headers["content-type"], "application/json");
        let errors: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            errors["errors"][0]
                .as_str()
                .unwrap()
                .contains("dot segments")
        );
    }
    assert_eq!(upstream.count(), 0);

    for target in ["/v1/v1/data/app", "/v1/secret/data/my..app"] {
        send(&app, get(target)).await;
        assert_eq!(upstream.last().target, target);
    }
}

/// Vault decodes percent-escapes, and answers a path with empty segments with a redirect to
/// its cleaned form, which the client follows. What the proxy recognises (token routes,
/// revocations, routes never cached) must be what Vault acts on, so it sends that form.
#[tokio::test]
async fn paths_vault_reads_alike_go_upstream_in_the_form_vault_acts_on() {
    let upstream = Upstream::ok().await;
    let app = app(&Setup::default().state(&upstream.address));

    for (target, sent) in [
        ("/v1/auth/token%2Flookup-self", "/v1/auth/token/lookup-self"),
        ("/v1/auth/token/lookup%2dself", "/v1/auth/token/lookup-self"),
        (
            "/v1/auth//token///lookup-self",
            "/v1/auth/token/lookup-self",
        ),
        ("/v1//sys/health", "/v1/sys/health"),
        (
            "/v1/secret%2fdata%2Fapp?x=%2F&y=a%2e",
            "/v1/secret/data/app?x=%2F&y=a%2e",
        ),
        (
            "/v1/secret/data/a%20b%25c%3F",
            "/v1/secret/data/a%20b%25c%3F",
        ),
        ("/v1/secret/metadata/", "/v1/secret/metadata/"),
    ] {
        let (status, _, _) = send(&app, get(target)).await;
        assert_eq!(status, StatusCode::OK, "{target}");
        assert_eq!(upstream.last().target, sent, "{target}");
    }
}

/// A body far over the limit is refused by its length alone, and one without a length as soon
/// as the limit is passed; neither reaches Vault.
#[tokio::test]
async fn oversized_bodies_get_413_without_forwarding() {
    let upstream = Upstream::ok().await;
    let app = app(&Setup::default().state(&upstream.address));
    const FIFTY_MIB: usize = 50 * 1024 * 1024;

    let declared = Request::put("/v1/secret/data/app")
        .header("content-length", FIFTY_MIB)
        .body(Body::from(vec![b'x'; FIFTY_MIB]))
        .unwrap();
    let (status, headers, body) = send(&app, declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        body,
        r#"{"errors":["request body exceeds the limit of 33554432 bytes"]}"#
    );

    let chunks = (0..50).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'y'; 1024 * 1024])));
    let streamed = Request::put("/v1/secret/data/app")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let (status, _, _) = send(&app, streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(upstream.count(), 0);
}

/// B16: a namespace is given once, in the header or in the path, and a client's header wins.
#[tokio::test]
async fn namespace_is_added_once_and_never_overrides_the_client() {
    async fn check(target: &str, client_ns: Option<&str>, sent: Option<&str>) {
        let upstream = Upstream::ok().await;
        let state = Setup {
            namespace: Some("ns1/child/".to_owned()),
            ..Setup::default()
        }
        .state(&upstream.address);

        let mut request = Request::get(target);
        if let Some(ns) = client_ns {
            request = request.header("x-vault-namespace", ns);
        }
        send(&app(&state), request.body(Body::empty()).unwrap()).await;

        let received = upstream.last();
        let got = received.headers.get("x-vault-namespace");
        assert_eq!(
            got.map(|v| v.to_str().unwrap()),
            sent,
            "{target} {client_ns:?}"
        );
        assert_eq!(received.target, target, "the path is never rewritten");
    }

    check("/v1/secret/data/app", None, Some("ns1/child")).await;
    check("/v1/secret/data/app", Some("ns2"), Some("ns2")).await;
    check("/v1/ns1/child/secret/data/app", None, None).await;
    check("/v1/ns1/secret/data/app", None, Some("ns1/child")).await;
}

/// Vault adds `X-Cache: MISS` to every proxied success even without a cache (weakness 15);
/// we add it only when there is a cache, and never to errors.
#[tokio::test]
async fn x_cache_miss_only_with_a_cache_and_only_on_success() {
    let upstream = Upstream::start(|received| {
        if received.target.ends_with("denied") {
            json_response(StatusCode::FORBIDDEN, r#"{"errors":["permission denied"]}"#)
        } else {
            json_response(StatusCode::OK, "{}")
        }
    })
    .await;
    let without = app(&Setup::default().state(&upstream.address));
    let with = app(&Setup {
        cache: Some(LeaseCache::new(CacheSettings::default())),
        ..Setup::default()
    }
    .state(&upstream.address));

    let (_, headers, _) = send(&without, get("/v1/secret/data/app")).await;
    assert!(!headers.contains_key("x-cache"));
    let (_, headers, _) = send(&with, get("/v1/secret/data/app")).await;
    assert_eq!(headers["x-cache"], "MISS");

    let (status, headers, body) = send(&with, get("/v1/secret/data/denied")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, r#"{"errors":["permission denied"]}"#);
    assert!(!headers.contains_key("x-cache"));
}

#[tokio::test]
async fn unreachable_vault_is_a_502_naming_the_address_never_the_token() {
    // A port nothing listens on: bind one, then close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);

    let state = Setup {
        mode: UseAutoAuthToken::Force,
        auto_auth: slot_with_auto_token(),
        ..Setup::default()
    }
    .state(&address);
    let (status, headers, body) = send(&app(&state), get("/v1/secret/data/app")).await;

    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "application/json");
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        text.starts_with(r#"{"errors":["cannot reach Vault at "#),
        "{text}"
    );
    assert!(text.contains(&address), "{text}");
    assert!(!text.contains(AUTO), "{text}");
    assert_eq!(state.metrics().counter(Counter::ProxyError), 1);
}

#[tokio::test]
async fn outcomes_are_counted() {
    let upstream = Upstream::start(|received| match received.target.as_str() {
        "/v1/missing" => json_response(StatusCode::NOT_FOUND, r#"{"errors":[]}"#),
        _ => json_response(StatusCode::OK, "{}"),
    })
    .await;
    let state = Setup::default().state(&upstream.address);
    let app = app(&state);

    send(&app, get("/v1/found")).await;
    send(&app, get("/v1/found")).await;
    send(&app, get("/v1/missing")).await;
    send(&app, get("/v1/../x")).await;

    let metrics = state.metrics();
    assert_eq!(metrics.counter(Counter::ProxySuccess), 2);
    assert_eq!(metrics.counter(Counter::ProxyClientError), 2);
    assert_eq!(metrics.counter(Counter::ProxyError), 0);
}

const CREATED: &str = r#"{"request_id":"r1","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,"auth":{"client_token":"hvs.child","accessor":"acc.child","policies":["default"],"lease_duration":3600,"renewable":true,"orphan":false}}"#;

fn token_create(token: Option<&str>, extra: Option<(&'static str, &'static str)>) -> Request<Body> {
    let mut request =
        Request::post("/v1/auth/token/create").header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("x-vault-token", token);
    }
    if let Some((name, value)) = extra {
        request = request.header(name, value);
    }
    request
        .body(Body::from(r#"{"policies":["default"]}"#))
        .unwrap()
}

#[tokio::test]
async fn the_cache_answers_a_repeated_token_creation_and_forgets_it_on_revocation() {
    let upstream = Upstream::start(|received| {
        if received.target.contains("revoke") {
            let mut response = json_response(StatusCode::NO_CONTENT, "");
            *response.body_mut() = Body::empty();
            return response;
        }
        json_response(StatusCode::OK, CREATED)
    })
    .await;
    let state = Setup {
        cache: Some(cache_managing_auto_token()),
        mode: UseAutoAuthToken::Enabled,
        auto_auth: slot_with_auto_token(),
        ..Setup::default()
    }
    .state(&upstream.address);
    let app = app(&state);

    let (status, headers, first) = send(&app, token_create(None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-cache"], "MISS");
    assert_eq!(first, CREATED);

    let (status, headers, second) = send(&app, token_create(None, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-cache"], "HIT");
    assert_eq!(headers["age"], "0");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(second, CREATED);
    assert_eq!(upstream.count(), 1, "the hit never reached Vault");
    assert_eq!(state.metrics().counter(Counter::CacheHit), 1);
    assert_eq!(state.metrics().counter(Counter::CacheMiss), 1);

    // Vault answers 204 to the revocation: the cached token goes.
    let revoke = Request::post("/v1/auth/token/revoke")
        .body(Body::from(r#"{"token":"hvs.child"}"#))
        .unwrap();
    let (status, _, _) = send(&app, revoke).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(state.cache().unwrap().stats().entries, 0);

    let (_, headers, _) = send(&app, token_create(None, None)).await;
    assert_eq!(headers["x-cache"], "MISS");
    assert_eq!(upstream.count(), 3);
}

/// A revocation spelled in a way Vault reads as the plain one (an escaped letter or slash, an
/// empty segment) evicts just the same: a revoked token is never answered from the cache.
#[tokio::test]
async fn a_revocation_however_spelled_evicts() {
    for revoke in [
        "/v1/auth/token%2Frevoke",
        "/v1/auth/token/revok%65",
        "/v1/auth//token/revoke",
        "/v1/sys/leases%2frevoke/db/creds/app/abc",
    ] {
        let upstream = Upstream::start(|received| {
            if received.target.contains("revoke") {
                return json_response(StatusCode::NO_CONTENT, "");
            }
            if received.target.contains("creds") {
                return json_response(StatusCode::OK, LEASED);
            }
            json_response(StatusCode::OK, CREATED)
        })
        .await;
        let state = Setup {
            cache: Some(cache_managing_auto_token()),
            mode: UseAutoAuthToken::Enabled,
            auto_auth: slot_with_auto_token(),
            ..Setup::default()
        }
        .state(&upstream.address);
        let app = app(&state);
        let lease = revoke.contains("leases");
        let create = || match lease {
            true => get("/v1/db/creds/app"),
            false => token_create(None, None),
        };

        send(&app, create()).await;
        let (_, headers, _) = send(&app, create()).await;
        assert_eq!(headers["x-cache"], "HIT", "{revoke}");

        let request = Request::put(revoke)
            .body(Body::from(r#"{"token":"hvs.child"}"#))
            .unwrap();
        let (status, _, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{revoke}");
        assert_eq!(state.cache().unwrap().stats().entries, 0, "{revoke}");

        let (_, headers, _) = send(&app, create()).await;
        assert_eq!(headers["x-cache"], "MISS", "{revoke}");
    }
}

const LEASED: &str = r#"{"request_id":"r2","lease_id":"db/creds/app/abc","renewable":true,"lease_duration":30,"data":{"username":"u"},"wrap_info":null,"warnings":null,"auth":null}"#;

/// `bao lease revoke` sends the lease in the path with `sync=false`, and Vault answers 202:
/// the revocation is queued, the lease is going, the cache must not serve it again.
#[tokio::test]
async fn a_lease_revocation_vault_queued_evicts_the_lease() {
    let upstream = Upstream::start(|received| {
        if received.target.contains("revoke") {
            return json_response(StatusCode::ACCEPTED, "");
        }
        json_response(StatusCode::OK, LEASED)
    })
    .await;
    let state = Setup {
        cache: Some(cache_managing_auto_token()),
        mode: UseAutoAuthToken::Enabled,
        auto_auth: slot_with_auto_token(),
        ..Setup::default()
    }
    .state(&upstream.address);
    let app = app(&state);

    send(&app, get("/v1/db/creds/app")).await;
    let (_, headers, _) = send(&app, get("/v1/db/creds/app")).await;
    assert_eq!(headers["x-cache"], "HIT");

    let revoke = Request::put("/v1/sys/leases/revoke/db/creds/app/abc")
        .body(Body::from(r#"{"sync":false}"#))
        .unwrap();
    let (status, _, _) = send(&app, revoke).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(state.cache().unwrap().stats().entries, 0);

    let (_, headers, _) = send(&app, get("/v1/db/creds/app")).await;
    assert_eq!(headers["x-cache"], "MISS");
}

/// A health check made with a token the cache manages is looked up in the cache (it might
/// have been anything), and is still not retried.
#[tokio::test]
async fn a_health_check_the_cache_looks_at_is_not_retried_either() {
    let upstream =
        Upstream::start(|_| json_response(StatusCode::SERVICE_UNAVAILABLE, r#"{"sealed":true}"#))
            .await;
    let state = Setup {
        cache: Some(cache_managing_auto_token()),
        mode: UseAutoAuthToken::Enabled,
        auto_auth: slot_with_auto_token(),
        retry: vault_client::RetryPolicy::new(1),
        ..Setup::default()
    }
    .state(&upstream.address);

    let (status, _, body) = send(&app(&state), get("/v1/sys/health?activecode=503")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, r#"{"sealed":true}"#);
    assert_eq!(upstream.count(), 1, "a health status is never retried");
}

#[tokio::test]
async fn wrapped_and_unmanaged_requests_bypass_the_cache() {
    let upstream = Upstream::start(|_| json_response(StatusCode::OK, CREATED)).await;
    let state = Setup {
        cache: Some(cache_managing_auto_token()),
        ..Setup::default()
    }
    .state(&upstream.address);
    let app = app(&state);

    for _ in 0..2 {
        let (_, headers, _) = send(
            &app,
            token_create(Some(AUTO), Some(("x-vault-wrap-ttl", "60"))),
        )
        .await;
        assert_eq!(headers["x-cache"], "MISS");
    }
    for _ in 0..2 {
        let (_, headers, _) = send(&app, token_create(Some(CLIENT), None)).await;
        assert_eq!(headers["x-cache"], "MISS");
    }
    assert_eq!(upstream.count(), 4);
    assert_eq!(state.cache().unwrap().stats().entries, 0);
}

#[tokio::test]
async fn cacheable_requests_ask_for_an_uncompressed_answer() {
    let upstream = Upstream::start(|_| json_response(StatusCode::OK, CREATED)).await;
    let state = Setup {
        cache: Some(cache_managing_auto_token()),
        ..Setup::default()
    }
    .state(&upstream.address);

    send(
        &app(&state),
        token_create(Some(AUTO), Some(("accept-encoding", "gzip"))),
    )
    .await;
    assert!(!upstream.last().headers.contains_key("accept-encoding"));

    send(&app(&state), {
        let mut request = get("/v1/secret/data/app");
        request
            .headers_mut()
            .insert("accept-encoding", HeaderValue::from_static("gzip"));
        request
    })
    .await;
    assert_eq!(upstream.last().headers["accept-encoding"], "gzip");
}

const LOOKUP: &str = r#"{"request_id":"r","data":{"accessor":"acc.auto","id":"hvs.auto-auth-token","policies":["default"],"ttl":3000}}"#;
const RENEWED: &str = r#"{"request_id":"r","auth":{"client_token":"hvs.auto-auth-token","accessor":"acc.auto","lease_duration":3600,"renewable":true}}"#;

/// With the auto-auth token, token lookups and renewals come back without the token and its
/// accessor, so that a local caller cannot learn the agent's identity through them.
#[tokio::test]
async fn lookups_of_the_auto_auth_token_are_sanitised() {
    async fn check(request: Request<Body>, sanitised: bool) {
        let upstream = Upstream::start(|received| {
            if received.target.contains("renew") {
                json_response(StatusCode::OK, RENEWED)
            } else {
                json_response(StatusCode::OK, LOOKUP)
            }
        })
        .await;
        let state = Setup {
            mode: UseAutoAuthToken::Enabled,
            auto_auth: slot_with_auto_token(),
            ..Setup::default()
        }
        .state(&upstream.address);
        let target = request.uri().to_string();

        let (status, headers, body) = send(&app(&state), request).await;
        assert_eq!(status, StatusCode::OK, "{target}");
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(!text.contains(AUTO), sanitised, "{target}: {text}");
        assert_eq!(!text.contains("acc.auto"), sanitised, "{target}: {text}");
        if sanitised {
            let parsed: Value = serde_json::from_str(&text).unwrap();
            assert!(parsed["data"]["policies"].is_array() || parsed["auth"].is_object());
            assert_eq!(headers["content-type"], "application/json");
        }
    }

    check(get("/v1/auth/token/lookup-self"), true).await;
    check(
        Request::put("/v1/auth/token/renew-self")
            .body(Body::empty())
            .unwrap(),
        true,
    )
    .await;
    check(
        Request::post("/v1/auth/token/lookup")
            .body(Body::from(format!(r#"{{"token":"{AUTO}"}}"#)))
            .unwrap(),
        true,
    )
    .await;
    check(
        Request::post("/v1/auth/token/lookup")
            .body(Body::from(r#"{"token":"hvs.other"}"#))
            .unwrap(),
        false,
    )
    .await;
    check(
        Request::get("/v1/auth/token/lookup-self")
            .header("x-vault-token", CLIENT)
            .body(Body::empty())
            .unwrap(),
        false,
    )
    .await;

    // Spellings Vault reads as the same route.
    for target in [
        "/v1/auth/token%2flookup-self",
        "/v1/auth/token/lookup%2Dself",
        "/v1/auth//token/lookup-self",
    ] {
        check(get(target), true).await;
    }
    check(
        Request::put("/v1/auth/token%2Frenew-self")
            .body(Body::empty())
            .unwrap(),
        true,
    )
    .await;
}

#[test]
fn sanitising_blanks_renewals_and_drops_lookup_ids() {
    fn check(route: TokenRoute, body: &str, expected: &str) {
        let got = strip_token_identity(body.as_bytes(), route).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected, "{route:?}");
    }

    check(
        TokenRoute::LookupSelf,
        r#"{"data":{"id":"t","accessor":"a","ttl":1}}"#,
        r#"{"data":{"ttl":1}}"#,
    );
    check(
        TokenRoute::RenewSelf,
        r#"{"auth":{"client_token":"t","accessor":"a","renewable":true}}"#,
        r#"{"auth":{"accessor":"","client_token":"","renewable":true}}"#,
    );
    check(TokenRoute::Lookup, r#"{"data":null}"#, r#"{"data":null}"#);
    assert!(strip_token_identity(b"not json", TokenRoute::Lookup).is_err());
}
