//! The Vault client (`vault-client`) against the real dev server: typed calls, the raw
//! forward the proxy relies on, retries against a closed port, and TLS settings against
//! a second dev server of our own that serves TLS.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use vault_client::bytes::Bytes;
use vault_client::http::{self, Method, StatusCode};
use vault_client::{
    Client, ClientSettings, LoginResponse, RequestError, RetryPolicy, TOKEN_HEADER, Token,
};

/// A client of the shared dev server, retrying once so a failure shows quickly.
fn client_of(addr: &str) -> Client {
    Client::new(&ClientSettings {
        address: addr.to_owned(),
        retry: RetryPolicy::new(1),
        timeout: Duration::from_secs(10),
        ..ClientSettings::default()
    })
    .unwrap()
}

/// `auth.client_token` of a `bao ... -format=json` answer.
fn client_token(answer: &Value) -> Token {
    Token::new(answer["auth"]["client_token"].as_str().unwrap())
}

/// Creates a token as root with the given `auth/token/create` parameters.
fn create_token(vault: &e2e::DevVault, parameters: &[&str]) -> Value {
    let mut args = vec!["write", "auth/token/create"];
    args.extend_from_slice(parameters);
    vault.bao_json(&args).unwrap()
}

#[tokio::test]
async fn a_token_created_by_root_looks_itself_up() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let created = create_token(vault, &["policies=default", "ttl=1h"]);
    let token = client_token(&created);

    let info = client.lookup_self(&token).await.unwrap();

    assert_eq!(info.policies, ["default"]);
    assert_eq!(info.accessor, created["auth"]["accessor"].as_str().unwrap());
    assert_eq!(info.token_type, "service");
    assert!(info.renewable);
    assert!(info.ttl > Duration::from_secs(3500) && info.ttl <= Duration::from_secs(3600));
    assert!(info.expire_time.is_some());
}

#[tokio::test]
async fn renew_self_extends_the_token() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let created = create_token(
        vault,
        &["policies=default", "ttl=30s", "explicit_max_ttl=1h"],
    );
    let token = client_token(&created);

    let renewed = client
        .renew_self(&token, Some(Duration::from_secs(600)))
        .await
        .unwrap();

    assert_eq!(renewed.lease_duration, Duration::from_secs(600));
    assert!(renewed.renewable);
    assert_eq!(renewed.client_token, token);
    let ttl = client.lookup_self(&token).await.unwrap().ttl;
    assert!(ttl > Duration::from_secs(30), "{ttl:?}");
}

#[tokio::test]
async fn a_rejected_token_is_never_quoted() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let token = Token::new("s.NotARealTokenButSecretAnyway");

    let error = client.lookup_self(&token).await.unwrap_err();

    assert!(error.is_permission_denied(), "{error}");
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("NotARealToken"), "{shown}");
    assert!(shown.contains("permission denied"), "{shown}");
}

#[tokio::test]
async fn a_wrapped_secret_is_looked_up_then_unwrapped_once() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let path = format!("secret/{}", e2e::unique("wrapped"));
    vault
        .bao(&["kv", "put", &path, "password=hunter22"])
        .unwrap();
    let data_path = format!("secret/data/{}", &path["secret/".len()..]);
    let wrapped = vault
        .bao_json(&["read", "-wrap-ttl=5m", &data_path])
        .unwrap();
    let wrapping_token = Token::new(wrapped["wrap_info"]["token"].as_str().unwrap());

    let lookup = client.wrap_lookup(&wrapping_token).await.unwrap();
    assert_eq!(lookup.creation_ttl, Duration::from_secs(300));
    assert_eq!(lookup.creation_path, data_path);

    let unwrapped = client.unwrap(&wrapping_token).await.unwrap();
    assert_eq!(unwrapped.expose()["data"]["data"]["password"], "hunter22");
    assert!(!format!("{unwrapped:?}").contains("hunter22"));

    // A wrapping token is single-use.
    let again = client.unwrap(&wrapping_token).await.unwrap_err();
    assert_eq!(again.status(), Some(StatusCode::BAD_REQUEST), "{again}");
    assert!(
        !again.to_string().contains(wrapping_token.expose()),
        "{again}"
    );
}

