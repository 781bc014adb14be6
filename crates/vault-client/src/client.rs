//! The client and its typed calls.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use reqwest::Url;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, instrument};
use zeroize::Zeroize;

use crate::error::{BuildError, RequestError, redact};
use crate::relay::Relay;
use crate::retry::{self, Resend, Verdict};
use crate::secret::{SecretData, Token, wipe_json};
use crate::settings::{ClientSettings, RetryPolicy};
use crate::transport;
use crate::types::{AuthInfo, Health, LeaseInfo, LoginResponse, TokenInfo, WrapInfo, WrapLookup};

/// The header that carries a token.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-vault-token");
/// The header that selects a namespace.
pub const NAMESPACE_HEADER: HeaderName = HeaderName::from_static("x-vault-namespace");
/// The header that asks Vault to wrap its answer.
pub const WRAP_TTL_HEADER: HeaderName = HeaderName::from_static("x-vault-wrap-ttl");

/// A connection pool to one Vault server, with its retry policy and namespace.
///
/// Cloning is cheap and shares the pool; build one client per subsystem (auto-auth, proxy,
/// sinks) so that their settings and connections stay apart.
#[derive(Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    /// Where [`Client::forward`] sends, unless a proxy from the environment applies.
    pub(crate) relay: Option<Relay>,
    endpoint: Arc<Endpoint>,
    namespace: Option<HeaderValue>,
    retry: RetryPolicy,
}

struct Endpoint {
    /// Prefix of request URLs, without a trailing slash.
    base: String,
    /// The address as configured, for messages.
    address: String,
}

impl Client {
    /// Builds a client; fails naming the setting or file at fault.
    pub fn new(settings: &ClientSettings) -> Result<Self, BuildError> {
        let transport = transport::build(settings)?;
        let namespace = namespace_header(settings.namespace.as_deref())?;

        Ok(Self {
            http: transport.http,
            relay: transport.relay,
            endpoint: Arc::new(Endpoint {
                base: transport.base,
                address: settings.address.clone(),
            }),
            namespace,
            retry: settings.retry,
        })
    }

    /// The same client, sending `namespace` (or none, when empty) on typed calls.
    pub fn with_namespace(&self, namespace: &str) -> Result<Self, BuildError> {
        Ok(Self {
            namespace: namespace_header(Some(namespace))?,
            ..self.clone()
        })
    }

    /// The same client with another retry policy (auto-auth retries with its own backoff).
    pub fn with_retry(&self, retry: RetryPolicy) -> Self {
        Self {
            retry,
            ..self.clone()
        }
    }

    /// The address as configured.
    pub fn address(&self) -> &str {
        &self.endpoint.address
    }

    /// The retry policy of this client.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Logs in at `<mount_path>/login` (`auth/approle`, `auth/cert/`...).
    ///
    /// With `wrap_ttl`, Vault answers with a wrapping token around the login instead.
    /// `body` holds credentials and is wiped once sent. Certificate logins use this same
    /// call on a client built with the certificate.
    pub async fn login(
        &self,
        mount_path: &str,
        body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    ) -> Result<LoginResponse, RequestError> {
        let path = format!("{}/login", mount_path.trim_matches('/'));
        self.login_at(&path, body, wrap_ttl).await
    }

    /// Logs in at a full path, for methods that put more after `login`
    /// (`auth/userpass/login/<name>`).
    pub async fn login_at(
        &self,
        path: &str,
        mut body: serde_json::Value,
        wrap_ttl: Option<Duration>,
    ) -> Result<LoginResponse, RequestError> {
        #[derive(Deserialize)]
        struct Answer {
            auth: Option<AuthInfo>,
            wrap_info: Option<WrapInfo>,
        }

        let call = Call::new(Method::PUT, path.trim_matches('/'))
            .json(&body)
            .wrap_ttl(wrap_ttl);
        wipe_json(&mut body);
        let answer: Answer = self.call(call).await?;

        let missing = |what: &str| RequestError::Undecodable {
            method: Method::PUT,
            path: path.to_owned(),
            detail: format!("no {what} in the answer"),
        };
        if wrap_ttl.is_some() {
            let wrap_info = answer.wrap_info.ok_or_else(|| missing("wrap_info"))?;
            return Ok(LoginResponse::Wrapped(wrap_info));
        }
        let auth = answer.auth.ok_or_else(|| missing("auth block"))?;
        if auth.client_token.is_empty() {
            return Err(missing("client_token"));
        }
        Ok(LoginResponse::Auth(auth))
    }

