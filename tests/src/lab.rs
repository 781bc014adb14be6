//! Helpers of the caching proxy tests: an agent logged in with AppRole, writing a sink and
//! serving the cached API on a TCP listener and a Unix socket; the real `bao` CLI and plain
//! HTTP (reqwest) pointed at it; the database secrets engine against the real PostgreSQL;
//! and `psql` to prove that credentials log in.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::{Agent, AppRole, DevVault, Postgres, unique};

/// An address nothing listens on: the CLI's `BAO_ADDR` in the lab, so that a request that
/// did not go through the agent fails loudly.
pub const DEAD_ADDR: &str = "http://127.0.0.1:1";

/// How long the agent may take to log in and write its sink.
const STARTUP: Duration = Duration::from_secs(20);

/// A running agent with AppRole auto-auth, a file sink, `cache { use_auto_auth_token = true }`,
/// a TCP listener and a Unix socket listener. The agent is killed when dropped.
#[derive(Debug)]
pub struct Lab {
    /// The test's directory: config, logs, sink, socket, the CLI's `HOME`.
    pub dir: tempfile::TempDir,
    /// The AppRole the agent logs in with.
    pub role: AppRole,
    /// The running agent.
    pub agent: Agent,
    /// `http://127.0.0.1:<port>` of the TCP listener.
    pub addr: String,
    /// The Unix socket listener's path.
    pub socket: PathBuf,
    /// The auto-auth token, as the sink holds it.
    pub token: String,
}

impl Lab {
    /// Starts a lab named `name`.
    pub fn start(vault: &DevVault, name: &str) -> Result<Self> {
        Self::start_with(vault, name, "")
    }

    /// Starts a lab whose configuration also holds `extra` (more listeners, say).
    pub fn start_with(vault: &DevVault, name: &str, extra: &str) -> Result<Self> {
        let dir = crate::work_dir(name);
        let policy = lab_policy(vault)?;
        let role = vault.approle(&[&format!("token_policies={policy}"), "token_ttl=1h"])?;
        let role_id = dir.path().join("role_id");
        let secret_id = dir.path().join("secret_id");
        std::fs::write(&role_id, &role.role_id)?;
        std::fs::write(&secret_id, &role.secret_id)?;

        let addr = format!("http://127.0.0.1:{}", crate::free_port());
        let socket = dir.path().join("agent.sock");
        let sink = dir.path().join("token");
        let mut config = String::new();
        let _ = write!(
            config,
            r#"vault {{
  address = {vault_addr}
}}
auto_auth {{
  method "approle" {{
    mount_path = {mount}
    config = {{
      role_id_file_path = {role_id}
      secret_id_file_path = {secret_id}
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{
    config = {{ path = {sink} }}
  }}
}}
cache {{
  use_auto_auth_token = true
}}
listener "tcp" {{
  address = {tcp}
  tls_disable = true
}}
listener "unix" {{
  address = {socket}
  tls_disable = true
}}
{extra}"#,
            vault_addr = quoted(&vault.addr),
            mount = quoted(&format!("auth/{}", role.mount)),
            role_id = quoted_path(&role_id),
            secret_id = quoted_path(&secret_id),
            sink = quoted_path(&sink),
            tcp = quoted(addr.trim_start_matches("http://")),
            socket = quoted_path(&socket),
        );
        let config_path = dir.path().join("agent.hcl");
        std::fs::write(&config_path, config)?;

        let mut agent = Agent::start(&config_path, &["-log-level=debug"])?;
        agent.wait_for_log("token written", STARTUP)?;
        let token = std::fs::read_to_string(&sink).context("reading the sink")?;
        Ok(Self {
            dir,
            role,
            agent,
            addr,
            socket,
            token,
        })
    }

    /// A plain HTTP client of the TCP listener.
    pub fn http(&self) -> Http {
        Http::tcp(&self.addr)
    }

    /// Runs the real CLI through the agent (`BAO_ADDR` points at a dead port), sending
    /// `token` or, without one, no token at all so that the agent uses its own.
    pub fn cli(&self, via: Via, token: Option<&str>, args: &[&str]) -> Result<String> {
        let bao = &crate::dev_vault().context("no dev server")?.bao_bin;
        let mut command = crate::bao_command(bao, self.dir.path(), args);
        command.env("BAO_ADDR", DEAD_ADDR);
        match via {
            Via::Tcp => command.env("VAULT_AGENT_ADDR", &self.addr),
            Via::Unix => command.env(
                "BAO_AGENT_ADDR",
                format!("unix://{}", self.socket.display()),
            ),
        };
        if let Some(token) = token {
            command.env("BAO_TOKEN", token);
        }
        crate::run_bao(&mut command, args).context("the CLI through the agent")
    }

    /// [`Lab::cli`] with `-format=json` after the first `words` arguments (the command
    /// words, as in `token create`), parsed.
    pub fn cli_json(
        &self,
        via: Via,
        token: Option<&str>,
        words: usize,
        args: &[&str],
    ) -> Result<Value> {
        let mut full: Vec<&str> = args[..words].to_vec();
        full.push("-format=json");
        full.extend_from_slice(&args[words..]);
        let out = self.cli(via, token, &full)?;
        serde_json::from_str(&out).with_context(|| format!("parsing bao {}", args.join(" ")))
    }
}

/// Which listener the CLI reaches the agent by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `VAULT_AGENT_ADDR=http://127.0.0.1:<port>`.
    Tcp,
    /// `BAO_AGENT_ADDR=unix://<socket>`.
    Unix,
}

