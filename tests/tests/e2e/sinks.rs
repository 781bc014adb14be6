//! Token sinks against the real dev server: the file's mode as configured (case B01) and
//! kept across re-authentication, response-wrapped sinks next to a proxy that needs the raw
//! token (case B06), Diffie-Hellman encrypted sinks opened by Python `cryptography`, sink
//! settings the agent cannot use, and the sink file compared with the reference agent's.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::auth::{
    AgentConfig, Scene, first_token, is_running, lookup_self, mode, next_token, quoted_path,
    run_reference_agent,
};
use e2e::{Agent, DevVault};
use serde_json::{Value, json};

const FIRST_TOKEN: Duration = Duration::from_secs(15);

/// How a sink's `mode` is written in the configuration.
enum Written {
    Hcl(&'static str),
    Json(Value),
}

/// B01: one parsing rule. An octal literal or an octal string gives that mode; a JSON
/// number is decimal (416 is 0640); a bare HCL `640`, which Vault reads as decimal and
/// turns into 01200, and a mode above 0777 stop the agent with an error naming the field.
#[test]
fn b01_sink_mode_is_read_one_documented_way() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "b01-modes", &["token_ttl=5m"]).unwrap();

    let check = |index: usize, written: Written, expected: Result<u32, &str>| {
        let sink = scene.path(&format!("token-{index}"));
        let config = match &written {
            Written::Hcl(mode) => {
                let path = scene.path(&format!("agent-{index}.hcl"));
                AgentConfig::approle(vault, &scene.role, &scene.files)
                    .sink(&format!(
                        "config = {{\n      path = {}\n      mode = {mode}\n    }}",
                        quoted_path(&sink)
                    ))
                    .top("exit_after_auth = true")
                    .write(&path)
                    .unwrap()
            }
            Written::Json(mode) => {
                let path = scene.path(&format!("agent-{index}.json"));
                std::fs::write(&path, json_config(vault, &scene, &sink, mode)).unwrap();
                path
            }
        };
        let shown = match &written {
            Written::Hcl(mode) => format!("HCL {mode}"),
            Written::Json(mode) => format!("JSON {mode}"),
        };
        let mut agent = Agent::start(&config, &[]).unwrap();

        let status = agent.wait_exit(Duration::from_secs(15)).unwrap();

        let logs = agent.logs();
        match expected {
            Ok(bits) => {
                assert!(status.success(), "{shown}: {status}\n{logs}");
                assert_eq!(mode(&sink).unwrap(), bits, "{shown}");
            }
            Err(needle) => {
                assert_eq!(status.code(), Some(1), "{shown}\n{logs}");
                assert!(logs.contains("sink.config.mode"), "{shown}: {logs}");
                assert!(logs.contains(needle), "{shown}: {logs}");
                assert!(!sink.exists(), "{shown}");
            }
        }
        agent.assert_no_secrets(&[&scene.role.role_id, &scene.role.secret_id]);
    };

    check(0, Written::Hcl("0640"), Ok(0o640));
    check(1, Written::Hcl("0600"), Ok(0o600));
    check(2, Written::Hcl(r#""0640""#), Ok(0o640));
    check(3, Written::Hcl(r#""0604""#), Ok(0o604));
    check(4, Written::Json(json!(416)), Ok(0o640));
    check(5, Written::Json(json!(384)), Ok(0o600));
    check(6, Written::Json(json!("0604")), Ok(0o604));
    check(7, Written::Hcl("640"), Err("decimal"));
    check(8, Written::Hcl("01640"), Err("above 0o777"));
}

/// The agent configuration of `scene` in JSON, with `mode` as the sink's mode.
fn json_config(vault: &DevVault, scene: &Scene, sink: &Path, mode: &Value) -> String {
    json!({
        "vault": {"address": vault.addr},
        "auto_auth": {
            "method": {
                "type": "approle",
                "mount_path": format!("auth/{}", scene.role.mount),
                "config": {
                    "role_id_file_path": scene.files.role_id,
                    "secret_id_file_path": scene.files.secret_id,
                    "remove_secret_id_file_after_reading": false,
                },
            },
            "sink": [{"type": "file", "config": {"path": sink, "mode": mode}}],
        },
        "exit_after_auth": true,
    })
    .to_string()
}

/// B01: the token written after a re-authentication gets the configured mode again, and
/// the configured owner (checked when the test runs as root, which may hand files away).
#[test]
fn b01_sink_keeps_its_mode_after_reauth() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "b01-reauth", &["token_ttl=10s"]).unwrap();
    let owner = nix::unistd::geteuid().is_root().then_some(65534);
    let owner_lines = owner.map_or(String::new(), |id| {
        format!("\n      uid = {id}\n      gid = {id}")
    });
    let config = AgentConfig::approle(vault, &scene.role, &scene.files).sink(&format!(
        "config = {{\n      path = {}\n      mode = 0604{owner_lines}\n    }}",
        quoted_path(&scene.sink)
    ));
    let agent = scene.start(&config).unwrap();
    let check = || {
        assert_eq!(mode(&scene.sink).unwrap(), 0o604);
        if let Some(id) = owner {
            let metadata = std::fs::metadata(&scene.sink).unwrap();
            assert_eq!((metadata.uid(), metadata.gid()), (id, id));
        }
    };
    let first = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    check();

    vault.bao(&["token", "revoke", &first]).unwrap();
    let second = next_token(&scene.sink, &first, Duration::from_secs(15)).unwrap();

    check();
    lookup_self(vault, &second, None).unwrap();
    agent.assert_no_secrets(&[&first, &second, &scene.role.role_id, &scene.role.secret_id]);
}

/// B06: a wrapped login yields no token the proxy can send, so the combination is refused
/// before anything starts, naming both settings.
#[test]
fn b06_method_wrap_ttl_with_use_auto_auth_token_is_refused_at_start() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "b06-refused", &["token_ttl=5m"]).unwrap();
    let config = scene
        .config(vault)
        .method(r#"wrap_ttl = "5m""#)
        .top(&proxy_blocks(e2e::free_port()));
    let mut agent = scene.start(&config).unwrap();

    let status = agent.wait_exit(Duration::from_secs(10)).unwrap();

    let logs = agent.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains("auto_auth.method.wrap_ttl"), "{logs}");
    assert!(logs.contains("cache.use_auto_auth_token"), "{logs}");
    assert!(!scene.sink.exists());
}

