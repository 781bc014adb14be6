//! Auto-auth against the real dev server: every method logging in (approle, a wrapped
//! secret_id, token_file, jwt with a key the test made, cert with a CA the test made), the
//! token's life (renewed, replaced near its max TTL, replaced after an out-of-band
//! revocation), failed logins backing off as counted by the server's audit log, bad
//! credential files, `exit_after_auth`, and the cases B11, B12 and B16.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::auth::{
    AgentConfig, AppRoleFiles, Feature, PrivateServer, Scene, count_lines, expire_time,
    first_token, is_running, lookup_self, next_token, quoted, quoted_path,
};
use e2e::{Agent, AppRole, DevVault};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// How long a first login and sink write may take.
const FIRST_TOKEN: Duration = Duration::from_secs(15);

/// The first 19 characters of an RFC 3339 time, `2024-01-02T03:04:05`: whole seconds in
/// a fixed format, so later times compare greater as strings.
fn to_the_second(time: &str) -> String {
    time.chars().take(19).collect()
}

#[test]
fn approle_token_is_renewed_then_replaced_near_its_max_ttl() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(
        vault,
        "renew-replace",
        &["token_ttl=10s", "token_max_ttl=30s"],
    )
    .unwrap();
    let mut agent = scene.start(&scene.config(vault)).unwrap();

    let first = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    let written_at = Instant::now();
    let mode = e2e::auth::mode(&scene.sink).unwrap();
    let data = lookup_self(vault, &first, None).unwrap();
    assert_eq!(data["path"], scene.login_path());
    let first_expiry = to_the_second(&expire_time(&data).unwrap());

    // Renewed: the same token, expiring later. A 10 s token is renewed every ~7 s.
    e2e::wait_for(
        "a renewal of the first token",
        Duration::from_secs(12),
        || {
            let data = lookup_self(vault, &first, None).ok();
            let expiry = data.and_then(|data| expire_time(&data).ok());
            expiry.is_some_and(|time| to_the_second(&time) > first_expiry)
        },
    )
    .unwrap();
    assert_eq!(std::fs::read_to_string(&scene.sink).unwrap(), first);

    // Replaced before the max TTL ends it: a new token, written with the same mode.
    let second = next_token(&scene.sink, &first, Duration::from_secs(35)).unwrap();
    let replaced_after = written_at.elapsed();
    eprintln!("max TTL 30 s: replaced after {replaced_after:?}");
    assert!(
        replaced_after > Duration::from_secs(18) && replaced_after < Duration::from_secs(30),
        "replaced after {replaced_after:?}"
    );
    lookup_self(vault, &second, None).unwrap();
    assert_eq!(e2e::auth::mode(&scene.sink).unwrap(), mode);
    agent
        .wait_for_log("near the end of its life", Duration::from_secs(1))
        .unwrap();

    agent.assert_no_secrets(&[&first, &second, &scene.role.role_id, &scene.role.secret_id]);
}

/// OpenBao notices a revoked token only at its next renewal (about two thirds of its TTL
/// later) and so do we; this pins that the re-login follows at once, with the secret_id
/// remembered from the file that was removed after reading. Logs are at trace level, and
/// still carry no secret through renewals, a rejection and a second login.
#[test]
fn a_revoked_token_is_replaced_at_its_next_renewal() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "revoked", &["token_ttl=10s"]).unwrap();
    let config = scene
        .config(vault)
        .method_config("remove_secret_id_file_after_reading", "true");
    let path = config.write(&scene.path("agent.hcl")).unwrap();
    let mut agent = Agent::start(&path, &["-log-level=trace"]).unwrap();

    let first = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    assert!(
        !scene.files.secret_id.exists(),
        "the secret_id file is removed after reading"
    );
    assert!(scene.files.role_id.exists());

    vault.bao(&["token", "revoke", &first]).unwrap();
    let revoked_at = Instant::now();
    let second = next_token(&scene.sink, &first, Duration::from_secs(15)).unwrap();
    let noticed_after = revoked_at.elapsed();
    eprintln!("token TTL 10 s: revocation noticed and replaced after {noticed_after:?}");

    // One renewal interval of a 10 s token is under 8 s; the login itself is quick.
    assert!(noticed_after < Duration::from_secs(9), "{noticed_after:?}");
    lookup_self(vault, &second, None).unwrap();
    assert!(lookup_self(vault, &first, None).is_err());
    agent
        .wait_for_log("vault rejected the token", Duration::from_secs(1))
        .unwrap();

    agent.assert_no_secrets(&[&first, &second, &scene.role.role_id, &scene.role.secret_id]);
}

