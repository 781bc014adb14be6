//! The lease cache's rules end to end, through raw HTTP to the agent's listener: an answer
//! never crosses tokens, a wrapped request is never answered from the cache, `cache-clear`
//! of type `all` keeps the auto-auth token in use, entries and clears stay inside their
//! namespace, and the metrics count what happened.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use e2e::lab::{Answer, Call, Credentials, Database, Http, Lab, Via};
use serde_json::{Value, json};

/// `POST /v1/auth/token/create` with a body that names what the test makes.
fn create(name: &str) -> Call {
    Call::post(
        "/v1/auth/token/create",
        &json!({"display_name": name, "ttl": "10m"}),
    )
}

/// Sends `call`, expects 200, and returns the answer.
fn ok(http: &Http, call: &Call) -> Answer {
    http.send(call).unwrap().expect_status(200).unwrap()
}

fn client_token(answer: &Answer) -> String {
    answer.json().unwrap()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_cached_answer_never_crosses_tokens() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "cross-tokens").unwrap();
    let http = lab.http();

    // Two client tokens the cache manages, made through the agent.
    let alice = client_token(&ok(&http, &create("alice")));
    let bob = client_token(&ok(&http, &create("bob")));
    assert_ne!(alice, bob);

    let same = create("grandchild");
    let by_alice = ok(&http, &same.clone().token(&alice));
    assert_eq!(by_alice.x_cache(), "MISS");
    let again = ok(&http, &same.clone().token(&alice));
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(client_token(&again), client_token(&by_alice));

    let by_bob = ok(&http, &same.clone().token(&bob));
    assert_eq!(by_bob.x_cache(), "MISS", "Bob was served Alice's answer");
    assert_ne!(client_token(&by_bob), client_token(&by_alice));
    let by_agent = ok(&http, &same);
    assert_eq!(by_agent.x_cache(), "MISS");
    let seen = [client_token(&by_alice), client_token(&by_bob)];
    assert!(!seen.contains(&client_token(&by_agent)));

    let mut secrets = vec![lab.token.clone(), alice, bob, client_token(&by_agent)];
    secrets.extend(seen);
    assert_no_secrets(&lab, &secrets);
}

#[test]
fn a_wrapped_request_is_never_answered_from_the_cache() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "wrapped").unwrap();
    let http = lab.http();

    let request = create("wrapped");
    let cached = client_token(&ok(&http, &request));
    assert_eq!(ok(&http, &request).x_cache(), "HIT");

    let mut wrapping = Vec::new();
    for _ in 0..2 {
        let answer = ok(&http, &request.clone().header("X-Vault-Wrap-TTL", "1m"));
        assert_eq!(answer.x_cache(), "MISS");
        let body = answer.json().unwrap();
        assert_eq!(
            body["auth"],
            Value::Null,
            "a wrapped answer holds only wrap_info"
        );
        wrapping.push(body["wrap_info"]["token"].as_str().unwrap().to_owned());
    }
    assert_ne!(wrapping[0], wrapping[1]);

    // What was wrapped is a token made just then, not the cached one.
    let unwrapped = vault
        .bao(&["unwrap", "-format=json", &wrapping[0]])
        .unwrap();
    let unwrapped: Value = serde_json::from_str(&unwrapped).unwrap();
    let inner = unwrapped["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(inner, cached);
    assert_eq!(client_token(&ok(&http, &request)), cached, "still cached");

    let mut secrets = vec![lab.token.clone(), cached, inner];
    secrets.extend(wrapping);
    assert_no_secrets(&lab, &secrets);
}

#[test]
fn clear_all_keeps_the_auto_auth_token_in_use() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "clear-all").unwrap();
    let http = lab.http();
    let request = create("before-clear");

    let before = ok(&http, &request);
    assert_eq!(before.x_cache(), "MISS");
    assert_eq!(ok(&http, &request).x_cache(), "HIT");

    ok(
        &http,
        &Call::post("/agent/v1/cache-clear", &json!({"type": "all"})),
    );

    let after = ok(&http, &request);
    assert_eq!(after.x_cache(), "MISS", "the cleared answer was served");
    assert_ne!(client_token(&after), client_token(&before));
    let again = ok(&http, &request);
    assert_eq!(
        again.x_cache(),
        "HIT",
        "nothing is cached after clearing all"
    );
    assert_eq!(client_token(&again), client_token(&after));

    assert_no_secrets(
        &lab,
        &[
            lab.token.clone(),
            client_token(&before),
            client_token(&after),
        ],
    );
}

/// Identical requests arriving together make one upstream call: every caller gets the
/// same token.
#[test]
fn identical_requests_at_once_get_one_answer() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "at-once").unwrap();
    let callers = 8;
    let start = std::sync::Barrier::new(callers);

    let tokens: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                scope.spawn(|| {
                    let http = lab.http();
                    start.wait();
                    client_token(&ok(&http, &create("at-once")))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "{} differ",
        tokens.len()
    );

    let metrics = ok(
        &lab.http(),
        &Call::get("/agent/v1/metrics?format=prometheus"),
    )
    .body;
    assert!(
        metrics.lines().any(|l| l == "vault_agent_cache_miss 1"),
        "{metrics}"
    );

    assert_no_secrets(&lab, &[lab.token.clone(), tokens[0].clone()]);
}

