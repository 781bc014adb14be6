//! Everything the proxy refuses or fails at, and the one place where it becomes a
//! Vault-shaped answer (`{"errors":["..."]}`) and a log line.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use tracing::{debug, warn};
use vault_client::RequestError;

/// A request the proxy answered itself, with an error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// The body is over the listener's `max_request_size`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },

    /// The client's body could not be read.
    #[error("failed to read request body")]
    BodyRead,

    /// The client did not finish sending its body in time.
    #[error("request body not received within {} seconds", .after.as_secs())]
    BodyTimeout { after: Duration },

    /// The path tries to step out of where it points.
    #[error("refused request path: {reason}")]
    PathRefused { reason: &'static str },

    /// `require_request_header` is set and the header is missing or not `true`.
    #[error("missing \"X-Vault-Request\" header")]
    MissingRequestHeader,

    /// Vault could not be reached, or the request could not be sent.
    #[error("{0}")]
    Upstream(#[from] RequestError),

    /// Vault's answer broke off while the proxy read it.
    #[error("failed to read the response from Vault: {reason}")]
    UpstreamBody { reason: String },

    /// A token lookup answer could not be rewritten.
    #[error("failed to process token lookup response: {reason}")]
    Sanitise { reason: &'static str },
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead | Self::PathRefused { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::MissingRequestHeader => StatusCode::PRECONDITION_FAILED,
            Self::Upstream(RequestError::Invalid { .. }) => StatusCode::BAD_REQUEST,
            Self::Upstream(_) | Self::UpstreamBody { .. } => StatusCode::BAD_GATEWAY,
            Self::Sanitise { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();

        // No message holds a token: the client's body and headers never reach one.
        if status.is_server_error() {
            warn!(status = status.as_u16(), error = %message, "request failed");
        } else {
            debug!(status = status.as_u16(), error = %message, "request refused");
        }
        vault_error(status, &[message.as_str()])
    }
}

/// A response in Vault's error shape.
pub(crate) fn vault_error(status: StatusCode, errors: &[&str]) -> Response {
    let body = serde_json::json!({ "errors": errors }).to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: ProxyError, status: StatusCode, message: &str) {
        assert_eq!(error.status(), status, "{error}");
        assert_eq!(error.to_string(), message);
    }

    #[test]
    fn statuses_and_messages() {
        check(
            ProxyError::BodyTooLarge { limit: 10 },
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body exceeds the limit of 10 bytes",
        );
        check(
            ProxyError::MissingRequestHeader,
            StatusCode::PRECONDITION_FAILED,
            "missing \"X-Vault-Request\" header",
        );
        check(
            ProxyError::PathRefused {
                reason: "dot segment",
            },
            StatusCode::BAD_REQUEST,
            "refused request path: dot segment",
        );
        check(
            ProxyError::Upstream(RequestError::Unreachable {
                address: "http://127.0.0.1:1".to_owned(),
                attempts: 1,
                reason: "connection refused".to_owned(),
                source: "refused".into(),
            }),
            StatusCode::BAD_GATEWAY,
            "cannot reach Vault at http://127.0.0.1:1 after 1 attempt: connection refused",
        );
    }
}
