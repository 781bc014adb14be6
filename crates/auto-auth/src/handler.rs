//! The lifecycle: log in, publish, renew, log in again.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep};
use tracing::{Instrument, debug, error, info, info_span, warn};
use vault_client::{Client, ClientSettings, LoginResponse, RequestError, Token};

use crate::api::{AuthApi, RenewFailure};
use crate::backoff::{self, LoginBackoff, RenewalBackoff, renewal_sleep};
use crate::error::{AuthFailed, Chain, LoginFailed, SettingsError};
use crate::method::{AuthMethod, Credentials, Method};
use crate::settings::{MethodKind, MethodSettings};
use crate::token::{AuthStats, AuthToken, Credential, Renewal, RenewalReceiver, TokenReceiver};

/// Logs in with one method and keeps a valid token published for as long as it runs.
///
/// Subscribe with [`tokens`](Self::tokens) and [`renewals`](Self::renewals) before
/// handing the handler to [`run`](Self::run).
pub struct AuthHandler<A = Client> {
    api: A,
    method: Method<A>,
    method_name: &'static str,
    mount_path: String,
    wrap_ttl: Option<Duration>,
    min_backoff: Duration,
    max_backoff: Duration,
    exit_on_err: bool,
    tokens: watch::Sender<Option<Arc<AuthToken>>>,
    renewals: watch::Sender<Option<Renewal>>,
    stats: AuthStats,
    generation: u64,
}

impl<A> fmt::Debug for AuthHandler<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthHandler")
            .field("method", &self.method_name)
            .field("mount_path", &self.mount_path)
            .field("wrap_ttl", &self.wrap_ttl)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("exit_on_err", &self.exit_on_err)
            .finish_non_exhaustive()
    }
}

impl<A: AuthApi> AuthHandler<A> {
    /// Checks `settings` and prepares the method.
    ///
    /// `client` is the agent's client to Vault; logins and renewals go through a copy of
    /// it in the method's namespace (when set) without retries of its own. `base` is the
    /// settings `client` was built from, from which the `cert` method derives its TLS
    /// client.
    pub fn new(
        client: A,
        base: &ClientSettings,
        settings: MethodSettings,
    ) -> Result<Self, SettingsError> {
        let method_name = settings.kind.name();
        validate(&settings)?;

        let mount_path = settings.mount_path();
        let namespace = settings.namespace.as_deref().filter(|ns| !ns.is_empty());
        let api = client
            .for_auth(namespace)
            .map_err(|source| SettingsError::Client {
                method: method_name,
                source,
            })?;
        let method = Method::new(settings.kind, base, namespace);

        Ok(Self {
            api,
            method,
            method_name,
            mount_path,
            wrap_ttl: settings.wrap_ttl.filter(|ttl| !ttl.is_zero()),
            min_backoff: settings.min_backoff,
            max_backoff: settings.max_backoff,
            exit_on_err: settings.exit_on_err,
            tokens: watch::Sender::new(None),
            renewals: watch::Sender::new(None),
            stats: AuthStats::default(),
            generation: 0,
        })
    }

    /// Each new token; a clone of the receiver serves any later subscriber.
    pub fn tokens(&self) -> TokenReceiver {
        self.tokens.subscribe()
    }

    /// Each successful renewal of the current token.
    pub fn renewals(&self) -> RenewalReceiver {
        self.renewals.subscribe()
    }

    /// The counters, which keep counting while the handler runs.
    pub fn stats(&self) -> AuthStats {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes (then `Ok`), or until a login fails with
    /// `exit_on_err` set.
    ///
    /// Failed logins are retried with backoff; a token is renewed on Vault's schedule and
    /// replaced when renewal stops extending it, when Vault rejects it, or when it expires
    /// during an outage. A response-wrapped login is published once and never renewed.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), AuthFailed> {
        let span = info_span!("auth", method = self.method_name, mount = %self.mount_path);
        async move {
            info!("auto-auth started");
            tokio::select! {
                () = shutdown => {
                    info!("auto-auth stopped");
                    Ok(())
                }
                failed = self.authenticate() => Err(failed),
            }
        }
        .instrument(span)
        .await
    }

