//! The lifecycle on paused time, against the scripted Vault of `crate::fake` (see its
//! module doc for why a fake is right here), with real credential files in temp dirs.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use vault_client::{
    AuthInfo, ClientSettings, LoginResponse, RetryPolicy, SecretData, TokenInfo, WrapInfo,
    WrapLookup,
};

use super::*;
use crate::fake::{Call, FakeVault, lease, login_ok, status, unreachable};
use crate::settings::{AppRoleSettings, CertSettings, TokenFileSettings};
use crate::test_log::Captured;

const S: Duration = Duration::from_secs(1);

/// A handler running on its own task.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), AuthFailed>>,
    tokens: TokenReceiver,
    renewals: RenewalReceiver,
    stats: AuthStats,
}

impl Running {
    fn start(fake: &FakeVault, settings: MethodSettings) -> Self {
        let handler = AuthHandler::new(fake.clone(), &ClientSettings::default(), settings).unwrap();
        let tokens = handler.tokens();
        let renewals = handler.renewals();
        let stats = handler.stats();

        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(handler.run(async {
            stopped.await.ok();
        }));
        Self {
            stop,
            task,
            tokens,
            renewals,
            stats,
        }
    }

    async fn stop(self) -> Result<(), AuthFailed> {
        self.stop.send(()).ok();
        self.task.await.unwrap()
    }

    /// The generation of the token currently published (0: none yet).
    fn generation(&self) -> u64 {
        self.tokens.borrow().as_ref().map_or(0, |t| t.generation())
    }
}

/// An approle method whose role_id file is in `dir`, with no secret_id.
fn approle(dir: &TempDir) -> MethodSettings {
    let role_id = dir.path().join("role_id");
    std::fs::write(&role_id, "role-id-value\n").unwrap();
    MethodSettings::new(MethodKind::AppRole(AppRoleSettings::new(role_id)))
}

fn secs(times: &[Duration]) -> Vec<f64> {
    times.iter().map(Duration::as_secs_f64).collect()
}

fn gaps(times: &[Duration]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

/// A renewal answer of `left` (fractions of a second included).
fn lease_of(left: Duration) -> AuthInfo {
    AuthInfo {
        lease_duration: left,
        renewable: true,
        ..AuthInfo::default()
    }
}

#[tokio::test(start_paused = true)]
async fn failed_logins_back_off_like_vault() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|_| Err(status(500)));

    let running = Running::start(&fake, approle(&dir));
    sleep(60 * S).await;
    let stats = running.stats.clone();
    running.stop().await.unwrap();

    let logins = fake.login_times();
    let within_a_minute = logins.iter().filter(|t| **t <= 60 * S).count();
    assert!((6..=7).contains(&within_a_minute), "{:?}", secs(&logins));

    let gaps = gaps(&logins);
    assert_eq!(gaps[0], 1.0, "{gaps:?}");
    assert!((1.5..=2.0).contains(&gaps[1]), "{gaps:?}");
    assert!((3.0..=4.0).contains(&gaps[2]), "{gaps:?}");
    assert_eq!(stats.login_failures(), logins.len() as u64);
    assert_eq!(stats.logins(), 0);
    assert!(!stats.authenticated());
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_at_max_backoff() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|_| Err(unreachable()));

    let mut settings = approle(&dir);
    settings.max_backoff = 4 * S;
    let running = Running::start(&fake, settings);
    sleep(120 * S).await;
    running.stop().await.unwrap();

    let gaps = gaps(&fake.login_times());
    assert!(gaps.len() > 20, "{gaps:?}");
    assert!(gaps.iter().all(|gap| *gap <= 4.0), "{gaps:?}");
    assert!(gaps[3..].iter().all(|gap| *gap >= 3.0), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_a_token_was_held() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    // Three failures, a token that lives 10 s (non-renewable), then failures again.
    fake.on_login(|n| match n {
        4 => {
            let LoginResponse::Auth(mut auth) = login_ok(n, 10) else {
                unreachable!()
            };
            auth.renewable = false;
            Ok(LoginResponse::Auth(auth))
        }
        _ => Err(status(500)),
    });

    let running = Running::start(&fake, approle(&dir));
    sleep(60 * S).await;
    running.stop().await.unwrap();

    let logins = fake.login_times();
    let gaps = gaps(&logins);
    // Waits of 1, 1.5-2 and 3-4 s, then the token is used for 8-9 s, then the
    // failures start over at 1 s.
    assert!((8.0..=9.0).contains(&gaps[3]), "{gaps:?}");
    assert_eq!(gaps[4], 1.0, "{gaps:?}");
    assert!((1.5..=2.0).contains(&gaps[5]), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn renews_at_once_then_at_two_thirds_of_the_ttl() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|n| Ok(login_ok(n, 60)));
    fake.on_renew(|_| Ok(lease(60)));

    let running = Running::start(&fake, approle(&dir));
    sleep(200 * S).await;
    let stats = running.stats.clone();
    running.stop().await.unwrap();

    let renewals = fake.renew_times();
    assert_eq!(renewals[0], Duration::ZERO, "{:?}", secs(&renewals));
    // Two thirds of 60 s plus a third of a grace of 6-12 s.
    for gap in gaps(&renewals) {
        assert!((42.0..=44.0).contains(&gap), "{:?}", secs(&renewals));
    }
    assert_eq!(fake.login_times().len(), 1);
    assert_eq!(stats.renewals(), renewals.len() as u64);
    assert!(stats.authenticated());
}

