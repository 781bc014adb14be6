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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::*;
    use crate::fake::FakeVault;
    use crate::test_log::Captured;

    async fn body(method: &mut Jwt) -> Result<Value, LoginFailed> {
        match AuthMethod::<FakeVault>::credentials(method, &FakeVault::new()).await? {
            Credentials::Login { body, .. } => Ok(body),
            Credentials::Token(_) => panic!("jwt logs in"),
        }
    }

    fn settings(path: &Path) -> JwtSettings {
        JwtSettings::new(path, "app")
    }

    #[tokio::test]
    async fn the_jwt_is_removed_after_reading_and_kept_for_re_logins() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "jwt-one\n").unwrap();
        let mut method = Jwt::new(settings(&path));

        let expected = json!({"role": "app", "jwt": "jwt-one"});
        assert_eq!(body(&mut method).await.unwrap(), expected);
        assert!(!path.exists());
        assert_eq!(body(&mut method).await.unwrap(), expected);

        // A new file is read at the next login.
        std::fs::write(&path, "jwt-two").unwrap();
        assert_eq!(body(&mut method).await.unwrap()["jwt"], "jwt-two");
    }

    #[tokio::test]
    async fn without_removal_the_file_stays_and_new_content_is_picked_up() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "jwt-one").unwrap();
        let mut method = Jwt::new(JwtSettings {
            remove_jwt_after_reading: false,
            ..settings(&path)
        });

        assert_eq!(body(&mut method).await.unwrap()["jwt"], "jwt-one");
        std::fs::write(&path, "jwt-two").unwrap();
        assert_eq!(body(&mut method).await.unwrap()["jwt"], "jwt-two");
        assert!(path.exists());
    }

    #[tokio::test]
    async fn removal_takes_the_link_or_its_target_as_configured() {
        async fn check(follow: bool, link_left: bool, target_left: bool) {
            let dir = TempDir::new().unwrap();
            let target = dir.path().join("target");
            let link = dir.path().join("link");
            std::fs::write(&target, "jwt").unwrap();
            symlink(&target, &link).unwrap();

            let mut method = Jwt::new(JwtSettings {
                remove_jwt_follows_symlinks: follow,
                ..settings(&link)
            });
            assert_eq!(body(&mut method).await.unwrap()["jwt"], "jwt");

            assert_eq!(
                link.symlink_metadata().is_ok(),
                link_left,
                "follow = {follow}"
            );
            assert_eq!(target.exists(), target_left, "follow = {follow}");
        }

        check(false, false, true).await;
        check(true, true, false).await;
    }

    #[tokio::test]
    async fn a_removal_that_fails_is_reported_once() {
        // B12: a JWT on a read-only mount. Even root cannot unlink a procfs file, so a
        // link to one makes the removal fail for real.
        let dir = TempDir::new().unwrap();
        let link = dir.path().join("jwt");
        symlink("/proc/version", &link).unwrap();
        let mut method = Jwt::new(JwtSettings {
            remove_jwt_follows_symlinks: true,
            ..settings(&link)
        });

        let (logs, _guard) = Captured::start();
        for _ in 0..5 {
            let body = body(&mut method).await.unwrap();
            assert!(!body["jwt"].as_str().unwrap().is_empty());
        }

        let warnings = logs.lines_with("WARN");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("cannot remove the credential file"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("/proc/version"), "{warnings:?}");
        assert_eq!(logs.lines_with("still cannot remove").len(), 4);
    }

    #[tokio::test]
    async fn a_path_that_is_not_a_file_or_missing_is_an_error_naming_it() {
        let dir = TempDir::new().unwrap();
        let directory = dir.path().join("dir");
        std::fs::create_dir(&directory).unwrap();
        let missing = dir.path().join("missing");

        let error = body(&mut Jwt::new(settings(&directory))).await.unwrap_err();
        let expected = format!(
            "the jwt path {} is not a regular file or a symlink",
            directory.display()
        );
        assert_eq!(error.to_string(), expected);

        let error = body(&mut Jwt::new(settings(&missing))).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot read the jwt file {}", missing.display())
        );
    }
}