    /// Logs in and keeps the token alive, again and again; returns only when a login
    /// failed and `exit_on_err` is set.
    async fn authenticate(&mut self) -> AuthFailed {
        let mut backoff = LoginBackoff::new(self.min_backoff, self.max_backoff);
        loop {
            let issued = match self.login().await {
                Ok(issued) => issued,
                Err(source) => {
                    self.stats.count_login_failure();
                    self.stats.set_authenticated(false);
                    if self.exit_on_err {
                        error!(error = %Chain(&source), "login failed; giving up as exit_on_err is set");
                        return AuthFailed {
                            method: self.method_name,
                            mount_path: self.mount_path.clone(),
                            source,
                        };
                    }
                    let wait = backoff.next_wait();
                    warn!(error = %Chain(&source), retry_in = ?wait, "login failed");
                    sleep(wait).await;
                    continue;
                }
            };
            self.stats.count_login();
            self.stats.set_authenticated(true);

            let lease = Lease {
                ttl: issued.ttl,
                renewable: issued.renewable,
                issued_at: Instant::now(),
            };
            let expires = issued.expires;
            let token = self.publish(issued);
            let Some(client_token) = token.client_token().filter(|_| expires) else {
                // A wrapped login or a token that never expires: nothing to renew, ever.
                return std::future::pending().await;
            };

            let ending = self
                .keep_alive(client_token, token.generation(), lease)
                .await;
            ending.log();

            // A token given up sooner than min_backoff after its login (rejected at its
            // first renewal, a TTL of next to nothing) paces the next login like a failed
            // one: logging in again at once could loop as fast as Vault answers.
            if lease.issued_at.elapsed() >= self.min_backoff {
                backoff.reset();
            } else {
                let wait = backoff.next_wait();
                warn!(retry_in = ?wait, "the token did not last; waiting before the next login");
                sleep(wait).await;
            }
        }
    }

    /// One login attempt: the method's credentials, then Vault's answer checked.
    async fn login(&mut self) -> Result<Issued, LoginFailed> {
        match self.method.credentials(&self.api).await? {
            Credentials::Token(token) => {
                let info = self
                    .api
                    .lookup_self(&token)
                    .await
                    .map_err(|source| LoginFailed::Lookup { source })?;

                // TTL zero and no expiry time is a token that never expires (root); TTL
                // zero with an expiry time is one about to expire.
                let expires = !info.ttl.is_zero() || info.expire_time.is_some();
                Ok(Issued {
                    credential: Credential::Token(token),
                    accessor: info.accessor,
                    ttl: info.ttl,
                    renewable: info.renewable,
                    expires,
                    token_type: info.token_type,
                })
            }
            Credentials::Login { body, via } => {
                let api = via.as_ref().unwrap_or(&self.api);
                let response = api
                    .login(&self.mount_path, body, self.wrap_ttl)
                    .await
                    .map_err(|source| LoginFailed::Login { source })?;
                self.issued(response)
            }
        }
    }

    /// Turns a login answer into a token, refusing answers that carry none.
    fn issued(&self, response: LoginResponse) -> Result<Issued, LoginFailed> {
        match response {
            LoginResponse::Auth(_) if self.wrap_ttl.is_some() => {
                Err(LoginFailed::WrappingMismatch { wrapped: false })
            }
            LoginResponse::Wrapped(_) if self.wrap_ttl.is_none() => {
                Err(LoginFailed::WrappingMismatch { wrapped: true })
            }
            LoginResponse::Auth(auth) if auth.client_token.is_empty() => Err(LoginFailed::NoToken),
            LoginResponse::Wrapped(info) if info.token.is_empty() => Err(LoginFailed::NoToken),
            LoginResponse::Auth(auth) => Ok(Issued {
                expires: !auth.lease_duration.is_zero(),
                credential: Credential::Token(auth.client_token),
                accessor: auth.accessor,
                ttl: auth.lease_duration,
                renewable: auth.renewable,
                token_type: auth.token_type,
            }),
            LoginResponse::Wrapped(info) => Ok(Issued {
                credential: Credential::Wrapped(info.to_json()),
                accessor: info.accessor,
                ttl: info.ttl,
                renewable: false,
                expires: false,
                token_type: "wrapping".to_owned(),
            }),
        }
    }

    /// Publishes a new token, unless it is the one already published (`token_file`
    /// hands back the same token when it is checked again).
    fn publish(&mut self, issued: Issued) -> Arc<AuthToken> {
        let current = self.tokens.borrow().clone();
        if let Some(current) = current.filter(|t| *t.credential() == issued.credential) {
            debug!(ttl = ?issued.ttl, "checked the token again; it is unchanged");
            return current;
        }

        self.generation += 1;
        let token = Arc::new(AuthToken::new(
            issued.credential,
            issued.accessor,
            issued.ttl,
            issued.renewable,
            self.generation,
        ));
        self.tokens.send_replace(Some(token.clone()));

        info!(
            accessor = token.accessor(),
            ttl = ?token.ttl(),
            renewable = token.renewable(),
            token_type = issued.token_type,
            wrapped = token.is_wrapped(),
            generation = token.generation(),
            "authenticated; token published"
        );
        token
    }

