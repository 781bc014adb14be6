//! `cargo xtask bench`: our agent and `bao agent` side by side, in one run, on one dev
//! server, with the same config; a static HTTP responder as the ceiling of this machine,
//! and a bare hyper proxy as the floor of what any proxy pays for two HTTP hops here.
//! Load comes from wrk in a separate process on loopback. Reports ratios (ours against
//! `bao agent`'s), prints a table and writes it as JSON under `target/bench/`.
//!
//! Scenarios, each run in alternation (ours, bao, ours, bao):
//! - startup: process start to a token in the sink;
//! - pass-through: a KV v2 read (never cached), at concurrency 1 and under load; the bare
//!   proxy (`plain-proxy`) runs the same loads in each round, after the two agents;
//! - cache hit: a token-create request repeated;
//! - memory: RSS idle after login, peak under load, and per cached entry after filling
//!   the cache with distinct token-create requests, then again once the first renewals
//!   have run;
//! - renewal: a sample of the filled tokens looked up on the server after their first TTL,
//!   alive only if the agent renewed them;
//! - binary size.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::devvault::DevVault;
use crate::proc::{self, Background};
use crate::step;

const POLICY: &str = r#"
path "auth/token/create" { capabilities = ["create", "update"] }
path "secret/data/*"     { capabilities = ["read"] }
"#;
const CREATE_BODY: &str = r#"{"ttl":"1h","display_name":"bench"}"#;
const KV_PATH: &str = "/v1/secret/data/bench";
const CREATE_PATH: &str = "/v1/auth/token/create";
/// The TTL of the tokens made to fill the cache: short enough that the bench sees them
/// renewed, long enough that our agent's 100,000-entry fill (about 2 minutes here) is in
/// before its first renewals start (at about 70 % of the TTL).
const FILL_TTL: Duration = Duration::from_secs(180);
/// How long past its first TTL a sampled token is looked up.
const RENEW_MARGIN: Duration = Duration::from_secs(20);
/// How many of the filled tokens are looked up, all from the first fifth of the fill.
const RENEW_SAMPLES: usize = 200;

/// Knobs, from the environment so a quick run is one variable away.
struct Knobs {
    seconds: u64,
    connections: u32,
    rounds: usize,
    entries: usize,
}

impl Knobs {
    fn from_env() -> Self {
        let get = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            seconds: get("BENCH_SECONDS", 8),
            connections: u32::try_from(get("BENCH_CONNECTIONS", 32)).unwrap_or(32),
            rounds: usize::try_from(get("BENCH_ROUNDS", 2)).unwrap_or(2),
            entries: usize::try_from(get("BENCH_ENTRIES", 100_000)).unwrap_or(100_000),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Ours,
    Bao,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Ours => "ours",
            Which::Bao => "bao agent",
        }
    }
}

struct Setup {
    vault: DevVault,
    ours: PathBuf,
    dir: PathBuf,
}