/// A listener with the cache using the auto-auth token.
fn proxy_blocks(port: u16) -> String {
    format!(
        "cache {{\n  use_auto_auth_token = true\n}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}"
    )
}

/// B06, the supported variant, and sink `wrap_ttl`: the sink holds wrap_info JSON whose
/// token `bao unwrap` opens to a valid token, while the proxy sends that raw token. The
/// agent logs at trace level, which still shows neither token.
#[test]
fn b06_a_wrapping_sink_holds_wrap_info_while_the_proxy_uses_the_raw_token() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "b06-sink-wrap", &["token_ttl=5m"]).unwrap();
    let port = e2e::free_port();
    let config = AgentConfig::approle(vault, &scene.role, &scene.files)
        .sink(&format!(
            "wrap_ttl = \"2m\"\n    config = {{ path = {} }}",
            quoted_path(&scene.sink)
        ))
        .top(&proxy_blocks(port));
    let path = config.write(&scene.path("agent.hcl")).unwrap();
    let mut agent = Agent::start(&path, &["-log-level=trace"]).unwrap();

    let written = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    let wrap_info: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(wrap_info["ttl"], 120, "{wrap_info}");
    assert_eq!(wrap_info["creation_path"], "sys/wrapping/wrap");
    for field in ["token", "accessor", "creation_time", "wrapped_accessor"] {
        assert!(wrap_info[field].is_string(), "{field}: {wrap_info}");
    }
    let wrapping_token = wrap_info["token"].as_str().unwrap();

    // The proxy sends a token: lookup-self through it answers (with the token's id and
    // accessor blanked, as Vault's agent does for its own token).
    agent
        .wait_for_log("listener ready", Duration::from_secs(5))
        .unwrap();
    let (status, proxied) = get(&format!(
        "http://127.0.0.1:{port}/v1/auth/token/lookup-self"
    ));
    assert_eq!(status, 200, "{proxied}");
    assert!(proxied["data"].get("id").is_none(), "{proxied}");

    // The wrapping token opens to a valid token, and it is the one the proxy sent.
    let out = vault
        .bao_as(wrapping_token, &["unwrap", "-format=json"])
        .unwrap();
    let unwrapped: Value = serde_json::from_str(&out).unwrap();
    let token = unwrapped["data"]["token"].as_str().unwrap();
    let data = lookup_self(vault, token, None).unwrap();
    assert_eq!(data["issue_time"], proxied["data"]["issue_time"]);
    assert_eq!(data["path"], proxied["data"]["path"]);

    agent.assert_no_secrets(&[
        token,
        wrapping_token,
        &scene.role.role_id,
        &scene.role.secret_id,
    ]);
}

