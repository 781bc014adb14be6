//! `cargo xtask fuzz [target] [seconds]` and the bounded smoke runs of `cargo xtask ci`:
//! every cargo-fuzz target in `fuzz/` runs on stable (`-s none`, no sanitizer) from its
//! seeds, and any crash fails the task with the crashing input left in `fuzz/artifacts/`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{proc, step, tools};

/// The targets, each with the folders that seed it (relative to `fuzz/`).
const TARGETS: &[(&str, &[&str])] = &[
    (
        "config_parse",
        &[
            "seeds/config_parse",
            "../../shared/fixtures/openbao-configs",
        ],
    ),
    ("cache_rules", &["seeds/cache_rules"]),
    ("proxy_request", &["seeds/proxy_request"]),
];

/// Seconds per target in CI.
const SMOKE_SECONDS: u64 = 20;
/// Seconds per target for `cargo xtask fuzz` without an explicit duration.
const LONG_SECONDS: u64 = 600;

/// `cargo xtask fuzz`: longer runs, one target or all.
pub(crate) fn fuzz(root: &Path, args: &[String]) -> Result<()> {
    let only = args.first().map(String::as_str);
    let seconds = match args.get(1) {
        Some(s) => s
            .parse()
            .context("the second argument is a number of seconds")?,
        None => LONG_SECONDS,
    };
    if let Some(name) = only
        && !TARGETS.iter().any(|(t, _)| *t == name)
    {
        bail!("no fuzz target {name:?}; targets: {}", names());
    }
    run(root, only, seconds)
}

/// The bounded runs of `cargo xtask ci`.
pub(crate) fn smoke(root: &Path) -> Result<()> {
    run(root, None, SMOKE_SECONDS)
}

fn run(root: &Path, only: Option<&str>, seconds: u64) -> Result<()> {
    let cargo_fuzz = tools::cargo_tool(root, "cargo-fuzz", "cargo-fuzz")?;
    let dir = root.join("fuzz");
    for (target, seeds) in TARGETS.iter().filter(|(t, _)| only.is_none_or(|o| o == *t)) {
        step(&format!("fuzzing {target} for {seconds} s"));
        let corpus = dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(dir.join("artifacts").join(target))?;
        // Built on its own first, so that a target that no longer compiles is not reported
        // as a crash.
        proc::run(
            Command::new(&cargo_fuzz)
                .current_dir(&dir)
                .args(["fuzz", "build", "-s", "none", target]),
        )
        .with_context(|| format!("fuzz target {target} does not build"))?;

        let mut cmd = Command::new(&cargo_fuzz);
        cmd.current_dir(&dir)
            .args(["fuzz", "run", "-s", "none", target])
            .arg(&corpus)
            .args(seeds.iter().filter(|s| dir.join(s).is_dir()))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1");
        proc::run(&mut cmd).with_context(|| {
            format!("fuzz target {target} found a crash; the input is in fuzz/artifacts/{target}/")
        })?;
    }
    Ok(())
}

fn names() -> String {
    TARGETS
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join(", ")
}
