//! Bad input, end to end: requests spelled to slip past the proxy's rules, and clients that
//! hold connections without finishing a request. Each test is a way the agent was broken.

#![allow(
    clippy::unwrap_used,
    reason = "helpers of tests: an unexpected error fails the test"
)]

use e2e::lab::{Answer, Call, Http, Lab};
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
