//! Rules across stanzas, checked once every file is merged and every override applied.
//!
//! The order follows the reference agent's, so that a config breaking several rules is
//! reported by the same rule first.

use std::collections::BTreeMap;

use crate::error::{ConfigError, Location};
use crate::model::{ApiProxy, Config, KeyLines, Sink, UseAutoAuthToken};

/// Checks `config` and settles where `use_auto_auth_token` lives (`api_proxy`, or the legacy
/// `cache` key copied into it). `first_file` is blamed for rules about the whole config.
pub(crate) fn validate(config: &mut Config, first_file: &Location) -> Result<(), ConfigError> {
    settle_auto_auth_token(config)?;

    if config.auto_auth.is_none() && config.cache.is_none() && config.listeners.is_empty() {
        let message =
            "no auto_auth, cache or listener block found; the agent would have nothing to do";
        return Err(ConfigError::new(first_file.clone(), "", message));
    }

    let has_templates = !config.templates.is_empty() || !config.env_templates.is_empty();
    if let Some(cache) = &config.cache
        && config.listeners.is_empty()
        && !has_templates
    {
        let message =
            "the cache serves listeners and templates; define at least one listener or template";
        return Err(ConfigError::new(cache.location.clone(), "cache", message));
    }
    if let Some(proxy) = &config.api_proxy
        && config.listeners.is_empty()
    {
        let key = if proxy.token_key.is_empty() {
            "api_proxy"
        } else {
            proxy.token_key
        };
        let message = "the API proxy answers on listeners; define at least one listener";
        let at = proxy.lines.at("use_auto_auth_token");
        return Err(ConfigError::new(at, key, message));
    }

    auto_auth_token_rules(config)?;
    auto_auth_rules(config, has_templates)?;
    env_template_rules(config)?;
    listener_rules(config)?;
    vault_rules(config)
}

/// `cache.use_auto_auth_token` is the legacy spelling of `api_proxy.use_auto_auth_token`.
fn settle_auto_auth_token(config: &mut Config) -> Result<(), ConfigError> {
    let Some(cache) = &config.cache else {
        return Ok(());
    };
    let Some(token) = cache.use_auto_auth_token else {
        return Ok(());
    };
    let cache_at = cache.lines.at("use_auto_auth_token");

    match &mut config.api_proxy {
        Some(proxy) if !proxy.token_key.is_empty() => {
            let proxy_at = proxy.lines.at("use_auto_auth_token");
            let message = format!(
                "is also set as api_proxy.use_auto_auth_token ({proxy_at}); keep only the api_proxy one"
            );
            Err(ConfigError::new(
                cache_at,
                "cache.use_auto_auth_token",
                message,
            ))
        }
        Some(proxy) => {
            proxy.use_auto_auth_token = token;
            proxy.token_key = "cache.use_auto_auth_token";
            proxy
                .lines
                .keys
                .insert("use_auto_auth_token".to_owned(), cache_at);
            Ok(())
        }
        None => {
            let mut lines = KeyLines {
                block: Some(cache_at.clone()),
                keys: BTreeMap::new(),
            };
            lines
                .keys
                .insert("use_auto_auth_token".to_owned(), cache_at.clone());
            config.api_proxy = Some(ApiProxy {
                use_auto_auth_token: token,
                enforce_consistency: Default::default(),
                when_inconsistent: Default::default(),
                prepend_configured_namespace: false,
                location: cache_at,
                token_key: "cache.use_auto_auth_token",
                lines,
            });
            Ok(())
        }
    }
}

fn describe(token: UseAutoAuthToken) -> &'static str {
    match token {
        UseAutoAuthToken::Force => "\"force\"",
        _ => "true",
    }
}

fn auto_auth_token_rules(config: &Config) -> Result<(), ConfigError> {
    let Some(proxy) = &config.api_proxy else {
        return Ok(());
    };
    if !proxy.use_auto_auth_token.is_used() {
        return Ok(());
    }
    let token_at = proxy.lines.at("use_auto_auth_token");
    let value = describe(proxy.use_auto_auth_token);

    let Some(auto_auth) = &config.auto_auth else {
        let message = format!("is {value} but there is no auto_auth block to get a token from");
        return Err(ConfigError::new(token_at, proxy.token_key, message));
    };

    // Case B06: a wrapped login yields a wrapping token, not one the proxy can send.
    if auto_auth.method.wrap_ttl.is_some() {
        let message = format!(
            "cannot be used together with {} ({token_at}); the proxy needs the raw token — \
             move wrap_ttl to the sink",
            proxy.token_key
        );
        let at = auto_auth.method.lines.at("wrap_ttl");
        return Err(ConfigError::new(at, "auto_auth.method.wrap_ttl", message));
    }
    Ok(())
}

