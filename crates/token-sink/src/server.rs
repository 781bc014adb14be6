//! The sink server: hands each new token to every sink and retries failed writes.

use std::error::Error;
use std::fmt;
use std::future::{Future, pending};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::SinkToken;
use crate::dh::{DhEncryptor, EncryptFailed};
use crate::file::{FileSink, FileWriteFailed, WriteCheckFailed};
use crate::wrap::{DynWrapper, WrapFailed};

/// One configured sink: a token file, optionally wrapping and/or encrypting what goes in it.
///
/// When both are set the token is wrapped first and the wrap-info JSON is then encrypted.
#[derive(Debug)]
pub struct Sink {
    file: FileSink,
    wrap_ttl: Option<Duration>,
    encryption: Option<DhEncryptor>,
}

/// Writes every new token to all sinks; see [`SinkServer::run`].
pub struct SinkServer {
    sinks: Vec<PreparedSink>,
    progress: watch::Sender<Progress>,
}

/// The sinks cannot be used as configured.
#[derive(Debug, thiserror::Error)]
pub enum SinkSetupFailed {
    /// A sink asks for wrapping but the server was given no [`crate::Wrapper`].
    #[error("sink {}: wrap_ttl is set but no wrapper was provided", path.display())]
    NoWrapper {
        /// The sink path.
        path: PathBuf,
    },

    /// A sink's directory is missing or not writable.
    #[error(transparent)]
    WriteCheck(#[from] WriteCheckFailed),
}

/// Lets a caller wait until every sink holds the current token (`exit_after_auth`).
#[derive(Debug, Clone)]
pub struct WriteProgress(watch::Receiver<Progress>);

/// The sink server stopped before the awaited writes happened.
#[derive(Debug, thiserror::Error)]
#[error("the sink server stopped before every sink had written the current token")]
pub struct SinkServerStopped;

impl Sink {
    /// A sink writing the token itself to `file`.
    pub fn new(file: FileSink) -> Self {
        Self {
            file,
            wrap_ttl: None,
            encryption: None,
        }
    }

    /// Writes a response-wrapped token with this TTL instead of the token.
    pub fn with_wrap_ttl(mut self, ttl: Duration) -> Self {
        self.wrap_ttl = Some(ttl);
        self
    }

    /// Writes an encrypted envelope instead of the plain value.
    pub fn with_encryption(mut self, encryption: DhEncryptor) -> Self {
        self.encryption = Some(encryption);
        self
    }

    /// The token file path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Blocking: encrypts if configured, then writes.
    fn seal_and_write(&self, value: &SinkToken) -> Result<(), SinkWriteFailed> {
        let plain = value.expose_secret().as_bytes();

        let Some(encryption) = &self.encryption else {
            return Ok(self.file.write(plain)?);
        };
        let envelope = encryption
            .encrypt(plain)
            .map_err(|source| SinkWriteFailed::Encrypt {
                path: self.path().to_path_buf(),
                source,
            })?;
        Ok(self.file.write(envelope.as_bytes())?)
    }
}

impl SinkServer {
    /// Checks every sink at start-up, blocking: wrapping needs `wrapper`, and each directory must
    /// accept a new file (temp files left by a crashed run are removed on the way).
    pub fn new(
        sinks: Vec<Sink>,
        wrapper: Option<Arc<dyn DynWrapper>>,
    ) -> Result<Self, SinkSetupFailed> {
        let mut prepared = Vec::with_capacity(sinks.len());

        for sink in sinks {
            let wrapping = match (sink.wrap_ttl, &wrapper) {
                (None, _) => None,
                (Some(ttl), Some(wrapper)) => Some(Wrapping {
                    ttl,
                    wrapper: Arc::clone(wrapper),
                }),
                (Some(_), None) => {
                    let path = sink.path().to_path_buf();
                    return Err(SinkSetupFailed::NoWrapper { path });
                }
            };

            let stale = sink.file.prepare()?;
            if stale > 0 {
                info!(sink.path = %sink.path().display(), stale, "removed temp files of an earlier run");
            }
            prepared.push(PreparedSink {
                sink: Arc::new(sink),
                wrapping,
            });
        }

        let progress = watch::Sender::new(Progress {
            received: 0,
            written: vec![0; prepared.len()],
        });
        Ok(Self {
            sinks: prepared,
            progress,
        })
    }