pub(crate) fn bench(root: &Path) -> Result<()> {
    let knobs = Knobs::from_env();
    ensure_wrk()?;

    step("building the agent, the static responder and the bare proxy (release)");
    proc::run(Command::new("cargo").args(["build", "--release", "-p", "agent"]))?;
    proc::run(Command::new("cargo").args([
        "build",
        "--release",
        "-p",
        "xtask",
        "--bin",
        "static-responder",
        "--bin",
        "plain-proxy",
    ]))?;
    let ours = root.join("target/release/vault-agent");
    let responder = root.join("target/release/static-responder");
    let plain_proxy = root.join("target/release/plain-proxy");

    step("starting the dev server and setting up AppRole, a policy and a secret");
    let vault = DevVault::start(root)?;
    let dir = root.join("target/bench/work");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    vault.cli_stdin(&["policy", "write", "bench", "-"], POLICY)?;
    vault.cli(&["auth", "enable", "approle"])?;
    vault.cli(&[
        "write",
        "auth/approle/role/bench",
        "token_policies=bench",
        "token_ttl=2h",
        "token_max_ttl=4h",
    ])?;
    vault.cli(&[
        "kv",
        "put",
        "secret/bench",
        "password=correct-horse-battery",
    ])?;
    let role_id = vault.cli(&["read", "-field=role_id", "auth/approle/role/bench/role-id"])?;
    let secret_id = vault.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/bench/secret-id",
    ])?;
    std::fs::write(dir.join("role_id"), role_id.trim())?;
    std::fs::write(dir.join("secret_id"), secret_id.trim())?;
    let setup = Setup {
        ours: ours.clone(),
        vault,
        dir: dir.clone(),
    };

    let mut report = Report::default();
    let order = [Which::Ours, Which::Bao];

    step("startup: process start to a token in the sink");
    for _ in 0..knobs.rounds.max(3) {
        for which in order {
            let (agent, startup) = start(&setup, which)?;
            report.add(which, "startup_ms", startup.as_secs_f64() * 1000.0);
            proc::sleep(Duration::from_millis(300));
            report.add(which, "rss_idle_kib", rss_kib(agent.id(), "VmRSS")? as f64);
            drop(agent);
        }
    }

    for (scenario, path, script) in [
        ("passthrough", KV_PATH, None),
        (
            "cache_hit",
            CREATE_PATH,
            Some(post_script(&dir, CREATE_BODY)?),
        ),
    ] {
        step(&format!(
            "{scenario}: concurrency 1 and {} connections",
            knobs.connections
        ));
        for _ in 0..knobs.rounds {
            for which in order {
                let (agent, _) = start(&setup, which)?;
                let url = format!("http://127.0.0.1:{}{path}", agent_port(&setup.dir, which)?);
                // One request first, so a cache-hit run measures hits only.
                wrk(&url, script.as_deref(), None, 1, 1)?;
                for (label, connections) in [("c1", 1), ("load", knobs.connections)] {
                    let cpu_before = cpu_seconds(agent.id())?;
                    let run = wrk(&url, script.as_deref(), None, connections, knobs.seconds)?;
                    let cpu = cpu_seconds(agent.id())? - cpu_before;
                    let prefix = format!("{scenario}_{label}");
                    report.add(which, &format!("{prefix}_rps"), run.rps);
                    report.add(which, &format!("{prefix}_p50_us"), run.p50_us);
                    report.add(which, &format!("{prefix}_p99_us"), run.p99_us);
                    report.add(
                        which,
                        &format!("{prefix}_cpu_s_per_10k"),
                        cpu / run.requests.max(1) as f64 * 10_000.0,
                    );
                    if run.errors > 0 {
                        report.note(format!(
                            "{} {prefix}: {} non-2xx answers",
                            which.name(),
                            run.errors
                        ));
                    }
                }
                report.add(which, "rss_peak_kib", rss_kib(agent.id(), "VmHWM")? as f64);
                drop(agent);
            }
            if scenario == "passthrough" {
                floor_round(&setup, &plain_proxy, &knobs, &mut report)?;
            }
        }
    }

    step("the ceiling: a static responder under the same load");
    let port = proc::free_port(false)?;
    let ceiling = Background::spawn(
        "the static responder",
        Command::new(&responder).arg(port.to_string()),
    )?;
    wait_port(port)?;
    let url = format!("http://127.0.0.1:{port}{CREATE_PATH}");
    let script = post_script(&dir, CREATE_BODY)?;
    let cpu_before = cpu_seconds(ceiling.id())?;
    let static_load = wrk(&url, Some(&script), None, knobs.connections, knobs.seconds)?;
    let static_cpu = cpu_seconds(ceiling.id())? - cpu_before;
    report.static_cpu_s_per_10k = static_cpu / static_load.requests.max(1) as f64 * 10_000.0;
    drop(ceiling);

    step(&format!(
        "memory per cached entry, and renewal: {} distinct token creations with a {} s TTL",
        knobs.entries,
        FILL_TTL.as_secs()
    ));
    let vault_port = port_of(&setup.vault.addr)?;
    for which in order {
        let (agent, _) = start(&setup, which)?;
        let port = agent_port(&setup.dir, which)?;
        // Warm up allocator pools and connections before the baseline.
        fill(port, 200, "warm")?;
        proc::sleep(Duration::from_millis(500));
        let before = rss_kib(agent.id(), "VmRSS")?;
        let started = Instant::now();
        let samples = fill(port, knobs.entries, which.name())?;
        report.add(which, "fill_seconds", started.elapsed().as_secs_f64());
        proc::sleep(Duration::from_secs(2));
        let per_entry =
            |after: u64| (after.saturating_sub(before) as f64 * 1024.0) / knobs.entries as f64;
        report.add(
            which,
            "bytes_per_cached_entry",
            per_entry(rss_kib(agent.id(), "VmRSS")?),
        );

        // Every sampled token has outlived the TTL it was created with by the time they
        // are looked up: only the agent's renewals can have kept them.
        let alive = alive_after_ttl(vault_port, &samples)?;
        report.add(
            which,
            "renewed_pct",
            alive as f64 * 100.0 / samples.len().max(1) as f64,
        );
        report.add(
            which,
            "bytes_per_cached_entry_renewing",
            per_entry(rss_kib(agent.id(), "VmRSS")?),
        );
        drop(agent);
    }

    let ours_size = std::fs::metadata(&ours)?.len();
    let bao_size = std::fs::metadata(&setup.vault.bin)?.len();
    report.add(Which::Ours, "binary_bytes", ours_size as f64);
    report.add(Which::Bao, "binary_bytes", bao_size as f64);

    report.finish(root, &knobs, &static_load)
}

