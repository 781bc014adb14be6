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
