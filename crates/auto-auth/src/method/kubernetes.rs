//! `kubernetes`: the pod's service-account token, read at every login.

use serde_json::json;

use super::files::read_credential;
use super::{AuthMethod, Credentials};
use crate::api::AuthApi;
use crate::error::LoginFailed;
use crate::settings::KubernetesSettings;

pub(crate) struct Kubernetes {
    settings: KubernetesSettings,
}

impl Kubernetes {
    pub(crate) fn new(settings: KubernetesSettings) -> Self {
        Self { settings }
    }
}

impl<A: AuthApi> AuthMethod<A> for Kubernetes {
    async fn credentials(&mut self, _api: &A) -> Result<Credentials<A>, LoginFailed> {
        // Kubernetes rotates projected tokens in place, so no copy is kept: an old one
        // would only be refused.
        let jwt = read_credential(&self.settings.token_path, "service-account token").await?;

        Ok(Credentials::Login {
            body: json!({ "role": self.settings.role, "jwt": jwt.expose() }),
            via: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::*;
    use crate::fake::FakeVault;

    async fn body(method: &mut Kubernetes) -> Result<serde_json::Value, LoginFailed> {
        match AuthMethod::<FakeVault>::credentials(method, &FakeVault::new()).await? {
            Credentials::Login { body, .. } => Ok(body),
            Credentials::Token(_) => panic!("kubernetes logs in"),
        }
    }

    #[tokio::test]
    async fn the_token_is_read_at_every_login_and_never_kept() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("token");
        let mut method = Kubernetes::new(KubernetesSettings {
            token_path: path.clone(),
            ..KubernetesSettings::new("web")
        });

        std::fs::write(&path, "sa-token-1\n").unwrap();
        assert_eq!(
            body(&mut method).await.unwrap(),
            json!({"role": "web", "jwt": "sa-token-1"})
        );
        std::fs::write(&path, "sa-token-2").unwrap();
        assert_eq!(body(&mut method).await.unwrap()["jwt"], "sa-token-2");
        assert!(path.exists());

        std::fs::remove_file(&path).unwrap();
        let error = body(&mut method).await.unwrap_err();
        let expected = format!(
            "cannot read the service-account token file {}",
            path.display()
        );
        assert_eq!(error.to_string(), expected);
    }
}