#[tokio::test(start_paused = true)]
async fn logs_in_again_before_the_max_ttl() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    // Every token may live 30 s at most: each renewal gives what is left of them.
    fake.on_login(|n| Ok(login_ok(n, 30)));
    fake.on_renew(|renew| Ok(lease_of((30 * S).saturating_sub(renew.since_login))));

    let running = Running::start(&fake, approle(&dir));
    sleep(100 * S).await;
    let generation = running.generation();
    running.stop().await.unwrap();

    let logins = fake.login_times();
    assert!(logins.len() >= 4, "{:?}", secs(&logins));
    for gap in gaps(&logins) {
        assert!((20.0..30.0).contains(&gap), "{:?}", secs(&logins));
    }
    assert_eq!(generation, logins.len() as u64);
}

#[tokio::test(start_paused = true)]
async fn a_rejected_renewal_logs_in_again_at_once() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|n| Ok(login_ok(n, 60)));
    // The first token is revoked elsewhere after its first renewal.
    fake.on_renew(|renew| match renew.token {
        "s.token-1" if !renew.since_login.is_zero() => Err(status(403)),
        _ => Ok(lease(60)),
    });

    let running = Running::start(&fake, approle(&dir));
    sleep(50 * S).await;
    let generation = running.generation();
    running.stop().await.unwrap();

    let logins = fake.login_times();
    let renewals = fake.renew_times();
    assert_eq!(logins.len(), 2, "{:?}", secs(&logins));
    assert_eq!(logins[1], renewals[1], "re-login at the rejection");
    assert!((42.0..=44.0).contains(&logins[1].as_secs_f64()));
    assert_eq!(generation, 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_that_dies_at_once_does_not_make_a_login_storm() {
    async fn check(fake: FakeVault) {
        let dir = TempDir::new().unwrap();
        let running = Running::start(&fake, approle(&dir));
        sleep(60 * S).await;
        let stats = running.stats.clone();
        running.stop().await.unwrap();

        let logins = fake.login_times();
        assert!((6..=7).contains(&logins.len()), "{:?}", secs(&logins));
        // A token's few milliseconds of life, then min_backoff.
        assert!(
            (1.0..1.1).contains(&gaps(&logins)[0]),
            "{:?}",
            secs(&logins)
        );
        assert_eq!(stats.logins(), logins.len() as u64);
        assert_eq!(stats.login_failures(), 0);
    }

    // Rejected by the renewal right after login.
    let fake = FakeVault::new();
    fake.on_renew(|_| Err(status(403)));
    check(fake).await;

    // Renewed to a TTL of nothing.
    let fake = FakeVault::new();
    fake.on_renew(|_| Ok(lease(0)));
    check(fake).await;

    // Issued for 10 ms, not renewable.
    let fake = FakeVault::new();
    fake.on_login(|n| {
        let LoginResponse::Auth(mut auth) = login_ok(n, 0) else {
            unreachable!()
        };
        auth.lease_duration = Duration::from_millis(10);
        auth.renewable = false;
        Ok(LoginResponse::Auth(auth))
    });
    check(fake).await;
}

#[tokio::test(start_paused = true)]
async fn a_login_answer_without_a_usable_token_backs_off_and_publishes_nothing() {
    async fn check(answer: fn() -> LoginResponse, wrap_ttl: Option<Duration>) {
        let dir = TempDir::new().unwrap();
        let fake = FakeVault::new();
        fake.on_login(move |_| Ok(answer()));

        let mut settings = approle(&dir);
        settings.wrap_ttl = wrap_ttl;
        let running = Running::start(&fake, settings);
        sleep(60 * S).await;
        let published = running.tokens.borrow().is_some();
        let stats = running.stats.clone();
        running.stop().await.unwrap();

        let logins = fake.login_times();
        assert!((6..=7).contains(&logins.len()), "{:?}", secs(&logins));
        assert!(!published);
        assert_eq!(stats.login_failures(), logins.len() as u64);
    }

    check(|| LoginResponse::Auth(AuthInfo::default()), None).await;
    check(|| LoginResponse::Wrapped(WrapInfo::default()), Some(60 * S)).await;
    check(|| login_ok(1, 60), Some(60 * S)).await;
    check(|| LoginResponse::Wrapped(wrap_info()), None).await;
}

fn wrap_info() -> WrapInfo {
    WrapInfo {
        token: vault_client::Token::new("s.wrapping-token"),
        accessor: "wrapping-accessor".to_owned(),
        ttl: 300 * S,
        creation_time: "2026-12-03T17:45:05Z".to_owned(),
        creation_path: "auth/approle/login".to_owned(),
        wrapped_accessor: "wrapped-accessor".to_owned(),
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_keeps_the_token_while_it_is_valid() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|n| Ok(login_ok(n, 600)));
    // Vault is unreachable from 400 s to 460 s after each login: the first renewal (at
    // 400 s plus a third of the grace) fails, and the outage ends before the token is within
    // its grace (at most 120 s of its 600 s), so the token is kept. An outage reaching into
    // the grace ends in a new login instead, as in Vault (the test after this one).
    fake.on_renew(|renew| {
        if (400 * S..460 * S).contains(&renew.since_login) {
            return Err(unreachable());
        }
        Ok(lease(600))
    });

    let running = Running::start(&fake, approle(&dir));
    sleep(1500 * S).await;
    let generation = running.generation();
    running.stop().await.unwrap();

    assert_eq!(fake.login_times().len(), 1);
    assert_eq!(generation, 1);

    // The failed renewals were retried with Vault's backoff, not in a loop.
    let renewals = fake.renew_times();
    let in_outage: Vec<Duration> = renewals
        .iter()
        .copied()
        .filter(|t| (400 * S..460 * S).contains(t))
        .collect();
    assert!((2..=8).contains(&in_outage.len()), "{:?}", secs(&renewals));
    assert!(
        gaps(&in_outage).iter().all(|gap| *gap >= 5.0),
        "{:?}",
        secs(&renewals)
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_that_expires_during_an_outage_is_replaced_within_its_grace() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|n| Ok(login_ok(n, 600)));
    // After the first renewal, the first token can no longer be renewed.
    fake.on_renew(|renew| match renew.token {
        "s.token-1" if !renew.since_login.is_zero() => Err(unreachable()),
        _ => Ok(lease(600)),
    });

    let running = Running::start(&fake, approle(&dir));
    sleep(700 * S).await;
    running.stop().await.unwrap();

    // Re-login once the 600 s token is within its grace (60-120 s), never before.
    let logins = fake.login_times();
    assert_eq!(logins.len(), 2, "{:?}", secs(&logins));
    assert!(
        (480.0..=540.0).contains(&logins[1].as_secs_f64()),
        "{:?}",
        secs(&logins)
    );
}

#[tokio::test(start_paused = true)]
async fn exit_on_err_stops_at_the_first_failed_login() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|_| Err(status(400)));

    let mut settings = approle(&dir);
    settings.exit_on_err = true;
    let running = Running::start(&fake, settings);
    let failed = running.task.await.unwrap().unwrap_err();

    assert_eq!(failed.method, "approle");
    assert_eq!(failed.mount_path, "auth/approle");
    assert!(
        matches!(failed.source, LoginFailed::Login { .. }),
        "{failed:?}"
    );
    assert_eq!(fake.login_times(), [Duration::ZERO]);
}

