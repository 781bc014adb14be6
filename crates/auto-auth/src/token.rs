//! What the handler publishes: each new token, each renewal, and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use vault_client::{SecretValue, Token};

/// The channel every consumer of the token watches; `None` until the first login.
///
/// Every value it takes is a new token, so a consumer that writes tokens out writes once
/// per change. A subscriber that arrives late still finds the current token with
/// [`watch::Receiver::borrow`].
pub type TokenReceiver = watch::Receiver<Option<Arc<AuthToken>>>;

/// The channel of renewals; `None` until the first renewal.
///
/// Renewals are kept apart from [`TokenReceiver`] so that a renewal, which leaves the token
/// itself unchanged, never looks like a new token to a sink.
pub type RenewalReceiver = watch::Receiver<Option<Renewal>>;

/// One token obtained by auto-auth.
#[derive(Debug)]
pub struct AuthToken {
    credential: Credential,
    accessor: String,
    ttl: Duration,
    renewable: bool,
    issued_at: Instant,
    generation: u64,
}

/// The secret a login produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// A client token.
    Token(Token),
    /// The method wraps its login: the `wrap_info` JSON (which holds the wrapping token).
    Wrapped(SecretValue),
}

impl AuthToken {
    pub(crate) fn new(
        credential: Credential,
        accessor: String,
        ttl: Duration,
        renewable: bool,
        generation: u64,
    ) -> Self {
        Self {
            credential,
            accessor,
            ttl,
            renewable,
            issued_at: Instant::now(),
            generation,
        }
    }

    /// The token to authenticate requests with; `None` when the login was wrapped, since
    /// the wrapping JSON must never be sent as `X-Vault-Token`.
    pub fn client_token(&self) -> Option<&Token> {
        match &self.credential {
            Credential::Token(token) => Some(token),
            Credential::Wrapped(_) => None,
        }
    }

    /// The `wrap_info` JSON (`token, accessor, ttl, creation_time, creation_path,
    /// wrapped_accessor`) when the method wraps its login.
    pub fn wrapped_response(&self) -> Option<&SecretValue> {
        match &self.credential {
            Credential::Token(_) => None,
            Credential::Wrapped(json) => Some(json),
        }
    }

    /// True when the login was response-wrapped.
    pub fn is_wrapped(&self) -> bool {
        matches!(self.credential, Credential::Wrapped(_))
    }

    /// What a sink writes: the token, or the wrapping JSON when the login was wrapped.
    pub fn expose_sink_value(&self) -> &str {
        match &self.credential {
            Credential::Token(token) => token.expose(),
            Credential::Wrapped(json) => json.expose(),
        }
    }

    /// The token's accessor (the wrapping token's when wrapped); not a secret.
    pub fn accessor(&self) -> &str {
        &self.accessor
    }

    /// The TTL Vault gave at login (zero: the token never expires).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether the token can be renewed.
    pub fn renewable(&self) -> bool {
        self.renewable
    }

    /// When the login answered.
    pub fn issued_at(&self) -> Instant {
        self.issued_at
    }

    /// 1 for the first token, one more for each later one; [`Renewal`]s carry it too.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn credential(&self) -> &Credential {
        &self.credential
    }
}

/// A successful renewal of the current token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// The [`AuthToken::generation`] of the token renewed.
    pub generation: u64,
    /// Its TTL from the renewal on.
    pub ttl: Duration,
    /// When Vault answered.
    pub renewed_at: Instant,
}

/// Counters for metrics; cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct AuthStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    logins: AtomicU64,
    login_failures: AtomicU64,
    renewals: AtomicU64,
    authenticated: AtomicBool,
}

impl AuthStats {
    /// Successful logins (and successful token_file lookups).
    pub fn logins(&self) -> u64 {
        self.0.logins.load(Ordering::Relaxed)
    }

    /// Failed login attempts.
    pub fn login_failures(&self) -> u64 {
        self.0.login_failures.load(Ordering::Relaxed)
    }

    /// Successful renewals of the auto-auth token.
    pub fn renewals(&self) -> u64 {
        self.0.renewals.load(Ordering::Relaxed)
    }

    /// Whether the last login attempt succeeded (Vault's `authenticated` gauge).
    pub fn authenticated(&self) -> bool {
        self.0.authenticated.load(Ordering::Relaxed)
    }

    pub(crate) fn count_login(&self) {
        self.0.logins.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_login_failure(&self) {
        self.0.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_renewal(&self) {
        self.0.renewals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_authenticated(&self, authenticated: bool) {
        self.0.authenticated.store(authenticated, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_never_shows_the_secret() {
        fn check(token: AuthToken, secret: &str) {
            let debug = format!("{token:?} {token:#?}");
            assert!(!debug.contains(secret), "{debug}");
            assert!(debug.contains("redacted"), "{debug}");
        }

        let secret = "s.PublishedTokenValue";
        let token = Credential::Token(Token::new(secret));
        check(
            AuthToken::new(token, "acc".into(), Duration::ZERO, true, 1),
            secret,
        );

        let json = format!(r#"{{"token":"{secret}","ttl":300}}"#);
        let wrapped = Credential::Wrapped(SecretValue::new(json));
        check(
            AuthToken::new(wrapped, "acc".into(), Duration::ZERO, false, 2),
            secret,
        );
    }

    #[tokio::test]
    async fn a_wrapped_login_has_no_client_token() {
        let json = SecretValue::new(r#"{"token":"s.wrap"}"#);
        let token = AuthToken::new(
            Credential::Wrapped(json),
            String::new(),
            Duration::ZERO,
            false,
            1,
        );

        assert!(token.is_wrapped());
        assert!(token.client_token().is_none());
        assert_eq!(token.expose_sink_value(), r#"{"token":"s.wrap"}"#);

        let plain = AuthToken::new(
            Credential::Token(Token::new("s.t")),
            String::new(),
            Duration::ZERO,
            true,
            2,
        );
        assert_eq!(plain.client_token().map(Token::expose), Some("s.t"));
        assert!(plain.wrapped_response().is_none());
    }
}