/// A GET without a token; the status and the JSON body (`null` when there is none).
fn get(url: &str) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    })
}

/// Runs token-sink's consumer script (`keygen` or `open`) with the Python xtask set up.
fn consumer(args: &[&str]) -> String {
    let script = e2e::workspace_root().join("crates/token-sink/tests/support/dh_envelope.py");
    let out = Command::new(e2e::python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dh_envelope.py {}: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The envelope in an encrypted sink opens with the consumer's private key in an
/// independent implementation (Python `cryptography`), to a token Vault accepts; with
/// `wrap_ttl` as well, to wrap_info whose token unwraps to that same token.
#[test]
fn an_encrypted_sink_opens_with_python_cryptography_to_a_valid_token() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "dh-sink", &["token_ttl=5m"]).unwrap();
    let dh_path = scene.path("consumer.json");
    let private_key = consumer(&["keygen", &dh_path.display().to_string()]);
    let wrapped_sink = scene.path("wrapped-token");
    let encrypted = |wrap: &str, path: &Path| {
        format!(
            "dh_type = \"curve25519\"\n    dh_path = {}\n    derive_key = true\n    \
             aad = \"e2e-aad\"\n    {wrap}config = {{ path = {} }}",
            quoted_path(&dh_path),
            quoted_path(path)
        )
    };
    let config = AgentConfig::approle(vault, &scene.role, &scene.files)
        .sink(&encrypted("", &scene.sink))
        .sink(&encrypted("wrap_ttl = \"2m\"\n    ", &wrapped_sink));
    let path = config.write(&scene.path("agent.hcl")).unwrap();
    let agent = Agent::start(&path, &["-log-level=trace"]).unwrap();

    let envelope = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    first_token(&wrapped_sink, FIRST_TOKEN).unwrap();
    let open = |path: &Path| {
        let path = path.display().to_string();
        consumer(&["open", &private_key, &path, "1", "e2e-aad"])
    };
    let token = open(&scene.sink);
    let wrap_info: Value = serde_json::from_str(&open(&wrapped_sink)).unwrap();

    assert!(!envelope.contains(&token));
    lookup_self(vault, &token, None).unwrap();
    let wrapping_token = wrap_info["token"].as_str().unwrap();
    let out = vault
        .bao_as(wrapping_token, &["unwrap", "-format=json"])
        .unwrap();
    let unwrapped: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(unwrapped["data"]["token"], token.as_str());
    agent.assert_no_secrets(&[
        &token,
        wrapping_token,
        &scene.role.role_id,
        &scene.role.secret_id,
    ]);
}

