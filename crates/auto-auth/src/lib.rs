//! Logs in to Vault on the application's behalf and keeps the token valid for as long as
//! the agent runs.
//!
//! An [`AuthHandler`] is built from one method's [`MethodSettings`] (approle, token_file,
//! jwt, kubernetes or cert, each reading its credentials from files) and a
//! `vault_client::Client`. [`AuthHandler::run`] logs in, publishes the token, renews it on
//! Vault's schedule and logs in again when renewal stops extending it or Vault rejects it;
//! failed logins back off as Vault does, and an outage never makes it drop a token that is
//! still valid. Each new token is published once as an [`AuthToken`] on a
//! `tokio::sync::watch` channel ([`TokenReceiver`]); renewals of that token go to a second
//! channel ([`RenewalReceiver`]), so a new token and a renewal are never confused.
//! [`AuthStats`] counts logins and renewals for metrics. Vault is reached through the
//! small [`AuthApi`] trait, implemented for `vault_client::Client`.
//!
//! The crate does not know who listens (sinks, the proxy's cache, templates), writes
//! nothing but the credential files it is told to delete, never revokes a token it
//! replaces, and does not reuse a token left by an earlier run.

mod api;
mod backoff;
mod error;
mod handler;
mod method;
mod settings;
mod token;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod test_log;

pub use crate::api::AuthApi;
pub use crate::error::{AuthFailed, LoginFailed, SettingsError};
pub use crate::handler::AuthHandler;
pub use crate::settings::{
    AppRoleSettings, CertSettings, DEFAULT_KUBERNETES_TOKEN_PATH, JwtSettings, KubernetesSettings,
    MethodKind, MethodSettings, TokenFileSettings,
};
pub use crate::token::{AuthStats, AuthToken, Renewal, RenewalReceiver, TokenReceiver};
