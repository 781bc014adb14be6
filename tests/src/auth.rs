//! Helpers of the auto-auth and sink tests: agent configurations written as HCL, sink files
//! waited for and inspected, tokens checked with the real CLI, the reference agent run on
//! the same configuration, and private dev servers for what the shared one cannot do
//! (serve TLS; audit to a file, which OpenBao only allows declared in the server's
//! configuration).

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{Agent, AppRole, DevVault, pause};

/// An agent configuration, built up piece by piece and written as HCL.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    vault: Vec<String>,
    method_kind: String,
    method: Vec<String>,
    method_config: Vec<String>,
    sinks: Vec<String>,
    top: Vec<String>,
}

impl AgentConfig {
    /// A configuration for `address` with an auto-auth method of type `kind` and no sink.
    pub fn new(address: &str, kind: &str) -> Self {
        Self {
            vault: vec![format!("address = {}", quoted(address))],
            method_kind: kind.to_owned(),
            method: Vec::new(),
            method_config: Vec::new(),
            sinks: Vec::new(),
            top: Vec::new(),
        }
    }

    /// AppRole at `role`'s mount, reading the credential files in `files`; the secret_id
    /// file is left in place so that the test can start the agent again.
    pub fn approle(vault: &DevVault, role: &AppRole, files: &AppRoleFiles) -> Self {
        Self::new(&vault.addr, "approle")
            .method(&format!(
                "mount_path = {}",
                quoted(&format!("auth/{}", role.mount))
            ))
            .method_config("role_id_file_path", &quoted_path(&files.role_id))
            .method_config("secret_id_file_path", &quoted_path(&files.secret_id))
            .method_config("remove_secret_id_file_after_reading", "false")
    }

    /// Adds a line to the `vault` block.
    pub fn vault(mut self, line: &str) -> Self {
        self.vault.push(line.to_owned());
        self
    }

    /// Adds a line to the `method` block (`wrap_ttl = "5m"`).
    pub fn method(mut self, line: &str) -> Self {
        self.method.push(line.to_owned());
        self
    }

    /// Sets `key = value` in the method's `config`; `value` is HCL (quote strings). A key set
    /// twice keeps the later value.
    pub fn method_config(mut self, key: &str, value: &str) -> Self {
        let prefix = format!("{key} =");
        self.method_config.retain(|line| !line.starts_with(&prefix));
        self.method_config.push(format!("{key} = {value}"));
        self
    }

    /// Adds a `sink "file"` block with `body` as its content.
    pub fn sink(mut self, body: &str) -> Self {
        self.sinks.push(body.to_owned());
        self
    }

    /// Adds a plain file sink at `path`.
    pub fn file_sink(self, path: &Path) -> Self {
        self.sink(&format!("config = {{ path = {} }}", quoted_path(path)))
    }

    /// Adds top-level HCL (`exit_after_auth = true`, a `listener` block...).
    pub fn top(mut self, text: &str) -> Self {
        self.top.push(text.to_owned());
        self
    }

    /// The configuration as HCL.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "vault {{\n  {}\n}}", self.vault.join("\n  "));
        let _ = writeln!(
            out,
            "auto_auth {{\n  method {} {{",
            quoted(&self.method_kind)
        );
        for line in &self.method {
            let _ = writeln!(out, "    {line}");
        }
        let _ = writeln!(out, "    config = {{");
        for line in &self.method_config {
            let _ = writeln!(out, "      {line}");
        }
        let _ = writeln!(out, "    }}\n  }}");
        for sink in &self.sinks {
            let _ = writeln!(out, "  sink \"file\" {{\n    {sink}\n  }}");
        }
        let _ = writeln!(out, "}}");
        for text in &self.top {
            let _ = writeln!(out, "{text}");
        }
        out
    }

    /// Writes the configuration to `path` and returns the path.
    pub fn write(&self, path: &Path) -> Result<PathBuf> {
        std::fs::write(path, self.render())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_owned())
    }
}

/// An HCL (and JSON) string literal.
pub fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A path as an HCL string literal.
pub fn quoted_path(path: &Path) -> String {
    quoted(&path.display().to_string())
}

/// The credential files of an AppRole.
#[derive(Debug, Clone)]
pub struct AppRoleFiles {
    /// Holds the role_id.
    pub role_id: PathBuf,
    /// Holds the secret_id.
    pub secret_id: PathBuf,
}

