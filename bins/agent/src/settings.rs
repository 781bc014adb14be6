//! Turns the loaded configuration into each crate's plain settings. This is the only place
//! that knows both the config file's types and the crates' types.

use std::time::Duration;

use agent_config::{Config, ConfigError, Method, UseAutoAuthToken};
use anyhow::{Context, Result, bail};
use api_proxy::{ListenerKind, ListenerRole, ListenerSettings, TlsSettings, TlsVersion};
use auto_auth::{
    AppRoleSettings, CertSettings, JwtSettings, KubernetesSettings, MethodKind, MethodSettings,
    TokenFileSettings,
};
use token_sink::{DhEncryptor, FileSink, Sink};
use vault_client::{ClientSettings, RetryPolicy};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a client timeout of zero stands for: Vault reads it as "no limit", and a century
/// is that without overflowing any deadline arithmetic.
const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Which client a subsystem gets; each has its own connection pool and User-Agent.
#[derive(Clone, Copy)]
pub(crate) enum Subsystem {
    AutoAuth,
    Proxy,
}

/// The Vault client settings for one subsystem.
pub(crate) fn client(config: &Config, subsystem: Subsystem) -> ClientSettings {
    let vault = &config.vault;
    let (user_agent, retry, no_idle, no_keep_alive) = match subsystem {
        // Logins and renewals back off on their own; the client must not retry under them.
        Subsystem::AutoAuth => (
            format!("Vault Agent Auto-Auth/{VERSION} (vault-agent-rs)"),
            RetryPolicy::NONE,
            config.disable_idle_connections.auto_auth,
            config.disable_keep_alives.auto_auth,
        ),
        Subsystem::Proxy => (
            format!("Vault Agent API Proxy/{VERSION} (vault-agent-rs)"),
            RetryPolicy::new(vault.retry.attempts()),
            config.disable_idle_connections.proxying,
            config.disable_keep_alives.proxying,
        ),
    };

    let timeout = match vault.client_timeout {
        Some(zero) if zero.is_zero() => NO_TIMEOUT,
        Some(timeout) => timeout,
        None => ClientSettings::default().timeout,
    };

    ClientSettings {
        address: vault.address.clone(),
        ca_cert: vault.ca_cert.clone(),
        ca_path: vault.ca_path.clone(),
        client_cert: vault.client_cert.clone(),
        client_key: vault.client_key.clone(),
        tls_skip_verify: vault.tls_skip_verify,
        tls_server_name: vault.tls_server_name.clone(),
        namespace: vault.namespace.clone(),
        retry,
        disable_keep_alives: no_keep_alive,
        disable_idle_connections: no_idle,
        user_agent,
        timeout,
    }
}

/// What a start would refuse although loading and validating accept it: an auth method
/// this agent lacks, a method setting it needs, a listener setting it cannot honour.
/// `-check` reports these without failing, as its verdict is the reference agent's, which
/// only loads and validates.
pub(crate) fn refusals(config: &Config) -> Vec<anyhow::Error> {
    let methods = config
        .auto_auth
        .iter()
        .filter_map(|a| method(&a.method).err());
    let listeners = config.listeners.iter().filter_map(|l| listener(l).err());
    let stanzas = unsupported(config).err();
    stanzas
        .into_iter()
        .chain(methods)
        .chain(listeners)
        .collect()
}

/// Stanzas this agent parses and validates but does not run. Starting anyway would leave an
/// application without the files or the child process it waits for, silently; so a start
/// fails, naming the block. (`-check` only warns: the config itself is valid.)
pub(crate) fn unsupported(config: &Config) -> Result<()> {
    // Templates, env_template and exec (process supervisor mode) are outside every issue
    // so far.
    let unsupported = config
        .templates
        .first()
        .map(|t| (&t.location, "template"))
        .or_else(|| {
            config
                .env_templates
                .first()
                .map(|t| (&t.location, "env_template"))
        })
        .or_else(|| config.exec.as_ref().map(|e| (&e.location, "exec")));
    if let Some((location, what)) = unsupported {
        bail!(
            "{location}: {what}: this agent does not render templates or supervise a child \
             process yet; remove the block or run Vault Agent for it"
        );
    }
    Ok(())
}

