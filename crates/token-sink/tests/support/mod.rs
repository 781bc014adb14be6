//! Finding the Python that the cross-checks run.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Python with the `cryptography` package: `E2E_PYTHON` if set, else the virtualenv that
/// `cargo xtask` installs at `target/tools/venv`; the reason when there is none.
pub(crate) fn python_with_cryptography() -> Result<PathBuf, String> {
    let python = match env::var_os("E2E_PYTHON") {
        Some(python) => PathBuf::from(python),
        None => workspace_root().join("target/tools/venv/bin/python3"),
    };

    let probe = Command::new(&python)
        .args(["-c", "import cryptography"])
        .output();
    match probe {
        Ok(output) if output.status.success() => Ok(python),
        Ok(_) => Err(format!("{} cannot import cryptography", python.display())),
        Err(error) => Err(format!("cannot run {}: {error}", python.display())),
    }
}

/// Under CI a missing tool is a failure; on a developer machine the test says why it skipped.
pub(crate) fn skip_unless_allowed(reason: &str) {
    if env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{reason} (CI=true, so this is a failure, not a skip)");
    }
    eprintln!("skipped: {reason}; run `cargo xtask ci` or `cargo xtask e2e`, which install it");
}

pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
