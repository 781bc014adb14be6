//! The connection pool [`Client::forward`](crate::Client::forward) relays through: hyper's
//! pooled HTTP/1.1 client over a connector of our own (TCP, TLS with the client's
//! configuration, or a Unix socket).
//!
//! Forwarding is the agent's hot path, so nothing sits between a request and the pool: the
//! request URI is the incoming path on a prefix parsed once, the `Host` header is computed
//! once, and one timer bounds an attempt from sending to the last byte of the answer.
//! Typed calls keep going through reqwest, which does more per request and needs none of
//! this.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION,
    PROXY_AUTHORIZATION, TRANSFER_ENCODING, USER_AGENT, WWW_AUTHENTICATE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::Full;
use hyper_util::client::legacy;
use hyper_util::client::legacy::connect::dns::{GaiAddrs, GaiFuture, GaiResolver, Name};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use reqwest::Url;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower::Service;

use crate::error::{BoxError, BuildError, RequestError};
use crate::forward::ForwardBody;
use crate::settings::ClientSettings;
use crate::transport::{CONNECT_TIMEOUT, PinnedName, Target, user_agent};

/// How long an idle pooled connection is kept: short, so that the connections a burst of
/// requests opened go soon after it. Under steady load they are reused within milliseconds.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most idle connections kept: as many as a sidecar's clients plausibly keep busy at once.
/// With fewer (Go's cpus+1, say), every request beyond them under load opens and closes a
/// connection of its own: one proxied request in three did so under 32-way load.
const POOL_MAX_IDLE: usize = 64;
/// TCP keep-alive probes on connections to Vault: first after, then every, this long.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// The forwarding client of one [`Client`](crate::Client); cloning shares the pool.
#[derive(Clone)]
pub(crate) struct Relay {
    pool: legacy::Client<Connector, Full<Bytes>>,
    shared: Arc<Shared>,
}

struct Shared {
    scheme: Scheme,
    authority: Authority,
    /// The address's path, without a trailing slash; empty for most addresses.
    prefix: String,
    host: HeaderValue,
    user_agent: Option<HeaderValue>,
    timeout: Duration,
}

/// A request ready to go, kept whole so that it can be sent again (a retry, a redirect).
pub(crate) struct Prepared {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Why one attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    /// The request timeout passed before Vault's answer began.
    #[error("timed out")]
    TimedOut,
    /// No connection, or the connection failed before the answer began.
    #[error(transparent)]
    Http(#[from] legacy::Error),
}

impl Relay {
    /// The relay to `target`, over `tls` (offering HTTP/1.1 only), with the settings'
    /// timeout, user agent and idle-connection rules.
    pub(crate) fn new(
        target: &Target,
        tls: &Arc<ClientConfig>,
        settings: &ClientSettings,
    ) -> Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::Address {
            address: settings.address.clone(),
            reason: reason.to_owned(),
        };
        let base: Uri = target
            .base
            .parse()
            .map_err(|_| invalid("not a valid request URI"))?;
        let (Some(scheme), Some(authority)) = (base.scheme().cloned(), base.authority().cloned())
        else {
            return Err(invalid("no scheme or host"));
        };
        let host = host_header(&base).ok_or_else(|| invalid("no host"))?;

        // This path speaks HTTP/1.1 only: offering h2 would get a connection the pool
        // would then have to drive as HTTP/2.
        let mut tls = ClientConfig::clone(tls);
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = Connector::new(target, tls, settings.timeout);

        let no_idle = settings.disable_keep_alives || settings.disable_idle_connections;
        let mut builder = legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(if no_idle { 0 } else { POOL_MAX_IDLE });

        Ok(Self {
            pool: builder.build(connector),
            shared: Arc::new(Shared {
                scheme,
                authority,
                prefix: base.path().trim_end_matches('/').to_owned(),
                host,
                user_agent: user_agent(settings)?,
                timeout: settings.timeout,
            }),
        })
    }