/// Writes a policy of a unique name letting its tokens do anything but the root-only calls:
/// what the lab's agent may do is not under test, what it caches is.
fn lab_policy(vault: &DevVault) -> Result<String> {
    let name = unique("lab");
    let rules =
        r#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#;
    vault.bao(&[
        "write",
        &format!("sys/policies/acl/{name}"),
        &format!("policy={rules}"),
    ])?;
    Ok(name)
}

/// An HCL (and JSON) string literal.
pub fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

/// A path as an HCL string literal.
pub fn quoted_path(path: &Path) -> String {
    quoted(&path.display().to_string())
}

/// A blocking HTTP client of one agent listener (or of Vault itself), for what the CLI
/// hides: status codes, `X-Cache`, `Age`, exact queries and verbs.
#[derive(Debug)]
pub struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    /// A client of `base` (`http://127.0.0.1:<port>`).
    pub fn tcp(base: &str) -> Self {
        Self::build(reqwest::Client::builder(), base)
    }

    /// A client of the Unix socket at `path`.
    pub fn unix(path: &Path) -> Self {
        Self::build(reqwest::Client::builder().unix_socket(path), "http://agent")
    }

    fn build(builder: reqwest::ClientBuilder, base: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test's HTTP client");
        let client = builder
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        Self {
            runtime,
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends `call` and reads the whole answer.
    pub fn send(&self, call: &Call) -> Result<Answer> {
        let method = reqwest::Method::from_bytes(call.method.as_bytes())?;
        let url = format!("{}{}", self.base, call.path);
        let mut request = self.client.request(method, &url).body(call.body.clone());
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .with_context(|| format!("{} {}", call.method, call.path))?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.context("reading the answer")?;
            Ok(Answer {
                status,
                headers,
                body,
            })
        })
    }
}

/// One HTTP request, built up.
#[derive(Debug, Clone)]
pub struct Call {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Call {
    /// `method path` (the path with its query, `/v1/...`), no headers, no body.
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `GET`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// A `POST` with `body` as JSON.
    pub fn post(path: &str, body: &Value) -> Self {
        Self::new("POST", path).body(body.to_string().into_bytes())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends `X-Vault-Token: token`.
    pub fn token(self, token: &str) -> Self {
        self.header("X-Vault-Token", token)
    }

    /// Sets the body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text.
    pub body: String,
}

impl Answer {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `X-Cache`, or `-` when absent.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("-")
    }

    /// The body as JSON; fails with the body when it is not.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("the answer ({}) is not JSON: {}", self.status, self.body))
    }

