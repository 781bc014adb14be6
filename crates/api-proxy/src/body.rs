//! Reading bodies into memory within a bound, and the body of a partly read answer.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_LENGTH, EXPECT};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use crate::error::ProxyError;

/// How long the rest of a refused body is read and thrown away.
///
/// A client still sending when the connection closes with its bytes unread gets a reset, and
/// most HTTP clients then report a broken pipe instead of the 413 that was already on its
/// way. Reading the rest first lets the answer arrive; the bound keeps a client that never
/// stops from holding the handler.
pub(crate) const DRAIN_REFUSED_BODY: Duration = Duration::from_secs(2);

/// How long a client may take to send a whole request body: the time Vault Agent's listener
/// gives a whole request. A client trickling its body would otherwise hold its connection and
/// a handler for as long as it likes.
pub(crate) const READ_REQUEST_BODY: Duration = Duration::from_secs(30);

/// Reads a client's request body, refusing it past `limit` bytes: at once when
/// `Content-Length` says so, otherwise as soon as the bytes read pass the limit, and when it
/// is not all there within [`READ_REQUEST_BODY`]. A body refused for its size is drained (see
/// [`DRAIN_REFUSED_BODY`]) unless the client is waiting for `100 Continue` before sending it.
pub(crate) async fn read_request_body<B>(
    body: B,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, ProxyError>
where
    B: Body<Data = Bytes> + Unpin,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        // Reading would send `100 Continue` and invite the very upload being refused.
        if !headers.contains_key(EXPECT) {
            discard(body).await;
        }
        return Err(ProxyError::BodyTooLarge { limit });
    }
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }

    let expected = declared.map_or(0, |length| length as usize);
    let mut read = pin!(read_bounded(body, limit, expected));
    // A small body has usually arrived with its head: read it without arming the timer,
    // which would cost a clock read and a timer entry for nothing.
    let read = match poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        Poll::Ready(read) => Ok(read),
        Poll::Pending => tokio::time::timeout(READ_REQUEST_BODY, read).await,
    };
    match read {
        Ok(Ok(Bounded::Complete(bytes))) => Ok(bytes),
        Ok(Ok(Bounded::Over { rest, .. })) => {
            discard(rest).await;
            Err(ProxyError::BodyTooLarge { limit })
        }
        Ok(Err(_)) => Err(ProxyError::BodyRead),
        Err(_) => Err(ProxyError::BodyTimeout {
            after: READ_REQUEST_BODY,
        }),
    }
}

/// Reads `body` to its end, an error, or [`DRAIN_REFUSED_BODY`], keeping nothing.
async fn discard<B>(mut body: B)
where
    B: Body<Data = Bytes> + Unpin,
{
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(DRAIN_REFUSED_BODY, drain).await;
}

/// What [`read_bounded`] got.
pub(crate) enum Bounded<B> {
    /// The whole body.
    Complete(Bytes),
    /// The body is longer than the bound: what was read so far, and the rest unread.
    Over { head: Bytes, rest: B },
}

/// Reads `body` while it stays within `bound` bytes. One chunk is returned without copying;
/// `expected` (a declared length) sizes the buffer for several.
pub(crate) async fn read_bounded<B>(
    mut body: B,
    bound: usize,
    expected: usize,
) -> Result<Bounded<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut buffer = BytesMut::new();
    let mut read = 0;

    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }

        read += data.len();
        match &first {
            None => first = Some(data),
            Some(head) => {
                if buffer.is_empty() {
                    buffer.reserve(expected.clamp(read, bound.max(read)));
                    buffer.extend_from_slice(head);
                }
                buffer.extend_from_slice(&data);
            }
        }
        if read > bound {
            let head = take(first, buffer);
            return Ok(Bounded::Over { head, rest: body });
        }
    }

    Ok(Bounded::Complete(take(first, buffer)))
}

fn take(first: Option<Bytes>, buffer: BytesMut) -> Bytes {
    if buffer.is_empty() {
        first.unwrap_or_default()
    } else {
        buffer.freeze()
    }
}

/// A body whose first bytes were already read: those, then the rest as it streams.
pub(crate) struct Prefixed<B> {
    head: Option<Bytes>,
    rest: B,
}