impl AppRoleFiles {
    /// Writes `role`'s role_id and secret_id into `dir`.
    pub fn write(dir: &Path, role: &AppRole) -> Result<Self> {
        let files = Self {
            role_id: dir.join("role_id"),
            secret_id: dir.join("secret_id"),
        };
        std::fs::write(&files.role_id, &role.role_id)?;
        std::fs::write(&files.secret_id, &role.secret_id)?;
        Ok(files)
    }
}

/// One test's directory with an AppRole (role `app` on a mount of its own), the role's
/// credential files in that directory, and the path of a sink next to them.
#[derive(Debug)]
pub struct Scene {
    /// The test's directory, removed when the scene is dropped.
    pub dir: tempfile::TempDir,
    /// The AppRole.
    pub role: AppRole,
    /// Its credential files.
    pub files: AppRoleFiles,
    /// `<dir>/token`, not created.
    pub sink: PathBuf,
}

impl Scene {
    /// A new directory named after `name` and a role created with `role_options`.
    pub fn new(vault: &DevVault, name: &str, role_options: &[&str]) -> Result<Self> {
        let dir = crate::work_dir(name);
        let role = vault.approle(role_options)?;
        let files = AppRoleFiles::write(dir.path(), &role)?;
        let sink = dir.path().join("token");
        Ok(Self {
            dir,
            role,
            files,
            sink,
        })
    }

    /// AppRole with the secret_id file kept, writing to the sink.
    pub fn config(&self, vault: &DevVault) -> AgentConfig {
        AgentConfig::approle(vault, &self.role, &self.files).file_sink(&self.sink)
    }

    /// A path in the scene's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `config` as `agent.hcl` and starts the agent on it.
    pub fn start(&self, config: &AgentConfig) -> Result<Agent> {
        let path = config.write(&self.path("agent.hcl"))?;
        Agent::start(&path, &[])
    }

    /// The role's login path, as a token's lookup names it.
    pub fn login_path(&self) -> String {
        format!("auth/{}/login", self.role.mount)
    }
}

/// Waits until the file at `path` holds something `accept` takes, and returns it.
pub fn wait_for_sink(
    path: &Path,
    timeout: Duration,
    accept: impl Fn(&str) -> bool,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(content) = std::fs::read_to_string(path) {
            if !content.is_empty() && accept(&content) {
                return Ok(content);
            }
            last = Some(content.len());
        }
        pause(Duration::from_millis(50));
    }
    match last {
        None => bail!("{} was not written within {timeout:?}", path.display()),
        Some(len) => bail!(
            "{} did not get the expected content within {timeout:?} (it holds {len} bytes)",
            path.display()
        ),
    }
}

/// Waits for the first token in the sink at `path`.
pub fn first_token(path: &Path, timeout: Duration) -> Result<String> {
    wait_for_sink(path, timeout, |_| true)
}

/// Waits until the sink at `path` holds something other than `old`.
pub fn next_token(path: &Path, old: &str, timeout: Duration) -> Result<String> {
    wait_for_sink(path, timeout, |content| content != old)
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> Result<u32> {
    let metadata = std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))?;
    Ok(metadata.permissions().mode() & 0o7777)
}

/// `bao token lookup` run as `token` itself, in `namespace` when given: the token's `data`,
/// or an error when Vault does not accept it.
pub fn lookup_self(vault: &DevVault, token: &str, namespace: Option<&str>) -> Result<Value> {
    let mut args = vec!["token", "lookup", "-format=json"];
    let flag = namespace.map(|ns| format!("-namespace={ns}"));
    args.extend(flag.as_deref());
    let out = vault.bao_as(token, &args)?;
    let answer: Value = serde_json::from_str(&out).context("parsing bao token lookup")?;
    Ok(answer["data"].clone())
}

/// The `expire_time` of a token's lookup data.
pub fn expire_time(data: &Value) -> Result<String> {
    data["expire_time"]
        .as_str()
        .map(str::to_owned)
        .context("the token has no expire_time")
}

/// How many requests to `path` the file audit device logged into `log`.
pub fn audited_requests(log: &Path, path: &str) -> Result<usize> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).context("an audit line is not JSON")?;
        if entry["type"] == "request" && entry["request"]["path"] == path {
            count += 1;
        }
    }
    Ok(count)
}