#[tokio::test(start_paused = true)]
async fn exit_on_err_ignores_renewal_errors() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_renew(|_| Err(unreachable()));

    let mut settings = approle(&dir);
    settings.exit_on_err = true;
    let running = Running::start(&fake, settings);
    sleep(600 * S).await;

    assert!(!running.task.is_finished());
    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn each_login_publishes_one_new_token_and_renewals_go_apart() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|n| Ok(login_ok(n, 30)));
    fake.on_renew(|renew| Ok(lease_of((30 * S).saturating_sub(renew.since_login))));

    let running = Running::start(&fake, approle(&dir));
    let mut tokens = running.tokens.clone();
    let mut renewals = running.renewals.clone();

    // The first token, and its immediate renewal.
    tokens.changed().await.unwrap();
    let first = tokens.borrow_and_update().clone().unwrap();
    assert_eq!(first.client_token().unwrap().expose(), "s.token-1");
    assert_eq!((first.generation(), first.ttl()), (1, 30 * S));
    assert_eq!(first.accessor(), "accessor-1");
    renewals.changed().await.unwrap();
    assert_eq!(renewals.borrow_and_update().unwrap().generation, 1);

    // A late subscriber finds the current token at once.
    let late = running.tokens.clone();
    assert_eq!(late.borrow().as_ref().unwrap().generation(), 1);

    // Renewals alone never change the token channel.
    sleep(20 * S).await;
    assert!(!tokens.has_changed().unwrap());

    // The next login is exactly one new value.
    tokens.changed().await.unwrap();
    let second = tokens.borrow_and_update().clone().unwrap();
    assert_eq!(second.client_token().unwrap().expose(), "s.token-2");
    assert_eq!(second.generation(), 2);
    assert!(!tokens.has_changed().unwrap());

    running.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_token_file_token_that_never_expires_is_never_renewed() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s.root-token\n").unwrap();

    let fake = FakeVault::new();
    fake.on_lookup(|_| {
        Ok(TokenInfo {
            accessor: "root-accessor".to_owned(),
            ttl: Duration::ZERO,
            expire_time: None,
            ..TokenInfo::default()
        })
    });

    let settings = MethodSettings::new(MethodKind::TokenFile(TokenFileSettings {
        token_file_path: path,
    }));
    let running = Running::start(&fake, settings);
    sleep(10 * 3600 * S).await;
    let token = running.tokens.borrow().clone().unwrap();
    running.stop().await.unwrap();

    assert_eq!(token.client_token().unwrap().expose(), "s.root-token");
    assert_eq!(
        fake.times(|c| matches!(c, Call::LookupSelf(t) if t == "s.root-token"))
            .len(),
        1
    );
    assert!(fake.renew_times().is_empty());
    assert!(fake.times(|c| matches!(c, Call::Login { .. })).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_token_file_token_checked_again_is_not_published_again() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "s.file-token").unwrap();

    let fake = FakeVault::new();
    fake.on_lookup(|_| {
        Ok(TokenInfo {
            ttl: 100 * S,
            expire_time: Some("2026-12-03T18:00:00Z".to_owned()),
            renewable: false,
            ..TokenInfo::default()
        })
    });

    let settings = MethodSettings::new(MethodKind::TokenFile(TokenFileSettings {
        token_file_path: path,
    }));
    let running = Running::start(&fake, settings);
    sleep(300 * S).await;
    let generation = running.generation();
    running.stop().await.unwrap();

    assert!(fake.login_times().len() >= 3);
    assert_eq!(generation, 1);
}

