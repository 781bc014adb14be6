//! `cargo xtask ci` and `cargo xtask e2e`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::devvault::{DevVault, ROOT_TOKEN};
use crate::postgres::Postgres;
use crate::{proc, step, tidy, tools};

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

    e2e(root, &[])?;

    step("ci passed");
    Ok(())
}

/// Starts the real servers, builds the agent and runs the end-to-end test crate against
/// them. Extra arguments go to the test binary (a name filter, `--nocapture`).
pub(crate) fn e2e(root: &Path, extra: &[String]) -> Result<()> {
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
        .env("E2E_WORK_DIR", root.join("target").join("e2e"));
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