#[tokio::test]
async fn a_token_wrapped_for_a_sink_unwraps_to_itself() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let token = client_token(&create_token(vault, &["ttl=10m"]));

    let wrap_info = client.wrap(&token, Duration::from_secs(120)).await.unwrap();
    assert_eq!(wrap_info.ttl, Duration::from_secs(120));
    assert_eq!(wrap_info.creation_path, "sys/wrapping/wrap");

    let unwrapped = client.unwrap(&wrap_info.token).await.unwrap();
    assert_eq!(unwrapped.expose()["data"]["token"], token.expose());
}

#[tokio::test]
async fn approle_logs_in_plainly_and_wrapped() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let role = vault
        .approle(&["token_policies=default", "token_ttl=20m"])
        .unwrap();
    let mount = format!("auth/{}/", role.mount);
    let credentials = || json!({"role_id": role.role_id, "secret_id": role.secret_id});

    let LoginResponse::Auth(auth) = client.login(&mount, credentials(), None).await.unwrap() else {
        panic!("a plain login answered with a wrapping token");
    };
    assert_eq!(auth.lease_duration, Duration::from_secs(1200));
    assert!(auth.token_policies.contains(&"default".to_owned()));
    assert_eq!(
        auth.metadata.get("role_name").map(String::as_str),
        Some("app")
    );
    client.lookup_self(&auth.client_token).await.unwrap();

    let wrapped = client
        .login(&mount, credentials(), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    let LoginResponse::Wrapped(wrap_info) = wrapped else {
        panic!("a login with wrap_ttl answered with a plain token");
    };
    assert_eq!(wrap_info.ttl, Duration::from_secs(60));
    let unwrapped = client.unwrap(&wrap_info.token).await.unwrap();
    let inner = Token::new(unwrapped.expose()["auth"]["client_token"].as_str().unwrap());
    client.lookup_self(&inner).await.unwrap();
}

#[tokio::test]
async fn the_namespace_header_selects_the_namespace() {
    let vault = e2e::vault_or_skip!();
    let namespace = e2e::unique("ns");
    let flag = format!("-namespace={namespace}");
    vault.bao(&["namespace", "create", &namespace]).unwrap();
    vault.bao(&["auth", "enable", &flag, "approle"]).unwrap();
    vault
        .bao(&["write", &flag, "auth/approle/role/app", "token_ttl=5m"])
        .unwrap();
    let role_id = vault
        .bao_json(&["read", &flag, "auth/approle/role/app/role-id"])
        .unwrap()["data"]["role_id"]
        .clone();
    let secret_id = vault
        .bao_json(&["write", &flag, "-f", "auth/approle/role/app/secret-id"])
        .unwrap()["data"]["secret_id"]
        .clone();
    let credentials = json!({"role_id": role_id, "secret_id": secret_id});

    // Outside the namespace there is no such mount.
    let root_level = client_of(&vault.addr);
    let error = root_level
        .login("auth/approle", credentials.clone(), None)
        .await
        .unwrap_err();
    assert!(error.status().is_some(), "{error}");

    // From the settings, and as a cheap copy of a client without one.
    let from_settings = Client::new(&ClientSettings {
        address: vault.addr.clone(),
        namespace: Some(namespace.clone()),
        retry: RetryPolicy::NONE,
        ..ClientSettings::default()
    })
    .unwrap();
    for client in [
        from_settings,
        root_level.with_namespace(&namespace).unwrap(),
    ] {
        let login = client
            .login("auth/approle", credentials.clone(), None)
            .await
            .unwrap();
        let LoginResponse::Auth(auth) = login else {
            panic!("a plain login answered with a wrapping token");
        };
        let info = client.lookup_self(&auth.client_token).await.unwrap();
        assert_eq!(info.path, "auth/approle/login");
    }
}

#[tokio::test]
async fn a_wrong_secret_id_is_refused_without_quoting_it() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let role = vault.approle(&["token_ttl=5m"]).unwrap();
    let wrong = "0badc0de-0000-4000-8000-wrongsecretid";

    let error = client
        .login(
            &format!("auth/{}", role.mount),
            json!({"role_id": role.role_id, "secret_id": wrong}),
            None,
        )
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST), "{error}");
    assert!(!format!("{error} {error:?}").contains(wrong), "{error}");
}

