//! `cert`: log in over TLS with a client certificate.

use serde_json::json;
use vault_client::{ClientSettings, RetryPolicy};

use super::{AuthMethod, Credentials};
use crate::api::AuthApi;
use crate::error::LoginFailed;
use crate::settings::CertSettings;

pub(crate) struct Cert<A> {
    name: Option<String>,
    /// Settings of the method's own client; `None` when the handler's client already
    /// carries the certificate.
    tls: Option<ClientSettings>,
    reload: bool,
    client: Option<A>,
}

impl<A: AuthApi> Cert<A> {
    pub(crate) fn new(
        settings: CertSettings,
        base: &ClientSettings,
        namespace: Option<&str>,
    ) -> Self {
        let CertSettings {
            name,
            ca_cert,
            client_cert,
            client_key,
            reload,
        } = settings;

        let own_files = ca_cert.is_some() || client_cert.is_some() || client_key.is_some();
        let tls = own_files.then(|| {
            let mut tls = base.clone();
            if ca_cert.is_some() {
                tls.ca_cert = ca_cert;
            }
            if client_cert.is_some() || client_key.is_some() {
                tls.client_cert = client_cert;
                tls.client_key = client_key;
            }
            if let Some(namespace) = namespace {
                tls.namespace = Some(namespace.to_owned());
            }
            tls.retry = RetryPolicy::NONE;
            tls
        });

        Self {
            name,
            tls,
            reload,
            client: None,
        }
    }

    /// The method's own client, built once, or at every login with `reload`.
    fn client(&mut self, api: &A) -> Result<Option<A>, LoginFailed> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        if self.reload || self.client.is_none() {
            let client = api
                .with_settings(tls)
                .map_err(|source| LoginFailed::CertClient { source })?;
            self.client = Some(client);
        }
        Ok(self.client.clone())
    }
}

impl<A: AuthApi> AuthMethod<A> for Cert<A> {
    async fn credentials(&mut self, api: &A) -> Result<Credentials<A>, LoginFailed> {
        let via = self.client(api)?;
        let body = match &self.name {
            Some(name) => json!({ "name": name }),
            None => json!({}),
        };

        Ok(Credentials::Login { body, via })
    }
}
