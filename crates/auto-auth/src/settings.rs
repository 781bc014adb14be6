//! Plain settings of one auto-auth method; the binary maps the configuration onto them.

use std::path::PathBuf;
use std::time::Duration;

/// Where Kubernetes mounts the pod's service-account token.
pub const DEFAULT_KUBERNETES_TOKEN_PATH: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// One `auto_auth { method "<type>" { ... } }` block, with Vault's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodSettings {
    /// The method and its `config` map.
    pub kind: MethodKind,
    /// Where the method is mounted; `auth/<type>` when unset. A trailing `/` is ignored.
    pub mount_path: Option<String>,
    /// Namespace of the login (and of the token's renewals); the client's own when unset.
    pub namespace: Option<String>,
    /// Response-wrap the login: the wrapping JSON is published instead of a token, and
    /// nothing is renewed.
    pub wrap_ttl: Option<Duration>,
    /// First wait after a failed login.
    pub min_backoff: Duration,
    /// Longest wait between failed logins.
    pub max_backoff: Duration,
    /// Stop at the first failed login instead of retrying (renewal errors never stop).
    pub exit_on_err: bool,
}

impl MethodSettings {
    /// Vault's defaults around `kind`: mount `auth/<type>`, backoff 1 s to 5 min, retry
    /// forever, no wrapping, the client's namespace.
    pub fn new(kind: MethodKind) -> Self {
        Self {
            kind,
            mount_path: None,
            namespace: None,
            wrap_ttl: None,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            exit_on_err: false,
        }
    }

    /// The login mount: the configured one without its trailing `/`, else `auth/<type>`;
    /// always `auth/token` for `token_file`, which does not log in.
    pub fn mount_path(&self) -> String {
        if let MethodKind::TokenFile(_) = self.kind {
            return "auth/token".to_owned();
        }
        match self.mount_path.as_deref().map(|p| p.trim_end_matches('/')) {
            Some(path) if !path.is_empty() => path.to_owned(),
            _ => format!("auth/{}", self.kind.name()),
        }
    }
}

/// The supported methods, each with its `config` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MethodKind {
    /// `approle`: role_id and secret_id read from files.
    AppRole(AppRoleSettings),
    /// `token_file`: a token read from a file, checked with lookup-self; no login.
    TokenFile(TokenFileSettings),
    /// `jwt`: a JWT read from a file.
    Jwt(JwtSettings),
    /// `kubernetes`: the pod's service-account token.
    Kubernetes(KubernetesSettings),
    /// `cert`: TLS client-certificate login.
    Cert(CertSettings),
}

impl MethodKind {
    /// The method's type as written in the configuration.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AppRole(_) => "approle",
            Self::TokenFile(_) => "token_file",
            Self::Jwt(_) => "jwt",
            Self::Kubernetes(_) => "kubernetes",
            Self::Cert(_) => "cert",
        }
    }
}

/// `approle` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppRoleSettings {
    /// File holding the role_id; read again at every login.
    pub role_id_file_path: PathBuf,
    /// File holding the secret_id (or a wrapping token around it); without it only the
    /// role_id is sent, which suits roles with `bind_secret_id = false`.
    pub secret_id_file_path: Option<PathBuf>,
    /// Delete the secret_id file once read; the value is kept in memory for re-logins.
    pub remove_secret_id_file_after_reading: bool,
    /// The secret_id file holds a wrapping token created at this path; anything else is
    /// refused.
    pub secret_id_response_wrapping_path: Option<String>,
}

impl AppRoleSettings {
    /// Vault's defaults: no secret_id file, remove it after reading when there is one.
    pub fn new(role_id_file_path: impl Into<PathBuf>) -> Self {
        Self {
            role_id_file_path: role_id_file_path.into(),
            secret_id_file_path: None,
            remove_secret_id_file_after_reading: true,
            secret_id_response_wrapping_path: None,
        }
    }
}

