//! `cargo xtask demo`: the agent's main job on the embedded default. A dev server comes up,
//! an AppRole is set up, the agent starts with a config written to a temp dir, and what it
//! did is shown: the login, the token in the sink, a cache miss, a hit and an eviction.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::devvault::DevVault;
use crate::proc::{self, Background};
use crate::{http, step};

const POLICY: &str = r#"
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/revoke" { capabilities = ["update"] }
path "secret/data/*"     { capabilities = ["read"] }
"#;

pub(crate) fn demo(root: &Path) -> Result<()> {
    step("building the agent");
    proc::run(Command::new("cargo").args(["build", "-p", "agent"]))?;
    let agent_bin = root.join("target/debug/vault-agent");

    step("starting a throwaway OpenBao dev server");
    let vault = DevVault::start(root)?;

    step("setting up AppRole auth, a policy and a secret");
    vault.cli_stdin(&["policy", "write", "demo", "-"], POLICY)?;
    vault.cli(&["auth", "enable", "approle"])?;
    vault.cli(&[
        "write",
        "auth/approle/role/demo",
        "token_policies=demo",
        "token_ttl=1m",
        "token_max_ttl=10m",
    ])?;
    vault.cli(&["kv", "put", "secret/demo", "greeting=hello from vault"])?;
    let role_id = vault.cli(&["read", "-field=role_id", "auth/approle/role/demo/role-id"])?;
    let secret_id = vault.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/demo/secret-id",
    ])?;

    let dir = root.join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("role_id"), role_id.trim())?;
    std::fs::write(dir.join("secret_id"), secret_id.trim())?;
    let port = proc::free_port(false)?;
    let listen = format!("127.0.0.1:{port}");
    let config = format!(
        r#"vault {{
  address = "{addr}"
}}

auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path   = "{dir}/role_id"
      secret_id_file_path = "{dir}/secret_id"
    }}
  }}
  sink "file" {{
    config = {{
      path = "{dir}/token"
      mode = 0640
    }}
  }}
}}

cache {{
  use_auto_auth_token = true
}}

listener "tcp" {{
  address     = "{listen}"
  tls_disable = true
}}
"#,
        addr = vault.addr,
        dir = dir.display(),
    );
    let config_path = dir.join("agent.hcl");
    std::fs::write(&config_path, &config)?;
    println!("config written to {}:\n\n{config}", config_path.display());

    step("starting the agent");
    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut agent = Background::spawn(
        "the agent",
        Command::new(&agent_bin)
            .arg(format!("-config={}", config_path.display()))
            .stdout(log.try_clone()?)
            .stderr(log),
    )?;
    let sink = dir.join("token");
    proc::wait_until("the token in the sink", Duration::from_secs(30), || {
        agent.check_alive()?;
        Ok(std::fs::read_to_string(&sink).is_ok_and(|t| !t.is_empty()))
    })?;
    let token = std::fs::read_to_string(&sink)?;
    let mode = file_mode(&sink)?;
    println!(
        "logged in with AppRole; token written to {} ({} bytes, mode {mode:o}) {:.0?} after start",
        sink.display(),
        token.len(),
        started.elapsed()
    );
    println!(
        "the secret_id file was removed after reading: {}",
        !dir.join("secret_id").exists()
    );
    let lookup = vault.cli(&["token", "lookup", "-format=json", token.trim()])?;
    let ttl = serde_json::from_str::<serde_json::Value>(&lookup)?["data"]["ttl"].clone();
    println!("the server knows the sink's token: ttl {ttl}s, policies from the role");

    step("the caching proxy: a miss, a hit, an eviction");
    let create = r#"{"ttl":"30m","display_name":"demo-child"}"#;
    let first = http::request(&listen, "POST", "/v1/auth/token/create", create)?;
    let second = http::request(&listen, "POST", "/v1/auth/token/create", create)?;
    show("POST /v1/auth/token/create (no client token)", &first);
    show("POST /v1/auth/token/create (same request again)", &second);
    let child = child_token(&first)?;
    if child != child_token(&second)? {
        bail!("the second create was not served from the cache");
    }
    println!("  -> the same child token both times: the agent answered the second locally");

    let kv = http::request(&listen, "GET", "/v1/secret/data/demo", "")?;
    show("GET /v1/secret/data/demo (KV, never cached)", &kv);

    let revoke = http::request(
        &listen,
        "POST",
        "/v1/auth/token/revoke",
        &format!(r#"{{"token":"{child}"}}"#),
    )?;
    show(
        "POST /v1/auth/token/revoke (the child, through the agent)",
        &revoke,
    );
    let third = http::request(&listen, "POST", "/v1/auth/token/create", create)?;
    show("POST /v1/auth/token/create (after the revoke)", &third);
    if child_token(&third)? == child {
        bail!("the revoked token was served again");
    }
    println!("  -> evicted on revoke: a fresh token came from Vault");

    let clear = http::request(
        &listen,
        "POST",
        "/agent/v1/cache-clear",
        r#"{"type":"all"}"#,
    )?;
    show("POST /agent/v1/cache-clear {\"type\":\"all\"}", &clear);
    let metrics = http::request(&listen, "GET", "/agent/v1/metrics?format=prometheus", "")?;
    println!("\nmetrics:");
    for line in metrics.body.lines().filter(|l| {
        l.contains("cache_hit") || l.contains("cache_miss") || l.contains("auth_success")
    }) {
        if !line.starts_with('#') {
            println!("  {line}");
        }
    }

    step("stopping the agent (SIGTERM)");
    drop(agent);
    println!("agent log ({}):", log_path.display());
    for line in std::fs::read_to_string(&log_path)?.lines() {
        println!("  {line}");
    }
    Ok(())
}

fn show(what: &str, answer: &http::Answer) {
    println!(
        "\n{what}\n  -> {} X-Cache: {} Age: {}",
        answer.status,
        answer.header("x-cache").unwrap_or("-"),
        answer.header("age").unwrap_or("-"),
    );
}

fn child_token(answer: &http::Answer) -> Result<String> {
    let json: serde_json::Value =
        serde_json::from_str(&answer.body).context("the agent's answer is not JSON")?;
    json["auth"]["client_token"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "no token in the answer ({}): {}",
                answer.status, answer.body
            )
        })
}

fn file_mode(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}
