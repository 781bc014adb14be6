//! `jwt`: a JWT read from a file, which is deleted after reading by default.

use std::path::PathBuf;

use serde_json::json;
use tracing::{debug, warn};
use vault_client::SecretValue;

use super::files::{Remover, is_missing, read_credential};
use super::{AuthMethod, Credentials};
use crate::api::AuthApi;
use crate::error::{Chain, LoginFailed};
use crate::settings::JwtSettings;

pub(crate) struct Jwt {
    settings: JwtSettings,
    jwt: Option<SecretValue>,
    remover: Remover,
}

impl Jwt {
    pub(crate) fn new(settings: JwtSettings) -> Self {
        Self {
            settings,
            jwt: None,
            remover: Remover::new("jwt"),
        }
    }

    /// Reads the file, keeps its content, and deletes it when configured to.
    async fn read(&mut self) -> Result<SecretValue, LoginFailed> {
        let path = &self.settings.path;
        let metadata =
            tokio::fs::symlink_metadata(path)
                .await
                .map_err(|source| LoginFailed::ReadFile {
                    what: "jwt",
                    path: path.clone(),
                    source,
                })?;
        let is_symlink = metadata.file_type().is_symlink();
        if !metadata.is_file() && !is_symlink {
            return Err(LoginFailed::NotAFile { path: path.clone() });
        }

        let jwt = read_credential(path, "jwt").await?;
        self.jwt = Some(jwt.clone());

        if self.settings.remove_jwt_after_reading {
            match self.removal_target(is_symlink).await {
                Ok(target) => self.remover.remove(&target).await,
                Err(error) => self.remover.failed(path, &error),
            }
        }
        Ok(jwt)
    }

    /// The link itself, or what it points to when removal follows symlinks.
    async fn removal_target(&self, is_symlink: bool) -> std::io::Result<PathBuf> {
        let path = &self.settings.path;
        if is_symlink && self.settings.remove_jwt_follows_symlinks {
            return tokio::fs::canonicalize(path).await;
        }
        Ok(path.clone())
    }
}

impl<A: AuthApi> AuthMethod<A> for Jwt {
    async fn credentials(&mut self, _api: &A) -> Result<Credentials<A>, LoginFailed> {
        let jwt = match self.read().await {
            Ok(jwt) => jwt,
            Err(error) => {
                let Some(cached) = &self.jwt else {
                    return Err(error);
                };
                if is_missing(&error) && self.settings.remove_jwt_after_reading {
                    debug!("the jwt file was consumed; using the jwt read from it");
                } else {
                    warn!(error = %Chain(&error), "using the jwt read earlier");
                }
                cached.clone()
            }
        };

        Ok(Credentials::Login {
            body: json!({ "role": self.settings.role, "jwt": jwt.expose() }),
            via: None,
        })
    }
}
