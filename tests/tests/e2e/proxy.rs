//! The caching proxy driven by the real `bao` CLI (issue 4's lab): the agent logs in with
//! AppRole, writes a sink, and serves `cache { use_auto_auth_token = true }` on a TCP
//! listener and a Unix socket. The CLI reaches Vault only through the agent (`BAO_ADDR`
//! points at a dead port) and sends no token of its own unless a test gives one. Tokens,
//! database credentials from the real PostgreSQL, revocations and `cache-clear`; plain
//! HTTP shows what the CLI hides (`X-Cache`, `Age`).

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::time::{Duration, Instant};

use e2e::DevVault;
use e2e::lab::{Call, Credentials, Database, Lab, Via};
use serde_json::{Value, json};

/// The body `bao token create` sends with no flags (OpenBao 2.x), so that a raw request can
/// ask the very question the CLI asked.
fn cli_create_body() -> Value {
    json!({
        "ttl": "0s",
        "explicit_max_ttl": "0s",
        "period": "0s",
        "display_name": "",
        "num_uses": 0,
        "renewable": true,
        "type": "service",
        "entity_alias": "",
    })
}

/// `POST /v1/auth/token/create` with the CLI's body, as the CLI sends it.
fn raw_create() -> Call {
    Call::post("/v1/auth/token/create", &cli_create_body()).header("X-Vault-Request", "true")
}

fn client_token(answer: &Value) -> String {
    answer["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no client_token in {answer}"))
        .to_owned()
}

/// `bao token create` through the agent, with the agent's own token.
fn cli_create(lab: &Lab, via: Via) -> String {
    client_token(&lab.cli_json(via, None, 2, &["token", "create"]).unwrap())
}

/// `bao read <creds path>` through the agent, as `token` or with the agent's token.
fn cli_creds(lab: &Lab, db: &Database, token: Option<&str>) -> Credentials {
    let secret = lab
        .cli_json(Via::Tcp, token, 1, &["read", &db.creds_path()])
        .unwrap();
    Credentials::from_secret(&secret).unwrap()
}

/// `POST /agent/v1/cache-clear` with `body`; the agent answers 200 with nothing.
fn cache_clear(lab: &Lab, body: &Value) {
    let answer = lab
        .http()
        .send(&Call::post("/agent/v1/cache-clear", body))
        .unwrap();
    assert_eq!(answer.status, 200, "cache-clear {body}: {}", answer.body);
}

#[test]
fn the_cli_gets_one_cached_token_over_tcp_and_the_unix_socket() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "cli-token").unwrap();

    let token = cli_create(&lab, Via::Tcp);
    assert_eq!(cli_create(&lab, Via::Tcp), token);
    assert_eq!(
        cli_create(&lab, Via::Unix),
        token,
        "the socket shares the cache"
    );

    // The CLI hides headers; the same question as raw HTTP shows where the answer came from.
    let answer = lab.http().send(&raw_create()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.x_cache(), "HIT");
    assert!(answer.header("age").is_some(), "a hit carries Age");
    assert_eq!(client_token(&answer.json().unwrap()), token);

    // A real token, created under the agent's own.
    let looked_up = vault
        .bao(&["token", "lookup", "-format=json", &token])
        .unwrap();
    let looked_up: Value = serde_json::from_str(&looked_up).unwrap();
    assert_eq!(looked_up["data"]["orphan"], false);

    lab.agent
        .assert_no_secrets(&[&lab.token, &token, &lab.role.role_id, &lab.role.secret_id]);
}