fn auto_auth_rules(config: &Config, has_templates: bool) -> Result<(), ConfigError> {
    let Some(auto_auth) = &config.auto_auth else {
        return Ok(());
    };
    let method = &auto_auth.method;
    let wrap_at = method.lines.at("wrap_ttl");

    // Our rule (case B06): templates and env_templates also need the raw token.
    if method.wrap_ttl.is_some() && has_templates {
        let (what, at) = match (config.templates.first(), config.env_templates.first()) {
            (Some(template), _) => ("template", template.location.clone()),
            (None, Some(env)) => ("env_template", env.location.clone()),
            (None, None) => ("template", Location::nowhere()),
        };
        let message = format!(
            "cannot be used together with {what} ({at}); templates need the raw token — \
             move wrap_ttl to the sink"
        );
        return Err(ConfigError::new(
            wrap_at,
            "auto_auth.method.wrap_ttl",
            message,
        ));
    }

    let token_used = config
        .api_proxy
        .as_ref()
        .is_some_and(|p| p.use_auto_auth_token.is_used());
    if auto_auth.sinks.is_empty() && !token_used && !has_templates {
        let message = "the token would go nowhere: add a sink, a template or an env_template, \
                       or set api_proxy.use_auto_auth_token = true";
        return Err(ConfigError::new(
            auto_auth.location.clone(),
            "auto_auth",
            message,
        ));
    }

    if method.wrap_ttl.is_some() {
        if let Some(sink) = auto_auth.sinks.iter().find(|s| s.wrap_ttl.is_some()) {
            let message = format!(
                "cannot wrap again: auto_auth.method.wrap_ttl ({wrap_at}) already wraps the login; \
                 set wrap_ttl in one place"
            );
            return Err(ConfigError::new(
                sink.lines.at("wrap_ttl"),
                "auto_auth.sink.wrap_ttl",
                message,
            ));
        }
        if auto_auth.sinks.len() != 1 {
            let count = auto_auth.sinks.len();
            let message = format!(
                "a wrapped login needs exactly one sink to hold the wrapped response, found {count}"
            );
            return Err(ConfigError::new(
                wrap_at,
                "auto_auth.method.wrap_ttl",
                message,
            ));
        }
    }

    for sink in &auto_auth.sinks {
        sink_rules(sink)?;
    }

    if method.effective_min_backoff() >= method.effective_max_backoff() {
        let (min, max) = (
            method.effective_min_backoff(),
            method.effective_max_backoff(),
        );
        let message = format!("{min:?} must be less than max_backoff ({max:?})");
        let at = method.lines.at("min_backoff");
        return Err(ConfigError::new(
            at,
            "auto_auth.method.min_backoff",
            message,
        ));
    }
    Ok(())
}

fn sink_rules(sink: &Sink) -> Result<(), ConfigError> {
    let error = |key: &str, message: &str| {
        ConfigError::new(sink.lines.at(key), format!("auto_auth.sink.{key}"), message)
    };
    if let Some(dh_type) = &sink.dh_type
        && dh_type != "curve25519"
    {
        let message = format!("unknown value {dh_type:?}; only \"curve25519\" is supported");
        return Err(error("dh_type", &message));
    }
    match (&sink.dh_type, &sink.dh_path) {
        (Some(_), None) => return Err(error("dh_type", "needs dh_path: set both or neither")),
        (None, Some(_)) => return Err(error("dh_path", "needs dh_type: set both or neither")),
        _ => {}
    }
    if sink.dh_type.is_none() {
        if sink.aad.is_some() {
            let key = if sink.aad_env_var.is_some() {
                "aad_env_var"
            } else {
                "aad"
            };
            return Err(error(
                key,
                "additional authenticated data only applies with dh_type",
            ));
        }
        if sink.derive_key {
            return Err(error("derive_key", "only applies with dh_type"));
        }
    }
    Ok(())
}

fn env_template_rules(config: &Config) -> Result<(), ConfigError> {
    let first = config.env_templates.first();
    match (first, &config.exec) {
        (Some(env), None) => {
            let message = "env_template entries need a top-level exec block to run the program";
            return Err(ConfigError::new(
                env.location.clone(),
                format!("env_template[{}]", env.name),
                message,
            ));
        }
        (None, Some(exec)) => {
            let message = "an exec block needs at least one env_template to supply its environment";
            return Err(ConfigError::new(exec.location.clone(), "exec", message));
        }
        _ => {}
    }
    let Some(first) = first else {
        return Ok(());
    };

    if let Some(template) = config.templates.first() {
        let message = format!(
            "cannot be used together with env_template entries ({}); use one or the other",
            first.location
        );
        return Err(ConfigError::new(
            template.location.clone(),
            "template",
            message,
        ));
    }
    if let Some(proxy) = &config.api_proxy {
        let message = format!(
            "cannot be used together with env_template entries ({})",
            first.location
        );
        let key = if proxy.token_key.is_empty() {
            "api_proxy"
        } else {
            proxy.token_key
        };
        return Err(ConfigError::new(proxy.location.clone(), key, message));
    }

    let mut seen: BTreeMap<&str, &Location> = BTreeMap::new();
    for env in &config.env_templates {
        if let Some(earlier) = seen.insert(&env.name, &env.location) {
            let message =
                format!("duplicate environment variable name (first defined at {earlier})");
            return Err(ConfigError::new(
                env.location.clone(),
                format!("env_template[{}]", env.name),
                message,
            ));
        }
    }
    Ok(())
}

fn listener_rules(config: &Config) -> Result<(), ConfigError> {
    for listener in &config.listeners {
        if listener.tls_disable {
            continue;
        }
        for key in ["tls_cert_file", "tls_key_file"] {
            let missing = match key {
                "tls_cert_file" => listener.tls_cert_file.is_none(),
                _ => listener.tls_key_file.is_none(),
            };
            if missing {
                let message = format!(
                    "is required while TLS is on; set tls_cert_file and tls_key_file, \
                     or tls_disable = true for plain HTTP (listener at {})",
                    listener.address
                );
                return Err(ConfigError::new(
                    listener.lines.at(key),
                    format!("listener.{key}"),
                    message,
                ));
            }
        }
    }
    Ok(())
}

fn vault_rules(config: &Config) -> Result<(), ConfigError> {
    let vault = &config.vault;
    match (&vault.client_cert, &vault.client_key) {
        (Some(_), None) => Err(ConfigError::new(
            vault.lines.at("client_cert"),
            "vault.client_cert",
            "needs vault.client_key as well: set both or neither",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            vault.lines.at("client_key"),
            "vault.client_key",
            "needs vault.client_cert as well: set both or neither",
        )),
        _ => Ok(()),
    }
}
