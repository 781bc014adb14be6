//! What can go wrong setting up the handler, logging in, and running.
//!
//! No message carries a secret: file errors name the file, Vault errors are
//! `vault_client::RequestError`s, which never hold a token either.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

use vault_client::{BuildError, RequestError};

/// Why [`AuthHandler::new`](crate::AuthHandler::new) refused its settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A setting has a value the handler cannot work with.
    #[error("auto_auth method {method:?}: {setting} {problem}")]
    Invalid {
        /// The method's type.
        method: &'static str,
        /// The setting at fault.
        setting: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// The namespaced client for the method could not be built.
    #[error("auto_auth method {method:?}: cannot set up its Vault client")]
    Client {
        /// The method's type.
        method: &'static str,
        /// Why.
        #[source]
        source: BuildError,
    },
}

/// Why one login attempt failed; the handler backs off and tries again.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailed {
    /// A credential file could not be read.
    #[error("cannot read the {what} file {}", path.display())]
    ReadFile {
        /// Which credential (`role_id`, `secret_id`, `jwt`, `token`...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A credential file holds nothing but whitespace.
    #[error("the {what} file {} is empty", path.display())]
    EmptyFile {
        /// Which credential.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },

    /// The JWT path is neither a regular file nor a symlink.
    #[error("the jwt path {} is not a regular file or a symlink", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },

    /// Vault does not know the wrapping token in the secret_id file.
    #[error(
        "the wrapping token in {} is not valid: it was already unwrapped, or it expired",
        path.display()
    )]
    WrappingTokenInvalid {
        /// The secret_id file.
        path: PathBuf,
        /// Vault's answer.
        #[source]
        source: RequestError,
    },

    /// Looking the wrapping token up failed for another reason.
    #[error("cannot look up the wrapping token in {}", path.display())]
    WrapLookup {
        /// The secret_id file.
        path: PathBuf,
        /// Why.
        #[source]
        source: RequestError,
    },

    /// The wrapping token wraps something other than a secret_id of the expected role:
    /// someone may have intercepted the real one and handed over their own.
    #[error(
        "security: the wrapping token in {} was created at {found:?}, not at {expected:?}; \
         refusing to unwrap it",
        path.display()
    )]
    WrongCreationPath {
        /// The secret_id file.
        path: PathBuf,
        /// `secret_id_response_wrapping_path`.
        expected: String,
        /// Where Vault says the token was created.
        found: String,
    },

    /// Unwrapping the secret_id failed.
    #[error("cannot unwrap the secret_id in {}", path.display())]
    Unwrap {
        /// The secret_id file.
        path: PathBuf,
        /// Why.
        #[source]
        source: RequestError,
    },

    /// The unwrapped response holds no `data.secret_id` string.
    #[error("the response unwrapped from {} holds no secret_id", path.display())]
    NoSecretId {
        /// The secret_id file.
        path: PathBuf,
    },

    /// The TLS client of the `cert` method could not be built.
    #[error("cannot set up the client certificate for the cert login")]
    CertClient {
        /// Why (names the file at fault).
        #[source]
        source: BuildError,
    },

    /// Vault refused the login or could not be reached.
    #[error("login request failed")]
    Login {
        /// Vault's answer, or why there was none.
        #[source]
        source: RequestError,
    },

    /// `token_file`: Vault refused the token's lookup or could not be reached.
    #[error("looking up the token from the token file failed")]
    Lookup {
        /// Vault's answer, or why there was none.
        #[source]
        source: RequestError,
    },

    /// Vault answered the login without a token.
    #[error("vault answered the login without a client token")]
    NoToken,

    /// The answer's wrapping does not match `wrap_ttl`.
    #[error("vault answered the login {}", if *.wrapped { "wrapped although wrap_ttl is not set" } else { "unwrapped although wrap_ttl is set" })]
    WrappingMismatch {
        /// Whether the answer was wrapped.
        wrapped: bool,
    },
}

/// Why [`AuthHandler::run`](crate::AuthHandler::run) gave up: a login failed and
/// `exit_on_err` is set.
#[derive(Debug, thiserror::Error)]
#[error("auto-auth with {method} at {mount_path} failed and exit_on_err is set")]
pub struct AuthFailed {
    /// The method's type.
    pub method: &'static str,
    /// Its mount.
    pub mount_path: String,
    /// The failed attempt.
    #[source]
    pub source: LoginFailed,
}

/// Shows an error with all its causes, `outer: inner: innermost`, for one log field.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: &(dyn Error + 'static), expected: &str) {
        assert_eq!(Chain(error).to_string(), expected);
    }

    #[test]
    fn messages_with_their_causes() {
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        check(
            &LoginFailed::ReadFile {
                what: "role_id",
                path: "/etc/agent/role_id".into(),
                source: not_found(),
            },
            "cannot read the role_id file /etc/agent/role_id: entity not found",
        );
        check(
            &LoginFailed::WrongCreationPath {
                path: "/etc/agent/secret_id".into(),
                expected: "auth/approle/role/app/secret-id".to_owned(),
                found: "sys/wrapping/wrap".to_owned(),
            },
            "security: the wrapping token in /etc/agent/secret_id was created at \
             \"sys/wrapping/wrap\", not at \"auth/approle/role/app/secret-id\"; refusing to \
             unwrap it",
        );
        check(
            &LoginFailed::Login {
                source: RequestError::Api {
                    method: vault_client::http::Method::PUT,
                    path: "auth/approle/login".to_owned(),
                    status: vault_client::http::StatusCode::BAD_REQUEST,
                    errors: vec!["invalid role or secret ID".to_owned()],
                },
            },
            "login request failed: PUT auth/approle/login got 400 Bad Request from Vault: \
             invalid role or secret ID",
        );
        check(
            &LoginFailed::WrappingMismatch { wrapped: false },
            "vault answered the login unwrapped although wrap_ttl is set",
        );
        check(
            &AuthFailed {
                method: "jwt",
                mount_path: "auth/jwt".to_owned(),
                source: LoginFailed::NoToken,
            },
            "auto-auth with jwt at auth/jwt failed and exit_on_err is set: \
             vault answered the login without a client token",
        );
    }
}
