//! Servers of a fault test's own, to stop, pause, kill, seal and restart while the real
//! agent runs against them, and what the tests measure: audit counts, a process's memory and
//! open files.
//!
//! A [`Server`] is either a dev server (in memory, gone when killed) or a persistent one
//! (integrated storage in a directory of its own, initialised with one unseal key), which
//! survives being killed and can be sealed and unsealed. Both audit every request to a file
//! in raw form (tokens readable), which only a throwaway test server may do.
//!
//! How long a case lasts is chosen by `E2E_FAULTS`: `long` runs the durations of the issue
//! (`cargo xtask faults`), anything else the short ones every e2e run can afford.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{AppRole, pause, unique};

/// Whether this run takes the full durations of the issue (`E2E_FAULTS=long`).
pub fn long() -> bool {
    std::env::var("E2E_FAULTS").is_ok_and(|v| v == "long")
}

/// `short` in an ordinary run, `long` under `E2E_FAULTS=long`.
pub fn scaled(short: Duration, long: Duration) -> Duration {
    if self::long() { long } else { short }
}

/// A loopback port whose successor is free too: a server binds its cluster listener there.
pub fn free_port_pair() -> Result<u16> {
    for _ in 0..50 {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
        let port = listener.local_addr()?.port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no pair of free loopback ports found")
}

/// How a [`Server`] keeps its data.
#[derive(Debug)]
enum Storage {
    /// `server -dev`: in memory, root token `root`, already unsealed.
    Dev,
    /// `server -config` with integrated storage in the server's directory.
    Persistent { unseal_key: String },
}

/// An OpenBao server of one test's own; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    storage: Storage,
    /// `http://127.0.0.1:<port>`.
    pub addr: String,
    /// The root token (a credential of this throwaway server only).
    pub root_token: String,
    bao_bin: PathBuf,
    dir: tempfile::TempDir,
    starts: u32,
}

impl Server {
    /// Starts a dev server and waits until it is active.
    pub fn dev(bao_bin: &Path) -> Result<Self> {
        let dir = crate::work_dir("fault-server");
        let port = free_port_pair()?;
        let config = dir.path().join("server.hcl");
        std::fs::write(&config, audit_stanza(&dir.path().join("audit.log")))?;

        let mut server = Self {
            child: None,
            storage: Storage::Dev,
            addr: format!("http://127.0.0.1:{port}"),
            root_token: "root".to_owned(),
            bao_bin: bao_bin.to_owned(),
            dir,
            starts: 0,
        };
        server.spawn(&[
            "server".to_owned(),
            "-dev".to_owned(),
            "-dev-root-token-id=root".to_owned(),
            "-dev-no-store-token".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            format!("-config={}", config.display()),
        ])?;
        server.wait_active(Duration::from_secs(30))?;
        Ok(server)
    }

    /// Starts a non-dev server with integrated storage, initialises it with one key share,
    /// unseals it and waits until it is active.
    pub fn persistent(bao_bin: &Path) -> Result<Self> {
        let dir = crate::work_dir("fault-server");
        let port = free_port_pair()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data)?;
        let config = dir.path().join("server.hcl");
        let text = format!(
            "storage \"raft\" {{\n  path = {data}\n  node_id = \"faults\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
             cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\n\
             cluster_addr = \"http://127.0.0.1:{cluster}\"\n{audit}",
            data = quoted_path(&data),
            cluster = port + 1,
            audit = audit_stanza(&dir.path().join("audit.log")),
        );
        std::fs::write(&config, text)?;

        let mut server = Self {
            child: None,
            storage: Storage::Persistent {
                unseal_key: String::new(),
            },
            addr: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            bao_bin: bao_bin.to_owned(),
            dir,
            starts: 0,
        };
        server.spawn_persistent()?;

        // The first leader election of integrated storage takes a few seconds.
        let deadline = Instant::now() + Duration::from_secs(60);
        let init = loop {
            match server.bao(&[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ]) {
                Ok(out) => break out,
                Err(error) if Instant::now() > deadline => {
                    return Err(error.context(server.log_tail()));
                }
                Err(_) => pause(Duration::from_millis(200)),
            }
        };
        let init: Value = serde_json::from_str(&init).context("parsing operator init")?;
        let key = init["unseal_keys_b64"][0]
            .as_str()
            .context("no unseal key")?;
        server.storage = Storage::Persistent {
            unseal_key: key.to_owned(),
        };
        server.root_token = init["root_token"]
            .as_str()
            .context("no root token")?
            .to_owned();

