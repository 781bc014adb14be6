//! Binding listeners and serving a router on them: HTTP/1.1 and HTTP/2, plain or TLS,
//! with timeouts and a bounded drain on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};
use vault_client::TOKEN_HEADER;

use crate::router::Routes;
use crate::settings::{ListenerKind, ListenerSettings, ServeTimeouts};
use crate::tls::{TlsError, TlsReloader};
use crate::unix::{self, SocketFile};

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The TCP address could not be bound (in use, no such address, not permitted).
    #[error("cannot listen on {address}")]
    Tcp {
        /// The address as configured.
        address: String,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The Unix socket could not be created.
    #[error("cannot listen on unix socket {}", path.display())]
    Unix {
        /// The socket path.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },

    /// Another process is serving on the socket.
    #[error("unix socket {} is in use by another process", path.display())]
    SocketInUse {
        /// The socket path.
        path: PathBuf,
    },

    /// The socket path is taken by a file that is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The socket path.
        path: PathBuf,
    },

    /// `socket_user` names no known user.
    #[error("unknown socket_user {user:?}")]
    UnknownUser {
        /// The name as configured.
        user: String,
    },

    /// `socket_group` names no known group.
    #[error("unknown socket_group {group:?}")]
    UnknownGroup {
        /// The name as configured.
        group: String,
    },

    /// The socket's mode or owner could not be set.
    #[error("cannot set the permissions of unix socket {}", path.display())]
    Permissions {
        /// The socket path.
        path: PathBuf,
        /// The system's reason.
        #[source]
        source: std::io::Error,
    },

    /// The TLS material is unusable.
    #[error("cannot set up TLS for {address}")]
    Tls {
        /// The address as configured.
        address: String,
        /// What is wrong with the material.
        #[source]
        source: TlsError,
    },
}

/// Binds listeners; see [`Listener::bind`].
#[derive(Debug)]
pub struct Listener;

impl Listener {
    /// Binds the socket a listener block describes and loads its TLS material.
    ///
    /// Errors name the address. Once this returns, connections queue up; they are served
    /// from [`BoundListener::serve`] on.
    pub async fn bind(settings: &ListenerSettings) -> Result<BoundListener, BindError> {
        match &settings.kind {
            ListenerKind::Tcp { address, tls } => {
                let tls = tls
                    .clone()
                    .map(TlsReloader::new)
                    .transpose()
                    .map_err(|source| BindError::Tls {
                        address: address.clone(),
                        source,
                    })?;
                let listener = TcpListener::bind(address.as_str())
                    .await
                    .map_err(|source| BindError::Tcp {
                        address: address.clone(),
                        source,
                    })?;
                let local = listener.local_addr().ok();

                Ok(BoundListener {
                    socket: Socket::Tcp(listener),
                    tls,
                    address: local.map_or_else(|| address.clone(), |addr| addr.to_string()),
                    local,
                    socket_file: None,
                    timeouts: ServeTimeouts::default(),
                })
            }
            ListenerKind::Unix {
                path,
                mode,
                user,
                group,
            } => {
                let (listener, file) = unix::bind(path, *mode, user.as_deref(), group.as_deref())?;
                let listener =
                    UnixListener::from_std(listener).map_err(|source| BindError::Unix {
                        path: path.clone(),
                        source,
                    })?;

                Ok(BoundListener {
                    socket: Socket::Unix(listener),
                    tls: None,
                    address: format!("unix:{}", path.display()),
                    local: None,
                    socket_file: Some(file),
                    timeouts: ServeTimeouts::default(),
                })
            }
        }
    }
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct BoundListener {
    socket: Socket,
    tls: Option<TlsReloader>,
    address: String,
    local: Option<SocketAddr>,
    socket_file: Option<SocketFile>,
    timeouts: ServeTimeouts,
}

#[derive(Debug)]
enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl BoundListener {
    /// The address for messages: `127.0.0.1:8200` (the port actually bound) or
    /// `unix:/path`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The TCP address bound, for a TCP listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }

    /// A handle to reload the TLS certificate, for a TLS listener.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone()
    }

    /// Replaces the default timeouts.
    pub fn with_timeouts(self, timeouts: ServeTimeouts) -> Self {
        Self { timeouts, ..self }
    }