    /// The request for `path_and_query` under the address, with the headers every
    /// forwarded request carries: `Host`, and `User-Agent` and `Accept` unless the caller
    /// sent its own.
    pub(crate) fn prepare(
        &self,
        method: Method,
        path_and_query: &PathAndQuery,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> Result<Prepared, RequestError> {
        let shared = &*self.shared;
        let path_and_query = if shared.prefix.is_empty() {
            path_and_query.clone()
        } else {
            let joined = format!("{}{}", shared.prefix, path_and_query.as_str());
            PathAndQuery::try_from(joined).map_err(|_| RequestError::Invalid {
                reason: "the request path does not form a URL".to_owned(),
            })?
        };
        let uri = Uri::builder()
            .scheme(shared.scheme.clone())
            .authority(shared.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| RequestError::Invalid {
                reason: "the request path does not form a URL".to_owned(),
            })?;

        headers.insert(HOST, shared.host.clone());
        if let Some(agent) = &shared.user_agent
            && !headers.contains_key(USER_AGENT)
        {
            headers.insert(USER_AGENT, agent.clone());
        }
        if !headers.contains_key(ACCEPT) {
            headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        }

        Ok(Prepared {
            method,
            uri,
            headers,
            body,
        })
    }

    /// Sends `request` once. The timeout runs from here to the end of the answer's body,
    /// which carries the rest of it.
    pub(crate) async fn send(
        &self,
        request: &Prepared,
    ) -> Result<http::Response<ForwardBody>, AttemptError> {
        let mut outgoing = http::Request::new(Full::new(request.body.clone()));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = request.uri.clone();
        *outgoing.headers_mut() = request.headers.clone();

        let mut deadline = Box::pin(tokio::time::sleep(self.shared.timeout));
        let answer = tokio::select! {
            biased;
            answer = self.pool.request(outgoing) => answer?,
            () = &mut deadline => return Err(AttemptError::TimedOut),
        };
        Ok(answer.map(|body| ForwardBody::relayed(body, deadline)))
    }
}

impl Prepared {
    /// The request's method.
    pub(crate) fn method(&self) -> &Method {
        &self.method
    }

    /// The request a redirect asks for, as browsers and Go's client make it: 303 (and 301
    /// or 302 after a POST) becomes a GET without a body; 307 and 308 repeat the request.
    /// Credentials other than the Vault token stay behind when the redirect leaves the
    /// origin. `None` when `status` is no redirect or the location is unusable.
    pub(crate) fn redirected(&self, status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        let drops_body = match status {
            StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND => self.method == Method::POST,
            StatusCode::SEE_OTHER => true,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT => false,
            _ => return None,
        };
        let location = headers.get(LOCATION)?.to_str().ok()?;
        let uri = resolve(&self.uri, location)?;

        let mut next = Self {
            method: self.method.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            uri,
        };
        if drops_body {
            if next.method != Method::HEAD {
                next.method = Method::GET;
            }
            next.body = Bytes::new();
            for name in [
                CONTENT_TYPE,
                CONTENT_LENGTH,
                CONTENT_ENCODING,
                TRANSFER_ENCODING,
            ] {
                next.headers.remove(name);
            }
        }
        let same_origin = next.uri.scheme() == self.uri.scheme()
            && next.uri.host() == self.uri.host()
            && port_of(&next.uri) == port_of(&self.uri);
        if !same_origin {
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE] {
                next.headers.remove(name);
            }
            next.headers.remove("cookie2");
            next.headers.insert(HOST, host_header(&next.uri)?);
        }
        Some(next)
    }
}

/// `location` read against `base`; only http and https targets are followed.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let joined = Url::parse(&base.to_string()).ok()?.join(location).ok()?;
    if joined.scheme() != "http" && joined.scheme() != "https" {
        return None;
    }
    joined.as_str().parse().ok()
}

