//! Relaying a client's request to Vault as it is, for the caching proxy.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::HOST;
use http::uri::PathAndQuery;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;
use tracing::debug;

use crate::client::{Client, Outgoing, TOKEN_HEADER, describe, describe_reqwest};
use crate::error::{BoxError, RequestError};
use crate::relay::{AttemptError, Prepared, Relay};
use crate::retry::{self, Resend, Verdict};

impl Client {
    /// Sends a request to Vault untouched and hands back its answer untouched.
    ///
    /// The URI's path and query are appended to the client's address; the method
    /// (`LIST` included), headers and body go as they are, except `Host`, which names
    /// the agent rather than Vault. The caller has already dropped hop-by-hop headers
    /// and set `X-Vault-Token`; the client's namespace is not added, because the
    /// caller's headers decide. The answer's status and headers come back as Vault sent
    /// them (hop-by-hop ones included) and its body streams, still compressed if it was.
    ///
    /// Retries follow the client's policy; an attempt that is retried is never seen by
    /// the caller. One redirect is followed, as Vault's own client does. Errors only when
    /// Vault could not be reached.
    pub async fn forward(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ForwardBody>, RequestError> {
        let (parts, body) = request.into_parts();
        let root = PathAndQuery::from_static("/");
        let path_and_query = parts.uri.path_and_query().unwrap_or(&root);
        if !path_and_query.as_str().starts_with('/') {
            return Err(RequestError::Invalid {
                reason: "the request target must be a path".to_owned(),
            });
        }

        let mut headers = parts.headers;
        headers.remove(HOST);
        if let Some(token) = headers.get_mut(TOKEN_HEADER) {
            token.set_sensitive(true);
        }

        let path = parts.uri.path();
        match &self.relay {
            Some(relay) => {
                let request = relay.prepare(parts.method, path_and_query, headers, body)?;
                self.relay_with_retries(relay, request, path).await
            }
            None => {
                let request = Outgoing {
                    method: parts.method,
                    url: self.url(path_and_query.as_str())?,
                    headers,
                    body: (!body.is_empty()).then_some(body),
                };
                // Boxed: reqwest's future is large, and this path is the rare one.
                let response = Box::pin(self.send(request, path, true)).await?;
                Ok(http::Response::from(response).map(ForwardBody::proxied))
            }
        }
    }

    /// Sends through the relay under the retry policy, then follows one redirect.
    async fn relay_with_retries(
        &self,
        relay: &Relay,
        request: Prepared,
        path: &str,
    ) -> Result<http::Response<ForwardBody>, RequestError> {
        let mut request = request;
        let mut redirected = false;

        loop {
            let (outcome, attempts) = retry::run(
                self.retry_policy(),
                path,
                Attempt(&request),
                |Attempt(request)| relay.send(request),
                judge,
            )
            .await;

            let response = outcome.map_err(|error| RequestError::Unreachable {
                address: self.address().to_owned(),
                attempts,
                reason: describe(&error),
                source: error.into(),
            })?;
            if !redirected
                && let Some(next) = request.redirected(response.status(), response.headers())
            {
                debug!(
                    path,
                    status = response.status().as_u16(),
                    "following a redirect"
                );
                request = next;
                redirected = true;
                continue;
            }

            let status = response.status().as_u16();
            debug!(method = %request.method(), path, status, attempts, "vault answered");
            return Ok(response);
        }
    }
}

/// One attempt's view of a prepared request: sending borrows it, so nothing is copied
/// for the retry policy's sake.
#[derive(Clone, Copy)]
struct Attempt<'a>(&'a Prepared);

impl Resend for Attempt<'_> {
    fn resend(&self) -> Self {
        *self
    }
}

/// Retry on connection errors and timeouts, and on the statuses Vault's client retries.
fn judge(outcome: &Result<http::Response<ForwardBody>, AttemptError>) -> Verdict {
    match outcome {
        Ok(response) => retry::judge_status(response.status(), response.headers()),
        Err(error) if crate::client::is_retryable(error) => Verdict::Retry {
            after: None,
            reason: describe(error),
        },
        Err(_) => Verdict::Final,
    }
}

