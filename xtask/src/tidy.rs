//! Repository hygiene that the compiler does not check: crate docs, the layering between
//! our crates, workspace lints everywhere, and no leftover debugging macros.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::proc;

/// Which of our crates each crate may depend on (normal dependencies). The layering of
/// ARCHITECTURE.md, as data.
const LAYERS: &[(&str, &[&str])] = &[
    ("vault-client", &[]),
    ("agent-config", &[]),
    ("token-sink", &[]),
    ("lease-cache", &[]),
    ("auto-auth", &["vault-client"]),
    ("api-proxy", &["vault-client", "lease-cache"]),
    (
        "agent",
        &[
            "vault-client",
            "agent-config",
            "auto-auth",
            "token-sink",
            "lease-cache",
            "api-proxy",
        ],
    ),
    ("xtask", &[]),
    ("e2e", &[]),
];

pub(crate) fn tidy(root: &Path) -> Result<()> {
    let packages = metadata(root)?;
    let mut problems = Vec::new();

    check_layers(&packages, &mut problems);
    for package in &packages {
        check_crate_docs(package, &mut problems);
        check_lints_table(package, &mut problems)?;
    }
    check_macros(root, &mut problems)?;

    if problems.is_empty() {
        eprintln!("xtask: tidy: all checks passed");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

/// Names of the workspace's packages.
pub(crate) fn workspace_packages(root: &Path) -> Result<Vec<String>> {
    Ok(metadata(root)?.into_iter().map(|p| p.name).collect())
}

struct Package {
    name: String,
    manifest: PathBuf,
    roots: Vec<PathBuf>,
    internal_deps: Vec<String>,
}

fn metadata(root: &Path) -> Result<Vec<Package>> {
    let out = proc::output(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
            .current_dir(root),
    )?;
    let json: Value = serde_json::from_str(&out).context("parsing cargo metadata")?;
    let packages = json["packages"]
        .as_array()
        .context("cargo metadata has no packages")?;
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();

    let mut result = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let roots = p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| {
                let kinds = t["kind"].as_array().cloned().unwrap_or_default();
                kinds.iter().any(|k| k == "lib" || k == "bin")
            })
            .filter_map(|t| t["src_path"].as_str().map(PathBuf::from))
            .collect();
        let internal_deps = p["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| names.contains(d))
            .map(str::to_owned)
            .collect();
        result.push(Package {
            name,
            manifest,
            roots,
            internal_deps,
        });
    }
    Ok(result)
}

fn check_layers(packages: &[Package], problems: &mut Vec<String>) {
    let layers: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    for package in packages {
        let Some(allowed) = layers.get(package.name.as_str()) else {
            problems.push(format!(
                "package {} has no entry in the layering table (xtask/src/tidy.rs)",
                package.name
            ));
            continue;
        };
        for dep in &package.internal_deps {
            if !allowed.contains(&dep.as_str()) {
                problems.push(format!(
                    "{} depends on {dep}, which the layering does not allow",
                    package.name
                ));
            }
        }
    }
}

fn check_crate_docs(package: &Package, problems: &mut Vec<String>) {
    for root in &package.roots {
        let text = std::fs::read_to_string(root).unwrap_or_default();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.starts_with("//!") {
            problems.push(format!(
                "{} does not start with a //! crate doc",
                root.display()
            ));
        }
    }
}

fn check_lints_table(package: &Package, problems: &mut Vec<String>) -> Result<()> {
    let manifest = std::fs::read_to_string(&package.manifest)
        .with_context(|| format!("reading {}", package.manifest.display()))?;
    let compact: String = manifest.split_whitespace().collect();
    if !compact.contains("[lints]workspace=true") {
        problems.push(format!(
            "{} lacks `[lints] workspace = true`",
            package.manifest.display()
        ));
    }
    Ok(())
}

fn check_macros(root: &Path, problems: &mut Vec<String>) -> Result<()> {
    // Spelled in pieces so this file does not trip its own check.
    let banned = [
        concat!("todo", "!("),
        concat!("dbg", "!("),
        concat!("unimplemented", "!("),
    ];
    for dir in ["crates", "bins", "tests", "xtask", "fuzz"] {
        let mut files = Vec::new();
        collect_rust_files(&root.join(dir), &mut files)?;
        for file in files {
            let text = std::fs::read_to_string(&file)?;
            for (number, line) in text.lines().enumerate() {
                if let Some(found) = banned.iter().find(|b| line.contains(*b)) {
                    problems.push(format!(
                        "{}:{}: `{}` must not reach main",
                        file.display(),
                        number + 1,
                        found.trim_end_matches('(')
                    ));
                }
            }
        }
    }
    Ok(())
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}
