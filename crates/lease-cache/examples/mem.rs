//! Measures the cache at its design size: memory per entry, a renewal sweep over every entry,
//! and the per-request costs (key, hit).
//!
//! Run with `cargo run --release -p lease-cache --example mem [entries] [sweep seconds]`
//! (defaults 100,000 and 3,000). Memory is counted by a global allocator that tallies every
//! allocation, so the figure is what the cache holds on the heap, not an estimate. Time runs
//! on tokio's paused clock, so the sweep's wall time is the scheduler's own work.
//!
//! On the 2-core development machine, 100,000 leases with 340-byte bodies: about 460 bytes
//! per entry beyond the body (slab slot, indexes, schedule, lease id, and here a path of its
//! own per entry; entries of one route share one), a hit in about 0.2 µs, a key in about
//! 0.3 µs, and a sweep renewing every lease once in about 120-140 ms, with no memory left
//! behind by repeated sweeps.
#![allow(
    clippy::print_stdout,
    reason = "the printed report is the example's output"
)]

use std::alloc::System;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use lease_cache::{
    CacheSettings, LeaseCache, Lookup, Renewal, Renewer, RequestParts, ResponseParts, SecretToken,
    StoreOutcome,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const AUTO: &str =
    "hvs.CAESIJmZ7xv0Qb5pW8kC3dVtq1yWcN2Hm9uPfE4aKzR6sLo0GiAKHGh2cy5aZ2xEZ2t1c0tqT3JhTlZ4UmpYb1A";

fn main() {
    let entries = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000_usize);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let Ok(runtime) = runtime else {
        eprintln!("cannot start a tokio runtime");
        return;
    };
    // Simulated seconds of renewals; the default covers one renewal of every lease.
    let sweep_secs = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    runtime.block_on(measure(entries, sweep_secs));
}

async fn measure(entries: usize, sweep_secs: u64) {
    let cache = LeaseCache::new(CacheSettings {
        max_entries: entries,
        ..Default::default()
    });
    cache.register_auto_auth_token(SecretToken::new(AUTO), Duration::from_secs(30 * 86_400));
    let headers = response_headers();

    // Memory: everything the cache allocates for `entries` leases, minus what it frees.
    let region = Region::new(GLOBAL);
    let mut body_bytes = 0;
    let started = std::time::Instant::now();
    for i in 0..entries {
        body_bytes += fill(&cache, i, &headers).await;
    }
    let fill_time = started.elapsed();
    let change = region.change();
    let held = net_bytes(&change);
    let stats = cache.stats();
    assert_eq!(stats.entries, entries, "every lease must be cached");

    let per_entry = held as f64 / entries as f64;
    let body_per_entry = body_bytes as f64 / entries as f64;
    println!("entries                      {entries}");
    println!("response body per entry      {body_per_entry:.0} B");
    println!("heap held per entry          {per_entry:.0} B");
    println!(
        "  beyond the body            {:.0} B",
        per_entry - body_per_entry
    );
    println!(
        "fill (lookup + store) each   {:.2} µs",
        micros(fill_time, entries)
    );

    // Per-request costs.
    let timed = 200_000.min(entries * 2);
    let started = std::time::Instant::now();
    let mut sink = 0_u8;
    for i in 0..timed {
        let path = format!("/v1/database/creds/role-{}", i % entries);
        sink ^= LeaseCache::key(&request(&path, &HeaderMap::new())).as_bytes()[0];
    }
    println!(
        "key (incl. path format)      {:.2} µs",
        micros(started.elapsed(), timed)
    );

    let keys: Vec<_> = (0..entries.min(10_000))
        .map(|i| {
            let path = format!("/v1/database/creds/role-{i}");
            LeaseCache::key(&request(&path, &HeaderMap::new()))
        })
        .collect();
    let started = std::time::Instant::now();
    let mut hits = 0;
    for i in 0..timed {
        if let Lookup::Hit(response) = cache.lookup(&keys[i % keys.len()]).await {
            hits += 1;
            sink ^= response.body()[0];
        }
    }
    assert_eq!(hits, timed, "every lookup must hit");
    println!(
        "hit lookup                   {:.2} µs",
        micros(started.elapsed(), timed)
    );

    // One sweep: every lease comes due within one grace window and is renewed once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let scheduler = cache.clone();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        scheduler.run_renewals(Immediate, shutdown).await;
    });
    let region = Region::new(GLOBAL);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(sweep_secs)).await;
    let sweep = started.elapsed();
    let after = region.change();
    let stats = cache.stats();
    println!(
        "sweep: {} renewals in {:.0} ms ({:.2} µs each), schedule items {}, held {:+} B in {:+} allocations",
        stats.renewals,
        sweep.as_secs_f64() * 1e3,
        micros(sweep, stats.renewals as usize),
        stats.scheduled,
        net_bytes(&after),
        after.allocations as i64 - after.deallocations as i64,
    );
    assert!(stats.renewals as usize >= entries, "every lease renewed");
    drop(stop);
    let _ = task.await;
    std::hint::black_box(sink);
}

