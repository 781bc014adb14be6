//! Environment and command-line overrides, layered over the merged files with figment.
//!
//! Precedence is flag > environment > file > built-in default. Each layer is parsed and checked
//! on its own first, so an error names the variable or flag that carried the bad value; figment
//! then only stacks already-typed values.

use std::collections::BTreeMap;
use std::time::Duration;

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};

use crate::decode::{self, FileConfig};
use crate::env::Environment;
use crate::error::{ConfigError, Location, Warning};
use crate::scalar;

/// Values given on the command line; `None` leaves the file's (or environment's) value alone.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `-address`.
    pub address: Option<String>,
    /// `-ca-cert`.
    pub ca_cert: Option<String>,
    /// `-ca-path`.
    pub ca_path: Option<String>,
    /// `-client-cert`.
    pub client_cert: Option<String>,
    /// `-client-key`.
    pub client_key: Option<String>,
    /// `-tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `-namespace`.
    pub namespace: Option<String>,
    /// `-tls-skip-verify`.
    pub tls_skip_verify: Option<bool>,
    /// `-log-level`.
    pub log_level: Option<String>,
    /// `-log-format`.
    pub log_format: Option<String>,
    /// `-log-file`.
    pub log_file: Option<String>,
    /// `-exit-after-auth`, only when given explicitly.
    pub exit_after_auth: Option<bool>,
}

/// The overridable settings; one value of this per layer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Layer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_server_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tls_skip_verify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) num_retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exit_after_auth: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disable_idle_connections: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) disable_keep_alives: Option<Vec<String>>,
}

/// The layered result, with where each overridden value came from.
pub(crate) struct Layered {
    pub(crate) values: Layer,
    pub(crate) origins: BTreeMap<&'static str, Location>,
    /// Values taken, but not as written (a `SKIP_VERIFY` that is no boolean).
    pub(crate) warnings: Vec<Warning>,
}

/// Stacks file < environment < flags.
pub(crate) fn layer(
    file: &FileConfig,
    env: &Environment,
    flags: &Overrides,
) -> Result<Layered, ConfigError> {
    let (file_layer, mut origins) = file_layer(file);
    let (env_layer, env_origins, warnings) = env_layer(env)?;
    let (flag_layer, flag_origins) = flag_layer(flags);
    origins.extend(env_origins);
    origins.extend(flag_origins);

    let values: Layer = Figment::new()
        .merge(Serialized::defaults(file_layer))
        .merge(Serialized::defaults(env_layer))
        .merge(Serialized::defaults(flag_layer))
        .extract()
        .map_err(|e| {
            ConfigError::new(Location::nowhere(), "", format!("layering overrides: {e}"))
        })?;
    Ok(Layered {
        values,
        origins,
        warnings,
    })
}

type Origins = BTreeMap<&'static str, Location>;

fn file_layer(file: &FileConfig) -> (Layer, Origins) {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let mut layer = Layer::default();
    if let Some(vault) = &file.vault {
        layer.address = Some(vault.address.clone());
        layer.ca_cert = path(&vault.ca_cert);
        layer.ca_path = path(&vault.ca_path);
        layer.client_cert = path(&vault.client_cert);
        layer.client_key = path(&vault.client_key);
        layer.tls_server_name = vault.tls_server_name.clone();
        layer.namespace = vault.namespace.clone();
        layer.tls_skip_verify = Some(vault.tls_skip_verify);
        layer.num_retries = Some(vault.retry.num_retries);
    }
    let mut origins = Origins::new();
    if let Some((level, location)) = &file.log_level {
        layer.log_level = Some(level.clone());
        origins.insert("log_level", location.clone());
    }
    if let Some((format, location)) = &file.log_format {
        layer.log_format = Some(format.clone());
        origins.insert("log_format", location.clone());
    }
    layer.log_file = file.log_file.clone();
    (layer, origins)
}

/// Variables read by name suffix: `BAO_<suffix>` wins over `VAULT_<suffix>` when present.
const STRING_VARIABLES: &[(&str, &str)] = &[
    ("address", "ADDR"),
    ("ca_cert", "CACERT"),
    ("ca_path", "CAPATH"),
    ("client_cert", "CLIENT_CERT"),
    ("client_key", "CLIENT_KEY"),
    ("tls_server_name", "TLS_SERVER_NAME"),
    ("namespace", "NAMESPACE"),
    ("log_level", "LOG_LEVEL"),
    ("log_format", "LOG_FORMAT"),
];

