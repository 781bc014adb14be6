//! Bad input, end to end: requests spelled to slip past the proxy's rules, and clients that
//! hold connections without finishing a request. Each test is a way the agent was broken.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::Agent;
use e2e::lab::{Answer, Call, Http, Lab, quoted};
use serde_json::json;

fn ok(http: &Http, call: &Call) -> Answer {
    http.send(call).unwrap().expect_status(200).unwrap()
}

fn client_token(answer: &Answer) -> String {
    answer.json().unwrap()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn create(name: &str) -> Call {
    Call::post(
        "/v1/auth/token/create",
        &json!({"display_name": name, "ttl": "10m"}),
    )
}

/// Vault reads `%2F`, an escaped letter and `//` in a path as the plain route (the last
/// through a redirect the agent follows). So spelled, a revocation still evicts what the
/// cache holds for the token, and a lookup or renewal of the agent's own token still hides it.
#[test]
fn token_routes_spelled_oddly_are_the_routes_vault_runs() {
    let vault = e2e::vault_or_skip!();
    let lab = Lab::start(vault, "spellings").unwrap();
    let http = lab.http();

    for (method, path) in [
        ("GET", "/v1/auth/token%2Flookup-self"),
        ("GET", "/v1/auth/token/lookup%2Dself"),
        ("GET", "/v1/auth//token/lookup-self"),
        ("PUT", "/v1/auth/token%2frenew-self"),
        ("PUT", "/v1/auth//token/renew-self"),
    ] {
        let answer = ok(&http, &Call::new(method, path));
        assert!(
            !answer.body.contains(&lab.token),
            "{method} {path} showed the agent's own token to a local caller"
        );
    }

    let mut seen = vec![lab.token.clone()];
    for revoke in [
        "/v1/auth/token%2Frevoke-self",
        "/v1/auth/token/revok%65-self",
        "/v1/auth//token/revoke-self",
    ] {
        let child = client_token(&ok(&http, &create(&e2e::unique("child"))));
        let grandchild = create("grandchild").token(&child);
        let first = ok(&http, &grandchild);
        assert_eq!(ok(&http, &grandchild).x_cache(), "HIT");
        seen.extend([child.clone(), client_token(&first)]);

        let revoked = http.send(&Call::new("PUT", revoke).token(&child)).unwrap();
        assert_eq!(revoked.status, 204, "{revoke}: {}", revoked.body);
        let after = http.send(&grandchild).unwrap();
        assert_eq!(
            after.status, 403,
            "{revoke}: a token Vault revoked was still answered from the cache"
        );
    }

    let secrets: Vec<&str> = seen.iter().map(String::as_str).collect();
    lab.agent.assert_no_secrets(&secrets);
    lab.agent
        .assert_no_secrets(&[&lab.role.role_id, &lab.role.secret_id]);
}

/// What became of a connection that stalled: the first bytes the agent sent, and when the
/// connection ended.
struct Stalled {
    answer: String,
    after: Duration,
}

/// Connects, sends `sent`, then stalls, reading what comes until the agent hangs up.
fn stall(address: &str, sent: &[u8], limit: Duration) -> Stalled {
    let started = Instant::now();
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(sent).unwrap();

    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => break,
            Err(error) => panic!(
                "{:?}: still open after {limit:?} ({error})",
                String::from_utf8_lossy(sent)
            ),
        }
    }
    Stalled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        after: started.elapsed(),
    }
}

/// Clients that connect and send nothing, send half an HTTP/2 preface, or trickle a body,
/// are cut off as Vault Agent cuts them (10 s for the first request's headers, 30 s for a
/// whole body) instead of holding a descriptor each for the 5 minutes of the idle timeout,
/// or for ever.
#[test]
fn stalled_clients_are_cut_off() {
    let vault = e2e::vault_or_skip!();
    let dir = e2e::work_dir("stalled");
    let address = format!("127.0.0.1:{}", e2e::free_port());
    let config = format!(
        "vault {{\n  address = {}\n}}\ncache {{}}\nlistener \"tcp\" {{\n  address = {}\n  \
         tls_disable = true\n}}\n",
        quoted(&vault.addr),
        quoted(&address),
    );
    let path = dir.path().join("agent.hcl");
    std::fs::write(&path, config).unwrap();
    let mut agent = Agent::start(&path, &["-log-level=debug"]).unwrap();
    agent
        .wait_for_log("listener started", Duration::from_secs(20))
        .unwrap();

    let body = b"PUT /v1/secret/data/stalled HTTP/1.1\r\nHost: agent\r\n\
                 Content-Length: 1000\r\n\r\n{\"data\":";
    let cases: [(&[u8], Duration, &str); 3] = [
        (b"", Duration::from_secs(10), ""),
        (b"PRI * HTTP/2.0\r\n", Duration::from_secs(10), ""),
        (body, Duration::from_secs(30), "HTTP/1.1 408"),
    ];
    let stalls: Vec<_> = cases
        .iter()
        .map(|&(sent, expected, _)| {
            let address = address.clone();
            std::thread::spawn(move || stall(&address, sent, expected * 2))
        })
        .collect();

    for ((sent, expected, answer), stalled) in cases.iter().zip(stalls) {
        let stalled = stalled.join().unwrap();
        let sent = String::from_utf8_lossy(sent);
        assert!(
            stalled.after >= *expected && stalled.after < *expected + Duration::from_secs(5),
            "{sent:?}: cut off after {:?}, expected {expected:?}",
            stalled.after
        );
        assert!(
            stalled.answer.starts_with(answer),
            "{sent:?}: answered {:?}",
            stalled.answer
        );
    }
    agent.assert_no_secrets(&[&vault.root_token]);
}
