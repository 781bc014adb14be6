//! The renewal scheduler: one task for every entry.
//!
//! Due times live in one binary heap in the cache's state. The scheduler sleeps until the
//! earliest, takes what is due (at most `renew_concurrency` renewals waiting on Vault at once),
//! polls those renewals itself (no task per renewal), applies each answer and plans the next
//! step. Ends of leases are handled on the same pass, without a call to Vault.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tracing::{Instrument, info, info_span, warn};

use crate::cache::LeaseCache;
use crate::secret::SecretToken;
use crate::state::{EntryId, Job, Work};

/// How renewals reach Vault; the binary implements it with its Vault client.
pub trait Renewer: Send + Sync + 'static {
    /// Renews `token` with itself (`auth/token/renew-self`) in `namespace` (`root/` or
    /// `ns1/…`).
    fn renew_token(
        &self,
        token: &SecretToken,
        namespace: &str,
    ) -> impl Future<Output = Renewal> + Send;

    /// Renews `lease_id` with its owner's `token` (`sys/leases/renew`) in `namespace`.
    fn renew_lease(
        &self,
        token: &SecretToken,
        lease_id: &str,
        namespace: &str,
    ) -> impl Future<Output = Renewal> + Send;
}

/// Vault's answer to a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Granted: the lease now lives `ttl` more.
    Extended {
        /// The new TTL (`lease_duration`).
        ttl: Duration,
        /// Whether Vault allows renewing again.
        renewable: bool,
    },
    /// Refused (4xx): the lease or token is gone or no longer ours; the entry goes now.
    Rejected,
    /// No usable answer (network, 5xx, timeout): retried with backoff until the lease would
    /// have ended.
    Failed,
}

impl LeaseCache {
    /// Runs the renewal scheduler until `shutdown` completes. Run it once per cache; a second
    /// call while one runs returns at once.
    ///
    /// Renewals that were in flight at shutdown are put back on the schedule, so a scheduler
    /// started later picks them up.
    pub async fn run_renewals<R: Renewer>(&self, renewer: R, shutdown: impl Future<Output = ()>) {
        if self.inner().scheduler_running.swap(true, Ordering::AcqRel) {
            warn!("renewal scheduler already running; not starting another");
            return;
        }
        let _running = Running { cache: self };

        let span = info_span!("lease_renewals");
        self.schedule_loop(&renewer, shutdown)
            .instrument(span)
            .await;
    }

    async fn schedule_loop<R: Renewer>(&self, renewer: &R, shutdown: impl Future<Output = ()>) {
        let inner = self.inner();
        let limit = inner.renew_concurrency;
        let timeout = inner.renew_timeout;
        let mut shutdown = pin!(shutdown);
        let mut running = FuturesUnordered::new();
        info!(concurrency = limit, "renewal scheduler started");

        loop {
            let (jobs, next) = inner
                .state
                .lock()
                .take_due(self.now(), limit - running.len());
            for job in jobs {
                running.push(renew(renewer, job, timeout));
            }
            let wake_at = next
                .filter(|_| running.len() < limit)
                .map(|at| self.instant_at(at));

            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(first) = running.next(), if !running.is_empty() => {
                    // Take every answer already in, then apply them under one lock.
                    let mut answers = vec![first];
                    while let Some(Some(answer)) = running.next().now_or_never() {
                        answers.push(answer);
                    }
                    let now = self.now();
                    let mut state = inner.state.lock();
                    for (id, renewal) in answers {
                        state.apply(id, renewal, now);
                    }
                }
                () = inner.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at.unwrap_or_else(far_future)),
                    if wake_at.is_some() => {}
            }
        }
        info!(abandoned = running.len(), "renewal scheduler stopped");
    }
}

/// Marks the scheduler stopped however its future ends (shutdown or dropped).
struct Running<'a> {
    cache: &'a LeaseCache,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let now = self.cache.now();
        self.cache.inner().state.lock().abort_renewals(now);
        self.cache
            .inner()
            .scheduler_running
            .store(false, Ordering::Release);
    }
}

async fn renew<R: Renewer>(renewer: &R, job: Job, limit: Duration) -> (EntryId, Renewal) {
    let call = async {
        match &job.work {
            Work::Token(token) => renewer.renew_token(token, &job.namespace).await,
            Work::Lease { token, lease_id } => {
                renewer.renew_lease(token, lease_id, &job.namespace).await
            }
        }
    };
    let renewal = tokio::time::timeout(limit, call)
        .await
        .unwrap_or(Renewal::Failed);
    (job.id, renewal)
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365)
}