/// One round of the pass-through loads through the bare proxy, which forwards to the same
/// dev server; it adds no token, so the requests carry the root token themselves.
fn floor_round(setup: &Setup, bin: &Path, knobs: &Knobs, report: &mut Report) -> Result<()> {
    let port = proc::free_port(false)?;
    let upstream = setup
        .vault
        .addr
        .strip_prefix("http://")
        .unwrap_or(&setup.vault.addr);
    let proxy = Background::spawn(
        "the bare proxy",
        Command::new(bin).arg(port.to_string()).arg(upstream),
    )?;
    wait_port(port)?;
    let url = format!("http://127.0.0.1:{port}{KV_PATH}");
    let token = format!("X-Vault-Token: {}", crate::devvault::ROOT_TOKEN);
    wrk(&url, None, Some(&token), 1, 1)?;
    for (label, connections) in [("c1", 1), ("load", knobs.connections)] {
        let cpu_before = cpu_seconds(proxy.id())?;
        let run = wrk(&url, None, Some(&token), connections, knobs.seconds)?;
        let cpu = cpu_seconds(proxy.id())? - cpu_before;
        let metric = format!("passthrough_{label}_cpu_s_per_10k");
        report
            .floor
            .entry(metric)
            .or_default()
            .push(cpu / run.requests.max(1) as f64 * 10_000.0);
        if run.errors > 0 {
            report.note(format!(
                "bare proxy {label}: {} non-2xx answers",
                run.errors
            ));
        }
    }
    Ok(())
}

/// Starts one agent with the shared config; returns it once its sink holds a token.
fn start(setup: &Setup, which: Which) -> Result<(Background, Duration)> {
    let tag = match which {
        Which::Ours => "ours",
        Which::Bao => "bao",
    };
    let sink = setup.dir.join(format!("{tag}.token"));
    let _ = std::fs::remove_file(&sink);
    let port = proc::free_port(false)?;
    std::fs::write(setup.dir.join(format!("{tag}.port")), port.to_string())?;
    let config = format!(
        r#"vault {{
  address = "{addr}"
}}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path                   = "{dir}/role_id"
      secret_id_file_path                 = "{dir}/secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{
    config = {{ path = "{sink}" }}
  }}
}}
cache {{
  use_auto_auth_token = true
}}
listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
log_level = "info"
"#,
        addr = setup.vault.addr,
        dir = setup.dir.display(),
        sink = sink.display(),
    );
    let config_path = setup.dir.join(format!("{tag}.hcl"));
    std::fs::write(&config_path, config)?;
    let log = std::fs::File::create(setup.dir.join(format!("{tag}.log")))?;

    let mut cmd = match which {
        Which::Ours => Command::new(&setup.ours),
        Which::Bao => {
            let mut cmd = Command::new(&setup.vault.bin);
            cmd.arg("agent");
            cmd
        }
    };
    cmd.arg(format!("-config={}", config_path.display()))
        .env_remove("VAULT_ADDR")
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_TOKEN")
        .env_remove("BAO_TOKEN")
        .stdout(log.try_clone()?)
        .stderr(log);

    let started = Instant::now();
    let mut agent = Background::spawn(which.name(), &mut cmd)?;
    loop {
        if std::fs::metadata(&sink).is_ok_and(|m| m.len() > 0) {
            break;
        }
        agent.check_alive()?;
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{} wrote no token within 30 s", which.name());
        }
        proc::sleep(Duration::from_millis(2));
    }
    let startup = started.elapsed();
    wait_port(port)?;
    Ok((agent, startup))
}

