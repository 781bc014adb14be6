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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};
    use tempfile::TempDir;
    use vault_client::{SecretData, WrapLookup};

    use super::*;
    use crate::fake::{Call, FakeVault, status};

    const WRAP_PATH: &str = "auth/approle/role/app/secret-id";

    /// A role_id file holding `role-id` and, when given, a secret_id file.
    fn setup(secret_id: Option<&str>) -> (TempDir, AppRoleSettings) {
        let dir = TempDir::new().unwrap();
        let role_id = dir.path().join("role_id");
        std::fs::write(&role_id, "role-id").unwrap();

        let mut settings = AppRoleSettings::new(role_id);
        if let Some(content) = secret_id {
            let path = dir.path().join("secret_id");
            std::fs::write(&path, content).unwrap();
            settings.secret_id_file_path = Some(path);
        }
        (dir, settings)
    }

    fn wrapped(settings: &mut AppRoleSettings) {
        settings.secret_id_response_wrapping_path = Some(WRAP_PATH.to_owned());
    }

    /// Vault knows the wrapping token `s.wrap` as created at `creation_path`, wrapping
    /// the secret_id `unwrapped-id`.
    fn vault(creation_path: &'static str) -> FakeVault {
        let fake = FakeVault::new();
        fake.on_wrap_lookup(move |token| match token.as_str() {
            "s.wrap" => Ok(WrapLookup {
                creation_path: creation_path.to_owned(),
                ..WrapLookup::default()
            }),
            _ => Err(status(400)),
        });
        fake.on_unwrap(|_| {
            Ok(SecretData::new(
                json!({"data": {"secret_id": "unwrapped-id"}}),
            ))
        });
        fake
    }

    async fn body(method: &mut AppRole, fake: &FakeVault) -> Result<Value, LoginFailed> {
        match method.credentials(fake).await? {
            Credentials::Login { body, via } => {
                assert!(via.is_none());
                Ok(body)
            }
            Credentials::Token(_) => panic!("approle logs in"),
        }
    }

    fn secret_id_file(settings: &AppRoleSettings) -> &Path {
        settings.secret_id_file_path.as_deref().unwrap()
    }

    #[tokio::test]
    async fn only_the_role_id_is_sent_without_a_secret_id_file() {
        let (_dir, settings) = setup(None);
        let mut method = AppRole::new(settings);

        let body = body(&mut method, &FakeVault::new()).await.unwrap();
        assert_eq!(body, json!({"role_id": "role-id"}));
    }

    #[tokio::test]
    async fn the_secret_id_file_is_removed_after_reading_and_its_value_kept() {
        let (_dir, settings) = setup(Some("secret-id\n"));
        let path = secret_id_file(&settings).to_owned();
        let mut method = AppRole::new(settings);
        let fake = FakeVault::new();

        let expected = json!({"role_id": "role-id", "secret_id": "secret-id"});
        assert_eq!(body(&mut method, &fake).await.unwrap(), expected);
        assert!(!path.exists());

        // A re-login after the file is gone still has the secret_id.
        assert_eq!(body(&mut method, &fake).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn the_secret_id_file_is_read_again_when_it_is_kept() {
        let (_dir, mut settings) = setup(Some("first"));
        settings.remove_secret_id_file_after_reading = false;
        let path = secret_id_file(&settings).to_owned();
        let mut method = AppRole::new(settings);
        let fake = FakeVault::new();

        assert_eq!(
            body(&mut method, &fake).await.unwrap()["secret_id"],
            "first"
        );
        assert!(path.exists());

        std::fs::write(&path, "second").unwrap();
        assert_eq!(
            body(&mut method, &fake).await.unwrap()["secret_id"],
            "second"
        );
    }

    #[tokio::test]
    async fn the_role_id_is_read_at_every_login_and_trimmed() {
        let (_dir, settings) = setup(None);
        let path = settings.role_id_file_path.clone();
        let mut method = AppRole::new(settings);
        let fake = FakeVault::new();

        std::fs::write(&path, "  role-a \n").unwrap();
        assert_eq!(body(&mut method, &fake).await.unwrap()["role_id"], "role-a");
        std::fs::write(&path, "role-b").unwrap();
        assert_eq!(body(&mut method, &fake).await.unwrap()["role_id"], "role-b");

        // Once read, a vanished role_id file does not stop re-logins.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(body(&mut method, &fake).await.unwrap()["role_id"], "role-b");
    }

    #[tokio::test]
    async fn an_unusable_credential_file_is_an_error_naming_it() {
        async fn check(role_id: Option<&str>, secret_id: Option<&str>, expected: &str) {
            let (dir, mut settings) = setup(Some("unused"));
            let role_path = settings.role_id_file_path.clone();
            let secret_path = secret_id_file(&settings).to_owned();
            match role_id {
                Some(content) => std::fs::write(&role_path, content).unwrap(),
                None => std::fs::remove_file(&role_path).unwrap(),
            }
            match secret_id {
                Some(content) => std::fs::write(&secret_path, content).unwrap(),
                None => std::fs::remove_file(&secret_path).unwrap(),
            }
            settings.secret_id_file_path = Some(secret_path);

            let error = body(&mut AppRole::new(settings), &FakeVault::new())
                .await
                .unwrap_err();
            let dir = dir.path().display();
            assert_eq!(error.to_string(), expected.replace("DIR", &dir.to_string()));
        }

        check(None, Some("s"), "cannot read the role_id file DIR/role_id").await;
        check(
            Some(" \n"),
            Some("s"),
            "the role_id file DIR/role_id is empty",
        )
        .await;
        check(
            Some("r"),
            None,
            "cannot read the secret_id file DIR/secret_id",
        )
        .await;
        check(
            Some("r"),
            Some(""),
            "the secret_id file DIR/secret_id is empty",
        )
        .await;
    }

    #[tokio::test]
    async fn a_wrapped_secret_id_is_unwrapped_once() {
        let (_dir, mut settings) = setup(Some("s.wrap"));
        wrapped(&mut settings);
        settings.remove_secret_id_file_after_reading = false;
        let mut method = AppRole::new(settings);
        let fake = vault(WRAP_PATH);

        for _ in 0..3 {
            let body = body(&mut method, &fake).await.unwrap();
            assert_eq!(
                body,
                json!({"role_id": "role-id", "secret_id": "unwrapped-id"})
            );
        }

        // The token is single-use: the file still holding it is no reason to unwrap again.
        let calls: Vec<Call> = fake.records().into_iter().map(|r| r.call).collect();
        assert_eq!(
            calls,
            [
                Call::WrapLookup("s.wrap".to_owned()),
                Call::Unwrap("s.wrap".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn a_wrapping_path_with_slashes_around_it_matches() {
        let (_dir, mut settings) = setup(Some("s.wrap"));
        settings.secret_id_response_wrapping_path = Some(format!("/{WRAP_PATH}/"));
        let mut method = AppRole::new(settings);

        let body = body(&mut method, &vault(WRAP_PATH)).await.unwrap();
        assert_eq!(body["secret_id"], "unwrapped-id");
    }

    #[tokio::test]
    async fn a_wrapping_token_created_elsewhere_is_refused_without_unwrapping_it() {
        let (dir, mut settings) = setup(Some("s.wrap"));
        wrapped(&mut settings);
        let path = secret_id_file(&settings).to_owned();
        let mut method = AppRole::new(settings);
        let fake = vault("sys/wrapping/wrap");

        let error = body(&mut method, &fake).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "security: the wrapping token in {}/secret_id was created at \
                 \"sys/wrapping/wrap\", not at \"{WRAP_PATH}\"; refusing to unwrap it",
                dir.path().display()
            )
        );
        assert!(fake.times(|c| matches!(c, Call::Unwrap(_))).is_empty());
        assert!(
            path.exists(),
            "the file is kept for the operator to inspect"
        );
    }

    #[tokio::test]
    async fn an_unusable_wrapping_token_is_a_clear_error() {
        async fn check(content: &str, fake: FakeVault, expected: &str) {
            let (dir, mut settings) = setup(Some(content));
            wrapped(&mut settings);

            let error = body(&mut AppRole::new(settings), &fake).await.unwrap_err();
            let dir = dir.path().display().to_string();
            assert_eq!(error.to_string(), expected.replace("DIR", &dir));
        }

        check(
            "s.used",
            vault(WRAP_PATH),
            "the wrapping token in DIR/secret_id is not valid: it was already unwrapped, or it \
             expired",
        )
        .await;

        let broken = vault(WRAP_PATH);
        broken.on_unwrap(|_| Ok(SecretData::new(json!({"data": {"other": "x"}}))));
        check(
            "s.wrap",
            broken,
            "the response unwrapped from DIR/secret_id holds no secret_id",
        )
        .await;

        let down = vault(WRAP_PATH);
        down.on_wrap_lookup(|_| Err(status(503)));
        check(
            "s.wrap",
            down,
            "cannot look up the wrapping token in DIR/secret_id",
        )
        .await;
    }
}
