//! Building the components from the configuration, running them until a signal, and
//! draining. The flow of a token: the auth handler publishes it on a watch channel; one
//! bridge task hands each new token to the sink server (as a sink value), to the proxy's
//! auto-auth slot and to the lease cache (which then caches what derives from it).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_config::Config;
use anyhow::{Context, Result};
use api_proxy::{AutoAuthSlot, CancellationToken, Metrics, ProxySettings, ProxyState, QuitSignal};
use auto_auth::{AuthHandler, AuthStats, RenewalReceiver, TokenReceiver};
use lease_cache::{LeaseCache, SecretToken};
use token_sink::{SinkServer, SinkToken, WriteProgress};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};
use vault_client::Client;

use crate::reload::Reloader;
use crate::settings::{self, Subsystem};
use crate::vault::{VaultRenewer, VaultWrapper};

/// How the agent ended.
pub(crate) enum Outcome {
    /// A signal, the quit endpoint, or `exit_after_auth` done.
    Clean,
    /// A subsystem failed in a way the agent cannot continue from.
    Failed(anyhow::Error),
}

/// Runs the agent until it is asked to stop; returns how it ended.
/// `hangups` is the SIGHUP stream, caught since the process started.
pub(crate) async fn run(config: Config, reloader: Reloader, hangups: Signal) -> Result<Outcome> {
    refuse_unsupported(&config)?;

    // Before anything that can spend a credential (a secret_id is removed once read, and a
    // login may use up a single-use one): a pid file that cannot be written stops the start
    // with nothing consumed.
    let pid_file = config.pid_file.clone();
    if let Some(path) = &pid_file {
        write_pid_file(path)?;
    }
    let outcome = run_components(config, reloader, hangups).await;
    if let Some(path) = &pid_file {
        let _ = std::fs::remove_file(path);
    }
    outcome
}

/// Builds the components, runs them until the agent is asked to stop, and drains them.
async fn run_components(config: Config, reloader: Reloader, hangups: Signal) -> Result<Outcome> {
    let shutdown = CancellationToken::new();
    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = Vec::new();

    // Auto-auth: a handler that publishes tokens, and the sinks that write them.
    let mut auth = None;
    let mut sink_progress = None;
    let mut sink_tokens = None;
    if let Some(auto_auth) = &config.auto_auth {
        let client_settings = settings::client(&config, Subsystem::AutoAuth);
        let client = Client::new(&client_settings).context("building the auto-auth client")?;
        let method = settings::method(&auto_auth.method)?;
        let handler = AuthHandler::new(client.clone(), &client_settings, method)
            .with_context(|| format!("{}: auto_auth.method", auto_auth.method.location))?;

        let sinks = settings::sinks(&config)?;
        let wrapper: Option<Arc<dyn token_sink::DynWrapper>> =
            Some(Arc::new(VaultWrapper::new(client)));
        let server = tokio::task::spawn_blocking(move || SinkServer::new(sinks, wrapper))
            .await
            .context("checking the sinks")?
            .context("checking the sinks")?;
        let (tx, rx) = watch::channel(None);
        sink_progress = Some(server.progress());
        sink_tokens = Some(tx);
        let stop = shutdown.clone();
        tasks.push((
            "sinks",
            tokio::spawn(
                async move { server.run(rx, stop.cancelled_owned()).await }
                    .instrument(info_span!("sinks")),
            ),
        ));
        auth = Some(handler);
    }

    // The lease cache and the listeners.
    let cache = config
        .cache
        .as_ref()
        .map(|c| LeaseCache::new(settings::cache(c)));
    let slot = AutoAuthSlot::new();
    let metrics = Metrics::new(settings::metrics(&config));
    let quit = QuitSignal::new(CancellationToken::new());
    if !config.listeners.is_empty() {
        let client = Client::new(&settings::client(&config, Subsystem::Proxy))
            .context("building the proxy's Vault client")?;
        let state = ProxyState::new(
            client,
            cache.clone(),
            slot.clone(),
            metrics.clone(),
            ProxySettings {
                use_auto_auth_token: settings::use_auto_auth_token(&config),
                namespace: config.vault.namespace.clone(),
                ..ProxySettings::default()
            },
        )
        .context("vault.namespace")?;
        for listener in &config.listeners {
            let listener_settings = settings::listener(listener)?;
            let bound = api_proxy::Listener::bind(&listener_settings)
                .await
                .with_context(|| format!("{}: listener", listener.location))?;
            info!(address = %bound.address(), "listener ready");
            if let Some(tls) = bound.tls_reloader() {
                reloader.add_tls(tls);
            }
            let router = api_proxy::router(&state, &listener_settings, quit.clone());
            tasks.push(("listener", bound.serve(router, shutdown.clone())));
        }
    }
    if let Some(cache) = &cache {
        let cache = cache.clone();
        let renewer = VaultRenewer::new(
            Client::new(&settings::client(&config, Subsystem::Proxy))
                .context("building the cache's Vault client")?,
        );
        let stop = shutdown.clone();
        tasks.push((
            "lease renewals",
            tokio::spawn(async move { cache.run_renewals(renewer, stop.cancelled_owned()).await }),
        ));
    }

    // The auth handler last, so that every consumer is in place for its first token.
    let mut auth_task = None;
    if let Some(handler) = auth {
        let bridge = Bridge {
            tokens: handler.tokens(),
            renewals: handler.renewals(),
            stats: handler.stats(),
            sinks: sink_tokens.take(),
            slot: slot.clone(),
            cache: cache.clone(),
            metrics: metrics.clone(),
        };
        tasks.push(("token bridge", tokio::spawn(bridge.run(shutdown.clone()))));
        let stop = shutdown.clone();
        auth_task = Some(tokio::spawn(
            async move { handler.run(stop.cancelled_owned()).await }.instrument(info_span!("auth")),
        ));
    }

    info!("agent started");

    let outcome = wait(
        &config,
        &quit,
        &mut auth_task,
        sink_progress,
        &reloader,
        hangups,
    )
    .await;

    // Drain: stop accepting, let in-flight work finish, bounded.
    info!("shutting down");
    shutdown.cancel();
    if let Some(task) = auth_task {
        let _ = tokio::time::timeout(settings::DRAIN, task).await;
    }
    for (name, task) in tasks {
        if tokio::time::timeout(settings::DRAIN, task).await.is_err() {
            warn!(task = name, "did not stop in time");
        }
    }
    Ok(outcome)
}

