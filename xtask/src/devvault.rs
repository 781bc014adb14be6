//! A throwaway OpenBao dev server on a free loopback port, with a known root token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::proc::{self, Background};
use crate::tools;

/// The root token every dev server started here is given.
pub(crate) const ROOT_TOKEN: &str = "root";

/// A running dev server; stopped when dropped.
pub(crate) struct DevVault {
    pub(crate) addr: String,
    pub(crate) bin: PathBuf,
    pub(crate) log: PathBuf,
    _process: Background,
}

impl DevVault {
    /// Installs the server if needed, starts it, and waits until it reports healthy.
    pub(crate) fn start(root: &Path) -> Result<Self> {
        let bin = tools::vault_bin(root)?;
        let port = proc::free_port(true)?;
        let addr = format!("http://127.0.0.1:{port}");
        let log_dir = root.join("target").join("e2e");
        std::fs::create_dir_all(&log_dir)?;
        let log = log_dir.join(format!("dev-vault-{port}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;

        eprintln!("xtask: starting {} server -dev on {addr}", bin.display());
        let mut process = Background::spawn(
            "the dev server",
            Command::new(&bin)
                .args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .env_remove("VAULT_ADDR")
                .env_remove("BAO_ADDR")
                .stdout(log_file.try_clone()?)
                .stderr(log_file),
        )?;

        let health = format!("127.0.0.1:{port}");
        proc::wait_until("the dev server to answer", Duration::from_secs(60), || {
            process.check_alive()?;
            Ok(is_healthy(&health))
        })?;
        eprintln!("xtask: dev server ready at {addr} (log: {})", log.display());

        Ok(Self {
            addr,
            bin,
            log,
            _process: process,
        })
    }
}

impl DevVault {
    /// Runs the server's own CLI against it with the root token; returns stdout.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<String> {
        proc::output(
            Command::new(&self.bin)
                .args(args)
                .env("BAO_ADDR", &self.addr)
                .env("BAO_TOKEN", ROOT_TOKEN)
                .env_remove("BAO_AGENT_ADDR")
                .env_remove("VAULT_AGENT_ADDR"),
        )
    }

    /// Runs the CLI with `input` on stdin (for `policy write NAME -`).
    pub(crate) fn cli_stdin(&self, args: &[&str], input: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new(&self.bin)
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", ROOT_TOKEN)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting the bao CLI")?;
        child
            .stdin
            .take()
            .context("no stdin")?
            .write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            anyhow::bail!(
                "bao {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A plain HTTP/1.0 health probe, so xtask needs no HTTP client.
fn is_healthy(hostport: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(hostport) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /v1/sys/health HTTP/1.0\r\nHost: {hostport}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
}

/// `cargo xtask dev-vault`: start a server and keep it until interrupted.
pub(crate) fn serve_forever(root: &Path) -> Result<()> {
    let vault = DevVault::start(root)?;
    println!("export VAULT_ADDR={} VAULT_TOKEN={ROOT_TOKEN}", vault.addr);
    println!("export BAO_ADDR={} BAO_TOKEN={ROOT_TOKEN}", vault.addr);
    println!("# server binary: {}", vault.bin.display());
    eprintln!("xtask: press Ctrl-C to stop the server");
    loop {
        proc::sleep(Duration::from_secs(3600));
    }
}
