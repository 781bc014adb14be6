//! Measures the CPU the client spends forwarding requests, against plain reqwest doing
//! the same requests: `cargo run --release -p vault-client --example forward_cpu --
//! <address> <token> <path> [requests] [concurrency]`.
//!
//! Linux only: CPU time is read from `/proc/self/stat`.

#![allow(clippy::print_stdout, reason = "a measuring tool prints its results")]
#![allow(
    clippy::unwrap_used,
    reason = "a measuring tool stops at the first failure"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vault_client::bytes::Bytes;
use vault_client::{Client, ClientSettings, TOKEN_HEADER};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, token, path, ..] = args.as_slice() else {
        eprintln!("usage: forward_cpu <address> <token> <path> [requests] [concurrency]");
        std::process::exit(2);
    };
    let requests: usize = args.get(3).map_or(10_000, |n| n.parse().unwrap());
    let concurrency: usize = args.get(4).map_or(8, |n| n.parse().unwrap());

    let client = Client::new(&ClientSettings {
        address: address.clone(),
        ..ClientSettings::default()
    })
    .unwrap();
    let plain = reqwest::Client::new();

    // Warm up connections and code paths, then measure each way twice, interleaved.
    run_forward(&client, token, path, 500, concurrency).await;
    run_plain(&plain, address, token, path, 500, concurrency).await;
    for _ in 0..2 {
        let (wall, cpu) = measure(run_forward(&client, token, path, requests, concurrency)).await;
        report("vault-client forward", requests, wall, cpu);
        let (wall, cpu) = measure(run_plain(
            &plain,
            address,
            token,
            path,
            requests,
            concurrency,
        ))
        .await;
        report("plain reqwest       ", requests, wall, cpu);
    }
}

async fn run_forward(client: &Client, token: &str, path: &str, n: usize, concurrency: usize) {
    let client = Arc::new(client.clone());
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = client.clone();
            let token = token.to_owned();
            let path = path.to_owned();
            tokio::spawn(async move {
                for _ in (worker..n).step_by(concurrency) {
                    let request = vault_client::http::Request::get(path.as_str())
                        .header(TOKEN_HEADER, token.as_str())
                        .body(Bytes::new())
                        .unwrap();
                    let response = client.forward(request).await.unwrap();
                    assert!(response.status().is_success());
                    response.into_body().to_bytes().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn run_plain(
    client: &reqwest::Client,
    address: &str,
    token: &str,
    path: &str,
    n: usize,
    concurrency: usize,
) {
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = client.clone();
            let url = format!("{address}{path}");
            let token = token.to_owned();
            tokio::spawn(async move {
                for _ in (worker..n).step_by(concurrency) {
                    let response = client
                        .get(url.as_str())
                        .header("x-vault-token", token.as_str())
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success());
                    response.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

async fn measure(work: impl Future<Output = ()>) -> (Duration, Duration) {
    let (cpu_before, start) = (cpu_time(), Instant::now());
    work.await;
    (start.elapsed(), cpu_time() - cpu_before)
}

fn report(what: &str, requests: usize, wall: Duration, cpu: Duration) {
    let per_10k = cpu.mul_f64(10_000.0 / requests as f64);
    println!("{what}: {requests} requests in {wall:.2?}, CPU {cpu:.2?} ({per_10k:.2?} per 10,000)");
}

/// User plus system CPU time of this process (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}
