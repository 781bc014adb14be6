//! The harness of the end-to-end tests: the real agent binary against a real OpenBao dev
//! server (and PostgreSQL), both started by `cargo xtask e2e`.
//!
//! The tests themselves live in `tests/e2e/` (one test binary). This library finds the
//! servers from the environment xtask sets (`E2E_*`), runs the real `bao` CLI, starts the
//! agent as a child process with its logs in a file, and checks those logs for secrets.
//! When the servers are absent a test is skipped with a message, unless `E2E_REQUIRED`
//! or `CI` is set: then it fails, so CI never passes on tests that did not run.

#![allow(clippy::print_stderr, reason = "test harness reports skips on stderr")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

pub mod auth;
pub mod binary;
pub mod faults;
pub mod lab;

/// The real `bao` CLI with `args`, a clean environment (only `PATH`, and `HOME` set to
/// `home` so no token helper file of the machine is read) and no stdin; callers add the
/// `BAO_*` variables they need.
pub fn bao_command(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .stdin(Stdio::null());
    command
}

/// Runs a [`bao_command`]; returns stdout, or fails with its stderr and the first two
/// words of the command (later ones may be credentials).
pub fn run_bao(command: &mut Command, args: &[&str]) -> Result<String> {
    let shown = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let out = command
        .output()
        .with_context(|| format!("running bao {shown}"))?;
    if !out.status.success() {
        bail!(
            "bao {shown} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The dev server the tests talk to.
#[derive(Debug)]
pub struct DevVault {
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The dev server's root token (a test credential, not a secret of anyone's).
    pub root_token: String,
    /// The real `bao` binary, used as CLI and as the reference agent.
    pub bao_bin: PathBuf,
}

/// The PostgreSQL cluster started for the database secrets engine.
#[derive(Debug)]
pub struct Postgres {
    /// Loopback host.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Superuser name.
    pub user: String,
    /// Superuser password.
    pub password: String,
}

/// The dev server, or `None` when the tests run outside `cargo xtask e2e`; panics in CI
/// so that a missing server can never look like a pass.
pub fn dev_vault() -> Option<&'static DevVault> {
    static VAULT: OnceLock<Option<DevVault>> = OnceLock::new();
    let found = VAULT.get_or_init(|| {
        let addr = std::env::var("E2E_VAULT_ADDR").ok()?;
        Some(DevVault {
            addr,
            root_token: std::env::var("E2E_VAULT_TOKEN").unwrap_or_else(|_| "root".into()),
            bao_bin: std::env::var("E2E_BAO_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|_| "bao".into()),
        })
    });
    if found.is_none() {
        missing("the OpenBao dev server (E2E_VAULT_ADDR)");
    }
    found.as_ref()
}

/// The PostgreSQL cluster, like [`dev_vault`].
pub fn postgres() -> Option<&'static Postgres> {
    static PG: OnceLock<Option<Postgres>> = OnceLock::new();
    let found = PG.get_or_init(|| {
        let port = std::env::var("E2E_PG_PORT").ok()?.parse().ok()?;
        Some(Postgres {
            host: std::env::var("E2E_PG_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
            port,
            user: std::env::var("E2E_PG_USER").unwrap_or_else(|_| "postgres".into()),
            password: std::env::var("E2E_PG_PASSWORD").unwrap_or_default(),
        })
    });
    if found.is_none() {
        missing("PostgreSQL (E2E_PG_PORT)");
    }
    found.as_ref()
}

fn missing(what: &str) {
    let required = std::env::var_os("E2E_REQUIRED").is_some() || std::env::var_os("CI").is_some();
    if required {
        panic!("{what} is not available; run the end-to-end tests through `cargo xtask e2e`");
    }
    eprintln!("skipped: {what} is not available; run through `cargo xtask e2e`");
}

/// Returns the dev server, or skips the calling test when it is absent.
#[macro_export]
macro_rules! vault_or_skip {
    () => {
        match $crate::dev_vault() {
            Some(vault) => vault,
            None => return,
        }
    };
}

/// The agent binary under test.
pub fn agent_bin() -> PathBuf {
    std::env::var_os("E2E_AGENT_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/vault-agent"))
}

/// The Python with hvac and cryptography installed (the venv xtask made).
pub fn python() -> PathBuf {
    std::env::var_os("E2E_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/tools/venv/bin/python3"))
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A name no other test in this run uses, for mounts, roles and files.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A fresh directory for one test, removed when dropped.
pub fn work_dir(name: &str) -> tempfile::TempDir {
    let base = std::env::var_os("E2E_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let _ = std::fs::create_dir_all(&base);
    tempfile::Builder::new()
        .prefix(&format!("{name}-"))
        .tempdir_in(base)
        .expect("creating a test work dir")
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    listener.local_addr().expect("probe port address").port()
}

/// Polls `ready` every 50 ms until it is true; fails after `timeout`, naming `what`.
pub fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        pause(Duration::from_millis(50));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}

/// Sleeps the test thread (the harness is synchronous on purpose).
#[allow(
    clippy::disallowed_methods,
    reason = "the harness polls real processes from test threads"
)]
pub fn pause(duration: Duration) {
    std::thread::sleep(duration);
}