#[tokio::test(start_paused = true)]
async fn login_and_renewal_use_the_methods_namespace() {
    // B16: the method's namespace when it has one, else the client's.
    async fn check(method_namespace: Option<&str>, expected: Option<&str>) {
        let dir = TempDir::new().unwrap();
        let fake = FakeVault::new().for_auth(Some("client-ns")).unwrap();

        let mut settings = approle(&dir);
        settings.namespace = method_namespace.map(str::to_owned);
        let running = Running::start(&fake, settings);
        sleep(S).await;
        running.stop().await.unwrap();

        let records = fake.records();
        assert_eq!(records.len(), 2, "{records:?}");
        for record in records {
            assert_eq!(record.namespace.as_deref(), expected, "{record:?}");
        }
    }

    check(Some("ns1"), Some("ns1")).await;
    check(Some("ns1/child"), Some("ns1/child")).await;
    check(None, Some("client-ns")).await;
    check(Some(""), Some("client-ns")).await;
}

#[tokio::test(start_paused = true)]
async fn a_wrapped_login_publishes_the_wrap_info_and_is_never_renewed() {
    let dir = TempDir::new().unwrap();
    let fake = FakeVault::new();
    fake.on_login(|_| Ok(LoginResponse::Wrapped(wrap_info())));

    let mut settings = approle(&dir);
    settings.wrap_ttl = Some(300 * S);
    let running = Running::start(&fake, settings);
    sleep(3600 * S).await;
    let token = running.tokens.borrow().clone().unwrap();
    running.stop().await.unwrap();

    // B06: the wrapping JSON is for sinks only, never a client token.
    assert!(token.is_wrapped());
    assert!(token.client_token().is_none());
    let json: serde_json::Value = serde_json::from_str(token.expose_sink_value()).unwrap();
    assert_eq!(json["token"], "s.wrapping-token");
    assert_eq!(json["creation_path"], "auth/approle/login");
    assert_eq!(json["ttl"], 300);

    let records = fake.records();
    assert_eq!(records.len(), 1, "{records:?}");
    let Call::Login { wrap_ttl, .. } = &records[0].call else {
        panic!("{records:?}")
    };
    assert_eq!(*wrap_ttl, Some(300 * S));
}