    /// Looks up the token itself (`auth/token/lookup-self`).
    pub async fn lookup_self(&self, token: &Token) -> Result<TokenInfo, RequestError> {
        let call = Call::new(Method::GET, "auth/token/lookup-self").token(token);
        let answer: DataAnswer<TokenInfo> = self.call(call).await?;
        answer
            .data
            .ok_or_else(|| no_data(Method::GET, "auth/token/lookup-self"))
    }

    /// Renews the token itself (`auth/token/renew-self`); `None` leaves the increment to
    /// Vault.
    pub async fn renew_self(
        &self,
        token: &Token,
        increment: Option<Duration>,
    ) -> Result<AuthInfo, RequestError> {
        #[derive(Deserialize)]
        struct Answer {
            auth: Option<AuthInfo>,
        }

        let body = increment_body(increment, serde_json::Map::new());
        let call = Call::new(Method::PUT, "auth/token/renew-self")
            .token(token)
            .json(&body);
        let answer: Answer = self.call(call).await?;
        answer.auth.ok_or_else(|| RequestError::Undecodable {
            method: Method::PUT,
            path: "auth/token/renew-self".to_owned(),
            detail: "no auth block in the answer".to_owned(),
        })
    }

    /// Renews a lease owned by `token` (`sys/leases/renew`).
    pub async fn renew_lease(
        &self,
        token: &Token,
        lease_id: &str,
        increment: Option<Duration>,
    ) -> Result<LeaseInfo, RequestError> {
        let mut fields = serde_json::Map::new();
        fields.insert("lease_id".to_owned(), lease_id.into());
        let body = increment_body(increment, fields);

        let call = Call::new(Method::PUT, "sys/leases/renew")
            .token(token)
            .json(&body);
        self.call(call).await
    }

    /// What a wrapping token wraps, without using it up (`sys/wrapping/lookup`).
    ///
    /// Needs no client token: the wrapping token travels in the body.
    pub async fn wrap_lookup(&self, wrapping_token: &Token) -> Result<WrapLookup, RequestError> {
        let body = serde_json::json!({ "token": wrapping_token.expose() });
        let call = Call::new(Method::PUT, "sys/wrapping/lookup")
            .json(&body)
            .secret(wrapping_token);
        let mut body = body;
        wipe_json(&mut body);

        let answer: DataAnswer<WrapLookup> = self.call(call).await?;
        answer
            .data
            .ok_or_else(|| no_data(Method::PUT, "sys/wrapping/lookup"))
    }

    /// Unwraps a wrapping token (`sys/wrapping/unwrap`), which Vault then revokes.
    ///
    /// Returns the whole wrapped answer; for a secret_id, its `data.secret_id`.
    pub async fn unwrap(&self, wrapping_token: &Token) -> Result<SecretData, RequestError> {
        let call = Call::new(Method::PUT, "sys/wrapping/unwrap").token(wrapping_token);
        let answer: serde_json::Value = self.call(call).await?;
        Ok(SecretData::new(answer))
    }

    /// Wraps `token` in a wrapping token living `ttl` (`sys/wrapping/wrap`), authenticated
    /// as the token itself; unwrapping yields `{"token": <token>}` as data.
    pub async fn wrap(&self, token: &Token, ttl: Duration) -> Result<WrapInfo, RequestError> {
        #[derive(Deserialize)]
        struct Answer {
            wrap_info: Option<WrapInfo>,
        }

        let mut body = serde_json::json!({ "token": token.expose() });
        let call = Call::new(Method::PUT, "sys/wrapping/wrap")
            .token(token)
            .json(&body)
            .wrap_ttl(Some(ttl));
        wipe_json(&mut body);

        let answer: Answer = self.call(call).await?;
        answer.wrap_info.ok_or_else(|| RequestError::Undecodable {
            method: Method::PUT,
            path: "sys/wrapping/wrap".to_owned(),
            detail: "no wrap_info in the answer".to_owned(),
        })
    }

