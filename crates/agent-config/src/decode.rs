//! From the canonical tree of one file to typed stanzas ([`FileConfig`]).
//!
//! Rules that concern one block alone (types, allowed values, required keys, singletons) are
//! checked here; rules across stanzas wait until the files are merged (`validate`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConfigError, Location};
use crate::model::{
    ApiProxy, AutoAuth, Cache, ConfigValue, Consistency, DEFAULT_CACHE_MAX_ENTRIES,
    DEFAULT_LISTENER_ADDRESS, DEFAULT_MAX_REQUEST_SIZE, DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE,
    DEFAULT_SINK_MODE, DEFAULT_VAULT_ADDRESS, EnvTemplate, Exec, KeyLines, Listener, ListenerKind,
    ListenerRole, Method, MethodConfig, Persist, RestartOnSecretChanges, Retry, Sink, SinkConfig,
    Subsystems, Telemetry, Template, TemplateConfig, UseAutoAuthToken, Vault, Wait,
    WhenInconsistent,
};
use crate::reader::{Block, Cx, Reader, Unknown};
use crate::scalar;
use crate::secret::Secret;
use crate::tree::{Entry, IntForm, Value};

/// One file's stanzas, before merging. `None` means "not written in this file".
#[derive(Clone, Debug, Default)]
pub(crate) struct FileConfig {
    pub(crate) vault: Option<Vault>,
    pub(crate) auto_auth: Option<AutoAuth>,
    pub(crate) cache: Option<Cache>,
    pub(crate) api_proxy: Option<ApiProxy>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) templates: Vec<Template>,
    pub(crate) template_config: Option<TemplateConfig>,
    pub(crate) env_templates: Vec<EnvTemplate>,
    pub(crate) exec: Option<Exec>,
    pub(crate) telemetry: Option<Telemetry>,
    pub(crate) pid_file: Option<PathBuf>,
    pub(crate) exit_after_auth: bool,
    pub(crate) disable_idle_connections: Subsystems,
    pub(crate) disable_keep_alives: Subsystems,
    pub(crate) log_level: Option<(String, Location)>,
    pub(crate) log_format: Option<(String, Location)>,
    pub(crate) log_file: Option<String>,
    pub(crate) log_rotate_bytes: Option<u64>,
    pub(crate) log_rotate_duration: Option<Duration>,
    pub(crate) log_rotate_max_files: Option<i64>,
    pub(crate) cluster_name: Option<String>,
}

pub(crate) fn file(cx: &mut Cx<'_>, entries: &[Entry]) -> Result<FileConfig, ConfigError> {
    let mut r = Reader::new(
        cx,
        "",
        Block {
            line: 0,
            labels: &[],
            entries,
        },
    );
    let mut out = FileConfig::default();

    if let Some(block) = r.singleton("vault")? {
        out.vault = Some(vault(cx, block)?);
    }
    if let Some(block) = r.singleton("auto_auth")? {
        out.auto_auth = Some(auto_auth(cx, block)?);
    }
    if let Some(block) = r.singleton("cache")? {
        out.cache = Some(cache(cx, block)?);
    }
    if let Some(block) = r.singleton("api_proxy")? {
        out.api_proxy = Some(api_proxy(cx, block)?);
    }
    for block in r.blocks("listener")? {
        for block in json_labelled(block, LISTENER_BLOCKS) {
            out.listeners.push(listener(cx, block)?);
        }
    }
    for block in r.blocks("template")? {
        out.templates.push(template(cx, block)?);
    }
    if let Some(block) = r.singleton("template_config")? {
        out.template_config = Some(template_config(cx, block)?);
    }
    for block in r.blocks("env_template")? {
        out.env_templates.extend(env_templates(cx, block)?);
    }
    if let Some(block) = r.singleton("exec")? {
        out.exec = Some(exec(cx, block)?);
    }
    if let Some(block) = r.singleton("telemetry")? {
        out.telemetry = Some(telemetry(cx, block)?);
    }

    // Plain top-level settings.
    out.pid_file = r.path("pid_file")?;
    out.exit_after_auth = r.flag("exit_after_auth")?;
    out.disable_idle_connections = r
        .read("disable_idle_connections", subsystems_value)?
        .unwrap_or_default();
    out.disable_keep_alives = r
        .read("disable_keep_alives", subsystems_value)?
        .unwrap_or_default();
    out.log_level = located(&mut r, "log_level")?;
    out.log_format = located(&mut r, "log_format")?;
    out.log_file = r.string("log_file")?;
    out.log_rotate_bytes = r.read("log_rotate_bytes", non_negative)?;
    out.log_rotate_duration = r.duration("log_rotate_duration")?;
    out.log_rotate_max_files = r.int("log_rotate_max_files")?;
    out.cluster_name = r.string("cluster_name")?;

    if r.bool("disable_mlock")? == Some(false) {
        let line = r.last("disable_mlock").map_or(0, |e| e.line);
        let message = "disable_mlock = false is ignored: this agent never locks memory";
        cx.warn(line, "disable_mlock", message);
    }
    r.ignore(&[
        "default_max_request_duration",
        "seal",
        "hsm",
        "kms",
        "entropy",
        "user_lockout",
        "plugin_directory",
    ]);

    r.finish(cx, Unknown::Warn)?;
    Ok(out)
}

