//! The agent against servers that fail: paused, killed and restarted, sealed, refusing to
//! renew, letting the auto-auth token reach its max TTL; the agent itself killed while it
//! writes its sink; and many clients at once. Each case has servers of its own (never the
//! shared dev server) and asserts what an application sees: the sink, the proxy's answers,
//! and what the server's audit log says the agent asked of it.
//!
//! `E2E_FAULTS=long` (`cargo xtask faults`) runs the durations of the issue; an ordinary
//! e2e run takes the short ones.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2e::faults::{AgentSetup, ProcessStats, Server, count_path, is_whole_token, scaled};
use e2e::{Agent, pause};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

const S: Duration = Duration::from_secs(1);

/// What one request through the proxy came to.
#[derive(Debug)]
enum Outcome {
    /// An HTTP answer.
    Answer {
        status: u16,
        body: Value,
        cache: Option<String>,
        from_vault: bool,
    },
    /// The client gave up waiting.
    TimedOut,
    /// No HTTP answer at all (refused, reset).
    Broken(#[allow(dead_code, reason = "shown through Debug in failure messages")] String),
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        match self {
            Self::Answer { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn body(&self) -> &Value {
        match self {
            Self::Answer { body, .. } => body,
            _ => &Value::Null,
        }
    }

    /// Vault's error shape: `{"errors": [strings]}`.
    fn is_vault_error(&self) -> bool {
        self.body()["errors"]
            .as_array()
            .is_some_and(|errors| !errors.is_empty() && errors.iter().all(Value::is_string))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// One request through the proxy with the auto-auth token, given up after `timeout`.
async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Outcome {
    let mut request = http.request(method, url).timeout(timeout);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => return Outcome::TimedOut,
        Err(error) => return Outcome::Broken(format!("{error:?}")),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let cache = header("x-cache");
    // Vault marks every answer of its own no-store; the agent's own errors carry no such mark.
    let from_vault = header("cache-control").is_some_and(|v| v.contains("no-store"));
    match response.bytes().await {
        Ok(bytes) => Outcome::Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            cache,
            from_vault,
        },
        Err(error) if error.is_timeout() => Outcome::TimedOut,
        Err(error) => Outcome::Broken(format!("{error:?}")),
    }
}

/// A GET through the proxy on a runtime of its own.
fn get(url: &str, timeout: Duration) -> Outcome {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        send(&http, reqwest::Method::GET, url, None, timeout).await
    })
}

/// A POST with a JSON body through the proxy on a runtime of its own.
fn post(url: &str, body: &Value, timeout: Duration) -> Outcome {
    runtime().block_on(async {
        let http = reqwest::Client::new();
        send(&http, reqwest::Method::POST, url, Some(body), timeout).await
    })
}

/// Retries a GET until it answers 200, for at most `timeout`.
fn get_until_ok(url: &str, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    loop {
        let outcome = get(url, 5 * S);
        if outcome.status() == Some(200) || Instant::now() > deadline {
            return outcome;
        }
        pause(Duration::from_millis(250));
    }
}

/// A server with a KV v2 secret at `secret/app` and a policy `app` that reads it, plus
/// whatever `extra` policy text adds.
fn kv_server(server: &Server, extra: &str) {
    if server
        .bao(&["secrets", "list"])
        .unwrap()
        .lines()
        .all(|l| !l.starts_with("secret/"))
    {
        server
            .bao(&["secrets", "enable", "-path=secret", "kv-v2"])
            .unwrap();
    }
    let deadline = Instant::now() + 30 * S;
    while let Err(error) = server.bao(&["kv", "put", "secret/app", "colour=teal"]) {
        // A freshly mounted KV v2 upgrades itself for a moment before it takes writes.
        assert!(Instant::now() < deadline, "{error:#}");
        pause(Duration::from_millis(200));
    }
    let policy = format!("path \"secret/data/app\" {{\n  capabilities = [\"read\"]\n}}\n{extra}");
    server.policy("app", &policy).unwrap();
}

/// The most logins (or renewals) a handler backing off from `min` can make in `window`
/// when every attempt is refused at once: the first, then one per doubling wait, plus one
/// for jitter. A handler in a tight loop makes hundreds.
fn backoff_bound(window: Duration, min: Duration) -> usize {
    let doublings = (window.as_secs_f64() / min.as_secs_f64()).log2().ceil() as usize;
    doublings + 2
}

/// Stopping the server with SIGSTOP for the outage (15 s short, 90 s long), then letting it
/// run again: the agent keeps the token it holds and logs in no more, the proxy answers
/// each client with a gateway error in Vault's shape, and serves again once the server is
/// back. `BAO_CLIENT_TIMEOUT=2s` bounds each attempt at a hung server (60 s without it),
/// so every client gets its answer well within its own 10 s.
#[test]
fn a_paused_server_keeps_the_token_and_the_proxy_recovers() {
    let vault = e2e::vault_or_skip!();
    let outage = scaled(15 * S, 90 * S);
    let server = Server::dev(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    // A renewal falls due during the outage (at two thirds of the TTL).
    let ttl = outage + outage / 3;
    let role = server
        .approle(&[
            "token_policies=app",
            &format!("token_ttl={}s", ttl.as_secs()),
            "token_max_ttl=1h",
        ])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-pause", &[]).unwrap();
    let agent = setup
        .start_with_env(&[("BAO_CLIENT_TIMEOUT", "2s")])
        .unwrap();
    let token = setup.wait_token(None, 30 * S).unwrap();
    let secret = setup.url("/v1/secret/data/app");
    let before = get(&secret, 10 * S);
    assert_eq!(before.status(), Some(200), "{before:?}");
    let login = format!("auth/{}/login", role.mount);

    server.stop().unwrap();
    let stopped = Instant::now();
    let mut answers = Vec::new();
    while stopped.elapsed() < outage {
        let outcome = get(&secret, 10 * S);
        assert_eq!(
            setup.sink_token().unwrap().as_deref(),
            Some(token.as_str()),
            "sink changed"
        );
        answers.push(outcome);
    }
    server.resume().unwrap();

    // Meanwhile: no answer but a gateway error in Vault's shape, each within the client's
    // patience because the agent's own timeout is short.
    assert!(!answers.is_empty());
    for outcome in &answers {
        match outcome {
            answer @ Outcome::Answer {
                status: 502..=504, ..
            } => {
                assert!(answer.is_vault_error(), "{answer:?}");
            }
            other => panic!("during the outage the proxy gave {other:?}"),
        }
    }

    // After: the proxy serves, with the same token, which Vault still honours.
    let after = get_until_ok(&secret, 30 * S);
    assert_eq!(after.status(), Some(200), "{after:?}\n{}", agent.logs());
    assert_eq!(after.body()["data"]["data"]["colour"], "teal");
    pause(2 * S);
    assert_eq!(setup.sink_token().unwrap().as_deref(), Some(token.as_str()));
    server.bao_as(&token, &["token", "lookup"]).unwrap();
    let logins = count_path(&server.audited().unwrap(), &login);
    assert_eq!(logins, 1, "the agent logged in again:\n{}", agent.logs());

    agent.assert_no_secrets(&[&token, &role.secret_id]);
}

/// Killing a persistent server for longer than the agent's token lives, then starting it
/// again: the agent retries its logins with backoff while the server is gone, logs in
/// within one `max_backoff` of the server's return, rewrites its sink, and the proxy serves.
#[test]
fn a_killed_and_restarted_server_gets_a_new_login_within_the_backoff() {
    let vault = e2e::vault_or_skip!();
    let down = scaled(15 * S, 60 * S);
    let max_backoff = 8 * S;
    let mut server = Server::persistent(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    let role = server
        .approle(&["token_policies=app", "token_ttl=8s", "token_max_ttl=1h"])
        .unwrap();
    let setup =
        AgentSetup::new(&server, &role, "fault-restart", &["max_backoff = \"8s\""]).unwrap();
    let agent = setup.start().unwrap();
    let token = setup.wait_token(None, 30 * S).unwrap();
    let secret = setup.url("/v1/secret/data/app");
    assert_eq!(get(&secret, 10 * S).status(), Some(200));

    server.kill().unwrap();
    let killed = Instant::now();
    while killed.elapsed() < down {
        // While the server is away, a client gets Vault's error shape at once.
        let outcome = get(&secret, 10 * S);
        assert_eq!(outcome.status(), Some(502), "{outcome:?}");
        assert!(outcome.is_vault_error(), "{outcome:?}");
        pause(S);
    }
    let failures_while_down = count_lines(&agent.logs(), "login failed");
    server.restart().unwrap();
    let back = Instant::now();

    let new_token = setup
        .wait_token(Some(&token), max_backoff + 10 * S)
        .unwrap();
    let took = back.elapsed();
    assert!(
        is_whole_token(&new_token),
        "sink holds {} bytes",
        new_token.len()
    );
    server.bao_as(&new_token, &["token", "lookup"]).unwrap();
    let after = get_until_ok(&secret, 15 * S);
    assert_eq!(after.status(), Some(200), "{after:?}\n{}", agent.logs());

    let bound = backoff_bound(down, S) + (down.as_secs() / 6) as usize;
    assert!(
        failures_while_down <= bound,
        "{failures_while_down} failed logins in {down:?} (bound {bound}):\n{}",
        agent.logs()
    );
    eprintln!(
        "restart: new token {took:?} after the server was back; {failures_while_down} failed logins while down"
    );
    agent.assert_no_secrets(&[&token, &new_token, &role.secret_id]);
}

/// Killing a persistent server just before the agent's token falls due for renewal, and
/// starting it again once the renewal has failed: the token is still valid, so the agent
/// keeps it (same sink, no new login) and renews it when the server is back, rather than
/// taking "unreachable" for "rejected".
#[test]
fn a_renewal_failing_while_the_server_is_down_keeps_the_token() {
    let vault = e2e::vault_or_skip!();
    let ttl = scaled(60 * S, 180 * S);
    let down = scaled(5 * S, 60 * S);
    let mut server = Server::persistent(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    let role = server
        .approle(&[
            "token_policies=app",
            &format!("token_ttl={}s", ttl.as_secs()),
            "token_max_ttl=1h",
        ])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-renew-down", &[]).unwrap();
    let mut agent = setup.start().unwrap();
    let token = setup.wait_token(None, 30 * S).unwrap();
    let logged_in = Instant::now();

    // The renewal falls due at two thirds of the TTL (plus a little).
    pause(
        (ttl * 2 / 3)
            .saturating_sub(down)
            .saturating_sub(logged_in.elapsed()),
    );
    let renewed_before = renewals_of(&server, &token);
    server.kill().unwrap();
    agent
        .wait_for_log("cannot renew the token", down + ttl / 3)
        .unwrap();
    server.restart().unwrap();

    // The retry comes after at least five seconds, within the token's life.
    let secret = setup.url("/v1/secret/data/app");
    let after = get_until_ok(&secret, 30 * S);
    assert_eq!(after.status(), Some(200), "{after:?}\n{}", agent.logs());
    e2e::wait_for("a renewal after the restart", ttl / 3, || {
        renewals_of(&server, &token) > renewed_before
    })
    .unwrap_or_else(|error| panic!("{error:#}\n{}", agent.logs()));
    assert_eq!(setup.sink_token().unwrap().as_deref(), Some(token.as_str()));
    let logins = count_path(
        &server.audited().unwrap(),
        &format!("auth/{}/login", role.mount),
    );
    assert_eq!(logins, 1, "the agent logged in again:\n{}", agent.logs());
    server.bao_as(&token, &["token", "lookup"]).unwrap();
    agent.assert_no_secrets(&[&token, &role.secret_id]);
}

/// How many renewals of `token` with itself the server has audited.
fn renewals_of(server: &Server, token: &str) -> usize {
    let requests = server.audited().unwrap();
    requests
        .iter()
        .filter(|r| r.path() == "auth/token/renew-self" && r.client_token() == token)
        .count()
}

/// Sealing the server: clients of the proxy get Vault's own 503 "sealed" answer quickly,
/// the agent's failed renewals and logins back off, and after unsealing the agent logs in
/// and the proxy serves again.
#[test]
fn a_sealed_server_answers_503_and_the_agent_backs_off() {
    let vault = e2e::vault_or_skip!();
    let sealed_for = scaled(12 * S, 60 * S);
    let server = Server::persistent(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    let role = server
        .approle(&["token_policies=app", "token_ttl=6s", "token_max_ttl=1h"])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-seal", &["max_backoff = \"8s\""]).unwrap();
    let agent = setup.start().unwrap();
    let token = setup.wait_token(None, 30 * S).unwrap();
    let secret = setup.url("/v1/secret/data/app");
    assert_eq!(get(&secret, 10 * S).status(), Some(200));
    let logs_before = agent.logs();

    server.seal().unwrap();
    let sealed = Instant::now();
    while sealed.elapsed() < sealed_for {
        let asked = Instant::now();
        let outcome = get(&secret, 10 * S);
        assert_eq!(outcome.status(), Some(503), "{outcome:?}");
        let errors = outcome.body()["errors"].to_string();
        assert!(errors.contains("sealed"), "{outcome:?}");
        // One retry at most, 1-1.5 s apart.
        assert!(asked.elapsed() < 4 * S, "held for {:?}", asked.elapsed());
        pause(S);
    }
    let during = agent.logs()[logs_before.len()..].to_owned();
    server.unseal().unwrap();
    let back = Instant::now();

    let new_token = setup.wait_token(Some(&token), 8 * S + 10 * S).unwrap();
    let after = get_until_ok(&secret, 15 * S);
    assert_eq!(after.status(), Some(200), "{after:?}\n{}", agent.logs());

    let login_failures = count_lines(&during, "login failed");
    let renew_failures = count_lines(&during, "cannot renew the token");
    let bound = backoff_bound(sealed_for, S) + (sealed_for.as_secs() / 6) as usize;
    assert!(
        login_failures <= bound,
        "{login_failures} failed logins (bound {bound}):\n{during}"
    );
    assert!(
        renew_failures <= 3,
        "{renew_failures} failed renewals:\n{during}"
    );
    eprintln!(
        "seal: {login_failures} failed logins and {renew_failures} failed renewals in {sealed_for:?}; \
         new token {:?} after unsealing",
        back.elapsed()
    );
    agent.assert_no_secrets(&[&token, &new_token, &role.secret_id]);
}

/// A token whose policies do not allow `auth/token/renew-self` (no default policy): every
/// renewal is refused with 403. The agent must not loop on it: over a window, the server
/// sees no more logins and renewals than a doubling backoff allows.
///
/// The reference agents differ here: Vault keeps such a token and retries its renewal with
/// its renewal backoff until the token nears its end; OpenBao's watcher has no wait in that
/// branch. This agent takes the refusal as a rejected token and logs in again, with the
/// login backoff between tokens that did not last.
#[test]
fn a_token_that_cannot_renew_itself_does_not_loop() {
    let vault = e2e::vault_or_skip!();
    let window = scaled(20 * S, 60 * S);
    let server = Server::dev(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    let role = server
        .approle(&[
            "token_policies=app",
            "token_no_default_policy=true",
            "token_ttl=60s",
            "token_max_ttl=1h",
        ])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-norenew", &[]).unwrap();
    let agent = setup.start().unwrap();
    let first = setup.wait_token(None, 30 * S).unwrap();

    // The token is refused renewal, but can read what its policy allows.
    let refused = server.bao_as(&first, &["token", "renew"]).unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused:#}"
    );

    pause(window);
    let requests = server.audited().unwrap();
    let logins = count_path(&requests, &format!("auth/{}/login", role.mount));
    let renewals = count_path(&requests, "auth/token/renew-self");
    let bound = backoff_bound(window, S);
    eprintln!("no renew: {logins} logins and {renewals} renewals in {window:?} (bound {bound})");
    // Our own `token renew` above is one of the renewals.
    assert!(
        logins <= bound,
        "{logins} logins in {window:?}:\n{}",
        agent.logs()
    );
    assert!(
        renewals <= bound + 1,
        "{renewals} renewals in {window:?}:\n{}",
        agent.logs()
    );

    let current = setup.sink_token().unwrap().unwrap();
    server
        .bao_as(&current, &["read", "secret/data/app"])
        .unwrap();
    agent.assert_no_secrets(&[&first, &current, &role.secret_id]);
}

/// The auto-auth token reaches its max TTL while child tokens created with it through the
/// proxy are cached: when it dies (and Vault revokes its children), the agent does not keep
/// renewing them, and after the new login the same request is a MISS that returns a new,
/// live child, never the dead one.
#[test]
fn cached_children_of_an_expired_auto_auth_token_are_dropped_not_renewed() {
    let vault = e2e::vault_or_skip!();
    let max_ttl = scaled(20 * S, 60 * S);
    // The child would live on well past its parent; its first renewal falls after the parent's end.
    let child_ttl = max_ttl * 2;
    let server = Server::dev(&vault.bao_bin).unwrap();
    kv_server(
        &server,
        "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n",
    );
    let role = server
        .approle(&[
            "token_policies=app",
            &format!("token_ttl={}s", max_ttl.as_secs()),
            &format!("token_max_ttl={}s", max_ttl.as_secs()),
        ])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-maxttl", &[]).unwrap();
    let agent = setup.start().unwrap();
    let parent = setup.wait_token(None, 30 * S).unwrap();
    let born = Instant::now();

    let create = setup.url("/v1/auth/token/create");
    let body = json!({ "policies": ["default"], "ttl": format!("{}s", child_ttl.as_secs()) });
    let first = post(&create, &body, 10 * S);
    let again = post(&create, &body, 10 * S);
    let child_of = |outcome: &Outcome| {
        outcome.body()["auth"]["client_token"]
            .as_str()
            .map(str::to_owned)
    };
    let child = child_of(&first).unwrap_or_else(|| panic!("{first:?}"));
    assert!(
        matches!(&first, Outcome::Answer { cache: Some(c), .. } if c == "MISS"),
        "{first:?}"
    );
    assert!(
        matches!(&again, Outcome::Answer { cache: Some(c), .. } if c == "HIT"),
        "{again:?}"
    );
    assert_eq!(child_of(&again).as_deref(), Some(child.as_str()));

    assert_eq!(cached_tokens(&setup), 1);

    // The agent logs in again before the parent ends; Vault then revokes the parent's children.
    let successor = setup.wait_token(Some(&parent), max_ttl + 10 * S).unwrap();
    pause((max_ttl + S).saturating_sub(born.elapsed()));
    e2e::wait_for("the parent to be gone", 10 * S, || {
        server.bao_as(&parent, &["token", "lookup"]).is_err()
    })
    .unwrap();
    assert!(
        server.bao_as(&child, &["token", "lookup"]).is_err(),
        "the child outlived its parent"
    );

    // The child went from the cache with its parent, and is not renewed in vain meanwhile.
    e2e::wait_for("the child to leave the cache", 3 * S, || {
        cached_tokens(&setup) == 0
    })
    .unwrap_or_else(|error| panic!("{error:#}\n{}", agent.logs()));
    pause(max_ttl);
    let renewals = server.audited().unwrap();
    let renewals: Vec<_> = renewals
        .iter()
        .filter(|r| r.path().starts_with("auth/token/renew") && r.client_token() == child)
        .collect();
    let refused = renewals.iter().filter(|r| r.error().is_some()).count();
    assert!(
        refused <= 1,
        "{refused} renewals of the dead child:\n{}",
        agent.logs()
    );

    let fresh = post(&create, &body, 10 * S);
    assert!(
        matches!(&fresh, Outcome::Answer { cache: Some(c), .. } if c == "MISS"),
        "{fresh:?}"
    );
    let new_child = child_of(&fresh).unwrap_or_else(|| panic!("{fresh:?}"));
    assert_ne!(new_child, child, "the dead child was served again");
    server.bao_as(&new_child, &["token", "lookup"]).unwrap();
    eprintln!(
        "max ttl: {} renewals of the child, {refused} of them refused",
        renewals.len()
    );
    agent.assert_no_secrets(&[&parent, &successor, &child, &new_child, &role.secret_id]);
}

/// The agent's `agent.cache.tokens` gauge: how many token-creating responses it holds.
fn cached_tokens(setup: &AgentSetup) -> u64 {
    let metrics = get(&setup.url("/agent/v1/metrics"), 10 * S);
    let gauges = metrics.body()["Gauges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let gauge = gauges.iter().find(|g| {
        g["Name"]
            .as_str()
            .is_some_and(|n| n.ends_with("cache.tokens"))
    });
    gauge
        .and_then(|g| g["Value"].as_u64())
        .unwrap_or_else(|| panic!("no cache.tokens gauge: {metrics:?}"))
}

/// Killing the agent with SIGKILL at random moments while it logs in again every couple of
/// seconds (and so rewrites its sink), then starting it again, for a while; a thread reads
/// the sink in a tight loop the whole time. Every read is a whole token: never an empty,
/// partial or mixed one.
#[test]
fn an_agent_killed_while_writing_its_sink_leaves_a_whole_token() {
    let vault = e2e::vault_or_skip!();
    let duration = scaled(20 * S, 90 * S);
    let server = Server::dev(&vault.bao_bin).unwrap();
    kv_server(&server, "");
    let role = server
        .approle(&["token_policies=app", "token_ttl=3s", "token_max_ttl=3s"])
        .unwrap();
    let setup = Arc::new(AgentSetup::new(&server, &role, "fault-sigkill", &[]).unwrap());

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (setup, done) = (setup.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut reads, mut bad, mut tokens) =
                (0u64, Vec::new(), std::collections::BTreeSet::new());
            while !done.load(Ordering::Relaxed) {
                match std::fs::read(&setup.sink) {
                    Ok(bytes) => {
                        reads += 1;
                        match String::from_utf8(bytes) {
                            Ok(text) if is_whole_token(&text) => {
                                tokens.insert(text);
                            }
                            Ok(text) => bad.push(format!("{} bytes", text.len())),
                            Err(error) => {
                                bad.push(format!("{} bytes, not UTF-8", error.as_bytes().len()))
                            }
                        }
                    }
                    // Before the first write only.
                    Err(error)
                        if error.kind() == std::io::ErrorKind::NotFound && tokens.is_empty() => {}
                    Err(error) => bad.push(error.to_string()),
                }
            }
            (reads, bad, tokens)
        })
    };