#[tokio::test]
async fn a_lease_is_renewed() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let client = client_of(&vault.addr);
    let mount = e2e::unique("db");
    vault
        .bao(&["secrets", "enable", &format!("-path={mount}"), "database"])
        .unwrap();
    vault
        .bao(&[
            "write",
            &format!("{mount}/config/pg"),
            "plugin_name=postgresql-database-plugin",
            "allowed_roles=app",
            &format!(
                "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/postgres?sslmode=disable",
                pg.host, pg.port
            ),
            &format!("username={}", pg.user),
            &format!("password={}", pg.password),
        ])
        .unwrap();
    vault
        .bao(&[
            "write",
            &format!("{mount}/roles/app"),
            "db_name=pg",
            "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "default_ttl=1m",
            "max_ttl=1h",
        ])
        .unwrap();
    let creds = vault
        .bao_json(&["read", &format!("{mount}/creds/app")])
        .unwrap();
    let lease_id = creds["lease_id"].as_str().unwrap();
    let root = Token::new(&vault.root_token);

    let lease = client
        .renew_lease(&root, lease_id, Some(Duration::from_secs(600)))
        .await
        .unwrap();

    assert_eq!(lease.lease_id, lease_id);
    assert_eq!(lease.lease_duration, Duration::from_secs(600));
    assert!(lease.renewable);
}

#[tokio::test]
async fn a_lease_that_cannot_be_renewed_says_why() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let root = Token::new(&vault.root_token);

    let error = client
        .renew_lease(&root, "secret/no/such/lease", None)
        .await
        .unwrap_err();

    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST), "{error}");
    assert_eq!(error.errors(), ["lease not found"]);
}

#[tokio::test]
async fn revoke_self_ends_the_token() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let token = client_token(&create_token(vault, &["ttl=10m"]));

    client.revoke_self(&token).await.unwrap();

    let error = client.lookup_self(&token).await.unwrap_err();
    assert!(error.is_permission_denied(), "{error}");
}

#[tokio::test]
async fn health_describes_the_dev_server() {
    let vault = e2e::vault_or_skip!();

    let health = client_of(&vault.addr).health().await.unwrap();

    assert_eq!(health.status, StatusCode::OK);
    assert!(health.initialized && !health.sealed && !health.standby);
    assert!(!health.version.is_empty());
}

/// Sends `method path` through [`Client::forward`]; returns status, headers and JSON body
/// (`null` when empty).
async fn forward(
    client: &Client,
    method: &str,
    path: &str,
    token: &str,
    body: &str,
) -> (StatusCode, http::HeaderMap, Value) {
    let request = http::Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path)
        .header(TOKEN_HEADER, token)
        .header("content-type", "application/json")
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap();

    let response = client.forward(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.to_bytes().await.unwrap();
    (parts.status, parts.headers, json_or_null(&bytes))
}

/// The same request straight to the server, without our client.
async fn direct(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{addr}{path}"),
        )
        .header("x-vault-token", token)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_or_null(&response.bytes().await.unwrap()))
}

fn json_or_null(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

#[tokio::test]
async fn forward_relays_get_list_and_put_like_a_direct_request() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);
    let root = vault.root_token.as_str();
    let dir = e2e::unique("fwd");

    // PUT with a body.
    let put = format!("/v1/secret/data/{dir}/one");
    let (status, _, answer) =
        forward(&client, "PUT", &put, root, r#"{"data":{"colour":"teal"}}"#).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["data"]["version"], 1);
    forward(
        &client,
        "PUT",
        &format!("/v1/secret/data/{dir}/two"),
        root,
        r#"{"data":{}}"#,
    )
    .await;

    // GET with a query string.
    let get = format!("/v1/secret/data/{dir}/one?version=1");
    let (status, headers, ours) = forward(&client, "GET", &get, root, "").await;
    let (direct_status, theirs) = direct(&vault.addr, "GET", &get, root, "").await;
    assert_eq!(status.as_u16(), direct_status);
    assert_eq!(ours["data"], theirs["data"]);
    assert_eq!(ours["data"]["data"]["colour"], "teal");
    assert_eq!(headers["content-type"], "application/json");

    // LIST, an extension method, against its query-string twin.
    let list = format!("/v1/secret/metadata/{dir}/");
    let (status, _, ours) = forward(&client, "LIST", &list, root, "").await;
    let listed = format!("{list}?list=true");
    let (_, theirs) = direct(&vault.addr, "GET", &listed, root, "").await;
    assert_eq!(status, StatusCode::OK, "{ours}");
    assert_eq!(ours["data"]["keys"], json!(["one", "two"]));
    assert_eq!(ours["data"], theirs["data"]);
}