/// A sink whose directory does not exist cannot ever be written: the agent stops at
/// start-up, naming the path.
#[test]
fn a_sink_in_a_missing_directory_stops_the_agent_naming_it() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "sink-no-dir", &["token_ttl=5m"]).unwrap();
    let sink = scene.path("no-such-dir/token");
    let config = AgentConfig::approle(vault, &scene.role, &scene.files).file_sink(&sink);
    let mut agent = scene.start(&config).unwrap();

    let status = agent.wait_exit(Duration::from_secs(10)).unwrap();

    let logs = agent.logs();
    assert_eq!(status.code(), Some(1), "{logs}");
    assert!(logs.contains(&sink.display().to_string()), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    agent.assert_no_secrets(&[&scene.role.role_id, &scene.role.secret_id]);
}

/// A consumer key file holding junk: each write fails naming the file, and is retried;
/// the junk itself is never logged. Once the consumer publishes a real key, a retry
/// writes an envelope that opens with it.
#[test]
fn a_junk_dh_key_file_is_named_and_the_write_retried() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "dh-junk", &["token_ttl=5m"]).unwrap();
    let dh_path = scene.path("consumer.json");
    let junk = "s3cr3t-junk: neither JSON nor a key";
    std::fs::write(&dh_path, junk).unwrap();
    let config = AgentConfig::approle(vault, &scene.role, &scene.files).sink(&format!(
        "dh_type = \"curve25519\"\n    dh_path = {}\n    config = {{ path = {} }}",
        quoted_path(&dh_path),
        quoted_path(&scene.sink)
    ));
    let mut agent = scene.start(&config).unwrap();

    agent
        .wait_for_log("token write failed; retrying", Duration::from_secs(10))
        .unwrap();

    let logs = agent.logs();
    assert!(logs.contains(&dh_path.display().to_string()), "{logs}");
    assert!(!logs.contains("s3cr3t-junk"), "{logs}");
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(is_running(agent.pid()));
    assert!(!scene.sink.exists());

    let private_key = consumer(&["keygen", &dh_path.display().to_string()]);
    first_token(&scene.sink, Duration::from_secs(15)).unwrap();
    let sink = scene.sink.display().to_string();
    let token = consumer(&["open", &private_key, &sink, "0", ""]);
    lookup_self(vault, &token, None).unwrap();
    agent.assert_no_secrets(&[&token, &scene.role.role_id, &scene.role.secret_id]);
}

/// The same configuration run by the reference agent (`bao agent`) and by ours gives sink
/// files of the same mode and shape: the bare token with no trailing newline (default mode
/// and `mode = 0600`), and for a wrapping sink the same wrap_info fields. One difference
/// is allowed: the reference ends its JSON with a newline, ours writes JSON without one,
/// as it writes tokens; a JSON reader sees no difference.
#[test]
fn our_sink_files_match_the_reference_agents() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "reference", &["token_ttl=5m"]).unwrap();

    let configure = |who: &str| {
        let sinks = ["default", "0600", "wrapped"].map(|s| scene.path(&format!("{who}-{s}")));
        let path = AgentConfig::approle(vault, &scene.role, &scene.files)
            .file_sink(&sinks[0])
            .sink(&format!(
                "config = {{\n      path = {}\n      mode = 0600\n    }}",
                quoted_path(&sinks[1])
            ))
            .sink(&format!(
                "wrap_ttl = \"2m\"\n    config = {{ path = {} }}",
                quoted_path(&sinks[2])
            ))
            .top("exit_after_auth = true")
            .write(&scene.path(&format!("{who}.hcl")))
            .unwrap();
        (path, sinks)
    };
    let (reference_config, theirs) = configure("reference");
    let (our_config, ours) = configure("ours");

    let started = Instant::now();
    let status = run_reference_agent(vault, &reference_config, Duration::from_secs(20)).unwrap();
    assert!(status.success(), "the reference agent failed: {status}");
    eprintln!(
        "reference agent: exit_after_auth in {:?}",
        started.elapsed()
    );
    let started = Instant::now();
    let mut agent = Agent::start(&our_config, &[]).unwrap();
    let status = agent.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status}\n{}", agent.logs());
    eprintln!("our agent: exit_after_auth in {:?}", started.elapsed());

    let mut secrets = vec![scene.role.role_id.clone(), scene.role.secret_id.clone()];
    for (ours, theirs) in ours.iter().zip(&theirs) {
        let shown = ours.display();
        assert_eq!(mode(ours).unwrap(), mode(theirs).unwrap(), "{shown}");
        let [our_value, their_value] =
            [ours, theirs].map(|path| std::fs::read_to_string(path).unwrap());
        assert_eq!(
            our_value.trim(),
            our_value,
            "{shown}: whitespace around the value"
        );
        let their_value = match their_value.strip_suffix("}\n") {
            Some(json) => format!("{json}}}"),
            None => their_value,
        };
        assert_eq!(shape(&our_value), shape(&their_value), "{shown}");
        secrets.extend([our_value, their_value]);
    }

    // Every plain token is valid.
    for value in &secrets[2..6] {
        lookup_self(vault, value, None).unwrap();
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    agent.assert_no_secrets(&secrets);
}