    let started = Instant::now();
    let mut kills = 0;
    let mut logs = String::new();
    while started.elapsed() < duration {
        let agent = Agent::start(&setup.config, &[]).unwrap();
        pause(Duration::from_millis(300 + clock_jitter_ms(2700)));
        agent.signal(Signal::SIGKILL).unwrap();
        logs.push_str(&agent.logs());
        drop(agent);
        kills += 1;
    }
    done.store(true, Ordering::Relaxed);
    let (reads, bad, tokens) = reader.join().unwrap();

    eprintln!(
        "sigkill: {kills} kills, {reads} reads, {} distinct tokens",
        tokens.len()
    );
    assert!(
        bad.is_empty(),
        "{} bad reads of {reads}, first: {:?}",
        bad.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(reads > 1000, "only {reads} reads");
    assert!(
        tokens.len() >= 3,
        "only {} tokens written; the test did not exercise rewrites",
        tokens.len()
    );
    let leftovers: Vec<_> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            !["role_id", "secret_id", "token", "agent.hcl", "agent.log"].contains(&name.as_str())
        })
        .collect();
    eprintln!("sigkill: files left beside the sink: {leftovers:?}");
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.push(&role.secret_id);
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !logs.contains(secret),
            "a secret appeared in the agent's logs"
        );
    }
}