        server.unseal()?;
        Ok(server)
    }

    /// The OS process id of the running server.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("the server is not running")
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but never
    /// answered, as with a hung server or a partition that drops packets.
    pub fn stop(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP)
    }

    /// Lets a stopped server run again (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Kills the server with SIGKILL and reaps it.
    pub fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("the server is not running")?;
        child.kill().context("killing the server")?;
        child.wait().context("reaping the server")?;
        Ok(())
    }

    /// Starts a killed persistent server again on the same port and data, unseals it and
    /// waits until it is active.
    pub fn restart(&mut self) -> Result<()> {
        if matches!(self.storage, Storage::Dev) {
            bail!("a dev server keeps nothing to restart with");
        }
        if self.child.is_some() {
            bail!("the server is still running");
        }
        self.spawn_persistent()?;
        crate::wait_for(
            "the restarted server to answer",
            Duration::from_secs(30),
            || self.health().is_some(),
        )?;
        self.unseal()
    }

    /// Seals the server; it answers 503 until unsealed.
    pub fn seal(&self) -> Result<()> {
        self.bao(&["operator", "seal"])?;
        Ok(())
    }

    /// Unseals a persistent server and waits until it is active again.
    pub fn unseal(&self) -> Result<()> {
        let Storage::Persistent { unseal_key } = &self.storage else {
            bail!("only a persistent server is unsealed by the tests");
        };
        self.bao(&["operator", "unseal", unseal_key])?;
        self.wait_active(Duration::from_secs(60))
    }

    /// The status of `GET /v1/sys/health`: 200 active, 503 sealed; `None` without answer.
    pub fn health(&self) -> Option<u16> {
        let hostport = self.addr.trim_start_matches("http://");
        http_status(hostport, "/v1/sys/health")
    }

    /// Runs the CLI against this server as root; returns stdout.
    pub fn bao(&self, args: &[&str]) -> Result<String> {
        self.bao_as(&self.root_token, args)
    }

    /// Runs the CLI against this server as `token`.
    pub fn bao_as(&self, token: &str, args: &[&str]) -> Result<String> {
        let mut command = crate::bao_command(&self.bao_bin, self.dir.path(), args);
        command.env("BAO_ADDR", &self.addr).env("BAO_TOKEN", token);
        crate::run_bao(&mut command, args)
    }

    /// Runs the CLI with `-format=json` and parses its output.
    pub fn bao_json(&self, args: &[&str]) -> Result<Value> {
        let (first, rest) = args.split_first().context("no CLI command given")?;
        let mut full = vec![*first, "-format=json"];
        full.extend_from_slice(rest);
        let out = self.bao(&full)?;
        serde_json::from_str(&out).with_context(|| format!("parsing the output of bao {first}"))
    }

    /// Writes `policy` (HCL) as the policy `name`.
    pub fn policy(&self, name: &str, policy: &str) -> Result<()> {
        let file = self.dir.path().join(format!("{name}.hcl"));
        std::fs::write(&file, policy)?;
        self.bao(&["policy", "write", name, &file.display().to_string()])?;
        Ok(())
    }

    /// Enables an AppRole mount with a role `app` made with `role_options`, and returns
    /// its credentials.
    pub fn approle(&self, role_options: &[&str]) -> Result<AppRole> {
        let mount = unique("approle");
        self.bao(&["auth", "enable", &format!("-path={mount}"), "approle"])?;
        let role = format!("auth/{mount}/role/app");
        let mut write = vec!["write", role.as_str()];
        write.extend_from_slice(role_options);
        self.bao(&write)?;

        let role_id = self.bao_json(&["read", &format!("{role}/role-id")])?["data"]["role_id"]
            .as_str()
            .context("no role_id")?
            .to_owned();
        let secret_id =
            self.bao_json(&["write", "-f", &format!("{role}/secret-id")])?["data"]["secret_id"]
                .as_str()
                .context("no secret_id")?
                .to_owned();
        Ok(AppRole {
            mount,
            role_id,
            secret_id,
        })
    }

    /// Every request the server has audited so far, oldest first.
    pub fn audited(&self) -> Result<Vec<Audited>> {
        let log = self.dir.path().join("audit.log");
        let text = match std::fs::read_to_string(&log) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error).with_context(|| format!("reading {}", log.display())),
        };

        // The last line may be half written; every complete one must parse.
        let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
        let mut requests = Vec::new();
        for line in complete.lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).context("an audit line is not JSON")?;
            if entry["type"] == "request" {
                requests.push(Audited { entry });
            }
        }
        Ok(requests)
    }

    /// The last lines of the server's own log, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("server log:\n{}", lines[from..].join("\n"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("bao-{}.log", self.starts))
    }

    fn spawn_persistent(&mut self) -> Result<()> {
        let config = self.dir.path().join("server.hcl");
        self.spawn(&["server".to_owned(), format!("-config={}", config.display())])
    }

    fn spawn(&mut self, args: &[String]) -> Result<()> {
        self.starts += 1;
        let log = std::fs::File::create(self.log_path())?;
        let child = Command::new(&self.bao_bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a fault test's server")?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_active(&self, timeout: Duration) -> Result<()> {
        crate::wait_for("the server to be active", timeout, || {
            self.health() == Some(200)
        })
        .with_context(|| self.log_tail())
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.pid()?)?);
        nix::sys::signal::kill(pid, signal)
            .with_context(|| format!("sending {signal} to the server"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A stopped process dies of SIGKILL too; SIGCONT first keeps that obvious.
            let _ = self.signal(Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One request as the server's audit device recorded it.
#[derive(Debug, Clone)]
pub struct Audited {
    entry: Value,
}

impl Audited {
    /// The request path, without `/v1/` (`auth/approle/login`).
    pub fn path(&self) -> &str {
        self.entry["request"]["path"].as_str().unwrap_or_default()
    }

    /// The token the request carried, in clear (the device logs raw).
    pub fn client_token(&self) -> &str {
        self.entry["request"]["client_token"]
            .as_str()
            .or_else(|| self.entry["auth"]["client_token"].as_str())
            .unwrap_or_default()
    }

    /// The error Vault answered with, if any (`permission denied`).
    pub fn error(&self) -> Option<&str> {
        self.entry["error"].as_str().filter(|e| !e.is_empty())
    }

    /// A field of the request body (`lease_id`, `token`).
    pub fn data(&self, key: &str) -> Option<&str> {
        self.entry["request"]["data"][key].as_str()
    }
}

/// Counts audited requests to `path`.
pub fn count_path(requests: &[Audited], path: &str) -> usize {
    requests.iter().filter(|r| r.path() == path).count()
}

/// What the kernel reports about a process: memory and open file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessStats {
    /// Resident set size now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set size, KiB (`VmHWM`).
    pub peak_rss_kib: u64,
    /// Entries in `/proc/<pid>/fd`.
    pub open_fds: usize,
}

impl ProcessStats {
    /// Reads the figures of process `pid`.
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let kib = |field: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(field))
                .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
            let value = line[field.len()..].trim().trim_end_matches("kB").trim();
            value.parse().with_context(|| format!("parsing {line:?}"))
        };
        let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .with_context(|| format!("listing /proc/{pid}/fd"))?
            .count();
        Ok(Self {
            rss_kib: kib("VmRSS:")?,
            peak_rss_kib: kib("VmHWM:")?,
            open_fds,
        })
    }
}