    /// Fails unless the status is `status`, showing the answer.
    pub fn expect_status(self, status: u16) -> Result<Self> {
        if self.status != status {
            bail!("expected {status}, got {}: {}", self.status, self.body);
        }
        Ok(self)
    }
}

/// The database secrets engine at a unique mount, with a connection to the test's
/// PostgreSQL and one role, `app`, whose credentials are LOGIN roles valid until their
/// lease ends.
#[derive(Debug, Clone)]
pub struct Database {
    /// The engine's mount path.
    pub mount: String,
}

impl Database {
    /// Enables and configures the engine; credentials last `default_ttl` (Vault duration).
    pub fn enable(vault: &DevVault, pg: &Postgres, default_ttl: &str) -> Result<Self> {
        Self::enable_at(vault, pg, default_ttl, &unique("db"), None)
    }

    /// Like [`Database::enable`], at `mount` in `namespace` (the root one when `None`).
    pub fn enable_at(
        vault: &DevVault,
        pg: &Postgres,
        default_ttl: &str,
        mount: &str,
        namespace: Option<&str>,
    ) -> Result<Self> {
        // The namespace flag goes right after the command words.
        let flag = namespace.map(|ns| format!("-namespace={ns}"));
        let bao = |words: &[&str], args: &[&str]| {
            let mut full = words.to_vec();
            full.extend(flag.as_deref());
            full.extend_from_slice(args);
            vault.bao(&full)
        };

        bao(
            &["secrets", "enable"],
            &[&format!("-path={mount}"), "database"],
        )?;
        let url = format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/postgres?sslmode=disable",
            pg.host, pg.port
        );
        bao(
            &["write"],
            &[
                &format!("{mount}/config/pg"),
                "plugin_name=postgresql-database-plugin",
                &format!("connection_url={url}"),
                &format!("username={}", pg.user),
                &format!("password={}", pg.password),
                "allowed_roles=app",
            ],
        )?;
        let creation = r#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"#;
        bao(
            &["write"],
            &[
                &format!("{mount}/roles/app"),
                "db_name=pg",
                &format!("creation_statements={creation}"),
                &format!("default_ttl={default_ttl}"),
                "max_ttl=10m",
            ],
        )?;
        Ok(Self {
            mount: mount.to_owned(),
        })
    }

    /// `<mount>/creds/app`.
    pub fn creds_path(&self) -> String {
        format!("{}/creds/app", self.mount)
    }
}

/// Credentials the database engine handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The lease they live by.
    pub lease_id: String,
    /// The PostgreSQL role name.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl Credentials {
    /// From a secret response (`bao read -format=json`, or the raw API answer).
    pub fn from_secret(secret: &Value) -> Result<Self> {
        let field = |value: &Value, what: &str| {
            value
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .with_context(|| format!("no {what} in {secret}"))
        };
        Ok(Self {
            lease_id: field(&secret["lease_id"], "lease_id")?,
            username: field(&secret["data"]["username"], "username")?,
            password: field(&secret["data"]["password"], "password")?,
        })
    }

    /// Logs in to PostgreSQL with these credentials and runs `select 1`; the error holds
    /// what psql said.
    pub fn log_in(&self, pg: &Postgres) -> Result<()> {
        let out = Command::new(psql()?)
            .args(["-h", &pg.host, "-p", &pg.port.to_string()])
            .args(["-U", &self.username, "-d", "postgres", "-tAc", "select 1"])
            .env_clear()
            .env("PGPASSWORD", &self.password)
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        let said = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || said.trim() != "1" {
            bail!(
                "psql as {} failed: {}",
                self.username,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

/// The `psql` client: the newest server install's, or the one on `PATH`.
pub fn psql() -> Result<PathBuf> {
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin/psql")))
        .filter(|psql| psql.is_file())
        .collect();
    installed.sort();
    if let Some(psql) = installed.pop() {
        return Ok(psql);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("psql"))
        .find(|psql| psql.is_file());
    on_path.context("psql is not installed")
}
