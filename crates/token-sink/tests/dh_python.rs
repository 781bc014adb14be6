//! Our encrypted sink files, opened by an independent implementation of the format: a short
//! Python script on the `cryptography` package. A shared misreading of the format would pass a
//! Rust-only round trip; it cannot pass this.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: any failed step should fail the test"
)]

mod support;

use std::path::Path;
use std::process::Command;

use token_sink::{DEFAULT_MODE, DhEncryptor, FileSink};

#[test]
fn python_cryptography_opens_our_envelopes() {
    let python = match support::python_with_cryptography() {
        Ok(python) => python,
        Err(reason) => return support::skip_unless_allowed(&reason),
    };

    check(
        &python,
        false,
        "",
        &["hvs.CAESIJrawkey", "hvs.CAESIJsecond"],
    );
    check(
        &python,
        true,
        "my-aad",
        &["hvs.CAESIJderived", "s.c0fRVlegacy"],
    );
    check(
        &python,
        true,
        "",
        &[r#"{"token":"hvs.wrapping","ttl":300}"#],
    );
}

fn check(python: &Path, derive: bool, aad: &str, tokens: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let dh_path = dir.path().join("consumer.json");
    let sink_path = dir.path().join("token");
    let private_key = run(python, &["keygen", path_str(&dh_path)]);

    let dh = DhEncryptor::curve25519(&dh_path, derive, aad).unwrap();
    let file = FileSink::new(&sink_path, DEFAULT_MODE).unwrap();
    let derive_flag = if derive { "1" } else { "0" };
    let mut agent_keys = Vec::new();

    for token in tokens {
        file.write(dh.encrypt(token.as_bytes()).unwrap().as_bytes())
            .unwrap();

        let opened = run(
            python,
            &["open", &private_key, path_str(&sink_path), derive_flag, aad],
        );
        assert_eq!(opened, *token, "derive_key={derive} aad={aad:?}");

        let envelope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sink_path).unwrap()).unwrap();
        agent_keys.push(envelope["curve25519_public_key"].clone());
    }

    agent_keys.dedup();
    assert_eq!(agent_keys.len(), 1, "one agent key pair per sink");
}

fn run(python: &Path, args: &[&str]) -> String {
    let output = Command::new(python)
        .arg(support::script("dh_envelope.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "dh_envelope.py {}: {}",
        args[0],
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