#[tokio::test(start_paused = true)]
async fn cert_logs_in_through_a_client_with_the_certificate() {
    async fn check(reload: bool, expected_builds: usize) {
        let fake = FakeVault::new();
        // Tokens of 10 s that cannot be renewed: a new login every 8-9 s.
        fake.on_login(|n| {
            let LoginResponse::Auth(mut auth) = login_ok(n, 10) else {
                unreachable!()
            };
            auth.renewable = false;
            Ok(LoginResponse::Auth(auth))
        });

        let cert = CertSettings {
            name: Some("web".to_owned()),
            client_cert: Some("/tls/agent.pem".into()),
            client_key: Some("/tls/agent-key.pem".into()),
            reload,
            ..CertSettings::default()
        };
        let mut settings = MethodSettings::new(MethodKind::Cert(cert));
        settings.namespace = Some("ns1".to_owned());
        let running = Running::start(&fake, settings);
        sleep(20 * S).await;
        running.stop().await.unwrap();

        let logins: Vec<_> = fake
            .records()
            .into_iter()
            .filter(|r| r.own_client)
            .collect();
        assert_eq!(logins.len(), 3, "{logins:?}");
        assert_eq!(
            logins[0].call,
            Call::Login {
                mount_path: "auth/cert".to_owned(),
                body: json!({"name": "web"}),
                wrap_ttl: None,
            }
        );

        let built = fake.built();
        assert_eq!(built.len(), expected_builds);
        assert_eq!(
            built[0].client_cert.as_deref(),
            Some(Path::new("/tls/agent.pem"))
        );
        assert_eq!(
            built[0].client_key.as_deref(),
            Some(Path::new("/tls/agent-key.pem"))
        );
        assert_eq!(built[0].namespace.as_deref(), Some("ns1"));
        assert_eq!(built[0].retry, RetryPolicy::NONE);
    }

    check(false, 1).await;
    check(true, 3).await;
}