/// A secret_id response-wrapped for the role, as its path in `mount`.
fn wrapped_secret_id(vault: &DevVault, mount: &str, role: &str) -> String {
    let path = format!("auth/{mount}/role/{role}/secret-id");
    let wrapped = vault
        .bao_json(&["write", "-wrap-ttl=5m", "-f", &path])
        .unwrap();
    wrapped["wrap_info"]["token"].as_str().unwrap().to_owned()
}

fn wrapping_path(scene: &Scene) -> String {
    quoted(&format!("auth/{}/role/app/secret-id", scene.role.mount))
}

#[test]
fn a_wrapped_secret_id_is_unwrapped_and_its_file_removed() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "wrapped-secret-id", &["token_ttl=5m"]).unwrap();
    let wrapping_token = wrapped_secret_id(vault, &scene.role.mount, "app");
    std::fs::write(&scene.files.secret_id, &wrapping_token).unwrap();
    let config = scene
        .config(vault)
        .method_config("secret_id_response_wrapping_path", &wrapping_path(&scene))
        .method_config("remove_secret_id_file_after_reading", "true");
    let agent = scene.start(&config).unwrap();

    let token = first_token(&scene.sink, FIRST_TOKEN).unwrap();

    lookup_self(vault, &token, None).unwrap();
    assert!(!scene.files.secret_id.exists());
    // Single use: the agent's unwrap consumed it.
    assert!(vault.bao(&["unwrap", &wrapping_token]).is_err());
    agent.assert_no_secrets(&[&token, &wrapping_token, &scene.role.role_id]);
}

#[test]
fn a_wrapping_token_made_elsewhere_is_refused_unopened() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "wrong-wrapping-path", &["token_ttl=5m"]).unwrap();
    let other_role = format!("auth/{}/role/other", scene.role.mount);
    vault.bao(&["write", &other_role, "token_ttl=5m"]).unwrap();
    let foreign = wrapped_secret_id(vault, &scene.role.mount, "other");
    std::fs::write(&scene.files.secret_id, &foreign).unwrap();
    let config = scene
        .config(vault)
        .method_config("secret_id_response_wrapping_path", &wrapping_path(&scene));
    let mut agent = scene.start(&config).unwrap();

    agent
        .wait_for_log("refusing to unwrap it", Duration::from_secs(10))
        .unwrap();

    assert!(!scene.sink.exists());
    // Looked up, never unwrapped: the token still opens for its rightful owner.
    vault.bao(&["unwrap", &foreign]).unwrap();
    agent.assert_no_secrets(&[&foreign, &scene.role.role_id]);
}

