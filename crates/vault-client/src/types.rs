//! What the typed calls return, decoded from Vault's JSON answers.
//!
//! Fields the agent does not use are left out; fields Vault may send as `null` or omit
//! decode to their empty value. Durations arrive as whole seconds.

use std::collections::BTreeMap;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::{SecretValue, Token};

/// The `auth` block of a login or a token renewal.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthInfo {
    /// The token itself.
    #[serde(default)]
    pub client_token: Token,
    /// The token's accessor (not a secret: it can only look the token up or revoke it).
    #[serde(default, deserialize_with = "or_default")]
    pub accessor: String,
    /// All policies attached to the token.
    #[serde(default, deserialize_with = "or_default")]
    pub policies: Vec<String>,
    /// Policies attached to the token itself.
    #[serde(default, deserialize_with = "or_default")]
    pub token_policies: Vec<String>,
    /// Policies inherited from the token's identity entity and groups.
    #[serde(default, deserialize_with = "or_default")]
    pub identity_policies: Vec<String>,
    /// Metadata the auth method attached.
    #[serde(default, deserialize_with = "or_default")]
    pub metadata: BTreeMap<String, String>,
    /// How long the token lives before it must be renewed.
    #[serde(default, deserialize_with = "seconds")]
    pub lease_duration: Duration,
    /// Whether the token can be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// The identity entity the token belongs to (empty for root tokens).
    #[serde(default, deserialize_with = "or_default")]
    pub entity_id: String,
    /// `service` or `batch`.
    #[serde(default, deserialize_with = "or_default")]
    pub token_type: String,
    /// Whether the token has no parent.
    #[serde(default)]
    pub orphan: bool,
    /// Uses left, 0 meaning unlimited.
    #[serde(default)]
    pub num_uses: i64,
}

/// The `wrap_info` block of an answer wrapped in a single-use token.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WrapInfo {
    /// The wrapping token.
    pub token: Token,
    /// The wrapping token's accessor.
    #[serde(default, deserialize_with = "or_default")]
    pub accessor: String,
    /// How long the wrapping token lives.
    #[serde(default, deserialize_with = "seconds")]
    pub ttl: Duration,
    /// When it was created, as Vault wrote it (RFC 3339).
    #[serde(default, deserialize_with = "or_default")]
    pub creation_time: String,
    /// The path whose answer was wrapped.
    #[serde(default, deserialize_with = "or_default")]
    pub creation_path: String,
    /// The accessor of the wrapped token, when a token was wrapped.
    #[serde(default, deserialize_with = "or_default")]
    pub wrapped_accessor: String,
}

impl WrapInfo {
    /// The JSON document the agent writes to sinks in place of a token when auto-auth
    /// wraps its login (`token, accessor, ttl, creation_time, creation_path,
    /// wrapped_accessor`, in that order, the TTL in seconds).
    pub fn to_json(&self) -> SecretValue {
        #[derive(Serialize)]
        struct Shape<'a> {
            token: &'a str,
            accessor: &'a str,
            ttl: u64,
            creation_time: &'a str,
            creation_path: &'a str,
            wrapped_accessor: &'a str,
        }

        let shape = Shape {
            token: self.token.expose(),
            accessor: &self.accessor,
            ttl: self.ttl.as_secs(),
            creation_time: &self.creation_time,
            creation_path: &self.creation_path,
            wrapped_accessor: &self.wrapped_accessor,
        };
        // Serialising borrowed strings and an integer into a String cannot fail.
        SecretValue::new(serde_json::to_string(&shape).unwrap_or_default())
    }
}

/// What a login returned.
#[derive(Clone, Debug)]
pub enum LoginResponse {
    /// A token, with its lease.
    Auth(AuthInfo),
    /// A wrapping token around the login's answer (the login asked for `wrap_ttl`).
    Wrapped(WrapInfo),
}

/// The `data` of `auth/token/lookup-self`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenInfo {
    /// The token's accessor.
    #[serde(default, deserialize_with = "or_default")]
    pub accessor: String,
    /// Creation time, in seconds since the Unix epoch.
    #[serde(default)]
    pub creation_time: i64,
    /// The TTL the token was created with.
    #[serde(default, deserialize_with = "seconds")]
    pub creation_ttl: Duration,
    /// Display name.
    #[serde(default, deserialize_with = "or_default")]
    pub display_name: String,
    /// The identity entity.
    #[serde(default, deserialize_with = "or_default")]
    pub entity_id: String,
    /// When the token expires (RFC 3339), `None` for tokens that never expire.
    #[serde(default)]
    pub expire_time: Option<String>,
    /// Hard limit on the token's life, zero when none.
    #[serde(default, deserialize_with = "seconds")]
    pub explicit_max_ttl: Duration,
    /// When the token (or its first ancestor renewal) was issued (RFC 3339).
    #[serde(default)]
    pub issue_time: Option<String>,
    /// Token metadata.
    #[serde(default, deserialize_with = "or_default")]
    pub meta: BTreeMap<String, String>,
    /// Uses left, 0 meaning unlimited.
    #[serde(default)]
    pub num_uses: i64,
    /// Whether the token has no parent.
    #[serde(default)]
    pub orphan: bool,
    /// The path the token was created at.
    #[serde(default, deserialize_with = "or_default")]
    pub path: String,
    /// Policies attached to the token.
    #[serde(default, deserialize_with = "or_default")]
    pub policies: Vec<String>,
    /// Whether the token can be renewed.
    #[serde(default)]
    pub renewable: bool,
    /// Time left, zero for tokens that never expire.
    #[serde(default, deserialize_with = "seconds")]
    pub ttl: Duration,
    /// `service` or `batch`.
    #[serde(default, rename = "type", deserialize_with = "or_default")]
    pub token_type: String,
}

