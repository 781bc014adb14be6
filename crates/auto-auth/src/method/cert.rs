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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::fake::FakeVault;

    fn base() -> ClientSettings {
        ClientSettings {
            address: "https://vault.example:8200".to_owned(),
            ca_cert: Some("/base/ca.pem".into()),
            client_cert: Some("/base/cert.pem".into()),
            client_key: Some("/base/key.pem".into()),
            namespace: Some("base-ns".to_owned()),
            ..ClientSettings::default()
        }
    }

    fn path(p: &str) -> Option<PathBuf> {
        Some(PathBuf::from(p))
    }

    #[tokio::test]
    async fn the_own_client_takes_the_methods_files_over_the_base_settings() {
        /// What the method's own client is built with: (ca, cert, key, namespace).
        type Built = (
            Option<PathBuf>,
            Option<PathBuf>,
            Option<PathBuf>,
            Option<String>,
        );

        async fn check(settings: CertSettings, namespace: Option<&str>, expected: Option<Built>) {
            let fake = FakeVault::new();
            let mut method = Cert::new(settings, &base(), namespace);

            let Credentials::Login { via, .. } = method.credentials(&fake).await.unwrap() else {
                panic!("cert logs in")
            };
            assert_eq!(via.is_some(), expected.is_some());

            let built = fake.built();
            let got = built.first().map(|s| {
                assert_eq!(s.address, "https://vault.example:8200");
                assert_eq!(s.retry, RetryPolicy::NONE);
                (
                    s.ca_cert.clone(),
                    s.client_cert.clone(),
                    s.client_key.clone(),
                    s.namespace.clone(),
                )
            });
            assert_eq!(got, expected);
        }

        // Nothing of its own: the handler's client (which must carry the certificate).
        check(CertSettings::default(), None, None).await;

        let ca_only = CertSettings {
            ca_cert: path("/m/ca.pem"),
            ..CertSettings::default()
        };
        let base_ns = Some("base-ns".to_owned());
        let expected = (
            path("/m/ca.pem"),
            path("/base/cert.pem"),
            path("/base/key.pem"),
            base_ns,
        );
        check(ca_only, None, Some(expected)).await;

        let pair = CertSettings {
            client_cert: path("/m/cert.pem"),
            client_key: path("/m/key.pem"),
            ..CertSettings::default()
        };
        let ns1 = Some("ns1".to_owned());
        let expected = (
            path("/base/ca.pem"),
            path("/m/cert.pem"),
            path("/m/key.pem"),
            ns1,
        );
        check(pair, Some("ns1"), Some(expected)).await;
    }

    #[tokio::test]
    async fn the_name_is_the_only_body() {
        async fn check(name: Option<&str>, expected: serde_json::Value) {
            let settings = CertSettings {
                name: name.map(str::to_owned),
                ..CertSettings::default()
            };
            let mut method = Cert::new(settings, &base(), None);
            let Credentials::Login { body, .. } =
                method.credentials(&FakeVault::new()).await.unwrap()
            else {
                panic!("cert logs in")
            };
            assert_eq!(body, expected);
        }

        check(Some("web"), json!({"name": "web"})).await;
        check(None, json!({})).await;
    }
}
