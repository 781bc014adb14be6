//! The waits between attempts: failed logins, failed renewals, and the renewal schedule.

use std::time::Duration;

/// Vault's login backoff: the first wait is `min`, then the wait doubles up to `max`,
/// each doubled wait shortened by up to a quarter at random.
///
/// The doubling runs on the undisturbed value, so the jitter never compounds: in any
/// window the number of attempts is bounded by the plain doubling sequence (at most 7 in
/// the first minute with `min` 1 s).
#[derive(Debug)]
pub(crate) struct LoginBackoff {
    min: Duration,
    max: Duration,
    next: Duration,
    first: bool,
}

impl LoginBackoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
            first: true,
        }
    }

    /// The wait before the next attempt, after a failure.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(self.max);

        if std::mem::take(&mut self.first) {
            return base;
        }
        base.mul_f64(1.0 - 0.25 * fastrand::f64())
    }

    /// Back to `min` after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
        self.first = true;
    }
}

/// Vault's backoff between failed renewals of a token that is still valid: 10 s doubling
/// to 5 min, each wait between half and one and a half times the base, at most 5 min.
#[derive(Debug)]
pub(crate) struct RenewalBackoff {
    next: Duration,
}

impl RenewalBackoff {
    const INITIAL: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(5 * 60);

    pub(crate) fn new() -> Self {
        Self {
            next: Self::INITIAL,
        }
    }

    pub(crate) fn next_wait(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(Self::MAX);
        base.mul_f64(0.5 + fastrand::f64()).min(Self::MAX)
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::INITIAL;
    }
}

/// The margin before expiry within which a token is replaced rather than renewed:
/// 10 % of its TTL plus up to another 10 % at random, so that many agents do not act in
/// step.
pub(crate) fn grace(ttl: Duration) -> Duration {
    ttl / 10 + (ttl / 10).mul_f64(fastrand::f64())
}

/// How long to sleep after a renewal left `remaining`: two thirds of it plus a third of the
/// grace. `None` when that sleep would end inside the grace, so the token must be replaced
/// now.
pub(crate) fn renewal_sleep(remaining: Duration, grace: Duration) -> Option<Duration> {
    let sleep = remaining.mul_f64(2.0 / 3.0) + grace / 3;
    let after = remaining.checked_sub(sleep)?;
    (remaining > grace && after > grace).then_some(sleep)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn login_waits_start_at_min_then_double_minus_a_quarter_up_to_max() {
        for _ in 0..200 {
            let mut backoff = LoginBackoff::new(S, 4 * S);
            let waits: Vec<Duration> = (0..5).map(|_| backoff.next_wait()).collect();

            assert_eq!(waits[0], S);
            let bounds = [(1.5, 2.0), (3.0, 4.0), (3.0, 4.0), (3.0, 4.0)];
            for (wait, (low, high)) in waits[1..].iter().zip(bounds) {
                let secs = wait.as_secs_f64();
                assert!((low..=high).contains(&secs), "{waits:?}");
            }
        }
    }

    #[test]
    fn login_backoff_resets_to_min() {
        let mut backoff = LoginBackoff::new(S, 300 * S);
        for _ in 0..10 {
            backoff.next_wait();
        }
        backoff.reset();
        assert_eq!(backoff.next_wait(), S);
        assert!(backoff.next_wait() <= 2 * S);
    }

    #[test]
    fn at_most_seven_login_attempts_in_a_minute() {
        for _ in 0..200 {
            let mut backoff = LoginBackoff::new(S, 300 * S);
            let mut at = Duration::ZERO;
            let mut attempts = 0;
            while at <= 60 * S {
                attempts += 1;
                at += backoff.next_wait();
            }
            assert!((6..=7).contains(&attempts), "{attempts} attempts");
        }
    }

    #[test]
    fn renewal_waits_double_from_ten_seconds_to_five_minutes_with_jitter() {
        for _ in 0..200 {
            let mut backoff = RenewalBackoff::new();
            let bases = [10, 20, 40, 80, 160, 300, 300];
            for base in bases {
                let wait = backoff.next_wait().as_secs_f64();
                let base = base as f64;
                assert!(
                    wait >= base / 2.0 && wait <= (base * 1.5).min(300.0),
                    "{wait}"
                );
            }
            backoff.reset();
            assert!(backoff.next_wait() <= 15 * S);
        }
    }

    #[test]
    fn grace_is_ten_to_twenty_percent() {
        for _ in 0..200 {
            let grace = grace(100 * S);
            assert!(grace >= 10 * S && grace <= 20 * S, "{grace:?}");
        }
        assert_eq!(grace(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn renewal_sleep_is_two_thirds_plus_a_third_of_grace_until_the_grace_is_reached() {
        fn check(remaining: u32, grace: u32, expected: Option<f64>) {
            let got = renewal_sleep(remaining * S, grace * S).map(|d| d.as_secs_f64());
            match (got, expected) {
                (Some(got), Some(expected)) => assert!((got - expected).abs() < 1e-6),
                (got, expected) => assert_eq!(got, expected, "{remaining}s, grace {grace}s"),
            }
        }

        check(60, 9, Some(43.0));
        check(12, 2, Some(8.0 + 2.0 / 3.0));
        check(9, 3, None);
        check(3, 3, None);
        check(0, 0, None);
        check(1, 0, Some(2.0 / 3.0));
    }
}
