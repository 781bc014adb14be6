//! Small helpers around `std::process`: run a command and fail with its output, and a
//! guard that stops a background process when it goes out of scope.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Runs `cmd` with inherited output and fails when it exits unsuccessfully.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed with {status}");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; on failure the error carries stderr.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first `program` on PATH, if any.
pub(crate) fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn describe(cmd: &Command) -> String {
    let mut shown = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// A background process that is stopped (SIGTERM, then SIGKILL) when dropped.
pub(crate) struct Background {
    name: String,
    child: Child,
}

impl Background {
    pub(crate) fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// The OS process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Fails if the process has already exited, naming it.
    pub(crate) fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early with {status}", self.name);
        }
        Ok(())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it returns true or `timeout` passes.
pub(crate) fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(100));
    }
}

/// A free loopback TCP port; with `pair`, the next port is free as well (the dev server
/// binds its cluster listener on port + 1).
pub(crate) fn free_port(pair: bool) -> Result<u16> {
    for _ in 0..50 {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
        let port = listener.local_addr()?.port();
        if !pair || port == u16::MAX {
            return Ok(port);
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port found")
}

#[allow(
    clippy::disallowed_methods,
    reason = "xtask is synchronous glue; no async runtime here"
)]
pub(crate) fn sleep(duration: Duration) {
    std::thread::sleep(duration);
}
