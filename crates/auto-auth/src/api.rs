//! The Vault calls the lifecycle needs, behind a trait so that its timing can be tested.

use std::future::Future;
use std::time::Duration;

use vault_client::{
    AuthInfo, BuildError, Client, ClientSettings, LoginResponse, RequestError, RetryPolicy,
    SecretData, Token, TokenInfo, WrapLookup,
};

/// The Vault API as auto-auth uses it; [`vault_client::Client`] is the implementation.
///
/// The handler holds one value for the whole run and clones it only to derive the
/// namespaced and certificate clients. The futures carry no `Send` bound of their own:
/// [`AuthHandler::run`](crate::AuthHandler::run) is `Send` exactly when the
/// implementation's futures are.
pub trait AuthApi: Clone + Send + Sync + 'static {
    /// The client auto-auth calls through: in `namespace` when given (else this client's),
    /// and without retries of its own, since the handler paces its retries itself.
    fn for_auth(&self, namespace: Option<&str>) -> Result<Self, BuildError>;

    /// A client of the same kind built from other settings: the `cert` method's, which
    /// carries a client certificate.
    fn with_settings(&self, settings: &ClientSettings) -> Result<Self, BuildError>;

    /// `PUT <mount_path>/login` with `body`, response-wrapped when `wrap_ttl` is set.
    fn login(
        &self,
        mount_path: &str,
        body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    ) -> impl Future<Output = Result<LoginResponse, RequestError>>;

    /// `GET auth/token/lookup-self` as `token`.
    fn lookup_self(&self, token: &Token) -> impl Future<Output = Result<TokenInfo, RequestError>>;

    /// `PUT auth/token/renew-self` as `token`.
    fn renew_self(
        &self,
        token: &Token,
        increment: Option<Duration>,
    ) -> impl Future<Output = Result<AuthInfo, RequestError>>;

    /// `sys/wrapping/lookup` of a wrapping token, which leaves it usable.
    fn wrap_lookup(
        &self,
        wrapping_token: &Token,
    ) -> impl Future<Output = Result<WrapLookup, RequestError>>;

    /// `sys/wrapping/unwrap`, which uses the wrapping token up.
    fn unwrap(
        &self,
        wrapping_token: &Token,
    ) -> impl Future<Output = Result<SecretData, RequestError>>;
}

impl AuthApi for Client {
    fn for_auth(&self, namespace: Option<&str>) -> Result<Self, BuildError> {
        let client = match namespace {
            Some(namespace) => self.with_namespace(namespace)?,
            None => self.clone(),
        };
        Ok(client.with_retry(RetryPolicy::NONE))
    }

    fn with_settings(&self, settings: &ClientSettings) -> Result<Self, BuildError> {
        Client::new(settings)
    }

    fn login(
        &self,
        mount_path: &str,
        body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    ) -> impl Future<Output = Result<LoginResponse, RequestError>> {
        Client::login(self, mount_path, body, wrap_ttl)
    }

    fn lookup_self(&self, token: &Token) -> impl Future<Output = Result<TokenInfo, RequestError>> {
        Client::lookup_self(self, token)
    }

    fn renew_self(
        &self,
        token: &Token,
        increment: Option<Duration>,
    ) -> impl Future<Output = Result<AuthInfo, RequestError>> {
        Client::renew_self(self, token, increment)
    }

    fn wrap_lookup(
        &self,
        wrapping_token: &Token,
    ) -> impl Future<Output = Result<WrapLookup, RequestError>> {
        Client::wrap_lookup(self, wrapping_token)
    }

    fn unwrap(
        &self,
        wrapping_token: &Token,
    ) -> impl Future<Output = Result<SecretData, RequestError>> {
        Client::unwrap(self, wrapping_token)
    }
}

/// How a failed renewal is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RenewFailure {
    /// Vault is unreachable or overloaded: keep the token while it is valid and retry.
    Transient,
    /// Vault refused the token (revoked, expired, not renewable): log in again.
    Rejected,
}

impl RenewFailure {
    pub(crate) fn of(error: &RequestError) -> Self {
        let Some(status) = error.status() else {
            // No answer, a broken answer or one we could not decode: nothing says the
            // token is bad, so keep it.
            return Self::Transient;
        };
        match status.as_u16() {
            // Timeouts, precondition (replication lag) and rate limits pass.
            408 | 412 | 429 => Self::Transient,
            400..=499 => Self::Rejected,
            _ => Self::Transient,
        }
    }
}

#[cfg(test)]
mod tests {
    use vault_client::http::{Method, StatusCode};

    use super::*;

    #[test]
    fn renewal_failures_are_classified_by_status() {
        fn check(error: RequestError, expected: RenewFailure) {
            assert_eq!(RenewFailure::of(&error), expected, "{error}");
        }
        fn status(code: u16) -> RequestError {
            RequestError::Api {
                method: Method::PUT,
                path: "auth/token/renew-self".to_owned(),
                status: StatusCode::from_u16(code).unwrap(),
                errors: vec![],
            }
        }

        check(status(403), RenewFailure::Rejected);
        check(status(400), RenewFailure::Rejected);
        check(status(404), RenewFailure::Rejected);
        check(status(429), RenewFailure::Transient);
        check(status(412), RenewFailure::Transient);
        check(status(500), RenewFailure::Transient);
        check(status(503), RenewFailure::Transient);
        check(
            RequestError::Unreachable {
                address: "http://127.0.0.1:1".to_owned(),
                attempts: 1,
                reason: "connection refused".to_owned(),
                source: "refused".into(),
            },
            RenewFailure::Transient,
        );
        check(
            RequestError::Undecodable {
                method: Method::PUT,
                path: "auth/token/renew-self".to_owned(),
                detail: "no auth block in the answer".to_owned(),
            },
            RenewFailure::Transient,
        );
    }
}
