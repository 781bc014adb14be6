//! What can go wrong building a client or making a request.
//!
//! No message carries a token or any other secret: tokens travel in headers that never
//! reach an error, and Vault's own error strings are scrubbed of the token a call used.

use std::borrow::Cow;
use std::path::PathBuf;

use http::{Method, StatusCode};

/// An error from the HTTP stack, kept as the cause of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why [`Client::new`](crate::Client::new) could not build a client.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The address is not an http, https or unix URL.
    #[error("invalid Vault address {:?}: {reason}", shown(address))]
    Address {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A certificate, key or CA file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A file meant to hold PEM data is malformed.
    #[error("invalid PEM in {}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        reason: String,
    },

    /// A CA file or directory holds no certificate at all.
    #[error("no PEM certificate found in {}", path.display())]
    NoCertificate {
        /// The file or directory.
        path: PathBuf,
    },

    /// The client key file holds no private key.
    #[error("no PEM private key found in {}", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },

    /// Only one of `client_cert` and `client_key` is set.
    #[error("client_cert and client_key must be set together")]
    HalfIdentity,

    /// The TLS stack refused a CA certificate.
    #[error("cannot trust the certificate in {}", path.display())]
    Certificate {
        /// The file whose content was refused.
        path: PathBuf,
        /// The TLS stack's reason.
        #[source]
        source: BoxError,
    },

    /// The TLS stack refused the client certificate and key as a pair.
    #[error("cannot use the client certificate {} with the key {}", cert.display(), key.display())]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The TLS stack's reason.
        #[source]
        source: BoxError,
    },

    /// A setting that becomes a header (namespace, user agent) has characters a header
    /// cannot carry.
    #[error("{setting} is not a valid HTTP header value")]
    Header {
        /// The setting's name.
        setting: &'static str,
    },

    /// The HTTP stack refused the combination of settings.
    #[error("cannot set up the HTTP client")]
    Http {
        /// The HTTP stack's reason.
        #[source]
        source: BoxError,
    },
}

/// Why a call to Vault failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer at all: connection refused, DNS, TLS or timeout, after every retry.
    #[error(
        "cannot reach Vault at {} after {attempts} attempt{}: {reason}",
        shown(address),
        if *attempts == 1 { "" } else { "s" }
    )]
    Unreachable {
        /// The configured address.
        address: String,
        /// How many times the request was sent.
        attempts: u32,
        /// The innermost cause, in a few words.
        reason: String,
        /// The HTTP stack's error (without the URL).
        #[source]
        source: BoxError,
    },

    /// Vault answered with an error status.
    #[error("{method} {path} got {status} from Vault{}", errors_suffix(errors))]
    Api {
        /// The request's method.
        method: Method,
        /// The request's path under `/v1/`.
        path: String,
        /// Vault's status.
        status: StatusCode,
        /// Vault's `errors` strings (often empty on 404).
        errors: Vec<String>,
    },

    /// Vault answered successfully, but not with what the call expects.
    #[error("cannot decode Vault's answer to {method} {path}: {detail}")]
    Undecodable {
        /// The request's method.
        method: Method,
        /// The request's path under `/v1/`.
        path: String,
        /// What was wrong, without any of the answer's values.
        detail: String,
    },

    /// The connection broke while the answer was being read.
    #[error(
        "lost the connection to Vault at {} while reading the answer to {path}",
        shown(address)
    )]
    Interrupted {
        /// The configured address.
        address: String,
        /// The request's path under `/v1/`.
        path: String,
        /// The HTTP stack's error (without the URL).
        #[source]
        source: BoxError,
    },

    /// The request could not be built: a token or path that cannot go into HTTP.
    #[error("cannot build the request: {reason}")]
    Invalid {
        /// What is wrong (never the offending value when it is a secret).
        reason: String,
    },
}

impl RequestError {
    /// Vault's status, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Vault's `errors` strings, when it answered with an error.
    pub fn errors(&self) -> &[String] {
        match self {
            Self::Api { errors, .. } => errors,
            _ => &[],
        }
    }