/// The auth method's settings.
pub(crate) fn method(method: &Method) -> Result<MethodSettings> {
    let config = &method.config;
    let required = |key: &str| -> Result<String> {
        config
            .string(key)
            .map_err(anyhow::Error::new)?
            .filter(|v| !v.is_empty())
            .with_context(|| missing(method, key))
    };
    let flag = |key: &str, default: bool| -> Result<bool, ConfigError> {
        Ok(config.bool(key)?.unwrap_or(default))
    };

    let kind = match method.kind.as_str() {
        "approle" => {
            let mut s = AppRoleSettings::new(required("role_id_file_path")?);
            s.secret_id_file_path = config
                .string("secret_id_file_path")?
                .filter(|p| !p.is_empty())
                .map(Into::into);
            s.remove_secret_id_file_after_reading =
                flag("remove_secret_id_file_after_reading", true)?;
            s.secret_id_response_wrapping_path = config
                .string("secret_id_response_wrapping_path")?
                .filter(|p| !p.is_empty());
            MethodKind::AppRole(s)
        }
        "token_file" => MethodKind::TokenFile(TokenFileSettings {
            token_file_path: required("token_file_path")?.into(),
        }),
        "jwt" => {
            let mut s = JwtSettings::new(required("path")?, required("role")?);
            s.remove_jwt_after_reading = flag("remove_jwt_after_reading", true)?;
            s.remove_jwt_follows_symlinks = flag("remove_jwt_follows_symlinks", false)?;
            if config.get("jwt_read_period").is_some() {
                tracing::warn!(
                    at = %config.location_of("jwt_read_period"),
                    "jwt_read_period is ignored: the JWT file is read at every login"
                );
            }
            MethodKind::Jwt(s)
        }
        "kubernetes" => {
            let mut s = KubernetesSettings::new(required("role")?);
            if let Some(path) = config.string("token_path")?.filter(|p| !p.is_empty()) {
                s.token_path = path.into();
            }
            MethodKind::Kubernetes(s)
        }
        "cert" => MethodKind::Cert(CertSettings {
            name: config.string("name")?.filter(|n| !n.is_empty()),
            ca_cert: config.string("ca_cert")?.map(Into::into),
            client_cert: config.string("client_cert")?.map(Into::into),
            client_key: config.string("client_key")?.map(Into::into),
            reload: flag("reload", false)?,
        }),
        other => bail!(
            "{}: auto_auth.method: unknown auth method {other:?}; this agent supports approle, \
             cert, jwt, kubernetes and token_file",
            method.location
        ),
    };

    let mut settings = MethodSettings::new(kind);
    settings.mount_path = Some(method.mount_path.clone());
    settings.namespace = method.namespace.clone();
    settings.wrap_ttl = method.wrap_ttl;
    settings.min_backoff = method.effective_min_backoff();
    settings.max_backoff = method.effective_max_backoff();
    settings.exit_on_err = method.exit_on_err;
    Ok(settings)
}

fn missing(method: &Method, key: &str) -> String {
    format!(
        "{}: auto_auth.method.config.{key}: the {} method needs it",
        method.config.location_of(key),
        method.kind
    )
}

/// The sinks of `auto_auth`.
pub(crate) fn sinks(config: &Config) -> Result<Vec<Sink>> {
    let Some(auto_auth) = &config.auto_auth else {
        return Ok(Vec::new());
    };
    let mut sinks = Vec::new();
    for sink in &auto_auth.sinks {
        let file = FileSink::new(&sink.config.path, sink.config.mode)
            .with_context(|| format!("{}: auto_auth.sink", sink.location))?
            .with_owner(sink.config.uid, sink.config.gid);
        let mut built = Sink::new(file);
        if let Some(ttl) = sink.wrap_ttl {
            built = built.with_wrap_ttl(ttl);
        }
        if let Some(dh_path) = &sink.dh_path {
            let aad = sink
                .aad
                .as_ref()
                .map(|a| a.expose().as_bytes().to_vec())
                .unwrap_or_default();
            let encryptor = DhEncryptor::curve25519(dh_path, sink.derive_key, aad)
                .with_context(|| format!("{}: auto_auth.sink.dh_type", sink.location))?;
            built = built.with_encryption(encryptor);
        }
        sinks.push(built);
    }
    Ok(sinks)
}