/// Refuses the stanzas this agent does not run (see [`settings::unsupported`]) and warns
/// about the ones it runs only in part.
fn refuse_unsupported(config: &Config) -> Result<()> {
    settings::unsupported(config)?;
    if let Some(persist) = config.cache.as_ref().and_then(|c| c.persist.as_ref()) {
        warn!(
            at = %persist.location,
            "cache.persist is not supported: the cache starts empty and is not saved"
        );
    }
    Ok(())
}

/// Waits for the first reason to stop, handling SIGHUP meanwhile.
async fn wait(
    config: &Config,
    quit: &QuitSignal,
    auth_task: &mut Option<JoinHandle<Result<(), auto_auth::AuthFailed>>>,
    sink_progress: Option<WriteProgress>,
    reloader: &Reloader,
    mut hup: Signal,
) -> Outcome {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return Outcome::Failed(anyhow::anyhow!("cannot install signal handlers"));
    };

    let exit_after_auth = async {
        match sink_progress {
            Some(mut progress) if config.exit_after_auth => {
                if progress.all_sinks_written().await.is_ok() {
                    return;
                }
                std::future::pending::<()>().await;
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(exit_after_auth);

    loop {
        tokio::select! {
            _ = term.recv() => { info!(signal = "SIGTERM", "received signal"); return Outcome::Clean; }
            _ = int.recv() => { info!(signal = "SIGINT", "received signal"); return Outcome::Clean; }
            _ = hup.recv() => reloader.reload(),
            () = quit.token().cancelled() => { info!("quit requested through the agent API"); return Outcome::Clean; }
            () = &mut exit_after_auth => { info!("every sink has the token; exiting (exit_after_auth)"); return Outcome::Clean; }
            result = async { auth_task.as_mut().expect("guarded by the branch condition").await }, if auth_task.is_some() => {
                *auth_task = None;
                return match result {
                    Ok(Ok(())) => Outcome::Clean,
                    Ok(Err(failed)) => {
                        error!(error = %failed, "authentication failed and exit_on_err is set");
                        Outcome::Failed(failed.into())
                    }
                    Err(panicked) => Outcome::Failed(anyhow::anyhow!("the auth handler stopped: {panicked}")),
                };
            }
        }
    }
}

/// Hands each new auto-auth token to the sinks, the proxy and the cache.
struct Bridge {
    tokens: TokenReceiver,
    renewals: RenewalReceiver,
    stats: AuthStats,
    sinks: Option<watch::Sender<Option<SinkToken>>>,
    slot: AutoAuthSlot,
    cache: Option<LeaseCache>,
    metrics: Metrics,
}

impl Bridge {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut seen_failures = 0;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = self.tokens.changed() => {
                    if changed.is_err() { return; }
                    let token = self.tokens.borrow_and_update().clone();
                    if let Some(token) = token { self.publish(&token); }
                }
                changed = self.renewals.changed() => {
                    if changed.is_err() { continue; }
                    let renewal = *self.renewals.borrow_and_update();
                    if let Some(renewal) = renewal { self.renewed(renewal); }
                }
                _ = ticker.tick() => {
                    let failures = self.stats.login_failures();
                    for _ in seen_failures..failures { self.metrics.auth_failed(); }
                    seen_failures = failures;
                    self.metrics.set_authenticated(self.stats.authenticated());
                }
            }
        }
    }

    fn publish(&self, token: &auto_auth::AuthToken) {
        self.metrics.auth_succeeded();
        if let Some(sinks) = &self.sinks {
            sinks.send_replace(Some(SinkToken::new(token.expose_sink_value())));
        }
        // A wrapped login has no usable token: the proxy and the cache never see the blob.
        let Some(client_token) = token.client_token() else {
            return;
        };
        if self.slot.set(client_token.clone()).is_err() {
            warn!("the auto-auth token cannot be sent as a header; the proxy will not use it");
        }
        if let Some(cache) = &self.cache {
            cache.register_auto_auth_token(SecretToken::new(client_token.expose()), token.ttl());
        }
    }

    fn renewed(&self, renewal: auto_auth::Renewal) {
        self.metrics.auth_succeeded();
        let current = self.tokens.borrow().clone();
        if let (Some(cache), Some(token)) = (&self.cache, current)
            && token.generation() == renewal.generation
            && let Some(client_token) = token.client_token()
        {
            cache.auto_auth_token_renewed(&SecretToken::new(client_token.expose()), renewal.ttl);
        }
    }
}

/// Writes the process id, without a newline, readable only by the owner.
fn write_pid_file(path: &PathBuf) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("pid_file: cannot write {}", path.display()))?;
    // An existing file keeps its mode through `open`; the pid file's mode is ours to set.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| write!(file, "{}", std::process::id()))
        .with_context(|| format!("pid_file: cannot write {}", path.display()))?;
    Ok(())
}