    /// A handle to wait on the writes; take it before calling [`SinkServer::run`].
    pub fn progress(&self) -> WriteProgress {
        WriteProgress(self.progress.subscribe())
    }

    /// Writes each token `tokens` publishes to every sink, until `shutdown` completes.
    ///
    /// Writes to one sink happen one at a time; sinks do not wait for each other. A new token
    /// replaces any older one not yet written. A failed write is retried after 2 s (±50%),
    /// doubling up to a minute, until it succeeds or a newer token replaces it. If the sender of
    /// `tokens` goes away, the writes in hand are still finished.
    pub async fn run(
        self,
        tokens: watch::Receiver<Option<SinkToken>>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (jobs, _) = watch::channel(None);
        let mut writers = JoinSet::new();

        for (index, prepared) in self.sinks.into_iter().enumerate() {
            let span = info_span!("sink", path = %prepared.sink.path().display());
            let writer = SinkWriter {
                index,
                sink: prepared.sink,
                wrapping: prepared.wrapping,
                jobs: jobs.subscribe(),
                progress: self.progress.clone(),
            };
            writers.spawn(writer.run().instrument(span));
        }
        info!(sinks = writers.len(), "sink server started");

        let forwarding = async {
            forward_tokens(tokens, jobs, &self.progress).await;
            debug!("token source closed; finishing the writes in hand");
            pending::<()>().await;
        };
        tokio::select! {
            () = forwarding => {}
            () = shutdown => {}
        }

        // A write already on a blocking thread still completes; it is atomic either way.
        writers.abort_all();
        info!("sink server stopped");
    }
}

impl WriteProgress {
    /// Resolves once the server has taken in a token and every sink has written the newest one
    /// it took in; with no sinks, as soon as the first token is taken in.
    ///
    /// A token published only moments before the call may not have been taken in yet, so a
    /// caller waiting for a particular later token can be answered for the one before it. For
    /// `exit_after_auth`, which waits for the first token, the answer is always exact.
    pub async fn all_sinks_written(&mut self) -> Result<(), SinkServerStopped> {
        match self.0.wait_for(Progress::all_written).await {
            Ok(_) => Ok(()),
            Err(_) => Err(SinkServerStopped),
        }
    }
}

/// Why one write attempt failed.
#[derive(Debug, thiserror::Error)]
enum SinkWriteFailed {
    #[error("cannot wrap the token for {}", path.display())]
    Wrap {
        path: PathBuf,
        #[source]
        source: WrapFailed,
    },

    #[error("cannot encrypt the token for {}", path.display())]
    Encrypt {
        path: PathBuf,
        #[source]
        source: EncryptFailed,
    },

    #[error(transparent)]
    File(#[from] FileWriteFailed),

    #[error("the write to {} panicked", path.display())]
    Panicked { path: PathBuf },
}

struct PreparedSink {
    sink: Arc<Sink>,
    wrapping: Option<Wrapping>,
}

struct Wrapping {
    ttl: Duration,
    wrapper: Arc<dyn DynWrapper>,
}

/// Generations count tokens as they arrive, so "written" can be compared across sinks.
#[derive(Debug, Clone)]
struct Progress {
    received: u64,
    written: Vec<u64>,
}

impl Progress {
    fn all_written(&self) -> bool {
        self.received > 0 && self.written.iter().all(|&g| g >= self.received)
    }
}

#[derive(Clone)]
struct Job {
    generation: u64,
    token: SinkToken,
}

enum Outcome {
    Written,
    Superseded,
}

struct SinkWriter {
    index: usize,
    sink: Arc<Sink>,
    wrapping: Option<Wrapping>,
    jobs: watch::Receiver<Option<Job>>,
    progress: watch::Sender<Progress>,
}

impl SinkWriter {
    async fn run(mut self) {
        let mut written = 0;

        while let Some(job) = self.next_job(written).await {
            if self.write_until_done(&job).await {
                written = job.generation;
                self.progress
                    .send_modify(|p| p.written[self.index] = written);
            }
        }
        debug!("no more tokens for this sink");
    }

    async fn next_job(&mut self, written: u64) -> Option<Job> {
        loop {
            let newest = self.jobs.borrow_and_update().clone();
            if let Some(job) = newest.filter(|job| job.generation > written) {
                return Some(job);
            }
            self.jobs.changed().await.ok()?;
        }
    }

