//! When a request is tried again, and how long to wait before it.
//!
//! The rule is Vault's API client's: connection errors, 412 (a stale read on a performance
//! standby), 429 and every 5xx but 501 are retried; the wait before retry `n` is a random
//! point between `n × 1.0 s` and `n × 1.5 s`, or what a 429/503 asks for in `Retry-After`.

use std::time::Duration;

use http::StatusCode;
use http::header::{HeaderMap, RETRY_AFTER};
use tracing::warn;

use crate::settings::RetryPolicy;

const MIN_WAIT: Duration = Duration::from_millis(1000);
const MAX_WAIT: Duration = Duration::from_millis(1500);

/// What to do with the outcome of one attempt.
pub(crate) enum Verdict {
    /// Hand the outcome to the caller.
    Final,
    /// Try again, after the server's `Retry-After` when it gave one.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
}

/// A request that can be sent once more.
pub(crate) trait Resend {
    fn resend(&self) -> Self;
}

/// True for the answers worth sending the same request again.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::PRECONDITION_FAILED
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
}

/// The verdict on an answer: retry when its status says so.
pub(crate) fn judge_status(status: StatusCode, headers: &HeaderMap) -> Verdict {
    if !is_retryable_status(status) {
        return Verdict::Final;
    }

    Verdict::Retry {
        after: retry_after(status, headers),
        reason: format!("status {}", status.as_u16()),
    }
}

/// The wait before retry number `retry` (1-based), `unit` being a random number in [0, 1].
pub(crate) fn linear_jitter(retry: u32, unit: f64) -> Duration {
    let spread = MAX_WAIT - MIN_WAIT;
    (MIN_WAIT + spread.mul_f64(unit.clamp(0.0, 1.0))) * retry
}

/// Sends `request`, then copies of it, until an attempt is final or the retries are spent.
///
/// Returns the last outcome and how many attempts were made. The last attempt consumes
/// `request` itself, so a request that is never retried is never copied.
pub(crate) async fn run<Q, R, E, F>(
    policy: RetryPolicy,
    path: &str,
    request: Q,
    mut send: impl FnMut(Q) -> F,
    judge: impl Fn(&Result<R, E>) -> Verdict,
) -> (Result<R, E>, u32)
where
    Q: Resend,
    F: Future<Output = Result<R, E>>,
{
    let attempts = policy.max_retries().saturating_add(1);

    for attempt in 1..attempts {
        let outcome = send(request.resend()).await;
        let Verdict::Retry { after, reason } = judge(&outcome) else {
            return (outcome, attempt);
        };

        // Drop the failed answer (and its connection) before sleeping on it.
        drop(outcome);
        let wait = after.unwrap_or_else(|| linear_jitter(attempt, fastrand::f64()));
        warn!(path, attempt, ?wait, %reason, "retrying a Vault request");
        tokio::time::sleep(wait).await;
    }

    (send(request).await, attempts)
}

/// The wait a 429 or 503 answer asks for, in whole seconds.
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }

    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use http::HeaderValue;
    use tokio::time::Instant;

    use super::*;

    impl Resend for () {
        fn resend(&self) -> Self {}
    }

    #[test]
    fn retryable_statuses() {
        fn check(status: u16, retry: bool) {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(is_retryable_status(status), retry, "status {status}");
        }

        check(200, false);
        check(204, false);
        check(307, false);
        check(400, false);
        check(403, false);
        check(404, false);
        check(412, true);
        check(429, true);
        check(500, true);
        check(501, false);
        check(502, true);
        check(503, true);
        check(504, true);
        check(599, true);
    }

    #[test]
    fn retry_after_is_honoured_only_on_429_and_503() {
        fn check(status: u16, header: Option<&str>, expected: Option<u64>) {
            let mut headers = HeaderMap::new();
            if let Some(value) = header {
                headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
            }
            let status = StatusCode::from_u16(status).unwrap();
            let got = retry_after(status, &headers);
            assert_eq!(
                got,
                expected.map(Duration::from_secs),
                "{status} {header:?}"
            );
        }

        check(429, Some("7"), Some(7));
        check(503, Some(" 2 "), Some(2));
        check(429, None, None);
        check(500, Some("7"), None);
        check(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn wait_grows_linearly_within_bounds() {
        fn check(retry: u32, unit: f64, millis: u64) {
            let got = linear_jitter(retry, unit);
            assert_eq!(
                got,
                Duration::from_millis(millis),
                "retry {retry}, unit {unit}"
            );
        }

        check(1, 0.0, 1000);
        check(1, 1.0, 1500);
        check(1, 0.5, 1250);
        check(2, 0.0, 2000);
        check(2, 1.0, 3000);
        check(3, 0.0, 3000);
        check(12, 1.0, 18000);
        check(1, 7.0, 1500);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_between_one_and_one_and_a_half_seconds_per_attempt() {
        let sent = Cell::new(0);
        let start = Instant::now();

        let (outcome, attempts) = run(
            RetryPolicy::new(3),
            "sys/health",
            (),
            |()| {
                sent.set(sent.get() + 1);
                async { Err::<(), _>("connection refused") }
            },
            |_| Verdict::Retry {
                after: None,
                reason: "connection refused".to_owned(),
            },
        )
        .await;

        // Waits of 1, 2 and 3 units: 6 s to 9 s in all.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(6), "{waited:?}");
        assert!(waited <= Duration::from_secs(9), "{waited:?}");
        assert_eq!(
            (outcome, attempts, sent.get()),
            (Err("connection refused"), 4, 4)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_answer_is_returned_at_once() {
        let start = Instant::now();

        let (outcome, attempts) = run(
            RetryPolicy::default(),
            "sys/health",
            (),
            |()| async { Ok::<_, ()>(403) },
            |_| Verdict::Final,
        )
        .await;

        assert_eq!((outcome, attempts), (Ok(403), 1));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_replaces_the_jitter() {
        let start = Instant::now();

        let (_, attempts) = run(
            RetryPolicy::new(1),
            "sys/health",
            (),
            |()| async { Ok::<_, ()>(429) },
            |_| Verdict::Retry {
                after: Some(Duration::from_secs(7)),
                reason: "status 429".to_owned(),
            },
        )
        .await;

        assert_eq!(attempts, 2);
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn no_retries_means_one_attempt() {
        let (_, attempts) = run(
            RetryPolicy::NONE,
            "sys/health",
            (),
            |()| async { Ok::<_, ()>(503) },
            |_| Verdict::Retry {
                after: None,
                reason: "status 503".to_owned(),
            },
        )
        .await;

        assert_eq!(attempts, 1);
    }
}
