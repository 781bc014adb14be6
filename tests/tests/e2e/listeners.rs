//! The listeners and what they refuse or pass on, against the real dev server: B03
//! (`require_request_header` per listener, refused before anything is forwarded), B02 (the
//! Unix socket's mode and owner, an unknown group failing startup), B04 (query strings kept,
//! health codes passed back), `LIST` and `?list=true`, the body limit, and Vault unreachable.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::lab::{Answer, Call, Http, Lab, Via, quoted, quoted_path};
use e2e::{Agent, DevVault};
use serde_json::{Value, json};

/// A KV v2 write of `k=v` to `secret/<path>`.
fn kv_write(path: &str) -> Call {
    Call::post(
        &format!("/v1/secret/data/{path}"),
        &json!({"data": {"k": "v"}}),
    )
}

/// Whether `secret/<path>` exists, asked of Vault directly.
fn kv_exists(vault: &DevVault, path: &str) -> bool {
    vault.bao(&["kv", "get", "-mount=secret", path]).is_ok()
}

/// The agent's own error shape: the status, JSON, and an `errors` list whose first entry
/// contains `needle`.
fn assert_agent_error(answer: &Answer, status: u16, needle: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let errors = &answer.json().unwrap()["errors"];
    let first = errors[0].as_str().unwrap_or_default();
    assert!(first.contains(needle), "{needle:?} not in {errors}");
}

/// An agent without auto-auth whose configuration is `vault` (the `vault` block's body),
/// `cache {}` and `listeners`, started in `dir`.
fn plain_agent(dir: &Path, vault: &str, listeners: &str) -> Agent {
    let config = format!("vault {{\n{vault}\n}}\ncache {{}}\n{listeners}\n");
    let path = dir.join("agent.hcl");
    std::fs::write(&path, config).unwrap();
    Agent::start(&path, &["-log-level=debug"]).unwrap()
}

fn unix_listener(path: &Path, attributes: &str) -> String {
    format!(
        "listener \"unix\" {{\n  address = {}\n  tls_disable = true\n{attributes}\n}}\n",
        quoted_path(path)
    )
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// `curl` over the Unix socket at `socket`, run as `nobody`: whether it got an HTTP answer.
fn nobody_can_connect(socket: &Path) -> bool {
    let status = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "--unix-socket",
        ])
        .arg(socket)
        .arg("http://agent/v1/sys/health")
        .status()
        .unwrap();
    status.success()
}

#[test]
fn b03_require_request_header_is_checked_per_listener_before_anything_is_forwarded() {
    let vault = e2e::vault_or_skip!();
    let guarded_port = e2e::free_port();
    let guarded_listener = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{guarded_port}\"\n  tls_disable = true\n  \
         require_request_header = true\n}}\n"
    );
    let lab = Lab::start_with(vault, "b03", &guarded_listener).unwrap();
    let guarded = Http::tcp(&format!("http://127.0.0.1:{guarded_port}"));

    // 1 and 3: refused, and nothing reached Vault: the write that would have been made with
    // the agent's token did not happen.
    let refused = e2e::unique("b03-refused");
    let missing = guarded.send(&kv_write(&refused)).unwrap();
    assert_agent_error(&missing, 412, "X-Vault-Request");
    let wrong = guarded
        .send(&kv_write(&refused).header("X-Vault-Request", "false"))
        .unwrap();
    assert_agent_error(&wrong, 412, "X-Vault-Request");
    assert!(
        !kv_exists(vault, &refused),
        "a refused request reached Vault"
    );
    let metrics = guarded.send(&Call::get("/agent/v1/metrics")).unwrap();
    assert_eq!(metrics.status, 412, "the agent endpoints are guarded too");

    // 2: with the header, forwarded with the agent's token (the client sent none).
    let allowed = e2e::unique("b03-allowed");
    let answer = guarded
        .send(&kv_write(&allowed).header("X-Vault-Request", "true"))
        .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(kv_exists(vault, &allowed));

    // 4: the other listener has no such requirement.
    let open = e2e::unique("b03-open");
    let answer = lab.http().send(&kv_write(&open)).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(kv_exists(vault, &open));

    lab.agent
        .assert_no_secrets(&[&lab.token, &lab.role.role_id, &lab.role.secret_id]);
}