fn port_of(uri: &Uri) -> Option<u16> {
    uri.port_u16().or_else(|| port_of_scheme(uri))
}

/// `Host` for `uri`: its host, and its port when that is not the scheme's default.
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let explicit = uri
        .port_u16()
        .filter(|&port| Some(port) != port_of_scheme(uri));
    let value = match explicit {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    HeaderValue::from_str(&value).ok()
}

fn port_of_scheme(uri: &Uri) -> Option<u16> {
    match uri.scheme_str()? {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    }
}

/// Opens connections for the pool: to the Unix socket when there is one, otherwise to the
/// URI's host (the configured host when the URI carries the pinned TLS name), with TLS
/// for `https`.
#[derive(Clone)]
struct Connector {
    tcp: HttpConnector<Resolver>,
    tls: TlsConnector,
    unix_socket: Option<Arc<PathBuf>>,
    timeout: Duration,
}

impl Connector {
    fn new(target: &Target, tls: ClientConfig, request_timeout: Duration) -> Self {
        let resolver = Resolver {
            gai: GaiResolver::new(),
            pinned: target.pinned.clone().map(Arc::new),
        };
        let mut tcp = HttpConnector::new_with_resolver(resolver);
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_interval(Some(TCP_KEEPALIVE));
        tcp.set_keepalive_retries(Some(3));

        Self {
            tcp,
            tls: TlsConnector::from(Arc::new(tls)),
            unix_socket: target.unix_socket.clone().map(Arc::new),
            timeout: CONNECT_TIMEOUT.min(request_timeout),
        }
    }

    async fn connect(mut self, uri: Uri) -> Result<TokioIo<Stream>, BoxError> {
        if let Some(path) = &self.unix_socket {
            return Ok(TokioIo::new(Stream::Unix(
                UnixStream::connect(&**path).await?,
            )));
        }

        let tcp = self.tcp.call(uri.clone()).await?.into_inner();
        if uri.scheme() != Some(&Scheme::HTTPS) {
            return Ok(TokioIo::new(Stream::Tcp(tcp)));
        }
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TLS server name"))?;
        let tls = self.tls.connect(name, tcp).await?;
        Ok(TokioIo::new(Stream::Tls(Box::new(tls))))
    }
}

impl Service<Uri> for Connector {
    type Response = TokioIo<Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TokioIo<Stream>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.clone().connect(uri);
        let limit = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, connect).await {
                Ok(connected) => connected,
                Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out").into()),
            }
        })
    }
}

/// The system resolver, answering for the pinned TLS name with the configured host.
#[derive(Clone)]
struct Resolver {
    gai: GaiResolver,
    pinned: Option<Arc<PinnedName>>,
}

impl Service<Name> for Resolver {
    type Response = GaiAddrs;
    type Error = io::Error;
    type Future = GaiFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.gai.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> GaiFuture {
        let real = self
            .pinned
            .as_ref()
            .filter(|pinned| name.as_str().eq_ignore_ascii_case(&pinned.name))
            .and_then(|pinned| Name::from_str(&pinned.host).ok());
        self.gai.call(real.unwrap_or(name))
    }
}

