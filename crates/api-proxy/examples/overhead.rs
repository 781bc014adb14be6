//! Measures the CPU the proxy spends per 10,000 pass-through requests, next to a plain hyper
//! proxy built on the same HTTP client, both in front of the same small upstream.
//!
//! Each proxy runs alone on its own single-threaded runtime, so the CPU time of that one
//! thread (from `/proc`) is the proxy's cost and nothing else's; the load generator and the
//! upstream run on other threads.
//!
//! Run with `cargo run --release -p api-proxy --example overhead [requests] [concurrency]`.
#![allow(
    clippy::print_stdout,
    reason = "the printed report is the example's output"
)]
#![allow(
    clippy::unwrap_used,
    reason = "a measurement tool: any failure should stop it"
)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api_proxy::{
    AutoAuthSlot, CancellationToken, Listener, ListenerKind, ListenerSettings, Metrics,
    ProxySettings, ProxyState, QuitSignal, router,
};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use vault_client::{Client, ClientSettings, RetryPolicy};

const ANSWER: &str = r#"{"request_id":"b","lease_id":"","renewable":false,"lease_duration":0,"data":{"value":"x"},"wrap_info":null,"warnings":null,"auth":null}"#;

fn main() {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(8);

    let upstream = spawn_runtime("upstream", |ready| async move {
        let app =
            Router::new().fallback(|| async { ([("content-type", "application/json")], ANSWER) });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ready.send(listener.local_addr().unwrap()).unwrap();
        axum::serve(listener, app).await.unwrap();
    });

    let ours = spawn_runtime("api-proxy", move |ready| async move {
        let client = Client::new(&ClientSettings {
            address: format!("http://{}", upstream.address),
            retry: RetryPolicy::NONE,
            ..ClientSettings::default()
        })
        .unwrap();
        let state = ProxyState::new(
            client,
            None,
            AutoAuthSlot::new(),
            Metrics::default(),
            ProxySettings::default(),
        )
        .unwrap();
        let settings = ListenerSettings::new(ListenerKind::Tcp {
            address: "127.0.0.1:0".to_owned(),
            tls: None,
        });
        let bound = Listener::bind(&settings).await.unwrap();
        ready.send(bound.local_addr().unwrap()).unwrap();
        let app = router(&state, &settings, QuitSignal::new(CancellationToken::new()));
        bound.serve(app, CancellationToken::new()).await.unwrap();
    });

    let plain = spawn_runtime("plain-hyper", move |ready| async move {
        plain_proxy(upstream.address, ready).await;
    });

    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    println!("requests per round   {requests}, concurrency {concurrency}");
    for round in 1..=3 {
        for (name, proxy) in [("plain hyper", &plain), ("api-proxy", &ours)] {
            let before = thread_cpu(proxy.tid);
            let started = Instant::now();
            load.block_on(drive(proxy.address, requests, concurrency));
            let wall = started.elapsed();
            let cpu = thread_cpu(proxy.tid) - before;
            let per_10k = cpu.as_secs_f64() * 1000.0 * 10_000.0 / requests as f64;
            println!(
                "round {round} {name:<12} cpu {per_10k:7.1} ms per 10k requests, wall {:6.0} ms",
                wall.as_secs_f64() * 1000.0
            );
        }
    }
}

struct Spawned {
    address: SocketAddr,
    tid: u32,
}

/// Runs `serve` on a single-threaded runtime on its own thread.
fn spawn_runtime<F, Fut>(name: &str, serve: F) -> Spawned
where
    F: FnOnce(mpsc::Sender<SocketAddr>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (ready_tx, ready_rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            tid_tx.send(current_tid()).unwrap();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(serve(ready_tx));
        })
        .unwrap();
    Spawned {
        tid: tid_rx.recv().unwrap(),
        address: ready_rx.recv().unwrap(),
    }
}

/// The baseline: read the request, send it with reqwest, stream the answer back.
async fn plain_proxy(upstream: SocketAddr, ready: mpsc::Sender<SocketAddr>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    ready.send(listener.local_addr().unwrap()).unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{upstream}");

    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let (client, base) = (client.clone(), base.clone());
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body: Bytes = body.collect().await?.to_bytes();
                let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let mut outgoing = client.request(parts.method, format!("{base}{target}"));
                outgoing = outgoing.headers(parts.headers).body(body);
                let answer = outgoing.send().await.unwrap();
                Ok::<_, hyper::Error>(http::Response::from(answer))
            }
        });
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Sends `requests` GETs over `concurrency` keep-alive connections.
async fn drive(address: SocketAddr, requests: usize, concurrency: usize) {
    let client = reqwest::Client::new();
    let url = format!("http://{address}/v1/secret/data/app?version=1");
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let (client, url) = (client.clone(), url.clone());
        let share = requests / concurrency + usize::from(worker < requests % concurrency);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let answer = client
                    .get(&url)
                    .header("x-vault-token", "hvs.bench")
                    .send()
                    .await;
                let body = answer.unwrap().bytes().await.unwrap();
                assert_eq!(body.len(), ANSWER.len());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn current_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    link.file_name().unwrap().to_str().unwrap().parse().unwrap()
}

/// User plus system CPU time of one thread of this process.
fn thread_cpu(tid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // Fields after the parenthesised name; utime and stime are the 14th and 15th overall.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel reports in USER_HZ, which is 100 on Linux.
    Duration::from_millis(ticks * 10)
}