#[test]
fn database_credentials_are_cached_log_in_and_are_renewed_by_the_agent() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let db = Database::enable(vault, pg, "30s").unwrap();
    let mut lab = Lab::start(vault, "db-renew").unwrap();
    let issued = Instant::now();

    let first = cli_creds(&lab, &db, None);
    assert_eq!(
        cli_creds(&lab, &db, None),
        first,
        "the second read is the cached one"
    );
    first.log_in(pg).unwrap();
    let raw = lab
        .http()
        .send(&Call::get(&format!("/v1/{}", db.creds_path())))
        .unwrap();
    assert_eq!(raw.x_cache(), "HIT", "{}", raw.body);
    assert_eq!(
        Credentials::from_secret(&raw.json().unwrap()).unwrap(),
        first
    );

    // The agent renews the 30 s lease at about two thirds of it; the CLI sees it through the
    // agent, as `lease lookup` is never cached.
    let expire_time = || {
        let lookup = lab.cli_json(Via::Tcp, None, 2, &["lease", "lookup", &first.lease_id]);
        lookup.ok()?["data"]["expire_time"]
            .as_str()
            .map(str::to_owned)
    };
    let initial = expire_time().unwrap();
    let renewed = || {
        e2e::pause(Duration::from_millis(500));
        expire_time().is_some_and(|now| now > initial)
    };
    e2e::wait_for(
        "the agent to renew the lease",
        Duration::from_secs(35),
        renewed,
    )
    .unwrap();
    eprintln!("lease renewed {:?} after it was issued", issued.elapsed());

    // The renewal reached PostgreSQL too: the role still logs in after its first 30 s.
    let past_first_ttl = Duration::from_secs(32).saturating_sub(issued.elapsed());
    e2e::pause(past_first_ttl);
    first.log_in(pg).unwrap();
    assert_eq!(cli_creds(&lab, &db, None), first);
    lab.agent
        .wait_for_log("renewed", Duration::from_secs(1))
        .unwrap();

    lab.agent.assert_no_secrets(&[
        &lab.token,
        &first.password,
        &lab.role.role_id,
        &lab.role.secret_id,
    ]);
}

#[test]
fn cache_clear_by_lease_request_path_and_token_gives_fresh_credentials() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let db = Database::enable(vault, pg, "5m").unwrap();
    let lab = Lab::start(vault, "db-clear").unwrap();

    let first = cli_creds(&lab, &db, None);
    assert_eq!(cli_creds(&lab, &db, None), first);

    cache_clear(&lab, &json!({"type": "lease", "value": first.lease_id}));
    let second = cli_creds(&lab, &db, None);
    assert_ne!(second.lease_id, first.lease_id, "cleared by lease");
    assert_eq!(cli_creds(&lab, &db, None), second, "cached again");

    let prefix = format!("/v1/{}/creds", db.mount);
    cache_clear(&lab, &json!({"type": "request_path", "value": prefix}));
    let third = cli_creds(&lab, &db, None);
    assert_ne!(third.lease_id, second.lease_id, "cleared by request path");
    assert_eq!(cli_creds(&lab, &db, None), third);

    // By token: a child token made through the agent, its credentials, then the child.
    let child = cli_create(&lab, Via::Tcp);
    let childs = cli_creds(&lab, &db, Some(&child));
    assert_ne!(
        childs.lease_id, third.lease_id,
        "another token, another entry"
    );
    assert_eq!(cli_creds(&lab, &db, Some(&child)), childs);
    cache_clear(&lab, &json!({"type": "token", "value": child}));
    let after = cli_creds(&lab, &db, Some(&child));
    assert_ne!(after.lease_id, childs.lease_id, "cleared with its token");
    assert_ne!(
        cli_create(&lab, Via::Tcp),
        child,
        "the token itself was forgotten"
    );
    assert_eq!(
        cli_creds(&lab, &db, None),
        third,
        "the agent's own entry stays"
    );
    third.log_in(pg).unwrap();

    lab.agent.assert_no_secrets(&[
        &lab.token,
        &child,
        &first.password,
        &second.password,
        &third.password,
        &childs.password,
        &after.password,
        &lab.role.role_id,
        &lab.role.secret_id,
    ]);
}