fn located(
    r: &mut Reader<'_>,
    key: &'static str,
) -> Result<Option<(String, Location)>, ConfigError> {
    let value = r.string(key)?;
    let location = r
        .last(key)
        .map(|e| Location::new(&r.location().file, e.line));
    Ok(value.zip(location))
}

fn non_negative(value: &Value) -> Result<u64, String> {
    let number = scalar::integer(value)?;
    u64::try_from(number).map_err(|_| format!("{number} is negative; use 0 or more"))
}

/// Reads a subsystem list (`["auto-auth", "caching"]`) of `disable_*` settings.
fn subsystems_value(value: &Value) -> Result<Subsystems, String> {
    let names: Vec<String> = match value {
        Value::List(items) => items
            .iter()
            .map(|n| scalar::string(&n.value))
            .collect::<Result<_, _>>()?,
        other => vec![scalar::string(other)?],
    };
    subsystems(names.iter().map(String::as_str))
}

/// Our reading of the subsystem names; also used for the comma lists of the environment.
pub(crate) fn subsystems<'a>(names: impl Iterator<Item = &'a str>) -> Result<Subsystems, String> {
    let mut out = Subsystems::default();
    for name in names.map(str::trim).filter(|n| !n.is_empty()) {
        match name {
            "auto-auth" => out.auto_auth = true,
            "caching" | "proxying" => out.proxying = true,
            "templating" => out.templating = true,
            other => {
                return Err(format!(
                    "unknown value {other:?}; allowed: auto-auth, caching, proxying, templating"
                ));
            }
        }
    }
    Ok(out)
}

/// Vault's canonical namespace form: no leading slash, one trailing slash; empty stays empty.
pub(crate) fn canonical_namespace(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_start_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.ends_with('/') {
        Some(trimmed.to_owned())
    } else {
        Some(format!("{trimmed}/"))
    }
}

