//! Arbitrary requests and responses through the lease cache's rules: the cache key,
//! revocation classification, the cache-clear parser, and storing a response (which parses
//! its JSON and decides cacheability), then serving it back. Any panic is a bug.
#![no_main]

use std::time::Duration;

use lease_cache::{
    CacheSettings, LeaseCache, Lookup, RequestParts, ResponseParts, SecretToken,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // Layout: method selector, then path, query, request body and response body split by 0xFF.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.split(|b| *b == 0xFF);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = parts.next().map(|q| String::from_utf8_lossy(q).into_owned());
    let request_body = parts.next().unwrap_or_default();
    let response_body = parts.next().unwrap_or_default();

    let _ = LeaseCache::parse_clear_request(request_body);

    let method = match selector % 5 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::PUT,
        3 => Method::DELETE,
        _ => Method::from_bytes(b"LIST").unwrap_or(Method::GET),
    };
    let mut headers = HeaderMap::new();
    if selector & 0x10 != 0 {
        headers.insert("x-vault-wrap-ttl", HeaderValue::from_static("30s"));
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let namespace = (selector & 0x20 != 0).then_some("ns1/");
    let request = RequestParts {
        method: &method,
        path: &path,
        query: query.as_deref(),
        headers: &headers,
        body: request_body,
        token: Some("s.fuzz-token"),
        namespace,
    };
    let key = LeaseCache::key(&request);
    let _ = LeaseCache::classify_revocation(&request);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let cache = LeaseCache::new(CacheSettings::default());
        cache.register_auto_auth_token(SecretToken::new("s.fuzz-token"), Duration::from_secs(60));
        if !cache.cacheable_request(&request) {
            return;
        }
        if let Lookup::Miss(guard) = cache.lookup(&key).await {
            let response = ResponseParts {
                status: StatusCode::OK,
                headers: &headers,
                body: response_body,
            };
            let _ = cache.store(guard, &request, &response);
        }
        if let Lookup::Hit(hit) = cache.lookup(&key).await {
            let _ = hit.body();
            let _ = hit.headers().len();
        }
        if let Some(revocation) = LeaseCache::classify_revocation(&request) {
            cache.on_revoked(revocation);
        }
    });
});