impl DevVault {
    /// Runs the real CLI with the root token; returns stdout or fails with stderr.
    pub fn bao(&self, args: &[&str]) -> Result<String> {
        self.bao_as(&self.root_token, args)
    }

    /// Runs the real CLI with `token`.
    pub fn bao_as(&self, token: &str, args: &[&str]) -> Result<String> {
        let mut command = bao_command(&self.bao_bin, &std::env::temp_dir(), args);
        command.env("BAO_ADDR", &self.addr).env("BAO_TOKEN", token);
        run_bao(&mut command, args)
    }

    /// Runs the CLI with `-format=json` and parses its output.
    pub fn bao_json(&self, args: &[&str]) -> Result<Value> {
        let mut full = vec![args[0], "-format=json"];
        full.extend_from_slice(&args[1..]);
        let out = self.bao(&full)?;
        serde_json::from_str(&out).with_context(|| format!("parsing the output of bao {}", args[0]))
    }

    /// Enables an AppRole mount with a role and returns its credentials.
    pub fn approle(&self, role_options: &[&str]) -> Result<AppRole> {
        let mount = unique("approle");
        self.bao(&["auth", "enable", &format!("-path={mount}"), "approle"])?;
        let mut write = vec!["write".to_owned(), format!("auth/{mount}/role/app")];
        write.extend(role_options.iter().map(|s| (*s).to_owned()));
        let write: Vec<&str> = write.iter().map(String::as_str).collect();
        self.bao(&write)?;
        let role_id = self.bao_json(&["read", &format!("auth/{mount}/role/app/role-id")])?["data"]
            ["role_id"]
            .as_str()
            .context("no role_id")?
            .to_owned();
        let secret_id = self.bao_json(&[
            "write",
            "-f",
            &format!("auth/{mount}/role/app/secret-id"),
        ])?["data"]["secret_id"]
            .as_str()
            .context("no secret_id")?
            .to_owned();
        Ok(AppRole {
            mount,
            role_id,
            secret_id,
        })
    }
}

/// An AppRole mount with one role named `app`.
#[derive(Debug)]
pub struct AppRole {
    /// Mount path without `auth/`.
    pub mount: String,
    /// The role's role_id.
    pub role_id: String,
    /// A fresh secret_id.
    pub secret_id: String,
}

/// The agent under test, running as a child process with its output in a log file.
/// Killed when dropped.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    /// Starts `vault-agent -config=<config>` plus `args`, with a clean environment.
    pub fn start(config: &Path, args: &[&str]) -> Result<Self> {
        Self::start_with_env(config, args, &[])
    }

    /// Like [`Agent::start`], with extra environment variables.
    pub fn start_with_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let log = config.with_extension("log");
        let out = std::fs::File::create(&log).context("creating the agent log")?;
        let mut cmd = Command::new(agent_bin());
        cmd.arg(format!("-config={}", config.display()))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", agent_bin().display()))?;
        Ok(Self { child, log })
    }

    /// Everything the agent has printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the agent exited with {status} before logging {needle:?}:\n{}",
                    self.logs()
                );
            }
            pause(Duration::from_millis(50));
        }
        bail!(
            "the agent did not log {needle:?} within {timeout:?}:\n{}",
            self.logs()
        )
    }

    /// Waits for the agent to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            pause(Duration::from_millis(50));
        }
        bail!(
            "the agent did not exit within {timeout:?}:\n{}",
            self.logs()
        )
    }

    /// Sends a signal (SIGTERM, SIGHUP, SIGINT, SIGKILL, SIGSTOP, SIGCONT).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, signal).context("signalling the agent")
    }

    /// Fails if any of `secrets` appears anywhere in the agent's output.
    pub fn assert_no_secrets(&self, secrets: &[&str]) {
        let logs = self.logs();
        for secret in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(
                !logs.contains(secret),
                "a secret ({}…) appeared in the agent's logs",
                &secret[..4]
            );
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