fn vault(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Vault, ConfigError> {
    let mut r = Reader::new(cx, "vault", block);
    no_labels(cx, &r);

    let retry = match r.singleton("retry")? {
        Some(retry_block) => {
            let mut rr = Reader::new(cx, "vault.retry", retry_block);
            let num_retries = rr.int("num_retries")?.unwrap_or(0);
            rr.finish(cx, Unknown::Warn)?;
            Retry { num_retries }
        }
        None => Retry { num_retries: 0 },
    };

    let vault = Vault {
        address: r
            .string("address")?
            .unwrap_or_else(|| DEFAULT_VAULT_ADDRESS.to_owned()),
        ca_cert: r.path("ca_cert")?,
        ca_path: r.path("ca_path")?,
        client_cert: r.path("client_cert")?,
        client_key: r.path("client_key")?,
        tls_skip_verify: r.flag("tls_skip_verify")?,
        tls_server_name: r.string("tls_server_name")?,
        namespace: r
            .string("namespace")?
            .and_then(|ns| canonical_namespace(&ns)),
        retry,
        client_timeout: None,
        location: r.location(),
        lines: KeyLines::default(),
    };
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(Vault { lines, ..vault })
}

fn no_labels(cx: &mut Cx<'_>, r: &Reader<'_>) {
    if let Some(label) = r.block.labels.first() {
        let message = format!("{} takes no label; {label:?} is ignored", r.path);
        cx.warn(r.block.line, &r.path, message);
    }
}

fn auto_auth(cx: &mut Cx<'_>, block: Block<'_>) -> Result<AutoAuth, ConfigError> {
    let mut r = Reader::new(cx, "auto_auth", block);
    no_labels(cx, &r);

    let methods: Vec<Block<'_>> = r
        .blocks("method")?
        .into_iter()
        .flat_map(|b| json_labelled(b, &["config"]))
        .collect();
    let method = match methods.as_slice() {
        [one] => method(cx, *one)?,
        [] => {
            let line = block.line;
            return Err(r.error(
                "method",
                line,
                "exactly one method block is required, found none",
            ));
        }
        [_, second, ..] => {
            let line = second.line;
            return Err(r.error(
                "method",
                line,
                "exactly one method block is allowed, found more",
            ));
        }
    };

    // Sinks: repeated `sink {}` blocks, or wrapped in `sinks { sink {} }`.
    let mut sinks = Vec::new();
    for sink_block in r.blocks("sink")? {
        for sink_block in json_labelled(sink_block, &["config"]) {
            sinks.push(sink(cx, sink_block)?);
        }
    }
    for wrapper in r.blocks("sinks")? {
        let mut wr = Reader::new(cx, "auto_auth.sinks", wrapper);
        for sink_block in wr.blocks("sink")? {
            for sink_block in json_labelled(sink_block, &["config"]) {
                sinks.push(sink(cx, sink_block)?);
            }
        }
        wr.finish(cx, Unknown::Warn)?;
    }

    let enable_reauth_on_new_credentials = r.flag("enable_reauth_on_new_credentials")?;
    let location = r.location();
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(AutoAuth {
        method,
        sinks,
        enable_reauth_on_new_credentials,
        location,
        lines,
    })
}

fn method(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Method, ConfigError> {
    let mut r = Reader::new(cx, "auto_auth.method", block);
    let Some(kind) = r.kind()? else {
        let line = block.line;
        let message = "a method type is required, e.g. method \"approle\" { ... }";
        return Err(r.missing("type", line, message));
    };

    let mount_path = r
        .string("mount_path")?
        .unwrap_or_else(|| format!("auth/{kind}"));
    let mount_path = mount_path.trim_end_matches('/').to_owned();
    let mut config = MethodConfig {
        path: "auto_auth.method.config".to_owned(),
        ..Default::default()
    };
    let config_blocks = r.blocks("config")?;
    if let Some(first) = config_blocks.first() {
        config.lines.block = Some(cx.location(first.line));
    }
    for config_block in config_blocks {
        for entry in config_block.entries {
            let value = config_value(&entry.key, &entry.value.value);
            config
                .lines
                .keys
                .insert(entry.key.clone(), cx.location(entry.line));
            match value {
                Some(value) => config.values.insert(entry.key.clone(), value),
                None => config.values.remove(&entry.key),
            };
        }
    }

    let method = Method {
        mount_path,
        namespace: r
            .string("namespace")?
            .and_then(|ns| canonical_namespace(&ns)),
        wrap_ttl: r.duration("wrap_ttl")?.filter(|d| !d.is_zero()),
        min_backoff: r.duration("min_backoff")?.filter(|d| !d.is_zero()),
        max_backoff: r.duration("max_backoff")?.filter(|d| !d.is_zero()),
        exit_on_err: r.flag("exit_on_err")?,
        config,
        location: r.location(),
        lines: KeyLines::default(),
        kind,
    };
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(Method { lines, ..method })
}

/// Whether a method `config` key holds a credential rather than a setting or a file name.
pub(crate) fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let names_a_file = key.ends_with("_path") || key.ends_with("_file") || key == "client_key";
    let secret_word = ["secret", "password", "token", "key"]
        .iter()
        .any(|w| key.contains(w));
    secret_word && !names_a_file
}

fn config_value(key: &str, value: &Value) -> Option<ConfigValue> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => ConfigValue::Bool(*b),
        // A credential written as a bare number (a PIN, a numeric id) is as secret as a
        // quoted one.
        Value::Int(i, _) if looks_secret(key) => ConfigValue::Secret(Secret::new(i.to_string())),
        Value::Float(f) if looks_secret(key) => ConfigValue::Secret(Secret::new(f.to_string())),
        Value::Int(i, _) => ConfigValue::Int(*i),
        Value::Float(f) => ConfigValue::Float(*f),
        Value::Str(s) if looks_secret(key) => ConfigValue::Secret(Secret::new(s.clone())),
        Value::Str(s) => ConfigValue::String(s.clone()),
        Value::List(items) => ConfigValue::List(
            items
                .iter()
                .filter_map(|n| config_value(key, &n.value))
                .collect(),
        ),
        Value::Object(entries) => ConfigValue::Map(
            entries
                .iter()
                .filter_map(|e| Some((e.key.clone(), config_value(&e.key, &e.value.value)?)))
                .collect::<BTreeMap<_, _>>(),
        ),
    })
}

