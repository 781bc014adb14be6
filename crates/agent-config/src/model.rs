//! The typed configuration handed to the binary.
//!
//! Every stanza keeps the [`Location`] it was written at, and privately the location of each of
//! its keys, so that rules checked after merging can point at the exact line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConfigError, Location};
use crate::scalar;
use crate::secret::Secret;
use crate::tree::{IntForm, Value};

/// Vault's address when neither the file, the environment nor a flag names one.
pub const DEFAULT_VAULT_ADDRESS: &str = "https://127.0.0.1:8200";
/// A TCP listener's address when the block names none.
pub const DEFAULT_LISTENER_ADDRESS: &str = "127.0.0.1:8200";
/// Largest request body a listener accepts unless `max_request_size` says otherwise.
pub const DEFAULT_MAX_REQUEST_SIZE: u64 = 32 * 1024 * 1024;
/// Entries the lease cache holds unless `cache { max_entries }` says otherwise.
pub const DEFAULT_CACHE_MAX_ENTRIES: u64 = 100_000;
/// Retries of proxied and template requests when `num_retries` is absent or 0.
pub const DEFAULT_NUM_RETRIES: u32 = 12;
/// File sink mode when `config.mode` is absent.
pub const DEFAULT_SINK_MODE: u32 = 0o640;
/// Where the persistent cache reads the Kubernetes service-account token by default.
pub const DEFAULT_SERVICE_ACCOUNT_TOKEN_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Line numbers of the keys of one block, for errors raised after decoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyLines {
    pub(crate) block: Option<Location>,
    pub(crate) keys: BTreeMap<String, Location>,
}

impl KeyLines {
    /// Where `key` was written, or the block itself when the key was not.
    pub(crate) fn at(&self, key: &str) -> Location {
        self.keys
            .get(key)
            .or(self.block.as_ref())
            .cloned()
            .unwrap_or_else(Location::nowhere)
    }
}

/// Everything the agent was configured with, merged and validated.
#[derive(Clone, Debug)]
pub struct Config {
    /// How to reach Vault (`vault {}`), with environment and flag overrides applied.
    pub vault: Vault,
    /// Automatic authentication (`auto_auth {}`), if configured.
    pub auto_auth: Option<AutoAuth>,
    /// The lease cache (`cache {}`); present, even empty, means caching is on.
    pub cache: Option<Cache>,
    /// How listeners forward requests (`api_proxy {}`, or the legacy `cache.use_auto_auth_token`).
    pub api_proxy: Option<ApiProxy>,
    /// Every `listener` block of every file, in order.
    pub listeners: Vec<Listener>,
    /// Every `template` block of every file, in order.
    pub templates: Vec<Template>,
    /// Template engine settings (`template_config {}`), defaults when absent.
    pub template_config: TemplateConfig,
    /// Every `env_template` block, in order.
    pub env_templates: Vec<EnvTemplate>,
    /// The supervised child process (`exec {}`), if configured.
    pub exec: Option<Exec>,
    /// Metrics settings (`telemetry {}`), if configured.
    pub telemetry: Option<Telemetry>,
    /// Where to write the process id (`pid_file`).
    pub pid_file: Option<PathBuf>,
    /// Exit once every sink has a token and every template has rendered (`exit_after_auth`).
    pub exit_after_auth: bool,
    /// Subsystems whose HTTP clients keep no idle connections (`disable_idle_connections`).
    pub disable_idle_connections: Subsystems,
    /// Subsystems whose HTTP clients disable keep-alive (`disable_keep_alives`).
    pub disable_keep_alives: Subsystems,
    /// Log settings (`log_*` keys, environment and flags).
    pub log: Logging,
    /// `cluster_name`, used only as a telemetry label.
    pub cluster_name: Option<String>,
}

/// Which subsystems a `disable_idle_connections` / `disable_keep_alives` list names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subsystems {
    /// `auto-auth`: the login and sink-wrapping client.
    pub auto_auth: bool,
    /// `caching` or `proxying` (synonyms): the client of the API proxy and lease cache.
    pub proxying: bool,
    /// `templating`: the template engine's client.
    pub templating: bool,
}