    /// Revokes the token itself (`auth/token/revoke-self`).
    pub async fn revoke_self(&self, token: &Token) -> Result<(), RequestError> {
        let call = Call::new(Method::PUT, "auth/token/revoke-self").token(token);
        self.exchange(call).await.map(drop)
    }

    /// The server's state (`sys/health`). Vault tells a standby (429) or sealed (503) node
    /// by its status: that is an answer here, neither retried nor an error.
    pub async fn health(&self) -> Result<Health, RequestError> {
        let call = Call::new(Method::GET, "sys/health").any_status();
        let answer = self.exchange(call).await?;

        let mut health: Health = decode(&answer.body, &Method::GET, "sys/health")?;
        health.status = answer.status;
        Ok(health)
    }

    /// Sends a request as prepared, retrying per the policy; errors only when no answer
    /// came at all.
    pub(crate) async fn send(
        &self,
        request: Outgoing,
        path: &str,
        retry_status: bool,
    ) -> Result<reqwest::Response, RequestError> {
        let method = request.method.clone();

        let (outcome, attempts) = retry::run(
            self.retry,
            path,
            request,
            |request: Outgoing| self.http.execute(request.into_request()),
            |outcome| judge(outcome, retry_status),
        )
        .await;

        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                debug!(%method, path, status, attempts, "vault answered");
                Ok(response)
            }
            Err(error) => Err(RequestError::Unreachable {
                address: self.endpoint.address.clone(),
                attempts,
                reason: describe_reqwest(&error),
                source: error.without_url().into(),
            }),
        }
    }

    /// The full URL of `path_and_query` (which starts with `/`).
    pub(crate) fn url(&self, path_and_query: &str) -> Result<Url, RequestError> {
        let base = &self.endpoint.base;
        let mut url = String::with_capacity(base.len() + path_and_query.len());
        url.push_str(base);
        url.push_str(path_and_query);

        Url::parse(&url).map_err(|error| RequestError::Invalid {
            reason: format!("the request path does not form a URL: {error}"),
        })
    }

    /// Sends a typed call and decodes its successful answer.
    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, RequestError> {
        let method = call.method.clone();
        let path = call.path;
        let answer = self.exchange(call).await?;
        decode(&answer.body, &method, path)
    }

    /// Sends a typed call and reads its whole answer; an error status becomes an error.
    #[instrument(level = "debug", name = "vault_call", skip_all, fields(path = call.path))]
    async fn exchange(&self, mut call: Call<'_>) -> Result<Answer, RequestError> {
        let request = Outgoing {
            method: call.method.clone(),
            url: self.url(&format!("/v1/{}", call.path))?,
            headers: self.headers(&call)?,
            body: call.body.clone(),
        };

        // The body may hold credentials: wipe it as soon as the HTTP stack lets go of it.
        let sent = self.send(request, call.path, !call.any_status).await;
        wipe_bytes(call.body.take());
        let response = sent?;

        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| RequestError::Interrupted {
                address: self.endpoint.address.clone(),
                path: call.path.to_owned(),
                source: error.without_url().into(),
            })?;
        let answer = Answer {
            status,
            body: WipedBytes(bytes),
        };

        if status.is_success() || call.any_status {
            return Ok(answer);
        }
        Err(api_error(&call, status, &answer.body))
    }

    /// The headers of a typed call: token, namespace, wrapping and content type.
    fn headers(&self, call: &Call<'_>) -> Result<HeaderMap, RequestError> {
        let mut headers = HeaderMap::new();

        if let Some(token) = call.token {
            headers.insert(TOKEN_HEADER, token_header(token)?);
        }
        if let Some(namespace) = &self.namespace {
            headers.insert(NAMESPACE_HEADER, namespace.clone());
        }
        if let Some(ttl) = call.wrap_ttl {
            headers.insert(WRAP_TTL_HEADER, wrap_ttl_header(ttl));
        }
        if call.body.is_some() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        Ok(headers)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.endpoint.address)
            .field("namespace", &self.namespace)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// A request ready to be sent, kept so that it can be sent again.
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
}