/// `bao lease revoke` puts the lease in the path and asks for `sync=false`, which Vault
/// answers with 202. Vault's agent evicts only on 204 with the lease in the body, so it keeps
/// serving the revoked credentials; we evict on either.
#[test]
fn a_lease_revoked_through_the_agent_is_evicted_and_stops_logging_in() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let db = Database::enable(vault, pg, "5m").unwrap();
    let lab = Lab::start(vault, "db-revoke").unwrap();

    let first = cli_creds(&lab, &db, None);
    first.log_in(pg).unwrap();
    lab.cli(Via::Tcp, None, &["lease", "revoke", &first.lease_id])
        .unwrap();

    let second = cli_creds(&lab, &db, None);
    assert_ne!(
        second.lease_id, first.lease_id,
        "the revoked lease was served again"
    );
    second.log_in(pg).unwrap();
    e2e::wait_for(
        "the revoked credentials to stop logging in",
        Duration::from_secs(10),
        || first.log_in(pg).is_err(),
    )
    .unwrap();

    lab.agent.assert_no_secrets(&[
        &lab.token,
        &first.password,
        &second.password,
        &lab.role.role_id,
        &lab.role.secret_id,
    ]);
}

#[test]
fn a_child_token_revoked_through_the_agent_is_evicted() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "token-revoke").unwrap();

    let child = cli_create(&lab, Via::Tcp);
    assert_eq!(cli_create(&lab, Via::Unix), child);
    lab.cli(Via::Unix, None, &["token", "revoke", &child])
        .unwrap();
    assert!(
        vault.bao(&["token", "lookup", &child]).is_err(),
        "Vault still knows the revoked token"
    );

    let answer = lab.http().send(&raw_create()).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.x_cache(), "MISS");
    let fresh = client_token(&answer.json().unwrap());
    assert_ne!(fresh, child);
    assert_eq!(
        cli_create(&lab, Via::Tcp),
        fresh,
        "the new token is cached in turn"
    );

    lab.agent.assert_no_secrets(&[
        &lab.token,
        &child,
        &fresh,
        &lab.role.role_id,
        &lab.role.secret_id,
    ]);
}

/// PKI certificates with `generate_lease = true` have a lease that cannot be renewed: Vault
/// passes them through uncached, and so do we.
#[test]
fn non_renewable_pki_certificates_pass_through_uncached() {
    let vault = e2e::vault_or_skip!();
    let mount = pki_with_leases(vault);
    let lab = Lab::start(vault, "pki").unwrap();

    let issue = Call::post(
        &format!("/v1/{mount}/issue/app"),
        &json!({"common_name": "a.lab.test", "ttl": "10m"}),
    );
    let mut serials = Vec::new();
    for _ in 0..2 {
        let answer = lab.http().send(&issue).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.x_cache(), "MISS");
        let secret = answer.json().unwrap();
        assert_eq!(secret["renewable"], false);
        assert_ne!(
            secret["lease_id"], "",
            "generate_lease gives the certificate a lease"
        );
        serials.push(secret["data"]["serial_number"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        serials[0], serials[1],
        "the second issue was answered from the cache"
    );

    let by_cli = |_| {
        let path = format!("{mount}/issue/app");
        let secret = lab
            .cli_json(
                Via::Tcp,
                None,
                1,
                &["write", &path, "common_name=b.lab.test", "ttl=10m"],
            )
            .unwrap();
        secret["data"]["serial_number"].as_str().unwrap().to_owned()
    };
    let cli_serials: Vec<String> = (0..2).map(by_cli).collect();
    assert_ne!(cli_serials[0], cli_serials[1]);

    lab.agent
        .assert_no_secrets(&[&lab.token, &lab.role.role_id, &lab.role.secret_id]);
}

/// A PKI engine at a unique mount with a root CA and a role `app` issuing leased
/// certificates for `*.lab.test`.
fn pki_with_leases(vault: &DevVault) -> String {
    let mount = e2e::unique("pki");
    vault
        .bao(&["secrets", "enable", &format!("-path={mount}"), "pki"])
        .unwrap();
    vault
        .bao(&[
            "write",
            &format!("{mount}/root/generate/internal"),
            "common_name=lab.test",
            "ttl=24h",
        ])
        .unwrap();
    vault
        .bao(&[
            "write",
            &format!("{mount}/roles/app"),
            "allowed_domains=lab.test",
            "allow_subdomains=true",
            "generate_lease=true",
            "max_ttl=1h",
        ])
        .unwrap();
    mount
}
