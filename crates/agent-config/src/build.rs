//! Turns the merged files and the override layers into the final [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use crate::decode::{self, FileConfig};
use crate::error::{ConfigError, Location};
use crate::layer::Layered;
use crate::model::{
    Config, DEFAULT_VAULT_ADDRESS, KeyLines, LogFormat, LogLevel, Logging, Retry, Vault,
};

pub(crate) fn build(file: FileConfig, layered: Layered) -> Result<Config, ConfigError> {
    let Layered {
        values, origins, ..
    } = layered;
    let origin = |field: &str| origins.get(field).cloned();

    // `vault {}` with environment and flag values on top; the block's own lines stay where the
    // file set them, overridden keys point at their variable or flag.
    let mut vault = file.vault.unwrap_or_else(|| Vault {
        address: DEFAULT_VAULT_ADDRESS.to_owned(),
        ca_cert: None,
        ca_path: None,
        client_cert: None,
        client_key: None,
        tls_skip_verify: false,
        tls_server_name: None,
        namespace: None,
        retry: Retry { num_retries: 0 },
        client_timeout: None,
        location: Location::nowhere(),
        lines: KeyLines::default(),
    });
    vault.address = values
        .address
        .unwrap_or_else(|| DEFAULT_VAULT_ADDRESS.to_owned());
    vault.ca_cert = values.ca_cert.map(PathBuf::from);
    vault.ca_path = values.ca_path.map(PathBuf::from);
    vault.client_cert = values.client_cert.map(PathBuf::from);
    vault.client_key = values.client_key.map(PathBuf::from);
    vault.tls_server_name = values.tls_server_name;
    vault.tls_skip_verify = values.tls_skip_verify.unwrap_or(false);
    vault.namespace = values
        .namespace
        .as_deref()
        .and_then(decode::canonical_namespace);
    vault.retry.num_retries = values.num_retries.unwrap_or(0);
    vault.client_timeout = values.client_timeout;
    let vault_keys = [
        "address",
        "ca_cert",
        "ca_path",
        "client_cert",
        "client_key",
        "tls_server_name",
        "tls_skip_verify",
        "namespace",
        "num_retries",
        "client_timeout",
    ];
    for key in vault_keys {
        if let Some(location) = origin(key) {
            vault.lines.keys.insert(key.to_owned(), location);
        }
    }

    let level_at = origin("log_level").unwrap_or_else(Location::nowhere);
    let format_at = origin("log_format").unwrap_or_else(Location::nowhere);
    let log_file = values.log_file.filter(|f| !f.is_empty());
    let log = Logging {
        level: log_level(values.log_level.as_deref().unwrap_or(""), level_at)?,
        format: log_format(values.log_format.as_deref().unwrap_or(""), format_at)?,
        rotate_duration: file
            .log_rotate_duration
            .or(log_file.as_ref().map(|_| Duration::from_secs(24 * 3600))),
        file: log_file,
        rotate_bytes: file.log_rotate_bytes,
        rotate_max_files: file.log_rotate_max_files,
    };

    // The environment's lists replace the files' (already checked when the layer was built).
    let subsystems = |names: Option<Vec<String>>, from_file| match names {
        Some(names) => decode::subsystems(names.iter().map(String::as_str)).unwrap_or(from_file),
        None => from_file,
    };

    Ok(Config {
        vault,
        auto_auth: file.auto_auth,
        cache: file.cache,
        api_proxy: file.api_proxy,
        listeners: file.listeners,
        templates: file.templates,
        template_config: file.template_config.unwrap_or_default(),
        env_templates: file.env_templates,
        exec: file.exec,
        telemetry: file.telemetry,
        pid_file: file.pid_file,
        exit_after_auth: values.exit_after_auth.unwrap_or(file.exit_after_auth),
        disable_idle_connections: subsystems(
            values.disable_idle_connections,
            file.disable_idle_connections,
        ),
        disable_keep_alives: subsystems(values.disable_keep_alives, file.disable_keep_alives),
        log,
        cluster_name: file.cluster_name,
    })
}

fn log_level(text: &str, at: Location) -> Result<LogLevel, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" | "notice" | "" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" | "err" => Ok(LogLevel::Error),
        other => Err(ConfigError::new(
            at,
            "log_level",
            format!("unknown level {other:?}; allowed: trace, debug, info, warn, error"),
        )),
    }
}

fn log_format(text: &str, at: Location) -> Result<LogFormat, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "standard" | "" => Ok(LogFormat::Standard),
        "json" => Ok(LogFormat::Json),
        other => Err(ConfigError::new(
            at,
            "log_format",
            format!("unknown format {other:?}; allowed: standard, json"),
        )),
    }
}