fn agent_port(dir: &Path, which: Which) -> Result<u16> {
    let tag = match which {
        Which::Ours => "ours",
        Which::Bao => "bao",
    };
    Ok(std::fs::read_to_string(dir.join(format!("{tag}.port")))?
        .trim()
        .parse()?)
}

fn wait_port(port: u16) -> Result<()> {
    proc::wait_until("the listener", Duration::from_secs(20), || {
        Ok(TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
}

/// One wrk run's results.
struct WrkRun {
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
}

fn wrk(
    url: &str,
    script: Option<&Path>,
    header: Option<&str>,
    connections: u32,
    seconds: u64,
) -> Result<WrkRun> {
    let mut cmd = Command::new("wrk");
    cmd.arg("-t")
        .arg(if connections > 1 { "2" } else { "1" })
        .arg("-c")
        .arg(connections.to_string())
        .arg("-d")
        .arg(format!("{seconds}s"))
        .arg("--latency");
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    if let Some(header) = header {
        cmd.arg("-H").arg(header);
    }
    let out = proc::output(cmd.arg(url))?;
    parse_wrk(&out).with_context(|| format!("reading wrk's output:\n{out}"))
}

fn parse_wrk(out: &str) -> Result<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        rps: 0.0,
        p50_us: 0.0,
        p99_us: 0.0,
        errors: 0,
    };
    for line in out.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["50%", value] => run.p50_us = micros(value)?,
            ["99%", value] => run.p99_us = micros(value)?,
            ["Requests/sec:", value] => run.rps = value.parse()?,
            [count, "requests", "in", ..] => run.requests = count.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => run.errors = count.parse()?,
            _ => {}
        }
    }
    if run.requests == 0 {
        bail!("no requests completed");
    }
    Ok(run)
}

fn micros(value: &str) -> Result<f64> {
    let (number, factor) = if let Some(n) = value.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1000.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        bail!("unknown latency unit in {value:?}")
    };
    Ok(number.parse::<f64>()? * factor)
}

fn post_script(dir: &Path, body: &str) -> Result<PathBuf> {
    let path = dir.join("post.lua");
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    Ok(path)
}

/// A token a fill made and kept, to see later whether the agent renewed it.
struct Sampled {
    token: String,
    created: Instant,
}

/// Sends `count` distinct token-create requests over a few keep-alive connections, and
/// keeps about `RENEW_SAMPLES` of the tokens from the first fifth of them.
fn fill(port: u16, count: usize, tag: &str) -> Result<Vec<Sampled>> {
    let workers = 8;
    let tag = tag.replace(' ', "-");
    let early = (count / 5).max(1);
    let every = (early / RENEW_SAMPLES).max(1);
    let ttl = FILL_TTL.as_secs();
    std::thread::scope(|scope| -> Result<Vec<Sampled>> {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let tag = tag.clone();
                scope.spawn(move || -> Result<Vec<Sampled>> {
                    let mut conn = KeepAlive::connect(port)?;
                    let mut kept = Vec::new();
                    for i in (w..count).step_by(workers) {
                        let body = format!(r#"{{"ttl":"{ttl}s","meta":{{"bench":"{tag}-{i}"}}}}"#);
                        let created = Instant::now();
                        let (status, answer) = conn.post(CREATE_PATH, &body, None)?;
                        if status != 200 {
                            bail!("token create answered {status}");
                        }
                        if i < early && i % every == 0 {
                            kept.push(Sampled {
                                token: client_token(&answer)?,
                                created,
                            });
                        }
                    }
                    Ok(kept)
                })
            })
            .collect();
        let mut samples = Vec::new();
        for handle in handles {
            samples.extend(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a fill worker panicked"))??,
            );
        }
        Ok(samples)
    })
}