/// B11: after a restart the wrapping token in the file is spent. The agent backs off,
/// stays up, leaves the sink alone and takes a fresh wrapping token without a restart.
#[test]
fn b11_a_spent_wrapping_token_backs_off_keeps_the_sink_and_takes_a_fresh_one() {
    let vault = e2e::vault_or_skip!();
    let scene = Scene::new(vault, "b11", &["token_ttl=5m"]).unwrap();
    let spent = wrapped_secret_id(vault, &scene.role.mount, "app");
    std::fs::write(&scene.files.secret_id, &spent).unwrap();
    let config = scene
        .config(vault)
        .method(r#"max_backoff = "4s""#)
        .method_config("secret_id_response_wrapping_path", &wrapping_path(&scene));

    // First run: unwraps, logs in, writes the sink; then stops.
    let mut agent = scene.start(&config).unwrap();
    let first = first_token(&scene.sink, FIRST_TOKEN).unwrap();
    agent.signal(Signal::SIGTERM).unwrap();
    assert!(agent.wait_exit(Duration::from_secs(10)).unwrap().success());
    agent.assert_no_secrets(&[&first, &spent, &scene.role.role_id]);

    // Second run on the same files.
    let restart = config.write(&scene.path("restart.hcl")).unwrap();
    let mut agent = Agent::start(&restart, &[]).unwrap();
    agent
        .wait_for_log("already unwrapped, or it expired", Duration::from_secs(10))
        .unwrap();
    let observed_from = Instant::now();
    e2e::pause(Duration::from_secs(10));
    let failures = count_lines(&agent.logs(), "login failed");
    eprintln!(
        "B11: {failures} failed logins in {:?} (min 1 s, max 4 s)",
        observed_from.elapsed()
    );
    // Waits of 1, 1.5-2, 3-4, 3-4 s: at most five attempts by now; a tight loop makes
    // hundreds.
    assert!((3..=6).contains(&failures), "{failures} failed logins");
    assert!(is_running(agent.pid()), "{}", agent.logs());
    assert_eq!(std::fs::read_to_string(&scene.sink).unwrap(), first);

    // A fresh wrapping token, put in place atomically as a deployment tool would.
    let fresh = wrapped_secret_id(vault, &scene.role.mount, "app");
    let staged = scene.path("secret_id.new");
    std::fs::write(&staged, &fresh).unwrap();
    std::fs::rename(&staged, &scene.files.secret_id).unwrap();
    let second = next_token(&scene.sink, &first, Duration::from_secs(10)).unwrap();

    lookup_self(vault, &second, None).unwrap();
    agent.assert_no_secrets(&[&first, &second, &spent, &fresh, &scene.role.role_id]);
}

#[test]
fn token_file_publishes_the_token_it_reads() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("token-file");
    let created = vault
        .bao_json(&["write", "auth/token/create", "ttl=10m", "policies=default"])
        .unwrap();
    let token = created["auth"]["client_token"].as_str().unwrap();
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let sink = dir.path().join("sink");
    let config = AgentConfig::new(&vault.addr, "token_file")
        .method_config("token_file_path", &quoted_path(&token_file))
        .file_sink(&sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();
    let agent = Agent::start(&config, &[]).unwrap();

    let written = first_token(&sink, FIRST_TOKEN).unwrap();

    assert_eq!(written, token);
    lookup_self(vault, &written, None).unwrap();
    assert!(token_file.exists(), "token_file never removes its file");
    agent.assert_no_secrets(&[token]);
}

/// A token that never expires (the dev server's root token) is published once and then
/// left alone: no renewals, no lookups in a loop.
#[test]
fn token_file_with_a_token_that_never_expires_is_checked_once() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("token-file-root");
    let token_file = dir.path().join("vault-token");
    std::fs::write(&token_file, &vault.root_token).unwrap();
    let sink = dir.path().join("sink");
    let config = AgentConfig::new(&vault.addr, "token_file")
        .method_config("token_file_path", &quoted_path(&token_file))
        .file_sink(&sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();
    let agent = Agent::start(&config, &["-log-level=debug"]).unwrap();

    assert_eq!(first_token(&sink, FIRST_TOKEN).unwrap(), vault.root_token);
    e2e::pause(Duration::from_secs(3));

    let logs = agent.logs();
    assert_eq!(
        count_lines(&logs, "path=auth/token/lookup-self"),
        1,
        "{logs}"
    );
    assert_eq!(count_lines(&logs, "renew-self"), 0, "{logs}");
    assert!(is_running(agent.pid()));
}

/// A jwt auth mount trusting a P-256 key made for this test, with role `app` for the
/// audience `e2e`; returns the mount and the signing key (PKCS#8 PEM).
fn jwt_mount(vault: &DevVault, dir: &Path, role_options: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let public = dir.join("jwt-public.pem");
    std::fs::write(&public, key.public_key_pem()).unwrap();

    let mount = e2e::unique("jwt");
    vault
        .bao(&["auth", "enable", &format!("-path={mount}"), "jwt"])
        .unwrap();
    let pubkeys = format!("jwt_validation_pubkeys=@{}", public.display());
    vault
        .bao(&["write", &format!("auth/{mount}/config"), &pubkeys])
        .unwrap();
    let mut role = vec![
        "write".to_owned(),
        format!("auth/{mount}/role/app"),
        "role_type=jwt".to_owned(),
        "user_claim=sub".to_owned(),
        "bound_audiences=e2e".to_owned(),
        "token_policies=default".to_owned(),
    ];
    role.extend(role_options.iter().map(|o| (*o).to_owned()));
    let role: Vec<&str> = role.iter().map(String::as_str).collect();
    vault.bao(&role).unwrap();
    (mount, key.serialize_pem())
}

/// A JWT for `subject`, valid for ten minutes, signed with `key`.
fn mint_jwt(key_pem: &str, subject: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": subject, "aud": "e2e", "iat": now, "nbf": now, "exp": now + 600});
    let key = jsonwebtoken::EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn jwt_config(vault: &DevVault, mount: &str, jwt_path: &Path, sink: &Path) -> AgentConfig {
    AgentConfig::new(&vault.addr, "jwt")
        .method(&format!(
            "mount_path = {}",
            quoted(&format!("auth/{mount}"))
        ))
        .method_config("path", &quoted_path(jwt_path))
        .method_config("role", r#""app""#)
        .file_sink(sink)
}

/// The JWT file is removed after reading; the next login (here when the 3 s token reaches
/// its max TTL) uses the JWT remembered from it.
#[test]
fn jwt_login_with_a_key_the_mount_trusts_removes_the_jwt_file() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("jwt");
    let (mount, key) = jwt_mount(vault, dir.path(), &["token_ttl=3s", "token_max_ttl=3s"]);
    let jwt = mint_jwt(&key, "jwt-login");
    let jwt_path = dir.path().join("jwt");
    std::fs::write(&jwt_path, &jwt).unwrap();
    let sink = dir.path().join("token");
    let config = jwt_config(vault, &mount, &jwt_path, &sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();
    let agent = Agent::start(&config, &[]).unwrap();

    let token = first_token(&sink, FIRST_TOKEN).unwrap();

    let data = lookup_self(vault, &token, None).unwrap();
    assert_eq!(data["path"], format!("auth/{mount}/login"));
    assert_eq!(data["meta"]["role"], "app");
    assert!(!jwt_path.exists(), "the jwt file is removed after reading");

    let second = next_token(&sink, &token, Duration::from_secs(10)).unwrap();
    lookup_self(vault, &second, None).unwrap();
    agent.assert_no_secrets(&[&token, &second, &jwt]);
}

/// B12: the JWT sits where it cannot be deleted. The path is a link in /proc to a file
/// this test process holds open: procfs refuses to unlink it, even for root. The failure
/// is reported once while the agent keeps logging in with the file's content.
#[test]
fn b12_a_jwt_that_cannot_be_removed_is_reported_once_and_auth_carries_on() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("b12");
    // Short-lived tokens, so that the agent logs in (and reads the file) every few seconds.
    let (mount, key) = jwt_mount(vault, dir.path(), &["token_ttl=3s", "token_max_ttl=3s"]);
    let jwt = mint_jwt(&key, "b12");
    let real = dir.path().join("jwt");
    std::fs::write(&real, &jwt).unwrap();
    let held = std::fs::File::open(&real).unwrap();
    let undeletable = PathBuf::from(format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        held.as_raw_fd()
    ));
    let sink = dir.path().join("token");
    let config = jwt_config(vault, &mount, &undeletable, &sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();
    let mut agent = Agent::start(&config, &[]).unwrap();

    agent
        .wait_for_log("generation=3", Duration::from_secs(20))
        .unwrap();

    let logs = agent.logs();
    assert_eq!(
        count_lines(&logs, "cannot remove the credential file"),
        1,
        "{logs}"
    );
    assert!(logs.contains(&undeletable.display().to_string()), "{logs}");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), jwt);
    let token = std::fs::read_to_string(&sink).unwrap();
    lookup_self(vault, &token, None).unwrap();
    agent.assert_no_secrets(&[&token, &jwt]);
    drop(held);
}