#[tokio::test]
async fn forward_relays_errors_verbatim() {
    let vault = e2e::vault_or_skip!();
    let client = client_of(&vault.addr);

    fn check(ours: (StatusCode, Value), theirs: (u16, Value)) {
        assert_eq!(ours.0.as_u16(), theirs.0);
        assert_eq!(ours.1, theirs.1);
    }

    let path = "/v1/secret/data/no-such-entry";
    let (status, _, body) = forward(&client, "GET", path, &vault.root_token, "").await;
    check(
        (status, body),
        direct(&vault.addr, "GET", path, &vault.root_token, "").await,
    );

    let (status, _, body) = forward(&client, "GET", path, "s.bogus", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    check(
        (status, body),
        direct(&vault.addr, "GET", path, "s.bogus", "").await,
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_after_the_configured_retries() {
    let port = e2e::free_port();
    let address = format!("http://127.0.0.1:{port}");
    let client = Client::new(&ClientSettings {
        address: address.clone(),
        retry: RetryPolicy::new(2),
        ..ClientSettings::default()
    })
    .unwrap();
    let token = Token::new("s.TokenThatMustNotShow");
    let request = http::Request::get("/v1/sys/health")
        .header(TOKEN_HEADER, token.expose())
        .body(Bytes::new())
        .unwrap();

    let start = Instant::now();
    let error = client.forward(request).await.unwrap_err();
    let elapsed = start.elapsed();

    assert_eq!(
        error.to_string(),
        format!("cannot reach Vault at {address} after 3 attempts: connection refused")
    );
    assert!(error.is_unreachable());
    assert!(!format!("{error:?}").contains("TokenThatMustNotShow"));
    // Two waits, of 1-1.5 s and 2-3 s; a refused connection itself takes no time.
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4500 + 500), "{elapsed:?}");
}

/// A second dev server of the test's own, serving TLS or a Unix socket; killed when
/// dropped.
struct OwnVault {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl OwnVault {
    /// A dev server serving TLS, with a CA it writes into its directory.
    async fn tls(vault: &e2e::DevVault) -> Result<Self> {
        let dir = e2e::work_dir("tls-vault");
        let port = e2e::free_port();
        let args = [
            "-dev-tls".to_owned(),
            format!("-dev-tls-cert-dir={}", dir.path().display()),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        let addr = format!("https://127.0.0.1:{port}");
        let ca = dir.path().join("vault-ca.pem");

        Self::start(vault, dir, addr, &args, |s| s.ca_cert = Some(ca.clone())).await
    }

    /// A dev server that also listens on a Unix socket.
    async fn unix(vault: &e2e::DevVault) -> Result<Self> {
        let dir = e2e::work_dir("unix-vault");
        let socket = dir.path().join("bao.sock");
        let config = dir.path().join("unix.hcl");
        let listener = format!(
            "listener \"unix\" {{\n  address = \"{}\"\n}}\n",
            socket.display()
        );
        std::fs::write(&config, listener)?;
        let args = [
            format!("-config={}", config.display()),
            format!("-dev-listen-address=127.0.0.1:{}", e2e::free_port()),
        ];
        let addr = format!("unix://{}", socket.display());

        Self::start(vault, dir, addr, &args, |_| {}).await
    }

    async fn start(
        vault: &e2e::DevVault,
        dir: tempfile::TempDir,
        addr: String,
        args: &[String],
        ready_with: impl Fn(&mut ClientSettings),
    ) -> Result<Self> {
        let log = std::fs::File::create(dir.path().join("bao.log"))?;
        let child = Command::new(&vault.bao_bin)
            .args(["server", "-dev", "-dev-root-token-id=root"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting a dev server")?;
        let server = Self { child, addr, dir };

        // Ready once it answers; until its files exist, the client cannot even be built.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(client) = Client::new(&server.settings(&ready_with))
                && client.health().await.is_ok()
            {
                return Ok(server);
            }
            anyhow::ensure!(Instant::now() < deadline, "the dev server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("vault-ca.pem")
    }

    /// Settings for this server, without retries, adjusted by `change`.
    fn settings(&self, change: impl FnOnce(&mut ClientSettings)) -> ClientSettings {
        let mut settings = ClientSettings {
            address: self.addr.clone(),
            retry: RetryPolicy::NONE,
            timeout: Duration::from_secs(10),
            ..ClientSettings::default()
        };
        change(&mut settings);
        settings
    }
}

impl Drop for OwnVault {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn testdata(file: &str) -> PathBuf {
    e2e::workspace_root()
        .join("crates/vault-client/testdata")
        .join(file)
}

#[tokio::test]
async fn tls_settings_reach_a_tls_server_and_cert_login_works() {
    let vault = e2e::vault_or_skip!();
    let server = OwnVault::tls(vault).await.unwrap();
    let ca_dir = tempfile::tempdir().unwrap();
    std::fs::copy(server.ca(), ca_dir.path().join("ca.pem")).unwrap();

    async fn check(settings: vault_client::ClientSettings, expected: Result<(), &str>) {
        let outcome = Client::new(&settings).unwrap().health().await;
        match (outcome, expected) {
            (Ok(_), Ok(())) => {}
            (Err(error), Err(words)) => {
                let message = error.to_string();
                assert!(message.contains(words), "{settings:?}: {message}");
                // A refused handshake fails the same way every time: no retries.
                assert!(message.contains("after 1 attempt:"), "{message}");
            }
            (outcome, expected) => panic!("{settings:?}: got {outcome:?}, expected {expected:?}"),
        }
    }

    check(server.settings(|s| s.ca_cert = Some(server.ca())), Ok(())).await;
    check(
        server.settings(|s| s.ca_path = Some(ca_dir.path().into())),
        Ok(()),
    )
    .await;
    check(server.settings(|s| s.tls_skip_verify = true), Ok(())).await;
    check(server.settings(|_| {}), Err("invalid peer certificate")).await;
    check(
        server.settings(|s| {
            s.ca_cert = Some(server.ca());
            s.tls_server_name = Some("localhost".to_owned());
        }),
        Ok(()),
    )
    .await;
    check(
        server.settings(|s| {
            s.ca_cert = Some(server.ca());
            s.tls_server_name = Some("wrong.example".to_owned());
            s.retry = RetryPolicy::new(3);
        }),
        Err("wrong.example"),
    )
    .await;

    // Cert login: the same login call, on a client that presents a certificate.
    let admin = Client::new(&server.settings(|s| s.ca_cert = Some(server.ca()))).unwrap();
    let mount = e2e::unique("cert");
    let ca_pem = std::fs::read_to_string(testdata("ca.pem")).unwrap();
    let setup = [
        (format!("/v1/sys/auth/{mount}"), json!({"type": "cert"})),
        (
            format!("/v1/auth/{mount}/certs/agent"),
            json!({"certificate": ca_pem, "token_policies": "default"}),
        ),
    ];
    for (path, body) in setup {
        let (status, _, answer) = forward(&admin, "PUT", &path, "root", &body.to_string()).await;
        assert!(status.is_success(), "{path}: {status} {answer}");
    }

    let with_cert = Client::new(&server.settings(|s| {
        s.ca_cert = Some(server.ca());
        s.client_cert = Some(testdata("client-cert.pem"));
        s.client_key = Some(testdata("client-key.pem"));
    }))
    .unwrap();
    let login = with_cert
        .login(&format!("auth/{mount}"), json!({"name": "agent"}), None)
        .await
        .unwrap();
    let LoginResponse::Auth(auth) = login else {
        panic!("a plain login answered with a wrapping token");
    };
    assert!(
        auth.token_policies.contains(&"default".to_owned()),
        "{auth:?}"
    );
    assert_eq!(
        auth.metadata.get("common_name").map(String::as_str),
        Some("agent-test")
    );

    let refused = admin
        .login(&format!("auth/{mount}"), json!({"name": "agent"}), None)
        .await
        .unwrap_err();
    assert!(matches!(refused, RequestError::Api { .. }), "{refused}");
}

#[tokio::test]
async fn a_unix_socket_address_reaches_the_server() {
    let vault = e2e::vault_or_skip!();
    let server = OwnVault::unix(vault).await.unwrap();
    let client = Client::new(&server.settings(|_| {})).unwrap();
    let root = Token::new("root");

    let info = client.lookup_self(&root).await.unwrap();
    assert_eq!(info.policies, ["root"]);

    let (status, _, answer) = forward(&client, "GET", "/v1/sys/mounts", "root", "").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["data"]["secret/"].is_object(), "{answer}");
}