/// The `vault {}` stanza.
#[derive(Clone, Debug)]
pub struct Vault {
    /// Server URL.
    pub address: String,
    /// PEM CA bundle used to verify the server (wins over `ca_path`).
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificates.
    pub ca_path: Option<PathBuf>,
    /// Client certificate for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Client key for mutual TLS.
    pub client_key: Option<PathBuf>,
    /// Skip verification of the server certificate.
    pub tls_skip_verify: bool,
    /// Server name for SNI and verification.
    pub tls_server_name: Option<String>,
    /// Namespace of proxied and template requests (canonical form `ns1/`), kept apart from
    /// `auto_auth.method.namespace` (case B16).
    pub namespace: Option<String>,
    /// Retries of proxied and template requests.
    pub retry: Retry,
    /// How long one request to Vault may take, from `VAULT_CLIENT_TIMEOUT` /
    /// `BAO_CLIENT_TIMEOUT` only (the file has no such key); `None` is the client's default
    /// (60 s) and zero means no limit, as in Vault.
    pub client_timeout: Option<Duration>,
    /// Where the stanza was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

/// `vault { retry { num_retries } }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The value as written: 0 means the default (12), a negative value disables retries.
    pub num_retries: i64,
}

impl Retry {
    /// Retries to attempt: 12 when unset or 0, 0 (disabled) when negative.
    pub fn attempts(&self) -> u32 {
        match self.num_retries {
            0 => DEFAULT_NUM_RETRIES,
            n if n < 0 => 0,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        }
    }
}

/// The `auto_auth {}` stanza.
#[derive(Clone, Debug)]
pub struct AutoAuth {
    /// The one auth method.
    pub method: Method,
    /// Where tokens are written; may be empty.
    pub sinks: Vec<Sink>,
    /// Re-authenticate as soon as credentials change (a test-only knob of the reference).
    pub enable_reauth_on_new_credentials: bool,
    /// Where the stanza was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

/// `auto_auth { method "<type>" {} }`.
#[derive(Clone, Debug)]
pub struct Method {
    /// Method type, lower-cased (`approle`, `kubernetes`, ...).
    pub kind: String,
    /// Mount path without a trailing slash; `auth/<type>` when not written.
    pub mount_path: String,
    /// Namespace to log in to, canonical form (`ns1/`). Our rule (case B16): login uses this
    /// namespace when set, else `vault.namespace`; proxied and template requests always use
    /// `vault.namespace`.
    pub namespace: Option<String>,
    /// Response-wrap the login itself.
    pub wrap_ttl: Option<Duration>,
    /// First retry delay after a failed login, as written.
    pub min_backoff: Option<Duration>,
    /// Largest retry delay, as written.
    pub max_backoff: Option<Duration>,
    /// Exit on the first failed login.
    pub exit_on_err: bool,
    /// Method-specific settings.
    pub config: MethodConfig,
    /// Where the method block was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

impl Method {
    /// `min_backoff`, or 1 s.
    pub fn effective_min_backoff(&self) -> Duration {
        self.min_backoff.unwrap_or(Duration::from_secs(1))
    }

    /// `max_backoff`, or 5 minutes.
    pub fn effective_max_backoff(&self) -> Duration {
        self.max_backoff.unwrap_or(Duration::from_secs(300))
    }
}

/// One value of a method's `config` map.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// A string whose key does not look secret.
    String(String),
    /// A string whose key looks secret (contains `secret`, `password`, `token` or `key`, and is
    /// not a `_path`/`_file` key).
    Secret(Secret),
    /// A list.
    List(Vec<ConfigValue>),
    /// A nested map.
    Map(BTreeMap<String, ConfigValue>),
}

/// A method's `config` map with weakly typed accessors whose errors name the key and its line.
#[derive(Clone, Debug, Default)]
pub struct MethodConfig {
    /// The values, by key.
    pub values: BTreeMap<String, ConfigValue>,
    pub(crate) path: String,
    pub(crate) lines: KeyLines,
}

impl MethodConfig {
    /// The raw value of `key`.
    pub fn get(&self, key: &str) -> Option<&ConfigValue> {
        self.values.get(key)
    }

