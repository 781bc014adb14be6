//! Project automation, run as `cargo xtask <task>`.
//!
//! Every task starts from the workspace root and installs what it needs that the machine
//! lacks (the OpenBao dev server and hvac into a venv under `target/tools`, PostgreSQL
//! through apt-get, cargo-deny and cargo-fuzz through cargo), saying what it is doing.
//! Nothing here is shipped: it is the glue between cargo, the real server and the tests.

#![allow(clippy::print_stdout, reason = "xtask talks to a terminal")]

mod bench;
mod ci;
mod demo;
mod devvault;
mod fuzz;
mod http;
mod postgres;
mod proc;
mod tidy;
mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  bench       ours and `bao agent` side by side (BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_ENTRIES)
  demo        the agent's main job against a throwaway OpenBao dev server
  ci          everything CI runs: fmt, clippy, unit tests, cargo-deny, per-crate checks, tidy, e2e
  e2e         start the dev server and PostgreSQL, build the agent, run the end-to-end tests
  faults      the fault cases (paused, killed, sealed servers; load) at full length
  fuzz        every fuzz target for 10 minutes, or `fuzz <target> [seconds]`
  dev-vault   start an OpenBao dev server and keep it running until Ctrl-C
  tidy        repository hygiene checks (crate docs, layering, no todo!/dbg!)
";

fn main() {
    if let Err(error) = run() {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let root = workspace_root()?;
    std::env::set_current_dir(&root).context("entering the workspace root")?;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprint!("{USAGE}");
        bail!("no task given");
    };
    let rest = &args[1..];

    match task.as_str() {
        "ci" => ci::ci(&root),
        "demo" => demo::demo(&root),
        "bench" => bench::bench(&root),
        "e2e" => ci::e2e(&root, rest),
        "faults" => ci::faults(&root, rest),
        "fuzz" => fuzz::fuzz(&root, rest),
        "dev-vault" => devvault::serve_forever(&root),
        "tidy" => tidy::tidy(&root),
        "help" | "-h" | "--help" => {
            eprint!("{USAGE}");
            Ok(())
        }
        other => {
            eprint!("{USAGE}");
            bail!("unknown task {other:?}")
        }
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest =
        std::env::var("CARGO_MANIFEST_DIR").context("run xtask through `cargo xtask`")?;
    let root = Path::new(&manifest)
        .parent()
        .context("xtask has no parent directory")?;
    Ok(root.to_path_buf())
}

/// Prints a step heading, so a long CI log reads as a list of steps.
fn step(what: &str) {
    eprintln!("\n==> {what}");
}