    /// True when Vault answered 403: a bad, expired or revoked token, or a missing policy.
    pub fn is_permission_denied(&self) -> bool {
        self.status() == Some(StatusCode::FORBIDDEN)
    }

    /// True when Vault could not be reached at all.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

fn errors_suffix(errors: &[String]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    format!(": {}", errors.join("; "))
}

/// An address as messages show it: the password of its user info
/// (`https://user:password@host`) replaced, for that is a credential.
fn shown(address: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return address.into();
    };
    let Some((user, _password)) = user_info.split_once(':') else {
        return address.into();
    };
    format!("{scheme}://{user}:<redacted>@{host}{path}").into()
}

/// Replaces every occurrence of `secret` in `text`.
pub(crate) fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_owned();
    }
    text.replace(secret, "<redacted>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: RequestError, expected: &str) {
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn messages() {
        check(
            RequestError::Unreachable {
                address: "http://127.0.0.1:1".to_owned(),
                attempts: 3,
                reason: "connection refused".to_owned(),
                source: "refused".into(),
            },
            "cannot reach Vault at http://127.0.0.1:1 after 3 attempts: connection refused",
        );
        check(
            RequestError::Unreachable {
                address: "unix:///run/vault.sock".to_owned(),
                attempts: 1,
                reason: "no such file or directory".to_owned(),
                source: "missing".into(),
            },
            "cannot reach Vault at unix:///run/vault.sock after 1 attempt: \
             no such file or directory",
        );
        check(
            RequestError::Api {
                method: Method::GET,
                path: "auth/token/lookup-self".to_owned(),
                status: StatusCode::FORBIDDEN,
                errors: vec!["permission denied".to_owned()],
            },
            "GET auth/token/lookup-self got 403 Forbidden from Vault: permission denied",
        );
        check(
            RequestError::Api {
                method: Method::GET,
                path: "secret/missing".to_owned(),
                status: StatusCode::NOT_FOUND,
                errors: vec![],
            },
            "GET secret/missing got 404 Not Found from Vault",
        );
    }

    /// An address may carry a password (`https://user:password@host`); messages name the
    /// address without it.
    #[test]
    fn a_password_in_the_address_is_never_shown() {
        let address = || "https://agent:S3CRET@vault:8200/".to_owned();
        check(
            RequestError::Unreachable {
                address: address(),
                attempts: 1,
                reason: "connection refused".to_owned(),
                source: "refused".into(),
            },
            "cannot reach Vault at https://agent:<redacted>@vault:8200/ after 1 attempt: \
             connection refused",
        );
        check(
            RequestError::Interrupted {
                address: address(),
                path: "sys/health".to_owned(),
                source: "reset".into(),
            },
            "lost the connection to Vault at https://agent:<redacted>@vault:8200/ while reading \
             the answer to sys/health",
        );
        let build = BuildError::Address {
            address: "http://:S3CRET@vault".to_owned(),
            reason: "no port".to_owned(),
        };
        assert_eq!(
            build.to_string(),
            r#"invalid Vault address "http://:<redacted>@vault": no port"#
        );
    }

    #[test]
    fn status_helpers() {
        let denied = RequestError::Api {
            method: Method::PUT,
            path: "auth/approle/login".to_owned(),
            status: StatusCode::FORBIDDEN,
            errors: vec!["permission denied".to_owned()],
        };
        assert!(denied.is_permission_denied());
        assert_eq!(denied.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(denied.errors(), ["permission denied"]);

        let invalid = RequestError::Invalid {
            reason: "the token is not a valid header value".to_owned(),
        };
        assert!(!invalid.is_permission_denied());
        assert_eq!(invalid.status(), None);
    }

    #[test]
    fn redaction_removes_every_copy_of_the_secret() {
        fn check(text: &str, secret: &str, expected: &str) {
            assert_eq!(redact(text, secret), expected);
        }

        check("bad token s.abc", "s.abc", "bad token <redacted>");
        check("s.abc and s.abc", "s.abc", "<redacted> and <redacted>");
        check("permission denied", "s.abc", "permission denied");
        check("permission denied", "", "permission denied");
    }
}