/// The lease part of `sys/leases/renew`'s answer.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LeaseInfo {
    /// The lease renewed.
    #[serde(default, deserialize_with = "or_default")]
    pub lease_id: String,
    /// The lease's new duration.
    #[serde(default, deserialize_with = "seconds")]
    pub lease_duration: Duration,
    /// Whether it can be renewed again.
    #[serde(default)]
    pub renewable: bool,
}

/// The `data` of `sys/wrapping/lookup`: what a wrapping token wraps, without unwrapping it.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct WrapLookup {
    /// The path whose answer was wrapped.
    #[serde(default, deserialize_with = "or_default")]
    pub creation_path: String,
    /// When the wrapping token was created (RFC 3339).
    #[serde(default, deserialize_with = "or_default")]
    pub creation_time: String,
    /// The wrapping token's TTL.
    #[serde(default, deserialize_with = "seconds")]
    pub creation_ttl: Duration,
}

/// The answer of `sys/health`, whatever its status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Health {
    /// The HTTP status Vault chose (200 active, 429 standby, 503 sealed, 501 uninitialised...).
    #[serde(skip)]
    pub status: StatusCode,
    /// Whether the server is initialised.
    #[serde(default)]
    pub initialized: bool,
    /// Whether it is sealed.
    #[serde(default)]
    pub sealed: bool,
    /// Whether it is a standby node.
    #[serde(default)]
    pub standby: bool,
    /// Whether it is a performance standby node.
    #[serde(default)]
    pub performance_standby: bool,
    /// Server version (`2.7.2`, `1.17.3+ent`...).
    #[serde(default, deserialize_with = "or_default")]
    pub version: String,
    /// Cluster name.
    #[serde(default, deserialize_with = "or_default")]
    pub cluster_name: String,
    /// Cluster id.
    #[serde(default, deserialize_with = "or_default")]
    pub cluster_id: String,
}

/// Decodes `null` (as well as a missing field, with `#[serde(default)]`) to the default.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Decodes a number of seconds; `null` and negative numbers count as zero.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = Option::<f64>::deserialize(deserializer)?.unwrap_or_default();
    Ok(Duration::try_from_secs_f64(seconds).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_block_decodes_with_nulls() {
        let auth: AuthInfo = serde_json::from_value(serde_json::json!({
            "client_token": "s.abc",
            "accessor": "acc",
            "policies": ["default", "app"],
            "token_policies": ["default"],
            "metadata": null,
            "lease_duration": 3600,
            "renewable": true,
            "entity_id": "",
            "token_type": "service",
            "orphan": true,
            "mfa_requirement": null,
            "num_uses": 0
        }))
        .unwrap();

        assert_eq!(auth.client_token.expose(), "s.abc");
        assert_eq!(auth.policies, ["default", "app"]);
        assert!(auth.metadata.is_empty() && auth.identity_policies.is_empty());
        assert_eq!(auth.lease_duration, Duration::from_secs(3600));
        assert!(auth.renewable && auth.orphan);
    }

    #[test]
    fn seconds_tolerate_odd_values() {
        fn check(ttl: serde_json::Value, expected: Duration) {
            let lease: LeaseInfo =
                serde_json::from_value(serde_json::json!({"lease_duration": ttl})).unwrap();
            assert_eq!(lease.lease_duration, expected);
        }

        check(serde_json::json!(30), Duration::from_secs(30));
        check(serde_json::json!(0), Duration::ZERO);
        check(serde_json::json!(null), Duration::ZERO);
        check(serde_json::json!(-5), Duration::ZERO);
        check(serde_json::json!(1.5), Duration::from_millis(1500));
    }

    #[test]
    fn lookup_self_type_field_is_the_token_type() {
        let info: TokenInfo = serde_json::from_value(serde_json::json!({
            "id": "s.must-not-be-kept",
            "type": "batch",
            "ttl": 60,
            "expire_time": null,
            "meta": null,
            "policies": null,
        }))
        .unwrap();

        assert_eq!(info.token_type, "batch");
        assert_eq!(info.ttl, Duration::from_secs(60));
        assert_eq!(info.expire_time, None);
        assert!(!format!("{info:?}").contains("must-not-be-kept"));
    }

    #[test]
    fn wrap_info_json_has_the_sink_shape() {
        let info = WrapInfo {
            token: Token::new("s.wrap"),
            accessor: "acc".to_owned(),
            ttl: Duration::from_secs(300),
            creation_time: "2026-12-03T17:45:05.845427644Z".to_owned(),
            creation_path: "auth/approle/login".to_owned(),
            wrapped_accessor: "wacc".to_owned(),
        };

        assert_eq!(
            info.to_json().expose(),
            r#"{"token":"s.wrap","accessor":"acc","ttl":300,"creation_time":"2026-12-03T17:45:05.845427644Z","creation_path":"auth/approle/login","wrapped_accessor":"wacc"}"#
        );
        assert!(!format!("{info:?}").contains("s.wrap"));
    }
}
