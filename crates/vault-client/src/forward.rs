//! Relaying a client's request to Vault as it is, for the caching proxy.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::HOST;
use http_body::{Body, Frame, SizeHint};

use crate::client::{Client, Outgoing, TOKEN_HEADER, describe};
use crate::error::{BoxError, RequestError};

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
    /// the caller. Errors only when Vault could not be reached.
    pub async fn forward(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<ForwardBody>, RequestError> {
        let (parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str());
        if !path_and_query.starts_with('/') {
            return Err(RequestError::Invalid {
                reason: "the request target must be a path".to_owned(),
            });
        }
        let url = self.url(path_and_query)?;

        let mut headers = parts.headers;
        headers.remove(HOST);
        if let Some(token) = headers.get_mut(TOKEN_HEADER) {
            token.set_sensitive(true);
        }

        let request = Outgoing {
            method: parts.method,
            url,
            headers,
            body: (!body.is_empty()).then_some(body),
        };
        let response = self.send(request, parts.uri.path(), true).await?;

        Ok(http::Response::from(response).map(|body| ForwardBody { inner: body }))
    }
}

/// The streaming body of a forwarded answer.
///
/// Implements [`http_body::Body`], so a server framework takes it as a response body
/// without copying.
#[derive(Debug)]
pub struct ForwardBody {
    inner: reqwest::Body,
}

impl ForwardBody {
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
        Pin::new(&mut self.inner).poll_frame(cx).map_err(|error| {
            let reason = describe(&error);
            ForwardBodyError {
                reason,
                source: error.without_url().into(),
            }
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
            let body = ForwardBody {
                inner: reqwest::Body::wrap(Chunks(chunks.iter().copied().collect())),
            };
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