/// An audit device writing every request and response to `log`, with tokens in clear so
/// that a test can tell whose request it was.
fn audit_stanza(log: &Path) -> String {
    format!(
        "audit \"file\" \"faults\" {{\n  options {{\n    file_path = {}\n    \
         log_raw = \"true\"\n  }}\n}}\n",
        quoted_path(log)
    )
}

/// The status line of a plain HTTP/1.0 GET, with a short timeout: a health probe that
/// needs no client library and cannot hang on a stopped server.
fn http_status(hostport: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let address = hostport.parse().ok()?;
    let timeout = Duration::from_secs(2);
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A path as an HCL (and JSON) string literal.
pub fn quoted_path(path: &Path) -> String {
    Value::from(path.display().to_string()).to_string()
}

/// The agent of a fault test: AppRole credentials in files, one file sink, the lease cache
/// and one TCP listener that uses the auto-auth token, against one [`Server`].
#[derive(Debug)]
pub struct AgentSetup {
    /// The test's directory, removed when dropped.
    pub dir: tempfile::TempDir,
    /// The file sink.
    pub sink: PathBuf,
    /// `http://127.0.0.1:<port>` of the listener.
    pub listener: String,
    /// The configuration file.
    pub config: PathBuf,
}

impl AgentSetup {
    /// Writes the credential files of `role` and a configuration for `server`; `method`
    /// adds lines to the method block (`max_backoff = "8s"`).
    pub fn new(server: &Server, role: &AppRole, name: &str, method: &[&str]) -> Result<Self> {
        let dir = crate::work_dir(name);
        let role_id = dir.path().join("role_id");
        let secret_id = dir.path().join("secret_id");
        std::fs::write(&role_id, &role.role_id)?;
        std::fs::write(&secret_id, &role.secret_id)?;
        let sink = dir.path().join("token");
        let port = crate::free_port();
        let listener = format!("http://127.0.0.1:{port}");

        // One retry, so that a client of the proxy is not held through Vault's twelve.
        let text = format!(
            "vault {{\n  address = {address}\n  retry {{\n    num_retries = 1\n  }}\n}}\n\
             auto_auth {{\n  method \"approle\" {{\n    mount_path = {mount}\n    {method}\n    \
             config = {{\n      role_id_file_path = {role_id}\n      \
             secret_id_file_path = {secret_id}\n      \
             remove_secret_id_file_after_reading = false\n    }}\n  }}\n  \
             sink \"file\" {{\n    config = {{ path = {sink} }}\n  }}\n}}\n\
             cache {{}}\n\
             api_proxy {{\n  use_auto_auth_token = true\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n",
            address = Value::from(server.addr.as_str()),
            mount = Value::from(format!("auth/{}", role.mount)),
            method = method.join("\n    "),
            role_id = quoted_path(&role_id),
            secret_id = quoted_path(&secret_id),
            sink = quoted_path(&sink),
        );
        let config = dir.path().join("agent.hcl");
        std::fs::write(&config, text)?;
        Ok(Self {
            dir,
            sink,
            listener,
            config,
        })
    }

    /// Starts the agent on the configuration and waits until its listener accepts.
    pub fn start(&self) -> Result<crate::Agent> {
        self.start_with_env(&[])
    }

    /// Like [`AgentSetup::start`], with extra environment variables.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Result<crate::Agent> {
        let mut agent = crate::Agent::start_with_env(&self.config, &[], env)?;
        agent.wait_for_log("listener ready", Duration::from_secs(30))?;
        Ok(agent)
    }

    /// The URL of `path` (`/v1/...`) on the agent's listener.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.listener)
    }

    /// The sink's content, or `None` while it does not exist.
    pub fn sink_token(&self) -> Result<Option<String>> {
        match std::fs::read_to_string(&self.sink) {
            Ok(text) => Ok(Some(text)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).context("reading the sink"),
        }
    }

    /// Waits until the sink holds a token other than `old`, and returns it.
    pub fn wait_token(&self, old: Option<&str>, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(token) = self.sink_token()?
                && !token.is_empty()
                && Some(token.as_str()) != old
            {
                return Ok(token);
            }
            if Instant::now() > deadline {
                bail!("the sink got no new token within {timeout:?}");
            }
            pause(Duration::from_millis(50));
        }
    }
}

/// Whether `text` is a whole token as OpenBao issues them: a type prefix (`s.`, `b.`,
/// `hvs.`...) and a body of letters and digits.
pub fn is_whole_token(text: &str) -> bool {
    let Some((prefix, body)) = text.split_once('.') else {
        return false;
    };
    let prefix_ok = !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_lowercase());
    let body_ok = body.len() >= 20 && body.chars().all(|c| c.is_ascii_alphanumeric());
    prefix_ok && body_ok
}

/// The remote ports of the TCP connections process `pid` holds open, for telling its
/// connections to Vault from those of its clients.
pub fn tcp_peer_ports(pid: u32) -> Result<Vec<u16>> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(fd?.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_owned());
        }
    }

    // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode.
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))?;
    let mut ports = Vec::new();
    for line in table.lines().skip(1) {
        let columns: Vec<&str> = line.split_whitespace().collect();
        let (Some(remote), Some(inode)) = (columns.get(2), columns.get(9)) else {
            continue;
        };
        let port = remote
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
        if let Some(port) = port.filter(|p| *p != 0 && inodes.contains(*inode)) {
            ports.push(port);
        }
    }
    Ok(ports)
}

impl Server {
    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_default()
    }
}