    /// A non-secret string (numbers and booleans in their text form); secrets are only
    /// available through [`MethodConfig::secret`].
    pub fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(ConfigValue::Secret(_)) => Err(self.error(key, "holds a secret; read it as one")),
            Some(value) => self.scalar(key, value, scalar::string).map(Some),
        }
    }

    /// A string read as a secret, whether or not its key looks secret.
    pub fn secret(&self, key: &str) -> Result<Option<Secret>, ConfigError> {
        match self.values.get(key) {
            None => Ok(None),
            Some(ConfigValue::Secret(secret)) => Ok(Some(secret.clone())),
            Some(value) => self
                .scalar(key, value, scalar::string)
                .map(|s| Some(Secret::new(s))),
        }
    }

    /// A boolean (`true`, `"true"`, `"1"`, `"t"`, ...).
    pub fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        self.values
            .get(key)
            .map(|v| self.scalar(key, v, scalar::boolean))
            .transpose()
    }

    /// A duration (seconds, or Go syntax such as `"1m30s"`).
    pub fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        self.values
            .get(key)
            .map(|v| self.scalar(key, v, scalar::duration))
            .transpose()
    }

    /// A whole number.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        self.values
            .get(key)
            .map(|v| self.scalar(key, v, scalar::integer))
            .transpose()
    }

    /// Where `key` was written (the `config` block when it was not).
    pub fn location_of(&self, key: &str) -> Location {
        self.lines.at(key)
    }

    fn scalar<T>(
        &self,
        key: &str,
        value: &ConfigValue,
        read: fn(&Value) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let raw = match value {
            ConfigValue::Bool(b) => Value::Bool(*b),
            ConfigValue::Int(i) => Value::Int(*i, IntForm::Json),
            ConfigValue::Float(f) => Value::Float(*f),
            ConfigValue::String(s) => Value::Str(s.clone()),
            ConfigValue::Secret(s) => Value::Str(s.expose().to_owned()),
            ConfigValue::List(_) => Value::List(Vec::new()),
            ConfigValue::Map(_) => Value::Object(Vec::new()),
        };
        // Messages of the scalar readers quote the value, which must not happen for secrets.
        read(&raw).map_err(|message| match value {
            ConfigValue::Secret(_) => self.error(key, "has the wrong type"),
            _ => self.error(key, &message),
        })
    }

    fn error(&self, key: &str, message: &str) -> ConfigError {
        ConfigError::new(self.lines.at(key), format!("{}.{key}", self.path), message)
    }
}

/// `auto_auth { sink "file" {} }`.
#[derive(Clone, Debug)]
pub struct Sink {
    /// Sink type, lower-cased; only `file` is accepted.
    pub kind: String,
    /// Response-wrap the token before writing it.
    pub wrap_ttl: Option<Duration>,
    /// Encrypt for a consumer's public key: only `curve25519`.
    pub dh_type: Option<String>,
    /// File holding the consumer's public key.
    pub dh_path: Option<PathBuf>,
    /// Derive the encryption key with HKDF instead of using the shared secret directly.
    pub derive_key: bool,
    /// Additional authenticated data: `aad`, or the value of `aad_env_var` read at load time.
    pub aad: Option<Secret>,
    /// Name of the environment variable `aad` was read from.
    pub aad_env_var: Option<String>,
    /// `config = { path, mode, uid, gid }`.
    pub config: SinkConfig,
    /// Where the sink block was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

/// A file sink's `config` map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    /// File the token is written to.
    pub path: PathBuf,
    /// Permission bits of the file, at most 0o777 (default 0o640).
    pub mode: u32,
    /// Owner to give the file, when set.
    pub uid: Option<u32>,
    /// Group to give the file, when set.
    pub gid: Option<u32>,
}