fn sink(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Sink, ConfigError> {
    let mut r = Reader::new(cx, "auto_auth.sink", block);
    let Some(kind) = r.kind()? else {
        let line = block.line;
        return Err(r.missing(
            "type",
            line,
            "a sink type is required, e.g. sink \"file\" { ... }",
        ));
    };
    if kind != "file" {
        let line = r.last("type").map_or(block.line, |e| e.line);
        return Err(r.error(
            "type",
            line,
            format!("unknown sink type {kind:?}; only \"file\" is supported"),
        ));
    }

    let Some(config_block) = r.singleton("config")? else {
        let line = block.line;
        return Err(r.missing(
            "config",
            line,
            "a file sink needs config = { path = \"...\" }",
        ));
    };
    let mut cr = Reader::new(cx, "auto_auth.sink.config", config_block);
    let Some(path) = cr.path("path")? else {
        let line = config_block.line;
        return Err(cr.missing(
            "path",
            line,
            "is required: the file the token is written to",
        ));
    };
    let config = SinkConfig {
        path,
        mode: cr.mode("mode")?.unwrap_or(DEFAULT_SINK_MODE),
        uid: cr.id("uid")?,
        gid: cr.id("gid")?,
    };
    cr.finish(cx, Unknown::Warn)?;

    // The AAD may come from an environment variable, read now; when named, it replaces `aad`.
    let mut aad = r
        .read("aad", scalar::string)?
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    let aad_env_var = r.string("aad_env_var")?;
    if let Some(name) = &aad_env_var {
        aad = cx.env.get(name).filter(|v| !v.is_empty()).map(Secret::new);
    }

    let sink = Sink {
        kind,
        wrap_ttl: r.duration("wrap_ttl")?.filter(|d| !d.is_zero()),
        dh_type: r.string("dh_type")?,
        dh_path: r.path("dh_path")?,
        derive_key: r.flag("derive_key")?,
        aad,
        aad_env_var,
        config,
        location: r.location(),
        lines: KeyLines::default(),
    };
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(Sink { lines, ..sink })
}

/// `true`, `false` or `"force"` (any case).
pub(crate) fn use_auto_auth_token(value: &Value) -> Result<UseAutoAuthToken, String> {
    if let Value::Str(text) = value
        && text.eq_ignore_ascii_case("force")
    {
        return Ok(UseAutoAuthToken::Force);
    }
    match scalar::boolean(value) {
        Ok(true) => Ok(UseAutoAuthToken::Enabled),
        Ok(false) => Ok(UseAutoAuthToken::Disabled),
        Err(_) => Err("expected true, false or \"force\"".to_owned()),
    }
}

fn cache(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Cache, ConfigError> {
    let mut r = Reader::new(cx, "cache", block);
    no_labels(cx, &r);

    let persist = match r.singleton("persist")?.map(|b| json_labelled(b, &[])) {
        Some(blocks) => match blocks.as_slice() {
            [one] => Some(persist(cx, *one)?),
            [_, second, ..] => {
                let line = second.line;
                let message = "at most one \"persist\" block is allowed here";
                return Err(r.error("persist", line, message));
            }
            [] => None,
        },
        None => None,
    };
    let max_entries = r.read("max_entries", |value| match scalar::integer(value)? {
        n if n > 0 => Ok(n.unsigned_abs()),
        n => Err(format!(
            "{n} is not allowed; the cache needs room for at least 1 entry"
        )),
    })?;

    let cache = Cache {
        use_auto_auth_token: r.read("use_auto_auth_token", use_auto_auth_token)?,
        persist,
        max_entries: max_entries.unwrap_or(DEFAULT_CACHE_MAX_ENTRIES),
        location: r.location(),
        lines: KeyLines::default(),
    };
    r.ignore(&[
        "enforce_consistency",
        "when_inconsistent",
        "cache_static_secrets",
        "disable_caching_dynamic_secrets",
        "static_secret_token_capability_refresh_interval",
        "static_secret_token_capability_refresh_behavior",
    ]);
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(Cache { lines, ..cache })
}

fn persist(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Persist, ConfigError> {
    let mut r = Reader::new(cx, "cache.persist", block);
    let line = block.line;
    let Some(kind) = r.kind()? else {
        return Err(r.missing(
            "type",
            line,
            "a persist type must be given: persist \"kubernetes\" { ... }",
        ));
    };
    if kind != "kubernetes" {
        return Err(r.error(
            "type",
            line,
            format!("unknown persist type {kind:?}; only \"kubernetes\" is supported"),
        ));
    }
    let Some(path) = r.path("path")? else {
        return Err(r.missing("path", line, "is required: the directory of the cache file"));
    };

    let persist = Persist {
        kind,
        path,
        keep_after_import: r.flag("keep_after_import")?,
        exit_on_err: r.flag("exit_on_err")?,
        service_account_token_file: r
            .path("service_account_token_file")?
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE)),
        location: r.location(),
    };
    r.finish(cx, Unknown::Warn)?;
    Ok(persist)
}

fn api_proxy(cx: &mut Cx<'_>, block: Block<'_>) -> Result<ApiProxy, ConfigError> {
    let mut r = Reader::new(cx, "api_proxy", block);
    no_labels(cx, &r);

    let token = r.read("use_auto_auth_token", use_auto_auth_token)?;
    let enforce_consistency = r.read("enforce_consistency", |v| {
        match scalar::string(v)?.to_ascii_lowercase().as_str() {
            "always" => Ok(Consistency::Always),
            "never" | "" => Ok(Consistency::Never),
            other => Err(format!("unknown value {other:?}; allowed: always, never")),
        }
    })?;
    let when_inconsistent = r.read("when_inconsistent", |v| {
        match scalar::string(v)?.to_ascii_lowercase().as_str() {
            "fail" | "" => Ok(WhenInconsistent::Fail),
            "retry" => Ok(WhenInconsistent::Retry),
            "forward" => Ok(WhenInconsistent::Forward),
            other => Err(format!(
                "unknown value {other:?}; allowed: fail, retry, forward"
            )),
        }
    })?;

    let proxy = ApiProxy {
        use_auto_auth_token: token.unwrap_or_default(),
        enforce_consistency: enforce_consistency.unwrap_or_default(),
        when_inconsistent: when_inconsistent.unwrap_or_default(),
        prepend_configured_namespace: r.flag("prepend_configured_namespace")?,
        location: r.location(),
        token_key: if token.is_some() {
            "api_proxy.use_auto_auth_token"
        } else {
            ""
        },
        lines: KeyLines::default(),
    };
    let lines = r.finish(cx, Unknown::Warn)?;
    Ok(ApiProxy { lines, ..proxy })
}

/// Listener keys of Vault's shared server schema that an agent parses and ignores.
const IGNORED_LISTENER_KEYS: &[&str] = &[
    "max_request_duration",
    "http_read_header_timeout",
    "http_read_timeout",
    "http_write_timeout",
    "http_idle_timeout",
    "custom_response_headers",
    "telemetry",
    "profiling",
    "inflight_requests_logging",
    "unauthenticated_metrics_access",
    "tls_prefer_server_cipher_suites",
    "tls_key_exchange_preferences",
    "tls_auto_reload",
    "tls_auto_reload_interval",
    "cluster_address",
    "proxy_api",
];

/// Blocks a listener holds itself, never the JSON form of its type label.
const LISTENER_BLOCKS: &[&str] = &[
    "agent_api",
    "proxy_api",
    "telemetry",
    "profiling",
    "inflight_requests_logging",
    "custom_response_headers",
];

fn listener(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Listener, ConfigError> {
    let mut r = Reader::new(cx, "listener", block);
    let line = block.line;
    let kind = match r.kind()?.as_deref() {
        Some("tcp") => ListenerKind::Tcp,
        Some("unix") => ListenerKind::Unix,
        Some(other) => {
            return Err(r.error(
                "type",
                line,
                format!("unknown listener type {other:?}; allowed: tcp, unix"),
            ));
        }
        None => {
            return Err(r.missing(
                "type",
                line,
                "a listener type is required: \"tcp\" or \"unix\"",
            ));
        }
    };
    let address = match (r.string("address")?, kind) {
        (Some(address), _) => address,
        (None, ListenerKind::Tcp) => DEFAULT_LISTENER_ADDRESS.to_owned(),
        (None, ListenerKind::Unix) => {
            return Err(r.missing(
                "address",
                line,
                "a unix listener needs the socket path as address",
            ));
        }
    };

    let tls_version = |v: &Value| {
        let text = scalar::string(v)?;
        match text.as_str() {
            "tls10" | "tls11" | "tls12" | "tls13" => Ok(text),
            other => Err(format!(
                "unknown TLS version {other:?}; allowed: tls10, tls11, tls12, tls13"
            )),
        }
    };
    let tls_min_version = r.read("tls_min_version", tls_version)?;
    let tls_max_version = r.read("tls_max_version", tls_version)?;
    let role = r.read("role", |v| match scalar::string(v)?.as_str() {
        "default" | "" => Ok(ListenerRole::Default),
        "metrics_only" => Ok(ListenerRole::MetricsOnly),
        other => Err(format!(
            "unknown role {other:?}; allowed: default, metrics_only"
        )),
    })?;
    let cipher_suites = r.read("tls_cipher_suites", |v| -> Result<Vec<String>, String> {
        match v {
            Value::List(items) => items.iter().map(|n| scalar::string(&n.value)).collect(),
            other => Ok(scalar::string(other)?
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()),
        }
    })?;
    let max_request_size = r.read("max_request_size", |v| match scalar::integer(v)? {
        0 => Ok(DEFAULT_MAX_REQUEST_SIZE),
        n if n > 0 => Ok(n.unsigned_abs()),
        n => Err(format!(
            "{n} is not allowed; this agent always limits request bodies (default 32 MiB)"
        )),
    })?;

    let enable_quit = match r.singleton("agent_api")? {
        Some(api_block) => {
            let mut ar = Reader::new(cx, "listener.agent_api", api_block);
            let enable_quit = ar.flag("enable_quit")?;
            ar.finish(cx, Unknown::Warn)?;
            enable_quit
        }
        None => false,
    };

    let socket_mode = r.read("socket_mode", |v| match v {
        // An HCL literal such as 0660 is already octal; keep it as octal text.
        Value::Int(bits, IntForm::HclOctal | IntForm::HclHex) => Ok(format!("0{bits:o}")),
        other => scalar::string(other),
    })?;

    let listener = Listener {
        kind,
        address,
        tls_disable: r.flag("tls_disable")?,
        tls_cert_file: r.path("tls_cert_file")?,
        tls_key_file: r.path("tls_key_file")?,
        tls_min_version: tls_min_version.unwrap_or_else(|| "tls12".to_owned()),
        tls_max_version: tls_max_version.unwrap_or_else(|| "tls13".to_owned()),
        tls_cipher_suites: cipher_suites
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect(),
        tls_require_and_verify_client_cert: r.flag("tls_require_and_verify_client_cert")?,
        tls_client_ca_file: r.path("tls_client_ca_file")?,
        tls_disable_client_certs: r.flag("tls_disable_client_certs")?,
        socket_mode: socket_mode.filter(|s| !s.is_empty()),
        socket_user: r.string("socket_user")?,
        socket_group: r.string("socket_group")?,
        role: role.unwrap_or_default(),
        require_request_header: r.flag("require_request_header")?,
        enable_quit,
        max_request_size: max_request_size.unwrap_or(DEFAULT_MAX_REQUEST_SIZE),
        location: r.location(),
        lines: KeyLines::default(),
    };

    r.ignore(IGNORED_LISTENER_KEYS);
    r.ignore_prefixed(&["x_forwarded_for_", "cors_", "proxy_protocol_", "tls_acme_"]);
    let lines = r.finish(cx, Unknown::Warn)?;
    let listener = Listener { lines, ..listener };
    // Checked once the key lines are known, so that the warning points at the setting.
    if let Err(error) = listener.socket_mode_bits() {
        // The reference accepts any text here and fails only when it creates the socket.
        let message = format!(
            "{}: {}; the socket cannot be created",
            error.key, error.message
        );
        cx.warn(error.location.line, &error.key, message);
    }
    Ok(listener)
}

fn template(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Template, ConfigError> {
    let mut r = Reader::new(cx, "template", block);
    let line = block.line;

    let source = r.path("source")?;
    let contents = r.read("contents", scalar::string)?;
    match (&source, &contents) {
        (Some(_), Some(_)) => {
            return Err(r.error(
                "contents",
                line,
                "'contents' and 'source' cannot be specified together",
            ));
        }
        (None, None) => {
            return Err(r.error(
                "source",
                line,
                "either 'source' or 'contents' must be specified",
            ));
        }
        _ => {}
    }
    let Some(destination) = r.path("destination")? else {
        return Err(r.missing(
            "destination",
            line,
            "is required: the file the template renders to",
        ));
    };

    // The legacy `command` string or list, replaced by `exec { command }` when both are given.
    let mut command = r.strings("command")?.unwrap_or_default();
    let mut command_timeout = r.duration("command_timeout")?;
    if let Some(exec_block) = r.singleton("exec")? {
        let mut er = Reader::new(cx, "template.exec", exec_block);
        if let Some(exec_command) = er.strings("command")? {
            command = exec_command;
        }
        if let Some(timeout) = er.duration("timeout")? {
            command_timeout = Some(timeout);
        }
        er.ignore(&[
            "enabled",
            "env",
            "kill_signal",
            "kill_timeout",
            "reload_signal",
            "splay",
        ]);
        er.finish(cx, Unknown::Reject)?;
    }

    let wait = template_wait(cx, &mut r)?;
    let mut denylist = r.strings("function_denylist")?.unwrap_or_default();
    denylist.extend(r.strings("function_blacklist")?.unwrap_or_default());

    let template = Template {
        source,
        contents,
        destination,
        create_dest_dirs: r.bool("create_dest_dirs")?.unwrap_or(true),
        perms: r.mode("perms")?.filter(|bits| *bits != 0),
        user: r.string("user")?,
        uid: r.id("uid")?,
        group: r.string("group")?,
        gid: r.id("gid")?,
        backup: r.flag("backup")?,
        command: command.into_iter().filter(|c| !c.is_empty()).collect(),
        command_timeout: command_timeout.unwrap_or(Duration::from_secs(30)),
        wait,
        error_on_missing_key: r.flag("error_on_missing_key")?,
        error_fatal: r.bool("error_fatal")?.unwrap_or(true),
        left_delimiter: r.string("left_delimiter")?,
        right_delimiter: r.string("right_delimiter")?,
        function_denylist: denylist,
        sandbox_path: r.path("sandbox_path")?,
        location: r.location(),
        lines: KeyLines::default(),
    };
    let lines = r.finish(cx, Unknown::Reject)?;
    Ok(Template { lines, ..template })
}

/// `wait { min max }` (a repeated block folds, later keys winning) or `wait = "min:max"`.
fn template_wait(cx: &mut Cx<'_>, r: &mut Reader<'_>) -> Result<Option<Wait>, ConfigError> {
    if let Some(entry) = r.last("wait")
        && let Value::Str(text) = &entry.value.value
    {
        return wait_string(text)
            .map(Some)
            .map_err(|m| r.error("wait", entry.line, m));
    }

    let blocks = r.blocks("wait")?;
    if blocks.is_empty() {
        return Ok(None);
    }
    let (mut min, mut max) = (None, None);
    for wait_block in blocks {
        let mut wr = Reader::new(cx, "template.wait", wait_block);
        min = wr.duration("min")?.or(min);
        max = wr.duration("max")?.or(max);
        wr.finish(cx, Unknown::Reject)?;
    }
    let min = min.unwrap_or_default();
    // consul-template's rule: a missing max is four times the min.
    let max = max.unwrap_or(min * 4);
    Ok(Some(Wait { min, max }))
}

fn wait_string(text: &str) -> Result<Wait, String> {
    let (min, max) = match text.split_once(':') {
        Some((min, max)) => (min, Some(max)),
        None => (text, None),
    };
    let min = scalar::duration(&Value::Str(min.trim().to_owned()))?;
    let max = match max {
        Some(max) => scalar::duration(&Value::Str(max.trim().to_owned()))?,
        None => min * 4,
    };
    if max < min {
        return Err(format!("wait {text:?}: max is smaller than min"));
    }
    Ok(Wait { min, max })
}

fn template_config(cx: &mut Cx<'_>, block: Block<'_>) -> Result<TemplateConfig, ConfigError> {
    let mut r = Reader::new(cx, "template_config", block);
    no_labels(cx, &r);
    let defaults = TemplateConfig::default();

    let max_connections = r.read("max_connections_per_host", |v| {
        let n = scalar::integer(v)?;
        u32::try_from(n).map_err(|_| format!("{n} is out of range; use 0 or more"))
    })?;
    let threshold = r.read("lease_renewal_threshold", |v| match v {
        Value::Float(f) if (0.0..=1.0).contains(f) => Ok(*f),
        Value::Int(i @ (0 | 1), _) => Ok(*i as f64),
        Value::Str(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| (0.0..=1.0).contains(f))
            .ok_or_else(|| format!("{s:?} is not a fraction between 0 and 1")),
        _ => Err("expected a fraction between 0 and 1, e.g. 0.9".to_owned()),
    })?;

    let config = TemplateConfig {
        exit_on_retry_failure: r.flag("exit_on_retry_failure")?,
        static_secret_render_interval: r
            .duration("static_secret_render_interval")?
            .filter(|d| !d.is_zero())
            .unwrap_or(defaults.static_secret_render_interval),
        max_connections_per_host: max_connections.unwrap_or(defaults.max_connections_per_host),
        lease_renewal_threshold: threshold.unwrap_or(defaults.lease_renewal_threshold),
    };
    r.finish(cx, Unknown::Warn)?;
    Ok(config)
}

/// Template keys that make no sense for an environment variable.
const FILE_ONLY_TEMPLATE_KEYS: &[&str] = &[
    "destination",
    "backup",
    "command",
    "command_timeout",
    "create_dest_dirs",
    "exec",
    "perms",
    "user",
    "uid",
    "group",
    "gid",
    "wait",
    "sandbox_path",
];

fn env_templates(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Vec<EnvTemplate>, ConfigError> {
    json_labelled(block, &[])
        .into_iter()
        .map(|block| env_template(cx, block))
        .collect()
}

/// JSON cannot write labels: `"listener": {"tcp": {...}}` is its form of `listener "tcp" {...}`
/// (as HCL v1 reads JSON). A block with no label whose entries are all blocks, none of them
/// one the block holds itself (`own_blocks`), is read as one labelled block per entry.
fn json_labelled<'t>(block: Block<'t>, own_blocks: &[&str]) -> Vec<Block<'t>> {
    let is_label = |e: &Entry| {
        matches!(e.value.value, Value::Object(_))
            && e.labels.is_empty()
            && !own_blocks.contains(&e.key.as_str())
    };
    if !block.labels.is_empty() || block.entries.is_empty() || !block.entries.iter().all(is_label) {
        return vec![block];
    }
    block
        .entries
        .iter()
        .filter_map(|entry| match &entry.value.value {
            Value::Object(entries) => Some(Block {
                line: entry.line,
                labels: std::slice::from_ref(&entry.key),
                entries,
            }),
            _ => None,
        })
        .collect()
}

fn env_template(cx: &mut Cx<'_>, block: Block<'_>) -> Result<EnvTemplate, ConfigError> {
    let line = block.line;
    let name = match block.labels {
        [name] if !name.is_empty() => name.clone(),
        [] | [_] => {
            let r = Reader::new(cx, "env_template", block);
            let message =
                "needs exactly one environment variable name: env_template \"NAME\" { ... }";
            return Err(r.error("", line, message));
        }
        [_, extra, ..] => {
            let r = Reader::new(cx, "env_template", block);
            return Err(r.error(
                "",
                line,
                format!("takes one name, found a second one ({extra:?})"),
            ));
        }
    };
    let mut r = Reader::new(cx, format!("env_template[{name}]"), block);

    for entry in block.entries {
        if FILE_ONLY_TEMPLATE_KEYS.contains(&entry.key.as_str()) {
            let message = format!(
                "'{}' is not allowed: an env_template only renders a variable's value",
                entry.key
            );
            return Err(r.error(&entry.key, entry.line, message));
        }
    }

    let source = r.path("source")?;
    let contents = r.read("contents", scalar::string)?;
    match (&source, &contents) {
        (Some(_), Some(_)) => {
            return Err(r.error(
                "contents",
                line,
                "'contents' and 'source' cannot be specified together",
            ));
        }
        (None, None) => {
            return Err(r.error(
                "source",
                line,
                "either 'contents' or 'source' must be specified",
            ));
        }
        _ => {}
    }
    let mut denylist = r.strings("function_denylist")?.unwrap_or_default();
    denylist.extend(r.strings("function_blacklist")?.unwrap_or_default());

    let template = EnvTemplate {
        name,
        contents,
        source,
        error_on_missing_key: r.flag("error_on_missing_key")?,
        error_fatal: r.bool("error_fatal")?.unwrap_or(true),
        left_delimiter: r.string("left_delimiter")?,
        right_delimiter: r.string("right_delimiter")?,
        function_denylist: denylist,
        location: r.location(),
    };
    r.finish(cx, Unknown::Reject)?;
    Ok(template)
}

/// Signals a child may be stopped with, by their usual names.
const SIGNALS: &[&str] = &[
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGIOT",
    "SIGKILL",
    "SIGPIPE",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGVTALRM",
    "SIGWINCH",
    "SIGXCPU",
    "SIGXFSZ",
];

/// `SIGTERM`, `sigterm` and `TERM` all name SIGTERM.
pub(crate) fn signal_name(text: &str) -> Option<&'static str> {
    let upper = text.trim().to_ascii_uppercase();
    let wanted = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    SIGNALS.iter().copied().find(|s| *s == wanted)
}

fn exec(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Exec, ConfigError> {
    let mut r = Reader::new(cx, "exec", block);
    no_labels(cx, &r);
    let line = block.line;

    let command = r.strings("command")?.unwrap_or_default();
    if command
        .first()
        .is_none_or(|program| program.trim().is_empty())
    {
        let line = r.last("command").map_or(line, |e| e.line);
        return Err(r.error(
            "command",
            line,
            "needs a non-empty command, e.g. [\"./my-app\", \"arg\"]",
        ));
    }
    let restart = r.read("restart_on_secret_changes", |v| {
        match scalar::string(v)?.as_str() {
            "always" | "" => Ok(RestartOnSecretChanges::Always),
            "never" => Ok(RestartOnSecretChanges::Never),
            other => Err(format!(
                "unexpected value {other:?}; allowed: always, never"
            )),
        }
    })?;
    let signal = r.read("restart_stop_signal", |v| {
        let text = scalar::string(v)?;
        if text.is_empty() {
            return Ok("SIGTERM");
        }
        signal_name(&text).ok_or_else(|| {
            format!("invalid signal {text:?}; use a signal name such as SIGTERM, SIGINT or SIGHUP")
        })
    })?;

    let exec = Exec {
        command,
        restart_on_secret_changes: restart.unwrap_or_default(),
        restart_stop_signal: signal.unwrap_or("SIGTERM").to_owned(),
        child_process_stdout: r.path("child_process_stdout")?,
        child_process_stderr: r.path("child_process_stderr")?,
        location: r.location(),
    };
    r.finish(cx, Unknown::Reject)?;
    Ok(exec)
}

fn telemetry(cx: &mut Cx<'_>, block: Block<'_>) -> Result<Telemetry, ConfigError> {
    let mut r = Reader::new(cx, "telemetry", block);
    no_labels(cx, &r);

    let telemetry = Telemetry {
        prometheus_retention_time: r
            .duration("prometheus_retention_time")?
            .unwrap_or(Duration::from_secs(24 * 3600)),
        metrics_prefix: r.string("metrics_prefix")?,
        disable_hostname: r.flag("disable_hostname")?,
        enable_hostname_label: r.flag("enable_hostname_label")?,
        statsite_address: r.string("statsite_address")?,
        statsd_address: r.string("statsd_address")?,
        dogstatsd_addr: r.string("dogstatsd_addr")?,
        dogstatsd_tags: r.strings("dogstatsd_tags")?.unwrap_or_default(),
        usage_gauge_period: r
            .duration("usage_gauge_period")?
            .unwrap_or(Duration::from_secs(600)),
        maximum_gauge_cardinality: r.int("maximum_gauge_cardinality")?.unwrap_or(500),
        filter_default: r.bool("filter_default")?.unwrap_or(true),
        prefix_filter: r.strings("prefix_filter")?.unwrap_or_default(),
        location: r.location(),
    };
    r.ignore(&[
        "lease_metrics_epsilon",
        "num_lease_metrics_buckets",
        "add_lease_metrics_namespace_labels",
    ]);
    r.ignore_prefixed(&["circonus_", "stackdriver_"]);
    r.finish(cx, Unknown::Warn)?;
    Ok(telemetry)
}