    /// Renews the token on Vault's schedule until it has to be replaced, and says why.
    async fn keep_alive(&self, token: &Token, generation: u64, lease: Lease) -> Ending {
        let mut expires_at = lease.issued_at + lease.ttl;
        let mut grace = backoff::grace(lease.ttl);
        let mut prior = lease.ttl;
        let mut renewable = lease.renewable;
        let mut errors = RenewalBackoff::new();

        loop {
            if !renewable {
                // Nothing to renew: use the token up to its grace, then replace it.
                let usable = expires_at.saturating_duration_since(Instant::now());
                let wait = usable.saturating_sub(grace);
                debug!(replace_in = ?wait, "token is not renewable");
                sleep(wait).await;
                return Ending::Expiring;
            }

            match self.api.renew_self(token, None).await {
                Ok(auth) => {
                    let now = Instant::now();
                    let remaining = auth.lease_duration;
                    self.stats.count_renewal();
                    self.renewals.send_replace(Some(Renewal {
                        generation,
                        ttl: remaining,
                        renewed_at: now,
                    }));
                    errors.reset();

                    // A new grace only while renewals extend the token; once it stops
                    // growing (max TTL), the grace in force decides when to replace it.
                    if remaining > prior {
                        grace = backoff::grace(remaining);
                    }
                    prior = remaining;
                    expires_at = now + remaining;
                    renewable = auth.renewable;
                    if !renewable {
                        continue;
                    }

                    let Some(pause) = renewal_sleep(remaining, grace) else {
                        return Ending::Expiring;
                    };
                    debug!(ttl = ?remaining, next_renewal_in = ?pause, "renewed the token");
                    sleep(pause).await;
                }
                Err(error) if RenewFailure::of(&error) == RenewFailure::Rejected => {
                    return Ending::Rejected(error);
                }
                Err(error) => {
                    let left = expires_at.saturating_duration_since(Instant::now());
                    let usable = left.saturating_sub(grace);
                    if usable.is_zero() {
                        return Ending::Lapsed(error);
                    }

                    let pause = errors.next_wait().min(usable);
                    warn!(
                        error = %Chain(&error),
                        retry_in = ?pause,
                        valid_for = ?left,
                        "cannot renew the token; keeping it while it is valid"
                    );
                    sleep(pause).await;
                }
            }
        }
    }
}

/// Refuses settings the lifecycle cannot honour.
fn validate(settings: &MethodSettings) -> Result<(), SettingsError> {
    let method = settings.kind.name();
    let invalid = |setting, problem| {
        Err(SettingsError::Invalid {
            method,
            setting,
            problem,
        })
    };

    if settings.min_backoff.is_zero() {
        return invalid("min_backoff", "must be greater than zero");
    }
    if settings.min_backoff > settings.max_backoff {
        return invalid("min_backoff", "must not be greater than max_backoff");
    }

    match &settings.kind {
        MethodKind::AppRole(approle) => {
            if approle.role_id_file_path.as_os_str().is_empty() {
                return invalid("role_id_file_path", "must be set");
            }
            let wrapped = approle.secret_id_response_wrapping_path.is_some();
            if wrapped && approle.secret_id_file_path.is_none() {
                return invalid(
                    "secret_id_response_wrapping_path",
                    "needs secret_id_file_path",
                );
            }
        }
        MethodKind::TokenFile(token_file) => {
            if token_file.token_file_path.as_os_str().is_empty() {
                return invalid("token_file_path", "must be set");
            }
            if settings.wrap_ttl.is_some_and(|ttl| !ttl.is_zero()) {
                return invalid(
                    "wrap_ttl",
                    "cannot be used with token_file, which does not log in",
                );
            }
        }
        MethodKind::Jwt(jwt) => {
            if jwt.path.as_os_str().is_empty() {
                return invalid("path", "must be set");
            }
            if jwt.role.is_empty() {
                return invalid("role", "must be set");
            }
        }
        MethodKind::Kubernetes(kubernetes) => {
            if kubernetes.role.is_empty() {
                return invalid("role", "must be set");
            }
        }
        MethodKind::Cert(cert) => {
            if cert.client_cert.is_some() != cert.client_key.is_some() {
                return invalid("client_cert", "and client_key must be set together");
            }
        }
    }
    Ok(())
}

/// A login's result, before it is published.
struct Issued {
    credential: Credential,
    accessor: String,
    ttl: Duration,
    renewable: bool,
    /// False for a token that never expires and for a wrapped login: neither is renewed.
    expires: bool,
    token_type: String,
}

/// The lease of a token at login.
#[derive(Clone, Copy)]
struct Lease {
    ttl: Duration,
    renewable: bool,
    issued_at: Instant,
}

/// Why a token is being replaced.
enum Ending {
    /// It reached its grace: its max TTL, or the end of a non-renewable lease.
    Expiring,
    /// Vault refused to renew it: revoked, expired, or no longer valid.
    Rejected(RequestError),
    /// Renewals kept failing until it was about to expire.
    Lapsed(RequestError),
}

impl Ending {
    fn log(&self) {
        match self {
            Self::Expiring => info!("token is near the end of its life; logging in again"),
            Self::Rejected(error) => {
                warn!(error = %Chain(error), "vault rejected the token; logging in again");
            }
            Self::Lapsed(error) => warn!(
                error = %Chain(error),
                "could not renew the token before it expired; logging in again"
            ),
        }
    }
}

#[cfg(test)]
mod tests;
