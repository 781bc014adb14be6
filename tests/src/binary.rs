//! Running the agent binary to completion, for the tests of its command line and
//! configuration: `-check` runs, refused configs, bad flags. A running agent is
//! [`crate::Agent`]; this is for a command that is expected to end by itself.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{agent_bin, pause, workspace_root};

/// How long a command that should end by itself may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished run of the agent left behind.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Finished {
    /// stdout then stderr, for assertions that do not care which stream a line took.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `vault-agent args...` with a clean environment plus `env`, and waits (bounded) for it
/// to end by itself.
pub fn run_agent(args: &[&str], env: &[(&str, &str)]) -> Result<Finished> {
    let mut child = Command::new(agent_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", agent_bin().display()))?;

    // Drained on threads so that a chatty child never blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "vault-agent {} did not end within {RUN_TIMEOUT:?}",
                args.join(" ")
            );
        }
        pause(Duration::from_millis(20));
    };

    Ok(Finished {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

/// The reference configs with the reference agent's verdicts (`expected.tsv`), kept next to
/// the workspace in `../shared/fixtures/openbao-configs`.
pub fn openbao_fixtures() -> PathBuf {
    workspace_root().join("../shared/fixtures/openbao-configs")
}
