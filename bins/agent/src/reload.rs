//! SIGHUP: re-read the configuration; when it is valid, apply the log level and reload the
//! listeners' TLS certificates. Nothing else changes at run time (as with Vault Agent), and
//! an invalid config changes nothing at all.

use std::sync::Arc;

use agent_config::LoadOptions;
use api_proxy::TlsReloader;
use parking_lot::Mutex;
use tracing::{error, info};

use crate::logging::LevelHandle;

/// What a SIGHUP reloads.
#[derive(Clone)]
pub(crate) struct Reloader {
    options: LoadOptions,
    cli_level: Option<String>,
    level: LevelHandle,
    tls: Arc<Mutex<Vec<TlsReloader>>>,
}

impl Reloader {
    pub(crate) fn new(options: LoadOptions, cli_level: Option<String>, level: LevelHandle) -> Self {
        Self {
            options,
            cli_level,
            level,
            tls: Arc::default(),
        }
    }

    pub(crate) fn add_tls(&self, tls: TlsReloader) {
        self.tls.lock().push(tls);
    }

    pub(crate) fn reload(&self) {
        info!("SIGHUP received: reloading the configuration");
        let mut options = self.options.clone();
        // Vault lets the file's level win on reload; a level given on the command line is
        // an explicit choice, so it stays (our rule).
        options.overrides.log_level = self.cli_level.clone();
        let loaded = match agent_config::load(&options) {
            Ok(loaded) => loaded,
            Err(error) => {
                error!(%error, "the new configuration is invalid; nothing was changed");
                return;
            }
        };

        let level = crate::level_filter(loaded.config.log.level);
        match self.level.set(level) {
            Ok(()) => info!(level = %level, "log level applied"),
            Err(error) => error!(%error, "cannot change the log level"),
        }
        for tls in self.tls.lock().iter() {
            if let Err(error) = tls.reload() {
                error!(%error, "cannot reload a listener's TLS certificate; keeping the old one");
            }
        }
    }
}
