//! The agent endpoints and per-listener rules, driven through the router as a service.

use std::time::Duration;

use axum::body::Body;
use http::Request;
use lease_cache::{CacheSettings, SecretToken};
use serde_json::Value;
use vault_client::Token;

use super::*;
use crate::metrics::MetricsSettings;
use crate::settings::UseAutoAuthToken;
use crate::testing::{Setup, Upstream, get, listener, send};
use crate::token::AutoAuthSlot;

fn request(method: &str, target: &str, body: &'static str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(target)
        .body(Body::from(body))
        .unwrap()
}

fn quit() -> QuitSignal {
    QuitSignal::new(CancellationToken::new())
}

#[tokio::test]
async fn metrics_in_both_formats() {
    let upstream = Upstream::ok().await;
    let state = Setup::default().state(&upstream.address);
    let app = router(&state, &listener(), quit());
    send(&app, get("/v1/sys/health")).await;

    let (status, headers, body) = send(&app, get(METRICS_PATH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let json: Value = serde_json::from_slice(&body).unwrap();
    for key in ["Timestamp", "Gauges", "Counters", "Samples"] {
        assert!(json.get(key).is_some(), "{key} missing: {json}");
    }
    let success = json["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|counter| counter["Name"] == "vault.agent.proxy.success")
        .unwrap();
    assert_eq!(success["Count"], 1);

    let by_query = send(&app, get("/agent/v1/metrics?format=prometheus")).await;
    let by_accept = send(
        &app,
        Request::get(METRICS_PATH)
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    for (status, headers, body) in [by_query, by_accept] {
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("vault_agent_proxy_success 1\n"), "{text}");
    }
}

#[tokio::test]
async fn metrics_refuse_other_methods_and_disabled_prometheus() {
    let upstream = Upstream::ok().await;
    let app = router(
        &Setup::default().state(&upstream.address),
        &listener(),
        quit(),
    );

    for method in ["POST", "PUT", "DELETE"] {
        let (status, headers, body) = send(&app, request(method, METRICS_PATH, "")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, r#"{"errors":[]}"#);
    }

    let state = ProxyState::new(
        crate::testing::client(&upstream.address, vault_client::RetryPolicy::NONE),
        None,
        AutoAuthSlot::new(),
        crate::Metrics::new(MetricsSettings {
            prefix: "vault".to_owned(),
            prometheus: false,
        }),
        crate::ProxySettings::default(),
    )
    .unwrap();
    let app = router(&state, &listener(), quit());
    let (status, _, body) = send(&app, get("/agent/v1/metrics?format=prometheus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, r#"{"errors":["prometheus is not enabled"]}"#);
    assert_eq!(upstream.count(), 0);
}

/// Every error of Vault's cache-clear API, with our statuses (400 for all of them: a missing
/// value is the client's mistake, where Vault answers 500).
#[tokio::test]
async fn cache_clear_errors_and_success() {
    let cache = lease_cache::LeaseCache::new(CacheSettings::default());
    let state = Setup {
        cache: Some(cache.clone()),
        ..Setup::default()
    }
    .state("http://127.0.0.1:1");
    let app = router(&state, &listener(), quit());

    async fn check(app: &Routes, method: &str, body: &'static str, expected: Result<(), &str>) {
        let (status, _, got) = send(app, request(method, CACHE_CLEAR_PATH, body)).await;
        match expected {
            Ok(()) => {
                assert_eq!(status, StatusCode::OK, "{method} {body}");
                assert!(got.is_empty(), "{method} {body}");
            }
            Err(message) => {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {body}");
                let json: Value = serde_json::from_slice(&got).unwrap();
                assert_eq!(json, serde_json::json!({ "errors": [message] }), "{body}");
            }
        }
    }

    let empty = "failed to parse JSON input: empty JSON provided";
    check(&app, "POST", "", Err(empty)).await;
    check(&app, "PUT", "", Err(empty)).await;
    check(
        &app,
        "POST",
        "{",
        Err("failed to parse JSON input: invalid JSON at line 1 column 1"),
    )
    .await;
    check(
        &app,
        "POST",
        "{}",
        Err("failed to parse clear input: no type provided"),
    )
    .await;
    check(
        &app,
        "POST",
        r#"{"type":"everything"}"#,
        Err("failed to clear cache: invalid type provided"),
    )
    .await;
    for (kind, what) in [
        ("token", "token"),
        ("token_accessor", "token accessor"),
        ("lease", "lease"),
        ("request_path", "request path"),
    ] {
        let body: &'static str = format!(r#"{{"type":"{kind}"}}"#).leak();
        let message = format!("failed to clear cache: {what} not provided");
        check(&app, "POST", body, Err(&message)).await;
    }

    // Caching resumes at once after a full clear: the auto-auth token stays registered.
    cache.register_auto_auth_token(SecretToken::new("hvs.auto"), Duration::from_secs(60));
    check(&app, "POST", r#"{"type":"all"}"#, Ok(())).await;
    check(
        &app,
        "PUT",
        r#"{"type":"lease","value":"db/creds/x/1"}"#,
        Ok(()),
    )
    .await;
    check(&app, "GET", "", Ok(())).await;
    check(&app, "DELETE", "garbage", Ok(())).await;
    assert_eq!(cache.stats().auto_auth_tokens, 1);
}

#[tokio::test]
async fn cache_clear_without_a_cache_is_a_no_op() {
    let app = router(
        &Setup::default().state("http://127.0.0.1:1"),
        &listener(),
        quit(),
    );

    for body in ["", "{", r#"{"type":"all"}"#] {
        let (status, _, got) = send(&app, request("POST", CACHE_CLEAR_PATH, body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(got.is_empty());
    }
}

#[tokio::test]
async fn quit_endpoint() {
    let state = Setup::default().state("http://127.0.0.1:1");

    let disabled = quit();
    let app = router(&state, &listener(), disabled.clone());
    let (status, _, body) = send(&app, request("POST", QUIT_PATH, "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.is_empty());
    assert!(!disabled.token().is_cancelled());

    let signal = quit();
    let settings = ListenerSettings {
        enable_quit: true,
        ..listener()
    };
    let app = router(&state, &settings, signal.clone());
    for method in ["GET", "PUT", "DELETE"] {
        let (status, _, body) = send(&app, request(method, QUIT_PATH, "")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert!(body.is_empty());
    }
    assert!(!signal.token().is_cancelled());

    let (status, _, body) = send(&app, request("POST", QUIT_PATH, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert!(signal.token().is_cancelled());
    assert!(signal.is_triggered());

    // A second call neither panics nor triggers again.
    let (status, _, _) = send(&app, request("POST", QUIT_PATH, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!signal.trigger(), "already triggered");
}

#[tokio::test]
async fn metrics_only_listeners_serve_nothing_else() {
    let upstream = Upstream::ok().await;
    let state = Setup {
        cache: Some(lease_cache::LeaseCache::new(CacheSettings::default())),
        ..Setup::default()
    }
    .state(&upstream.address);
    let settings = ListenerSettings {
        role: ListenerRole::MetricsOnly,
        enable_quit: true,
        require_request_header: true,
        ..listener()
    };
    let app = router(&state, &settings, quit());

    for (method, target) in [
        ("GET", "/v1/sys/health"),
        ("POST", CACHE_CLEAR_PATH),
        ("POST", QUIT_PATH),
        ("GET", "/"),
    ] {
        let (status, headers, body) = send(&app, request(method, target, "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {target}");
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(body, "404 page not found\n");
    }

    // Never subject to require_request_header.
    let (status, _, _) = send(&app, get(METRICS_PATH)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.count(), 0);
}

/// B03: without exactly one `X-Vault-Request: true` nothing is forwarded and the auto-auth
/// token is never used; the rule belongs to the listener that sets it.
#[tokio::test]
async fn require_request_header_guards_every_route_of_its_listener() {
    let upstream = Upstream::ok().await;
    let slot = AutoAuthSlot::new();
    slot.set(Token::new("hvs.auto")).unwrap();
    let state = Setup {
        mode: UseAutoAuthToken::Enabled,
        auto_auth: slot,
        ..Setup::default()
    }
    .state(&upstream.address);
    let guarded = router(
        &state,
        &ListenerSettings {
            require_request_header: true,
            enable_quit: true,
            ..listener()
        },
        quit(),
    );
    let open = router(&state, &listener(), quit());

    let with_header = |values: &[&'static str], target: &str| {
        let mut request = Request::get(target);
        for value in values {
            request = request.header("x-vault-request", *value);
        }
        request.body(Body::empty()).unwrap()
    };

    for values in [&[][..], &["false"], &["TRUE"], &["true", "true"], &[""]] {
        for target in [
            "/v1/secret/data/app",
            METRICS_PATH,
            CACHE_CLEAR_PATH,
            QUIT_PATH,
        ] {
            let (status, headers, body) = send(&guarded, with_header(values, target)).await;
            assert_eq!(
                status,
                StatusCode::PRECONDITION_FAILED,
                "{values:?} {target}"
            );
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(body, r#"{"errors":["missing \"X-Vault-Request\" header"]}"#);
        }
    }
    assert_eq!(upstream.count(), 0, "nothing forwarded");

    let (status, _, _) = send(&guarded, with_header(&["true"], "/v1/secret/data/app")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.last().headers["x-vault-token"], "hvs.auto");

    let (status, _, _) = send(&open, get("/v1/secret/data/app")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn agent_paths_are_exact_everything_else_is_proxied() {
    let upstream = Upstream::ok().await;
    let app = router(
        &Setup::default().state(&upstream.address),
        &listener(),
        quit(),
    );

    for target in ["/agent/v1/metrics/", "/agent/v1/other", "/v1/agent/metrics"] {
        send(&app, get(target)).await;
        assert_eq!(upstream.last().target, target);
    }
}

/// Only the three agent paths, spelled exactly, are the agent's; anything else under
/// `/agent/` is Vault's to answer, as with Vault Agent.
#[tokio::test]
async fn only_the_exact_agent_paths_are_answered_by_the_agent() {
    let upstream = Upstream::ok().await;
    let state = Setup::default().state(&upstream.address);
    let app = router(&state, &listener(), quit());

    let mut forwarded = 0;
    for (target, to_vault) in [
        (METRICS_PATH, false),
        (CACHE_CLEAR_PATH, false),
        (QUIT_PATH, false),
        ("/agent/v1/metrics/", true),
        ("/agent/v1/other", true),
        ("/v1/agent/v1/metrics", true),
        ("/v1/sys/health", true),
    ] {
        send(&app, get(target)).await;
        forwarded += usize::from(to_vault);
        assert_eq!(upstream.count(), forwarded, "{target}");
    }
}
