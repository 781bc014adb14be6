//! hvac, the Python client, as a second real client of the caching proxy: with no token of
//! its own (the agent uses its auto-auth token) and with a token it was handed.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::process::{Command, Stdio};

use e2e::lab::{Credentials, Database, Lab};
use serde_json::Value;

/// Talks to the agent at argv[1] with no token, then with the token it created; reads the
/// database credentials at mount argv[2] each way twice; prints what it saw as JSON.
const SCRIPT: &str = r#"
import json, sys
import hvac

agent, mount = sys.argv[1], sys.argv[2]

def creds(client):
    secret = client.secrets.database.generate_credentials(name="app", mount_point=mount)
    return {"lease_id": secret["lease_id"], "data": secret["data"]}

anonymous = hvac.Client(url=agent)
# hvac's is_authenticated() says no before asking when it holds no token; ask anyway.
itself = anonymous.auth.token.lookup_self()["data"]
seen = {"self_policies": itself["policies"], "self_shows_id": "id" in itself}
seen["tokens"] = [
    anonymous.auth.token.create(ttl="10m")["auth"]["client_token"] for _ in range(2)
]
seen["agent_creds"] = [creds(anonymous) for _ in range(2)]

holder = hvac.Client(url=agent, token=seen["tokens"][0])
seen["holder_authenticated"] = holder.is_authenticated()
seen["holder_creds"] = [creds(holder) for _ in range(2)]
print(json.dumps(seen))
"#;

#[test]
fn hvac_gets_cached_tokens_and_credentials_with_and_without_a_token() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let db = Database::enable(vault, pg, "5m").unwrap();
    let lab = Lab::start(vault, "hvac").unwrap();

    let script = lab.dir.path().join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    // A clean environment: hvac would otherwise take a token from VAULT_TOKEN or ~/.vault-token.
    let out = Command::new(e2e::python())
        .arg(&script)
        .args([lab.addr.as_str(), db.mount.as_str()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", lab.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();

    let policies = seen["self_policies"].as_array().unwrap();
    assert!(policies.len() > 1, "not the agent's token: {policies:?}");
    assert_eq!(
        seen["self_shows_id"], false,
        "the agent's token leaked to a local caller"
    );
    assert_eq!(
        seen["tokens"][0], seen["tokens"][1],
        "token create was not cached"
    );
    let agent_creds = pair(&seen["agent_creds"]);
    assert_eq!(
        agent_creds[0], agent_creds[1],
        "credentials were not cached"
    );
    assert_eq!(seen["holder_authenticated"], true);
    let holder_creds = pair(&seen["holder_creds"]);
    assert_eq!(holder_creds[0], holder_creds[1]);
    assert_ne!(holder_creds[0], agent_creds[0], "an answer crossed tokens");
    agent_creds[0].log_in(pg).unwrap();
    holder_creds[0].log_in(pg).unwrap();

    let token = seen["tokens"][0].as_str().unwrap();
    lab.agent.assert_no_secrets(&[
        &lab.token,
        token,
        &agent_creds[0].password,
        &holder_creds[0].password,
        &lab.role.role_id,
        &lab.role.secret_id,
    ]);
}

fn pair(reads: &Value) -> Vec<Credentials> {
    reads
        .as_array()
        .unwrap()
        .iter()
        .map(|read| Credentials::from_secret(read).unwrap())
        .collect()
}