/// A CA and a client certificate it signed: (CA PEM, certificate PEM, key PEM).
fn client_identity() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "e2e-agent");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca).unwrap();

    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[test]
fn cert_login_with_a_ca_the_test_made() {
    let vault = e2e::vault_or_skip!();
    let server = PrivateServer::start(vault, Feature::Tls).unwrap();
    let dir = e2e::work_dir("cert");
    let (ca, cert, key) = client_identity();
    let [ca_path, cert_path, key_path] =
        ["ca.pem", "client.pem", "client-key.pem"].map(|name| dir.path().join(name));
    std::fs::write(&ca_path, ca).unwrap();
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();

    server.bao(&["auth", "enable", "cert"]).unwrap();
    let certificate = format!("certificate=@{}", ca_path.display());
    server
        .bao(&[
            "write",
            "auth/cert/certs/agent",
            &certificate,
            "token_policies=default",
            "token_ttl=5m",
        ])
        .unwrap();

    let sink = dir.path().join("token");
    let server_ca = server.ca_cert.as_deref().unwrap();
    let config = AgentConfig::new(&server.addr, "cert")
        .vault(&format!("ca_cert = {}", quoted_path(server_ca)))
        .method_config("name", r#""agent""#)
        .method_config("client_cert", &quoted_path(&cert_path))
        .method_config("client_key", &quoted_path(&key_path))
        .file_sink(&sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();
    let agent = Agent::start(&config, &[]).unwrap();

    let token = first_token(&sink, FIRST_TOKEN).unwrap();

    let out = server
        .bao_as(&token, &["token", "lookup", "-format=json"])
        .unwrap();
    let data: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(data["data"]["path"], "auth/cert/login");
    assert_eq!(data["data"]["meta"]["common_name"], "e2e-agent");
    agent.assert_no_secrets(&[&token, &key]);
}

/// A refused login backs off: 1 s, then doubling (less up to a quarter) towards 5 min. The
/// server's own audit log counts the attempts; in 20 s Vault's schedule makes 5 (at 0, 1,
/// 2.5-3, 5.5-7 and 11.5-15 s), where a retry loop without backoff makes hundreds.
#[test]
fn a_refused_login_backs_off_as_the_server_sees_it() {
    let vault = e2e::vault_or_skip!();
    let server = PrivateServer::start(vault, Feature::FileAudit).unwrap();
    let dir = e2e::work_dir("login-backoff");
    server.bao(&["auth", "enable", "approle"]).unwrap();
    server
        .bao(&["write", "auth/approle/role/app", "token_ttl=5m"])
        .unwrap();
    let out = server
        .bao(&["read", "-field=role_id", "auth/approle/role/app/role-id"])
        .unwrap();
    let role_id = out.trim();
    let wrong = "7d0c1f8e-wrong-secret-id-e2e0c0ffee00";
    let files = AppRoleFiles {
        role_id: dir.path().join("role_id"),
        secret_id: dir.path().join("secret_id"),
    };
    std::fs::write(&files.role_id, role_id).unwrap();
    std::fs::write(&files.secret_id, wrong).unwrap();
    let sink = dir.path().join("token");
    let config = AgentConfig::new(&server.addr, "approle")
        .method_config("role_id_file_path", &quoted_path(&files.role_id))
        .method_config("secret_id_file_path", &quoted_path(&files.secret_id))
        .method_config("remove_secret_id_file_after_reading", "false")
        .file_sink(&sink)
        .write(&dir.path().join("agent.hcl"))
        .unwrap();

    let mut agent = Agent::start(&config, &[]).unwrap();
    e2e::pause(Duration::from_secs(20));
    let attempts = e2e::auth::audited_requests(&server.audit_log(), "auth/approle/login").unwrap();
    let logged = count_lines(&agent.logs(), "login failed");
    eprintln!("login backoff: the server saw {attempts} login attempts in 20 s");

    assert!((4..=6).contains(&attempts), "{attempts} attempts");
    assert_eq!(logged, attempts, "{}", agent.logs());
    assert!(is_running(agent.pid()));
    assert!(!sink.exists());
    agent.assert_no_secrets(&[role_id, wrong]);

    // A stop request does not wait for the backoff, now several seconds long, to run out.
    agent.signal(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(Duration::from_secs(2)).unwrap();
    assert!(status.success(), "{status}");
}

/// A credential file that is missing, empty or unreadable: the login is retried, the log
/// names the file, nothing panics and no credential shows; once the file is repaired the
/// next attempt logs in.
#[test]
fn bad_credential_files_are_named_and_retried() {
    let vault = e2e::vault_or_skip!();

    fn check(
        vault: &DevVault,
        name: &str,
        spoil: fn(&AppRoleFiles),
        needle: fn(&AppRoleFiles) -> String,
    ) {
        let scene = Scene::new(vault, name, &["token_ttl=5m"]).unwrap();
        spoil(&scene.files);
        let mut agent = scene.start(&scene.config(vault)).unwrap();

        let expected = needle(&scene.files);
        agent
            .wait_for_log(&expected, Duration::from_secs(10))
            .unwrap();
        agent
            .wait_for_log("retry_in=", Duration::from_secs(5))
            .unwrap();

        let logs = agent.logs();
        assert!(!logs.contains("panicked"), "{name}: {logs}");
        assert!(is_running(agent.pid()), "{name}: {logs}");
        assert!(!scene.sink.exists(), "{name}");

        // Repaired, the files are read at the next attempt, a second or so later.
        for path in [&scene.files.role_id, &scene.files.secret_id] {
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
        AppRoleFiles::write(scene.dir.path(), &scene.role).unwrap();
        let token = first_token(&scene.sink, Duration::from_secs(10)).unwrap();
        lookup_self(vault, &token, None).unwrap();
        agent.assert_no_secrets(&[&token, &scene.role.role_id, &scene.role.secret_id]);
    }

    let read_role_id =
        |f: &AppRoleFiles| format!("cannot read the role_id file {}", f.role_id.display());
    let read_secret_id =
        |f: &AppRoleFiles| format!("cannot read the secret_id file {}", f.secret_id.display());

    check(
        vault,
        "no-role-id",
        |f| std::fs::remove_file(&f.role_id).unwrap(),
        read_role_id,
    );
    check(
        vault,
        "empty-role-id",
        |f| std::fs::write(&f.role_id, " \n").unwrap(),
        |f| format!("the role_id file {} is empty", f.role_id.display()),
    );
    check(
        vault,
        "secret-id-directory",
        |f| {
            std::fs::remove_file(&f.secret_id).unwrap();
            std::fs::create_dir(&f.secret_id).unwrap();
        },
        read_secret_id,
    );
    check(
        vault,
        "secret-id-dangling",
        |f| {
            std::fs::remove_file(&f.secret_id).unwrap();
            std::os::unix::fs::symlink("/nonexistent/secret", &f.secret_id).unwrap();
        },
        read_secret_id,
    );
}

#[test]
fn exit_after_auth_writes_every_sink_then_exits_zero() {
    let vault = e2e::vault_or_skip!();

    fn check(vault: &DevVault, from_flag: bool) {
        let scene = Scene::new(vault, "exit-after-auth", &["token_ttl=5m"]).unwrap();
        let second_sink = scene.path("second-token");
        let mut config = scene.config(vault).file_sink(&second_sink);
        if !from_flag {
            config = config.top("exit_after_auth = true");
        }
        let path = config.write(&scene.path("agent.hcl")).unwrap();
        let args: &[&str] = if from_flag {
            &["-exit-after-auth"]
        } else {
            &[]
        };
        let mut agent = Agent::start(&path, args).unwrap();

        let status = agent.wait_exit(Duration::from_secs(15)).unwrap();

        assert!(
            status.success(),
            "flag {from_flag}: {status}\n{}",
            agent.logs()
        );
        let token = std::fs::read_to_string(&scene.sink).unwrap();
        assert_eq!(std::fs::read_to_string(&second_sink).unwrap(), token);
        lookup_self(vault, &token, None).unwrap();
        agent.assert_no_secrets(&[&token, &scene.role.role_id, &scene.role.secret_id]);
    }

    check(vault, true);
    check(vault, false);
}

/// Namespaces for B16: `ns` with AppRole (role `app`, policy `reader`) and two children,
/// `child` and `other`, each with a KV v2 mount `kv` holding `app` = {k: <child name>}.
struct Namespaces {
    ns: String,
    role_id: String,
    secret_id: String,
}

impl Namespaces {
    fn create(vault: &DevVault, dir: &Path) -> Self {
        let ns = e2e::unique("ns");
        let in_ns = format!("-namespace={ns}");
        vault.bao(&["namespace", "create", &ns]).unwrap();
        for child in ["child", "other"] {
            vault.bao(&["namespace", "create", &in_ns, child]).unwrap();
            let in_child = format!("-namespace={ns}/{child}");
            vault
                .bao(&["secrets", "enable", &in_child, "-path=kv", "kv-v2"])
                .unwrap();
            vault
                .bao(&["kv", "put", &in_child, "kv/app", &format!("k={child}")])
                .unwrap();
        }

        let policy = dir.join("reader.hcl");
        std::fs::write(
            &policy,
            "path \"child/kv/data/app\" { capabilities = [\"read\"] }\n\
             path \"other/kv/data/app\" { capabilities = [\"read\"] }\n",
        )
        .unwrap();
        let policy = policy.display().to_string();
        vault
            .bao(&["policy", "write", &in_ns, "reader", &policy])
            .unwrap();
        vault.bao(&["auth", "enable", &in_ns, "approle"]).unwrap();
        vault
            .bao(&[
                "write",
                &in_ns,
                "auth/approle/role/app",
                "token_policies=reader",
                "token_ttl=5m",
            ])
            .unwrap();
        let role_id = vault
            .bao(&[
                "read",
                &in_ns,
                "-field=role_id",
                "auth/approle/role/app/role-id",
            ])
            .unwrap();
        let secret_id = vault
            .bao(&[
                "write",
                &in_ns,
                "-f",
                "-field=secret_id",
                "auth/approle/role/app/secret-id",
            ])
            .unwrap();
        Self {
            ns,
            role_id: role_id.trim().to_owned(),
            secret_id: secret_id.trim().to_owned(),
        }
    }

    fn config(&self, vault: &DevVault, dir: &Path, sink: &Path) -> AgentConfig {
        let role = AppRole {
            mount: "approle".to_owned(),
            role_id: self.role_id.clone(),
            secret_id: self.secret_id.clone(),
        };
        let files = AppRoleFiles::write(dir, &role).unwrap();
        AgentConfig::approle(vault, &role, &files).file_sink(sink)
    }
}

/// B16, cases (a) to (c): the login goes to the namespace once, whether it comes from the
/// method, from `VAULT_NAMESPACE`, or from both.
#[test]
fn b16_login_goes_to_the_namespace_once() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("b16-login");
    let spaces = Namespaces::create(vault, dir.path());
    let method_ns = format!("namespace = {}", quoted(&spaces.ns));

    let cases: [(&str, bool, Option<&str>); 3] = [
        ("a: the method's namespace", true, None),
        (
            "b: VAULT_NAMESPACE and the method's",
            true,
            Some(&spaces.ns),
        ),
        ("c: VAULT_NAMESPACE only", false, Some(&spaces.ns)),
    ];
    for (index, (case, in_method, env)) in cases.into_iter().enumerate() {
        let sink = dir.path().join(format!("token-{index}"));
        let mut config = spaces
            .config(vault, dir.path(), &sink)
            .top("exit_after_auth = true");
        if in_method {
            config = config.method(&method_ns);
        }
        let path = config
            .write(&dir.path().join(format!("agent-{index}.hcl")))
            .unwrap();
        let env: Vec<(&str, &str)> = env.map(|ns| ("VAULT_NAMESPACE", ns)).into_iter().collect();
        let mut agent = Agent::start_with_env(&path, &[], &env).unwrap();

        let status = agent.wait_exit(Duration::from_secs(15)).unwrap();

        assert!(status.success(), "{case}: {status}\n{}", agent.logs());
        let token = std::fs::read_to_string(&sink).unwrap();
        let data = lookup_self(vault, &token, Some(&spaces.ns)).unwrap();
        assert_eq!(data["path"], "auth/approle/login", "{case}");
        assert_eq!(data["namespace_path"], format!("{}/", spaces.ns), "{case}");
        agent.assert_no_secrets(&[&token, &spaces.role_id, &spaces.secret_id]);
    }
}

/// B16, case (d): the login goes to the method's namespace while proxied requests go to
/// `vault.namespace`, and a namespace the client names itself is forwarded as it is. Then
/// the documented precedence: `VAULT_NAMESPACE` overrides `vault.namespace` from the file
/// (for proxied requests; the login stays in the method's namespace).
#[test]
fn b16_login_in_the_method_namespace_requests_in_vault_namespace() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("b16-proxy");
    let spaces = Namespaces::create(vault, dir.path());
    let [child, other] = ["child", "other"].map(|name| format!("{}/{name}", spaces.ns));

    // (environment, where a request without a namespace goes, a namespace a client names)
    let cases = [(None, "child", &other), (Some(&other), "other", &child)];
    for (index, (env, by_default, named)) in cases.into_iter().enumerate() {
        let port = e2e::free_port();
        let sink = dir.path().join(format!("token-{index}"));
        let config = spaces
            .config(vault, dir.path(), &sink)
            .vault(&format!("namespace = {}", quoted(&child)))
            .method(&format!("namespace = {}", quoted(&spaces.ns)))
            .top(&format!(
                "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
                 api_proxy {{\n  use_auto_auth_token = true\n}}"
            ))
            .write(&dir.path().join(format!("agent-{index}.hcl")))
            .unwrap();
        let env: Vec<(&str, &str)> = env
            .map(|ns| ("VAULT_NAMESPACE", ns.as_str()))
            .into_iter()
            .collect();
        let mut agent = Agent::start_with_env(&config, &[], &env).unwrap();
        let token = first_token(&sink, FIRST_TOKEN).unwrap();
        agent
            .wait_for_log("listener ready", Duration::from_secs(5))
            .unwrap();

        let data = lookup_self(vault, &token, Some(&spaces.ns)).unwrap();
        assert_eq!(data["namespace_path"], format!("{}/", spaces.ns), "{env:?}");

        let url = format!("http://127.0.0.1:{port}/v1/kv/data/app");
        let (status, body) = http_get(&url, None);
        assert_eq!(status, 200, "{env:?}: {body}");
        assert_eq!(body["data"]["data"]["k"], by_default, "{env:?}");

        let (status, body) = http_get(&url, Some(named));
        assert_eq!(status, 200, "{env:?}: {body}");
        let named_child = named.rsplit('/').next().unwrap();
        assert_eq!(body["data"]["data"]["k"], named_child, "{env:?}");

        agent.assert_no_secrets(&[&token, &spaces.role_id, &spaces.secret_id]);
    }
}

/// A GET through the agent's listener without a token, with `X-Vault-Namespace` when given.
fn http_get(url: &str, namespace: Option<&str>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new().get(url);
        if let Some(namespace) = namespace {
            request = request.header("x-vault-namespace", namespace);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    })
}