impl Outgoing {
    fn into_request(self) -> reqwest::Request {
        let mut request = reqwest::Request::new(self.method, self.url);
        *request.headers_mut() = self.headers;
        *request.body_mut() = self.body.map(reqwest::Body::from);
        request
    }
}

impl Resend for Outgoing {
    fn resend(&self) -> Self {
        Self {
            method: self.method.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

/// One typed call, before it becomes HTTP.
struct Call<'a> {
    method: Method,
    /// Path under `/v1/`.
    path: &'a str,
    token: Option<&'a Token>,
    body: Option<Bytes>,
    wrap_ttl: Option<Duration>,
    /// Whether every status is an answer, to return rather than retry or turn into an
    /// error (`sys/health`).
    any_status: bool,
    /// A secret in the body that Vault might quote back in an error.
    secret: Option<&'a Token>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            token: None,
            body: None,
            wrap_ttl: None,
            any_status: false,
            secret: None,
        }
    }

    fn token(self, token: &'a Token) -> Self {
        Self {
            token: Some(token),
            ..self
        }
    }

    fn json(self, body: &serde_json::Value) -> Self {
        // A Value always serialises.
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        Self {
            body: Some(Bytes::from(bytes)),
            ..self
        }
    }

    fn wrap_ttl(self, wrap_ttl: Option<Duration>) -> Self {
        Self { wrap_ttl, ..self }
    }

    fn secret(self, secret: &'a Token) -> Self {
        Self {
            secret: Some(secret),
            ..self
        }
    }

    fn any_status(self) -> Self {
        Self {
            any_status: true,
            ..self
        }
    }
}

/// A whole answer.
struct Answer {
    status: StatusCode,
    body: WipedBytes,
}

/// Answer bytes, wiped on drop when no one else holds them (they may hold secrets).
struct WipedBytes(Bytes);

impl std::ops::Deref for WipedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for WipedBytes {
    fn drop(&mut self) {
        wipe_bytes(Some(std::mem::take(&mut self.0)));
    }
}

/// `data`, the block most reads answer with.
#[derive(Deserialize)]
struct DataAnswer<T> {
    data: Option<T>,
}

/// Wipes a buffer that is no longer shared; a shared one belongs to the HTTP stack.
fn wipe_bytes(bytes: Option<Bytes>) {
    if let Some(Ok(mut bytes)) = bytes.map(Bytes::try_into_mut) {
        bytes.zeroize();
    }
}

fn decode<T: DeserializeOwned>(
    body: &[u8],
    method: &Method,
    path: &str,
) -> Result<T, RequestError> {
    serde_json::from_slice(body).map_err(|error| RequestError::Undecodable {
        method: method.clone(),
        path: path.to_owned(),
        // serde's message may quote the answer, which can hold secrets: keep its position.
        detail: format!(
            "{} at line {} column {}",
            match error.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "not JSON",
                serde_json::error::Category::Data => "unexpected JSON shape",
                serde_json::error::Category::Eof => "truncated JSON",
            },
            error.line(),
            error.column()
        ),
    })
}

/// Vault's refusal of `call`, its messages scrubbed of the secrets the call carried.
fn api_error(call: &Call<'_>, status: StatusCode, body: &[u8]) -> RequestError {
    let secrets = [call.token, call.secret];
    let errors = vault_errors(body)
        .into_iter()
        .map(|text| {
            secrets
                .iter()
                .flatten()
                .fold(text, |text, secret| redact(&text, secret.expose()))
        })
        .collect();

    RequestError::Api {
        method: call.method.clone(),
        path: call.path.to_owned(),
        status,
        errors,
    }
}

