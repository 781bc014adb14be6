//! A throwaway PostgreSQL cluster from Debian's packages on a free loopback port, for the
//! database secrets engine tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc::{self, Background};

/// A running cluster; stopped and deleted when dropped.
pub(crate) struct Postgres {
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    /// Holds the data directory and `postgres.log`; removed on the next start.
    pub(crate) dir: PathBuf,
    _process: Background,
}

impl Postgres {
    /// Installs PostgreSQL with apt-get when missing, then starts a fresh cluster.
    pub(crate) fn start(root: &Path) -> Result<Self> {
        let bin = server_bin_dir()?;
        let port = proc::free_port(false)?;
        let dir = root.join("target").join("e2e").join(format!("pg-{port}"));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        let data = dir.join("data");
        let password = format!("pw{:x}", std::process::id() as u64 * 7919 + u64::from(port));
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password)?;

        // initdb refuses to run as root; CI runs as root, so hand the cluster to `postgres`.
        let as_root = is_root();
        if as_root {
            proc::run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&dir),
            )?;
        }

        eprintln!("xtask: creating a PostgreSQL cluster in {}", data.display());
        let mut initdb = command_as(as_root, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()));
        proc::output(&mut initdb).context("initdb")?;

        let log = std::fs::File::create(dir.join("postgres.log"))?;
        if as_root {
            proc::run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(dir.join("postgres.log")),
            )?;
        }
        let mut server = command_as(as_root, &bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut process = Background::spawn("PostgreSQL", &mut server)?;

        let ready = bin.join("pg_isready");
        proc::wait_until(
            "PostgreSQL to accept connections",
            Duration::from_secs(60),
            || {
                process.check_alive()?;
                Ok(Command::new(&ready)
                    .args(["-h", "127.0.0.1", "-p"])
                    .arg(port.to_string())
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false))
            },
        )?;
        eprintln!("xtask: PostgreSQL ready on 127.0.0.1:{port}");

        Ok(Self {
            port,
            user: "postgres".into(),
            password,
            dir,
            _process: process,
        })
    }
}

fn is_root() -> bool {
    proc::output(Command::new("id").arg("-u"))
        .map(|uid| uid.trim() == "0")
        .unwrap_or(false)
}

fn command_as(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// The directory holding `initdb` and `postgres`, installing Debian's package if needed.
fn server_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = find_server_bin_dir() {
        return Ok(dir);
    }
    if !is_root() {
        bail!(
            "PostgreSQL is not installed and installing it needs root: apt-get install postgresql"
        );
    }
    eprintln!("xtask: installing PostgreSQL with apt-get (Debian's postgresql package)");
    proc::run(
        Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    proc::run(
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "postgresql",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    find_server_bin_dir().context("apt-get installed postgresql but no initdb was found")
}

fn find_server_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop()
}