fn client_token(answer: &[u8]) -> Result<String> {
    let answer: serde_json::Value =
        serde_json::from_slice(answer).context("a token create answer is not JSON")?;
    answer["auth"]["client_token"]
        .as_str()
        .map(str::to_owned)
        .context("a token create answer has no auth.client_token")
}

/// Waits until every sample is `RENEW_MARGIN` past its first TTL, then asks Vault (as root,
/// around the agent) how many of them are still alive.
fn alive_after_ttl(vault_port: u16, samples: &[Sampled]) -> Result<usize> {
    let Some(last) = samples.iter().map(|sample| sample.created).max() else {
        return Ok(0);
    };
    let due = last + FILL_TTL + RENEW_MARGIN;
    if let Some(wait) = due.checked_duration_since(Instant::now()) {
        proc::sleep(wait);
    }
    let mut conn = KeepAlive::connect(vault_port)?;
    let root = crate::devvault::ROOT_TOKEN;
    let mut alive = 0;
    for sample in samples {
        let body = json!({ "token": sample.token }).to_string();
        let (status, _) = conn.post("/v1/auth/token/lookup", &body, Some(root))?;
        // Anything else (403 for a token that no longer exists) counts as not kept.
        if status == 200 {
            alive += 1;
        }
    }
    Ok(alive)
}

fn port_of(addr: &str) -> Result<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {addr}"))
}

/// A keep-alive HTTP/1.1 connection that reads Content-Length or chunked answers.
struct KeepAlive {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn connect(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self {
            port,
            reader: BufReader::new(stream),
        })
    }

    /// Posts `body`, with `token` as `X-Vault-Token` if given; the status and the body.
    fn post(&mut self, path: &str, body: &str, token: Option<&str>) -> Result<(u16, Vec<u8>)> {
        let token = token.map_or_else(String::new, |token| format!("X-Vault-Token: {token}\r\n"));
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             {token}Content-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        self.reader.get_mut().write_all(request.as_bytes())?;

        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
                if name.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked") {
                    chunked = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16)?;
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length.unwrap_or(0), 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

/// User plus system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("malformed /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let hz = proc::output(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(ticks / hz)
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} for process {pid}"))
}