#[tokio::test(start_paused = true)]
async fn a_used_wrapping_token_is_retried_with_backoff_until_a_new_one_appears() {
    // B11: the wrapped secret_id was unwrapped by an earlier run.
    let dir = TempDir::new().unwrap();
    let secret_id = dir.path().join("secret_id");
    std::fs::write(&secret_id, "s.used-wrapping-token").unwrap();

    let fake = FakeVault::new();
    fake.on_wrap_lookup(|token| match token.as_str() {
        "s.fresh-wrapping-token" => Ok(WrapLookup {
            creation_path: "auth/approle/role/app/secret-id".to_owned(),
            ..WrapLookup::default()
        }),
        _ => Err(status(400)),
    });
    fake.on_unwrap(|_| {
        Ok(SecretData::new(
            json!({"data": {"secret_id": "unwrapped-id"}}),
        ))
    });

    let mut settings = approle(&dir);
    let MethodKind::AppRole(approle) = &mut settings.kind else {
        unreachable!()
    };
    approle.secret_id_file_path = Some(secret_id.clone());
    approle.remove_secret_id_file_after_reading = false;
    approle.secret_id_response_wrapping_path = Some("auth/approle/role/app/secret-id".to_owned());

    let (logs, _guard) = Captured::start();
    let running = Running::start(&fake, settings);
    sleep(120 * S).await;

    // Only backed-off attempts, nothing published, every failure says why.
    let lookups = fake.times(|c| matches!(c, Call::WrapLookup(_)));
    assert!((6..=8).contains(&lookups.len()), "{:?}", secs(&lookups));
    assert!(fake.times(|c| matches!(c, Call::Login { .. })).is_empty());
    assert!(running.tokens.borrow().is_none());
    let failures = logs.lines_with("login failed");
    assert_eq!(failures.len(), lookups.len());
    assert!(
        failures
            .iter()
            .all(|line| line.contains("already unwrapped, or it expired"))
    );

    // A fresh wrapping token is picked up without a restart.
    std::fs::write(&secret_id, "s.fresh-wrapping-token").unwrap();
    sleep(300 * S).await;
    let token = running.tokens.borrow().clone();
    running.stop().await.unwrap();

    assert!(token.is_some());
    let logins: Vec<Call> = fake
        .records()
        .into_iter()
        .map(|r| r.call)
        .filter(|c| matches!(c, Call::Login { .. }))
        .collect();
    let [Call::Login { body, .. }] = logins.as_slice() else {
        panic!("{logins:?}")
    };
    assert_eq!(
        *body,
        json!({"role_id": "role-id-value", "secret_id": "unwrapped-id"})
    );
}