/// One listener block.
pub(crate) fn listener(listener: &agent_config::Listener) -> Result<ListenerSettings> {
    let kind = match listener.kind {
        agent_config::ListenerKind::Tcp => {
            let tls = if listener.tls_disable {
                None
            } else {
                let (Some(cert), Some(key)) = (&listener.tls_cert_file, &listener.tls_key_file)
                else {
                    bail!(
                        "{}: listener: tls_cert_file and tls_key_file are required unless \
                         tls_disable = true",
                        listener.location
                    );
                };
                let mut tls = TlsSettings::new(cert, key);
                tls.client_ca_file = listener.tls_client_ca_file.clone();
                tls.require_client_cert = listener.tls_require_and_verify_client_cert;
                tls.min_version =
                    tls_version(listener, "tls_min_version", &listener.tls_min_version)?;
                tls.max_version =
                    tls_version(listener, "tls_max_version", &listener.tls_max_version)?;
                Some(tls)
            };
            ListenerKind::Tcp {
                address: listener.address.clone(),
                tls,
            }
        }
        agent_config::ListenerKind::Unix => ListenerKind::Unix {
            path: listener.address.clone().into(),
            mode: listener.socket_mode_bits()?,
            user: listener.socket_user.clone(),
            group: listener.socket_group.clone(),
        },
    };

    let mut settings = ListenerSettings::new(kind);
    settings.role = match listener.role {
        agent_config::ListenerRole::Default => ListenerRole::Default,
        agent_config::ListenerRole::MetricsOnly => ListenerRole::MetricsOnly,
    };
    settings.require_request_header = listener.require_request_header;
    settings.enable_quit = listener.enable_quit;
    settings.max_request_size = usize::try_from(listener.max_request_size).unwrap_or(usize::MAX);
    Ok(settings)
}

fn tls_version(listener: &agent_config::Listener, key: &str, value: &str) -> Result<TlsVersion> {
    match value {
        "tls12" => Ok(TlsVersion::Tls12),
        "tls13" => Ok(TlsVersion::Tls13),
        other => bail!(
            "{}: listener.{key}: {other:?} is not offered; this agent speaks tls12 and tls13 \
             (TLS 1.0 and 1.1 are obsolete)",
            listener.location_of(key)
        ),
    }
}

/// How the proxy uses the auto-auth token.
pub(crate) fn use_auto_auth_token(config: &Config) -> api_proxy::UseAutoAuthToken {
    match config.api_proxy.as_ref().map(|p| p.use_auto_auth_token) {
        Some(UseAutoAuthToken::Enabled) => api_proxy::UseAutoAuthToken::Enabled,
        Some(UseAutoAuthToken::Force) => api_proxy::UseAutoAuthToken::Force,
        Some(UseAutoAuthToken::Disabled) | None => api_proxy::UseAutoAuthToken::Disabled,
    }
}

/// The lease cache's settings.
pub(crate) fn cache(cache: &agent_config::Cache) -> lease_cache::CacheSettings {
    lease_cache::CacheSettings {
        max_entries: usize::try_from(cache.max_entries).unwrap_or(usize::MAX),
        ..lease_cache::CacheSettings::default()
    }
}

/// Metric names and formats.
pub(crate) fn metrics(config: &Config) -> api_proxy::MetricsSettings {
    let telemetry = config.telemetry.as_ref();
    api_proxy::MetricsSettings {
        prefix: telemetry
            .and_then(|t| t.metrics_prefix.clone())
            .unwrap_or_else(|| "vault".to_owned()),
        // Prometheus text is always on: with no telemetry block Vault refuses it, but a
        // local scrape endpoint costs nothing and users expect it to work.
        prometheus: telemetry.is_none_or(|t| !t.prometheus_retention_time.is_zero()),
    }
}

/// How long the drain after a shutdown signal may take.
pub(crate) const DRAIN: Duration = Duration::from_secs(30);