/// How listeners use the auto-auth token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UseAutoAuthToken {
    /// Clients must send their own token.
    #[default]
    Disabled,
    /// Requests without a token are sent with the auto-auth token.
    Enabled,
    /// Every request is sent with the auto-auth token, replacing the client's.
    Force,
}

impl UseAutoAuthToken {
    /// Whether the auto-auth token is used at all.
    pub fn is_used(self) -> bool {
        self != UseAutoAuthToken::Disabled
    }
}

/// The `cache {}` stanza.
#[derive(Clone, Debug)]
pub struct Cache {
    /// Legacy place of `api_proxy.use_auto_auth_token`, as written (already copied into
    /// [`Config::api_proxy`] when that stanza was absent).
    pub use_auto_auth_token: Option<UseAutoAuthToken>,
    /// Persistent cache (`persist "kubernetes" {}`).
    pub persist: Option<Persist>,
    /// Most entries the cache holds (our extension, default 100000, never 0).
    pub max_entries: u64,
    /// Where the stanza was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

/// `cache { persist "kubernetes" {} }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Persist {
    /// Persistence type; only `kubernetes`.
    pub kind: String,
    /// Directory of the cache file.
    pub path: PathBuf,
    /// Keep using the file after restoring from it.
    pub keep_after_import: bool,
    /// Exit when restoring fails.
    pub exit_on_err: bool,
    /// Service-account token used as additional authenticated data.
    pub service_account_token_file: PathBuf,
    /// Where the block was written.
    pub location: Location,
}

/// The `api_proxy {}` stanza.
#[derive(Clone, Debug)]
pub struct ApiProxy {
    /// Whether and how requests get the auto-auth token.
    pub use_auto_auth_token: UseAutoAuthToken,
    /// `enforce_consistency`: track and require `X-Vault-Index` (Vault Enterprise).
    pub enforce_consistency: Consistency,
    /// `when_inconsistent`: what to do on HTTP 412.
    pub when_inconsistent: WhenInconsistent,
    /// Prefix `vault.namespace` to the namespace of each request.
    pub prepend_configured_namespace: bool,
    /// Where the stanza (or the legacy cache key) was written.
    pub location: Location,
    /// `api_proxy.use_auto_auth_token` or `cache.use_auto_auth_token`: where the setting lives.
    pub(crate) token_key: &'static str,
    pub(crate) lines: KeyLines,
}

/// `api_proxy.enforce_consistency`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Do nothing special.
    #[default]
    Never,
    /// Replay the newest index states on later requests.
    Always,
}

/// `api_proxy.when_inconsistent`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhenInconsistent {
    /// Return the 412 to the client.
    #[default]
    Fail,
    /// Retry the request.
    Retry,
    /// Ask Vault to forward to the active node.
    Forward,
}

/// Listener transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// `listener "tcp"`.
    Tcp,
    /// `listener "unix"`.
    Unix,
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListenerRole {
    /// The API proxy and the agent API.
    #[default]
    Default,
    /// Only `/agent/v1/metrics`.
    MetricsOnly,
}