#[tokio::test(start_paused = true)]
async fn no_secret_reaches_a_log_line() {
    let dir = TempDir::new().unwrap();
    let role_id = dir.path().join("role_id");
    let secret_id = dir.path().join("secret_id");
    std::fs::write(&role_id, "ROLE-ID-SECRET").unwrap();
    std::fs::write(&secret_id, "SECRET-ID-SECRET").unwrap();

    let fake = FakeVault::new();
    fake.on_login(|n| match n {
        1 => Err(status(403)),
        _ => Ok(LoginResponse::Auth(AuthInfo {
            client_token: vault_client::Token::new(format!("s.TOKEN-SECRET-{n}")),
            accessor: "visible-accessor".to_owned(),
            lease_duration: 30 * S,
            renewable: true,
            ..AuthInfo::default()
        })),
    });
    let mut renewals = 0;
    fake.on_renew(move |renew| {
        renewals += 1;
        match renewals {
            2 => Err(unreachable()),
            _ => Ok(lease_of((30 * S).saturating_sub(renew.since_login))),
        }
    });

    let mut settings = MethodSettings::new(MethodKind::AppRole(AppRoleSettings {
        secret_id_file_path: Some(secret_id),
        ..AppRoleSettings::new(role_id)
    }));
    settings.mount_path = Some("auth/approle/".to_owned());

    let (logs, _guard) = Captured::start();
    let running = Running::start(&fake, settings);
    sleep(100 * S).await;
    let token = running.tokens.borrow().clone().unwrap();
    running.stop().await.unwrap();

    let text = logs.text();
    for secret in ["ROLE-ID-SECRET", "SECRET-ID-SECRET", "TOKEN-SECRET"] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
    // What the log is for is there: the test would notice an empty log.
    for expected in [
        "login failed",
        "authenticated; token published",
        "visible-accessor",
        "renewed the token",
        "cannot renew the token",
        "logging in again",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    assert!(!format!("{token:?}").contains("TOKEN-SECRET"));
}

#[test]
fn settings_the_lifecycle_cannot_honour_are_refused() {
    fn check(change: impl FnOnce(&mut MethodSettings), expected: &str) {
        let mut settings =
            MethodSettings::new(MethodKind::AppRole(AppRoleSettings::new("/etc/role_id")));
        change(&mut settings);
        let result = AuthHandler::new(FakeVault::new(), &ClientSettings::default(), settings);
        match result {
            Ok(_) => assert_eq!("accepted", expected),
            Err(error) => assert_eq!(error.to_string(), expected),
        }
    }

    check(|_| {}, "accepted");
    check(
        |s| s.min_backoff = Duration::ZERO,
        "auto_auth method \"approle\": min_backoff must be greater than zero",
    );
    check(
        |s| s.max_backoff = Duration::from_millis(500),
        "auto_auth method \"approle\": min_backoff must not be greater than max_backoff",
    );
    check(
        |s| {
            s.kind = MethodKind::TokenFile(TokenFileSettings {
                token_file_path: "/t".into(),
            });
            s.wrap_ttl = Some(S);
        },
        "auto_auth method \"token_file\": wrap_ttl cannot be used with token_file, which \
         does not log in",
    );
    check(
        |s| {
            let MethodKind::AppRole(approle) = &mut s.kind else {
                unreachable!()
            };
            approle.secret_id_response_wrapping_path = Some("auth/approle/role/r/secret-id".into());
        },
        "auto_auth method \"approle\": secret_id_response_wrapping_path needs \
         secret_id_file_path",
    );
    check(
        |s| s.kind = MethodKind::Jwt(crate::JwtSettings::new("/jwt", "")),
        "auto_auth method \"jwt\": role must be set",
    );
    check(
        |s| {
            s.kind = MethodKind::Cert(CertSettings {
                client_cert: Some("/c.pem".into()),
                ..CertSettings::default()
            });
        },
        "auto_auth method \"cert\": client_cert and client_key must be set together",
    );
}