/// Runs the reference agent (`bao agent`) on `config`, which must set `exit_after_auth`,
/// and waits for it to exit. Its output goes to `<config>.reference.log`.
pub fn run_reference_agent(
    vault: &DevVault,
    config: &Path,
    timeout: Duration,
) -> Result<ExitStatus> {
    let log = config.with_extension("reference.log");
    let out = std::fs::File::create(&log)?;
    let mut child = Command::new(&vault.bao_bin)
        .arg("agent")
        .arg(format!("-config={}", config.display()))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting bao agent")?;
    let status = wait_child(&mut child, timeout);
    let _ = child.kill();
    let _ = child.wait();
    status.with_context(|| {
        let logs = std::fs::read_to_string(&log).unwrap_or_default();
        format!("the reference agent did not exit:\n{logs}")
    })
}

fn wait_child(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        pause(Duration::from_millis(50));
    }
    bail!("still running after {timeout:?}")
}

/// A dev server of one test's own, for what the shared one cannot offer; killed when
/// dropped. Its root token is `root`.
#[derive(Debug)]
pub struct PrivateServer {
    child: Child,
    /// `http(s)://127.0.0.1:<port>`.
    pub addr: String,
    /// The CA that signed the server's certificate, when it serves TLS.
    pub ca_cert: Option<PathBuf>,
    bao_bin: PathBuf,
    dir: tempfile::TempDir,
}

/// What a [`PrivateServer`] offers besides plain HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Serves TLS with a CA of its own (`-dev-tls`).
    Tls,
    /// Logs every request and response to `audit.log` in its directory.
    FileAudit,
}

impl PrivateServer {
    /// Starts a dev server with `feature` and waits until it answers.
    pub fn start(vault: &DevVault, feature: Feature) -> Result<Self> {
        let dir = crate::work_dir("private-vault");
        let port = crate::free_port();
        let listen = format!("-dev-listen-address=127.0.0.1:{port}");
        let mut args = vec![listen];
        let (addr, ca_cert) = match feature {
            Feature::Tls => {
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
                let ca = dir.path().join("vault-ca.pem");
                (format!("https://127.0.0.1:{port}"), Some(ca))
            }
            Feature::FileAudit => {
                let config = dir.path().join("audit.hcl");
                let log = dir.path().join("audit.log");
                let declared = format!(
                    "audit \"file\" \"e2e\" {{\n  options {{\n    file_path = {}\n  }}\n}}\n",
                    quoted_path(&log)
                );
                std::fs::write(&config, declared)?;
                args.push(format!("-config={}", config.display()));
                (format!("http://127.0.0.1:{port}"), None)
            }
        };

        let log = std::fs::File::create(dir.path().join("bao.log"))?;
        let child = Command::new(&vault.bao_bin)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
            ])
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a private dev server")?;
        let server = Self {
            child,
            addr,
            ca_cert,
            bao_bin: vault.bao_bin.clone(),
            dir,
        };

        let deadline = Instant::now() + Duration::from_secs(30);
        while server.bao(&["status"]).is_err() {
            if Instant::now() > deadline {
                let logs = std::fs::read_to_string(server.dir.path().join("bao.log"));
                bail!(
                    "the private dev server did not start:\n{}",
                    logs.unwrap_or_default()
                );
            }
            pause(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// The file the audit device writes ([`Feature::FileAudit`]).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.path().join("audit.log")
    }

    /// Runs the CLI against this server with the root token; returns stdout.
    pub fn bao(&self, args: &[&str]) -> Result<String> {
        self.bao_as("root", args)
    }

    /// Runs the CLI against this server as `token`.
    pub fn bao_as(&self, token: &str, args: &[&str]) -> Result<String> {
        let mut command = crate::bao_command(&self.bao_bin, self.dir.path(), args);
        command.env("BAO_ADDR", &self.addr).env("BAO_TOKEN", token);
        if let Some(ca) = &self.ca_cert {
            command.env("BAO_CACERT", ca);
        }
        crate::run_bao(&mut command, args)
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` is alive; a zombie waiting to be reaped counts as gone.
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// How many lines of `logs` contain `needle`.
pub fn count_lines(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|line| line.contains(needle)).count()
}
