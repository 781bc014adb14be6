//! `cargo xtask ci` and `cargo xtask e2e`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::devvault::{DevVault, ROOT_TOKEN};
use crate::postgres::Postgres;
use crate::{fuzz, proc, step, tidy, tools};

/// Every check CI runs, in order, stopping at the first failure.
pub(crate) fn ci(root: &Path) -> Result<()> {
    step("cargo fmt --check");
    proc::run(cargo().args(["fmt", "--all", "--", "--check"]))?;

    step("cargo clippy (warnings are errors)");
    proc::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;

    step("unit tests");
    let python = tools::python(root)?;
    proc::run(
        cargo()
            .args(["test", "--workspace", "--locked", "--exclude", "e2e"])
            .env("E2E_PYTHON", &python),
    )?;

    step("cargo deny check licenses bans sources");
    let deny = tools::cargo_tool(root, "cargo-deny", "cargo-deny")?;
    proc::run(Command::new(&deny).args([
        "deny",
        "--log-level",
        "error",
        "check",
        "licenses",
        "bans",
        "sources",
    ]))?;

    step("each crate checked on its own");
    for package in tidy::workspace_packages(root)? {
        proc::run(cargo().args(["check", "--quiet", "--locked", "-p", &package]))?;
    }

    step("tidy");
    tidy::tidy(root)?;

    fuzz::smoke(root)?;

    e2e(root, &[])?;

    step("ci passed");
    Ok(())
}

/// Starts the real servers, builds the agent and runs the end-to-end test crate against
/// them. Extra arguments go to the test binary (a name filter, `--nocapture`).
///
/// The suite includes the fault cases (`faults::`) at their short durations.
pub(crate) fn e2e(root: &Path, extra: &[String]) -> Result<()> {
    run_e2e(root, extra, &[])
}

/// `cargo xtask faults [filter] [test binary args]`: the fault cases at the durations of
/// the issue (`E2E_FAULTS=long`), all at once since they mostly wait. They break servers
/// of their own; the shared ones are started as for `e2e` because the harness finds the
/// `bao` binary through them.
pub(crate) fn faults(root: &Path, extra: &[String]) -> Result<()> {
    let (filter, rest) = match extra.split_first() {
        Some((first, rest)) if !first.starts_with('-') => (first.as_str(), rest),
        _ => ("", extra),
    };
    let filter = format!("faults::{}", filter.trim_start_matches("faults::"));
    let mut args = vec![filter, "--test-threads=8".to_owned()];
    args.extend(rest.iter().cloned());
    run_e2e(root, &args, &[("E2E_FAULTS", "long")])
}

fn run_e2e(root: &Path, extra: &[String], env: &[(&str, &str)]) -> Result<()> {
    step("building the agent");
    proc::run(cargo().args(["build", "--locked", "-p", "agent"]))?;
    let agent = root.join("target").join("debug").join("vault-agent");

    step("starting the real servers");
    let python = tools::python(root)?;
    let vault = DevVault::start(root)?;
    let pg = Postgres::start(root)?;

    step("end-to-end tests");
    let mut test = cargo();
    test.args(["test", "--locked", "-p", "e2e", "--"])
        .args(extra)
        .env("E2E_REQUIRED", "1")
        .env("E2E_VAULT_ADDR", &vault.addr)
        .env("E2E_VAULT_TOKEN", ROOT_TOKEN)
        .env("E2E_BAO_BIN", &vault.bin)
        .env("E2E_AGENT_BIN", &agent)
        .env("E2E_PYTHON", &python)
        .env("E2E_PG_HOST", "127.0.0.1")
        .env("E2E_PG_PORT", pg.port.to_string())
        .env("E2E_PG_USER", &pg.user)
        .env("E2E_PG_PASSWORD", &pg.password)
        .env("E2E_WORK_DIR", root.join("target").join("e2e"))
        .envs(env.iter().copied());
    for var in [
        "VAULT_ADDR",
        "BAO_ADDR",
        "VAULT_TOKEN",
        "BAO_TOKEN",
        "VAULT_AGENT_ADDR",
        "BAO_AGENT_ADDR",
    ] {
        test.env_remove(var);
    }
    proc::run(&mut test).with_context(|| {
        format!(
            "end-to-end tests failed (logs: {}, {})",
            vault.log.display(),
            pg.dir.join("postgres.log").display()
        )
    })?;
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}