/// Vault's `{"errors": [...]}`, or nothing when the body is something else.
fn vault_errors(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }

    serde_json::from_slice::<Errors>(body)
        .map(|errors| errors.errors)
        .unwrap_or_default()
}

fn no_data(method: Method, path: &str) -> RequestError {
    RequestError::Undecodable {
        method,
        path: path.to_owned(),
        detail: "no data in the answer".to_owned(),
    }
}

fn increment_body(
    increment: Option<Duration>,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    if let Some(increment) = increment {
        fields.insert("increment".to_owned(), increment.as_secs().into());
    }
    serde_json::Value::Object(fields)
}

/// The token as a header value that trace layers and `Debug` will not print.
pub(crate) fn token_header(token: &Token) -> Result<HeaderValue, RequestError> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| RequestError::Invalid {
        reason: "the token has characters an HTTP header cannot carry".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whole seconds, at least one: Vault reads a bare number as seconds.
fn wrap_ttl_header(ttl: Duration) -> HeaderValue {
    HeaderValue::from(ttl.as_secs().max(1))
}

fn namespace_header(namespace: Option<&str>) -> Result<Option<HeaderValue>, BuildError> {
    let Some(namespace) = namespace.map(str::trim).filter(|ns| !ns.is_empty()) else {
        return Ok(None);
    };
    HeaderValue::from_str(namespace)
        .map(Some)
        .map_err(|_| BuildError::Header {
            setting: "namespace",
        })
}

/// Retry on connection errors and, unless told otherwise, on retryable statuses.
fn judge(outcome: &Result<reqwest::Response, reqwest::Error>, retry_status: bool) -> Verdict {
    match outcome {
        Ok(response) if retry_status => retry::judge_status(response.status(), response.headers()),
        Ok(_) => Verdict::Final,
        Err(error) if !error.is_builder() && !error.is_redirect() && is_retryable(error) => {
            Verdict::Retry {
                after: None,
                reason: describe_reqwest(error),
            }
        }
        Err(_) => Verdict::Final,
    }
}

/// Everything but a refused TLS handshake is worth another try.
pub(crate) fn is_retryable(error: &(dyn std::error::Error + 'static)) -> bool {
    // TLS failures (untrusted certificate, wrong name, not TLS at all) reach us as
    // "invalid data" I/O errors; they will fail the same way every time.
    !causes(error).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
    })
}

/// [`describe`] for reqwest, which knows a timeout when it sees one.
pub(crate) fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    describe(error)
}

/// The innermost cause of a failed request, in a few words.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    use std::io::ErrorKind;

    let mut reason = None;
    for cause in causes(error) {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                ErrorKind::TimedOut => return "timed out".to_owned(),
                ErrorKind::NotFound => return "no such socket".to_owned(),
                _ => {}
            }
        }
        reason = Some(cause.to_string());
    }
    reason.unwrap_or_else(|| "unknown error".to_owned())
}