/// A `listener "tcp" | "unix" {}` block.
#[derive(Clone, Debug)]
pub struct Listener {
    /// TCP or Unix socket.
    pub kind: ListenerKind,
    /// `host:port`, or the socket path.
    pub address: String,
    /// Serve plain HTTP.
    pub tls_disable: bool,
    /// Server certificate (PEM).
    pub tls_cert_file: Option<PathBuf>,
    /// Server key (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// Lowest TLS version: `tls12` unless set (`tls10` to `tls13`).
    pub tls_min_version: String,
    /// Highest TLS version: `tls13` unless set.
    pub tls_max_version: String,
    /// Allowed cipher suites by name; empty means the library's defaults.
    pub tls_cipher_suites: Vec<String>,
    /// Require and verify a client certificate.
    pub tls_require_and_verify_client_cert: bool,
    /// CA bundle for client certificates.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Do not ask for client certificates at all.
    pub tls_disable_client_certs: bool,
    /// Socket file mode as written (octal text, applied only with user and group).
    pub socket_mode: Option<String>,
    /// Socket file owner.
    pub socket_user: Option<String>,
    /// Socket file group.
    pub socket_group: Option<String>,
    /// What the listener serves.
    pub role: ListenerRole,
    /// Require `X-Vault-Request: true` on every request.
    pub require_request_header: bool,
    /// `agent_api { enable_quit }`: allow `POST /agent/v1/quit`.
    pub enable_quit: bool,
    /// Largest request body accepted, in bytes (default 32 MiB).
    pub max_request_size: u64,
    /// Where the block was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

impl Listener {
    /// `socket_mode` as permission bits, or an error naming the key when it is not octal.
    pub fn socket_mode_bits(&self) -> Result<Option<u32>, ConfigError> {
        let Some(text) = &self.socket_mode else {
            return Ok(None);
        };
        match scalar::parse_octal(text).and_then(|bits| u32::try_from(bits).ok()) {
            Some(bits) if bits <= 0o777 => Ok(Some(bits)),
            _ => Err(ConfigError::new(
                self.lines.at("socket_mode"),
                "listener.socket_mode",
                format!("{text:?} is not an octal mode between 0 and 0777"),
            )),
        }
    }
}

/// A `template {}` block.
#[derive(Clone, Debug)]
pub struct Template {
    /// Template file to render.
    pub source: Option<PathBuf>,
    /// Inline template text.
    pub contents: Option<String>,
    /// Where the rendered file goes.
    pub destination: PathBuf,
    /// Create missing parent directories (default true).
    pub create_dest_dirs: bool,
    /// Permission bits of the rendered file; `None` keeps an existing file's mode (else 0o644).
    pub perms: Option<u32>,
    /// Owner by name.
    pub user: Option<String>,
    /// Owner by id.
    pub uid: Option<u32>,
    /// Group by name.
    pub group: Option<String>,
    /// Group by id.
    pub gid: Option<u32>,
    /// Keep the previous file as `<destination>.bak`.
    pub backup: bool,
    /// Command run after each render (legacy `command`, or `exec { command }`).
    pub command: Vec<String>,
    /// How long the command may run (default 30 s).
    pub command_timeout: Duration,
    /// Quiescence timer: wait at least `min` and at most `max` before rendering.
    pub wait: Option<Wait>,
    /// Fail on a missing map key instead of rendering `<no value>`.
    pub error_on_missing_key: bool,
    /// Whether rendering errors are fatal (default true).
    pub error_fatal: bool,
    /// Left action delimiter, `{{` unless set.
    pub left_delimiter: Option<String>,
    /// Right action delimiter, `}}` unless set.
    pub right_delimiter: Option<String>,
    /// Template functions that may not be used.
    pub function_denylist: Vec<String>,
    /// Directory the `file` function is confined to.
    pub sandbox_path: Option<PathBuf>,
    /// Where the block was written.
    pub location: Location,
    pub(crate) lines: KeyLines,
}

/// A template's `wait { min max }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// Quiet time before rendering.
    pub min: Duration,
    /// Longest wait before rendering anyway.
    pub max: Duration,
}

/// The `template_config {}` stanza.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateConfig {
    /// Exit when the engine gives up after its retries.
    pub exit_on_retry_failure: bool,
    /// Re-read interval of secrets without a lease (default 5 minutes).
    pub static_secret_render_interval: Duration,
    /// Connection limit per host of the engine's client (default 10).
    pub max_connections_per_host: u32,
    /// Fraction of a non-renewable lease after which it is re-read (default 0.9).
    pub lease_renewal_threshold: f64,
}

impl Default for TemplateConfig {
    fn default() -> Self {
        TemplateConfig {
            exit_on_retry_failure: false,
            static_secret_render_interval: Duration::from_secs(300),
            max_connections_per_host: 10,
            lease_renewal_threshold: 0.9,
        }
    }
}