fn env_layer(env: &Environment) -> Result<(Layer, Origins, Vec<Warning>), ConfigError> {
    let mut layer = Layer::default();
    let mut origins = Origins::new();
    let mut warnings = Vec::new();

    for (field, suffix) in STRING_VARIABLES {
        // A present but empty variable overrides nothing (and still hides its VAULT_ twin).
        let Some((name, value)) = env.bao_or_vault(suffix).filter(|(_, v)| !v.is_empty()) else {
            continue;
        };
        let slot = match *field {
            "address" => &mut layer.address,
            "ca_cert" => &mut layer.ca_cert,
            "ca_path" => &mut layer.ca_path,
            "client_cert" => &mut layer.client_cert,
            "client_key" => &mut layer.client_key,
            "tls_server_name" => &mut layer.tls_server_name,
            "namespace" => &mut layer.namespace,
            "log_level" => &mut layer.log_level,
            _ => &mut layer.log_format,
        };
        *slot = Some(value.to_owned());
        origins.insert(field, Location::env(&name));
    }

    // Our rule: a value Go's ParseBool understands means what it says ("false" is false,
    // unlike OpenBao where any non-empty value means true); anything else non-empty is true.
    if let Some((name, value)) = env
        .bao_or_vault("SKIP_VERIFY")
        .filter(|(_, v)| !v.is_empty())
    {
        let skip = scalar::parse_bool(value);
        if skip.is_none() {
            // It turns verification off: never silently.
            warnings.push(Warning {
                location: Location::env(&name),
                key: "vault.tls_skip_verify".to_owned(),
                message: format!(
                    "{value:?} is not a boolean; read as true, so Vault's TLS certificate is \
                     not verified"
                ),
            });
        }
        layer.tls_skip_verify = Some(skip.unwrap_or(true));
        origins.insert("tls_skip_verify", Location::env(&name));
    }

    if let Some((name, value)) = env
        .bao_or_vault("MAX_RETRIES")
        .filter(|(_, v)| !v.is_empty())
    {
        let retries = value.trim().parse::<i64>().map_err(|_| {
            let message = format!("{value:?} is not a whole number of retries");
            ConfigError::new(Location::env(&name), "vault.retry.num_retries", message)
        })?;
        layer.num_retries = Some(retries);
        origins.insert("num_retries", Location::env(&name));
    }

    if let Some((name, value)) = env
        .bao_or_vault("CLIENT_TIMEOUT")
        .filter(|(_, v)| !v.is_empty())
    {
        // Read as Vault reads it: seconds, or a duration with units.
        let timeout = crate::parse_duration(value.trim())
            .map_err(|why| ConfigError::new(Location::env(&name), "vault.client_timeout", why))?;
        layer.client_timeout = Some(timeout);
        origins.insert("client_timeout", Location::env(&name));
    }

    let lists = [
        ("disable_idle_connections", "AGENT_DISABLE_IDLE_CONNECTIONS"),
        ("disable_keep_alives", "AGENT_DISABLE_KEEP_ALIVES"),
    ];
    for (field, suffix) in lists {
        let Some((name, value)) = env.bao_or_vault(suffix).filter(|(_, v)| !v.is_empty()) else {
            continue;
        };
        // Checked here so that the error names the variable.
        decode::subsystems(value.split(','))
            .map_err(|message| ConfigError::new(Location::env(&name), field, message))?;
        let names = Some(value.split(',').map(|s| s.trim().to_owned()).collect());
        if field == "disable_idle_connections" {
            layer.disable_idle_connections = names;
        } else {
            layer.disable_keep_alives = names;
        }
        origins.insert(field, Location::env(&name));
    }
    Ok((layer, origins, warnings))
}

fn flag_layer(flags: &Overrides) -> (Layer, Origins) {
    let layer = Layer {
        address: flags.address.clone(),
        ca_cert: flags.ca_cert.clone(),
        ca_path: flags.ca_path.clone(),
        client_cert: flags.client_cert.clone(),
        client_key: flags.client_key.clone(),
        tls_server_name: flags.tls_server_name.clone(),
        namespace: flags.namespace.clone(),
        tls_skip_verify: flags.tls_skip_verify,
        log_level: flags.log_level.clone(),
        log_format: flags.log_format.clone(),
        log_file: flags.log_file.clone(),
        exit_after_auth: flags.exit_after_auth,
        ..Layer::default()
    };

    let given = [
        ("address", flags.address.is_some(), "address"),
        ("ca_cert", flags.ca_cert.is_some(), "ca-cert"),
        ("ca_path", flags.ca_path.is_some(), "ca-path"),
        ("client_cert", flags.client_cert.is_some(), "client-cert"),
        ("client_key", flags.client_key.is_some(), "client-key"),
        (
            "tls_server_name",
            flags.tls_server_name.is_some(),
            "tls-server-name",
        ),
        ("namespace", flags.namespace.is_some(), "namespace"),
        (
            "tls_skip_verify",
            flags.tls_skip_verify.is_some(),
            "tls-skip-verify",
        ),
        ("log_level", flags.log_level.is_some(), "log-level"),
        ("log_format", flags.log_format.is_some(), "log-format"),
        ("log_file", flags.log_file.is_some(), "log-file"),
        (
            "exit_after_auth",
            flags.exit_after_auth.is_some(),
            "exit-after-auth",
        ),
    ];
    let origins = given
        .into_iter()
        .filter(|(_, is_given, _)| *is_given)
        .map(|(field, _, flag)| (field, Location::flag(flag)))
        .collect();
    (layer, origins)
}