/// `token_file` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFileSettings {
    /// File holding the token (not a wrapping token).
    pub token_file_path: PathBuf,
}

/// `jwt` settings.
///
/// Vault also polls the file every `jwt_read_period`; this crate reads it at each login
/// instead (see the `method` module), so that setting has no counterpart here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// File holding the JWT: a regular file or a symlink.
    pub path: PathBuf,
    /// The role to log in as.
    pub role: String,
    /// Delete the file once read; the JWT is kept in memory for re-logins.
    pub remove_jwt_after_reading: bool,
    /// When the path is a symlink, delete its target rather than the link.
    pub remove_jwt_follows_symlinks: bool,
}

impl JwtSettings {
    /// Vault's defaults: remove the file after reading, remove the link itself.
    pub fn new(path: impl Into<PathBuf>, role: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            role: role.into(),
            remove_jwt_after_reading: true,
            remove_jwt_follows_symlinks: false,
        }
    }
}

/// `kubernetes` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesSettings {
    /// The role to log in as.
    pub role: String,
    /// The service-account token file, read at every login.
    pub token_path: PathBuf,
}

impl KubernetesSettings {
    /// Reads the token from [`DEFAULT_KUBERNETES_TOKEN_PATH`].
    pub fn new(role: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            token_path: PathBuf::from(DEFAULT_KUBERNETES_TOKEN_PATH),
        }
    }
}

/// `cert` settings.
///
/// With `ca_cert` or a client certificate and key, the login goes through a client of its
/// own built from the base client's settings with these files; otherwise through the base
/// client, which then needs a client certificate of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertSettings {
    /// The certificate role to log in as; Vault picks one when unset.
    pub name: Option<String>,
    /// CA file to verify Vault with, instead of the base client's.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Read the files again at every login, so that rotated certificates are picked up.
    pub reload: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_path_defaults_to_the_type_and_drops_a_trailing_slash() {
        fn check(kind: MethodKind, mount_path: Option<&str>, expected: &str) {
            let mut settings = MethodSettings::new(kind);
            settings.mount_path = mount_path.map(str::to_owned);
            assert_eq!(settings.mount_path(), expected, "{mount_path:?}");
        }

        let approle = || MethodKind::AppRole(AppRoleSettings::new("/r"));
        check(approle(), None, "auth/approle");
        check(approle(), Some("auth/ar/"), "auth/ar");
        check(approle(), Some("auth/ar"), "auth/ar");
        check(approle(), Some(""), "auth/approle");
        check(
            MethodKind::Jwt(JwtSettings::new("/j", "r")),
            None,
            "auth/jwt",
        );
        check(
            MethodKind::Kubernetes(KubernetesSettings::new("r")),
            None,
            "auth/kubernetes",
        );
        check(MethodKind::Cert(CertSettings::default()), None, "auth/cert");

        let token_file = MethodKind::TokenFile(TokenFileSettings {
            token_file_path: "/t".into(),
        });
        check(token_file, Some("auth/tf"), "auth/token");
    }

    #[test]
    fn defaults_are_vaults() {
        let settings = MethodSettings::new(MethodKind::AppRole(AppRoleSettings::new("/r")));
        assert_eq!(settings.min_backoff, Duration::from_secs(1));
        assert_eq!(settings.max_backoff, Duration::from_secs(300));
        assert!(!settings.exit_on_err);

        let MethodKind::AppRole(approle) = settings.kind else {
            unreachable!("built as approle")
        };
        assert!(approle.remove_secret_id_file_after_reading);

        let jwt = JwtSettings::new("/j", "r");
        assert!(jwt.remove_jwt_after_reading && !jwt.remove_jwt_follows_symlinks);

        let kubernetes = KubernetesSettings::new("r");
        assert_eq!(
            kubernetes.token_path,
            PathBuf::from(DEFAULT_KUBERNETES_TOKEN_PATH)
        );
    }
}