/// Method-level `wrap_ttl`: the sink receives the wrapped login in the shape the reference
/// agent writes, and its wrapping token opens to a valid token.
#[test]
fn a_wrapped_login_reaches_the_sink_as_the_reference_agent_writes_it() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "method-wrap", &["token_ttl=5m"]).unwrap();
    let configure = |who: &str| {
        let sink = scene.path(&format!("{who}-token"));
        let path = AgentConfig::approle(vault, &scene.role, &scene.files)
            .method(r#"wrap_ttl = "2m""#)
            .file_sink(&sink)
            .top("exit_after_auth = true")
            .write(&scene.path(&format!("{who}.hcl")))
            .unwrap();
        (path, sink)
    };
    let (reference_config, theirs) = configure("reference");
    let (our_config, ours) = configure("ours");

    let status = run_reference_agent(vault, &reference_config, Duration::from_secs(20)).unwrap();
    assert!(status.success(), "the reference agent failed: {status}");
    let mut agent = Agent::start(&our_config, &[]).unwrap();
    let status = agent.wait_exit(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "{status}\n{}", agent.logs());

    let our_value = std::fs::read_to_string(&ours).unwrap();
    let their_value = std::fs::read_to_string(&theirs).unwrap();
    assert_eq!(shape(&our_value), shape(their_value.trim_end()));
    assert_eq!(mode(&ours).unwrap(), mode(&theirs).unwrap());
    let wrap_info: Value = serde_json::from_str(&our_value).unwrap();
    assert_eq!(wrap_info["creation_path"], scene.login_path());
    let wrapping_token = wrap_info["token"].as_str().unwrap();
    let out = vault
        .bao_as(wrapping_token, &["unwrap", "-format=json"])
        .unwrap();
    let unwrapped: Value = serde_json::from_str(&out).unwrap();
    let token = unwrapped["auth"]["client_token"].as_str().unwrap();
    lookup_self(vault, token, None).unwrap();
    agent.assert_no_secrets(&[
        token,
        wrapping_token,
        &scene.role.role_id,
        &scene.role.secret_id,
    ]);
}

/// What a sink value looks like, without its secrets: a token's type prefix and length, or
/// a JSON object's fields with their types (and the values of `ttl` and `creation_path`).
fn shape(value: &str) -> String {
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(value) else {
        return format!("token {}. of {} bytes", prefix(value), value.len());
    };
    let described: Vec<String> = fields
        .iter()
        .map(|(key, value)| match key.as_str() {
            "ttl" | "creation_path" => format!("{key}={value}"),
            _ => format!("{key}: {}", kind(value)),
        })
        .collect();
    described.join(", ")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(text) if text.is_empty() => "empty string",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        _ => "other",
    }
}

/// A token's type prefix, `s.` or `hvs.`.
fn prefix(token: &str) -> &str {
    token.split_once('.').map_or("", |(prefix, _)| prefix)
}