/// `error` and its causes, looking inside I/O errors, whose `source()` skips the error
/// they wrap.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |current| {
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        wrapped.or_else(|| current.source())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Client {
        Client::new(&ClientSettings {
            address: address.to_owned(),
            ..ClientSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn urls_are_the_base_and_the_path() {
        fn check(address: &str, path: &str, expected: &str) {
            let url = client(address).url(path).unwrap();
            assert_eq!(url.as_str(), expected, "{address} + {path}");
        }

        check(
            "http://127.0.0.1:8200",
            "/v1/sys/health",
            "http://127.0.0.1:8200/v1/sys/health",
        );
        check(
            "http://127.0.0.1:8200/",
            "/v1/a?list=true",
            "http://127.0.0.1:8200/v1/a?list=true",
        );
        check(
            "https://lb.example/vault",
            "/v1/x",
            "https://lb.example/vault/v1/x",
        );
        check(
            "unix:///run/v.sock",
            "/v1/sys/health",
            "http://localhost/v1/sys/health",
        );
        check(
            "http://h:1",
            "/v1/a%2Fb?x=%20y",
            "http://h:1/v1/a%2Fb?x=%20y",
        );
    }

    #[test]
    fn token_headers_are_sensitive_and_never_printed() {
        let token = Token::new("s.TopSecretToken");
        let header = token_header(&token).unwrap();

        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("TopSecret"));
    }

    #[test]
    fn an_unusable_token_is_refused_without_showing_it() {
        let error = token_header(&Token::new("s.Secret\nInjected")).unwrap_err();
        let message = format!("{error} {error:?}");
        assert!(!message.contains("Secret"), "{message}");
    }

    #[test]
    fn namespaces() {
        fn check(namespace: Option<&str>, expected: Option<&str>) {
            let header = namespace_header(namespace).unwrap();
            assert_eq!(header.as_ref().map(|h| h.to_str().unwrap()), expected);
        }

        check(None, None);
        check(Some(""), None);
        check(Some(" "), None);
        check(Some("team-a"), Some("team-a"));
        check(Some("team-a/app/"), Some("team-a/app/"));
        assert!(namespace_header(Some("bad\nname")).is_err());
    }

    #[test]
    fn decode_errors_never_quote_the_answer() {
        fn check(body: &str, detail: &str) {
            let error =
                decode::<AuthInfo>(body.as_bytes(), &Method::PUT, "auth/x/login").unwrap_err();
            let message = error.to_string();
            assert!(!message.contains("s.Leaked"), "{message}");
            assert!(message.contains(detail), "{message}");
        }

        check(
            r#"{"client_token": 5, "accessor": "s.Leaked"}"#,
            "unexpected JSON shape",
        );
        check(r#"{"client_token": ["s.Leaked"]}"#, "unexpected JSON shape");
        check("<html>s.Leaked</html>", "not JSON");
        check(r#"{"client_token": "s.Leaked"#, "truncated JSON");
    }

    #[test]
    fn vault_error_strings() {
        fn check(body: &str, expected: &[&str]) {
            assert_eq!(vault_errors(body.as_bytes()), expected, "{body}");
        }

        check(
            r#"{"errors":["permission denied"]}"#,
            &["permission denied"],
        );
        check(r#"{"errors":[]}"#, &[]);
        check("", &[]);
        check("<html>bad gateway</html>", &[]);
    }

    #[test]
    fn calls_can_run_on_any_worker_thread() {
        fn check<F: Future + Send + 'static>(_: F) {}

        // Like a spawned task: the future owns the client and borrows it across awaits.
        macro_rules! check {
            (|$client:ident, $token:ident| $call:expr) => {{
                let $client = client("http://127.0.0.1:8200");
                let $token = Token::new("s.x");
                check(async move {
                    let _ = $call.await;
                });
            }};
        }

        check!(|c, _t| c.forward(http::Request::new(Bytes::new())));
        check!(|c, _t| c.login("auth/approle", serde_json::json!({}), None));
        check!(|c, t| c.lookup_self(&t));
        check!(|c, t| c.renew_self(&t, None));
        check!(|c, t| c.renew_lease(&t, "lease", None));
        check!(|c, t| c.wrap_lookup(&t));
        check!(|c, t| c.unwrap(&t));
        check!(|c, t| c.wrap(&t, Duration::from_secs(1)));
        check!(|c, t| c.revoke_self(&t));
        check!(|c, _t| c.health());
    }

    #[test]
    fn debug_shows_the_address_not_the_pool() {
        let client = client("http://127.0.0.1:8200");
        let debug = format!("{client:?}");
        assert!(debug.contains("http://127.0.0.1:8200"), "{debug}");
    }

    #[test]
    fn wrap_ttl_header_is_whole_seconds() {
        fn check(ttl: Duration, expected: &str) {
            assert_eq!(wrap_ttl_header(ttl), expected, "{ttl:?}");
        }

        check(Duration::from_secs(300), "300");
        check(Duration::from_millis(1500), "1");
        check(Duration::from_millis(10), "1");
    }
}
