//! `approle`: a role_id and a secret_id, each read from a file.

use std::path::{Path, PathBuf};

use tracing::{debug, warn};
use vault_client::{SecretValue, Token};

use super::files::{Remover, is_missing, read_credential};
use super::{AuthMethod, Credentials};
use crate::api::AuthApi;
use crate::error::{Chain, LoginFailed};
use crate::settings::AppRoleSettings;

pub(crate) struct AppRole {
    settings: AppRoleSettings,
    role_id: Option<SecretValue>,
    secret_id: Option<SecretValue>,
    /// The wrapping token `secret_id` came out of. Wrapping tokens are single-use, so when
    /// the file still holds this one (it is not removed after reading) the secret_id
    /// already unwrapped is used instead of a doomed second unwrap.
    unwrapped_from: Option<SecretValue>,
    remover: Remover,
}

impl AppRole {
    pub(crate) fn new(settings: AppRoleSettings) -> Self {
        Self {
            settings,
            role_id: None,
            secret_id: None,
            unwrapped_from: None,
            remover: Remover::new("secret_id"),
        }
    }

    async fn role_id(&mut self) -> Result<SecretValue, LoginFailed> {
        match read_credential(&self.settings.role_id_file_path, "role_id").await {
            Ok(role_id) => {
                self.role_id = Some(role_id.clone());
                Ok(role_id)
            }
            Err(error) => {
                let Some(cached) = &self.role_id else {
                    return Err(error);
                };
                warn!(error = %Chain(&error), "using the role_id read earlier");
                Ok(cached.clone())
            }
        }
    }

    async fn secret_id<A: AuthApi>(
        &mut self,
        api: &A,
        path: &Path,
    ) -> Result<SecretValue, LoginFailed> {
        let content = match read_credential(path, "secret_id").await {
            Ok(content) => content,
            Err(error) => {
                let Some(cached) = &self.secret_id else {
                    return Err(error);
                };
                if is_missing(&error) && self.settings.remove_secret_id_file_after_reading {
                    debug!("the secret_id file was consumed; using the secret_id read from it");
                } else {
                    warn!(error = %Chain(&error), "using the secret_id read earlier");
                }
                return Ok(cached.clone());
            }
        };

        let secret_id = match &self.settings.secret_id_response_wrapping_path {
            None => content,
            Some(_) if self.unwrapped_from.as_ref() == Some(&content) => match &self.secret_id {
                Some(cached) => cached.clone(),
                None => self.unwrap(api, path, content).await?,
            },
            Some(_) => self.unwrap(api, path, content).await?,
        };
        self.secret_id = Some(secret_id.clone());

        if self.settings.remove_secret_id_file_after_reading {
            self.remover.remove(path).await;
        }
        Ok(secret_id)
    }

    /// Unwraps the secret_id from the wrapping token in the file, after checking that the
    /// token was created where a secret_id of the expected role is.
    async fn unwrap<A: AuthApi>(
        &mut self,
        api: &A,
        path: &Path,
        content: SecretValue,
    ) -> Result<SecretValue, LoginFailed> {
        let expected = self
            .settings
            .secret_id_response_wrapping_path
            .as_deref()
            .unwrap_or_default();
        let path = path.to_owned();
        let wrapping_token = Token::new(content.expose());

        let lookup =
            api.wrap_lookup(&wrapping_token)
                .await
                .map_err(|source| match source.status() {
                    Some(status) if status.is_client_error() => LoginFailed::WrappingTokenInvalid {
                        path: path.clone(),
                        source,
                    },
                    _ => LoginFailed::WrapLookup {
                        path: path.clone(),
                        source,
                    },
                })?;
        if lookup.creation_path.trim_matches('/') != expected.trim_matches('/') {
            return Err(LoginFailed::WrongCreationPath {
                path,
                expected: expected.to_owned(),
                found: lookup.creation_path,
            });
        }

        let data = api
            .unwrap(&wrapping_token)
            .await
            .map_err(|source| LoginFailed::Unwrap {
                path: path.clone(),
                source,
            })?;
        let secret_id = data
            .expose()
            .pointer("/data/secret_id")
            .and_then(serde_json::Value::as_str)
            .filter(|secret_id| !secret_id.is_empty())
            .ok_or_else(|| LoginFailed::NoSecretId { path: path.clone() })?;

        let secret_id = SecretValue::new(secret_id);
        self.unwrapped_from = Some(content);
        Ok(secret_id)
    }

    fn secret_id_file(&self) -> Option<PathBuf> {
        self.settings.secret_id_file_path.clone()
    }
}

impl<A: AuthApi> AuthMethod<A> for AppRole {
    async fn credentials(&mut self, api: &A) -> Result<Credentials<A>, LoginFailed> {
        let role_id = self.role_id().await?;

        let mut body = serde_json::Map::new();
        body.insert("role_id".to_owned(), role_id.expose().into());
        if let Some(path) = self.secret_id_file() {
            let secret_id = self.secret_id(api, &path).await?;
            body.insert("secret_id".to_owned(), secret_id.expose().into());
        }

        Ok(Credentials::Login {
            body: body.into(),
            via: None,
        })
    }
}