fn ensure_wrk() -> Result<()> {
    if proc::find_on_path("wrk").is_some() {
        return Ok(());
    }
    eprintln!("xtask: installing wrk with apt-get (Debian's wrk package)");
    proc::run(Command::new("apt-get").args(["update", "-qq"]))?;
    proc::run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

#[derive(Default)]
struct Report {
    ours: std::collections::BTreeMap<String, Vec<f64>>,
    bao: std::collections::BTreeMap<String, Vec<f64>>,
    /// The bare proxy's pass-through CPU figures.
    floor: std::collections::BTreeMap<String, Vec<f64>>,
    /// The static responder's CPU seconds per 10,000 answers under load.
    static_cpu_s_per_10k: f64,
    notes: Vec<String>,
}

/// A target: the metric, the comparison, and the bound on ours / bao.
struct Target {
    what: &'static str,
    metric: &'static str,
    /// `true`: ours/bao must be at most `bound`; `false`: at least.
    at_most: bool,
    bound: f64,
}

const TARGETS: &[Target] = &[
    Target {
        what: "CPU per 10k pass-through (load)",
        metric: "passthrough_load_cpu_s_per_10k",
        at_most: true,
        bound: 0.25,
    },
    Target {
        what: "CPU per 10k pass-through (c1)",
        metric: "passthrough_c1_cpu_s_per_10k",
        at_most: true,
        bound: 0.25,
    },
    Target {
        what: "cache-hit throughput (load)",
        metric: "cache_hit_load_rps",
        at_most: false,
        bound: 2.0,
    },
    Target {
        what: "cache-hit p99 (load)",
        metric: "cache_hit_load_p99_us",
        at_most: true,
        bound: 1.0,
    },
    Target {
        what: "RSS idle",
        metric: "rss_idle_kib",
        at_most: true,
        bound: 0.25,
    },
    Target {
        what: "startup to token",
        metric: "startup_ms",
        at_most: true,
        bound: 0.5,
    },
];

impl Report {
    fn add(&mut self, which: Which, metric: &str, value: f64) {
        let map = match which {
            Which::Ours => &mut self.ours,
            Which::Bao => &mut self.bao,
        };
        map.entry(metric.to_owned()).or_default().push(value);
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn median(values: Option<&Vec<f64>>) -> Option<f64> {
        let mut values = values?.clone();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        Some(if values.len() % 2 == 0 {
            (values[mid - 1] + values[mid]) / 2.0
        } else {
            values[mid]
        })
    }

    fn finish(self, root: &Path, knobs: &Knobs, ceiling: &WrkRun) -> Result<()> {
        let mut rows = Vec::new();
        println!(
            "\nc1 = one connection, load = {} connections; *_ms, *_us: milliseconds, \
             microseconds; *_kib: KiB; cpu_s_per_10k: the agent's CPU seconds per 10,000 \
             requests; fill_seconds: time to make the {} cache entries; \
             renewed_pct: sampled tokens from the fill still alive after their first TTL; \
             *_renewing: read once those renewals have run",
            knobs.connections, knobs.entries
        );
        println!(
            "{:<40} {:>14} {:>14} {:>10}",
            "metric (median of rounds)", "ours", "bao agent", "ours/bao"
        );
        for metric in self.ours.keys() {
            let ours = Self::median(self.ours.get(metric));
            let bao = Self::median(self.bao.get(metric));
            let ratio = match (ours, bao) {
                (Some(o), Some(b)) if b != 0.0 => Some(o / b),
                _ => None,
            };
            println!(
                "{metric:<40} {:>14} {:>14} {:>10}",
                fmt(ours),
                fmt(bao),
                ratio
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_else(|| "-".into())
            );
            rows.push(json!({"metric": metric, "ours": ours, "bao": bao, "ratio": ratio}));
        }

        let ours_hit = Self::median(self.ours.get("cache_hit_load_rps")).unwrap_or(0.0);
        let of_ceiling = ours_hit / ceiling.rps.max(1.0);
        println!(
            "\nstatic responder (ceiling) under load: {:.0} req/s, p99 {:.0} us; our cache hits reach {:.1} % of it",
            ceiling.rps,
            ceiling.p99_us,
            of_ceiling * 100.0
        );
        let ours_hit_cpu = Self::median(self.ours.get("cache_hit_load_cpu_s_per_10k"));
        println!(
            "CPU per 10,000 answers under load: static responder {:.3} s, our cache hits {}",
            self.static_cpu_s_per_10k,
            ours_hit_cpu.map_or_else(|| "-".to_owned(), |cpu| format!("{cpu:.3} s")),
        );

        let mut floor = Vec::new();
        for (metric, values) in &self.floor {
            let plain = Self::median(Some(values));
            let ours = Self::median(self.ours.get(metric));
            let bao = Self::median(self.bao.get(metric));
            let (Some(p), Some(o), Some(b)) = (plain, ours, bao) else {
                continue;
            };
            println!(
                "bare hyper proxy, {metric}: {p:.3} s = {:.3} of bao agent's; ours is {:.2}x the bare proxy's",
                p / b,
                o / p
            );
            floor.push(json!({"metric": metric, "bare_proxy": p, "bare_over_bao": p / b, "ours_over_bare": o / p}));
        }

        println!("\ntargets:");
        let mut verdicts = Vec::new();
        for target in TARGETS {
            let ours = Self::median(self.ours.get(target.metric));
            let bao = Self::median(self.bao.get(target.metric));
            let (Some(o), Some(b)) = (ours, bao) else {
                continue;
            };
            let ratio = o / b;
            let met = if target.at_most {
                ratio <= target.bound
            } else {
                ratio >= target.bound
            };
            let rule = if target.at_most { "<=" } else { ">=" };
            let line = format!(
                "{:<34} ours/bao = {ratio:.3} (target {rule} {}) {}",
                target.what,
                target.bound,
                if met {
                    "met".to_owned()
                } else {
                    format!("MISSED by {:.0} %", miss(ratio, target))
                }
            );
            println!("  {line}");
            verdicts.push(
                json!({"target": target.what, "ratio": ratio, "bound": target.bound, "met": met}),
            );
        }
        let met = of_ceiling >= 0.8;
        println!(
            "  {:<34} {:.1} % (target >= 80 %) {}",
            "cache-hit rps vs static responder",
            of_ceiling * 100.0,
            if met {
                "met".to_owned()
            } else {
                format!("MISSED by {:.0} %", (0.8 - of_ceiling) / 0.8 * 100.0)
            }
        );
        verdicts.push(json!({"target": "cache-hit rps vs static responder", "ratio": of_ceiling, "bound": 0.8, "met": met}));
        // Memory per entry counts at its worse reading: just after the fill, or once the
        // first renewals have run.
        let per_entry = ["bytes_per_cached_entry", "bytes_per_cached_entry_renewing"]
            .iter()
            .filter_map(|metric| Self::median(self.ours.get(*metric)))
            .reduce(f64::max);
        if let Some(per_entry) = per_entry {
            let met = per_entry < 1024.0;
            println!(
                "  {:<34} {per_entry:.0} B (target < 1024 B) {}",
                "memory per cached entry (ours)",
                if met {
                    "met".to_owned()
                } else {
                    format!("MISSED by {:.0} %", (per_entry - 1024.0) / 1024.0 * 100.0)
                }
            );
            verdicts.push(json!({"target": "memory per cached entry (ours)", "value": per_entry, "bound": 1024, "met": met}));
        }
        if let Some(renewed) = Self::median(self.ours.get("renewed_pct")) {
            let met = renewed >= 100.0;
            println!(
                "  {:<34} {renewed:.1} % (target 100 %) {}",
                "cached tokens alive past first TTL",
                if met {
                    "met".to_owned()
                } else {
                    format!("MISSED by {:.1} points", 100.0 - renewed)
                }
            );
            verdicts.push(json!({"target": "cached tokens alive past first TTL", "value": renewed, "bound": 100, "met": met}));
        }
        for note in &self.notes {
            println!("note: {note}");
        }

        let out_dir = root.join("target/bench");
        std::fs::create_dir_all(&out_dir)?;
        let report = json!({
            "knobs": {"seconds": knobs.seconds, "connections": knobs.connections, "rounds": knobs.rounds, "entries": knobs.entries},
            "metrics": rows,
            "static_responder": {"rps": ceiling.rps, "p50_us": ceiling.p50_us, "p99_us": ceiling.p99_us, "cpu_s_per_10k": self.static_cpu_s_per_10k},
            "bare_proxy": floor,
            "targets": verdicts,
            "notes": self.notes,
            "raw": {"ours": self.ours, "bao": self.bao, "bare_proxy": self.floor},
        });
        let path = out_dir.join("report.json");
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)?;
        println!("\nreport written to {}", path.display());
        Ok(())
    }
}

fn miss(ratio: f64, target: &Target) -> f64 {
    if target.at_most {
        (ratio / target.bound - 1.0) * 100.0
    } else {
        (1.0 - ratio / target.bound) * 100.0
    }
}

fn fmt(value: Option<f64>) -> String {
    match value {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 2s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  120.00us\n     99%    1.50ms\n  2000 requests in 2.00s, 1.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:   1000.00\n";
        let run = parse_wrk(&out.replace("\\n", "\n")).unwrap();
        assert_eq!(run.requests, 2000);
        assert_eq!(run.errors, 3);
        assert!((run.p50_us - 120.0).abs() < 1e-9);
        assert!((run.p99_us - 1500.0).abs() < 1e-9);
        assert!((run.rps - 1000.0).abs() < 1e-9);
    }
}