/// The streaming body of a forwarded answer.
///
/// Implements [`http_body::Body`], so a server framework takes it as a response body
/// without copying.
#[derive(Debug)]
pub struct ForwardBody {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    /// From the relay, with the deadline of the attempt it belongs to.
    Relayed {
        body: Incoming,
        deadline: Pin<Box<Sleep>>,
    },
    /// From reqwest, which enforces the timeout itself.
    Proxied(reqwest::Body),
}

impl ForwardBody {
    pub(crate) fn relayed(body: Incoming, deadline: Pin<Box<Sleep>>) -> Self {
        Self {
            inner: Inner::Relayed { body, deadline },
        }
    }

    pub(crate) fn proxied(body: reqwest::Body) -> Self {
        Self {
            inner: Inner::Proxied(body),
        }
    }

    /// Reads the whole body (to cache it, for instance); one chunk is returned without
    /// copying.
    pub async fn to_bytes(mut self) -> Result<Bytes, ForwardBodyError> {
        // The only chunk so far, kept as it is; and the copy made once a second one comes.
        let mut single: Option<Bytes> = None;
        let mut joined = BytesMut::new();

        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut self).poll_frame(cx)).await
        {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            match single.take() {
                None if joined.is_empty() => single = Some(data),
                None => joined.extend_from_slice(&data),
                Some(first) => {
                    joined.extend_from_slice(&first);
                    joined.extend_from_slice(&data);
                }
            }
        }

        Ok(single.unwrap_or_else(|| joined.freeze()))
    }
}

impl Body for ForwardBody {
    type Data = Bytes;
    type Error = ForwardBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ForwardBodyError>>> {
        match &mut self.inner {
            Inner::Relayed { body, deadline } => {
                let polled = Pin::new(body).poll_frame(cx);
                // The timer only needs arming when the body makes us wait.
                if polled.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(ForwardBodyError {
                        reason: "timed out".to_owned(),
                        source: AttemptError::TimedOut.into(),
                    })));
                }
                polled.map_err(|error| ForwardBodyError {
                    reason: describe(&error),
                    source: error.into(),
                })
            }
            Inner::Proxied(body) => Pin::new(body).poll_frame(cx).map_err(|error| {
                let reason = describe_reqwest(&error);
                ForwardBodyError {
                    reason,
                    source: error.without_url().into(),
                }
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Relayed { body, .. } => body.is_end_stream(),
            Inner::Proxied(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Relayed { body, .. } => body.size_hint(),
            Inner::Proxied(body) => body.size_hint(),
        }
    }
}

/// The connection to Vault failed while a forwarded answer was streaming.
#[derive(Debug, thiserror::Error)]
#[error("lost the connection to Vault while relaying its answer: {reason}")]
pub struct ForwardBodyError {
    reason: String,
    #[source]
    source: BoxError,
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    /// A body that yields the given chunks, as a connection would deliver them.
    struct Chunks(VecDeque<&'static str>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let chunk = self
                .0
                .pop_front()
                .map(|chunk| Ok(Frame::data(Bytes::from(chunk))));
            Poll::Ready(chunk)
        }
    }

    #[tokio::test]
    async fn to_bytes_joins_the_chunks() {
        async fn check(chunks: &[&'static str], expected: &str) {
            let body = ForwardBody::proxied(reqwest::Body::wrap(Chunks(
                chunks.iter().copied().collect(),
            )));
            let bytes = body.to_bytes().await.unwrap();
            assert_eq!(bytes, expected.as_bytes(), "{chunks:?}");
        }

        check(&[], "").await;
        check(&["{}"], "{}").await;
        check(&["", "{\"a\"", ""], "{\"a\"").await;
        check(&["{\"a\":", "1", "}"], "{\"a\":1}").await;
        check(&["", "x", "", "y"], "xy").await;
    }
}