/// The same mount path in two namespaces: two entries, a `request_path` clear that names a
/// namespace stays in it, and a lease revoked in a namespace (the CLI's path form) goes.
#[test]
fn cache_entries_and_clears_stay_inside_their_namespace() {
    let vault = e2e::vault_or_skip!();
    let Some(pg) = e2e::postgres() else { return };
    let ns = e2e::unique("ns");
    vault.bao(&["namespace", "create", &ns]).unwrap();
    let mount = e2e::unique("db");
    Database::enable_at(vault, pg, "5m", &mount, None).unwrap();
    Database::enable_at(vault, pg, "5m", &mount, Some(&ns)).unwrap();
    let lab = Lab::start(vault, "namespaces").unwrap();
    let http = lab.http();
    let read = |namespace: Option<&str>| {
        let mut call = Call::get(&format!("/v1/{mount}/creds/app"));
        if let Some(namespace) = namespace {
            call = call.header("X-Vault-Namespace", namespace);
        }
        Credentials::from_secret(&ok(&http, &call).json().unwrap()).unwrap()
    };

    let in_root = read(None);
    let in_ns = read(Some(&ns));
    assert_ne!(in_root.lease_id, in_ns.lease_id);
    assert_eq!(read(None), in_root);
    assert_eq!(read(Some(&ns)), in_ns);

    let clear =
        json!({"type": "request_path", "value": format!("/v1/{mount}/creds"), "namespace": ns});
    ok(&http, &Call::post("/agent/v1/cache-clear", &clear));
    assert_eq!(
        read(None),
        in_root,
        "a clear in one namespace reached another"
    );
    let cleared = read(Some(&ns));
    assert_ne!(
        cleared.lease_id, in_ns.lease_id,
        "the namespace's entry stayed"
    );

    let flag = format!("-namespace={ns}");
    lab.cli(
        Via::Tcp,
        None,
        &["lease", "revoke", &flag, &cleared.lease_id],
    )
    .unwrap();
    let fresh = read(Some(&ns));
    assert_ne!(
        fresh.lease_id, cleared.lease_id,
        "the revoked lease was served"
    );
    fresh.log_in(pg).unwrap();
    assert_eq!(read(None), in_root);

    let passwords = [in_root, in_ns, cleared, fresh].map(|c| c.password);
    let mut secrets = vec![lab.token.clone()];
    secrets.extend(passwords);
    assert_no_secrets(&lab, &secrets);
}

/// The counters after a known sequence. `agent.cache.hit` and `agent.cache.miss` count the
/// requests the cache looked up; Vault counts every proxied success as a miss, cache or not.
#[test]
fn metrics_count_the_hits_and_misses_that_happened() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "metrics").unwrap();
    let http = lab.http();

    let request = create("metrics");
    let created = ok(&http, &request);
    for _ in 0..2 {
        assert_eq!(ok(&http, &request).x_cache(), "HIT");
    }
    // Looked up and missed: a read with the managed token, which creates nothing.
    let path = e2e::unique("metrics");
    vault
        .bao(&["kv", "put", "-mount=secret", &path, "k=v"])
        .unwrap();
    let read = ok(&http, &Call::get(&format!("/v1/secret/data/{path}")));
    assert_eq!(read.x_cache(), "MISS");
    // Not looked up: a lookup (never cached), a wrapped request, and a request made with
    // a token the cache does not manage.
    ok(&http, &Call::get("/v1/auth/token/lookup-self"));
    ok(&http, &request.clone().header("X-Vault-Wrap-TTL", "1m"));
    ok(&http, &request.clone().token(&vault.root_token));
    // A client error.
    let refused = http
        .send(&Call::get("/v1/secret/data/none").token("s.not-a-token"))
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);

    let metrics = ok(&http, &Call::get("/agent/v1/metrics")).json().unwrap();
    let counter = |name: &str| {
        metrics["Counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Name"] == name)
            .map_or(0, |c| c["Count"].as_u64().unwrap())
    };
    assert_eq!(counter("vault.agent.cache.hit"), 2, "{metrics}");
    assert_eq!(counter("vault.agent.cache.miss"), 2, "{metrics}");
    assert_eq!(counter("vault.agent.proxy.success"), 7, "{metrics}");
    assert_eq!(counter("vault.agent.proxy.client_error"), 1, "{metrics}");
    assert!(counter("vault.agent.auth.success") >= 1, "{metrics}");

    let text = ok(&http, &Call::get("/agent/v1/metrics?format=prometheus")).body;
    for line in [
        "vault_agent_cache_hit 2",
        "vault_agent_cache_miss 2",
        "vault_agent_proxy_success 7",
        "vault_agent_proxy_client_error 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }

    assert_no_secrets(&lab, &[lab.token.clone(), client_token(&created)]);
}

fn assert_no_secrets(lab: &Lab, secrets: &[String]) {
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    lab.agent.assert_no_secrets(&secrets);
    lab.agent
        .assert_no_secrets(&[&lab.role.role_id, &lab.role.secret_id]);
}
