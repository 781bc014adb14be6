//! `vault-agent`: the thin binary that composes the agent's crates.
//!
//! Five steps: read the command line and the configuration, set up logging, build the
//! components, run until a signal (or the quit endpoint, or `exit_after_auth`), and drain.
//! Exit codes: 0 for a clean exit, 1 for any error, 2 for a bad command line.

mod cli;
mod logging;
mod reload;
mod run;
mod settings;
mod vault;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent_config::{
    ConfigError, Environment, LoadOptions, Loaded, LogFormat, LogLevel, Overrides, Warning,
};
use anyhow::{Context, Result};
use clap::CommandFactory;
use clap::error::ContextKind;
use tokio::signal::unix::{SignalKind, signal};
use tracing::level_filters::LevelFilter;

use crate::cli::Cli;
use crate::logging::{Format, LogSettings, RotateSettings};

/// A line on stderr. `eprintln!` panics when stderr cannot be written (a full disk, a closed
/// pipe); the agent's exit code must not depend on whether anyone reads its complaints.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

fn main() -> ExitCode {
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            // A bad value comes without the usage line; every usage error shows it.
            if error.use_stderr() && error.get(ContextKind::Usage).is_none() {
                say!("\n{}", Cli::command().render_usage());
            }
            return ExitCode::from(code);
        }
    };

    match agent(cli) {
        Ok(code) => code,
        Err(error) => {
            say!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn agent(cli: Cli) -> Result<ExitCode> {
    let env = Environment::from_process();
    let options = load_options(&cli, env)?;
    if cli.check == Some(true) {
        let loaded = load(&options)?;
        check(&loaded)?;
        return Ok(ExitCode::SUCCESS);
    }

    // SIGHUP is caught before anything else: one that arrives while the agent is starting
    // is a reload once it runs, not the signal's default action, which would kill it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let hangups = runtime
        .block_on(async { signal(SignalKind::hangup()) })
        .context("catching SIGHUP")?;
    // Vault Agent, a Go program, ignores SIGUSR1 and SIGUSR2 (whose default action would
    // kill the agent and leave its pid file behind). A handler once installed stays for the
    // life of the process, so the streams need not be kept or read.
    for kind in [SignalKind::user_defined1(), SignalKind::user_defined2()] {
        let _ = runtime
            .block_on(async { signal(kind) })
            .context("catching SIGUSR1 and SIGUSR2")?;
    }
    let loaded = load(&options)?;

    let log = log_settings(&cli, &loaded.config)?;
    let level = logging::init(&log)?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    for line in loaded.config.render_redacted().lines() {
        tracing::debug!("config: {line}");
    }

    let reloader = reload::Reloader::new(options, cli.log_level.clone(), level);
    let outcome = runtime.block_on(run::run(loaded.config, reloader, hangups));
    runtime.shutdown_timeout(Duration::from_secs(5));

    match outcome? {
        run::Outcome::Clean => Ok(ExitCode::SUCCESS),
        run::Outcome::Failed(error) => {
            tracing::error!("{error:#}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Loads the configuration; on failure the warnings gathered until then go first, since
/// one of them (a misspelt key) is often the cause of the error.
fn load(options: &LoadOptions) -> Result<Loaded> {
    agent_config::load(options).map_err(|error| {
        for warning in error.warnings() {
            say!("warning: {warning}");
        }
        anyhow::Error::new(error)
    })
}

/// `-check`: the warnings, then what a start would refuse, then the dump. The exit code is
/// the loader's verdict alone, as with the reference agent's `-test-verify-only`.
fn check(loaded: &Loaded) -> Result<()> {
    for warning in &loaded.warnings {
        say!("warning: {warning}");
    }
    // A refusal the loader already warned about (a socket mode) is said once.
    let already_warned = |error: &anyhow::Error| {
        error.downcast_ref::<ConfigError>().is_some_and(|e| {
            let same = |w: &Warning| w.location == e.location && w.key == e.key;
            loaded.warnings.iter().any(same)
        })
    };
    for refusal in settings::refusals(&loaded.config) {
        if !already_warned(&refusal) {
            say!("warning: {refusal:#} (a start would fail)");
        }
    }
    // The dump is the point of -check: when it cannot be written, -check has failed.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(loaded.config.render_redacted().as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the configuration to standard output")?;
    say!("configuration is valid");
    Ok(())
}

fn load_options(cli: &Cli, env: Environment) -> Result<LoadOptions> {
    let mut paths = cli.config.clone();
    if paths.is_empty() {
        let from_env = ["BAO_AGENT_CONFIG_PATH", "VAULT_AGENT_CONFIG_PATH"]
            .iter()
            .find_map(std::env::var_os)
            .filter(|v| !v.is_empty());
        paths.extend(from_env.map(PathBuf::from));
    }
    if paths.is_empty() {
        anyhow::bail!(
            "at least one config path is required: -config=FILE or DIR \
             (or BAO_AGENT_CONFIG_PATH / VAULT_AGENT_CONFIG_PATH)"
        );
    }

    Ok(LoadOptions {
        paths,
        overrides: Overrides {
            address: cli.address.clone(),
            ca_cert: cli.ca_cert.clone(),
            ca_path: cli.ca_path.clone(),
            client_cert: cli.client_cert.clone(),
            client_key: cli.client_key.clone(),
            tls_server_name: cli.tls_server_name.clone(),
            namespace: cli.namespace.clone(),
            tls_skip_verify: cli.tls_skip_verify,
            log_level: cli.log_level.clone(),
            log_format: cli.log_format.clone(),
            log_file: cli.log_file.clone(),
            exit_after_auth: cli.exit_after_auth,
        },
        env,
    })
}

fn log_settings(cli: &Cli, config: &agent_config::Config) -> Result<LogSettings> {
    let log = &config.log;
    let file = match &log.file {
        None => None,
        Some(value) => Some(RotateSettings {
            path: logging::log_file_path(value),
            max_bytes: cli.log_rotate_bytes.or(log.rotate_bytes).unwrap_or(0),
            max_duration: match &cli.log_rotate_duration {
                Some(text) => agent_config::parse_duration(text)
                    .map_err(|e| anyhow::anyhow!("-log-rotate-duration: {e}"))?,
                None => log
                    .rotate_duration
                    .unwrap_or(Duration::from_secs(24 * 3600)),
            },
            max_files: cli
                .log_rotate_max_files
                .or(log.rotate_max_files)
                .unwrap_or(0),
        }),
    };
    Ok(LogSettings {
        level: level_filter(log.level),
        format: match log.format {
            LogFormat::Standard => Format::Standard,
            LogFormat::Json => Format::Json,
        },
        file,
    })
}

/// The tracing filter for a configured level.
pub(crate) fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}
