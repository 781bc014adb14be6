//! Plain settings the binary fills from the configuration file.

use std::path::PathBuf;
use std::time::Duration;

/// Largest request body accepted when the configuration says nothing: 32 MiB.
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// One `listener "tcp" | "unix" {}` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Where the listener accepts connections.
    pub kind: ListenerKind,
    /// What it serves.
    pub role: ListenerRole,
    /// Require `X-Vault-Request: true` on every request (default role only).
    pub require_request_header: bool,
    /// Serve `POST /agent/v1/quit`.
    pub enable_quit: bool,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_request_size: usize,
}

impl ListenerSettings {
    /// A default-role listener on `kind` with Vault's defaults.
    pub fn new(kind: ListenerKind) -> Self {
        Self {
            kind,
            role: ListenerRole::Default,
            require_request_header: false,
            enable_quit: false,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

/// The transport of a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    /// A TCP socket, plain or TLS.
    Tcp {
        /// `host:port`; `0.0.0.0` binds IPv4 only.
        address: String,
        /// TLS material; `None` serves plain HTTP (`tls_disable`).
        tls: Option<TlsSettings>,
    },
    /// A Unix socket.
    Unix {
        /// The socket file.
        path: PathBuf,
        /// Permission bits (`socket_mode`), applied even without user and group.
        mode: Option<u32>,
        /// Owner (`socket_user`), a name or a numeric id.
        user: Option<String>,
        /// Group (`socket_group`), a name or a numeric id.
        group: Option<String>,
    },
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListenerRole {
    /// The API proxy and the agent endpoints.
    #[default]
    Default,
    /// Only `/agent/v1/metrics`; everything else is 404.
    MetricsOnly,
}

/// TLS for a TCP listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first; re-read by `reload`.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf; re-read by `reload`.
    pub key_file: PathBuf,
    /// PEM CAs that client certificates are verified against.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `client_ca_file`.
    pub require_client_cert: bool,
    /// Lowest protocol version offered.
    pub min_version: TlsVersion,
    /// Highest protocol version offered.
    pub max_version: TlsVersion,
}

impl TlsSettings {
    /// TLS 1.2 to 1.3 with `cert_file` and `key_file`, no client certificates.
    pub fn new(cert_file: impl Into<PathBuf>, key_file: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            client_ca_file: None,
            require_client_cert: false,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }
}

/// A TLS protocol version the listener can offer.
///
/// TLS 1.0 and 1.1 do not exist here: the TLS stack has no support for them, and the binary
/// refuses `tls10`/`tls11` in the configuration with a clear message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// `tls12`.
    Tls12,
    /// `tls13`.
    Tls13,
}

/// How the proxy uses the auto-auth token (`api_proxy.use_auto_auth_token`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UseAutoAuthToken {
    /// Requests go with the client's token only.
    #[default]
    Disabled,
    /// Requests without a token (or with an empty one) go with the auto-auth token.
    Enabled,
    /// Every request goes with the auto-auth token; the client's is dropped.
    Force,
}

/// Connection timeouts of a listener; [`Default`] gives the agent's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeTimeouts {
    /// Longest wait for a request's headers, and for a TLS handshake (10 s). The HTTP/1
    /// server starts this clock as soon as it waits for the next request, so an HTTP/1
    /// keep-alive connection idle for this long is closed too; clients reconnect. A new
    /// connection of either protocol that begins no request within it is closed as well.
    pub header_read: Duration,
    /// A connection with no request in flight for this long is closed (5 min); in practice
    /// this governs HTTP/2, where the header clock does not run between requests.
    pub idle: Duration,
    /// On shutdown, how long requests in flight may take to finish (30 s).
    pub drain: Duration,
}

impl Default for ServeTimeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            idle: Duration::from_secs(300),
            drain: Duration::from_secs(30),
        }
    }
}