/// A connection to Vault.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Unix(UnixStream),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Tls(io) => Pin::new(io).poll_read(cx, buf),
            Stream::Unix(io) => Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Tls(io) => Pin::new(io).poll_write(cx, buf),
            Stream::Unix(io) => Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Stream::Tls(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            Stream::Unix(io) => Pin::new(io).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(io) => io.is_write_vectored(),
            Stream::Tls(io) => io.is_write_vectored(),
            Stream::Unix(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_flush(cx),
            Stream::Tls(io) => Pin::new(io).poll_flush(cx),
            Stream::Unix(io) => Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Tls(io) => Pin::new(io).poll_shutdown(cx),
            Stream::Unix(io) => Pin::new(io).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::{Client, RetryPolicy};

    /// One request as a test server read it: the request line, the headers (names in
    /// lower case) and the body.
    #[derive(Debug)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            let found = self.headers.iter().find(|(n, _)| n == name);
            found.map(|(_, value)| value.as_str())
        }
    }

    /// The raw answer to the `n`th request a server received (counting from 0), or `None`
    /// to read the request and never answer.
    type Script = Arc<dyn Fn(usize) -> Option<String> + Send + Sync>;

    fn answer(status: &str, headers: &[&str], body: &str) -> String {
        let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text + "\r\n" + body
    }

    fn always(status: &'static str, body: &'static str) -> Script {
        Arc::new(move |_| Some(answer(status, &[], body)))
    }

    /// A plain HTTP/1.1 server on loopback: its address and what it saw.
    async fn http_server(script: Script) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let (seen, received) = mpsc::unbounded_channel();
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(converse(
                    stream,
                    script.clone(),
                    seen.clone(),
                    count.clone(),
                ));
            }
        });
        (address, received)
    }

    /// Reads requests off one connection and answers them as `script` says.
    async fn converse<S>(
        mut stream: S,
        script: Script,
        seen: mpsc::UnboundedSender<Seen>,
        count: Arc<AtomicUsize>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                match stream.read(&mut buf).await {
                    Ok(read @ 1..) => pending.extend_from_slice(&buf[..read]),
                    _ => return,
                }
                continue;
            };
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
            while pending.len() < end + 4 + length {
                match stream.read(&mut buf).await {
                    Ok(read @ 1..) => pending.extend_from_slice(&buf[..read]),
                    _ => return,
                }
            }
            let body = pending[end + 4..end + 4 + length].to_vec();
            pending.drain(..end + 4 + length);
            let _ = seen.send(Seen {
                line,
                headers,
                body,
            });

            let Some(reply) = script(count.fetch_add(1, Ordering::SeqCst)) else {
                // Hold the connection open without a word.
                std::future::pending::<()>().await;
                return;
            };
            if stream.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    fn client(address: &str, change: impl FnOnce(&mut ClientSettings)) -> Client {
        let mut settings = ClientSettings {
            address: address.to_owned(),
            retry: RetryPolicy::NONE,
            ..ClientSettings::default()
        };
        change(&mut settings);
        let client = Client::new(&settings).unwrap();
        assert!(client.relay.is_some(), "these tests run without a proxy");
        client
    }

    fn request(method: &str, target: &str, body: &'static str) -> http::Request<Bytes> {
        http::Request::builder()
            .method(method)
            .uri(target)
            .header("x-vault-token", "s.relayed")
            .body(Bytes::from_static(body.as_bytes()))
            .unwrap()
    }

    async fn body_of(answer: http::Response<ForwardBody>) -> String {
        let bytes = answer.into_body().to_bytes().await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn requests_go_verbatim_with_host_agent_and_accept() {
        let (address, mut seen) = http_server(always("200 OK", r#"{"ok":true}"#)).await;
        let authority = address.trim_start_matches("http://").to_owned();

        async fn check(
            client: &Client,
            request: http::Request<Bytes>,
            seen: &mut mpsc::UnboundedReceiver<Seen>,
            line: &str,
            headers: &[(&str, &str)],
        ) {
            let answer = client.forward(request).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            assert_eq!(body_of(answer).await, r#"{"ok":true}"#);

            let got = seen.recv().await.unwrap();
            assert_eq!(got.line, line);
            for (name, value) in headers {
                assert_eq!(got.header(name), Some(*value), "{name} in {got:?}");
            }
        }

        let plain = client(&address, |_| {});
        let agent = concat!("vault-agent-rs/", env!("CARGO_PKG_VERSION"));
        let put = request("PUT", "/v1/secret/data/x?version=2", r#"{"data":{}}"#);
        check(
            &plain,
            put,
            &mut seen,
            "PUT /v1/secret/data/x?version=2 HTTP/1.1",
            &[
                ("host", &authority),
                ("user-agent", agent),
                ("accept", "*/*"),
                ("x-vault-token", "s.relayed"),
                ("content-length", "11"),
            ],
        )
        .await;

        let mut own = request("LIST", "/v1/secret/metadata/", "");
        let headers = own.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static("hvac/2"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(HOST, HeaderValue::from_static("agent.local:8100"));
        check(
            &plain,
            own,
            &mut seen,
            "LIST /v1/secret/metadata/ HTTP/1.1",
            &[
                ("host", &authority),
                ("user-agent", "hvac/2"),
                ("accept", "application/json"),
            ],
        )
        .await;

        let prefixed = client(&format!("{address}/vault/"), |_| {});
        let get = request("GET", "/v1/sys/health", "");
        check(
            &prefixed,
            get,
            &mut seen,
            "GET /vault/v1/sys/health HTTP/1.1",
            &[],
        )
        .await;
    }

    #[tokio::test]
    async fn answers_come_back_with_their_status_and_headers() {
        let script: Script = Arc::new(|_| {
            Some(answer(
                "404 Not Found",
                &["content-type: application/json", "x-vault-custom: yes"],
                r#"{"errors":[]}"#,
            ))
        });
        let (address, _seen) = http_server(script).await;

        let answer = client(&address, |_| {})
            .forward(request("GET", "/v1/secret/data/missing", ""))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND);
        assert_eq!(answer.headers()["x-vault-custom"], "yes");
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(body_of(answer).await, r#"{"errors":[]}"#);
    }

    #[tokio::test]
    async fn retryable_statuses_are_retried_and_others_are_not() {
        async fn check(first: &'static str, expected: StatusCode, requests: usize) {
            let script: Script = Arc::new(move |n| {
                // Retry-After: 0 keeps the retry from waiting.
                let reply = if n == 0 {
                    answer(first, &["retry-after: 0"], "{}")
                } else {
                    answer("200 OK", &[], "{}")
                };
                Some(reply)
            });
            let (address, mut seen) = http_server(script).await;
            let client = client(&address, |s| s.retry = RetryPolicy::new(2));

            let answer = client
                .forward(request("PUT", "/v1/x", "{\"a\":1}"))
                .await
                .unwrap();
            assert_eq!(answer.status(), expected, "{first}");
            for _ in 0..requests {
                let got = seen.recv().await.unwrap();
                assert_eq!(got.body, b"{\"a\":1}", "every attempt carries the body");
            }
            assert!(
                seen.try_recv().is_err(),
                "{first}: more than {requests} requests"
            );
        }

        check("503 Service Unavailable", StatusCode::OK, 2).await;
        check("429 Too Many Requests", StatusCode::OK, 2).await;
        check("501 Not Implemented", StatusCode::NOT_IMPLEMENTED, 1).await;
        check("403 Forbidden", StatusCode::FORBIDDEN, 1).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_times_out_on_the_head_and_on_the_body() {
        let script: Script = Arc::new(|n| {
            // The second request gets a head promising more body than ever comes.
            (n == 1).then(|| "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}".to_owned())
        });
        let (address, _seen) = http_server(script).await;
        let client = client(&address, |s| s.timeout = Duration::from_secs(5));

        let error = client
            .forward(request("GET", "/v1/slow", ""))
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot reach Vault at {address} after 1 attempt: timed out")
        );

        let answer = client
            .forward(request("GET", "/v1/slow", ""))
            .await
            .unwrap();
        let error = answer.into_body().to_bytes().await.unwrap_err();
        assert!(error.to_string().ends_with("timed out"), "{error}");
    }

    #[tokio::test]
    async fn an_unreachable_address_is_named_with_its_reason() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let socket = format!("unix://{}", dir.path().join("none.sock").display());

        for (address, reason) in [(address, "connection refused"), (socket, "no such socket")] {
            let error = client(&address, |_| {})
                .forward(request("GET", "/v1/sys/health", ""))
                .await
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("cannot reach Vault at {address} after 1 attempt: {reason}")
            );
            assert!(!format!("{error:?}").contains("s.relayed"));
        }
    }

    #[tokio::test]
    async fn one_redirect_is_followed() {
        let (target, mut at_target) = http_server(always("200 OK", r#"{"from":"target"}"#)).await;

        async fn check(
            target: &str,
            at_target: &mut mpsc::UnboundedReceiver<Seen>,
            status: &'static str,
            line: &str,
            body: &[u8],
        ) {
            let location = format!("location: {target}/v1/active?x=1");
            let script: Script = Arc::new(move |_| Some(answer(status, &[&location], "")));
            let (standby, _) = http_server(script).await;

            let mut sent = request("POST", "/v1/secret/data/y", "{\"v\":2}");
            sent.headers_mut()
                .insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
            let answer = client(&standby, |_| {}).forward(sent).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK, "{status}");
            assert_eq!(body_of(answer).await, r#"{"from":"target"}"#);

            let got = at_target.recv().await.unwrap();
            assert_eq!(got.line, line, "{status}");
            assert_eq!(got.body, body, "{status}");
            let authority = target.trim_start_matches("http://");
            assert_eq!(got.header("host"), Some(authority));
            assert_eq!(got.header("x-vault-token"), Some("s.relayed"));
            assert_eq!(got.header("authorization"), None, "another origin");
        }

        let (line, get) = (
            "POST /v1/active?x=1 HTTP/1.1",
            "GET /v1/active?x=1 HTTP/1.1",
        );
        check(
            &target,
            &mut at_target,
            "307 Temporary Redirect",
            line,
            b"{\"v\":2}",
        )
        .await;
        check(
            &target,
            &mut at_target,
            "308 Permanent Redirect",
            line,
            b"{\"v\":2}",
        )
        .await;
        check(&target, &mut at_target, "303 See Other", get, b"").await;

        // A second redirect reaches the caller.
        let script: Script = Arc::new(|_| Some(answer("302 Found", &["location: /v1/x"], "")));
        let (standby, mut at_standby) = http_server(script).await;
        let answer = client(&standby, |_| {})
            .forward(request("GET", "/v1/active", ""))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND);
        assert_eq!(
            at_standby.recv().await.unwrap().line,
            "GET /v1/active HTTP/1.1"
        );
        assert_eq!(at_standby.recv().await.unwrap().line, "GET /v1/x HTTP/1.1");
        assert!(at_standby.try_recv().is_err());
    }

    /// A TLS server for `localhost` and `127.0.0.1` (asking for a client certificate
    /// signed by `client_ca`, when given): its address, its certificate as PEM, and what
    /// it saw.
    async fn tls_server(
        client_ca: Option<&str>,
    ) -> (String, String, mpsc::UnboundedReceiver<Seen>) {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let generated = rcgen::generate_simple_self_signed(names).unwrap();
        let cert_pem = generated.cert.pem();
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der()).unwrap();

        let builder = rustls::ServerConfig::builder();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                let ca = CertificateDer::from_pem_slice(ca.as_bytes()).unwrap();
                roots.add(ca).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(vec![generated.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("https://{}", listener.local_addr().unwrap());
        let (seen, received) = mpsc::unbounded_channel();
        let script = always("200 OK", "{}");
        tokio::spawn(async move {
            let count = Arc::new(AtomicUsize::new(0));
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, script) = (acceptor.clone(), script.clone());
                let (seen, count) = (seen.clone(), count.clone());
                tokio::spawn(async move {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        converse(stream, script, seen, count).await;
                    }
                });
            }
        });
        (address, cert_pem, received)
    }

    #[tokio::test]
    async fn tls_settings_apply_to_forwarding() {
        let (address, cert, mut seen) = tls_server(None).await;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert).unwrap();
        let port = address.rsplit(':').next().unwrap().to_owned();

        async fn check(
            address: &str,
            change: impl FnOnce(&mut ClientSettings),
            seen: &mut mpsc::UnboundedReceiver<Seen>,
            expected: Result<&str, &str>,
        ) {
            let client = client(address, |s| {
                s.retry = RetryPolicy::new(2);
                change(s);
            });
            let outcome = client.forward(request("GET", "/v1/sys/health", "")).await;
            match (outcome, expected) {
                (Ok(answer), Ok(host)) => {
                    assert_eq!(body_of(answer).await, "{}");
                    let got = seen.recv().await.unwrap();
                    assert_eq!(got.header("host"), Some(host));
                }
                (Err(error), Err(words)) => {
                    let message = error.to_string();
                    assert!(message.contains(words), "{message}");
                    // A refused handshake fails the same way every time: no retries.
                    assert!(message.contains("after 1 attempt:"), "{message}");
                }
                (outcome, expected) => panic!("got {outcome:?}, expected {expected:?}"),
            }
        }

        let ip = format!("127.0.0.1:{port}");
        let name = format!("localhost:{port}");
        let trusted = |s: &mut ClientSettings| s.ca_cert = Some(ca.clone());
        check(&address, trusted, &mut seen, Ok(&ip)).await;
        check(&address, |s| s.tls_skip_verify = true, &mut seen, Ok(&ip)).await;
        let pinned = |s: &mut ClientSettings| {
            trusted(s);
            s.tls_server_name = Some("localhost".to_owned());
        };
        check(&address, pinned, &mut seen, Ok(&name)).await;
        let untrusted = Err("invalid peer certificate");
        check(&address, |_| {}, &mut seen, untrusted).await;
        let wrong = |s: &mut ClientSettings| {
            trusted(s);
            s.tls_server_name = Some("wrong.example".to_owned());
        };
        check(&address, wrong, &mut seen, Err("wrong.example")).await;
    }

    #[tokio::test]
    async fn forwarding_presents_the_client_certificate() {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client_params = CertificateParams::new(vec!["agent".to_owned()]).unwrap();
        let client_cert = client_params.signed_by(&client_key, &ca).unwrap();

        let (address, server_cert, _seen) = tls_server(Some(&ca.pem())).await;
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let server_ca = file("server-ca.pem", server_cert);
        let cert = file("client.pem", client_cert.pem());
        let key = file("client-key.pem", client_key.serialize_pem());

        let without = client(&address, |s| s.ca_cert = Some(server_ca.clone()));
        let refused = without.forward(request("GET", "/v1/sys/health", "")).await;
        assert!(refused.is_err(), "the server requires a certificate");

        let with = client(&address, |s| {
            s.ca_cert = Some(server_ca.clone());
            s.client_cert = Some(cert.clone());
            s.client_key = Some(key.clone());
        });
        let answer = with
            .forward(request("GET", "/v1/sys/health", ""))
            .await
            .unwrap();
        assert_eq!(body_of(answer).await, "{}");
    }

    #[tokio::test]
    async fn a_unix_socket_address_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (seen, mut received) = mpsc::unbounded_channel();
        let script = always("200 OK", "{}");
        tokio::spawn(async move {
            let count = Arc::new(AtomicUsize::new(0));
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(converse(
                    stream,
                    script.clone(),
                    seen.clone(),
                    count.clone(),
                ));
            }
        });

        let address = format!("unix://{}", path.display());
        let answer = client(&address, |_| {})
            .forward(request("GET", "/v1/sys/mounts", ""))
            .await
            .unwrap();
        assert_eq!(body_of(answer).await, "{}");
        let got = received.recv().await.unwrap();
        assert_eq!(got.line, "GET /v1/sys/mounts HTTP/1.1");
        assert_eq!(got.header("host"), Some("localhost"));
    }
}
