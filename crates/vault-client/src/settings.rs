//! Plain settings a [`Client`](crate::Client) is built from.

use std::path::PathBuf;
use std::time::Duration;

/// Where Vault is and how to talk to it; one set per subsystem (auth, proxy, sinks).
///
/// The fields mirror the `vault {}` block of the agent's configuration, already resolved
/// (environment and flags applied) by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSettings {
    /// `http://host:port`, `https://host:port` (optionally with a path prefix) or
    /// `unix:///path/to.sock`.
    pub address: String,
    /// PEM file of the CAs to trust; takes precedence over `ca_path`.
    pub ca_cert: Option<PathBuf>,
    /// Directory whose files are all PEM CAs to trust.
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate.
    pub tls_skip_verify: bool,
    /// Name to send as SNI and to verify the certificate against, when it differs from
    /// the host in `address` (which is still where connections go). Requests then carry
    /// this name in `Host` too.
    pub tls_server_name: Option<String>,
    /// Sent as `X-Vault-Namespace` on every typed call.
    pub namespace: Option<String>,
    /// Limit on each attempt of a request, answer body included.
    pub timeout: Duration,
    /// How often a failed request is tried again.
    pub retry: RetryPolicy,
    /// Open a new connection for every request.
    pub disable_keep_alives: bool,
    /// Keep no idle connection in the pool.
    pub disable_idle_connections: bool,
    /// `User-Agent` of requests that do not carry their own; empty sends none.
    pub user_agent: String,
}

impl Default for ClientSettings {
    /// Vault's defaults: `https://127.0.0.1:8200`, 60 s timeout, 12 retries.
    fn default() -> Self {
        Self {
            address: "https://127.0.0.1:8200".to_owned(),
            ca_cert: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            tls_skip_verify: false,
            tls_server_name: None,
            namespace: None,
            timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            disable_keep_alives: false,
            disable_idle_connections: false,
            user_agent: concat!("vault-agent-rs/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// How many times a request is retried after a connection error or a 412, 429 or 5xx
/// (but not 501) answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
}

impl RetryPolicy {
    /// Vault's default number of retries.
    pub const DEFAULT_RETRIES: u32 = 12;

    /// Never retry.
    pub const NONE: Self = Self { max_retries: 0 };

    /// Retries at most `max_retries` times.
    pub const fn new(max_retries: u32) -> Self {
        Self { max_retries }
    }

    /// Reads the configuration's `retry { num_retries }`: 0 means the default (12),
    /// a negative number disables retries, anything else is the count.
    pub fn from_num_retries(num_retries: i64) -> Self {
        match num_retries {
            0 => Self::default(),
            n if n < 0 => Self::NONE,
            n => Self::new(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// The most retries a request gets.
    pub const fn max_retries(self) -> u32 {
        self.max_retries
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(Self::DEFAULT_RETRIES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn num_retries_maps_like_vault() {
        fn check(num_retries: i64, expected: u32) {
            let got = RetryPolicy::from_num_retries(num_retries).max_retries();
            assert_eq!(got, expected, "num_retries = {num_retries}");
        }

        check(0, 12);
        check(-1, 0);
        check(-7, 0);
        check(1, 1);
        check(3, 3);
        check(i64::MAX, u32::MAX);
    }

    #[test]
    fn defaults_are_vaults() {
        let settings = ClientSettings::default();

        assert_eq!(settings.address, "https://127.0.0.1:8200");
        assert_eq!(settings.timeout, Duration::from_secs(60));
        assert_eq!(settings.retry.max_retries(), 12);
        assert!(!settings.tls_skip_verify);
    }
}
