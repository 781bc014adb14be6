//! The cache-clear request: `{"type": "...", "value": "...", "namespace": "..."}`.

use std::borrow::Cow;

use http::StatusCode;
use serde::Deserialize;

use crate::paths::join_namespace;
use crate::secret::SecretToken;

/// What a cache-clear request asks to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearRequest {
    /// Entries whose request path starts with `prefix` (`/v1` included) in `namespace`.
    RequestPath {
        /// Path prefix, compared with the path as the client sent it.
        prefix: String,
        /// Namespace of the entries (`root/` when the request named none).
        namespace: String,
    },
    /// The entry of this token, everything created under it, and its leases.
    Token(SecretToken),
    /// The same, located by accessor.
    TokenAccessor(String),
    /// One lease entry.
    Lease(String),
    /// Every entry; the auto-auth token stays registered.
    All,
}

/// Why a cache-clear body was refused; the message is Vault's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearError {
    /// The body was empty.
    #[error("failed to parse JSON input: empty JSON provided")]
    EmptyBody,
    /// The body was not a JSON object of strings.
    #[error("failed to parse JSON input: invalid JSON at line {line} column {column}")]
    InvalidJson {
        /// Line of the first error.
        line: usize,
        /// Column of the first error.
        column: usize,
    },
    /// `type` was missing or empty.
    #[error("failed to parse clear input: no type provided")]
    MissingType,
    /// `type` named no known kind of entry.
    #[error("failed to clear cache: invalid type provided")]
    InvalidType,
    /// `value` was missing or empty for a type that needs one.
    #[error("failed to clear cache: {what} not provided")]
    MissingValue {
        /// What the value should have been (`token`, `request path`…).
        what: &'static str,
    },
}

impl ClearError {
    /// The status the proxy answers with.
    ///
    /// Always 400: every case is a bad request. Vault answers 500 for a missing value, which
    /// blames the server for the client's mistake; we do not follow it there.
    pub fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

#[derive(Deserialize)]
struct ClearBody<'a> {
    #[serde(default, borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
}

/// Parses a cache-clear body.
///
/// The JSON error names only a position: the body may hold a token, and no part of it may
/// reach an error message.
pub fn parse_clear_request(body: &[u8]) -> Result<ClearRequest, ClearError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ClearError::EmptyBody);
    }
    let parsed: ClearBody<'_> =
        serde_json::from_slice(body).map_err(|error| ClearError::InvalidJson {
            line: error.line(),
            column: error.column(),
        })?;

    let kind = parsed
        .kind
        .filter(|kind| !kind.is_empty())
        .ok_or(ClearError::MissingType)?;
    let value = parsed.value.filter(|value| !value.is_empty());
    let needs = |what: &'static str| value.clone().ok_or(ClearError::MissingValue { what });

    match kind.as_ref() {
        "request_path" => Ok(ClearRequest::RequestPath {
            prefix: needs("request path")?.into_owned(),
            namespace: join_namespace(parsed.namespace.as_deref(), ""),
        }),
        "token" => Ok(ClearRequest::Token(match needs("token")? {
            Cow::Borrowed(token) => SecretToken::new(token),
            Cow::Owned(token) => SecretToken::from(token),
        })),
        "token_accessor" => Ok(ClearRequest::TokenAccessor(
            needs("token accessor")?.into_owned(),
        )),
        "lease" => Ok(ClearRequest::Lease(needs("lease")?.into_owned())),
        "all" => Ok(ClearRequest::All),
        _ => Err(ClearError::InvalidType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str, expected: Result<ClearRequest, &str>) {
        let got = parse_clear_request(body.as_bytes()).map_err(|error| {
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{body}");
            error.to_string()
        });
        assert_eq!(got, expected.map_err(str::to_owned), "{body}");
    }

    #[test]
    fn parses_clear_requests_with_vaults_messages() {
        let path = |prefix: &str, namespace: &str| ClearRequest::RequestPath {
            prefix: prefix.into(),
            namespace: namespace.into(),
        };

        check(
            r#"{"type":"request_path","value":"/v1/db/"}"#,
            Ok(path("/v1/db/", "root/")),
        );
        check(
            r#"{"type":"request_path","value":"/v1/db/","namespace":"ns1"}"#,
            Ok(path("/v1/db/", "ns1/")),
        );
        check(
            r#"{"type":"token","value":"s.x"}"#,
            Ok(ClearRequest::Token(SecretToken::new("s.x"))),
        );
        check(
            r#"{"type":"token_accessor","value":"acc"}"#,
            Ok(ClearRequest::TokenAccessor("acc".into())),
        );
        check(
            r#"{"type":"lease","value":"db/creds/a/1"}"#,
            Ok(ClearRequest::Lease("db/creds/a/1".into())),
        );
        check(r#"{"type":"all"}"#, Ok(ClearRequest::All));
        check(
            r#"{"type":"all","value":"ignored","extra":1}"#,
            Ok(ClearRequest::All),
        );

        check("", Err("failed to parse JSON input: empty JSON provided"));
        check(
            "  \n",
            Err("failed to parse JSON input: empty JSON provided"),
        );
        check("{}", Err("failed to parse clear input: no type provided"));
        check(
            r#"{"type":""}"#,
            Err("failed to parse clear input: no type provided"),
        );
        check(
            r#"{"type":"everything"}"#,
            Err("failed to clear cache: invalid type provided"),
        );
        check(
            r#"{"type":"token"}"#,
            Err("failed to clear cache: token not provided"),
        );
        check(
            r#"{"type":"token","value":""}"#,
            Err("failed to clear cache: token not provided"),
        );
        check(
            r#"{"type":"request_path"}"#,
            Err("failed to clear cache: request path not provided"),
        );
        check(
            r#"{"type":"token_accessor"}"#,
            Err("failed to clear cache: token accessor not provided"),
        );
        check(
            r#"{"type":"lease"}"#,
            Err("failed to clear cache: lease not provided"),
        );
        check(
            "{",
            Err("failed to parse JSON input: invalid JSON at line 1 column 1"),
        );
    }

    /// Vault answers 500 when the value is missing; our rule is 400, the client's mistake.
    #[test]
    fn missing_value_is_a_client_error_unlike_vault() {
        let error = parse_clear_request(br#"{"type":"lease"}"#).unwrap_err();

        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn errors_never_echo_the_body() {
        let body = br#"{"type":"token","value":{"nested":"hvs.leaked"}}"#;
        let error = parse_clear_request(body).unwrap_err();

        assert!(!format!("{error} {error:?}").contains("hvs.leaked"));
    }
}