/// OpenBao ignores `socket_mode` unless `socket_user` and `socket_group` are set too; we
/// apply it on its own. A stale socket file from an earlier run is replaced.
#[test]
fn b02_socket_mode_alone_is_applied_and_keeps_other_users_out() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("b02-mode");
    // Reachable by another user, so that only the socket's own mode keeps them out.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = dir.path().join("private.sock");
    let public = dir.path().join("public.sock");
    drop(std::os::unix::net::UnixListener::bind(&private).unwrap());

    let listeners = unix_listener(&private, "  socket_mode = \"0600\"")
        + &unix_listener(&public, "  socket_mode = \"0666\"");
    let mut agent = plain_agent(
        dir.path(),
        &format!("address = {}", quoted(&vault.addr)),
        &listeners,
    );
    agent
        .wait_for_log("agent started", Duration::from_secs(10))
        .unwrap();

    let stat = std::fs::metadata(&private).unwrap();
    assert_eq!(stat.permissions().mode() & 0o777, 0o600);
    assert_eq!(stat.uid(), nix::unistd::Uid::effective().as_raw());
    assert_eq!(stat.gid(), nix::unistd::Gid::effective().as_raw());
    let stat = std::fs::metadata(&public).unwrap();
    assert_eq!(stat.permissions().mode() & 0o777, 0o666);

    let health = Http::unix(&private)
        .send(&Call::get("/v1/sys/health"))
        .unwrap();
    assert_eq!(health.status, 200, "the stale socket file was replaced");
    if is_root() {
        assert!(!nobody_can_connect(&private), "0600 let another user in");
        assert!(nobody_can_connect(&public), "0666 kept another user out");
    } else {
        eprintln!("not root: the other-user connection checks need runuser; skipped");
    }
}

#[test]
fn b02_socket_user_and_group_given_as_numeric_ids_own_the_socket() {
    let vault = e2e::vault_or_skip!();
    if !is_root() {
        eprintln!("skipped: setting a socket's owner needs root");
        return;
    }
    let dir = e2e::work_dir("b02-owner");
    let socket = dir.path().join("agent.sock");
    let attributes =
        "  socket_mode = \"0660\"\n  socket_user = \"65534\"\n  socket_group = \"65534\"";
    let mut agent = plain_agent(
        dir.path(),
        &format!("address = {}", quoted(&vault.addr)),
        &unix_listener(&socket, attributes),
    );
    agent
        .wait_for_log("agent started", Duration::from_secs(10))
        .unwrap();

    let stat = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        (stat.permissions().mode() & 0o777, stat.uid(), stat.gid()),
        (0o660, 65534, 65534)
    );
    let health = Http::unix(&socket)
        .send(&Call::get("/v1/sys/health"))
        .unwrap();
    assert_eq!(health.status, 200);
}

#[test]
fn b02_an_unknown_socket_group_fails_startup_with_a_clear_error() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("b02-group");
    let socket = dir.path().join("agent.sock");
    let attributes = "  socket_mode = \"0660\"\n  socket_group = \"no-such-group\"";
    let mut agent = plain_agent(
        dir.path(),
        &format!("address = {}", quoted(&vault.addr)),
        &unix_listener(&socket, attributes),
    );

    let status = agent.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    let logs = agent.logs();
    assert!(
        logs.contains("socket_group") && logs.contains("no-such-group"),
        "the error does not name the group:\n{logs}"
    );
    assert!(!socket.exists(), "a socket was left behind");
}

#[test]
fn the_list_verb_and_the_list_query_give_the_same_answer() {
    let vault = e2e::vault_or_skip!();
    let mount = e2e::unique("kv");
    vault
        .bao(&["secrets", "enable", &format!("-path={mount}"), "kv-v2"])
        .unwrap();
    for key in ["alpha", "beta", "gamma/deep"] {
        vault
            .bao(&["kv", "put", &format!("-mount={mount}"), key, "k=v"])
            .unwrap();
    }
    let lab = Lab::start(vault, "list").unwrap();
    let http = lab.http();

    let keys =
        |answer: Answer| answer.expect_status(200).unwrap().json().unwrap()["data"]["keys"].clone();
    let by_verb = keys(
        http.send(&Call::new("LIST", &format!("/v1/{mount}/metadata/")))
            .unwrap(),
    );
    let by_query = keys(
        http.send(&Call::get(&format!("/v1/{mount}/metadata/?list=true")))
            .unwrap(),
    );
    assert_eq!(by_verb, json!(["alpha", "beta", "gamma/"]));
    assert_eq!(by_query, by_verb);

    let by_cli = lab
        .cli_json(Via::Unix, None, 1, &["list", &format!("{mount}/metadata")])
        .unwrap();
    assert_eq!(by_cli, by_verb);

    lab.agent
        .assert_no_secrets(&[&lab.token, &lab.role.role_id, &lab.role.secret_id]);
}