    /// True once written; false when a newer token took over.
    async fn write_until_done(&mut self, job: &Job) -> bool {
        let mut backoff = Backoff::new();
        let mut attempt = 0_u64;

        loop {
            attempt += 1;
            let error = match self.attempt(job).await {
                Ok(Outcome::Written) => {
                    info!(generation = job.generation, attempt, "token written");
                    return true;
                }
                Ok(Outcome::Superseded) => {
                    debug!(
                        generation = job.generation,
                        "a newer token replaced this one"
                    );
                    return false;
                }
                Err(error) => error,
            };

            let delay = backoff.next_delay();
            warn!(
                generation = job.generation,
                attempt,
                retry_in = ?delay,
                error = %ErrorChain(&error),
                "token write failed; retrying",
            );
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = newer_job(&mut self.jobs) => {
                    debug!(generation = job.generation, "a newer token replaced this one");
                    return false;
                }
            }
        }
    }

    async fn attempt(&mut self, job: &Job) -> Result<Outcome, SinkWriteFailed> {
        let value = match &self.wrapping {
            None => job.token.clone(),
            // Wrapping is a network call that may hang; a newer token need not wait for it.
            Some(wrapping) => tokio::select! {
                wrapped = wrapping.wrapper.wrap_boxed(&job.token, wrapping.ttl) => {
                    wrapped.map_err(|source| SinkWriteFailed::Wrap {
                        path: self.sink.path().to_path_buf(),
                        source,
                    })?
                }
                () = newer_job(&mut self.jobs) => return Ok(Outcome::Superseded),
            },
        };

        // Not raced against newer tokens: an abandoned write would still run to its rename on
        // the blocking thread and could land after the newer token.
        let sink = Arc::clone(&self.sink);
        let written = tokio::task::spawn_blocking(move || sink.seal_and_write(&value)).await;
        match written {
            Ok(result) => result.map(|()| Outcome::Written),
            Err(_) => Err(SinkWriteFailed::Panicked {
                path: self.sink.path().to_path_buf(),
            }),
        }
    }
}

async fn forward_tokens(
    mut tokens: watch::Receiver<Option<SinkToken>>,
    jobs: watch::Sender<Option<Job>>,
    progress: &watch::Sender<Progress>,
) {
    let mut generation = 0;

    loop {
        let token = tokens.borrow_and_update().clone();
        if let Some(token) = token {
            generation += 1;
            debug!(generation, "new token for the sinks");

            // Count it as received first, so no waiter sees the older writes as current.
            progress.send_modify(|p| p.received = generation);
            jobs.send_replace(Some(Job { generation, token }));
        }

        if tokens.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when a token newer than the last one seen arrives; never, once none can.
async fn newer_job(jobs: &mut watch::Receiver<Option<Job>>) {
    if jobs.changed().await.is_err() {
        pending::<()>().await;
    }
}

/// Retry delays: 2 s doubling to 60 s, each drawn uniformly from ±50% around that and capped
/// at 60 s. The spread keeps sinks that failed together from retrying in lockstep.
struct Backoff {
    base: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(60);

    fn new() -> Self {
        Self { base: Self::FIRST }
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.base;
        self.base = (base * 2).min(Self::MAX);
        base.mul_f64(0.5 + fastrand::f64()).min(Self::MAX)
    }
}

/// Shows an error with its causes, `outer: inner: root`, for a single log field.
struct ErrorChain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;

        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::{Value, json};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio::time::{Instant, sleep, timeout};
    use x25519_dalek::StaticSecret;

    use super::*;
    use crate::dh::consumer::{open_envelope, publish};
    use crate::{DEFAULT_MODE, Wrapper};

    /// Far beyond any backoff: a wait this long on paused time means "never".
    const NEVER: Duration = Duration::from_secs(3600);

    struct Running {
        tokens: watch::Sender<Option<SinkToken>>,
        progress: WriteProgress,
        stop: oneshot::Sender<()>,
        server: JoinHandle<()>,
    }

    impl Running {
        fn send(&self, token: &str) {
            self.tokens.send_replace(Some(SinkToken::new(token)));
        }

        /// Waits until the server has seen `count` tokens and every sink wrote the last one.
        async fn written(&mut self, count: u64) {
            let waited = timeout(NEVER, async {
                let mut seen = self.progress.0.clone();
                seen.wait_for(|p| p.received >= count).await.unwrap();
                self.progress.all_sinks_written().await.unwrap();
            });
            waited.await.expect("sinks never caught up");
        }

        async fn stop(self) {
            self.stop.send(()).unwrap();
            self.server.await.unwrap();
        }
    }

    fn start(sinks: Vec<Sink>, wrapper: Option<Arc<dyn DynWrapper>>) -> Running {
        let (tokens, receiver) = watch::channel(None);
        start_with(sinks, wrapper, tokens, receiver)
    }

    fn start_with(
        sinks: Vec<Sink>,
        wrapper: Option<Arc<dyn DynWrapper>>,
        tokens: watch::Sender<Option<SinkToken>>,
        receiver: watch::Receiver<Option<SinkToken>>,
    ) -> Running {
        let server = SinkServer::new(sinks, wrapper).unwrap();
        let progress = server.progress();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };

        Running {
            tokens,
            progress,
            stop,
            server: tokio::spawn(server.run(receiver, shutdown)),
        }
    }

    fn sink_at(path: &Path) -> Sink {
        Sink::new(FileSink::new(path, DEFAULT_MODE).unwrap())
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    /// Wrapping needs a Vault server, which unit tests do not have; the end-to-end suite wraps
    /// for real. This one fails or hangs on demand, which a real server will not do on cue.
    #[derive(Default)]
    struct FakeWrapper {
        failures_left: AtomicUsize,
        hang_on: Option<&'static str>,
        ttls: Mutex<Vec<Duration>>,
    }

    impl Wrapper for FakeWrapper {
        async fn wrap(&self, token: &SinkToken, ttl: Duration) -> Result<SinkToken, WrapFailed> {
            self.ttls.lock().unwrap().push(ttl);

            if self.hang_on == Some(token.expose_secret()) {
                pending::<()>().await;
            }
            let failing =
                self.failures_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if failing.is_ok() {
                return Err(WrapFailed::new("vault is sealed"));
            }

            let info = json!({
                "token": format!("wrapping-{}", token.expose_secret()),
                "accessor": "wrapping-accessor",
                "ttl": ttl.as_secs(),
                "creation_time": "2026-01-01T00:00:00Z",
                "creation_path": "sys/wrapping/wrap",
                "wrapped_accessor": "token-accessor",
            });
            Ok(SinkToken::new(info.to_string()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_token_reaches_every_sink() {
        let dir = tempfile::tempdir().unwrap();
        let paths = [dir.path().join("a"), dir.path().join("b")];
        let mut server = start(paths.iter().map(|p| sink_at(p)).collect(), None);

        for (count, token) in (1..).zip(["hvs.first", "hvs.second", "hvs.third"]) {
            server.send(token);
            server.written(count).await;

            for path in &paths {
                assert_eq!(read(path), token);
            }
        }
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_present_before_run_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let (tokens, receiver) = watch::channel(Some(SinkToken::new("hvs.early")));

        let mut server = start_with(vec![sink_at(&path)], None, tokens, receiver);
        server.written(1).await;

        assert_eq!(read(&path), "hvs.early");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_retried_after_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut server = start(vec![sink_at(&path)], None);
        // Made after the start-up check, which refuses a directory; in the way of the
        // rename, it fails every write, even as root.
        fs::create_dir(&path).unwrap();
        let sent = Instant::now();

        server.send("hvs.one");
        // The first attempt has failed by now and the retry is at least a second away.
        sleep(Duration::from_millis(500)).await;
        assert!(path.is_dir());
        fs::remove_dir(&path).unwrap();

        server.written(1).await;
        let waited = sent.elapsed();
        assert!(
            (Duration::from_secs(1)..=Duration::from_secs(3)).contains(&waited),
            "{waited:?}"
        );
        assert_eq!(read(&path), "hvs.one");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_token_supersedes_a_failing_older_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut server = start(vec![sink_at(&path)], None);
        // Made after the start-up check, which refuses a directory; in the way of the
        // rename, it fails every write, even as root.
        fs::create_dir(&path).unwrap();

        server.send("hvs.old");
        sleep(Duration::from_millis(500)).await;
        fs::remove_dir(&path).unwrap();
        let sent = Instant::now();
        server.send("hvs.new");

        // Written at once, not at the old token's retry time.
        server.written(2).await;
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(read(&path), "hvs.new");

        // The old token's retry is gone for good.
        sleep(Duration::from_secs(600)).await;
        assert_eq!(read(&path), "hvs.new");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_token_does_not_wait_for_a_hanging_wrap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let wrapper = Arc::new(FakeWrapper {
            hang_on: Some("hvs.old"),
            ..FakeWrapper::default()
        });
        let sink = sink_at(&path).with_wrap_ttl(Duration::from_secs(60));
        let mut server = start(vec![sink], Some(wrapper));

        server.send("hvs.old");
        sleep(Duration::from_secs(30)).await;
        assert!(!path.exists());
        server.send("hvs.new");

        server.written(2).await;
        let info: Value = serde_json::from_str(&read(&path)).unwrap();
        assert_eq!(info["token"], "wrapping-hvs.new");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn wrapping_comes_before_encryption_and_failures_are_retried() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let consumer = StaticSecret::random();
        let dh = DhEncryptor::curve25519(publish(dir.path(), &consumer), true, "aad").unwrap();
        let wrapper = Arc::new(FakeWrapper {
            failures_left: AtomicUsize::new(1),
            ..FakeWrapper::default()
        });
        let sink = sink_at(&path)
            .with_wrap_ttl(Duration::from_secs(300))
            .with_encryption(dh);
        let mut server = start(vec![sink], Some(wrapper.clone()));

        server.send("hvs.raw");
        server.written(1).await;

        let plain = open_envelope(&read(&path), &consumer, true, b"aad");
        let info: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(info["token"], "wrapping-hvs.raw");
        assert_eq!(info["creation_path"], "sys/wrapping/wrap");
        // One failed call and one that worked, each with the sink's TTL.
        assert_eq!(*wrapper.ttls.lock().unwrap(), [Duration::from_secs(300); 2]);
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_dh_key_file_is_retried_until_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let consumer = StaticSecret::random();
        let dh = DhEncryptor::curve25519(dir.path().join("dh.json"), false, "").unwrap();
        let mut server = start(vec![sink_at(&path).with_encryption(dh)], None);

        server.send("hvs.secret");
        sleep(Duration::from_millis(500)).await;
        assert!(!path.exists());
        publish(dir.path(), &consumer);

        server.written(1).await;
        assert_eq!(
            open_envelope(&read(&path), &consumer, false, b""),
            b"hvs.secret"
        );
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_sinks_all_written_resolves_on_the_first_token() {
        let mut server = start(Vec::new(), None);

        let early = timeout(NEVER, server.progress.all_sinks_written()).await;
        assert!(early.is_err(), "resolved before any token");

        server.send("hvs.only");
        server.written(1).await;
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn all_written_waits_for_the_slowest_sink() {
        let dir = tempfile::tempdir().unwrap();
        let (good, bad) = (dir.path().join("good"), dir.path().join("bad"));
        let mut server = start(vec![sink_at(&good), sink_at(&bad)], None);
        // Made after the start-up check, which refuses a directory; in the way of the
        // rename, it fails every write, even as root.
        fs::create_dir(&bad).unwrap();

        server.send("hvs.token");
        let early = timeout(
            Duration::from_secs(600),
            server.progress.all_sinks_written(),
        )
        .await;
        assert!(early.is_err(), "resolved while a sink was failing");
        assert_eq!(read(&good), "hvs.token");

        fs::remove_dir(&bad).unwrap();
        server.written(1).await;
        assert_eq!(read(&bad), "hvs.token");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn writes_in_hand_finish_after_the_token_source_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let mut server = start(vec![sink_at(&path)], None);
        // Made after the start-up check, which refuses a directory; in the way of the
        // rename, it fails every write, even as root.
        fs::create_dir(&path).unwrap();

        server.send("hvs.last");
        sleep(Duration::from_millis(500)).await;
        let (closed, _) = watch::channel(None);
        drop(std::mem::replace(&mut server.tokens, closed));
        fs::remove_dir(&path).unwrap();

        server.written(1).await;
        assert_eq!(read(&path), "hvs.last");
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_learn_when_the_server_stops() {
        let server = start(Vec::new(), None);
        let mut progress = server.progress.clone();

        server.stop().await;
        assert!(progress.all_sinks_written().await.is_err());
    }

    #[test]
    fn setup_refuses_wrapping_without_a_wrapper() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let sink = sink_at(&path).with_wrap_ttl(Duration::from_secs(60));

        let error = SinkServer::new(vec![sink], None).err().unwrap();

        assert!(
            matches!(error, SinkSetupFailed::NoWrapper { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
    }

    #[test]
    fn setup_names_a_sink_whose_directory_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nowhere").join("token");

        let error = SinkServer::new(vec![sink_at(&path)], None).err().unwrap();

        assert!(matches!(error, SinkSetupFailed::WriteCheck(_)), "{error}");
        assert!(
            error.to_string().contains(&*path.to_string_lossy()),
            "{error}"
        );
    }

    #[test]
    fn backoff_starts_at_2s_plus_minus_1s_and_doubles_to_a_minute() {
        fn check(attempt: usize, low: u64, high: u64) {
            for _ in 0..200 {
                let mut backoff = Backoff::new();
                let delay = (0..attempt).map(|_| backoff.next_delay()).last().unwrap();
                let range = Duration::from_secs(low)..=Duration::from_secs(high);
                assert!(range.contains(&delay), "attempt {attempt}: {delay:?}");
            }
        }

        check(1, 1, 3);
        check(2, 2, 6);
        check(3, 4, 12);
        check(5, 16, 48);
        check(6, 30, 60);
        check(20, 30, 60);
    }

    #[test]
    fn error_messages_as_logged() {
        fn check(error: &(dyn Error + 'static), expected: &str) {
            assert_eq!(ErrorChain(error).to_string(), expected);
        }

        let missing = Path::new("/nonexistent-token-sink-dir");
        let token = Path::new("/run/agent/token");
        let no_such_file = "No such file or directory (os error 2)";

        check(
            &FileSink::new(token, 640).unwrap_err(),
            "file sink /run/agent/token: mode 0o1200 has bits above 0o777",
        );
        check(
            &FileSink::new("/", DEFAULT_MODE).unwrap_err(),
            "file sink /: path does not name a file",
        );
        let unchecked = FileSink::new(missing.join("token"), DEFAULT_MODE).unwrap();
        check(
            &unchecked.prepare().unwrap_err(),
            &format!(
                "token file {}/token: start-up write check failed: {no_such_file}",
                missing.display()
            ),
        );
        check(
            &SinkServer::new(vec![sink_at(token).with_wrap_ttl(NEVER)], None)
                .err()
                .unwrap(),
            "sink /run/agent/token: wrap_ttl is set but no wrapper was provided",
        );

        let dh = DhEncryptor::curve25519(missing.join("dh.json"), true, "").unwrap();
        let encrypt = SinkWriteFailed::Encrypt {
            path: token.into(),
            source: dh.encrypt(b"t").unwrap_err(),
        };
        check(
            &encrypt,
            &format!(
                "cannot encrypt the token for /run/agent/token: \
                 cannot read consumer public key file {}/dh.json: {no_such_file}",
                missing.display()
            ),
        );
        let wrap = SinkWriteFailed::Wrap {
            path: token.into(),
            source: WrapFailed::new("vault is sealed"),
        };
        check(
            &wrap,
            "cannot wrap the token for /run/agent/token: wrapping the token failed: vault is sealed",
        );
        let write = SinkWriteFailed::from(unchecked.write(b"t").unwrap_err());
        check(
            &write,
            &format!(
                "cannot write token file {}/token: {no_such_file}",
                missing.display()
            ),
        );
    }

    /// A `MakeWriter` collecting everything logged into one buffer.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn logs_name_the_sink_and_the_cause_but_never_the_token() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let wrapper = Arc::new(FakeWrapper {
            failures_left: AtomicUsize::new(1),
            ..FakeWrapper::default()
        });
        let plain = sink_at(&path);
        let wrapped = sink_at(&dir.path().join("wrapped")).with_wrap_ttl(Duration::from_secs(5));
        let mut server = start(vec![plain, wrapped], Some(wrapper));
        // A directory where the token file goes, made after the start-up check (which
        // refuses one), makes the writes fail.
        fs::create_dir(&path).unwrap();

        server.send("hvs.must-not-be-logged");
        sleep(Duration::from_millis(500)).await;
        fs::remove_dir(&path).unwrap();
        server.written(1).await;
        server.stop().await;

        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(!logs.contains("must-not-be-logged"), "{logs}");
        assert!(logs.contains("token write failed"), "{logs}");
        assert!(logs.contains(&*path.to_string_lossy()), "{logs}");
        assert!(
            logs.contains("Is a directory"),
            "the io cause is in the log: {logs}"
        );
        assert!(
            logs.contains("vault is sealed"),
            "the wrapper's cause is in the log: {logs}"
        );
        assert!(logs.contains("token written"), "{logs}");
    }
}