/// An `env_template "NAME" {}` block.
#[derive(Clone, Debug)]
pub struct EnvTemplate {
    /// Name of the environment variable the rendered value is given as.
    pub name: String,
    /// Inline template text.
    pub contents: Option<String>,
    /// Template file.
    pub source: Option<PathBuf>,
    /// Fail on a missing map key.
    pub error_on_missing_key: bool,
    /// Whether rendering errors are fatal (default true).
    pub error_fatal: bool,
    /// Left action delimiter.
    pub left_delimiter: Option<String>,
    /// Right action delimiter.
    pub right_delimiter: Option<String>,
    /// Template functions that may not be used.
    pub function_denylist: Vec<String>,
    /// Where the block was written.
    pub location: Location,
}

/// When the supervised child is restarted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartOnSecretChanges {
    /// Restart whenever a rendered value changes.
    #[default]
    Always,
    /// Never restart for changed values.
    Never,
}

/// The `exec {}` stanza.
#[derive(Clone, Debug)]
pub struct Exec {
    /// Program and arguments; one element containing spaces is run through `sh -c`.
    pub command: Vec<String>,
    /// When to restart the child.
    pub restart_on_secret_changes: RestartOnSecretChanges,
    /// Signal that stops the child, canonical form (`SIGTERM`).
    pub restart_stop_signal: String,
    /// File the child's stdout is appended to, instead of inheriting ours.
    pub child_process_stdout: Option<PathBuf>,
    /// File the child's stderr is appended to.
    pub child_process_stderr: Option<PathBuf>,
    /// Where the stanza was written.
    pub location: Location,
}

/// The `telemetry {}` stanza.
#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    /// How long Prometheus metrics are kept (default 24 h when the stanza exists).
    pub prometheus_retention_time: Duration,
    /// Replaces the service-name prefix of metric names.
    pub metrics_prefix: Option<String>,
    /// Do not prefix gauges with the host name.
    pub disable_hostname: bool,
    /// Add the host name as a label.
    pub enable_hostname_label: bool,
    /// statsite address.
    pub statsite_address: Option<String>,
    /// statsd address.
    pub statsd_address: Option<String>,
    /// DogStatsD address.
    pub dogstatsd_addr: Option<String>,
    /// DogStatsD tags.
    pub dogstatsd_tags: Vec<String>,
    /// Interval of usage gauges (default 10 minutes).
    pub usage_gauge_period: Duration,
    /// Cardinality limit of gauges (default 500).
    pub maximum_gauge_cardinality: i64,
    /// Whether metrics not matched by `prefix_filter` are kept (default true).
    pub filter_default: bool,
    /// `+prefix` / `-prefix` filters.
    pub prefix_filter: Vec<String>,
    /// Where the stanza was written.
    pub location: Location,
}

/// Log level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogLevel {
    /// `trace`.
    Trace,
    /// `debug`.
    Debug,
    /// `info` (also `notice` and the empty string).
    #[default]
    Info,
    /// `warn` / `warning`.
    Warn,
    /// `error` / `err`.
    Error,
}

/// Log line format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Standard,
    /// One JSON object per line.
    Json,
}

/// Logging, from the `log_*` keys, the environment and flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Logging {
    /// Level.
    pub level: LogLevel,
    /// Format.
    pub format: LogFormat,
    /// Log file (a path ending in `/` is a directory).
    pub file: Option<String>,
    /// Rotate after this many bytes.
    pub rotate_bytes: Option<u64>,
    /// Rotate after this long (24 h when a log file is set).
    pub rotate_duration: Option<Duration>,
    /// Rotated files to keep; -1 deletes old files on rotation.
    pub rotate_max_files: Option<i64>,
}

macro_rules! location_of {
    ($($stanza:ty),*) => {$(
        impl $stanza {
            /// Where `key` of this block was written (the block itself when it was not), so that
            /// a runtime error about the setting can point at its line.
            pub fn location_of(&self, key: &str) -> Location {
                self.lines.at(key)
            }
        }
    )*};
}

location_of!(
    Vault, AutoAuth, Method, Sink, Cache, ApiProxy, Listener, Template
);