/// How many lines of `logs` contain `needle`.
fn count_lines(logs: &str, needle: &str) -> usize {
    logs.lines().filter(|line| line.contains(needle)).count()
}

/// A pseudo-random number of milliseconds below `below`, from the clock (good enough to
/// spread kills over a write cycle).
fn clock_jitter_ms(below: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % below
}

/// Many clients at once through the proxy (100 for 10 s short, 500 for 60 s long), half of
/// them reading KV (passed through) and half creating child tokens from a few bodies
/// (cached after the first): no error that Vault did not give, memory bounded, and no
/// file descriptors left once the clients are gone and the pool is idle.
#[test]
fn many_clients_at_once_leave_memory_and_descriptors_bounded() {
    let vault = e2e::vault_or_skip!();
    let (clients, duration) = if e2e::faults::long() {
        (500, 60 * S)
    } else {
        (100, 10 * S)
    };
    let server = Server::dev(&vault.bao_bin).unwrap();
    kv_server(
        &server,
        "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n",
    );
    let role = server
        .approle(&["token_policies=app", "token_ttl=1h", "token_max_ttl=2h"])
        .unwrap();
    let setup = AgentSetup::new(&server, &role, "fault-load", &[]).unwrap();
    let agent = setup.start().unwrap();
    let token = setup.wait_token(None, 30 * S).unwrap();
    let secret = setup.url("/v1/secret/data/app");
    let create = setup.url("/v1/auth/token/create");
    assert_eq!(get(&secret, 10 * S).status(), Some(200));
    pause(S);
    let idle = ProcessStats::of(agent.pid()).unwrap();

    let results = runtime().block_on(async {
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + duration;
        let mut tasks = Vec::new();
        for n in 0..clients {
            let (http, secret, create) = (http.clone(), secret.clone(), create.clone());
            tasks.push(tokio::spawn(async move {
                let mut counts = Counts::default();
                let body = json!({ "policies": ["default"], "ttl": "1h", "meta": { "n": (n % 8).to_string() } });
                while tokio::time::Instant::now() < deadline {
                    let outcome = if n % 2 == 0 {
                        send(&http, reqwest::Method::GET, &secret, None, 30 * S).await
                    } else {
                        send(&http, reqwest::Method::POST, &create, Some(&body), 30 * S).await
                    };
                    counts.add(&outcome);
                }
                counts
            }));
        }
        let mut total = Counts::default();
        for task in tasks {
            total.merge(task.await.unwrap());
        }
        total
    });
    let busy = ProcessStats::of(agent.pid()).unwrap();

    // Once the clients have closed their connections and the pool has settled: an idle
    // connection to Vault is dropped after 10 s, by a sweep that runs every 10 s, so it can
    // live 20 s; a leaked descriptor never goes.
    let mut settled = busy;
    let _ = e2e::wait_for("the descriptors to settle", 30 * S, || {
        settled = ProcessStats::of(agent.pid()).unwrap();
        settled.open_fds <= idle.open_fds + 16
    });
    eprintln!(
        "load: {clients} clients for {duration:?}: {results:?}; idle {idle:?}, busy {busy:?}, settled {settled:?}"
    );

    assert!(results.ok > clients as u64, "{results:?}");
    assert!(results.hits > 0, "nothing came from the cache: {results:?}");
    assert_eq!(
        results.agent_error_count, 0,
        "errors not from Vault: {results:?}"
    );
    assert!(
        settled.peak_rss_kib < 200 * 1024,
        "peak RSS {} KiB",
        settled.peak_rss_kib
    );
    let peers = e2e::faults::tcp_peer_ports(agent.pid()).unwrap();
    let to_vault = peers.iter().filter(|p| **p == server.port()).count();
    assert!(
        settled.open_fds <= idle.open_fds + 16,
        "{} descriptors open after the load, {} before; {to_vault} connections to Vault, \
         {} other TCP peers",
        settled.open_fds,
        idle.open_fds,
        peers.len() - to_vault
    );
    agent.assert_no_secrets(&[&token, &role.secret_id]);
}

/// Tallies of the load test.
#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    hits: u64,
    vault_errors: u64,
    agent_error_count: u64,
    /// The first few of them.
    agent_errors: Vec<String>,
}

impl Counts {
    fn add(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Answer {
                status: 200, cache, ..
            } => {
                self.ok += 1;
                self.hits += u64::from(cache.as_deref() == Some("HIT"));
            }
            Outcome::Answer {
                from_vault: true, ..
            } => self.vault_errors += 1,
            other => {
                self.agent_error_count += 1;
                if self.agent_errors.len() < 10 {
                    self.agent_errors.push(format!("{other:?}"));
                }
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.hits += other.hits;
        self.vault_errors += other.vault_errors;
        self.agent_error_count += other.agent_error_count;
        let room = 10usize.saturating_sub(self.agent_errors.len());
        self.agent_errors
            .extend(other.agent_errors.into_iter().take(room));
    }
}
