//! When to renew, when to give up: the lifetime rules, as pure functions over milliseconds.
//!
//! A lease is renewed at two thirds of what remains plus a third of a grace period (a random
//! 10–20 % of its duration), so renewals of many leases spread out. When a renewal no longer
//! leaves more than the grace period after the next sleep (the lease hit its maximum TTL), the
//! lease is not renewed again but dropped when only the grace period remains: serving a
//! credential seconds before it dies helps no one.

use std::time::Duration;

/// What to do next with a lease that has `remaining` milliseconds to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Renew after this many milliseconds.
    RenewIn(u64),
    /// Stop renewing; drop the entry after this many milliseconds.
    EndIn(u64),
}

/// The plan after a lease was granted or renewed for `remaining` ms with grace `grace` ms.
pub(crate) fn plan(remaining: u64, grace: u64) -> Next {
    if remaining <= grace {
        return Next::EndIn(0);
    }
    let sleep = remaining / 3 * 2 + grace / 3;
    if remaining.saturating_sub(sleep) <= grace {
        return Next::EndIn(remaining - grace);
    }
    Next::RenewIn(sleep)
}

/// A grace period for a lease of `duration` ms: a random fraction in `[min, max]` of it.
pub(crate) fn grace(duration: u64, min: f64, max: f64) -> u64 {
    let fraction = min + fastrand::f64() * (max - min).max(0.0);
    (duration as f64 * fraction) as u64
}

/// The wait before retry number `attempt` (0-based) after a transient failure: `initial`
/// doubled per attempt up to `max`, then jittered down by up to half.
pub(crate) fn backoff(attempt: u8, initial: Duration, max: Duration) -> u64 {
    let initial = initial.as_millis() as u64;
    let max = max.as_millis() as u64;
    let full = initial.saturating_mul(1 << attempt.min(32)).min(max);
    full - (full as f64 * 0.5 * fastrand::f64()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_renewals_like_a_lifetime_watcher() {
        let check = |remaining: u64, grace: u64, expected: Next| {
            assert_eq!(
                plan(remaining, grace),
                expected,
                "{remaining} ms, grace {grace} ms"
            );
        };

        // 12 s with 1.8 s grace: renew at 8 s + 0.6 s.
        check(12_000, 1_800, Next::RenewIn(8_600));
        // One hour with 10 % grace.
        check(3_600_000, 360_000, Next::RenewIn(2_520_000));
        // Capped by max TTL: what is left after the sleep would be inside the grace period.
        check(4_000, 1_800, Next::EndIn(2_200));
        check(1_800, 1_800, Next::EndIn(0));
        check(0, 0, Next::EndIn(0));
    }

    #[test]
    fn grace_stays_within_its_fractions() {
        for _ in 0..1_000 {
            let grace = grace(10_000, 0.1, 0.2);
            assert!((1_000..=2_000).contains(&grace), "{grace}");
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        let check = |attempt: u8, low: u64, high: u64| {
            for _ in 0..200 {
                let wait = backoff(attempt, Duration::from_secs(10), Duration::from_secs(300));
                assert!((low..=high).contains(&wait), "attempt {attempt}: {wait}");
            }
        };

        check(0, 5_000, 10_000);
        check(1, 10_000, 20_000);
        check(4, 80_000, 160_000);
        check(5, 150_000, 300_000);
        check(200, 150_000, 300_000);
    }
}
