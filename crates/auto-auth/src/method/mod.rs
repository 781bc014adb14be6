//! The auth methods: each turns its credential files into what one login needs.
//!
//! Files are read at every login, so that rotated credentials are picked up, and the last
//! value read is kept in memory for the files that are deleted after reading (a secret_id,
//! a JWT) or may vanish. Vault's `jwt` method also polls its file between logins; here
//! it is read only when a login needs it, since that is the only time the JWT is used,
//! and polling is what turned a failed removal into a log line every 500 ms (case B12).

mod approle;
mod cert;
mod files;
mod jwt;
mod kubernetes;
mod token_file;

use std::future::Future;

use vault_client::{ClientSettings, Token};

use crate::api::AuthApi;
use crate::error::LoginFailed;
use crate::settings::MethodKind;

pub(crate) use self::approle::AppRole;
pub(crate) use self::cert::Cert;
pub(crate) use self::jwt::Jwt;
pub(crate) use self::kubernetes::Kubernetes;
pub(crate) use self::token_file::TokenFile;

/// What one login attempt sends.
pub(crate) enum Credentials<A> {
    /// `PUT <mount>/login` with this body (which holds secrets), through the method's own
    /// client when it has one, else the handler's.
    Login {
        body: serde_json::Value,
        via: Option<A>,
    },
    /// A token to use as it is, once lookup-self has vouched for it (`token_file`).
    Token(Token),
}

/// One auth method.
pub(crate) trait AuthMethod<A: AuthApi> {
    /// Reads the credentials (calling Vault when the method needs to, e.g. to unwrap a
    /// secret_id) and says how to log in with them.
    fn credentials(&mut self, api: &A)
    -> impl Future<Output = Result<Credentials<A>, LoginFailed>>;
}

/// The configured method.
pub(crate) enum Method<A> {
    AppRole(AppRole),
    TokenFile(TokenFile),
    Jwt(Jwt),
    Kubernetes(Kubernetes),
    Cert(Cert<A>),
}

impl<A: AuthApi> Method<A> {
    /// `base` and `namespace` are what the `cert` method builds its own client from.
    pub(crate) fn new(kind: MethodKind, base: &ClientSettings, namespace: Option<&str>) -> Self {
        match kind {
            MethodKind::AppRole(settings) => Self::AppRole(AppRole::new(settings)),
            MethodKind::TokenFile(settings) => Self::TokenFile(TokenFile::new(settings)),
            MethodKind::Jwt(settings) => Self::Jwt(Jwt::new(settings)),
            MethodKind::Kubernetes(settings) => Self::Kubernetes(Kubernetes::new(settings)),
            MethodKind::Cert(settings) => Self::Cert(Cert::new(settings, base, namespace)),
        }
    }
}

impl<A: AuthApi> AuthMethod<A> for Method<A> {
    async fn credentials(&mut self, api: &A) -> Result<Credentials<A>, LoginFailed> {
        match self {
            Self::AppRole(method) => method.credentials(api).await,
            Self::TokenFile(method) => method.credentials(api).await,
            Self::Jwt(method) => method.credentials(api).await,
            Self::Kubernetes(method) => method.credentials(api).await,
            Self::Cert(method) => method.credentials(api).await,
        }
    }
}