    /// Serves `routes` (what [`router`](crate::router) built, or any axum router) until
    /// `shutdown` is cancelled, then stops accepting, lets requests in flight finish within
    /// the drain timeout, and removes a Unix socket file.
    pub fn serve(self, routes: impl Into<Routes>, shutdown: CancellationToken) -> JoinHandle<()> {
        let span = info_span!("listener", address = %self.address);
        tokio::spawn(self.run(routes.into(), shutdown).instrument(span))
    }

    async fn run(self, routes: Routes, shutdown: CancellationToken) {
        let Self {
            socket,
            tls,
            socket_file,
            timeouts,
            ..
        } = self;
        let builder = Arc::new(http_builder(timeouts));
        let mut connections = JoinSet::new();
        info!(tls = tls.is_some(), "listener started");

        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = accept(&socket) => accepted,
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    // Out of file descriptors, mostly: wait instead of spinning.
                    warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };

            let connection = Connection {
                builder: builder.clone(),
                routes: routes.clone(),
                shutdown: shutdown.clone(),
                timeouts,
            };
            match (stream, &tls) {
                (Stream::Tcp(tcp), Some(tls)) => {
                    connections.spawn(connection.serve_tls(tcp, tls.clone()));
                }
                (Stream::Tcp(tcp), None) => {
                    connections.spawn(connection.serve(tcp));
                }
                (Stream::Unix(unix), _) => {
                    connections.spawn(connection.serve(unix));
                }
            }
        }

        drop(socket);
        if let Some(file) = &socket_file {
            file.remove();
        }
        drain(connections, timeouts.drain).await;
        info!("listener stopped");
    }
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(socket: &Socket) -> std::io::Result<Stream> {
    match socket {
        Socket::Tcp(listener) => {
            let (stream, _) = listener.accept().await?;
            // Small request/response exchanges: do not wait to fill packets.
            let _ = stream.set_nodelay(true);
            Ok(Stream::Tcp(stream))
        }
        Socket::Unix(listener) => Ok(Stream::Unix(listener.accept().await?.0)),
    }
}

async fn drain(mut connections: JoinSet<()>, limit: Duration) {
    if connections.is_empty() {
        return;
    }
    debug!(connections = connections.len(), "draining connections");

    let finished = tokio::time::timeout(limit, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        warn!(
            connections = connections.len(),
            "requests still running after the drain timeout; dropping them"
        );
        connections.abort_all();
    }
}

fn http_builder(timeouts: ServeTimeouts) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// What one connection task needs.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    routes: Routes,
    shutdown: CancellationToken,
    timeouts: ServeTimeouts,
}

impl Connection {
    async fn serve_tls(self, tcp: tokio::net::TcpStream, tls: TlsReloader) {
        let handshake = tls.acceptor().accept(tcp);
        match tokio::time::timeout(self.timeouts.header_read, handshake).await {
            Ok(Ok(stream)) => self.serve(stream).await,
            Ok(Err(error)) => debug!(%error, "TLS handshake failed"),
            Err(_) => debug!("TLS handshake timed out"),
        }
    }

    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let routes = self.routes;
        let service_activity = activity.clone();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let busy = service_activity.begin();
            let routes = routes.clone();
            async move {
                let _busy = busy;
                let mut request = request.map(Body::new);
                if let Some(token) = request.headers_mut().get_mut(TOKEN_HEADER) {
                    token.set_sensitive(true);
                }
                Ok::<_, Infallible>(routes.answer(request).await)
            }
        });

        let connection = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let idle = self.timeouts.idle;
        // Hyper's header clock starts once the protocol is known; until then nothing bounds
        // a client that connects and sends nothing, or half an HTTP/2 preface.
        let first_request_by = activity.base + self.timeouts.header_read;
        let mut closing = false;

        loop {
            let deadline = match activity.has_begun() {
                true => activity.idle_deadline(idle),
                false => first_request_by,
            };
            let idle_check = tokio::time::sleep_until(deadline);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                () = self.shutdown.cancelled(), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = idle_check, if !closing => {
                    if !activity.has_begun() {
                        debug!("closing a connection that sent no request in time");
                        return;
                    }
                    if activity.is_idle(idle) {
                        debug!("closing an idle connection");
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Requests in flight on a connection, and when the last one ended.
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `base` to the last request's start or end.
    last_ms: AtomicU64,
    /// Whether a request has begun on this connection yet.
    begun: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            begun: AtomicBool::new(false),
        }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.begun.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn has_begun(&self) -> bool {
        self.begun.load(Ordering::Relaxed)
    }

    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    fn is_idle(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && Instant::now() >= self.idle_deadline(idle)
    }
}

/// Marks a request in flight until dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