/// B04: a health check through the agent gets what it would get from Vault, query and all;
/// non-2xx health codes come back at once, neither rewritten nor retried.
#[test]
fn b04_query_strings_reach_vault_as_sent() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "b04").unwrap();
    let agent = lab.http();
    let direct = Http::tcp(&vault.addr);

    for query in [
        "standbyok=true&perfstandbyok=true",
        "activecode=299&activecode=288&b=x%2Fy",
        "activecode=473",
        "standbycode=429&activecode=503",
    ] {
        let path = format!("/v1/sys/health?{query}");
        let expected = direct.send(&Call::get(&path)).unwrap();
        let started = Instant::now();
        let through = agent.send(&Call::get(&path)).unwrap();
        assert_eq!(through.status, expected.status, "{query}: {}", through.body);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{query}: answered after {:?}, retried?",
            started.elapsed()
        );
        assert_eq!(without_time(&through), without_time(&expected), "{query}");
    }
    let custom = direct
        .send(&Call::get("/v1/sys/health?activecode=299&activecode=288"))
        .unwrap();
    assert_eq!(custom.status, 299, "the first of the repeated keys counts");

    lab.agent
        .assert_no_secrets(&[&lab.token, &lab.role.role_id, &lab.role.secret_id]);
}

/// A health answer without its clock field.
fn without_time(answer: &Answer) -> Value {
    let mut body = answer.json().unwrap();
    if let Some(object) = body.as_object_mut() {
        object.remove("server_time_utc");
    }
    body
}

/// Clients that send the whole body without waiting for `100 Continue` (reqwest, the Go
/// CLI) must read the 413 and not a reset: the agent reads the rest of a refused body
/// before answering. Without that, the CLI said "broken pipe" about two times in five.
#[test]
fn a_body_over_the_limit_is_refused_with_413_and_not_forwarded() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "body-limit").unwrap();
    let path = e2e::unique("big");
    let big = "x".repeat(50 * 1024 * 1024);

    let body = json!({"data": {"k": big}}).to_string().into_bytes();
    let call = Call::new("POST", &format!("/v1/secret/data/{path}")).body(body);
    let answer = lab.http().send(&call).unwrap();
    assert_agent_error(&answer, 413, "exceeds");

    let file = lab.dir.path().join("big.txt");
    std::fs::write(&file, &big).unwrap();
    let value = format!("k=@{}", file.display());
    for _ in 0..3 {
        let refused = lab
            .cli(
                Via::Tcp,
                None,
                &["write", &format!("secret/data/{path}"), &value],
            )
            .unwrap_err();
        // The whole chain: the CLI's own words are under the harness's context.
        let refused = format!("{refused:#}");
        assert!(refused.contains("Code: 413"), "{refused}");
    }
    assert!(!kv_exists(vault, &path));

    lab.agent
        .assert_no_secrets(&[&lab.token, &lab.role.role_id, &lab.role.secret_id]);
}

#[test]
fn vault_unreachable_gives_a_502_in_vaults_error_shape() {
    let _vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("unreachable");
    let dead = format!("http://127.0.0.1:{}", e2e::free_port());
    let port = e2e::free_port();
    let listener = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n"
    );
    let vault_block = format!(
        "address = {}\nretry {{\n  num_retries = -1\n}}",
        quoted(&dead)
    );
    let mut agent = plain_agent(dir.path(), &vault_block, &listener);
    agent
        .wait_for_log("agent started", Duration::from_secs(10))
        .unwrap();
    let http = Http::tcp(&format!("http://127.0.0.1:{port}"));

    for path in ["/v1/sys/health", "/v1/secret/data/app"] {
        let answer = http.send(&Call::get(path)).unwrap();
        assert_agent_error(&answer, 502, &dead);
        assert_eq!(
            answer.json().unwrap()["errors"].as_array().unwrap().len(),
            1
        );
    }
}