impl<B> Prefixed<B> {
    pub(crate) fn new(head: Bytes, rest: B) -> Self {
        Self {
            head: Some(head),
            rest,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(head) = self.head.take() {
            return Poll::Ready(Some(Ok(Frame::data(head))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let head = self.head.as_ref().map_or(0, Bytes::len) as u64;
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + head);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + head);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::{HeaderName, HeaderValue};

    use super::*;

    /// A body of fixed chunks, one frame each.
    struct Chunks(VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
    }

    fn chunks(parts: &[&'static str]) -> Chunks {
        Chunks(
            parts
                .iter()
                .map(|part| Bytes::from_static(part.as_bytes()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn bounded_reads() {
        async fn check(parts: &[&'static str], bound: usize, complete: Option<&str>) {
            let got = read_bounded(chunks(parts), bound, 0).await.unwrap();
            match (got, complete) {
                (Bounded::Complete(bytes), Some(expected)) => assert_eq!(bytes, expected),
                (Bounded::Over { head, rest }, None) => {
                    let tail = rest.collect().await.unwrap().to_bytes();
                    let whole = [head, tail].concat();
                    assert_eq!(whole, parts.concat().as_bytes(), "nothing lost");
                }
                (_, expected) => panic!("{parts:?} within {bound}: expected {expected:?}"),
            }
        }

        check(&[], 4, Some("")).await;
        check(&["abcd"], 4, Some("abcd")).await;
        check(&["ab", "cd"], 4, Some("abcd")).await;
        check(&["ab", "cde"], 4, None).await;
        check(&["abcde", "f"], 4, None).await;
        // Three chunks or more: the first is counted once (it used to be counted again with
        // every chunk after the second, refusing bodies under the bound).
        check(&["abc", "def", "g"], 7, Some("abcdefg")).await;
        check(&["ab", "cd", "ef", "gh"], 8, Some("abcdefgh")).await;
        check(&["ab", "cd", "ef", "ghi"], 8, None).await;
    }

    #[tokio::test]
    async fn request_bodies_over_the_limit_are_refused() {
        let mut headers = HeaderMap::new();
        let limited = read_request_body(chunks(&["abc", "def"]), &headers, 5).await;
        assert!(matches!(
            limited,
            Err(ProxyError::BodyTooLarge { limit: 5 })
        ));

        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("6"));
        let declared = read_request_body(chunks(&["a"]), &headers, 5).await;
        assert!(matches!(
            declared,
            Err(ProxyError::BodyTooLarge { limit: 5 })
        ));

        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
        let fits = read_request_body(chunks(&["ab", "cde"]), &headers, 5).await;
        assert_eq!(fits.unwrap(), "abcde");
    }

    /// Hands out its chunks, then ends or, when `endless`, never ends; counts what it gave.
    struct Watched {
        chunks: VecDeque<Bytes>,
        endless: bool,
        given: Arc<AtomicUsize>,
    }

    impl Body for Watched {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.chunks.pop_front() {
                Some(chunk) => {
                    self.given.fetch_add(1, Ordering::Relaxed);
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                None if self.endless => Poll::Pending,
                None => Poll::Ready(None),
            }
        }

        fn is_end_stream(&self) -> bool {
            !self.endless && self.chunks.is_empty()
        }
    }

    /// A refused body is read to its end so that the client, done sending, reads the 413
    /// instead of a reset; not when the client waits for `100 Continue`, and not for ever.
    #[tokio::test(start_paused = true)]
    async fn refused_bodies_are_drained_within_a_bound() {
        async fn check(sent: &[(HeaderName, &'static str)], endless: bool, drained: usize) {
            let mut headers = HeaderMap::new();
            for (name, value) in sent {
                headers.insert(name, HeaderValue::from_static(value));
            }
            let given = Arc::new(AtomicUsize::new(0));
            let body = Watched {
                chunks: [b"abc", b"def", b"ghi"]
                    .map(|c| Bytes::from_static(c))
                    .into(),
                endless,
                given: given.clone(),
            };

            let started = tokio::time::Instant::now();
            let refused = read_request_body(body, &headers, 5).await;

            assert!(matches!(
                refused,
                Err(ProxyError::BodyTooLarge { limit: 5 })
            ));
            assert_eq!(given.load(Ordering::Relaxed), drained, "{sent:?}");
            let gave_up = started.elapsed() >= DRAIN_REFUSED_BODY;
            assert_eq!(gave_up, endless, "{sent:?}, endless: {endless}");
        }

        check(&[], false, 3).await;
        check(&[(CONTENT_LENGTH, "9")], false, 3).await;
        check(&[(CONTENT_LENGTH, "9"), (EXPECT, "100-continue")], false, 0).await;
        check(&[], true, 3).await;
    }

    /// A client that trickles its body, or stops sending it, gets 408 once the time for a
    /// whole body is up, instead of holding its connection and handler for as long as it likes.
    #[tokio::test(start_paused = true)]
    async fn a_body_not_sent_in_time_is_refused() {
        let given = Arc::new(AtomicUsize::new(0));
        let stalled = Watched {
            chunks: [Bytes::from_static(b"{")].into(),
            endless: true,
            given,
        };

        let started = tokio::time::Instant::now();
        let read = read_request_body(stalled, &HeaderMap::new(), 1024).await;
        assert!(matches!(read, Err(ProxyError::BodyTimeout { .. })));
        assert_eq!(
            read.unwrap_err().status(),
            http::StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(started.elapsed(), READ_REQUEST_BODY);
    }

    #[tokio::test]
    async fn prefixed_body_yields_head_then_rest() {
        let body = Prefixed::new(Bytes::from_static(b"he"), chunks(&["llo"]));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }
}
