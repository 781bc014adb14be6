//! The Vault calls that crates without network access need, implemented with the Vault
//! client: renewing cached leases for the lease cache, wrapping tokens for the sinks.

use std::time::Duration;

use lease_cache::{Renewal, Renewer, SecretToken};
use token_sink::{SinkToken, WrapFailed, Wrapper};
use vault_client::{Client, RequestError, Token};

/// Renews the lease cache's entries.
pub(crate) struct VaultRenewer {
    client: Client,
}

impl VaultRenewer {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    fn in_namespace(&self, namespace: &str) -> Option<Client> {
        match namespace.trim_matches('/') {
            "" | "root" => Some(self.client.clone()),
            ns => self.client.with_namespace(ns).ok(),
        }
    }
}

impl Renewer for VaultRenewer {
    async fn renew_token(&self, token: &SecretToken, namespace: &str) -> Renewal {
        let Some(client) = self.in_namespace(namespace) else {
            return Renewal::Rejected;
        };
        match client.renew_self(&Token::new(token.expose()), None).await {
            Ok(auth) => Renewal::Extended {
                ttl: auth.lease_duration,
                renewable: auth.renewable,
            },
            Err(error) => classify(&error),
        }
    }

    async fn renew_lease(&self, token: &SecretToken, lease_id: &str, namespace: &str) -> Renewal {
        let Some(client) = self.in_namespace(namespace) else {
            return Renewal::Rejected;
        };
        match client
            .renew_lease(&Token::new(token.expose()), lease_id, None)
            .await
        {
            Ok(lease) => Renewal::Extended {
                ttl: lease.lease_duration,
                renewable: lease.renewable,
            },
            Err(error) => classify(&error),
        }
    }
}

/// A 4xx means the lease or token is gone or not ours (evict now); anything else may pass.
fn classify(error: &RequestError) -> Renewal {
    match error.status() {
        Some(status) if status.is_client_error() && !matches!(status.as_u16(), 408 | 412 | 429) => {
            Renewal::Rejected
        }
        _ => Renewal::Failed,
    }
}

/// Wraps tokens for sinks with `wrap_ttl`.
pub(crate) struct VaultWrapper {
    client: Client,
}

impl VaultWrapper {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }
}

impl Wrapper for VaultWrapper {
    async fn wrap(&self, token: &SinkToken, ttl: Duration) -> Result<SinkToken, WrapFailed> {
        let info = self
            .client
            .wrap(&Token::new(token.expose_secret()), ttl)
            .await
            .map_err(WrapFailed::new)?;
        Ok(SinkToken::new(info.to_json().expose()))
    }
}