/// One lease through the cache as the proxy sends it; returns the body size.
async fn fill(cache: &LeaseCache, i: usize, headers: &HeaderMap) -> usize {
    let path = format!("/v1/database/creds/role-{i}");
    let no_headers = HeaderMap::new();
    let request = request(&path, &no_headers);
    let body = lease_body(i);

    let Lookup::Miss(guard) = cache.lookup(&LeaseCache::key(&request)).await else {
        panic!("entry {i} must be new");
    };
    let response = ResponseParts {
        status: StatusCode::OK,
        headers,
        body: body.as_bytes(),
    };
    let outcome = cache.store(guard, &request, &response);
    assert_eq!(outcome, StoreOutcome::Stored);
    body.len()
}

fn request<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestParts<'a> {
    RequestParts {
        method: &Method::GET,
        path,
        query: None,
        headers,
        body: b"",
        token: Some(AUTO),
        namespace: None,
    }
}

/// A database credential as Vault returns it (about 350 bytes).
fn lease_body(i: usize) -> String {
    format!(
        concat!(
            r#"{{"request_id":"6c1e0a4f-3b7d-4c59-9a2e-{i:012}","#,
            r#""lease_id":"database/creds/role-{i}/Xq3PZk8VwA1nLr5T{i:08}","#,
            r#""renewable":true,"lease_duration":3600,"#,
            r#""data":{{"password":"Rb7-pK2mQw9xVz4LtN6s{i:06}","#,
            r#""username":"v-approle-role-{i}-q4Zt8LmXw2NcRk5Vp1Hs-1735689600"}},"#,
            r#""wrap_info":null,"warnings":null,"auth":null,"mount_type":"database"}}"#,
        ),
        i = i
    )
}

fn response_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "date",
        HeaderValue::from_static("Wed, 01 Jan 2025 00:00:00 GMT"),
    );
    headers.insert("content-length", HeaderValue::from_static("350"));
    headers
}

/// Bytes still held: `stats_alloc` already counts a growing realloc in `bytes_allocated`.
fn net_bytes(stats: &stats_alloc::Stats) -> i64 {
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

fn micros(total: Duration, count: usize) -> f64 {
    total.as_secs_f64() * 1e6 / count.max(1) as f64
}

/// Vault answering every renewal at once with the full TTL again.
struct Immediate;

impl Renewer for Immediate {
    async fn renew_token(&self, _: &SecretToken, _: &str) -> Renewal {
        Renewal::Extended {
            ttl: Duration::from_secs(3_600),
            renewable: true,
        }
    }

    async fn renew_lease(&self, _: &SecretToken, _: &str, _: &str) -> Renewal {
        Renewal::Extended {
            ttl: Duration::from_secs(3_600),
            renewable: true,
        }
    }
}
